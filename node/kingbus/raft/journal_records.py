"""The byte format of the Raft journal: segment headers and checksummed records.  No I/O.

A segment file is a fixed 8-byte header followed by records laid end to end::

    segment := MAGIC (b"KBRJSEG1") record*
    record  := body_len:u32le  crc:u32le  body
    body    := idx:u64le  term:u64le  command

`crc` is zlib's CRC-32 (computed by `kingbus.binlog.crc`) over the four `body_len` bytes
followed by `body`, so a torn or bit-flipped length is caught as well as a damaged body.
`body_len` is at least 16 (an empty command is allowed); a length of 0 is what a zero-filled
tail after a crash looks like, and is rejected like any other bad record. Offsets and indexes
are unsigned 64-bit, so neither a segment nor the journal has a size ceiling below what the
disk holds.

The functions here only turn values into bytes and back; reading files and deciding what to do
with a bad record is `journal.py`'s job.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from kingbus.binlog.crc import crc32

SEGMENT_MAGIC = b"KBRJSEG1"
SEGMENT_HEADER_BYTES = len(SEGMENT_MAGIC)

_RECORD_HEADER = struct.Struct("<II")
_BODY_PREFIX = struct.Struct("<QQ")
_LEN = struct.Struct("<I")

RECORD_HEADER_BYTES = _RECORD_HEADER.size  # body_len + crc
BODY_PREFIX_BYTES = _BODY_PREFIX.size  # idx + term
#: Bytes to read to learn a record's length, CRC, idx and term without its command.
RECORD_PEEK_BYTES = RECORD_HEADER_BYTES + BODY_PREFIX_BYTES
MAX_BODY_BYTES = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class RecordHead:
    """What the first `RECORD_PEEK_BYTES` of a record say about it."""

    body_len: int
    crc: int
    idx: int
    term: int

    @property
    def record_bytes(self) -> int:
        return RECORD_HEADER_BYTES + self.body_len


def record_crc(body: bytes | memoryview) -> int:
    """CRC-32 of a record: over its length field, then its body."""
    return crc32(body, crc32(_LEN.pack(len(body))))


def encode_record_head(idx: int, term: int, command: bytes) -> tuple[bytes, int]:
    """The bytes that precede `command` in its record (header and body prefix), and the
    record's CRC: the record is ``head + command``, written without joining them (an entry is
    up to megabytes, and every member writes every one)."""
    body_len = BODY_PREFIX_BYTES + len(command)
    if body_len > MAX_BODY_BYTES:
        raise ValueError(f"journal entry of {len(command)} bytes does not fit a record")
    prefix = _BODY_PREFIX.pack(idx, term)
    crc = crc32(command, crc32(prefix, crc32(_LEN.pack(body_len))))
    return _RECORD_HEADER.pack(body_len, crc) + prefix, crc


def encode_record(idx: int, term: int, command: bytes) -> tuple[bytes, int]:
    """Return the record bytes for one journal entry and its CRC."""
    head, crc = encode_record_head(idx, term, command)
    return head + command, crc


def decode_head(peek: bytes) -> RecordHead | None:
    """Parse a record's first bytes; None when they cannot start a valid record."""
    if len(peek) < RECORD_PEEK_BYTES:
        return None
    body_len, crc = _RECORD_HEADER.unpack_from(peek, 0)
    if body_len < BODY_PREFIX_BYTES:
        return None
    idx, term = _BODY_PREFIX.unpack_from(peek, RECORD_HEADER_BYTES)
    return RecordHead(body_len=body_len, crc=crc, idx=idx, term=term)


def decode_record(record: bytes) -> tuple[bytes, int, int] | None:
    """Parse and verify one whole record; None when it is short, torn or fails its CRC.

    Returns the pysyncobj entry `(command, idx, term)`.
    """
    head = decode_head(record)
    if head is None or len(record) < head.record_bytes:
        return None
    body = memoryview(record)[RECORD_HEADER_BYTES : head.record_bytes]
    if record_crc(body) != head.crc:
        return None
    return bytes(body[BODY_PREFIX_BYTES:]), head.idx, head.term
