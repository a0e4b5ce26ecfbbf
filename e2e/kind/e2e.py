"""Kingbus on a kind cluster: the operator (installed by the Helm chart) runs a three-member
KingbusCluster of real Kingbus pods on persistent volumes in front of a MySQL 9.7 source, and
a real MySQL 9.7 replica streams from the cluster's Service. Then: a member's pod is
force-deleted, the cluster scales to four and back to three, the source dies and is replaced
by declaring a new ``spec.source``, and the Kubernetes node of a follower (``--lose
leader``: of the leader) is lost for good (its member is recreated on another node), all
while the replica, never re-pointed, keeps receiving every transaction.

    bash e2e/kind/run.sh [--keep] [--lose follower|leader]

Exit status 0 only if every step did what it says. The kind cluster, the host routes to its
pod and service networks and the MySQL servers are removed at the end (``--keep`` keeps them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kingbus.devenv import mysql
from kingbus.devenv.ports import free_port
from kingbus.devenv.workload import mixed_workload

Obj = dict[str, Any]
ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "kingbus-e2e"
NAMESPACE = "e2e"
OPERATOR_NAMESPACE = "kingbus-system"
SERVICE_SUBNET = "10.96.0.0/16"  # kind's default
STORAGE_CLASS = "kingbus-local"
VOLUMES_PER_WORKER = 3  # room for a fourth member, and for a member recreated after a node loss
NODE_LOSS_TIMEOUT = 15  # nodeFailurePolicy.timeoutSeconds (the schema's minimum is 10)
REPLICA_USER, REPLICA_PASSWORD = "app", "app-secret"
REPL_USER, REPL_PASSWORD = "repl", "replpass"


def step(message: str) -> None:
    print(f"[kind/e2e] {message}", flush=True)


def run(argv: Sequence[str], *, input_text: str | None = None, check: bool = True) -> str:
    done = subprocess.run(list(argv), input=input_text, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def wait(what: str, check: Callable[[], bool], timeout: float, diagnose: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (RuntimeError, OSError, KeyError, ValueError):
            pass  # not there yet (a pod not yet scheduled, an API that is still starting)
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{diagnose()}")
        time.sleep(2)


class Kube:
    """kubectl and helm against the kind cluster, through its own kubeconfig."""

    def __init__(self, kubectl: str, helm: str, kubeconfig: Path) -> None:
        self.kubectl_bin, self.helm_bin, self.kubeconfig = kubectl, helm, kubeconfig

    def kubectl(self, *args: str, input_text: str | None = None, check: bool = True) -> str:
        return run(
            [self.kubectl_bin, "--kubeconfig", str(self.kubeconfig), *args],
            input_text=input_text,
            check=check,
        )

    def helm(self, *args: str) -> str:
        return run([self.helm_bin, "--kubeconfig", str(self.kubeconfig), *args])

    def apply(self, *docs: Obj, namespace: str = NAMESPACE) -> None:
        self.kubectl(
            "apply",
            "-n",
            namespace,
            "-f",
            "-",
            input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(docs)}),
        )

    def get(self, kind: str, name: str, namespace: str = NAMESPACE) -> Obj:
        result: Obj = json.loads(self.kubectl("get", "-n", namespace, kind, name, "-o", "json"))
        return result

    def patch(self, kind: str, name: str, patch: Obj) -> None:
        self.kubectl("patch", "-n", NAMESPACE, kind, name, "--type", "merge", "-p", json.dumps(patch))

    def diagnosis(self) -> str:
        return "\n".join(
            [
                self.kubectl("get", "-A", "nodes,pods,pvc,kingbusclusters", "-o", "wide", check=False),
                self.kubectl("describe", "-n", NAMESPACE, "kingbuscluster", "kb", check=False)[-3000:],
                self.kubectl(
                    "logs", "-n", OPERATOR_NAMESPACE, "deploy/kingbus-operator", "--tail=40", check=False
                ),
            ]
        )


@contextmanager
def kind_cluster(kind: str, node_image: str, keep: bool) -> Iterator[Path]:
    kubeconfig = Path(tempfile.mkdtemp(prefix="kingbus-kind-")) / "kubeconfig"
    run([kind, "delete", "cluster", "--name", CLUSTER], check=False)
    step(f"creating kind cluster {CLUSTER} from {node_image}")
    run(
        [kind, "create", "cluster", "--name", CLUSTER, "--image", node_image, "--kubeconfig", str(kubeconfig),
         "--config", str(ROOT / "e2e/kind/cluster.yaml")]
    )  # fmt: skip
    try:
        yield kubeconfig
    finally:
        if not keep:
            run([kind, "delete", "cluster", "--name", CLUSTER], check=False)


class Node:
    """A kind node: its container (named like the Kubernetes node), address and pod CIDR."""

    def __init__(self, obj: Obj) -> None:
        self.name: str = obj["metadata"]["name"]
        self.ip: str = next(a["address"] for a in obj["status"]["addresses"] if a["type"] == "InternalIP")
        self.pod_cidr: str = obj["spec"]["podCIDR"]
        self.worker = "node-role.kubernetes.io/control-plane" not in obj["metadata"]["labels"]

    def exec(self, *argv: str, input_text: str | None = None) -> str:
        return run(["docker", "exec", "-i", self.name, *argv], input_text=input_text)


def bridge_conflist(pod_cidr: str) -> str:
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "kingbus-bridge",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": pod_cidr}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
                {"type": "loopback"},
            ],
        }
    )


def pod_network(kube: Kube) -> list[Node]:
    """What kindnetd does, whose image cannot be had here: each node gets a bridge network for
    the pod CIDR the control plane allocated it, and a route to every other node's pod CIDR
    through that node. Returns the nodes once all are Ready."""
    nodes: list[Node] = []

    def allocated() -> bool:
        nonlocal nodes
        items = json.loads(kube.kubectl("get", "nodes", "-o", "json"))["items"]
        nodes = [Node(n) for n in items]
        return len(nodes) == 4

    wait("every node's pod CIDR", allocated, 120, kube.diagnosis)
    for node in nodes:
        node.exec("sh", "-c", "mkdir -p /etc/cni/net.d && cat > /etc/cni/net.d/10-kingbus-bridge.conflist",
                  input_text=bridge_conflist(node.pod_cidr))  # fmt: skip
        for other in nodes:
            if other is not node:
                node.exec("ip", "route", "replace", other.pod_cidr, "via", other.ip)
    kube.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=180s")
    return nodes


def kind_gateway(node: Node) -> str:
    """This host's address on kind's Docker network (the network's gateway)."""
    raw = run(["docker", "inspect", node.name, "--format", "{{json .NetworkSettings.Networks}}"])
    gateway: str = json.loads(raw)["kind"]["Gateway"]
    return gateway


@contextmanager
def routes_to_cluster(nodes: Sequence[Node], keep: bool) -> Iterator[None]:
    """Let this host reach pods (through their nodes) and Services (through the control plane,
    whose kube-proxy rules turn a Service address into a pod's), as a client in the cluster's
    network would."""
    control_plane = next(n for n in nodes if not n.worker)
    routes = [(n.pod_cidr, n.ip) for n in nodes] + [(SERVICE_SUBNET, control_plane.ip)]
    for subnet, via in routes:
        run(["ip", "route", "replace", subnet, "via", via])
    try:
        yield
    finally:
        if not keep:
            for subnet, via in routes:
                run(["ip", "route", "del", subnet, "via", via], check=False)


def local_volumes(kube: Kube, nodes: Sequence[Node]) -> None:
    """Statically provisioned local volumes on every worker, whose directories belong to root
    as a fresh disk's root does: the member pods must be able to write them as the image's
    non-root user."""
    docs: list[Obj] = [
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": STORAGE_CLASS},
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer",
        }
    ]
    for node in (n for n in nodes if n.worker):
        for i in range(VOLUMES_PER_WORKER):
            path = f"/var/local-volumes/v{i}"
            node.exec("install", "-d", "-o", "root", "-g", "root", "-m", "0755", path)
            on_node = {"key": "kubernetes.io/hostname", "operator": "In", "values": [node.name]}
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": f"{node.name}-v{i}"},
                    "spec": {
                        "capacity": {"storage": "2Gi"},
                        "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Retain",
                        "storageClassName": STORAGE_CLASS,
                        "local": {"path": path},
                        "nodeAffinity": {
                            "required": {"nodeSelectorTerms": [{"matchExpressions": [on_node]}]}
                        },
                    },
                }
            )
    kube.apply(*docs, namespace="default")


