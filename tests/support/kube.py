"""A real, throwaway Kubernetes control plane on 127.0.0.1 for the operator's test tier.

Theory of operation
-------------------
The operator's tests need the real API machinery (validation, admission, RBAC, watches,
garbage collection, the Deployment/StatefulSet controllers, the scheduler) but cannot run
containers here. So :func:`control_plane` starts, as plain child processes:

1. ``etcd`` on a free loopback port with a data dir in a temp folder;
2. ``kube-apiserver`` against it, authenticating one static bearer token (group
   ``system:masters``) and signing service-account tokens with a freshly generated key;
3. ``kube-controller-manager`` and ``kube-scheduler`` with a kubeconfig written into the
   temp folder;
4. ``kwok``, which plays the kubelet for Node objects annotated ``kwok.x-k8s.io/node=fake``:
   it marks them Ready, renews their Leases, and moves pods bound to them to Running (and
   deletes pods once they are being deleted). Nothing is ever executed in a "pod".

Each component is started only after the previous one answers its health endpoint; a
component that exits or does not become healthy in time raises :class:`ControlPlaneError`
carrying the tail of its log. Teardown stops the processes by pid in reverse order (SIGTERM,
then SIGKILL after a grace period) and removes the temp folder.

Every listener binds 127.0.0.1. The pod and service IPs the cluster hands out are records in
etcd only: no kube-proxy, CNI or kubelet exists to route them, and they come from the
documentation ranges (RFC 5737) so that nothing real is ever addressed by mistake. Tests must
not dial pod IPs.

Binaries are looked up in ``$KUBEBUILDER_ASSETS`` first (setup-envtest's layout), then in the
cache that ``e2e/kube/build.sh`` fills: ``${KINGBUS_CACHE:-~/.cache/kingbus}/kube/<ver>/bin``.

Run ``python tests/support/kube.py`` for a smoke test: it brings a cluster up, rolls out a
Deployment onto the fake nodes, prints start-up timings, and tears everything down.
``python tests/support/kube.py serve`` keeps one up (printing its KUBECONFIG) until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# Keep in step with KUBE_VERSION in e2e/kube/build.sh.
KUBE_VERSION = "v1.34.4"
REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "e2e" / "kube" / "build.sh"

LOOPBACK = "127.0.0.1"
# RFC 5737 documentation ranges: valid for Endpoints/EndpointSlices (loopback is rejected there),
# never routed, and never dialled by this harness.
POD_CIDR = "198.51.100.1/24"
SERVICE_CIDR = "203.0.113.0/24"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
# kube-controller-manager's hostPath provisioner (enabled so StatefulSet volumeClaimTemplates
# bind) makes one empty folder per volume here; stop() removes this cluster's.
HOSTPATH_PROVISIONER_DIR = Path("/tmp/hostpath_pv")
STORAGE_CLASS = "standard"
KWOK_NODE_LABEL = "type"

BINARY_NAMES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok")


class ControlPlaneError(RuntimeError):
    """A component could not be found, started or made healthy."""


def kube_cache_dir(version: str = KUBE_VERSION) -> Path:
    """Where e2e/kube/build.sh puts the binaries for ``version``."""
    root = os.environ.get("KINGBUS_CACHE") or str(Path.home() / ".cache" / "kingbus")
    return Path(root) / "kube" / version / "bin"


@dataclass(frozen=True)
class KubeBinaries:
    """Absolute paths of the executables a control plane needs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    kwok: Path

    @classmethod
    def locate(cls, version: str = KUBE_VERSION) -> KubeBinaries:
        """Find each binary in $KUBEBUILDER_ASSETS, then in the build cache.

        Raises ControlPlaneError naming what is missing and how to build it.
        """
        search: list[Path] = []
        assets = os.environ.get("KUBEBUILDER_ASSETS")
        if assets:
            search.append(Path(assets))
        search.append(kube_cache_dir(version))
        found: dict[str, Path] = {}
        for name in BINARY_NAMES:
            for folder in search:
                candidate = folder / name
                if candidate.is_file() and os.access(candidate, os.X_OK):
                    found[name] = candidate
                    break
        missing = [name for name in BINARY_NAMES if name not in found]
        if missing:
            places = ", ".join(str(p) for p in search)
            raise ControlPlaneError(
                f"missing Kubernetes binaries {missing} (looked in {places}); run: bash {BUILD_SCRIPT}"
            )
        return cls(
            etcd=found["etcd"],
            kube_apiserver=found["kube-apiserver"],
            kube_controller_manager=found["kube-controller-manager"],
            kube_scheduler=found["kube-scheduler"],
            kubectl=found["kubectl"],
            kwok=found["kwok"],
        )


