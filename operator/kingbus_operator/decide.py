"""Observed facts -> the one next action.  Pure: no I/O, no clock (``facts.now`` is the time).

Theory of operation
-------------------
A reconcile pass is gather -> :func:`decide` -> act -> report, and then the next pass looks
again.  Doing *one* step per pass and re-observing before the next keeps every step decided on
fresh facts: a scale from 3 to 5 is "raise the StatefulSet to 4", "add member 3", "wait until
it caught up", "raise to 5", ... each a separate pass.

Priorities, first match wins:

1. ``spec.paused`` -> :class:`Hold` (nothing is changed).
2. Rendered objects missing or drifted -> :class:`ApplyObjects`.
3. A member whose Kubernetes node is gone, or NotReady for ``nodeFailurePolicy.timeoutSeconds``,
   and which Raft does not see as healthy: with policy ``None`` -> :class:`Hold` (Degraded,
   left alone); with ``Recreate`` -> :class:`RemoveMember` (only if the others keep quorum,
   else :class:`Refuse`), then :class:`DeleteClaim` if its volume lives on that node, then
   :class:`ForceDeletePod`; the StatefulSet recreates the pod elsewhere, with an empty volume,
   and it joins again by itself (step 6).
4. No reachable member or no leader -> :class:`Hold`.
5. Scale down, for the highest ordinal (or a member beyond the StatefulSet left by an interrupted
   scale-down): :class:`TransferLeadership` away if it leads, :class:`RemoveMember` if the rest
   keep quorum (else :class:`Refuse`), then :class:`ScaleStatefulSet` down by one (the
   StatefulSet's claim retention policy deletes the volume when the spec says so).
6. A running pod that is not a member yet -> :class:`Hold`: a new member joins *by itself*
   (``raft.join``: the node copies the data from its peers, then asks the leader to add it), so
   it only becomes a voter once caught up.  The operator never adds members.
7. A member still catching up (unhealthy or learner) -> :class:`Hold` before any other change.
8. Scale up -> :class:`ScaleStatefulSet` by one, only while every member is healthy.
9. Rolling image change (``OnDelete`` StatefulSet): one outdated pod at a time, leader last
   (leadership moves away first), only while every member is healthy -> :class:`DeletePod`.
10. Source: when ``spec.source`` differs from what the leader streams from, the candidate's
   ``gtid_executed`` must contain the cluster's committed GTID set; if it does not (and
   ``allowDivergent`` is false) -> :class:`Refuse` naming the missing GTIDs; else
   :class:`SetSource`.
11. Storage: claims requesting less than ``spec.storage.size`` -> :class:`ExpandClaims` (the
   StatefulSet's volumeClaimTemplates are immutable, so claims are grown in place), or
   :class:`Refuse` when their StorageClass does not allow volume expansion.
12. Otherwise :class:`Idle`.

Quorum arithmetic: a configuration of ``n`` voters needs ``n // 2 + 1`` healthy ones.  A removal
is allowed only if the healthy members left are a quorum of the configuration left; a new member
is started only while every member is healthy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from kingbus.binlog.gtids import GtidSet
from kingbus_operator import names
from kingbus_operator.facts import DesiredSource, Facts, MemberFact, PodFact, RaftFact, SourceFact
from kingbus_operator.quantity import QuantityError, parse_quantity
from kingbus_operator.render import quorum


@dataclass(frozen=True)
class Action:
    """Base of every decision.  ``reason`` is the Event/condition reason, ``message`` says why."""

    reason: str
    message: str


@dataclass(frozen=True)
class Idle(Action):
    pass


@dataclass(frozen=True)
class Hold(Action):
    """Nothing to do now; wait for the world to move (``degraded`` marks a problem)."""

    degraded: bool = False


@dataclass(frozen=True)
class Refuse(Action):
    """A change the spec asks for is unsafe and will not be done (a Warning Event)."""


@dataclass(frozen=True)
class ApplyObjects(Action):
    create: tuple[str, ...] = ()
    update: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScaleStatefulSet(Action):
    replicas: int = 0


@dataclass(frozen=True)
class RemoveMember(Action):
    name: str = ""


@dataclass(frozen=True)
class TransferLeadership(Action):
    away_from: str = ""
    to: str = ""


@dataclass(frozen=True)
class DeleteClaim(Action):
    name: str = ""


@dataclass(frozen=True)
class ForceDeletePod(Action):
    name: str = ""


@dataclass(frozen=True)
class DeletePod(Action):
    name: str = ""


@dataclass(frozen=True)
class ExpandClaims(Action):
    names: tuple[str, ...] = ()
    size: str = ""


@dataclass(frozen=True)
class SetSource(Action):
    host: str = ""
    port: int = 0


def decide(f: Facts) -> Action:
    """The one next step for the cluster described by ``f`` (see the module docstring)."""
    if f.spec.paused:
        return Hold("Paused", "spec.paused is true; not reconciling")
    if f.missing or f.drifted:
        parts = []
        if f.missing:
            parts.append("creating " + ", ".join(f.missing))
        if f.drifted:
            parts.append("updating " + ", ".join(f.drifted))
        return ApplyObjects("ObjectsApplied", "; ".join(parts), create=f.missing, update=f.drifted)
    sts = f.statefulset
    if sts is None:  # cannot happen after ApplyObjects; kept total for hand-built facts
        return Hold("StatefulSetMissing", "waiting for the StatefulSet")
    lost = _node_loss(f, sts.replicas)
    if lost is not None:
        return lost
    raft = f.raft
    if raft is None:
        return Hold("NoMemberReachable", "no member answers its admin API yet", degraded=sts.replicas > 0)
    if raft.leader is None:
        return Hold("NoLeader", f"{raft.reporter} reports no Raft leader", degraded=True)
    return (
        _membership(f, raft, sts.replicas)
        or _rolling(f, raft)
        or _source(f, raft)
        or _storage(f)
        or _idle(f, raft)
    )


# ---- node loss


def _lost_pods(f: Facts, current: int) -> list[tuple[PodFact, str]]:
    lost = []
    for pod in sorted(f.pods, key=lambda p: p.ordinal):
        if pod.node is None or pod.ordinal >= current:
            continue
        node = f.nodes.get(pod.node)
        if node is None:
            lost.append((pod, f"node {pod.node} is gone"))
        elif not node.ready and node.not_ready_since is not None:
            down_for = f.now - node.not_ready_since
            if down_for >= f.spec.node_failure.timeout_seconds:
                timeout = f.spec.node_failure.timeout_seconds
                lost.append((pod, f"node {pod.node} has been NotReady for more than {timeout}s"))
    healthy = {m.name for m in f.raft.members if m.healthy} if f.raft else set()
    # A member Raft still sees as healthy is not lost, whatever the kubelet's lease says.
    return [(pod, why) for pod, why in lost if pod.name not in healthy]


def _node_loss(f: Facts, current: int) -> Action | None:
    lost = _lost_pods(f, current)
    if not lost:
        return None
    pod, why = lost[0]
    if f.spec.node_failure.action != "Recreate":
        return Hold(
            "NodeLost",
            f"member {pod.name}: {why}; nodeFailurePolicy is None, so it is left alone",
            degraded=True,
        )
    raft = f.raft
    if raft is not None and pod.name in raft.names:
        if raft.leader is None or raft.leader == pod.name:
            return Hold(
                "NoLeader", f"member {pod.name} is lost ({why}) and no other member leads", degraded=True
            )
        refusal = _removal_refused(raft, pod.name, "recover the lost member")
        if refusal:
            return refusal
        return RemoveMember("MemberRemoved", f"removing lost member {pod.name} ({why})", name=pod.name)
    if raft is None:
        return Hold(
            "NoMemberReachable", f"member {pod.name} is lost ({why}) and no member answers", degraded=True
        )
    claim = f.claim(pod.ordinal)
    if (
        claim is not None
        and not claim.terminating
        and claim.node_local
        and claim.local_to_node in (pod.node, None)
    ):
        return DeleteClaim(
            "ClaimDeleted",
            f"deleting {claim.name}: its volume lives on lost node {pod.node}",
            name=claim.name,
        )
    return ForceDeletePod(
        "PodForceDeleted", f"force-deleting {pod.name} stuck on lost node {pod.node}", name=pod.name
    )


# ---- membership and scaling


def _healthy(members: tuple[MemberFact, ...], *, without: str | None = None) -> int:
    return sum(1 for m in members if m.healthy and m.name != without)


def _removal_refused(raft: RaftFact, name: str, purpose: str) -> Refuse | None:
    left = len(raft.members) - 1
    healthy_left = _healthy(raft.members, without=name)
    if left == 0 or healthy_left < quorum(left):
        return Refuse(
            "QuorumAtRisk",
            f"refusing to remove {name} to {purpose}: {healthy_left} healthy of {left} remaining "
            f"members is below the quorum of {quorum(max(left, 1))}",
        )
    return None


def _membership(f: Facts, raft: RaftFact, current: int) -> Action | None:
    cluster = f.cluster
    members = raft.names
    # A started pod joins by itself (the node copies the data from its peers, then asks the
    # leader to add it), so it becomes a voter only once it has caught up; the operator never
    # adds members.  Pods a scale-down is taking away (ordinal >= spec.replicas) are not waited for.
    joining = [
        p.name
        for p in f.pods
        if p.ordinal < min(current, f.spec.replicas)
        and p.running
        and not p.terminating
        and p.name not in members
    ]
    catching_up = [m.name for m in raft.members if not m.healthy or m.role == "learner"]
    desired = f.spec.replicas
    # Members beyond the StatefulSet (an interrupted scale-down) go first, highest ordinal first.
    strays = sorted(
        (m.name for m in raft.members if (names.ordinal(cluster, m.name) or 0) >= current),
        key=lambda n: names.ordinal(cluster, n) or 0,
        reverse=True,
    )
    if desired < current or strays:
        victim = strays[0] if strays else names.member(cluster, current - 1)
        if victim in members:
            if raft.leader == victim:
                target = _transfer_target(raft, f.pods, exclude=victim)
                if target is None:
                    return Refuse(
                        "QuorumAtRisk",
                        f"refusing to scale down: no healthy member can take over from {victim}",
                    )
                return TransferLeadership(
                    "LeaderTransferred",
                    f"moving leadership from {victim} to {target} before removing it",
                    away_from=victim,
                    to=target,
                )
            refusal = _removal_refused(raft, victim, f"scale to {desired}")
            if refusal:
                return refusal
            return RemoveMember("MemberRemoved", f"removing {victim} to scale to {desired}", name=victim)
        if not strays:
            return ScaleStatefulSet(
                "ScaledDown",
                f"{victim} left the Raft group; StatefulSet to {current - 1}",
                replicas=current - 1,
            )
    if joining:
        return Hold("MemberJoining", f"waiting for {', '.join(joining)} to catch up and join the Raft group")
    if catching_up:
        return Hold("MemberCatchingUp", f"waiting for {', '.join(sorted(catching_up))} to catch up")
    if desired > current:
        if len(members) < current:
            return Hold("MemberStarting", f"waiting for members up to ordinal {current - 1} to start")
        return ScaleStatefulSet(
            "ScaledUp",
            f"starting {names.member(cluster, current)} to scale to {desired}",
            replicas=current + 1,
        )
    return None


def status_order(pods: Sequence[PodFact]) -> list[int]:
    """The ordinals whose admin API to ask for the cluster's Raft status, in order: running
    pods that are Ready first, then the other running ones, each by ordinal.

    A pod on a lost Kubernetes node still reads Running (its kubelet is gone) but not Ready;
    asked first (kb-0 always was), it cost every reconcile pass the admin client's timeouts
    and retries before a live member answered."""
    running = [p for p in pods if p.running and not p.terminating]
    return [p.ordinal for p in sorted(running, key=lambda p: (not p.ready, p.ordinal))]


def _transfer_target(raft: RaftFact, pods: Sequence[PodFact], *, exclude: str) -> str | None:
    """A healthy voter other than `exclude`, one whose pod is Ready first: a member that is
    still catching up from its peers is connected (healthy) but not Ready, and its node
    refuses to hand it leadership (409) until it has caught up."""
    ready = {p.name for p in pods if p.ready}
    candidates = sorted(
        (m.name for m in raft.members if m.healthy and m.name != exclude and m.role != "learner"),
        key=lambda name: (name not in ready, name),
    )
    return candidates[0] if candidates else None


# ---- rolling image change


def _rolling(f: Facts, raft: RaftFact) -> Action | None:
    sts = f.statefulset
    if sts is None or sts.update_revision is None:
        return None
    outdated = [p for p in f.pods if p.revision is not None and p.revision != sts.update_revision]
    if not outdated:
        return None
    all_healthy = all(m.healthy for m in raft.members) and all(p.ready for p in f.pods)
    if not all_healthy or len(f.pods) < sts.replicas:
        return Hold("RollingUpdateWaiting", "waiting for every member to be healthy before the next pod")
    followers = [p for p in outdated if p.name != raft.leader]
    if followers:
        pod = max(followers, key=lambda p: p.ordinal)
        return DeletePod("PodRestarted", f"restarting {pod.name} on the new pod template", name=pod.name)
    target = _transfer_target(raft, f.pods, exclude=raft.leader or "")
    if target is None:
        return Hold("RollingUpdateWaiting", "no healthy member to take leadership over", degraded=True)
    return TransferLeadership(
        "LeaderTransferred",
        f"moving leadership from {raft.leader} to {target} before restarting it",
        away_from=raft.leader or "",
        to=target,
    )


# ---- source


def source_differs(have: SourceFact, want: DesiredSource) -> bool:
    """True when the leader streams from somewhere else than ``spec.source`` says.

    The user and the TLS mode are compared when the node reports them (DESIGN's source
    document has host and port only; Kingbus nodes add both).
    """
    return (
        (have.host, have.port) != (want.host, want.port)
        or have.user not in (None, want.user)
        or have.tls_mode not in (None, want.tls_mode)
    )


def _source(f: Facts, raft: RaftFact) -> Action | None:
    if f.source_problem:
        return Hold("SourceInvalid", f.source_problem, degraded=True)
    want = f.desired_source
    if want is None:
        return None
    have = raft.source
    if not source_differs(have, want):
        return None
    probe = f.source_probe
    where = f"{want.host}:{want.port}"
    if probe is None or probe.error is not None or probe.gtid_executed is None:
        error = probe.error if probe else "not probed"
        return Hold("SourceUnreachable", f"cannot read gtid_executed of {where}: {error}", degraded=True)
    try:
        missing = GtidSet.parse(raft.committed_gtid_set).difference(GtidSet.parse(probe.gtid_executed))
    except ValueError as exc:
        return Hold("SourceUnreachable", f"unreadable GTID set from {where}: {exc}", degraded=True)
    if missing and not want.allow_divergent:
        return Refuse(
            "SourceDivergent",
            f"refusing source {where}: its gtid_executed lacks GTIDs the cluster committed: "
            f"{missing.format()} (set spec.source.allowDivergent to accept it)",
        )
    return SetSource(
        "SourceChanged",
        f"re-pointing the leader {raft.leader} to source {where}",
        host=want.host,
        port=want.port,
    )


# ---- storage growth


def _storage(f: Facts) -> Action | None:
    """A larger spec.storage.size grows every existing claim in place (volumeClaimTemplates
    are immutable, so the StatefulSet keeps creating claims of the old size: a claim created
    later is grown on the next pass).  Last in line: a storage change never delays a
    membership, image or source change, and a refusal here blocks nothing else."""
    wanted = parse_quantity(f.spec.storage.size)
    small = [
        c
        for c in f.claims
        if not c.terminating and c.requested is not None and _quantity_or_none(c.requested) < wanted
    ]
    if not small:
        return None
    fixed = [c.name for c in small if not c.expandable]
    if fixed:
        return Refuse(
            "StorageNotExpandable",
            f"spec.storage.size is {f.spec.storage.size} but {', '.join(fixed)} cannot grow: the "
            "StorageClass does not allow volume expansion (allowVolumeExpansion); the claims keep "
            "their size",
        )
    growing = tuple(c.name for c in small)
    return ExpandClaims(
        "ClaimsExpanded",
        f"requesting {f.spec.storage.size} for {', '.join(growing)}",
        names=growing,
        size=f.spec.storage.size,
    )


def _quantity_or_none(text: str) -> Fraction:
    """A claim's request as written by the API server; an unreadable one is never grown."""
    try:
        return parse_quantity(text)
    except QuantityError:
        return Fraction(2**63)


def _idle(f: Facts, raft: RaftFact) -> Action:
    return Idle("Reconciled", f"{len(raft.members)} members, leader {raft.leader}")
