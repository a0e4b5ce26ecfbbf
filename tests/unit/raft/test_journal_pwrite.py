"""The journal's gathered write keeps going after short writes (the kernel may write less than
asked; on a regular file that is rare, so `os.pwritev` is replaced by one that writes at most a
few bytes per call -- the seam is the system call, the file is real)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kingbus.raft import journal_disk


@pytest.mark.parametrize("step", [1, 3, 7, 1000])
def test_parts_land_in_order_at_the_offset_however_short_the_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: int
) -> None:
    real = os.pwritev

    def short_pwritev(fd: int, buffers: list[memoryview], offset: int) -> int:
        data = b"".join(bytes(b) for b in buffers)[:step]
        return real(fd, [data], offset)

    monkeypatch.setattr(journal_disk.os, "pwritev", short_pwritev)
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        os.write(fd, b"0123456789")
        journal_disk._pwrite_all(fd, 4, b"head", b"", b"command-bytes")
    finally:
        os.close(fd)
    assert path.read_bytes() == b"0123headcommand-bytes"
