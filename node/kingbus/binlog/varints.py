"""The two variable-length integer codings that appear inside binlog events.

1. **Serialization-framework varlen** (mysql-server `libs/mysql/serialization`, MySQL 8.3+),
   used by GTID_TAGGED events and by the tag length in tagged GTID sets. An unsigned value
   that needs `n` bytes (n = 1..8, 7 value bits per byte) is stored as the little-endian
   n-byte integer `(value << n) | ((1 << (n - 1)) - 1)`: the count of trailing one-bits of
   the first byte, plus one, is the length. Values of 57..64 bits take 9 bytes: `0xff` and
   the value as u64. Signed values are zig-zag mapped first (`v >= 0 -> 2v`,
   `v < 0 -> 2(~v) + 1`), so that small negative numbers stay short.

2. **Length-encoded integers** of the client/server protocol (`net_store_length`), used by
   the Heartbeat v2 TLV body: `< 251` in one byte, else `0xfc`+u16, `0xfd`+u24, `0xfe`+u64.

Decoders take `(buf, offset)` and return `(value, next_offset)`; they raise
`MalformedEvent` when the buffer ends inside an integer.
"""

from __future__ import annotations

from kingbus.binlog.errors import MalformedEvent
from kingbus.binlog.events import Buffer

_U64_LIMIT = 1 << 64
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1


def encode_varlen_unsigned(value: int) -> bytes:
    """Serialization-framework encoding of `0 <= value < 2**64`."""
    if not 0 <= value < _U64_LIMIT:
        raise ValueError(f"varlen unsigned out of range: {value}")
    n = max(1, (value.bit_length() + 6) // 7)
    if n > 8:
        return b"\xff" + value.to_bytes(8, "little")
    return ((value << n) | ((1 << (n - 1)) - 1)).to_bytes(n, "little")


def decode_varlen_unsigned(buf: Buffer, offset: int) -> tuple[int, int]:
    """Decode a serialization-framework unsigned integer at `buf[offset]`."""
    if offset >= len(buf):
        raise MalformedEvent(f"varlen integer expected at offset {offset}, buffer ends")
    first = buf[offset]
    n = 1
    while n < 9 and first & (1 << (n - 1)):
        n += 1
    if offset + n > len(buf):
        raise MalformedEvent(f"varlen integer of {n} bytes at offset {offset} runs past the buffer")
    if n == 9:
        return int.from_bytes(buf[offset + 1 : offset + 9], "little"), offset + 9
    return int.from_bytes(buf[offset : offset + n], "little") >> n, offset + n


def encode_varlen_signed(value: int) -> bytes:
    """Serialization-framework encoding of a signed 64-bit integer (zig-zag, then unsigned)."""
    if not _I64_MIN <= value <= _I64_MAX:
        raise ValueError(f"varlen signed out of range: {value}")
    return encode_varlen_unsigned(value << 1 if value >= 0 else ((~value) << 1) | 1)


def decode_varlen_signed(buf: Buffer, offset: int) -> tuple[int, int]:
    """Decode a serialization-framework signed integer at `buf[offset]`."""
    raw, offset = decode_varlen_unsigned(buf, offset)
    return (raw >> 1) ^ -(raw & 1), offset


def encode_lenenc(value: int) -> bytes:
    """Protocol length-encoded integer (`net_store_length`)."""
    if not 0 <= value < _U64_LIMIT:
        raise ValueError(f"length-encoded integer out of range: {value}")
    if value < 251:
        return bytes((value,))
    if value < 1 << 16:
        return b"\xfc" + value.to_bytes(2, "little")
    if value < 1 << 24:
        return b"\xfd" + value.to_bytes(3, "little")
    return b"\xfe" + value.to_bytes(8, "little")


_LENENC_WIDTH = {0xFC: 2, 0xFD: 3, 0xFE: 8}


def decode_lenenc(buf: Buffer, offset: int) -> tuple[int, int]:
    """Decode a protocol length-encoded integer; 0xfb (NULL) and 0xff are malformed here."""
    if offset >= len(buf):
        raise MalformedEvent(f"length-encoded integer expected at offset {offset}, buffer ends")
    first = buf[offset]
    if first < 251:
        return first, offset + 1
    width = _LENENC_WIDTH.get(first)
    if width is None:
        raise MalformedEvent(f"invalid length-encoded integer prefix 0x{first:02x} at offset {offset}")
    if offset + 1 + width > len(buf):
        raise MalformedEvent(f"length-encoded integer at offset {offset} runs past the buffer")
    return int.from_bytes(buf[offset + 1 : offset + 1 + width], "little"), offset + 1 + width
