"""DiskJournal basics: adds, reads, slices, compaction, clear, term/vote, fsync policy."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from kingbus.raft import journal, journal_files
from kingbus.raft.journal import DiskJournal, JournalOptions


class SyncCounter:
    """Counts the journal's fsync calls through its injectable seams (and really syncs)."""

    def __init__(self) -> None:
        self.files = 0
        self.dirs = 0

    def file(self, fd: int) -> None:
        self.files += 1
        os.fdatasync(fd)

    def directory(self, fd: int) -> None:
        self.dirs += 1
        os.fsync(fd)

    def options(self, **kwargs: object) -> JournalOptions:
        return JournalOptions(sync_file=self.file, sync_dir=self.directory, **kwargs)  # type: ignore[arg-type]


def cmd(i: int, size: int = 20) -> bytes:
    return (b"cmd-%d-" % i).ljust(size, b"x")


def fill(j: DiskJournal, first: int, last: int, term: int = 1, size: int = 20) -> None:
    for i in range(first, last + 1):
        j.add(cmd(i, size), i, term)


def segment_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name.startswith("segment-"))


def test_add_read_len_and_slices(tmp_path: Path) -> None:
    j = DiskJournal(tmp_path / "j")
    assert len(j) == 0
    with pytest.raises(IndexError):
        j[-1]
    fill(j, 1, 10, term=3)
    assert len(j) == 10
    assert j[0] == (cmd(1), 1, 3)
    assert j[-1] == (cmd(10), 10, 3)
    assert j[4] == (cmd(5), 5, 3)
    assert j[-2] == (cmd(9), 9, 3)
    view = j[3:6]
    assert len(view) == 3
    assert list(view) == [(cmd(i), i, 3) for i in (4, 5, 6)]
    assert list(view[1:]) == [(cmd(5), 5, 3), (cmd(6), 6, 3)]
    assert list(view[:-1][1:]) == [(cmd(5), 5, 3)]
    assert list(reversed(view)) == [(cmd(i), i, 3) for i in (6, 5, 4)]
    assert view[::2] == [(cmd(4), 4, 3), (cmd(6), 6, 3)]
    assert view[-1] == (cmd(6), 6, 3)
    assert list(j[8:]) == [(cmd(9), 9, 3), (cmd(10), 10, 3)]
    assert list(j[20:]) == []
    assert not j[20:]
    assert j[0:10:3] == [(cmd(i), i, 3) for i in (1, 4, 7, 10)]
    # pysyncobj pickles the batches it sends; a view pickles as a plain list.
    assert pickle.loads(pickle.dumps(j[0:2])) == [(cmd(1), 1, 3), (cmd(2), 2, 3)]
    message = {"type": "append_entries", "entries": j[0:5][:2]}
    assert pickle.loads(pickle.dumps(message, protocol=2))["entries"] == [(cmd(1), 1, 3), (cmd(2), 2, 3)]
    with pytest.raises(IndexError):
        j[10]
    j._destroy()


def test_first_and_last_reads_are_cached_objects(tmp_path: Path) -> None:
    j = DiskJournal(tmp_path / "j")
    fill(j, 1, 5)
    assert j[0] is j[0]
    assert j[-1] is j[-1]
    assert j[-1] is j[4]
    j._destroy()


def test_recent_entries_are_served_from_memory_within_the_budget(tmp_path: Path) -> None:
    j = DiskJournal(tmp_path / "j", JournalOptions(recent_bytes=3 * 20))
    fill(j, 1, 6)  # commands of 20 bytes: the last three fit in the budget
    assert j[3] is j[3] and j[4] is j[4]  # kept objects, not fresh reads from disk
    assert j[1] is not j[1]  # older than the budget: read from disk each time
    j.deleteEntriesFrom(4)  # position 4 on: a conflict cuts entries 5-6, never to be served again
    j.add(b"new-0005", 5, 2)
    assert j[4] == (b"new-0005", 5, 2)
    j._destroy()


def test_add_must_continue_the_log(tmp_path: Path) -> None:
    j = DiskJournal(tmp_path / "j")
    j.add(b"a", 7, 1)  # an empty journal starts wherever it is told (after clear / snapshot)
    with pytest.raises(journal.JournalError):
        j.add(b"b", 9, 1)
    with pytest.raises(journal.JournalError):
        j.add(b"b", 7, 1)
    j.add(b"b", 8, 1)
    assert j[-1] == (b"b", 8, 1)
    j._destroy()


