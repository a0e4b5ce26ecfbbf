from __future__ import annotations

import random

from kingbus.upstream.backoff import Backoff


def test_grows_exponentially_to_the_cap_and_resets() -> None:
    b = Backoff(initial=0.5, cap=4.0, jitter=0.0)
    assert [b.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next_delay() == 0.5


def test_jitter_stays_within_bounds() -> None:
    b = Backoff(initial=1.0, cap=1.0, jitter=0.2)
    rng = random.Random(1)
    delays = [b.next_delay(rng) for _ in range(200)]
    assert min(delays) >= 0.8 and max(delays) <= 1.2 and len(set(delays)) > 100
