"""A member that restarts late must not depose a healthy leader (three real pysyncobj 0.3.17
nodes in this process, loopback TCP).

pysyncobj sets a member's election deadline when the SyncObj is built.  A member whose start
takes longer than the election timeout (a large journal to load, a store to catch up) has an
expired deadline by the time its first connection comes up, calls an election at once with
the next term, and the healthy leader steps down.  Here the third member runs, is stopped,
and is built again from its journal (so it knows the cluster's term), then left without
ticks for longer than the longest election timeout, then ticked by hand: with `TunedSyncObj`
the two running members keep their leader and term; stock `SyncObj` (the control) shows the
deposition.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pysyncobj import SyncObj, SyncObjConf

from kingbus.devenv.ports import free_port
from kingbus.raft.tuned import TunedSyncObj
from tests.support import wait_until

PASSWORD = "late-member-test-password"
HOSTS = ("127.0.0.24", "127.0.0.25", "127.0.0.26")
MIN_TIMEOUT, MAX_TIMEOUT = 1.0, 1.5
# The leader's heartbeat period: well inside the election timeout (the tuned member hears it
# before its fresh timeout ends), and long enough that a stock member, which calls its
# election on the first tick after its connection is up, does so before the next heartbeat.
HEARTBEAT = 0.3


def conf(journal: Path, *, auto_tick: bool) -> SyncObjConf:
    return SyncObjConf(
        password=PASSWORD,
        journalFile=str(journal),
        autoTick=auto_tick,
        raftMinTimeout=MIN_TIMEOUT,
        raftMaxTimeout=MAX_TIMEOUT,
        appendEntriesPeriod=HEARTBEAT,
        # Generous: the running pair must not lose its leader to CI load on its own.
        leaderFallbackTimeout=5.0,
    )


@contextlib.contextmanager
def late_third_member(tmp_path: Path, late_class: type) -> Iterator[tuple[list[Any], Any]]:
    addresses = [f"{h}:{free_port(h)}" for h in HOSTS]
    running: list[Any] = []
    late: Any = None
    try:
        for i in (0, 1):
            others = [a for a in addresses if a != addresses[i]]
            running.append(TunedSyncObj(addresses[i], others, conf(tmp_path / f"j{i}", auto_tick=True)))
        wait_until(lambda: sum(n._isLeader() for n in running) == 1, timeout=30, what="a leader of two")
        _, term = leader_and_term(running)
        # The third member's first life: it learns the leader and the term (in its journal).
        late = late_class(addresses[2], addresses[:2], conf(tmp_path / "j2", auto_tick=True))
        wait_until(lambda: late._getLeader() is not None, timeout=30, what="the third member to follow")
        assert late.raftCurrentTerm == term
        late.destroy_synchronous()
        # Its second life starts slowly: the deadline set when the object is built expires
        # before its first tick.
        late = late_class(addresses[2], addresses[:2], conf(tmp_path / "j2", auto_tick=False))
        time.sleep(MAX_TIMEOUT * 1.5)
        yield running, late
    finally:
        for node in running:
            node.destroy_synchronous()
        if late is not None:
            late.destroy()


def tick_for(node: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        node.doTick(0.01)


def leader_and_term(nodes: list[Any]) -> tuple[Any, int]:
    (leader,) = [n for n in nodes if n._isLeader()]
    return leader.selfNode, leader.raftCurrentTerm


def test_a_late_member_joins_under_the_running_leader(tmp_path: Path) -> None:
    with late_third_member(tmp_path, TunedSyncObj) as (running, late):
        before = leader_and_term(running)
        tick_for(late, 3 * MAX_TIMEOUT)
        assert leader_and_term(running) == before
        assert late.raftCurrentTerm == before[1]
        assert late._getLeader() == before[0]


def test_stock_syncobj_lets_the_late_member_depose_the_leader(tmp_path: Path) -> None:
    """The control: the same start with pysyncobj's own SyncObj raises the term."""
    with late_third_member(tmp_path, SyncObj) as (running, late):
        _, term = leader_and_term(running)
        tick_for(late, 3 * MAX_TIMEOUT)
        assert late.raftCurrentTerm > term
