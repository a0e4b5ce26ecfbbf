"""Ingest benchmark: a three-node Kingbus cluster against a real MySQL 9.7 replica's receiver.

Theory of operation
-------------------
Throughput is measured on a *preloaded* source, so the figure is the ingest path's own speed and
not the speed at which a Python client can commit into MySQL:

1. A fresh MySQL 9.7 source (``BENCH_SOURCE_ARGS`` plus relaxed durability, which only speeds
   up the preload) gets a replication user and ``N`` transactions of one kind (``small``: one
   ~500 B row each; ``large``: ~1 MiB over 16 rows). Its ``gtid_executed`` then is the *target*
   and the sum of its binlog file sizes is the byte count every reader must move.
2. **Kingbus**: three real ``kingbus-node`` processes on 127.0.0.1/.2/.3 with
   ``raft.fsync: always`` elect a leader; the clock starts at ``PUT /source`` and stops when the
   last member's ``committed_gtid_set`` equals the target. Nothing is subtracted: leader
   connection set-up, Raft replication to both followers and apply on all three are inside.
   Each member's ``VmRSS`` is read from ``/proc/<pid>/status`` before the source is set and
   after the target is committed; in the large phase the source holds at least ``--rss-gb`` GiB,
   so "after" is the resident size of a node that has stored that much.
3. **MySQL replica receiver**: a fresh 9.7 server is pointed at the same source with
   ``SOURCE_AUTO_POSITION=1``; the clock starts at ``START REPLICA IO_THREAD`` and stops when
   ``Retrieved_Gtid_Set`` covers the target. It runs twice: with default settings (the relay log
   is synced every 10000 events) and with ``SET GLOBAL sync_relay_log=1`` (an fsync per event),
   the setting that matches Kingbus's durability.

The cluster is killed before the replicas run, and each phase's servers are removed after it,
so the readers never compete with each other for the two CPUs or the disk. Every process this
benchmark starts is killed on exit, on Ctrl-C, on SIGTERM and when the ``--max-seconds`` alarm
fires (a ``BaseException`` so no library's ``except Exception`` can swallow it).

Beside the figures the report carries what is needed to judge them: CPU per process and the
rest of the machine's (``bench.procstats``), the Raft entries, the leader's pipeline, the entries
followers received twice, and optionally py-spy profiles (``bench.profiling``). The values live
in ``bench.results`` and are printed by ``bench.report``.

Run through ``scripts/bench.sh`` (``--quick`` for a ~1 minute smoke run, ``--help`` for sizes).
"""

from __future__ import annotations

import argparse
import atexit
import collections
import contextlib
import dataclasses
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import pymysql

from bench import disk, procstats, profiling
from bench.procstats import CpuMeter, disk_counters, loopback_bytes, vm_rss
from bench.report import format_report
from bench.results import KingbusRun, MiB, NodeFigures, PhaseResult, PipelineSamples, PreloadedSource, Rate
from kingbus.binlog.gtids import GtidSet
from kingbus.config import RaftConfig
from kingbus.devenv import mysql
from kingbus.devenv.localcluster import Cluster, Member
from kingbus.devenv.workload import LoadResult, large_txn_load, small_txn_load

GiB = 1 << 30
# Relaxed durability on the *source* only: it makes the preload ~3x faster and changes nothing
# the readers see (they read binlog files that are complete before the clock starts).
SOURCE_ARGS = (*mysql.BENCH_SOURCE_ARGS, "--sync-binlog=0", "--innodb-flush-log-at-trx-commit=2")
# Status polling: coarse enough not to load the members, fine enough to be ~1% of a phase.
KINGBUS_POLL_SECONDS = 0.05  # --poll
REPLICA_POLL_SECONDS = 0.01


