"""A burst of committed entries is applied over several ticks, not in one (three real
pysyncobj 0.3.17 nodes in this process, loopback TCP).

pysyncobj applies everything committed in one tick; while it does, that member neither
heartbeats nor answers, and a leader that applied ~7000 transactions in one 0.67 s tick lost
its leadership to an election (measured in the small-transaction benchmark).
`TunedSyncObj` applies for at most `APPLY_BUDGET_SECONDS` per tick and ticks again at once.
Here every command takes 10 ms to apply and 100 are committed together: with
`TunedSyncObj` no tick of any member lasts long, and every command is applied everywhere;
stock `SyncObj` (the control) spends a second in one tick.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pysyncobj import SyncObj, SyncObjConf, replicated

from kingbus.raft.tuned import APPLY_BUDGET_SECONDS, TunedSyncObj
from tests.support import wait_until
from tests.support.raft_members import running_members, sole_leader

PASSWORD = "bounded-apply-test-password"
HOSTS = ("127.0.0.27", "127.0.0.28", "127.0.0.29")
APPLY_SECONDS = 0.01
COMMANDS = 100


def make_node_class(base: type) -> type:
    class SlowCounter(base):  # type: ignore[valid-type,misc]
        def __init__(self, address: str, peers: list[str], conf: SyncObjConf) -> None:
            self.value = 0
            self.longest_tick = 0.0
            super().__init__(address, peers, conf)

        def _onTick(self, timeToWait: float = 0.0) -> None:
            started = time.monotonic()
            super()._onTick(timeToWait)
            # Work only: the poll at the end of a tick waits at most timeToWait.
            self.longest_tick = max(self.longest_tick, time.monotonic() - started - timeToWait)

        @replicated  # type: ignore[untyped-decorator]
        def add(self, amount: int) -> None:
            time.sleep(APPLY_SECONDS)
            self.value += amount

    return SlowCounter


@contextlib.contextmanager
def three_nodes(tmp_path: Path, base: type) -> Iterator[list[Any]]:
    node_class = make_node_class(base)
    journals = iter(range(len(HOSTS)))

    def build(address: str, peers: list[str]) -> Any:
        conf = SyncObjConf(
            password=PASSWORD,
            journalFile=str(tmp_path / f"journal{next(journals)}"),
            # Long timeouts: the control's long ticks must not turn into elections.
            raftMinTimeout=5.0,
            raftMaxTimeout=6.0,
            leaderFallbackTimeout=30.0,
            connectionTimeout=6.0,
        )
        return node_class(address, peers, conf)

    with running_members(HOSTS, build) as nodes:
        sole_leader(nodes, timeout=60)
        yield nodes


def commit_a_burst(nodes: list[Any]) -> None:
    (leader,) = [n for n in nodes if n._isLeader()]
    for node in nodes:
        node.longest_tick = 0.0
    done = threading.Semaphore(0)
    for _ in range(COMMANDS):
        leader.add(1, callback=lambda _result, _error: done.release())
    for _ in range(COMMANDS):
        assert done.acquire(timeout=60), "a command was not committed"
    wait_until(lambda: all(n.value == COMMANDS for n in nodes), timeout=60, what="every node to apply all")


def test_a_burst_is_applied_over_several_short_ticks(tmp_path: Path) -> None:
    with three_nodes(tmp_path, TunedSyncObj) as nodes:
        commit_a_burst(nodes)
        # The budget, plus the step that crosses it (2 commands), plus the rest of a tick.
        assert max(n.longest_tick for n in nodes) < APPLY_BUDGET_SECONDS + 0.25
        assert all(n.raftCommitIndex == n.raftLastApplied for n in nodes)


def test_stock_syncobj_applies_the_burst_in_one_long_tick(tmp_path: Path) -> None:
    """The control: the same burst with pysyncobj's own apply."""
    with three_nodes(tmp_path, SyncObj) as nodes:
        commit_a_burst(nodes)
        assert max(n.longest_tick for n in nodes) > COMMANDS * APPLY_SECONDS / 2
