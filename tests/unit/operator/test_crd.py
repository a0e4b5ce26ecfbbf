"""parse_spec: schema defaults are filled the same way, and what a schema cannot catch is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kingbus_operator import crd

CRD_FILE = Path(__file__).resolve().parents[3] / "crds" / "kingbuscluster.yaml"


def test_minimal_spec_defaults() -> None:
    spec = crd.parse_spec({"image": "kingbus:1", "storage": {"size": "1Gi"}})
    assert spec.replicas == 3 and spec.source is None and not spec.paused
    assert spec.node_failure == crd.NodeFailurePolicy("None", 300)
    assert spec.scheduling.spread and spec.storage.delete_claim_on_scale_down


def test_full_spec() -> None:
    spec = crd.parse_spec(
        {
            "image": "kingbus:1",
            "replicas": 5,
            "storage": {"size": "1Gi", "storageClassName": "fast"},
            "source": {
                "host": "db",
                "port": 3307,
                "credentialsSecret": {"name": "s", "userKey": "u"},
                "startGtidSet": "x:1",
                "allowDivergent": True,
                "tls": {"enabled": True, "caSecretName": "ca"},
            },
            "replicaUsers": {"secretName": "users"},
            "nodeFailurePolicy": {"action": "Recreate", "timeoutSeconds": 30},
            "paused": True,
            "retention": {"maxBytes": 10, "maxAgeHours": 1},
        }
    )
    assert spec.source == crd.SourceSpec(
        "db", 3307, crd.SecretKeyRef("s", "u", "password"), True, "ca", "x:1", False, True
    )
    assert spec.node_failure == crd.NodeFailurePolicy("Recreate", 30)
    assert spec.replica_users_secret == "users" and spec.paused and spec.retention_max_bytes == 10


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"storage": {"size": "1Gi"}}, "spec.image"),
        ({"image": "i"}, "spec.storage.size"),
        ({"image": "i", "storage": {"size": "1Gi"}, "replicas": "3"}, "spec.replicas must be int"),
        ({"image": "i", "storage": {"size": "1Gi"}, "replicas": 0}, "between 1 and 9"),
        ({"image": "i", "storage": {"size": "1Gi"}, "source": {"host": "h"}}, "credentialsSecret.name"),
    ],
)
def test_refused(doc: dict[str, object], words: str) -> None:
    with pytest.raises(crd.SpecError, match=words):
        crd.parse_spec(doc)


def test_crd_file_names_match_the_code() -> None:
    doc = yaml.safe_load(CRD_FILE.read_text())
    assert doc["spec"]["group"] == crd.GROUP
    assert doc["spec"]["names"]["kind"] == crd.KIND and doc["spec"]["names"]["plural"] == crd.PLURAL
    assert doc["spec"]["names"]["shortNames"] == ["kbc"]
    (version,) = doc["spec"]["versions"]
    assert version["name"] == crd.VERSION
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Ready",
        "Leader",
        "Members",
        "Source",
        "Lag",
        "Age",
    ]


def test_chart_ships_the_same_crd() -> None:
    chart_copy = CRD_FILE.parents[1] / "charts" / "kingbus-operator" / "crds" / "kingbuscluster.yaml"
    assert chart_copy.read_text() == CRD_FILE.read_text()
