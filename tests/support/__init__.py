"""Helpers shared by the test suite: MySQL server factory, free ports, polling, GTID-set expansion.

Only test code lives here; the MySQL servers themselves come from ``kingbus.devenv`` (the demo and
the benchmarks use them too) through the fixtures in ``tests/conftest.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from kingbus.devenv import mysql
from kingbus.devenv.ports import free_port, free_ports

__all__ = [
    "REPL_PASSWORD",
    "REPL_USER",
    "MySQLServerFactory",
    "expand_gtid_set",
    "free_port",
    "free_ports",
    "wait_until",
]

# The replication account the ``mysql_source`` fixture creates.
REPL_USER = "repl"
REPL_PASSWORD = "replpass"

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None], *, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"
) -> T:
    """Call ``probe`` until it returns something truthy and return that; TimeoutError after ``timeout``.

    Exceptions from ``probe`` propagate at once: a probe that can fail transiently must catch.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what} (last value: {value!r})")
        time.sleep(interval)


def expand_gtid_set(text: str) -> set[str]:
    """Every single GTID in a MySQL GTID set text, as ``uuid:gno`` or ``uuid:tag:gno``.

    Accepts MySQL's output format, tags included: ``uuid:1-3:mytag:1:tg2:5-6,uuid2:7``.
    """
    result: set[str] = set()
    for entry in text.replace("\n", "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        uuid, *parts = entry.split(":")
        tag = ""
        for part in parts:
            if not part[0].isdigit():
                tag = part.lower()
                continue
            first, _, last = part.partition("-")
            prefix = f"{uuid.lower()}:{tag}:" if tag else f"{uuid.lower()}:"
            result.update(f"{prefix}{gno}" for gno in range(int(first), int(last or first) + 1))
    return result


class MySQLServerFactory:
    """Starts throwaway servers for one test (the ``mysql_server`` fixture) and kills them all.

    Each server gets a free port and, unless told otherwise, that port as its ``server_id``:
    unique among the servers running on this machine, with no counter that a second import
    of this module could reset.
    """

    def __init__(self, tree: mysql.MySQLTree, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tree = tree
        self._tmp = tmp_path_factory
        self.servers: list[mysql.MySQLServer] = []

    def __call__(
        self,
        *,
        server_id: int | None = None,
        extra_args: Sequence[str] = (),
        port: int | None = None,
        start: bool = True,
    ) -> mysql.MySQLServer:
        base: Path = self._tmp.mktemp("mysql")
        port = port or free_port()
        server = mysql.MySQLServer(
            self.tree,
            base,
            port=port,
            server_id=server_id if server_id is not None else port,
            extra_args=extra_args,
        )
        self.servers.append(server)
        if start:
            server.start()
        return server

    def kill_all(self) -> None:
        # Throwaway datadirs: SIGKILL is instant and loses nothing anyone needs.
        for server in self.servers:
            server.kill9()
