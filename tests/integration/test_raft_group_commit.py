"""Group commit against three real pysyncobj 0.3.17 nodes in this process (loopback TCP).

The journal syncs records only when told to (`JournalOptions(group_commit=True)`); Raft's
durability then rests on `TunedSyncObj` calling `sync()` before a follower acknowledges and
before a leader counts its own log.  These tests watch both moments on real nodes: every
successful `next_node_idx` a node sends, and every commit index a node records, must find its
journal fully synced.  A follower must also sync once per append_entries message, not once per
entry.  The same run on stock `SyncObj` (the journal still deferring its syncs) shows the
checks failing: acknowledgements leave before the entries are on disk.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pysyncobj import SyncObj, SyncObjConf, replicated
from pysyncobj.transport import TCPTransport

from kingbus.raft import journal
from kingbus.raft.journal import DiskJournal, JournalOptions
from kingbus.raft.tuned import TunedSyncObj
from tests.support import wait_until
from tests.support.raft_members import running_members, sole_leader

PASSWORD = "group-commit-test-password"
HOSTS = ("127.0.0.21", "127.0.0.22", "127.0.0.23")


class Watch:
    """What the checks saw on one node (written from its tick thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.unsynced_acks = 0
        self.acks = 0
        self.unsynced_commits = 0
        self.messages_with_entries = 0


class WatchingTransport(TCPTransport):  # type: ignore[misc]
    def __init__(self, syncObj: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(syncObj, *args, **kwargs)
        self.owner = syncObj
        self.watch = Watch()

    def _onMessageReceived(self, node: Any, message: dict[str, Any]) -> None:
        if message.get("type") == "append_entries" and message.get("entries"):
            with self.watch.lock:
                self.watch.messages_with_entries += 1
        super()._onMessageReceived(node, message)

    def send(self, node: Any, message: dict[str, Any]) -> Any:
        if message.get("type") == "next_node_idx" and message.get("success"):
            with self.watch.lock:
                self.watch.acks += 1
                if self.owner._SyncObj__raftLog.unsynced:
                    self.watch.unsynced_acks += 1
        return super().send(node, message)


def make_node_class(base: type) -> type:
    class Counter(base):  # type: ignore[valid-type,misc]
        def __init__(self, address: str, peers: list[str], conf: SyncObjConf) -> None:
            self.value = 0
            super().__init__(address, peers, conf, transportClass=WatchingTransport)
            log: DiskJournal = self._SyncObj__raftLog
            record = log.setRaftCommitIndex
            watch = self.transport.watch

            def checked(index: int) -> None:
                if log.unsynced:
                    with watch.lock:
                        watch.unsynced_commits += 1
                record(index)

            log.setRaftCommitIndex = checked  # type: ignore[method-assign]

        @replicated  # type: ignore[untyped-decorator]
        def add(self, amount: int) -> None:
            self.value += amount

        @property
        def transport(self) -> WatchingTransport:
            transport: WatchingTransport = self._SyncObj__transport
            return transport

        @property
        def log(self) -> DiskJournal:
            log: DiskJournal = self._SyncObj__raftLog
            return log

    return Counter


@contextlib.contextmanager
def three_nodes(tmp_path: Path, base: type) -> Iterator[list[Any]]:
    node_class = make_node_class(base)
    journals = iter(range(len(HOSTS)))

    def build(address: str, peers: list[str]) -> Any:
        directory = tmp_path / f"node{next(journals)}"
        directory.mkdir()
        conf = SyncObjConf(
            password=PASSWORD,
            journalFile=str(directory / "journal"),
            autoTick=True,
            appendEntriesUseBatch=False,
            raftMinTimeout=1.0,
            raftMaxTimeout=2.0,
            logCompactionMinEntries=10**9,
            logCompactionMinTime=10**9,
        )
        return node_class(address, peers, conf)

    with (
        journal.journal_factory(JournalOptions(fsync="always", group_commit=True)),
        running_members(HOSTS, build) as nodes,
    ):
        yield nodes


def run_load(nodes: list[Any], bursts: int = 20, per_burst: int = 50) -> None:
    leader = sole_leader(nodes)
    for _ in range(bursts):
        done = threading.Semaphore(0)
        for _ in range(per_burst):
            leader.add(1, callback=lambda _result, _error, done=done: done.release())
        for _ in range(per_burst):
            assert done.acquire(timeout=30), "a command was not committed"
    total = bursts * per_burst
    wait_until(lambda: all(n.value == total for n in nodes), what="every node to apply every command")


def test_acknowledgements_and_commits_only_cover_synced_entries(tmp_path: Path) -> None:
    with three_nodes(tmp_path, TunedSyncObj) as nodes:
        run_load(nodes)
        watches = [n.transport.watch for n in nodes]
        followers = [n for n in nodes if not n._isLeader()]
        assert sum(w.acks for w in watches) > 0
        assert [w.unsynced_acks for w in watches] == [0, 0, 0]
        assert [w.unsynced_commits for w in watches] == [0, 0, 0]
        for follower in followers:
            watch = follower.transport.watch
            # One sync per message that brought entries, not one per entry (the slack: a node
            # that led for a moment during the first elections synced its own no-op entry).
            assert 0 < follower.log.group_syncs <= watch.messages_with_entries + 2
            assert follower.log.group_syncs < len(follower.log) / 4
            assert not follower.log.unsynced


def test_a_burst_reaches_followers_in_fewer_messages_than_entries(tmp_path: Path) -> None:
    """Commands queued together are appended together and sent together."""
    with three_nodes(tmp_path, TunedSyncObj) as nodes:
        run_load(nodes, bursts=10, per_burst=200)
        for follower in [n for n in nodes if not n._isLeader()]:
            assert follower.transport.watch.messages_with_entries < 10 * 200


def test_stock_syncobj_fails_both_checks(tmp_path: Path) -> None:
    """The control: without TunedSyncObj's hooks a deferring journal is unsafe and every
    command is its own message, and the checks above see both."""
    with three_nodes(tmp_path, SyncObj) as nodes:
        run_load(nodes, bursts=10, per_burst=200)
        watches = [n.transport.watch for n in nodes]
        assert sum(w.unsynced_acks for w in watches) > 0
        for follower in [n for n in nodes if not n._isLeader()]:
            assert follower.transport.watch.messages_with_entries >= 10 * 200
