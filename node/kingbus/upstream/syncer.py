"""The syncer: on the Raft leader only, replicate from the source into the Raft log.

Theory of operation
-------------------
One thread runs for the life of the node and starts a *session* whenever this member is the
leader and the replicated source configuration says the source is running:

1. The session gets a new id `(term, counter)` and proposes a `Barrier`.  Once the barrier is
   applied here, everything committed before it is in the local store too, so the store's
   committed GTID set is exactly what the cluster has (DESIGN invariant 5: resume from the
   committed set, never from a guess).
2. It connects to the source as a replica (`kingbus.upstream.client`), checks the source
   (GTID mode ON, ROW, CRC32 checksums), registers and dumps with COM_BINLOG_DUMP_GTID from
   that set.  Every event's CRC is verified; events become whole transactions
   (`kingbus.binlog.transactions`), transactions become bounded entries
   (`kingbus.upstream.batcher`), entries are proposed in order.
3. Entries are pipelined: up to `max_in_flight` proposals wait for commit at once.  A
   transaction is proposed at once while the pipeline has room (low latency when the source
   is quiet) and batched while it is full (throughput under load).  When the pipeline holds
   too many bytes the reader stops reading, which pushes back on the source's socket.
4. Any failure -- the source, the network, a proposal that is not committed, a lost
   leadership, a changed configuration -- ends the session; the next one starts from the
   committed set again.  Reconnects back off exponentially up to a cap, forever.

Semi-synchronous mode: when enabled and the source offers it, an event that asks for an
acknowledgement is acknowledged only after the entry that holds its transaction has been
committed by Raft and applied here -- never on receipt.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pymysql

from kingbus.binlog import control_events, errors, events
from kingbus.raft import entries
from kingbus.raft.cluster import RaftError, RaftMember
from kingbus.raft.secrets import SecretBox
from kingbus.raft.statemachine import StateMachine
from kingbus.upstream.backoff import Backoff
from kingbus.upstream.batcher import Batcher, SourceContext
from kingbus.upstream.client import ClosedHere, SourceConnection, SourceRefused
from kingbus.upstream.cutter import TxnCutter, TxnRun

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SyncerOptions:
    server_id: int
    replica_uuid: str
    entry_bytes: int = 2 * 1024 * 1024
    heartbeat_seconds: float = 1.0
    connect_timeout: float = 5.0
    max_in_flight: int = 16
    max_in_flight_bytes: int = 32 * 1024 * 1024
    report_host: str = ""
    report_port: int = 0


def replica_uuid_for(raft_password: str) -> str:
    """One replica UUID for the whole cluster: the source then ends a stale leader's dump
    as soon as a new leader connects (MySQL kills a dump with the same replica UUID)."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, "kingbus:" + raft_password))


_CHECK_SECONDS = 0.05
_HEARTBEATS = (int(events.EventType.HEARTBEAT), int(events.EventType.HEARTBEAT_V2))


class _SessionEnded(Exception):
    pass


