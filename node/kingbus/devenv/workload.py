"""Deterministic write workloads against a MySQL source, for tests and benchmarks.

``mixed_workload`` draws each transaction's kind from a ``random.Random(seed)``, so the same seed
against the same empty database gives the same sequence of statements (and so the same binlog
shape): single-row and multi-row inserts, updates, deletes, multi-statement transactions mixing
all three, and DDL (CREATE / ALTER / DROP TABLE, each its own GTID). With ``big_row_bytes`` one
transaction inserts a single LONGBLOB larger than a 16 MiB protocol packet, which exercises
packet splitting on every hop. A ``stop`` event lets a test run "the middle of a workload" in a
thread and end it at a transaction boundary.

``small_txn_load`` and ``large_txn_load`` are the benchmark loads: many commits of one ~500 B
row, or fewer commits of ~1 MB each (rows batched with ``executemany``), autocommit off, one
commit per transaction.

Every function takes an open PyMySQL connection and returns counts of what it committed; each
committed transaction is exactly one GTID on the source.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Connection = Any  # pymysql.connections.Connection; PyMySQL ships no type information.

BIG_ROW_DEFAULT = 17 * 1024 * 1024


@dataclass
class WorkloadCounts:
    """What a workload committed. ``transactions`` counts GTIDs written to the source's binlog."""

    transactions: int = 0
    inserted_rows: int = 0
    updated_rows: int = 0
    deleted_rows: int = 0
    multi_statement_transactions: int = 0
    ddl: int = 0
    big_rows: int = 0
    tables: list[str] = field(default_factory=list)


@dataclass
class LoadResult:
    transactions: int
    rows: int
    payload_bytes: int
    seconds: float


def _set_big_packets(conn: Connection, cur: Any, size: int) -> None:
    # The server checks max_allowed_packet per session; the client's own limit is the connect
    # argument (MySQLServer.connect passes 1 GiB).
    cur.execute("SELECT @@SESSION.max_allowed_packet")
    (current,) = cur.fetchone()
    if int(current) < size + (1 << 20):
        raise ValueError(
            f"server max_allowed_packet {current} is too small for a {size}-byte row; "
            "start the server with --max-allowed-packet=1G (MySQLServer's default)"
        )
    if getattr(conn, "max_allowed_packet", 0) < size + (1 << 20):
        raise ValueError("the client connection's max_allowed_packet is too small; connect with 1 GiB")


