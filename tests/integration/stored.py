"""Reading what a member stored, with the independent oracle (tests/support/source_binlog.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from kingbus.devenv.localcluster import Member
from tests.support import source_binlog


def segment_paths(member: Member) -> list[Path]:
    binlog = member.data_dir / "binlog"
    return sorted(p for p in binlog.iterdir() if p.name.startswith("kingbus-bin.") and p.suffix != ".idx")


def stored_transactions(member: Member) -> list[tuple[str, bytes]]:
    """(gtid, bytes) of every transaction in the member's segments, in file order."""
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "segments.index"
        index.write_text("\n".join(str(p) for p in segment_paths(member)) + "\n")
        return source_binlog.read_transactions(Path(tmp), "segments.index")


def source_transactions(datadir: Path) -> list[tuple[str, bytes]]:
    return source_binlog.read_transactions(datadir)
