"""Transaction boundaries: the stream assembler and the stored-bytes scanner.

Real MySQL 9.7 streams and files (see binlog_samples) cover what the server actually writes;
synthetic events built with the encoders cover each rule and each error one at a time.
"""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kingbus.binlog import control_events, events, format_description, gtid_events, query, transactions
from kingbus.binlog.errors import AnonymousGtidEvent, MalformedEvent, UnexpectedEvent
from kingbus.binlog.events import EventType
from kingbus.binlog.gtids import Gtid, GtidSet
from kingbus.binlog.transactions import (
    ControlEvent,
    Tail,
    Transaction,
    TransactionAssembler,
    TransactionScanner,
)
from tests.unit.binlog.binlog_samples import OTHER_UUID, SOURCE_UUID, read, stream_events

U = SOURCE_UUID


def ev(
    event_type: int, body: bytes = b"", *, checksum: bool = True, log_pos: int = 0, flags: int = 0
) -> bytes:
    return events.build_event(
        event_type=event_type, body=body, server_id=1, log_pos=log_pos, flags=flags, checksum=checksum
    )


def gtid_ev(gno: int, tag: str = "", checksum: bool = True) -> bytes:
    return gtid_events.encode_gtid_event(Gtid(U, gno, tag), server_id=1, log_pos=0, checksum=checksum)


def q(statement: str, checksum: bool = True, log_pos: int = 0) -> bytes:
    return query.encode_query(statement, server_id=1, log_pos=log_pos, checksum=checksum)


def xid(checksum: bool = True, log_pos: int = 0) -> bytes:
    return query.encode_xid(7, server_id=1, log_pos=log_pos, checksum=checksum)


def rows(checksum: bool = True) -> list[bytes]:
    return [
        ev(EventType.TABLE_MAP, b"t" * 20, checksum=checksum),
        ev(EventType.WRITE_ROWS, b"r" * 30, checksum=checksum),
    ]


FDE = format_description.encode_format_description(server_id=1)
FDE_NOCRC = format_description.encode_format_description(server_id=1, checksum_algorithm=0)
HEARTBEAT = control_events.encode_heartbeat_v2(file="binlog.000001", position=100, server_id=1, checksum=True)

# name -> the events of one whole transaction with GTID gno 1 (the last one terminates it).
SHAPES: dict[str, list[bytes]] = {
    "ddl": [gtid_ev(1), q("CREATE TABLE t (id INT)")],
    "begin-xid": [gtid_ev(1), q("BEGIN"), *rows(), xid()],
    "begin-commit": [gtid_ev(1), q("BEGIN"), *rows(), q("COMMIT")],
    "begin-rollback": [gtid_ev(1), q("BEGIN"), *rows(), q("ROLLBACK")],
    "savepoints": [gtid_ev(1), q("BEGIN"), q("SAVEPOINT a"), *rows(), q("ROLLBACK TO SAVEPOINT a"), xid()],
    "statement-based": [gtid_ev(1), q("BEGIN"), q("INSERT INTO t VALUES (1)"), q("COMMIT TO"), xid()],
    "empty": [gtid_ev(1), q("BEGIN"), q("COMMIT")],
    "create-select": [gtid_ev(1), q("BEGIN"), q("CREATE TABLE c (id INT)"), *rows(), xid()],
    "xa-prepare": [
        gtid_ev(1), q("XA START X'01',X'',1"), *rows(), q("XA END X'01',X'',1"),
        ev(EventType.XA_PREPARE, bytes(20)),
    ],
    "xa-commit-alone": [gtid_ev(1), q("XA COMMIT X'01',X'',1")],
    "xa-rollback-alone": [gtid_ev(1), q("XA ROLLBACK X'01',X'',1")],
    "xa-one-phase-query": [
        gtid_ev(1), q("XA START 'x'"), *rows(), q("XA END 'x'"), q("XA COMMIT 'x' ONE PHASE"),
    ],
    "compressed": [gtid_ev(1), ev(EventType.TRANSACTION_PAYLOAD, b"z" * 50)],
    "incident": [gtid_ev(1), ev(EventType.INCIDENT, b"\x01\x00\x00")],
    "tagged-ddl": [gtid_ev(1, "tg"), q("DROP TABLE t")],
    "rows-query-and-context": [
        gtid_ev(1), q("BEGIN"), ev(EventType.ROWS_QUERY, b"\x03abc"),
        ev(EventType.TRANSACTION_CONTEXT, b"c" * 18),
        ev(EventType.USER_VAR, b"v" * 9), ev(EventType.INTVAR, b"i" * 9), ev(EventType.RAND, b"r" * 16),
        ev(EventType.PARTIAL_UPDATE_ROWS, b"p" * 12), ev(EventType.DELETE_ROWS, b"d" * 12),
        ev(EventType.UPDATE_ROWS, b"u" * 12), ev(200, b"unknown inside a transaction is opaque data"), xid(),
    ],
}  # fmt: skip


