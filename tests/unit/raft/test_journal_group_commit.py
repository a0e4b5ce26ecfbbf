"""DiskJournal with group commit: `add` writes, `sync` makes durable, in one place."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from kingbus.raft.journal import DiskJournal, JournalError, JournalOptions


class SyncLog:
    """Records which file descriptors were synced, in order (and really syncs them)."""

    def __init__(self) -> None:
        self.files: list[int] = []
        self.fail_next = False

    def file(self, fd: int) -> None:
        if self.fail_next:
            self.fail_next = False
            raise OSError(errno.EIO, "injected fdatasync failure")
        self.files.append(fd)
        os.fdatasync(fd)

    def options(self, **kwargs: object) -> JournalOptions:
        return JournalOptions(sync_file=self.file, group_commit=True, **kwargs)  # type: ignore[arg-type]


def cmd(i: int, size: int = 20) -> bytes:
    return (b"cmd-%d-" % i).ljust(size, b"x")


def fill(j: DiskJournal, first: int, last: int, term: int = 1) -> None:
    for i in range(first, last + 1):
        j.add(cmd(i), i, term)


def test_adds_are_synced_together_by_sync(tmp_path: Path) -> None:
    syncs = SyncLog()
    j = DiskJournal(tmp_path / "j", syncs.options())
    j.add(cmd(1), 1, 1)
    after_first = len(syncs.files)  # the new segment's header is synced when it is created
    fill(j, 2, 50)
    assert len(syncs.files) == after_first
    assert j.unsynced
    j.sync()
    assert len(syncs.files) == after_first + 1
    assert not j.unsynced
    assert j.stats()["group_syncs"] == 1
    j.sync()  # nothing new: no system call
    assert len(syncs.files) == after_first + 1
    j._destroy()


def test_sync_covers_every_segment_written_since_the_last_one(tmp_path: Path) -> None:
    syncs = SyncLog()
    j = DiskJournal(tmp_path / "j", syncs.options(segment_bytes=300))
    j.add(cmd(1), 1, 1)
    j.sync()
    first_fd = syncs.files[-1]
    fill(j, 2, 20)  # several rotations
    before = len(syncs.files)
    j.sync()
    synced = syncs.files[before:]
    assert synced[0] == first_fd  # oldest first: the tail of the segment that was open
    assert len(synced) == len(set(synced)) == j.stats()["segments"]
    j._destroy()


def test_without_group_commit_add_still_syncs_each_record(tmp_path: Path) -> None:
    syncs = SyncLog()
    j = DiskJournal(tmp_path / "j", JournalOptions(sync_file=syncs.file))
    j.add(cmd(1), 1, 1)
    before = len(syncs.files)
    fill(j, 2, 6)
    assert len(syncs.files) - before == 5
    assert not j.unsynced
    j._destroy()


def test_fsync_never_with_group_commit_syncs_nothing(tmp_path: Path) -> None:
    syncs = SyncLog()
    j = DiskJournal(tmp_path / "j", syncs.options(fsync="never"))
    fill(j, 1, 10)
    j.sync()
    j._destroy()
    assert syncs.files == []


def test_truncation_compaction_and_close_sync_pending_records_first(tmp_path: Path) -> None:
    syncs = SyncLog()
    j = DiskJournal(tmp_path / "j", syncs.options(segment_bytes=300))
    fill(j, 1, 20)
    assert j.unsynced
    j.deleteEntriesTo(10)  # drops whole segments: what was pending is synced before any close
    assert not j.unsynced
    fill(j, 21, 25)
    first = j.first_index
    assert first is not None
    j.deleteEntriesFrom(23 - first)  # a position, as pysyncobj passes it
    j.add(cmd(23), 23, 2)  # a conflicting term: a physical truncation
    assert j.stats()["physical_truncations"] == 1
    fill(j, 24, 30, term=2)
    assert j.unsynced
    j._destroy()  # close syncs what is pending
    assert not j.unsynced
    k = DiskJournal(tmp_path / "j")
    assert k[-1] == (cmd(30), 30, 2)
    assert k[23 - first] == (cmd(23), 23, 2)
    k._destroy()


def test_clear_drops_pending_records_without_syncing_them(tmp_path: Path) -> None:
    syncs = SyncLog()
    j = DiskJournal(tmp_path / "j", syncs.options())
    fill(j, 1, 5)
    j.clear()
    assert not j.unsynced
    j.add(cmd(100), 100, 3)
    j.sync()
    j._destroy()


def test_a_failed_sync_refuses_further_writes(tmp_path: Path) -> None:
    syncs = SyncLog()
    j = DiskJournal(tmp_path / "j", syncs.options())
    fill(j, 1, 3)
    syncs.fail_next = True
    with pytest.raises(OSError, match="injected"):
        j.sync()
    with pytest.raises(JournalError):
        j.add(cmd(4), 4, 1)
    with pytest.raises(JournalError):
        j.sync()
    j._destroy()