def build_binaries() -> None:
    """Run e2e/kube/build.sh (a no-op when everything is cached); raise if it fails."""
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed ({result.returncode}):\n{_tail(result.stderr, 40)}")


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago.

    All sockets are held open until every port is chosen, so the kernel cannot hand the same
    port out twice; another process may still take one before our component binds it, which
    then shows up as a start-up failure with "address already in use" in the log tail.
    """
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOOPBACK, 0))
            ports.append(sock.getsockname()[1])
        return ports


def free_port() -> int:
    """One TCP port on 127.0.0.1 that was free a moment ago."""
    return free_ports(1)[0]


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when the test process dies.

    Without this a test runner killed with SIGKILL would leave etcd and the apiserver
    running (they are in their own session). The signal is tied to the thread that forked,
    so start control planes from the main thread (pytest fixtures do).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Component:
    """One child process of the control plane, logging to its own file."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            # A new session keeps a test runner's Ctrl-C from reaching the components before
            # teardown stops them in order.
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def exit_code(self) -> int | None:
        return self.process.poll() if self.process else None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return _tail(self.log_path.read_text(errors="replace"), lines)
        except FileNotFoundError:
            return "(no log)"

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=grace)


def _http_ok(url: str, *, token: str | None = None, context: ssl.SSLContext | None = None) -> bool:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=2.0, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _unverified_tls() -> ssl.SSLContext:
    # Controller-manager and scheduler serve /healthz with a throwaway self-signed cert on
    # loopback; there is nothing to authenticate.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@dataclass
class ControlPlane:
    """A running control plane. Use :func:`control_plane` to get one."""

    workdir: Path
    binaries: KubeBinaries
    token: str
    etcd_url: str = ""
    server: str = ""
    kubeconfig: Path = field(default_factory=Path)
    components: dict[str, Component] = field(default_factory=dict)
    startup_seconds: dict[str, float] = field(default_factory=dict)
    node_names: list[str] = field(default_factory=list)
    extra_args: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """Environment for a child process (e.g. the operator under test) to use this cluster."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def kubectl(
        self, *args: str, input_text: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; raise ControlPlaneError with its output if it fails."""
        argv = [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(
            argv, input=input_text, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result

    def kubectl_json(self, *args: str) -> object:
        """``kubectl get ... -o json`` parsed."""
        parsed: object = json.loads(self.kubectl(*args, "-o", "json").stdout)
        return parsed

    def add_nodes(self, names: Sequence[str], zones: Sequence[str] | None = None) -> None:
        """Create Node objects that kwok manages, and wait until they are Ready.

        ``zones`` (one per name) sets topology.kubernetes.io/zone so tests can exercise
        spread constraints and anti-affinity.
        """
        docs = []
        for index, name in enumerate(names):
            zone = zones[index] if zones else f"zone-{index % 3}"
            docs.append(_node_manifest(name, zone))
        self.kubectl("apply", "-f", "-", input_text="\n---\n".join(docs))
        self.kubectl("wait", "--for=condition=Ready", "--timeout=60s", *(f"node/{n}" for n in names))
        self.node_names.extend(names)

    def stop(self) -> None:
        """Stop every component by pid, newest first, then remove the hostPath folders the
        controller-manager's provisioner made for this cluster's volumes."""
        volume_dirs = self._provisioned_dirs()
        for component in reversed(list(self.components.values())):
            component.stop()
        for path in volume_dirs:
            shutil.rmtree(path, ignore_errors=True)

    def _provisioned_dirs(self) -> list[Path]:
        api = self.components.get("kube-apiserver")
        if api is None or api.exit_code() is not None or not self.kubeconfig.is_file():
            return []
        result = self.kubectl("get", "pv", "-o", "json", check=False, timeout=15)
        if result.returncode != 0:
            return []
        dirs = []
        for pv in json.loads(result.stdout).get("items", []):
            path = Path(pv.get("spec", {}).get("hostPath", {}).get("path", ""))
            # Only what the in-tree provisioner creates; never anything else a PV may name.
            if path.parent == HOSTPATH_PROVISIONER_DIR:
                dirs.append(path)
        return dirs


def _storage_class_manifest() -> dict[str, object]:
    # Immediate binding: the in-tree hostPath provisioner ignores the scheduler's node choice.
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "kubernetes.io/host-path",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        # Lets the API server accept a claim resize (the operator grows claims in place); the
        # hostPath volume itself never changes size, which these tests do not need.
        "allowVolumeExpansion": True,
    }


def _node_manifest(name: str, zone: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {KWOK_NODE_ANNOTATION: "fake"},
                "labels": {
                    KWOK_NODE_LABEL: "kwok",
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "topology.kubernetes.io/zone": zone,
                },
            },
        }
    )


