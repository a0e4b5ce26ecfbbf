"""The admin HTTP API: routes, authentication, error mapping, forwarding, /metrics.

Theory of operation
-------------------
Every route is a thin translation between HTTP and :class:`~kingbus.api.control.NodeControl`:

* **Reads** (GET /status, /members, /healthz, /readyz, /metrics) are open and answered from
  the local node.
* **Mutations** go through one pipeline, in this order: bearer token (401), body parsed
  strictly by :mod:`kingbus.api.bodies` (400/413), then — if this node is not the leader, or
  the node raises ``NotLeader`` mid-way — forwarded to the leader by
  :mod:`kingbus.api.forwarding`, else performed by the node.  A forwarded request that lands
  on a non-leader is refused (503), so there are no loops.
* **Errors** become ``{"error": reason}`` with the status of the
  :mod:`kingbus.api.errors` class; aiohttp's own 404/405/413 get the same JSON shape;
  anything unexpected is logged and answered 500 without internals.  A 503 for which nothing
  was attempted (no leader known, leader refused the connection) is ``{"error": reason,
  "retryable": true}`` with ``Retry-After: 1``; any other 503 may have taken effect and is
  not marked, so clients do not repeat it blindly.

Success bodies: ``PUT /source`` → 200 ``{"ok": true, "source": {host, port, user,
start_gtid_set, semi_sync}}`` (no password); ``POST /members`` → 201 ``{"ok": true, "member":
{name, raft, admin}}``; the other mutations → 200 ``{"ok": true}``.  ``GET /members`` →
``{"members": [...]}``; ``GET /readyz`` → 200 ``{"ready": true, "reason": ...}`` or 503
``{"ready": false, "error": reason}``; ``GET /healthz`` → 200 ``{"ok": true}``.

Passwords: the only body that carries one is PUT /source; it goes into a ``SourceSpec``
whose repr hides it, and no response or log line includes it.  Status and member documents
are scrubbed of any ``*password*`` key before they are sent.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from kingbus.api import bodies
from kingbus.api.control import NodeControl, SourceSpec
from kingbus.api.errors import ApiError, NotLeader, Unauthorized, Unavailable
from kingbus.api.forwarding import FORWARDED_HEADER, Forwarder

DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024
DEFAULT_FORWARD_TIMEOUT_SECONDS: Final = 10.0

log = logging.getLogger(__name__)

_T = TypeVar("_T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_MAX_BODY: Final = web.AppKey("max_body", int)


def error_response(status: int, reason: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": reason}, status=status, headers=headers)


def scrub(value: Any) -> Any:
    """Drop every mapping key that mentions a password, at any depth."""
    if isinstance(value, Mapping):
        return {k: scrub(v) for k, v in value.items() if "password" not in str(k).lower()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        if isinstance(exc, Unauthorized):
            return error_response(exc.status, exc.reason, {"WWW-Authenticate": "Bearer"})
        if exc.retryable:
            # Nothing was attempted; elections and leader changes settle within seconds.
            doc = {"error": exc.reason, "retryable": True}
            return web.json_response(doc, status=exc.status, headers={"Retry-After": "1"})
        return error_response(exc.status, exc.reason)
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(exc.status, f"request body too large (limit {request.app[_MAX_BODY]} bytes)")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error_response(exc.status, f"{exc.reason}: {request.method} {request.path}", headers)
    except Exception:
        log.exception("admin API: %s %s failed", request.method, request.path)
        return error_response(500, "internal error; see the node's log")


def _count_requests(counter: Counter) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        # The canonical route (/members/{name}), not the path: member names must not become
        # label values with unbounded cardinality.
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        counter.labels(method=request.method, route=route, code=str(response.status)).inc()
        return response

    return middleware


class _Routes:
    def __init__(
        self,
        control: NodeControl,
        *,
        token: str,
        registry: CollectorRegistry,
        forwarder: Forwarder,
        on_scrape: Callable[[], None] | None,
    ) -> None:
        self.control = control
        self.token = token.encode()
        self.registry = registry
        self.forwarder = forwarder
        self.on_scrape = on_scrape

    # ---- reads

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(scrub(self.control.status()))

    async def members(self, request: web.Request) -> web.Response:
        return web.json_response({"members": scrub(list(self.control.members()))})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(self, request: web.Request) -> web.Response:
        ready, reason = self.control.is_ready()
        if ready:
            return web.json_response({"ready": True, "reason": reason})
        return web.json_response({"ready": False, "error": reason}, status=503)

    async def metrics(self, request: web.Request) -> web.Response:
        if self.on_scrape is not None:
            self.on_scrape()
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    # ---- mutations

    def _authorize(self, request: web.Request) -> None:
        header = request.headers.get("Authorization")
        if header is None:
            raise Unauthorized(
                "missing Authorization: Bearer <token> header (mutations need the admin token)"
            )
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise Unauthorized("malformed Authorization header; expected 'Bearer <token>'")
        # surrogatepass: a header with undecodable bytes must fail the comparison, not crash it.
        if not hmac.compare_digest(presented.strip().encode("utf-8", "surrogatepass"), self.token):
            raise Unauthorized("invalid admin token")

    async def _mutate(
        self,
        request: web.Request,
        parse: Callable[[bytes], _T],
        act: Callable[[_T], Awaitable[web.Response]],
    ) -> web.Response:
        self._authorize(request)
        body = await request.read()
        spec = parse(body)
        if not self.control.is_leader():
            return await self._to_leader(request, body, self.control.leader_admin_url())
        try:
            return await act(spec)
        except NotLeader as exc:  # leadership moved while we were at it; nothing was changed
            return await self._to_leader(request, body, exc.leader_admin or self.control.leader_admin_url())

    async def _to_leader(self, request: web.Request, body: bytes, leader_admin: str | None) -> web.Response:
        if FORWARDED_HEADER in request.headers:
            raise Unavailable(
                "a member forwarded this request here as the leader, but this node is not the "
                "leader (leadership is changing); retry shortly",
                retryable=True,
            )
        if leader_admin is None:
            raise Unavailable(
                "this node is not the leader and no leader is known (election under way or no quorum)",
                retryable=True,
            )
        return await self.forwarder.forward(request, body, leader_admin)

    async def put_source(self, request: web.Request) -> web.Response:
        async def act(spec: SourceSpec) -> web.Response:
            await self.control.set_source(spec)
            log.info("source set to %s@%s:%d", spec.user, spec.host, spec.port)
            return web.json_response({"ok": True, "source": spec.public()})

        return await self._mutate(request, bodies.parse_source, act)

    async def start_source(self, request: web.Request) -> web.Response:
        async def act(_: None) -> web.Response:
            await self.control.start_source()
            return web.json_response({"ok": True})

        return await self._mutate(request, bodies.parse_empty, act)

    async def stop_source(self, request: web.Request) -> web.Response:
        async def act(_: None) -> web.Response:
            await self.control.stop_source()
            return web.json_response({"ok": True})

        return await self._mutate(request, bodies.parse_empty, act)

    async def add_member(self, request: web.Request) -> web.Response:
        async def act(spec: bodies.MemberSpec) -> web.Response:
            await self.control.add_member(spec.name, spec.raft, spec.admin)
            log.info("member %s added (raft %s, admin %s)", spec.name, spec.raft, spec.admin)
            member = {"name": spec.name, "raft": spec.raft, "admin": spec.admin}
            return web.json_response({"ok": True, "member": member}, status=201)

        return await self._mutate(request, bodies.parse_member, act)

    async def remove_member(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]

        async def act(_: None) -> web.Response:
            await self.control.remove_member(name)
            log.info("member %s removed", name)
            return web.json_response({"ok": True})

        return await self._mutate(request, bodies.parse_empty, act)

    async def transfer_leader(self, request: web.Request) -> web.Response:
        async def act(spec: bodies.TransferSpec) -> web.Response:
            await self.control.transfer_leadership(spec.to)
            log.info("leadership transferred (requested target: %s)", spec.to or "any")
            return web.json_response({"ok": True})

        return await self._mutate(request, bodies.parse_transfer, act)


def make_admin_app(
    control: NodeControl,
    *,
    token: str,
    registry: CollectorRegistry,
    forward_timeout_seconds: float = DEFAULT_FORWARD_TIMEOUT_SECONDS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    on_scrape: Callable[[], None] | None = None,
) -> web.Application:
    """Build the admin application.  ``on_scrape`` runs before each /metrics answer (for gauges
    the node prefers to compute on demand)."""
    if not token:
        raise ValueError("the admin token must not be empty")
    requests = Counter(
        "kingbus_admin_requests",
        "Admin API requests answered",
        ["method", "route", "code"],
        registry=registry,
    )
    forwarder = Forwarder(timeout_seconds=forward_timeout_seconds)
    routes = _Routes(control, token=token, registry=registry, forwarder=forwarder, on_scrape=on_scrape)
    app = web.Application(
        client_max_size=max_body_bytes,
        middlewares=[_count_requests(requests), _json_errors],
    )
    app[_MAX_BODY] = max_body_bytes

    async def forwarder_lifetime(_: web.Application) -> AsyncIterator[None]:
        await forwarder.start()
        yield
        await forwarder.close()

    app.cleanup_ctx.append(forwarder_lifetime)
    app.router.add_get("/status", routes.status)
    app.router.add_get("/members", routes.members)
    app.router.add_get("/healthz", routes.healthz)
    app.router.add_get("/readyz", routes.readyz)
    app.router.add_get("/metrics", routes.metrics)
    app.router.add_put("/source", routes.put_source)
    app.router.add_post("/source/start", routes.start_source)
    app.router.add_post("/source/stop", routes.stop_source)
    app.router.add_post("/members", routes.add_member)
    app.router.add_delete("/members/{name}", routes.remove_member)
    app.router.add_post("/leader/transfer", routes.transfer_leader)
    return app
