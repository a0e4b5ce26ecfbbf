"""Shared helpers of the replica-facing server's integration tests (test_replicas*.py)."""

from __future__ import annotations

from typing import Any

import pymysql

from kingbus.devenv import mysql
from tests.integration.workloads import BackgroundWorkload

__all__ = ["DATABASE", "BackgroundWorkload", "assert_replica_healthy", "node_query", "table_checksums"]

DATABASE = "kb_workload"  # BackgroundWorkload's default database


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
