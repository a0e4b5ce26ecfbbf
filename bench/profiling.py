"""Sampling profiles of running kingbus-node processes with py-spy, and a summary of them.

``Recorder`` runs one ``py-spy record --format raw`` per process for the length of a ``with``
block: py-spy has no "until told" mode other than Ctrl-C, so the block's end sends SIGINT, upon
which py-spy writes its collapsed stacks (``frame;frame;...;leaf count`` per line, outermost
frame first) and exits.

``summarize`` reads such a file and answers "where does the time go": per function, the share
of samples in which it is the leaf (*self*) and in which it is anywhere on the stack (*total*,
counted once per sample even under recursion). Idle threads are dropped first (samples whose
leaf is a known wait such as ``select``/``epoll``/``wait``), since py-spy samples every thread
and a process with several mostly-idle threads would otherwise look idle.
"""

from __future__ import annotations

import collections
import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# Leaf functions (the name after the last dot) that mean "this thread is waiting", not working;
# py-spy's own idle detection misses waits that go through C code it does not know.
IDLE_LEAVES = re.compile(
    r"^(select|poll|epoll|_run_once|wait|_wait_for_tstate_lock|acquire|sleep|accept|_worker)$"
)
# Only these packages are listed in "total": the rest are the frames every thread starts with.
OWN_PACKAGES = ("kingbus/", "pysyncobj/")
# py-spy frame text: "function (module/path.py:line)"; the line is dropped to merge a function.
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*)(?::\d+)?\)$")


def _py_spy() -> str:
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    found = shutil.which("py-spy")
    if found is None:
        raise RuntimeError("py-spy is not installed in the venv or on PATH")
    return found


@contextlib.contextmanager
def recording(pids: dict[str, int], out_dir: Path, *, rate: int = 100) -> Iterator[dict[str, Path]]:
    """Profile each ``name: pid`` while the block runs; yields ``name: output file``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = {name: out_dir / f"{name}.txt" for name in pids}
    py_spy = _py_spy()
    recorders = [
        subprocess.Popen(
            [
                py_spy,
                "record",
                "--format",
                "raw",
                "--rate",
                str(rate),
                "-o",
                str(outputs[name]),
                "-p",
                str(pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]
    try:
        yield outputs
    finally:
        for proc in recorders:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in recorders:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass(frozen=True)
class Summary:
    samples: int  # busy samples (idle-leaf samples removed)
    idle_samples: int
    self_share: list[tuple[str, float]]  # (function, share of busy samples), largest first
    total_share: list[tuple[str, float]]


def _function(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match.group("file")
    # Keep the path from the package root on, e.g. "kingbus/raft/journal.py".
    for anchor in ("kingbus/", "pysyncobj/", "aiohttp/", "asyncio/", "pymysql/"):
        at = path.find(anchor)
        if at >= 0:
            path = path[at:]
            break
    else:
        path = Path(path).name
    return f"{match.group('func')} ({path})"


def parse_collapsed(lines: Sequence[str]) -> list[tuple[list[str], int]]:
    """Collapsed-stack lines as (frames outermost first, sample count); malformed lines skipped."""
    stacks: list[tuple[list[str], int]] = []
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks.append(([_function(f) for f in stack.split(";")], int(count)))
    return stacks


def summarize(stacks: Sequence[tuple[list[str], int]], *, top: int = 15) -> Summary:
    self_counts: collections.Counter[str] = collections.Counter()
    total_counts: collections.Counter[str] = collections.Counter()
    busy = idle = 0
    for frames, count in stacks:
        # Thread and process frames ("thread (0x...)", "process 123:...") carry no function.
        calls = [f for f in frames if " (" in f]
        if not calls:
            continue
        leaf_name = calls[-1].split(" (", 1)[0].rsplit(".", 1)[-1]
        if IDLE_LEAVES.match(leaf_name):
            idle += count
            continue
        busy += count
        self_counts[calls[-1]] += count
        for function in set(calls):
            if any(f"({package}" in function for package in OWN_PACKAGES):
                total_counts[function] += count
    denominator = max(busy, 1)
    return Summary(
        samples=busy,
        idle_samples=idle,
        self_share=[(f, c / denominator) for f, c in self_counts.most_common(top)],
        total_share=[(f, c / denominator) for f, c in total_counts.most_common(top)],
    )


def format_summary(name: str, summary: Summary) -> str:
    lines = [f"  {name}: {summary.samples} busy samples ({summary.idle_samples} idle-thread samples dropped)"]
    lines.append("    self (leaf)")
    lines += [f"      {share:6.1%}  {function}" for function, share in summary.self_share]
    lines.append("    total (on the stack)")
    lines += [f"      {share:6.1%}  {function}" for function, share in summary.total_share]
    return "\n".join(lines)


def summarize_file(path: Path, *, top: int = 15) -> Summary:
    return summarize(parse_collapsed(path.read_text(errors="replace").splitlines()), top=top)
