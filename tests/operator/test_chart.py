"""The Helm chart (charts/kingbus-operator) through a real helm and a real API server.

* ``helm lint`` and ``helm lint --strict`` pass.
* ``helm template`` with default values and with overrides renders, and every rendered object
  is accepted by the control plane of ``conftest.kube`` in a server-side dry run, after the
  chart's CRDs (``crds/``) are applied.
* The rendered RBAC, applied for real, lets the operator's ServiceAccount do everything the
  operator does (``kingbus_operator.kubeapi`` through ``handlers``, plus what kopf itself does:
  watching KingbusClusters, finalizers and progress annotations, status, Events, peering) and
  not a list of things it must not (``kubectl auth can-i --as=system:serviceaccount:...``).

helm comes from ``tests.support.helm``: $KINGBUS_HELM, the cache, or built on the spot by
``e2e/helm/build.sh``; never skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from kingbus_operator import kubeapi
from tests.operator.conftest import CHART, _wait_established
from tests.support.helm import Helm, ensure_helm, pinned_version
from tests.support.kube import ControlPlane

Obj = dict[str, Any]
PEERING = "kingbus-operator"


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(ensure_helm(), tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def chart_crds(kube: ControlPlane) -> list[str]:
    """The chart's own crds/ folder applied (conftest applied the repository's copy too)."""
    names = []
    for path in sorted((CHART / "crds").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        kube.kubectl("apply", "-f", str(path))
        names.append(doc["metadata"]["name"])
    for name in names:
        _wait_established(kube, name)
    return names


def render(helm: Helm, release: str, namespace: str, *args: str) -> list[Obj]:
    out = helm.run("template", release, str(CHART), "--namespace", namespace, *args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: list[Obj]) -> dict[str, Obj]:
    kinds: dict[str, Obj] = {}
    for doc in docs:
        assert doc["kind"] not in kinds, f"two {doc['kind']} objects rendered"
        kinds[doc["kind"]] = doc
    return kinds


def as_list(docs: list[Obj]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})


# ------------------------------------------------------------------------- lint


def test_helm_is_the_pinned_release(helm: Helm) -> None:
    version = helm.run("version", "--template", "{{.Version}}").stdout.strip()
    assert version.startswith("v3."), version
    if not os.environ.get("KINGBUS_HELM"):
        assert version == pinned_version()
    # Stamped like upstream's Makefile: unstamped, helm's default Kubernetes version is v1.20
    # and this chart's kubeVersion (>=1.30) would refuse to render.
    out = helm.run("template", "x", str(CHART), "--show-only", "templates/peering.yaml").stdout
    assert "ClusterKopfPeering" in out


def test_lint(helm: Helm) -> None:
    result = helm.run("lint", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout, result.stdout


def test_lint_strict(helm: Helm) -> None:
    result = helm.run("lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout, result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


# --------------------------------------------------------------------- template


OVERRIDES = [
    "--set",
    "image.repository=registry.example.com/team/kingbus",
    "--set",
    "image.tag=1.2.3",
    "--set",
    "image.pullPolicy=Always",
    "--set",
    "replicaCount=3",
    "--set",
    "resyncSeconds=30",
    "--set",
    "livenessPort=9090",
    "--set-json",
    'nodeSelector={"kubernetes.io/os": "linux"}',
    "--set-json",
    'tolerations=[{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}]',
    "--set-json",
    'resources={"requests": {"cpu": "100m", "memory": "200Mi"}, "limits": {"memory": "300Mi"}}',
]

CASES = {
    # name: (release, namespace, helm args, expected image, replicas)
    "defaults": ("kingbus-operator", "chart-defaults", [], "kingbus:0.1.0", 2),
    "overrides": ("kb-ops", "ops-kingbus", OVERRIDES, "registry.example.com/team/kingbus:1.2.3", 3),
}


@pytest.mark.parametrize("case", list(CASES))
def test_template_accepted_by_the_api_server(
    kube: ControlPlane, helm: Helm, chart_crds: list[str], case: str
) -> None:
    release, namespace, args, image, replicas = CASES[case]
    docs = render(helm, release, namespace, *args)
    kinds = by_kind(docs)
    assert set(kinds) == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "ClusterKopfPeering",
    }
    # The pieces fit together: the Deployment runs as the bound ServiceAccount, in the release
    # namespace, with the peering object the chart creates.
    sa, deploy = kinds["ServiceAccount"], kinds["Deployment"]
    binding = kinds["ClusterRoleBinding"]
    assert sa["metadata"]["namespace"] == deploy["metadata"]["namespace"] == namespace
    pod = deploy["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": namespace}
    ]
    assert binding["roleRef"]["name"] == kinds["ClusterRole"]["metadata"]["name"]
    assert deploy["spec"]["replicas"] == replicas
    (container,) = pod["containers"]
    assert container["image"] == image
    assert f"--peering={PEERING}" in kopf_argv(container)
    assert kinds["ClusterKopfPeering"]["metadata"]["name"] == PEERING
    selector = deploy["spec"]["selector"]["matchLabels"]
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    if case == "overrides":
        assert container["imagePullPolicy"] == "Always"
        assert {"name": "KINGBUS_OPERATOR_RESYNC_SECONDS", "value": "30"} in container["env"]
        assert container["ports"] == [{"name": "liveness", "containerPort": 9090}]
        assert "--liveness=http://0.0.0.0:9090/healthz" in kopf_argv(container)
        assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
        assert pod["tolerations"][0]["key"] == "dedicated"
        assert container["resources"]["requests"] == {"cpu": "100m", "memory": "200Mi"}

    created = kube.kubectl("create", "namespace", namespace, check=False).returncode == 0
    try:
        result = kube.kubectl("apply", "--dry-run=server", "-f", "-", input_text=as_list(docs), check=False)
    finally:
        if created:
            kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    assert result.returncode == 0, result.stderr
    accepted = [line for line in result.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == len(docs), result.stdout


def test_another_peering_name_is_rendered_and_passed_to_the_operator(helm: Helm) -> None:
    out = helm.run("template", "x", str(CHART), "--set", "peeringName=other").stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    (peering,) = [d for d in docs if d["kind"] == "ClusterKopfPeering"]
    assert peering["metadata"]["name"] == "other"
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    assert "--peering=other" in kopf_argv(deployment["spec"]["template"]["spec"]["containers"][0])


def kopf_argv(container: dict[str, Any]) -> list[str]:
    """The operator's kopf command line: a shell runs it, to draw the peering priority."""
    shell, flag, script = container["command"]
    assert (shell, flag) == ("/bin/sh", "-c") and script.startswith("exec kopf run ")
    return str(script).split()