def test_reopen_restores_entries_term_vote_and_commit(tmp_path: Path) -> None:
    j = DiskJournal(tmp_path / "j", JournalOptions(segment_bytes=200))
    fill(j, 1, 30, term=2)
    j.setCurrentTerm(5, "127.0.0.2:7100")
    j.setRaftCommitIndex(25)
    j._destroy()
    assert len(segment_files(tmp_path / "j")) > 3

    k = DiskJournal(tmp_path / "j", JournalOptions(segment_bytes=200))
    assert len(k) == 30
    assert [tuple(e) for e in k[0:30]] == [(cmd(i), i, 2) for i in range(1, 31)]
    assert k.getCurrentTerm() == 5
    assert k.getVotedForNodeId() == "127.0.0.2:7100"
    assert k.getRaftCommitIndex() == 25
    k._destroy()


def test_commit_index_never_exceeds_the_journal(tmp_path: Path) -> None:
    j = DiskJournal(tmp_path / "j")
    fill(j, 1, 5)
    j.setRaftCommitIndex(50)
    assert j.getRaftCommitIndex() == 5
    j.onOneSecondTimer()
    j._destroy()
    assert journal_files.read_json(tmp_path / "j", journal.COMMIT_FILE) == {"commit_index": 5}


def test_commit_index_is_clamped_on_load(tmp_path: Path) -> None:
    j = DiskJournal(tmp_path / "j")
    fill(j, 1, 5)
    j._destroy()
    journal_files.write_json_atomically(
        tmp_path / "j", journal.COMMIT_FILE, {"commit_index": 99}, journal_files.Syncer(enabled=False)
    )
    k = DiskJournal(tmp_path / "j")
    assert k.getRaftCommitIndex() == 5
    k._destroy()


def test_delete_entries_to_across_segments_unlinks_whole_files(tmp_path: Path) -> None:
    opts = JournalOptions(segment_bytes=300)  # 8-byte header + 6 records of 44 bytes
    j = DiskJournal(tmp_path / "j", opts)
    fill(j, 1, 40)
    before = segment_files(tmp_path / "j")
    assert len(before) == 7
    # Drop entries 1..17: segments holding only 1..12 go, the one holding 13..18 stays.
    j.deleteEntriesTo(17)
    assert len(j) == 23
    assert j[0] == (cmd(18), 18, 1)
    assert j[-1] == (cmd(40), 40, 1)
    assert list(j[0:2]) == [(cmd(18), 18, 1), (cmd(19), 19, 1)]
    after = segment_files(tmp_path / "j")
    assert after == before[2:]
    assert j.first_index == 18
    fill(j, 41, 45)
    j._destroy()

    k = DiskJournal(tmp_path / "j", opts)
    assert k.first_index == 18
    assert len(k) == 28
    assert [e[1] for e in k[0:28]] == list(range(18, 46))
    k._destroy()


def test_compactable_bytes_count_applied_records_from_the_first_entry(tmp_path: Path) -> None:
    """The compaction trigger reads `compactable_bytes`: dropped records still at the start of
    the first segment do not count (a compaction that ended inside a segment fired again at
    once, tick after tick), nor do entries beyond the last applied one (on a follower, the
    leader's whole pipeline: compaction fired at half the size configured)."""
    opts = JournalOptions(segment_bytes=300)  # 8-byte header + 6 records of 44 bytes
    j = DiskJournal(tmp_path / "j", opts)
    assert j.compactable_bytes(10) == 0
    fill(j, 1, 40)  # 7 segments: 1..6, 7..12, ..., 31..36, 37..40
    assert j.compactable_bytes(0) == 0
    assert j.compactable_bytes(1) == 44
    # Records, plus the 8-byte header of each later segment the count reaches into.
    assert j.compactable_bytes(5) == 5 * 44
    assert j.compactable_bytes(6) == j.compactable_bytes(7) - 44 == 8 + 6 * 44
    assert j.compactable_bytes(40) == j.compactable_bytes(99) == j.bytes_on_disk() - 8
    j.deleteEntriesTo(17)  # entries 18..40 live; the segment holding 13..18 stays
    assert j.bytes_on_disk() == 5 * 8 + 28 * 44
    assert j.compactable_bytes(17) == 0
    assert j.compactable_bytes(18) == 44 + 8  # entry 18 ends its segment
    assert j.compactable_bytes(24) == 8 + 7 * 44 + 8  # 18..24, two segment boundaries
    assert j.compactable_bytes(25) == 2 * 8 + 8 * 44
    assert j.compactable_bytes(40) == 4 * 8 + 23 * 44
    j.deleteEntriesTo(len(j))
    assert j.compactable_bytes(40) == 0
    j._destroy()


