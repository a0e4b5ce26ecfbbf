"""Kingbus on a kind cluster: the operator (installed by the Helm chart) runs a three-member
KingbusCluster of real Kingbus pods on persistent volumes in front of a MySQL 9.7 source, and
a real MySQL 9.7 replica streams from the cluster's Service. Then: a member's pod is
force-deleted, the cluster scales to four and back to three, and the source dies and is
replaced by declaring a new ``spec.source``, all while the replica, never re-pointed, keeps
receiving every transaction.

    bash e2e/kind/run.sh [--keep]

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
POD_SUBNET = "10.244.0.0/16"  # cluster.yaml
SERVICE_SUBNET = "10.96.0.0/16"  # kind's default
STORAGE_CLASS = "kingbus-local"
VOLUMES = 5  # three members, a fourth while scaled up, one spare
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
                self.kubectl("get", "-A", "pods,pvc,kingbusclusters", "-o", "wide", check=False),
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
         "--config", str(ROOT / "e2e/kind/cluster.yaml"), "--wait", "3m"]
    )  # fmt: skip
    try:
        yield kubeconfig
    finally:
        if not keep:
            run([kind, "delete", "cluster", "--name", CLUSTER], check=False)


def node_container() -> str:
    return f"{CLUSTER}-control-plane"


def docker_address(container: str) -> tuple[str, str]:
    """(the container's address, its network's gateway, i.e. this host) on kind's network."""
    raw = run(["docker", "inspect", container, "--format", "{{json .NetworkSettings.Networks}}"])
    network = json.loads(raw)["kind"]
    return network["IPAddress"], network["Gateway"]


@contextmanager
def routes_to_cluster(node_ip: str, keep: bool) -> Iterator[None]:
    """Let this host reach pod and Service addresses through the node (kube-proxy's rules there
    turn a Service address into a pod's), as a client in the cluster's network would."""
    for subnet in (POD_SUBNET, SERVICE_SUBNET):
        run(["ip", "route", "replace", subnet, "via", node_ip])
    try:
        yield
    finally:
        if not keep:
            for subnet in (POD_SUBNET, SERVICE_SUBNET):
                run(["ip", "route", "del", subnet, "via", node_ip], check=False)


def local_volumes(kube: Kube) -> None:
    """Statically provisioned local volumes whose directories belong to root, as a fresh disk's
    root does: the member pods must be able to write them as the image's non-root user."""
    node = node_container()
    docs: list[Obj] = [
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": STORAGE_CLASS},
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer",
        }
    ]
    for i in range(VOLUMES):
        path = f"/var/local-volumes/v{i}"
        run(["docker", "exec", node, "install", "-d", "-o", "root", "-g", "root", "-m", "0755", path])
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"kingbus-local-{i}"},
                "spec": {
                    "capacity": {"storage": "2Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": STORAGE_CLASS,
                    "local": {"path": path},
                    "nodeAffinity": {
                        "required": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
                                    ]
                                }
                            ]
                        }
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
            "nodeFailurePolicy": {"action": "None"},
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


def scenario(kube: Kube, image: str, gateway: str, work: Path) -> None:
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
    finally:
        for server in servers:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default=os.environ.get("KINGBUS_IMAGE", "kingbus:dev"))
    parser.add_argument("--node-image", required=True)
    parser.add_argument("--kind", required=True)
    parser.add_argument("--kubectl", required=True)
    parser.add_argument("--helm", required=True)
    parser.add_argument("--keep", action="store_true", help="leave the kind cluster and routes in place")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kingbus-kind-e2e-"))
    started = time.monotonic()
    with kind_cluster(args.kind, args.node_image, args.keep) as kubeconfig:
        kube = Kube(args.kubectl, args.helm, kubeconfig)
        step(f"loading {args.image} into the node")
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
        local_volumes(kube)
        node_ip, gateway = docker_address(node_container())
        with routes_to_cluster(node_ip, args.keep):
            scenario(kube, args.image, gateway, work)
    step(f"passed in {time.monotonic() - started:.0f} s (scratch directory {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
