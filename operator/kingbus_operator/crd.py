"""The KingbusCluster custom resource: its names and its spec as typed, frozen values.

The API server has already validated and defaulted the spec against ``crds/kingbuscluster.yaml``;
:func:`parse_spec` only turns the JSON into dataclasses, filling the same defaults so the pure
layers can also be fed hand-written specs in unit tests.  It raises :class:`SpecError` for the
few things a schema could not have caught (the operator then reports them on the resource).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

GROUP: Final = "kingbus.io"
VERSION: Final = "v1alpha1"
PLURAL: Final = "kingbusclusters"
KIND: Final = "KingbusCluster"
API_VERSION: Final = f"{GROUP}/{VERSION}"

NodeFailureAction = Literal["None", "Recreate"]


class SpecError(ValueError):
    """The spec cannot be reconciled (the message says which field and why)."""


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    user_key: str = "user"
    password_key: str = "password"


@dataclass(frozen=True)
class SourceSpec:
    host: str
    port: int
    credentials: SecretKeyRef
    tls_enabled: bool = False
    tls_ca_secret: str | None = None
    start_gtid_set: str = ""
    semi_sync: bool = False
    allow_divergent: bool = False


@dataclass(frozen=True)
class StorageSpec:
    size: str
    storage_class: str | None = None
    delete_claim_on_scale_down: bool = True


@dataclass(frozen=True)
class SchedulingSpec:
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    affinity: Mapping[str, Any] | None = None
    spread: bool = True


@dataclass(frozen=True)
class NodeFailurePolicy:
    action: NodeFailureAction = "None"
    timeout_seconds: int = 300


@dataclass(frozen=True)
class ClusterSpec:
    image: str
    storage: StorageSpec
    replicas: int = 3
    image_pull_policy: str = "IfNotPresent"
    source: SourceSpec | None = None
    replica_users_secret: str | None = None
    resources: Mapping[str, Any] = field(default_factory=dict)
    scheduling: SchedulingSpec = SchedulingSpec()
    retention_max_bytes: int | None = None
    retention_max_age_hours: int | None = None
    node_failure: NodeFailurePolicy = NodeFailurePolicy()
    paused: bool = False


def _get(doc: Mapping[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
    value = doc.get(key, default)
    if value is None or isinstance(value, kind):
        return value
    raise SpecError(f"{where}.{key} must be {kind.__name__}, got {type(value).__name__}")


def parse_spec(spec: Mapping[str, Any]) -> ClusterSpec:
    """Turn ``.spec`` of a KingbusCluster into a :class:`ClusterSpec` (schema defaults applied)."""
    image = _get(spec, "image", str, None, "spec")
    if not image:
        raise SpecError("spec.image is required")
    storage_doc = _get(spec, "storage", dict, None, "spec")
    if not storage_doc or not storage_doc.get("size"):
        raise SpecError("spec.storage.size is required")
    storage = StorageSpec(
        size=str(storage_doc["size"]),
        storage_class=_get(storage_doc, "storageClassName", str, None, "spec.storage"),
        delete_claim_on_scale_down=bool(storage_doc.get("deleteClaimOnScaleDown", True)),
    )
    source = None
    source_doc = _get(spec, "source", dict, None, "spec")
    if source_doc:
        creds = _get(source_doc, "credentialsSecret", dict, None, "spec.source")
        if not creds or not creds.get("name"):
            raise SpecError("spec.source.credentialsSecret.name is required")
        tls = source_doc.get("tls") or {}
        source = SourceSpec(
            host=str(source_doc["host"]),
            port=int(source_doc.get("port", 3306)),
            credentials=SecretKeyRef(
                name=str(creds["name"]),
                user_key=str(creds.get("userKey", "user")),
                password_key=str(creds.get("passwordKey", "password")),
            ),
            tls_enabled=bool(tls.get("enabled", False)),
            tls_ca_secret=tls.get("caSecretName"),
            start_gtid_set=str(source_doc.get("startGtidSet", "")),
            semi_sync=bool(source_doc.get("semiSync", False)),
            allow_divergent=bool(source_doc.get("allowDivergent", False)),
        )
    sched = spec.get("scheduling") or {}
    retention = spec.get("retention") or {}
    policy = spec.get("nodeFailurePolicy") or {}
    users = spec.get("replicaUsers") or {}
    replicas = _get(spec, "replicas", int, 3, "spec")
    if not 1 <= replicas <= 9:
        raise SpecError(f"spec.replicas must be between 1 and 9, got {replicas}")
    return ClusterSpec(
        image=image,
        storage=storage,
        replicas=replicas,
        image_pull_policy=str(spec.get("imagePullPolicy", "IfNotPresent")),
        source=source,
        replica_users_secret=users.get("secretName"),
        resources=dict(spec.get("resources") or {}),
        scheduling=SchedulingSpec(
            node_selector=dict(sched.get("nodeSelector") or {}),
            tolerations=tuple(sched.get("tolerations") or ()),
            affinity=sched.get("affinity"),
            spread=bool(sched.get("spread", True)),
        ),
        retention_max_bytes=retention.get("maxBytes"),
        retention_max_age_hours=retention.get("maxAgeHours"),
        node_failure=NodeFailurePolicy(
            action="Recreate" if policy.get("action") == "Recreate" else "None",
            timeout_seconds=int(policy.get("timeoutSeconds", 300)),
        ),
        paused=bool(spec.get("paused", False)),
    )