def cluster_resource(source: mysql.MySQLServer, replicas: int, image: str) -> Obj:
    return {
        "apiVersion": "kingbus.io/v1alpha1",
        "kind": "KingbusCluster",
        "metadata": {"name": "kb"},
        "spec": {
            "replicas": replicas,
            "image": image,
            "imagePullPolicy": "Never",  # loaded into the node by `kind load`
            "storage": {"size": "1Gi", "storageClassName": STORAGE_CLASS},
            "source": {
                "host": source.host,
                "port": source.port,
                "credentialsSecret": {"name": "source-creds"},
            },
            "replicaUsers": {"secretName": "replica-users"},
            "nodeFailurePolicy": {"action": "Recreate", "timeoutSeconds": NODE_LOSS_TIMEOUT},
        },
    }


def member_status(kube: Kube, member: str) -> Obj:
    ip = kube.get("pod", member)["status"]["podIP"]
    with urllib.request.urlopen(f"http://{ip}:9595/status", timeout=5) as response:
        status: Obj = json.load(response)
    return status


def wait_members_committed(
    kube: Kube, members: int, gtid_set: str, source: mysql.MySQLServer, timeout: float
) -> None:
    """The cluster is Ready with ``members`` members and every member committed ``gtid_set``."""

    def done() -> bool:
        status = kube.get("kingbuscluster", "kb").get("status", {})
        conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
        if conditions.get("Ready") != "True" or status.get("memberSummary") != f"{members}/{members}":
            return False
        names = [m["name"] for m in status.get("members", [])]
        return len(names) == members and all(
            source.gtid_subset(gtid_set, member_status(kube, n)["committed_gtid_set"])
            and source.gtid_subset(member_status(kube, n)["committed_gtid_set"], gtid_set)
            for n in names
        )

    wait(f"{members} Ready members with committed set {gtid_set}", done, timeout, kube.diagnosis)


