"""The store's checkpoint file: what the data on disk describes, replaced atomically.

`store.meta` is written only after the segment data it describes has been fsynced, by
writing a temporary file, fsyncing it, renaming it over the old one and fsyncing the
directory.  A crash therefore leaves either the previous checkpoint or the new one, never a
mix, and the data a checkpoint points at is always on disk.  Data appended after the last
checkpoint is recovered (or cut) by scanning, see `BinlogStore._open` and `layout.scan_segment`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

META_FILE = "store.meta"
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class SegmentMeta:
    """A segment as the checkpoint knows it."""

    name: str
    previous_gtids: str  # committed set when the segment was opened (MySQL text form)
    size: int  # committed bytes in the file (for a sealed segment: its whole size)
    sealed: bool
    source_file: str  # the source binlog file its transactions came from
    first_timestamp: int  # header timestamp of its first transaction (0 while empty)


@dataclass(frozen=True, slots=True)
class StoreMeta:
    segment_bytes: int
    committed_gtids: str
    purged_gtids: str
    segments: tuple[SegmentMeta, ...] = field(default_factory=tuple)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        body = asdict(self)
        body["segments"] = [asdict(s) for s in self.segments]
        return json.dumps(body, sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str) -> StoreMeta:
        raw = json.loads(text)
        if raw.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported store.meta format {raw.get('format_version')!r}")
        return cls(
            segment_bytes=int(raw["segment_bytes"]),
            committed_gtids=str(raw["committed_gtids"]),
            purged_gtids=str(raw["purged_gtids"]),
            segments=tuple(SegmentMeta(**s) for s in raw["segments"]),
        )


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_meta(directory: Path, meta: StoreMeta) -> None:
    final = directory / META_FILE
    tmp = directory / (META_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(meta.to_json())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fsync_dir(directory)


def read_meta(directory: Path) -> StoreMeta | None:
    path = directory / META_FILE
    if not path.exists():
        return None
    return StoreMeta.from_json(path.read_text(encoding="utf-8"))
