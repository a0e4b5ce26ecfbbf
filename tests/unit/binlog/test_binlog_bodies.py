"""Event bodies: FDE, Rotate, heartbeats, Previous_gtids, GTID (classic and tagged), Query, XID.

Encoders are checked byte for byte against events MySQL 9.7 wrote (tests/unit/binlog/data),
decoders against the values we know those events hold.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kingbus.binlog import control_events, events, format_description, gtid_events, query
from kingbus.binlog.errors import MalformedEvent
from kingbus.binlog.events import EventType
from kingbus.binlog.gtids import Gtid, GtidSet
from tests.unit.binlog.binlog_samples import OTHER_UUID, SOURCE_UUID, read, stream_events

FILE1 = list(events.split_events(read("mysql97-crc32.000001"), 4))
FILE2 = list(events.split_events(read("mysql97-crc32.000002"), 4))
NOCRC = list(events.split_events(read("mysql97-none.000003"), 4))
SKIP_STREAM = stream_events("dump-gtid-crc32-skip.stream")


def of_type(evs: list[bytes], t: int) -> list[bytes]:
    return [e for e in evs if e[4] == t]


# --- Format_description ----------------------------------------------------------------------------


def test_fde_decode_real() -> None:
    fde = format_description.decode_format_description(FILE1[0])
    assert fde.binlog_version == 4 and fde.server_version == "9.7.4-2"
    assert fde.header_length == 19 and fde.checksum_algorithm == 1 and fde.checksum
    assert fde.created == fde.header.timestamp != 0  # the first file records its creation time
    assert len(fde.post_header_lengths) == 42 and fde.post_header_lengths[EventType.QUERY - 1] == 13
    assert fde.post_header_lengths == format_description.MYSQL_97_POST_HEADER_LENGTHS


def test_fde_with_checksum_off_still_has_its_own_crc() -> None:
    fde = format_description.decode_format_description(NOCRC[0])
    assert fde.checksum_algorithm == 0 and not fde.checksum
    assert events.crc32_ok(NOCRC[0])
    assert NOCRC[0][-5] == 0  # the algorithm byte sits at len - 5


def test_fde_of_the_active_file_is_checksummed_without_the_in_use_flag() -> None:
    active = next(events.split_events(read("mysql97-crc32-active.000005"), 4))
    assert active[17] & events.EventFlag.BINLOG_IN_USE
    assert events.crc32_ok(active)  # MySQL's rule: the CRC covers the FDE with the flag clear
    events.check_event(active, checksum=True)
    fde = format_description.decode_format_description(active)
    assert fde.header.flags == events.EventFlag.BINLOG_IN_USE and fde.created == 0
    cleared = format_description.rewrite_format_description(active, clear_in_use=True)
    assert cleared[17] == 0 and cleared[-4:] == active[-4:]  # same CRC, as the sender sends it
    assert events.recompute_crc(active) == active
    assert events.with_crc(active[:-4]) == active
    # A non-FDE event with bit 0x01 set gets no such treatment.
    other = bytearray(events.build_event(event_type=4, body=b"x" * 9, server_id=1, log_pos=0, checksum=True))
    other[17] |= 0x01
    assert not events.crc32_ok(other)


def test_fde_encoder_is_byte_identical() -> None:
    real = format_description.decode_format_description(FILE1[0])
    built = format_description.encode_format_description(
        server_id=1, server_version="9.7.4-2", created=real.created, timestamp=real.header.timestamp
    )
    assert built == FILE1[0]


def test_fde_rewrite() -> None:
    in_use = bytearray(FILE1[0])
    in_use[17] |= 0x01  # as in the file the server still writes
    in_use = bytearray(events.recompute_crc(in_use))
    out = format_description.rewrite_format_description(
        in_use, zero_created=True, zero_log_pos=True, clear_in_use=True
    )
    fde = format_description.decode_format_description(out)  # also verifies the new CRC
    assert fde.created == 0 and fde.header.log_pos == 0 and fde.header.flags == 0
    assert fde.header.timestamp != 0  # only `created` is cleared, not the header timestamp
    assert out[:13] == bytes(in_use[:13]) and len(out) == len(in_use)
    only_created = format_description.rewrite_format_description(FILE1[0], zero_created=True)
    assert format_description.decode_format_description(only_created).header.log_pos == 127
    assert format_description.rewrite_format_description(FILE1[0]) == FILE1[0]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e[:40], "event_size"),
        (lambda e: e[:9] + struct.pack("<I", 40) + e[13:40], "shorter than the minimum"),
        (lambda e: e[:30] + b"X" + e[31:], "bad CRC32"),
        (lambda e: events.recompute_crc(e[:19] + struct.pack("<H", 3) + e[21:]), "binlog version 3"),
        (lambda e: events.recompute_crc(e[:75] + b"\x1a" + e[76:]), "header length 26"),
        (lambda e: events.recompute_crc(e[:-5] + b"\x07" + e[-4:]), "checksum algorithm 7"),
        (lambda e: events.recompute_crc(e[:4] + b"\x04" + e[5:]), "expected a Format_description"),
    ],
)
def test_fde_malformed(mutate: object, message: str) -> None:
    assert callable(mutate)
    with pytest.raises(MalformedEvent, match=message):
        format_description.decode_format_description(mutate(FILE1[0]))
    with pytest.raises(MalformedEvent):
        format_description.rewrite_format_description(mutate(FILE1[0]), zero_created=True)


# --- Rotate -----------------------------------------------------------------------------------------


def test_fake_rotate_is_byte_identical_to_mysql() -> None:
    real = SKIP_STREAM[0]  # the first event of a dump: the fake Rotate
    built = control_events.encode_rotate(next_file="binlog.000001", position=4, server_id=1, checksum=True)
    assert built == real
    # Field by field: timestamp 0, type 4, server_id, size, log_pos 0, flags ARTIFICIAL.
    assert built[:19] == struct.pack("<IBIIIH", 0, 4, 1, 44, 0, 0x20)
    assert built[19:27] == struct.pack("<Q", 4) and built[27:40] == b"binlog.000001"
    rot = control_events.decode_rotate(real, checksum=True)
    assert (rot.next_file, rot.position, rot.artificial) == ("binlog.000001", 4, True)


def test_real_rotate_round_trip() -> None:
    real = FILE1[-1]
    rot = control_events.decode_rotate(real, checksum=True)
    assert (rot.next_file, rot.position, rot.artificial) == ("binlog.000002", 4, False)
    built = control_events.encode_rotate(
        next_file="binlog.000002", position=4, server_id=1, checksum=True, artificial=False,
        log_pos=rot.header.log_pos, timestamp=rot.header.timestamp,
    )  # fmt: skip
    assert built == real
    plain = control_events.decode_rotate(NOCRC[-1], checksum=False)
    assert plain.next_file == "binlog.000004"


def test_rotate_without_crc() -> None:
    ev = control_events.encode_rotate(next_file="kingbus-bin.000002", position=4, server_id=9, checksum=False)
    assert len(ev) == 19 + 8 + len("kingbus-bin.000002")
    assert control_events.decode_rotate(ev, checksum=False).next_file == "kingbus-bin.000002"
    with pytest.raises(MalformedEvent):
        control_events.decode_rotate(ev, checksum=True)


def test_rotate_malformed() -> None:
    ev = control_events.encode_rotate(next_file="x", position=4, server_id=9, checksum=True)
    short = events.build_event(event_type=4, body=b"\0" * 5, server_id=1, log_pos=0, checksum=True)
    with pytest.raises(MalformedEvent, match="shorter than its u64"):
        control_events.decode_rotate(short, checksum=True)
    with pytest.raises(MalformedEvent, match="expected a ROTATE"):
        control_events.decode_rotate(FILE1[0], checksum=True)
    with pytest.raises(MalformedEvent, match="CRC"):
        control_events.decode_rotate(ev[:-1] + b"\0", checksum=True)
    bad_name = events.build_event(
        event_type=4, body=bytes(8) + b"\xff\xfe", server_id=1, log_pos=0, checksum=True
    )
    with pytest.raises(MalformedEvent, match="UTF-8"):
        control_events.decode_rotate(bad_name, checksum=True)
    with pytest.raises(ValueError):
        control_events.encode_rotate(next_file="", position=4, server_id=1, checksum=True)


# --- Heartbeats -------------------------------------------------------------------------------------


def test_heartbeat_v2_is_byte_identical_to_mysql() -> None:
    beats = of_type(SKIP_STREAM, EventType.HEARTBEAT_V2)
    assert len(beats) == 3
    for real in beats:
        hb = control_events.decode_heartbeat(real, checksum=True)
        assert hb.file == "binlog.000001" and hb.position == hb.header.log_pos
        built = control_events.encode_heartbeat_v2(
            file=hb.file, position=hb.position, server_id=1, checksum=True
        )
        assert built == real
    # Field by field, the body of the first one (position 1482 = 0x5ca):
    assert beats[0][19:-4] == (
        b"\x01" + b"\x0d" + b"binlog.000001"  # field 1 (file name), length 13, name
        + b"\x02" + b"\x03" + b"\xfc\xca\x05"  # field 2 (position), length 3, lenenc(1482)
        + b"\x00"  # end mark
    )  # fmt: skip


def test_heartbeat_v2_large_position() -> None:
    ev = control_events.encode_heartbeat_v2(file="f", position=5 << 32, server_id=1, checksum=True)
    hb = control_events.decode_heartbeat(ev, checksum=True)
    assert hb.position == 5 << 32 and hb.header.log_pos == 0


def test_heartbeat_v1_is_byte_identical_to_mysql() -> None:
    beats = of_type(stream_events("dump-gtid-crc32-skip-hbv1.stream"), EventType.HEARTBEAT)
    assert [control_events.decode_heartbeat(b, checksum=True).position for b in beats] == [1482, 2117, 4676]
    for real in beats:
        hb = control_events.decode_heartbeat(real, checksum=True)
        assert (
            control_events.encode_heartbeat_v1(file=hb.file, position=hb.position, server_id=1, checksum=True)
            == real
        )


def test_heartbeat_v1_round_trip() -> None:
    ev = control_events.encode_heartbeat_v1(
        file="kingbus-bin.000007", position=1234, server_id=4001, checksum=True
    )
    assert ev[:19] == struct.pack("<IBIIIH", 0, 27, 4001, len(ev), 1234, 0)
    assert ev[19:-4] == b"kingbus-bin.000007" and events.crc32_ok(ev)
    hb = control_events.decode_heartbeat(ev, checksum=True)
    assert (hb.file, hb.position) == ("kingbus-bin.000007", 1234)
    with pytest.raises(ValueError, match="0xFFFFFFFF"):
        control_events.encode_heartbeat_v1(file="f", position=0xFFFFFFFF, server_id=1, checksum=True)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\x01\x05abc", "runs past"),
        (b"\x01\x01a\x02\x02\x05\x00\x00", "trailing bytes"),
        (b"\x01\x01a\x00", "without a file name or a position"),
        (b"\x01\x01a\x02\x01\x05\x00xx", "after the Heartbeat v2 end mark"),
        (b"\x01\x01a\x02\x01\x05", "buffer ends"),
        (b"\xff", "invalid length-encoded"),
    ],
)
def test_heartbeat_v2_malformed(body: bytes, message: str) -> None:
    ev = events.build_event(event_type=41, body=body, server_id=1, log_pos=0, checksum=True)
    with pytest.raises(MalformedEvent, match=message):
        control_events.decode_heartbeat(ev, checksum=True)


def test_heartbeat_v2_skips_unknown_fields() -> None:
    body = b"\x07\x02zz" + b"\x01\x01a" + b"\x02\x01\x05" + b"\x00"
    ev = events.build_event(event_type=41, body=body, server_id=1, log_pos=0, checksum=False)
    assert control_events.decode_heartbeat(ev, checksum=False).position == 5


# --- Previous_gtids ---------------------------------------------------------------------------------


def test_previous_gtids_real() -> None:
    assert control_events.decode_previous_gtids(FILE1[1], checksum=True).is_empty()
    gs = control_events.decode_previous_gtids(FILE2[1], checksum=True)
    assert gs == GtidSet.parse(f"{OTHER_UUID}:7:tg:100,{SOURCE_UUID}:1-14:tag_one:1-2:zz:1")
    header = events.EventHeader.parse(FILE2[1])
    built = control_events.encode_previous_gtids(
        gs, server_id=1, log_pos=header.log_pos, checksum=True, timestamp=header.timestamp
    )
    assert built == FILE2[1]
    assert control_events.decode_previous_gtids(NOCRC[1], checksum=False) == gs
    with pytest.raises(MalformedEvent):
        control_events.decode_previous_gtids(FILE2[1][:-5] + events.with_crc(b"")[-4:], checksum=True)


# --- GTID events ------------------------------------------------------------------------------------


def test_gtid_events_of_real_file() -> None:
    gtids = [str(gtid_events.gtid_of_event(e, checksum=True)) for e in FILE1 if e[4] in (33, 42)]
    assert gtids == [f"{SOURCE_UUID}:{n}" for n in range(1, 7)] + [
        f"{SOURCE_UUID}:tag_one:1",
        f"{SOURCE_UUID}:tag_one:2",
        f"{SOURCE_UUID}:zz:1",
    ] + [f"{SOURCE_UUID}:{n}" for n in range(7, 13)] + [f"{OTHER_UUID}:7", f"{OTHER_UUID}:tg:100"] + [
        f"{SOURCE_UUID}:{n}" for n in (13, 14)
    ]
    tagged = [gtid_events.decode_gtid_event(e, checksum=True) for e in of_type(FILE1, EventType.GTID_TAGGED)]
    assert [(t.flags, t.last_committed, t.sequence_number) for t in tagged[:3]] == [
        (0, 3, 7),
        (0, 3, 8),
        (1, 8, 9),
    ]
    classic = gtid_events.decode_gtid_event(of_type(FILE1, EventType.GTID)[0], checksum=True)
    assert (classic.flags, classic.last_committed, classic.sequence_number) == (1, 0, 1)


def test_classic_gtid_encoder_is_byte_identical() -> None:
    real = of_type(FILE1, EventType.GTID)[0]
    header = events.EventHeader.parse(real)
    body = real[19:-4]
    # Fields after the 42-byte post-header: 7-byte commit timestamp, lenenc transaction
    # length, u32 server version.
    built = gtid_events.encode_gtid_event(
        Gtid(SOURCE_UUID, 1), server_id=1, log_pos=header.log_pos, checksum=True, flags=1,
        last_committed=0, sequence_number=1, commit_timestamp=int.from_bytes(body[42:49], "little"),
        transaction_length=body[49], server_version=struct.unpack_from("<I", body, 50)[0],
        timestamp=header.timestamp,
    )  # fmt: skip
    assert built == real


def test_tagged_gtid_encoder_is_byte_identical() -> None:
    real = of_type(FILE1, EventType.GTID_TAGGED)[0]
    header = events.EventHeader.parse(real)
    body = real[19:-4]
    # Field by field (serialization framework):
    assert body[:4] == b"\x02\x76\x00\x00"  # version 1, message size 59, last non-ignorable 0, field 0
    assert body[4] == 0x00  # gtid_flags 0
    assert body[5] == 0x02  # field 1: uuid, one varlen per byte: 0x2a -> 0x54, 0xe2 -> 0x89 0x03
    assert body[6:9] == b"\x54\x89\x03"
    assert body[-4:] == b"\x12\x83\x12\x0b"  # field 9, immediate_server_version 90704
    ts_at = body.index(b"\x0c\x7f") + 2  # field 6: 8-byte varlen commit timestamp
    built = gtid_events.encode_gtid_event(
        Gtid(SOURCE_UUID, 1, "tag_one"), server_id=1, log_pos=header.log_pos, checksum=True, flags=0,
        last_committed=3, sequence_number=7,
        commit_timestamp=int.from_bytes(body[ts_at - 1 : ts_at + 7], "little") >> 8,
        transaction_length=int.from_bytes(body[ts_at + 8 : ts_at + 10], "little") >> 2,
        server_version=90704, timestamp=header.timestamp,
    )  # fmt: skip
    assert built == real


@given(
    st.sampled_from([SOURCE_UUID, OTHER_UUID, "00000000-0000-0000-0000-000000000001"]),
    st.integers(1, 2**63 - 2),
    st.sampled_from(["", "a", "tag_with_32_characters_exactly_x"]),
    st.integers(0, 2**40),
    st.booleans(),
)
def test_gtid_event_round_trip(uuid: str, gno: int, tag: str, seq: int, checksum: bool) -> None:
    g = Gtid(uuid, gno, tag)
    ev = gtid_events.encode_gtid_event(g, server_id=3, log_pos=99, checksum=checksum, sequence_number=seq)
    assert ev[4] == (42 if tag else 33)
    info = gtid_events.decode_gtid_event(ev, checksum=checksum)
    assert info.gtid == g and info.sequence_number == seq and info.flags == 1
    assert gtid_events.gtid_of_event(ev, checksum=checksum) == g


def tagged_body(fields: bytes, version: bytes = b"\x02") -> bytes:
    return version + bytes([(len(fields) + 3) << 1]) + b"\x00" + fields


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "buffer ends"),
        (tagged_body(b"", version=b"\x04"), "format version 2"),
        (b"\x02\xfe\x00", "exceeds"),
        (tagged_body(b"\x02\x00"), "expected field 0, found field 1"),
        (tagged_body(b"\x00\x00\x02" + b"\x54" * 15), "buffer ends"),
        (tagged_body(b"\x00\x00\x02" + b"\x45\x07" + b"\x00" * 15), "uuid byte value"),
        (tagged_body(b"\x00\x00\x02" + b"\x00" * 16 + b"\x04\x00\x06\x00"), "gno must be"),
        (tagged_body(b"\x00\x00\x02" + b"\x00" * 16 + b"\x04\x04\x06\x50" + b"a" * 40), "bad tag length"),
        (tagged_body(b"\x00\x00\x02" + b"\x00" * 16 + b"\x04\x04\x06\x04A!"), "invalid GTID tag"),
        (tagged_body(b"\x00\x00\x02" + b"\x00" * 16 + b"\x04\x04\x06\x00\x0a\x00"), "expected field 4"),
    ],
)
def test_tagged_gtid_malformed(body: bytes, message: str) -> None:
    ev = events.build_event(event_type=42, body=body, server_id=1, log_pos=0, checksum=True)
    with pytest.raises(MalformedEvent, match=message):
        gtid_events.decode_gtid_event(ev, checksum=True)


def test_classic_gtid_malformed() -> None:
    real = of_type(FILE1, EventType.GTID)[0]
    short = events.build_event(event_type=33, body=real[19:40], server_id=1, log_pos=0, checksum=True)
    for f in (gtid_events.decode_gtid_event, gtid_events.gtid_of_event):
        with pytest.raises(MalformedEvent, match="too short"):
            f(short, checksum=True)
    zero_gno = events.build_event(
        event_type=33, body=real[19:36] + bytes(8), server_id=1, log_pos=0, checksum=False
    )
    with pytest.raises(MalformedEvent, match="gno"):
        gtid_events.gtid_of_event(zero_gno, checksum=False)
    with pytest.raises(MalformedEvent, match="expected a GTID event"):
        gtid_events.decode_gtid_event(FILE1[0], checksum=True)
    with pytest.raises(MalformedEvent):
        gtid_events.decode_gtid_event(real[:20], checksum=True)
    anonymous = events.build_event(event_type=34, body=bytes(42), server_id=1, log_pos=0, checksum=True)
    with pytest.raises(MalformedEvent):
        gtid_events.decode_gtid_event(anonymous, checksum=True)


# --- Query and XID ----------------------------------------------------------------------------------


def test_query_statements_of_real_file() -> None:
    kinds = [query.decode_query(e, checksum=True).kind for e in of_type(FILE1, EventType.QUERY)]
    K = query.StatementKind
    assert kinds[:3] == [K.OTHER] * 3  # CREATE DATABASE, CREATE TABLE x2
    assert kinds[3:9] == [K.BEGIN, K.BEGIN, K.BEGIN, K.COMMIT, K.BEGIN, K.BEGIN]
    assert K.XA_START in kinds and K.XA_END in kinds and K.XA_COMMIT in kinds and K.XA_ROLLBACK in kinds
    first = query.decode_query(of_type(FILE1, EventType.QUERY)[0], checksum=True)
    assert first.statement == b"CREATE DATABASE t1" and first.database == b"t1" and first.error_code == 0
    assert query.query_statement(of_type(NOCRC, EventType.QUERY)[0], checksum=False) == b"BEGIN"


def test_query_field_by_field() -> None:
    ev = query.encode_query(
        "COMMIT",
        server_id=1,
        log_pos=500,
        checksum=True,
        database=b"db",
        status_vars=b"\x00\x01\x02",
        thread_id=77,
    )
    body = ev[19:-4]
    assert body[:13] == struct.pack("<IIBHH", 77, 0, 2, 0, 3)  # thread, exec_time, db_len, error, status_len
    assert body[13:] == b"\x00\x01\x02" + b"db\x00" + b"COMMIT"
    q = query.decode_query(ev, checksum=True)
    assert (q.thread_id, q.database, q.status_vars, q.statement) == (77, b"db", b"\x00\x01\x02", b"COMMIT")
    assert q.kind is query.StatementKind.COMMIT


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        (b"BEGIN", "BEGIN"),
        (b"  begin \n", "BEGIN"),
        (b"COMMIT", "COMMIT"),
        (b"ROLLBACK", "ROLLBACK"),
        (b"ROLLBACK TO SAVEPOINT sp1", "OTHER"),  # stays inside the transaction
        (b"ROLLBACK TO sp1", "OTHER"),
        (b"SAVEPOINT sp1", "OTHER"),
        (b"COMMITTED", "OTHER"),
        (b"BEGINNING", "OTHER"),
        (b"XA START X'786131',X'',1", "XA_START"),
        (b"XA BEGIN 'x'", "XA_START"),
        (b"xa end X'786131',X'',1", "XA_END"),
        (b"XA COMMIT X'786131',X'',1", "XA_COMMIT"),
        (b"XA COMMIT X'786133',X'',1 ONE PHASE", "XA_COMMIT"),
        (b"XA ROLLBACK X'786132',X'',1", "XA_ROLLBACK"),
        (b"XA", "OTHER"),
        (b"XA\tRECOVER", "OTHER"),
        (b"XACT", "OTHER"),
        (b"CREATE TABLE b (id INT PRIMARY KEY)", "OTHER"),
        (b"/* comment */ BEGIN", "OTHER"),
        (b"", "OTHER"),
    ],
)
def test_classify_statement(statement: bytes, kind: str) -> None:
    assert query.classify_statement(statement) is query.StatementKind[kind]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\0" * 12, "shorter than its post-header"),
        (struct.pack("<IIBHH", 1, 0, 2, 0, 0) + b"d", "run past the body"),
        (struct.pack("<IIBHH", 1, 0, 0, 0, 9) + b"abc\0", "run past the body"),
        (struct.pack("<IIBHH", 1, 0, 2, 0, 0) + b"dbXBEGIN", "not NUL-terminated"),
    ],
)
def test_query_malformed(body: bytes, message: str) -> None:
    ev = events.build_event(event_type=2, body=body, server_id=1, log_pos=0, checksum=True)
    with pytest.raises(MalformedEvent, match=message):
        query.decode_query(ev, checksum=True)
    with pytest.raises(MalformedEvent):
        query.query_statement(ev, checksum=True)


def test_query_wrong_type() -> None:
    with pytest.raises(MalformedEvent, match="expected a Query"):
        query.query_statement(FILE1[0], checksum=True)


def test_xid() -> None:
    real = of_type(FILE1, EventType.XID)[0]
    assert query.decode_xid(real, checksum=True) == struct.unpack_from("<Q", real, 19)[0]
    header = events.EventHeader.parse(real)
    built = query.encode_xid(
        query.decode_xid(real, checksum=True), server_id=1, log_pos=header.log_pos, checksum=True,
        timestamp=header.timestamp,
    )  # fmt: skip
    assert built == real
    with pytest.raises(MalformedEvent, match="shorter than 8"):
        query.decode_xid(real[:-5] + real[-4:], checksum=True)
    with pytest.raises(MalformedEvent, match="expected an XID"):
        query.decode_xid(FILE1[0], checksum=True)
