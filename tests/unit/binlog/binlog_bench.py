"""Micro-benchmarks of the binlog hot paths (not a test; run it directly):

    ~/.cache/kingbus/venv/bin/python -m tests.unit.binlog.binlog_bench

Prints events/s for the stream assembler (CRC verified) on a typical OLTP shape
(GTID, BEGIN, TABLE_MAP, WRITE_ROWS, XID; ~100-byte row events), transactions/s for the
scanner, and GTID-set builder appends/s.
"""

from __future__ import annotations

import time

from kingbus.binlog import events, format_description, gtid_events, query
from kingbus.binlog.events import EventType
from kingbus.binlog.gtids import Gtid, GtidSetBuilder
from kingbus.binlog.transactions import Transaction, TransactionAssembler, TransactionScanner

UUID = "2ae24d10-e786-11f1-9275-02fc00000001"


def oltp_stream(n_txns: int, rows_per_txn: int = 1) -> list[bytes]:
    def ev(t: int, body: bytes) -> bytes:
        return events.build_event(event_type=t, body=body, server_id=1, log_pos=0, checksum=True)

    table_map = ev(EventType.TABLE_MAP, b"t" * 40)
    write_rows = ev(EventType.WRITE_ROWS, b"r" * 100)
    begin = query.encode_query("BEGIN", server_id=1, log_pos=0, checksum=True, database=b"db")
    xid = query.encode_xid(1, server_id=1, log_pos=0, checksum=True)
    out = [format_description.encode_format_description(server_id=1)]
    for gno in range(1, n_txns + 1):
        out.append(gtid_events.encode_gtid_event(Gtid(UUID, gno), server_id=1, log_pos=0, checksum=True))
        out.append(begin)
        for _ in range(rows_per_txn):
            out.append(table_map)
            out.append(write_rows)
        out.append(xid)
    return out


def bench_assembler(n_txns: int = 40_000, rows_per_txn: int = 1) -> float:
    stream = oltp_stream(n_txns, rows_per_txn)
    asm = TransactionAssembler()
    feed = asm.feed
    start = time.perf_counter()
    n = 0
    for e in stream:
        if isinstance(feed(e), Transaction):
            n += 1
    elapsed = time.perf_counter() - start
    assert n == n_txns
    return len(stream) / elapsed


def bench_scanner(n_txns: int = 40_000) -> float:
    buf = events.BINLOG_MAGIC + b"".join(oltp_stream(n_txns))
    start = time.perf_counter()
    count = sum(1 for _ in TransactionScanner(buf))
    elapsed = time.perf_counter() - start
    assert count == n_txns
    return n_txns / elapsed


def bench_builder(n: int = 1_000_000) -> float:
    builder = GtidSetBuilder()
    gtids = [Gtid(UUID, g) for g in range(1, n + 1)]
    start = time.perf_counter()
    for g in gtids:
        builder.add(g)
    elapsed = time.perf_counter() - start
    assert builder.build().count() == n
    return n / elapsed


def main() -> None:
    print(f"assembler, 5 events/txn:  {bench_assembler():>12,.0f} events/s")
    print(f"assembler, 11 events/txn: {bench_assembler(20_000, 4):>12,.0f} events/s")
    print(f"scanner:                  {bench_scanner():>12,.0f} transactions/s")
    print(f"GtidSetBuilder.add:       {bench_builder():>12,.0f} appends/s")


if __name__ == "__main__":
    main()
