"""The store keeps no per-transaction data in RAM: memory stays flat however much is appended.

Only the active segment's writer (a bounded buffer), one SegmentInfo per segment and the
committed GtidSetBuilder (a few integers for a contiguous history) may live in memory.
Measured in bytes with tracemalloc, after a warm-up that opened the first segments.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

from kingbus.raft import entries
from kingbus.raft.statemachine import StateMachine
from kingbus.store.store import BinlogStore
from tests.support.fabricate import SourceStream, SourceTxn, entries_for, incoming

WARM_UP = 10_000
TOTAL = 100_000
# 90k transactions: one retained 8-byte pointer each would already be 720 KB.
ALLOWED_GROWTH = 256 * 1024


def small_txns(stream: SourceStream, n: int) -> Iterator[SourceTxn]:
    for _ in range(n):
        item = stream.txn(payload=10)
        stream.items.clear()  # the fabricator's own history is not the store's memory
        yield item


def growth(run_warm_up: Callable[[], None], run_rest: Callable[[], None]) -> int:
    tracemalloc.start()
    try:
        run_warm_up()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        run_rest()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before


def test_appending_100k_transactions_keeps_memory_flat(tmp_path: Path) -> None:
    store = BinlogStore(tmp_path, segment_bytes=4 << 20, fsync=False)
    stream = SourceStream()

    def append(n: int) -> None:
        for i, item in enumerate(small_txns(stream, n)):
            store.append(incoming(item), item.fde)
            if i % 100 == 0:
                store.publish()
        store.publish()

    grown = growth(lambda: append(WARM_UP), lambda: append(TOTAL - WARM_UP))
    print(f"store.append: {grown} bytes retained over {TOTAL - WARM_UP} transactions")
    assert store.committed_gtids.count() == TOTAL
    assert len(store.segments()) >= 4
    assert grown < ALLOWED_GROWTH, f"memory grew by {grown} bytes over {TOTAL - WARM_UP} transactions"
    store.close()


def test_applying_100k_transactions_through_the_state_machine_keeps_memory_flat(tmp_path: Path) -> None:
    machine = StateMachine(BinlogStore(tmp_path, segment_bytes=4 << 20, fsync=False))
    stream = SourceStream()
    session = entries.Session(1, 0)
    seq = [0]

    def apply(n: int) -> None:
        for _ in range(n // 100):
            payloads = entries_for(list(small_txns(stream, 100)), session=session, first_seq=seq[0])
            seq[0] += len(payloads)
            for p in payloads:
                machine.apply(p)

    grown = growth(lambda: apply(WARM_UP), lambda: apply(TOTAL - WARM_UP))
    print(f"StateMachine.apply: {grown} bytes retained over {TOTAL - WARM_UP} transactions")
    assert machine.store.committed_gtids.count() == TOTAL
    assert machine.stats.applied_txns == TOTAL
    assert grown < ALLOWED_GROWTH, f"memory grew by {grown} bytes over {TOTAL - WARM_UP} transactions"
    machine.store.close()
