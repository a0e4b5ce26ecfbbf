"""Real MySQL 9.7 servers for tests, the demo and the benchmarks, without touching the system.

Theory of operation
-------------------
*Provisioning* (``provision``) builds a private, relocatable MySQL tree once per cache:

1. ``kingbus.devenv.debtree`` resolves the whole dependency closure of ``mysql-server-core``
   and ``mysql-client-core`` (libc included) from Debian sid with a private apt root.
2. The debs are kept in ``<cache>/mysql-9.7/debs`` so a later re-unpack needs no network, and are
   unpacked with ``dpkg -x`` into ``<cache>/mysql-9.7/tree`` (perl is skipped: only the server,
   the client and their libraries are needed).
3. Every binary is run through the tree's own dynamic loader with ``--inhibit-cache`` and
   ``--library-path``, so no host library is used; mysqld gets explicit ``--basedir``,
   ``--lc-messages-dir``, ``--character-sets-dir`` and ``--plugin-dir`` because its compiled-in
   paths point at the host.
4. ``mysqld --version`` must report 9.7.x, otherwise provisioning fails.
5. A *template datadir* is initialized once (``--initialize-insecure`` with the small-memory
   settings); new servers start from a ``cp -a`` copy of it with ``auto.cnf`` removed (so each
   gets its own ``server_uuid``), which takes a fraction of a second instead of ~5 s.

Each finished step leaves a stamp file; an ``fcntl`` lock on ``<cache>/mysql-9.7/.lock`` makes
parallel processes wait for one another instead of unpacking over each other. When everything
is cached, ``provision`` takes the lock, checks the stamps and returns.

*Servers* (``MySQLServer``) are plain child processes tracked by pid (the process is named
``ld-linux-x86-64``, so never look for it by name). ``start`` rotates the error log before
launching, because the log is appended to and an old "ready for connections" line would fool
the wait; it fails with the tail of the error log when mysqld exits or does not become ready.
Every started server is registered for ``atexit`` cleanup, and a server started from the main
thread also gets ``PR_SET_PDEATHSIG`` = SIGKILL so it dies with its parent even when the parent
is killed outright.

CLI: ``python -m kingbus.devenv.mysql provision`` prints the tree's path (CI uses it to warm the
cache); ``python -m kingbus.devenv.mysql run --port P --server-id N --datadir D`` runs one server
in the foreground until interrupted.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors

from kingbus.devenv.debtree import (
    DebTree,
    ProvisioningError,
    default_cache_dir,
    download_closure,
    file_lock,
    run,
    unpack,
)

MYSQL_SERIES = "9.7"
APT_PACKAGES = ("mysql-server-core", "mysql-client-core")
# Packages whose files the servers never need; perl is the big one (the client tools in Perl).
SKIPPED_DEB_PREFIXES = ("perl", "libperl")
# Small-memory settings: ~290 MB RSS per server instead of ~540 MB. The redo capacity is also
# used at initialize time so the template datadir stays small.
SMALL_MEMORY_ARGS = (
    "--innodb-buffer-pool-size=32M",
    "--performance-schema=OFF",
    "--innodb-redo-log-capacity=8M",
)
# For benchmark sources (pass as extra_args; they override the small-memory values): with the
# 8 MB redo log, ~1 MB transactions are throttled by checkpoints. Measured on 2 vCPUs, client on
# the unix socket: large_txn_load 14 -> 52 MB/s, small_txn_load 1700 -> 1900 txn/s, RSS
# 290 -> 345 MiB. Adding --sync-binlog=0 --innodb-flush-log-at-trx-commit=2 gives ~5400
# small txn/s (at the price of the source's own durability).
BENCH_SOURCE_ARGS = ("--innodb-redo-log-capacity=256M", "--innodb-buffer-pool-size=256M")
# Unix socket paths are limited to 107 bytes (sockaddr_un.sun_path).
_MAX_SOCKET_PATH = 100


class ServerStartError(RuntimeError):
    """mysqld exited or did not become ready; the message carries the error log's tail."""


