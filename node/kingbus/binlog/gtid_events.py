"""GTID events: GTID (33), ANONYMOUS_GTID (34) and GTID_TAGGED (42).

Classic layout (33 and 34), fixed offsets after the 19-byte header:

    u8   gtid_flags             bit 0: the transaction may contain statement-based events
    u8   sid[16]                source UUID (all zero for anonymous)
    i64  gno                    (0 for anonymous)
    u8   logical timestamp typecode (2), then i64 last_committed, i64 sequence_number
    ...  optional commit timestamps, transaction_length, server versions

GTID_TAGGED (MySQL 8.3+) is written with the serialization framework
(`libs/mysql/serialization`): the whole body is one message

    varlen format_version (1), varlen message_size (whole body), varlen last_non_ignorable_id
    then fields, each as varlen field_id + value:
      0 gtid_flags        unsigned varlen
      1 uuid              16 unsigned varlens, one per byte, no length prefix
      2 gno               signed varlen
      3 tag               unsigned varlen length + bytes
      4 last_committed    signed varlen
      5 sequence_number   signed varlen
      6 immediate_commit_timestamp, 7 original_commit_timestamp (omitted when equal),
      8 transaction_length, 9 immediate_server_version, 10 original_server_version,
      11 commit_group_ticket (optional fields are simply absent)

(`varlen` is explained in `kingbus.binlog.varints`.) We read fields 0..5 and ignore the
rest, so fields added by later servers do not break us. The encoding was checked against
tagged GTID events written by MySQL 9.7 (tests/unit/binlog/data).
"""

from __future__ import annotations

import dataclasses
import struct

from kingbus.binlog.errors import MalformedEvent
from kingbus.binlog.events import (
    CHECKSUM_LEN,
    HEADER_LEN,
    Buffer,
    EventType,
    build_event,
    type_name,
)
from kingbus.binlog.gtids import MAX_GNO, MAX_TAG_LEN, Gtid, uuid_bytes, uuid_text
from kingbus.binlog.varints import (
    decode_varlen_signed,
    decode_varlen_unsigned,
    encode_lenenc,
    encode_varlen_signed,
    encode_varlen_unsigned,
)

_CLASSIC = struct.Struct("<B16sqBqq")
_GNO = struct.Struct("<q")
#: flags + sid + gno: all that is needed to know the GTID.
_CLASSIC_MIN_BODY = 1 + 16 + 8
_LOGICAL_TIMESTAMP_TYPECODE = 2
_SERIALIZATION_FORMAT_VERSION = 1

(
    _F_FLAGS,
    _F_UUID,
    _F_GNO,
    _F_TAG,
    _F_LAST_COMMITTED,
    _F_SEQUENCE_NUMBER,
    _F_IMMEDIATE_TS,
    _F_ORIGINAL_TS,
    _F_TRANSACTION_LENGTH,
    _F_IMMEDIATE_SERVER_VERSION,
) = range(10)


@dataclasses.dataclass(frozen=True, slots=True)
class GtidEventInfo:
    gtid: Gtid
    flags: int
    last_committed: int | None
    sequence_number: int | None


def _body_bounds(event: Buffer, checksum: bool) -> int:
    end = len(event) - (CHECKSUM_LEN if checksum else 0)
    if end < HEADER_LEN:
        raise MalformedEvent(f"event of {len(event)} bytes is shorter than header + footer")
    return end


def decode_gtid_event(event: Buffer, *, checksum: bool) -> GtidEventInfo:
    """Decode a GTID or GTID_TAGGED event (size and CRC are the caller's business).

    ANONYMOUS_GTID raises `MalformedEvent` here: it has no GTID to return.
    """
    end = _body_bounds(event, checksum)
    event_type = event[4]
    if event_type == EventType.GTID:
        if end - HEADER_LEN < _CLASSIC_MIN_BODY:
            raise MalformedEvent(f"GTID event body of {end - HEADER_LEN} bytes is too short")
        flags = event[HEADER_LEN]
        gtid = _classic_gtid(event)
        last_committed = sequence_number = None
        if end - HEADER_LEN >= _CLASSIC.size and event[HEADER_LEN + 25] == _LOGICAL_TIMESTAMP_TYPECODE:
            _, _, _, _, last_committed, sequence_number = _CLASSIC.unpack_from(event, HEADER_LEN)
        return GtidEventInfo(gtid, flags, last_committed, sequence_number)
    if event_type == EventType.GTID_TAGGED:
        return _decode_tagged(memoryview(event)[HEADER_LEN:end])
    raise MalformedEvent(f"expected a GTID event, got {type_name(event_type)}")


