"""What one reconcile pass observed, as frozen values: the only input of ``decide``.

``handlers.gather`` fills these from the Kubernetes API, the nodes' admin API (through
``nodeclient``) and, when the source is to change, the new source (through ``sourceprobe``).
Nothing here does I/O; tests build facts by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kingbus_operator import crd


@dataclass(frozen=True)
class PodFact:
    name: str
    ordinal: int
    node: str | None  # None while unscheduled
    running: bool
    ready: bool
    terminating: bool = False
    revision: str | None = None  # controller-revision-hash label


@dataclass(frozen=True)
class KubeNodeFact:
    name: str
    ready: bool
    # Epoch seconds of the Ready condition's last transition (when it stopped being True).
    not_ready_since: float | None = None


@dataclass(frozen=True)
class ClaimFact:
    name: str
    ordinal: int
    # The node the bound volume lives on, when the volume is node-local (hostPath, local, or a
    # PV whose node affinity pins one hostname); None for network volumes that can follow the pod.
    local_to_node: str | None
    node_local: bool = False
    terminating: bool = False
    requested: str | None = None  # spec.resources.requests.storage, as written
    # Whether its StorageClass has allowVolumeExpansion: true (False when it has no class or
    # the class is gone: the API server would refuse the resize).
    expandable: bool = False


@dataclass(frozen=True)
class StatefulSetFact:
    replicas: int
    update_revision: str | None = None


@dataclass(frozen=True)
class MemberFact:
    name: str
    role: str  # leader | follower | candidate | learner
    healthy: bool


@dataclass(frozen=True)
class SourceFact:
    host: str | None = None
    port: int | None = None
    user: str | None = None
    tls_mode: str | None = None  # as the node reports it; None from nodes that do not
    state: str = "stopped"
    error: str | None = None
    lag_seconds: float | None = None


@dataclass(frozen=True)
class RaftFact:
    """The cluster as one reachable member reported it (GET /status)."""

    reporter: str
    leader: str | None
    members: tuple[MemberFact, ...]
    committed_gtid_set: str = ""
    source: SourceFact = SourceFact()
    connected_replicas: int = 0

    def member(self, name: str) -> MemberFact | None:
        return next((m for m in self.members if m.name == name), None)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(m.name for m in self.members)


@dataclass(frozen=True)
class DesiredSource:
    """spec.source with the user resolved from its Secret (the password never enters facts)."""

    host: str
    port: int
    user: str
    allow_divergent: bool = False
    tls_mode: str = "preferred"  # "verify_ca" when spec.source.tls.enabled (with its CA)


@dataclass(frozen=True)
class SourceProbe:
    """What the candidate source said about itself."""

    host: str
    port: int
    gtid_executed: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Facts:
    cluster: str
    namespace: str
    generation: int
    spec: crd.ClusterSpec
    now: float
    missing: tuple[str, ...] = ()  # "Kind/name" of rendered objects that do not exist
    drifted: tuple[str, ...] = ()  # "Kind/name" of objects that differ from their rendering
    statefulset: StatefulSetFact | None = None
    pods: tuple[PodFact, ...] = ()
    nodes: Mapping[str, KubeNodeFact] = field(default_factory=dict)
    claims: tuple[ClaimFact, ...] = ()
    raft: RaftFact | None = None
    desired_source: DesiredSource | None = None
    source_problem: str | None = None  # e.g. the credentials Secret is missing
    source_probe: SourceProbe | None = None

    def pod(self, ordinal: int) -> PodFact | None:
        return next((p for p in self.pods if p.ordinal == ordinal), None)

    def claim(self, ordinal: int) -> ClaimFact | None:
        return next((c for c in self.claims if c.ordinal == ordinal), None)
