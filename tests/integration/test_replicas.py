"""Issue 3, "must pass" 1: real MySQL 9.7 replicas replicate through Kingbus nodes.

Source -> three nodes -> R1 on the leader and R2 on a follower (SOURCE_AUTO_POSITION=1, TLS
by default, caching_sha2_password), while a mixed workload with a row over 16 MiB and DDL
runs.  At the end every table's CHECKSUM and gtid_executed are equal on source, R1 and R2,
and neither replica reports an error.
"""

from __future__ import annotations

import time

import pytest

from kingbus.devenv import mysql
from kingbus.devenv.localcluster import Cluster, wait_until
from tests.integration.replica_helpers import (
    BackgroundWorkload,
    assert_replica_healthy,
    node_query,
    table_checksums,
)
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


def test_file_position_replica_resumes_mid_file_and_ends_identical(
    cluster: Cluster, mysql_source: mysql.MySQLServer, mysql_server: MySQLServerFactory
) -> None:
    """A real replica without auto-position (COM_BINLOG_DUMP by file and position), stopped
    and restarted in the middle of the workload, so that it resumes at a position past 4 (FDE
    with log_pos 0) -- and ends identical, positioned exactly at the node's end."""
    source = mysql_source
    cluster.set_source("127.0.0.1", source.port)
    node = cluster.members[1]
    replica = mysql_server(server_id=5003)
    load = BackgroundWorkload(source, transactions=400, big_row_bytes=17 * 1024 * 1024).start()
    wait_until(lambda: node.status()["committed_gtid_set"] != "", timeout=60, what="first commits")
    first_file = node_query(node.host, node.mysql_port, "SHOW BINARY LOGS")[0][0]
    replica.execute(
        "CHANGE REPLICATION SOURCE TO SOURCE_HOST=%s, SOURCE_PORT=%s, SOURCE_USER='repl', "
        "SOURCE_PASSWORD='replpass', SOURCE_AUTO_POSITION=0, SOURCE_LOG_FILE=%s, SOURCE_LOG_POS=4, "
        "GET_SOURCE_PUBLIC_KEY=1, SOURCE_CONNECT_RETRY=1",
        (node.host, node.mysql_port, first_file),
    )
    replica.execute("START REPLICA")
    for _ in range(3):
        wait_until(
            lambda: int(replica.replica_status().get("Read_Source_Log_Pos") or 0) > 4,
            timeout=60,
            what="the replica reading",
        )
        time.sleep(0.3)
        replica.execute("STOP REPLICA")
        replica.execute("START REPLICA")
    load.join()
    executed = source.gtid_executed()
    cluster.wait_committed(executed, timeout=120)
    replica.wait_replica_caught_up(executed, timeout=120)
    assert_replica_healthy(replica)
    assert replica.gtid_executed() == executed
    assert table_checksums(replica) == table_checksums(source)
    file, position = node_query(node.host, node.mysql_port, "SHOW BINARY LOG STATUS")[0][:2]
    status = replica.replica_status()
    assert (status["Source_Log_File"], status["Read_Source_Log_Pos"]) == (file, position)
    assert (status["Relay_Source_Log_File"], status["Exec_Source_Log_Pos"]) == (file, position)
