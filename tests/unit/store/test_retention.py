"""Retention decisions: oldest first, sealed only, never the active segment or what a replica reads."""

from __future__ import annotations

from kingbus.store.retention import RetentionPolicy, SegmentFacts, segments_to_purge

NOW = 1_000_000.0


def seg(name: str, size: int, ts: int, sealed: bool = True) -> SegmentFacts:
    return SegmentFacts(name, size, sealed, ts)


SEGMENTS = [seg("a", 100, 1000), seg("b", 100, 2000), seg("c", 100, 3000), seg("d", 100, 0, sealed=False)]


def test_no_policy_purges_nothing() -> None:
    assert segments_to_purge(SEGMENTS, RetentionPolicy(), now=NOW, oldest_needed=None) == []


def test_size_limit_purges_oldest_first_until_under() -> None:
    assert segments_to_purge(SEGMENTS, RetentionPolicy(max_bytes=250), now=NOW, oldest_needed=None) == [
        "a",
        "b",
    ]


def test_active_segment_is_never_purged() -> None:
    assert segments_to_purge(SEGMENTS, RetentionPolicy(max_bytes=1), now=NOW, oldest_needed=None) == [
        "a",
        "b",
        "c",
    ]


def test_age_limit() -> None:
    policy = RetentionPolicy(max_age_seconds=int(NOW) - 1500)
    assert segments_to_purge(SEGMENTS, policy, now=NOW, oldest_needed=None) == ["a"]


def test_unknown_age_is_not_old() -> None:
    segments = [seg("a", 100, 0), seg("b", 100, 0, sealed=False)]
    assert segments_to_purge(segments, RetentionPolicy(max_age_seconds=1), now=NOW, oldest_needed=None) == []


def test_a_segment_a_replica_reads_stops_the_purge() -> None:
    assert segments_to_purge(SEGMENTS, RetentionPolicy(max_bytes=1), now=NOW, oldest_needed="b") == ["a"]
    assert segments_to_purge(SEGMENTS, RetentionPolicy(max_bytes=1), now=NOW, oldest_needed="a") == []
