"""Per-segment transaction index: GTID and source coordinates -> offset in the segment.

One index file sits beside each segment (`kingbus-bin.000007.idx`).  It is an append-only
sequence of small records:

* ``S`` defines a source id (``uuid`` or ``uuid:tag``) under a per-segment number, so the
  transaction records stay fixed-size;
* ``T`` describes one stored transaction: its GTID (sid number + gno), where its bytes are in
  the segment, and where it ended in the *source's* binlog file;
* ``F`` (first, once) names that source binlog file.  It is the one fact about a segment that
  its bytes do not hold, and the rotation rule needs it: kept here as well as in the
  checkpoint, a lost or older checkpoint cannot make this member rotate differently.

The index is derived data: it is written without fsync on the hot path and, after a crash,
checked against the segment (last record must end where the committed data ends) and rebuilt
from the data by scanning when it does not match.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_SID = struct.Struct("<cHB")  # b"S", sid number, text length; then the text
_TXN = struct.Struct("<cHQQIQ")  # b"T", sid number, gno, offset, length, source end position
_pack_txn = _TXN.pack
_FILE = struct.Struct("<cH")  # b"F", text length; then the source file name


@dataclass(frozen=True, slots=True)
class IndexEntry:
    sid: str  # "uuid" or "uuid:tag"
    gno: int
    offset: int
    length: int
    source_end_pos: int

    @property
    def gtid(self) -> str:
        return f"{self.sid}:{self.gno}"

    @property
    def end(self) -> int:
        return self.offset + self.length


class IndexWriter:
    """Appends records to one segment's index file."""

    def __init__(
        self, path: Path, *, existing: list[IndexEntry] | None = None, source_file: str = ""
    ) -> None:
        self._path = path
        self._sids: dict[str, int] = {}
        self._file = open(path, "wb")
        if source_file:
            name = source_file.encode("utf-8")
            self._file.write(_FILE.pack(b"F", len(name)) + name)
        # Rewriting from known-good entries is cheaper than reasoning about a damaged tail.
        for entry in existing or ():
            self.append(entry)
        # "wb" emptied the file: readers and a restart must find the rewritten records on disk
        # at once, not whenever the buffer happens to be flushed.
        self._file.flush()

    def append(self, entry: IndexEntry) -> None:
        self._append(entry.sid, entry.gno, entry.offset, entry.length, entry.source_end_pos)

    def append_gtid(
        self, key: tuple[str, str], gno: int, offset: int, length: int, source_end_pos: int
    ) -> None:
        """`append` for a GTID given as ((uuid, tag), gno) (the store's hot path: one call
        per transaction, so the known-sid case is written out here)."""
        uuid, tag = key
        sid = f"{uuid}:{tag}" if tag else uuid
        sid_no = self._sids.get(sid)
        if sid_no is None:
            self._append(sid, gno, offset, length, source_end_pos)
        else:
            self._file.write(_pack_txn(b"T", sid_no, gno, offset, length, source_end_pos))

    def _append(self, sid: str, gno: int, offset: int, length: int, source_end_pos: int) -> None:
        sid_no = self._sids.get(sid)
        if sid_no is None:
            sid_no = len(self._sids)
            self._sids[sid] = sid_no
            text = sid.encode("ascii")
            self._file.write(_SID.pack(b"S", sid_no, len(text)) + text)
        self._file.write(_TXN.pack(b"T", sid_no, gno, offset, length, source_end_pos))

    def flush(self) -> None:
        self._file.flush()

    def fileno(self) -> int:
        return self._file.fileno()

    def fsync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def read_index(path: Path) -> list[IndexEntry]:
    """Reads every complete record; a torn or foreign tail simply ends the list."""
    if not path.exists():
        return []
    return list(iter_index(path.read_bytes()))


def read_index_source_file(path: Path) -> str:
    """The source file named by the index's ``F`` record; "" when there is none."""
    if not path.exists():
        return ""
    with open(path, "rb") as f:
        head = f.read(_FILE.size)
        if len(head) < _FILE.size or head[:1] != b"F":
            return ""
        (n,) = struct.unpack_from("<H", head, 1)
        raw = f.read(n)
    return raw.decode("utf-8", "replace") if len(raw) == n else ""


def iter_index(data: bytes) -> Iterator[IndexEntry]:
    sids: dict[int, str] = {}
    pos = 0
    size = len(data)
    while pos < size:
        kind = data[pos : pos + 1]
        if kind == b"F" and pos == 0:
            if pos + _FILE.size > size:
                return
            pos += _FILE.size + _FILE.unpack_from(data, pos)[1]
        elif kind == b"S":
            if pos + _SID.size > size:
                return
            _, sid_no, text_len = _SID.unpack_from(data, pos)
            end = pos + _SID.size + text_len
            if end > size:
                return
            sids[sid_no] = data[pos + _SID.size : end].decode("ascii")
            pos = end
        elif kind == b"T":
            if pos + _TXN.size > size:
                return
            _, sid_no, gno, offset, length, source_end = _TXN.unpack_from(data, pos)
            sid = sids.get(sid_no)
            if sid is None:
                return
            yield IndexEntry(sid, gno, offset, length, source_end)
            pos += _TXN.size
        else:
            return


def index_path(segment_path: Path) -> Path:
    return segment_path.with_name(segment_path.name + ".idx")
