"""bench.disk: the disk's durable-write ceiling (real files and fdatasyncs in a temp dir)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import disk


def test_writers_append_what_was_asked_and_leave_nothing(tmp_path: Path) -> None:
    rate = disk.measure(tmp_path, writers=2, bytes_per_writer=1 << 20, chunk_bytes=256 << 10)
    assert rate.total_bytes == 2 << 20 and rate.writers == 2 and rate.seconds > 0
    assert list(tmp_path.iterdir()) == []  # the scratch files are removed


def test_a_writer_that_fails_reports_its_error(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    disk._write_file(tmp_path / "no-such-dir" / "w0", 4096, b"x" * 4096, errors)
    assert len(errors) == 1 and isinstance(errors[0], FileNotFoundError)


def test_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        disk.measure(tmp_path / "not-there", writers=1, bytes_per_writer=4096, chunk_bytes=4096)


def test_the_ceiling_divides_the_rate_by_the_copies() -> None:
    rate = disk.DurableWriteRate(writers=3, chunk_bytes=2 << 20, total_bytes=600 * disk.MiB, seconds=2.0)
    assert rate.mib_per_second == 300.0
    assert rate.ingest_ceiling(3) == 100.0 and rate.ingest_ceiling(6) == 50.0


def test_the_report_has_a_line_per_measurement_with_both_ceilings() -> None:
    rates = [disk.DurableWriteRate(w, 2 << 20, 600 * disk.MiB, 2.0) for w in (3, 6)]
    lines = disk.report_lines(rates)
    assert len(lines) == 4
    assert lines[2].split()[:3] == ["3", "2048", "KiB"]
    assert lines[2].split()[-3:] == ["300.0", "100.0", "50.0"]


@pytest.mark.parametrize(
    "argv", [["--writers", "3,x"], ["--writers", "0"], ["--mib-per-writer", "0"], ["--chunk-kib", "1"]]
)
def test_bad_arguments_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        disk.parse_args(argv)
    assert exc.value.code == 2
