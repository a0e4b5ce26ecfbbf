"""Dump-stream payloads and semi-sync acknowledgements."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kingbus.protocol import framing, stream
from kingbus.protocol.errors import MySQLError, ProtocolError

EVENT = bytes(19) + b"body" + b"\x01\x02\x03\x04"  # header, body, CRC: carried untouched


def test_event_payload_is_ok_byte_plus_the_event() -> None:
    assert stream.event_payload(EVENT) == b"\x00" + EVENT


def test_semisync_payload_header() -> None:
    assert stream.semisync_event_payload(EVENT, ack_wanted=True) == b"\x00\xef\x01" + EVENT
    assert stream.semisync_event_payload(EVENT, ack_wanted=False) == b"\x00\xef\x00" + EVENT


def test_large_event_continues_the_dump_sequence() -> None:
    event = bytes(0xFFFFFF - 1)  # with the OK byte the payload is exactly 0xFFFFFF
    data, next_seq = framing.frame(stream.event_payload(event), 1)
    assert next_seq == 3  # one full packet plus the empty terminator
    reader = framing.PacketReader()
    reader.feed(data)
    packet = reader.next_packet(expected_seq=1)
    assert packet is not None and packet.payload[1:] == event


def test_semisync_ack_as_a_replica_sends_it() -> None:
    payload = b"\xef" + struct.pack("<Q", 1234) + b"kingbus-bin.000002"
    ack = stream.decode_semisync_ack(payload)
    assert ack == stream.SemiSyncAck(1234, "kingbus-bin.000002")
    assert stream.encode_semisync_ack(ack) == payload
    # mysqld's replica may include the C string's NUL.
    assert stream.decode_semisync_ack(payload + b"\x00") == ack


@pytest.mark.parametrize(
    "payload",
    [b"", b"\xee" + bytes(8) + b"f", b"\xef\x01\x02", b"\xef" + bytes(8), b"\xef" + bytes(8) + b"\x00f"],
)
def test_malformed_semisync_acks(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        stream.decode_semisync_ack(payload)


@given(st.binary(max_size=40))
def test_semisync_ack_decoder_fuzz(payload: bytes) -> None:
    try:
        result: object = stream.decode_semisync_ack(payload)
    except MySQLError as error:
        result = error
    assert isinstance(result, stream.SemiSyncAck | ProtocolError)
