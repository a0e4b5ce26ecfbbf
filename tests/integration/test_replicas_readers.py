"""Issue 3, "must pass" 5 and 6: CDC-style readers through the nodes.

5. python-mysql-replication in file/position mode (no GTIDs), starting from the first file of
   a node's SHOW BINARY LOGS at position 4, sees every row change of the workload.
6. Fifty concurrent lightweight dump sessions spread over the three nodes all receive every
   transaction, while the source shows exactly one replication connection (the leader's).
"""

from __future__ import annotations

import threading
from typing import Any

import pymysql
import pytest
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from kingbus.binlog import events, gtid_events
from kingbus.binlog.gtids import GtidSet
from kingbus.devenv import mysql
from kingbus.devenv.localcluster import Cluster
from tests.integration.replica_helpers import DATABASE, BackgroundWorkload
from tests.unit.server.harness import DumpClient

pytestmark = [
    pytest.mark.mysql,
    pytest.mark.cluster,
    pytest.mark.filterwarnings("ignore:'(db|passwd)' is deprecated:DeprecationWarning"),
]


def node_settings(host: str, port: int) -> dict[str, Any]:
    return {"host": host, "port": port, "user": "repl", "passwd": "replpass"}


def test_file_position_reader_sees_every_row_change(
    cluster: Cluster, mysql_source: mysql.MySQLServer
) -> None:
    cluster.set_source("127.0.0.1", mysql_source.port)
    load = BackgroundWorkload(mysql_source, transactions=200).start()
    load.join()
    assert load.counts is not None
    cluster.wait_committed(mysql_source.gtid_executed(), timeout=120)
    follower = next(m for m in cluster.members if m is not cluster.leader())
    with (
        pymysql.connect(
            host=follower.host, port=follower.mysql_port, user="repl", password="replpass"
        ) as conn,
        conn.cursor() as cursor,
    ):
        cursor.execute("SHOW BINARY LOGS")
        logs = cursor.fetchall()
    first_file = logs[0][0]
    reader = BinLogStreamReader(
        connection_settings=node_settings(follower.host, follower.mysql_port),
        server_id=8101,
        log_file=first_file,
        log_pos=4,
        resume_stream=True,
        blocking=False,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
        only_schemas=[DATABASE],
    )
    inserted = updated = deleted = 0
    try:
        for event in reader:
            if isinstance(event, WriteRowsEvent):
                inserted += len(event.rows)
            elif isinstance(event, UpdateRowsEvent):
                updated += len(event.rows)
            elif isinstance(event, DeleteRowsEvent):
                deleted += len(event.rows)
    finally:
        reader.close()
    assert (inserted, updated, deleted) == (
        load.counts.inserted_rows,
        load.counts.updated_rows,
        load.counts.deleted_rows,
    )
    assert inserted > 0 and updated > 0 and deleted > 0


def _read_all(host: str, port: int, server_id: int, want: GtidSet, out: dict[int, Any]) -> None:
    try:
        conn = pymysql.connect(host=host, port=port, user="repl", password="replpass", read_timeout=120)
        client = DumpClient(conn)
        client.query("SET @source_heartbeat_period = 1000000000")
        client.dump_gtid(GtidSet(), server_id=server_id)
        seen = GtidSet()
        while not want.issubset(seen):
            event = client.next_event()
            if events.event_type_of(event) in (events.EventType.GTID, events.EventType.GTID_TAGGED):
                seen = seen.add(gtid_events.gtid_of_event(event, checksum=True))
        out[server_id] = seen
        conn.close()
    except BaseException as exc:  # reported by the test
        out[server_id] = exc


def test_fifty_readers_over_three_nodes_and_one_source_connection(
    cluster: Cluster, mysql_source: mysql.MySQLServer
) -> None:
    cluster.set_source("127.0.0.1", mysql_source.port)
    load = BackgroundWorkload(mysql_source, transactions=150).start()
    load.join()
    executed = mysql_source.gtid_executed()
    cluster.wait_committed(executed, timeout=120)
    want = GtidSet.parse(executed)
    results: dict[int, Any] = {}
    threads = []
    for i in range(50):
        member = cluster.members[i % 3]
        thread = threading.Thread(
            target=_read_all, args=(member.host, member.mysql_port, 9100 + i, want, results), daemon=True
        )
        threads.append(thread)
        thread.start()
    for thread in threads:
        thread.join(180)
    assert len(results) == 50
    failures = {k: v for k, v in results.items() if isinstance(v, BaseException)}
    assert not failures, failures
    assert all(seen == want for seen in results.values())
    processes = mysql_source.query("SHOW PROCESSLIST")
    dumps = [row for row in processes if str(row[4]).startswith("Binlog Dump")]
    assert len(dumps) == 1, f"one replication connection from the cluster expected: {processes}"
