"""Length-encoded integers/strings, NUL strings and the bounds-checked Reader."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kingbus.protocol import wire
from kingbus.protocol.errors import ProtocolError


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (250, b"\xfa"),
        (251, b"\xfc\xfb\x00"),
        (0xFFFF, b"\xfc\xff\xff"),
        (0x10000, b"\xfd\x00\x00\x01"),
        (0xFFFFFF, b"\xfd\xff\xff\xff"),
        (0x1000000, b"\xfe\x00\x00\x00\x01\x00\x00\x00\x00"),
        (2**64 - 1, b"\xfe" + b"\xff" * 8),
    ],
)
def test_lenenc_int_boundaries(value: int, encoded: bytes) -> None:
    assert wire.lenenc_int(value) == encoded
    reader = wire.Reader(encoded)
    assert reader.lenenc_int() == value
    assert reader.at_end()


@pytest.mark.parametrize("value", [-1, 2**64])
def test_lenenc_int_out_of_range_is_a_caller_bug(value: int) -> None:
    with pytest.raises(ValueError):
        wire.lenenc_int(value)


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_lenenc_int_roundtrip(value: int) -> None:
    assert wire.Reader(wire.lenenc_int(value)).lenenc_int() == value


@given(st.binary(max_size=300))
def test_lenenc_bytes_roundtrip(value: bytes) -> None:
    reader = wire.Reader(wire.lenenc_bytes(value) + b"tail")
    assert reader.lenenc_bytes() == value
    assert reader.rest() == b"tail"


def test_null_marker_and_ff_prefix() -> None:
    assert wire.Reader(b"\xfb").lenenc_int_or_null() is None
    assert wire.Reader(b"\xfb").lenenc_bytes_or_null() is None
    with pytest.raises(ProtocolError, match="NULL marker"):
        wire.Reader(b"\xfb").lenenc_int()
    with pytest.raises(ProtocolError, match="0xFF"):
        wire.Reader(b"\xff").lenenc_int()


@pytest.mark.parametrize("data", [b"", b"\xfc\x01", b"\xfd\x01\x02", b"\xfe\x01\x02\x03\x04\x05\x06\x07"])
def test_truncated_lenenc_int(data: bytes) -> None:
    with pytest.raises(ProtocolError, match="truncated"):
        wire.Reader(data).lenenc_int()


def test_lenenc_string_longer_than_packet() -> None:
    with pytest.raises(ProtocolError, match="truncated test: name needs 5 bytes at offset 1, 2 left"):
        wire.Reader(b"\x05ab", "test").lenenc_bytes("name")


def test_fixed_width_integers_little_endian() -> None:
    reader = wire.Reader(bytes(range(1, 16)))
    assert reader.int1() == 0x01
    assert reader.int2() == 0x0302
    assert reader.int3() == 0x060504
    assert reader.int4() == 0x0A090807
    with pytest.raises(ProtocolError):
        reader.int8()
    # A failed read consumes nothing.
    assert reader.remaining == 5
    assert wire.int3(0x060504) == b"\x04\x05\x06"
    assert wire.int8(1) == b"\x01" + bytes(7)
    with pytest.raises(ValueError):
        wire.int2(0x10000)
    with pytest.raises(ValueError):
        wire.int1(-1)


def test_nul_strings() -> None:
    reader = wire.Reader(b"abc\x00\x00rest")
    assert reader.nul_bytes() == b"abc"
    assert reader.nul_bytes() == b""
    assert reader.position == 5
    with pytest.raises(ProtocolError, match="no NUL terminator"):
        reader.nul_bytes()
    assert wire.nul_str("héllo") == "héllo".encode() + b"\x00"
    with pytest.raises(ValueError):
        wire.nul_bytes(b"a\x00b")


def test_peek_skip_rest() -> None:
    reader = wire.Reader(b"\x01\x02\x03")
    assert reader.peek() == 1
    reader.skip(2)
    assert reader.rest() == b"\x03"
    assert reader.rest() == b""
    with pytest.raises(ProtocolError):
        reader.peek()
    with pytest.raises(ProtocolError):
        reader.skip(1)


def test_text_replaces_invalid_utf8() -> None:
    assert wire.text(b"ok\xff") == "ok\ufffd"
