"""Which sealed segments may be purged: a pure decision over facts.

Retention keeps the newest data.  Sealed segments are purged oldest first while the store
is above `max_bytes`, or while the oldest segment's newest transaction is older than
`max_age_seconds`.  Two guards always win: the active (last) segment is never purged, and
nothing a connected replica still needs (the oldest segment any dump session reads) is
purged, so retention can never pull data out from under a replica.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SegmentFacts:
    name: str
    size: int
    sealed: bool
    newest_timestamp: int  # header timestamp of the last transaction; 0 when unknown


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    max_bytes: int = 0  # 0 = no size limit
    max_age_seconds: int = 0  # 0 = no age limit


def segments_to_purge(
    segments: Sequence[SegmentFacts],
    policy: RetentionPolicy,
    *,
    now: float,
    oldest_needed: str | None,
) -> list[str]:
    """Names of the segments to purge, oldest first (a prefix of `segments`)."""
    if policy.max_bytes <= 0 and policy.max_age_seconds <= 0:
        return []
    total = sum(s.size for s in segments)
    purge: list[str] = []
    for seg in segments[:-1]:  # the active segment is never a candidate
        if not seg.sealed or seg.name == oldest_needed:
            break
        too_big = policy.max_bytes > 0 and total > policy.max_bytes
        too_old = (
            policy.max_age_seconds > 0
            and seg.newest_timestamp > 0
            and now - seg.newest_timestamp > policy.max_age_seconds
        )
        if not (too_big or too_old):
            break
        purge.append(seg.name)
        total -= seg.size
    return purge
