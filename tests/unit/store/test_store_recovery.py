"""Crash recovery: whatever a crash leaves on disk, reopening ends at the last whole transaction.

A crash is simulated by copying the store directory as it is on disk (after `publish`, so the
writer's buffer is in the files) while the store is still open, then damaging the copy the way
a crash can: a cut at any byte of the last transaction, a bad CRC, a torn index, a missing or
old checkpoint.  The reopened store must hold exactly the whole transactions before the
damage, and appending the lost ones again must give files identical to an uncrashed store.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kingbus.binlog.gtids import GtidSet
from kingbus.store.index import index_path, read_index
from kingbus.store.meta import META_FILE
from kingbus.store.store import BinlogStore
from tests.support.fabricate import SourceStream, SourceTxn, check_segment_file, file_digests, incoming

SEGMENT_BYTES = 4096


def history(n: int, *, payload: int = 150, rotate_every: int = 0) -> list[SourceTxn]:
    stream = SourceStream()
    out = []
    for i in range(n):
        if rotate_every and i and i % rotate_every == 0:
            stream.rotate()
        out.append(stream.txn(payload=payload))
    return out


def fill(directory: Path, items: list[SourceTxn]) -> BinlogStore:
    store = BinlogStore(directory, segment_bytes=SEGMENT_BYTES)
    for item in items:
        store.append(incoming(item), item.fde)
    store.publish()
    return store


def reference(tmp_path: Path, items: list[SourceTxn]) -> dict[str, str]:
    store = fill(tmp_path / "reference", items)
    store.close()
    return file_digests(tmp_path / "reference")


def crash_copy(src: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst


def committed_of(items: list[SourceTxn]) -> GtidSet:
    return GtidSet.parse(",".join(i.txn.gtid for i in items)) if items else GtidSet()


def assert_consistent(store: BinlogStore, items: list[SourceTxn]) -> None:
    """The store holds exactly `items`, in valid files, with matching indexes."""
    assert store.committed_gtids == committed_of(items)
    body = b""
    for seg in store.segments():
        path = store.directory / seg.name
        assert seg.size == path.stat().st_size
        checked = check_segment_file(path)
        body += checked.body
        entries = read_index(index_path(path))
        assert entries == store.index(seg.name)
        for e in entries:
            assert store.read(seg.name, e.offset, e.length)[:4] == path.read_bytes()[e.offset : e.offset + 4]
    assert body == b"".join(i.txn.data for i in items)


@pytest.mark.parametrize("closed", [True, False], ids=["closed", "killed"])
def test_cut_at_every_byte_of_the_last_transaction(tmp_path: Path, closed: bool) -> None:
    items = history(12, payload=60)
    want = reference(tmp_path, items)
    live = fill(tmp_path / "live", items)
    if closed:
        live.close()
    last_seg = live.segments()[-1]
    last = live.index(last_seg.name)[-1]
    assert last.gtid == items[-1].txn.gtid
    for cut in range(last.offset, last.end + 1):
        crashed = crash_copy(tmp_path / "live", tmp_path / "crashed")
        with open(crashed / last_seg.name, "r+b") as f:
            f.truncate(cut)
        store = BinlogStore(crashed, segment_bytes=SEGMENT_BYTES)
        kept = items if cut == last.end else items[:-1]
        assert_consistent(store, kept)
        for item in items[len(kept) :]:
            assert store.append(incoming(item), item.fde)
        store.close()
        assert file_digests(crashed) == want, f"cut at {cut}"


def test_cut_inside_the_sealing_rotate(tmp_path: Path) -> None:
    """A crash while sealing: the next segment does not exist yet, the Rotate is torn."""
    items = history(40, payload=150)
    want = reference(tmp_path, items)
    live = BinlogStore(tmp_path / "live", segment_bytes=SEGMENT_BYTES)
    live.append(incoming(items[0]), items[0].fde)
    meta_at_open = (tmp_path / "live" / META_FILE).read_bytes()
    n = 1
    while len(live.segments()) < 2:
        live.append(incoming(items[n]), items[n].fde)
        live.publish()
        n += 1
    first, second = live.segments()[0], live.segments()[1]
    rotate_start = live.index(first.name)[-1].end
    for cut in range(rotate_start, first.size + 1):
        crashed = crash_copy(tmp_path / "live", tmp_path / "crashed")
        (crashed / second.name).unlink()
        index_path(crashed / second.name).unlink()
        (crashed / META_FILE).write_bytes(meta_at_open)
        with open(crashed / first.name, "r+b") as f:
            f.truncate(cut)
        store = BinlogStore(crashed, segment_bytes=SEGMENT_BYTES)
        assert_consistent(store, items[: n - 1])
        assert store.segments()[-1].sealed == (cut == first.size)
        for item in items[n - 1 :]:
            assert store.append(incoming(item), item.fde)
        store.close()
        assert file_digests(crashed) == want, f"cut at {cut}"


def test_crash_while_creating_a_segment(tmp_path: Path) -> None:
    """The new segment's file exists (header torn anywhere) but the checkpoint never saw it."""
    items = history(40, payload=150)
    want = reference(tmp_path, items)
    live = BinlogStore(tmp_path / "live", segment_bytes=SEGMENT_BYTES)
    n = 0
    meta_before = b""
    while len(live.segments()) < 2:
        meta_before = (tmp_path / "live" / META_FILE).read_bytes() if n else b""
        live.append(incoming(items[n]), items[n].fde)
        live.publish()
        n += 1
    second = live.segments()[1]
    header_len = live.index(second.name)[0].offset
    for cut in range(header_len + 1):
        crashed = crash_copy(tmp_path / "live", tmp_path / "crashed")
        (crashed / META_FILE).write_bytes(meta_before)
        with open(crashed / second.name, "r+b") as f:
            f.truncate(cut)
        index_path(crashed / second.name).write_bytes(b"")
        store = BinlogStore(crashed, segment_bytes=SEGMENT_BYTES)
        assert_consistent(store, items[: n - 1])
        for item in items[n - 1 :]:
            assert store.append(incoming(item), item.fde)
        store.close()
        assert file_digests(crashed) == want, f"cut at {cut}"


