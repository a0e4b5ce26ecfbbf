"""Pre-vote against real pysyncobj 0.3.17 members (Kingbus's TunedSyncObj), in this process
on 127.0.0.21-23: a follower cut off from the others for a few election timeouts must not
depose the leader when it comes back.

The cut is made in the transport (a `TCPTransport` subclass passed as `transportClass` drops
every message to and from the cut-off member; the TCP connections stay up, as when a process
is paused or a link loses everything). The same scenario runs with pre-vote switched off, where
the returning member's higher term does depose the leader: proof that the scenario bites.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pysyncobj import FAIL_REASON, SyncObjConf, replicated
from pysyncobj.transport import TCPTransport

from kingbus.raft.tuned import TunedSyncObj
from tests.support import wait_until
from tests.support.raft_members import on_tick_thread, running_members, settled_leader

HOSTS = ("127.0.0.21", "127.0.0.22", "127.0.0.23")
CUT_SECONDS = 3.0  # 5-10 election timeouts of 0.3-0.6 s


class CuttableTransport(TCPTransport):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cut: set[str] = set()  # ids of members whose messages are dropped, both ways

    def _onMessageReceived(self, node: Any, message: dict[str, Any]) -> None:
        if node.id not in self.cut:
            super()._onMessageReceived(node, message)

    def send(self, node: Any, message: dict[str, Any]) -> Any:
        return True if node.id in self.cut else super().send(node, message)


class Items(TunedSyncObj):
    def __init__(self, address: str, peers: list[str], conf: SyncObjConf) -> None:
        self.items: list[str] = []
        super().__init__(address, peers, conf, transportClass=CuttableTransport)

    @replicated  # type: ignore[untyped-decorator]
    def add(self, value: str) -> None:
        self.items.append(value)

    @property
    def transport(self) -> CuttableTransport:
        transport: CuttableTransport = self._SyncObj__transport
        return transport

    @property
    def term(self) -> int:
        return int(self.raftCurrentTerm)


class ItemsWithoutPreVote(Items):
    def _pre_vote_before_election(self) -> None:
        """pysyncobj's own behaviour: the election is called when the deadline passes."""


@contextlib.contextmanager
def members(tmp_path: Path, cls: type[Items]) -> Iterator[list[Items]]:
    conf = SyncObjConf(
        password="prevote-test",
        autoTick=True,
        appendEntriesPeriod=0.05,
        raftMinTimeout=0.3,
        raftMaxTimeout=0.6,
        connectionTimeout=3.5,
        connectionRetryTime=0.3,
        leaderFallbackTimeout=10.0,
        logCompactionMinEntries=10**9,
        logCompactionMinTime=10**9,
    )
    with running_members(HOSTS, lambda address, peers: cls(address, peers, conf)) as nodes:
        yield nodes


def cut_then_heal(nodes: list[Items]) -> dict[str, Any]:
    """Cuts a follower off for CUT_SECONDS while the leader commits, heals, lets it catch up."""
    leader = settled_leader(nodes)
    term = leader.term
    follower = next(n for n in nodes if n is not leader)
    others = [n for n in nodes if n is not follower]
    follower.transport.cut.update(n.selfNode.id for n in others)
    for n in others:
        n.transport.cut.add(follower.selfNode.id)
    deadline = time.monotonic() + CUT_SECONDS
    i = 0
    while time.monotonic() < deadline:
        settled_leader(others).add(f"item-{i}", sync=True, timeout=10)
        i += 1
        time.sleep(0.1)
    term_while_cut = follower.term
    for n in nodes:
        n.transport.cut.clear()
    wait_until(lambda: all(len(n.items) == i for n in nodes), what="every member to apply every item")
    time.sleep(1.0)  # a few more timeouts: a deposed leader or a new election would show now
    after = settled_leader(nodes)
    return {
        "term": term,
        "term_while_cut": term_while_cut,
        "leader_kept": after is leader,
        "term_after": after.term,
        "items_equal": all(n.items == nodes[0].items for n in nodes),
    }