def feed_all(asm: TransactionAssembler, evs: list[bytes]) -> list[Transaction | ControlEvent]:
    out = []
    for e in evs:
        r = asm.feed(e)
        if r is not None:
            out.append(r)
    return out


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_each_boundary_rule(shape: str) -> None:
    evs = SHAPES[shape]
    asm = TransactionAssembler(checksum=True)
    for e in evs[:-1]:
        assert asm.feed(e) is None  # never a partial transaction
        assert asm.in_transaction
    txn = asm.feed(evs[-1])
    assert isinstance(txn, Transaction)
    assert txn.events_bytes == b"".join(evs) and txn.n_events == len(evs)
    assert txn.gtid == Gtid(U, 1, "tg" if shape.startswith("tagged") else "")
    assert not asm.in_transaction and asm.pending_gtid is None


def test_heartbeat_inside_a_transaction_is_passed_through() -> None:
    asm = TransactionAssembler(checksum=True)
    shape = SHAPES["begin-xid"]
    assert asm.feed(shape[0]) is None and asm.feed(shape[1]) is None
    hb = asm.feed(HEARTBEAT)
    assert isinstance(hb, ControlEvent) and hb.event_type == EventType.HEARTBEAT_V2 and hb.data == HEARTBEAT
    assert asm.pending_gtid == Gtid(U, 1)
    results = feed_all(asm, shape[2:])
    assert len(results) == 1 and isinstance(results[0], Transaction)
    assert results[0].events_bytes == b"".join(shape)  # no heartbeat bytes inside


def test_last_log_pos_and_control_events() -> None:
    asm = TransactionAssembler()
    fake_rotate = control_events.encode_rotate(
        next_file="binlog.000009", position=4, server_id=1, checksum=True
    )
    prev = control_events.encode_previous_gtids(GtidSet(), server_id=1, log_pos=158, checksum=True)
    out = feed_all(asm, [fake_rotate, FDE, prev, gtid_ev(1), q("BEGIN"), xid(log_pos=999)])
    assert [type(o).__name__ for o in out] == ["ControlEvent"] * 3 + ["Transaction"]
    assert [o.event_type for o in out[:3] if isinstance(o, ControlEvent)] == [4, 15, 35]
    assert isinstance(out[1], ControlEvent) and out[1].data == FDE and out[1].log_pos == 4 + len(FDE)
    assert isinstance(out[3], Transaction) and out[3].last_log_pos == 999
    assert asm.checksum is True  # learned from the FDE


