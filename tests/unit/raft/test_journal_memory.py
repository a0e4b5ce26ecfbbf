"""Bounded memory: RAM holds an index of the live entries, not the data, however much is stored."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

from kingbus.raft.journal import DiskJournal, JournalOptions

TOTAL = 200_000
COMPACT_EVERY = 2_000
KEEP_AFTER_COMPACTION = 200
COMMAND = b"c" * 200


def test_index_and_heap_stay_bounded_over_200k_entries_with_compaction(tmp_path: Path) -> None:
    j = DiskJournal(tmp_path / "j", JournalOptions(fsync="never", segment_bytes=256 * 1024))
    index_sizes: list[int] = []
    heap_at: dict[int, int] = {}
    tracemalloc.start()
    try:
        for idx in range(1, TOTAL + 1):
            j.add(COMMAND, idx, 1)
            if idx % COMPACT_EVERY == 0:
                index_sizes.append(j.index_nbytes())  # at its largest, just before compaction
                j.deleteEntriesTo(len(j) - KEEP_AFTER_COMPACTION)
                if idx in (20_000, TOTAL):
                    gc.collect()
                    heap_at[idx] = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()

    assert len(j) == KEEP_AFTER_COMPACTION
    assert j[0][1] == TOTAL - KEEP_AFTER_COMPACTION + 1
    # The index holds at most COMPACT_EVERY + KEEP entries: 20 bytes each plus a few segments.
    live = COMPACT_EVERY + KEEP_AFTER_COMPACTION
    assert max(index_sizes) < live * 20 * 2 + 16 * 1024
    # ... and does not creep: the last measurement is no larger than the early ones.
    assert index_sizes[-1] <= max(index_sizes[:10])
    # The whole Python heap did not grow with the 180k entries (36 MB of commands) stored
    # between the two measurements.
    assert heap_at[TOTAL] - heap_at[20_000] < 64 * 1024
    # Old segment files were unlinked by compaction; disk holds about the live entries only.
    assert j.bytes_on_disk() < 2 * 256 * 1024 + live * (len(COMMAND) + 24)
    j._destroy()


def test_reading_a_large_slice_does_not_load_it(tmp_path: Path) -> None:
    """pysyncobj's leader asks for every entry from a follower's next index, then trims."""
    j = DiskJournal(tmp_path / "j", JournalOptions(fsync="never"))
    big = b"b" * (64 * 1024)
    for idx in range(1, 401):  # 25 MiB on disk
        j.add(big, idx, 1)
    gc.collect()
    tracemalloc.start()
    try:
        view = j[1:]
        batch = []
        size = 0
        for entry in view:  # what SyncObj.__getEntries does with maxSizeBytes
            batch.append(entry)
            size += len(entry[0])
            if size >= 256 * 1024:
                break
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(view) == 399
    assert len(batch) == 4
    assert peak < 2 * 1024 * 1024
    j._destroy()
