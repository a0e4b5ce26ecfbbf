"""The replicated state machine: committed Raft entries -> the binlog store.

Runs on pysyncobj's tick thread, one entry at a time, in log order, on every member.  It is
deterministic (it only looks at the entry and its own state), idempotent by GTID (a
transaction already committed is skipped, which makes journal replay after a restart safe),
and it enforces the session rules of `kingbus.raft.entries`: within a session batches must
arrive with consecutive `seq`; a newer session starts at `seq == 0`; everything else is a
leftover of a superseded syncer session and is dropped.  A large transaction is staged chunk
by chunk and becomes visible only when its last chunk is applied (DESIGN invariant 2).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from kingbus.binlog.gtids import GtidSet
from kingbus.raft import entries
from kingbus.store.store import BinlogStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ApplyStats:
    applied_txns: int = 0
    skipped_txns: int = 0
    stale_entries: int = 0
    bad_entries: int = 0
    applied_bytes: int = 0


@dataclass(slots=True)
class ReplicatedState:
    """Everything besides the store that members agree on through the log."""

    session: entries.Session | None = None
    seq: int = -1
    source: entries.SourceConfig | None = None
    members: dict[str, entries.MemberInfo] = field(default_factory=dict)
    # A chunked transaction in progress: its GTID, and whether it is being skipped.
    chunk_gtid: str | None = None
    chunk_skip: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "session": [self.session.term, self.session.counter] if self.session else None,
            "seq": self.seq,
            "source": entries.encode(self.source).hex() if self.source else None,
            "members": [entries.encode(m).hex() for m in self.members.values()],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ReplicatedState:
        state = cls()
        if raw.get("session"):
            state.session = entries.Session(*raw["session"])
        state.seq = int(raw["seq"])
        if raw.get("source"):
            source = entries.decode(bytes.fromhex(raw["source"]))
            assert isinstance(source, entries.SourceConfig)
            state.source = source
        for hexed in raw.get("members", []):
            member = entries.decode(bytes.fromhex(hexed))
            assert isinstance(member, entries.MemberInfo)
            state.members[member.name] = member
        return state


_Proposed = entries.TxnBatch | entries.TxnChunk


class StateMachine:
    def __init__(self, store: BinlogStore) -> None:
        self.store = store
        self.state = ReplicatedState()
        self.stats = ApplyStats()
        self.barriers_applied: set[entries.Session] = set()
        self._chunk_bytes = 0  # bytes staged so far of the chunked transaction (for stats)
        # Entries this member proposed, as objects, by (session, seq): the leader applies what
        # it encoded a moment ago, and decoding it again cost ~10% of its CPU under small
        # transactions.  Written by the syncer thread, taken by the tick thread (single dict
        # operations, atomic under the GIL).
        self._proposed: dict[tuple[entries.Session, int], tuple[int, _Proposed]] = {}

    def expect(self, entry: _Proposed, payload: bytes) -> None:
        """The syncer proposed `payload`, the encoding of `entry`: apply may use the object."""
        self._proposed[(entry.session, entry.seq)] = (len(payload), entry)

    def forget_proposed(self) -> None:
        """Drops the objects of proposals that will not be applied here (a session ended)."""
        self._proposed.clear()

    def _decode(self, payload: bytes) -> entries.Entry:
        if self._proposed:
            key = entries.session_key(payload)
            if key is not None:
                found = self._proposed.pop(key, None)
                if found is not None and found[0] == len(payload):
                    return found[1]
        return entries.decode(payload)

    def apply(self, payload: bytes) -> None:
        try:
            entry = self._decode(payload)
        except entries.EntryError as exc:
            # Every member rejects the same bytes the same way, so skipping keeps them equal.
            self.stats.bad_entries += 1
            log.error("skipping an undecodable Raft entry: %s", exc)
            return
        if isinstance(entry, entries.TxnBatch):
            if self._accept(entry.session, entry.seq):
                self._apply_batch(entry)
        elif isinstance(entry, entries.TxnChunk):
            if self._accept(entry.session, entry.seq):
                self._apply_chunk(entry)
        elif isinstance(entry, entries.Barrier):
            self._accept(entry.session, 0, barrier=True)
            self.barriers_applied.add(entry.session)
        elif isinstance(entry, entries.SourceConfig):
            self._apply_source(entry)
        else:
            if entry.removed:
                self.state.members.pop(entry.name, None)
            else:
                self.state.members[entry.name] = entry

    def _accept(self, session: entries.Session, seq: int, *, barrier: bool = False) -> bool:
        current = self.state.session
        if current is not None and session < current:
            self.stats.stale_entries += 1
            return False
        if current is None or session > current:
            if seq != 0:
                self.stats.stale_entries += 1
                return False
            # A new session: whatever the old one left half-staged is abandoned.
            self._abandon_chunk()
            self.state.session = session
            self.state.seq = -1 if barrier else 0
            return True
        if barrier:
            return False
        if seq != self.state.seq + 1:
            self.stats.stale_entries += 1
            log.warning("dropping entry seq %d of session %s (expected %d)", seq, session, self.state.seq + 1)
            return False
        self.state.seq = seq
        return True

    def _apply_batch(self, batch: entries.TxnBatch) -> None:
        if self.state.chunk_gtid is not None or self.store.has_staged:
            log.error("a batch arrived inside chunked transaction %s; abandoning it", self.state.chunk_gtid)
            self._abandon_chunk()
        appended, appended_bytes = self.store.append_batch(
            batch.txns, fde=batch.fde, source_file=batch.source_file
        )
        self.stats.applied_txns += appended
        self.stats.applied_bytes += appended_bytes
        self.stats.skipped_txns += len(batch.txns) - appended
        self.store.publish()

    def _apply_chunk(self, chunk: entries.TxnChunk) -> None:
        txn = chunk.txn
        if chunk.first:
            self._abandon_chunk()
            self.state.chunk_gtid = txn.gtid
            self.state.chunk_skip = self.store.is_committed(txn.gtid)
        elif self.state.chunk_gtid != txn.gtid:
            log.error("chunk of %s arrived without its beginning; dropped", txn.gtid)
            return
        elif not self.state.chunk_skip and not self.store.has_staged:
            # The store dropped the pieces staged so far (a catch-up import does): what is
            # left is not the whole transaction and must never be committed as if it were.
            log.error("the staged beginning of %s is gone; abandoning it", txn.gtid)
            self._abandon_chunk()
            return
        if chunk.first:
            self._chunk_bytes = 0
        if not self.state.chunk_skip:
            self.store.stage(
                txn.data, fde=chunk.fde, gtid=txn.gtid, source_file=chunk.source_file, timestamp=txn.timestamp
            )
            self._chunk_bytes += len(txn.data)
        if chunk.last:
            if self.state.chunk_skip or not self.store.commit_staged(source_end_pos=txn.source_end_pos):
                self.stats.skipped_txns += 1
            else:
                self.stats.applied_txns += 1
                self.stats.applied_bytes += self._chunk_bytes
            self.state.chunk_gtid = None
            self.state.chunk_skip = False
            self.store.publish()

    def _abandon_chunk(self) -> None:
        # The store's staging is checked too: `state` can be replaced (snapshot install)
        # while the store still holds pieces of a transaction that will never complete.
        if self.state.chunk_gtid is not None or self.store.has_staged:
            self.store.discard_staged()
            self.state.chunk_gtid = None
            self.state.chunk_skip = False

    def _apply_source(self, source: entries.SourceConfig) -> None:
        if source.initial:
            if self.state.source is not None:
                log.info("the configuration file's source is not applied: the cluster has one already")
                return
            source = replace(source, initial=False)  # stored as any other setting
        self.state.source = source
        if source.start_gtid_set and not self.store.segments():
            # Starting mid-history: what the source had before is "purged" for our replicas.
            self.store.set_initial_gtids(GtidSet.parse(source.start_gtid_set))

    @property
    def in_chunk(self) -> bool:
        return self.state.chunk_gtid is not None
