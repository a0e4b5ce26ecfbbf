"""Binlog event framing: type codes, the 19-byte common header, CRC32 footers, splitting.

Every binlog event (v4 format, MySQL 5.0 and later) is

    header (19 bytes) | body | CRC32 (4 bytes, only when the stream/file has checksums)

with the little-endian header fields

    offset 0  u32 timestamp
    offset 4  u8  type code
    offset 5  u32 server_id       (the server that originally wrote the event)
    offset 9  u32 event_size      (header + body + CRC: the whole event)
    offset 13 u32 log_pos         (file offset just past this event in the writer's file)
    offset 17 u16 flags

The CRC32 is zlib's CRC-32 (computed by `kingbus.binlog.crc`) over header and body, stored
little-endian. Any edit to an event must be followed by recomputing it (`recompute_crc`), or a
replica rejects the event. One exception, MySQL's: a Format_description event is checksummed
as if its BINLOG_IN_USE flag were clear, because the server sets that flag in the file it is
writing after computing the CRC (verified on MySQL 9.7; `crc32_ok` and `with_crc` follow the
same rule).

This module deals only in bytes: nothing here does I/O. Decoders accept `bytes`,
`bytearray` or `memoryview` and raise `MalformedEvent` (a `ValueError`) on anything short
or inconsistent; they never read past the end of a buffer.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from collections.abc import Iterator

from kingbus.binlog.crc import crc32
from kingbus.binlog.errors import MalformedEvent

Buffer = bytes | bytearray | memoryview

HEADER_LEN = 19
CHECKSUM_LEN = 4
#: The four bytes at the start of every binlog file.
BINLOG_MAGIC = b"\xfebin"

# Offsets of the header fields, for code that patches a single field in place.
TIMESTAMP_OFFSET = 0
TYPE_OFFSET = 4
SERVER_ID_OFFSET = 5
EVENT_SIZE_OFFSET = 9
LOG_POS_OFFSET = 13
FLAGS_OFFSET = 17

#: crc32(data + crc32(data).to_bytes(4, "little")) for every `data`.
CRC32_RESIDUE = 0x2144DF1C

_HEADER = struct.Struct("<IBIIIH")
_U32 = struct.Struct("<I")


class EventType(enum.IntEnum):
    """MySQL event type codes (`Log_event_type`, mysql-server 8.4/9.x)."""

    UNKNOWN = 0
    START_V3 = 1
    QUERY = 2
    STOP = 3
    ROTATE = 4
    INTVAR = 5
    SLAVE = 7
    APPEND_BLOCK = 9
    DELETE_FILE = 11
    RAND = 13
    USER_VAR = 14
    FORMAT_DESCRIPTION = 15
    XID = 16
    BEGIN_LOAD_QUERY = 17
    EXECUTE_LOAD_QUERY = 18
    TABLE_MAP = 19
    WRITE_ROWS_V1 = 23
    UPDATE_ROWS_V1 = 24
    DELETE_ROWS_V1 = 25
    INCIDENT = 26
    HEARTBEAT = 27
    IGNORABLE = 28
    ROWS_QUERY = 29
    WRITE_ROWS = 30
    UPDATE_ROWS = 31
    DELETE_ROWS = 32
    GTID = 33
    ANONYMOUS_GTID = 34
    PREVIOUS_GTIDS = 35
    TRANSACTION_CONTEXT = 36
    VIEW_CHANGE = 37
    XA_PREPARE = 38
    PARTIAL_UPDATE_ROWS = 39
    TRANSACTION_PAYLOAD = 40
    HEARTBEAT_V2 = 41
    GTID_TAGGED = 42


def type_name(type_code: int) -> str:
    """A readable name for a type code, also for codes this module does not know."""
    try:
        return EventType(type_code).name
    except ValueError:
        return f"type {type_code}"


class EventFlag(enum.IntFlag):
    """Bits of the header `flags` field."""

    #: Set in the FDE of a binlog file that the server still has open (cleared on close).
    BINLOG_IN_USE = 0x01
    #: Generated for the stream, not read from a file (fake Rotate); log_pos is 0.
    ARTIFICIAL = 0x20
    #: Written by a replica's relay log.
    RELAY_LOG = 0x40
    #: A reader that does not know this event type may skip it.
    IGNORABLE = 0x80


class ChecksumAlgorithm(enum.IntEnum):
    """The checksum algorithm byte of a Format_description event."""

    OFF = 0
    CRC32 = 1
    UNDEFINED = 255


@dataclasses.dataclass(frozen=True, slots=True)
class EventHeader:
    """The 19-byte common header of a binlog event.

    `event_type` is the raw type code (an `int`; compare with `EventType` members), so that
    headers of event types this module does not name can still be parsed and re-packed.
    """

    timestamp: int
    event_type: int
    server_id: int
    event_size: int
    log_pos: int
    flags: int

    @classmethod
    def parse(cls, buf: Buffer, offset: int = 0) -> EventHeader:
        """Decode the header at `buf[offset:]`; `MalformedEvent` if it is short or impossible."""
        if offset < 0 or len(buf) - offset < HEADER_LEN:
            raise MalformedEvent(
                f"event header needs {HEADER_LEN} bytes at offset {offset}, buffer has {len(buf)}"
            )
        timestamp, type_code, server_id, size, log_pos, flags = _HEADER.unpack_from(buf, offset)
        if size < HEADER_LEN:
            raise MalformedEvent(f"event_size {size} is smaller than the {HEADER_LEN}-byte header")
        return cls(timestamp, type_code, server_id, size, log_pos, flags)

    def pack(self) -> bytes:
        """The 19 header bytes."""
        return _HEADER.pack(
            self.timestamp, self.event_type, self.server_id, self.event_size, self.log_pos, self.flags
        )


def event_type_of(event: Buffer) -> int:
    """The type code of an event (no other validation)."""
    if len(event) < HEADER_LEN:
        raise MalformedEvent(f"event of {len(event)} bytes is shorter than its header")
    return event[TYPE_OFFSET]


def _crc_input(event: Buffer) -> Buffer:
    """What the CRC32 covers: the event, except that an FDE counts as if BINLOG_IN_USE were clear.

    MySQL computes a Format_description event's checksum with the in-use flag cleared and
    sets the flag afterwards (it clears it again, in place, when it closes the file), so the
    FDE of the file a server is writing carries the flag but a CRC computed without it.
    """
    if (
        len(event) > FLAGS_OFFSET
        and event[TYPE_OFFSET] == EventType.FORMAT_DESCRIPTION
        and event[FLAGS_OFFSET] & 0x01
    ):
        cleared = bytearray(event)
        cleared[FLAGS_OFFSET] &= 0xFE
        return cleared
    return event


def crc32_ok(event: Buffer) -> bool:
    """True when the last four bytes of `event` are its CRC32 (MySQL's rule, see `_crc_input`)."""
    if len(event) < HEADER_LEN + CHECKSUM_LEN:
        return False
    # The CRC-32 of a message followed by its own little-endian CRC-32 is always this
    # constant (the CRC "residue"), so no slice of the event is needed.
    return crc32(_crc_input(event)) == CRC32_RESIDUE


def with_crc(event_without_crc: Buffer) -> bytes:
    """Append the CRC32 footer to an event whose header already counts those 4 bytes."""
    return bytes(event_without_crc) + _U32.pack(crc32(_crc_input(event_without_crc)))


def recompute_crc(event: Buffer) -> bytes:
    """Replace the CRC32 footer of `event` by the checksum of its current contents."""
    if len(event) < HEADER_LEN + CHECKSUM_LEN:
        raise MalformedEvent(f"event of {len(event)} bytes is too short to carry a CRC32")
    return with_crc(memoryview(event)[:-CHECKSUM_LEN])


def build_event(
    *,
    event_type: int,
    body: Buffer,
    server_id: int,
    log_pos: int,
    flags: int = 0,
    timestamp: int = 0,
    checksum: bool,
) -> bytes:
    """Assemble header + body (+ CRC32 when `checksum`), with `event_size` filled in."""
    size = HEADER_LEN + len(body) + (CHECKSUM_LEN if checksum else 0)
    raw = _HEADER.pack(timestamp, event_type, server_id, size, log_pos, flags) + bytes(body)
    return with_crc(raw) if checksum else raw


def check_event(event: Buffer, *, checksum: bool) -> None:
    """Validate one complete event: the header's size matches the buffer, and the CRC if any."""
    header = EventHeader.parse(event)
    if header.event_size != len(event):
        raise MalformedEvent(
            f"{type_name(header.event_type)} event_size {header.event_size} but {len(event)} bytes given"
        )
    if checksum and not crc32_ok(event):
        raise MalformedEvent(f"{type_name(header.event_type)} event at log_pos {header.log_pos}: bad CRC32")


def body_of(event: Buffer, *, checksum: bool) -> memoryview:
    """The bytes between the header and the CRC footer (or the end when there is none)."""
    end = len(event) - (CHECKSUM_LEN if checksum else 0)
    if end < HEADER_LEN:
        raise MalformedEvent(f"event of {len(event)} bytes is shorter than header + footer")
    return memoryview(event)[HEADER_LEN:end]


def split_events(buf: Buffer, offset: int = 0) -> Iterator[bytes]:
    """Split concatenated events (starting at `offset`) into one `bytes` per event.

    Sizes come from each header's `event_size`; a header that is cut short, an
    `event_size` below 19 or one that runs past the end of `buf` raises `MalformedEvent`.
    CRCs are not checked here (see `check_event`).
    """
    view = memoryview(buf)
    end = len(view)
    while offset < end:
        if end - offset < HEADER_LEN:
            raise MalformedEvent(f"{end - offset} trailing bytes at offset {offset} are not an event header")
        size = _U32.unpack_from(view, offset + EVENT_SIZE_OFFSET)[0]
        if size < HEADER_LEN:
            raise MalformedEvent(f"event at offset {offset} has event_size {size} < {HEADER_LEN}")
        if size > end - offset:
            raise MalformedEvent(
                f"event at offset {offset} has event_size {size}, only {end - offset} bytes remain"
            )
        yield bytes(view[offset : offset + size])
        offset += size
