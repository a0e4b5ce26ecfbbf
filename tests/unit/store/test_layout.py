"""Segment layout (pure): normalised FDE, header, sealing Rotate, and the recovery scan."""

from __future__ import annotations

from pathlib import Path

import pytest

from kingbus.binlog import control_events, errors, events, format_description
from kingbus.binlog.gtids import GtidSet
from kingbus.store import layout
from tests.support import fabricate, source_binlog

UUID = fabricate.SOURCE_UUID


def test_normalized_fde_points_past_itself_and_is_not_in_use() -> None:
    raw = fabricate.fde()
    in_use = events.recompute_crc(
        raw[:13]
        + (999).to_bytes(4, "little")
        + (events.EventFlag.BINLOG_IN_USE | 0x10).to_bytes(2, "little")
        + raw[19:]
    )
    out = layout.normalized_fde(in_use)
    h = events.EventHeader.parse(out)
    assert h.log_pos == 4 + len(raw)
    assert h.flags == 0x10
    assert source_binlog.crc_ok(out)
    assert out[19:-4] == raw[19:-4]
    assert layout.normalized_fde(out) == out


def test_fde_identity_ignores_what_a_reconnect_changes_and_nothing_else() -> None:
    base = fabricate.fde(created=100)
    same = [
        fabricate.fde(created=0),
        layout.normalized_fde(base),
        events.recompute_crc(base[:0] + (12345).to_bytes(4, "little") + base[4:]),
    ]
    for other in same:
        assert layout.fde_identity(other) == layout.fde_identity(base)
    different = [
        fabricate.fde(server_id=2),
        format_description.encode_format_description(server_id=1, server_version="9.7.5"),
        format_description.encode_format_description(server_id=1, checksum_algorithm=0),
    ]
    for other in different:
        assert layout.fde_identity(other) != layout.fde_identity(base)


@pytest.mark.parametrize(
    "previous", ["", f"{UUID}:1-100", f"{UUID}:1-5:7-9,4e11fa47-71ca-11e1-9e33-c80aa9429562:1:blue:3-4"]
)
def test_segment_header_is_magic_fde_and_previous_gtids(previous: str) -> None:
    gset = GtidSet.parse(previous)
    header = layout.segment_header(fabricate.fde(), gset)
    assert header[:4] == source_binlog.MAGIC
    fde_ev, prev_ev = source_binlog.split_events(header[4:])
    assert all(source_binlog.crc_ok(e) for e in (fde_ev, prev_ev))
    assert events.EventHeader.parse(prev_ev).log_pos == len(header)
    assert control_events.decode_previous_gtids(prev_ev, checksum=True) == gset
    assert layout.segment_header(fabricate.fde(), gset) == header  # a pure function of its inputs


def test_rotate_event_names_the_next_segment_and_ends_where_the_file_ends() -> None:
    rotate = layout.rotate_event("kingbus-bin.000008", timestamp=77, fde=fabricate.fde(server_id=9), at=5000)
    h = events.EventHeader.parse(rotate)
    assert h.event_type == events.EventType.ROTATE
    assert h.log_pos == 5000 + len(rotate)
    assert h.server_id == 9
    assert h.timestamp == 77
    assert source_binlog.crc_ok(rotate)
    decoded = control_events.decode_rotate(rotate, checksum=True)
    assert (decoded.next_file, decoded.position) == ("kingbus-bin.000008", 4)


def test_read_fde(tmp_path: Path) -> None:
    header = layout.segment_header(fabricate.fde(), GtidSet())
    (tmp_path / "seg").write_bytes(header + b"whatever")
    assert layout.read_fde(tmp_path / "seg") == layout.normalized_fde(fabricate.fde())
    (tmp_path / "bad").write_bytes(b"nope" + header[4:])
    with pytest.raises(errors.MalformedEvent):
        layout.read_fde(tmp_path / "bad")


def build_segment(n: int, *, sealed: bool) -> tuple[bytes, list[fabricate.FabricatedTxn], int]:
    header = layout.segment_header(fabricate.fde(), GtidSet.parse(f"{UUID}:1-10"))
    txns = [
        fabricate.transaction(10 + i, payload=30 * i, start=1000 * i, timestamp=500 + i)
        for i in range(1, n + 1)
    ]
    txns.append(fabricate.ddl_transaction(10 + n + 1, timestamp=999))
    data = header + b"".join(t.data for t in txns)
    if sealed:
        data += layout.rotate_event("kingbus-bin.000002", timestamp=1, fde=fabricate.fde(), at=len(data))
    return data, txns, len(header)


def test_scan_of_a_sealed_segment() -> None:
    data, txns, header_len = build_segment(4, sealed=True)
    scan = layout.scan_segment(data)
    assert scan.sealed and scan.good_end == len(data) and not scan.problem
    assert scan.previous_gtids == GtidSet.parse(f"{UUID}:1-10")
    assert [e.gtid for e in scan.entries] == [t.gtid for t in txns]
    assert [e.source_end_pos for e in scan.entries] == [t.end_pos for t in txns]
    assert scan.entries[0].offset == header_len
    assert all(a.end == b.offset for a, b in zip(scan.entries, scan.entries[1:], strict=False))
    assert scan.first_timestamp == 501


def test_scan_at_every_cut_keeps_only_whole_transactions() -> None:
    data, txns, header_len = build_segment(3, sealed=True)
    ends = [header_len]
    for t in txns:
        ends.append(ends[-1] + len(t.data))
    for cut in range(header_len, len(data) + 1):
        scan = layout.scan_segment(data[:cut])
        whole = max(e for e in ends if e <= cut)
        assert scan.good_end == (len(data) if cut == len(data) else whole), cut
        assert len(scan.entries) == ends.index(whole)
        assert scan.sealed == (cut == len(data))
        assert bool(scan.problem) == (cut not in ends and cut != len(data))


@pytest.mark.parametrize("cut", [0, 3, 4, 10, 30])
def test_scan_of_a_torn_header_raises(cut: int) -> None:
    data, _, header_len = build_segment(1, sealed=False)
    with pytest.raises((errors.MalformedEvent, ValueError)):
        layout.scan_segment(data[:cut])
    damaged = bytearray(data)
    damaged[header_len - 6] ^= 1
    with pytest.raises(errors.MalformedEvent):
        layout.scan_segment(bytes(damaged))


@pytest.mark.parametrize("tail", [b"\x00" * 5, b"\x00" * 40, b"garbage after the rotate event......"])
def test_anything_after_the_sealing_rotate_is_cut_and_the_segment_stays_sealed(tail: bytes) -> None:
    data, txns, _ = build_segment(2, sealed=True)
    scan = layout.scan_segment(data + tail)
    assert scan.good_end == len(data)
    assert scan.sealed
    assert len(scan.entries) == len(txns)


def test_bad_crc_in_a_transaction_stops_the_scan_there() -> None:
    data, txns, header_len = build_segment(3, sealed=True)
    second = header_len + len(txns[0].data)
    damaged = bytearray(data)
    damaged[second + 30] ^= 0x55
    scan = layout.scan_segment(bytes(damaged))
    assert scan.good_end == second
    assert len(scan.entries) == 1
    assert not scan.sealed
    assert "bad_crc" in scan.problem
