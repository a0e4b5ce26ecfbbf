"""kingbus.binlog against a live MySQL 9.7 server (devenv): files, dump stream, GTID text/algebra.

The server writes a mixed workload (DML, DDL, a >16 MiB row event) plus the shapes the
fixtures cover (tagged GTIDs, XA, a compressed transaction, MyISAM, a checksum-free file);
then every binlog file must scan cleanly, agree with the independent oracle in
tests/support/source_binlog.py and with @@gtid_executed, and a COM_BINLOG_DUMP_GTID stream
must assemble into exactly the same transactions, byte for byte.
"""

from __future__ import annotations

import contextlib
import random
import struct
from typing import Any

from kingbus.binlog import control_events, events
from kingbus.binlog.events import EventType
from kingbus.binlog.gtids import Gtid, GtidSet, GtidSetBuilder
from kingbus.binlog.transactions import (
    ControlEvent,
    Tail,
    Transaction,
    TransactionAssembler,
    TransactionScanner,
)
from kingbus.devenv import mysql, workload
from tests.support import source_binlog

SHAPES_SQL = [
    "CREATE DATABASE shapes",
    "CREATE TABLE shapes.i (id INT PRIMARY KEY, v VARCHAR(50)) ENGINE=InnoDB",
    "CREATE TABLE shapes.m (id INT PRIMARY KEY, v VARCHAR(50)) ENGINE=MyISAM",
    "INSERT INTO shapes.m VALUES (1, 'myisam')",
    "SET gtid_next='AUTOMATIC:Live_Tag'",
    "INSERT INTO shapes.i VALUES (1, 'tagged')",
    "SET gtid_next='AUTOMATIC:ddl_tag'",
    "CREATE TABLE shapes.t (id INT PRIMARY KEY)",
    "SET gtid_next='AUTOMATIC'",
    "XA START 'a'", "INSERT INTO shapes.i VALUES (2, 'xa')", "XA END 'a'", "XA PREPARE 'a'", "XA COMMIT 'a'",
    "XA START 'b'", "INSERT INTO shapes.i VALUES (3, 'xa')", "XA END 'b'", "XA PREPARE 'b'",
    "XA ROLLBACK 'b'",
    "XA START 'c'", "INSERT INTO shapes.i VALUES (4, 'xa')", "XA END 'c'", "XA COMMIT 'c' ONE PHASE",
    "SET SESSION binlog_transaction_compression=ON",
    "INSERT INTO shapes.i VALUES (5, 'compressed'), (6, 'compressed')",
    "SET SESSION binlog_transaction_compression=OFF",
    "FLUSH BINARY LOGS",
    "SET GLOBAL binlog_checksum='NONE'",
    "INSERT INTO shapes.i VALUES (7, 'no crc')",
    "SET gtid_next='AUTOMATIC:nocrc'",
    "BEGIN", "INSERT INTO shapes.i VALUES (8, 'a')", "INSERT INTO shapes.i VALUES (9, 'b')", "COMMIT",
    "SET gtid_next='AUTOMATIC'",
    "SET GLOBAL binlog_checksum='CRC32'",
    "INSERT INTO shapes.i VALUES (10, 'crc again')",
]  # fmt: skip


def run_sql(server: mysql.MySQLServer, statements: list[str]) -> None:
    with contextlib.closing(server.connect()) as conn, conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)


def dump_gtid(server: mysql.MySQLServer, gtids: GtidSet, *, flags: int = 0x03) -> list[bytes]:
    """A minimal non-blocking COM_BINLOG_DUMP_GTID client; returns the raw events."""
    conn: Any = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET @source_binlog_checksum = @@global.binlog_checksum")
            cur.execute("SET @source_heartbeat_period = 100000000")  # 0.1 s, in nanoseconds
        data = gtids.encode()
        payload = (
            b"\x1e"  # COM_BINLOG_DUMP_GTID
            + struct.pack("<HI", flags, 0xFFFF)  # flags, server_id
            + struct.pack("<I", 0)  # name_len: no file name
            + struct.pack("<Q", 4)  # position
            + struct.pack("<I", len(data))
            + data
        )
        conn._next_seq_id = 0
        conn._write_bytes(struct.pack("<I", len(payload))[:3] + b"\x00" + payload)
        conn._next_seq_id = 1
        out: list[bytes] = []
        while True:
            packet = conn._read_packet()  # reassembles payloads >= 16 MiB, raises on ERR
            raw = packet.get_all_data()
            if raw[:1] == b"\xfe" and len(raw) < 9:
                return out
            out.append(raw[1:])
    finally:
        conn.close()