@pytest.mark.parametrize(
    ("prefix", "bad", "error", "message"),
    [
        ([], ev(EventType.ANONYMOUS_GTID, bytes(42)), AnonymousGtidEvent, "GTID_MODE=ON"),
        (
            [gtid_ev(1), q("BEGIN")],
            ev(EventType.ANONYMOUS_GTID, bytes(42)),
            UnexpectedEvent,
            "inside an unfinished",
        ),
        ([], ev(EventType.TABLE_MAP, b"x"), UnexpectedEvent, "TABLE_MAP event outside a transaction"),
        ([], xid(), UnexpectedEvent, "XID event outside"),
        ([], q("BEGIN"), UnexpectedEvent, "QUERY event outside"),
        ([], ev(200, b"x"), UnexpectedEvent, "type 200 event outside"),
        ([gtid_ev(1)], gtid_ev(2), UnexpectedEvent, "GTID event inside"),
        ([gtid_ev(1), q("BEGIN")], gtid_ev(2, "t"), UnexpectedEvent, "GTID_TAGGED event inside"),
        ([gtid_ev(1), q("BEGIN")], FDE, UnexpectedEvent, "FORMAT_DESCRIPTION event inside"),
        (
            [gtid_ev(1), q("XA START 'x'")],
            ev(EventType.ROTATE, bytes(9)),
            UnexpectedEvent,
            "ROTATE event inside",
        ),
        ([gtid_ev(1), q("BEGIN")], ev(EventType.PREVIOUS_GTIDS, bytes(8)), UnexpectedEvent, "PREVIOUS_GTIDS"),
        ([gtid_ev(1), q("BEGIN")], ev(EventType.STOP), UnexpectedEvent, "STOP event inside"),
        ([gtid_ev(1)], ev(EventType.TABLE_MAP, b"x"), UnexpectedEvent, "right after a GTID"),
        ([gtid_ev(1)], xid(), UnexpectedEvent, "right after a GTID"),
        ([], ev(EventType.QUERY, b"\x00" * 5), UnexpectedEvent, "outside"),
        ([gtid_ev(1)], ev(EventType.QUERY, b"\x00" * 5), MalformedEvent, "post-header"),
        ([], ev(EventType.GTID, b"\x00" * 5), MalformedEvent, "too short"),
        ([], xid()[:-1] + b"\x00", MalformedEvent, "bad CRC32"),
        ([gtid_ev(1), q("BEGIN")], xid()[:-1] + b"\x00", MalformedEvent, "bad CRC32"),
        ([], xid()[:18], MalformedEvent, "shorter than its 19-byte header"),
        ([], xid() + b"\x00", MalformedEvent, "event_size 31 but 32 bytes"),
        ([], ev(EventType.QUERY, b"", checksum=False)[:19], MalformedEvent, "bad CRC32"),
        ([], FDE[:-1] + b"\x00", MalformedEvent, "Format_description event: bad CRC32"),
        ([], ev(EventType.FORMAT_DESCRIPTION, b"\x00" * 10), MalformedEvent, "too short"),
    ],
)
def test_errors_leave_the_assembler_unchanged(
    prefix: list[bytes], bad: bytes, error: type[Exception], message: str
) -> None:
    asm = TransactionAssembler(checksum=True)
    feed_all(asm, prefix)
    before = (asm.in_transaction, asm.pending_gtid)
    with pytest.raises(error, match=message):
        asm.feed(bad)
    assert (asm.in_transaction, asm.pending_gtid) == before
    # The caller resets (reconnect) and a whole transaction goes through.
    asm.reset()
    out = feed_all(asm, SHAPES["begin-xid"])
    assert len(out) == 1 and isinstance(out[0], Transaction)


def test_unknown_fde_checksum_algorithm() -> None:
    bad = events.recompute_crc(FDE[:-5] + b"\x09" + FDE[-4:])
    with pytest.raises(MalformedEvent, match="algorithm 9"):
        TransactionAssembler().feed(bad)