def scenario(kube: Kube, image: str, gateway: str, work: Path, lose: str) -> None:
    tree = mysql.provision()
    source = mysql.MySQLServer(tree, work / "source", port=free_port(), server_id=1)
    standby = mysql.MySQLServer(tree, work / "standby", port=free_port(), server_id=2)
    replica = mysql.MySQLServer(tree, work / "replica", port=free_port(), server_id=3)
    # The sources listen on kind's network (its gateway is this host), where the pods reach them.
    source.host = standby.host = gateway
    servers = (source, standby, replica)
    try:
        for server in servers:
            server.start()
        source.create_replication_user(REPL_USER, REPL_PASSWORD)
        standby.replicate_from(source.host, source.port, user=REPL_USER, password=REPL_PASSWORD)
        with source.connect() as conn:
            mixed_workload(conn, transactions=200, seed=1, database="w1")

        kube.kubectl("create", "namespace", NAMESPACE)
        kube.apply(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "source-creds"},
             "stringData": {"user": REPL_USER, "password": REPL_PASSWORD}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "replica-users"},
             "stringData": {REPLICA_USER: REPLICA_PASSWORD}},
            cluster_resource(source, 3, image),
        )  # fmt: skip
        wait_members_committed(kube, 3, source.gtid_executed(), source, timeout=300)
        step(f"3 member pods Ready on local volumes; each committed the source's {source.gtid_executed()}")

        service_ip = kube.get("service", "kb")["spec"]["clusterIP"]
        replica.replicate_from(service_ip, 3306, user=REPLICA_USER, password=REPLICA_PASSWORD)
        replica.wait_replica_caught_up(source.gtid_executed(), timeout=120)
        step(f"a MySQL 9.7 replica of Service kb ({service_ip}:3306) caught up")

        kube.kubectl("delete", "pod", "-n", NAMESPACE, "kb-1", "--grace-period=0", "--force")
        with source.connect() as conn:
            mixed_workload(conn, transactions=100, seed=2, database="w2")
        wait_members_committed(kube, 3, source.gtid_executed(), source, timeout=300)
        replica.wait_replica_caught_up(source.gtid_executed(), timeout=120)
        step("kb-1 force-deleted during writes: recreated on its volume, caught up; so did the replica")

        kube.patch("kingbuscluster", "kb", {"spec": {"replicas": 4}})
        with source.connect() as conn:
            mixed_workload(conn, transactions=50, seed=3, database="w3")
        wait_members_committed(kube, 4, source.gtid_executed(), source, timeout=300)
        step("scaled to 4: kb-3 joined the Raft group from an empty volume and caught up")
        kube.patch("kingbuscluster", "kb", {"spec": {"replicas": 3}})
        wait_members_committed(kube, 3, source.gtid_executed(), source, timeout=300)
        members = [m["name"] for m in member_status(kube, "kb-0")["members"]]
        assert members == ["kb-0", "kb-1", "kb-2"], f"Raft members after scaling down: {members}"
        step("scaled back to 3: kb-3 left the Raft group")

        standby.wait_replica_caught_up(source.gtid_executed(), timeout=120)
        source.kill9()
        standby.execute("STOP REPLICA")
        standby.execute("RESET REPLICA ALL")
        kube.patch("kingbuscluster", "kb", {"spec": {"source": {"host": standby.host, "port": standby.port}}})
        with standby.connect() as conn:
            mixed_workload(conn, transactions=100, seed=4, database="w4")
        wait_members_committed(kube, 3, standby.gtid_executed(), standby, timeout=300)
        replica.wait_replica_caught_up(standby.gtid_executed(), timeout=120)
        step("source killed, spec.source re-pointed to the promoted standby: its new transactions "
             "reached every member and the replica, which was never re-pointed")  # fmt: skip

        lose_a_node(kube, standby, replica, lose)
    finally:
        for server in servers:
            server.stop()