def test_live_files_stream_and_gtid_text(mysql_source: mysql.MySQLServer) -> None:
    server = mysql_source
    with contextlib.closing(server.connect()) as conn:
        workload.mixed_workload(conn, transactions=150, seed=11, big_row_bytes=17 << 20)
    run_sql(server, SHAPES_SQL)
    with contextlib.closing(server.connect()) as conn:
        workload.mixed_workload(conn, transactions=50, seed=12, database="second")

    # --- the files ------------------------------------------------------------------------------
    paths = source_binlog.binlog_paths(server.datadir)
    assert len(paths) >= 4
    scanned: list[tuple[Gtid, bytes]] = []
    previous = GtidSetBuilder()
    for path in paths:
        data = path.read_bytes()
        first_events = events.split_events(data, 4)
        fde, prev = next(first_events), next(first_events)
        checksum = fde[-5] == 1
        assert control_events.decode_previous_gtids(prev, checksum=checksum) == previous.build()
        scanner = TransactionScanner(data)
        for span in scanner:
            scanned.append((span.gtid, data[span.offset : span.end]))
            previous.add(span.gtid)
        assert scanner.tail is Tail.CLEAN and scanner.good_end == len(data), (path, scanner.tail_error)
    # The independent oracle agrees on every GTID, and on the bytes of every transaction except
    # XA ones: it ends a transaction at any first Query other than BEGIN, "XA START" included,
    # while MySQL ends XA START ... XA END with the XA_PREPARE event.
    oracle = source_binlog.read_transactions(server.datadir)
    assert [str(g) for g, _ in scanned] == [g for g, _ in oracle]
    xa = 0
    for (_, raw), (_, oracle_raw) in zip(scanned, oracle, strict=True):
        if b"XA START" in raw[:400]:
            xa += 1
            assert raw.startswith(oracle_raw)
            assert list(events.split_events(raw))[-1][4] == EventType.XA_PREPARE
        else:
            assert raw == oracle_raw
    assert xa == 3
    assert any(len(raw) > 16 << 20 for _, raw in scanned)

    executed_text = str(server.scalar("SELECT @@GLOBAL.gtid_executed"))
    executed = GtidSet.parse(executed_text)
    assert previous.build() == executed
    assert executed.format(newlines=True) == executed_text  # MySQL's exact text, ",\n" and all
    assert {g.tag for g, _ in scanned} == {"", "live_tag", "ddl_tag", "nocrc"}

    # --- the dump stream ------------------------------------------------------------------------
    asm = TransactionAssembler()
    out = [r for e in dump_gtid(server, GtidSet()) if (r := asm.feed(e)) is not None]
    txns = [o for o in out if isinstance(o, Transaction)]
    assert [(t.gtid, t.events_bytes) for t in txns] == scanned

    # Skipping: the server leaves out what we already have and sends heartbeats instead.
    have = GtidSet.from_gtids(g for i, (g, _) in enumerate(scanned) if i % 3 == 0)
    asm = TransactionAssembler()
    out = [r for e in dump_gtid(server, have) if (r := asm.feed(e)) is not None]
    got = [o.gtid for o in out if isinstance(o, Transaction)]
    assert got == [g for g, _ in scanned if g not in have]
    beats = [o for o in out if isinstance(o, ControlEvent) and o.event_type == EventType.HEARTBEAT_V2]
    assert beats


def test_gtid_set_algebra_and_text_match_mysql(mysql_source: mysql.MySQLServer) -> None:
    rng = random.Random(5)
    uuids = ["aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa", "0123abcd-0000-1111-2222-333344445555"]
    tags = ["", "", "t", "_x", "long_tag_name_31_characters_abc"]

    def random_set() -> GtidSet:
        return GtidSet.from_gtids(
            Gtid(rng.choice(uuids), rng.randrange(1, 40), rng.choice(tags))
            for _ in range(rng.randrange(0, 30))
        )

    with contextlib.closing(mysql_source.connect()) as conn, conn.cursor() as cur:
        for _ in range(60):
            a, b = random_set(), random_set()
            cur.execute(
                "SELECT GTID_SUBTRACT(%s, ''), GTID_SUBTRACT(%s, %s), GTID_SUBSET(%s, %s)",
                (a.format(), a.format(), b.format(), a.format(), b.format()),
            )
            normalized, difference, subset = cur.fetchone()
            assert a.format(newlines=True) == normalized
            assert (a - b).format(newlines=True) == difference
            assert a.issubset(b) == bool(subset)
            # Sloppy spellings MySQL accepts must mean the same set to us.
            sloppy = a.format(newlines=True).upper().replace(":", " : ").replace(",", " , ,")
            cur.execute("SELECT GTID_SUBTRACT(%s, '')", (sloppy,))
            assert GtidSet.parse(sloppy).format(newlines=True) == cur.fetchone()[0]
