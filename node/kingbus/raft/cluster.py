"""The pysyncobj adapter: one Raft member holding the binlog state machine.

pysyncobj (pinned to 0.3.17) provides elections, log replication, membership changes and
snapshot transfer.  Kingbus supplies around it what it lacks (see notes/python-libraries.md):

* the journal: `kingbus.raft.journal` (on disk, checksummed, fsync before acknowledging,
  Raft-correct truncation), installed through pysyncobj's `createJournal` seam;
* `kingbus.raft.tuned.TunedSyncObj`: group commit (one fsync per received batch, one per
  leader tick), batched sends and pipelining that survives acknowledgements;
* snapshots that are *manifests*, not images: at log compaction the store is checkpointed and
  a small file records the applied entry, the member list and the replicated state.  A member
  that receives a manifest it is behind on copies the missing segment bytes from a peer
  (`catch_up` callback) before it goes on; nothing ever rewrites or holds the whole store;
* bounded entries: the syncer never proposes more than `entry_bytes`, kept far below
  pysyncobj's `appendEntriesBatchSizeBytes`, so its broken single-large-entry path is never
  taken, and the socket buffers are at least as large as a batch;
* a password, always (pysyncobj unpickles what its transport receives).

All pysyncobj calls happen here; the rest of the node sees `RaftMember`.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pysyncobj import FAIL_REASON, SyncObjConf, replicated
from pysyncobj.config import SERIALIZER_STATE  # noqa: F401  (documented dependency)

from kingbus.binlog.gtids import GtidSet
from kingbus.raft import compaction, entries, journal, peer_dns, transport
from kingbus.raft.statemachine import ReplicatedState, StateMachine
from kingbus.raft.tuned import TunedSyncObj

log = logging.getLogger(__name__)

_STATE_NAMES = {0: "follower", 1: "candidate", 2: "leader"}
MANIFEST_VERSION = 1
CATCH_UP_RETRY_SECONDS = (1.0, 30.0)  # first and longest wait between failed catch-ups


class RaftError(Exception):
    """A Raft operation did not succeed; `reason` says why in words. `nothing_done`: the
    entry is certainly not in the log and never will be (asking again cannot apply it twice)."""

    def __init__(self, reason: str, *, nothing_done: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.nothing_done = nothing_done


class NotLeaderError(RaftError):
    pass


@dataclass(frozen=True, slots=True)
class RaftOptions:
    address: str
    listen: str
    peers: tuple[str, ...]
    password: str
    data_dir: Path
    fsync: bool = True
    entry_bytes: int = 2 * 1024 * 1024
    election_timeout: tuple[float, float] = (0.4, 1.4)
    journal_segment_bytes: int = 64 * 1024 * 1024
    compaction_bytes: int = 64 * 1024 * 1024
    compaction_seconds: int = 60


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a snapshot file holds (pickled; read only by members sharing the Raft password)."""

    version: int
    last_entry: Any  # pysyncobj's (command, idx, term) of the last applied entry
    prev_entry: Any
    cluster: Any  # pysyncobj's set of nodes
    state: dict[str, Any]
    committed_gtids: str


