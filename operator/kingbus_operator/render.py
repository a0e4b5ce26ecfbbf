"""Spec -> Kubernetes objects.  Pure: a :class:`RenderInput` in, plain JSON-ready dicts out.

Theory of operation
-------------------
Everything the operator creates for a KingbusCluster is rendered here, in one place, with an
owner reference to the cluster so the garbage collector removes it all when the cluster is
deleted:

* ``Secret`` ``<c>-raft`` and ``<c>-admin-token``: generated once.  Their *values* are inputs
  (the handler generates them only when the Secret does not exist) and they are never
  re-rendered over an existing Secret, so a running cluster's credentials never change.
* ``ConfigMap`` ``<c>-config``: ``kingbus.yaml`` (the static part of the node configuration) and
  ``start.sh``, which derives the per-member settings (name, Raft address, server id, initial
  peers or the join list) from the pod's hostname, then execs ``kingbus-node``.  Members with an
  ordinal below ``bootstrap_replicas`` found the Raft group; any other member, and a founding
  one restarting on an empty volume once the group exists (key ``founded``), starts with
  ``raft.join``: the node copies the data from its peers, then asks the leader to add it.  The
  key lives in the ConfigMap, not in the pod template, so setting it restarts no pod.
* ``Service`` ``<c>-peers`` (headless, publishes not-ready addresses so members resolve each
  other while they start), ``<c>`` (client, MySQL :3306 for replicas), ``<c>-admin`` (:9595).
* ``PodDisruptionBudget`` ``<c>`` with ``minAvailable`` = the Raft quorum of the current member
  count, so a voluntary disruption (drain) can never take a majority away.
* ``StatefulSet`` ``<c>``: ``OnDelete`` updates (the operator rolls pods itself, one at a time,
  only while the Raft group is healthy), ``Parallel`` pod management, a ``data`` claim template,
  preferred spread across nodes and zones by default.  Its ``replicas`` is *not* the spec's: it
  is the input ``statefulset_replicas``, which ``decide`` moves one member at a time.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from kingbus_operator import crd, names

DATA_DIR: Final = "/var/lib/kingbus"
CONFIG_DIR: Final = "/etc/kingbus/config"
SECRETS_DIR: Final = "/etc/kingbus/secrets"
REPLICA_USERS_DIR: Final = "/etc/kingbus/replica-users"
RAFT_PASSWORD_KEY: Final = "password"
ADMIN_TOKEN_KEY: Final = "token"
CONTAINER: Final = "kingbus"
CONFIG_HASH_ANNOTATION: Final = "kingbus.io/config-hash"

Obj = dict[str, Any]

# The image's user (the Dockerfile's USER). A fresh volume's root belongs to root, so without
# fsGroup the node could not write its data directory; OnRootMismatch chowns only a volume whose
# root is wrong, not every binlog segment at every start.
NODE_UID: Final = 65532
POD_SECURITY_CONTEXT: Final[Obj] = {
    "runAsNonRoot": True,
    "runAsUser": NODE_UID,
    "runAsGroup": NODE_UID,
    "fsGroup": NODE_UID,
    "fsGroupChangePolicy": "OnRootMismatch",
    "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass(frozen=True)
class Owner:
    """The KingbusCluster that owns the rendered objects."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class RenderInput:
    owner: Owner
    spec: crd.ClusterSpec
    bootstrap_replicas: int
    statefulset_replicas: int
    # The founding members have formed the cluster: from now on a member starting on an empty
    # volume (a new or recreated one) must join through the running cluster, never found one.
    founded: bool = False


def quorum(members: int) -> int:
    """Votes needed for a Raft majority of ``members``."""
    return members // 2 + 1


