"""Primitive wire types: fixed-width little-endian integers, length-encoded integers and
strings, NUL-terminated strings.

Decoding goes through :class:`Reader`, a cursor over one payload whose every read checks the
bounds first and raises :class:`~kingbus.protocol.errors.ProtocolError` on short or malformed
input -- never ``IndexError`` or ``struct.error``. Encoding functions are plain functions
returning ``bytes``; they raise ``ValueError`` for values that cannot be represented, which is
a bug in the caller, not in the peer.

Length-encoded integers (MySQL's ``net_store_length``): values below 251 take one byte;
``0xFC`` + u16, ``0xFD`` + u24 and ``0xFE`` + u64 carry larger values. ``0xFB`` is not an
integer: in a text-protocol row it marks SQL NULL. ``0xFF`` never starts one (it marks ERR).
"""

from __future__ import annotations

from kingbus.protocol.errors import ProtocolError

NULL_MARKER = 0xFB


def uint(value: int, width: int) -> bytes:
    """``value`` as a little-endian unsigned integer of ``width`` bytes."""
    if not 0 <= value < 1 << (8 * width):
        raise ValueError(f"{value} does not fit in {width} unsigned bytes")
    return value.to_bytes(width, "little")


def int1(value: int) -> bytes:
    return uint(value, 1)


def int2(value: int) -> bytes:
    return uint(value, 2)


def int3(value: int) -> bytes:
    return uint(value, 3)


def int4(value: int) -> bytes:
    return uint(value, 4)


def int8(value: int) -> bytes:
    return uint(value, 8)


def lenenc_int(value: int) -> bytes:
    """Encode a length-encoded integer (0 <= value < 2**64)."""
    if value < 0:
        raise ValueError(f"length-encoded integers are unsigned, got {value}")
    if value < 0xFB:
        return bytes((value,))
    if value < 1 << 16:
        return b"\xfc" + uint(value, 2)
    if value < 1 << 24:
        return b"\xfd" + uint(value, 3)
    if value < 1 << 64:
        return b"\xfe" + uint(value, 8)
    raise ValueError(f"{value} does not fit in a length-encoded integer")


def lenenc_bytes(value: bytes) -> bytes:
    """A length-encoded string: its length as :func:`lenenc_int`, then the bytes."""
    return lenenc_int(len(value)) + value


def lenenc_str(value: str) -> bytes:
    return lenenc_bytes(value.encode("utf-8"))


def nul_bytes(value: bytes) -> bytes:
    """A NUL-terminated string; the value itself must not contain NUL."""
    if b"\x00" in value:
        raise ValueError("a NUL-terminated string cannot contain NUL")
    return value + b"\x00"


def nul_str(value: str) -> bytes:
    return nul_bytes(value.encode("utf-8"))


class Reader:
    """A bounds-checked cursor over one packet payload.

    ``what`` names the structure being read; it appears in error messages so that a
    malformed packet is reported as e.g. "truncated COM_REGISTER_SLAVE: ...".
    """

    __slots__ = ("_data", "_pos", "what")

    def __init__(self, data: bytes, what: str = "packet") -> None:
        self._data = bytes(data)
        self._pos = 0
        self.what = what

    @property
    def position(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def at_end(self) -> bool:
        return self._pos >= len(self._data)

    def peek(self) -> int:
        """The next byte without consuming it."""
        self._need(1, "a byte")
        return self._data[self._pos]

    def _need(self, count: int, field: str) -> None:
        if count > self.remaining:
            raise ProtocolError(
                f"truncated {self.what}: {field} needs {count} bytes at offset {self._pos}, "
                f"{self.remaining} left"
            )

    def fixed(self, count: int, field: str = "field") -> bytes:
        """Exactly ``count`` bytes."""
        self._need(count, field)
        start = self._pos
        self._pos += count
        return self._data[start : self._pos]

    def skip(self, count: int, field: str = "filler") -> None:
        self._need(count, field)
        self._pos += count

    def int1(self, field: str = "u8") -> int:
        self._need(1, field)
        value = self._data[self._pos]
        self._pos += 1
        return value

    def int2(self, field: str = "u16") -> int:
        return int.from_bytes(self.fixed(2, field), "little")

    def int3(self, field: str = "u24") -> int:
        return int.from_bytes(self.fixed(3, field), "little")

    def int4(self, field: str = "u32") -> int:
        return int.from_bytes(self.fixed(4, field), "little")

    def int8(self, field: str = "u64") -> int:
        return int.from_bytes(self.fixed(8, field), "little")

    def lenenc_int_or_null(self, field: str = "length-encoded integer") -> int | None:
        """A length-encoded integer, or ``None`` for the NULL marker ``0xFB``."""
        first = self.int1(field)
        if first < 0xFB:
            return first
        if first == 0xFB:
            return None
        if first == 0xFC:
            return self.int2(field)
        if first == 0xFD:
            return self.int3(field)
        if first == 0xFE:
            return self.int8(field)
        raise ProtocolError(f"malformed {self.what}: {field} starts with 0xFF at offset {self._pos - 1}")

    def lenenc_int(self, field: str = "length-encoded integer") -> int:
        value = self.lenenc_int_or_null(field)
        if value is None:
            raise ProtocolError(f"malformed {self.what}: unexpected NULL marker for {field}")
        return value

    def lenenc_bytes(self, field: str = "length-encoded string") -> bytes:
        return self.fixed(self.lenenc_int(field), field)

    def lenenc_bytes_or_null(self, field: str = "length-encoded string") -> bytes | None:
        length = self.lenenc_int_or_null(field)
        return None if length is None else self.fixed(length, field)

    def nul_bytes(self, field: str = "NUL-terminated string") -> bytes:
        """Bytes up to (not including) the next NUL, which is consumed."""
        end = self._data.find(b"\x00", self._pos)
        if end < 0:
            raise ProtocolError(f"malformed {self.what}: {field} at offset {self._pos} has no NUL terminator")
        value = self._data[self._pos : end]
        self._pos = end + 1
        return value

    def rest(self) -> bytes:
        """Everything not yet read (possibly empty)."""
        value = self._data[self._pos :]
        self._pos = len(self._data)
        return value


def text(value: bytes) -> str:
    """Decode a protocol string. Clients of this server speak utf8mb4; anything undecodable is
    replaced rather than rejected, because a strange byte in a name must not kill a session."""
    return value.decode("utf-8", errors="replace")
