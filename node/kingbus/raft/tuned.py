"""pysyncobj 0.3.17's SyncObj with the leader and follower behaviour a binlog stream needs.

Each change overrides one (name-mangled) SyncObj method and keeps everything else of it; the
journal guard (`kingbus.raft.journal.check_pysyncobj_version`) pins the version these
internals belong to.

* Group commit: with a `DiskJournal` opened with ``group_commit``, records are synced at the
  two points where Raft counts on them (see "Durability" in `kingbus.raft.journal`): before a
  follower's acknowledgement leaves and before the leader's commit computation.
* Batched sends: the commands queued in one tick are appended first and sent together.
* Pipelining: a successful reply never moves a follower's next index backwards.
* A member that had no connection gets a fresh election timeout when its first connection
  comes up, so that it hears the leader before it may call an election.

A SyncObj whose journal has no ``sync``/``unsynced`` (pysyncobj's own journals) is left alone
by the group-commit hooks.
"""

from __future__ import annotations

from typing import Any

from pysyncobj import SyncObj
from pysyncobj.monotonic import monotonic as monotonic_time


class TunedSyncObj(SyncObj):  # type: ignore[misc]
    def _sync_journal(self) -> None:
        journal_ = self._SyncObj__raftLog
        if getattr(journal_, "unsynced", False):
            journal_.sync()

    def _onTick(self, timeToWait: float = 0.0) -> None:
        # The leader's commit computation, first thing in a tick, counts the leader's own log:
        # everything it appended since the last tick is synced before that.
        self._sync_journal()
        self._restart_election_timer_on_first_connection()
        super()._onTick(timeToWait)

    def _restart_election_timer_on_first_connection(self) -> None:
        """pysyncobj sets a member's election deadline when the SyncObj is built and calls
        an election at the first tick that finds any connection up once it has passed.  A
        member that took longer than the election timeout to start (loading its journal,
        catching up its store) or to reach its peers therefore called an election the moment
        its first connection came up, before the leader's next heartbeat could reach it --
        and its higher term deposed a healthy leader (seen in ~15 % of fresh clusters, and
        on every late restart of a member).  Its first connection now starts a fresh timeout:
        a leader that is alive is heard within one heartbeat; one that is not is replaced a
        timeout later, as Raft intends.  Safety is untouched: this only delays a candidacy.
        """
        connected = bool(self._SyncObj__connectedNodes)
        if connected and not getattr(self, "_kb_connected", False):
            self._SyncObj__raftElectionDeadline = monotonic_time() + self._SyncObj__generateRaftTimeout()
        self._kb_connected = connected

    def _SyncObj__sendNextNodeIdx(
        self, node: Any, reset: bool = False, nextNodeIdx: int | None = None, success: bool = False
    ) -> None:
        # A follower's acknowledgement: every entry it covers is on disk before it leaves.
        self._sync_journal()
        super()._SyncObj__sendNextNodeIdx(node, reset=reset, nextNodeIdx=nextNodeIdx, success=success)

    def _checkCommandsToApply(self) -> None:
        """pysyncobj's leader sends append_entries after every single command it appends
        (appendEntriesUseBatch=False), so each follower gets one message -- and makes one
        sync -- per entry.  Here the queued commands are appended first and sent together
        once, so a burst of entries reaches a follower in as few messages as its batch size
        allows, without waiting for the next heartbeat as appendEntriesUseBatch=True would.

        The per-command sends are deferred by shadowing the (name-mangled) method on the
        instance for the duration of the call; only the tick thread, which runs this, sends.
        """
        wanted: list[bool] = []
        self._SyncObj__sendAppendEntries = lambda: wanted.append(True)
        try:
            super()._checkCommandsToApply()
        finally:
            del self._SyncObj__sendAppendEntries
        if wanted:
            SyncObj._SyncObj__sendAppendEntries(self)

    def _SyncObj__onMessageReceived(self, node: Any, message: Any) -> None:
        """Keeps the leader's pipelining: pysyncobj 0.3.17 sets a follower's next index back to
        the position it just acknowledged on every successful reply, so everything still in
        flight is sent again (measured: followers received 2-5x the committed entries).  A
        successful reply may only move the next index forward; a failed one (a conflict, a
        lost message) still resets it exactly as before."""
        pipelined = (
            message.get("type") == "next_node_idx" and message.get("success") and not message.get("reset")
        )
        next_index = self._SyncObj__raftNextIndex
        before = next_index.get(node) if pipelined else None
        super()._SyncObj__onMessageReceived(node, message)
        if before is not None and self._isLeader() and next_index.get(node, before) < before:
            next_index[node] = before