class Syncer:
    def __init__(
        self,
        *,
        raft: RaftMember,
        machine: StateMachine,
        secrets: SecretBox,
        options: SyncerOptions,
        on_commit: Callable[[int, int], None] | None = None,
    ) -> None:
        self._raft = raft
        self._machine = machine
        self._secrets = secrets
        self._options = options
        self._on_commit = on_commit
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="syncer", daemon=True)
        self._counter = 0
        self._backoff = Backoff()
        # Status, read by the admin API.
        self.state = "stopped"
        self.error = ""
        self.attempts = 0  # connections opened to the source, for status and metrics
        self.tls_cipher = ""
        self._last_txn_ts = 0
        self._idle = True
        # Session state, shared between the reader and Raft callbacks.
        self._lock = threading.Condition()
        self._conn: SourceConnection | None = None
        self._batcher: Batcher | None = None
        self._in_flight = 0
        self._in_flight_bytes = 0
        self._failure: str | None = None
        self._ack_requests: dict[str, int] = {}
        self._acked_position: dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._close_connection()
        self._thread.join(timeout=10)

    def poke(self) -> None:
        """Re-read the configuration now (after a change of source or of leadership)."""
        self._wake.set()
        self._close_connection()

    def status(self) -> dict[str, object]:
        source = self._machine.state.source
        lag = 0.0
        if self.state == "streaming" and not self._idle and self._last_txn_ts:
            lag = max(0.0, time.time() - self._last_txn_ts)
        return {
            "host": source.host if source else "",
            "port": source.port if source else 0,
            "user": source.user if source else "",
            "tls_mode": source.tls if source else "",
            "state": self.state,
            "error": self.error,
            "lag_seconds": round(lag, 3),
            "attempts": self.attempts,
            "tls": bool(self.tls_cipher),
        }

    def pipeline(self) -> dict[str, int]:
        """Proposals waiting for commit (for status and debugging)."""
        with self._lock:
            return {
                "in_flight": self._in_flight,
                "in_flight_bytes": self._in_flight_bytes,
                "pending_bytes": self._batcher.pending_bytes if self._batcher else 0,
            }

    # ------------------------------------------------------------------ main loop
    def _run(self) -> None:
        while not self._stop.is_set():
            source = self._machine.state.source
            if source is None or not source.running or not self._raft.is_leader():
                self.state = "stopped"
                self.error = "" if source is None or source.running else "stopped by request"
                self._wake.wait(0.2)
                self._wake.clear()
                continue
            try:
                self._session(source)
                self._backoff.reset()
            except (_SessionEnded, ClosedHere) as exc:
                log.info("syncer session ended: %s", exc)
            except (SourceRefused, RaftError, errors.BinlogError, pymysql.err.MySQLError, OSError) as exc:
                self._retry_after(_describe(exc))
            except Exception as exc:  # a defect: keep pulling, but loudly, never die silently
                log.exception("syncer: unexpected error")
                self._retry_after(f"internal error: {type(exc).__name__}: {exc}")
            finally:
                self._close_connection()

    def _retry_after(self, error: str) -> None:
        self.state = "error"
        self.error = error
        delay = self._backoff.next_delay()
        log.warning("syncer: %s; retrying in %.1fs", error, delay)
        self._wake.wait(delay)
        self._wake.clear()

    def _still_wanted(self, source: entries.SourceConfig, term: int) -> bool:
        return (
            not self._stop.is_set()
            and self._raft.is_leader()
            and self._raft.term() == term
            and self._machine.state.source == source
        )

    def _session(self, source: entries.SourceConfig) -> None:
        term = self._raft.term()
        self._counter += 1
        session = entries.Session(term, self._counter)
        self.state = "connecting"
        self._raft.propose_and_wait(entries.encode(entries.Barrier(session)))
        if session not in self._machine.barriers_applied or not self._still_wanted(source, term):
            raise _SessionEnded("leadership or configuration changed before the session started")
        start = self._machine.store.committed_gtids
        self.attempts += 1
        conn = SourceConnection(
            host=source.host,
            port=source.port,
            user=source.user,
            password=self._secrets.open(source.password_enc),
            connect_timeout=self._options.connect_timeout,
            read_timeout=max(3.0, 3 * self._options.heartbeat_seconds),
            tls=source.tls,
            tls_ca=source.tls_ca,
        )
        with self._lock:
            self._conn = conn
            self._batcher = Batcher(session, self._options.entry_bytes)
            self._in_flight = 0
            self._in_flight_bytes = 0
            self._failure = None
        facts = conn.facts()
        self.tls_cipher = facts.tls_cipher
        _check_source(facts.gtid_mode, facts.binlog_format, facts.binlog_checksum)
        if facts.server_id == self._options.server_id:
            raise SourceRefused(
                f"the source's server_id {facts.server_id} equals this node's mysql.server_id; "
                "they must differ"
            )
        semi_sync = source.semi_sync and facts.semi_sync_available
        if source.semi_sync and not facts.semi_sync_available:
            log.warning("semi_sync requested but the source has rpl_semi_sync_source_enabled off")
        conn.prepare(
            replica_uuid=self._options.replica_uuid,
            heartbeat_seconds=self._options.heartbeat_seconds,
            semi_sync=semi_sync,
        )
        conn.register(
            server_id=self._options.server_id,
            report_host=self._options.report_host,
            report_port=self._options.report_port,
        )
        conn.dump_gtid(server_id=self._options.server_id, gtids=start)
        log.info("syncer session %s: dumping from %s:%d after %s", session, source.host, source.port, start)
        self._stream(conn, source, term)

    def _stream(self, conn: SourceConnection, source: entries.SourceConfig, term: int) -> None:
        cutter = TxnCutter()
        first = True
        # Whether this session is still wanted is checked every CHECK_SECONDS, not for every
        # transaction: it takes locks and compares the source configuration, and a session
        # that lost leadership cannot commit anything anyway (its proposals fail).
        next_check = 0.0
        while True:
            try:
                batch = conn.read_events()
            except ClosedHere:
                failure = self._failure  # a failed proposal closes the connection to stop us
                if failure is not None:
                    raise RaftError(failure) from None
                raise
            if batch is None:
                raise _SessionEnded("the source ended the binlog stream")
            if first:
                self.state = "streaming"
                self.error = ""
                self._backoff.reset()
                first = False
            for group in cutter.cut(batch):  # verifies every event's CRC32
                if isinstance(group, TxnRun):
                    for gtid, position in group.acks:  # the source asks on a transaction's last event
                        self._note_ack(gtid, group.context.source_file, position)
                    self._submit(group.txns, group.context)  # under one lock acquisition
                elif group.event_type in _HEARTBEATS:
                    with self._lock:
                        self._idle = self._in_flight == 0 and not (
                            self._batcher and self._batcher.pending_bytes
                        )
                    if conn.semi_sync and self._idle and not cutter.in_transaction:
                        self._acknowledge_heartbeat(conn, group.data)
                    next_check = 0.0
            now = time.monotonic()
            if now >= next_check:
                next_check = now + _CHECK_SECONDS
                if not self._still_wanted(source, term):
                    raise _SessionEnded("leadership or configuration changed")
            failure = self._failure  # set under the lock; reading one attribute needs none
            if failure is not None:
                raise RaftError(failure)

    def _acknowledge_heartbeat(self, conn: SourceConnection, event: bytes) -> None:
        """Semi-sync: acknowledge the position of a heartbeat when everything before it is
        committed here.

        A source sends a heartbeat at the end of the transactions it skipped because this
        cluster already has them, and when idle.  Acknowledging that position releases a
        commit the source is still waiting for although a previous leader already committed
        it through Raft (it crashed or lost leadership before acknowledging): the new
        session asks from the committed set, so that transaction is never sent again, and
        without this the source would wait for the whole semi-sync timeout.  The position is
        in the source's current file, so it is never mistaken across a change of source.
        """
        beat = control_events.decode_heartbeat(event, checksum=True)
        if beat.position > self._acked_position.get(beat.file, 0):
            self._acked_position = {beat.file: beat.position}
            try:
                conn.acknowledge(beat.file, beat.position)
            except OSError as exc:
                log.warning("semi-sync acknowledgement failed: %s", exc)

    # ------------------------------------------------------------------ proposals
    def _note_ack(self, gtid: str, source_file: str, position: int) -> None:
        with self._lock:
            self._ack_requests[gtid] = position
            self._ack_file = source_file

    def _submit(self, txns: list[entries.Txn], context: SourceContext) -> None:
        self._idle = False
        with self._lock:
            # Back-pressure: wait while the pipeline is over its byte budget.
            while self._in_flight_bytes > self._options.max_in_flight_bytes and self._failure is None:
                self._lock.wait(0.5)
                if self._stop.is_set():
                    raise _SessionEnded("stopping")
            batcher = self._batcher
            assert batcher is not None
            for entry in batcher.add_all(txns, context):
                self._propose_locked(entry)
            if self._in_flight < self._options.max_in_flight:
                for entry in batcher.flush():
                    self._propose_locked(entry)

    def _propose_locked(self, entry: entries.TxnBatch | entries.TxnChunk) -> None:
        payload = entries.encode(entry)
        self._machine.expect(entry, payload)
        gtids, newest_ts = _completed_by(entry)
        size = len(payload)
        self._in_flight += 1
        self._in_flight_bytes += size
        batcher = self._batcher

        def committed(reason: str | None) -> None:
            self._on_committed(batcher, size, gtids, newest_ts, reason)

        self._raft.propose(payload, committed)

    def _on_committed(
        self, batcher: Batcher | None, size: int, gtids: list[str], newest_ts: int, reason: str | None
    ) -> None:
        ack: tuple[str, int] | None = None
        with self._lock:
            if batcher is not self._batcher:
                return  # a callback of an ended session
            self._in_flight -= 1
            self._in_flight_bytes -= size
            if reason is not None:
                self._failure = f"a proposal was not committed: {reason}"
                self._lock.notify_all()
                conn = self._conn
                if conn is not None:
                    threading.Thread(target=conn.close, daemon=True).start()
                return
            if newest_ts:
                self._last_txn_ts = newest_ts
            positions = [self._ack_requests.pop(g) for g in gtids if g in self._ack_requests]
            if positions:
                ack = (self._ack_file, max(positions))
            if self._batcher is not None and self._in_flight < self._options.max_in_flight:
                for entry in self._batcher.flush():
                    self._propose_locked(entry)
            self._lock.notify_all()
            conn = self._conn
        if self._on_commit is not None:
            self._on_commit(len(gtids), size)
        if ack is not None and conn is not None:
            try:
                conn.acknowledge(*ack)
            except OSError as exc:
                log.warning("semi-sync acknowledgement failed: %s", exc)

    def _close_connection(self) -> None:
        self.tls_cipher = ""  # status reports the session in use, not the last one
        with self._lock:
            conn, self._conn = self._conn, None
            self._batcher = None
            self._ack_requests.clear()
            self._machine.forget_proposed()
            self._lock.notify_all()
        if conn is not None:
            conn.close()


