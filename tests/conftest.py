"""Fixtures giving tests real MySQL 9.7 servers (see kingbus.devenv.mysql for how they are built).

* ``mysql_tree`` (session): provisions the MySQL tree, or fails every test that needs it with the
  reason; it never skips, because a skipped MySQL test would hide a missing server.
* ``mysql_server`` (factory): ``mysql_server()`` starts a fresh server (copied from the template
  datadir) on a free port in its own temporary directory and returns a started ``MySQLServer``;
  every server it made is killed when the test ends, whatever the outcome.
* ``mysql_source``: one started server with the replication user ``repl``/``replpass``.

Tests using any of these are marked ``mysql`` automatically, so ``-m "not mysql"`` runs the
rest without servers.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from kingbus.devenv import mysql
from kingbus.devenv.ports import free_port

REPL_USER = "repl"
REPL_PASSWORD = "replpass"

_server_ids = itertools.count(101)


@pytest.fixture(scope="session")
def mysql_tree() -> mysql.MySQLTree:
    return mysql.provision()


class MySQLServerFactory:
    """Starts throwaway servers for one test and kills them all at the end."""

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
        server = mysql.MySQLServer(
            self.tree,
            base,
            port=port or free_port(),
            server_id=server_id if server_id is not None else next(_server_ids),
            extra_args=extra_args,
        )
        self.servers.append(server)
        if start:
            server.start()
        return server

    def kill_all(self) -> None:
        # Throwaway datadirs: SIGKILL is instant, while a graceful stop of a source with a
        # replica attached takes ~10 s.
        for server in self.servers:
            server.kill9()


@pytest.fixture
def mysql_server(
    mysql_tree: mysql.MySQLTree, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MySQLServerFactory]:
    factory = MySQLServerFactory(mysql_tree, tmp_path_factory)
    try:
        yield factory
    finally:
        factory.kill_all()


@pytest.fixture
def mysql_source(mysql_server: MySQLServerFactory) -> mysql.MySQLServer:
    server = mysql_server()
    server.create_replication_user(REPL_USER, REPL_PASSWORD)
    return server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "mysql_tree" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.mysql)
