"""Issue 3, "must pass" 2: replicas survive node crashes in the middle of a workload.

R1 and R2 replicate through two followers.  kill -9 R2's node: R2 is pointed at another node
and continues (auto-position: no gap, no duplicate).  The killed node restarts, then the
leader is killed -9: R1 goes on through its own node once a new leader is elected.  At the
end both replicas equal the source (gtid_executed, CHECKSUM TABLE) without any error.
"""

from __future__ import annotations

import time

import pytest

from kingbus.devenv import mysql
from kingbus.devenv.localcluster import Cluster, wait_until
from tests.integration.replica_helpers import BackgroundWorkload, assert_replica_healthy, table_checksums
from tests.support import MySQLServerFactory

pytestmark = [pytest.mark.mysql, pytest.mark.cluster]


def progresses(replica: mysql.MySQLServer) -> None:
    before = replica.gtid_executed()
    wait_until(lambda: replica.gtid_executed() != before, timeout=60, what=f"progress of {replica!r}")


def test_replicas_continue_through_node_crashes(
    cluster: Cluster, mysql_source: mysql.MySQLServer, mysql_server: MySQLServerFactory
) -> None:
    cluster.set_source("127.0.0.1", mysql_source.port)
    leader = cluster.leader()
    b, c = [m for m in cluster.members if m is not leader]
    r1 = mysql_server(server_id=5201)
    r2 = mysql_server(server_id=5202)
    r1.replicate_from(b.host, b.mysql_port)
    r2.replicate_from(c.host, c.mysql_port)
    load = BackgroundWorkload(mysql_source, transactions=100_000).start()
    try:
        progresses(r2)
        time.sleep(0.5)
        c.kill9()
        r2.execute("STOP REPLICA")
        r2.replicate_from(b.host, b.mysql_port)
        progresses(r2)
        c.start()
        cluster.wait_ready(timeout=60)
        progresses(r1)
        leader.kill9()
        new_leader = cluster.leader(timeout=30)
        assert new_leader is not leader
        progresses(r1)
        progresses(r2)
    finally:
        load.stop.set()
        load.join()
    executed = mysql_source.gtid_executed()
    cluster.wait_committed(executed, timeout=120)
    for replica in (r1, r2):
        replica.wait_replica_caught_up(executed, timeout=120)
        assert_replica_healthy(replica)
        assert replica.gtid_executed() == executed
    expected = table_checksums(mysql_source)
    assert table_checksums(r1) == expected
    assert table_checksums(r2) == expected
