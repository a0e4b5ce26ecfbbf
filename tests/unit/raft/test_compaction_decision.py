"""kingbus.raft.compaction: when a member compacts its log (pure decisions, tabled)."""

from __future__ import annotations

import pytest

from kingbus.raft import compaction

MiB = 1024 * 1024
LIMIT = 64 * MiB


@pytest.mark.parametrize(
    ("journal_bytes", "seconds", "expected"),
    [
        (10 * MiB, 5.0, False),  # small and recent: nothing to do
        (LIMIT, 5.0, False),  # at the limit is not over it
        (LIMIT + 1, 5.0, True),  # over the size limit
        (10 * MiB, 60.0, True),  # a slowly growing journal, an interval after the last one
        (0, 59.9, False),
    ],
)
def test_wanted_by_size_or_by_time(journal_bytes: int, seconds: float, expected: bool) -> None:
    assert (
        compaction.wanted(
            journal_bytes=journal_bytes, limit_bytes=LIMIT, seconds_since_last=seconds, interval_seconds=60.0
        )
        is expected
    )


@pytest.mark.parametrize(
    ("journal_bytes", "is_leader", "follower_lags", "expected"),
    [
        (100 * MiB, True, True, True),  # a connected follower still needs the entries
        (10 * MiB, True, True, True),  # also when the compaction was wanted by time
        (4 * LIMIT - 1, True, True, True),
        (4 * LIMIT, True, True, False),  # four times over: compact, the follower gets a snapshot
        (100 * MiB, True, False, False),
        (100 * MiB, False, True, False),  # a follower compacts its own log whatever others do
    ],
)
def test_a_leader_holds_off_for_a_lagging_follower_up_to_four_times_the_limit(
    journal_bytes: int, is_leader: bool, follower_lags: bool, expected: bool
) -> None:
    assert (
        compaction.held_off(
            journal_bytes=journal_bytes, limit_bytes=LIMIT, is_leader=is_leader, follower_lags=follower_lags
        )
        is expected
    )
