"""Transaction boundaries in a GTID-mode binlog stream or file.

Theory of operation
-------------------
A GTID-mode binlog is a sequence of *control events* (Format_description, Rotate,
Previous_gtids, heartbeats, Stop, Incident) and *transactions*. A transaction is the run
of events from a GTID / GTID_TAGGED event through its terminating event. One small state
machine, shared by the stream assembler and the file scanner, decides where that is:

    IDLE        GTID or GTID_TAGGED        -> AFTER_GTID (transaction starts)
                control event              -> IDLE, reported as control
                ANONYMOUS_GTID             -> error: the source is not in GTID mode
                anything else              -> error: event outside a transaction
    AFTER_GTID  Query BEGIN                -> IN_BEGIN
                Query XA START             -> IN_XA
                any other Query            -> ends it (DDL, or XA COMMIT/ROLLBACK of a
                                              prepared XA transaction: one statement)
                TRANSACTION_PAYLOAD        -> ends it (a compressed transaction)
                INCIDENT                   -> ends it (an incident logged with a GTID)
    IN_BEGIN    XID                        -> ends it
                Query COMMIT / ROLLBACK    -> ends it (non-transactional engines)
                anything else              -> stays (rows, table maps, SAVEPOINT, ...)
    IN_XA       XA_PREPARE                 -> ends it (XA START .. XA END, XA PREPARE)
                Query XA COMMIT / ROLLBACK -> ends it (XA COMMIT .. ONE PHASE)
                XID, Query COMMIT/ROLLBACK -> ends it (defensive)

Heartbeats are not part of any file and may arrive at any time: they are reported as
control events and never disturb a transaction being assembled. Any other control event,
GTID or ANONYMOUS_GTID inside a transaction is an error: the source never interleaves them.

`TransactionAssembler` consumes the events a source sends after the dump handshake, one
at a time, and returns a whole `Transaction` only when its last event has arrived; it
never returns a partial one, and `reset()` drops a partial one (after a reconnect the
source resends the transaction from its GTID event). It checks each event's size and,
once the checksum setting is known (constructor or the stream's FDE), its CRC32.

`TransactionScanner` walks stored bytes (a segment file) and yields the span of each
complete transaction; it stops at the first torn, corrupt or incomplete unit and says
where the good prefix ends and why the rest is bad, for crash recovery and indexing.

Performance: the assembler keeps no per-event objects; it reads the type byte and the two
header words with one `unpack_from`, verifies the CRC with one `crc32` (`kingbus.binlog.crc`)
over the whole event (CRC-32 of data followed by its own little-endian CRC is the constant
0x2144DF1C), and only parses statement text for Query events. The transitions almost every
transaction takes (GTID, a Query that is exactly ``BEGIN``, rows, XID) are decided in `feed`
itself; everything else goes through `_step`, and a test requires both to decide alike.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from collections.abc import Iterator
from typing import NamedTuple

from kingbus.binlog.crc import crc32
from kingbus.binlog.errors import AnonymousGtidEvent, MalformedEvent, UnexpectedEvent
from kingbus.binlog.events import (
    BINLOG_MAGIC,
    CHECKSUM_LEN,
    HEADER_LEN,
    Buffer,
    ChecksumAlgorithm,
    EventFlag,
    EventType,
    crc32_ok,
    type_name,
)
from kingbus.binlog.gtid_events import gtid_of_event, gtid_text_of_event
from kingbus.binlog.gtids import Gtid
from kingbus.binlog.query import QUERY_POST_HEADER_LEN, StatementKind, classify_statement, query_statement

_SIZE_POS = struct.Struct("<II")  # event_size, log_pos at header offset 9
_CRC_RESIDUE = 0x2144DF1C

# Event type codes as plain ints: IntEnum lookups cost more than they say in the hot path.
_GTID = int(EventType.GTID)
_GTID_TAGGED = int(EventType.GTID_TAGGED)
_ANONYMOUS_GTID = int(EventType.ANONYMOUS_GTID)
_QUERY = int(EventType.QUERY)
_XID = int(EventType.XID)
_XA_PREPARE = int(EventType.XA_PREPARE)
_PAYLOAD = int(EventType.TRANSACTION_PAYLOAD)
_INCIDENT = int(EventType.INCIDENT)
_FDE = int(EventType.FORMAT_DESCRIPTION)
_HEARTBEATS = frozenset((int(EventType.HEARTBEAT), int(EventType.HEARTBEAT_V2)))
#: Events that exist between transactions.
CONTROL_TYPES = frozenset(
    int(t)
    for t in (
        EventType.FORMAT_DESCRIPTION,
        EventType.ROTATE,
        EventType.PREVIOUS_GTIDS,
        EventType.HEARTBEAT,
        EventType.HEARTBEAT_V2,
        EventType.STOP,
        EventType.INCIDENT,
    )
)
#: Events that must never appear inside a transaction (heartbeats excepted, see above).
_NOT_IN_TRANSACTION = (CONTROL_TYPES - _HEARTBEATS - {_INCIDENT}) | {_GTID, _GTID_TAGGED, _ANONYMOUS_GTID}

_KNOWN_TYPES = frozenset(int(t) for t in EventType)
#: Event types on which `_step` may do anything but "continue" inside BEGIN .. COMMIT.
_DECIDES_IN_BEGIN = _NOT_IN_TRANSACTION | _HEARTBEATS | {_QUERY, _XID}

# States.
_IDLE, _AFTER_GTID, _IN_BEGIN, _IN_XA = range(4)
# Actions.
_CONTROL, _START, _CONTINUE, _END = range(4)

_ENDS_BEGIN = (StatementKind.COMMIT, StatementKind.ROLLBACK)
_ENDS_XA = (StatementKind.XA_COMMIT, StatementKind.XA_ROLLBACK, StatementKind.COMMIT, StatementKind.ROLLBACK)


def _step(state: int, event_type: int, event: Buffer, checksum: bool) -> tuple[int, int]:
    """One transition of the boundary state machine: `(action, next_state)`.

    Raises `UnexpectedEvent` (or `MalformedEvent` for an undecodable Query) on a sequence
    that breaks the grammar.
    """
    if state == _IDLE:
        if event_type in (_GTID, _GTID_TAGGED):
            return _START, _AFTER_GTID
        if event_type in CONTROL_TYPES:
            return _CONTROL, _IDLE
        if event_type == _ANONYMOUS_GTID:
            raise AnonymousGtidEvent(
                "ANONYMOUS_GTID event: the source must run with GTID_MODE=ON for Kingbus to replicate it"
            )
        if event[17] & EventFlag.IGNORABLE and event_type not in _KNOWN_TYPES:
            return _CONTROL, _IDLE  # an unknown event its writer declared skippable
        raise UnexpectedEvent(
            f"{type_name(event_type)} event outside a transaction (no GTID event before it)"
        )
    if event_type in _HEARTBEATS:
        return _CONTROL, state
    if event_type in _NOT_IN_TRANSACTION:
        raise UnexpectedEvent(f"{type_name(event_type)} event inside an unfinished transaction")
    if state == _AFTER_GTID:
        if event_type == _QUERY:
            kind = classify_statement(query_statement(event, checksum=checksum))
            if kind is StatementKind.BEGIN:
                return _CONTINUE, _IN_BEGIN
            if kind is StatementKind.XA_START:
                return _CONTINUE, _IN_XA
            return _END, _IDLE
        if event_type in (_PAYLOAD, _INCIDENT):
            return _END, _IDLE
        raise UnexpectedEvent(f"{type_name(event_type)} event right after a GTID event")
    if state == _IN_BEGIN:
        if event_type == _XID:
            return _END, _IDLE
        if (
            event_type == _QUERY
            and classify_statement(query_statement(event, checksum=checksum)) in _ENDS_BEGIN
        ):
            return _END, _IDLE
        return _CONTINUE, state
    # _IN_XA
    if event_type in (_XA_PREPARE, _XID):
        return _END, _IDLE
    if event_type == _QUERY and classify_statement(query_statement(event, checksum=checksum)) in _ENDS_XA:
        return _END, _IDLE
    return _CONTINUE, state


def _fde_checksum(event: Buffer) -> bool:
    """The checksum setting an FDE announces (the FDE itself always carries a CRC32)."""
    if len(event) < HEADER_LEN + 57 + 1 + CHECKSUM_LEN:
        raise MalformedEvent(f"Format_description event of {len(event)} bytes is too short")
    if not crc32_ok(event):  # not the residue shortcut: an in-use FDE needs MySQL's rule
        raise MalformedEvent("Format_description event: bad CRC32")
    alg = event[len(event) - CHECKSUM_LEN - 1]
    if alg not in (ChecksumAlgorithm.OFF, ChecksumAlgorithm.CRC32):
        raise MalformedEvent(f"Format_description event: unknown checksum algorithm {alg}")
    return alg == ChecksumAlgorithm.CRC32


# --- the stream assembler ------------------------------------------------------------------------


class Transaction(NamedTuple):
    """A whole transaction, byte for byte as the source sent it (CRCs included).

    A NamedTuple holding the GTID as text: one is made per replicated transaction on the
    leader, and a frozen dataclass with a validated `Gtid` cost more than the rest of its
    assembly (`gtid` builds the object for whoever needs it)."""

    gtid_text: str
    events_bytes: bytes
    #: Header log_pos of the last event: the source's file offset after this transaction.
    last_log_pos: int
    n_events: int

    @property
    def gtid(self) -> Gtid:
        return Gtid.parse(self.gtid_text)


@dataclasses.dataclass(frozen=True, slots=True)
class ControlEvent:
    """An event between transactions (or a heartbeat anywhere), handed over unchanged."""

    event_type: int
    log_pos: int
    data: bytes


class TransactionAssembler:
    """Turns the events of a dump stream into whole transactions and control events.

    `checksum`: whether events end in a CRC32 (the answer to `SELECT @source_binlog_checksum`),
    or None to learn it from the first Format_description event. Every FDE updates it.
    """

    __slots__ = ("_check_crc", "_checksum", "_gtid", "_parts", "_state", "_verify_crc")

    def __init__(self, *, checksum: bool | None = None, verify_crc: bool = True) -> None:
        self._checksum = checksum
        self._verify_crc = verify_crc
        self._check_crc = bool(checksum) and verify_crc
        self._state = _IDLE
        self._parts: list[bytes] = []
        self._gtid: str | None = None

    @property
    def checksum(self) -> bool | None:
        return self._checksum

    @property
    def in_transaction(self) -> bool:
        return self._state != _IDLE

    @property
    def pending_gtid(self) -> Gtid | None:
        """The GTID of the transaction being assembled, if any."""
        return None if self._gtid is None else Gtid.parse(self._gtid)

    def reset(self) -> None:
        """Drop a partially assembled transaction (call it on every reconnect)."""
        self._state = _IDLE
        self._parts = []
        self._gtid = None

    def feed(self, event: bytes) -> Transaction | ControlEvent | None:
        """Consume one complete event. Returns the transaction it completes, the control event
        it is, or None while a transaction is still open.

        On `MalformedEvent` / `UnexpectedEvent` the assembler is left unchanged (the bad event
        is not consumed); the caller normally resets and reconnects.
        """
        n = len(event)
        if n < HEADER_LEN:
            raise MalformedEvent(f"event of {n} bytes is shorter than its {HEADER_LEN}-byte header")
        event_type = event[4]
        size, log_pos = _SIZE_POS.unpack_from(event, 9)
        if size != n:
            raise MalformedEvent(f"{type_name(event_type)} event_size {size} but {n} bytes received")
        if event_type == _FDE:
            return self._feed_fde(event, log_pos)
        if self._check_crc and (n < HEADER_LEN + CHECKSUM_LEN or crc32(event) != _CRC_RESIDUE):
            raise MalformedEvent(f"{type_name(event_type)} event with log_pos {log_pos}: bad CRC32")

        # The common cases first, each the same decision `_step` makes (the tests run both).
        state = self._state
        if state == _IN_BEGIN:
            if event_type not in _DECIDES_IN_BEGIN:  # rows, table maps
                self._parts.append(event)
                return None
            if event_type == _XID:
                return self._end(event, log_pos)
        elif state == _IDLE:
            if event_type == _GTID and self._checksum is not None:
                self._start(event)
                return None
        elif state == _AFTER_GTID and event_type == _QUERY and self._checksum and _is_begin(event, n):
            self._parts.append(event)
            self._state = _IN_BEGIN
            return None
        return self._general(event, event_type, log_pos)

    def _general(self, event: bytes, event_type: int, log_pos: int) -> Transaction | ControlEvent | None:
        state = self._state
        checksum = self._checksum
        if checksum is None and state == _IDLE and event_type not in CONTROL_TYPES:
            raise UnexpectedEvent(
                f"{type_name(event_type)} event before any Format_description: checksum setting unknown"
            )
        action, next_state = _step(state, event_type, event, bool(checksum))
        if action == _CONTINUE:
            self._parts.append(event)
            self._state = next_state
            return None
        if action == _CONTROL:
            return ControlEvent(event_type, log_pos, bytes(event))
        if action == _START:
            self._start(event)
            return None
        return self._end(event, log_pos)

    def _feed_fde(self, event: bytes, log_pos: int) -> ControlEvent | None:
        checksum = _fde_checksum(event)  # checks the FDE's own CRC
        action, _ = _step(self._state, _FDE, event, checksum)  # raises inside a transaction
        assert action == _CONTROL
        self._checksum = checksum
        self._check_crc = checksum and self._verify_crc
        return ControlEvent(_FDE, log_pos, bytes(event))

    def _start(self, event: bytes) -> None:
        self._gtid = gtid_text_of_event(event, checksum=bool(self._checksum))
        self._parts = [event]
        self._state = _AFTER_GTID

    def _end(self, event: bytes, log_pos: int) -> Transaction:
        parts = self._parts
        parts.append(event)
        gtid = self._gtid
        assert gtid is not None
        txn = _new_transaction(Transaction, (gtid, b"".join(parts), log_pos, len(parts)))
        self._state = _IDLE
        self._parts = []
        self._gtid = None
        return txn


_new_transaction = tuple.__new__  # skips NamedTuple's keyword-handling __new__ (hot path)
_BEGIN = b"BEGIN"


def _is_begin(event: bytes, n: int) -> bool:
    """Whether a Query event with a CRC32 holds exactly ``BEGIN``, as MySQL writes it (the
    general path, `classify_statement`, decides every other spelling the same way)."""
    post = HEADER_LEN + QUERY_POST_HEADER_LEN
    if n < post + 1 + len(_BEGIN) + CHECKSUM_LEN:
        return False
    start = post + (event[HEADER_LEN + 11] | (event[HEADER_LEN + 12] << 8)) + event[HEADER_LEN + 8] + 1
    return (
        n - CHECKSUM_LEN - start == len(_BEGIN)
        and event[start - 1] == 0
        and event[start : start + len(_BEGIN)] == _BEGIN
    )


# --- the stored-bytes scanner --------------------------------------------------------------------


class Tail(enum.Enum):
    """What follows the last complete unit of a scanned buffer."""

    CLEAN = "clean"  # nothing: the buffer ends on a boundary
    INCOMPLETE = "incomplete"  # a cut-off event, or whole events of an unfinished transaction
    BAD_CRC = "bad_crc"  # an event whose CRC32 does not match
    MALFORMED = "malformed"  # an impossible header or an event sequence that breaks the grammar


@dataclasses.dataclass(frozen=True, slots=True)
class TransactionSpan:
    offset: int
    length: int
    gtid: Gtid

    @property
    def end(self) -> int:
        return self.offset + self.length


class TransactionScanner:
    """Iterate over the complete transactions stored in `buf`, from `start`.

    A buffer that starts with the binlog magic at `start == 0` has it skipped. Control
    events (FDE, Previous_gtids, Rotate, ...) are passed over; an FDE sets the checksum
    setting, which can also be given up front for a scan that starts after it.

    After iteration, `good_end` is the offset just past the last complete transaction or
    control event, `tail` says what follows it and `tail_error` explains a bad tail. The
    scan never raises for bad data: truncating at `good_end` is always safe.
    """

    def __init__(self, buf: Buffer, start: int = 0, *, checksum: bool | None = None) -> None:
        self._buf = memoryview(buf)
        if start == 0 and bytes(self._buf[:4]) == BINLOG_MAGIC:
            start = len(BINLOG_MAGIC)
        self._start = start
        self.checksum = checksum
        self.good_end = start
        self.tail = Tail.CLEAN
        self.tail_error: str | None = None

    def _stop(self, tail: Tail, why: str) -> None:
        self.tail = tail
        self.tail_error = why

    def __iter__(self) -> Iterator[TransactionSpan]:
        view = self._buf
        end = len(view)
        offset = self._start
        state = _IDLE
        txn_start = 0
        gtid: Gtid | None = None
        while offset < end:
            remaining = end - offset
            if remaining < HEADER_LEN:
                self._stop(Tail.INCOMPLETE, f"{remaining} bytes at offset {offset}: a cut-off event header")
                return
            size = _SIZE_POS.unpack_from(view, offset + 9)[0]
            if size < HEADER_LEN:
                self._stop(Tail.MALFORMED, f"event at offset {offset} has event_size {size}")
                return
            if size > remaining:
                self._stop(
                    Tail.INCOMPLETE, f"event at offset {offset} needs {size} bytes, {remaining} remain"
                )
                return
            event = view[offset : offset + size]
            event_type = event[4]
            if event_type == _FDE:
                crc_ok = crc32_ok(event)  # an FDE always has a CRC32 (and MySQL's in-use rule)
            else:
                crc_ok = not self.checksum or (
                    size >= HEADER_LEN + CHECKSUM_LEN and crc32(event) == _CRC_RESIDUE
                )
            if not crc_ok:
                self._stop(Tail.BAD_CRC, f"{type_name(event_type)} event at offset {offset}: bad CRC32")
                return
            try:
                if event_type == _FDE:
                    self.checksum = _fde_checksum(event)
                if self.checksum is None and event_type not in CONTROL_TYPES:
                    raise UnexpectedEvent(f"{type_name(event_type)} event before any Format_description")
                action, state = _step(state, event_type, event, bool(self.checksum))
                if action == _START:
                    txn_start = offset
                    gtid = gtid_of_event(event, checksum=bool(self.checksum))
            except (MalformedEvent, UnexpectedEvent) as exc:
                self._stop(Tail.MALFORMED, f"offset {offset}: {exc}")
                return
            offset += size
            if action == _END:
                assert gtid is not None
                yield TransactionSpan(txn_start, offset - txn_start, gtid)
                self.good_end = offset
            elif action == _CONTROL and state == _IDLE:
                self.good_end = offset
        if state != _IDLE:
            self._stop(
                Tail.INCOMPLETE, f"transaction starting at offset {txn_start} has no terminating event"
            )
