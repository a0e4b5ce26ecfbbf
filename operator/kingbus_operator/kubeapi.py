"""A small JSON client of the Kubernetes API on top of kubernetes_asyncio's ``ApiClient``.

The operator handles objects as plain dicts (what ``render`` produces and what the API server
returns), so instead of the generated typed models this module calls the REST paths directly
and lets ``ApiClient`` do authentication (kubeconfig or the in-cluster service account), TLS
and retries-free transport.  Only ``handlers`` uses it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Final

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

Obj = dict[str, Any]

# kind -> (API path prefix, plural)
KINDS: Final[dict[str, tuple[str, str]]] = {
    "Pod": ("/api/v1", "pods"),
    "Service": ("/api/v1", "services"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Secret": ("/api/v1", "secrets"),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims"),
    "Event": ("/api/v1", "events"),
    "StatefulSet": ("/apis/apps/v1", "statefulsets"),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets"),
    "KingbusCluster": ("/apis/kingbus.io/v1alpha1", "kingbusclusters"),
}
CLUSTER_KINDS: Final[dict[str, tuple[str, str]]] = {
    "Node": ("/api/v1", "nodes"),
    "PersistentVolume": ("/api/v1", "persistentvolumes"),
    "StorageClass": ("/apis/storage.k8s.io/v1", "storageclasses"),
}

_TYPES: Final = {200: "object", 201: "object", 202: "object"}


class KubeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def path(kind: str, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
    if kind in CLUSTER_KINDS:
        prefix, plural = CLUSTER_KINDS[kind]
        out = f"{prefix}/{plural}"
    else:
        prefix, plural = KINDS[kind]
        out = f"{prefix}/namespaces/{namespace}/{plural}"
    if name:
        out += f"/{name}"
    if sub:
        out += f"/{sub}"
    return out


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    @classmethod
    async def connect(cls) -> Kube:
        cfg = client.Configuration()
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            # Explicitly: kubernetes_asyncio reads $KUBECONFIG only once, when it is imported.
            await config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), client_configuration=cfg)
        return cls(client.ApiClient(configuration=cfg))

    async def close(self) -> None:
        await self.api.close()

    async def _call(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        try:
            return await self.api.call_api(
                url,
                method,
                query_params=query or [],
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                response_types_map=_TYPES,
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
            )
        except ApiException as exc:
            raise KubeError(exc.status, _message(exc.body)) from None

    async def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        try:
            doc: Obj = await self._call("GET", path(kind, namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return doc

    async def list(
        self, kind: str, namespace: str | None = None, *, selector: str | None = None
    ) -> list[Obj]:
        query = [("labelSelector", selector)] if selector else []
        doc = await self._call("GET", path(kind, namespace), query=query)
        items: list[Obj] = doc.get("items", [])
        return items

    async def create(self, obj: Mapping[str, Any]) -> Obj:
        meta = obj["metadata"]
        doc: Obj = await self._call("POST", path(obj["kind"], meta.get("namespace")), body=dict(obj))
        return doc

    async def merge_patch(
        self, kind: str, namespace: str | None, name: str, patch: Mapping[str, Any], *, sub: str | None = None
    ) -> Obj:
        doc: Obj = await self._call(
            "PATCH",
            path(kind, namespace, name, sub),
            body=dict(patch),
            content_type="application/merge-patch+json",
        )
        return doc

    async def delete(
        self, kind: str, namespace: str | None, name: str, *, grace_seconds: int | None = None
    ) -> bool:
        """Delete; False if it was already gone.  ``grace_seconds=0`` force-deletes a pod."""
        body = {"gracePeriodSeconds": grace_seconds} if grace_seconds is not None else None
        try:
            await self._call("DELETE", path(kind, namespace, name), body=body)
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True


def _message(body: Any) -> str:
    try:
        doc = json.loads(body) if isinstance(body, str | bytes) else body
    except ValueError:
        return str(body)[:500]
    if isinstance(doc, dict) and "message" in doc:
        return str(doc["message"])
    return str(body)[:500]
