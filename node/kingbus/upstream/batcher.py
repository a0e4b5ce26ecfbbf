"""Packing whole transactions into bounded Raft entries (pure).

The syncer hands over whole transactions in source order; the batcher turns them into
`TxnBatch` entries of at most `entry_bytes`, or, for a transaction that does not fit in one
entry, a run of `TxnChunk` entries.  Entries are numbered with consecutive `seq` values of the
syncer session, which is how the state machine recognises a gap or a leftover of an older
session.  A batch never mixes source files or format descriptions: both travel in the entry
and decide where the store rotates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kingbus.raft import entries


@dataclass(frozen=True, slots=True)
class SourceContext:
    source_file: str
    fde: bytes


@dataclass(slots=True)
class Batcher:
    session: entries.Session
    entry_bytes: int
    next_seq: int = 0
    _context: SourceContext | None = None
    _pending: list[entries.Txn] = field(default_factory=list)
    _pending_bytes: int = 0

    def __post_init__(self) -> None:
        if self.entry_bytes < 4096:
            raise ValueError("entry_bytes must be at least 4096")

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @property
    def pending_gtids(self) -> list[str]:
        return [t.gtid for t in self._pending]

    def add(self, txn: entries.Txn, context: SourceContext) -> list[entries.TxnBatch | entries.TxnChunk]:
        out: list[entries.TxnBatch | entries.TxnChunk] = []
        # Identity first: the syncer passes the same object until the source file changes.
        if self._context is not None and context is not self._context and context != self._context:
            out.extend(self.flush())
        self._context = context
        size = len(txn.data) + entries.TXN_OVERHEAD
        budget = self.entry_bytes - entries.BATCH_OVERHEAD - len(context.fde) - len(context.source_file)
        if size > budget:
            out.extend(self.flush())
            out.extend(self._chunks(txn, context, budget))
            return out
        if self._pending_bytes + size > budget:
            out.extend(self.flush())
        self._pending.append(txn)
        self._pending_bytes += size
        return out

    def add_all(
        self, txns: list[entries.Txn], context: SourceContext
    ) -> list[entries.TxnBatch | entries.TxnChunk]:
        """`add` of each transaction in turn, the entries in order (the syncer's hot path:
        the context and the budget are looked at once per run, not once per transaction)."""
        out: list[entries.TxnBatch | entries.TxnChunk] = []
        if not txns:
            return out
        if self._context is not None and context is not self._context and context != self._context:
            out.extend(self.flush())
        self._context = context
        budget = self.entry_bytes - entries.BATCH_OVERHEAD - len(context.fde) - len(context.source_file)
        overhead = entries.TXN_OVERHEAD
        pending, pending_bytes = self._pending, self._pending_bytes
        for txn in txns:
            size = len(txn.data) + overhead
            if pending_bytes + size > budget:
                self._pending_bytes = pending_bytes
                out.extend(self.flush())
                pending, pending_bytes = self._pending, 0
                if size > budget:
                    out.extend(self._chunks(txn, context, budget))
                    continue
            pending.append(txn)
            pending_bytes += size
        self._pending_bytes = pending_bytes
        return out

    def flush(self) -> list[entries.TxnBatch | entries.TxnChunk]:
        if not self._pending:
            return []
        assert self._context is not None
        batch = entries.TxnBatch(
            self.session, self.next_seq, self._context.fde, self._context.source_file, tuple(self._pending)
        )
        self.next_seq += 1
        self._pending = []
        self._pending_bytes = 0
        return [batch]

    def _chunks(self, txn: entries.Txn, context: SourceContext, budget: int) -> list[entries.TxnChunk]:
        piece = budget - entries.TXN_OVERHEAD
        pieces = [txn.data[i : i + piece] for i in range(0, len(txn.data), piece)]
        out = []
        for i, data in enumerate(pieces):
            out.append(
                entries.TxnChunk(
                    self.session,
                    self.next_seq,
                    context.fde,
                    context.source_file,
                    first=i == 0,
                    last=i == len(pieces) - 1,
                    txn=entries.Txn(txn.gtid, txn.source_end_pos, txn.timestamp, data),
                )
            )
            self.next_seq += 1
        return out
