"""Catch-up import: a peer's segment bytes copied piecewise give an identical, verified store."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from kingbus.binlog.gtids import GtidSet
from kingbus.store.store import BinlogStore, StoreError
from tests.support.fabricate import SourceStream, SourceTxn, file_digests, incoming

SEGMENT_BYTES = 4096


def history(n: int) -> list[SourceTxn]:
    stream = SourceStream()
    out = []
    for i in range(n):
        if i in (30, 45):
            stream.rotate()
        out.append(stream.txn(payload=[80, 700, 2500][i % 3]))
    return out


def make_peer(directory: Path, items: list[SourceTxn]) -> BinlogStore:
    store = BinlogStore(directory, segment_bytes=SEGMENT_BYTES)
    for item in items:
        store.append(incoming(item), item.fde)
    store.publish()
    return store


def split_points(size: int, rng: random.Random, start: int = 0) -> list[tuple[int, int]]:
    """Pieces [a, b) covering start..size, of sizes from 1 byte up (mid-event, mid-transaction)."""
    out, pos = [], start
    while pos < size:
        n = rng.choice([1, 3, 19, 100, 1000, 5000])
        out.append((pos, min(size, pos + n)))
        pos += n
    return out


def copy_from(peer: BinlogStore, local: BinlogStore, rng: random.Random, *, upto: str = "~") -> None:
    """What kingbus.raft.transfer does: for each segment from the local end, pieces, then finish."""
    for seg in peer.segments():
        if seg.name > upto:
            break
        have = next((s.size for s in local.segments() if s.name == seg.name), None)
        if have is None:
            if local.segments() and seg.name < local.segments()[-1].name:
                continue
            have = 0
        if have >= seg.size:
            continue
        for a, b in split_points(seg.size, rng, have):
            local.import_data(seg.name, a, peer.read(seg.name, a, b - a))
        local.finish_import(seg.name, source_file=seg.source_file)


@pytest.mark.parametrize("restart", [True, False], ids=["restart", "no_restart"])
@pytest.mark.parametrize("seed", range(5))
def test_import_into_an_empty_store_gives_identical_files(tmp_path: Path, seed: int, restart: bool) -> None:
    items = history(60)
    peer = make_peer(tmp_path / "peer", items)
    local = BinlogStore(tmp_path / "local", segment_bytes=SEGMENT_BYTES)
    copy_from(peer, local, random.Random(seed))
    assert local.committed_gtids == peer.committed_gtids
    assert local.segments() == peer.segments()
    assert file_digests(tmp_path / "local") == file_digests(tmp_path / "peer")
    # Both go on with the same appends and stay identical, also after a restart.
    if restart:
        local.close()
        local = BinlogStore(tmp_path / "local", segment_bytes=SEGMENT_BYTES)
    stream = SourceStream()
    stream.gno = 60
    stream.file_no = 3
    stream.fde = items[-1].fde
    more = [stream.txn(payload=900) for _ in range(10)]
    for store in (peer, local):
        for item in more:
            assert store.append(incoming(item), item.fde)
        store.close()
    assert file_digests(tmp_path / "local") == file_digests(tmp_path / "peer")


@pytest.mark.parametrize("behind", [1, 7, 20, 31, 44, 59])
def test_import_into_a_store_that_is_behind(tmp_path: Path, behind: int) -> None:
    items = history(60)
    peer = make_peer(tmp_path / "peer", items)
    local = make_peer(tmp_path / "local", items[:behind])
    copy_from(peer, local, random.Random(behind))
    assert local.committed_gtids == peer.committed_gtids
    assert local.segments() == peer.segments()
    local.close()
    peer.close()
    assert file_digests(tmp_path / "local") == file_digests(tmp_path / "peer")


def test_import_of_a_peer_that_started_mid_history(tmp_path: Path) -> None:
    """The first imported segment's Previous_gtids becomes the purged set."""
    items = history(60)
    peer = make_peer(tmp_path / "peer", items)
    peer.purge([s.name for s in peer.segments()[:3]])
    local = BinlogStore(tmp_path / "local", segment_bytes=SEGMENT_BYTES)
    copy_from(peer, local, random.Random(1))
    assert local.purged_gtids == peer.purged_gtids
    assert local.committed_gtids == peer.committed_gtids
    local.close()
    again = BinlogStore(tmp_path / "local", segment_bytes=SEGMENT_BYTES)
    assert again.purged_gtids == peer.purged_gtids
    assert again.committed_gtids == peer.committed_gtids


