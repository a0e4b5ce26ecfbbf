"""Status and conditions from facts + decision; an unchanged pass yields an identical document."""

from __future__ import annotations

from kingbus_operator import decide as d
from kingbus_operator import report
from tests.unit.operator.operator_world import world


def _conds(doc: dict[str, object]) -> dict[str, dict[str, object]]:
    return {c["type"]: c for c in doc["conditions"]}  # type: ignore[attr-defined]


def test_converged_cluster_is_ready_and_available() -> None:
    facts = world().build()
    doc = report.status(facts, d.decide(facts), previous={}, now_iso="T1")
    c = _conds(doc)
    assert [c[k]["status"] for k in ("Ready", "Available", "Degraded", "Progressing")] == [
        "True",
        "True",
        "False",
        "False",
    ]
    assert doc["leader"] == "kb-0" and doc["memberSummary"] == "3/3" and doc["replicas"] == 3
    assert (
        doc["selector"] == "app.kubernetes.io/name=kingbus,app.kubernetes.io/instance=kb,"
        "app.kubernetes.io/managed-by=kingbus-operator"
    )


def test_refusal_is_degraded_not_progressing() -> None:
    facts = world().desired(2).member(1, healthy=False).build()
    action = d.decide(facts)
    c = _conds(report.status(facts, action, previous={}, now_iso="T1"))
    assert c["Degraded"]["status"] == "True" and c["Degraded"]["reason"] == "QuorumAtRisk"
    assert c["Progressing"]["status"] == "False" and c["Ready"]["status"] == "False"


def test_step_is_progressing() -> None:
    facts = world().desired(5).build()
    c = _conds(report.status(facts, d.decide(facts), previous={}, now_iso="T1"))
    assert c["Progressing"]["status"] == "True" and c["Progressing"]["reason"] == "ScaledUp"


def test_no_quorum_is_unavailable() -> None:
    facts = world().member(1, healthy=False).member(2, healthy=False).build()
    c = _conds(report.status(facts, d.decide(facts), previous={}, now_iso="T1"))
    assert c["Available"]["status"] == "False"


def test_transition_times_kept_while_status_unchanged() -> None:
    facts = world().build()
    first = report.status(facts, d.decide(facts), previous={}, now_iso="T1")
    second = report.status(facts, d.decide(facts), previous=first, now_iso="T2")
    assert second == first
    moved = world().desired(5).build()
    third = report.status(moved, d.decide(moved), previous=first, now_iso="T3")
    c = _conds(third)
    assert c["Ready"]["lastTransitionTime"] == "T3" and c["Available"]["lastTransitionTime"] == "T1"


def test_members_known_by_raft_address_are_named_after_their_pod() -> None:
    from kingbus_operator import handlers

    doc = {
        "name": "kb-0",
        "leader": "kb-0",
        "members": [
            {"name": "kb-0", "role": "leader", "healthy": True},
            {"name": "kb-1.kb-peers.ns.svc:7100", "role": "follower", "healthy": True},
            {"name": "10.0.0.9:7100", "role": "follower", "healthy": False},
        ],
        "source": {"host": "", "port": 0, "state": "stopped"},
    }
    fact = handlers._named_by_pod(handlers._raft_fact(doc), "kb", "ns", 3, 3)
    assert [m.name for m in fact.members] == ["kb-0", "kb-1", "10.0.0.9:7100"]
    assert fact.leader == "kb-0" and fact.source.host is None and fact.source.port is None
