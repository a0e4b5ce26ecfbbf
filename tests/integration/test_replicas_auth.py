"""Issue 3, "must pass" 3: the authentication matrix with a real MySQL 9.7 replica IO thread.

The replica connects to a ReplicaServer (in process, over a store with transactions) the way
it connects to a node.  Cases: TLS required; TLS off with GET_SOURCE_PUBLIC_KEY=1 (RSA full
authentication, with the server's fast path disabled to force it); TLS off without the key
and full authentication required (MySQL's own 2061 "requires secure connection"); TLS off
without the key on a node's default server (the fast path always works: the node keeps
SHA256(SHA256(password))); a wrong password (1045, nothing served); an empty password.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kingbus.devenv import mysql
from kingbus.store.store import BinlogStore
from tests.support import MySQLServerFactory
from tests.support.fabricate import SourceStream
from tests.unit.server.harness import RunningServer, fill, make_store

pytestmark = [pytest.mark.mysql]

STATUS = (
    "SELECT SERVICE_STATE, LAST_ERROR_NUMBER, LAST_ERROR_MESSAGE "
    "FROM performance_schema.replication_connection_status"
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BinlogStore]:
    s = make_store(tmp_path / "binlog")
    fill(s, SourceStream(), 3)
    yield s
    s.close()


def attach(replica: mysql.MySQLServer, port: int, *, user: str, password: str, options: str) -> None:
    replica.execute(
        f"CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT={port}, SOURCE_USER=%s, "
        f"SOURCE_PASSWORD=%s, SOURCE_AUTO_POSITION=1, SOURCE_CONNECT_RETRY=1{options}",
        (user, password),
    )
    replica.execute("START REPLICA IO_THREAD")


def wait_outcome(
    replica: mysql.MySQLServer, server: RunningServer, timeout: float = 30
) -> tuple[str, int, str]:
    """(state, error number, message) once the IO thread is streaming or has failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state, number, message = replica.query(STATUS)[0]
        if number != 0:
            return str(state), int(number), str(message)
        if server.server.registry.sessions() and state == "ON":
            return str(state), 0, ""
        time.sleep(0.1)
    raise AssertionError(f"no outcome: {replica.query(STATUS)}")


@pytest.mark.parametrize(
    ("case", "user", "password", "options", "fast_path", "expected_error"),
    [
        ("tls-required", "repl", "replpass", ", SOURCE_SSL=1", False, 0),
        ("rsa-public-key", "repl", "replpass", ", SOURCE_SSL=0, GET_SOURCE_PUBLIC_KEY=1", False, 0),
        ("no-tls-no-key-full-auth", "repl", "replpass", ", SOURCE_SSL=0", False, 2061),
        ("no-tls-no-key-fast-path", "repl", "replpass", ", SOURCE_SSL=0", True, 0),
        ("default-replica-settings", "repl", "replpass", "", True, 0),
        ("wrong-password", "repl", "not-the-password", "", True, 1045),
        ("empty-password", "nopass", "", "", True, 0),
    ],
)
def test_authentication_matrix(
    mysql_server: MySQLServerFactory,
    store: BinlogStore,
    case: str,
    user: str,
    password: str,
    options: str,
    fast_path: bool,
    expected_error: int,
) -> None:
    server = RunningServer(store, fast_path=fast_path)
    try:
        replica = mysql_server(server_id=6001)
        attach(replica, server.port, user=user, password=password, options=options)
        _state, number, message = wait_outcome(replica, server)
        replica.execute("STOP REPLICA IO_THREAD")
        if expected_error == 0:
            assert number == 0, (case, message)
            assert server.server.auth_accepted >= 1
            assert all(s.user == user for s in server.server.registry.sessions())
        else:
            assert number == expected_error, (case, number, message)
            if expected_error == 2061:
                assert "requires secure connection" in message
            if expected_error == 1045:
                assert "Access denied" in message
                assert server.server.auth_rejected >= 1
            assert server.server.registry.sessions() == [], "nothing is served without authentication"
        if case.startswith("tls"):
            assert replica.replica_status()["Source_SSL_Allowed"] == "Yes"
    finally:
        server.close()
