"""Packet framing: the 4-byte header (u24 payload length, u8 sequence id) around payloads.

Theory of operation
-------------------
A MySQL *payload* travels in one or more physical packets. A packet carries at most
``0xFFFFFF`` payload bytes; a packet of exactly that length says "the payload continues in the
next packet", so a payload of ``n * 0xFFFFFF`` bytes ends with an empty packet. Every packet,
continuations included, takes the next sequence id (mod 256); a command from the client resets
the sequence to 0 and every reply continues it.

:class:`PacketReader` is incremental and does no I/O: the adapter ``feed``\\ s whatever bytes
the socket produced, then drains complete payloads with :meth:`PacketReader.next_packet` (or
iterates :meth:`PacketReader.packets`). It checks that continuation packets keep the
sequence going, and it refuses a payload larger than ``max_payload`` as soon as the headers
announce it -- before buffering it -- so a hostile peer cannot make us hold a gigabyte.
Once it has raised, the reader stays broken and raises the same error again: the byte
stream cannot be resynchronised.

:func:`frame` is the inverse: one payload to wire bytes plus the sequence id that follows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

from kingbus.protocol.constants import MAX_PACKET_CHUNK
from kingbus.protocol.errors import PacketsOutOfOrder, PacketTooLarge, ProtocolError

HEADER_SIZE = 4

# MySQL's own hard limit for max_allowed_packet (1 GiB); the default for the reader.
DEFAULT_MAX_PAYLOAD = 1 << 30


@dataclasses.dataclass(frozen=True, slots=True)
class Packet:
    """A complete logical payload.

    ``seq`` is the sequence id of its first physical packet, ``last_seq`` that of its last one
    (they differ only for payloads of 16 MiB or more); a reply continues with ``next_seq``.
    """

    seq: int
    payload: bytes
    last_seq: int

    @property
    def next_seq(self) -> int:
        return (self.last_seq + 1) % 256


class PacketReader:
    """Incremental reassembly of payloads from a byte stream."""

    def __init__(self, *, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        if max_payload < 0:
            raise ValueError("max_payload must not be negative")
        self.max_payload = max_payload
        self._buffer = bytearray()
        self._chunks: list[bytes] = []  # pieces of a payload still waiting for its last packet
        self._chunks_size = 0
        self._first_seq = 0
        self._last_seq = 0
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a payload."""
        return len(self._buffer) + self._chunks_size

    @property
    def wanted(self) -> int:
        """How many more bytes complete the next physical packet (at least 1).

        Reading exactly this many matters before a TLS upgrade: a client sends its TLS
        ClientHello right behind the SSLRequest without waiting, and bytes swallowed by a
        greedy ``recv`` here would be missing from the TLS handshake.
        """
        if len(self._buffer) < HEADER_SIZE:
            return HEADER_SIZE - len(self._buffer)
        length = int.from_bytes(self._buffer[0:3], "little")
        return max(1, HEADER_SIZE + length - len(self._buffer))

    def feed(self, data: bytes) -> None:
        """Append bytes from the peer. Cheap; all parsing happens in :meth:`next_packet`."""
        if self._error is not None:
            raise self._error
        self._buffer += data

    def next_packet(self, *, expected_seq: int | None = None) -> Packet | None:
        """The next complete payload, or ``None`` if more bytes are needed.

        With ``expected_seq``, a payload whose first packet carries another sequence id is
        refused with :class:`PacketsOutOfOrder` (a command must start at 0; a reply during
        authentication continues the server's sequence).
        """
        if self._error is not None:
            raise self._error
        try:
            packet = self._next()
            if packet is not None and expected_seq is not None and packet.seq != expected_seq:
                raise PacketsOutOfOrder(expected_seq, packet.seq)
            return packet
        except ProtocolError as error:
            self._error = error
            self._buffer.clear()
            self._chunks.clear()
            raise

    def packets(self) -> Iterator[Packet]:
        """Every complete payload currently buffered."""
        while (packet := self.next_packet()) is not None:
            yield packet

    def _next(self) -> Packet | None:
        while len(self._buffer) >= HEADER_SIZE:
            length = int.from_bytes(self._buffer[0:3], "little")
            seq = self._buffer[3]
            if self._chunks:
                expected = (self._last_seq + 1) % 256
                if seq != expected:
                    raise PacketsOutOfOrder(expected, seq)
            # Refuse on the header alone: the announced size is known before the bytes arrive.
            total = self._chunks_size + length
            if total > self.max_payload:
                raise PacketTooLarge(total, self.max_payload)
            if len(self._buffer) < HEADER_SIZE + length:
                return None
            chunk = bytes(self._buffer[HEADER_SIZE : HEADER_SIZE + length])
            del self._buffer[: HEADER_SIZE + length]
            if not self._chunks:
                self._first_seq = seq
            self._last_seq = seq
            if length == MAX_PACKET_CHUNK:
                self._chunks.append(chunk)
                self._chunks_size += length
                continue
            if self._chunks:
                self._chunks.append(chunk)
                payload = b"".join(self._chunks)
                self._chunks.clear()
                self._chunks_size = 0
            else:
                payload = chunk
            return Packet(seq=self._first_seq, payload=payload, last_seq=self._last_seq)
        return None


def frame(payload: bytes, seq: int) -> tuple[bytes, int]:
    """Wire bytes for ``payload`` starting at sequence id ``seq``, and the next sequence id.

    Payloads of ``0xFFFFFF`` bytes or more are split into ``0xFFFFFF``-byte packets; when the
    length is an exact multiple, an empty packet ends the payload so the reader knows it is
    complete.
    """
    if not 0 <= seq <= 255:
        raise ValueError(f"sequence id must be 0..255, got {seq}")
    view = memoryview(payload)
    parts: list[bytes] = []
    offset = 0
    while True:
        chunk = view[offset : offset + MAX_PACKET_CHUNK]
        parts.append(len(chunk).to_bytes(3, "little") + bytes((seq,)))
        parts.append(bytes(chunk))
        seq = (seq + 1) % 256
        offset += len(chunk)
        if len(chunk) < MAX_PACKET_CHUNK:
            return b"".join(parts), seq


def frame_all(payloads: Iterable[bytes], seq: int) -> tuple[bytes, int]:
    """Frame several payloads back to back (e.g. a whole result set), continuing the sequence."""
    parts: list[bytes] = []
    for payload in payloads:
        data, seq = frame(payload, seq)
        parts.append(data)
    return b"".join(parts), seq