class _KeptTailFilter(logging.Filter):
    """pysyncobj logs CRITICAL "truncating already-applied log entries" whenever an
    append_entries overlaps a follower's log -- in normal operation, several times a minute
    under load.  Kingbus's journal does not truncate identical entries (see
    kingbus.raft.journal), so the message describes something that does not happen; it is
    kept, at DEBUG, with that explanation, instead of alarming operators.  A real cut at a
    conflicting term is logged by the journal, at CRITICAL if it reaches a committed entry."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and record.getMessage() == "Failed to store full dump":
            # Our serializer logs real failures itself; what is left is a postponed snapshot.
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger("pysyncobj.syncobj").isEnabledFor(logging.DEBUG)
        if record.levelno == logging.CRITICAL and "truncating already-applied" in record.getMessage():
            original = record.getMessage()
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            record.msg = "%s (the journal keeps identical entries and logs any real cut itself)"
            record.args = (original,)
            return logging.getLogger("pysyncobj.syncobj").isEnabledFor(logging.DEBUG)
        return True


logging.getLogger("pysyncobj.syncobj").addFilter(_KeptTailFilter())


RECENT_ENTRY_BYTES = 48 * 1024 * 1024


# pysyncobj 0.3.17's failures that leave nothing behind: the command was never appended
# (queue full, no leader, not the leader), or its log slot was taken by another leader's entry
# (DISCARDED, reported when that slot is applied). LEADER_CHANGED is not among them: it ends
# a wait for a forwarded command whose fate is unknown.
_NOTHING_DONE = frozenset(
    {FAIL_REASON.QUEUE_FULL, FAIL_REASON.MISSING_LEADER, FAIL_REASON.NOT_LEADER, FAIL_REASON.DISCARDED}
)


def nothing_done(code: int) -> bool:
    return code in _NOTHING_DONE


def _fail_text(code: int) -> str:
    names = {
        FAIL_REASON.QUEUE_FULL: "the Raft command queue is full",
        FAIL_REASON.MISSING_LEADER: "there is no Raft leader",
        FAIL_REASON.DISCARDED: "the entry was discarded by a leader change",
        FAIL_REASON.NOT_LEADER: "this member is not the Raft leader",
        FAIL_REASON.LEADER_CHANGED: "the Raft leader changed",
        FAIL_REASON.REQUEST_DENIED: "the Raft leader refused the request",
    }
    return names.get(code, f"Raft failure code {code}")


class _KingbusSyncObj(TunedSyncObj):
    def __init__(self, member: RaftMember, *args: Any, **kwargs: Any) -> None:
        self._member = member
        super().__init__(*args, **kwargs)

    def kb_store_behind(self) -> bool:
        return self._member.store_behind()

    @replicated  # type: ignore[untyped-decorator]
    def apply_entry(self, value: int | bytes, length: int | None = None) -> None:
        self._member._apply(entries.unpack_payload(value, length))


class RaftMember:
    def __init__(
        self,
        options: RaftOptions,
        machine: StateMachine,
        *,
        catch_up: Callable[[GtidSet], None],
    ) -> None:
        self.options = options
        self.machine = machine
        self._catch_up = catch_up
        self._state_lock = threading.Lock()
        # What the store must reach before entries after an installed snapshot are applied;
        # a background thread copies it from peers (`_catch_up_in_background`).
        self._catch_up_lock = threading.Lock()
        self._catch_up_target: GtidSet | None = None
        self._stopping = threading.Event()
        # Snapshots taken here, and how long their store checkpoint held the tick thread.
        self.snapshots = 0
        self._last_compaction = time.monotonic()  # of the last compaction this member asked for
        self.checkpoint_seconds_last = 0.0
        self.checkpoint_seconds_max = 0.0
        self.checkpoint_seconds_total = 0.0
        raft_dir = options.data_dir / "raft"
        raft_dir.mkdir(parents=True, exist_ok=True)
        self._snapshot_path = raft_dir / "snapshot"
        batch_bytes = max(4 * options.entry_bytes, 1 << 20)
        buffer_bytes = 2 * batch_bytes
        transport.install()
        peer_dns.install()
        journal.install_journal_factory(
            journal.JournalOptions(
                fsync=options.fsync,
                segment_bytes=options.journal_segment_bytes,
                # Every entry is read three times after it is written: sent to each follower,
                # read for its term when the leader's commit index passes it, read again to be
                # applied.  The cache covers the syncer's whole pipeline (32 MiB of proposals
                # waiting for commit) plus a batch, so none of these reads goes to disk and
                # re-checks a CRC (measured with 16 MiB: ~20% of a leader's tick thread on
                # 1 MB transactions).  Bounded: memory does not grow with the log.
                recent_bytes=RECENT_ENTRY_BYTES,
                group_commit=True,
            )
        )
        conf = SyncObjConf(
            password=options.password,
            journalFile=str(raft_dir / "journal"),
            fullDumpFile=str(self._snapshot_path),
            serializer=self._write_manifest,
            deserializer=self._read_manifest,
            dynamicMembershipChange=True,
            appendEntriesUseBatch=False,
            appendEntriesPeriod=0.05,
            autoTickPeriod=0.02,
            appendEntriesBatchSizeBytes=batch_bytes,
            sendBufferSize=buffer_bytes,
            recvBufferSize=buffer_bytes,
            raftMinTimeout=options.election_timeout[0],
            raftMaxTimeout=options.election_timeout[1],
            connectionTimeout=max(3.5, options.election_timeout[1] * 2),
            # Only one side of each pair dials (pysyncobj: the greater address). With the
            # default 5 s between attempts, a member that started (or came back) a moment
            # after its peer tried it stays unreachable for seconds: its own timer fires,
            # and without pre-vote its higher term deposes a healthy leader, again and again
            # until the next dial. Dialling as often as an election can start closes that gap.
            connectionRetryTime=options.election_timeout[0],
            leaderFallbackTimeout=max(10.0, options.election_timeout[1] * 5),
            logCompactionMinEntries=1_000_000_000,  # compaction is decided by _compact_when_due
            # Compaction by time too is decided by `_compact_when_due`: pysyncobj's own time
            # trigger ignores followers that still need the entries it drops.
            logCompactionMinTime=10**9,
            bindAddress=options.listen,
            commandsQueueSize=10_000,
        )
        self._obj = _KingbusSyncObj(self, options.address, list(options.peers), conf)
        self._journal = journal.attach_to_syncobj(self._obj)
        # Calls that touch pysyncobj's Raft state or its transport must run on its tick
        # thread: they are queued here and run by `_on_tick`.
        self._on_tick_thread: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._obj.addOnTickCallback(self._on_tick)

    # ------------------------------------------------------------------ apply (tick thread)
    def _apply(self, payload: bytes) -> None:
        self.machine.apply(payload)

    def _on_tick(self) -> None:
        while True:
            try:
                task = self._on_tick_thread.get_nowait()
            except queue.Empty:
                break
            task()
        self._compact_when_due()

    def _compact_when_due(self) -> None:
        """Compaction by journal size and by time (`kingbus.raft.compaction`). Not while a
        chunked transaction is half applied, nor while the store catches up to a snapshot:
        the snapshot would be refused."""
        if self._journal is None or self.machine.in_chunk or self.store_behind():
            return
        now = time.monotonic()
        limit = self.options.compaction_bytes
        if not compaction.wanted(
            journal_bytes=self._journal.compactable_bytes(self.last_applied()),
            limit_bytes=limit,
            seconds_since_last=now - self._last_compaction,
            interval_seconds=self.options.compaction_seconds,
        ):
            return
        leader = self.is_leader()
        lags = leader and self._a_follower_lags()  # reads pysyncobj's status: only when wanted
        size = self._journal.bytes_on_disk()
        if compaction.held_off(journal_bytes=size, limit_bytes=limit, is_leader=leader, follower_lags=lags):
            return
        # Also when pysyncobj then finds nothing new to compact: one attempt per interval.
        self._last_compaction = now
        self._obj.forceLogCompaction()

    def _a_follower_lags(self) -> bool:
        status = self.status()
        applied = int(status["last_applied"])
        for node in self._obj.otherNodes:
            if not self._obj.isNodeConnected(node):
                continue  # a disconnected follower catches up from a snapshot anyway
            if int(status.get("match_idx_server_" + node.id, 0)) < applied:
                return True
        return False

    # ------------------------------------------------------------------ snapshots (tick thread)
    def _write_manifest(self, file_name: str, data: Any) -> None:
        if self.machine.in_chunk:
            # The manifest must describe a store with no half-staged transaction; pysyncobj
            # retries the compaction later (and logs "Failed to store full dump", see below).
            raise RaftError("a chunked transaction is being applied; snapshot postponed")
        if self.store_behind():
            # It would record the installed snapshot's entry with a store that lacks part of
            # it: after a restart nothing would tell that the copy is unfinished.
            raise RaftError("the store is catching up to a snapshot; snapshot postponed")
        try:
            self._write_manifest_now(file_name, data)
        except Exception:
            log.exception("writing the snapshot manifest failed")
            raise

    def _write_manifest_now(self, file_name: str, data: Any) -> None:
        last_entry, prev_entry, cluster = data
        started = time.monotonic()
        self.machine.store.checkpoint()
        # On the tick thread: while it runs this member neither heartbeats nor answers.
        took = time.monotonic() - started
        self._obj.kb_phase("checkpoint", took)
        self.snapshots += 1
        self.checkpoint_seconds_last = took
        self.checkpoint_seconds_max = max(self.checkpoint_seconds_max, took)
        self.checkpoint_seconds_total += took
        if took > 0.5:
            log.warning("the snapshot's store checkpoint held Raft's tick thread for %.2f s", took)
        manifest = Manifest(
            version=MANIFEST_VERSION,
            last_entry=last_entry,
            prev_entry=prev_entry,
            cluster=cluster,
            state=self.machine.state.to_json(),
            committed_gtids=str(self.machine.store.committed_gtids),
        )
        with open(file_name, "wb") as f:
            pickle.dump(manifest, f, protocol=4)
            f.flush()
            os.fsync(f.fileno())

    def _read_manifest(self, file_name: str) -> tuple[Any, Any, Any]:
        with open(file_name, "rb") as f:
            manifest: Manifest = pickle.load(f)
        if manifest.version != MANIFEST_VERSION:
            raise RaftError(f"snapshot version {manifest.version} is not supported")
        # The replicated state first: it names the members a catch-up can copy from.
        self.machine.state = ReplicatedState.from_json(manifest.state)
        wanted = GtidSet.parse(manifest.committed_gtids)
        if not wanted.issubset(self.machine.store.committed_gtids):
            # Behind the snapshot: the missing data is copied from a peer before anything
            # after the snapshot is applied.
            self._catch_up_in_background(wanted)
        return manifest.last_entry, manifest.prev_entry, manifest.cluster

    # ------------------------------------------------------------------ catch-up (own thread)
    def store_behind(self) -> bool:
        """The store lacks data of an installed snapshot; it is being copied from peers."""
        return self._catch_up_target is not None

    def _catch_up_in_background(self, wanted: GtidSet) -> None:
        """Called on the tick thread.  Copying can take minutes (hundreds of megabytes over a
        slow link): on the tick thread this member answered neither heartbeats nor votes
        meanwhile (measured: 14 s stalls) and, once back, granted a pre-vote on its stale view
        of the leader.  While the copy runs, entries after the snapshot are still received,
        journaled and acknowledged; they are applied once the store has caught up (the apply
        waits on `store_behind`, and so do this member's snapshots and campaigns)."""
        with self._catch_up_lock:
            running = self._catch_up_target
            self._catch_up_target = wanted if running is None else running.union(wanted)
        if running is None:
            log.info("store behind the installed snapshot: catching up from peers in the background")
            threading.Thread(target=self._run_catch_up, name="kingbus-catch-up", daemon=True).start()

    def _run_catch_up(self) -> None:
        delay = CATCH_UP_RETRY_SECONDS[0]
        while not self._stopping.is_set():
            with self._catch_up_lock:
                target = self._catch_up_target
                if target is None or target.issubset(self.machine.store.committed_gtids):
                    self._catch_up_target = None  # the tick thread applies again
                    log.info("store caught up with the installed snapshot")
                    return
            try:
                self._catch_up(target)
                delay = CATCH_UP_RETRY_SECONDS[0]
            except Exception as exc:  # any failure is retried; the reason is logged
                log.warning("catch-up from peers failed, retrying in %.0f s: %s", delay, exc)
                self._stopping.wait(delay)
                delay = min(delay * 2, CATCH_UP_RETRY_SECONDS[1])

    # ------------------------------------------------------------------ proposals
    def propose(self, payload: bytes, callback: Callable[[str | None], None]) -> None:
        """Proposes one entry; `callback(None)` once it is applied here, or `callback(reason)`."""

        def done(_result: Any, error: int) -> None:
            callback(None if error == FAIL_REASON.SUCCESS else _fail_text(error))

        self._obj.apply_entry(payload, callback=done)

    def propose_and_wait(self, payload: bytes, timeout: float = 10.0) -> None:
        done = threading.Event()
        outcome: list[int] = []

        def callback(_result: Any, error: int) -> None:
            outcome.append(error)
            done.set()

        self._obj.apply_entry(payload, callback=callback)
        if not done.wait(timeout):
            raise RaftError(f"no Raft commit within {timeout:.0f}s")
        if outcome[0] != FAIL_REASON.SUCCESS:
            raise RaftError(_fail_text(outcome[0]), nothing_done=nothing_done(outcome[0]))

    # ------------------------------------------------------------------ membership
    def _call(
        self,
        what: str,
        fn: Callable[..., None],
        *args: Any,
        timeout: float = 10.0,
        on_tick_thread: bool = False,
    ) -> None:
        """Calls a pysyncobj method that reports through a callback and waits for the answer.

        `on_tick_thread` is for methods that are not thread-safe: `transferLeadership` reads
        the match indexes and writes to the transport directly, so called from another thread
        it races the tick thread (seen: a BufferError in the transport's send buffer)."""
        done = threading.Event()
        outcome: list[int] = []

        def callback(_result: Any, error: int) -> None:
            outcome.append(error)
            done.set()

        if on_tick_thread:
            self._on_tick_thread.put(lambda: fn(*args, callback=callback))
        else:
            fn(*args, callback=callback)
        if not done.wait(timeout):
            raise RaftError(f"{what}: no answer within {timeout:.0f}s")
        if outcome[0] != FAIL_REASON.SUCCESS:
            raise RaftError(f"{what}: {_fail_text(outcome[0])}")

    def add_member(self, raft_address: str) -> None:
        self._require_leader()
        self._call(f"adding {raft_address}", self._obj.addNodeToCluster, raft_address)

    def remove_member(self, raft_address: str) -> None:
        self._require_leader()
        self._call(f"removing {raft_address}", self._obj.removeNodeFromCluster, raft_address)

    def transfer_leadership(self, to: str | None, timeout: float = 10.0) -> None:
        """Moves leadership away and returns only once another member leads.

        pysyncobj's TimeoutNow is best-effort and is refused while the target has not matched
        the leader's last entry -- under a steady stream that can take a few tries -- so the
        request is repeated until leadership moved or `timeout` passed.
        """
        self._require_leader()
        if to == self.options.address:
            return  # already there: a request forwarded to the member it names has nothing to do
        deadline = time.monotonic() + timeout
        last_error = "no attempt"
        while time.monotonic() < deadline:
            if not self.is_leader():
                leader = self.leader()
                if leader not in (None, self.options.address) and to in (None, leader):
                    return
            else:
                try:
                    self._call(
                        "leader transfer", self._obj.transferLeadership, to, timeout=2.0, on_tick_thread=True
                    )
                    last_error = (
                        "the target did not take over (a member whose store is still catching up never does)"
                    )
                    # Give the election triggered by TimeoutNow time to finish before asking again.
                    settle = time.monotonic() + 2 * self.options.election_timeout[1]
                    while time.monotonic() < min(settle, deadline) and self.is_leader():
                        time.sleep(0.05)
                except RaftError as exc:
                    last_error = f"{exc.reason} ({self._replication_progress()})"
            time.sleep(0.1)
        raise RaftError(f"leadership did not move within {timeout:.0f}s: {last_error}")

    def _replication_progress(self) -> str:
        """What a refused transfer needs to explain itself: each follower's matched index
        against the leader's last one (a target must have matched it) and its connection."""
        status = self.status()
        parts = [f"commit index {status['commit_idx']}"]
        for node in list(self._obj.otherNodes):
            matched = status.get("match_idx_server_" + node.id, "?")
            next_index = status.get("next_node_idx_server_" + node.id, "?")
            connected = "connected" if self._obj.isNodeConnected(node) else "disconnected"
            parts.append(f"{node.address} matched {matched} next {next_index} {connected}")
        return "; ".join(parts)

    def followers(self) -> list[dict[str, Any]]:
        """On the leader, each follower's replication: matched and next index, whether it is
        connected, and the bytes queued for it that its connection has not sent yet (held
        under the send window, `kingbus.raft.tuned`). Empty on a follower."""
        if not self.is_leader():
            return []
        status = self.status()
        return [
            {
                "raft": str(node.address),
                "connected": bool(self._obj.isNodeConnected(node)),
                "match_index": int(status.get("match_idx_server_" + node.id, 0)),
                "next_index": int(status.get("next_node_idx_server_" + node.id, 0)),
                "send_queue_bytes": self._obj._queued_bytes(node),
            }
            for node in sorted(self._other_nodes(), key=lambda n: str(n.address))
        ]

    def _other_nodes(self) -> list[Any]:
        """pysyncobj's set of the other members, copied from any thread (the tick thread
        changes it on membership changes; a copy that met one is made again)."""
        for _ in range(10):
            try:
                return list(self._obj.otherNodes)
            except RuntimeError:  # "Set changed size during iteration"
                time.sleep(0.001)
        return list(self._obj.otherNodes)

    def _require_leader(self) -> None:
        if not self.is_leader():
            raise NotLeaderError("this member is not the Raft leader")

    # ------------------------------------------------------------------ facts
    def status(self) -> dict[str, Any]:
        """pysyncobj's status dump, read from any thread.  It iterates dicts the tick thread
        changes on membership changes; a read that met such a change is simply read again."""
        for _ in range(10):
            try:
                return dict(self._obj.getStatus())
            except RuntimeError:  # "dictionary changed size during iteration"
                time.sleep(0.001)
        return dict(self._obj.getStatus())

    def role(self) -> str:
        return _STATE_NAMES.get(self.status()["state"], "follower")

    def is_leader(self) -> bool:
        return bool(self._obj._isLeader())

    def state_is_current(self) -> bool:
        """True on a leader whose applied state includes every entry of earlier terms (its
        election no-op is applied). Until then a read-modify-write could act on state the log
        has already superseded."""
        return self._obj._kb_applied_own_term()

    def leader(self) -> str | None:
        leader = self._obj._getLeader()
        return None if leader is None else str(leader.address if hasattr(leader, "address") else leader)

    def term(self) -> int:
        return int(self._obj.raftCurrentTerm)

    def pre_vote_rounds(self) -> int:
        """Pre-vote rounds this member started since it was started."""
        return int(self._obj._kb_pre_vote_rounds)

    def sends_held(self) -> int:
        """Times, as leader, this member held back sends to a follower over the send window."""
        return int(self._obj._kb_sends_held)

    def commit_index(self) -> int:
        return int(self._obj.raftCommitIndex)

    def last_applied(self) -> int:
        return int(self._obj.raftLastApplied)

    def member_addresses(self) -> list[str]:
        return sorted([self.options.address, *(n.address for n in self._obj.otherNodes)])

    def is_connected(self, address: str) -> bool:
        if address == self.options.address:
            return True
        return any(n.address == address and self._obj.isNodeConnected(n) for n in self._obj.otherNodes)

    def has_quorum(self) -> bool:
        return bool(self._obj.hasQuorum)

    def journal_stats(self) -> dict[str, int]:
        return self._journal.stats() if self._journal is not None else {}

    def snapshot_stats(self) -> dict[str, float]:
        return {
            "snapshots": self.snapshots,
            "checkpoint_seconds_last": round(self.checkpoint_seconds_last, 4),
            "checkpoint_seconds_max": round(self.checkpoint_seconds_max, 4),
            "checkpoint_seconds_total": round(self.checkpoint_seconds_total, 4),
        }

    def destroy(self) -> None:
        self._stopping.set()
        self._obj.destroy()