def lose_a_node(kube: Kube, source: mysql.MySQLServer, replica: mysql.MySQLServer, whose: str) -> None:
    """The Kubernetes node of the leader (or of a follower) is killed and never comes back:
    once it has been NotReady for nodeFailurePolicy.timeoutSeconds, the operator removes the
    member from Raft (after the two others elected a leader, if it was the leader) and has it
    recreated on another node, from an empty volume, where it rejoins and catches up."""
    leader = kube.get("kingbuscluster", "kb")["status"]["leader"]
    victim = leader if whose == "leader" else next(m for m in ("kb-0", "kb-1", "kb-2") if m != leader)
    lost = kube.get("pod", victim)["spec"]["nodeName"]
    on_lost = [m for m in ("kb-0", "kb-1", "kb-2") if kube.get("pod", m)["spec"]["nodeName"] == lost]
    assert on_lost == [victim], f"members on {lost}: {on_lost} (losing it would lose quorum)"
    run(["docker", "kill", lost])
    lost_at = time.monotonic()
    with source.connect() as conn:
        mixed_workload(conn, transactions=100, seed=5, database="w5")

    def elsewhere() -> bool:
        pod = kube.get("pod", victim)
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])
        )
        return pod["spec"].get("nodeName") not in (None, lost) and ready

    wait(f"{victim} Ready on a node other than {lost}", elsewhere, 600, kube.diagnosis)
    wait_members_committed(kube, 3, source.gtid_executed(), source, timeout=300)
    replica.wait_replica_caught_up(source.gtid_executed(), timeout=120)
    now_on = kube.get("pod", victim)["spec"]["nodeName"]
    took = time.monotonic() - lost_at
    after = kube.get("kingbuscluster", "kb")["status"]["leader"]
    step(
        f"node {lost} killed for good with the {whose} {victim} on it (leader now {after}): {victim} "
        f"recreated on {now_on} from an empty volume after {took:.0f} s, caught up; so did the replica"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default=os.environ.get("KINGBUS_IMAGE", "kingbus:dev"))
    parser.add_argument("--node-image", required=True)
    parser.add_argument("--kind", required=True)
    parser.add_argument("--kubectl", required=True)
    parser.add_argument("--helm", required=True)
    parser.add_argument("--keep", action="store_true", help="leave the kind cluster and routes in place")
    parser.add_argument(
        "--lose",
        choices=("leader", "follower"),
        default="follower",
        help="whose Kubernetes node is lost at the end (leader: see the open defect in e2e/kind/README.md)",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kingbus-kind-e2e-"))
    started = time.monotonic()
    with kind_cluster(args.kind, args.node_image, args.keep) as kubeconfig:
        kube = Kube(args.kubectl, args.helm, kubeconfig)
        nodes = pod_network(kube)
        step(
            f"{len(nodes)} nodes Ready, each with a bridge network for its pod CIDR and routes to the others"
        )
        step(f"loading {args.image} into the nodes")
        run([args.kind, "load", "docker-image", args.image, "--name", CLUSTER])
        repository, _, tag = args.image.rpartition(":")
        kube.helm(
            "install", "kingbus-operator", str(ROOT / "charts/kingbus-operator"),
            "--namespace", OPERATOR_NAMESPACE, "--create-namespace", "--wait", "--timeout", "3m",
            "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
            "--set", "image.pullPolicy=Never",
        )  # fmt: skip
        kube.kubectl(
            "rollout", "status", "-n", OPERATOR_NAMESPACE, "deployment/kingbus-operator", "--timeout=120s"
        )
        step("operator installed by the Helm chart (CRDs, RBAC, Deployment), its pods Ready")
        local_volumes(kube, nodes)
        with routes_to_cluster(nodes, args.keep):
            scenario(kube, args.image, kind_gateway(nodes[0]), work, args.lose)
    step(f"passed in {time.monotonic() - started:.0f} s (scratch directory {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
