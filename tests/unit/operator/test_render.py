"""Rendering: every object owned by the cluster, safe defaults, the start script's per-member
configuration (run for real with /bin/sh), and drift detection that ignores server defaults."""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kingbus_operator import crd, names, render
from tests.unit.operator.operator_world import base_spec

OWNER = render.Owner("kb", "ns", "uid-1")


def inp(spec: crd.ClusterSpec | None = None, *, bootstrap: int = 3, sts: int = 3) -> render.RenderInput:
    return render.RenderInput(OWNER, spec or base_spec(), bootstrap, sts)


def all_objects(i: render.RenderInput) -> list[dict[str, Any]]:
    return [*render.secrets(i, raft_password="p", admin_token="t"), *render.managed_objects(i)]


def test_every_object_is_owned_labelled_and_namespaced() -> None:
    objects = all_objects(inp())
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == [
        "ConfigMap",
        "PodDisruptionBudget",
        "Secret",
        "Secret",
        "Service",
        "Service",
        "Service",
        "StatefulSet",
    ]
    for obj in objects:
        meta = obj["metadata"]
        assert meta["namespace"] == "ns"
        assert meta["labels"]["app.kubernetes.io/instance"] == "kb"
        (ref,) = meta["ownerReferences"]
        assert ref == {
            "apiVersion": "kingbus.io/v1alpha1",
            "kind": "KingbusCluster",
            "name": "kb",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }


def test_secrets_hold_the_given_values_and_are_not_managed_objects() -> None:
    raft, admin = render.secrets(inp(), raft_password="pw", admin_token="tok")
    assert raft["stringData"] == {"password": "pw"} and raft["metadata"]["name"] == "kb-raft"
    assert admin["stringData"] == {"token": "tok"} and admin["metadata"]["name"] == "kb-admin-token"
    assert all(o["kind"] != "Secret" for o in render.managed_objects(inp()))


@pytest.mark.parametrize(
    ("members", "min_available"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (7, 4), (9, 5)]
)
def test_pdb_never_allows_quorum_loss(members: int, min_available: int) -> None:
    pdb = render.pod_disruption_budget(inp(sts=members))
    assert pdb["spec"]["minAvailable"] == min_available
    assert members - min_available < min_available  # the disrupted pods are never a majority


def test_services() -> None:
    peers, client, admin = render.services(inp())
    assert peers["metadata"]["name"] == "kb-peers"
    assert peers["spec"]["clusterIP"] == "None" and peers["spec"]["publishNotReadyAddresses"] is True
    assert [p["port"] for p in client["spec"]["ports"]] == [3306]
    assert [p["port"] for p in admin["spec"]["ports"]] == [9595]
    for svc in (peers, client, admin):
        assert svc["spec"]["selector"] == names.labels("kb")


def test_statefulset_shape() -> None:
    spec = base_spec(
        storage=crd.StorageSpec(size="5Gi", storage_class="fast", delete_claim_on_scale_down=False)
    )
    sts = render.statefulset(inp(spec, sts=4))
    s = sts["spec"]
    assert s["replicas"] == 4  # the decided size, not spec.replicas
    assert s["updateStrategy"] == {"type": "OnDelete"}
    assert s["serviceName"] == "kb-peers"
    assert s["persistentVolumeClaimRetentionPolicy"] == {"whenScaled": "Retain", "whenDeleted": "Retain"}
    (claim,) = s["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    pod = s["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "kingbus:1"
    # The image's non-root user must be able to write a fresh (root-owned) volume.
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"] == render.NODE_UID
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["KB_BOOTSTRAP_REPLICAS"] == "3" and env["KB_PEERS_DOMAIN"] == "kb-peers.ns.svc"
    assert "podAntiAffinity" in pod["affinity"]
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    assert render.statefulset(inp())["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Delete"


def test_scheduling_overrides() -> None:
    custom: dict[str, object] = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}
    }
    spec = base_spec(
        scheduling=crd.SchedulingSpec(
            node_selector={"disk": "ssd"}, tolerations=({"key": "k", "operator": "Exists"},), affinity=custom
        )
    )
    pod = render.pod_template(inp(spec))["spec"]
    assert pod["affinity"] == custom and "topologySpreadConstraints" not in pod
    assert pod["nodeSelector"] == {"disk": "ssd"} and pod["tolerations"] == [
        {"key": "k", "operator": "Exists"}
    ]
    plain = render.pod_template(inp(base_spec(scheduling=crd.SchedulingSpec(spread=False))))["spec"]
    assert "affinity" not in plain and "topologySpreadConstraints" not in plain


def test_replica_users_and_resources() -> None:
    spec = base_spec(replica_users_secret="users", resources={"limits": {"memory": "1Gi"}})
    pod = render.pod_template(inp(spec))["spec"]
    assert {"name": "replica-users", "secret": {"secretName": "users", "defaultMode": 0o400}} in pod[
        "volumes"
    ]
    assert pod["containers"][0]["resources"] == {"limits": {"memory": "1Gi"}}


def test_node_config_has_no_secret_values() -> None:
    text = render.node_config(inp(base_spec(retention_max_bytes=100, retention_max_age_hours=2)))
    assert "retention_bytes: 100" in text and "retention_seconds: 7200" in text
    assert "password_file: /etc/kingbus/secrets/raft/password" in text