@dataclass(frozen=True)
class MySQLTree:
    """An unpacked, runnable MySQL tree and how to run its binaries."""

    root: Path
    version: str
    template_datadir: Path

    @property
    def basedir(self) -> Path:
        return self.root / "usr"

    @property
    def share_dir(self) -> Path:
        return self.root / "usr" / "share" / "mysql"

    @property
    def plugin_dir(self) -> Path:
        return self.root / "usr" / "lib" / "mysql" / "plugin"

    @property
    def mysqld(self) -> Path:
        return self.root / "usr" / "sbin" / "mysqld"

    @property
    def mysql(self) -> Path:
        return self.root / "usr" / "bin" / "mysql"

    @property
    def mysqlbinlog(self) -> Path | None:
        path = self.root / "usr" / "bin" / "mysqlbinlog"
        return path if path.exists() else None

    def command(self, binary: Path, *args: str) -> list[str]:
        """argv running ``binary`` from this tree with the tree's own loader and libraries."""
        return DebTree(self.root).command(binary, *args)

    def mysqld_command(self, *args: str) -> list[str]:
        # --no-defaults must be the first option; host MariaDB ships an /etc/mysql/my.cnf.
        return self.command(
            self.mysqld,
            "--no-defaults",
            f"--basedir={self.basedir}",
            f"--lc-messages-dir={self.share_dir}",
            f"--character-sets-dir={self.share_dir / 'charsets'}",
            f"--plugin-dir={self.plugin_dir}",
            *args,
        )

    def client_command(self, socket_path: Path, *args: str) -> list[str]:
        """argv of the ``mysql`` client as root over ``socket_path``."""
        return self.command(
            self.mysql,
            "--no-defaults",
            f"--character-sets-dir={self.share_dir / 'charsets'}",
            "-uroot",
            f"--socket={socket_path}",
            *args,
        )


# --------------------------------------------------------------------------------------------
# Provisioning


def _server_version(tree: MySQLTree) -> str:
    out = run(tree.command(tree.mysqld, "--version"), what="mysqld --version")
    match = re.search(r"Ver (\d+\.\d+\.\d+)", out)
    if not match:
        raise ProvisioningError(f"cannot read a version from mysqld --version: {out!r}")
    return match.group(1)


def _initialize_template(tree: MySQLTree, template: Path) -> None:
    staging = template.with_name(template.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    argv = tree.mysqld_command(
        "--initialize-insecure",
        f"--datadir={staging}",
        "--secure-file-priv=NULL",
        *SMALL_MEMORY_ARGS,
        *_user_args(),
    )
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-4000:]
        raise ProvisioningError(f"mysqld --initialize-insecure failed:\n{output}")
    # Each server copied from the template must generate its own server_uuid.
    (staging / "auto.cnf").unlink(missing_ok=True)
    shutil.rmtree(template, ignore_errors=True)
    staging.rename(template)


def provision(cache_dir: Path | None = None) -> MySQLTree:
    """Return a runnable MySQL 9.7 tree under ``cache_dir``, building what is missing.

    Idempotent, safe to call from parallel processes, and fast when everything is cached.
    Raises ``ProvisioningError`` with the failing step's output otherwise.
    """
    base = (cache_dir or default_cache_dir()) / f"mysql-{MYSQL_SERIES}"
    debs, root, template = base / "debs", base / "tree", base / "template-datadir"
    with file_lock(base / ".lock"):
        if not (debs / ".complete").exists():
            download_closure(APT_PACKAGES, base, debs)
            (debs / ".complete").touch()
        if not (root / ".complete").exists():
            unpack(debs, root, skipped_prefixes=SKIPPED_DEB_PREFIXES)
            (root / ".complete").touch()
        tree = MySQLTree(root=root, version="", template_datadir=template)
        try:
            version = _server_version(tree)
        except (ProvisioningError, OSError):
            # A damaged tree (files deleted or truncated): unpack again from the kept debs,
            # which needs no network, and check once more.
            unpack(debs, root, skipped_prefixes=SKIPPED_DEB_PREFIXES)
            (root / ".complete").touch()
            version = _server_version(tree)
        if not version.startswith(MYSQL_SERIES + "."):
            raise ProvisioningError(
                f"{tree.mysqld} is MySQL {version}, expected {MYSQL_SERIES}.x; "
                f"remove {base} to fetch again (sid moved on?)"
            )
        tree = MySQLTree(root=root, version=version, template_datadir=template)
        if not (template / "mysql.ibd").exists():
            _initialize_template(tree, template)
        return tree


