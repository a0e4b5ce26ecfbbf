"""kingbus-operator: reconciles KingbusCluster resources with kopf.

Layers, imports only downwards:

``crd``         the custom resource: names, and the spec parsed into frozen dataclasses (pure)
``render``      spec -> Kubernetes objects (pure)
``facts``       what one reconcile pass observed, as frozen dataclasses (pure)
``decide``      facts -> the one next action (pure)
``report``      facts + decision -> the status document and its conditions (pure)
``nodeclient``  the only module that talks to Kingbus nodes (admin API over HTTP)
``sourceprobe`` the only module that talks to a MySQL source (reads gtid_executed)
``kubeapi``     a small JSON client of the Kubernetes API
``handlers``    kopf wiring: gather -> decide -> act -> report, the only place that writes to Kubernetes
"""
