"""Variable-length integers: serialization-framework varlen and protocol lenenc."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kingbus.binlog import varints
from kingbus.binlog.errors import MalformedEvent


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, "00"),
        (1, "02"),  # value << 1, low bit 0: one byte
        (0x77, "ee"),  # a UUID byte < 128 (from a real MySQL 9.7 tagged GTID event)
        (0xD1, "4503"),  # (0xd1 << 2) | 0b01 = 0x345, little-endian: two bytes
        (337, "4505"),  # a transaction_length seen in a real event
        (80411, "dbd009"),  # immediate_server_version 8.04.11: three bytes, low bits 011
        (2**56 - 1, "7f" + "ff" * 7),  # the largest 8-byte value
        (2**56, "ff" + (2**56).to_bytes(8, "little").hex()),  # 9 bytes: 0xff + u64
        (2**64 - 1, "ff" + "ff" * 8),
    ],
)
def test_varlen_unsigned_vectors(value: int, encoded: str) -> None:
    assert varints.encode_varlen_unsigned(value).hex() == encoded
    assert varints.decode_varlen_unsigned(bytes.fromhex(encoded), 0) == (value, len(encoded) // 2)


@pytest.mark.parametrize(("value", "encoded"), [(0, "00"), (1, "04"), (-1, "02"), (63, "fc"), (-64, "fe")])
def test_varlen_signed_vectors(value: int, encoded: str) -> None:
    assert varints.encode_varlen_signed(value).hex() == encoded
    assert varints.decode_varlen_signed(bytes.fromhex(encoded), 0)[0] == value


@given(st.integers(0, 2**64 - 1), st.binary(max_size=3))
def test_varlen_unsigned_round_trip(value: int, suffix: bytes) -> None:
    enc = varints.encode_varlen_unsigned(value)
    assert varints.decode_varlen_unsigned(b"\x01" + enc + suffix, 1) == (value, 1 + len(enc))
    with pytest.raises(MalformedEvent):
        varints.decode_varlen_unsigned(enc[:-1], 0)


@given(st.integers(-(2**63), 2**63 - 1))
def test_varlen_signed_round_trip(value: int) -> None:
    enc = varints.encode_varlen_signed(value)
    assert varints.decode_varlen_signed(enc, 0) == (value, len(enc))


@given(st.integers(0, 2**64 - 1))
def test_lenenc_round_trip(value: int) -> None:
    enc = varints.encode_lenenc(value)
    assert varints.decode_lenenc(enc, 0) == (value, len(enc))
    if len(enc) > 1:
        with pytest.raises(MalformedEvent):
            varints.decode_lenenc(enc[:-1], 0)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(250, "fa"), (251, "fcfb00"), (65536, "fd000001"), (2**24, "fe" + "0000000100000000")],
)
def test_lenenc_vectors(value: int, encoded: str) -> None:
    assert varints.encode_lenenc(value).hex() == encoded


@pytest.mark.parametrize("bad", [b"", b"\xfb", b"\xff"])
def test_lenenc_malformed(bad: bytes) -> None:
    with pytest.raises(MalformedEvent):
        varints.decode_lenenc(bad, 0)


def test_out_of_range() -> None:
    for f, v in [
        (varints.encode_varlen_unsigned, -1),
        (varints.encode_varlen_unsigned, 2**64),
        (varints.encode_varlen_signed, 2**63),
        (varints.encode_lenenc, -1),
    ]:
        with pytest.raises(ValueError):
            f(v)
    with pytest.raises(MalformedEvent):
        varints.decode_varlen_unsigned(b"", 0)
