"""Real MySQL 9.7 replicas that ask for the compressed protocol (SOURCE_COMPRESSION_ALGORITHMS):
one with zlib, one with zstd, one without, all on the same Kingbus follower while a mixed
workload with a row over 16 MiB runs (so compressed packets of 16 MiB - 1 and events spanning
several of them occur). A replica configured for only 'zlib' or only 'zstd' cannot connect to a
source that offers neither (error 2066): before Kingbus spoke it, such replicas could not use
Kingbus at all.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from kingbus.devenv import mysql
from kingbus.devenv.localcluster import Cluster, Member
from tests.integration.replica_helpers import BackgroundWorkload, assert_replica_healthy, table_checksums
from tests.support import MySQLServerFactory

pytestmark = [pytest.mark.mysql, pytest.mark.cluster]


def test_replicas_asking_for_zlib_or_zstd_replicate_identically_and_compressed(
    cluster: Cluster, mysql_source: mysql.MySQLServer, mysql_server: MySQLServerFactory
) -> None:
    source = mysql_source
    cluster.set_source("127.0.0.1", source.port)
    leader = cluster.leader()
    follower = next(m for m in cluster.members if m is not leader)
    replicas = {
        "zlib": mysql_server(server_id=5101),
        "zstd": mysql_server(server_id=5102),
        "uncompressed": mysql_server(server_id=5103),
    }
    for algorithm, replica in replicas.items():
        replica.replicate_from(follower.host, follower.mysql_port, compression=algorithm)

    with BackgroundWorkload(source, transactions=300, big_row_bytes=17 * 1024 * 1024) as load:
        load.join()
    _all_caught_up(cluster, source, replicas.values())
    before = _bytes_sent(follower)
    # The mixed workload's rows are random bytes; rows that repeat themselves show the
    # compression (a binlog of real rows usually compresses several times over).
    source.execute("CREATE TABLE kb_workload.text_rows (id INT PRIMARY KEY, body TEXT)")
    for i in range(200):
        source.execute("INSERT INTO kb_workload.text_rows VALUES (%s, REPEAT('kingbus ', 1000))", (i,))
    _all_caught_up(cluster, source, replicas.values())
    after = _bytes_sent(follower)

    served = {r["server_id"]: r for r in follower.status()["replicas"]}
    assert served[5101]["compression"] == "zlib"
    assert served[5102]["compression"] == "zstd"
    assert served[5103]["compression"] is None
    # The same events went to all three; the compressed sessions put far fewer bytes on the wire.
    sent = {server_id: after[server_id] - before[server_id] for server_id in after}
    assert sent[5103] > 200 * 8000, sent
    assert sent[5101] < 0.2 * sent[5103], sent
    assert sent[5102] < 0.2 * sent[5103], sent


def _all_caught_up(
    cluster: Cluster, source: mysql.MySQLServer, replicas: Iterable[mysql.MySQLServer]
) -> None:
    executed = source.gtid_executed()
    cluster.wait_committed(executed, timeout=120)
    expected = table_checksums(source)
    assert expected
    for replica in replicas:
        replica.wait_replica_caught_up(executed, timeout=120)
        assert_replica_healthy(replica)
        assert replica.gtid_executed() == executed
        assert table_checksums(replica) == expected


def _bytes_sent(member: Member) -> dict[int, int]:
    return {int(r["server_id"]): int(r["bytes_sent"]) for r in member.status()["replicas"]}