def _meta(inp: RenderInput, name: str) -> Obj:
    return {
        "name": name,
        "namespace": inp.owner.namespace,
        "labels": names.labels(inp.owner.name),
        "ownerReferences": [
            {
                "apiVersion": crd.API_VERSION,
                "kind": crd.KIND,
                "name": inp.owner.name,
                "uid": inp.owner.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def secrets(inp: RenderInput, *, raft_password: str, admin_token: str) -> list[Obj]:
    """The generated Secrets, holding the given values (create them only if absent)."""
    cluster = inp.owner.name
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta(inp, names.raft_secret(cluster)),
            "type": "Opaque",
            "stringData": {RAFT_PASSWORD_KEY: raft_password},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta(inp, names.admin_token_secret(cluster)),
            "type": "Opaque",
            "stringData": {ADMIN_TOKEN_KEY: admin_token},
        },
    ]


def node_config(inp: RenderInput) -> str:
    """The static part of every member's kingbus.yaml (per-member keys come from start.sh)."""
    spec = inp.spec
    lines = [
        f"data_dir: {DATA_DIR}",
        "raft:",
        f"  listen: 0.0.0.0:{names.RAFT_PORT}",
        f"  password_file: {SECRETS_DIR}/raft/{RAFT_PASSWORD_KEY}",
        "  fsync: always",
        "admin:",
        f"  bind: 0.0.0.0:{names.ADMIN_PORT}",
        f"  token_file: {SECRETS_DIR}/admin/{ADMIN_TOKEN_KEY}",
        "mysql:",
        f"  bind: 0.0.0.0:{names.MYSQL_PORT}",
        "store:",
        f"  retention_bytes: {spec.retention_max_bytes or 0}",
        f"  retention_seconds: {(spec.retention_max_age_hours or 0) * 3600}",
    ]
    return "\n".join(lines) + "\n"


START_SCRIPT: Final = """\
#!/bin/sh
# Derives this member's identity from the pod name (<cluster>-<ordinal>), then runs the node.
set -eu
ordinal="${HOSTNAME##*-}"
export KINGBUS_NAME="$HOSTNAME"
export KINGBUS_RAFT_ADDRESS="$HOSTNAME.$KB_PEERS_DOMAIN:$KB_RAFT_PORT"
export KINGBUS_ADMIN_ADVERTISE="http://$HOSTNAME.$KB_PEERS_DOMAIN:$KB_ADMIN_PORT"
export KINGBUS_MYSQL_SERVER_ID=$((KB_SERVER_ID_BASE + ordinal))
peers=""
join="$KB_ADMIN_SERVICE_URL"
i=0
while [ "$i" -lt "$KB_BOOTSTRAP_REPLICAS" ]; do
  if [ "$i" != "$ordinal" ]; then
    peers="$peers${peers:+,}$KB_CLUSTER-$i.$KB_PEERS_DOMAIN:$KB_RAFT_PORT"
    join="$join,http://$KB_CLUSTER-$i.$KB_PEERS_DOMAIN:$KB_ADMIN_PORT"
  fi
  i=$((i + 1))
done
fresh=""
if [ -f "$KB_CONFIG_DIR/founded" ] && [ -z "$(ls -A "$KB_DATA_DIR" 2>/dev/null)" ]; then fresh=1; fi
if [ "$ordinal" -lt "$KB_BOOTSTRAP_REPLICAS" ] && [ -z "$fresh" ]; then
  # A founding member, or a member restarting on its own data.
  export KINGBUS_RAFT_PEERS="$peers"
else
  # A new member, or one whose volume was lost: copy the data from the running cluster, then
  # ask the leader to be added (the node does both on its first start).
  export KINGBUS_RAFT_JOIN="$join"
fi
users=""
for f in "$KB_REPLICA_USERS_DIR"/*; do
  if [ -f "$f" ]; then users="$users${users:+,}$(basename "$f"):$f"; fi
done
if [ -n "$users" ]; then export KINGBUS_MYSQL_USERS="$users"; fi
exec kingbus-node --config "$KB_CONFIG_DIR/kingbus.yaml"
"""


def config_map(inp: RenderInput) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(inp, names.config_map(inp.owner.name)),
        "data": {
            "kingbus.yaml": node_config(inp),
            "start.sh": START_SCRIPT,
            **({"founded": "true"} if inp.founded else {}),
        },
    }