def _completed_by(entry: entries.TxnBatch | entries.TxnChunk) -> tuple[list[str], int]:
    """The GTIDs an entry completes (a chunk only with its last piece) and the newest source
    timestamp among its transactions."""
    if isinstance(entry, entries.TxnBatch):
        return [t.gtid for t in entry.txns], max((t.timestamp for t in entry.txns), default=0)
    return ([entry.txn.gtid] if entry.last else []), entry.txn.timestamp


def _check_source(gtid_mode: str, binlog_format: str, checksum: str) -> None:
    problems = []
    if gtid_mode.upper() != "ON":
        problems.append(f"gtid_mode is {gtid_mode or 'unknown'} (Kingbus needs ON)")
    if binlog_format.upper() != "ROW":
        problems.append(f"binlog_format is {binlog_format or 'unknown'} (Kingbus needs ROW)")
    if checksum.upper() != "CRC32":
        problems.append(f"binlog_checksum is {checksum or 'unknown'} (Kingbus needs CRC32)")
    if problems:
        raise SourceRefused("the source is unsuitable: " + "; ".join(problems))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, pymysql.err.MySQLError) and exc.args:
        code = exc.args[0]
        message = exc.args[1] if len(exc.args) > 1 else ""
        return f"MySQL error {code}: {message}"
    return str(exc) or type(exc).__name__
