"""CPU per transaction of the ingest path's pure stages, in one process, without sockets.

The three-node benchmark (`bench.ingest`) says how fast the cluster is; this says where a
small transaction's CPU goes on the way, stage by stage, so that a change to one stage can be
judged in seconds and without the noise of five processes sharing two CPUs:

* ``syncer``: the leader's work from dump-stream bytes to Raft payloads -- cutting packets
  (`DumpStream`), CRC checks and transaction boundaries (`TxnCutter`), batching (`Batcher`)
  and encoding (`entries.encode`).  The socket reads and Raft are not included.
* ``decode``: `entries.decode` of every payload (what a follower does first in apply).
* ``apply (follower)``: `StateMachine.apply` of every payload into a real `BinlogStore` in a
  temporary directory (decode, GTID checks, segment and index writes; no fsync).
* ``apply (leader)``: the same with the entries handed over by `StateMachine.expect`, as the
  syncer does on the leader.

The stream is synthetic but shaped like the benchmark's small load on MySQL 9.7: per
transaction a GTID event, ``BEGIN``, a Table_map, a Write_rows with one ``--row-bytes`` row and
an XID, each with its CRC32, framed as dump packets.  Run ``python -m bench.hotpath``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from kingbus.binlog import events
from kingbus.binlog.format_description import encode_format_description
from kingbus.binlog.gtid_events import encode_gtid_event
from kingbus.binlog.gtids import Gtid
from kingbus.binlog.query import encode_query, encode_xid
from kingbus.protocol.framing import frame
from kingbus.raft import entries
from kingbus.raft.statemachine import StateMachine
from kingbus.store.store import BinlogStore
from kingbus.upstream.batcher import Batcher
from kingbus.upstream.cutter import TxnCutter, TxnRun
from kingbus.upstream.dumpstream import DumpStream

SERVER_ID = 1
READ_BYTES = 256 * 1024  # what one socket read delivers under load (the client reads 256 KiB)


def synthetic_stream(n: int, row_bytes: int) -> bytes:
    """`n` small row transactions as a source streams them after COM_BINLOG_DUMP_GTID."""
    source = str(uuid.UUID(int=0x3E11FA47_71CA_11E1_9E33_C80AA9429562))
    out = bytearray()
    seq = 1
    pos = 4

    def put(event: bytes) -> None:
        nonlocal seq
        data, seq = frame(b"\x00" + event, seq)
        out.extend(data)

    fde = encode_format_description(server_id=SERVER_ID, log_pos=0)
    put(fde)
    pos += len(fde)
    row = bytes(range(256)) * (row_bytes // 256 + 1)
    for gno in range(1, n + 1):
        gtid = Gtid(source, gno)
        for make in (
            lambda p: encode_gtid_event(gtid, server_id=SERVER_ID, log_pos=p, checksum=True),  # noqa: B023
            lambda p: encode_query("BEGIN", server_id=SERVER_ID, log_pos=p, checksum=True),
            lambda p: events.build_event(
                event_type=events.EventType.TABLE_MAP,
                body=b"\x2a" + bytes(7) + b"\x04bench\x00\x01t\x00\x02\x03\x0f\x02\x00\x10\x00",
                server_id=SERVER_ID,
                log_pos=p,
                checksum=True,
            ),
            lambda p: events.build_event(
                event_type=events.EventType.WRITE_ROWS,
                body=b"\x2a" + bytes(7) + b"\x02\x00\x02\xff\x00" + row[:row_bytes],
                server_id=SERVER_ID,
                log_pos=p,
                checksum=True,
            ),
            lambda p: encode_xid(gno, server_id=SERVER_ID, log_pos=p, checksum=True),  # noqa: B023
        ):
            pos += len(make(0))  # log_pos is where the event ends: its size first
            put(make(pos))
    return bytes(out)


def syncer_stage(stream: bytes, entry_bytes: int) -> list[bytes]:
    """Dump-stream bytes -> Raft payloads, as the leader's syncer does between its reads and
    its proposals."""
    dump = DumpStream()
    cutter = TxnCutter()
    batcher = Batcher(entries.Session(1, 1), entry_bytes)
    payloads: list[bytes] = []
    for start in range(0, len(stream), READ_BYTES):
        dump.feed(stream[start : start + READ_BYTES])
        for group in cutter.cut(dump.take()):
            if isinstance(group, TxnRun):
                payloads.extend(entries.encode(e) for e in batcher.add_all(group.txns, group.context))
    payloads.extend(entries.encode(e) for e in batcher.flush())
    return payloads


def _timed(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--row-bytes", type=int, default=500)
    parser.add_argument("--entry-bytes", type=int, default=2 * 1024 * 1024)
    parser.add_argument("--repeat", type=int, default=3, help="runs per stage; the best is shown")
    args = parser.parse_args(argv)
    n = args.transactions
    stream = synthetic_stream(n, args.row_bytes)
    print(f"{n} transactions, {len(stream) / (1 << 20):.1f} MiB of dump stream, best of {args.repeat}")

    payloads = syncer_stage(stream, args.entry_bytes)
    decoded = [entries.decode(p) for p in payloads]

    def apply_all(leader: bool) -> Callable[[], object]:
        def run() -> None:
            with tempfile.TemporaryDirectory(prefix="kb-hotpath-") as tmp:
                store = BinlogStore(Path(tmp), segment_bytes=256 << 20, fsync=False)
                machine = StateMachine(store)
                try:
                    for payload, entry in zip(payloads, decoded, strict=True):
                        if leader:
                            assert isinstance(entry, entries.TxnBatch | entries.TxnChunk)
                            machine.expect(entry, payload)
                        machine.apply(payload)
                    assert store.committed_transactions == n, store.committed_transactions
                finally:
                    store.close()

        return run

    stages: list[tuple[str, Callable[[], object]]] = [
        ("syncer", lambda: syncer_stage(stream, args.entry_bytes)),
        ("decode", lambda: [entries.decode(p) for p in payloads]),
        ("apply (follower)", apply_all(leader=False)),
        ("apply (leader)", apply_all(leader=True)),
    ]
    for name, fn in stages:
        best = min(_timed(fn) for _ in range(args.repeat))
        print(f"  {name:18} {best * 1e6 / n:6.2f} us/txn   ({n / best:>9,.0f} txn/s on one core)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