def test_delete_entries_to_everything_clears(tmp_path: Path) -> None:
    j = DiskJournal(tmp_path / "j")
    fill(j, 1, 5)
    j.deleteEntriesTo(5)
    assert len(j) == 0
    j.add(b"x", 100, 4)
    assert j[0] == (b"x", 100, 4)
    j._destroy()


def test_clear_is_durable_and_allows_any_next_index(tmp_path: Path) -> None:
    opts = JournalOptions(segment_bytes=300)
    j = DiskJournal(tmp_path / "j", opts)
    fill(j, 1, 40)
    j.deleteEntriesTo(10)  # first index file now says 11
    j.clear()
    assert len(j) == 0
    assert segment_files(tmp_path / "j") == []
    j.add(b"snap-prev", 3, 2)  # lower than the old first index: must survive a restart
    j.add(b"snap-last", 4, 2)
    j._destroy()
    k = DiskJournal(tmp_path / "j", opts)
    assert list(k[0:2]) == [(b"snap-prev", 3, 2), (b"snap-last", 4, 2)]
    k._destroy()


def test_stale_view_raises_after_compaction(tmp_path: Path) -> None:
    j = DiskJournal(tmp_path / "j")
    fill(j, 1, 10)
    view = j[2:8]
    j.deleteEntriesTo(5)
    with pytest.raises(journal.StaleViewError):
        list(view)
    j._destroy()


@pytest.mark.parametrize("policy", ["always", True])
def test_fsync_always_syncs_every_add_and_new_segment(tmp_path: Path, policy: object) -> None:
    counter = SyncCounter()
    j = DiskJournal(tmp_path / "j", counter.options(fsync=policy, segment_bytes=300))
    dirs_after_open = counter.dirs
    files_after_open = counter.files
    j.add(cmd(1), 1, 1)
    # First add: the segment header (file + directory) and the record.
    assert counter.files - files_after_open == 2
    assert counter.dirs - dirs_after_open == 1
    fill(j, 2, 6)
    assert counter.files - files_after_open == 7
    assert counter.dirs - dirs_after_open == 1
    j.add(cmd(7), 7, 1)  # rotates: new segment
    assert counter.files - files_after_open == 9
    assert counter.dirs - dirs_after_open == 2
    before = counter.dirs
    j.setCurrentTerm(2, None)
    assert counter.dirs - before == 2  # the tmp file and its directory after the rename
    j._destroy()


@pytest.mark.parametrize("policy", ["never", False])
def test_fsync_never_syncs_nothing(tmp_path: Path, policy: object) -> None:
    counter = SyncCounter()
    j = DiskJournal(tmp_path / "j", counter.options(fsync=policy, segment_bytes=300))
    fill(j, 1, 20)
    j.setCurrentTerm(2, "a")
    j.setRaftCommitIndex(10)
    j.onOneSecondTimer()
    j.deleteEntriesTo(5)
    j.clear()
    j._destroy()
    assert (counter.files, counter.dirs) == (0, 0)


def test_invalid_options_are_refused() -> None:
    with pytest.raises(ValueError, match="always"):
        JournalOptions(fsync="sometimes")
    with pytest.raises(ValueError, match="segment_bytes"):
        JournalOptions(segment_bytes=8)


def test_large_entries_and_64bit_values(tmp_path: Path) -> None:
    j = DiskJournal(tmp_path / "j", JournalOptions(segment_bytes=512 * 1024))
    big = os.urandom(300 * 1024)  # two do not fit one segment
    j.add(big, 2**40, 2**33)
    j.add(big[:10], 2**40 + 1, 2**33)
    j.add(big, 2**40 + 2, 2**33)
    j.add(big, 2**40 + 3, 2**33)
    assert j[0] == (big, 2**40, 2**33)
    assert j[2] == (big, 2**40 + 2, 2**33)
    j._destroy()
    k = DiskJournal(tmp_path / "j")
    assert k[-1] == (big, 2**40 + 3, 2**33)
    assert k.stats()["segments"] == 3  # [big, small], [big], [big]
    k._destroy()


def test_stats_reports_counters(tmp_path: Path) -> None:
    j = DiskJournal(tmp_path / "j")
    fill(j, 1, 3)
    stats = j.stats()
    assert stats["entries"] == 3
    assert stats["first_index"] == 1
    assert stats["last_index"] == 3
    assert stats["bytes_on_disk"] == j.bytes_on_disk() > 0
    assert stats["physical_truncations"] == 0
    j._destroy()
