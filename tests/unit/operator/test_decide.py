"""Table tests of ``decide``: every step, every wait and every refusal, one named case each.

Each case is a :class:`World` (a healthy 3-member cluster, changed as the case needs), the
action type expected, the fields it must carry, and words its message must contain.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from kingbus_operator import crd
from kingbus_operator import decide as d
from kingbus_operator.facts import DesiredSource, PodFact, SourceFact, SourceProbe
from tests.unit.operator.operator_world import UUID_A, UUID_B, World, world

RECREATE = crd.NodeFailurePolicy(action="Recreate", timeout_seconds=60)
SRC_A = SourceFact(host="a.example", port=3306, user="repl", state="streaming")
WANT_B = DesiredSource("b.example", 3306, "repl")
WANT_B_ANY = DesiredSource("b.example", 3306, "repl", allow_divergent=True)


def _five() -> World:
    return world(5).desired(3)


CASES: list[tuple[str, World, type[d.Action], dict[str, Any], str]] = [
    # --- converged, paused, objects
    ("converged", world(), d.Idle, {}, "3 members"),
    (
        "paused-does-nothing-even-with-missing-objects",
        world().spec_with(paused=True).with_(missing=("Service/kb",)),
        d.Hold,
        {},
        "paused",
    ),
    (
        "missing-objects-created",
        world().with_(missing=("Secret/kb-raft", "StatefulSet/kb")),
        d.ApplyObjects,
        {"create": ("Secret/kb-raft", "StatefulSet/kb")},
        "creating",
    ),
    (
        "drifted-objects-updated",
        world().with_(drifted=("StatefulSet/kb",)),
        d.ApplyObjects,
        {"update": ("StatefulSet/kb",)},
        "updating",
    ),
    ("no-statefulset-yet", world().with_(has_sts=False), d.Hold, {}, "StatefulSet"),
    ("no-member-reachable", world().with_(reachable=False), d.Hold, {"degraded": True}, "no member"),
    ("no-leader", world().led_by(None), d.Hold, {"degraded": True}, "no Raft leader"),
    # --- scale up
    ("scale-up-starts-next-pod", world().desired(5), d.ScaleStatefulSet, {"replicas": 4}, "kb-3"),
    (
        "scale-up-waits-for-new-member-to-join-by-itself",
        world().desired(5).sts(4).pod(3).node("node-3"),
        d.Hold,
        {"reason": "MemberJoining", "degraded": False},
        "kb-3 to catch up and join",
    ),
    (
        "scale-up-waits-for-pod-to-run",
        world().desired(5).sts(4).pod(3, running=False, ready=False),
        d.Hold,
        {"degraded": False},
        "start",
    ),
    (
        "scale-up-waits-for-learner-to-catch-up",
        world().desired(5).sts(4).pod(3).node("node-3").member(3, "learner", healthy=True),
        d.Hold,
        {},
        "kb-3 to catch up",
    ),
    (
        "scale-up-waits-for-unhealthy-new-member",
        world().desired(5).sts(4).pod(3).node("node-3").member(3, "follower", healthy=False),
        d.Hold,
        {},
        "catch up",
    ),
    (
        "scale-up-continues-after-catch-up",
        world().desired(5).sts(4).pod(3).node("node-3").member(3),
        d.ScaleStatefulSet,
        {"replicas": 5},
        "kb-4",
    ),
    (
        "scale-up-not-started-while-a-member-is-unhealthy",
        world().member(1, healthy=False).desired(5),
        d.Hold,
        {"reason": "MemberCatchingUp"},
        "kb-1",
    ),
    (
        "single-member-grows-to-two",
        world(1).desired(2),
        d.ScaleStatefulSet,
        {"replicas": 2},
        "kb-1",
    ),
    # --- scale down
    ("scale-down-removes-highest-follower", _five(), d.RemoveMember, {"name": "kb-4"}, "scale to 3"),
    (
        "scale-down-moves-leadership-first",
        _five().led_by(4),
        d.TransferLeadership,
        {"away_from": "kb-4", "to": "kb-0"},
        "before removing",
    ),
    (
        "scale-down-hands-leadership-to-a-ready-member-first",
        _five().led_by(4).pod(0, ready=False),
        d.TransferLeadership,
        {"away_from": "kb-4", "to": "kb-1"},
        "before removing",
    ),
    (
        "scale-down-hands-leadership-to-a-not-ready-member-when-none-is-ready",
        _five().led_by(4).pod(0, ready=False).pod(1, ready=False).pod(2, ready=False).pod(3, ready=False),
        d.TransferLeadership,
        {"away_from": "kb-4", "to": "kb-0"},
        "before removing",
    ),
    ("scale-down-shrinks-after-removal", _five().no_member(4), d.ScaleStatefulSet, {"replicas": 4}, "kb-4"),
    (
        "scale-down-never-re-adds-the-removed-member",
        _five().no_member(4).no_member(3).sts(4),
        d.ScaleStatefulSet,
        {"replicas": 3},
        "kb-3",
    ),
    (
        "scale-down-refused-when-rest-lacks-quorum",
        world().desired(2).member(1, healthy=False),
        d.Refuse,
        {"reason": "QuorumAtRisk"},
        "1 healthy of 2",
    ),
    (
        "stray-member-of-single-member-cluster-removed",
        world(1).member(5),
        d.RemoveMember,
        {"name": "kb-5"},
        "kb-5",
    ),
    (
        "scale-down-no-leader-candidate",
        _five()
        .led_by(4)
        .member(0, healthy=False)
        .member(1, healthy=False)
        .member(2, healthy=False)
        .member(3, healthy=False)
        .led_by(4),
        d.Refuse,
        {"reason": "QuorumAtRisk"},
        "no healthy member",
    ),
    ("stray-member-beyond-statefulset-removed", world().member(7), d.RemoveMember, {"name": "kb-7"}, "kb-7"),
    # --- node loss, policy None
    (
        "node-gone-policy-none-left-alone",
        world().node_gone("node-2").member(2, healthy=False),
        d.Hold,
        {"reason": "NodeLost", "degraded": True},
        "left alone",
    ),
    # --- node loss, policy Recreate
    (
        "node-gone-recreate-removes-member",
        world().spec_with(node_failure=RECREATE).node_gone("node-2").member(2, healthy=False),
        d.RemoveMember,
        {"name": "kb-2"},
        "node node-2 is gone",
    ),
    (
        "node-notready-within-timeout-waits",
        world()
        .spec_with(node_failure=RECREATE)
        .node("node-2", ready=False, down_for=30)
        .member(2, healthy=False),
        d.Hold,
        {"reason": "MemberCatchingUp"},
        "kb-2",
    ),
    (
        "node-notready-past-timeout-removes-member",
        world()
        .spec_with(node_failure=RECREATE)
        .node("node-2", ready=False, down_for=61)
        .member(2, healthy=False),
        d.RemoveMember,
        {"name": "kb-2"},
        "NotReady for more than 60s",
    ),
    (
        "node-notready-but-raft-healthy-is-not-lost",
        world().spec_with(node_failure=RECREATE).node("node-2", ready=False, down_for=600),
        d.Idle,
        {},
        "",
    ),
    (
        "node-loss-refused-when-quorum-at-risk",
        world()
        .spec_with(node_failure=RECREATE)
        .node_gone("node-2")
        .member(2, healthy=False)
        .member(1, healthy=False),
        d.Refuse,
        {"reason": "QuorumAtRisk"},
        "recover the lost member",
    ),
    (
        "lost-leader-waits-for-election",
        world().spec_with(node_failure=RECREATE).node_gone("node-0").member(0, "leader", healthy=False),
        d.Hold,
        {"reason": "NoLeader"},
        "no other member leads",
    ),
    (
        "lost-member-removed-then-node-local-claim-deleted",
        world().spec_with(node_failure=RECREATE).node_gone("node-2").no_member(2).claim(2),
        d.DeleteClaim,
        {"name": "data-kb-2"},
        "lost node node-2",
    ),
    (
        "claim-on-another-node-kept",
        world().spec_with(node_failure=RECREATE).node_gone("node-2").no_member(2).claim(2, node="node-1"),
        d.ForceDeletePod,
        {"name": "kb-2"},
        "stuck",
    ),
    (
        "network-volume-kept",
        world().spec_with(node_failure=RECREATE).node_gone("node-2").no_member(2).claim(2, node_local=False),
        d.ForceDeletePod,
        {"name": "kb-2"},
        "node-2",
    ),
    (
        "terminating-claim-then-pod-force-deleted",
        world().spec_with(node_failure=RECREATE).node_gone("node-2").no_member(2).claim(2, terminating=True),
        d.ForceDeletePod,
        {"name": "kb-2"},
        "node-2",
    ),
    (
        "lost-and-no-member-answers",
        world().spec_with(node_failure=RECREATE).node_gone("node-2").with_(reachable=False),
        d.Hold,
        {"reason": "NoMemberReachable", "degraded": True},
        "lost",
    ),
    (
        "recreated-pod-on-new-node-rejoins-by-itself",
        world().spec_with(node_failure=RECREATE).node_gone("node-2").no_member(2).pod(2, node="node-1"),
        d.Hold,
        {"reason": "MemberJoining"},
        "kb-2",
    ),
    # --- rolling image change
    (
        "rolling-restarts-highest-outdated-follower",
        world()
        .with_(update_revision="rev2")
        .pod(1, revision="rev1")
        .pod(2, revision="rev1")
        .pod(0, revision="rev1"),
        d.DeletePod,
        {"name": "kb-2"},
        "new pod template",
    ),
    (
        "rolling-leader-last-moves-leadership",
        world()
        .with_(update_revision="rev2")
        .pod(0, revision="rev1")
        .pod(1, revision="rev2")
        .pod(2, revision="rev2"),
        d.TransferLeadership,
        {"away_from": "kb-0", "to": "kb-1"},
        "restarting",
    ),
    (
        "rolling-waits-for-unready-pod",
        world().with_(update_revision="rev2").pod(1, revision="rev2", ready=False).pod(2, revision="rev1"),
        d.Hold,
        {"reason": "RollingUpdateWaiting"},
        "healthy",
    ),
    (
        "rolling-waits-for-unhealthy-member",
        world().with_(update_revision="rev2").pod(2, revision="rev1").member(1, healthy=False),
        d.Hold,
        {"reason": "MemberCatchingUp"},
        "kb-1",
    ),
    # --- source
    (
        "source-unchanged",
        world().with_(source=SRC_A, desired_source=DesiredSource("a.example", 3306, "repl")),
        d.Idle,
        {},
        "",
    ),
    (
        "source-unchanged-user-not-reported",
        world().with_(
            source=SourceFact(host="a.example", port=3306, state="streaming"),
            desired_source=DesiredSource("a.example", 3306, "repl"),
        ),
        d.Idle,
        {},
        "",
    ),
    (
        "source-user-changed",
        world().with_(
            source=SRC_A,
            desired_source=DesiredSource("a.example", 3306, "other"),
            probe=SourceProbe("a.example", 3306, gtid_executed=""),
        ),
        d.SetSource,
        {"host": "a.example"},
        "a.example",
    ),
    (
        "source-tls-enabled",
        world().with_(
            source=SourceFact(
                host="a.example", port=3306, user="repl", tls_mode="preferred", state="streaming"
            ),
            desired_source=DesiredSource("a.example", 3306, "repl", tls_mode="verify_ca"),
            probe=SourceProbe("a.example", 3306, gtid_executed=""),
        ),
        d.SetSource,
        {"host": "a.example"},
        "a.example",
    ),
    (
        "source-tls-unchanged",
        world().with_(
            source=SourceFact(
                host="a.example", port=3306, user="repl", tls_mode="verify_ca", state="streaming"
            ),
            desired_source=DesiredSource("a.example", 3306, "repl", tls_mode="verify_ca"),
        ),
        d.Idle,
        {},
        "",
    ),
    (
        "source-first-set",
        world().with_(desired_source=WANT_B, probe=SourceProbe("b.example", 3306, gtid_executed="")),
        d.SetSource,
        {"host": "b.example", "port": 3306},
        "b.example:3306",
    ),
    (
        "source-repoint-superset",
        world().with_(
            source=SRC_A,
            committed=f"{UUID_A}:1-5",
            desired_source=WANT_B,
            probe=SourceProbe("b.example", 3306, f"{UUID_A}:1-9,{UUID_B}:1"),
        ),
        d.SetSource,
        {"host": "b.example"},
        "re-pointing",
    ),
    (
        "source-divergent-refused",
        world().with_(
            source=SRC_A,
            committed=f"{UUID_A}:1-5",
            desired_source=WANT_B,
            probe=SourceProbe("b.example", 3306, f"{UUID_A}:1-3"),
        ),
        d.Refuse,
        {"reason": "SourceDivergent"},
        f"{UUID_A}:4-5",
    ),
    (
        "source-divergent-allowed",
        world().with_(
            source=SRC_A,
            committed=f"{UUID_A}:1-5",
            desired_source=WANT_B_ANY,
            probe=SourceProbe("b.example", 3306, f"{UUID_B}:1"),
        ),
        d.SetSource,
        {"host": "b.example"},
        "b.example",
    ),
    (
        "source-unreachable",
        world().with_(
            source=SRC_A, desired_source=WANT_B, probe=SourceProbe("b.example", 3306, error="refused")
        ),
        d.Hold,
        {"reason": "SourceUnreachable", "degraded": True},
        "refused",
    ),
    (
        "source-not-probed",
        world().with_(source=SRC_A, desired_source=WANT_B),
        d.Hold,
        {"reason": "SourceUnreachable"},
        "not probed",
    ),
    (
        "source-garbage-gtid-set",
        world().with_(
            source=SRC_A,
            desired_source=WANT_B,
            committed=f"{UUID_A}:1",
            probe=SourceProbe("b.example", 3306, "not a gtid set"),
        ),
        d.Hold,
        {"reason": "SourceUnreachable"},
        "unreadable",
    ),
    (
        "source-credentials-missing",
        world().with_(source_problem="Secret 'x' does not exist"),
        d.Hold,
        {"reason": "SourceInvalid", "degraded": True},
        "does not exist",
    ),
    (
        "membership-before-source",
        world().desired(5).with_(desired_source=WANT_B),
        d.ScaleStatefulSet,
        {"replicas": 4},
        "",
    ),
    # --- storage growth (spec.storage.size is 1Gi in these worlds unless changed)
    ("claims-at-size-idle", world().claims_of("1Gi"), d.Idle, {}, ""),
    ("claims-at-size-in-other-units-idle", world().claims_of("1024Mi"), d.Idle, {}, ""),
    ("larger-claims-never-shrunk", world().claims_of("5Gi"), d.Idle, {}, ""),
    (
        "grown-size-expands-every-smaller-claim",
        world().claims_of("1Gi").spec_with(storage=crd.StorageSpec(size="2Gi")).claim(1, requested="2Gi"),
        d.ExpandClaims,
        {"names": ("data-kb-0", "data-kb-2"), "size": "2Gi"},
        "2Gi",
    ),
    (
        "claim-made-later-from-the-old-template-is-grown",
        world()
        .claims_of("2Gi")
        .spec_with(storage=crd.StorageSpec(size="2Gi"))
        .claim(2, requested="1Gi", expandable=True),
        d.ExpandClaims,
        {"names": ("data-kb-2",)},
        "data-kb-2",
    ),
    (
        "growth-refused-when-the-class-cannot-expand",
        world().claims_of("1Gi", expandable=False).spec_with(storage=crd.StorageSpec(size="2Gi")),
        d.Refuse,
        {"reason": "StorageNotExpandable"},
        "allowVolumeExpansion",
    ),
    (
        "terminating-and-unreadable-claims-left-alone",
        world()
        .spec_with(storage=crd.StorageSpec(size="2Gi"))
        .claim(0, node_local=False, requested="1Gi", terminating=True, expandable=True)
        .claim(1, node_local=False, requested="a lot", expandable=True),
        d.Idle,
        {},
        "",
    ),
    (
        "membership-before-storage",
        world().claims_of("1Gi").desired(5, storage=crd.StorageSpec(size="2Gi")),
        d.ScaleStatefulSet,
        {"replicas": 4},
        "",
    ),
]


@pytest.mark.parametrize(("case", "given", "kind", "fields", "words"), CASES, ids=[c[0] for c in CASES])
def test_decide(case: str, given: World, kind: type[d.Action], fields: dict[str, Any], words: str) -> None:
    action = d.decide(given.build())
    assert type(action) is kind, f"{case}: got {action}"
    for key, value in fields.items():
        assert getattr(action, key) == value, f"{case}: {key} of {action}"
    assert words in action.message, f"{case}: {action.message!r}"


def test_every_refusal_reason_is_covered() -> None:
    reasons = {c[3].get("reason") for c in CASES if c[2] is d.Refuse}
    assert reasons == {"QuorumAtRisk", "SourceDivergent", "StorageNotExpandable"}


def test_decide_is_pure_and_deterministic() -> None:
    facts = world().desired(5).build()
    assert d.decide(facts) == d.decide(facts)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 7, 9])
@pytest.mark.parametrize("target", [1, 2, 3, 4, 5, 7, 9])
def test_walk_to_any_size_in_safe_single_steps(size: int, target: int) -> None:
    """Apply decide's steps to a model until Idle: every configuration on the way keeps a
    quorum, members change one at a time, and the walk ends at the target size."""
    w = world(size).desired(target)
    sizes = [size]
    for _ in range(100):
        action = d.decide(w.build())
        if isinstance(action, d.Idle):
            break
        if isinstance(action, d.ScaleStatefulSet):
            w = w.sts(action.replicas)
            if action.replicas > max(w.pods, default=-1):
                w = w.pod(action.replicas - 1).node(f"node-{action.replicas - 1}")
            else:
                w = w.no_pod(action.replicas)
        elif isinstance(action, d.Hold) and action.reason == "MemberJoining":
            # What the started node does by itself: catch up, then get added by the leader.
            w = w.member(int(action.message.split()[2].removeprefix("kb-").rstrip(",")))
        elif isinstance(action, d.RemoveMember):
            assert action.name != w.leader
            w = w.no_member(int(action.name.rsplit("-", 1)[1]))
        elif isinstance(action, d.TransferLeadership):
            w = w.led_by(int(action.to.rsplit("-", 1)[1]))
        else:
            pytest.fail(f"unexpected {action}")
        sizes.append(len(w.members))
    else:
        pytest.fail("did not converge")
    assert len(w.members) == target and w.sts_replicas == target
    assert all(abs(a - b) <= 1 for a, b in itertools.pairwise(sizes))


def _pod(ordinal: int, *, ready: bool, running: bool = True, terminating: bool = False) -> PodFact:
    return PodFact(name=f"kb-{ordinal}", ordinal=ordinal, node=f"n{ordinal}", running=running, ready=ready,
                   terminating=terminating)  # fmt: skip


@pytest.mark.parametrize(
    ("pods", "order"),
    [
        # kb-0's Kubernetes node is lost: it still reads Running, but not Ready. Ask it last.
        ([_pod(0, ready=False), _pod(1, ready=True), _pod(2, ready=True)], [1, 2, 0]),
        ([_pod(0, ready=True), _pod(1, ready=True), _pod(2, ready=True)], [0, 1, 2]),
        ([_pod(2, ready=False), _pod(0, ready=False), _pod(1, ready=True)], [1, 0, 2]),
        # Not running or being deleted: not asked at all.
        (
            [
                _pod(0, ready=True, terminating=True),
                _pod(1, ready=False, running=False),
                _pod(2, ready=False),
            ],
            [2],
        ),
        ([], []),
    ],
)
def test_status_is_asked_of_ready_members_first(pods: list[PodFact], order: list[int]) -> None:
    assert d.status_order(pods) == order
