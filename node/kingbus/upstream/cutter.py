"""From the events of a dump stream to runs of Raft-ready transactions (pure).

The syncer reads many events at a time (`kingbus.upstream.dumpstream`); this module turns one
such read into what the syncer acts on, in stream order:

* `TxnRun`: consecutive whole transactions as `entries.Txn`, with the source file and format
  description they belong to (a run never spans a Rotate or an FDE: both decide where the
  store rotates), and the transactions whose last event the source asked to have acknowledged
  (semi-sync);
* `ControlEvent`: an event between transactions (Rotate, FDE, Previous_gtids, heartbeats...).
  Rotate and FDE are already taken into account by the next run's context.

Every event's size and CRC32 is checked and transaction boundaries are found by
`kingbus.binlog.transactions.TransactionAssembler`.  All the per-event work of the leader's
ingest path is in this loop (the syncer loops over runs), which is why it is written for speed:
one `Txn` per transaction and no object per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kingbus.binlog import control_events
from kingbus.binlog.events import EventType
from kingbus.binlog.transactions import ControlEvent, Transaction, TransactionAssembler
from kingbus.raft.entries import Txn
from kingbus.upstream.batcher import SourceContext
from kingbus.upstream.dumpstream import AckRequested, DumpEvent

_ROTATE = int(EventType.ROTATE)
_FDE = int(EventType.FORMAT_DESCRIPTION)
_new_txn = tuple.__new__  # Txn(...) through NamedTuple's __new__ costs twice as much


@dataclass(frozen=True, slots=True)
class TxnRun:
    context: SourceContext
    txns: list[Txn]
    #: `(gtid, source position after it)` of each transaction the source waits to have
    #: acknowledged (semi-sync), in order.
    acks: list[tuple[str, int]]


class TxnCutter:
    """One per dump session: transactions are only ever whole within one stream."""

    def __init__(self) -> None:
        self._assembler = TransactionAssembler(checksum=True)
        self.context = SourceContext("", b"")

    @property
    def in_transaction(self) -> bool:
        return self._assembler.in_transaction

    def cut(self, events: Sequence[DumpEvent]) -> list[TxnRun | ControlEvent]:
        """Raises `kingbus.binlog.errors.BinlogError` on a bad event (size, CRC, grammar); the
        session must then end (the cutter is not usable after it)."""
        out: list[TxnRun | ControlEvent] = []
        txns: list[Txn] = []
        acks: list[tuple[str, int]] = []
        feed = self._assembler.feed
        for event in events:
            if type(event) is bytes:
                item = feed(event)
                if item is None:
                    continue
                acked = False
            else:
                assert isinstance(event, AckRequested)
                item = feed(event.raw)
                if item is None:
                    continue  # asked on an event that does not end a transaction: nothing to do
                acked = True
            if type(item) is Transaction:
                data = item.events_bytes
                gtid = item.gtid_text
                # The first event header's timestamp: when the source began the transaction.
                timestamp = int.from_bytes(data[:4], "little")
                txns.append(_new_txn(Txn, (gtid, item.last_log_pos, timestamp, data)))
                if acked:
                    acks.append((gtid, item.last_log_pos))
                continue
            assert isinstance(item, ControlEvent)
            if txns:
                out.append(TxnRun(self.context, txns, acks))
                txns, acks = [], []
            if item.event_type == _ROTATE:
                next_file = control_events.decode_rotate(item.data, checksum=True).next_file
                self.context = SourceContext(next_file, self.context.fde)
            elif item.event_type == _FDE:
                self.context = SourceContext(self.context.source_file, item.data)
            out.append(item)
        if txns:
            out.append(TxnRun(self.context, txns, acks))
        return out