def mixed_workload(
    conn: Connection,
    *,
    transactions: int,
    seed: int = 0,
    database: str = "kb_workload",
    big_row_bytes: int = 0,
    stop: threading.Event | None = None,
) -> WorkloadCounts:
    """Commit ``transactions`` transactions of mixed kinds (fewer if ``stop`` is set).

    Creates ``database`` if missing (that CREATE counts as a DDL transaction). When
    ``big_row_bytes`` > 0, one transaction in the first half inserts a row of that size.
    """
    rng = random.Random(seed)
    counts = WorkloadCounts()
    conn.autocommit(True)
    tables: list[str] = []
    next_table = 0
    next_id: dict[str, int] = {}
    big_at = rng.randrange(max(1, transactions // 2)) if big_row_bytes > 0 else -1

    with conn.cursor() as cur:

        def ddl(sql: str) -> None:
            cur.execute(sql)
            counts.ddl += 1
            counts.transactions += 1

        def create_table() -> None:
            nonlocal next_table
            name = f"t{next_table}"
            next_table += 1
            ddl(
                f"CREATE TABLE `{database}`.`{name}` (id BIGINT PRIMARY KEY, n INT NOT NULL, "
                "s VARCHAR(255) NOT NULL, b LONGBLOB NULL)"
            )
            tables.append(name)
            next_id[name] = 1
            counts.tables.append(name)

        def insert_rows(table: str, how_many: int) -> int:
            first = next_id[table]
            next_id[table] += how_many
            rows = [
                (first + i, rng.randrange(1 << 30), rng.randbytes(rng.randrange(1, 100)).hex())
                for i in range(how_many)
            ]
            cur.executemany(f"INSERT INTO `{database}`.`{table}` (id, n, s) VALUES (%s, %s, %s)", rows)
            counts.inserted_rows += how_many
            return how_many

        def update_rows(table: str) -> int:
            low = rng.randrange(1, max(2, next_id[table]))
            changed: int = cur.execute(
                f"UPDATE `{database}`.`{table}` SET n = n + 1, s = %s WHERE id BETWEEN %s AND %s",
                (rng.randbytes(20).hex(), low, low + rng.randrange(1, 8)),
            )
            counts.updated_rows += changed
            return changed

        def delete_rows(table: str) -> int:
            low = rng.randrange(1, max(2, next_id[table]))
            high = low + rng.randrange(0, 3)
            changed: int = cur.execute(
                f"DELETE FROM `{database}`.`{table}` WHERE id BETWEEN %s AND %s", (low, high)
            )
            counts.deleted_rows += changed
            return changed

        def multi(table: str) -> int:
            changed = insert_rows(table, rng.randrange(1, 5)) + update_rows(table)
            return changed + delete_rows(table) + insert_rows(table, 1)

        def insert_big(table: str, row_id: int, payload: bytes) -> int:
            sql = f"INSERT INTO `{database}`.`{table}` (id, n, s, b) VALUES (%s, 0, 'big', %s)"
            return int(cur.execute(sql, (row_id, payload)))

        def in_transaction(body: Callable[..., int], *args: Any) -> bool:
            # A transaction that changed no row is not logged and gets no GTID, so it is not
            # counted: ``transactions`` must equal the number of GTIDs written.
            conn.begin()
            try:
                changed = body(*args)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            if changed > 0:
                counts.transactions += 1
            return changed > 0

        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        counts.transactions += 1
        counts.ddl += 1
        create_table()

        while counts.transactions < transactions:
            if stop is not None and stop.is_set():
                break
            if counts.transactions >= big_at >= 0:
                big_at = -1
                _set_big_packets(conn, cur, big_row_bytes)
                table = rng.choice(tables)
                row_id = next_id[table]
                next_id[table] += 1
                payload = rng.randbytes(big_row_bytes)
                in_transaction(insert_big, table, row_id, payload)
                counts.inserted_rows += 1
                counts.big_rows += 1
                continue
            kind = rng.choices(
                ["insert", "update", "delete", "multi", "create", "alter", "drop"],
                weights=[40, 20, 10, 20, 4, 4, 2],
            )[0]
            table = rng.choice(tables)
            if kind == "insert":
                in_transaction(insert_rows, table, rng.randrange(1, 20))
            elif kind == "update":
                in_transaction(update_rows, table)
            elif kind == "delete":
                in_transaction(delete_rows, table)
            elif kind == "multi":
                in_transaction(multi, table)
                counts.multi_statement_transactions += 1
            elif kind == "create" or (kind == "drop" and len(tables) < 2):
                create_table()
            elif kind == "alter":
                column = f"c{counts.ddl}"
                default = rng.randrange(100)
                ddl(f"ALTER TABLE `{database}`.`{table}` ADD COLUMN `{column}` INT NULL DEFAULT {default}")
            else:  # drop
                tables.remove(table)
                ddl(f"DROP TABLE `{database}`.`{table}`")
                counts.tables.remove(table)
    return counts


def _prepare_bench_table(conn: Connection, database: str, table: str) -> None:
    conn.autocommit(True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS `{database}`.`{table}` "
            "(id BIGINT AUTO_INCREMENT PRIMARY KEY, payload LONGBLOB NOT NULL)"
        )
    conn.autocommit(False)


def _load(
    conn: Connection,
    *,
    transactions: int,
    rows_per_txn: int,
    row_bytes: int,
    database: str,
    table: str,
    seed: int,
) -> LoadResult:
    _prepare_bench_table(conn, database, table)
    rng = random.Random(seed)
    # One random pool sliced per row: generating fresh random bytes per row would dominate the
    # client's time for the large load; the slices still defeat any compression.
    pool = rng.randbytes(row_bytes * 4)
    sql = f"INSERT INTO `{database}`.`{table}` (payload) VALUES (%s)"
    started = time.monotonic()
    try:
        with conn.cursor() as cur:
            for n in range(transactions):
                offset = (n * 7919) % (row_bytes * 3)
                rows = [(pool[offset + i : offset + i + row_bytes],) for i in range(rows_per_txn)]
                if rows_per_txn == 1:
                    cur.execute(sql, rows[0])
                else:
                    cur.executemany(sql, rows)
                conn.commit()
    finally:
        conn.autocommit(True)
    return LoadResult(
        transactions=transactions,
        rows=transactions * rows_per_txn,
        payload_bytes=transactions * rows_per_txn * row_bytes,
        seconds=time.monotonic() - started,
    )


def small_txn_load(
    conn: Connection, n: int, size: int = 500, *, database: str = "kb_bench", seed: int = 0
) -> LoadResult:
    """``n`` transactions of one ``size``-byte row each."""
    return _load(
        conn, transactions=n, rows_per_txn=1, row_bytes=size, database=database, table="small_txn", seed=seed
    )


def large_txn_load(
    conn: Connection,
    n: int,
    size: int = 1 << 20,
    *,
    rows_per_txn: int = 16,
    database: str = "kb_bench",
    seed: int = 0,
) -> LoadResult:
    """``n`` transactions of about ``size`` bytes, split over ``rows_per_txn`` rows (executemany)."""
    return _load(
        conn,
        transactions=n,
        rows_per_txn=rows_per_txn,
        row_bytes=max(1, size // rows_per_txn),
        database=database,
        table="large_txn",
        seed=seed,
    )
