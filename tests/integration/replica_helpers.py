"""Shared helpers of the replica-facing server's integration tests (test_replicas*.py)."""

from __future__ import annotations

import threading
from typing import Any

import pymysql

from kingbus.devenv import mysql
from kingbus.devenv.workload import WorkloadCounts, mixed_workload

DATABASE = "kb_workload"


class BackgroundWorkload:
    """The mixed workload in a thread; ``join`` re-raises its error."""

    def __init__(self, source: mysql.MySQLServer, *, transactions: int, big_row_bytes: int = 0) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.counts: WorkloadCounts | None = None
        self._thread = threading.Thread(
            target=self._run, args=(source, transactions, big_row_bytes), daemon=True
        )

    def _run(self, source: mysql.MySQLServer, transactions: int, big_row_bytes: int) -> None:
        try:
            with source.connect() as conn:
                self.counts = mixed_workload(
                    conn,
                    transactions=transactions,
                    seed=11,
                    big_row_bytes=big_row_bytes,
                    stop=self.stop,
                    database=DATABASE,
                )
        except BaseException as exc:  # reported by join()
            self.error = exc

    def start(self) -> BackgroundWorkload:
        self._thread.start()
        return self

    def join(self, timeout: float = 300) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the workload did not finish"
        if self.error is not None:
            raise self.error


def table_checksums(server: mysql.MySQLServer) -> dict[str, int]:
    tables = [row[0] for row in server.query(f"SHOW TABLES FROM {DATABASE}")]
    return {table: int(server.query(f"CHECKSUM TABLE {DATABASE}.{table}")[0][1]) for table in sorted(tables)}


def assert_replica_healthy(replica: mysql.MySQLServer) -> None:
    status = replica.replica_status()
    assert status.get("Last_IO_Errno") == 0, status.get("Last_IO_Error")
    assert status.get("Last_SQL_Errno") == 0, status.get("Last_SQL_Error")
    assert status.get("Replica_IO_Running") == "Yes", status
    assert status.get("Replica_SQL_Running") == "Yes", status


def node_query(host: str, port: int, statement: str) -> list[tuple[Any, ...]]:
    """Rows of one statement run on a node's MySQL port as the configured user."""
    with (
        pymysql.connect(host=host, port=port, user="repl", password="replpass") as conn,
        conn.cursor() as cursor,
    ):
        cursor.execute(statement)
        return list(cursor.fetchall())
