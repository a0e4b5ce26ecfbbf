"""Helpers shared by the test suite: free ports, polling with a deadline, GTID-set expansion.

Only test code lives here; the MySQL servers themselves come from ``kingbus.devenv`` (the demo and
the benchmarks use them too) through the fixtures in ``tests/conftest.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from kingbus.devenv.ports import free_port, free_ports

__all__ = ["expand_gtid_set", "free_port", "free_ports", "wait_until"]

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None], *, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"
) -> T:
    """Call ``probe`` until it returns something truthy and return that; TimeoutError after ``timeout``.

    Exceptions from ``probe`` propagate at once: a probe that can fail transiently must catch.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what} (last value: {value!r})")
        time.sleep(interval)


def expand_gtid_set(text: str) -> set[str]:
    """Every single GTID in a MySQL GTID set text, as ``uuid:gno`` or ``uuid:tag:gno``.

    Accepts MySQL's output format, tags included: ``uuid:1-3:mytag:1:tg2:5-6,uuid2:7``.
    """
    result: set[str] = set()
    for entry in text.replace("\n", "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        uuid, *parts = entry.split(":")
        tag = ""
        for part in parts:
            if not part[0].isdigit():
                tag = part.lower()
                continue
            first, _, last = part.partition("-")
            prefix = f"{uuid.lower()}:{tag}:" if tag else f"{uuid.lower()}:"
            result.update(f"{prefix}{gno}" for gno in range(int(first), int(last or first) + 1))
    return result
