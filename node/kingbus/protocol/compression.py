"""The compressed protocol (CLIENT_COMPRESS: zlib; CLIENT_ZSTD_COMPRESSION_ALGORITHM: zstd).

Theory of operation
-------------------
With compression negotiated, the ordinary packet stream (4-byte headers and payloads, see
:mod:`kingbus.protocol.framing`) is cut into *compressed packets*, each with a 7-byte header:

    int<3> length of what follows the header
    int<1> compressed sequence id
    int<3> length before compression, or 0: what follows is not compressed

A compressed packet may hold a piece of a packet or several packets; the receiver joins their
contents back into the packet stream. Its own sequence ids count independently of the inner
packets' and, like theirs, start at 0 with each command from the client: the server answers
from the client's last compressed sequence id + 1.

Measured against MySQL 9.7 (a raw client with CLIENT_COMPRESS, see the tests): compression
starts after the authentication's final OK, which is itself sent uncompressed; a reply under
50 bytes (MIN_COMPRESS_LENGTH) is sent with length-before-compression 0; a whole result set
travels in one compressed packet. Data that does not shrink is sent uncompressed too, as
MySQL does. If a client announces both algorithms, zlib is used (MySQL's rule).

zlib is deflate with a zlib header (``compress()``); zstd frames come from the `zstandard`
library at the level the client asked for in its handshake response.

:class:`CompressedReader` is incremental and does no I/O, like :class:`framing.PacketReader`:
a header whose lengths are impossible, data that does not inflate, or inflates to anything
but the announced length is a :class:`ProtocolError`, and the reader stays broken (a stream
cannot be resynchronised). Inflating is bounded by the announced length, so a small packet
cannot expand into gigabytes.
"""

from __future__ import annotations

import enum
import io
import zlib
from dataclasses import dataclass

import zstandard

from kingbus.protocol.constants import Capability
from kingbus.protocol.errors import ProtocolError

HEADER_SIZE = 7
MAX_CHUNK = 0xFFFFFF  # the most a 3-byte length can describe
MIN_COMPRESS_LENGTH = 50  # MySQL sends shorter data uncompressed
ZLIB_LEVEL = 6  # zlib's default, what mysqld's compress() uses
ZSTD_DEFAULT_LEVEL = 3  # a client that names no level gets MySQL's default


class Algorithm(enum.Enum):
    ZLIB = "zlib"
    ZSTD = "zstd"


@dataclass(frozen=True)
class Codec:
    """One session's compression: the algorithm and (zstd) level the client chose."""

    algorithm: Algorithm
    level: int = ZLIB_LEVEL

    def compress(self, data: bytes | memoryview) -> bytes:
        if self.algorithm is Algorithm.ZLIB:
            return zlib.compress(data, self.level)
        return zstandard.ZstdCompressor(level=self.level).compress(data)

    def decompress(self, data: bytes, expected: int) -> bytes:
        """Exactly `expected` bytes out of `data`, or a ProtocolError."""
        try:
            if self.algorithm is Algorithm.ZLIB:
                inflater = zlib.decompressobj()
                out = inflater.decompress(data, expected + 1)
                complete = inflater.eof and not inflater.unconsumed_tail and not inflater.unused_data
            else:
                # A stream reader, read up to one byte past the announcement: `decompress` would
                # allocate whatever size the frame's own header claims.
                with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
                    out = reader.read(expected + 1)
                    complete = len(out) == expected and reader.read(1) == b""
        except (zlib.error, zstandard.ZstdError) as exc:
            raise ProtocolError(f"malformed compressed packet: {self.algorithm.value}: {exc}") from exc
        if len(out) != expected or not complete:
            raise ProtocolError(
                f"malformed compressed packet: inflated to {len(out)} bytes, its header said {expected}"
            )
        return out


def negotiated(capabilities: Capability, zstd_level: int | None) -> Codec | None:
    """The codec a session with these (negotiated) capabilities uses, if any."""
    if capabilities & Capability.COMPRESS:
        return Codec(Algorithm.ZLIB)
    if capabilities & Capability.ZSTD_COMPRESSION_ALGORITHM:
        level = ZSTD_DEFAULT_LEVEL if zstd_level is None else zstd_level
        if not 1 <= level <= 22:
            raise ProtocolError(f"zstd compression level {level} is outside 1..22")
        return Codec(Algorithm.ZSTD, level)
    return None


def _header(length: int, seq: int, uncompressed: int) -> bytes:
    return length.to_bytes(3, "little") + bytes((seq,)) + uncompressed.to_bytes(3, "little")


def compress_stream(data: bytes, seq: int, codec: Codec) -> tuple[bytes, int]:
    """Packet-stream bytes as compressed packets from compressed sequence id `seq`; returns the
    wire bytes and the sequence id that follows."""
    out: list[bytes] = []
    view = memoryview(data)
    for start in range(0, max(len(data), 1), MAX_CHUNK):
        chunk = view[start : start + MAX_CHUNK]
        packed = codec.compress(chunk) if len(chunk) >= MIN_COMPRESS_LENGTH else None
        if packed is not None and len(packed) < len(chunk):
            out += (_header(len(packed), seq, len(chunk)), packed)
        else:
            out += (_header(len(chunk), seq, 0), bytes(chunk))
        seq = (seq + 1) % 256
    return b"".join(out), seq


class CompressedReader:
    """Incremental reassembly of the packet stream from compressed packets."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self._buffer = bytearray()
        self._error: ProtocolError | None = None
        self.last_seq: int | None = None  # of the last compressed packet read

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def take_after(self, data: bytes) -> bytes:
        """`feed` then `take`."""
        self.feed(data)
        return self.take()

    def take(self) -> bytes:
        """The packet-stream bytes of every complete compressed packet fed so far."""
        if self._error is not None:
            raise self._error
        try:
            return self._take()
        except ProtocolError as exc:
            self._error = exc
            raise

    def _take(self) -> bytes:
        out: list[bytes] = []
        buffer = self._buffer
        pos = 0
        while len(buffer) - pos >= HEADER_SIZE:
            length = int.from_bytes(buffer[pos : pos + 3], "little")
            seq = buffer[pos + 3]
            uncompressed = int.from_bytes(buffer[pos + 4 : pos + 7], "little")
            if len(buffer) - pos - HEADER_SIZE < length:
                break
            body = bytes(buffer[pos + HEADER_SIZE : pos + HEADER_SIZE + length])
            if uncompressed == 0:
                out.append(body)
            elif length == 0:
                raise ProtocolError(f"malformed compressed packet: no data for {uncompressed} bytes")
            else:
                out.append(self.codec.decompress(body, uncompressed))
            self.last_seq = seq
            pos += HEADER_SIZE + length
        del buffer[:pos]
        return b"".join(out)