def test_a_follower_cut_off_and_back_does_not_depose_the_leader(tmp_path: Path) -> None:
    with members(tmp_path, Items) as nodes:
        seen = cut_then_heal(nodes)
    assert seen["term_while_cut"] == seen["term"], seen  # pre-vote refused: no term raised
    assert seen["leader_kept"] and seen["term_after"] == seen["term"], seen
    assert seen["items_equal"], seen


def test_without_pre_vote_the_same_cut_deposes_the_leader(tmp_path: Path) -> None:
    with members(tmp_path, ItemsWithoutPreVote) as nodes:
        seen = cut_then_heal(nodes)
    assert seen["term_while_cut"] > seen["term"], seen
    assert seen["term_after"] > seen["term"], seen  # the returning member's term won out
    assert seen["items_equal"], seen


def test_members_still_elect_a_leader_when_the_leader_goes(tmp_path: Path) -> None:
    with members(tmp_path, Items) as nodes:
        first = settled_leader(nodes)
        first.add("before", sync=True, timeout=10)
        first.destroy_synchronous()
        rest = [n for n in nodes if n is not first]
        wait_until(lambda: any(n._isLeader() for n in rest), what="a new leader among the two left")
        second = next(n for n in rest if n._isLeader())
        second.add("after", sync=True, timeout=10)
        wait_until(lambda: all(n.items == ["before", "after"] for n in rest), what="both to apply both items")
        nodes.remove(first)  # destroyed already


class ItemsWithStoreFlag(Items):
    """`kb_store_behind` as the Kingbus member answers it while it copies a snapshot's data."""

    behind = False

    def kb_store_behind(self) -> bool:
        return self.behind


def test_a_member_whose_store_is_behind_votes_but_neither_applies_nor_campaigns(tmp_path: Path) -> None:
    with members(tmp_path, ItemsWithStoreFlag) as nodes:
        first = settled_leader(nodes)
        behind, other = (n for n in nodes if n is not first)
        assert isinstance(behind, ItemsWithStoreFlag)
        behind.behind = True
        for i in range(5):
            first.add(f"item-{i}", sync=True, timeout=10)
        wait_until(
            lambda: behind.raftCommitIndex >= first.raftCommitIndex, what="the commit index to reach it"
        )
        assert behind.items == [] and other.items == [f"item-{i}" for i in range(5)]

        first.destroy_synchronous()
        nodes.remove(first)
        # Only `other` may campaign, and it needs `behind`'s vote: it wins.
        assert settled_leader(nodes) is other
        time.sleep(1.0)  # a few election timeouts: `behind` stays a follower
        assert settled_leader(nodes) is other and not behind._isLeader()
        assert behind.items == []

        behind.behind = False
        other.add("after", sync=True, timeout=10)
        wait_until(lambda: behind.items == other.items, what="the caught-up member to apply everything")
        assert behind.items == [*(f"item-{i}" for i in range(5)), "after"]


def transfer_leadership(leader: Items, target: Items) -> int:
    """pysyncobj's `transferLeadership` (it writes to the transport) on the leader's tick
    thread; its FAIL_REASON."""
    outcome: list[int] = []

    def transfer() -> None:
        leader.transferLeadership(target.selfNode.address, callback=lambda _r, error: outcome.append(error))

    on_tick_thread(leader, transfer)
    return outcome[0]


def test_a_member_whose_store_is_behind_does_not_take_a_leader_transfer(tmp_path: Path) -> None:
    with members(tmp_path, ItemsWithStoreFlag) as nodes:
        first = settled_leader(nodes)
        behind = next(n for n in nodes if n is not first)
        assert isinstance(behind, ItemsWithStoreFlag)
        first.add("before", sync=True, timeout=10)
        wait_until(
            lambda: behind.raftCommitIndex >= first.raftCommitIndex, what="the target to match the leader"
        )
        term = first.term
        behind.behind = True
        # The leader sends TimeoutNow (the target has matched its log); the target ignores it.
        assert transfer_leadership(first, behind) == FAIL_REASON.SUCCESS
        time.sleep(1.0)  # a few election timeouts
        assert settled_leader(nodes) is first and first.term == term and not behind._isLeader()

        behind.behind = False
        assert transfer_leadership(first, behind) == FAIL_REASON.SUCCESS
        wait_until(behind._isLeader, what="the caught-up member to take the transfer")
        assert settled_leader(nodes) is behind
