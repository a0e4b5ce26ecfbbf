"""BinlogStore: appends byte for byte into valid segment files; rotation; reads; checkpoint; purge."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from kingbus.binlog.gtids import Gtid, GtidSet
from kingbus.store import meta
from kingbus.store.store import BinlogStore, IncomingTxn, StoreError
from tests.support import fabricate, source_binlog
from tests.support.fabricate import SourceStream, check_segment_file, incoming

UUID = fabricate.SOURCE_UUID


def open_store(path: Path, segment_bytes: int = 4096) -> BinlogStore:
    return BinlogStore(path, segment_bytes=segment_bytes)


def gtids(text: str) -> GtidSet:
    return GtidSet.parse(text)


def test_appended_transactions_are_stored_byte_for_byte_in_valid_segments(tmp_path: Path) -> None:
    stream = SourceStream()
    store = open_store(tmp_path)
    items = [stream.txn(payload=300) for _ in range(40)]
    for item in items:
        assert store.append(incoming(item), item.fde)
    store.publish()
    segs = store.segments()
    assert len(segs) > 2, "4 KiB segments must have rotated"
    joined = b""
    committed = GtidSet()
    for i, seg in enumerate(segs):
        checked = check_segment_file(tmp_path / seg.name)
        assert checked.previous_gtids == committed
        assert str(checked.previous_gtids) == seg.previous_gtids
        assert seg.sealed == (i < len(segs) - 1)
        assert checked.rotate_to == (segs[i + 1].name if seg.sealed else None)
        assert seg.size == (tmp_path / seg.name).stat().st_size
        joined += checked.body
        for entry in store.index(seg.name):
            committed = committed.add(Gtid.parse(entry.gtid))
    assert joined == b"".join(i.txn.data for i in items)
    assert store.committed_gtids == gtids(f"{UUID}:1-40")
    assert store.total_bytes == sum(p.stat().st_size for p in tmp_path.glob("kingbus-bin.??????"))


def test_rotation_by_size_happens_at_a_transaction_boundary_after_passing_the_limit(tmp_path: Path) -> None:
    stream = SourceStream()
    store = open_store(tmp_path, segment_bytes=4096)
    for _ in range(30):
        item = stream.txn(payload=500)
        store.append(incoming(item), item.fde)
    store.publish()
    for seg in store.segments()[:-1]:
        # Passed the limit with its last transaction, and not before it.
        without_rotate = seg.size - _rotate_len(tmp_path / seg.name)
        last = store.index(seg.name)[-1]
        assert last.end == without_rotate
        assert last.offset < 4096 <= without_rotate


def _rotate_len(path: Path) -> int:
    data = path.read_bytes()
    return len(source_binlog.split_events(data[4:])[-1])


def test_rotation_when_the_source_file_or_fde_changes(tmp_path: Path) -> None:
    stream = SourceStream()
    store = open_store(tmp_path, segment_bytes=1 << 20)
    first = [stream.txn() for _ in range(3)]
    stream.reconnect_fde()  # same file, reconnect FDE: not a format change
    first += [stream.txn() for _ in range(2)]
    stream.rotate()
    second = [stream.txn() for _ in range(2)]
    stream.rotate(server_id=77)
    third = [stream.txn() for _ in range(2)]
    for item in first + second + third:
        store.append(incoming(item), item.fde)
    store.publish()
    segs = store.segments()
    assert [s.source_file for s in segs] == ["binlog.000001", "binlog.000002", "binlog.000003"]
    for seg, group in zip(segs, (first, second, third), strict=True):
        assert check_segment_file(tmp_path / seg.name).body == b"".join(i.txn.data for i in group)
    third_fde = (tmp_path / segs[2].name).read_bytes()[4:]
    assert int.from_bytes(third_fde[5:9], "little") == 77


def test_fde_change_in_the_same_source_file_rotates(tmp_path: Path) -> None:
    stream = SourceStream()
    store = open_store(tmp_path, segment_bytes=1 << 20)
    a = stream.txn()
    store.append(incoming(a), a.fde)
    new_fde = fabricate.fde(server_id=9)
    b = stream.txn()
    store.append(incoming(b), new_fde)
    assert len(store.segments()) == 2


def test_duplicate_gtid_is_skipped_and_changes_nothing(tmp_path: Path) -> None:
    stream = SourceStream()
    store = open_store(tmp_path)
    a = stream.txn()
    assert store.append(incoming(a), a.fde)
    store.publish()
    before = fabricate.file_digests(tmp_path)
    assert not store.append(incoming(a), a.fde)
    # Even with a new source file it must not rotate for a duplicate.
    stream.rotate()
    assert not store.append(IncomingTxn(a.txn.gtid, a.txn.data, "binlog.000002", 1, 1), stream.fde)
    store.publish()
    assert fabricate.file_digests(tmp_path) == before


def test_tagged_gtids_and_ddl_transactions(tmp_path: Path) -> None:
    store = open_store(tmp_path, segment_bytes=1 << 20)
    f = fabricate.fde()
    txns = [
        fabricate.transaction(1),
        fabricate.tagged_transaction(1, "blue"),
        fabricate.ddl_transaction(2),
        fabricate.tagged_transaction(2, "blue"),
    ]
    for t in txns:
        assert store.append(IncomingTxn(t.gtid, t.data, "binlog.000001", t.end_pos, t.timestamp), f)
    store.publish()
    assert store.committed_gtids == gtids(f"{UUID}:1-2:blue:1-2")
    assert [e.gtid for e in store.index("kingbus-bin.000001")] == [t.gtid for t in txns]
    store.close()
    again = open_store(tmp_path, segment_bytes=1 << 20)
    assert again.committed_gtids == gtids(f"{UUID}:1-2:blue:1-2")
    assert [e.gtid for e in again.index("kingbus-bin.000001")] == [t.gtid for t in txns]


def test_index_gives_offsets_lengths_and_source_positions(tmp_path: Path) -> None:
    stream = SourceStream()
    store = open_store(tmp_path, segment_bytes=1 << 20)
    items = [stream.txn(payload=10 * i) for i in range(1, 6)]
    for item in items:
        store.append(incoming(item), item.fde)
    store.publish()
    name = store.segments()[0].name
    for entry, item in zip(store.index(name), items, strict=True):
        assert store.read(name, entry.offset, entry.length) == item.txn.data
        assert entry.source_end_pos == item.txn.end_pos
        assert entry.gtid == item.txn.gtid


def test_read_refuses_past_the_committed_end_and_unknown_segments(tmp_path: Path) -> None:
    stream = SourceStream()
    store = open_store(tmp_path)
    item = stream.txn()
    store.append(incoming(item), item.fde)
    store.publish()
    seg = store.segments()[0]
    assert len(store.read(seg.name, 0, seg.size)) == seg.size
    with pytest.raises(StoreError):
        store.read(seg.name, 0, seg.size + 1)
    with pytest.raises(StoreError):
        store.read(seg.name, -1, 2)
    with pytest.raises(StoreError):
        store.read("kingbus-bin.000009", 0, 1)
    with pytest.raises(ValueError):
        store.segment_path("../etc/passwd")


def test_appended_but_unpublished_bytes_are_not_visible_to_readers(tmp_path: Path) -> None:
    """Readers use `segments()` sizes to read; every byte they are told about must be readable."""
    stream = SourceStream()
    store = open_store(tmp_path, segment_bytes=1 << 20)
    item = stream.txn()
    store.append(incoming(item), item.fde)
    store.publish()
    published = store.segments()
    more = stream.txn()
    store.append(incoming(more), more.fde)  # not yet published (the apply path publishes per entry)
    for seg in store.segments():
        assert len(store.read(seg.name, 0, seg.size)) == seg.size
        assert all(e.end <= seg.size for e in store.index(seg.name))
    assert store.segments() == published
    store.publish()
    seg = store.segments()[0]
    assert store.read(seg.name, 0, seg.size).endswith(more.txn.data)


def test_staged_transaction_is_invisible_until_committed(tmp_path: Path) -> None:
    stream = SourceStream()
    store = open_store(tmp_path, segment_bytes=1 << 20)
    a = stream.txn()
    store.append(incoming(a), a.fde)
    store.publish()
    before = store.segments()
    big = stream.txn(payload=3000)
    data = big.txn.data
    for i in range(0, len(data), 1000):
        store.stage(
            data[i : i + 1000], fde=big.fde, gtid=big.txn.gtid, source_file=big.source_file, timestamp=1
        )
        store.publish()
        assert store.segments() == before
        assert not store.is_committed(big.txn.gtid)
        assert store.committed_gtids == gtids(f"{UUID}:1")
        assert store.index(before[0].name)[-1].gtid == a.txn.gtid
    assert store.commit_staged(source_end_pos=big.txn.end_pos)
    store.publish()
    seg = store.segments()[0]
    assert check_segment_file(tmp_path / seg.name).body == a.txn.data + data
    assert store.committed_gtids == gtids(f"{UUID}:1-2")


def test_discarded_stage_leaves_the_file_as_before(tmp_path: Path) -> None:
    stream = SourceStream()
    store = open_store(tmp_path, segment_bytes=1 << 20)
    a = stream.txn()
    store.append(incoming(a), a.fde)
    store.publish()
    before = fabricate.file_digests(tmp_path)
    big = stream.txn(payload=3000)
    store.stage(big.txn.data[:500], fde=big.fde, gtid=big.txn.gtid, source_file=big.source_file, timestamp=1)
    store.publish()
    store.discard_staged()
    store.publish()
    assert fabricate.file_digests(tmp_path) == before
    assert not store.has_staged
    with pytest.raises(StoreError):
        store.commit_staged(source_end_pos=1)


def test_append_while_staged_is_refused(tmp_path: Path) -> None:
    stream = SourceStream()
    store = open_store(tmp_path)
    a, b = stream.txn(), stream.txn()
    store.stage(a.txn.data[:10], fde=a.fde, gtid=a.txn.gtid, source_file=a.source_file, timestamp=1)
    with pytest.raises(StoreError):
        store.append(incoming(b), b.fde)


def test_committing_a_staged_duplicate_cuts_it(tmp_path: Path) -> None:
    stream = SourceStream()
    store = open_store(tmp_path, segment_bytes=1 << 20)
    a = stream.txn()
    store.append(incoming(a), a.fde)
    store.publish()
    before = fabricate.file_digests(tmp_path)
    store.stage(a.txn.data, fde=a.fde, gtid=a.txn.gtid, source_file=a.source_file, timestamp=1)
    assert not store.commit_staged(source_end_pos=1)
    store.publish()
    assert fabricate.file_digests(tmp_path) == before


def test_checkpoint_writes_meta_atomically_and_describes_the_store(tmp_path: Path) -> None:
    stream = SourceStream()
    store = open_store(tmp_path)
    for _ in range(20):
        item = stream.txn(payload=400)
        store.append(incoming(item), item.fde)
    store.publish()
    store.checkpoint()
    assert not (tmp_path / "store.meta.tmp").exists()
    m = meta.read_meta(tmp_path)
    assert m is not None
    assert m.committed_gtids == str(store.committed_gtids)
    assert [s.name for s in m.segments] == [s.name for s in store.segments()]
    assert [s.size for s in m.segments] == [s.size for s in store.segments()]
    assert m.segment_bytes == 4096
    raw = json.loads((tmp_path / "store.meta").read_text())
    assert raw["format_version"] == meta.FORMAT_VERSION


def test_a_crash_while_writing_meta_leaves_the_old_checkpoint(tmp_path: Path) -> None:
    stream = SourceStream()
    store = open_store(tmp_path)
    item = stream.txn()
    store.append(incoming(item), item.fde)
    store.checkpoint()
    old = (tmp_path / "store.meta").read_text()
    (tmp_path / "store.meta.tmp").write_text('{"format_version": 1, "segm')  # a torn tmp file
    reopened = open_store(tmp_path)
    assert reopened.committed_gtids == gtids(f"{UUID}:1")
    assert (tmp_path / "store.meta").read_text() == old


def test_segment_bytes_must_match_the_data(tmp_path: Path) -> None:
    stream = SourceStream()
    store = open_store(tmp_path, segment_bytes=4096)
    item = stream.txn()
    store.append(incoming(item), item.fde)
    store.close()
    with pytest.raises(StoreError, match="segment_bytes"):
        open_store(tmp_path, segment_bytes=8192)


def _filled(tmp_path: Path, n: int = 40) -> tuple[BinlogStore, SourceStream]:
    stream = SourceStream()
    store = open_store(tmp_path)
    for _ in range(n):
        item = stream.txn(payload=400)
        store.append(incoming(item), item.fde)
    store.publish()
    return store, stream


def test_purge_removes_a_prefix_after_recording_the_purged_set(tmp_path: Path) -> None:
    store, _ = _filled(tmp_path)
    segs = store.segments()
    assert len(segs) >= 4
    names = [segs[0].name, segs[1].name]
    store.purge(names)
    assert [s.name for s in store.segments()] == [s.name for s in segs[2:]]
    assert store.purged_gtids == gtids(segs[2].previous_gtids)
    assert store.committed_gtids == gtids(f"{UUID}:1-40")
    for name in names:
        assert not (tmp_path / name).exists()
        assert not (tmp_path / (name + ".idx")).exists()
    m = meta.read_meta(tmp_path)
    assert m is not None and m.purged_gtids == segs[2].previous_gtids
    assert store.total_bytes == sum(s.size for s in store.segments())
    store.close()
    again = open_store(tmp_path)
    assert again.purged_gtids == gtids(segs[2].previous_gtids)
    assert again.committed_gtids == gtids(f"{UUID}:1-40")
    assert again.segments() == store.segments()


@pytest.mark.parametrize("which", ["not_prefix", "active", "unknown", "too_many"])
def test_purge_refuses_what_is_not_a_sealed_prefix(tmp_path: Path, which: str) -> None:
    store, _ = _filled(tmp_path)
    segs = [s.name for s in store.segments()]
    names = {
        "not_prefix": [segs[1]],
        "active": segs,
        "unknown": ["kingbus-bin.000099"],
        "too_many": [*segs, "kingbus-bin.000099"],
    }[which]
    before = fabricate.file_digests(tmp_path)
    with pytest.raises(StoreError):
        store.purge(names)
    assert [s.name for s in store.segments()] == segs
    assert fabricate.file_digests(tmp_path) == before
    assert store.purged_gtids == GtidSet()


def test_purge_of_nothing_is_a_no_op(tmp_path: Path) -> None:
    store, _ = _filled(tmp_path)
    segs = store.segments()
    store.purge([])
    assert store.segments() == segs


def test_purge_interrupted_after_its_checkpoint_is_completed_on_open(tmp_path: Path) -> None:
    """The checkpoint no longer lists the purged segments, but a crash left their files."""
    store, _ = _filled(tmp_path)
    segs = store.segments()
    kept = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(segs[0].name)}
    store.purge([segs[0].name])
    store.close()
    for name, data in kept.items():  # as if the crash came before the unlinks
        (tmp_path / name).write_bytes(data)
    again = open_store(tmp_path)
    assert [s.name for s in again.segments()] == [s.name for s in segs[1:]]
    assert not (tmp_path / segs[0].name).exists()
    assert again.purged_gtids == gtids(segs[1].previous_gtids)


def test_set_initial_gtids_on_an_empty_store(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    start = gtids(f"{UUID}:1-100")
    store.set_initial_gtids(start)
    assert store.committed_gtids == start
    assert store.purged_gtids == start
    stream = SourceStream()
    stream.gno = 100
    item = stream.txn()
    dup = fabricate.transaction(50)
    assert not store.append(IncomingTxn(dup.gtid, dup.data, "binlog.000001", 1, 1), item.fde)
    assert store.append(incoming(item), item.fde)
    store.publish()
    seg = store.segments()[0]
    assert check_segment_file(tmp_path / seg.name).previous_gtids == start
    store.close()
    again = open_store(tmp_path)
    assert again.purged_gtids == start
    assert again.committed_gtids == gtids(f"{UUID}:1-101")


def test_set_initial_gtids_survives_a_restart_before_any_append(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    start = gtids(f"{UUID}:1-100")
    store.set_initial_gtids(start)
    store.close()
    again = open_store(tmp_path)
    assert again.committed_gtids == start
    assert again.purged_gtids == start


def test_set_initial_gtids_is_refused_on_a_store_with_data(tmp_path: Path) -> None:
    store, _ = _filled(tmp_path, n=1)
    with pytest.raises(StoreError):
        store.set_initial_gtids(gtids(f"{UUID}:1-100"))
    assert store.committed_gtids == gtids(f"{UUID}:1")


def test_listeners_run_on_publish(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    calls: list[int] = []
    store.add_listener(lambda: calls.append(1))
    store.publish()
    assert calls == [1]


def test_read_of_a_segment_purged_after_listing_is_a_store_error(tmp_path: Path) -> None:
    store, _ = _filled(tmp_path)
    first = store.segments()[0]
    (tmp_path / first.name).rename(tmp_path / "elsewhere")  # gone between listing and reading
    with pytest.raises(StoreError):
        store.read(first.name, 0, 10)


def test_a_missing_segment_file_in_the_middle_is_refused_on_open(tmp_path: Path) -> None:
    store, _ = _filled(tmp_path)
    store.close()
    middle = store.segments()[2].name
    (tmp_path / middle).unlink()
    with pytest.raises(StoreError, match="missing"):
        open_store(tmp_path)


def test_concurrent_readers_only_ever_see_whole_published_transactions(tmp_path: Path) -> None:
    """A reader thread polls segments() and reads everything it is told about, while the
    writer appends, rotates and publishes: every read is complete and ends on a transaction."""
    store = open_store(tmp_path, segment_bytes=16384)
    stream = SourceStream()
    items = [stream.txn(payload=(i * 37) % 900) for i in range(1500)]
    done = threading.Event()
    problems: list[str] = []
    reads = [0]

    def reader() -> None:
        while not done.is_set():
            for seg in store.segments():
                try:
                    data = store.read(seg.name, 0, seg.size)
                except StoreError as exc:
                    problems.append(str(exc))
                    continue
                if len(data) != seg.size:
                    problems.append(f"{seg.name}: short read {len(data)} < {seg.size}")
                    continue
                try:
                    source_binlog.split_events(data[4:])
                except ValueError as exc:
                    problems.append(f"{seg.name}: {exc}")
                reads[0] += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i, item in enumerate(items):
            store.append(incoming(item), item.fde)
            if i % 7 == 0:
                store.publish()
        store.publish()
    finally:
        done.set()
        thread.join()
    assert not problems, problems[:5]
    assert reads[0] > 10
    assert store.committed_gtids == gtids(f"{UUID}:1-1500")


def test_checkpoint_failing_before_the_rename_leaves_the_old_meta(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, stream = _filled(tmp_path, n=3)
    store.checkpoint()
    old = (tmp_path / "store.meta").read_text()
    item = stream.txn()
    store.append(incoming(item), item.fde)

    def failing_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("kingbus.store.meta.os.replace", failing_replace)
    with pytest.raises(OSError):
        store.checkpoint()
    assert (tmp_path / "store.meta").read_text() == old
    monkeypatch.undo()
    store.checkpoint()
    m = meta.read_meta(tmp_path)
    assert m is not None and m.committed_gtids == f"{UUID}:1-4"


def test_purge_unlinks_only_after_the_checkpoint_no_longer_lists_the_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = _filled(tmp_path)
    victim = store.segments()[0]
    seen: list[tuple[str, list[str], str]] = []
    real_unlink = Path.unlink

    def spying_unlink(self: Path, missing_ok: bool = False) -> None:
        m = meta.read_meta(tmp_path)
        assert m is not None
        seen.append((self.name, [s.name for s in m.segments], m.purged_gtids))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", spying_unlink)
    store.purge([victim.name])
    assert seen and seen[0][0] == victim.name
    for _name, listed, purged in seen:
        assert victim.name not in listed
        assert purged == store.segments()[0].previous_gtids


def test_write_back_runs_beside_appends_and_rotations_without_changing_anything(tmp_path: Path) -> None:
    """`write_back` is called from another thread than the one appending (the node's
    write-back loop beside Raft's apply): rotations close the files it may be syncing."""
    stream = SourceStream()
    store = open_store(tmp_path, segment_bytes=4096)
    items = [stream.txn(payload=300) for _ in range(200)]
    stop = threading.Event()
    failures: list[BaseException] = []
    calls = 0

    def write_back_loop() -> None:
        nonlocal calls
        while not stop.is_set():
            try:
                store.write_back()
                calls += 1
            except BaseException as exc:  # reported below, with the test's own assertion
                failures.append(exc)
                return

    thread = threading.Thread(target=write_back_loop)
    thread.start()
    try:
        for item in items:
            store.append(incoming(item), item.fde)
            store.publish()
    finally:
        stop.set()
        thread.join(10)
    assert failures == []
    assert calls > 0
    assert len(store.segments()) > 10, "rotations happened while it ran"
    joined = b"".join(check_segment_file(tmp_path / seg.name).body for seg in store.segments())
    assert joined == b"".join(i.txn.data for i in items)
    store.close()
    store.write_back()  # closed: nothing to sync, no error
