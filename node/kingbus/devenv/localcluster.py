"""A local Kingbus cluster of real kingbus-node processes on 127.0.0.x (tests, demo, bench).

Each member gets its own loopback address (127.0.0.1, .2, .3, ...), its own data directory,
configuration file and secret files, and runs as `python -m kingbus.cli.node` in its own
process, so tests can kill -9 it, restart it or wipe its disk exactly as an operator would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kingbus.devenv.mysql import die_with_parent

RAFT_PASSWORD = "raft-secret-for-tests"
ADMIN_TOKEN = "admin-token-for-tests"


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


def http(
    method: str, url: str, body: Any = None, *, token: str | None = ADMIN_TOKEN, timeout: float = 30
) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode(errors="replace")
        raise ApiError(exc.code, parsed) from None
    return json.loads(raw) if raw else None


def wait_until(
    predicate: Callable[[], Any], *, timeout: float, what: str | Callable[[], str], interval: float = 0.2
) -> Any:
    """Polls `predicate` until it is truthy; `what` may be a callable, read only on a timeout
    (so that diagnostics such as a log tail describe the moment of failure)."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ApiError, KeyError, ValueError) as exc:
            last_error = exc
        time.sleep(interval)
    described = what() if callable(what) else what
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {described} (last error: {last_error})")


