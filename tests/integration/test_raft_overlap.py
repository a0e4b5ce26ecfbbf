"""Overlapping append_entries against real pysyncobj 0.3.17 followers.

The issue: "pysyncobj followers truncate acknowledged entries whenever an append_entries message
overlaps their log."  These tests run three real `SyncObj` nodes in this process (password set,
autoTick, loopback addresses 127.0.0.11-13), capture the append_entries messages a follower
really received, replay them to it duplicated, reordered and stale (a prefix of what it already
acknowledged), then kill the leader at that moment.

Seams used (pysyncobj 0.3.17):

* `RecordingTransport` subclasses `pysyncobj.transport.TCPTransport` (passed as
  `SyncObj(transportClass=...)`).  Every message a node receives passes through
  `Transport._onMessageReceived(node, message)` after decryption and unpickling, and every
  message it sends through `send(node, message)`.  The subclass records the append_entries a
  follower receives and the successful `next_node_idx` replies it sends (its acknowledgements),
  and can drop all messages from a given node (a one-way partition).
* A replayed message is handed to `SyncObj._SyncObj__onMessageReceived(node, message)` from an
  on-tick callback (`addOnTickCallback`), i.e. on the follower's own tick thread exactly where a
  real message would be processed.
* The journal is read through `SyncObj._SyncObj__raftLog` (the same object for the stock
  `FileJournal` and for `DiskJournal`).

The same scenario runs once with pysyncobj's own `FileJournal`, where the acknowledged entries
*are* lost and a committed entry disappears from the cluster: proof that the scenario bites and
that the Raft-safety assertions can fail.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pysyncobj import SyncObj, SyncObjConf, replicated
from pysyncobj.transport import TCPTransport

from kingbus.devenv.ports import free_port
from kingbus.raft import journal
from kingbus.raft.journal import DiskJournal, JournalOptions
from tests.support import wait_until
from tests.support.raft_members import on_tick_thread, sole_leader

PASSWORD = "overlap-test-password"
HOSTS = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
NO_OP = b"\x01"  # pysyncobj's _COMMAND_TYPE.NO_OP command


class RecordingTransport(TCPTransport):  # type: ignore[misc]
    """TCPTransport that records what a node receives/acknowledges and can drop a sender."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()
        self.received: list[tuple[Any, dict[str, Any]]] = []
        self.max_acked = 0
        self.blocked: set[str] = set()

    def _onMessageReceived(self, node: Any, message: dict[str, Any]) -> None:
        if node.id in self.blocked:
            return
        if message.get("type") == "append_entries" and message.get("entries"):
            with self.lock:
                self.received.append((node, copy.deepcopy(message)))
        super()._onMessageReceived(node, message)

    def send(self, node: Any, message: dict[str, Any]) -> Any:
        if message.get("type") == "next_node_idx" and message.get("success"):
            with self.lock:
                self.max_acked = max(self.max_acked, message["next_node_idx"] - 1)
        return super().send(node, message)


class ListObj(SyncObj):  # type: ignore[misc]
    """The smallest replicated state machine: a list of strings."""

    def __init__(self, address: str, peers: list[str], conf: SyncObjConf) -> None:
        self.items: list[str] = []
        super().__init__(address, peers, conf, transportClass=RecordingTransport)

    @replicated  # type: ignore[untyped-decorator]
    def append(self, value: str) -> None:
        self.items.append(value)

    @property
    def transport(self) -> RecordingTransport:
        transport: RecordingTransport = self._SyncObj__transport
        return transport

    @property
    def log(self) -> Any:
        return self._SyncObj__raftLog

    def log_entries(self) -> list[tuple[bytes, int, int]]:
        log = self.log
        return [(bytes(e[0]), e[1], e[2]) for e in log[0 : len(log)]]

    def inject(self, messages: list[tuple[Any, dict[str, Any]]]) -> None:
        """Process messages on this node's tick thread, as if they had just arrived."""

        def receive() -> None:
            for node, message in messages:
                self._SyncObj__onMessageReceived(node, copy.deepcopy(message))

        on_tick_thread(self, receive)


@dataclass
class Cluster:
    nodes: list[ListObj]
    destroyed: set[int] = field(default_factory=set)

    def destroy(self, node: ListObj) -> None:
        i = self.nodes.index(node)
        if i not in self.destroyed:
            self.destroyed.add(i)
            node.destroy_synchronous()

    def destroy_all(self) -> None:
        for node in self.nodes:
            self.destroy(node)