def test_checksum_must_be_known_before_a_transaction() -> None:
    asm = TransactionAssembler()
    fake_rotate = control_events.encode_rotate(
        next_file="binlog.000001", position=4, server_id=1, checksum=True
    )
    assert isinstance(asm.feed(fake_rotate), ControlEvent)  # fine: control events need no body parsing
    with pytest.raises(UnexpectedEvent, match="before any Format_description"):
        asm.feed(gtid_ev(1))


def test_fde_switches_checksum_off_and_on() -> None:
    asm = TransactionAssembler(checksum=True)
    plain = [gtid_ev(1, checksum=False), q("BEGIN", checksum=False), xid(checksum=False)]
    out = feed_all(asm, [FDE_NOCRC, *plain, FDE, *SHAPES["ddl"]])
    assert [type(o).__name__ for o in out] == ["ControlEvent", "Transaction", "ControlEvent", "Transaction"]
    assert isinstance(out[1], Transaction) and out[1].events_bytes == b"".join(plain)


def test_verify_crc_can_be_disabled() -> None:
    asm = TransactionAssembler(checksum=True, verify_crc=False)
    damaged = xid()[:-1] + b"\x00"
    out = feed_all(asm, [gtid_ev(1), q("BEGIN"), damaged])
    assert isinstance(out[0], Transaction) and out[0].events_bytes.endswith(damaged)


def test_unknown_ignorable_event_outside_a_transaction_is_control() -> None:
    asm = TransactionAssembler(checksum=True)
    out = asm.feed(ev(201, b"future", flags=0x80))
    assert isinstance(out, ControlEvent) and out.event_type == 201


def test_reset_drops_a_partial_transaction() -> None:
    asm = TransactionAssembler(checksum=True)
    feed_all(asm, SHAPES["begin-xid"][:3])
    assert asm.in_transaction and asm.pending_gtid == Gtid(U, 1)
    asm.reset()
    assert not asm.in_transaction and asm.pending_gtid is None
    with pytest.raises(UnexpectedEvent):
        asm.feed(SHAPES["begin-xid"][3])  # the tail of the dropped transaction is now orphaned
    out = feed_all(asm, SHAPES["begin-xid"])  # the source resends it from its GTID event
    assert isinstance(out[0], Transaction) and out[0].events_bytes == b"".join(SHAPES["begin-xid"])


def synthetic_txn(shape: str, gno: int) -> list[bytes]:
    first = SHAPES[shape][0]
    tag = "tg" if first[4] == EventType.GTID_TAGGED else ""
    return [gtid_ev(gno, tag), *SHAPES[shape][1:]]


@given(
    st.lists(
        st.tuples(st.sampled_from(sorted(SHAPES)), st.lists(st.integers(0, 12), max_size=2)), max_size=12
    ),
    st.integers(0, 200),
)
def test_stream_property(plan: list[tuple[str, list[int]]], cut: int) -> None:
    """Whatever the mix of transactions and heartbeats, the output is exactly the input's
    transactions in order; and a reconnect (reset + resend) after any cut loses nothing."""
    stream: list[bytes] = [FDE]
    expected: list[bytes] = []
    for gno, (shape, beat_positions) in enumerate(plan, start=1):
        txn = synthetic_txn(shape, gno)
        expected.append(b"".join(txn))
        for p in sorted(beat_positions, reverse=True):
            if 0 < p < len(txn):
                txn.insert(p, HEARTBEAT)
        stream.extend(txn)
    asm = TransactionAssembler()
    got = [o.events_bytes for o in feed_all(asm, stream) if isinstance(o, Transaction)]
    assert got == expected
    # Reconnect after `cut` events: keep what was complete, reset, resend from the next transaction.
    cut = min(cut, len(stream))
    asm2 = TransactionAssembler()
    first = [o for o in feed_all(asm2, stream[:cut]) if isinstance(o, Transaction)]
    asm2.reset()
    done = len(first)
    resend = [FDE] + [
        e for gno in range(done + 1, len(plan) + 1) for e in synthetic_txn(plan[gno - 1][0], gno)
    ]
    second = [o for o in feed_all(asm2, resend) if isinstance(o, Transaction)]
    assert [t.events_bytes for t in first + second] == expected