# --------------------------------------------------------------------------------------------
# Servers


def _user_args() -> tuple[str, ...]:
    # mysqld refuses to run as root unless told to.
    return ("--user=root",) if os.geteuid() == 0 else ()


_live_servers: set[MySQLServer] = set()
_live_lock = threading.Lock()


def _kill_live_servers() -> None:
    with _live_lock:
        servers = list(_live_servers)
    for server in servers:
        server.kill9()


atexit.register(_kill_live_servers)

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    # Runs in the child between fork and exec; the setting survives exec of the loader.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no {path})"


class MySQLServer:
    """One mysqld process with its own datadir, port and unix socket under ``base_dir``.

    Defaults: GTID mode ON with enforced consistency, binary log ``binlog.*`` in ROW format with
    full row metadata, replica updates logged, X plugin off, no ``secure_file_priv``, no name
    resolution, replication not started automatically, ``max_allowed_packet=1G``, small memory.
    ``extra_args`` are appended last, so they override the defaults.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        tree: MySQLTree,
        base_dir: Path,
        *,
        port: int,
        server_id: int,
        extra_args: Sequence[str] = (),
        datadir: Path | None = None,
    ) -> None:
        self.tree = tree
        self.base_dir = Path(base_dir)
        self.port = port
        self.server_id = server_id
        self.extra_args = tuple(extra_args)
        self.datadir = Path(datadir) if datadir else self.base_dir / "data"
        self.error_log = self.base_dir / "error.log"
        self.pid_file = self.base_dir / "mysqld.pid"
        self.socket_path = self._socket_path()
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"MySQLServer(port={self.port}, server_id={self.server_id}, datadir={self.datadir})"

    def _socket_path(self) -> Path:
        path = self.base_dir / "mysqld.sock"
        if len(str(path)) <= _MAX_SOCKET_PATH:
            return path
        return Path(tempfile.mkdtemp(prefix="kb-mysql-")) / "mysqld.sock"

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def argv(self) -> list[str]:
        return self.tree.mysqld_command(
            *_user_args(),
            f"--datadir={self.datadir}",
            f"--bind-address={self.host}",
            f"--port={self.port}",
            f"--socket={self.socket_path}",
            f"--log-error={self.error_log}",
            f"--pid-file={self.pid_file}",
            f"--server-id={self.server_id}",
            "--mysqlx=OFF",
            "--secure-file-priv=NULL",
            "--skip-name-resolve",
            "--gtid-mode=ON",
            "--enforce-gtid-consistency=ON",
            "--log-bin=binlog",
            "--binlog-format=ROW",
            "--binlog-row-metadata=FULL",
            "--log-replica-updates=ON",
            "--skip-replica-start",
            "--max-allowed-packet=1G",
            *SMALL_MEMORY_ARGS,
            *self.extra_args,
        )

    def start(self, timeout: float = 60.0) -> None:
        """Start mysqld (from a copy of the template datadir if it has none) and wait until ready."""
        if self.is_running():
            raise RuntimeError(f"{self!r} is already running")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        if self.datadir.is_dir() and not any(self.datadir.iterdir()):
            self.datadir.rmdir()  # an empty directory is a new server too; cp -a needs it absent
        if not self.datadir.exists():
            self.datadir.parent.mkdir(parents=True, exist_ok=True)
            template = str(self.tree.template_datadir)
            run(["cp", "-a", template, str(self.datadir)], what="copy template datadir")
            (self.datadir / "auto.cnf").unlink(missing_ok=True)
        if self.error_log.exists():
            self.error_log.replace(self.error_log.with_name("error.log.prev"))
        preexec = die_with_parent if threading.current_thread() is threading.main_thread() else None
        with open(self.base_dir / "mysqld.out", "ab") as out:
            self._process = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=preexec,
            )
        with _live_lock:
            _live_servers.add(self)
        deadline = time.monotonic() + timeout
        while True:
            if "ready for connections" in _read_text(self.error_log):
                return
            if self._process.poll() is not None:
                code = self._process.returncode
                self._forget()
                raise ServerStartError(
                    f"mysqld on port {self.port} exited with {code} during start-up; "
                    f"{self.error_log}:\n{_log_tail(self.error_log)}"
                )
            if time.monotonic() > deadline:
                self.kill9()
                raise ServerStartError(
                    f"mysqld on port {self.port} not ready after {timeout:.0f} s; "
                    f"{self.error_log}:\n{_log_tail(self.error_log)}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 60.0) -> None:
        """Graceful shutdown (SIGTERM), waiting for the process; SIGKILL after ``timeout``."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            self._kill_dump_threads()
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._forget()

    def _kill_dump_threads(self) -> None:
        # A source with a replica attached spends ~8 s of its shutdown in "Giving client threads
        # a chance to die gracefully": the binlog dump thread does not notice the shutdown.
        # Killing dump threads first brings a graceful stop from ~11 s down to ~3 s. Best effort:
        # the server may already be unreachable.
        try:
            rows = self.query(
                "SELECT id FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%%'"
            )
            for (thread_id,) in rows:
                with contextlib.suppress(pymysql.MySQLError):
                    self.execute(f"KILL {int(thread_id)}")
        except (pymysql.MySQLError, OSError):
            pass

    def kill9(self) -> None:
        """Kill the process outright (a crash as far as InnoDB and the binlog are concerned)."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        self._forget()

    def restart(self, timeout: float = 60.0) -> None:
        self.stop(timeout)
        self.start(timeout)

    def _forget(self) -> None:
        self._process = None
        with _live_lock:
            _live_servers.discard(self)

    def rss_bytes(self) -> int:
        """Resident set size of the running mysqld, from /proc."""
        if self.pid is None:
            raise RuntimeError(f"{self!r} is not running")
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS in /proc status")

    # ---- SQL ------------------------------------------------------------------------------

    def connect(self, **kwargs: Any) -> pymysql.connections.Connection[Any]:
        """A PyMySQL connection as root over the unix socket (autocommit on, 1 GiB packets)."""
        params: dict[str, Any] = {
            "unix_socket": str(self.socket_path),
            "user": "root",
            "password": "",
            "autocommit": True,
            "max_allowed_packet": 1 << 30,
            "connect_timeout": 10,
        }
        params.update(kwargs)
        return pymysql.connect(**params)

    def query(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        with contextlib.closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def query_dicts(self, sql: str, args: Any = None) -> list[dict[str, Any]]:
        with (
            contextlib.closing(self.connect(cursorclass=pymysql.cursors.DictCursor)) as conn,
            conn.cursor() as cur,
        ):
            cur.execute(sql, args)
            return list(cur.fetchall())

    def execute(self, sql: str, args: Any = None) -> int:
        """Run one statement; returns the affected row count."""
        with contextlib.closing(self.connect()) as conn, conn.cursor() as cur:
            return int(cur.execute(sql, args))

    def scalar(self, sql: str, args: Any = None) -> Any:
        rows = self.query(sql, args)
        return rows[0][0] if rows else None

    @property
    def server_uuid(self) -> str:
        return str(self.scalar("SELECT @@GLOBAL.server_uuid"))

    def gtid_executed(self) -> str:
        """``@@GLOBAL.gtid_executed`` with MySQL's line breaks removed."""
        return str(self.scalar("SELECT @@GLOBAL.gtid_executed")).replace("\n", "")

    def gtid_subset(self, subset: str, superset: str) -> bool:
        return bool(self.scalar("SELECT GTID_SUBSET(%s, %s)", (subset, superset)))

    def binlog_files(self) -> list[tuple[str, int]]:
        """``SHOW BINARY LOGS`` as (name, size) pairs."""
        return [(str(row[0]), int(row[1])) for row in self.query("SHOW BINARY LOGS")]

    # ---- replication ------------------------------------------------------------------------

    def create_replication_user(self, user: str = "repl", password: str = "replpass") -> None:
        self.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
        self.execute("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO %s@'%%'", (user,))

    def replicate_from(
        self,
        host: str,
        port: int,
        *,
        user: str = "repl",
        password: str = "replpass",
        start: bool = True,
        ssl: bool = False,
        compression: str = "uncompressed",
    ) -> None:
        """Make this server a GTID auto-positioned replica of ``host:port`` (a MySQL or a Kingbus
        node). ``compression`` is SOURCE_COMPRESSION_ALGORITHMS ("zlib", "zstd", ...)."""
        self.execute(
            "CHANGE REPLICATION SOURCE TO SOURCE_HOST=%s, SOURCE_PORT=%s, SOURCE_USER=%s, "
            "SOURCE_PASSWORD=%s, SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1, "
            f"SOURCE_SSL={int(ssl)}, SOURCE_CONNECT_RETRY=1, SOURCE_RETRY_COUNT=3600, "
            "SOURCE_COMPRESSION_ALGORITHMS=%s",
            (host, port, user, password, compression),
        )
        if start:
            self.execute("START REPLICA")

    def replica_status(self) -> dict[str, Any]:
        """``SHOW REPLICA STATUS`` as a dict; empty when this server is not a replica."""
        rows = self.query_dicts("SHOW REPLICA STATUS")
        return rows[0] if rows else {}

    def wait_replica_caught_up(self, gtid_set: str, timeout: float = 30.0) -> None:
        """Wait until ``gtid_set`` is contained in this server's ``gtid_executed``.

        Fails early with the replication error when the IO or SQL thread stopped on one.
        """
        deadline = time.monotonic() + timeout
        while True:
            executed = self.gtid_executed()
            if self.gtid_subset(gtid_set, executed):
                return
            status = self.replica_status()
            # A thread that is still running (e.g. "Connecting" while the source restarts) keeps
            # its last error but will retry; only a stopped thread's error is final.
            errors = {
                error: status.get(error)
                for running, error in (
                    ("Replica_IO_Running", "Last_IO_Error"),
                    ("Replica_SQL_Running", "Last_SQL_Error"),
                )
                if status.get(running) == "No" and status.get(error)
            }
            if errors:
                raise RuntimeError(f"replication failed on {self!r}: {errors}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self!r} did not reach {gtid_set!r} in {timeout} s; gtid_executed={executed!r}, "
                    f"IO={status.get('Replica_IO_Running')} SQL={status.get('Replica_SQL_Running')}"
                )
            time.sleep(0.05)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