def gtid_of_event(event: Buffer, *, checksum: bool) -> Gtid:
    """Just the GTID of a GTID / GTID_TAGGED event (the transaction assembler's hot path)."""
    if len(event) > 4 and event[4] == EventType.GTID:
        if len(event) - (CHECKSUM_LEN if checksum else 0) - HEADER_LEN < _CLASSIC_MIN_BODY:
            raise MalformedEvent("GTID event body is too short")
        return _classic_gtid(event)
    return decode_gtid_event(event, checksum=checksum).gtid


def gtid_text_of_event(event: Buffer, *, checksum: bool) -> str:
    """`str(gtid_of_event(...))`, without building a `Gtid` for a classic GTID event (the
    leader's ingest path: one per replicated transaction, so constants are plain ints)."""
    if len(event) > 4 and event[4] == _GTID_CODE:
        if len(event) - (CHECKSUM_LEN if checksum else 0) < _CLASSIC_MIN_EVENT:
            raise MalformedEvent("GTID event body is too short")
        (gno,) = _GNO.unpack_from(event, _GNO_AT)
        if not 0 < gno <= MAX_GNO:
            raise MalformedEvent(f"GTID event: GTID gno must be in 1..{MAX_GNO}, got {gno}")
        return _uuid_of(event) + ":" + str(gno)
    return str(decode_gtid_event(event, checksum=checksum).gtid)


_GTID_CODE = int(EventType.GTID)
_CLASSIC_MIN_EVENT = HEADER_LEN + _CLASSIC_MIN_BODY
_GNO_AT = HEADER_LEN + 17


def _uuid_of(event: Buffer) -> str:
    raw = bytes(event[HEADER_LEN + 1 : HEADER_LEN + 17])
    uuid = _UUID_TEXTS.get(raw)
    if uuid is None:  # a source uses few UUIDs: format each once (hot path)
        uuid = uuid_text(raw)
        if len(_UUID_TEXTS) >= 4096:
            _UUID_TEXTS.clear()
        _UUID_TEXTS[raw] = uuid
    return uuid


def _classic_gtid(event: Buffer) -> Gtid:
    (gno,) = _GNO.unpack_from(event, HEADER_LEN + 17)
    try:
        return Gtid(_uuid_of(event), gno)
    except ValueError as exc:
        raise MalformedEvent(f"GTID event: {exc}") from exc


_UUID_TEXTS: dict[bytes, str] = {}