# --- real MySQL 9.7 streams ------------------------------------------------------------------------

FILE1 = read("mysql97-crc32.000001")
FILE3 = read("mysql97-none.000003")


def spans(buf: bytes) -> list[transactions.TransactionSpan]:
    scanner = TransactionScanner(buf)
    out = list(scanner)
    assert scanner.tail is Tail.CLEAN and scanner.good_end == len(buf)
    return out


def test_real_dump_stream_assembles_byte_identical_transactions() -> None:
    asm = TransactionAssembler()
    out = feed_all(asm, stream_events("dump-gtid-crc32-all.stream"))
    txns = [o for o in out if isinstance(o, Transaction)]
    controls = [o.event_type for o in out if isinstance(o, ControlEvent)]
    assert controls[:3] == [EventType.ROTATE, EventType.FORMAT_DESCRIPTION, EventType.PREVIOUS_GTIDS]
    # Per file: its Rotate (not for the last one), then fake Rotate, FDE, Previous_gtids of the next.
    assert (
        controls[3:]
        == [EventType.ROTATE, EventType.ROTATE, EventType.FORMAT_DESCRIPTION, EventType.PREVIOUS_GTIDS] * 4
    )
    rotate_events = [o.data for o in out if isinstance(o, ControlEvent) and o.event_type == EventType.ROTATE]
    first_three = [control_events.decode_rotate(e, checksum=True) for e in rotate_events[:3]]  # CRC32 files
    assert [(r.next_file, r.artificial) for r in first_three] == [
        ("binlog.000001", True),  # the fake Rotate that opens the dump
        ("binlog.000002", False),  # the real Rotate at the end of binlog.000001
        ("binlog.000002", True),  # the fake Rotate before the next file's FDE
    ]
    assert asm.checksum is True  # the last file is back to CRC32
    # Every transaction is exactly the bytes of the source's file at the scanner's span.
    stored = [(FILE1, s) for s in spans(FILE1)] + [(FILE3, s) for s in spans(FILE3)]
    assert len(txns) == len(stored) == 19 + 3
    for txn, (buf, span) in zip(txns, stored, strict=True):
        assert txn.gtid == span.gtid
        assert txn.events_bytes == buf[span.offset : span.end]
        assert txn.last_log_pos == span.end  # the source's file offset after the transaction
        assert txn.n_events == len(list(events.split_events(txn.events_bytes)))
    executed = GtidSet.from_gtids(t.gtid for t in txns)
    assert executed.format() == f"{OTHER_UUID}:7:tg:100,{U}:1-16:nc:1:tag_one:1-2:zz:1"


def test_real_dump_stream_with_skipped_transactions() -> None:
    skipped = GtidSet.parse(f"{U}:1-5:tag_one:1,{OTHER_UUID}:7")
    out = feed_all(TransactionAssembler(), stream_events("dump-gtid-crc32-skip.stream"))
    txns = [o for o in out if isinstance(o, Transaction)]
    all_txns = [s.gtid for s in spans(FILE1)] + [s.gtid for s in spans(FILE3)]
    assert [t.gtid for t in txns] == [g for g in all_txns if g not in skipped]
    beats = [
        control_events.decode_heartbeat(o.data, checksum=True)
        for o in out
        if isinstance(o, ControlEvent) and o.event_type == EventType.HEARTBEAT_V2
    ]
    assert [b.position for b in beats] == [1482, 2117, 4676]  # the ends of the skipped runs  # fmt: skip


# --- the scanner --------------------------------------------------------------------------------------