# --------------------------------------------------------------------------------------------
# CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kingbus.devenv.mysql", description="MySQL 9.7 dev servers"
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="$KINGBUS_CACHE or ~/.cache/kingbus")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("provision", help="build or check the MySQL tree and print its path")
    run = sub.add_parser("run", help="run one server in the foreground until interrupted")
    run.add_argument("--port", type=int, required=True)
    run.add_argument("--server-id", type=int, required=True)
    run.add_argument(
        "--datadir",
        type=Path,
        required=True,
        help="data directory (from the template if missing); socket and logs in DATADIR.run/",
    )
    run.add_argument("--repl-user", default=None, help="create this replication user on a new datadir")
    run.add_argument("--repl-password", default="replpass")
    run.add_argument("mysqld_args", nargs="*", help="extra mysqld options (after --)")
    args = parser.parse_args(argv)

    tree = provision(args.cache_dir)
    if args.command == "provision":
        print(tree.root)
        return 0

    datadir: Path = args.datadir.resolve()
    fresh = not datadir.exists()
    server = MySQLServer(
        tree,
        datadir.with_name(datadir.name + ".run"),
        port=args.port,
        server_id=args.server_id,
        extra_args=args.mysqld_args,
        datadir=datadir,
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    server.start()
    try:
        if fresh and args.repl_user:
            server.create_replication_user(args.repl_user, args.repl_password)
        print(
            json.dumps(
                {
                    "port": server.port,
                    "host": server.host,
                    "socket": str(server.socket_path),
                    "datadir": str(server.datadir),
                    "error_log": str(server.error_log),
                    "server_uuid": server.server_uuid,
                    "pid": server.pid,
                }
            ),
            flush=True,
        )
        while not stopping.wait(0.5):
            if not server.is_running():
                print(f"mysqld exited; {server.error_log}:\n{_log_tail(server.error_log)}", file=sys.stderr)
                return 1
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
