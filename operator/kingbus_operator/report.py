"""Facts + decision -> the status document of the KingbusCluster.  Pure.

Conditions (``type``, ``status``, ``reason``, ``message``, ``lastTransitionTime``):

* ``Ready``: the cluster is what the spec asks for (the decision is :class:`~decide.Idle`).
* ``Available``: a leader exists and a quorum of members is healthy (replicas can be served).
* ``Degraded``: a member is unhealthy or lost, or a requested change was refused.
* ``Progressing``: the operator is moving the cluster towards the spec.

A condition keeps its ``lastTransitionTime`` while its status does not change, so a pass that
observes nothing new produces an identical document (the handler then writes nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kingbus_operator import decide as d
from kingbus_operator import names
from kingbus_operator.facts import Facts
from kingbus_operator.render import quorum

Obj = dict[str, Any]


def _condition(kind: str, ok: bool, reason: str, message: str) -> Obj:
    return {"type": kind, "status": "True" if ok else "False", "reason": reason, "message": message}


def conditions(f: Facts, action: d.Action) -> list[Obj]:
    raft = f.raft
    healthy = sum(1 for m in raft.members if m.healthy) if raft else 0
    total = len(raft.members) if raft else 0
    available = bool(raft and raft.leader and total and healthy >= quorum(total))
    unhealthy = sorted(m.name for m in raft.members if not m.healthy) if raft else []
    ready = isinstance(action, d.Idle)
    refused = isinstance(action, d.Refuse)
    degraded_hold = isinstance(action, d.Hold) and action.degraded
    if refused or degraded_hold:
        degraded = _condition("Degraded", True, action.reason, action.message)
    elif unhealthy:
        degraded = _condition("Degraded", True, "MemberUnhealthy", "unhealthy: " + ", ".join(unhealthy))
    else:
        degraded = _condition("Degraded", False, "AsExpected", "all members healthy")
    progressing = not (ready or refused or degraded_hold or action.reason == "Paused")
    return [
        _condition("Ready", ready, action.reason, action.message),
        _condition(
            "Available",
            available,
            "QuorumHealthy" if available else "NoQuorum",
            f"{healthy} of {total} members healthy, leader {raft.leader if raft else None}",
        ),
        degraded,
        _condition("Progressing", progressing, action.reason, action.message),
    ]


def _stamp(new: list[Obj], old: Sequence[Mapping[str, Any]], now_iso: str, generation: int) -> list[Obj]:
    previous = {c.get("type"): c for c in old}
    for cond in new:
        cond["observedGeneration"] = generation
        before = previous.get(cond["type"])
        same = before is not None and before.get("status") == cond["status"]
        cond["lastTransitionTime"] = before.get("lastTransitionTime", now_iso) if same and before else now_iso
    return new


def _founded(f: Facts, previous: Mapping[str, Any]) -> bool:
    """Every founding member is a healthy member (the handler renders the ConfigMap the same way)."""
    bootstrap = previous.get("bootstrapReplicas", f.spec.replicas)
    healthy = {m.name for m in f.raft.members if m.healthy} if f.raft else set()
    return all(names.member(f.cluster, i) in healthy for i in range(int(bootstrap)))


def status(f: Facts, action: d.Action, *, previous: Mapping[str, Any], now_iso: str) -> Obj:
    """The whole ``.status`` for this pass (``previous`` is the current one, for timestamps)."""
    raft = f.raft
    ready_pods = {p.name for p in f.pods if p.ready}
    doc: Obj = {
        "observedGeneration": f.generation,
        "selector": names.selector(f.cluster),
        "replicas": len(raft.members) if raft else (f.statefulset.replicas if f.statefulset else 0),
        "bootstrapReplicas": previous.get("bootstrapReplicas", f.spec.replicas),
        # Once the founding members formed the group (the first converged pass), for good.
        "founded": bool(previous.get("founded")) or _founded(f, previous),
        "leader": (raft.leader if raft else None) or "",
        "memberSummary": f"{sum(1 for m in raft.members if m.healthy) if raft else 0}/{f.spec.replicas}",
        "members": [
            {"name": m.name, "role": m.role, "healthy": m.healthy, "ready": m.name in ready_pods}
            for m in (sorted(raft.members, key=lambda m: m.name) if raft else ())
        ],
        "committedGtidSet": raft.committed_gtid_set if raft else "",
        "connectedReplicas": raft.connected_replicas if raft else 0,
        "lastAction": f"{action.reason}: {action.message}",
        "conditions": _stamp(conditions(f, action), previous.get("conditions") or [], now_iso, f.generation),
    }
    if raft and raft.source.host:
        src: Obj = {"host": raft.source.host, "port": raft.source.port, "state": raft.source.state}
        if raft.source.lag_seconds is not None:
            src["lagSeconds"] = raft.source.lag_seconds
        if raft.source.error:
            src["error"] = raft.source.error
        doc["source"] = src
    else:
        doc["source"] = {"state": raft.source.state if raft else "unknown"}
    return doc
