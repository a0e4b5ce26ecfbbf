"""The machine's ceiling for durable writes, and what it allows a cluster on one disk.

Kingbus acknowledges nothing before it is fsynced on a majority, and the ingest benchmark runs
all three members on this machine's one disk. So however little CPU a member spent, the
cluster could not ingest faster than the disk takes durable writes divided by the number of
copies written per byte of binlog: 3 if each member wrote each byte once, 6 as Kingbus does
today (the Raft journal, then the store). This measures that ceiling the way the members
write: ``writers`` threads, each appending ``chunk_bytes`` at a time to its own file with an
fdatasync after every chunk (threads suffice: ``os.write`` and ``os.fdatasync`` release the
interpreter lock), on the filesystem the benchmark's scratch directory lives on.

    python -m bench.disk [--dir DIR] [--mib-per-writer N] [--chunk-kib K] [--writers 1,3,6]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MiB = 1024 * 1024


@dataclass(frozen=True)
class DurableWriteRate:
    writers: int
    chunk_bytes: int
    total_bytes: int
    seconds: float

    @property
    def mib_per_second(self) -> float:
        return self.total_bytes / MiB / self.seconds

    def ingest_ceiling(self, copies_per_byte: int) -> float:
        """MiB/s of binlog a cluster writing ``copies_per_byte`` durable copies could reach."""
        return self.mib_per_second / copies_per_byte


def _write_file(path: Path, total: int, chunk: bytes, errors: list[BaseException]) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            written = 0
            while written < total:
                written += os.write(fd, chunk)
                os.fdatasync(fd)
        finally:
            os.close(fd)
    except BaseException as exc:  # reported by the caller, after every thread ended
        errors.append(exc)


def measure(directory: Path, *, writers: int, bytes_per_writer: int, chunk_bytes: int) -> DurableWriteRate:
    """``writers`` concurrent appenders, each fdatasyncing every chunk; files removed after."""
    # Random bytes: a disk or filesystem that compresses or deduplicates must not flatter it.
    chunk = os.urandom(chunk_bytes)
    with tempfile.TemporaryDirectory(prefix="kb-disk-", dir=directory) as scratch:
        errors: list[BaseException] = []
        threads = [
            threading.Thread(
                target=_write_file, args=(Path(scratch) / f"w{i}", bytes_per_writer, chunk, errors)
            )
            for i in range(writers)
        ]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.monotonic() - started
        if errors:
            raise errors[0]
    return DurableWriteRate(writers, chunk_bytes, writers * bytes_per_writer, seconds)


def report_lines(rates: Sequence[DurableWriteRate], members: int = 3) -> list[str]:
    lines = [
        "Durable writes on this disk (each writer appends to its own file, fdatasync per chunk)",
        f"  {'writers':>7} {'chunk':>9} {'MiB/s':>8}   ingest ceiling for {members} members on this disk:"
        f" 1 copy/member   2 copies/member",
    ]
    for r in rates:
        lines.append(
            f"  {r.writers:>7} {r.chunk_bytes // 1024:>6} KiB {r.mib_per_second:>8.1f}"
            f"   {r.ingest_ceiling(members):>50.1f} {r.ingest_ceiling(2 * members):>17.1f}"
        )
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where to write")
    parser.add_argument("--mib-per-writer", type=int, default=512, help="MiB each writer appends")
    parser.add_argument("--chunk-kib", type=int, default=2048, help="KiB per write+fdatasync (an entry)")
    parser.add_argument("--writers", default="1,3,6", help="comma-separated writer counts to measure")
    args = parser.parse_args(argv)
    try:
        args.writer_counts = [int(w) for w in args.writers.split(",")]
    except ValueError:
        parser.error(f"--writers must be comma-separated integers, got {args.writers!r}")
    if any(w < 1 for w in args.writer_counts) or args.mib_per_writer < 1 or args.chunk_kib < 4:
        parser.error("writers and --mib-per-writer must be >= 1, --chunk-kib >= 4")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rates = [
        measure(
            args.dir, writers=w, bytes_per_writer=args.mib_per_writer * MiB, chunk_bytes=args.chunk_kib * 1024
        )
        for w in args.writer_counts
    ]
    print("\n".join(report_lines(rates)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
