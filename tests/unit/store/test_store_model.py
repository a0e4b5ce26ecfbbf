"""Random operation sequences against the store, checked against a simple model.

The model is the ordered list of committed transactions.  Operations: appends one at a time
and in batches as a Raft entry applies them (duplicates included), chunked transactions
committed or abandoned, publish, checkpoint, clean restart, kill with the active segment cut
at a random byte, purge of the oldest segment.  After every step the store must hold exactly
the model's transactions in valid, chained segments.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kingbus.binlog.gtids import Gtid, GtidSet
from kingbus.raft.entries import Txn
from kingbus.store.index import index_path, read_index
from kingbus.store.store import BinlogStore
from tests.support.fabricate import SourceStream, SourceTxn, check_segment_file, incoming

SEGMENT_BYTES = 3000


def _pool() -> list[SourceTxn]:
    stream = SourceStream()
    out = []
    for i in range(40):
        if i in (13, 27):
            stream.rotate(server_id=None if i == 13 else 5)
        out.append(stream.txn(payload=[20, 300, 1200, 90][i % 4]))
    return out


POOL = _pool()

OPS = st.one_of(
    st.tuples(st.just("append"), st.integers(0, len(POOL) - 1)),
    st.tuples(st.just("batch"), st.integers(0, len(POOL) - 1), st.integers(1, 8)),
    st.tuples(st.just("chunked"), st.integers(0, len(POOL) - 1), st.booleans(), st.integers(1, 4)),
    st.tuples(st.just("publish")),
    st.tuples(st.just("checkpoint")),
    st.tuples(st.just("restart")),
    st.tuples(st.just("kill"), st.floats(0, 1)),
    st.tuples(st.just("purge")),
)


def check(store: BinlogStore, model: list[SourceTxn], purged: GtidSet) -> None:
    segs = store.segments()
    body = b""
    chained: GtidSet | None = None
    for i, seg in enumerate(segs):
        path = store.directory / seg.name
        checked = check_segment_file(path)
        assert seg.size == path.stat().st_size
        assert str(checked.previous_gtids) == seg.previous_gtids
        if chained is not None:
            assert checked.previous_gtids == chained, f"{seg.name}: Previous_gtids breaks the chain"
        assert seg.sealed == (checked.rotate_to is not None)
        if i < len(segs) - 1:
            assert checked.rotate_to == segs[i + 1].name
        entries = read_index(index_path(path))
        assert entries == store.index(seg.name)
        chained = checked.previous_gtids
        for e in entries:
            chained = chained.add(Gtid.parse(e.gtid))
        body += checked.body
    kept = [t for t in model if not purged.contains(Gtid.parse(t.txn.gtid))]
    assert body == b"".join(t.txn.data for t in kept)
    want = purged
    for t in model:
        want = want.add(Gtid.parse(t.txn.gtid))
    assert store.committed_gtids == want
    assert store.purged_gtids == purged
    assert store.total_bytes == sum(s.size for s in segs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(OPS, min_size=1, max_size=40))
def test_random_operations_keep_the_store_exact(ops: list[tuple[object, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        store = BinlogStore(root, segment_bytes=SEGMENT_BYTES)
        model: list[SourceTxn] = []
        purged = GtidSet()
        for op in ops:
            kind = op[0]
            if kind == "append":
                item = POOL[int(str(op[1]))]
                fresh = item.txn.gtid not in {t.txn.gtid for t in model} and not purged.contains(
                    Gtid.parse(item.txn.gtid)
                )
                assert store.append(incoming(item), item.fde) == fresh
                if fresh:
                    model.append(item)
            elif kind == "batch":
                # What a Raft entry applies: consecutive transactions, one call per source file.
                first, count = int(str(op[1])), int(str(op[2]))
                items = POOL[first : first + count]
                for (source_file, fde), group in itertools.groupby(items, lambda i: (i.source_file, i.fde)):
                    txns = [Txn(i.txn.gtid, i.txn.end_pos, i.txn.timestamp, i.txn.data) for i in group]
                    known = {t.txn.gtid for t in model}
                    fresh = [
                        i
                        for i in POOL[first : first + count]
                        if (i.source_file, i.fde) == (source_file, fde)
                        and i.txn.gtid in {t.gtid for t in txns}
                        and i.txn.gtid not in known
                        and not purged.contains(Gtid.parse(i.txn.gtid))
                    ]
                    appended = store.append_batch(txns, fde=fde, source_file=source_file)
                    assert appended == (len(fresh), sum(len(i.txn.data) for i in fresh))
                    model.extend(fresh)
            elif kind == "chunked":
                item = POOL[int(str(op[1]))]
                commit, pieces = bool(op[2]), int(str(op[3]))
                data = item.txn.data
                step = max(1, len(data) // pieces)
                for a in range(0, len(data), step):
                    store.stage(
                        data[a : a + step],
                        fde=item.fde,
                        gtid=item.txn.gtid,
                        source_file=item.source_file,
                        timestamp=item.txn.timestamp,
                    )
                if commit:
                    fresh = item.txn.gtid not in {t.txn.gtid for t in model} and not purged.contains(
                        Gtid.parse(item.txn.gtid)
                    )
                    assert store.commit_staged(source_end_pos=item.txn.end_pos) == fresh
                    if fresh:
                        model.append(item)
                else:
                    store.discard_staged()
            elif kind == "publish":
                store.publish()
            elif kind == "checkpoint":
                store.checkpoint()
            elif kind == "restart":
                store.close()
                store = BinlogStore(root, segment_bytes=SEGMENT_BYTES)
            elif kind == "kill":
                store.publish()
                segs = store.segments()
                crashed = Path(tmp) / "crashed"
                shutil.copytree(root, crashed)
                store.close()
                if segs and not segs[-1].sealed:
                    last = segs[-1]
                    entries = store.index(last.name)
                    header = entries[0].offset if entries else last.size
                    cut = header + int(float(str(op[1])) * (last.size - header))
                    with open(crashed / last.name, "r+b") as f:
                        f.truncate(cut)
                    lost = {e.gtid for e in entries if e.end > cut}
                    model = [t for t in model if t.txn.gtid not in lost]
                shutil.rmtree(root)
                crashed.rename(root)
                store = BinlogStore(root, segment_bytes=SEGMENT_BYTES)
            elif kind == "purge":
                segs = store.segments()
                if len(segs) >= 2 and segs[0].sealed:
                    store.purge([segs[0].name])
                    purged = GtidSet.parse(store.segments()[0].previous_gtids)
            store.publish()
            check(store, model, purged)
        store.close()
