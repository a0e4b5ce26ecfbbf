"""kingbus.protocol.compression: the compressed packet codec, pure (bytes in, values out)."""

from __future__ import annotations

import random
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kingbus.protocol import compression
from kingbus.protocol.compression import Algorithm, Codec, CompressedReader, compress_stream
from kingbus.protocol.constants import Capability
from kingbus.protocol.errors import ProtocolError

CODECS = [Codec(Algorithm.ZLIB), Codec(Algorithm.ZSTD, 3), Codec(Algorithm.ZSTD, 19)]


def _packets(wire: bytes) -> list[tuple[int, int, int]]:
    """(compressed length, sequence id, uncompressed length) of each compressed packet."""
    out, pos = [], 0
    while pos < len(wire):
        length = int.from_bytes(wire[pos : pos + 3], "little")
        out.append((length, wire[pos + 3], int.from_bytes(wire[pos + 4 : pos + 7], "little")))
        pos += 7 + length
    assert pos == len(wire)
    return out


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: f"{c.algorithm.value}-{c.level}")
@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=5000), seq=st.integers(0, 255), cuts=st.lists(st.integers(1, 700), max_size=20)
)
def test_what_is_compressed_reads_back_whole_however_it_arrives(
    codec: Codec, data: bytes, seq: int, cuts: list[int]
) -> None:
    wire, next_seq = compress_stream(data, seq, codec)
    assert next_seq == (seq + len(_packets(wire))) % 256
    reader = CompressedReader(codec)
    got, pos = b"", 0
    for size in [*cuts, len(wire)]:
        got += reader.take_after(wire[pos : pos + size])
        pos += size
    assert got == data
    assert reader.last_seq == (next_seq - 1) % 256


@pytest.mark.parametrize("codec", CODECS[:2], ids=lambda c: c.algorithm.value)
def test_short_or_incompressible_data_travels_uncompressed_as_in_mysqld(codec: Codec) -> None:
    short = b"\x01\x00\x00\x01\x01"  # under MIN_COMPRESS_LENGTH
    wire, _ = compress_stream(short, 1, codec)
    assert _packets(wire) == [(len(short), 1, 0)] and wire[7:] == short
    noise = random.Random(1).randbytes(4000)  # no deflate or zstd output is shorter
    wire, _ = compress_stream(noise, 9, codec)
    assert [uncompressed for _, _, uncompressed in _packets(wire)] == [0]


@pytest.mark.parametrize("codec", CODECS[:2], ids=lambda c: c.algorithm.value)
def test_more_than_16_mib_is_cut_into_chunks_of_16_mib_minus_one(codec: Codec) -> None:
    data = b"binlog " * (5 * 1024 * 1024)  # 35 MiB
    wire, next_seq = compress_stream(data, 254, codec)
    packets = _packets(wire)
    assert [p[2] for p in packets] == [0xFFFFFF, 0xFFFFFF, len(data) - 2 * 0xFFFFFF]
    assert [p[1] for p in packets] == [254, 255, 0] and next_seq == 1
    reader = CompressedReader(codec)
    assert reader.take_after(wire) == data


def test_an_empty_write_is_one_empty_packet() -> None:
    wire, next_seq = compress_stream(b"", 3, Codec(Algorithm.ZLIB))
    assert wire == bytes((0, 0, 0, 3, 0, 0, 0)) and next_seq == 4


def test_zlib_packets_are_what_mysqld_inflates() -> None:
    """The body is zlib's compress(): a zlib header, deflate, adler32 (uncompress() reads it)."""
    data = b"SELECT 1 " * 40
    wire, _ = compress_stream(data, 0, Codec(Algorithm.ZLIB))
    assert zlib.decompress(wire[7:]) == data


def _broken(header: tuple[int, int, int], body: bytes) -> bytes:
    length, seq, uncompressed = header
    return length.to_bytes(3, "little") + bytes((seq,)) + uncompressed.to_bytes(3, "little") + body


@pytest.mark.parametrize(
    ("codec", "wire", "reason"),
    [
        (Codec(Algorithm.ZLIB), _broken((5, 0, 100), b"\x00\x01\x02\x03\x04"), "zlib"),
        (Codec(Algorithm.ZSTD, 3), _broken((5, 0, 100), b"\x00\x01\x02\x03\x04"), "zstd"),
        (Codec(Algorithm.ZLIB), _broken((0, 0, 100), b""), "no data"),
    ],
)
def test_malformed_compressed_packets_are_refused_and_the_reader_stays_broken(
    codec: Codec, wire: bytes, reason: str
) -> None:
    reader = CompressedReader(codec)
    with pytest.raises(ProtocolError, match=reason):
        reader.take_after(wire)
    with pytest.raises(ProtocolError, match=reason):
        reader.take_after(b"")


@pytest.mark.parametrize("codec", CODECS[:2], ids=lambda c: c.algorithm.value)
def test_a_body_that_inflates_beyond_its_header_is_refused_without_inflating_it(codec: Codec) -> None:
    bomb = codec.compress(bytes(64 * 1024 * 1024))  # 64 MiB of zeros, a few KiB compressed
    reader = CompressedReader(codec)
    with pytest.raises(ProtocolError, match="inflated to 101 bytes, its header said 100"):
        reader.take_after(_broken((len(bomb), 0, 100), bomb))


@pytest.mark.parametrize("codec", CODECS[:2], ids=lambda c: c.algorithm.value)
def test_a_body_that_inflates_to_less_than_its_header_is_refused(codec: Codec) -> None:
    body = codec.compress(b"x" * 80)
    with pytest.raises(ProtocolError, match="inflated to 80 bytes, its header said 81"):
        CompressedReader(codec).take_after(_broken((len(body), 0, 81), body))


def test_a_partial_packet_waits_for_the_rest() -> None:
    codec = Codec(Algorithm.ZLIB)
    wire, _ = compress_stream(b"y" * 500, 0, codec)
    reader = CompressedReader(codec)
    assert reader.take_after(wire[:6]) == b"" and reader.take_after(wire[6:-1]) == b""
    assert reader.last_seq is None
    assert reader.take_after(wire[-1:]) == b"y" * 500 and reader.last_seq == 0


@pytest.mark.parametrize(
    ("caps", "level", "expected"),
    [
        (Capability(0), None, None),
        (Capability.COMPRESS, None, Codec(Algorithm.ZLIB)),
        (Capability.ZSTD_COMPRESSION_ALGORITHM, None, Codec(Algorithm.ZSTD, 3)),
        (Capability.ZSTD_COMPRESSION_ALGORITHM, 7, Codec(Algorithm.ZSTD, 7)),
        # Both announced: zlib, as mysqld decides.
        (Capability.COMPRESS | Capability.ZSTD_COMPRESSION_ALGORITHM, 7, Codec(Algorithm.ZLIB)),
    ],
)
def test_the_negotiated_codec(caps: Capability, level: int | None, expected: Codec | None) -> None:
    assert compression.negotiated(caps, level) == expected


@pytest.mark.parametrize("level", [0, 23, 255])
def test_a_zstd_level_outside_1_to_22_is_refused(level: int) -> None:
    with pytest.raises(ProtocolError, match=r"outside 1\.\.22"):
        compression.negotiated(Capability.ZSTD_COMPRESSION_ALGORITHM, level)