# kwok ships no built-in behaviour: it needs Stage objects saying how to move nodes and pods
# along. These three are the least a controller test needs. The templates are Go templates
# evaluated by kwok, with its helper functions (Now, Quote, NodeConditions, NodeIP, NodeName,
# NodePort, NodeIPWith, PodIPWith).
KWOK_STAGES = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: kingbus-node-ready
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: NotIn
      values: ["True"]
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      {{ range NodeConditions }}
      - type: {{ .type | Quote }}
        status: {{ .status | Quote }}
        reason: {{ .reason | Quote }}
        message: {{ .message | Quote }}
        lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $now | Quote }}
      {{ end }}
      addresses:
      - {type: InternalIP, address: {{ NodeIP | Quote }}}
      - {type: Hostname, address: {{ NodeName | Quote }}}
      daemonEndpoints:
        kubeletEndpoint: {Port: {{ NodePort }}}
      capacity: {cpu: "32", memory: 128Gi, pods: "110"}
      allocatable: {cpu: "32", memory: 128Gi, pods: "110"}
      nodeInfo:
        architecture: amd64
        operatingSystem: linux
        kubeletVersion: kwok
        kubeProxyVersion: kwok
        containerRuntimeVersion: kwok
        kernelVersion: kwok
        osImage: kwok
        machineID: ""
        bootID: ""
        systemUUID: ""
      phase: Running
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: kingbus-pod-running
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: .metadata.deletionTimestamp, operator: DoesNotExist}
    - {key: .status.phase, operator: In, values: [Pending]}
  next:
    statusTemplate: |
      {{ $now := Now }}
      phase: Running
      startTime: {{ $now | Quote }}
      conditions:
      {{ range list "PodReadyToStartContainers" "Initialized" "ContainersReady" "Ready" }}
      - {type: {{ . }}, status: "True", lastTransitionTime: {{ $now | Quote }}}
      {{ end }}
      {{ range .spec.readinessGates }}
      - {type: {{ .conditionType | Quote }}, status: "True", lastTransitionTime: {{ $now | Quote }}}
      {{ end }}
      initContainerStatuses:
      {{ range .spec.initContainers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        ready: true
        restartCount: 0
        state:
          terminated:
            exitCode: 0
            reason: Completed
            startedAt: {{ $now | Quote }}
            finishedAt: {{ $now | Quote }}
      {{ end }}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        ready: true
        started: true
        restartCount: 0
        state:
          running: {startedAt: {{ $now | Quote }}}
      {{ end }}
      {{ with NodeIPWith .spec.nodeName }}
      hostIP: {{ . | Quote }}
      hostIPs: [{ip: {{ . | Quote }}}]
      {{ end }}
      {{ with PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) \
( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
      podIP: {{ . | Quote }}
      podIPs: [{ip: {{ . | Quote }}}]
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: kingbus-pod-gone
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: .metadata.deletionTimestamp, operator: Exists}
  next:
    delete: true
"""


def _write_kubeconfig(path: Path, server: str, ca_file: Path, token: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "kingbus-test", "cluster": {"server": server, "certificate-authority": str(ca_file)}}
        ],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "kingbus-test", "context": {"cluster": "kingbus-test", "user": "admin"}}],
        "current-context": "kingbus-test",
    }
    # kubectl reads JSON kubeconfigs as well as YAML; JSON needs no YAML dependency here.
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


def _write_service_account_keys(private_path: Path, public_path: Path) -> None:
    """An ECDSA P-256 pair: the apiserver signs tokens with the private half and verifies them
    with the public one (it does not accept a PKCS#8 private key as --service-account-key-file).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    private_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    private_path.chmod(0o600)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _etcd_supports_no_fsync(etcd: Path) -> bool:
    # --unsafe-no-fsync exists from etcd 3.5; an envtest folder may carry an older etcd.
    out = subprocess.run([str(etcd), "--version"], capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        if line.startswith("etcd Version:"):
            major, minor = (int(x) for x in line.split(":", 1)[1].strip().split(".")[:2])
            return (major, minor) >= (3, 5)
    return False


def _start(cp: ControlPlane, component: Component, healthy: Callable[[], bool], timeout: float) -> None:
    """Start ``component`` and wait until ``healthy()``; raise with its log tail otherwise."""
    cp.components[component.name] = component
    # Appended last: for these Go (pflag) binaries the last occurrence of a flag wins.
    component.argv.extend(cp.extra_args.get(component.name, ()))
    began = time.monotonic()
    component.start()
    while True:
        if healthy():
            cp.startup_seconds[component.name] = round(time.monotonic() - began, 2)
            return
        code = component.exit_code()
        if code is not None:
            raise ControlPlaneError(
                f"{component.name} exited with code {code} during start-up; last log lines:\n"
                f"{component.log_tail()}"
            )
        if time.monotonic() - began > timeout:
            raise ControlPlaneError(
                f"{component.name} not healthy after {timeout:.0f}s; last log lines:\n{component.log_tail()}"
            )
        time.sleep(0.2)


def _start_etcd(cp: ControlPlane, timeout: float) -> None:
    client, peer = free_ports(2)
    cp.etcd_url = f"http://{LOOPBACK}:{client}"
    argv = [
        str(cp.binaries.etcd),
        "--name=kingbus-test",
        f"--data-dir={cp.workdir / 'etcd'}",
        f"--listen-client-urls={cp.etcd_url}",
        f"--advertise-client-urls={cp.etcd_url}",
        f"--listen-peer-urls=http://{LOOPBACK}:{peer}",
        f"--initial-advertise-peer-urls=http://{LOOPBACK}:{peer}",
        f"--initial-cluster=kingbus-test=http://{LOOPBACK}:{peer}",
        "--log-level=warn",
    ]
    if _etcd_supports_no_fsync(cp.binaries.etcd):
        # The data dies with the test; fsync would only slow every write down.
        argv.append("--unsafe-no-fsync")
    component = Component("etcd", argv, cp.workdir / "etcd.log")
    _start(cp, component, lambda: _http_ok(f"{cp.etcd_url}/health"), timeout)


def _start_apiserver(cp: ControlPlane, timeout: float) -> None:
    port = free_port()
    cert_dir = cp.workdir / "apiserver-certs"
    sa_key = cp.workdir / "service-account.key"
    sa_pub = cp.workdir / "service-account.pub"
    tokens = cp.workdir / "tokens.csv"
    _write_service_account_keys(sa_key, sa_pub)
    tokens.write_text(f'{cp.token},kingbus-admin,kingbus-admin,"system:masters"\n')
    tokens.chmod(0o600)
    cp.server = f"https://{LOOPBACK}:{port}"
    argv = [
        str(cp.binaries.kube_apiserver),
        f"--etcd-servers={cp.etcd_url}",
        f"--bind-address={LOOPBACK}",
        f"--advertise-address={LOOPBACK}",
        f"--secure-port={port}",
        # The apiserver writes a self-signed serving cert (SANs include 127.0.0.1) here; the
        # kubeconfig trusts that file.
        f"--cert-dir={cert_dir}",
        f"--token-auth-file={tokens}",
        "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={sa_pub}",
        f"--service-account-signing-key-file={sa_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # The default reconciler would publish 127.0.0.1 in the default/kubernetes Endpoints,
        # which validation rejects (loopback), logging an error every few seconds.
        "--endpoint-reconciler-type=none",
        "--allow-privileged=true",
        "--profiling=false",
    ]
    component = Component("kube-apiserver", argv, cp.workdir / "kube-apiserver.log")
    ca_context: list[ssl.SSLContext] = []

    def ready() -> bool:
        # The serving cert appears only once the apiserver has started writing it.
        ca_file = cert_dir / "apiserver.crt"
        if not ca_context:
            if not ca_file.exists():
                return False
            with contextlib.suppress(ssl.SSLError):
                ca_context.append(ssl.create_default_context(cafile=str(ca_file)))
            if not ca_context:
                return False
        return _http_ok(f"{cp.server}/readyz", token=cp.token, context=ca_context[0])

    _start(cp, component, ready, timeout)
    cp.kubeconfig = cp.workdir / "kubeconfig"
    _write_kubeconfig(cp.kubeconfig, cp.server, cert_dir / "apiserver.crt", cp.token)


def _start_controller(cp: ControlPlane, name: str, binary: Path, extra: list[str], timeout: float) -> None:
    port = free_port()
    argv = [
        str(binary),
        f"--kubeconfig={cp.kubeconfig}",
        # No --authentication/authorization-kubeconfig: delegated auth would wait for the
        # extension-apiserver-authentication ConfigMap, which an apiserver without a client CA
        # never writes. /healthz is always allowed anonymously, which is all we need.
        "--leader-elect=false",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={port}",
        f"--cert-dir={cp.workdir / (name + '-certs')}",
        *extra,
    ]
    component = Component(name, argv, cp.workdir / f"{name}.log")
    tls = _unverified_tls()
    _start(cp, component, lambda: _http_ok(f"https://{LOOPBACK}:{port}/healthz", context=tls), timeout)


def _start_kwok(cp: ControlPlane, timeout: float) -> None:
    port = free_port()
    stages = cp.workdir / "kwok-stages.yaml"
    stages.write_text(KWOK_STAGES)
    argv = [
        str(cp.binaries.kwok),
        f"--kubeconfig={cp.kubeconfig}",
        f"--config={stages}",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
        f"--server-address={LOOPBACK}:{port}",
        f"--node-ip={LOOPBACK}",
        f"--node-port={port}",
        f"--cidr={POD_CIDR}",
        "--node-lease-duration-seconds=40",
    ]
    component = Component("kwok", argv, cp.workdir / "kwok.log")
    _start(cp, component, lambda: _http_ok(f"http://{LOOPBACK}:{port}/healthz"), timeout)


@contextlib.contextmanager
def control_plane(
    *,
    nodes: int = 2,
    binaries: KubeBinaries | None = None,
    start_timeout: float = 60.0,
    keep_workdir: bool = False,
    extra_args: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[ControlPlane]:
    """Start etcd, kube-apiserver, controller-manager, scheduler and kwok with ``nodes`` fake
    nodes (named kwok-node-0...); yield the running :class:`ControlPlane`; stop it all.

    Suitable as a pytest session fixture body. Raises ControlPlaneError (with the failing
    component's log tail) if anything does not come up within ``start_timeout`` seconds.
    Set ``keep_workdir`` (or KINGBUS_KUBE_KEEP=1) to keep logs and data for inspection.
    ``extra_args`` adds flags per component name ("etcd", "kube-apiserver",
    "kube-controller-manager", "kube-scheduler", "kwok"), e.g.
    ``{"kube-controller-manager": ["--node-monitor-grace-period=10s"]}`` for faster node-loss
    tests.
    """
    bins = binaries or KubeBinaries.locate()
    workdir = Path(tempfile.mkdtemp(prefix="kingbus-kube-"))
    cp = ControlPlane(
        workdir=workdir, binaries=bins, token=os.urandom(24).hex(), extra_args=dict(extra_args or {})
    )
    try:
        _start_etcd(cp, start_timeout)
        _start_apiserver(cp, start_timeout)
        _start_controller(
            cp,
            "kube-controller-manager",
            bins.kube_controller_manager,
            [
                f"--service-account-private-key-file={workdir / 'service-account.key'}",
                f"--root-ca-file={workdir / 'apiserver-certs' / 'apiserver.crt'}",
                "--use-service-account-credentials=false",
                # The default (/usr/libexec/kubernetes/...) would be created on the host.
                f"--flex-volume-plugin-dir={workdir / 'flexvolume'}",
                # Dynamic provisioning for PVCs (no kubelet will ever mount them).
                "--enable-hostpath-provisioner=true",
            ],
            start_timeout,
        )
        _start_controller(cp, "kube-scheduler", bins.kube_scheduler, [], start_timeout)
        _start_kwok(cp, start_timeout)
        cp.kubectl("apply", "-f", "-", input_text=json.dumps(_storage_class_manifest()))
        if nodes:
            began = time.monotonic()
            cp.add_nodes([f"kwok-node-{i}" for i in range(nodes)])
            cp.startup_seconds["nodes-ready"] = round(time.monotonic() - began, 2)
        yield cp
    finally:
        cp.stop()
        if not (keep_workdir or os.environ.get("KINGBUS_KUBE_KEEP") == "1"):
            shutil.rmtree(workdir, ignore_errors=True)


SMOKE_DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "smoke", "namespace": "default"},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "smoke"}},
        "template": {
            "metadata": {"labels": {"app": "smoke"}},
            # Never pulled: kwok only pretends to run it.
            "spec": {"containers": [{"name": "app", "image": "kingbus.invalid/smoke:0"}]},
        },
    },
}


SMOKE_STATEFULSET: list[dict[str, object]] = [
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "smoke-db", "namespace": "default"},
        "spec": {"clusterIP": "None", "selector": {"app": "smoke-db"}, "ports": [{"port": 3306}]},
    },
    {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "smoke-db", "namespace": "default"},
        "spec": {
            "serviceName": "smoke-db",
            "replicas": 2,
            "selector": {"matchLabels": {"app": "smoke-db"}},
            "template": {
                "metadata": {"labels": {"app": "smoke-db"}},
                "spec": {
                    "containers": [
                        {
                            "name": "db",
                            "image": "kingbus.invalid/smoke-db:0",
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ]
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                }
            ],
        },
    },
]


