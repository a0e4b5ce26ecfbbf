"""Events that frame a binlog stream rather than carry data: Rotate, Heartbeat v1/v2,
Previous_gtids. A binlog server generates all of them itself, so each has an encoder and a
decoder.

Rotate (type 4), body: `u64 position` then the next file's bare name (no NUL).
  * The *fake* Rotate that opens every dump stream has timestamp 0, flags ARTIFICIAL (0x20)
    and log_pos 0; it carries a CRC32 iff the session's checksum answer was CRC32.
  * The *real* Rotate that seals a file has the file offset after it as log_pos.

Heartbeat v1 (type 27): timestamp 0, flags 0, log_pos = current file offset, body = the
current file name.

Heartbeat v2 (type 41, only for replicas that sent dump flag 0x02), body is TLV with
protocol length-encoded integers (`codecs/binary.cpp`):
    lenenc(1) lenenc(len(name)) name
    lenenc(2) lenenc(len(lenenc(pos))) lenenc(pos)
    lenenc(0)                                    end mark
The header's log_pos is the caller's choice (MySQL keeps it at the u32 offset); never use
0xFFFFFFFF, replicas compare it with their own position.

Previous_gtids (type 35), body = the binary GTID set encoding (`GtidSet.encode`).
"""

from __future__ import annotations

import dataclasses
import struct

from kingbus.binlog.errors import MalformedEvent
from kingbus.binlog.events import (
    Buffer,
    EventFlag,
    EventHeader,
    EventType,
    body_of,
    build_event,
    check_event,
    type_name,
)
from kingbus.binlog.gtids import GtidSet
from kingbus.binlog.varints import decode_lenenc, encode_lenenc

_U64 = struct.Struct("<Q")
_HB_FIELD_FILENAME = 1
_HB_FIELD_POSITION = 2
_HB_FIELD_END = 0


def _decode_name(raw: Buffer, what: str) -> str:
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedEvent(f"{what}: file name is not UTF-8") from exc


def _expect(event: Buffer, event_type: EventType, checksum: bool) -> EventHeader:
    check_event(event, checksum=checksum)
    header = EventHeader.parse(event)
    if header.event_type != event_type:
        raise MalformedEvent(f"expected a {event_type.name} event, got {type_name(header.event_type)}")
    return header


# --- Rotate -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Rotate:
    next_file: str
    position: int
    header: EventHeader

    @property
    def artificial(self) -> bool:
        return bool(self.header.flags & EventFlag.ARTIFICIAL)


def encode_rotate(
    *,
    next_file: str,
    position: int,
    server_id: int,
    checksum: bool,
    artificial: bool = True,
    log_pos: int = 0,
    timestamp: int = 0,
) -> bytes:
    """A Rotate event. The defaults make the fake Rotate that opens a dump stream."""
    if not next_file:
        raise ValueError("a Rotate event needs a file name")
    return build_event(
        event_type=EventType.ROTATE,
        body=_U64.pack(position) + next_file.encode("utf-8"),
        server_id=server_id,
        log_pos=log_pos,
        flags=EventFlag.ARTIFICIAL if artificial else 0,
        timestamp=timestamp,
        checksum=checksum,
    )


def decode_rotate(event: Buffer, *, checksum: bool) -> Rotate:
    header = _expect(event, EventType.ROTATE, checksum)
    body = body_of(event, checksum=checksum)
    if len(body) < 8:
        raise MalformedEvent(f"Rotate body of {len(body)} bytes is shorter than its u64 position")
    return Rotate(_decode_name(body[8:], "Rotate"), _U64.unpack_from(body)[0], header)


# --- Heartbeats ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Heartbeat:
    file: str
    #: v1: the header's log_pos; v2: the position from the TLV body (may exceed 4 GiB).
    position: int
    header: EventHeader


def encode_heartbeat_v1(*, file: str, position: int, server_id: int, checksum: bool) -> bytes:
    if not 0 <= position < 0xFFFFFFFF:
        raise ValueError(
            f"heartbeat v1 position {position} does not fit the u32 log_pos (0xFFFFFFFF reserved)"
        )
    return build_event(
        event_type=EventType.HEARTBEAT,
        body=file.encode("utf-8"),
        server_id=server_id,
        log_pos=position,
        checksum=checksum,
    )


def encode_heartbeat_v2(
    *, file: str, position: int, server_id: int, checksum: bool, log_pos: int | None = None
) -> bytes:
    """Heartbeat v2; the header log_pos defaults to `position` when that fits in a u32."""
    if log_pos is None:
        log_pos = position if position < 0xFFFFFFFF else 0
    name = file.encode("utf-8")
    pos = encode_lenenc(position)
    body = b"".join(
        (
            encode_lenenc(_HB_FIELD_FILENAME),
            encode_lenenc(len(name)),
            name,
            encode_lenenc(_HB_FIELD_POSITION),
            encode_lenenc(len(pos)),
            pos,
            encode_lenenc(_HB_FIELD_END),
        )
    )
    return build_event(
        event_type=EventType.HEARTBEAT_V2, body=body, server_id=server_id, log_pos=log_pos, checksum=checksum
    )


def decode_heartbeat(event: Buffer, *, checksum: bool) -> Heartbeat:
    """Decode a v1 or v2 heartbeat (by its type code)."""
    header = EventHeader.parse(event)
    if header.event_type == EventType.HEARTBEAT:
        check_event(event, checksum=checksum)
        return Heartbeat(_decode_name(body_of(event, checksum=checksum), "Heartbeat"), header.log_pos, header)
    header = _expect(event, EventType.HEARTBEAT_V2, checksum)
    body = body_of(event, checksum=checksum)
    file: str | None = None
    position: int | None = None
    offset = 0
    while True:
        field, offset = decode_lenenc(body, offset)
        if field == _HB_FIELD_END:
            break
        length, offset = decode_lenenc(body, offset)
        if offset + length > len(body):
            raise MalformedEvent(f"Heartbeat v2 field {field} of {length} bytes runs past the body")
        value = body[offset : offset + length]
        offset += length
        if field == _HB_FIELD_FILENAME:
            file = _decode_name(value, "Heartbeat v2")
        elif field == _HB_FIELD_POSITION:
            position, used = decode_lenenc(value, 0)
            if used != length:
                raise MalformedEvent("Heartbeat v2 position field has trailing bytes")
        # Unknown fields are skipped: the TLV form exists so that fields can be added.
    if offset != len(body):
        raise MalformedEvent(f"{len(body) - offset} bytes after the Heartbeat v2 end mark")
    if file is None or position is None:
        raise MalformedEvent("Heartbeat v2 without a file name or a position")
    return Heartbeat(file, position, header)


# --- Previous_gtids -----------------------------------------------------------------------------


def encode_previous_gtids(
    gtids: GtidSet, *, server_id: int, log_pos: int, checksum: bool, timestamp: int = 0
) -> bytes:
    """Previous_gtids event; MySQL marks it IGNORABLE (0x80) as readers may skip it."""
    return build_event(
        event_type=EventType.PREVIOUS_GTIDS,
        body=gtids.encode(),
        server_id=server_id,
        log_pos=log_pos,
        flags=EventFlag.IGNORABLE,
        timestamp=timestamp,
        checksum=checksum,
    )


def decode_previous_gtids(event: Buffer, *, checksum: bool) -> GtidSet:
    _expect(event, EventType.PREVIOUS_GTIDS, checksum)
    return GtidSet.decode(body_of(event, checksum=checksum))
