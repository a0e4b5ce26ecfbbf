"""The admin API (aiohttp) and the node's Prometheus metrics.

* :mod:`kingbus.api.control` — the ``NodeControl`` protocol the node implements, and the
  JSON document shapes.
* :mod:`kingbus.api.errors` — the refusals a node raises, one HTTP status each.
* :mod:`kingbus.api.bodies` — strict, pure parsing of request bodies.
* :mod:`kingbus.api.forwarding` — relaying a follower's mutation to the leader.
* :mod:`kingbus.api.app` — ``make_admin_app``: routes, auth, error mapping.
* :mod:`kingbus.api.metrics` — ``Metrics``, registered on a caller-owned registry.
"""
