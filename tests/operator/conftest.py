"""The operator's control-plane tier: a real Kubernetes control plane, the operator running
for real (kopf in-process through ``KopfRunner``), and fake Kingbus nodes at the node-client seam.

* ``kube`` (session): etcd + kube-apiserver + controller-manager + scheduler + kwok with 3
  fake nodes (``tests.support.kube``).  Missing binaries are *built* (``e2e/kube/build.sh``,
  ~5 min cold), never skipped.  The node controller's grace period is shortened so a node
  that stops renewing turns NotReady in seconds.
* ``fake_nodes`` (session): :class:`FakeNodes`, reading pods from that API server.
* ``operator`` (session): the CRD applied, then kopf running ``kingbus_operator.handlers``
  across all namespaces with a 0.5 s resync; the node-client seam points at ``fake_nodes``.
  It runs as the chart would run it: as a ServiceAccount bound to a ClusterRole made of the
  chart's ``files/rbac-rules.yaml`` (so a missing permission fails these tests), with kopf
  peering through the chart's ClusterKopfPeering CRD.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.operator.fake_nodes import FakeNodes, PodLookup
from tests.support import kube as kube_support

# Read by kingbus_operator.handlers at import: reconcile every half second in this tier.
os.environ.setdefault("KINGBUS_OPERATOR_RESYNC_SECONDS", "0.5")

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "crds" / "kingbuscluster.yaml"
CHART = REPO / "charts" / "kingbus-operator"
OPERATOR_NS = "kingbus-system"
OPERATOR_SA = "kingbus-operator"


def _wait_established(cp: kube_support.ControlPlane, name: str) -> None:
    # `kubectl wait` fails outright while the CRD has no conditions yet; poll instead.
    deadline = time.monotonic() + 30
    while True:
        crd = cp.kubectl_json("get", "crd", name)
        assert isinstance(crd, dict)
        conditions = crd.get("status", {}).get("conditions") or []
        if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return
        if time.monotonic() > deadline:
            raise kube_support.ControlPlaneError(f"CRD {name} not established: {conditions}")
        time.sleep(0.2)


def _operator_kubeconfig(cp: kube_support.ControlPlane) -> Path:
    """A kubeconfig for the chart's ServiceAccount, bound to exactly the chart's RBAC rules."""
    rules = yaml.safe_load((CHART / "files" / "rbac-rules.yaml").read_text())
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NS}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": OPERATOR_SA, "namespace": OPERATOR_NS},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": OPERATOR_SA},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": OPERATOR_SA},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": OPERATOR_SA},
            "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SA, "namespace": OPERATOR_NS}],
        },
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "kingbus-operator"}},
    ]
    cp.kubectl("apply", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    token = cp.kubectl("create", "token", OPERATOR_SA, "-n", OPERATOR_NS, "--duration=6h").stdout.strip()
    config = json.loads(cp.kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"token": token}}]
    path = cp.workdir / "operator-kubeconfig"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="session")
def kube() -> Iterator[kube_support.ControlPlane]:
    try:
        kube_support.KubeBinaries.locate()
    except kube_support.ControlPlaneError:
        kube_support.build_binaries()
    extra = {"kube-controller-manager": ["--node-monitor-grace-period=8s"]}
    with kube_support.control_plane(nodes=3, extra_args=extra) as cp:
        cp.kubectl("apply", "-f", str(CRD_FILE))
        cp.kubectl("apply", "-f", str(CHART / "crds" / "kopf-peering.yaml"))
        _wait_established(cp, "kingbusclusters.kingbus.io")
        _wait_established(cp, "clusterkopfpeerings.kopf.dev")
        yield cp


@pytest.fixture(scope="session")
def fake_nodes(kube: kube_support.ControlPlane) -> FakeNodes:
    ca = kube.workdir / "apiserver-certs" / "apiserver.crt"
    return FakeNodes(PodLookup(kube.server, kube.token, str(ca)))


# Module scope, not session: KopfRunner captures the whole process's logging, so kept alive it
# would also collect (and its teardown assert on) tracebacks that later, unrelated test
# modules log on purpose.
@pytest.fixture(scope="module")
def operator(kube: kube_support.ControlPlane, fake_nodes: FakeNodes) -> Iterator[object]:
    from kopf.testing import KopfRunner

    from kingbus_operator import handlers

    previous = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(_operator_kubeconfig(kube))
    handlers.SEAMS.node_client = fake_nodes.client
    runner = KopfRunner(
        ["run", "--peering=kingbus-operator", "--all-namespaces", "-m", "kingbus_operator.handlers"],
        timeout=60,
    )
    try:
        with runner:
            yield runner
    finally:
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous
    assert runner.exception is None, runner.output
    assert "Traceback" not in runner.output, runner.output
