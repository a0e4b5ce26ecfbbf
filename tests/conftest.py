"""Fixtures giving tests real MySQL 9.7 servers (see kingbus.devenv.mysql for how they are built).

* ``mysql_tree`` (session): provisions the MySQL tree, or fails every test that needs it with the
  reason; it never skips, because a skipped MySQL test would hide a missing server.
* ``mysql_server`` (factory): ``mysql_server()`` starts a fresh server (copied from the template
  datadir) on a free port in its own temporary directory and returns a started ``MySQLServer``;
  every server it made is killed when the test ends, whatever the outcome.
* ``mysql_source``: one started server with the replication user ``repl``/``replpass``.

Tests using any of these are marked ``mysql`` automatically, so ``-m "not mysql"`` runs the
rest without servers. Test modules import shared helpers (and the factory's type) from
``tests.support``, never from this file: pytest imports conftest under its own name, and a
second import would make a second copy of everything in it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings

from kingbus.devenv import mysql
from tests.support import REPL_PASSWORD, REPL_USER, MySQLServerFactory

# Property tests check results, not speed: hypothesis's default 200 ms deadline per example
# is a timed assertion that fails on a loaded CI machine (seen once, on the admin API bodies).
settings.register_profile("kingbus", deadline=None)
settings.load_profile("kingbus")


@pytest.fixture(scope="session")
def mysql_tree() -> mysql.MySQLTree:
    return mysql.provision()


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
