"""The batcher packs whole transactions into bounded entries with consecutive seq numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kingbus.raft import entries
from kingbus.upstream.batcher import Batcher, SourceContext

SESSION = entries.Session(3, 1)
CTX = SourceContext("binlog.000001", b"F" * 100)
UUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562"


def txn(gno: int, size: int) -> entries.Txn:
    return entries.Txn(f"{UUID}:{gno}", 100 * gno, 0, bytes([gno % 256]) * size)


def test_small_transactions_share_one_entry_until_flushed() -> None:
    b = Batcher(SESSION, 64 * 1024)
    assert b.add(txn(1, 500), CTX) == []
    assert b.add(txn(2, 500), CTX) == []
    (batch,) = b.flush()
    assert isinstance(batch, entries.TxnBatch)
    assert [t.gtid for t in batch.txns] == [f"{UUID}:1", f"{UUID}:2"]
    assert batch.seq == 0 and b.next_seq == 1
    assert b.flush() == []


def test_a_full_batch_is_emitted_before_the_next_transaction() -> None:
    b = Batcher(SESSION, 8192)
    out = []
    for gno in range(1, 40):
        out += b.add(txn(gno, 1000), CTX)
    out += b.flush()
    assert all(len(entries.encode(e)) <= 8192 for e in out)
    got = [t.gtid for e in out if isinstance(e, entries.TxnBatch) for t in e.txns]
    assert got == [f"{UUID}:{g}" for g in range(1, 40)]
    assert [e.seq for e in out] == list(range(len(out)))


def test_a_change_of_source_file_closes_the_batch() -> None:
    b = Batcher(SESSION, 64 * 1024)
    b.add(txn(1, 10), CTX)
    out = b.add(txn(2, 10), SourceContext("binlog.000002", CTX.fde))
    assert len(out) == 1 and out[0].source_file == "binlog.000001"  # type: ignore[union-attr]


def test_a_large_transaction_becomes_chunks_that_reassemble_exactly() -> None:
    b = Batcher(SESSION, 8192)
    b.add(txn(1, 10), CTX)
    big = txn(2, 50_000)
    out = b.add(big, CTX)
    assert isinstance(out[0], entries.TxnBatch)
    chunks = out[1:]
    assert all(isinstance(c, entries.TxnChunk) for c in chunks)
    assert chunks[0].first and chunks[-1].last  # type: ignore[union-attr]
    assert not any(c.last for c in chunks[:-1])  # type: ignore[union-attr]
    assert b"".join(c.txn.data for c in chunks) == big.data  # type: ignore[union-attr]
    assert all(len(entries.encode(c)) <= 8192 for c in chunks)
    assert [e.seq for e in out] == list(range(len(out)))


def test_entry_size_has_a_floor() -> None:
    with pytest.raises(ValueError):
        Batcher(SESSION, 100)


@given(st.lists(st.integers(min_value=0, max_value=40_000), min_size=1, max_size=30))
def test_any_sequence_round_trips_in_order_within_bounds(sizes: list[int]) -> None:
    b = Batcher(SESSION, 16 * 1024)
    out = []
    for gno, size in enumerate(sizes, start=1):
        out += b.add(txn(gno, size), CTX)
    out += b.flush()
    rebuilt: list[tuple[str, bytes]] = []
    partial = b""
    for e in out:
        assert len(entries.encode(e)) <= 16 * 1024
        if isinstance(e, entries.TxnBatch):
            rebuilt += [(t.gtid, t.data) for t in e.txns]
        else:
            partial = (b"" if e.first else partial) + e.txn.data
            if e.last:
                rebuilt.append((e.txn.gtid, partial))
    assert rebuilt == [(f"{UUID}:{g}", bytes([g % 256]) * s) for g, s in enumerate(sizes, start=1)]
    assert [e.seq for e in out] == list(range(len(out)))


@given(
    runs=st.lists(
        st.tuples(
            st.sampled_from(["binlog.000001", "binlog.000002"]),
            st.lists(st.integers(0, 20_000), max_size=12),
        ),
        max_size=8,
    ),
)
def test_adding_a_run_is_adding_each_transaction_in_turn(runs: list[tuple[str, list[int]]]) -> None:
    one, many = Batcher(SESSION, 8192), Batcher(SESSION, 8192)
    gno = 0
    for source_file, sizes in runs:
        context = SourceContext(source_file, CTX.fde)
        txns = []
        for size in sizes:
            gno += 1
            txns.append(txn(gno, size))
        expected = [e for t in txns for e in one.add(t, context)]
        assert many.add_all(txns, context) == expected
        assert many.pending_gtids == one.pending_gtids and many.pending_bytes == one.pending_bytes
    assert many.flush() == one.flush()
    assert many.next_seq == one.next_seq
