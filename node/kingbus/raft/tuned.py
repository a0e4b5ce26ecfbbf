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
* Apply is bounded per tick (`APPLY_BUDGET_SECONDS`): the rest waits for the next tick,
  which then does not wait in its poll, so heartbeats and replies keep flowing.
* Pre-vote (`kingbus.raft.prevote`): an election is called only after a majority said it
  could be won, so a member that was cut off does not depose a live leader when it returns.
* Flow control: the leader sends nothing more to a follower while what it already queued for
  that follower's connection exceeds `SEND_WINDOW_BYTES`, so a slow follower costs the
  leader a bounded buffer instead of a copy of everything it has not read yet.
* Silent followers are let go: the leader closes a follower connection it has heard nothing
  on for `connectionTimeout`, checked on the tick (`SILENCE_CHECK_SECONDS`).

A SyncObj whose journal has no ``sync``/``unsynced`` (pysyncobj's own journals) is left alone
by the group-commit hooks.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pysyncobj import SyncObj
from pysyncobj.monotonic import monotonic as monotonic_time
from pysyncobj.syncobj import _RAFT_STATE
from pysyncobj.tcp_connection import CONNECTION_STATE

from kingbus.raft import prevote

log = logging.getLogger(__name__)

# A tick (or the gap between two) longer than this share of the shortest election timeout
# delays heartbeats enough to risk an election: worth a warning (at most one per period).
SLOW_TICK_SHARE = 0.5
SLOW_TICK_REPORT_SECONDS = 10.0
# How long one tick may spend applying committed entries.  pysyncobj applies everything
# committed in one go; under a burst a leader applied 22 entries (~7000 transactions) in
# 0.67 s of one tick, its followers heard no heartbeat meanwhile, and one of them called an
# election (measured: 2-3 elections in a 7 s small-transaction benchmark).
APPLY_BUDGET_SECONDS = 0.05
_APPLY_STEP = 2  # entries per step: a step is the unit the budget is checked against
# How much the leader may have queued, unsent, for one follower's connection before it stops
# adding append_entries for that follower.  pysyncobj sends every entry from a follower's next
# index on, each time it sends, whatever the connection still holds: a follower that reads
# slower than the source writes (a slow disk, a busy machine) grew the leader's buffer by the
# difference, without limit.  The message that crosses the window is still queued, so the
# queue stays under the window plus one message (appendEntriesBatchSizeBytes, which pysyncobj
# exceeds by the entry that crosses it).  The window is bytes the kernel could not take yet:
# the socket's own buffer (sendBufferSize) comes first.
SEND_WINDOW_BYTES = 16 * 1024 * 1024
# How often the leader looks for follower connections silent for longer than connectionTimeout.
# pysyncobj checks a connection's silence only when it sends on it or the poller reports it,
# and flow control stops both for a follower that stopped reading: a follower that vanished
# without a reset (its pod deleted, its Kubernetes node lost) stayed "connected" with a full
# queue until the kernel gave up retransmitting (~15 min), so the leader never dialled the
# member's new address (seen on a kind cluster). A connection still being established counts
# too: a SYN to a vanished address is otherwise retried by the kernel for ~2 min.
SILENCE_CHECK_SECONDS = 0.5


def describe_stall(seconds: float, phases: dict[str, float]) -> str:
    """ "0.937 s (apply 0.050, send 0.040, ..., messages and the rest 0.847)": where a long
    tick went, the phases measured in it and what is left (pysyncobj's message handling in its
    poll, compaction's own work, elections)."""
    parts = [f"{name} {spent:.3f}" for name, spent in sorted(phases.items()) if spent >= 0.0005]
    rest = max(0.0, seconds - sum(phases.values()))
    return f"{seconds:.3f} s ({', '.join([*parts, f'messages and the rest {rest:.3f}'])})"


class TunedSyncObj(SyncObj):  # type: ignore[misc]
    _SyncObj__raftCommitIndex: int  # pysyncobj's, written by the bounded apply below
    # Pre-vote state (tick thread only): this member's current round, whether it was won,
    # how many rounds it started, and when it last heard from a current leader.
    _kb_pre_vote: prevote.Round | None = None
    _kb_pre_vote_won = False
    _kb_pre_vote_rounds = 0
    _kb_leader_heard: float | None = None
    # Flow control (tick thread only): sends to a follower skipped because its connection's
    # queue was over the window.
    kb_send_window_bytes = SEND_WINDOW_BYTES
    _kb_sends_held = 0
    _kb_held_now: set[Any] = set()  # followers out of pysyncobj's connected set for one send
    # Silent followers (tick thread only): when the leader last looked, connections it closed.
    _kb_silence_checked = 0.0
    _kb_silent_closed = 0

    def kb_store_behind(self) -> bool:
        """The state machine's store is being brought up to a snapshot it is behind on
        (`kingbus.raft.cluster`, in the background): committed entries wait to be applied and
        this member does not campaign.  Overridden by the Kingbus member."""
        return False

    def _kb_applied_own_term(self) -> bool:
        """A leader has applied the no-op pysyncobj appends when it is elected: everything
        committed under earlier terms is in its state machine, so that state is current."""
        noop = self._SyncObj__noopIDx
        return bool(self._isLeader()) and noop is not None and self._SyncObj__raftLastApplied >= noop

    def _sync_journal(self) -> None:
        journal_ = self._SyncObj__raftLog
        if getattr(journal_, "unsynced", False):
            began = time.monotonic()
            journal_.sync()
            self.kb_phase("journal sync", time.monotonic() - began)

    def _onTick(self, timeToWait: float = 0.0) -> None:
        started = time.monotonic()
        previous_end = getattr(self, "_kb_tick_end", started)
        self._kb_phases: dict[str, float] = {}
        if self._SyncObj__raftLastApplied < self._SyncObj__raftCommitIndex and not self.kb_store_behind():
            timeToWait = 0.0  # committed entries left over by the apply budget: go on at once
        # The leader's commit computation, first thing in a tick, counts the leader's own log:
        # everything it appended since the last tick is synced before that.
        self._sync_journal()
        self._restart_election_timer_on_first_connection()
        self._pre_vote_before_election()
        super()._onTick(timeToWait)
        ended = time.monotonic()
        self._close_silent_follower_connections(ended)
        self._kb_tick_end = ended
        # The poll at the end of a tick waits up to timeToWait: that part is not work.
        self._note_stall(max(ended - started - timeToWait, started - previous_end), ended)

    def _close_silent_follower_connections(self, now: float) -> None:
        if not self._isLeader() or now - self._kb_silence_checked < SILENCE_CHECK_SECONDS:
            return
        self._kb_silence_checked = now
        for node, connection in list(self._SyncObj__transport._connections.items()):
            if connection.state == CONNECTION_STATE.DISCONNECTED:
                continue
            connection._TcpConnection__processConnectionTimeout()  # disconnects if silent
            if connection.state == CONNECTION_STATE.DISCONNECTED:
                self._kb_silent_closed += 1
                log.warning(
                    "closed the connection to %s: nothing received from it for %.1f s",
                    node.id,
                    self._SyncObj__conf.connectionTimeout,
                )

    def kb_phase(self, name: str, seconds: float) -> None:
        """Time this tick spent in one of its phases (the stall report names them)."""
        phases = self.__dict__.setdefault("_kb_phases", {})
        phases[name] = phases.get(name, 0.0) + seconds

    def _note_stall(self, seconds: float, now: float) -> None:
        if seconds > SLOW_TICK_SHARE * self._SyncObj__conf.raftMinTimeout:
            self._kb_stalls = getattr(self, "_kb_stalls", 0) + 1
            if seconds > getattr(self, "_kb_longest_stall", 0.0):
                self._kb_longest_stall = seconds
                self._kb_longest_phases = dict(getattr(self, "_kb_phases", {}))
        # Reported once a report period has passed, also when no stall follows (a last stall
        # before an election is what matters most).
        if getattr(self, "_kb_stalls", 0) and now - getattr(self, "_kb_stall_reported", 0.0) >= (
            SLOW_TICK_REPORT_SECONDS
        ):
            log.warning(
                "Raft tick thread stalled %d time(s) since the last report, longest %s "
                "(heartbeats wait meanwhile; the shortest election timeout is %.3f s)",
                self._kb_stalls,
                describe_stall(self._kb_longest_stall, self._kb_longest_phases),
                self._SyncObj__conf.raftMinTimeout,
            )
            self._kb_stall_reported = now
            self._kb_stalls = 0
            self._kb_longest_stall = 0.0

    def _SyncObj__applyLogEntries(self) -> bool:
        """pysyncobj's apply, in steps, until the committed entries are applied or the tick's
        budget is spent.  pysyncobj reads the commit index once, at the start: each step
        shows it a commit index a few entries further and restores the real one after."""
        if self.kb_store_behind():
            return False  # they are applied once the store has what the snapshot describes
        commit = self._SyncObj__raftCommitIndex
        began = time.monotonic()
        try:
            return self._apply_within_budget(commit, began + APPLY_BUDGET_SECONDS)
        finally:
            self.kb_phase("apply", time.monotonic() - began)

    def _apply_within_budget(self, commit: int, deadline: float) -> bool:
        need_send = False
        while True:
            applied = self._SyncObj__raftLastApplied
            if applied >= commit:
                break
            self._kb_commit_index = commit  # what `raftCommitIndex` reports meanwhile
            self._SyncObj__raftCommitIndex = min(commit, applied + _APPLY_STEP)
            try:
                need_send = bool(SyncObj._SyncObj__applyLogEntries(self)) or need_send
            finally:
                self._SyncObj__raftCommitIndex = commit
                self._kb_commit_index = 0
            if self._SyncObj__raftLastApplied == applied or time.monotonic() >= deadline:
                break  # no progress (pysyncobj refused an entry and logged why), or out of time
        return need_send

    @property
    def raftCommitIndex(self) -> int:
        """The commit index, also while an apply step shows pysyncobj a lower one."""
        return max(int(self._SyncObj__raftCommitIndex), getattr(self, "_kb_commit_index", 0))

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

    # ------------------------------------------------------------------ pre-vote
    def _own_log_position(self) -> prevote.LogPosition:
        return prevote.LogPosition(self._SyncObj__getCurrentLogTerm(), self._SyncObj__getCurrentLogIndex())

    def _pre_vote_before_election(self) -> None:
        """Runs before pysyncobj's tick, which calls an election once the election deadline
        has passed. Unless a pre-vote round was just won, a passed deadline starts a round
        instead and is moved one timeout on; a won round sets it back to 0, and the tick
        after that calls the election. No round for a single member or when the leader
        handed over (TimeoutNow: the others expect that election); no election at all while
        this member's store is behind (`kb_store_behind`)."""
        if self._SyncObj__raftState == _RAFT_STATE.LEADER or self._SyncObj__selfNode is None:
            return
        now = monotonic_time()
        if self._SyncObj__raftElectionDeadline >= now:
            return
        others = list(self._SyncObj__otherNodes)
        if others and self.kb_store_behind():
            # A leader whose store lacks committed data could not serve or resume the source
            # until its catch-up ends; it still votes, so a majority can elect someone else.
            # Not even a leader's hand-over (TimeoutNow) makes it campaign: the transfer
            # fails and the leader stays.
            self._SyncObj__transferInProgress = False
            self._SyncObj__raftElectionDeadline = now + self._SyncObj__generateRaftTimeout()
            return
        if not others or self._SyncObj__transferInProgress:
            return
        if self._kb_pre_vote_won:
            self._kb_pre_vote_won = False
            return
        if not self._SyncObj__connectedToAnyone():
            return  # pysyncobj waits for a connection before an election too
        self._SyncObj__raftElectionDeadline = now + self._SyncObj__generateRaftTimeout()
        round_id = self._kb_pre_vote_rounds + 1
        self._kb_pre_vote_rounds = round_id
        self._kb_pre_vote = prevote.Round(round_id, voters=len(others) + 1)
        term = self._SyncObj__raftCurrentTerm + 1
        for node in others:
            self._SyncObj__transport.send(node, prevote.request(round_id, term, self._own_log_position()))

    def _answer_pre_vote(self, node: Any, message: dict[str, Any]) -> None:
        if self._SyncObj__selfNode is None:
            return  # a read-only member has no vote
        heard = self._kb_leader_heard
        granted = prevote.grants(
            candidate=prevote.candidate_position(message),
            own=self._own_log_position(),
            is_leader=bool(self._isLeader()),
            seconds_since_leader=None if heard is None else monotonic_time() - heard,
            min_election_timeout=self._SyncObj__conf.raftMinTimeout,
        )
        reply = prevote.reply(message["round"], self._SyncObj__raftCurrentTerm, granted)
        self._SyncObj__transport.send(node, reply)

    def _count_pre_vote(self, node: Any, message: dict[str, Any]) -> None:
        if self._SyncObj__raftState == _RAFT_STATE.LEADER:
            return  # a late reply
        term = int(message.get("term", 0))
        if term > self._SyncObj__raftCurrentTerm:
            # As for any Raft reply with a higher term: adopt it (without a vote or a leader),
            # so that the next campaign is not refused as stale.
            self._SyncObj__setCurrentTerm(term, None)
            self._SyncObj__raftLeader = None
            self._SyncObj__setState(_RAFT_STATE.FOLLOWER)
        current = self._kb_pre_vote
        if current is not None and current.count(node, message):
            log.info(
                "pre-vote won (%d of %d members): calling an election",
                len(current.granted) + 1,
                current.voters,
            )
            self._kb_pre_vote = None
            self._kb_pre_vote_won = True
            self._SyncObj__raftElectionDeadline = 0

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
        self._SyncObj__sendAppendEntries = lambda: wanted.append(True)  # type: ignore[method-assign]
        began = time.monotonic()
        try:
            super()._checkCommandsToApply()
        finally:
            del self._SyncObj__sendAppendEntries
            self.kb_phase("append", time.monotonic() - began)
        if wanted:
            self._SyncObj__sendAppendEntries()

    # ------------------------------------------------------------------ flow control
    def _queued_bytes(self, node: Any) -> int:
        """Bytes the leader queued for `node` that its connection could not send yet."""
        connection = self._SyncObj__transport._connections.get(node)
        return 0 if connection is None else len(connection._TcpConnection__writeBuffer)

    def _over_window(self, node: Any) -> bool:
        return self._queued_bytes(node) >= self.kb_send_window_bytes

    def _sending_snapshot_to(self, node: Any) -> bool:
        """A snapshot transfer to `node` is under way (pysyncobj cancels one whose follower is
        out of the connected set).  A follower that merely needs a snapshot is held like any
        other: before, it never was, and with the leader compacting past it again and again each
        send call started a new snapshot and added a batch of entries behind it (the queue
        grew to 45 MB with a 16 MiB window)."""
        return node in self._SyncObj__serializer._Serializer__transmissions

    def _is_connected(self, node: Any) -> bool:
        connection = self._SyncObj__transport._connections.get(node)
        return connection is not None and connection.state == CONNECTION_STATE.CONNECTED

    def _SyncObj__sendAppendEntries(self) -> None:
        """pysyncobj's send to every connected follower, but none to a follower whose queue is
        over the window, and no more to one once a message puts it over.

        pysyncobj's loop skips a follower that is not in its connected set and stops sending
        to one that leaves the set after a message (it checks, to notice a connection that
        broke): a held follower leaves the set for the length of the call and returns after
        it.  Nothing else reads the set meanwhile (the call runs on the tick thread).  A
        follower in the middle of a snapshot transfer is never held: pysyncobj would cancel it.
        A held follower still gets what is queued for it, which carries the leader's term and
        commit index as heartbeats do; the queue is bounded by the window plus one message."""
        began = time.monotonic()
        try:
            self._send_append_entries_within_window()
        finally:
            self.kb_phase("send", time.monotonic() - began)

    def _send_append_entries_within_window(self) -> None:
        if not self._isLeader():
            SyncObj._SyncObj__sendAppendEntries(self)
            return
        connected = self._SyncObj__connectedNodes
        transport = self._SyncObj__transport
        held = {node for node in connected if self._over_window(node) and not self._sending_snapshot_to(node)}
        send = transport.send

        def send_within_window(node: Any, message: dict[str, Any]) -> Any:
            sent = send(node, message)
            if node in connected and "serialized" not in message and self._over_window(node):
                held.add(node)
                connected.discard(node)
            return sent

        # Other threads ask isNodeConnected meanwhile (/status, /members' "healthy"): a held
        # follower is in `held` before it leaves the connected set and until it is back.
        self._kb_held_now = held
        connected.difference_update(held)
        transport.send = send_within_window  # on the instance, for this call only
        try:
            SyncObj._SyncObj__sendAppendEntries(self)
        finally:
            del transport.send
            self._kb_sends_held += len(held)
            connected.update(node for node in held if self._is_connected(node))
            self._kb_held_now = set()

    def isNodeConnected(self, node: Any) -> bool:
        """pysyncobj's answer, also for a follower that flow control holds out of the connected
        set for the length of one send (it is connected: it is being sent what is queued)."""
        return bool(super().isNodeConnected(node)) or node in self._kb_held_now

    def _SyncObj__onMessageReceived(self, node: Any, message: Any) -> None:
        """Keeps the leader's pipelining: pysyncobj 0.3.17 sets a follower's next index back to
        the position it just acknowledged on every successful reply, so everything still in
        flight is sent again (measured: followers received 2-5x the committed entries).  A
        successful reply may only move the next index forward; a failed one (a conflict, a
        lost message) still resets it exactly as before.

        Also the pre-vote messages, which pysyncobj does not know, are answered and counted
        here, and an append_entries of a current leader is noted (the pre-vote lease)."""
        kind = message.get("type")
        if kind == prevote.REQUEST:
            self._answer_pre_vote(node, message)
            return
        if kind == prevote.REPLY:
            self._count_pre_vote(node, message)
            return
        if kind == "append_entries" and message.get("term", -1) >= self._SyncObj__raftCurrentTerm:
            self._kb_leader_heard = monotonic_time()  # a current leader is alive
            self._kb_pre_vote = None
            self._kb_pre_vote_won = False
        pipelined = kind == "next_node_idx" and message.get("success") and not message.get("reset")
        next_index = self._SyncObj__raftNextIndex
        before = next_index.get(node) if pipelined else None
        super()._SyncObj__onMessageReceived(node, message)
        if before is not None and self._isLeader() and next_index.get(node, before) < before:
            next_index[node] = before