@pytest.mark.parametrize("where", ["txn_body", "header"])
def test_corrupted_import_is_cut_by_finish_import(tmp_path: Path, where: str) -> None:
    items = history(60)
    peer = make_peer(tmp_path / "peer", items)
    local = make_peer(tmp_path / "local", items[:10])
    seg = local.segments()[-1]
    last_entry = peer.index(seg.name)[-1] if where == "txn_body" else None
    size = next(s.size for s in peer.segments() if s.name == seg.name)
    if where == "txn_body":
        assert last_entry is not None
        data = bytearray(peer.read(seg.name, seg.size, size - seg.size))
        bad_at = last_entry.offset + last_entry.length // 2 - seg.size
        data[bad_at] ^= 0xFF
        local.import_data(seg.name, seg.size, bytes(data))
        local.finish_import(seg.name, source_file=seg.source_file)
        got = local.segments()[-1]
        assert got.size == last_entry.offset
        assert not got.sealed
        assert not local.is_committed(last_entry.gtid)
        want = GtidSet.parse(",".join(e.gtid for e in peer.index(seg.name)[:-1])).union(
            GtidSet.parse(seg.previous_gtids)
        )
        assert local.committed_gtids == want
        assert local.total_bytes == sum(s.size for s in local.segments())
    else:
        # The next, new segment arrives with a damaged header: refused, and nothing is left.
        local_names = [s.name for s in local.segments()]
        copy_from(peer, local, random.Random(0), upto=local_names[-1])  # the current segment only
        nxt = peer.segments()[len(local.segments())]
        data = bytearray(peer.read(nxt.name, 0, nxt.size))
        data[10] ^= 0xFF
        local.import_data(nxt.name, 0, bytes(data))
        with pytest.raises((StoreError, ValueError)):
            local.finish_import(nxt.name, source_file=nxt.source_file)
        assert nxt.name not in [s.name for s in local.segments()]
        assert local_names
    # Whatever was cut, a later catch-up completes it exactly.
    copy_from(peer, local, random.Random(2))
    assert local.committed_gtids == peer.committed_gtids
    local.close()
    peer.close()
    assert file_digests(tmp_path / "local") == file_digests(tmp_path / "peer")


def test_interrupted_import_can_be_restarted_from_the_known_size(tmp_path: Path) -> None:
    """A catch-up that died mid-segment (no finish_import) must not block the next attempt."""
    items = history(60)
    peer = make_peer(tmp_path / "peer", items)
    local = make_peer(tmp_path / "local", items[:5])
    seg = local.segments()[-1]
    local.import_data(seg.name, seg.size, peer.read(seg.name, seg.size, 123))
    copy_from(peer, local, random.Random(3))  # starts again from what segments() says
    assert local.committed_gtids == peer.committed_gtids
    local.close()
    peer.close()
    assert file_digests(tmp_path / "local") == file_digests(tmp_path / "peer")


def test_append_after_an_interrupted_import_keeps_the_store_consistent(tmp_path: Path) -> None:
    items = history(20)
    want_dir = tmp_path / "want"
    make_peer(want_dir, items).close()
    peer = make_peer(tmp_path / "peer", items[:15])
    local = make_peer(tmp_path / "local", items[:5])
    seg = local.segments()[-1]
    local.import_data(seg.name, seg.size, peer.read(seg.name, seg.size, 50))
    for item in items[5:]:  # the apply path goes on (e.g. the catch-up was abandoned)
        local.append(incoming(item), item.fde)
    local.close()
    assert file_digests(tmp_path / "local") == file_digests(want_dir)
    reopened = BinlogStore(tmp_path / "local", segment_bytes=SEGMENT_BYTES)
    assert reopened.committed_gtids == GtidSet.parse(",".join(i.txn.gtid for i in items))


@pytest.mark.parametrize("case", ["gap", "offset", "sealed", "unsealed_predecessor"])
def test_import_refusals(tmp_path: Path, case: str) -> None:
    items = history(60)
    peer = make_peer(tmp_path / "peer", items)
    local = make_peer(tmp_path / "local", items[:40])
    segs = local.segments()
    before = file_digests(tmp_path / "local")
    last = segs[-1]
    with pytest.raises(StoreError):
        if case == "gap":
            number = int(last.name.rsplit(".", 1)[1]) + 2
            local.import_data(f"kingbus-bin.{number:06d}", 0, b"x")
        elif case == "offset":
            local.import_data(last.name, last.size + 5, b"x")
        elif case == "sealed":
            local.import_data(segs[0].name, segs[0].size, b"x")
        else:
            number = int(last.name.rsplit(".", 1)[1]) + 1
            local.import_data(f"kingbus-bin.{number:06d}", 0, b"x")
    assert file_digests(tmp_path / "local") == before
    assert peer.segments()


def test_import_discards_a_staged_transaction(tmp_path: Path) -> None:
    items = history(20)
    peer = make_peer(tmp_path / "peer", items)
    local = make_peer(tmp_path / "local", items[:5])
    big = items[5]
    local.stage(big.txn.data[:100], fde=big.fde, gtid=big.txn.gtid, source_file=big.source_file, timestamp=1)
    copy_from(peer, local, random.Random(4))
    assert not local.has_staged
    local.close()
    peer.close()
    assert file_digests(tmp_path / "local") == file_digests(tmp_path / "peer")
    shutil.rmtree(tmp_path / "peer")


def test_finish_import_of_the_active_segment_without_new_bytes(tmp_path: Path) -> None:
    """finish_import on the live active segment (nothing imported) keeps appends consistent."""
    items = history(20)
    want_dir = tmp_path / "want"
    make_peer(want_dir, items).close()
    local = BinlogStore(tmp_path / "local", segment_bytes=SEGMENT_BYTES)
    for item in items[:8]:
        local.append(incoming(item), item.fde)  # not published: still in the writer's buffer
    seg = local.segments()[-1]
    local.finish_import(seg.name, source_file=seg.source_file)
    for item in items[8:]:
        local.append(incoming(item), item.fde)
    local.close()
    assert file_digests(tmp_path / "local") == file_digests(want_dir)