@dataclass
class Member:
    name: str
    host: str
    base: Path
    raft_port: int
    admin_port: int
    mysql_port: int
    server_id: int
    peers: list[str]
    join: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    # What runs `kingbus-node`; by default this interpreter. e2e/image/smoke.py runs the
    # image instead (`docker run ... kingbus:dev kingbus-node`).
    launcher: list[str] = field(default_factory=lambda: [sys.executable, "-m", "kingbus.cli.node"])
    process: subprocess.Popen[bytes] | None = None

    @property
    def raft(self) -> str:
        return f"{self.host}:{self.raft_port}"

    @property
    def admin(self) -> str:
        return f"http://{self.host}:{self.admin_port}"

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def log_path(self) -> Path:
        return self.base / "node.log"

    def write_config(self) -> Path:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "raft-password").write_text(RAFT_PASSWORD + "\n")
        (self.base / "admin-token").write_text(ADMIN_TOKEN + "\n")
        (self.base / "repl-password").write_text("replpass\n")
        config: dict[str, Any] = {
            "name": self.name,
            "data_dir": str(self.data_dir),
            "log_level": "INFO",
            "raft": {
                "address": self.raft,
                "peers": self.peers,
                "password_file": str(self.base / "raft-password"),
                "fsync": "always",
            },
            "admin": {"bind": f"{self.host}:{self.admin_port}", "token_file": str(self.base / "admin-token")},
            "mysql": {
                "bind": f"{self.host}:{self.mysql_port}",
                "server_id": self.server_id,
                "users": [{"name": "repl", "password_file": str(self.base / "repl-password")}],
            },
        }
        if self.join:
            config["raft"]["join"] = self.join
        for section, values in self.extra.items():
            config.setdefault(section, {}).update(values)
        path = self.base / "kingbus.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, f"{self.name} is running"
        config = self.write_config()
        log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.pop("KINGBUS_NAME", None)
        # A member must not outlive the test or demo that started it, even when that process
        # is killed: PR_SET_PDEATHSIG follows the thread that forks, so only from the main one.
        main_thread = threading.current_thread() is threading.main_thread()
        self.process = subprocess.Popen(
            [*self.launcher, "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent if main_thread else None,
        )
        log.close()

    def kill9(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill9()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = http("GET", f"{self.admin}/status", token=None, timeout=5)
        return result

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Cluster:
    def __init__(
        self,
        base: Path,
        size: int = 3,
        *,
        hosts: list[str] | None = None,
        ports: tuple[int, int, int] | None = None,
    ) -> None:
        """Members on 127.0.0.1.. with free ports, or on `hosts` with the same (raft, admin,
        mysql) `ports` each (members in network namespaces of their own)."""
        self.base = base
        self.members: list[Member] = []
        hosts = hosts or [f"127.0.0.{i + 1}" for i in range(size)]
        ports_of = [ports or (free_port(h), free_port(h), free_port(h)) for h in hosts]
        raft_addresses = [f"{h}:{p[0]}" for h, p in zip(hosts, ports_of, strict=True)]
        for i, (host, (raft_port, admin_port, mysql_port)) in enumerate(zip(hosts, ports_of, strict=True)):
            self.members.append(
                Member(
                    name=f"kb-{i}",
                    host=host,
                    base=base / f"kb-{i}",
                    raft_port=raft_port,
                    admin_port=admin_port,
                    mysql_port=mysql_port,
                    server_id=4001 + i,
                    peers=[a for a in raft_addresses if a != raft_addresses[i]],
                )
            )

    def start(self) -> None:
        for member in self.members:
            member.start()

    def stop(self) -> None:
        for member in self.members:
            member.kill9()

    def running(self) -> list[Member]:
        return [m for m in self.members if m.running]

    def leader(self, timeout: float = 30) -> Member:
        def find() -> Member | None:
            for member in self.running():
                try:
                    if member.status()["role"] == "leader":
                        return member
                except (OSError, ApiError):
                    continue
            return None

        found: Member = wait_until(find, timeout=timeout, what="a Raft leader")
        return found

    def wait_ready(self, timeout: float = 60) -> None:
        for member in self.running():

            def ready(m: Member = member) -> bool:
                http("GET", f"{m.admin}/readyz", token=None, timeout=5)
                return True

            wait_until(ready, timeout=timeout, what=f"{member.name} ready\n{member.log_tail()}")

    def set_source(
        self, host: str, port: int, *, user: str = "repl", password: str = "replpass", **extra: Any
    ) -> Any:
        body = {"host": host, "port": port, "user": user, "password": password, **extra}
        deadline = time.monotonic() + 60
        while True:
            try:
                return http("PUT", f"{self.leader().admin}/source", body)
            except ApiError as exc:
                # As any client must: 503 (a leader change discarded it, no leader yet) means
                # "ask again", not "the request is wrong".
                if exc.status != 503 or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def wait_committed(
        self, gtid_set: str, timeout: float = 120, members: list[Member] | None = None
    ) -> None:
        """Waits until every (running) member reports exactly `gtid_set` as committed."""
        for member in members or self.running():

            def committed(m: Member = member) -> bool:
                return bool(m.status()["committed_gtid_set"] == gtid_set)

            def described(m: Member = member) -> str:
                return f"{m.name} to commit {gtid_set}\n{self._describe_members()}\n{m.log_tail(80)}"

            wait_until(committed, timeout=timeout, what=described)

    def _describe_members(self) -> str:
        """One line per running member: role, term, committed set and source state."""
        lines = []
        for m in self.running():
            try:
                st = m.status()
                source = st.get("source") or {}
                lines.append(
                    f"  {m.name}: role={st.get('role')} term={st.get('term')} "
                    f"commit_index={st.get('commit_index')} last_applied={st.get('last_applied')} "
                    f"committed={st.get('committed_gtid_set')!r} source={source.get('state')} "
                    f"error={source.get('error')!r} pipeline={st.get('syncer')}"
                )
            except (OSError, ApiError, ValueError) as exc:
                lines.append(f"  {m.name}: status unavailable ({exc})")
        return "\n".join(lines)

    def add_member(self, name: str, host: str) -> Member:
        seed = self.leader()
        member = Member(
            name=name,
            host=host,
            base=self.base / name,
            raft_port=free_port(host),
            admin_port=free_port(host),
            mysql_port=free_port(host),
            server_id=4001 + len(self.members),
            peers=[],
            join=[m.admin for m in self.running()] or [seed.admin],
        )
        self.members.append(member)
        member.start()
        return member


@contextmanager
def running_cluster(base: Path, size: int = 3, *, start: bool = True) -> Iterator[Cluster]:
    """A cluster killed (-9) at the end whatever happens; `start=False` leaves starting it
    to the caller (to change the members' configuration first)."""
    cluster = Cluster(base, size)
    if start:
        cluster.start()
    try:
        yield cluster
    finally:
        failed = [m for m in cluster.members if m.process is not None and m.process.poll() not in (None, -9)]
        cluster.stop()
        for member in failed:
            print(f"--- {member.name} exited early; log tail:\n{member.log_tail()}", file=sys.stderr)
