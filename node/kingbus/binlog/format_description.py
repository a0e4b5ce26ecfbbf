"""Format_description event (type 15): decode, and the edits a binlog server must make.

Body layout (after the 19-byte header):

    u16  binlog_version            always 4
    char server_version[50]        NUL-padded, e.g. "9.7.4-2"
    u32  created                   timestamp of file creation; 0 in all but the first file
    u8   header_length             19
    u8   post_header_lengths[N]    one per event type 1..N
    u8   checksum_algorithm        0 OFF, 1 CRC32 (the byte at event_len - 5)
    u32  CRC32

A checksum-aware server *always* appends the CRC32 to the FDE, even when the file it heads
has `binlog_checksum=NONE` (verified on MySQL 9.7): the algorithm byte says whether the
*following* events carry one. So the FDE itself is always checked and re-checksummed.

When serving a file, the source edits its FDE (see notes/mysql-protocol.md §2.4.3): clear
BINLOG_IN_USE, and in some cases zero `created` (a non-zero value makes the replica drop
its temporary tables) and `log_pos`. `rewrite_format_description` does those edits and
recomputes the CRC.
"""

from __future__ import annotations

import dataclasses
import struct

from kingbus.binlog.errors import MalformedEvent
from kingbus.binlog.events import (
    CHECKSUM_LEN,
    FLAGS_OFFSET,
    HEADER_LEN,
    LOG_POS_OFFSET,
    Buffer,
    ChecksumAlgorithm,
    EventFlag,
    EventHeader,
    EventType,
    build_event,
    crc32_ok,
    recompute_crc,
)

_SERVER_VERSION_LEN = 50
_FIXED = struct.Struct("<H50sIB")  # binlog_version, server_version, created, header_length
_CREATED_OFFSET = HEADER_LEN + 2 + _SERVER_VERSION_LEN
_POST_HEADERS_OFFSET = HEADER_LEN + _FIXED.size
#: Smallest FDE we accept: fixed part, no post-header lengths, algorithm byte, CRC.
_MIN_SIZE = _POST_HEADERS_OFFSET + 1 + CHECKSUM_LEN

#: The post-header lengths MySQL 9.7 writes (event types 1..42), for generated FDEs.
MYSQL_97_POST_HEADER_LENGTHS = bytes.fromhex(
    "000d000800000000040004000000630004"  # types 1..17 (15, FORMAT_DESCRIPTION: 99)
    "1a0800000000000002000000"  # 18..29
    "0a0a0a2a2a001234000a280000"  # 30..42
)


@dataclasses.dataclass(frozen=True, slots=True)
class FormatDescription:
    binlog_version: int
    server_version: str
    created: int
    header_length: int
    post_header_lengths: bytes
    checksum_algorithm: int
    #: The header of the event itself (its flags carry BINLOG_IN_USE).
    header: EventHeader

    @property
    def checksum(self) -> bool:
        """Whether the events after this FDE end in a CRC32."""
        return self.checksum_algorithm == ChecksumAlgorithm.CRC32


def decode_format_description(event: Buffer, *, verify_crc: bool = True) -> FormatDescription:
    """Decode a complete FDE (header included)."""
    header = EventHeader.parse(event)
    if header.event_type != EventType.FORMAT_DESCRIPTION:
        raise MalformedEvent(f"expected a Format_description event, got type {header.event_type}")
    if header.event_size != len(event):
        raise MalformedEvent(f"FDE event_size {header.event_size} but {len(event)} bytes given")
    if len(event) < _MIN_SIZE:
        raise MalformedEvent(f"FDE of {len(event)} bytes is shorter than the minimum {_MIN_SIZE}")
    if verify_crc and not crc32_ok(event):
        raise MalformedEvent("Format_description event: bad CRC32")
    binlog_version, raw_version, created, header_length = _FIXED.unpack_from(event, HEADER_LEN)
    if binlog_version != 4:
        raise MalformedEvent(f"unsupported binlog version {binlog_version} (only v4)")
    if header_length != HEADER_LEN:
        raise MalformedEvent(f"unsupported common header length {header_length}")
    alg_offset = len(event) - CHECKSUM_LEN - 1
    alg = event[alg_offset]
    if alg not in (ChecksumAlgorithm.OFF, ChecksumAlgorithm.CRC32):
        raise MalformedEvent(f"unknown checksum algorithm {alg} in Format_description event")
    return FormatDescription(
        binlog_version=binlog_version,
        server_version=raw_version.split(b"\0", 1)[0].decode("ascii", errors="replace"),
        created=created,
        header_length=header_length,
        post_header_lengths=bytes(event[_POST_HEADERS_OFFSET:alg_offset]),
        checksum_algorithm=alg,
        header=header,
    )


def rewrite_format_description(
    event: Buffer,
    *,
    zero_created: bool = False,
    zero_log_pos: bool = False,
    clear_in_use: bool = False,
) -> bytes:
    """A copy of the FDE with the requested fields cleared and its CRC32 recomputed.

    The input is validated first (size, CRC), so a damaged FDE is never "repaired" by
    re-checksumming it.
    """
    decode_format_description(event)
    out = bytearray(event)
    if zero_created:
        struct.pack_into("<I", out, _CREATED_OFFSET, 0)
    if zero_log_pos:
        struct.pack_into("<I", out, LOG_POS_OFFSET, 0)
    if clear_in_use:
        (flags,) = struct.unpack_from("<H", out, FLAGS_OFFSET)
        struct.pack_into("<H", out, FLAGS_OFFSET, flags & ~EventFlag.BINLOG_IN_USE)
    return recompute_crc(out)


def encode_format_description(
    *,
    server_id: int,
    server_version: str = "9.7.4-kingbus",
    created: int = 0,
    timestamp: int = 0,
    log_pos: int | None = None,
    flags: int = 0,
    checksum_algorithm: int = ChecksumAlgorithm.CRC32,
    post_header_lengths: bytes = MYSQL_97_POST_HEADER_LENGTHS,
) -> bytes:
    """Build an FDE (always with its own CRC32, like MySQL).

    `log_pos=None` gives the position of an FDE directly after the 4-byte file magic.
    """
    raw_version = server_version.encode("ascii")
    if len(raw_version) >= _SERVER_VERSION_LEN:
        raise ValueError(f"server version {server_version!r} longer than {_SERVER_VERSION_LEN - 1} bytes")
    body = (
        _FIXED.pack(4, raw_version, created, HEADER_LEN)
        + bytes(post_header_lengths)
        + bytes((checksum_algorithm,))
    )
    size = HEADER_LEN + len(body) + CHECKSUM_LEN
    return build_event(
        event_type=EventType.FORMAT_DESCRIPTION,
        body=body,
        server_id=server_id,
        log_pos=4 + size if log_pos is None else log_pos,
        flags=flags,
        timestamp=timestamp,
        checksum=True,
    )
