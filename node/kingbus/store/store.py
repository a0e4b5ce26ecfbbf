"""The binlog store: committed transactions in segment files, byte for byte.

Theory of operation
-------------------
The store is written by exactly one thread (the Raft apply path) and read by many (dump
sessions, the admin API, peers catching up).  It only ever *appends* whole transactions to
the active segment; the committed end of the active segment is the single number that tells
readers how far they may read, in the spirit of MySQL's `atomic_binlog_end_pos`.  Readers
see the segment list as of the last `publish()` (which flushes the writer first), so every
byte they are told about is in the file.  A
transaction larger than a Raft entry arrives in chunks: they are *staged* in a side file
(`staging.tmp`, never read by anyone else) and appended in one step when the last chunk
commits, or dropped if the transaction is abandoned.  Only committed transactions ever
decide a rotation, so replaying the journal into a store that is already further on (where
an abandoned transaction is staged again in another segment context) changes nothing.

Every node applies the same Raft log, and the segment layout depends only on that log (the
source's FDE and file names, the transactions, and the cluster-wide `segment_bytes`), so
every node's segment files are byte-identical.  That is what lets a new node catch up by
copying a peer's files.

Durability: appends are not fsynced one by one; the Raft journal already holds every
committed entry durably.  `checkpoint()` fsyncs the data and then atomically replaces
`store.meta`; Raft log compaction checkpoints before it drops journal entries.  On open the
store re-reads the last segment and every segment the checkpoint does not know as sealed,
verifying every CRC, and cuts whatever is not a complete, intact transaction; journal replay
(idempotent by GTID) re-applies the rest.  It also finishes what a crash interrupted: files a
purge had already dropped from the checkpoint are removed, and so is a last segment created
just before a crash that holds no transaction.  Each segment's source file is recorded in its
index as well as in the checkpoint, because the rotation rule depends on it.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Protocol

from kingbus.binlog import errors
from kingbus.binlog.gtids import Gtid, GtidSet, GtidSetBuilder, Tsid
from kingbus.store import layout
from kingbus.store.index import IndexEntry, IndexWriter, index_path, read_index, read_index_source_file
from kingbus.store.meta import SegmentMeta, StoreMeta, fsync_dir, read_meta, write_meta

log = logging.getLogger(__name__)

SEGMENT_PREFIX = "kingbus-bin."


class StoreError(Exception):
    """The store cannot do what was asked without breaking an invariant."""


@dataclass(frozen=True, slots=True)
class IncomingTxn:
    """A whole transaction as the source wrote it, plus where it came from."""

    gtid: str  # "uuid:gno" or "uuid:tag:gno"
    data: bytes
    source_file: str
    source_end_pos: int
    timestamp: int  # header timestamp of its first event


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    name: str
    size: int  # committed bytes readers may read
    sealed: bool
    previous_gtids: str
    source_file: str
    first_timestamp: int


STAGING_FILE = "staging.tmp"
_COPY_BLOCK = 1 << 20
_WRITE_BUFFER = 1 << 20


@dataclass(slots=True)
class _Staged:
    gtid: str
    source_file: str
    timestamp: int
    fde: bytes
    file: BinaryIO
    length: int = 0


class BatchTxn(Protocol):
    """What `BinlogStore.append_batch` reads of a transaction (a Raft entry's `Txn`)."""

    @property
    def gtid(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def source_end_pos(self) -> int: ...
    @property
    def timestamp(self) -> int: ...


def gtid_key(text: str) -> tuple[Tsid, int]:
    """`uuid:gno` or `uuid:tag:gno` -> ((uuid, tag), gno) without building a Gtid (hot path;
    the text was produced by `str(Gtid)` on the leader, so it is canonical)."""
    head, _, gno = text.rpartition(":")
    uuid, _, tag = head.partition(":")
    return (uuid, tag), int(gno)


def gtid_from_text(text: str) -> Gtid:
    """`uuid:gno` or `uuid:tag:gno` -> Gtid, without the general set parser (hot path)."""
    head, _, gno = text.rpartition(":")
    uuid, _, tag = head.partition(":")
    return Gtid(uuid, int(gno), tag)


def segment_name(number: int) -> str:
    return f"{SEGMENT_PREFIX}{number:06d}"


def segment_number(name: str) -> int:
    if not name.startswith(SEGMENT_PREFIX):
        raise ValueError(f"not a segment name: {name!r}")
    return int(name[len(SEGMENT_PREFIX) :])


class BinlogStore:
    def __init__(self, directory: Path, *, segment_bytes: int, fsync: bool = True) -> None:
        self._dir = directory
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._lock = threading.RLock()
        self._segments: list[SegmentInfo] = []
        # What readers see: `_segments` as of the last publish.  Appended bytes may still sit
        # in the writer's buffer, so sizes become visible only once `publish` has flushed them.
        self._visible: list[SegmentInfo] = []
        # Mutable for cheap appends; `committed_gtids` hands out an immutable snapshot.
        self._committed = GtidSetBuilder()
        self._committed_snapshot: GtidSet | None = None
        self._purged = GtidSet()
        self._active_file: object | None = None
        self._data: _SegmentWriter | None = None
        self._index: IndexWriter | None = None
        self._active_fde: bytes | None = None
        self._active_identity: bytes | None = None  # fde_identity(_active_fde), for the hot path
        self._staged: _Staged | None = None
        self._listeners: list[Callable[[], None]] = []
        self._total_bytes = 0
        self._committed_txns = 0
        self._open()

    # ------------------------------------------------------------------ opening, recovery
    def _open(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        # A transaction staged before a crash was never committed; the journal replays it.
        (self._dir / STAGING_FILE).unlink(missing_ok=True)
        meta = read_meta(self._dir)
        if meta is not None and meta.segment_bytes != self._segment_bytes:
            raise StoreError(
                f"store.segment_bytes is {self._segment_bytes} but the data in {self._dir} was "
                f"written with {meta.segment_bytes}; it must be the same on every member"
            )
        on_disk = sorted(
            p.name
            for p in self._dir.iterdir()
            if p.name.startswith(SEGMENT_PREFIX) and "." not in p.name[12:]
        )
        known = {s.name: s for s in meta.segments} if meta else {}
        if meta is not None:
            self._purged = GtidSet.parse(meta.purged_gtids)
            on_disk = self._finish_interrupted_purge(on_disk, meta)
        on_disk = self._drop_unrecorded_empty_tail(on_disk, known)
        for i, name in enumerate(on_disk):
            path = self._dir / name
            seg_meta = known.get(name)
            # The last segment is always re-verified: the committed set is rebuilt from its
            # index, so that index must be checked against the data.
            is_last = i == len(on_disk) - 1
            if (
                not is_last
                and seg_meta is not None
                and seg_meta.sealed
                and path.stat().st_size == seg_meta.size
            ):
                self._segments.append(_info(seg_meta))
                continue
            # Unsealed or unknown to the checkpoint: verify it by scanning.
            self._segments.append(self._recover_segment(path, seg_meta.source_file if seg_meta else ""))
        for seg, after in zip(self._segments, self._segments[1:], strict=False):
            if not seg.sealed:
                raise StoreError(f"segment {seg.name} is not sealed but is not the last one")
            if segment_number(after.name) != segment_number(seg.name) + 1:
                # Serving across a missing file would skip transactions (DESIGN invariant 4).
                raise StoreError(f"segment files are missing between {seg.name} and {after.name}")
        self._total_bytes = sum(s.size for s in self._segments)
        if self._segments:
            last = self._segments[-1]
            self._committed = self._rebuild_committed(last)
            if meta is not None:
                lost = GtidSet.parse(meta.committed_gtids).difference(self._committed.build())
                if not lost.is_empty():
                    # Data below the checkpoint was damaged. The Raft journal or a peer must
                    # supply it again; say so loudly rather than pretend.
                    log.error("store lost checkpointed transactions %s; they must be re-fetched", lost)
            if not last.sealed:
                self._reopen_active(last)
        else:
            self._committed = GtidSetBuilder(self._purged)
        self._visible = list(self._segments)

    def _finish_interrupted_purge(self, on_disk: list[str], meta: StoreMeta) -> list[str]:
        """Removes files a purge had already dropped from the checkpoint before a crash."""
        if not meta.segments:
            return on_disk
        first = segment_number(meta.segments[0].name)
        keep = []
        for name in on_disk:
            if segment_number(name) < first:
                log.warning("removing %s: purged by the checkpoint before a crash", name)
                (self._dir / name).unlink()
                index_path(self._dir / name).unlink(missing_ok=True)
            else:
                keep.append(name)
        return keep

    def _drop_unrecorded_empty_tail(self, on_disk: list[str], known: dict[str, SegmentMeta]) -> list[str]:
        """Removes a last segment that a crash left between its creation and its checkpoint.

        `_open_segment` writes the header, then checkpoints.  A crash in between leaves a file
        the checkpoint does not know (its source file unknown, its header possibly torn) that
        holds no transaction; the next append recreates exactly the same file.
        """
        if not on_disk or on_disk[-1] in known:
            return on_disk
        path = self._dir / on_disk[-1]
        data = path.read_bytes()
        try:
            scan = layout.scan_segment(data)
        except (errors.MalformedEvent, ValueError, IndexError, struct.error):
            scan = None
        if scan is not None and (scan.entries or scan.sealed):
            return on_disk
        log.warning("removing %s: created just before a crash, holds no transaction", path.name)
        path.unlink()
        index_path(path).unlink(missing_ok=True)
        fsync_dir(self._dir)
        return on_disk[:-1]

    def _recover_segment(self, path: Path, source_file: str) -> SegmentInfo:
        data = path.read_bytes()
        scan = layout.scan_segment(data)
        if scan.good_end < len(data):
            log.warning(
                "segment %s: cutting %d bytes after the last intact transaction (%s)",
                path.name,
                len(data) - scan.good_end,
                scan.problem or "incomplete",
            )
            with open(path, "r+b") as f:
                f.truncate(scan.good_end)
                f.flush()
                os.fsync(f.fileno())
        idx_path = index_path(path)
        entries = read_index(idx_path)
        recorded_source = read_index_source_file(idx_path)
        # Without a checkpoint entry the index is the only record of the source file.
        source_file = source_file or recorded_source
        if entries != scan.entries or recorded_source != source_file:
            rebuilt = IndexWriter(idx_path, existing=scan.entries, source_file=source_file)
            # A later checkpoint may list this segment as sealed, and then its index is no
            # longer re-verified on open: the rebuilt index must be as durable as the data.
            rebuilt.fsync()
            rebuilt.close()
        return SegmentInfo(
            name=path.name,
            size=scan.good_end,
            sealed=scan.sealed,
            previous_gtids=str(scan.previous_gtids),
            source_file=source_file,
            first_timestamp=scan.first_timestamp,
        )

    def _rebuild_committed(self, last: SegmentInfo) -> GtidSetBuilder:
        self._committed_snapshot = None
        builder = GtidSetBuilder(GtidSet.parse(last.previous_gtids))
        for entry in read_index(index_path(self._dir / last.name)):
            builder.add(gtid_from_text(entry.gtid))
        return builder

    def _close_active(self) -> None:
        """Flushes and closes the active segment's writers (bytes written so far stay)."""
        if self._data is not None:
            self._data.close()
            self._data = None
        if self._index is not None:
            self._index.close()
            self._index = None

    def _resume_active(self) -> None:
        seg = self._segments[-1]
        path = self._dir / seg.name
        with open(path, "r+b") as f:
            f.truncate(seg.size)
        self._reopen_active(seg)

    def _reopen_active(self, seg: SegmentInfo) -> None:
        path = self._dir / seg.name
        self._data = _SegmentWriter(path, append=True)
        entries = read_index(index_path(path))
        self._index = IndexWriter(index_path(path), existing=entries, source_file=seg.source_file)
        self._set_active_fde(layout.read_fde(path))

    # ------------------------------------------------------------------ reading
    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def committed_gtids(self) -> GtidSet:
        snapshot = self._committed_snapshot
        if snapshot is None:
            with self._lock:
                snapshot = self._committed_snapshot = self._committed.build()
        return snapshot

    def is_committed(self, gtid: str) -> bool:
        return self._committed.contains(gtid_from_text(gtid))

    @property
    def purged_gtids(self) -> GtidSet:
        return self._purged

    @property
    def total_bytes(self) -> int:
        return self._total_bytes

    @property
    def committed_transactions(self) -> int:
        """Transactions appended since this process opened the store (for metrics)."""
        return self._committed_txns

    def segments(self) -> list[SegmentInfo]:
        """The segments as readers may read them (as of the last `publish`)."""
        with self._lock:
            return list(self._visible)

    def segment_path(self, name: str) -> Path:
        segment_number(name)  # validates: callers pass names that come from the network
        return self._dir / name

    def read(self, name: str, offset: int, length: int) -> bytes:
        """Reads committed bytes only; asking past the committed end is an error."""
        with self._lock:
            seg = next((s for s in self._visible if s.name == name), None)
        if seg is None:
            raise StoreError(f"no segment {name}")
        if offset < 0 or offset + length > seg.size:
            raise StoreError(f"{name}: [{offset}, {offset + length}) is outside 0..{seg.size}")
        try:
            fd = os.open(self._dir / name, os.O_RDONLY)
        except FileNotFoundError:
            raise StoreError(f"no segment {name} (purged)") from None
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def index(self, name: str) -> list[IndexEntry]:
        with self._lock:
            seg = next((s for s in self._visible if s.name == name), None)
        if seg is None:
            raise StoreError(f"no segment {name}")
        return [e for e in read_index(index_path(self._dir / name)) if e.end <= seg.size]

    def add_listener(self, callback: Callable[[], None]) -> None:
        """`callback` runs on the writer thread after each batch becomes visible."""
        self._listeners.append(callback)

    # ------------------------------------------------------------------ writing
    def append(self, txn: IncomingTxn, fde: bytes) -> bool:
        """Appends one whole transaction; False if its GTID is already committed."""
        if self.is_committed(txn.gtid):
            return False
        with self._lock:
            if self._staged is not None:
                raise StoreError("a staged transaction must be committed or discarded first")
            self._prepare_segment(fde, txn.source_file, txn.timestamp)
            assert self._data is not None
            offset = self._data.size
            self._data.write(txn.data)
            self._finish_append(txn.gtid, offset, len(txn.data), txn.source_end_pos, txn.timestamp)
        return True

    def append_batch(self, txns: Sequence[BatchTxn], *, fde: bytes, source_file: str) -> tuple[int, int]:
        """Appends whole transactions of one source file, in order, skipping those already
        committed; returns (transactions appended, their bytes).

        The same result as `append` for each transaction in turn, with the per-transaction
        work cut to what differs between them: the format check is done once, the segment
        record is updated once per segment, GTIDs are never turned into objects.  This is the
        apply path of every member, so its cost per transaction bounds ingest throughput.
        """
        appended = 0
        appended_bytes = 0
        identity = layout.fde_identity(fde)
        committed = self._committed
        with self._lock:
            if self._staged is not None:
                raise StoreError("a staged transaction must be committed or discarded first")
            first_ts = 0
            for txn in txns:
                key, gno = gtid_key(txn.gtid)
                if committed.contains_gno(key, gno):
                    continue
                data = self._data
                if (
                    data is None
                    or data.size >= self._segment_bytes
                    or self._active_identity != identity
                    or self._segments[-1].source_file != source_file
                ):
                    self._note_active(first_ts)
                    # A new segment's header holds the committed set, which this batch grew.
                    self._committed_snapshot = None
                    self._prepare_segment(fde, source_file, txn.timestamp)
                    data = self._data
                    assert data is not None
                    first_ts = 0
                assert self._index is not None
                offset = data.size
                data.write(txn.data)
                size = len(txn.data)
                self._index.append_gtid(key, gno, offset, size, txn.source_end_pos)
                committed.add_gno(key, gno)
                first_ts = first_ts or txn.timestamp
                appended += 1
                appended_bytes += size
            if appended:
                self._committed_snapshot = None
                self._committed_txns += appended
                self._total_bytes += appended_bytes
                self._note_active(first_ts)
        return appended, appended_bytes

    def _set_active_fde(self, fde: bytes | None) -> None:
        self._active_fde = fde
        self._active_identity = None if fde is None else layout.fde_identity(fde)

    def _note_active(self, first_ts: int) -> None:
        """Brings the active segment's record up to the bytes written into it."""
        if self._data is None or not self._segments:
            return
        seg = self._segments[-1]
        if seg.size != self._data.size or (first_ts and not seg.first_timestamp):
            self._segments[-1] = replace(
                seg, size=self._data.size, first_timestamp=seg.first_timestamp or first_ts
            )

    def stage(self, chunk: bytes, *, fde: bytes, gtid: str, source_file: str, timestamp: int) -> None:
        """Keeps a piece of a large transaction aside until its last piece commits.

        The pieces go to a staging file, not to the segment: a transaction that is never
        completed must leave no trace at all -- not even a rotation, which replaying the
        journal into a store that is already further on could not reproduce.
        """
        with self._lock:
            if self._staged is None:
                self._staged = _Staged(
                    gtid, source_file, timestamp, fde, open(self._dir / STAGING_FILE, "w+b")
                )
            self._staged.file.write(chunk)
            self._staged.length += len(chunk)

    def commit_staged(self, *, source_end_pos: int) -> bool:
        """Appends the staged transaction as a whole; False if its GTID is already committed."""
        with self._lock:
            staged = self._staged
            if staged is None:
                raise StoreError("nothing staged")
            if self.is_committed(staged.gtid):
                self.discard_staged()
                return False
            # Decided now, with the state at commit, exactly as for a transaction in a batch.
            self._prepare_segment(staged.fde, staged.source_file, staged.timestamp)
            assert self._data is not None
            offset = self._data.size
            staged.file.flush()
            staged.file.seek(0)
            while block := staged.file.read(_COPY_BLOCK):
                self._data.write(block)
            self.discard_staged()
            self._finish_append(staged.gtid, offset, staged.length, source_end_pos, staged.timestamp)
            return True

    def discard_staged(self) -> None:
        with self._lock:
            if self._staged is None:
                return
            self._staged.file.close()
            (self._dir / STAGING_FILE).unlink(missing_ok=True)
            self._staged = None

    @property
    def has_staged(self) -> bool:
        return self._staged is not None

    def _finish_append(self, gtid: str, offset: int, length: int, source_end_pos: int, ts: int) -> None:
        assert self._index is not None
        sid, _, gno = gtid.rpartition(":")
        self._index.append(IndexEntry(sid, int(gno), offset, length, source_end_pos))
        self._committed.add(gtid_from_text(gtid))
        self._committed_snapshot = None
        self._committed_txns += 1
        self._total_bytes += length
        seg = self._segments[-1]
        self._segments[-1] = replace(seg, size=offset + length, first_timestamp=seg.first_timestamp or ts)

    def _prepare_segment(self, fde: bytes, source_file: str, timestamp: int) -> None:
        """Rotates first when this transaction must start a new segment."""
        if self._data is None and self._segments and not self._segments[-1].sealed:
            # An import into the active segment closed its writer and was never finished:
            # drop its unverified bytes and go on from the committed end.
            self._resume_active()
        if self._data is not None:
            active = self._segments[-1]
            same_source = (
                active.source_file == source_file
                and self._active_fde is not None
                and layout.fde_identity(self._active_fde) == layout.fde_identity(fde)
            )
            if same_source and active.size < self._segment_bytes:
                return
            self._seal_active(timestamp)
        self._open_segment(fde, source_file)

    def _seal_active(self, timestamp: int) -> None:
        assert self._data is not None and self._index is not None and self._active_fde is not None
        active = self._segments[-1]
        next_name = segment_name(segment_number(active.name) + 1)
        rotate = layout.rotate_event(next_name, timestamp=timestamp, fde=self._active_fde, at=self._data.size)
        self._data.write(rotate)
        self._data.fsync()
        self._index.fsync()
        self._index.close()
        self._data.close()
        size = active.size + len(rotate)
        self._total_bytes += len(rotate)
        self._segments[-1] = replace(active, size=size, sealed=True)
        self._data = None
        self._index = None
        self._set_active_fde(None)

    def _open_segment(self, fde: bytes, source_file: str) -> None:
        number = segment_number(self._segments[-1].name) + 1 if self._segments else 1
        name = segment_name(number)
        path = self._dir / name
        header = layout.segment_header(fde, self.committed_gtids)
        self._data = _SegmentWriter(path, append=False)
        self._data.write(header)
        self._data.fsync()
        self._index = IndexWriter(index_path(path), source_file=source_file)
        fsync_dir(self._dir)
        self._set_active_fde(layout.normalized_fde(fde))
        self._total_bytes += len(header)
        self._segments.append(
            SegmentInfo(
                name=name,
                size=len(header),
                sealed=False,
                previous_gtids=str(self.committed_gtids),
                source_file=source_file,
                first_timestamp=0,
            )
        )
        # Everything the segment list describes is on disk now (the sealed segment and this
        # header were fsynced), so readers may see the new list at once.
        self._visible = list(self._segments)
        # The checkpoint is what remembers the segment's source file across a crash, and the
        # rotation rule depends on it: record it now.
        self.checkpoint()

    def publish(self) -> None:
        """Makes everything appended so far readable and wakes the readers."""
        with self._lock:
            if self._data is not None:
                self._data.flush()
            if self._index is not None:
                self._index.flush()
            self._visible = list(self._segments)
        for callback in self._listeners:
            callback()

    def write_back(self) -> None:
        """Pushes what was published of the active segment and its index to disk, without
        holding up appends while the disk works.

        Nothing depends on it for durability (the Raft journal holds every entry until a
        checkpoint), it keeps the checkpoint cheap: the checkpoint runs on Raft's tick thread
        at log compaction, and fsyncing tens of megabytes there stalled heartbeats for as long
        as the disk took.  The descriptors are duplicated under the lock, so a rotation that
        closes the files meanwhile is harmless."""
        with self._lock:
            fds = [os.dup(w.fileno()) for w in (self._data, self._index) if w is not None]
        try:
            for fd in fds:
                os.fdatasync(fd)
        finally:
            for fd in fds:
                os.close(fd)

    def checkpoint(self) -> None:
        """fsyncs the data, then atomically records what it describes (store.meta)."""
        with self._lock:
            if self._data is not None:
                self._data.fsync()
            if self._index is not None:
                self._index.fsync()
            segments = tuple(
                SegmentMeta(
                    name=s.name,
                    previous_gtids=s.previous_gtids,
                    size=s.size,
                    sealed=s.sealed,
                    source_file=s.source_file,
                    first_timestamp=s.first_timestamp,
                )
                for s in self._segments
            )
            meta = StoreMeta(
                segment_bytes=self._segment_bytes,
                committed_gtids=str(self.committed_gtids),
                purged_gtids=str(self._purged),
                segments=segments,
            )
            write_meta(self._dir, meta)

    def set_initial_gtids(self, gtids: GtidSet) -> None:
        """An empty store that starts mid-history treats what came before as purged."""
        with self._lock:
            if self._segments:
                raise StoreError("the initial GTID set can only be set on an empty store")
            self._committed = GtidSetBuilder(gtids)
            self._committed_snapshot = None
            self._purged = gtids
            self.checkpoint()

    # ------------------------------------------------------------------ catch-up import
    def import_data(self, name: str, offset: int, data: bytes) -> None:
        """Appends bytes copied from a peer's identical segment (see kingbus.raft.transfer).

        Only the last segment may grow, or a new one follow it; `offset` must be where the
        local copy ends.  Nothing becomes visible until `finish_import` has verified it.
        """
        with self._lock:
            if self._staged is not None:
                self.discard_staged()
            last = self._segments[-1] if self._segments else None
            if last is not None and name == last.name:
                if last.sealed:
                    raise StoreError(f"{name} is sealed here; nothing to import")
            elif last is not None and segment_number(name) != segment_number(last.name) + 1:
                raise StoreError(f"cannot import {name} after {last.name}: segments must follow")
            elif last is not None and not last.sealed:
                raise StoreError(f"cannot start {name}: {last.name} is not sealed here")
            path = self._dir / name
            if last is not None and last.name == name:
                self._close_active()
            size = path.stat().st_size if path.exists() else 0
            known = last.size if last is not None and last.name == name else 0
            if size != offset and offset == known:
                # An earlier import of this segment died before finish_import; its bytes
                # were never verified nor published.  Start again from what is known.
                with open(path, "r+b") as f:
                    f.truncate(known)
                size = known
            if size != offset:
                raise StoreError(f"{name}: local copy ends at {size}, import starts at {offset}")
            with open(path, "ab") as f:
                f.write(data)

    def finish_import(self, name: str, *, source_file: str) -> None:
        """Verifies imported bytes by CRC and transaction boundaries, then publishes them."""
        with self._lock:
            first = not self._segments
            path = self._dir / name
            if self._segments and self._segments[-1].name == name:
                # Its writers must not outlive the rescan (which may rewrite the index file).
                self._close_active()
            try:
                info = self._recover_segment(path, source_file)
            except (errors.MalformedEvent, ValueError, IndexError, struct.error) as exc:
                if self._segments and self._segments[-1].name == name:
                    # Its header was verified before: only the imported tail can be wrong.
                    raise
                # A new segment whose header did not survive the copy: nothing of it is
                # usable, and leaving it would block the next import (and the next open).
                path.unlink()
                index_path(path).unlink(missing_ok=True)
                raise StoreError(f"{name}: imported segment header is damaged: {exc}") from exc
            if self._segments and self._segments[-1].name == name:
                self._total_bytes -= self._segments[-1].size
                self._segments[-1] = info
            else:
                self._segments.append(info)
            self._total_bytes += info.size
            if first:
                self._purged = GtidSet.parse(info.previous_gtids)
            self._committed = self._rebuild_committed(info)
            if not info.sealed:
                self._reopen_active(info)
            self.checkpoint()
        self.publish()

    # ------------------------------------------------------------------ retention
    def purge(self, names: list[str]) -> None:
        """Removes the oldest sealed segments; `names` must be a prefix of the segment list."""
        with self._lock:
            for expected, name in zip(self._segments, names, strict=False):
                if expected.name != name or not expected.sealed or expected is self._segments[-1]:
                    raise StoreError(f"cannot purge {name}: purges go oldest first, sealed only")
            if not names:
                return
            keep = self._segments[len(names) :]
            self._purged = self._purged.union(GtidSet.parse(keep[0].previous_gtids))
            self._segments = keep
            # Not a copy of `_segments`: the apply thread may have appended unpublished bytes.
            self._visible = [s for s in self._visible if s.name not in names]
            self.checkpoint()  # the purged set must be durable before the files go
            for name in names:
                path = self._dir / name
                self._total_bytes -= path.stat().st_size
                path.unlink()
                index_path(path).unlink(missing_ok=True)
            fsync_dir(self._dir)

    def close(self) -> None:
        with self._lock:
            self.discard_staged()
            if self._data is not None:
                self.checkpoint()
                self._data.close()
                self._data = None
            if self._index is not None:
                self._index.close()
                self._index = None


def _info(meta: SegmentMeta) -> SegmentInfo:
    return SegmentInfo(
        name=meta.name,
        size=meta.size,
        sealed=meta.sealed,
        previous_gtids=meta.previous_gtids,
        source_file=meta.source_file,
        first_timestamp=meta.first_timestamp,
    )


class _SegmentWriter:
    """Buffered appends to the active segment file, with explicit flush and fsync."""

    def __init__(self, path: Path, *, append: bool) -> None:
        # A large buffer: `publish` flushes once per Raft entry, so bytes leave in one write
        # per entry instead of one per 8 KiB.
        self._file = open(path, "r+b" if append else "w+b", buffering=_WRITE_BUFFER)
        self._file.seek(0, os.SEEK_END)
        self.size = self._file.tell()

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self.size += len(data)

    def truncate(self, size: int) -> None:
        self._file.flush()
        self._file.truncate(size)
        self._file.seek(size)
        self.size = size

    def flush(self) -> None:
        self._file.flush()

    def fileno(self) -> int:
        return self._file.fileno()

    def fsync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()
