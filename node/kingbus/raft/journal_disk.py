"""`DiskJournal`: the storage engine of the Raft journal, and its lazy slices.

Layout, durability, recovery and the tentative-cut rule are described in `kingbus.raft.journal`,
the module the rest of the node imports; this module is the implementation.  In short: records
(`journal_records`) in segment files; in RAM an index of (offset, term, CRC) per live entry and
the first and last entries; fsync through a `journal_files.Syncer`; `deleteEntriesFrom` marks a
tentative cut that only a conflicting `add` makes physical.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import operator
import os
import sys
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from kingbus.raft import journal_files, journal_records
from kingbus.raft.journal_files import Syncer, SyncFn
from kingbus.raft.journal_records import SEGMENT_HEADER_BYTES, SEGMENT_MAGIC

log = logging.getLogger(__name__)

#: One pysyncobj log entry: (command, raft index, term).
Entry = tuple[bytes, int, int]

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024

TERM_FILE = "term.json"
COMMIT_FILE = "commit.json"
FIRST_INDEX_FILE = "first-index.json"

_INDEX_TYPECODES = ("Q", "Q", "I")  # offsets, terms, crcs
assert array("I").itemsize == 4


class JournalError(Exception):
    """The journal was used against its contract (e.g. an add that leaves a gap)."""


class JournalCorruptError(JournalError):
    """Stored data is damaged somewhere a crash cannot explain; refusing to guess."""


class StaleViewError(JournalError):
    """An `EntriesView` was read after the journal dropped or rewrote the entries it covers."""


@dataclass(frozen=True, slots=True)
class JournalOptions:
    """How a `DiskJournal` stores data.

    `fsync` is the policy: ``"always"`` (or True) syncs every record before `add` returns and
    every state file before its setter returns; ``"never"`` (or False) syncs nothing.
    `group_commit` (with ``"always"``) moves the record syncs out of `add`: records are written
    at once but synced by `sync()`, one fdatasync for everything added since the last one.  The
    caller then owns the durability rule -- nothing may count on a record before `sync()` --
    which the Raft member keeps (`kingbus.raft.cluster`): a follower syncs before it
    acknowledges, a leader before it counts its own log toward the commit index.
    `sync_file` and `sync_dir` are the system calls used (seams for tests that count them).
    """

    fsync: bool | str = "always"
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    # Newest entries kept in memory, in bytes of commands (0: none).  A leader sends each new
    # entry to every follower right after writing it; without this every send reads it back
    # from disk and re-checks its CRC.  Bounded, so memory does not grow with the log.
    recent_bytes: int = 0
    group_commit: bool = False
    sync_file: SyncFn = os.fdatasync
    sync_dir: SyncFn = os.fsync

    def __post_init__(self) -> None:
        if self.fsync not in (True, False, "always", "never"):
            raise ValueError(f"journal fsync policy must be 'always' or 'never', not {self.fsync!r}")
        if self.segment_bytes <= SEGMENT_HEADER_BYTES:
            raise ValueError(f"journal segment_bytes must exceed {SEGMENT_HEADER_BYTES}")

    @property
    def fsync_enabled(self) -> bool:
        return self.fsync in (True, "always")

    def syncer(self) -> Syncer:
        return Syncer(enabled=self.fsync_enabled, file=self.sync_file, directory=self.sync_dir)


@dataclass(slots=True)
class _Segment:
    seq: int
    path: Path
    fd: int
    first_idx: int  # raft index of the first record in the file (may precede the journal's first)
    size: int


class EntriesView(Sequence[Entry]):
    """A lazy slice of the journal: entries are read from disk when accessed.

    Slicing a view gives another view (pysyncobj trims a leader's batch with ``result[:i + 1]``
    and a follower walks ``prevEntries[1:]``, which may span the whole log); a view pickles
    as a plain list, which is how a batch travels inside an append_entries message (pysyncobj
    pickles a message as soon as it is sent).  A view is only valid until the journal drops or
    rewrites entries (compaction, clear, a conflict truncation): reading it after that raises
    `StaleViewError` instead of returning different entries.
    """

    __slots__ = ("_generation", "_journal", "_start", "_stop")

    def __init__(self, journal: DiskJournal, start: int, stop: int, generation: int) -> None:
        self._journal = journal
        self._start = start
        self._stop = stop
        self._generation = generation

    def __len__(self) -> int:
        return self._stop - self._start

    @overload
    def __getitem__(self, item: int) -> Entry: ...

    @overload
    def __getitem__(self, item: slice) -> Sequence[Entry]: ...

    def __getitem__(self, item: int | slice) -> Entry | Sequence[Entry]:
        if isinstance(item, slice):
            start, stop, step = item.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            stop = max(start, stop)
            return EntriesView(self._journal, self._start + start, self._start + stop, self._generation)
        pos = operator.index(item)
        if pos < 0:
            pos += len(self)
        if not 0 <= pos < len(self):
            raise IndexError("journal view index out of range")
        return self._journal._read_for_view(self._start + pos, self._generation)

    def __iter__(self) -> Iterator[Entry]:
        for pos in range(self._start, self._stop):
            yield self._journal._read_for_view(pos, self._generation)

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (list(self),))

    def __repr__(self) -> str:
        return f"<EntriesView positions {self._start}..{self._stop} of {self._journal.path}>"


class DiskJournal:
    """pysyncobj's journal, on disk.  Theory of operation: `kingbus.raft.journal`."""

    def __init__(self, path: str | os.PathLike[str], options: JournalOptions | None = None) -> None:
        self.options = options or JournalOptions()
        self.path = Path(path)
        self._syncer = self.options.syncer()
        self._lock = threading.RLock()
        self._closed = False
        self._failed: BaseException | None = None

        self._segments: list[_Segment] = []
        self._seg_first: list[int] = []  # first_idx of each segment, for bisect
        self._next_seq = 1
        self._first_idx = 0
        self._offsets = array(_INDEX_TYPECODES[0])
        self._terms = array(_INDEX_TYPECODES[1])
        self._crcs = array(_INDEX_TYPECODES[2])
        self._first_entry: Entry | None = None
        self._phys_last: Entry | None = None
        self._generation = 0
        self._recent: OrderedDict[int, Entry] = OrderedDict()  # raft index -> entry, oldest first
        self._recent_bytes = 0

        # Tentative cut (see the module docstring); when not tentative visible == physical.
        self._tentative = False
        self._cut_pos = 0
        self._visible_len = 0
        self._visible_last: Entry | None = None

        self._term = 0
        self._voted_for: str | None = None
        self._commit_index = 1
        self._commit_dirty = False
        self._unsynced: list[int] = []  # segment fds written since the last sync (group commit)

        self.on_kept_tail: Callable[[Sequence[Entry]], None] | None = None
        self.on_destroy: Callable[[DiskJournal], None] | None = None

        self.tentative_cuts = 0
        self.kept_tail_events = 0
        self.kept_entries = 0
        self.physical_truncations = 0
        self.truncated_entries = 0
        self.identity_mismatches = 0
        self.group_syncs = 0

        self._open()

    # ------------------------------------------------------------------ opening / recovery
    def _open(self) -> None:
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        if created:
            self._syncer.sync_dir(self.path.parent)
        journal_files.remove_stale_tmp_files(self.path)

        term = journal_files.read_json(self.path, TERM_FILE) or {}
        self._term = int(term.get("term", 0))
        voted_for = term.get("voted_for")
        self._voted_for = voted_for if isinstance(voted_for, str) else None
        commit = journal_files.read_json(self.path, COMMIT_FILE) or {}
        self._commit_index = int(commit.get("commit_index", 1))
        first = journal_files.read_json(self.path, FIRST_INDEX_FILE) or {}
        start = int(first.get("first_index", 0))

        found = sorted(
            (seq, self.path / name)
            for name in os.listdir(self.path)
            if (seq := journal_files.segment_seq(name)) is not None
        )
        if found:
            self._next_seq = found[-1][0] + 1
        prev_idx: int | None = None
        for i, (seq, seg_path) in enumerate(found):
            prev_idx = self._load_segment(seq, seg_path, i == len(found) - 1, start, prev_idx)

        self._drop_segments_before(start)
        if not self._offsets and start != 0:
            # Empty journal: a crash during clear() may have left the old lower bound behind.
            self._close_all_segments(unlink=True)
            journal_files.write_json_atomically(self.path, FIRST_INDEX_FILE, {"first_index": 0}, self._syncer)
        if self._offsets:
            self._first_entry = self._read(0)
            self._phys_last = self._read(len(self._offsets) - 1)
        self._visible_len = len(self._offsets)
        self._visible_last = self._phys_last
        self._commit_index = self._clamp_commit(self._commit_index)

    def _load_segment(
        self, seq: int, seg_path: Path, is_last: bool, start: int, prev_idx: int | None
    ) -> int | None:
        fd = os.open(seg_path, os.O_RDWR)
        size = os.fstat(fd).st_size
        header = os.pread(fd, SEGMENT_HEADER_BYTES, 0)
        if header != SEGMENT_MAGIC:
            if is_last and (len(header) < SEGMENT_HEADER_BYTES or not any(header)):
                # The crash happened while the segment was being created: it holds nothing.
                os.close(fd)
                seg_path.unlink()
                self._syncer.sync_dir(self.path)
                return prev_idx
            os.close(fd)
            raise JournalCorruptError(f"{seg_path}: not a journal segment")

        offset = SEGMENT_HEADER_BYTES
        first_in_file: int | None = None
        while offset < size:
            head = journal_records.decode_head(os.pread(fd, journal_records.RECORD_PEEK_BYTES, offset))
            valid = head is not None and offset + head.record_bytes <= size
            if valid and is_last:
                assert head is not None
                valid = journal_records.decode_record(os.pread(fd, head.record_bytes, offset)) is not None
            if not valid:
                if not is_last:
                    os.close(fd)
                    raise JournalCorruptError(
                        f"{seg_path}: bad record at offset {offset} of a sealed segment"
                    )
                log.warning(
                    "journal %s: torn or damaged record at offset %d, truncating %d bytes",
                    seg_path,
                    offset,
                    size - offset,
                )
                os.ftruncate(fd, offset)
                self._syncer.sync_file(fd)
                size = offset
                break
            assert head is not None
            if prev_idx is not None and head.idx != prev_idx + 1:
                os.close(fd)
                raise JournalCorruptError(
                    f"{seg_path}: record at offset {offset} has index {head.idx}, expected {prev_idx + 1}"
                )
            if first_in_file is None:
                first_in_file = head.idx
            if head.idx >= start:
                if not self._offsets:
                    self._first_idx = head.idx
                self._offsets.append(offset)
                self._terms.append(head.term)
                self._crcs.append(head.crc)
            prev_idx = head.idx
            offset += head.record_bytes

        if first_in_file is None:
            os.close(fd)
            seg_path.unlink()
            self._syncer.sync_dir(self.path)
            return prev_idx
        self._segments.append(_Segment(seq=seq, path=seg_path, fd=fd, first_idx=first_in_file, size=size))
        self._seg_first.append(first_in_file)
        return prev_idx

    # ------------------------------------------------------------------ pysyncobj's Journal API
    def add(self, command: bytes, idx: int, term: int) -> None:
        """Append an entry (or, after a tentative cut, keep an identical one); durable on return,
        or with group commit once `sync()` has returned."""
        with self._lock:
            self._check_usable()
            command = bytes(command)
            if self._tentative:
                pos = self._visible_len
                if pos < len(self._offsets):
                    expected = self._first_idx + pos
                    if idx != expected:
                        raise JournalError(f"add of index {idx} where index {expected} comes next")
                    head, crc = journal_records.encode_record_head(idx, term, command)
                    if self._terms[pos] == term and self._crcs[pos] == crc:
                        self._keep(pos, (command, idx, term))
                        return
                    if self._terms[pos] == term:
                        self.identity_mismatches += 1
                        log.error(
                            "journal %s: entry %d of term %d differs from the stored one with the same "
                            "term (Raft log matching violated); replacing it",
                            self.path,
                            idx,
                            term,
                        )
                    self._end_tentative_with_conflict(pos)
                    self._append(head, crc, (command, idx, term))
                    return
                self._end_tentative_kept_all()
            if self._offsets and idx != self._first_idx + len(self._offsets):
                raise JournalError(
                    f"add of index {idx} to a journal ending at {self._first_idx + len(self._offsets) - 1}"
                )
            head, crc = journal_records.encode_record_head(idx, term, command)
            self._append(head, crc, (command, idx, term))

    def deleteEntriesFrom(self, entryFrom: int) -> None:
        """Mark a tentative cut at position `entryFrom` (relative to the first entry)."""
        with self._lock:
            self._check_usable()
            self._settle()
            if entryFrom < 0:
                raise JournalError(f"deleteEntriesFrom({entryFrom}): negative position")
            if entryFrom >= len(self._offsets):
                return
            self.tentative_cuts += 1
            self._tentative = True
            self._cut_pos = entryFrom
            self._visible_len = entryFrom
            self._visible_last = self._entry_at(entryFrom - 1) if entryFrom > 0 else None

    def deleteEntriesTo(self, entryTo: int) -> None:
        """Drop the entries before position `entryTo` (log compaction after a snapshot)."""
        with self._lock:
            self._check_usable()
            self._settle()
            if entryTo <= 0 or not self._offsets:
                return
            if entryTo >= len(self._offsets):
                self._clear()
                return
            new_first = self._first_idx + entryTo
            # Record the new lower bound before unlinking anything, so that a crash in between
            # never resurrects dropped entries as if they were still part of the log.
            journal_files.write_json_atomically(
                self.path, FIRST_INDEX_FILE, {"first_index": new_first}, self._syncer
            )
            del self._offsets[:entryTo]
            del self._terms[:entryTo]
            del self._crcs[:entryTo]
            self._first_idx = new_first
            self._generation += 1
            self._drop_segments_before(new_first)
            self._first_entry = self._read(0)
            self._visible_len = len(self._offsets)

    def clear(self) -> None:
        """Empty the journal (pysyncobj does this when it installs a snapshot)."""
        with self._lock:
            self._check_usable()
            self._settle()
            self._clear()

    def __len__(self) -> int:
        return self._visible_len

    @overload
    def __getitem__(self, item: int) -> Entry: ...

    @overload
    def __getitem__(self, item: slice) -> Sequence[Entry]: ...

    def __getitem__(self, item: int | slice) -> Entry | Sequence[Entry]:
        with self._lock:
            if isinstance(item, slice):
                start, stop, step = item.indices(self._visible_len)
                if step != 1:
                    return [self._entry_at(i) for i in range(start, stop, step)]
                return EntriesView(self, start, max(start, stop), self._generation)
            pos = operator.index(item)
            if pos < 0:
                pos += self._visible_len
            if not 0 <= pos < self._visible_len:
                raise IndexError("journal index out of range")
            if pos == 0:
                assert self._first_entry is not None
                return self._first_entry
            if pos == self._visible_len - 1:
                assert self._visible_last is not None
                return self._visible_last
            return self._entry_at(pos)

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:
        with self._lock:
            self._settle()
            value = self._clamp_commit(raftCommitIndex)
            if value != self._commit_index:
                self._commit_index = value
                self._commit_dirty = True

    def getRaftCommitIndex(self) -> int:
        with self._lock:
            return self._clamp_commit(self._commit_index)

    def setCurrentTerm(self, term: int, votedForNodeId: str | None) -> None:
        """Persist term and vote; durable (under `always`) before returning."""
        with self._lock:
            self._check_usable()
            self._settle()
            if votedForNodeId is not None and not isinstance(votedForNodeId, str):
                raise TypeError(f"votedForNodeId must be a node id string, not {type(votedForNodeId)}")
            journal_files.write_json_atomically(
                self.path, TERM_FILE, {"term": int(term), "voted_for": votedForNodeId}, self._syncer
            )
            self._term = int(term)
            self._voted_for = votedForNodeId

    def getCurrentTerm(self) -> int:
        return self._term

    def getVotedForNodeId(self) -> str | None:
        return self._voted_for

    def onOneSecondTimer(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._settle()
            self._save_commit_index()

    def flush(self) -> None:
        with self._lock:
            if not self._closed:
                self._save_commit_index()

    def sync(self) -> None:
        """Make every record added so far durable (group commit; a no-op without it)."""
        with self._lock:
            if self._unsynced and not self._closed:
                self._check_usable()
                self._sync_unsynced()

    @property
    def unsynced(self) -> bool:
        """Records were added since the last `sync()` (always False without group commit)."""
        return bool(self._unsynced)

    def _destroy(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                if self._failed is None:
                    self._sync_unsynced()
                    self._settle()
                    self._save_commit_index()
            finally:
                self._closed = True
                self._close_all_segments(unlink=False)
        if self.on_destroy is not None:
            self.on_destroy(self)

    # ------------------------------------------------------------------ introspection
    @property
    def first_index(self) -> int | None:
        return self._first_idx if self._offsets else None

    @property
    def last_index(self) -> int | None:
        """Raft index of the last entry on disk (including a tentatively cut tail)."""
        return self._first_idx + len(self._offsets) - 1 if self._offsets else None

    @property
    def tentative(self) -> bool:
        return self._tentative

    def bytes_on_disk(self) -> int:
        with self._lock:
            return sum(seg.size for seg in self._segments)

    def compactable_bytes(self, through_index: int) -> int:
        """Bytes of the records from the first entry through `through_index` (a member's last
        applied entry): what a log compaction would drop.  The size trigger reads this, not
        `bytes_on_disk`, which also counts dropped records still at the start of the first
        segment (segments are unlinked whole; the trigger then fired again right after a
        compaction that ended inside a segment) and entries not applied yet (on a follower,
        the leader's whole pipeline: the trigger then fired at half the size it names)."""
        with self._lock:
            end = min(len(self._offsets), through_index - self._first_idx + 1)
            if end <= 0:
                return 0
            if end == len(self._offsets):
                return sum(seg.size for seg in self._segments) - self._offsets[0]
            segment = bisect.bisect_right(self._seg_first, self._first_idx + end) - 1
            before = sum(seg.size for seg in self._segments[:segment])
            return before - self._offsets[0] + self._offsets[end]

    def index_nbytes(self) -> int:
        """Bytes of RAM held by the entry index (arrays, segment table), not by cached entries."""
        with self._lock:
            total = sum(sys.getsizeof(a) for a in (self._offsets, self._terms, self._crcs))
            total += sys.getsizeof(self._segments) + sys.getsizeof(self._seg_first)
            total += sum(sys.getsizeof(seg) + sys.getsizeof(seg.path) for seg in self._segments)
            return total

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "entries": self._visible_len,
                "first_index": self.first_index or 0,
                "last_index": self.last_index or 0,
                "segments": len(self._segments),
                "bytes_on_disk": sum(seg.size for seg in self._segments),
                "index_bytes": self.index_nbytes(),
                "tentative_cuts": self.tentative_cuts,
                "kept_tail_events": self.kept_tail_events,
                "kept_entries": self.kept_entries,
                "physical_truncations": self.physical_truncations,
                "truncated_entries": self.truncated_entries,
                "identity_mismatches": self.identity_mismatches,
                "group_syncs": self.group_syncs,
            }

    # ------------------------------------------------------------------ tentative cut
    def _keep(self, pos: int, entry: Entry) -> None:
        self._visible_len = pos + 1
        self._visible_last = entry
        if self._visible_len == len(self._offsets):
            self._end_tentative_kept_all()

    def _end_tentative_kept_all(self) -> None:
        """The tentative region was re-added identically (or is revealed): nothing is cut."""
        revealed_from = self._visible_len
        self.kept_tail_events += 1
        self.kept_entries += len(self._offsets) - self._cut_pos
        self._tentative = False
        self._visible_len = len(self._offsets)
        self._visible_last = self._phys_last
        if self.on_kept_tail is not None and revealed_from < len(self._offsets):
            self.on_kept_tail(EntriesView(self, revealed_from, len(self._offsets), self._generation))

    def _end_tentative_with_conflict(self, pos: int) -> None:
        if pos > self._cut_pos:
            self.kept_tail_events += 1
            self.kept_entries += pos - self._cut_pos
        self._tentative = False
        self._truncate_from(pos)

    def _settle(self) -> None:
        if self._tentative:
            self._end_tentative_kept_all()

    # ------------------------------------------------------------------ physical changes
    def _append(self, head: bytes, crc: int, entry: Entry) -> None:
        """Writes the record `head + entry's command` (see `encode_record_head`)."""
        record_bytes = len(head) + len(entry[0])
        seg = self._segments[-1] if self._segments else None
        if seg is None or (
            seg.size > SEGMENT_HEADER_BYTES and seg.size + record_bytes > self.options.segment_bytes
        ):
            seg = self._new_segment(entry[1])
        offset = seg.size
        try:
            _pwrite_all(seg.fd, offset, head, entry[0])
            if not self.options.group_commit:
                self._syncer.sync_file(seg.fd)
            elif not self._unsynced or self._unsynced[-1] != seg.fd:
                self._unsynced.append(seg.fd)
        except OSError as exc:
            # After a failed fsync the kernel may have dropped the dirty pages; nothing more
            # can be promised about this file, so refuse further writes.
            self._failed = exc
            with contextlib.suppress(OSError):
                os.ftruncate(seg.fd, offset)
            raise
        seg.size = offset + record_bytes
        if not self._offsets:
            self._first_idx = entry[1]
            self._first_entry = entry
        self._offsets.append(offset)
        self._terms.append(entry[2])
        self._crcs.append(crc)
        self._phys_last = entry
        self._visible_len = len(self._offsets)
        self._visible_last = entry
        self._remember(entry)

    def _sync_unsynced(self) -> None:
        """Sync the segments written since the last sync, oldest first.  Every path that
        closes a segment file or truncates one calls this first."""
        if not self._unsynced:
            return
        try:
            for fd in self._unsynced:
                self._syncer.sync_file(fd)
        except OSError as exc:
            # As in `_append`: after a failed fsync nothing more can be promised.
            self._failed = exc
            raise
        self._unsynced.clear()
        self.group_syncs += 1

    def _remember(self, entry: Entry) -> None:
        budget = self.options.recent_bytes
        if budget <= 0:
            return
        self._recent[entry[1]] = entry
        self._recent_bytes += len(entry[0])
        while self._recent_bytes > budget and self._recent:
            _, old = self._recent.popitem(last=False)
            self._recent_bytes -= len(old[0])

    def _forget_recent(self) -> None:
        self._recent.clear()
        self._recent_bytes = 0

    def _new_segment(self, first_idx: int) -> _Segment:
        seq = self._next_seq
        self._next_seq += 1
        seg_path = self.path / journal_files.segment_name(seq)
        fd = os.open(seg_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _pwrite_all(fd, 0, SEGMENT_MAGIC)
            self._syncer.sync_file(fd)
            self._syncer.sync_dir(self.path)
        except OSError as exc:
            self._failed = exc
            os.close(fd)
            raise
        seg = _Segment(seq=seq, path=seg_path, fd=fd, first_idx=first_idx, size=SEGMENT_HEADER_BYTES)
        self._segments.append(seg)
        self._seg_first.append(first_idx)
        return seg

    def _truncate_from(self, pos: int) -> None:
        """Physically delete the entries from position `pos` on (a proven conflict)."""
        self._sync_unsynced()
        removed = len(self._offsets) - pos
        self.physical_truncations += 1
        self.truncated_entries += removed
        cut_at = self._first_idx + pos
        # Raft never cuts a committed entry; if it happens, the cluster's state is in doubt.
        log.log(
            logging.CRITICAL if cut_at <= self._commit_index else logging.INFO,
            "journal %s: conflicting entry at index %d (commit index %d), truncating %d entries",
            self.path,
            cut_at,
            self._commit_index,
            removed,
        )
        self._generation += 1
        self._forget_recent()
        if pos == 0:
            self._clear()
            return
        idx = self._first_idx + pos
        k = bisect.bisect_right(self._seg_first, idx) - 1
        unlinked = False
        for seg in reversed(self._segments[k + 1 :]):
            os.close(seg.fd)
            seg.path.unlink()
            unlinked = True
        del self._segments[k + 1 :]
        del self._seg_first[k + 1 :]
        seg = self._segments[k]
        if seg.first_idx == idx:
            os.close(seg.fd)
            seg.path.unlink()
            del self._segments[k]
            del self._seg_first[k]
            unlinked = True
        else:
            seg.size = self._offsets[pos]
            os.ftruncate(seg.fd, seg.size)
            self._syncer.sync_file(seg.fd)
        # The unlinks must be durable before a new record at `idx` is: otherwise a crash could
        # bring back an old segment whose records continue the new one seamlessly.
        if unlinked:
            self._syncer.sync_dir(self.path)
        del self._offsets[pos:]
        del self._terms[pos:]
        del self._crcs[pos:]
        self._phys_last = self._entry_at(pos - 1)
        self._visible_len = pos
        self._visible_last = self._phys_last

    def _clear(self) -> None:
        self._unsynced.clear()  # every segment is unlinked: nothing of them needs to last
        self._tentative = False
        self._close_all_segments(unlink=True)
        journal_files.write_json_atomically(self.path, FIRST_INDEX_FILE, {"first_index": 0}, self._syncer)
        self._offsets = array(_INDEX_TYPECODES[0])
        self._terms = array(_INDEX_TYPECODES[1])
        self._crcs = array(_INDEX_TYPECODES[2])
        self._first_idx = 0
        self._first_entry = None
        self._phys_last = None
        self._visible_len = 0
        self._visible_last = None
        self._generation += 1
        self._forget_recent()

    def _drop_segments_before(self, first_idx: int) -> None:
        """Unlink leading segments whose records all precede `first_idx`."""
        drop = 0
        while drop + 1 < len(self._segments) and self._seg_first[drop + 1] <= first_idx:
            drop += 1
        if drop == 0:
            return
        self._sync_unsynced()
        for seg in self._segments[:drop]:
            os.close(seg.fd)
            seg.path.unlink()
        del self._segments[:drop]
        del self._seg_first[:drop]
        self._syncer.sync_dir(self.path)

    def _close_all_segments(self, *, unlink: bool) -> None:
        if unlink:
            self._unsynced.clear()
        else:
            with contextlib.suppress(OSError):
                self._sync_unsynced()
        # Newest first: a crash part-way leaves a prefix of the log, which is a valid log.
        for seg in reversed(self._segments):
            with contextlib.suppress(OSError):
                os.close(seg.fd)
            if unlink:
                seg.path.unlink(missing_ok=True)
        if unlink and self._segments:
            self._syncer.sync_dir(self.path)
        self._segments = []
        self._seg_first = []

    # ------------------------------------------------------------------ reading
    def _entry_at(self, pos: int) -> Entry:
        """The entry at a physical position, from the caches when possible."""
        if pos == 0 and self._first_entry is not None:
            return self._first_entry
        if pos == len(self._offsets) - 1 and self._phys_last is not None:
            return self._phys_last
        recent = self._recent.get(self._first_idx + pos)
        if recent is not None:
            return recent
        return self._read(pos)

    def _read(self, pos: int) -> Entry:
        idx = self._first_idx + pos
        k = bisect.bisect_right(self._seg_first, idx) - 1
        seg = self._segments[k]
        start = self._offsets[pos]
        next_in_segment = pos + 1 < len(self._offsets) and (
            k + 1 >= len(self._segments) or idx + 1 < self._seg_first[k + 1]
        )
        end = self._offsets[pos + 1] if next_in_segment else seg.size
        entry = journal_records.decode_record(os.pread(seg.fd, end - start, start))
        if entry is None or entry[1] != idx:
            raise JournalCorruptError(f"{seg.path}: record of index {idx} at offset {start} is damaged")
        return entry

    def _read_for_view(self, pos: int, generation: int) -> Entry:
        with self._lock:
            if generation != self._generation or self._closed or pos >= len(self._offsets):
                raise StaleViewError("the journal changed since this slice was taken")
            return self._entry_at(pos)

    # ------------------------------------------------------------------ small state
    def _clamp_commit(self, value: int) -> int:
        if self._offsets:
            return min(value, self._first_idx + len(self._offsets) - 1)
        return value

    def _save_commit_index(self) -> None:
        if self._commit_dirty and self._failed is None:
            journal_files.write_json_atomically(
                self.path, COMMIT_FILE, {"commit_index": self._commit_index}, self._syncer
            )
            self._commit_dirty = False

    def _check_usable(self) -> None:
        if self._closed:
            raise JournalError(f"journal {self.path} is closed")
        if self._failed is not None:
            raise JournalError(f"journal {self.path} failed earlier: {self._failed}")


def _pwrite_all(fd: int, offset: int, *parts: bytes) -> None:
    """Writes the parts one after the other at `offset` (one pwritev, more after a short write)."""
    views = [memoryview(part) for part in parts if part]
    while views:
        written = os.pwritev(fd, views, offset)
        offset += written
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]
