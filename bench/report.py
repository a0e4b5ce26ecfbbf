"""The benchmark's printed report: pure formatting of ``bench.results`` values.

One section per question: the throughput table with the Kingbus / replica ratio and the
issue's goal, the CPU each process used while its clock ran, the Raft-level diagnostics
(entries, the leader's pipeline, loopback traffic), py-spy summaries when profiled, and each
member's RSS before and after.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from bench import profiling
from bench.procstats import CpuMeter
from bench.results import MiB, PhaseResult, Rate


def _fmt_rate(rate: Rate | None) -> tuple[str, str]:
    if rate is None:
        return ("-", "-")
    return (f"{rate.txn_per_s:,.0f}", f"{rate.mb_per_s:,.1f}")


def _ratio(other_seconds: float, kingbus_seconds: float) -> str:
    """Kingbus throughput over the other reader's: the inverse ratio of their wall times."""
    return f"{other_seconds / kingbus_seconds:.2f}" if other_seconds else "-"


def format_report(results: Sequence[PhaseResult], facts: dict[str, str]) -> str:
    lines = ["", "Machine and settings"]
    lines += [f"  {key:<28} {value}" for key, value in facts.items()]
    lines += ["", "Phases (wall time from PUT /source or START REPLICA IO_THREAD to the last GTID)"]
    for r in results:
        lines.append(
            f"  {r.kind:<6} {r.source.target.count():>8} GTIDs "
            f"{r.source.binlog_bytes / MiB:>9.1f} MiB binlog  "
            f"kingbus {r.kingbus.rate.seconds:7.2f} s"
            + (f"  replica {r.replica_default.seconds:7.2f} s" if r.replica_default else "")
            + (f"  replica(sync) {r.replica_synced.seconds:7.2f} s" if r.replica_synced else "")
        )
    header = (
        f"  {'load':<6} | {'kingbus txn/s':>13} {'MB/s':>7} | {'replica txn/s':>13} {'MB/s':>7} | "
        f"{'sync=1 txn/s':>13} {'MB/s':>7} | {'kb/replica':>10} {'kb/sync=1':>9}"
    )
    lines += [
        "",
        "Ingest throughput (MB = MiB of source binlog; both readers move the same GTIDs and bytes,",
        "so one ratio serves txn/s and MB/s; kb/replica is against the replica's default settings)",
        header,
    ]
    lines.append("  " + "-" * (len(header) - 2))
    for r in results:
        kb_txn, kb_mb = _fmt_rate(r.kingbus.rate)
        rd_txn, rd_mb = _fmt_rate(r.replica_default)
        rs_txn, rs_mb = _fmt_rate(r.replica_synced)
        seconds = r.kingbus.rate.seconds
        ratio = _ratio(r.replica_default.seconds if r.replica_default else 0, seconds)
        ratio_sync = _ratio(r.replica_synced.seconds if r.replica_synced else 0, seconds)
        lines.append(
            f"  {r.kind:<6} | {kb_txn:>13} {kb_mb:>7} | {rd_txn:>13} {rd_mb:>7} | "
            f"{rs_txn:>13} {rs_mb:>7} | {ratio:>10} {ratio_sync:>9}"
        )
    goal = [
        f"{r.kind} {'met' if r.kingbus.rate.seconds <= 2 * r.replica_default.seconds else 'NOT met'}"
        for r in results
        if r.replica_default
    ]
    if goal:
        lines.append(f"  goal kb/replica >= 0.5 (with fsync vs without): {', '.join(goal)}")
    lines += ["", f"CPU used while the clock ran (seconds; the machine has {os.cpu_count()} CPUs)"]
    for r in results:
        for label, rate in (
            ("kingbus", r.kingbus.rate),
            ("replica", r.replica_default),
            ("sync=1", r.replica_synced),
        ):
            if rate is None:
                continue
            ours = sum(v for name, v in rate.cpu.items() if name != CpuMeter.OTHERS)
            others = rate.cpu.get(CpuMeter.OTHERS, 0.0)
            capacity = rate.seconds * (os.cpu_count() or 1)
            per = "  ".join(
                f"{name} {value:.2f}" for name, value in rate.cpu.items() if name != CpuMeter.OTHERS
            )
            lines.append(
                f"  {r.kind:<6} {label:<8} {per}  | ours {ours:.2f} ({ours / capacity:.0%}) + "
                f"other processes {others:.2f} ({others / capacity:.0%}) of {capacity:.2f}"
            )
    for r in results:
        if r.kingbus.profiles:
            lines += ["", f"Where the time goes ({r.kind}, py-spy; leader {r.kingbus.leader})"]
            for name, path in sorted(r.kingbus.profiles.items()):
                if path.exists():
                    lines.append(profiling.format_summary(name, profiling.summarize_file(path)))
                else:
                    lines.append(f"  {name}: py-spy wrote no profile ({path})")
    lines += ["", "Raft entries (each one journalled with an fdatasync on every member)"]
    for r in results:
        k = r.kingbus
        lines.append(
            f"  {r.kind:<6} {k.raft_entries:>8} entries  {k.raft_entries / k.rate.seconds:9,.0f} entries/s  "
            f"{r.source.binlog_bytes / max(k.raft_entries, 1) / 1024:8.1f} KiB/entry  "
            f"{r.source.target.count() / max(k.raft_entries, 1):8.2f} txn/entry"
        )
        lines.append(f"  {'':<6} leader pipeline: {k.pipeline.describe()}")
        lines.append(
            f"  {'':<6} loopback traffic: {k.loopback_bytes / MiB:.1f} MiB = "
            f"{k.loopback_bytes / r.source.binlog_bytes:.2f} x the binlog (source->leader + leader->2 "
            "followers is ~3 x; machine-wide counter, so other work on the machine adds to it)"
        )
        lines.append(
            f"  {'':<6} disk writes: {k.disk_written_bytes / MiB:.1f} MiB = "
            f"{k.disk_written_bytes / r.source.binlog_bytes:.2f} x the binlog (each member journals "
            f"and stores it: ~6 x once written back), disk busy {k.disk_busy_ms / 1000 / k.rate.seconds:.0%} "
            "of the wall time (machine-wide)"
        )
        before, after = k.terms
        lines.append(
            f"  {'':<6} Raft term {before} -> {after}"
            + ("" if before == after else f": {after - before} election(s) during the run")
        )
    lines += ["", "Kingbus members (RSS before PUT /source and after the last GTID was committed)"]
    for r in results:
        for n in r.kingbus.nodes:
            lines.append(
                f"  {r.kind:<6} {n.name}: RSS {n.rss_before / MiB:7.1f} -> {n.rss_after / MiB:7.1f} MiB  "
                f"store {n.store_bytes / MiB:9.1f} MiB  committed after {n.committed_after:7.2f} s  "
                f"entries received again {n.resent_entries}  snapshots {n.snapshots} "
                f"(checkpoints {n.checkpoint_seconds:.2f} s, longest {n.checkpoint_seconds_max:.2f} s)"
            )
            for message, count in n.warnings.most_common(3):
                lines.append(f"  {'':<6}   {count:>6} x {message}")
    return "\n".join(lines)
