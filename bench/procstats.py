"""Facts about processes and the machine, read from /proc (Linux only).

Resident size and CPU time of one process, the whole machine's busy CPU time (so a run that
shared the machine with other work can be recognised), bytes sent over the loopback interface,
bytes written to disk and the disk's busy time, and the machine's memory. Every function reads
the current value; ``CpuMeter`` turns two readings into what a measurement used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def vm_rss(pid: int) -> int:
    """Resident set size of ``pid`` in bytes, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads) so far, from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces; fields after its closing ')' are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent not idle (nor waiting for I/O) since boot, from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used by named processes between ``start()`` and ``stop()``, and by the rest.

    The machine may be shared (other test runs): "others" is the whole machine's busy time
    minus the named processes', so a noisy run can be recognised as such.
    """

    OTHERS = "others"

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._before: dict[str, float] = {}
        self._machine_before = 0.0

    def start(self) -> None:
        self._before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._machine_before = machine_busy_seconds()

    def stop(self) -> dict[str, float]:
        used = {name: cpu_seconds(pid) - self._before[name] for name, pid in self.pids.items()}
        machine = machine_busy_seconds() - self._machine_before
        used[self.OTHERS] = max(0.0, machine - sum(used.values()))
        return used


def loopback_bytes() -> int:
    """Bytes sent over ``lo`` so far, machine-wide (/proc/net/dev); every hop here is loopback."""
    for line in Path("/proc/net/dev").read_text().splitlines():
        name, _, counters = line.partition(":")
        if name.strip() == "lo":
            return int(counters.split()[8])  # the ninth counter is transmitted bytes
    raise RuntimeError("no lo interface in /proc/net/dev")


@dataclass(frozen=True)
class DiskCounters:
    """Machine-wide block-device counters: bytes written and milliseconds spent doing I/O."""

    written_bytes: int
    busy_ms: int

    def __sub__(self, other: DiskCounters) -> DiskCounters:
        return DiskCounters(self.written_bytes - other.written_bytes, self.busy_ms - other.busy_ms)


def disk_counters() -> DiskCounters:
    """Summed over whole disks in /proc/diskstats (partitions, loop, ram and zram devices
    skipped, so nothing is counted twice).  The busy time is the device's "time spent doing
    I/Os": with one disk, busy_ms / wall time is its utilisation."""
    written = busy = 0
    for line in Path("/proc/diskstats").read_text().splitlines():
        fields = line.split()
        name = fields[2]
        if name.startswith(("loop", "ram", "zram", "dm-")) or not Path(f"/sys/block/{name}").exists():
            continue
        written += int(fields[9]) * 512  # sectors written; /proc/diskstats sectors are 512 B
        busy += int(fields[12])
    return DiskCounters(written, busy)


def meminfo_total() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "?"
