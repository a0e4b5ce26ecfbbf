"""From dump-stream events to runs of Raft-ready transactions (`kingbus.upstream.cutter`)."""

from __future__ import annotations

import pytest

from kingbus.binlog import control_events, events, format_description, gtid_events, query
from kingbus.binlog.errors import MalformedEvent
from kingbus.binlog.events import EventType
from kingbus.binlog.gtids import Gtid
from kingbus.binlog.transactions import ControlEvent
from kingbus.raft.entries import Txn
from kingbus.upstream.batcher import SourceContext
from kingbus.upstream.cutter import TxnCutter, TxnRun
from kingbus.upstream.dumpstream import AckRequested, DumpEvent

U = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
FDE = format_description.encode_format_description(server_id=1)


def txn(gno: int, *, end_pos: int, timestamp: int = 1_700_000_000) -> list[bytes]:
    def ev(event_type: int, body: bytes) -> bytes:
        return events.build_event(
            event_type=event_type, body=body, server_id=1, log_pos=0, checksum=True, timestamp=timestamp
        )

    return [
        gtid_events.encode_gtid_event(
            Gtid(U, gno), server_id=1, log_pos=0, checksum=True, timestamp=timestamp
        ),
        query.encode_query("BEGIN", server_id=1, log_pos=0, checksum=True, timestamp=timestamp),
        ev(EventType.TABLE_MAP, b"t" * 20),
        ev(EventType.WRITE_ROWS, b"r" * 30),
        query.encode_xid(gno, server_id=1, log_pos=end_pos, checksum=True, timestamp=timestamp),
    ]


def rotate(next_file: str) -> bytes:
    return control_events.encode_rotate(next_file=next_file, position=4, server_id=1, checksum=True)


HEARTBEAT = control_events.encode_heartbeat_v2(file="binlog.000002", position=900, server_id=1, checksum=True)


def test_runs_carry_the_context_of_their_file_and_split_at_every_control_event() -> None:
    t1, t2, t3 = txn(1, end_pos=300), txn(2, end_pos=500), txn(3, end_pos=700)
    stream: list[DumpEvent] = [
        rotate("binlog.000001"),
        FDE,
        *t1,
        *t2,
        rotate("binlog.000002"),
        *t3,
        HEARTBEAT,
    ]
    out = TxnCutter().cut(stream)
    kinds = [type(g).__name__ if isinstance(g, TxnRun) else g.event_type for g in out]
    assert kinds == [
        EventType.ROTATE,
        EventType.FORMAT_DESCRIPTION,
        "TxnRun",
        EventType.ROTATE,
        "TxnRun",
        EventType.HEARTBEAT_V2,
    ]
    first, second = out[2], out[4]
    assert isinstance(first, TxnRun) and isinstance(second, TxnRun)
    assert first.context == SourceContext("binlog.000001", FDE)
    assert second.context == SourceContext("binlog.000002", FDE)
    assert first.txns == [
        Txn(f"{U}:1", 300, 1_700_000_000, b"".join(t1)),
        Txn(f"{U}:2", 500, 1_700_000_000, b"".join(t2)),
    ]
    assert [type(t) for t in first.txns] == [Txn, Txn]
    assert second.txns == [Txn(f"{U}:3", 700, 1_700_000_000, b"".join(t3))]
    assert first.acks == [] and second.acks == []


def test_a_transaction_split_over_reads_comes_out_whole_in_the_read_that_ends_it() -> None:
    cutter = TxnCutter()
    events_ = [rotate("binlog.000001"), FDE, *txn(1, end_pos=300)]
    assert [type(g) for g in cutter.cut(events_[:4])] == [ControlEvent, ControlEvent]
    assert cutter.in_transaction
    (run,) = cutter.cut(events_[4:])
    assert isinstance(run, TxnRun) and [t.gtid for t in run.txns] == [f"{U}:1"]
    assert run.context.source_file == "binlog.000001"
    assert not cutter.in_transaction


def test_acknowledgements_are_asked_for_the_transactions_they_end() -> None:
    t1, t2 = txn(1, end_pos=300), txn(2, end_pos=500)
    stream: list[DumpEvent] = [
        rotate("binlog.000007"),
        FDE,
        *t1[:-1],
        AckRequested(t1[-1]),
        AckRequested(t2[0]),  # not a transaction's end: nothing to acknowledge
        *t2[1:],
    ]
    (_, _, run) = TxnCutter().cut(stream)
    assert isinstance(run, TxnRun)
    assert [t.gtid for t in run.txns] == [f"{U}:1", f"{U}:2"]
    assert run.acks == [(f"{U}:1", 300)]
    assert run.txns[0].data == b"".join(t1)  # the ack request is not part of the bytes


def test_a_bad_crc_ends_the_cut() -> None:
    t1 = txn(1, end_pos=300)
    bad = t1[3][:-1] + bytes([t1[3][-1] ^ 1])
    with pytest.raises(MalformedEvent, match="CRC32"):
        TxnCutter().cut([FDE, *t1[:3], bad, t1[4]])
