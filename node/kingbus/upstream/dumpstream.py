"""Cutting a binlog dump stream into events, many at a time (pure: bytes in, events out).

After COM_BINLOG_DUMP_GTID a source sends nothing but packets, each holding one event
(``0x00`` then the event, or with semi-sync ``0x00 0xEF flags`` then the event), an EOF
packet when it ends the stream, or an ERR packet (e.g. 1236).  `kingbus.protocol.framing`
cuts any packet stream one payload at a time; the leader's syncer handles hundreds of
thousands of events a second, so this module does the same job for the dump stream only,
in one tight loop over whatever has arrived, slicing each event straight out of the
received bytes (one copy, no per-packet objects).

Events over 16 MiB span several physical packets (each of ``0xFFFFFF`` bytes but the last);
they are reassembled here too, with the sequence ids checked, on a slower path.  Bytes are
joined only when the next packet is complete, so a large event is copied once, not once per
read.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from kingbus.protocol.constants import MAX_PACKET_CHUNK
from kingbus.protocol.errors import PacketsOutOfOrder, PacketTooLarge

_HEADER = 4
_PACKET_HEADER = struct.Struct("<I")  # 3-byte length, 1-byte sequence id
_SEMI_SYNC_INDICATOR = 0xEF
_SEMI_SYNC_ACK_REQUESTED = 0x01
DEFAULT_MAX_PAYLOAD = 1 << 30


class AckRequested(NamedTuple):
    """Semi-sync: an event the source waits to have acknowledged (the last of a transaction)."""

    raw: bytes  # the event exactly as the source sent it: header, body, CRC


class StreamEnd(NamedTuple):
    """The source ended the stream (EOF packet)."""


class StreamError(NamedTuple):
    """An ERR packet, whole (the caller turns it into the source's error)."""

    payload: bytes


class UnexpectedPacket(NamedTuple):
    """A packet that is none of the above; the session cannot go on."""

    first_byte: int


#: An event is its bytes as they are (no object per event: hundreds of thousands a second),
#: or wrapped when the source asks for an acknowledgement.
DumpEvent = bytes | AckRequested
#: What ends a stream; `DumpStream.take` returns nothing after one.
StreamStop = StreamEnd | StreamError | UnexpectedPacket
DumpItem = DumpEvent | StreamStop


class DumpStream:
    def __init__(self, *, semi_sync: bool = False, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self.semi_sync = semi_sync
        self.max_payload = max_payload
        self._data = b""
        self._pos = 0
        self._fed: list[bytes] = []
        self._fed_size = 0
        self._need = _HEADER  # bytes from _pos that the next packet needs, when known
        self._pieces: list[bytes] = []  # payload of a multi-packet event so far
        self._pieces_size = 0
        self._last_seq = 0

    @property
    def buffered(self) -> int:
        return len(self._data) - self._pos + self._fed_size + self._pieces_size

    def feed(self, data: bytes) -> None:
        if data:
            self._fed.append(data)
            self._fed_size += len(data)

    def take(self) -> list[DumpItem]:
        """Every item complete so far, in order; a `StreamStop` can only be the last one (what
        follows it is left unread: the stream is over)."""
        have = len(self._data) - self._pos
        if self._fed and have + self._fed_size >= self._need:
            self._data = b"".join([self._data[self._pos :], *self._fed])
            self._pos = 0
            self._fed.clear()
            self._fed_size = 0
        out: list[DumpItem] = []
        append = out.append
        data = self._data
        pos = self._pos
        end = len(data)
        semi_sync = self.semi_sync
        max_payload = self.max_payload
        header_of = _PACKET_HEADER.unpack_from
        in_pieces = bool(self._pieces)
        last_seq = -1  # of the last single packet, stored once at the end (hot loop)
        while end - pos >= _HEADER:
            header = header_of(data, pos)[0]
            length = header & 0xFFFFFF  # 3 bytes of length, then the sequence id
            stop = pos + _HEADER + length
            if length == MAX_PACKET_CHUNK or in_pieces:
                if self._pieces_size + length > max_payload:
                    raise PacketTooLarge(self._pieces_size + length, max_payload)
                if stop > end:
                    break
                if last_seq >= 0:
                    self._last_seq = last_seq
                    last_seq = -1
                item = self._piece(header >> 24, data[pos + _HEADER : stop], length)
                in_pieces = bool(self._pieces)
                pos = stop
                if item is not None:
                    append(item)
                    if not isinstance(item, bytes | AckRequested):
                        break
                continue
            if length > max_payload:
                raise PacketTooLarge(length, max_payload)
            if stop > end:
                break
            last_seq = header >> 24
            if length and data[pos + 4] == 0:
                if semi_sync and length > 2 and data[pos + 5] == _SEMI_SYNC_INDICATOR:
                    event = data[pos + 7 : stop]
                    append(AckRequested(event) if data[pos + 6] & _SEMI_SYNC_ACK_REQUESTED else event)
                else:
                    append(data[pos + 5 : stop])
            else:
                append(_special(data[pos + _HEADER : stop]))
                pos = stop
                break
            pos = stop
        if last_seq >= 0:
            self._last_seq = last_seq
        self._pos = pos
        left = end - pos
        if left >= _HEADER:
            length = data[pos] | (data[pos + 1] << 8) | (data[pos + 2] << 16)
            self._need = _HEADER + length
        else:
            self._need = _HEADER
        return out

    def _piece(self, seq: int, chunk: bytes, length: int) -> DumpItem | None:
        if self._pieces:
            expected = (self._last_seq + 1) % 256
            if seq != expected:
                raise PacketsOutOfOrder(expected, seq)
        self._last_seq = seq
        self._pieces.append(chunk)
        self._pieces_size += length
        if length == MAX_PACKET_CHUNK:
            return None
        payload = b"".join(self._pieces)
        self._pieces = []
        self._pieces_size = 0
        if payload and payload[0] == 0:
            if self.semi_sync and len(payload) > 2 and payload[1] == _SEMI_SYNC_INDICATOR:
                event = payload[3:]
                return AckRequested(event) if payload[2] & _SEMI_SYNC_ACK_REQUESTED else event
            return payload[1:]
        return _special(payload)


def _special(payload: bytes) -> StreamStop:
    if not payload:
        return UnexpectedPacket(-1)
    if payload[0] == 0xFE and len(payload) < 9:
        return StreamEnd()
    if payload[0] == 0xFF:
        return StreamError(payload)
    return UnexpectedPacket(payload[0])
