"""A fluent builder of :class:`kingbus_operator.facts.Facts` for table tests of ``decide``.

``world()`` is a healthy, converged 3-member cluster ``kb`` in namespace ``ns`` (leader kb-0,
every pod Running and Ready on its own Ready node).  Each ``with_*``/``*`` method returns a
new builder, so cases read as the difference from that baseline.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from kingbus_operator import crd
from kingbus_operator.facts import (
    ClaimFact,
    DesiredSource,
    Facts,
    KubeNodeFact,
    MemberFact,
    PodFact,
    RaftFact,
    SourceFact,
    SourceProbe,
    StatefulSetFact,
)

CLUSTER = "kb"
NS = "ns"
NOW = 1_000_000.0
UUID_A = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
UUID_B = "4b22fa47-71ca-11e1-9e33-c80aa9429563"


def base_spec(**changes: object) -> crd.ClusterSpec:
    spec = crd.ClusterSpec(image="kingbus:1", storage=crd.StorageSpec(size="1Gi"), replicas=3)
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class World:
    spec: crd.ClusterSpec = field(default_factory=base_spec)
    sts_replicas: int = 3
    update_revision: str | None = "rev1"
    members: dict[str, MemberFact] = field(default_factory=dict)
    leader: str | None = "kb-0"
    pods: dict[int, PodFact] = field(default_factory=dict)
    nodes: dict[str, KubeNodeFact] = field(default_factory=dict)
    claims: dict[int, ClaimFact] = field(default_factory=dict)
    reachable: bool = True
    committed: str = ""
    source: SourceFact = field(default_factory=SourceFact)
    desired_source: DesiredSource | None = None
    probe: SourceProbe | None = None
    source_problem: str | None = None
    missing: tuple[str, ...] = ()
    drifted: tuple[str, ...] = ()
    has_sts: bool = True

    def _with(self, **changes: object) -> World:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def desired(self, replicas: int, **spec_changes: object) -> World:
        return self._with(spec=dataclasses.replace(self.spec, replicas=replicas, **spec_changes))  # type: ignore[arg-type]

    def spec_with(self, **spec_changes: object) -> World:
        return self._with(spec=dataclasses.replace(self.spec, **spec_changes))  # type: ignore[arg-type]

    def sts(self, replicas: int) -> World:
        return self._with(sts_replicas=replicas)

    def member(self, ordinal: int, role: str = "follower", healthy: bool = True) -> World:
        name = f"{CLUSTER}-{ordinal}"
        return self._with(members={**self.members, name: MemberFact(name, role, healthy)})

    def no_member(self, ordinal: int) -> World:
        return self._with(members={k: v for k, v in self.members.items() if k != f"{CLUSTER}-{ordinal}"})

    def led_by(self, ordinal: int | None) -> World:
        members = {
            k: dataclasses.replace(v, role="follower" if v.role == "leader" else v.role)
            for k, v in self.members.items()
        }
        leader = None
        if ordinal is not None:
            leader = f"{CLUSTER}-{ordinal}"
            members[leader] = dataclasses.replace(members[leader], role="leader")
        return self._with(members=members, leader=leader)

    def pod(
        self,
        ordinal: int,
        *,
        node: str | None = None,
        running: bool = True,
        ready: bool = True,
        terminating: bool = False,
        revision: str | None = "rev1",
    ) -> World:
        pod = PodFact(
            name=f"{CLUSTER}-{ordinal}",
            ordinal=ordinal,
            node=node if node is not None else f"node-{ordinal}",
            running=running,
            ready=ready,
            terminating=terminating,
            revision=revision,
        )
        nodes = dict(self.nodes)
        if pod.node is not None and ordinal not in self.pods and pod.node not in nodes:
            nodes[pod.node] = KubeNodeFact(pod.node, True)  # a new pod lands on a Ready node
        return self._with(pods={**self.pods, ordinal: pod}, nodes=nodes)

    def no_pod(self, ordinal: int) -> World:
        return self._with(pods={k: v for k, v in self.pods.items() if k != ordinal})

    def node(self, name: str, *, ready: bool = True, down_for: float | None = None) -> World:
        since = NOW - down_for if down_for is not None else None
        return self._with(nodes={**self.nodes, name: KubeNodeFact(name, ready, since)})

    def node_gone(self, name: str) -> World:
        return self._with(nodes={k: v for k, v in self.nodes.items() if k != name})

    def claim(
        self,
        ordinal: int,
        *,
        node_local: bool = True,
        node: str | None = None,
        terminating: bool = False,
        requested: str | None = None,
        expandable: bool = False,
    ) -> World:
        claim = ClaimFact(
            f"data-{CLUSTER}-{ordinal}", ordinal, node, node_local, terminating, requested, expandable
        )
        return self._with(claims={**self.claims, ordinal: claim})

    def claims_of(self, size: str, *, expandable: bool = True) -> World:
        """Every pod's claim requesting ``size`` (network volumes)."""
        w = self
        for ordinal in self.pods:
            w = w.claim(ordinal, node_local=False, requested=size, expandable=expandable)
        return w

    def with_(self, **changes: object) -> World:
        return self._with(**changes)

    def build(self) -> Facts:
        raft = None
        if self.reachable:
            raft = RaftFact(
                reporter=self.leader or f"{CLUSTER}-0",
                leader=self.leader,
                members=tuple(self.members[k] for k in sorted(self.members)),
                committed_gtid_set=self.committed,
                source=self.source,
            )
        return Facts(
            cluster=CLUSTER,
            namespace=NS,
            generation=1,
            spec=self.spec,
            now=NOW,
            missing=self.missing,
            drifted=self.drifted,
            statefulset=StatefulSetFact(self.sts_replicas, self.update_revision) if self.has_sts else None,
            pods=tuple(self.pods[k] for k in sorted(self.pods)),
            nodes=dict(self.nodes),
            claims=tuple(self.claims[k] for k in sorted(self.claims)),
            raft=raft,
            desired_source=self.desired_source,
            source_problem=self.source_problem,
            source_probe=self.probe,
        )


def world(size: int = 3) -> World:
    w = World(spec=base_spec(replicas=size), sts_replicas=size)
    for i in range(size):
        w = w.member(i, "leader" if i == 0 else "follower").pod(i).node(f"node-{i}")
    return w
