"""Packets of a binlog dump stream (after COM_BINLOG_DUMP / COM_BINLOG_DUMP_GTID).

Each event travels as one payload: an OK byte ``0x00`` followed by the event exactly as stored
(header, body, CRC). Events can be far larger than 16 MiB; :func:`kingbus.protocol.framing.frame`
splits them. Sequence ids continue from the dump command (seq 0), so the first event is seq 1.

A replica that enabled semi-sync (``SET @rpl_semi_sync_replica = 1``) expects two more bytes
after the OK byte of *every* packet: the magic ``0xEF`` and a flag, ``0x01`` when the source
wants an acknowledgement. Its acknowledgement is a packet of its own: ``0xEF``, u64 position,
file name (see notes/mysql-protocol.md §2.9).

A non-blocking dump ends with an EOF packet (:func:`kingbus.protocol.responses.encode_eof`); a
fatal condition with ERR 1236 (``ER_SOURCE_FATAL_ERROR_READING_BINLOG``).
"""

from __future__ import annotations

import dataclasses

from kingbus.protocol import wire
from kingbus.protocol.errors import ProtocolError

SEMISYNC_MAGIC = 0xEF
SEMISYNC_ACK_WANTED = 0x01


def event_payload(event: bytes) -> bytes:
    """The payload carrying one binlog event to a replica."""
    return b"\x00" + event


def semisync_event_payload(event: bytes, *, ack_wanted: bool) -> bytes:
    """The payload carrying one event to a semi-sync replica."""
    return bytes((0x00, SEMISYNC_MAGIC, SEMISYNC_ACK_WANTED if ack_wanted else 0x00)) + event


@dataclasses.dataclass(frozen=True, slots=True)
class SemiSyncAck:
    position: int
    filename: str


def decode_semisync_ack(payload: bytes) -> SemiSyncAck:
    """A semi-sync replica's acknowledgement that it has the stream up to ``position``."""
    reader = wire.Reader(payload, "semi-sync ACK")
    if reader.int1("magic") != SEMISYNC_MAGIC:
        raise ProtocolError("malformed semi-sync ACK: missing 0xEF magic")
    position = reader.int8("binlog position")
    filename = wire.text(reader.rest().split(b"\x00", 1)[0])
    if not filename:
        raise ProtocolError("malformed semi-sync ACK: empty file name")
    return SemiSyncAck(position, filename)


def encode_semisync_ack(ack: SemiSyncAck) -> bytes:
    """The replica side (tests, and acknowledging an upstream source)."""
    return bytes((SEMISYNC_MAGIC,)) + wire.int8(ack.position) + ack.filename.encode("utf-8")