@contextlib.contextmanager
def cluster(tmp_path: Path, kind: str, *, membership: bool = False) -> Iterator[Cluster]:
    """Three nodes; the third never starts an election (it is the one left behind)."""
    addresses = [f"{h}:{free_port(h)}" for h in HOSTS]
    factory = (
        journal.journal_factory(JournalOptions(fsync="always"))
        if kind == "disk"
        else contextlib.nullcontext()
    )
    with factory:
        nodes = []
        for i, address in enumerate(addresses):
            lagging = i == 2
            conf = SyncObjConf(
                password=PASSWORD,
                journalFile=str(tmp_path / f"node{i}" / "journal"),
                autoTick=True,
                raftMinTimeout=30.0 if lagging else 1.0,
                raftMaxTimeout=31.0 if lagging else 2.0,
                leaderFallbackTimeout=60.0,
                connectionTimeout=40.0,  # pysyncobj requires it >= raftMaxTimeout
                logCompactionMinEntries=10**9,
                logCompactionMinTime=10**9,
                dynamicMembershipChange=membership,
            )
            (tmp_path / f"node{i}").mkdir()
            nodes.append(ListObj(address, [a for a in addresses if a != address], conf))
        c = Cluster(nodes)
        try:
            yield c
        finally:
            c.destroy_all()


@dataclass
class Observation:
    acknowledged: int
    follower_before: list[tuple[bytes, int, int]]
    follower_after_replay: list[tuple[bytes, int, int]]
    leader_log: list[tuple[bytes, int, int]]
    committed_items: list[str]
    stale_end: int
    follower: ListObj
    lagging: ListObj
    follower_journal: Any


def overlap_then_kill_leader(c: Cluster) -> Observation:
    """Commit items with a follower's acknowledgement, replay stale messages to that follower,
    kill the leader at that moment."""
    first, second, lagging = c.nodes
    leader = sole_leader([first, second])
    follower = second if leader is first else first
    for i in range(5):
        leader.append(f"early-{i}", sync=True, timeout=10)
    wait_until(lambda: len(lagging.items) == 5, what="the third node to apply the early items")

    # The third node stops hearing the leader: from now on the follower's acknowledgement is
    # what commits each entry.
    lagging.transport.blocked.add(leader.selfNode.id)
    lagging_last = lagging.log[-1][1]
    with follower.transport.lock:
        follower.transport.received.clear()
    committed = [f"early-{i}" for i in range(5)]
    for i in range(10):
        leader.append(f"late-{i}", sync=True, timeout=10)  # returns once committed and applied
        committed.append(f"late-{i}")
    wait_until(lambda: follower.items == committed, what="the follower to apply every item")

    # Cut the follower off the leader too, so that nothing but the replay reaches it.
    follower.transport.blocked.add(leader.selfNode.id)
    time.sleep(0.1)  # let messages already in flight land (well below the election timeout)
    with follower.transport.lock:
        captured = list(follower.transport.received)
        acknowledged = follower.transport.max_acked
    follower_before = follower.log_entries()
    assert follower_before[-1][1] == acknowledged, "the follower acknowledged its whole log"
    assert len(captured) >= 4, "enough real append_entries were captured"

    stale = next(m for m in captured if m[1]["prevLogIdx"] == lagging_last)
    stale_end = stale[1]["entries"][-1][1]
    assert stale_end < acknowledged, "the stale message carries a strict prefix"
    middle = captured[1:-1]
    replay = [captured[-1], captured[-1], *reversed(middle), stale, stale]
    follower.inject(replay)
    follower_after = follower.log_entries()

    leader_log = leader.log_entries()
    c.destroy(leader)  # the leader dies right after the overlapping messages
    return Observation(
        acknowledged=acknowledged,
        follower_before=follower_before,
        follower_after_replay=follower_after,
        leader_log=leader_log,
        committed_items=committed,
        stale_end=stale_end,
        follower=follower,
        lagging=lagging,
        follower_journal=follower.log,
    )


def test_follower_keeps_acknowledged_entries_and_committed_items_survive_leader_death(
    tmp_path: Path,
) -> None:
    with cluster(tmp_path, "disk") as c:
        obs = overlap_then_kill_leader(c)
        j = obs.follower_journal
        assert isinstance(j, DiskJournal)

        # Every acknowledged entry is still there, byte for byte as the leader has it.
        assert obs.follower_after_replay == obs.follower_before
        assert obs.follower_after_replay[-1][1] == obs.acknowledged
        leader_entries = {e[1]: e for e in obs.leader_log}
        for entry in obs.follower_after_replay:
            assert leader_entries[entry[1]] == entry
        assert j.kept_tail_events >= 2
        assert j.physical_truncations == 0

        # A new leader is elected among the survivors; it has every committed item and every
        # node applies them (and what comes after).
        new_leader = sole_leader([obs.follower, obs.lagging])
        assert new_leader is obs.follower  # the lagging node's log is shorter: it cannot win
        new_leader.append("after-failover", sync=True, timeout=15)
        expected = [*obs.committed_items, "after-failover"]
        wait_until(lambda: obs.lagging.items == expected, what="the third node to apply everything")
        assert obs.follower.items == expected
        assert obs.lagging.log_entries()[: len(obs.follower_after_replay)] == obs.follower_after_replay


