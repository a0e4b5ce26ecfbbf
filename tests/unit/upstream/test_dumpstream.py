"""The dump stream cutter against packets framed by `kingbus.protocol.framing` (itself
checked against PyMySQL and real servers), fed in every way a socket may deliver them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kingbus.protocol.constants import MAX_PACKET_CHUNK
from kingbus.protocol.errors import PacketsOutOfOrder, PacketTooLarge
from kingbus.protocol.framing import frame
from kingbus.upstream.dumpstream import (
    AckRequested,
    DumpItem,
    DumpStream,
    StreamEnd,
    StreamError,
    UnexpectedPacket,
)

ERR_1236 = b"\xff\xd4\x04#HY000Could not find first log file name in binary log index file"
EOF_PACKET = b"\xfe\x00\x00\x02\x00"


def wire(payloads: list[bytes], seq: int = 1) -> bytes:
    out = b""
    for payload in payloads:
        data, seq = frame(payload, seq)
        out += data
    return out


def cut(data: bytes, sizes: list[int]) -> list[bytes]:
    pieces, pos = [], 0
    for size in sizes:
        if pos >= len(data):
            break
        pieces.append(data[pos : pos + size])
        pos += size
    if pos < len(data):
        pieces.append(data[pos:])
    return pieces


def drain(stream: DumpStream, pieces: list[bytes]) -> list[DumpItem]:
    out: list[DumpItem] = []
    for piece in pieces:
        stream.feed(piece)
        out.extend(stream.take())
    out.extend(stream.take())
    return out


events = st.lists(st.binary(min_size=19, max_size=300), min_size=1, max_size=30)


@given(events=events, sizes=st.lists(st.integers(1, 700), max_size=60))
def test_events_come_out_whole_and_in_order_however_the_bytes_arrive(
    events: list[bytes], sizes: list[int]
) -> None:
    data = wire([b"\x00" + e for e in events] + [EOF_PACKET])
    items = drain(DumpStream(), cut(data, sizes))
    assert items == [*events, StreamEnd()]
    assert all(type(item) is bytes for item in items[:-1])  # no object per event


@given(
    events=st.lists(st.tuples(st.binary(min_size=19, max_size=200), st.booleans()), min_size=1, max_size=20),
    sizes=st.lists(st.integers(1, 300), max_size=40),
)
def test_semi_sync_headers_are_stripped_and_the_ack_flag_kept(
    events: list[tuple[bytes, bool]], sizes: list[int]
) -> None:
    data = wire([b"\x00\xef" + bytes([int(ack)]) + e for e, ack in events])
    items = drain(DumpStream(semi_sync=True), cut(data, sizes))
    assert items == [AckRequested(e) if ack else e for e, ack in events]
    assert [type(item) is AckRequested for item in items] == [ack for _, ack in events]


def test_without_semi_sync_an_event_starting_with_0xef_is_left_alone() -> None:
    event = b"\xef\x01" + bytes(30)
    assert drain(DumpStream(), [wire([b"\x00" + event])]) == [event]


def test_err_and_unexpected_packets_are_reported_in_place_and_end_a_take() -> None:
    # Whatever stops the stream is the last item of its take (the client then looks at the
    # last item only); what follows is left for a next take that a client never makes.
    stream = DumpStream()
    stream.feed(wire([b"\x00" + bytes(19), ERR_1236, b"\x42abc", b""]))
    assert stream.take() == [bytes(19), StreamError(ERR_1236)]
    assert stream.take() == [UnexpectedPacket(0x42)]
    assert stream.take() == [UnexpectedPacket(-1)]
    assert stream.take() == []


def test_eof_after_events_ends_the_take() -> None:
    stream = DumpStream()
    stream.feed(wire([b"\x00" + bytes(19), EOF_PACKET, b"\x00" + bytes(20)]))
    assert stream.take() == [bytes(19), StreamEnd()]


def test_a_long_ok_packet_is_not_mistaken_for_eof() -> None:
    # 0xFE starts EOF only in packets under 9 bytes; a longer one is not a dump packet.
    assert drain(DumpStream(), [wire([b"\xfe" + bytes(20)])]) == [UnexpectedPacket(0xFE)]


@pytest.mark.parametrize("size", [MAX_PACKET_CHUNK - 1, MAX_PACKET_CHUNK, 2 * MAX_PACKET_CHUNK + 5])
def test_events_over_16_mib_are_reassembled(size: int) -> None:
    # `size` is the payload (0x00 + event): exactly 0xFFFFFF needs an empty packet after it.
    event = bytes(range(256)) * (size // 256) + bytes(size % 256 - 1 if size % 256 else 255)
    payload = b"\x00" + event
    assert len(payload) == size
    data = wire([payload, b"\x00" + b"after" * 4])
    items = drain(DumpStream(), cut(data, [1 << 18] * (len(data) >> 18)))
    assert items == [event, b"after" * 4]


def test_continuation_packets_must_keep_the_sequence() -> None:
    head = MAX_PACKET_CHUNK.to_bytes(3, "little") + b"\x05" + b"\x00" + bytes(MAX_PACKET_CHUNK - 1)
    tail = (3).to_bytes(3, "little") + b"\x09" + b"abc"  # should be sequence 6
    with pytest.raises(PacketsOutOfOrder):
        drain(DumpStream(), [head, tail])


def test_a_payload_over_the_limit_is_refused_from_its_header() -> None:
    stream = DumpStream(max_payload=1000)
    stream.feed((1001).to_bytes(3, "little") + b"\x01\x00")  # the body has not arrived
    with pytest.raises(PacketTooLarge):
        stream.take()


def test_nothing_is_returned_until_a_packet_is_complete() -> None:
    stream = DumpStream()
    data = wire([b"\x00" + bytes(100)])
    for i in range(len(data) - 1):
        stream.feed(data[i : i + 1])
        assert stream.take() == []
    assert stream.buffered == len(data) - 1
    stream.feed(data[-1:])
    assert stream.take() == [bytes(100)]
    assert stream.buffered == 0
