"""A stateful fake of Kingbus nodes, plugged in at the operator's node-client seam (and only there).

Why a fake: in the control-plane tier pods never run (kwok only writes their status) and pod
IPs are unroutable, so no real kingbus-node can answer.  Everything else the operator does
(Kubernetes API, the MySQL source probe) is real.

What it models, so that an unsafe operator fails the tests instead of passing them:

* A member *process* is up only while its pod exists and is Running in the real API server
  (read through :class:`PodLookup`), and the test has not killed it (:meth:`FakeNodes.kill`,
  e.g. when its node is deleted).  A pod recreated under the same name is a new process: it
  is the same member again (restarted on its volume) unless the old one was killed, in which
  case its data went with the node and it must be removed and re-added.
* The Raft group of a cluster is founded by the pods whose ``KB_BOOTSTRAP_REPLICAS`` env (from
  the rendered StatefulSet) says they are founding members; the lowest running ordinal leads.
* A started member in join mode (as render's start.sh decides it) adds itself through the
  leader, as the real node does after copying the data, unless that would leave no quorum; it
  reports ``learner`` on its first status read, then ``follower``.  The operator never adds.
* ``remove_member`` refuses the leader ("transfer leadership first") and any removal that
  leaves the healthy members short of a quorum; ``transfer_leader`` needs a healthy target.
* Mutations must be sent to the leader's admin URL (the real node would forward; the operator
  is expected to address the leader) and must carry the cluster's admin token.
* Every accepted mutation is appended to :attr:`FakeCluster.calls` together with the
  StatefulSet's ``spec.replicas`` at that moment, so tests can check the order of membership
  changes against the StatefulSet's scaling.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kingbus_operator import nodeclient

_URL = re.compile(
    r"^http://(?P<member>(?P<cluster>[a-z0-9-]+)-(?P<ordinal>\d+))\.(?P=cluster)-peers\.(?P<ns>[a-z0-9-]+)\.svc:9595$"
)


class PodLookup:
    """Reads pods and StatefulSets from the real API server (synchronously, with the test's token)."""

    def __init__(self, server: str, token: str, cafile: str) -> None:
        self.server = server
        self.token = token
        self.context = ssl.create_default_context(cafile=cafile)

    def get(self, path: str) -> dict[str, Any] | None:
        request = urllib.request.Request(
            self.server + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5, context=self.context) as response:
                doc: dict[str, Any] = json.loads(response.read())
                return doc
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def pod(self, ns: str, name: str) -> dict[str, Any] | None:
        return self.get(f"/api/v1/namespaces/{ns}/pods/{name}")

    def statefulset_replicas(self, ns: str, name: str) -> int | None:
        sts = self.get(f"/apis/apps/v1/namespaces/{ns}/statefulsets/{name}")
        return int(sts["spec"]["replicas"]) if sts else None


@dataclass
class Member:
    name: str
    raft: str
    admin: str
    process: str  # pod uid of the process that holds this membership
    status_reads: int = 0
    joined: bool = False  # added after founding (reports learner until read once)


@dataclass
class Call:
    op: str
    name: str
    statefulset_replicas: int | None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeCluster:
    namespace: str
    name: str
    members: dict[str, Member] = field(default_factory=dict)
    leader: str | None = None
    committed_gtid_set: str = ""
    source: dict[str, Any] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    killed: dict[str, str] = field(default_factory=dict)  # member -> pod uid whose process died
    # Pod uids whose process has been a member: a node joins once, on its first start; after a
    # removal it stays out (it does not rejoin by itself).
    joined_processes: set[str] = field(default_factory=set)


class FakeNodes:
    """All fake clusters of a test session; thread-safe (kopf runs in its own thread)."""

    def __init__(self, pods: PodLookup) -> None:
        self.pods = pods
        self.clusters: dict[tuple[str, str], FakeCluster] = {}
        self.lock = threading.RLock()
        self.tokens: dict[str, str] = {}  # namespace/cluster -> expected token (learned from Secrets)

    def client(self, token: str) -> FakeNodeClient:
        """The factory plugged into ``handlers.SEAMS.node_client``."""
        return FakeNodeClient(self, token)

    def cluster(self, ns: str, name: str) -> FakeCluster:
        with self.lock:
            return self.clusters.setdefault((ns, name), FakeCluster(ns, name))

    def kill(self, ns: str, cluster: str, member: str) -> None:
        """The member's process died (its node is gone); a recreated pod starts a new process."""
        with self.lock:
            pod = self.pods.pod(ns, member)
            self.cluster(ns, cluster).killed[member] = pod["metadata"]["uid"] if pod else ""

    # ---- the model

    def _process(self, ns: str, cluster: FakeCluster, member: str) -> str | None:
        """The pod uid of the member's running process, or None if it is not up."""
        pod = self.pods.pod(ns, member)
        if pod is None or (pod.get("status") or {}).get("phase") != "Running":
            return None
        if pod["metadata"].get("deletionTimestamp"):
            return None
        uid = str(pod["metadata"]["uid"])
        if cluster.killed.get(member) == uid:
            return None
        return uid

    def _found(self, ns: str, cluster: FakeCluster) -> None:
        if cluster.members:
            return
        sts = self.pods.get(f"/apis/apps/v1/namespaces/{ns}/statefulsets/{cluster.name}")
        if sts is None:
            return
        env = {e["name"]: e["value"] for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
        founders = [f"{cluster.name}-{i}" for i in range(int(env["KB_BOOTSTRAP_REPLICAS"]))]
        processes = {m: self._process(ns, cluster, m) for m in founders}
        up = [m for m, uid in processes.items() if uid]
        if len(up) < len(founders) // 2 + 1:
            return  # no quorum of founders yet: no cluster
        for m in founders:
            cluster.joined_processes.add(processes[m] or "")
            cluster.members[m] = Member(
                m,
                f"{m}.{cluster.name}-peers.{ns}.svc:7100",
                f"http://{m}.{cluster.name}-peers.{ns}.svc:9595",
                processes[m] or "",
            )
        cluster.leader = up[0]

    def _joins(self, ns: str, cluster: FakeCluster) -> None:
        """What a started kingbus-node in join mode does by itself: catch up, then ask the leader
        to add it.  Join mode is decided as render's start.sh does: an ordinal beyond the founders,
        or any member once the ConfigMap says the group is founded (its volume is new)."""
        if cluster.leader is None or not cluster.members:
            return
        sts = self.pods.get(f"/apis/apps/v1/namespaces/{ns}/statefulsets/{cluster.name}")
        config = self.pods.get(f"/api/v1/namespaces/{ns}/configmaps/{cluster.name}-config")
        if sts is None or config is None:
            return
        env = {e["name"]: e["value"] for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
        founded = (config.get("data") or {}).get("founded") == "true"
        for ordinal in range(int(sts["spec"]["replicas"])):
            name = f"{cluster.name}-{ordinal}"
            if name in cluster.members or not (founded or ordinal >= int(env["KB_BOOTSTRAP_REPLICAS"])):
                continue
            process = self._process(ns, cluster, name)
            if process is None or process in cluster.joined_processes:
                continue
            healthy = sum(1 for m in cluster.members.values() if self._healthy(ns, cluster, m))
            if healthy + 1 < (len(cluster.members) + 1) // 2 + 1:
                continue  # the leader refuses: the new configuration would have no quorum
            cluster.members[name] = Member(
                name,
                f"{name}.{cluster.name}-peers.{ns}.svc:7100",
                f"http://{name}.{cluster.name}-peers.{ns}.svc:9595",
                process,
                joined=True,
            )
            cluster.joined_processes.add(process)
            self._record(ns, cluster, "add", name)

    def _healthy(self, ns: str, cluster: FakeCluster, member: Member) -> bool:
        process = self._process(ns, cluster, member.name)
        if process and process != member.process and member.name not in cluster.killed:
            # The pod was restarted (rolling update) on its own volume: the same member is back.
            member.process = process
            cluster.joined_processes.add(process)
        return bool(member.process) and process == member.process

    def _elect(self, ns: str, cluster: FakeCluster) -> None:
        healthy = [m for m in cluster.members.values() if self._healthy(ns, cluster, m)]
        if cluster.leader in cluster.members and self._healthy(ns, cluster, cluster.members[cluster.leader]):
            return
        if len(healthy) >= len(cluster.members) // 2 + 1:
            cluster.leader = sorted(m.name for m in healthy)[0]
        else:
            cluster.leader = None

    def _address(self, url: str) -> tuple[str, FakeCluster, str]:
        match = _URL.match(url)
        if not match:
            raise nodeclient.NodeUnreachable(f"fake: {url} is not a member admin URL")
        ns, name, member = match["ns"], match["cluster"], match["member"]
        cluster = self.cluster(ns, name)
        return ns, cluster, member

    def status(self, url: str) -> dict[str, Any]:
        with self.lock:
            ns, cluster, me = self._address(url)
            if self._process(ns, cluster, me) is None:
                raise nodeclient.NodeUnreachable(f"fake: {me} is not running")
            self._found(ns, cluster)
            self._elect(ns, cluster)
            self._joins(ns, cluster)
            members = []
            for m in sorted(cluster.members.values(), key=lambda m: m.name):
                healthy = self._healthy(ns, cluster, m)
                role = "leader" if m.name == cluster.leader else "follower"
                if m.joined and m.status_reads == 0:
                    role, healthy = "learner", True
                members.append(
                    {"name": m.name, "raft": m.raft, "admin": m.admin, "role": role, "healthy": healthy}
                )
            for m in cluster.members.values():
                if m.joined:
                    m.status_reads += 1
            in_cluster = me in cluster.members
            return {
                "name": me,
                "role": next((x["role"] for x in members if x["name"] == me), "learner"),
                "term": 1,
                "leader": cluster.leader if in_cluster else None,
                "members": members if in_cluster else [],
                "commit_index": len(cluster.calls),
                "committed_gtid_set": cluster.committed_gtid_set,
                "purged_gtid_set": "",
                "source": {
                    "host": cluster.source.get("host"),
                    "port": cluster.source.get("port"),
                    "user": cluster.source.get("user"),
                    "tls_mode": cluster.source.get("tls_mode"),
                    "state": "streaming" if cluster.source else "stopped",
                    "error": None,
                    "lag_seconds": 0.0 if cluster.source else None,
                },
                "store": {"bytes": 0, "files": 0},
                "replicas": [],
            }

    def _leader_call(self, url: str, token: str) -> tuple[str, FakeCluster]:
        ns, cluster, me = self._address(url)
        if not token:
            raise nodeclient.NodeRefused(401, "missing admin token")
        key = f"{ns}/{cluster.name}"
        if self.tokens.setdefault(key, token) != token:
            raise nodeclient.NodeRefused(401, "invalid admin token")
        if self._process(ns, cluster, me) is None:
            raise nodeclient.NodeUnreachable(f"fake: {me} is not running")
        self._elect(ns, cluster)
        if cluster.leader != me:
            raise nodeclient.NodeRefused(421, f"fake: {me} is not the leader ({cluster.leader})")
        return ns, cluster

    def _record(self, ns: str, cluster: FakeCluster, op: str, name: str, **detail: Any) -> None:
        replicas = self.pods.statefulset_replicas(ns, cluster.name)
        cluster.calls.append(Call(op, name, replicas, detail))

    def remove_member(self, url: str, token: str, name: str) -> None:
        with self.lock:
            ns, cluster = self._leader_call(url, token)
            if name not in cluster.members:
                raise nodeclient.NodeRefused(404, f"{name} is not a member")
            if name == cluster.leader:
                raise nodeclient.NodeRefused(
                    409, "fake: refusing to remove the leader; transfer leadership first"
                )
            rest = [m for m in cluster.members.values() if m.name != name]
            healthy = sum(1 for m in rest if self._healthy(ns, cluster, m))
            if healthy < len(rest) // 2 + 1:
                raise nodeclient.NodeRefused(409, "fake: removal would leave no quorum")
            self._record(ns, cluster, "remove", name)  # before the change: see set_source
            del cluster.members[name]

    def transfer_leader(self, url: str, token: str, to: str) -> None:
        with self.lock:
            ns, cluster = self._leader_call(url, token)
            target = cluster.members.get(to)
            if target is None or not self._healthy(ns, cluster, target):
                raise nodeclient.NodeRefused(409, f"fake: {to} cannot take over")
            self._record(ns, cluster, "transfer", to)  # before the change: see set_source
            cluster.leader = to

    def set_source(self, url: str, token: str, source: nodeclient.SourceRequest) -> None:
        with self.lock:
            ns, cluster = self._leader_call(url, token)
            if not source.password:
                raise nodeclient.NodeRefused(400, "field 'password' is empty")
            # Recorded before the source changes: tests poll `source` without the lock and
            # then count the calls (the other order let one see the new source and a call
            # count without it while `_record` read the StatefulSet; seen once in CI).
            self._record(ns, cluster, "source", source.host, port=source.port)
            cluster.source = {
                "host": source.host,
                "port": source.port,
                "user": source.user,
                "tls_mode": source.tls,
                "tls_ca": source.tls_ca,
            }


class FakeNodeClient:
    """:class:`kingbus_operator.nodeclient.NodeClient` backed by :class:`FakeNodes`."""

    def __init__(self, nodes: FakeNodes, token: str) -> None:
        self.nodes = nodes
        self.token = token

    async def status(self, admin: str) -> Mapping[str, Any]:
        return self.nodes.status(admin)

    async def remove_member(self, admin: str, name: str) -> None:
        self.nodes.remove_member(admin, self.token, name)

    async def transfer_leader(self, admin: str, to: str) -> None:
        self.nodes.transfer_leader(admin, self.token, to)

    async def set_source(self, admin: str, source: nodeclient.SourceRequest) -> None:
        self.nodes.set_source(admin, self.token, source)

    async def close(self) -> None:
        return None


_: type[nodeclient.NodeClient] = FakeNodeClient  # structural check against the seam's protocol
