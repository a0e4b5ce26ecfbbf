"""File-system helpers of the Raft journal: the fsync seam, segment names, atomic small files.

Every fsync the journal makes goes through a `Syncer`, so that tests can count them and the
`never` policy can skip them in one place.  Data files are synced with `fdatasync` (it still
flushes a changed file size, which is all an append needs); directories and small replaced
files with `fsync`.

Small state (term and vote, commit index, first index) is kept in tiny JSON files replaced
atomically: write `NAME.tmp`, sync it, rename it over `NAME`, sync the directory.  A reader
therefore sees either the old or the new content, never a torn one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SyncFn = Callable[[int], None]

_SEGMENT_RE = re.compile(r"^segment-(\d{20})\.log$")


def segment_name(seq: int) -> str:
    return f"segment-{seq:020d}.log"


def segment_seq(name: str) -> int | None:
    """The sequence number of a segment file name, or None for any other file."""
    match = _SEGMENT_RE.match(name)
    return int(match.group(1)) if match else None


@dataclass(slots=True)
class Syncer:
    """Makes data durable, or not, according to the journal's fsync policy.

    `file` and `directory` are the seams tests replace to count calls; `enabled` is False for
    the `never` policy, and then nothing is synced at all.
    """

    enabled: bool = True
    file: SyncFn = field(default=os.fdatasync)
    directory: SyncFn = field(default=os.fsync)

    def sync_file(self, fd: int) -> None:
        if self.enabled:
            self.file(fd)

    def sync_dir(self, path: Path) -> None:
        if not self.enabled:
            return
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self.directory(fd)
        finally:
            os.close(fd)


def write_json_atomically(directory: Path, name: str, value: dict[str, Any], syncer: Syncer) -> None:
    """Replace `directory/name` with `value`, durably when the syncer is enabled."""
    tmp = directory / (name + ".tmp")
    data = json.dumps(value, sort_keys=True).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        # A replaced file whose data never reached the disk can come back empty after a crash;
        # sync before the rename so the name only ever points at complete content.
        if syncer.enabled:
            syncer.directory(fd)
    finally:
        os.close(fd)
    os.replace(tmp, directory / name)
    syncer.sync_dir(directory)


def read_json(directory: Path, name: str) -> dict[str, Any] | None:
    """The content of a small state file; None when it does not exist."""
    try:
        raw = (directory / name).read_bytes()
    except FileNotFoundError:
        return None
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError(f"{directory / name}: expected a JSON object")
    return value


def remove_stale_tmp_files(directory: Path) -> None:
    """Drop `*.tmp` files left by a crash during an atomic replace."""
    for path in directory.glob("*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