def test_stock_file_journal_loses_acknowledged_and_committed_entries(tmp_path: Path) -> None:
    """Control run with pysyncobj's FileJournal: the same replay loses committed data."""
    with cluster(tmp_path, "stock") as c:
        obs = overlap_then_kill_leader(c)
        assert type(obs.follower_journal).__name__ == "FileJournal"
        assert obs.follower_after_replay[-1][1] == obs.stale_end < obs.acknowledged
        new_leader = sole_leader([obs.follower, obs.lagging])
        assert new_leader is obs.follower
        lost = obs.committed_items[obs.stale_end - obs.acknowledged :]
        assert lost, "items committed with the follower's acknowledgement"
        # The new leader's no-op overwrites the acknowledged tail: the third node catches up
        # to the truncated log and never sees items the old leader reported as committed.
        wait_until(
            lambda: (
                obs.lagging.log_entries()[-1][1] > obs.stale_end and obs.lagging.log_entries()[-1][0] == NO_OP
            ),
            what="the third node to replicate the new leader's no-op",
        )
        time.sleep(1.0)
        assert not set(lost) & set(obs.lagging.items)


def test_conflicting_term_truncates_uncommitted_entries_exactly(tmp_path: Path) -> None:
    with cluster(tmp_path, "disk") as c:
        first, second, lagging = c.nodes
        leader = sole_leader([first, second])
        follower = second if leader is first else first
        leader.append("committed", sync=True, timeout=10)
        wait_until(lambda: follower.items == ["committed"], what="the follower to apply")
        committed_last = follower.log[-1][1]

        # Nothing new can commit: the third node and the leader ignore the follower's replies.
        lagging.transport.blocked.add(leader.selfNode.id)
        leader.transport.blocked.add(follower.selfNode.id)
        for i in range(4):
            leader.append(f"uncommitted-{i}")
        wait_until(lambda: follower.log[-1][1] == committed_last + 4, what="the follower to store 4 entries")
        follower.transport.blocked.add(leader.selfNode.id)
        with follower.transport.lock:
            node = follower.transport.received[-1][0]
        before = follower.log_entries()
        term = max(before[-1][2], follower.raftCurrentTerm)

        # A leader of the next term overwrites from the third uncommitted entry on.
        prev = before[-3]
        forged = {
            "type": "append_entries",
            "term": term + 1,
            "commit_index": committed_last,
            "prevLogIdx": prev[1],
            "prevLogTerm": prev[2],
            "entries": [(NO_OP, prev[1] + 1, term + 1)],
        }
        # ... first an identical overlap (kept), then the conflict.
        identical = {**forged, "term": term + 1, "prevLogIdx": before[-4][1], "prevLogTerm": before[-4][2]}
        identical["entries"] = [before[-3]]
        follower.inject([(node, identical), (node, forged)])

        j = follower.log
        assert isinstance(j, DiskJournal)
        after = follower.log_entries()
        assert after == [*before[:-2], (NO_OP, prev[1] + 1, term + 1)]
        assert j.physical_truncations == 1
        assert j.truncated_entries == 2
        assert j.kept_tail_events >= 1
        c.destroy(follower)
        reopened = DiskJournal(Path(j.path), JournalOptions(fsync="never"))
        assert [(bytes(e[0]), e[1], e[2]) for e in reopened[0 : len(reopened)]] == after
        reopened._destroy()


def test_membership_change_in_a_kept_tail_stays_in_effect(tmp_path: Path) -> None:
    """pysyncobj reverts membership entries after prevLogIdx before it cuts; a kept tail must
    have them re-applied (`attach_to_syncobj`), or the member list disagrees with the log."""
    with cluster(tmp_path, "disk", membership=True) as c:
        first, second, third = c.nodes
        leader = sole_leader([first, second])
        follower = second if leader is first else first
        attached = journal.attach_to_syncobj(follower)  # `third` is left unattached: the control
        leader.append("before", sync=True, timeout=10)
        wait_until(lambda: third.items == ["before"], what="the third node to apply")
        for n in (follower, third):
            with n.transport.lock:
                n.transport.received.clear()
        leader.append("pre", sync=True, timeout=10)
        extra = f"127.0.0.14:{free_port('127.0.0.14')}"  # a member that never starts
        done = threading.Event()
        leader.addNodeToCluster(extra, callback=lambda result, error: done.set())
        assert done.wait(10)
        for i in range(3):
            leader.append(f"post-{i}", sync=True, timeout=10)
        expected = ["before", "pre", "post-0", "post-1", "post-2"]
        wait_until(lambda: follower.items == expected and third.items == expected, what="all to apply")
        for n in (follower, third):
            assert extra in {m.id for m in n.otherNodes}
            n.transport.blocked.add(leader.selfNode.id)
        time.sleep(0.1)

        def stale_message(n: ListObj) -> tuple[Any, dict[str, Any]]:
            with n.transport.lock:
                return next(m for m in n.transport.received if m[1]["entries"][0][0] != NO_OP)

        for n in (follower, third):
            before = n.log_entries()
            n.inject([stale_message(n)])
            assert n.log_entries() == before  # both journals keep the tail
        assert attached.kept_tail_events >= 1
        assert extra in {m.id for m in follower.otherNodes}
        # Without the listener pysyncobj's rollback leaves the member list behind the log.
        assert extra not in {m.id for m in third.otherNodes}


@pytest.fixture(autouse=True)
def _no_leftover_factory() -> Iterator[None]:
    yield
    journal.uninstall_journal_factory()
