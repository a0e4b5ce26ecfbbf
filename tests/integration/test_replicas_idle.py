"""Issue 3, "must pass" 4: a replica idle for three times its replica_net_timeout never
reconnects, and the heartbeats keep its Read_Source_Log_Pos equal to the node's position."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import pymysql
import pytest

from kingbus.devenv import mysql
from kingbus.devenv.localcluster import Cluster
from tests.integration.replica_helpers import BackgroundWorkload, assert_replica_healthy
from tests.support import MySQLServerFactory

pytestmark = [pytest.mark.mysql, pytest.mark.cluster]

NET_TIMEOUT = 3


def test_idle_replica_stays_connected_with_consistent_positions(
    cluster: Cluster, mysql_source: mysql.MySQLServer, mysql_server: MySQLServerFactory
) -> None:
    cluster.set_source("127.0.0.1", mysql_source.port)
    node = next(m for m in cluster.members if m is not cluster.leader())
    replica = mysql_server(server_id=5101)
    # The heartbeat period defaults to replica_net_timeout / 2 when the source is changed.
    replica.execute(f"SET GLOBAL replica_net_timeout = {NET_TIMEOUT}")
    replica.replicate_from(node.host, node.mysql_port)
    BackgroundWorkload(mysql_source, transactions=30).start().join()
    executed = mysql_source.gtid_executed()
    cluster.wait_committed(executed, timeout=60)
    replica.wait_replica_caught_up(executed, timeout=60)

    def session() -> dict[str, Any]:
        (entry,) = [r for r in node.status()["replicas"] if r["server_id"] == 5101]
        return dict(entry)

    before = session()
    time.sleep(3 * NET_TIMEOUT + 2)
    after = session()
    assert after["connected_seconds"] >= before["connected_seconds"] + 3 * NET_TIMEOUT, "it reconnected"
    assert_replica_healthy(replica)
    status = replica.replica_status()

    with (
        pymysql.connect(host=node.host, port=node.mysql_port, user="repl", password="replpass") as conn,
        conn.cursor() as cursor,
    ):
        cursor.execute("SHOW BINARY LOG STATUS")
        file, position = cursor.fetchone()[:2]
    assert (status["Source_Log_File"], status["Read_Source_Log_Pos"]) == (file, position)
    # The node's metrics count the connected replica and the bytes it was sent.
    metrics = urllib.request.urlopen(f"{node.admin}/metrics", timeout=10).read().decode()
    assert "kingbus_replicas_connected 1.0" in metrics
    sent = [line for line in metrics.splitlines() if line.startswith("kingbus_replica_bytes_sent_total ")]
    assert sent and float(sent[0].split()[1]) >= position
    # ... and show this replica on its own series, labelled like its /status entry.
    labels = f'address="{after["address"]}",server_id="5101",uuid="{after["uuid"]}"'
    own = [
        line
        for line in metrics.splitlines()
        if line.startswith(f"kingbus_replica_session_bytes_sent{{{labels}}}")
    ]
    assert own and float(own[0].split()[-1]) >= position, metrics
    assert f"kingbus_replica_lag_seconds{{{labels}}}" in metrics
    # And it still replicates what comes next.
    mysql_source.execute("CREATE TABLE kb_workload.after_idle (id INT PRIMARY KEY)")
    mysql_source.execute("INSERT INTO kb_workload.after_idle VALUES (1), (2)")
    replica.wait_replica_caught_up(mysql_source.gtid_executed(), timeout=60)
    assert_replica_healthy(replica)
