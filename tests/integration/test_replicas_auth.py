"""Issue 3, "must pass" 3: the authentication matrix with a real MySQL 9.7 replica IO thread.

The matrix runs against a ReplicaServer in process, over a store with transactions, the way
a replica connects to a node.  Cases: TLS required; TLS off with GET_SOURCE_PUBLIC_KEY=1 (RSA
full authentication); TLS off without the key while the account must authenticate fully
(MySQL's own 2061 "requires secure connection"); TLS off without the key with the node's
default ``mysql.fast_auth: always`` (the fast path works from the first connection: the node
keeps SHA256(SHA256(password))); a wrong password (1045, nothing served); an empty password.

Two more tests run on real node processes: accounts with the privileges configured for
them (``mysql.users[].privileges``), and both ``mysql.fast_auth`` modes on real node processes: with
``after_full_auth`` a node behaves like a freshly restarted MySQL source (2061 until the
account has authenticated fully once, then the fast path).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from kingbus.binlog.gtids import GtidSet
from kingbus.devenv import mysql
from kingbus.devenv.localcluster import Cluster, wait_until
from kingbus.store.store import BinlogStore
from tests.support import MySQLServerFactory
from tests.support.fabricate import SourceStream
from tests.unit.server.harness import DumpClient, RunningServer, fill, make_store

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


def attach(
    replica: mysql.MySQLServer,
    port: int,
    *,
    user: str,
    password: str,
    options: str,
    host: str = "127.0.0.1",
) -> None:
    replica.execute(
        f"CHANGE REPLICATION SOURCE TO SOURCE_HOST='{host}', SOURCE_PORT={port}, SOURCE_USER=%s, "
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


# A fresh server in "after_full_auth" mode has an empty cache: its first login of an account
# is a full authentication, which is how the TLS and RSA rows are made to exercise it.
COLD = "after_full_auth"


@pytest.mark.parametrize(
    ("case", "user", "password", "options", "fast_auth", "expected_error"),
    [
        ("tls-required", "repl", "replpass", ", SOURCE_SSL=1", COLD, 0),
        ("rsa-public-key", "repl", "replpass", ", SOURCE_SSL=0, GET_SOURCE_PUBLIC_KEY=1", COLD, 0),
        ("no-tls-no-key-full-auth", "repl", "replpass", ", SOURCE_SSL=0", COLD, 2061),
        ("no-tls-no-key-fast-path", "repl", "replpass", ", SOURCE_SSL=0", "always", 0),
        ("default-replica-settings", "repl", "replpass", "", "always", 0),
        ("wrong-password", "repl", "not-the-password", "", "always", 1045),
        ("empty-password", "nopass", "", "", "always", 0),
    ],
)
def test_authentication_matrix(
    mysql_server: MySQLServerFactory,
    store: BinlogStore,
    case: str,
    user: str,
    password: str,
    options: str,
    fast_auth: str,
    expected_error: int,
) -> None:
    server = RunningServer(store, fast_auth=fast_auth)
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


def replica_io_state(replica: mysql.MySQLServer) -> tuple[str, int, str]:
    state, number, message = replica.query(STATUS)[0]
    return str(state), int(number), str(message)


def test_fast_auth_modes_on_real_nodes(
    tmp_path: Path, mysql_server: MySQLServerFactory, mysql_source: mysql.MySQLServer
) -> None:
    cluster = Cluster(tmp_path / "cluster", 3)
    like_mysql, default = cluster.members[0], cluster.members[1]
    like_mysql.extra = {"mysql": {"fast_auth": "after_full_auth"}}
    cluster.start()
    try:
        cluster.leader(timeout=30)
        # Something to serve: a dump of an empty store waits before it counts as a replica.
        mysql_source.execute("CREATE DATABASE fast_auth")
        cluster.set_source("127.0.0.1", mysql_source.port)
        cluster.wait_committed(mysql_source.gtid_executed(), timeout=60)
        plain, with_tls, on_default = (mysql_server(server_id=n) for n in (6101, 6102, 6103))

        # Cold cache: a replica without TLS and without the public key gets the client's 2061.
        attach(
            plain,
            like_mysql.mysql_port,
            host=like_mysql.host,
            user="repl",
            password="replpass",
            options=", SOURCE_SSL=0",
        )
        _state, number, message = wait_until(
            lambda: (o := replica_io_state(plain))[1] and o, timeout=30, what="the plain replica to fail"
        )
        assert number == 2061 and "requires secure connection" in message, (number, message)
        assert like_mysql.status()["replicas"] == []

        # A full authentication over TLS warms the account; the plain replica's own retries
        # (SOURCE_CONNECT_RETRY=1) then get through on the fast path, as with MySQL.
        attach(
            with_tls,
            like_mysql.mysql_port,
            host=like_mysql.host,
            user="repl",
            password="replpass",
            options=", SOURCE_SSL=1",
        )
        for replica in (with_tls, plain):
            wait_until(
                lambda r=replica: replica_io_state(r) == ("ON", 0, ""),
                timeout=30,
                what="both replicas to stream from the after_full_auth node",
            )
        wait_until(
            lambda: len(like_mysql.status()["replicas"]) == 2,
            timeout=30,
            what="two dump sessions on the after_full_auth node",
        )

        # The default mode serves the fast path from the very first connection.
        attach(
            on_default,
            default.mysql_port,
            host=default.host,
            user="repl",
            password="replpass",
            options=", SOURCE_SSL=0",
        )
        wait_until(
            lambda: replica_io_state(on_default) == ("ON", 0, ""),
            timeout=30,
            what="the plain replica to stream from the default node",
        )
        assert len(default.status()["replicas"]) == 1, replica_io_state(on_default)
    finally:
        cluster.stop()


def test_configured_privileges_on_a_real_node(tmp_path: Path, mysql_source: mysql.MySQLServer) -> None:
    password = tmp_path / "cdc-password"
    password.write_text("cdcpass\n")
    cluster = Cluster(tmp_path / "cluster", 3)
    node = cluster.members[0]
    node.extra = {
        "mysql": {
            "users": [
                {"name": "repl", "password_file": str(node.base / "repl-password")},
                {"name": "monitor", "password_file": str(password), "privileges": ["REPLICATION CLIENT"]},
                {"name": "nobody", "password_file": str(password), "privileges": []},
            ]
        }
    }
    cluster.start()
    try:
        cluster.leader(timeout=30)
        mysql_source.execute("CREATE DATABASE privileges_test")
        cluster.set_source("127.0.0.1", mysql_source.port)
        cluster.wait_committed(mysql_source.gtid_executed(), timeout=60)

        def connect(user: str, password: str) -> pymysql.connections.Connection[tuple[object, ...]]:
            return pymysql.connect(host=node.host, port=node.mysql_port, user=user, password=password)

        def dump_error(conn: pymysql.connections.Connection[tuple[object, ...]]) -> int | None:
            client = DumpClient(conn)
            client.dump_gtid(GtidSet(), server_id=7301, flags=0x01)  # non-blocking
            try:
                client.next_event()
            except pymysql.err.MySQLError as exc:
                return int(exc.args[0])
            return None

        with connect("monitor", "cdcpass") as conn, conn.cursor() as cursor:
            cursor.execute("SHOW BINARY LOGS")
            assert cursor.fetchall(), "REPLICATION CLIENT may list the binary logs"
            assert dump_error(conn) == 1227, "but not dump them"
        with connect("nobody", "cdcpass") as conn, conn.cursor() as cursor:
            cursor.execute("SELECT @@version")  # connecting and reading variables needs nothing
            with pytest.raises(pymysql.err.MySQLError) as caught:
                cursor.execute("SHOW BINARY LOG STATUS")
            assert caught.value.args[0] == 1227
            assert "REPLICATION CLIENT" in caught.value.args[1]
        with connect("repl", "replpass") as conn:
            assert dump_error(conn) is None, "an account without privileges: set holds both"
        assert node.status()["replicas"] == []  # the refused dumps were never registered
    finally:
        cluster.stop()