@pytest.mark.parametrize("where", [0, 20, -5], ids=["first_event", "middle", "crc"])
def test_bad_crc_in_the_tail_is_cut(tmp_path: Path, where: int) -> None:
    items = history(10)
    want = reference(tmp_path, items)
    live = fill(tmp_path / "live", items)
    seg = live.segments()[-1]
    last = live.index(seg.name)[-1]
    crashed = crash_copy(tmp_path / "live", tmp_path / "crashed")
    with open(crashed / seg.name, "r+b") as f:
        pos = last.offset + where if where >= 0 else last.end + where
        f.seek(pos)
        byte = f.read(1)
        f.seek(pos)
        f.write(bytes([byte[0] ^ 0x40]))
    store = BinlogStore(crashed, segment_bytes=SEGMENT_BYTES)
    assert_consistent(store, items[:-1])
    store.append(incoming(items[-1]), items[-1].fde)
    store.close()
    assert file_digests(crashed) == want


def test_garbage_after_the_last_transaction_is_cut(tmp_path: Path) -> None:
    items = history(10)
    want = reference(tmp_path, items)
    live = fill(tmp_path / "live", items)
    live.close()
    seg = live.segments()[-1]
    with open(tmp_path / "live" / seg.name, "ab") as f:
        f.write(b"\x00" * 7 + b"\xff" * 40)
    store = BinlogStore(tmp_path / "live", segment_bytes=SEGMENT_BYTES)
    assert_consistent(store, items)
    store.close()
    assert file_digests(tmp_path / "live") == want


