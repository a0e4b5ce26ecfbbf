"""kingbus.binlog.crc is zlib's CRC-32, value for value and in chaining: stored journals,
MySQL's event checksums and replicas all depend on it being the same function."""

from __future__ import annotations

import zlib

from hypothesis import given
from hypothesis import strategies as st

from kingbus.binlog.crc import crc32


@given(data=st.binary(max_size=5000), start=st.integers(0, 0xFFFFFFFF))
def test_the_same_value_as_zlib_from_any_starting_value(data: bytes, start: int) -> None:
    assert crc32(data) == zlib.crc32(data)
    assert crc32(data, start) == zlib.crc32(data, start)


@given(data=st.binary(max_size=3000), cut=st.integers(0, 3000))
def test_chaining_equals_one_pass_over_bytes_and_views(data: bytes, cut: int) -> None:
    cut = min(cut, len(data))
    view = memoryview(bytearray(data))
    assert crc32(view[cut:], crc32(view[:cut])) == zlib.crc32(data)


def test_a_large_input_and_the_check_value() -> None:
    big = bytes(range(256)) * 40_000  # ~10 MiB: ISA-L's folding path, not its short-input one
    assert crc32(big) == zlib.crc32(big)
    assert crc32(b"123456789") == 0xCBF43926  # the CRC-32 check value