def services(inp: RenderInput) -> list[Obj]:
    cluster = inp.owner.name
    select = names.labels(cluster)
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(inp, names.peers_service(cluster)),
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": select,
                "ports": [
                    {"name": "raft", "port": names.RAFT_PORT, "targetPort": names.RAFT_PORT},
                    {"name": "admin", "port": names.ADMIN_PORT, "targetPort": names.ADMIN_PORT},
                    {"name": "mysql", "port": names.MYSQL_PORT, "targetPort": names.MYSQL_PORT},
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(inp, names.client_service(cluster)),
            "spec": {
                "selector": select,
                "ports": [{"name": "mysql", "port": names.MYSQL_PORT, "targetPort": names.MYSQL_PORT}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(inp, names.admin_service(cluster)),
            "spec": {
                "selector": select,
                "ports": [{"name": "admin", "port": names.ADMIN_PORT, "targetPort": names.ADMIN_PORT}],
            },
        },
    ]


def pod_disruption_budget(inp: RenderInput) -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(inp, names.pdb(inp.owner.name)),
        "spec": {
            "minAvailable": quorum(max(inp.statefulset_replicas, 1)),
            "selector": {"matchLabels": names.labels(inp.owner.name)},
        },
    }


def _default_affinity(cluster: str) -> Obj:
    term = {"labelSelector": {"matchLabels": names.labels(cluster)}}
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {**term, "topologyKey": "kubernetes.io/hostname"}},
                {"weight": 50, "podAffinityTerm": {**term, "topologyKey": "topology.kubernetes.io/zone"}},
            ]
        }
    }


def _spread(cluster: str) -> list[Obj]:
    # ScheduleAnyway: a 3-member cluster on 2 nodes must still schedule; spread is a preference.
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": names.labels(cluster)},
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def _env(inp: RenderInput) -> list[Obj]:
    cluster, namespace = inp.owner.name, inp.owner.namespace
    values = {
        "KB_CLUSTER": cluster,
        "KB_PEERS_DOMAIN": names.peers_domain(cluster, namespace),
        "KB_RAFT_PORT": str(names.RAFT_PORT),
        "KB_ADMIN_PORT": str(names.ADMIN_PORT),
        "KB_SERVER_ID_BASE": str(names.SERVER_ID_BASE),
        "KB_BOOTSTRAP_REPLICAS": str(inp.bootstrap_replicas),
        "KB_REPLICA_USERS_DIR": REPLICA_USERS_DIR,
        "KB_CONFIG_DIR": CONFIG_DIR,
        "KB_DATA_DIR": DATA_DIR,
        "KB_ADMIN_SERVICE_URL": f"http://{names.admin_service(cluster)}.{namespace}.svc:{names.ADMIN_PORT}",
    }
    return [{"name": k, "value": v} for k, v in values.items()]


def pod_template(inp: RenderInput) -> Obj:
    spec, cluster = inp.spec, inp.owner.name
    mounts = [
        {"name": "data", "mountPath": DATA_DIR},
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "raft-secret", "mountPath": f"{SECRETS_DIR}/raft", "readOnly": True},
        {"name": "admin-secret", "mountPath": f"{SECRETS_DIR}/admin", "readOnly": True},
    ]
    volumes: list[Obj] = [
        {"name": "config", "configMap": {"name": names.config_map(cluster), "defaultMode": 0o555}},
        {"name": "raft-secret", "secret": {"secretName": names.raft_secret(cluster), "defaultMode": 0o400}},
        {
            "name": "admin-secret",
            "secret": {"secretName": names.admin_token_secret(cluster), "defaultMode": 0o400},
        },
    ]
    if spec.replica_users_secret:
        mounts.append({"name": "replica-users", "mountPath": REPLICA_USERS_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "replica-users",
                "secret": {"secretName": spec.replica_users_secret, "defaultMode": 0o400},
            }
        )
    container: Obj = {
        "name": CONTAINER,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["/bin/sh", f"{CONFIG_DIR}/start.sh"],
        "env": _env(inp),
        "ports": [
            {"name": "raft", "containerPort": names.RAFT_PORT},
            {"name": "admin", "containerPort": names.ADMIN_PORT},
            {"name": "mysql", "containerPort": names.MYSQL_PORT},
        ],
        "volumeMounts": mounts,
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "admin"}, "periodSeconds": 10},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "admin"}, "periodSeconds": 5},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if spec.resources:
        container["resources"] = copy.deepcopy(dict(spec.resources))
    pod_spec: Obj = {
        "securityContext": copy.deepcopy(POD_SECURITY_CONTEXT),
        "containers": [container],
        "volumes": volumes,
        # Leave time for a leader to hand over before the kill (DESIGN invariant 3 holds anyway).
        "terminationGracePeriodSeconds": 30,
    }
    sched = spec.scheduling
    if sched.node_selector:
        pod_spec["nodeSelector"] = dict(sched.node_selector)
    if sched.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in sched.tolerations]
    if sched.affinity is not None:
        pod_spec["affinity"] = copy.deepcopy(dict(sched.affinity))
    elif sched.spread:
        pod_spec["affinity"] = _default_affinity(cluster)
        pod_spec["topologySpreadConstraints"] = _spread(cluster)
    # A change of the node configuration changes the template, so the operator rolls the pods
    # (one at a time) instead of leaving them on the old file.  Only kingbus.yaml and start.sh
    # count: the "founded" key must not restart anything.
    digest = hashlib.sha256((node_config(inp) + START_SCRIPT).encode()).hexdigest()[:16]
    metadata = {"labels": names.labels(cluster), "annotations": {CONFIG_HASH_ANNOTATION: digest}}
    return {"metadata": metadata, "spec": pod_spec}


