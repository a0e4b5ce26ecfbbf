"""Dump planning (pure): start segment, validation errors, file/pos checks, skip decisions,
generated events."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kingbus.binlog import control_events, events, format_description
from kingbus.binlog.gtids import GtidSet
from kingbus.protocol.errors import MySQLError
from kingbus.server import dumpplan
from kingbus.server.dumpplan import Decision, GtidSkipper, SegmentView, StartPoint
from tests.support import fabricate

U = fabricate.SOURCE_UUID
OTHER = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"


def g(text: str) -> GtidSet:
    return GtidSet.parse(text)


SEGMENTS = [
    SegmentView("kingbus-bin.000001", 1000, True, g("")),
    SegmentView("kingbus-bin.000002", 2000, True, g(f"{U}:1-10")),
    SegmentView("kingbus-bin.000003", 300, False, g(f"{U}:1-20")),
]
COMMITTED = g(f"{U}:1-25")


@pytest.mark.parametrize(
    ("replica", "start"),
    [
        ("", "kingbus-bin.000001"),
        (f"{U}:1-9", "kingbus-bin.000001"),
        (f"{U}:1-10", "kingbus-bin.000002"),
        (f"{U}:1-19", "kingbus-bin.000002"),
        (f"{U}:1-20", "kingbus-bin.000003"),
        (f"{U}:1-25", "kingbus-bin.000003"),
        (f"{U}:1-10:15", "kingbus-bin.000002"),
        (f"{U}:1-20,{OTHER}:1-1000", "kingbus-bin.000003"),  # the replica's own writes
    ],
)
def test_start_is_the_newest_segment_whose_previous_set_the_replica_has(replica: str, start: str) -> None:
    assert dumpplan.plan_gtid_dump(SEGMENTS, g(replica), COMMITTED, GtidSet()) == StartPoint(start, 4)


def test_empty_store_has_no_start_yet() -> None:
    assert dumpplan.plan_gtid_dump([], GtidSet(), GtidSet(), GtidSet()) is None


def test_replica_ahead_of_the_cluster_is_refused() -> None:
    with pytest.raises(MySQLError) as caught:
        dumpplan.plan_gtid_dump(SEGMENTS, g(f"{U}:1-26"), COMMITTED, GtidSet())
    assert caught.value.code == 1236 and f"{U}:26" in caught.value.message


def test_replica_missing_purged_transactions_is_refused() -> None:
    segments = SEGMENTS[1:]
    with pytest.raises(MySQLError) as caught:
        dumpplan.plan_gtid_dump(segments, g(f"{U}:1-5"), COMMITTED, g(f"{U}:1-10"))
    assert caught.value.code == 1236 and "purged" in caught.value.message
    assert f"{U}:6-10" in caught.value.message


def test_oldest_segment_after_what_the_replica_has_is_refused_even_without_a_purged_set() -> None:
    with pytest.raises(MySQLError) as caught:
        dumpplan.plan_gtid_dump(SEGMENTS[1:], g(f"{U}:1-5"), COMMITTED, GtidSet())
    assert caught.value.code == 1236


def test_replica_extra_only_counts_uuids_the_cluster_serves() -> None:
    assert dumpplan.replica_extra(g(f"{OTHER}:1-5,{U}:1-3"), g(f"{U}:1-3")).is_empty()
    assert dumpplan.replica_extra(g(f"{U}:1-4"), g(f"{U}:1-3")) == g(f"{U}:4")
    assert dumpplan.replica_extra(g(f"{U}:1-3:tag_a:1"), g(f"{U}:1-3")) == g(f"{U}:tag_a:1")


@given(
    committed=st.integers(0, 40),
    replica_gnos=st.sets(st.integers(1, 40)),
    boundaries=st.lists(st.integers(1, 40), max_size=5, unique=True),
)
@settings(max_examples=300)
def test_planning_property(committed: int, replica_gnos: set[int], boundaries: list[int]) -> None:
    """Either refused with 1236 (the replica is ahead), or a start whose Previous_gtids the
    replica has, and no newer segment qualifies."""
    cuts = sorted(b for b in boundaries if b <= committed)
    previous = [GtidSet()] + [g(f"{U}:1-{b}") for b in cuts]
    segments = [
        SegmentView(f"kingbus-bin.{i + 1:06d}", 100, i < len(previous) - 1, p) for i, p in enumerate(previous)
    ]
    replica = (
        GtidSet.from_intervals(U, [(n, n + 1) for n in sorted(replica_gnos)]) if replica_gnos else GtidSet()
    )
    committed_set = g(f"{U}:1-{committed}") if committed else GtidSet()
    try:
        start = dumpplan.plan_gtid_dump(segments, replica, committed_set, GtidSet())
    except MySQLError as error:
        assert error.code == 1236
        # The first segment starts from nothing here, so only "ahead of the cluster" refuses.
        assert not replica.for_uuid(U).issubset(committed_set)
        assert committed_set, "GTIDs of a UUID the cluster has none of are the replica's own"
        return
    assert replica.issubset(committed_set) or not committed_set
    assert start is not None
    chosen = next(i for i, s in enumerate(segments) if s.name == start.name)
    assert segments[chosen].previous_gtids.issubset(replica)
    assert all(not s.previous_gtids.issubset(replica) for s in segments[chosen + 1 :])


@pytest.mark.parametrize(
    ("name", "position", "expected"),
    [
        ("kingbus-bin.000002", 4, StartPoint("kingbus-bin.000002", 4)),
        ("kingbus-bin.000002", 2000, StartPoint("kingbus-bin.000002", 2000)),
        ("kingbus-bin.000003", 120, StartPoint("kingbus-bin.000003", 120)),
        ("", 0, StartPoint("kingbus-bin.000001", 4)),
        ("", 4, StartPoint("kingbus-bin.000001", 4)),
    ],
)
def test_file_dump_start(name: str, position: int, expected: StartPoint) -> None:
    assert dumpplan.plan_file_dump(SEGMENTS, name, position) == expected


@pytest.mark.parametrize(
    ("name", "position", "message"),
    [
        ("kingbus-bin.000009", 4, "Could not find first log file name"),
        ("binlog.000001", 4, "Could not find first log file name"),
        ("kingbus-bin.000002", 3, "position < 4"),
        ("kingbus-bin.000002", 0, "position < 4"),
        ("kingbus-bin.000002", 2001, "position > file size"),
    ],
)
def test_file_dump_refusals(name: str, position: int, message: str) -> None:
    with pytest.raises(MySQLError) as caught:
        dumpplan.plan_file_dump(SEGMENTS, name, position)
    assert caught.value.code == 1236 and message in caught.value.message


def test_file_dump_on_an_empty_store() -> None:
    with pytest.raises(MySQLError):
        dumpplan.plan_file_dump([], "kingbus-bin.000001", 4)


def test_next_segment() -> None:
    assert dumpplan.next_segment(SEGMENTS, "kingbus-bin.000001") == SEGMENTS[1]
    assert dumpplan.next_segment(SEGMENTS, "kingbus-bin.000003") is None
    assert dumpplan.next_segment(SEGMENTS, "nope") is None


# --- generated events ---------------------------------------------------------------------------


def test_fake_rotate_is_artificial_with_crc_and_zero_log_pos() -> None:
    event = dumpplan.fake_rotate("kingbus-bin.000002", 4, 77)
    header = events.EventHeader.parse(event)
    assert events.crc32_ok(event)
    assert (header.timestamp, header.log_pos, header.server_id) == (0, 0, 77)
    assert header.flags == events.EventFlag.ARTIFICIAL
    rotate = control_events.decode_rotate(event, checksum=True)
    assert (rotate.next_file, rotate.position) == ("kingbus-bin.000002", 4)


@pytest.mark.parametrize("start", [4, 5, 1000])
def test_dump_fde_clears_in_use_and_created_and_log_pos_past_the_start(start: int) -> None:
    stored = format_description.encode_format_description(
        server_id=1, created=1_700_000_000, flags=events.EventFlag.BINLOG_IN_USE
    )
    sent = dumpplan.dump_fde(stored, start=start)
    info = format_description.decode_format_description(sent)  # verifies the recomputed CRC
    assert info.created == 0
    assert not info.header.flags & events.EventFlag.BINLOG_IN_USE
    assert (info.header.log_pos == 0) is (start > 4)
    assert len(sent) == len(stored)


@pytest.mark.parametrize("v2", [False, True])
@pytest.mark.parametrize("position", [4, 123456, 0xFFFFFFFE])
def test_heartbeats_carry_the_position(v2: bool, position: int) -> None:
    event = dumpplan.heartbeat("kingbus-bin.000001", position, server_id=3, v2=v2)
    beat = control_events.decode_heartbeat(event, checksum=True)
    assert (beat.file, beat.position) == ("kingbus-bin.000001", position)
    expected = events.EventType.HEARTBEAT_V2 if v2 else events.EventType.HEARTBEAT
    assert events.EventHeader.parse(event).event_type == expected


def test_heartbeat_v1_never_sends_the_reserved_position() -> None:
    with pytest.raises(ValueError):
        dumpplan.heartbeat("f", 0xFFFFFFFF, server_id=1, v2=False)


# --- GTID skipping ------------------------------------------------------------------------------


def split(data: bytes) -> list[bytes]:
    return list(events.split_events(data))


def test_skipper_skips_whole_transactions_and_flags_the_end_of_a_run() -> None:
    txns = [fabricate.transaction(n) for n in range(1, 6)]
    skipper = GtidSkipper(g(f"{U}:1-2:4"))
    decisions: list[tuple[int, Decision, bool]] = []
    for n, txn in enumerate(txns, start=1):
        for event in split(txn.data):
            decision = skipper.decide(event)
            decisions.append((n, decision, skipper.pending_heartbeat))
            if decision is Decision.SEND:
                skipper.pending_heartbeat = False
    by_txn = {n: {d for m, d, _ in decisions if m == n} for n in range(1, 6)}
    assert by_txn == {
        1: {Decision.SKIP},
        2: {Decision.SKIP},
        3: {Decision.SEND},
        4: {Decision.SKIP},
        5: {Decision.SEND},
    }
    # The heartbeat is pending exactly at the first event sent after a skipped run.
    pending_at = [(n, d) for n, d, pending in decisions if pending]
    assert pending_at == [(3, Decision.SEND), (5, Decision.SEND)]


def test_skipper_without_a_set_sends_everything() -> None:
    skipper = GtidSkipper(None)
    for event in split(fabricate.transaction(1).data):
        assert skipper.decide(event) is Decision.SEND
    assert not skipper.pending_heartbeat


def test_rotate_is_never_skipped_and_ends_a_skip_run() -> None:
    skipper = GtidSkipper(g(f"{U}:1"))
    for event in split(fabricate.transaction(1).data):
        assert skipper.decide(event) is Decision.SKIP
    rotate = control_events.encode_rotate(
        next_file="kingbus-bin.000002", position=4, server_id=1, checksum=True, artificial=False
    )
    assert skipper.decide(rotate) is Decision.SEND
    assert skipper.pending_heartbeat


def test_tagged_gtids_are_skipped_by_their_tag() -> None:
    skipper = GtidSkipper(g(f"{U}:blue:1"))
    assert {skipper.decide(e) for e in split(fabricate.tagged_transaction(1, "blue").data)} == {Decision.SKIP}
    assert {skipper.decide(e) for e in split(fabricate.transaction(1).data)} == {Decision.SEND}


def test_anonymous_gtid_on_the_gtid_protocol_is_an_error() -> None:
    anonymous = events.build_event(
        event_type=events.EventType.ANONYMOUS_GTID, body=bytes(42), server_id=1, log_pos=0, checksum=True
    )
    with pytest.raises(MySQLError) as caught:
        GtidSkipper(GtidSet()).decide(anonymous)
    assert caught.value.code == 1236
