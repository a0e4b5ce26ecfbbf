"""Packet framing: the incremental reader and the splitter, including >= 16 MiB payloads."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kingbus.protocol import framing
from kingbus.protocol.constants import MAX_PACKET_CHUNK
from kingbus.protocol.errors import PacketsOutOfOrder, PacketTooLarge, ProtocolError


def header(length: int, seq: int) -> bytes:
    return length.to_bytes(3, "little") + bytes((seq,))


def test_frame_small_payload() -> None:
    data, next_seq = framing.frame(b"\x03SELECT 1", 0)
    assert data == header(9, 0) + b"\x03SELECT 1"
    assert next_seq == 1


def test_frame_empty_payload_is_one_empty_packet() -> None:
    assert framing.frame(b"", 7) == (header(0, 7), 8)


def test_frame_sequence_wraps_mod_256() -> None:
    assert framing.frame(b"x", 255) == (header(1, 255) + b"x", 0)


@pytest.mark.parametrize("seq", [-1, 256])
def test_frame_rejects_bad_sequence_id(seq: int) -> None:
    with pytest.raises(ValueError):
        framing.frame(b"", seq)


def split_packets(data: bytes) -> list[tuple[int, int, bytes]]:
    """(length, seq, body) of each physical packet, parsed independently of the reader."""
    out = []
    offset = 0
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 3], "little")
        out.append((length, data[offset + 3], data[offset + 4 : offset + 4 + length]))
        offset += 4 + length
    assert offset == len(data)
    return out


@pytest.mark.parametrize(
    ("size", "lengths"),
    [
        (MAX_PACKET_CHUNK - 1, [MAX_PACKET_CHUNK - 1]),
        (MAX_PACKET_CHUNK, [MAX_PACKET_CHUNK, 0]),
        (MAX_PACKET_CHUNK + 1, [MAX_PACKET_CHUNK, 1]),
        (2 * MAX_PACKET_CHUNK, [MAX_PACKET_CHUNK, MAX_PACKET_CHUNK, 0]),
        (2 * MAX_PACKET_CHUNK + 5, [MAX_PACKET_CHUNK, MAX_PACKET_CHUNK, 5]),
    ],
)
def test_large_payloads_split_and_reassemble(size: int, lengths: list[int]) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    data, next_seq = framing.frame(payload, 254)
    packets = split_packets(data)
    assert [length for length, _, _ in packets] == lengths
    # Sequence ids continue across continuation packets, wrapping at 256.
    assert [seq for _, seq, _ in packets] == [(254 + i) % 256 for i in range(len(lengths))]
    assert next_seq == (254 + len(lengths)) % 256
    assert b"".join(body for _, _, body in packets) == payload

    reader = framing.PacketReader()
    reader.feed(data)
    packet = reader.next_packet()
    assert packet is not None
    assert packet.payload == payload
    assert packet.seq == 254
    assert packet.last_seq == (254 + len(lengths) - 1) % 256
    assert packet.next_seq == next_seq
    assert reader.next_packet() is None
    assert reader.buffered == 0


def test_reader_waits_for_complete_packets_byte_by_byte() -> None:
    data, _ = framing.frame_all([b"\x0e", b"\x03SELECT 1", b""], 3)
    reader = framing.PacketReader()
    got = []
    for index in range(len(data)):
        reader.feed(data[index : index + 1])
        got += list(reader.packets())
    assert got == [
        framing.Packet(3, b"\x0e", 3),
        framing.Packet(4, b"\x03SELECT 1", 4),
        framing.Packet(5, b"", 5),
    ]


def test_reader_reassembles_continuations_fed_in_pieces() -> None:
    payload = b"a" * MAX_PACKET_CHUNK + b"bc"
    data, _ = framing.frame(payload, 0)
    reader = framing.PacketReader()
    chunk = 1 << 20
    results = []
    for offset in range(0, len(data), chunk):
        reader.feed(data[offset : offset + chunk])
        results += list(reader.packets())
    assert [packet.payload for packet in results] == [payload]


def test_continuation_with_wrong_sequence_id_is_refused() -> None:
    data = header(MAX_PACKET_CHUNK, 0) + bytes(MAX_PACKET_CHUNK) + header(1, 2) + b"x"
    reader = framing.PacketReader()
    reader.feed(data)
    with pytest.raises(PacketsOutOfOrder) as caught:
        reader.next_packet()
    assert (caught.value.expected, caught.value.got) == (1, 2)
    assert caught.value.code == 1156


def test_max_payload_is_enforced_from_the_header_alone() -> None:
    reader = framing.PacketReader(max_payload=100)
    reader.feed(header(101, 0))  # no body yet: refused before buffering it
    with pytest.raises(PacketTooLarge) as caught:
        reader.next_packet()
    assert caught.value.code == 1153
    assert caught.value.sqlstate == "08S01"
    assert "101 > 100" in caught.value.message
    # The reader stays broken: the stream cannot be resynchronised.
    with pytest.raises(PacketTooLarge):
        reader.next_packet()
    with pytest.raises(PacketTooLarge):
        reader.feed(b"more")


def test_max_payload_counts_continuations() -> None:
    reader = framing.PacketReader(max_payload=MAX_PACKET_CHUNK + 10)
    reader.feed(header(MAX_PACKET_CHUNK, 0) + bytes(MAX_PACKET_CHUNK) + header(11, 1))
    with pytest.raises(PacketTooLarge):
        reader.next_packet()


def test_payload_exactly_at_the_limit_is_accepted() -> None:
    reader = framing.PacketReader(max_payload=100)
    reader.feed(framing.frame(bytes(100), 0)[0])
    packet = reader.next_packet()
    assert packet is not None and len(packet.payload) == 100


def test_packet_too_large_is_a_protocol_error() -> None:
    assert issubclass(PacketTooLarge, ProtocolError)
    assert issubclass(PacketsOutOfOrder, ProtocolError)


@settings(max_examples=200, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=600), max_size=8),
    seq=st.integers(0, 255),
    cuts=st.lists(st.integers(0, 10_000), max_size=10),
)
def test_any_split_of_the_stream_yields_the_same_payloads(
    payloads: list[bytes], seq: int, cuts: list[int]
) -> None:
    data, _ = framing.frame_all(payloads, seq)
    reader = framing.PacketReader()
    got = []
    previous = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        reader.feed(data[previous:cut])
        previous = max(previous, cut)
        got += [packet.payload for packet in reader.packets()]
    assert got == payloads


def test_wanted_counts_the_bytes_that_complete_the_next_packet() -> None:
    reader = framing.PacketReader()
    assert reader.wanted == 4
    data, _ = framing.frame(b"abcdef", 1)
    reader.feed(data[:2])
    assert reader.wanted == 2
    reader.feed(data[2:5])
    assert reader.wanted == 5
    reader.feed(data[5:])
    assert reader.next_packet() == framing.Packet(1, b"abcdef", 1)
    assert reader.wanted == 4
    reader.feed(framing.frame(b"", 2)[0])
    assert reader.wanted == 1  # a complete empty packet is buffered; never ask for 0 bytes


def test_expected_sequence_id_of_a_new_payload() -> None:
    reader = framing.PacketReader()
    reader.feed(framing.frame(b"\x0e", 0)[0] + framing.frame(b"\x0e", 3)[0])
    assert reader.next_packet(expected_seq=0) == framing.Packet(0, b"\x0e", 0)
    with pytest.raises(PacketsOutOfOrder) as caught:
        reader.next_packet(expected_seq=0)
    assert (caught.value.expected, caught.value.got, caught.value.code) == (0, 3, 1156)
    with pytest.raises(PacketsOutOfOrder):
        reader.next_packet()  # broken for good