def statefulset(inp: RenderInput) -> Obj:
    spec, cluster = inp.spec, inp.owner.name
    claim_spec: Obj = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": spec.storage.size}},
    }
    if spec.storage.storage_class:
        claim_spec["storageClassName"] = spec.storage.storage_class
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(inp, names.statefulset(cluster)),
        "spec": {
            "replicas": inp.statefulset_replicas,
            "serviceName": names.peers_service(cluster),
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "OnDelete"},
            "persistentVolumeClaimRetentionPolicy": {
                "whenScaled": "Delete" if spec.storage.delete_claim_on_scale_down else "Retain",
                "whenDeleted": "Retain",
            },
            "selector": {"matchLabels": names.labels(cluster)},
            "template": pod_template(inp),
            "volumeClaimTemplates": [
                {"metadata": {"name": "data", "labels": names.labels(cluster)}, "spec": claim_spec}
            ],
        },
    }


def managed_objects(inp: RenderInput) -> list[Obj]:
    """Every object reconciled to the rendered shape (the Secrets are created once, apart)."""
    return [config_map(inp), *services(inp), pod_disruption_budget(inp), statefulset(inp)]


# Fields the API server sets or the operator moves on its own schedule; never a reason to patch.
_IGNORED_PATHS: Final = {
    ("StatefulSet", "spec", "replicas"),
    # Immutable once created; a storage change needs a new volume, not a patch.
    ("StatefulSet", "spec", "volumeClaimTemplates"),
}


def covers(observed: Any, desired: Any) -> bool:
    """True when every field set in ``desired`` has the same value in ``observed``
    (server-side defaults that ``desired`` does not mention are ignored)."""
    if isinstance(desired, Mapping):
        if not isinstance(observed, Mapping):
            return False
        return all(k in observed and covers(observed[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(observed, list) or len(observed) != len(desired):
            return False
        return all(covers(o, d) for o, d in zip(observed, desired, strict=True))
    return bool(observed == desired)


def patch_for(desired: Obj, observed: Mapping[str, Any]) -> Obj | None:
    """The merge patch that brings ``observed`` to ``desired``, or None when nothing differs.

    Only the sections the operator owns are compared: labels, owner references, ``data`` and
    ``spec`` (minus :data:`_IGNORED_PATHS`).
    """
    kind = desired["kind"]
    patch: Obj = {}
    want_meta = {k: desired["metadata"][k] for k in ("labels", "ownerReferences")}
    if not covers(observed.get("metadata", {}), want_meta):
        patch["metadata"] = want_meta
    for section in ("data", "spec"):
        if section not in desired:
            continue
        want = {k: v for k, v in desired[section].items() if (kind, section, k) not in _IGNORED_PATHS}
        if not covers(observed.get(section, {}), want):
            patch[section] = want
    return patch or None
