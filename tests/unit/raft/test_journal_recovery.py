"""Crash recovery of the journal: torn tails, damaged records, half-created segments."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kingbus.raft import journal, journal_files, journal_records
from kingbus.raft.journal import DiskJournal, JournalCorruptError, JournalOptions

COMMAND = b"the-last-command-of-the-log-" * 2  # 56 bytes
LAST_RECORD_BYTES = journal_records.RECORD_HEADER_BYTES + journal_records.BODY_PREFIX_BYTES + len(COMMAND)


def only_segment(path: Path) -> Path:
    (seg,) = sorted(p for p in path.iterdir() if p.name.startswith("segment-"))
    return seg


def write_log(path: Path, last: int = 5) -> int:
    """Write entries 1..last (the last one is COMMAND); return the offset of the last record."""
    j = DiskJournal(path)
    for i in range(1, last):
        j.add(b"entry-%d" % i, i, 1)
    j.add(COMMAND, last, 2)
    j._destroy()
    return os.path.getsize(only_segment(path)) - LAST_RECORD_BYTES


@pytest.mark.parametrize("cut", range(LAST_RECORD_BYTES))
def test_torn_last_record_is_truncated_at_every_byte_offset(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "j"
    last_offset = write_log(path)
    seg = only_segment(path)
    os.truncate(seg, last_offset + cut)

    j = DiskJournal(path)
    assert len(j) == 4
    assert j[-1] == (b"entry-4", 4, 1)
    assert os.path.getsize(seg) == last_offset  # the torn bytes are gone
    j.add(b"again", 5, 3)  # and the log continues where it really ended
    j._destroy()
    k = DiskJournal(path)
    assert k[-1] == (b"again", 5, 3)
    k._destroy()


@pytest.mark.parametrize("flip_at", [0, 3, 4, 7, 8, 15, 16, 23, 24, LAST_RECORD_BYTES - 1])
def test_bit_flip_in_last_record_truncates_it(tmp_path: Path, flip_at: int) -> None:
    path = tmp_path / "j"
    last_offset = write_log(path)
    seg = only_segment(path)
    with open(seg, "r+b") as f:
        f.seek(last_offset + flip_at)
        byte = f.read(1)
        f.seek(last_offset + flip_at)
        f.write(bytes([byte[0] ^ 0x10]))
    j = DiskJournal(path)
    assert len(j) == 4
    j._destroy()


def test_bad_crc_in_the_middle_of_the_tail_truncates_from_there(tmp_path: Path) -> None:
    path = tmp_path / "j"
    j = DiskJournal(path)
    offsets = []
    for i in range(1, 11):
        offsets.append(os.path.getsize(only_segment(path)) if i > 1 else journal_records.SEGMENT_HEADER_BYTES)
        j.add(b"entry-%d" % i, i, 1)
    j._destroy()
    seg = only_segment(path)
    with open(seg, "r+b") as f:  # damage the command bytes of entry 6
        f.seek(offsets[5] + journal_records.RECORD_PEEK_BYTES)
        f.write(b"X")
    k = DiskJournal(path)
    assert len(k) == 5
    assert k[-1] == (b"entry-5", 5, 1)
    assert os.path.getsize(seg) == offsets[5]
    k._destroy()


def test_zero_filled_tail_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "j"
    write_log(path)
    seg = only_segment(path)
    size = os.path.getsize(seg)
    with open(seg, "ab") as f:
        f.write(b"\0" * 4096)
    j = DiskJournal(path)
    assert len(j) == 5
    assert os.path.getsize(seg) == size
    j._destroy()


@pytest.mark.parametrize("header_bytes", [b"", b"KBR", b"\0" * 8])
def test_half_created_last_segment_is_removed(tmp_path: Path, header_bytes: bytes) -> None:
    path = tmp_path / "j"
    j = DiskJournal(path, JournalOptions(segment_bytes=100))
    for i in range(1, 4):
        j.add(b"entry-%d" % i, i, 1)
    j._destroy()
    names = sorted(p.name for p in path.iterdir() if p.name.startswith("segment-"))
    next_seq = int(names[-1][len("segment-") : -len(".log")]) + 1
    half = path / f"segment-{next_seq:020d}.log"
    half.write_bytes(header_bytes)
    k = DiskJournal(path, JournalOptions(segment_bytes=100))
    assert len(k) == 3
    assert not half.exists()
    k.add(b"entry-4", 4, 1)
    k._destroy()


def test_damage_in_a_sealed_segment_refuses_to_open(tmp_path: Path) -> None:
    path = tmp_path / "j"
    j = DiskJournal(path, JournalOptions(segment_bytes=100))
    for i in range(1, 10):
        j.add(b"entry-%d" % i, i, 1)
    j._destroy()
    first = sorted(p for p in path.iterdir() if p.name.startswith("segment-"))[0]
    with open(first, "r+b") as f:  # a record length pointing past the end of the file
        f.seek(journal_records.SEGMENT_HEADER_BYTES)
        f.write(b"\xff\xff\x00\x00")
    with pytest.raises(JournalCorruptError, match="sealed segment"):
        DiskJournal(path, JournalOptions(segment_bytes=100))


def test_damaged_record_is_detected_on_read(tmp_path: Path) -> None:
    path = tmp_path / "j"
    j = DiskJournal(path, JournalOptions(segment_bytes=100))
    for i in range(1, 10):
        j.add(b"entry-%d" % i, i, 1)
    first = sorted(p for p in path.iterdir() if p.name.startswith("segment-"))[0]
    with open(first, "r+b") as f:
        record_1 = journal_records.RECORD_PEEK_BYTES + len(b"entry-1")
        f.seek(journal_records.SEGMENT_HEADER_BYTES + record_1 + journal_records.RECORD_PEEK_BYTES)
        f.write(b"?")  # inside entry 2's command
    assert j[0] == (b"entry-1", 1, 1)
    with pytest.raises(JournalCorruptError):
        list(j[0:3])
    j._destroy()


def test_crash_between_compaction_steps_does_not_resurrect_entries(tmp_path: Path) -> None:
    """The new first index is saved before old segments are unlinked; replay that state."""
    path = tmp_path / "j"
    opts = JournalOptions(segment_bytes=100)
    j = DiskJournal(path, opts)
    for i in range(1, 20):
        j.add(b"entry-%d" % i, i, 1)
    j._destroy()
    journal_files.write_json_atomically(
        path, journal.FIRST_INDEX_FILE, {"first_index": 12}, journal_files.Syncer(enabled=False)
    )
    k = DiskJournal(path, opts)
    assert k.first_index == 12
    assert [e[1] for e in k[0 : len(k)]] == list(range(12, 20))
    k._destroy()


WRITER = """
import sys
from kingbus.raft.journal import DiskJournal, JournalOptions
j = DiskJournal(sys.argv[1], JournalOptions(segment_bytes=64 * 1024))
idx = len(j) and j[-1][1]
while True:
    idx += 1
    j.add(b"x" * (idx % 3000), idx, 1 + idx // 500)
    if idx % 97 == 0:
        j.setCurrentTerm(1 + idx // 500, None)
    sys.stdout.write(f"{idx}\\n")
    sys.stdout.flush()
"""


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.5])
def test_kill_9_during_adds_loses_nothing_that_was_returned(tmp_path: Path, delay: float) -> None:
    """A writer process is killed mid-write, repeatedly; every add that returned is there."""
    path = tmp_path / "j"
    returned = 0
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        time.sleep(delay + 0.3)  # interpreter start-up, then writes
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        lines = out.split()
        assert lines, "the writer wrote nothing before it was killed"
        returned = int(lines[-1])
        j = DiskJournal(path)
        assert j[-1][1] >= returned
        assert j.getCurrentTerm() <= j[-1][2]
        entries = list(j[0 : len(j)])
        assert [e[1] for e in entries] == list(range(1, len(entries) + 1))
        assert all(e == (b"x" * (e[1] % 3000), e[1], 1 + e[1] // 500) for e in entries)
        j._destroy()
