"""When a member compacts its Raft log (a snapshot, then the journal's older entries dropped).

pysyncobj compacts by entry count and by time; a binlog's entries vary from bytes to megabytes,
so Kingbus compacts by journal bytes, and by time for a journal that grows slowly (so that a
restart replays little). Either way, a leader holds off while a connected follower still needs
entries the compaction would drop: that follower would need a snapshot and a copy of whole
segments for what a few more appends would have given it. pysyncobj's own time trigger does
not look at followers at all, so it is switched off and decided here instead. A journal four
times over the limit is compacted anyway: a follower that lags that far is better served by a
snapshot than by an unbounded journal.
"""

from __future__ import annotations

HOLD_OFF_FACTOR = 4


def wanted(
    *, journal_bytes: int, limit_bytes: int, seconds_since_last: float, interval_seconds: float
) -> bool:
    """The journal's applied entries (what a compaction drops) are over the size limit, or
    the last compaction is an interval old."""
    return journal_bytes > limit_bytes or seconds_since_last >= interval_seconds


def held_off(*, journal_bytes: int, limit_bytes: int, is_leader: bool, follower_lags: bool) -> bool:
    """A wanted compaction waits: a leader with a connected follower that still needs entries
    it would drop, unless the journal is HOLD_OFF_FACTOR times over the limit."""
    return is_leader and follower_lags and journal_bytes < HOLD_OFF_FACTOR * limit_bytes