def _decode_tagged(body: memoryview) -> GtidEventInfo:
    version, off = decode_varlen_unsigned(body, 0)
    if version != _SERIALIZATION_FORMAT_VERSION:
        raise MalformedEvent(f"GTID_TAGGED: unknown serialization format version {version}")
    size, off = decode_varlen_unsigned(body, off)
    if size > len(body):
        raise MalformedEvent(f"GTID_TAGGED: message size {size} exceeds the {len(body)}-byte body")
    body = body[:size]
    _last_non_ignorable, off = decode_varlen_unsigned(body, off)

    def field(expected: int, off: int) -> int:
        field_id, off = decode_varlen_unsigned(body, off)
        if field_id != expected:
            raise MalformedEvent(f"GTID_TAGGED: expected field {expected}, found field {field_id}")
        return off

    off = field(_F_FLAGS, off)
    flags, off = decode_varlen_unsigned(body, off)
    off = field(_F_UUID, off)
    raw_uuid = bytearray()
    for _ in range(16):
        byte, off = decode_varlen_unsigned(body, off)
        if byte > 0xFF:
            raise MalformedEvent(f"GTID_TAGGED: uuid byte value {byte}")
        raw_uuid.append(byte)
    off = field(_F_GNO, off)
    gno, off = decode_varlen_signed(body, off)
    off = field(_F_TAG, off)
    tag_len, off = decode_varlen_unsigned(body, off)
    if tag_len > MAX_TAG_LEN or off + tag_len > len(body):
        raise MalformedEvent(f"GTID_TAGGED: bad tag length {tag_len}")
    tag = bytes(body[off : off + tag_len]).decode("ascii", errors="replace")
    off += tag_len
    last_committed = sequence_number = None
    if off < len(body):
        off = field(_F_LAST_COMMITTED, off)
        last_committed, off = decode_varlen_signed(body, off)
        off = field(_F_SEQUENCE_NUMBER, off)
        sequence_number, off = decode_varlen_signed(body, off)
    try:
        gtid = Gtid(uuid_text(raw_uuid), gno, tag)
    except ValueError as exc:
        raise MalformedEvent(f"GTID_TAGGED: {exc}") from exc
    return GtidEventInfo(gtid, flags, last_committed, sequence_number)


# --- encoders (tests, demos and fabricated streams) --------------------------------------------


def encode_gtid_event(
    gtid: Gtid,
    *,
    server_id: int,
    log_pos: int,
    checksum: bool,
    flags: int = 1,
    last_committed: int = 0,
    sequence_number: int = 1,
    commit_timestamp: int = 0,
    transaction_length: int = 0,
    server_version: int = 90704,
    timestamp: int = 0,
) -> bytes:
    """A GTID event as MySQL 8.4/9.x writes it: type 33 for classic GTIDs, 42 for tagged."""
    if gtid.tag:
        body = _encode_tagged_body(
            gtid, flags, last_committed, sequence_number, commit_timestamp, transaction_length, server_version
        )
        event_type = EventType.GTID_TAGGED
    else:
        body = (
            _CLASSIC.pack(
                flags,
                uuid_bytes(gtid.uuid),
                gtid.gno,
                _LOGICAL_TIMESTAMP_TYPECODE,
                last_committed,
                sequence_number,
            )
            + commit_timestamp.to_bytes(7, "little")  # high bit clear: original == immediate
            + encode_lenenc(transaction_length)
            + struct.pack("<I", server_version)  # high bit clear: original == immediate
        )
        event_type = EventType.GTID
    return build_event(
        event_type=event_type,
        body=body,
        server_id=server_id,
        log_pos=log_pos,
        timestamp=timestamp,
        checksum=checksum,
    )


def _encode_tagged_body(
    gtid: Gtid,
    flags: int,
    last_committed: int,
    sequence_number: int,
    commit_timestamp: int,
    transaction_length: int,
    server_version: int,
) -> bytes:
    u = encode_varlen_unsigned
    tag = gtid.tag.encode("ascii")
    fields = b"".join(
        (
            u(_F_FLAGS) + u(flags),
            u(_F_UUID) + b"".join(u(b) for b in uuid_bytes(gtid.uuid)),
            u(_F_GNO) + encode_varlen_signed(gtid.gno),
            u(_F_TAG) + u(len(tag)) + tag,
            u(_F_LAST_COMMITTED) + encode_varlen_signed(last_committed),
            u(_F_SEQUENCE_NUMBER) + encode_varlen_signed(sequence_number),
            u(_F_IMMEDIATE_TS) + u(commit_timestamp),
            u(_F_TRANSACTION_LENGTH) + u(transaction_length),
            u(_F_IMMEDIATE_SERVER_VERSION) + u(server_version),
        )
    )
    head = u(_SERIALIZATION_FORMAT_VERSION)
    tail = u(0) + fields  # last_non_ignorable_field_id = 0, as MySQL writes it
    size = len(head) + len(tail) + 1
    while len(head) + len(u(size)) + len(tail) != size:
        size = len(head) + len(u(size)) + len(tail)
    return head + u(size) + tail
