"""Event framing: header codec, CRC32 footer, splitting concatenated events."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kingbus.binlog import events
from kingbus.binlog.errors import MalformedEvent
from tests.unit.binlog.binlog_samples import read

# A Rotate header built field by field:
HEADER = (
    struct.pack("<I", 0x5F5E1000)  # timestamp
    + bytes([4])  # type ROTATE
    + struct.pack("<I", 4001)  # server_id
    + struct.pack("<I", 44)  # event_size
    + struct.pack("<I", 0)  # log_pos
    + struct.pack("<H", 0x20)  # flags: ARTIFICIAL
)


def test_event_type_numbers_match_mysql() -> None:
    expected = {
        "UNKNOWN": 0, "QUERY": 2, "STOP": 3, "ROTATE": 4, "INTVAR": 5, "RAND": 13, "USER_VAR": 14,
        "FORMAT_DESCRIPTION": 15, "XID": 16, "TABLE_MAP": 19, "INCIDENT": 26, "HEARTBEAT": 27,
        "IGNORABLE": 28, "ROWS_QUERY": 29, "WRITE_ROWS": 30, "UPDATE_ROWS": 31, "DELETE_ROWS": 32,
        "GTID": 33, "ANONYMOUS_GTID": 34, "PREVIOUS_GTIDS": 35, "TRANSACTION_CONTEXT": 36,
        "VIEW_CHANGE": 37, "XA_PREPARE": 38, "PARTIAL_UPDATE_ROWS": 39, "TRANSACTION_PAYLOAD": 40,
        "HEARTBEAT_V2": 41, "GTID_TAGGED": 42,
    }  # fmt: skip
    assert {name: events.EventType[name].value for name in expected} == expected
    flags = {f.name: int(f) for f in events.EventFlag}
    assert flags == {"BINLOG_IN_USE": 0x01, "ARTIFICIAL": 0x20, "RELAY_LOG": 0x40, "IGNORABLE": 0x80}


def test_header_parse_field_by_field() -> None:
    h = events.EventHeader.parse(HEADER)
    assert h == events.EventHeader(0x5F5E1000, 4, 4001, 44, 0, 0x20)
    assert h.pack() == HEADER


def test_header_parse_at_offset() -> None:
    assert events.EventHeader.parse(b"\xfebin" + HEADER, 4).server_id == 4001


@pytest.mark.parametrize("cut", range(19))
def test_truncated_header_is_malformed(cut: int) -> None:
    with pytest.raises(MalformedEvent):
        events.EventHeader.parse(HEADER[:cut])


def test_event_size_below_header_is_malformed() -> None:
    bad = HEADER[:9] + struct.pack("<I", 18) + HEADER[13:]
    with pytest.raises(MalformedEvent, match="smaller than"):
        events.EventHeader.parse(bad)


@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 255),
    st.integers(0, 2**32 - 1),
    st.integers(19, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**16 - 1),
)
def test_header_round_trip(ts: int, t: int, sid: int, size: int, pos: int, flags: int) -> None:
    h = events.EventHeader(ts, t, sid, size, pos, flags)
    assert events.EventHeader.parse(h.pack()) == h


def test_crc_helpers() -> None:
    raw = HEADER + struct.pack("<Q", 4) + b"binlog.000001"[:13]
    raw = raw[:9] + struct.pack("<I", len(raw) + 4) + raw[13:]
    ev = events.with_crc(raw)
    assert ev[-4:] == struct.pack("<I", zlib.crc32(raw))
    assert events.crc32_ok(ev)
    events.check_event(ev, checksum=True)
    flipped = bytearray(ev)
    flipped[25] ^= 0x01
    assert not events.crc32_ok(flipped)
    with pytest.raises(MalformedEvent, match="CRC"):
        events.check_event(flipped, checksum=True)
    assert events.recompute_crc(flipped) != bytes(flipped)
    assert events.crc32_ok(events.recompute_crc(flipped))
    assert not events.crc32_ok(ev[:22])  # too short to hold a CRC


def test_build_event_counts_the_crc() -> None:
    ev = events.build_event(event_type=4, body=b"abc", server_id=7, log_pos=9, flags=0x20, checksum=True)
    assert len(ev) == 19 + 3 + 4 and events.EventHeader.parse(ev).event_size == len(ev)
    assert events.crc32_ok(ev)
    plain = events.build_event(event_type=4, body=b"abc", server_id=7, log_pos=9, flags=0x20, checksum=False)
    assert plain == ev[:9] + struct.pack("<I", 22) + ev[13:-4]
    assert bytes(events.body_of(ev, checksum=True)) == b"abc" == bytes(events.body_of(plain, checksum=False))


def test_check_event_size_mismatch() -> None:
    ev = events.build_event(event_type=4, body=b"abc", server_id=7, log_pos=9, checksum=True)
    with pytest.raises(MalformedEvent, match="event_size"):
        events.check_event(ev + b"x", checksum=True)


def test_split_real_binlog_file() -> None:
    data = read("mysql97-crc32.000001")
    evs = list(events.split_events(data, 4))
    assert b"".join(evs) == data[4:]
    assert all(events.crc32_ok(e) for e in evs)
    pos = 4
    for e in evs:  # in a file, every header's log_pos is the offset just past the event
        pos += len(e)
        assert events.EventHeader.parse(e).log_pos == pos


def test_split_errors() -> None:
    a = events.build_event(event_type=2, body=b"x" * 10, server_id=1, log_pos=0, checksum=True)
    b = events.build_event(event_type=16, body=b"y" * 8, server_id=1, log_pos=0, checksum=True)
    assert list(events.split_events(a + b)) == [a, b]
    with pytest.raises(MalformedEvent, match="trailing bytes"):
        list(events.split_events(a + b[:10]))
    with pytest.raises(MalformedEvent, match="only"):
        list(events.split_events(a + b[:-1]))
    small = a[:9] + struct.pack("<I", 5) + a[13:]
    with pytest.raises(MalformedEvent, match="< 19"):
        list(events.split_events(small))


@given(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40)), max_size=8), st.integers(0, 400))
def test_split_is_exact_or_malformed(specs: list[tuple[int, bytes]], cut: int) -> None:
    evs = [events.build_event(event_type=t, body=b, server_id=1, log_pos=0, checksum=True) for t, b in specs]
    blob = b"".join(evs)
    assert list(events.split_events(blob)) == evs
    if cut < len(blob):
        try:
            got = list(events.split_events(blob[:cut]))
        except MalformedEvent:
            return
        assert b"".join(got) == blob[:cut]  # only when the cut falls on a boundary


def test_type_name() -> None:
    assert events.type_name(42) == "GTID_TAGGED"
    assert events.type_name(163) == "type 163"
    with pytest.raises(MalformedEvent):
        events.event_type_of(b"\0" * 5)
    assert events.event_type_of(HEADER) == 4