@dataclasses.dataclass(frozen=True)
class KingbusSettings:
    """How the cluster is run and watched; only ``fsync="always"`` gives the benchmark's figures."""

    timeout: float = 300.0  # seconds allowed for one measurement
    poll: float = KINGBUS_POLL_SECONDS  # seconds between /status polls of each member
    fsync: str = "always"  # raft.fsync of every member; "never" only to see what fsync costs
    profile_dir: Path | None = None  # py-spy every member into this directory
    # TLS on both readers' connections to the source, or on neither: the comparison is only
    # fair with the same transport (a MySQL replica does not encrypt unless SOURCE_SSL=1).
    tls: bool = False
    entry_bytes: int | None = None  # raft.entry_bytes of every member; None: the node's default


class Aborted(BaseException):
    """Raised from a signal handler (Ctrl-C is KeyboardInterrupt already) to unwind and clean up."""


# --------------------------------------------------------------------------------------------
# Process hygiene


_live_clusters: list[Cluster] = []


def _kill_live_clusters() -> None:
    # Members run in their own sessions (so a test can kill -9 one), which also means a
    # terminal's Ctrl-C never reaches them: they must be killed explicitly.
    for cluster in list(_live_clusters):
        cluster.stop()
        _live_clusters.remove(cluster)


atexit.register(_kill_live_clusters)


def _raise_aborted(signum: int, _frame: FrameType | None) -> None:
    raise Aborted(signal.Signals(signum).name)


@contextlib.contextmanager
def _started_cluster(base: Path, *, fsync: str, entry_bytes: int | None) -> Iterator[Cluster]:
    cluster = Cluster(base, 3)
    raft: dict[str, object] = {"fsync": fsync}
    if entry_bytes is not None:
        raft["entry_bytes"] = entry_bytes
    for member in cluster.members:
        member.extra = {"raft": raft}
    _live_clusters.append(cluster)
    try:
        cluster.start()
        cluster.leader(timeout=60)
        cluster.wait_ready(timeout=60)
        yield cluster
    finally:
        failed = [m for m in cluster.members if m.process is not None and m.process.poll() not in (None, -9)]
        cluster.stop()
        _live_clusters.remove(cluster)
        for member in failed:
            print(f"--- {member.name} exited early; log tail:\n{member.log_tail()}", file=sys.stderr)


@contextlib.contextmanager
def _started_server(
    tree: mysql.MySQLTree, base: Path, *, port: int, server_id: int, extra_args: Sequence[str] = ()
) -> Iterator[mysql.MySQLServer]:
    server = mysql.MySQLServer(tree, base, port=port, server_id=server_id, extra_args=extra_args)
    server.start()
    try:
        yield server
    finally:
        server.kill9()


# --------------------------------------------------------------------------------------------
# Measurements


def _server_pid(server: mysql.MySQLServer) -> int:
    if server.pid is None:
        raise RuntimeError(f"{server!r} is not running")
    return server.pid


def _member_pid(member: Member) -> int:
    if member.process is None or member.process.poll() is not None:
        raise RuntimeError(f"{member.name} is not running\n{member.log_tail()}")
    return member.process.pid


@contextlib.contextmanager
def preload(
    tree: mysql.MySQLTree, base: Path, *, port: int, kind: str, transactions: int, size: int
) -> Iterator[PreloadedSource]:
    """A started source holding ``transactions`` of ``kind``; yields once, kills it afterwards."""
    with _started_server(tree, base, port=port, server_id=1, extra_args=SOURCE_ARGS) as server:
        server.create_replication_user()
        load_fn: Callable[..., LoadResult] = small_txn_load if kind == "small" else large_txn_load
        with contextlib.closing(server.connect()) as conn:
            load = load_fn(conn, transactions, size)
        target = GtidSet.parse(server.gtid_executed())
        binlog_bytes = sum(size for _, size in server.binlog_files())
        yield PreloadedSource(server=server, target=target, binlog_bytes=binlog_bytes, load=load)


