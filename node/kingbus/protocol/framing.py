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

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from kingbus.protocol.constants import MAX_PACKET_CHUNK
from kingbus.protocol.errors import PacketsOutOfOrder, PacketTooLarge, ProtocolError

HEADER_SIZE = 4

# MySQL's own hard limit for max_allowed_packet (1 GiB); the default for the reader.
DEFAULT_MAX_PAYLOAD = 1 << 30


class Packet(NamedTuple):
    """A complete logical payload (a NamedTuple: one is made per packet, cheaply).

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
    """Incremental reassembly of payloads from a byte stream.

    Fed bytes are kept as received and joined only when a packet needs bytes from more than
    one of them, so a payload is copied once more at most, and many small packets are cut
    from one large read by slicing (the leader's binlog stream is hundreds of thousands of
    packets a second).
    """

    def __init__(self, *, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        if max_payload < 0:
            raise ValueError("max_payload must not be negative")
        self.max_payload = max_payload
        self._data = b""  # contiguous bytes, parsed from `_pos` on
        self._pos = 0
        self._fed: list[bytes] = []  # later bytes, not yet joined to `_data`
        self._fed_size = 0
        self._chunks: list[bytes] = []  # pieces of a payload still waiting for its last packet
        self._chunks_size = 0
        self._first_seq = 0
        self._last_seq = 0
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a payload."""
        return self._available() + self._chunks_size

    @property
    def wanted(self) -> int:
        """How many more bytes complete the next physical packet (at least 1).

        Reading exactly this many matters before a TLS upgrade: a client sends its TLS
        ClientHello right behind the SSLRequest without waiting, and bytes swallowed by a
        greedy ``recv`` here would be missing from the TLS handshake.
        """
        available = self._available()
        if not self._contiguous(HEADER_SIZE):
            return HEADER_SIZE - available
        length = int.from_bytes(self._data[self._pos : self._pos + 3], "little")
        return max(1, HEADER_SIZE + length - available)

    def feed(self, data: bytes) -> None:
        """Append bytes from the peer. Cheap; all parsing happens in :meth:`next_packet`."""
        if self._error is not None:
            raise self._error
        if data:
            self._fed.append(bytes(data))
            self._fed_size += len(data)

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
            self._data, self._pos = b"", 0
            self._fed.clear()
            self._fed_size = 0
            self._chunks.clear()
            raise

    def packets(self) -> Iterator[Packet]:
        """Every complete payload currently buffered."""
        while (packet := self.next_packet()) is not None:
            yield packet

    def _available(self) -> int:
        return len(self._data) - self._pos + self._fed_size

    def _contiguous(self, n: int) -> bool:
        """Makes `n` bytes from `_pos` contiguous in `_data`; False while fewer have arrived."""
        have = len(self._data) - self._pos
        if have >= n:
            return True
        if have + self._fed_size < n:
            return False
        self._data = b"".join([self._data[self._pos :], *self._fed])
        self._pos = 0
        self._fed.clear()
        self._fed_size = 0
        return True

    def _next(self) -> Packet | None:
        while self._contiguous(HEADER_SIZE):
            data, pos = self._data, self._pos
            length = data[pos] | (data[pos + 1] << 8) | (data[pos + 2] << 16)
            seq = data[pos + 3]
            if self._chunks:
                expected = (self._last_seq + 1) % 256
                if seq != expected:
                    raise PacketsOutOfOrder(expected, seq)
            # Refuse on the header alone: the announced size is known before the bytes arrive.
            total = self._chunks_size + length
            if total > self.max_payload:
                raise PacketTooLarge(total, self.max_payload)
            if not self._contiguous(HEADER_SIZE + length):
                return None
            data, pos = self._data, self._pos
            chunk = data[pos + HEADER_SIZE : pos + HEADER_SIZE + length]
            self._pos = pos + HEADER_SIZE + length
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
