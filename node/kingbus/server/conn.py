"""The packet layer over asyncio: exact reads before TLS, framed payloads after.

Before a possible TLS upgrade the server reads the raw socket itself, exactly up to the end of
the client's first packet (``PacketReader.wanted``): a client sends its TLS ClientHello right
behind the SSLRequest, and a greedy read would swallow it.  Then the accepted socket is
handed to asyncio (``connect_accepted_socket``, with TLS when the client asked for it) and
:class:`PacketConn` reads and writes whole payloads with sequence ids checked -- through the
compressed protocol (:mod:`kingbus.protocol.compression`) once the session has started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterable

from kingbus.protocol import compression, framing

READ_SIZE = 1 << 16
# Compressing more than this at once happens in a worker thread: zlib at mysqld's level 6 takes
# tens of milliseconds per MiB, which the event loop must not spend.
COMPRESS_IN_THREAD_BYTES = 64 * 1024


class PeerClosed(ConnectionError):
    """The client closed the connection."""


async def send_raw(sock: socket.socket, data: bytes) -> None:
    await asyncio.get_running_loop().sock_sendall(sock, data)


async def read_first_packet(sock: socket.socket, max_payload: int) -> framing.Packet:
    """The client's first packet, reading no byte beyond it."""
    loop = asyncio.get_running_loop()
    reader = framing.PacketReader(max_payload=max_payload)
    while (packet := reader.next_packet(expected_seq=1)) is None:
        data = await loop.sock_recv(sock, reader.wanted)
        if not data:
            raise PeerClosed("peer closed during the handshake")
        reader.feed(data)
    return packet


class PacketConn:
    """Whole payloads in and out of an asyncio stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_payload: int) -> None:
        self.reader = reader
        self.writer = writer
        self.packets = framing.PacketReader(max_payload=max_payload)
        self.bytes_sent = 0
        self.codec: compression.Codec | None = None
        self._inflater: compression.CompressedReader | None = None
        self._compressed_seq = 0  # of the next compressed packet this side sends

    def start_compression(self, codec: compression.Codec) -> None:
        """From now on both directions are compressed packets (after the authentication's OK,
        as in mysqld)."""
        self.codec = codec
        self._inflater = compression.CompressedReader(codec)

    @classmethod
    async def open(
        cls, sock: socket.socket, *, tls: ssl.SSLContext | None, max_payload: int, handshake_timeout: float
    ) -> PacketConn:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=READ_SIZE, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport, _ = await loop.connect_accepted_socket(
            lambda: protocol, sock, ssl=tls, ssl_handshake_timeout=handshake_timeout if tls else None
        )
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        return cls(reader, writer, max_payload)

    async def read(self, *, expected_seq: int | None) -> framing.Packet:
        while (packet := self.packets.next_packet(expected_seq=expected_seq)) is None:
            data = await self.reader.read(READ_SIZE)
            if not data:
                raise PeerClosed("peer closed the connection")
            if self._inflater is not None:
                data = self._inflater.take_after(data)
                if self._inflater.last_seq is not None:
                    self._compressed_seq = (self._inflater.last_seq + 1) % 256
            self.packets.feed(data)
        return packet

    async def send(self, payloads: Iterable[bytes], seq: int) -> int:
        """Send payloads from sequence id ``seq`` (and wait until the transport took them);
        returns the next sequence id."""
        data, next_seq = framing.frame_all(payloads, seq)
        codec = self.codec
        if codec is not None:
            if len(data) >= COMPRESS_IN_THREAD_BYTES:
                # zlib and zstd release the interpreter lock: the event loop (every other
                # replica, the admin API) goes on meanwhile. One writer per connection, so the
                # compressed sequence cannot interleave.
                compressed = await asyncio.to_thread(
                    compression.compress_stream, data, self._compressed_seq, codec
                )
            else:
                compressed = compression.compress_stream(data, self._compressed_seq, codec)
            data, self._compressed_seq = compressed
        self.writer.write(data)
        self.bytes_sent += len(data)
        await self.writer.drain()
        return next_seq

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            await asyncio.wait_for(self.writer.wait_closed(), 2)