def _wait_all_committed(
    members: Sequence[Member],
    target: GtidSet,
    *,
    leader: str,
    started: float,
    timeout: float,
    poll: float,
    pipeline: PipelineSamples,
) -> dict[str, float]:
    """Seconds since ``started`` at which each member's committed set became exactly ``target``."""
    pending = {m.name: m for m in members}
    finished: dict[str, float] = {}
    deadline = started + timeout
    while pending:
        for name, member in list(pending.items()):
            status = member.status()
            if name == leader:
                pipeline.add(status.get("syncer") or {})
            committed = GtidSet.parse(str(status["committed_gtid_set"]))
            if committed == target:
                finished[name] = time.monotonic() - started
                del pending[name]
            elif not committed.issubset(target):
                raise RuntimeError(f"{name} committed {committed}, beyond the source's {target}")
        if time.monotonic() > deadline:
            detail = "\n".join(f"{m.name}: {m.status()}\n{m.log_tail(15)}" for m in pending.values())
            raise TimeoutError(f"Kingbus did not commit the target in {timeout:.0f} s:\n{detail}")
        if pending:
            time.sleep(poll)
    return finished


def _log_warnings(member: Member) -> collections.Counter[str]:
    """WARNING and ERROR lines in the member's log, by message (the part after the logger name)."""
    found: collections.Counter[str] = collections.Counter()
    if member.log_path.exists():
        for line in member.log_path.read_text(errors="replace").splitlines():
            for level in (" WARNING ", " ERROR "):
                if level in line:
                    found[level.strip() + " " + line.split(level, 1)[1][:160]] += 1
    return found


def _kept_entries(member: Member) -> int:
    return int(((member.status().get("raft") or {}).get("journal") or {}).get("kept_entries", 0))


def _snapshot_stats(member: Member) -> dict[str, float]:
    stats = (member.status().get("raft") or {}).get("snapshots") or {}
    return {k: float(v) for k, v in stats.items()}