def _run_start_script(
    tmp_path: Path,
    hostname: str,
    bootstrap: int,
    users: list[str],
    *,
    founded: bool = False,
    data: bool = False,
) -> dict[str, str]:
    """Run start.sh with a stand-in kingbus-node on PATH that prints its environment."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    fake = bindir / "kingbus-node"
    fake.write_text("#!/bin/sh\nenv | grep '^KINGBUS_'\necho \"ARGS=$*\"\n")
    fake.chmod(0o755)
    users_dir = tmp_path / "users"
    users_dir.mkdir(exist_ok=True)
    for user in users:
        (users_dir / user).write_text("secret")
    script = tmp_path / "start.sh"
    script.write_text(render.START_SCRIPT)
    env = {
        e["name"]: e["value"]
        for e in render.pod_template(inp(bootstrap=bootstrap))["spec"]["containers"][0]["env"]
    }
    config_dir = tmp_path / "config"
    config_dir.mkdir(exist_ok=True)
    cm = render.config_map(render.RenderInput(OWNER, base_spec(), bootstrap, 3, founded))
    for key, value in cm["data"].items():
        (config_dir / key).write_text(value)
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    if data:
        (data_dir / "members.json").write_text("[]")
    env.update(
        {
            "KB_CONFIG_DIR": str(config_dir),
            "KB_DATA_DIR": str(data_dir),
            "KB_REPLICA_USERS_DIR": str(users_dir),
            "HOSTNAME": hostname,
            "PATH": f"{bindir}:{os.environ['PATH']}",
        }
    )
    out = subprocess.run(["/bin/sh", str(script)], env=env, capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines())


def test_start_script_founding_member(tmp_path: Path) -> None:
    got = _run_start_script(tmp_path, "kb-1", 3, ["repl", "cdc"])
    assert got["KINGBUS_NAME"] == "kb-1"
    assert got["KINGBUS_RAFT_ADDRESS"] == "kb-1.kb-peers.ns.svc:7100"
    assert got["KINGBUS_ADMIN_ADVERTISE"] == "http://kb-1.kb-peers.ns.svc:9595"
    assert got["KINGBUS_MYSQL_SERVER_ID"] == "4001"
    assert got["KINGBUS_RAFT_PEERS"] == "kb-0.kb-peers.ns.svc:7100,kb-2.kb-peers.ns.svc:7100"
    assert "KINGBUS_RAFT_JOIN" not in got
    assert got["KINGBUS_MYSQL_USERS"] == f"cdc:{tmp_path}/users/cdc,repl:{tmp_path}/users/repl"
    assert got["ARGS"] == f"--config {tmp_path}/config/kingbus.yaml"


def test_start_script_joining_member(tmp_path: Path) -> None:
    got = _run_start_script(tmp_path, "kb-4", 3, [])
    assert "KINGBUS_RAFT_PEERS" not in got and "KINGBUS_MYSQL_USERS" not in got
    seeds = ["http://kb-admin.ns.svc:9595"] + [f"http://kb-{i}.kb-peers.ns.svc:9595" for i in range(3)]
    assert got["KINGBUS_RAFT_JOIN"] == ",".join(seeds)


@pytest.mark.parametrize(
    ("founded", "data", "mode"),
    [(False, False, "peers"), (False, True, "peers"), (True, True, "peers"), (True, False, "join")],
)
def test_start_script_founder_joins_only_on_an_empty_volume_after_founding(
    tmp_path: Path, founded: bool, data: bool, mode: str
) -> None:
    got = _run_start_script(tmp_path, "kb-2", 3, [], founded=founded, data=data)
    assert ("KINGBUS_RAFT_PEERS" in got) == (mode == "peers")
    assert ("KINGBUS_RAFT_JOIN" in got) == (mode == "join")


def test_founded_is_a_config_map_key_not_a_pod_template_change() -> None:
    before, after = (render.RenderInput(OWNER, base_spec(), 3, 3, founded) for founded in (False, True))
    assert render.statefulset(before) == render.statefulset(after)
    assert "founded" not in render.config_map(before)["data"]
    assert render.config_map(after)["data"]["founded"] == "true"


def test_patch_for_ignores_server_defaults_and_managed_replicas() -> None:
    desired = render.statefulset(inp())
    observed = copy.deepcopy(desired)
    observed["spec"]["replicas"] = 5
    observed["spec"]["revisionHistoryLimit"] = 10
    observed["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = "/dev/termination-log"
    observed["metadata"]["resourceVersion"] = "7"
    assert render.patch_for(desired, observed) is None


def test_patch_for_detects_image_and_label_changes() -> None:
    observed = render.statefulset(inp())
    desired = render.statefulset(inp(base_spec(image="kingbus:2")))
    patch = render.patch_for(desired, observed)
    assert (
        patch is not None and "replicas" not in patch["spec"] and "volumeClaimTemplates" not in patch["spec"]
    )
    assert patch["spec"]["template"]["spec"]["containers"][0]["image"] == "kingbus:2"
    observed["metadata"]["labels"] = {}
    assert "metadata" in (render.patch_for(render.statefulset(inp()), observed) or {})


def test_config_change_changes_the_pod_template_founded_does_not() -> None:
    def digest(i: render.RenderInput) -> str:
        return str(render.pod_template(i)["metadata"]["annotations"]["kingbus.io/config-hash"])

    plain = digest(inp())
    assert digest(inp(base_spec(retention_max_bytes=1))) != plain
    assert digest(render.RenderInput(OWNER, base_spec(), 3, 3, founded=True)) == plain
    assert digest(inp(base_spec(image="other"))) == plain  # the image changes the template itself
