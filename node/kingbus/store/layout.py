"""What a segment file looks like, and how to read one back after a crash (pure).

A segment is a valid binlog file: the magic, the source's Format_description event
(normalised: `log_pos` points past it, BINLOG_IN_USE cleared, CRC recomputed), a
Previous_gtids event holding the committed set at the segment's start, then transactions
exactly as the source wrote them, and -- once sealed -- a Rotate event naming the next
segment.  Everything the node generates here is derived only from replicated data (the FDE
and the transactions), so every member writes identical bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from kingbus.binlog import control_events, errors, events, transactions
from kingbus.binlog.gtids import GtidSet
from kingbus.store.index import IndexEntry

_SIZE = struct.Struct("<I")


def _header(event: bytes) -> events.EventHeader:
    return events.EventHeader.parse(event)


def normalized_fde(fde: bytes, *, at: int = len(events.BINLOG_MAGIC)) -> bytes:
    """The FDE as it sits at the start of a segment."""
    h = _header(fde)
    fixed = events.EventHeader(
        h.timestamp,
        h.event_type,
        h.server_id,
        h.event_size,
        at + h.event_size,
        h.flags & ~events.EventFlag.BINLOG_IN_USE,
    )
    return events.recompute_crc(fixed.pack() + fde[events.HEADER_LEN :])


def fde_identity(fde: bytes) -> bytes:
    """What must be equal for two FDEs to describe the same stream format.

    Header timestamp, log_pos and flags, and the body's `created` field differ between the
    FDEs a source sends for one file (a reconnect zeroes `created`), so they are left out.
    """
    h = _header(fde)
    body = fde[events.HEADER_LEN : -events.CHECKSUM_LEN]
    # binlog_version (2) + server_version (50) | created (4) | header length, post-header lengths, alg
    return struct.pack("<I", h.server_id) + body[:52] + body[56:]


def segment_header(fde: bytes, previous: GtidSet) -> bytes:
    magic = events.BINLOG_MAGIC
    fde_event = normalized_fde(fde)
    h = _header(fde_event)
    size = events.HEADER_LEN + len(previous.encode()) + events.CHECKSUM_LEN
    prev_event = control_events.encode_previous_gtids(
        previous,
        server_id=h.server_id,
        log_pos=len(magic) + len(fde_event) + size,
        checksum=True,
        timestamp=h.timestamp,
    )
    return magic + fde_event + prev_event


def rotate_event(next_name: str, *, timestamp: int, fde: bytes, at: int) -> bytes:
    """The Rotate that seals a segment (not artificial: it is really in the file)."""
    size = events.HEADER_LEN + 8 + len(next_name.encode()) + events.CHECKSUM_LEN
    return control_events.encode_rotate(
        next_file=next_name,
        position=4,
        server_id=_header(fde).server_id,
        checksum=True,
        artificial=False,
        log_pos=at + size,
        timestamp=timestamp,
    )


def read_fde(path: Path) -> bytes:
    with open(path, "rb") as f:
        head = f.read(len(events.BINLOG_MAGIC) + events.HEADER_LEN)
        if head[:4] != events.BINLOG_MAGIC:
            raise errors.MalformedEvent(f"{path.name} is not a binlog file")
        size = _header(head[4:]).event_size
        return head[4:] + f.read(size - events.HEADER_LEN)


@dataclass(slots=True)
class ScanResult:
    good_end: int  # offset just past the last intact transaction (or the header / rotate)
    sealed: bool
    previous_gtids: GtidSet
    entries: list[IndexEntry] = field(default_factory=list)
    first_timestamp: int = 0
    problem: str = ""


def _last_event_log_pos(data: bytes, offset: int, end: int) -> int:
    """Header log_pos of the last event in data[offset:end] (the source's end position)."""
    last = offset
    while offset < end:
        last = offset
        offset += _SIZE.unpack_from(data, offset + events.EVENT_SIZE_OFFSET)[0]
    return int(_SIZE.unpack_from(data, last + events.LOG_POS_OFFSET)[0])


def scan_segment(data: bytes) -> ScanResult:
    """Re-reads a segment: verifies every event's CRC and keeps only whole transactions.

    Raises MalformedEvent when even the segment header is damaged: such a file cannot be
    repaired locally and must be copied from a peer.
    """
    if data[:4] != events.BINLOG_MAGIC:
        raise errors.MalformedEvent("segment does not start with the binlog magic")
    pos = 4
    header_events = []
    for _ in range(2):
        h = events.EventHeader.parse(data, pos)
        raw = data[pos : pos + h.event_size]
        if len(raw) != h.event_size or not events.crc32_ok(raw):
            raise errors.MalformedEvent("segment header events are damaged")
        header_events.append(raw)
        pos += h.event_size
    fde, prev = header_events
    if fde[events.TYPE_OFFSET] != events.EventType.FORMAT_DESCRIPTION or (
        prev[events.TYPE_OFFSET] != events.EventType.PREVIOUS_GTIDS
    ):
        raise errors.MalformedEvent("segment does not start with FDE + Previous_gtids")
    previous = control_events.decode_previous_gtids(prev, checksum=True)
    result = ScanResult(good_end=pos, sealed=False, previous_gtids=previous)
    scanner = transactions.TransactionScanner(data, pos, checksum=True)
    last_txn_end = pos
    for span in scanner:
        gtid = span.gtid
        result.entries.append(
            IndexEntry(
                sid=f"{gtid.uuid}:{gtid.tag}" if gtid.tag else gtid.uuid,
                gno=gtid.gno,
                offset=span.offset,
                length=span.length,
                source_end_pos=_last_event_log_pos(data, span.offset, span.end),
            )
        )
        if not result.first_timestamp:
            result.first_timestamp = int(_SIZE.unpack_from(data, span.offset)[0])
        last_txn_end = span.end
    result.good_end = last_txn_end
    if scanner.tail is not transactions.Tail.CLEAN:
        result.problem = f"{scanner.tail.value}: {scanner.tail_error}"
    # Only one thing may follow the last transaction: the Rotate that seals the segment.
    # Nothing is ever written after it, so whatever follows is cut and the segment is
    # sealed (were it reopened for appends, transactions would land after a Rotate).
    if scanner.good_end > last_txn_end:
        h = events.EventHeader.parse(data, last_txn_end)
        if h.event_type == events.EventType.ROTATE:
            result.good_end = last_txn_end + h.event_size
            result.sealed = True
    return result
