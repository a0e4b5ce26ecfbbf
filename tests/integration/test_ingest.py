"""A three-node cluster replicating a real MySQL 9.7 source, under faults.

What every test here checks in the end is the strongest form of DESIGN invariants 1-3: each
member's stored transactions, read back from its segment files by the independent oracle,
are exactly the source's binlog transactions -- same GTIDs, same order, same bytes.
"""

from __future__ import annotations

import time

import pytest

from kingbus.devenv import mysql
from kingbus.devenv.localcluster import Cluster, Member, wait_until
from tests.integration.stored import source_transactions, stored_transactions
from tests.integration.workloads import BackgroundWorkload
from tests.support import MySQLServerFactory

pytestmark = [pytest.mark.mysql, pytest.mark.cluster]

TRANSACTION_PAYLOAD = 40


def assert_identical_to_source(cluster: Cluster, source: mysql.MySQLServer) -> None:
    expected = source_transactions(source.datadir)
    assert expected, "the source wrote no transactions"
    for member in cluster.members:
        got = stored_transactions(member)
        assert [g for g, _ in got] == [g for g, _ in expected], f"{member.name}: GTID sequence differs"
        for (gtid, data), (_, want) in zip(got, expected, strict=True):
            assert data == want, f"{member.name}: bytes of {gtid} differ from the source's"


def test_mixed_workload_is_stored_byte_identical_on_every_node(
    cluster: Cluster, mysql_source: mysql.MySQLServer
) -> None:
    cluster.set_source("127.0.0.1", mysql_source.port)
    with BackgroundWorkload(mysql_source, transactions=300, big_row_bytes=17 * 1024 * 1024) as load:
        load.join()
    cluster.wait_committed(mysql_source.gtid_executed(), timeout=120)
    assert_identical_to_source(cluster, mysql_source)
    assert cluster.leader().status()["source"]["tls"], "the source offers TLS: the syncer must use it"
    sizes = [len(d) for _, d in source_transactions(mysql_source.datadir)]
    assert max(sizes) > 16 * 1024 * 1024, "the workload must include a transaction over 16 MiB"


def _progress(member: Member) -> str:
    return str(member.status()["committed_gtid_set"])


def test_leader_killed_five_times_mid_workload_loses_and_duplicates_nothing(
    cluster: Cluster, mysql_source: mysql.MySQLServer
) -> None:
    cluster.set_source("127.0.0.1", mysql_source.port)
    with BackgroundWorkload(mysql_source, transactions=100_000) as load:
        for round_ in range(5):
            leader = cluster.leader()
            before = _progress(leader)
            # Let the new leader stream for a while, then kill it in the middle of the load.
            wait_until(
                lambda leader=leader, before=before: _progress(leader) != before,
                timeout=60,
                what=f"progress in round {round_}",
            )
            time.sleep(0.5)
            leader.kill9()
            new_leader = cluster.leader(timeout=30)
            assert new_leader is not leader
            leader.start()
            assert load.running, "the workload ended before the faults were done"
    cluster.wait_ready(timeout=60)
    cluster.wait_committed(mysql_source.gtid_executed(), timeout=120)
    assert_identical_to_source(cluster, mysql_source)


def test_follower_and_then_all_nodes_killed_and_restarted(
    cluster: Cluster, mysql_source: mysql.MySQLServer
) -> None:
    cluster.set_source("127.0.0.1", mysql_source.port)
    with BackgroundWorkload(mysql_source, transactions=100_000) as load:
        time.sleep(2)
        leader = cluster.leader()
        follower = next(m for m in cluster.members if m is not leader)
        follower.kill9()
        time.sleep(2)
        follower.start()
        time.sleep(2)
        assert load.running
    cluster.wait_committed(mysql_source.gtid_executed(), timeout=120)
    with BackgroundWorkload(mysql_source, transactions=100_000, database="kb_second") as load:
        time.sleep(2)
        for member in cluster.members:
            member.kill9()
        time.sleep(1)
        for member in cluster.members:
            member.start()
        cluster.leader(timeout=30)
        time.sleep(2)
    cluster.wait_ready(timeout=60)
    cluster.wait_committed(mysql_source.gtid_executed(), timeout=120)
    assert_identical_to_source(cluster, mysql_source)


def test_tagged_gtids_and_compressed_transactions_pass_through_unchanged(
    cluster: Cluster, mysql_server: MySQLServerFactory
) -> None:
    source = mysql_server(extra_args=["--binlog-transaction-compression=ON"])
    source.create_replication_user()
    cluster.set_source("127.0.0.1", source.port)
    with source.connect() as conn:
        cur = conn.cursor()
        cur.execute("CREATE DATABASE tagged")
        cur.execute("CREATE TABLE tagged.t (id INT PRIMARY KEY, v TEXT)")
        for i in range(20):
            cur.execute("SET gtid_next = 'AUTOMATIC:batch_%s'" % ("a" if i % 2 else "b"))
            cur.execute("INSERT INTO tagged.t VALUES (%s, REPEAT('x', 5000))", (i,))
        cur.execute("SET gtid_next = 'AUTOMATIC'")
        cur.execute("UPDATE tagged.t SET v = REPEAT('y', 5000)")
    executed = source.gtid_executed()
    assert ":batch_a:" in executed and ":batch_b:" in executed
    cluster.wait_committed(executed, timeout=60)
    expected = source_transactions(source.datadir)
    compressed = [g for g, data in expected if TRANSACTION_PAYLOAD in _event_types(data)]
    assert compressed, "the source wrote no Transaction_payload events"
    for member in cluster.members:
        assert stored_transactions(member) == expected, member.name


def _event_types(data: bytes) -> list[int]:
    types, pos = [], 0
    while pos + 19 <= len(data):
        types.append(data[pos + 4])
        pos += int.from_bytes(data[pos + 9 : pos + 13], "little")
    return types
