"""Log compaction, catch-up past the compacted log, and retention, with small limits so a
test-sized workload crosses them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kingbus.devenv import mysql
from kingbus.devenv.localcluster import Cluster, wait_until
from kingbus.devenv.workload import large_txn_load, small_txn_load
from tests.integration.stored import source_transactions, stored_transactions

pytestmark = [pytest.mark.mysql, pytest.mark.cluster]


def _cluster(base: Path, extra: dict[str, dict[str, Any]]) -> Cluster:
    cluster = Cluster(base, 3)
    for member in cluster.members:
        member.extra = extra
    cluster.start()
    cluster.leader(timeout=30)
    return cluster


@pytest.fixture
def small_limits_cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = _cluster(
        tmp_path / "cluster",
        {
            "raft": {"compaction_bytes": 256 * 1024, "journal_segment_bytes": 128 * 1024},
            "store": {"segment_bytes": 2 * 1024 * 1024},
        },
    )
    try:
        yield cluster
    finally:
        cluster.stop()


def test_a_follower_behind_the_compacted_log_catches_up_from_its_peers(
    small_limits_cluster: Cluster, mysql_source: mysql.MySQLServer
) -> None:
    cluster = small_limits_cluster
    cluster.set_source("127.0.0.1", mysql_source.port)
    with mysql_source.connect() as conn:
        small_txn_load(conn, 100)
    cluster.wait_committed(mysql_source.gtid_executed(), timeout=60)
    leader = cluster.leader()
    follower = next(m for m in cluster.members if m is not leader)
    follower_last = follower.status()["raft"]["journal"]["last_index"]
    follower.kill9()

    with mysql_source.connect() as conn:
        large_txn_load(conn, 30, size=1024 * 1024)
    survivors = [m for m in cluster.members if m is not follower]
    cluster.wait_committed(mysql_source.gtid_executed(), timeout=120, members=survivors)
    wait_until(
        lambda: cluster.leader().status()["raft"]["journal"]["first_index"] > follower_last + 1,
        timeout=60,
        what="the leader to compact its log past the stopped follower",
    )

    follower.start()
    cluster.wait_committed(mysql_source.gtid_executed(), timeout=120)
    assert "catch-up:" in follower.log_path.read_text(), "the follower did not copy segments from a peer"
    expected = source_transactions(mysql_source.datadir)
    for member in cluster.members:
        assert stored_transactions(member) == expected, member.name


def test_retention_purges_old_segments_and_reports_the_purged_set(
    tmp_path: Path, mysql_source: mysql.MySQLServer
) -> None:
    cluster = _cluster(
        tmp_path / "cluster",
        {
            "store": {
                "segment_bytes": 1024 * 1024,
                "retention_bytes": 4 * 1024 * 1024,
                "retention_check_seconds": 1,
            }
        },
    )
    try:
        cluster.set_source("127.0.0.1", mysql_source.port)
        with mysql_source.connect() as conn:
            large_txn_load(conn, 12, size=1024 * 1024)
        executed = mysql_source.gtid_executed()
        cluster.wait_committed(executed, timeout=120)
        for member in cluster.members:
            # Retention is periodic: the first purge may have happened mid-load, so wait for
            # the pass that brings the store back under the limit (plus one open segment).
            status = wait_until(
                lambda m=member: (
                    (s := m.status())["purged_gtid_set"] and s["store"]["bytes"] <= 6 * 1024 * 1024 and s
                ),
                timeout=30,
                what=f"{member.name} to purge down to the retention limit",
            )
            assert status["committed_gtid_set"] == executed
            kept = stored_transactions(member)
            expected = source_transactions(mysql_source.datadir)
            # What is kept is exactly the newest part of the source's history.
            assert kept == expected[len(expected) - len(kept) :]
    finally:
        cluster.stop()