def _smoke_statefulset(cp: ControlPlane) -> list[str]:
    """Roll out a StatefulSet with volumes behind a headless Service; return problems found."""
    began = time.monotonic()
    cp.kubectl(
        "apply",
        "-f",
        "-",
        input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": SMOKE_STATEFULSET}),
    )
    cp.kubectl("rollout", "status", "statefulset/smoke-db", "--timeout=90s", timeout=100)
    print(f"statefulset rolled out in {time.monotonic() - began:.1f}s")
    print(cp.kubectl("get", "pods,pvc", "-l", "app=smoke-db", "-o", "wide").stdout)
    print(cp.kubectl("get", "endpointslices").stdout)
    problems = []
    claims = cp.kubectl_json("get", "pvc")
    assert isinstance(claims, dict)
    phases = [c["status"].get("phase") for c in claims["items"]]
    if phases != ["Bound", "Bound"]:
        problems.append(f"PVC phases {phases}")
    slices = cp.kubectl_json("get", "endpointslices", "-l", "kubernetes.io/service-name=smoke-db")
    assert isinstance(slices, dict)
    addresses = [a for s in slices["items"] for e in s.get("endpoints") or [] for a in e["addresses"]]
    if len(addresses) != 2:
        problems.append(f"headless service endpoints {addresses}")
    return problems