def test_scanner_real_files() -> None:
    s1 = spans(FILE1)
    assert s1[0].offset == 4 + 123 + 31  # after magic, FDE, Previous_gtids
    assert all(a.end == b.offset for a, b in itertools.pairwise(s1))
    assert [str(s.gtid) for s in spans(FILE3)] == [f"{U}:15", f"{U}:nc:1", f"{U}:16"]
    for empty in ("mysql97-crc32.000002", "mysql97-crc32.000004", "mysql97-crc32-active.000005"):
        assert spans(read(empty)) == []  # the active file's in-use FDE passes its CRC check


def test_scanner_from_an_offset_with_known_checksum() -> None:
    s1 = spans(FILE1)
    scanner = TransactionScanner(FILE1, s1[5].offset, checksum=True)
    assert list(scanner) == s1[5:] and scanner.tail is Tail.CLEAN
    unknown = TransactionScanner(FILE1, s1[5].offset)
    assert list(unknown) == [] and unknown.tail is Tail.MALFORMED and unknown.good_end == s1[5].offset


def test_scanner_empty_inputs() -> None:
    for buf, end in ((b"", 0), (events.BINLOG_MAGIC, 4)):
        scanner = TransactionScanner(buf)
        assert list(scanner) == [] and scanner.tail is Tail.CLEAN and scanner.good_end == end


@pytest.mark.parametrize("name", ["mysql97-crc32.000001", "mysql97-none.000003"])
def test_scanner_torn_tail_at_every_offset(name: str) -> None:
    buf = read(name)
    full = spans(buf)
    boundaries = {4, 4 + 123, *(s.end for s in full)}  # ends of complete units
    boundaries.add(full[0].offset)  # the end of Previous_gtids
    boundaries.add(len(buf))  # the final Rotate
    for cut in range(4, len(buf) + 1):
        scanner = TransactionScanner(buf[:cut])
        got = list(scanner)
        assert got == [s for s in full if s.end <= cut]
        assert scanner.good_end == max(b for b in boundaries if b <= cut)
        if cut in boundaries:
            assert scanner.tail is Tail.CLEAN, cut
        else:
            assert scanner.tail is Tail.INCOMPLETE, (cut, scanner.tail_error)
            assert scanner.tail_error


def test_scanner_bad_crc_in_the_middle() -> None:
    full = spans(FILE1)
    victim = full[4]
    damaged = bytearray(FILE1)
    damaged[victim.offset + 100] ^= 0xFF  # inside an event of the fifth transaction
    scanner = TransactionScanner(bytes(damaged))
    assert list(scanner) == full[:4]
    assert scanner.tail is Tail.BAD_CRC and scanner.good_end == victim.offset
    assert "bad CRC32" in (scanner.tail_error or "")


def test_scanner_bad_fde_crc() -> None:
    damaged = bytearray(FILE1)
    damaged[30] ^= 0x01
    scanner = TransactionScanner(bytes(damaged))
    assert list(scanner) == [] and scanner.tail is Tail.BAD_CRC and scanner.good_end == 4


def test_scanner_malformed_header_and_grammar() -> None:
    full = spans(FILE1)
    bad_size = bytearray(FILE1)
    struct.pack_into("<I", bad_size, full[2].offset + 9, 7)  # event_size 7 < 19
    scanner = TransactionScanner(bytes(bad_size))
    assert list(scanner) == full[:2] and scanner.tail is Tail.MALFORMED and scanner.good_end == full[2].offset
    # Two GTID events in a row: the first transaction never ends.
    buf = events.BINLOG_MAGIC + FDE + gtid_ev(1) + gtid_ev(2) + q("COMMIT")
    scanner = TransactionScanner(buf)
    assert list(scanner) == [] and scanner.tail is Tail.MALFORMED and scanner.good_end == 4 + len(FDE)
    assert "inside an unfinished transaction" in (scanner.tail_error or "")
    # Whole events, but the last transaction has no terminating event.
    buf = events.BINLOG_MAGIC + FDE + b"".join(SHAPES["ddl"]) + b"".join(SHAPES["begin-xid"][:-1])
    scanner = TransactionScanner(buf)
    assert len(list(scanner)) == 1 and scanner.tail is Tail.INCOMPLETE
    assert scanner.good_end == 4 + len(FDE) + len(b"".join(SHAPES["ddl"]))
    # An undecodable GTID event is malformed, not a CRC problem.
    buf = events.BINLOG_MAGIC + FDE + ev(EventType.GTID, b"\x00" * 5)
    scanner = TransactionScanner(buf)
    assert list(scanner) == [] and scanner.tail is Tail.MALFORMED


