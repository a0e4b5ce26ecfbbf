"""/metrics: the node's Metrics on a caller-owned registry, served as Prometheus text."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kingbus.api.metrics import ROLES, SOURCE_STATES, Metrics
from tests.unit.api.api_fake_node import FakeNodeControl
from tests.unit.api.conftest import StartNode

REQUIRED = [
    "kingbus_raft_role",
    "kingbus_raft_term",
    "kingbus_raft_commit_index",
    "kingbus_committed_transactions_total",
    "kingbus_committed_bytes_total",
    "kingbus_source_lag_seconds",
    "kingbus_apply_lag_entries",
    "kingbus_store_bytes",
    "kingbus_store_files",
    "kingbus_source_state",
]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_text_has_every_metric_with_the_nodes_values(start_node: StartNode) -> None:
    scrapes: list[int] = []
    registry_holder: list[Metrics] = []

    def refresh() -> None:
        scrapes.append(1)
        registry_holder[0].set_store(nbytes=4096, files=3)

    node = await start_node(FakeNodeControl("kb-0"), on_scrape=refresh)
    metrics = Metrics(node.registry)
    registry_holder.append(metrics)
    metrics.set_role("leader")
    metrics.set_source_state("streaming")
    metrics.set_raft_progress(term=7, commit_index=100, applied_index=95)
    metrics.record_commit(3, 1500)
    metrics.record_commit(1, 500)
    metrics.source_lag_seconds.set(0.25)

    answer = await node.client.get("/metrics")
    assert answer.status == 200
    assert answer.content_type == "text/plain"
    text = await answer.text()
    for name in REQUIRED:
        assert f"\n{name}" in text, name
    got = samples(text)
    assert got[("kingbus_raft_role", (("role", "leader"),))] == 1
    assert got[("kingbus_raft_role", (("role", "follower"),))] == 0
    assert got[("kingbus_source_state", (("state", "streaming"),))] == 1
    assert got[("kingbus_source_state", (("state", "stopped"),))] == 0
    assert got[("kingbus_raft_term", ())] == 7
    assert got[("kingbus_apply_lag_entries", ())] == 5
    assert got[("kingbus_committed_transactions_total", ())] == 4
    assert got[("kingbus_committed_bytes_total", ())] == 2000
    assert got[("kingbus_store_bytes", ())] == 4096  # set by the on_scrape hook
    assert got[("kingbus_source_lag_seconds", ())] == 0.25
    assert scrapes == [1]


async def test_admin_requests_are_counted_by_route_not_by_path(start_node: StartNode) -> None:
    node = await start_node(FakeNodeControl("kb-0"))
    await node.client.get("/status")
    await node.client.delete("/members/kb-7")  # 401: no token
    await node.client.get("/nope")
    got = samples(await (await node.client.get("/metrics")).text())
    assert (
        got[("kingbus_admin_requests_total", (("code", "200"), ("method", "GET"), ("route", "/status")))] == 1
    )
    key = (
        "kingbus_admin_requests_total",
        (("code", "401"), ("method", "DELETE"), ("route", "/members/{name}")),
    )
    assert got[key] == 1
    assert (
        got[("kingbus_admin_requests_total", (("code", "404"), ("method", "GET"), ("route", "unmatched")))]
        == 1
    )


def test_metrics_use_only_the_given_registry() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    Metrics(first)
    Metrics(second)  # no clash: nothing was registered globally
    with pytest.raises(ValueError):
        Metrics(first)  # the same registry twice is a programming error


def test_unknown_states_zero_every_state_and_do_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    metrics.set_role("leader")
    metrics.set_role("king")
    metrics.set_source_state("dancing")
    got = samples(generate_latest(metrics.registry).decode())
    assert all(got[("kingbus_raft_role", (("role", role),))] == 0 for role in ROLES)
    assert all(got[("kingbus_source_state", (("state", state),))] == 0 for state in SOURCE_STATES)
    assert "unknown Raft role 'king'" in caplog.text


def test_update_sets_only_what_it_is_given() -> None:
    metrics = Metrics()
    metrics.update(
        role="candidate", term=4, commit_index=10, apply_lag=3, source_state="error", source_lag=1.5
    )
    metrics.update(store_bytes=100, store_files=1)
    metrics.update(apply_lag=-2)  # an applied index momentarily ahead of a stale commit index
    got = samples(generate_latest(metrics.registry).decode())
    assert got[("kingbus_raft_role", (("role", "candidate"),))] == 1
    assert got[("kingbus_raft_term", ())] == 4
    assert got[("kingbus_raft_commit_index", ())] == 10
    assert got[("kingbus_apply_lag_entries", ())] == 0
    assert got[("kingbus_source_state", (("state", "error"),))] == 1
    assert got[("kingbus_source_lag_seconds", ())] == 1.5
    assert got[("kingbus_store_bytes", ())] == 100
    assert got[("kingbus_store_files", ())] == 1


def test_a_default_registry_is_private() -> None:
    assert Metrics().registry is not Metrics().registry


def test_each_connected_replica_has_its_own_series_until_it_leaves() -> None:
    m = Metrics()
    r1 = {"server_id": 11, "uuid": "u-1", "address": "10.0.0.1:5000", "lag_seconds": 2.5, "bytes_sent": 100}
    r2 = {"server_id": 12, "uuid": None, "address": "10.0.0.2:5000", "lag_seconds": None, "bytes_sent": 7}
    m.set_replicas([r1, r2])
    got = samples(generate_latest(m.registry).decode())
    one = (("address", "10.0.0.1:5000"), ("server_id", "11"), ("uuid", "u-1"))
    two = (("address", "10.0.0.2:5000"), ("server_id", "12"), ("uuid", ""))
    assert got[("kingbus_replica_lag_seconds", one)] == 2.5
    assert got[("kingbus_replica_session_bytes_sent", one)] == 100
    assert got[("kingbus_replica_lag_seconds", two)] == 0.0
    assert got[("kingbus_replica_session_bytes_sent", two)] == 7

    m.set_replicas([r2 | {"bytes_sent": 9}])
    got = samples(generate_latest(m.registry).decode())
    assert ("kingbus_replica_lag_seconds", one) not in got, "a gone replica's series are removed"
    assert ("kingbus_replica_session_bytes_sent", one) not in got
    assert got[("kingbus_replica_session_bytes_sent", two)] == 9
