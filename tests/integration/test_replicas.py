"""Issue 3, "must pass" 1: real MySQL 9.7 replicas replicate through Kingbus nodes.

Source -> three nodes -> R1 on the leader and R2 on a follower (SOURCE_AUTO_POSITION=1, TLS
by default, caching_sha2_password), while a mixed workload with a row over 16 MiB and DDL
runs.  At the end every table's CHECKSUM and gtid_executed are equal on source, R1 and R2,
and neither replica reports an error.
"""

from __future__ import annotations

import pytest

from kingbus.devenv import mysql
from kingbus.devenv.localcluster import Cluster
from tests.integration.replica_helpers import BackgroundWorkload, assert_replica_healthy, table_checksums
from tests.support import MySQLServerFactory

pytestmark = [pytest.mark.mysql, pytest.mark.cluster]


def test_replicas_on_leader_and_follower_end_identical_to_the_source(
    cluster: Cluster, mysql_source: mysql.MySQLServer, mysql_server: MySQLServerFactory
) -> None:
    source = mysql_source
    cluster.set_source("127.0.0.1", source.port)
    leader = cluster.leader()
    follower = next(m for m in cluster.members if m is not leader)
    r1 = mysql_server(server_id=5001)
    r2 = mysql_server(server_id=5002)
    r1.replicate_from(leader.host, leader.mysql_port)
    r2.replicate_from(follower.host, follower.mysql_port)

    load = BackgroundWorkload(source, transactions=400, big_row_bytes=17 * 1024 * 1024).start()
    load.join()
    executed = source.gtid_executed()
    cluster.wait_committed(executed, timeout=120)
    for replica in (r1, r2):
        replica.wait_replica_caught_up(executed, timeout=120)
        assert_replica_healthy(replica)
        assert replica.gtid_executed() == executed
    expected = table_checksums(source)
    assert expected
    assert table_checksums(r1) == expected
    assert table_checksums(r2) == expected
    # The nodes report the replicas they serve.
    served = {r["server_id"] for m in (leader, follower) for r in m.status()["replicas"]}
    assert {5001, 5002} <= served
