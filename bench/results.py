"""What one benchmark run measured: plain values, filled in by ``bench.ingest``, read by ``bench.report``."""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path
from typing import Any

from kingbus.binlog.gtids import GtidSet
from kingbus.devenv import mysql
from kingbus.devenv.workload import LoadResult

MiB = 1 << 20


@dataclasses.dataclass(frozen=True)
class Rate:
    """How long one reader took to ingest ``transactions`` GTIDs totalling ``bytes`` binlog bytes."""

    transactions: int
    bytes: int
    seconds: float
    # CPU seconds (user + system, all threads) each involved process used while the clock ran.
    cpu: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def txn_per_s(self) -> float:
        return self.transactions / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.bytes / MiB / self.seconds


@dataclasses.dataclass(frozen=True)
class PreloadedSource:
    server: mysql.MySQLServer
    target: GtidSet
    binlog_bytes: int
    load: LoadResult


@dataclasses.dataclass(frozen=True)
class NodeFigures:
    name: str
    rss_before: int
    rss_after: int
    store_bytes: int
    committed_after: float  # seconds from PUT /source until this member had the target
    # Journal entries this member received again although it already held them identically
    # (the journal's "kept" count: a leader re-sending entries that were still in flight).
    resent_entries: int
    # Snapshots taken during the run and the longest their store checkpoint held the tick
    # thread (no heartbeats meanwhile).
    snapshots: int
    checkpoint_seconds_max: float
    checkpoint_seconds: float  # all of this run's checkpoints together
    warnings: collections.Counter[str]  # WARNING/ERROR lines of the member's log, by message


@dataclasses.dataclass(frozen=True)
class KingbusRun:
    rate: Rate
    nodes: list[NodeFigures]
    leader: str
    raft_entries: int  # commit_index growth on the leader: entries journalled (and fsynced) per member
    pipeline: PipelineSamples
    loopback_bytes: int  # sent over lo (machine-wide) while the clock ran
    disk_written_bytes: int  # written to block devices (machine-wide) while the clock ran
    disk_busy_ms: int  # the disks' time spent doing I/O while the clock ran
    terms: tuple[int, int]  # the Raft term before PUT /source and after the last commit
    profiles: dict[str, Path]  # py-spy collapsed stacks per member, when profiled


@dataclasses.dataclass(frozen=True)
class PhaseResult:
    kind: str
    source: PreloadedSource
    kingbus: KingbusRun
    replica_default: Rate | None
    replica_synced: Rate | None


@dataclasses.dataclass
class PipelineSamples:
    """The leader syncer's proposals waiting for commit, as seen at each status poll."""

    in_flight: list[int] = dataclasses.field(default_factory=list)
    in_flight_bytes: list[int] = dataclasses.field(default_factory=list)

    def add(self, syncer: dict[str, Any]) -> None:
        if "in_flight" in syncer:
            self.in_flight.append(int(syncer["in_flight"]))
            self.in_flight_bytes.append(int(syncer.get("in_flight_bytes", 0)))

    def describe(self) -> str:
        if not self.in_flight:
            return "no samples"
        n = len(self.in_flight)
        full = max(self.in_flight)
        return (
            f"{n} samples: mean {sum(self.in_flight) / n:.1f} in flight (max seen {full}, "
            f"at max {sum(1 for v in self.in_flight if v == full) / n:.0%}, empty "
            f"{sum(1 for v in self.in_flight if v == 0) / n:.0%}), "
            f"mean {sum(self.in_flight_bytes) / n / MiB:.1f} MiB in flight"
        )