@pytest.mark.parametrize("closed", [True, False], ids=["closed", "killed"])
def test_torn_index_of_the_active_segment_is_rebuilt(tmp_path: Path, closed: bool) -> None:
    items = history(10)
    want = reference(tmp_path, items)
    live = fill(tmp_path / "live", items)
    if closed:
        live.close()
    seg = live.segments()[-1]
    size = index_path(tmp_path / "live" / seg.name).stat().st_size
    for cut in [0, 1, 5, size // 2, size - 1]:
        crashed = crash_copy(tmp_path / "live", tmp_path / "crashed")
        with open(index_path(crashed / seg.name), "r+b") as f:
            f.truncate(cut)
        store = BinlogStore(crashed, segment_bytes=SEGMENT_BYTES)
        assert_consistent(store, items)
        store.close()
        assert file_digests(crashed) == want, f"index cut at {cut}"


def test_missing_index_and_foreign_index_bytes(tmp_path: Path) -> None:
    items = history(10)
    want = reference(tmp_path, items)
    live = fill(tmp_path / "live", items)
    live.close()
    seg = live.segments()[-1]
    index_path(tmp_path / "live" / seg.name).unlink()
    store = BinlogStore(tmp_path / "live", segment_bytes=SEGMENT_BYTES)
    assert_consistent(store, items)
    store.close()
    assert file_digests(tmp_path / "live") == want
    with open(index_path(tmp_path / "live" / seg.name), "ab") as f:
        f.write(b"T\x07garbage")
    store = BinlogStore(tmp_path / "live", segment_bytes=SEGMENT_BYTES)
    assert_consistent(store, items)
    store.close()
    assert file_digests(tmp_path / "live") == want


def test_missing_store_meta(tmp_path: Path) -> None:
    """Without the checkpoint the store rebuilds everything from the segments themselves."""
    items = history(60, payload=150, rotate_every=25)
    want = reference(tmp_path, items)
    live = fill(tmp_path / "live", items[:50])
    live.close()
    (tmp_path / "live" / META_FILE).unlink()
    store = BinlogStore(tmp_path / "live", segment_bytes=SEGMENT_BYTES)
    assert_consistent(store, items[:50])
    assert [s.source_file for s in store.segments()] == [s.source_file for s in live.segments()]
    for item in items[50:]:
        store.append(incoming(item), item.fde)
    store.close()
    assert file_digests(tmp_path / "live") == want


@pytest.mark.parametrize("closed", [True, False], ids=["closed", "killed"])
def test_meta_older_than_the_data(tmp_path: Path, closed: bool) -> None:
    """Segments created and sealed after the last checkpoint are found and verified."""
    items = history(80, payload=150, rotate_every=30)
    want = reference(tmp_path, items)
    live = fill(tmp_path / "live", items[:5])
    old_meta = (tmp_path / "live" / META_FILE).read_bytes()
    for item in items[5:70]:
        live.append(incoming(item), item.fde)
    live.publish()
    if closed:
        live.close()
    assert len(live.segments()) > 3
    crashed = crash_copy(tmp_path / "live", tmp_path / "crashed")
    (crashed / META_FILE).write_bytes(old_meta)
    store = BinlogStore(crashed, segment_bytes=SEGMENT_BYTES)
    assert_consistent(store, items[:70])
    assert [s.name for s in store.segments()] == [s.name for s in live.segments()]
    assert store.total_bytes == sum(s.size for s in store.segments())
    for item in items:
        store.append(incoming(item), item.fde)  # a journal replay from the start: all skipped but 10
    store.close()
    assert file_digests(crashed) == want


def test_staged_bytes_are_dropped_on_reopen(tmp_path: Path) -> None:
    """Staged pieces never touch a segment; a crash leaves them in staging.tmp, removed on open."""
    items = history(5)
    live = fill(tmp_path / "live", items)
    live.close()
    want = file_digests(tmp_path / "live")
    live = BinlogStore(tmp_path / "live", segment_bytes=SEGMENT_BYTES)
    stream = SourceStream()
    stream.gno = 5
    big = stream.txn(payload=3000)
    for i in range(0, 2000, 500):
        live.stage(
            big.txn.data[i : i + 500],
            fde=big.fde,
            gtid=big.txn.gtid,
            source_file="binlog.000001",
            timestamp=1,
        )
        live.publish()
        assert live._staged is not None
        live._staged.file.flush()  # what the OS holds after a kill
        crashed = crash_copy(tmp_path / "live", tmp_path / "crashed")
        assert (crashed / "staging.tmp").stat().st_size == i + 500
        store = BinlogStore(crashed, segment_bytes=SEGMENT_BYTES)
        assert_consistent(store, items)
        assert not (crashed / "staging.tmp").exists()
        store.close()
        assert file_digests(crashed) == want


def test_close_discards_a_staged_transaction(tmp_path: Path) -> None:
    items = history(5)
    live = fill(tmp_path / "live", items)
    want = file_digests(tmp_path / "live")
    live.stage(
        b"x" * 100,
        fde=items[0].fde,
        gtid=f"{items[0].txn.gtid[:-1]}99",
        source_file=items[0].source_file,
        timestamp=1,
    )
    live.close()
    assert file_digests(tmp_path / "live") == want
    assert_consistent(BinlogStore(tmp_path / "live", segment_bytes=SEGMENT_BYTES), items)


def test_reopen_twice_without_writes_changes_nothing(tmp_path: Path) -> None:
    items = history(30, rotate_every=10)
    live = fill(tmp_path / "live", items)
    live.close()
    want = file_digests(tmp_path / "live")
    for _ in range(2):
        store = BinlogStore(tmp_path / "live", segment_bytes=SEGMENT_BYTES)
        assert_consistent(store, items)
        store.close()
        assert file_digests(tmp_path / "live") == want