def test_each_operator_replica_draws_its_own_peering_priority(helm: Helm) -> None:
    # kopf pauses *every* operator when two peers share a priority, so two replicas of one
    # Deployment must not: run the rendered command with `kopf` replaced by `echo`.
    out = helm.run("template", "x", str(CHART)).stdout
    (deployment,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "Deployment"]
    script = deployment["spec"]["template"]["spec"]["containers"][0]["command"][2]
    drawn = set()
    for _ in range(3):
        argv = subprocess.run(
            ["/bin/sh", "-c", script.replace("exec kopf run", "exec echo", 1)],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        (priority,) = [a.removeprefix("--priority=") for a in argv if a.startswith("--priority=")]
        assert priority.isdigit(), argv
        drawn.add(int(priority))
    assert len(drawn) == 3


# ------------------------------------------------------------------------ install

INSTALL_RELEASE, INSTALL_NAMESPACE = "kb-install", "kingbus-helm-install"


def test_install_upgrade_uninstall(kube: ControlPlane, helm: Helm, chart_crds: list[str]) -> None:
    """helm install --wait for real: the Deployment's pods come up (kwok marks them Running),
    then an upgrade and an uninstall. The ClusterKopfPeering may already exist (the operator
    tier applies it): it is adopted for the release and restored afterwards."""
    peering = kube.kubectl("get", "clusterkopfpeering", PEERING, "-o", "json", check=False)
    existed = peering.returncode == 0
    if existed:
        kube.kubectl(
            "label", "clusterkopfpeering", PEERING, "app.kubernetes.io/managed-by=Helm", "--overwrite"
        )
        kube.kubectl(
            "annotate",
            "clusterkopfpeering",
            PEERING,
            f"meta.helm.sh/release-name={INSTALL_RELEASE}",
            f"meta.helm.sh/release-namespace={INSTALL_NAMESPACE}",
            "--overwrite",
        )
    ns = ["--namespace", INSTALL_NAMESPACE]
    try:
        out = helm.run(
            "install",
            INSTALL_RELEASE,
            str(CHART),
            *ns,
            "--create-namespace",
            "--wait",
            "--timeout=120s",
            kubeconfig=kube.kubeconfig,
            timeout=180,
        ).stdout
        assert "STATUS: deployed" in out, out
        deploy = kube.kubectl_json("get", "deployment", INSTALL_RELEASE, *ns)
        assert isinstance(deploy, dict)
        assert deploy["status"].get("readyReplicas") == 2, deploy["status"]
        pods = kube.kubectl_json("get", "pods", *ns, "-l", f"app.kubernetes.io/instance={INSTALL_RELEASE}")
        assert isinstance(pods, dict)
        assert [p["spec"]["serviceAccountName"] for p in pods["items"]] == [INSTALL_RELEASE] * 2
        assert {p["status"]["phase"] for p in pods["items"]} == {"Running"}

        helm.run(
            "upgrade",
            INSTALL_RELEASE,
            str(CHART),
            *ns,
            "--set",
            "replicaCount=1",
            "--wait",
            "--timeout=120s",
            kubeconfig=kube.kubeconfig,
            timeout=180,
        )
        status = json.loads(
            helm.run("status", INSTALL_RELEASE, *ns, "-o", "json", kubeconfig=kube.kubeconfig).stdout
        )
        assert status["version"] == 2 and status["info"]["status"] == "deployed", status["info"]
        deploy = kube.kubectl_json("get", "deployment", INSTALL_RELEASE, *ns)
        assert isinstance(deploy, dict)
        assert deploy["spec"]["replicas"] == 1
    finally:
        helm.run(
            "uninstall", INSTALL_RELEASE, *ns, "--wait", kubeconfig=kube.kubeconfig, check=False, timeout=180
        )
        kube.kubectl("delete", "namespace", INSTALL_NAMESPACE, "--wait=false", check=False)
        if existed:
            before = json.loads(peering.stdout)["metadata"]
            restored = {
                "apiVersion": "kopf.dev/v1",
                "kind": "ClusterKopfPeering",
                "metadata": {k: before[k] for k in ("name", "labels", "annotations") if k in before},
            }
            kube.kubectl("apply", "-f", "-", input_text=json.dumps(restored))
    for kind in ("clusterrole", "clusterrolebinding"):
        assert kube.kubectl("get", kind, INSTALL_RELEASE, check=False).returncode != 0, f"{kind} left"
    after = kube.kubectl("get", "clusterkopfpeering", PEERING, check=False)
    assert (after.returncode == 0) == existed, after.stderr
    # CRDs from crds/ are never deleted by helm.
    for name in chart_crds:
        kube.kubectl("get", "crd", name)


# -------------------------------------------------------------------------- RBAC

# What the operator does, as (verb, resource[/subresource]). Derived from
# operator/kingbus_operator: kubeapi.Kube's get/list/create/merge_patch/delete as handlers
# calls them, and what kopf does for handlers' @kopf.timer on KingbusClusters with peering.
REQUIRED: list[tuple[str, str]] = [
    # kopf: list+watch KingbusClusters across namespaces; finalizer and progress/diff-base
    # annotations are merge patches; handlers.reconcile_once patches /status.
    ("list", "kingbusclusters.kingbus.io"),
    ("watch", "kingbusclusters.kingbus.io"),
    ("patch", "kingbusclusters.kingbus.io"),
    ("patch", "kingbusclusters.kingbus.io/status"),
    # kopf.event(...) posts core v1 Events.
    ("create", "events"),
    # kopf peering (--peering=kingbus-operator): watches the ClusterKopfPeering, patches itself in.
    ("list", "clusterkopfpeerings.kopf.dev"),
    ("watch", "clusterkopfpeerings.kopf.dev"),
    ("patch", "clusterkopfpeerings.kopf.dev"),
    # handlers.Pass.gather: get each managed object and the generated Secrets; list pods, nodes,
    # PVs and PVCs. _desired_source/_node_action: get the source credentials and CA Secrets.
    ("get", "statefulsets.apps"),
    ("get", "services"),
    ("get", "configmaps"),
    ("get", "secrets"),
    ("get", "poddisruptionbudgets.policy"),
    ("list", "pods"),
    ("list", "nodes"),
    ("list", "persistentvolumes"),
    ("list", "persistentvolumeclaims"),
    ("list", "storageclasses.storage.k8s.io"),
    # handlers.Pass.act/_apply: create and merge-patch managed objects (Secrets only created),
    # scale the StatefulSet, delete PVCs and pods (force or not).
    ("create", "statefulsets.apps"),
    ("create", "services"),
    ("create", "configmaps"),
    ("create", "secrets"),
    ("create", "poddisruptionbudgets.policy"),
    ("patch", "statefulsets.apps"),
    ("patch", "services"),
    ("patch", "configmaps"),
    ("patch", "poddisruptionbudgets.policy"),
    ("delete", "pods"),
    ("delete", "persistentvolumeclaims"),
    # ExpandClaims: grow claims to spec.storage.size.
    ("patch", "persistentvolumeclaims"),
]

DENIED: list[tuple[str, str]] = [
    ("delete", "nodes"),
    ("create", "events.events.k8s.io"),
    ("patch", "nodes"),
    ("list", "secrets"),
    ("watch", "secrets"),
    ("patch", "secrets"),
    ("update", "secrets"),
    ("delete", "secrets"),
    ("get", "pods"),
    ("watch", "pods"),
    ("create", "pods"),
    ("patch", "pods"),
    ("create", "pods/exec"),
    ("delete", "statefulsets.apps"),
    ("delete", "services"),
    ("delete", "configmaps"),
    ("delete", "persistentvolumes"),
    ("patch", "storageclasses.storage.k8s.io"),
    ("patch", "persistentvolumes"),
    ("create", "kingbusclusters.kingbus.io"),
    ("update", "kingbusclusters.kingbus.io"),
    ("delete", "kingbusclusters.kingbus.io"),
    ("delete", "clusterkopfpeerings.kopf.dev"),
    ("create", "deployments.apps"),
    ("create", "namespaces"),
    ("list", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("create", "serviceaccounts/token"),
    ("impersonate", "serviceaccounts"),
    ("get", "*.*"),
]

RBAC_RELEASE, RBAC_NAMESPACE = "chart-rbac", "chart-rbac-ns"
# The operator runs with --all-namespaces: its rights hold in namespaces other than its own.
WORKLOAD_NAMESPACE = "some-tenant"


def test_required_list_covers_every_kind_the_operator_touches() -> None:
    plurals = {plural for _, plural in (*kubeapi.KINDS.values(), *kubeapi.CLUSTER_KINDS.values())}
    listed = {resource.split("/")[0].split(".")[0] for _, resource in REQUIRED}
    assert plurals <= listed, plurals - listed


@pytest.fixture(scope="module")
def operator_account(kube: ControlPlane, helm: Helm, chart_crds: list[str]) -> Iterator[str]:
    """The chart's ServiceAccount, ClusterRole and ClusterRoleBinding applied for real."""
    docs = render(helm, RBAC_RELEASE, RBAC_NAMESPACE)
    rbac = [d for d in docs if d["kind"] in {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"}]
    assert len(rbac) == 3
    kube.kubectl("create", "namespace", RBAC_NAMESPACE)
    kube.kubectl("apply", "-f", "-", input_text=as_list(rbac))
    sa = next(d for d in rbac if d["kind"] == "ServiceAccount")["metadata"]["name"]
    yield f"system:serviceaccount:{RBAC_NAMESPACE}:{sa}"
    for kind in ("clusterrolebinding", "clusterrole"):
        kube.kubectl("delete", kind, RBAC_RELEASE, "--ignore-not-found", check=False)
    kube.kubectl("delete", "namespace", RBAC_NAMESPACE, "--wait=false", check=False)


def can_i(kube: ControlPlane, user: str, verb: str, resource: str, namespace: str) -> bool:
    args = ["auth", "can-i", verb]
    base, _, sub = resource.partition("/")
    args.append(base)
    if sub:
        args.append(f"--subresource={sub}")
    result = kube.kubectl(*args, f"--as={user}", "-n", namespace, check=False)
    answer = result.stdout.strip()
    assert answer in {"yes", "no"}, f"kubectl {' '.join(args)}: {result.stdout}{result.stderr}"
    return answer == "yes"


@pytest.mark.parametrize("namespace", [WORKLOAD_NAMESPACE, RBAC_NAMESPACE])
def test_rbac_allows_everything_the_operator_does(
    kube: ControlPlane, operator_account: str, namespace: str
) -> None:
    missing = [f"{v} {r}" for v, r in REQUIRED if not can_i(kube, operator_account, v, r, namespace)]
    assert not missing, f"{operator_account} may not: {missing}"


@pytest.mark.parametrize("namespace", [WORKLOAD_NAMESPACE, RBAC_NAMESPACE])
def test_rbac_denies_what_the_operator_must_not_do(
    kube: ControlPlane, operator_account: str, namespace: str
) -> None:
    allowed = [f"{v} {r}" for v, r in DENIED if can_i(kube, operator_account, v, r, namespace)]
    assert not allowed, f"{operator_account} may, but should not: {allowed}"