def smoke() -> int:
    """Bring a cluster up, run a Deployment and a StatefulSet on the kwok nodes, print what
    happened, and check that teardown left no process behind."""
    began = time.monotonic()
    with control_plane(nodes=2) as cp:
        up = time.monotonic() - began
        print(f"control plane up in {up:.1f}s: {cp.startup_seconds}")
        print(f"server {cp.server}, kubeconfig {cp.kubeconfig}")
        for name, component in cp.components.items():
            print(f"  {name:<24} pid {component.pid}")
        print(cp.kubectl("version").stdout)
        print(cp.kubectl("get", "nodes", "-o", "wide").stdout)
        rollout = time.monotonic()
        cp.kubectl("apply", "-f", "-", input_text=json.dumps(SMOKE_DEPLOYMENT))
        cp.kubectl("rollout", "status", "deployment/smoke", "--timeout=90s", timeout=100)
        print(f"deployment rolled out in {time.monotonic() - rollout:.1f}s")
        print(cp.kubectl("get", "pods", "-o", "wide").stdout)
        pods = cp.kubectl_json("get", "pods", "-l", "app=smoke")
        assert isinstance(pods, dict)
        placed = [(p["spec"].get("nodeName"), p["status"].get("phase")) for p in pods["items"]]
        bad = [p for p in placed if p[0] not in cp.node_names or p[1] != "Running"]
        if len(placed) != 3 or bad:
            print(f"FAIL: pods not Running on kwok nodes: {placed}", file=sys.stderr)
            return 1
        problems = _smoke_statefulset(cp)
        if problems:
            print(f"FAIL: {problems}", file=sys.stderr)
            return 1
        pids = [c.pid for c in cp.components.values()]
    stopped = time.monotonic()
    alive = [pid for pid in pids if pid is not None and _pid_alive(pid)]
    print(f"torn down; processes still alive: {alive}; total {stopped - began:.1f}s")
    return 1 if alive else 0


def serve() -> int:
    """Keep a cluster up for manual poking until Ctrl-C / SIGTERM."""
    with control_plane(nodes=3) as cp:
        print(f"export KUBECONFIG={cp.kubeconfig}", flush=True)
        print(f"up: {cp.startup_seconds}; Ctrl-C to stop", file=sys.stderr, flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(serve() if sys.argv[1:] == ["serve"] else smoke())