# --- the assembler's fast paths decide exactly as the general state machine ----------------------


class _GeneralOnly(TransactionAssembler):
    """The assembler with its fast paths bypassed: every event goes through `_step`."""

    __slots__ = ()

    def feed(self, event: bytes) -> Transaction | ControlEvent | None:
        n = len(event)
        if n < events.HEADER_LEN:
            raise MalformedEvent("short")
        event_type = event[4]
        size, log_pos = struct.unpack_from("<II", event, 9)
        if size != n:
            raise MalformedEvent("size")
        if event_type == EventType.FORMAT_DESCRIPTION:
            return self._feed_fde(event, log_pos)
        if self.checksum and not events.crc32_ok(event):
            raise MalformedEvent("crc")
        return self._general(event, event_type, log_pos)


# Events that take a fast path, their look-alikes that must not, and events that break the grammar.
_PIECES = [
    FDE,
    FDE_NOCRC,
    HEARTBEAT,
    gtid_ev(3),
    gtid_ev(4, "tg"),
    q("BEGIN"),
    q("begin"),
    q(" BEGIN "),
    q("BEGIN", checksum=False),
    query.encode_query("BEGIN", server_id=1, log_pos=0, checksum=True, database=b"db"),
    query.encode_query("BEGIN", server_id=1, log_pos=0, checksum=True, status_vars=b"\x00\x01\x02"),
    q("BEGINX"),
    q("XBEGIN"),
    q("COMMIT"),
    q("CREATE TABLE t (id INT)"),
    xid(),
    xid(checksum=False),
    *rows(),
    ev(EventType.ROTATE, bytes(8) + b"binlog.000002"),
    ev(EventType.ANONYMOUS_GTID, bytes(40)),
]


@given(st.lists(st.sampled_from(range(len(_PIECES))), max_size=40))
def test_fast_paths_decide_exactly_as_the_general_state_machine(picks: list[int]) -> None:
    fast, general = TransactionAssembler(checksum=True), _GeneralOnly(checksum=True)
    for i in picks:
        outcomes = []
        for asm in (fast, general):
            try:
                outcomes.append(("ok", asm.feed(_PIECES[i]), asm.in_transaction, asm.checksum))
            except (MalformedEvent, UnexpectedEvent) as exc:
                outcomes.append(("error", type(exc), asm.in_transaction, asm.checksum))
        assert outcomes[0] == outcomes[1], f"piece {i}"


def test_transactions_carry_their_gtid_as_text_and_as_an_object() -> None:
    asm = TransactionAssembler(checksum=True)
    (txn,) = feed_all(asm, SHAPES["begin-xid"])
    assert isinstance(txn, Transaction)
    assert txn.gtid_text == f"{U}:1" and txn.gtid == Gtid(U, 1)
    (tagged,) = feed_all(asm, [gtid_ev(2, "tg"), q("DROP TABLE t")])
    assert isinstance(tagged, Transaction) and tagged.gtid_text == f"{U}:tg:2"


def test_a_gtid_event_with_gno_zero_is_malformed() -> None:
    body = bytearray(gtid_ev(1)[events.HEADER_LEN : -4])
    body[17:25] = bytes(8)  # gno 0
    with pytest.raises(MalformedEvent, match="gno"):
        TransactionAssembler(checksum=True).feed(ev(EventType.GTID, bytes(body)))
