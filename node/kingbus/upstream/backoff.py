"""Capped exponential backoff with jitter (pure)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(slots=True)
class Backoff:
    initial: float = 0.5
    cap: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    attempts: int = 0

    def next_delay(self, rng: random.Random | None = None) -> float:
        base = min(self.cap, self.initial * self.factor**self.attempts)
        self.attempts += 1
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1.0 + spread))

    def reset(self) -> None:
        self.attempts = 0