def _snapshot_figures(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    def grown(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    return {
        "snapshots": int(grown("snapshots")),
        "checkpoint_seconds": grown("checkpoint_seconds_total"),
        "checkpoint_seconds_max": after.get("checkpoint_seconds_max", 0.0),
    }


def measure_kingbus(base: Path, source: PreloadedSource, settings: KingbusSettings) -> KingbusRun:
    """Wall time from PUT /source until all three members have committed the source's target.

    With ``settings.profile_dir``, every member is sampled by py-spy for the whole measurement
    (which costs CPU on a small machine: use it to find where time goes, not for the figures).
    """
    profile_dir = settings.profile_dir
    started_cluster = _started_cluster(base, fsync=settings.fsync, entry_bytes=settings.entry_bytes)
    with started_cluster as cluster, contextlib.ExitStack() as stack:
        members = cluster.members
        leader_member = cluster.leader()
        leader = leader_member.name
        index_before = int(leader_member.status()["commit_index"])
        term_before = int(leader_member.status()["term"])
        kept_before = {m.name: _kept_entries(m) for m in members}
        snapshots_before = {m.name: _snapshot_stats(m) for m in members}
        rss_before = {m.name: vm_rss(_member_pid(m)) for m in members}
        profiles: dict[str, Path] = {}
        if profile_dir is not None:
            pids = {
                f"{m.name}-{'leader' if m.name == leader else 'follower'}": _member_pid(m) for m in members
            }
            profiles = stack.enter_context(profiling.recording(pids, profile_dir))
            time.sleep(1)  # py-spy attaches asynchronously; do not lose the start of the run
        meter = CpuMeter({**{m.name: _member_pid(m) for m in members}, "source": _server_pid(source.server)})
        meter.start()
        lo_before = loopback_bytes()
        disk_before = disk_counters()
        started = time.monotonic()
        cluster.set_source("127.0.0.1", source.server.port, tls="required" if settings.tls else "disabled")
        pipeline = PipelineSamples()
        finished = _wait_all_committed(
            members,
            source.target,
            leader=leader,
            started=started,
            timeout=settings.timeout,
            poll=settings.poll,
            pipeline=pipeline,
        )
        cpu = meter.stop()
        lo_sent = loopback_bytes() - lo_before
        disk = disk_counters() - disk_before
        stack.close()
        raft_entries = int(leader_member.status()["commit_index"]) - index_before
        term_after = max(int(m.status()["term"]) for m in members)
        seconds = max(finished.values())
        nodes = [
            NodeFigures(
                name=m.name,
                rss_before=rss_before[m.name],
                rss_after=vm_rss(_member_pid(m)),
                store_bytes=int(m.status()["store"]["bytes"]),
                committed_after=finished[m.name],
                resent_entries=_kept_entries(m) - kept_before[m.name],
                **_snapshot_figures(snapshots_before[m.name], _snapshot_stats(m)),
                warnings=_log_warnings(m),
            )
            for m in members
        ]
    rate = Rate(transactions=source.target.count(), bytes=source.binlog_bytes, seconds=seconds, cpu=cpu)
    return KingbusRun(
        rate=rate,
        nodes=nodes,
        leader=leader,
        raft_entries=raft_entries,
        pipeline=pipeline,
        loopback_bytes=lo_sent,
        disk_written_bytes=disk.written_bytes,
        disk_busy_ms=disk.busy_ms,
        terms=(term_before, term_after),
        profiles=profiles,
    )


def measure_replica(
    tree: mysql.MySQLTree,
    base: Path,
    source: PreloadedSource,
    *,
    port: int,
    sync_relay_log: bool,
    timeout: float,
    tls: bool,
) -> Rate:
    """Wall time from START REPLICA IO_THREAD until Retrieved_Gtid_Set covers the target."""
    with _started_server(tree, base, port=port, server_id=2) as replica:
        replica.replicate_from(source.server.host, source.server.port, start=False, ssl=tls)
        target = source.target.format()
        with contextlib.closing(replica.connect(cursorclass=pymysql.cursors.DictCursor)) as conn:
            cur = conn.cursor()
            if sync_relay_log:
                cur.execute("SET GLOBAL sync_relay_log = 1")
            meter = CpuMeter({"replica": _server_pid(replica), "source": _server_pid(source.server)})
            meter.start()
            started = time.monotonic()
            cur.execute("START REPLICA IO_THREAD")
            deadline = started + timeout
            while True:
                cur.execute("SHOW REPLICA STATUS")
                status: dict[str, Any] = cur.fetchone() or {}
                retrieved = str(status.get("Retrieved_Gtid_Set") or "").replace("\n", "")
                cur.execute("SELECT GTID_SUBSET(%s, %s) AS done", (target, retrieved))
                row: dict[str, Any] = cur.fetchone() or {}
                if row.get("done"):
                    seconds = time.monotonic() - started
                    cpu = meter.stop()
                    break
                if status.get("Replica_IO_Running") == "No" and status.get("Last_IO_Error"):
                    raise RuntimeError(f"replica IO thread stopped: {status.get('Last_IO_Error')}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"replica did not receive the target in {timeout:.0f} s: {retrieved}")
                time.sleep(REPLICA_POLL_SECONDS)
            cur.execute("STOP REPLICA IO_THREAD")
    return Rate(transactions=source.target.count(), bytes=source.binlog_bytes, seconds=seconds, cpu=cpu)


def run_phase(
    tree: mysql.MySQLTree,
    work: Path,
    *,
    kind: str,
    transactions: int,
    size: int,
    replicas: bool,
    settings: KingbusSettings,
    log: Callable[[str], None],
    keep: bool = False,
) -> PhaseResult:
    phase_dir = work / kind
    source_port, replica_port = _free_ports(2)
    log(f"[{kind}] preloading the source with {transactions} x {size} B transactions")
    with preload(
        tree, phase_dir / "source", port=source_port, kind=kind, transactions=transactions, size=size
    ) as source:
        log(
            f"[{kind}] source: {source.target.count()} GTIDs, {source.binlog_bytes / MiB:.1f} MiB of binlog "
            f"(preload {source.load.seconds:.1f} s)"
        )
        log(f"[{kind}] kingbus: 3 nodes, fsync {settings.fsync}")
        if settings.profile_dir is not None:
            settings = dataclasses.replace(settings, profile_dir=settings.profile_dir / kind)
        kingbus = measure_kingbus(phase_dir / "cluster", source, settings)
        log(f"[{kind}] kingbus: {kingbus.rate.seconds:.2f} s")
        _discard(phase_dir / "cluster", keep)
        default = synced = None
        if replicas:
            for synced_flag in (False, True):
                label = "sync_relay_log=1" if synced_flag else "default"
                log(f"[{kind}] MySQL replica receiver ({label})")
                rate = measure_replica(
                    tree,
                    phase_dir / f"replica-{label}",
                    source,
                    port=replica_port,
                    sync_relay_log=synced_flag,
                    timeout=settings.timeout,
                    tls=settings.tls,
                )
                log(f"[{kind}] replica ({label}): {rate.seconds:.2f} s")
                _discard(phase_dir / f"replica-{label}", keep)
                if synced_flag:
                    synced = rate
                else:
                    default = rate
        result = PhaseResult(kind, source, kingbus, default, synced)
    _discard(phase_dir, keep)
    return result


def _discard(path: Path, keep: bool) -> None:
    # Each phase's data (over 5 GiB in the full large phase) goes as soon as it is measured,
    # unless asked to keep it (node logs, journals and stores for a post-mortem).
    if not keep:
        shutil.rmtree(path, ignore_errors=True)


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


# --------------------------------------------------------------------------------------------
# Report


def machine_facts(args: argparse.Namespace, tree: mysql.MySQLTree) -> dict[str, str]:
    defaults = {f.name: f.default for f in dataclasses.fields(RaftConfig)}
    return {
        "nproc": str(os.cpu_count()),
        "memory": procstats.meminfo_total(),
        "kernel": os.uname().release,
        "load average at start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "python": sys.version.split()[0],
        "mysql": tree.version,
        "source connections": "TLS (both readers)" if args.tls else "plain (both readers)",
        "kingbus raft.fsync": f"{args.fsync} (every member)"
        + ("" if args.fsync == "always" else "  <-- DIAGNOSTIC RUN, not the benchmark's figures"),
        "kingbus raft.entry_bytes": str(args.entry_bytes)
        if args.entry_bytes is not None
        else f"{defaults['entry_bytes']} (default)",
        "small transaction": f"1 row of {args.small_size} B",
        "large transaction": f"16 rows, {args.large_size} B in all",
        "work dir": str(args.work_dir),
    }


# --------------------------------------------------------------------------------------------
# CLI


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench.sh",
        description="Ingest throughput of a three-node Kingbus cluster (fsync always) vs a MySQL 9.7 "
        "replica's receiver, on the same preloaded binlog; node RSS before/after storing --rss-gb.",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run (~1 min): small sizes")
    parser.add_argument("--small", type=int, default=None, help="small transactions (default 100000)")
    parser.add_argument("--small-size", type=int, default=500, help="bytes per small transaction row")
    parser.add_argument(
        "--large", type=int, default=None, help="large transactions (default 1000; raised to reach --rss-gb)"
    )
    parser.add_argument("--large-size", type=int, default=MiB, help="bytes per large transaction")
    parser.add_argument(
        "--rss-gb", type=float, default=None, help="GiB the large phase stores at least (default 1.0)"
    )
    parser.add_argument("--skip-replica", action="store_true", help="measure Kingbus only")
    parser.add_argument("--only", choices=("small", "large"), default=None, help="run one phase")
    parser.add_argument(
        "--skip-disk",
        action="store_true",
        help="skip the durable-write ceiling of the disk (bench.disk, ~10 s after the large load)",
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds allowed per measurement")
    parser.add_argument("--max-seconds", type=float, default=None, help="abort the whole run after this")
    parser.add_argument("--work-dir", type=Path, default=None, help="scratch directory (default: temp)")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="sample every member with py-spy during the Kingbus runs (raw stacks in DIR) and "
        "print where the time goes; this slows the members down, so its figures are not the benchmark's",
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=KINGBUS_POLL_SECONDS,
        help="seconds between /status polls of each member while Kingbus ingests (default %(default)s)",
    )
    parser.add_argument(
        "--fsync",
        choices=("always", "never"),
        default="always",
        help="raft.fsync of the members; 'never' is a diagnostic (what fsync costs), not the benchmark",
    )
    parser.add_argument(
        "--entry-bytes",
        type=int,
        default=None,
        help="raft.entry_bytes of the members (default: the node's default)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="both readers encrypt their source connection (Kingbus source tls=required, the replica "
        "SOURCE_SSL=1); by default neither does, as a MySQL replica's default",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch directory and every phase's data and logs"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    if args.small is None:
        args.small = 20_000 if quick else 100_000
    if args.large is None:
        args.large = 200 if quick else 1000
    if args.rss_gb is None:
        args.rss_gb = 0.2 if quick else 1.0
    if args.max_seconds is None:
        args.max_seconds = 300 if quick else 1200
    return args


def large_count(args: argparse.Namespace) -> int:
    # Row events add a little to the payload; 2% over the GiB target keeps the store above it.
    needed: int = math.ceil(float(args.rss_gb) * GiB * 1.02 / int(args.large_size))
    return max(int(args.large), needed)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(signum, _raise_aborted)
    # A shell starts background jobs with SIGINT ignored, and Python keeps it that way; Ctrl-C
    # (or kill -INT) must still end the run and clean up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.alarm(math.ceil(args.max_seconds))
    own_work = args.work_dir is None
    args.work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="kb-bench-"))
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"{time.monotonic() - started:7.1f}s  {message}", file=sys.stderr, flush=True)

    results: list[PhaseResult] = []
    try:
        tree = mysql.provision()
        facts = machine_facts(args, tree)
        phases = [
            ("small", int(args.small), int(args.small_size)),
            ("large", large_count(args), args.large_size),
        ]
        for kind, count, size in phases:
            if args.only and kind != args.only:
                continue
            results.append(
                run_phase(
                    tree,
                    args.work_dir,
                    kind=kind,
                    transactions=count,
                    size=size,
                    replicas=not args.skip_replica,
                    settings=KingbusSettings(
                        timeout=args.timeout,
                        poll=args.poll,
                        fsync=args.fsync,
                        profile_dir=args.profile,
                        tls=args.tls,
                        entry_bytes=args.entry_bytes,
                    ),
                    log=log,
                    keep=args.keep,
                )
            )
        print(format_report(results, facts))
        large = next((r for r in results if r.kind == "large"), None)
        if large is not None:
            stored = min(n.store_bytes for n in large.kingbus.nodes)
            verdict = "yes" if stored >= args.rss_gb * GiB else "NO"
            print(f"\n  every member stored >= {args.rss_gb:g} GiB before the 'after' RSS: {verdict}")
            if not args.skip_disk:
                # After the phases, so it competes with nothing: what the large figure is up against.
                log("measuring the disk's durable-write ceiling")
                rates = [
                    disk.measure(args.work_dir, writers=w, bytes_per_writer=256 * MiB, chunk_bytes=2 * MiB)
                    for w in (3, 6)
                ]
                print()
                print("\n".join(disk.report_lines(rates)))
        log("done")
        return 0
    except (KeyboardInterrupt, Aborted) as exc:
        log(f"aborted ({type(exc).__name__} {exc}); cleaning up")
        return 130
    finally:
        signal.alarm(0)
        _kill_live_clusters()
        if own_work and not args.keep:
            shutil.rmtree(args.work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
