"""Issue 3, "must pass" 3: the authentication matrix with a real MySQL 9.7 replica IO thread.

The matrix runs against a ReplicaServer in process, over a store with transactions, the way
a replica connects to a node.  Cases: TLS required; TLS off with GET_SOURCE_PUBLIC_KEY=1 (RSA
full authentication); TLS off without the key while the account must authenticate fully
(MySQL's own 2061 "requires secure connection"); TLS off without the key with the node's
default ``mysql.fast_auth: always`` (the fast path works from the first connection: the node
keeps SHA256(SHA256(password))); a wrong password (1045, nothing served); an empty password.

More tests run on real node processes: a replica verifying the node's configured
certificate (``mysql.tls``), accounts with the privileges configured for them
(``mysql.users[].privileges``), and both ``mysql.fast_auth`` modes on real node processes: with
``after_full_auth`` a node behaves like a freshly restarted MySQL source (2061 until the
account has authenticated fully once, then the fast path).
"""

from __future__ import annotations

import datetime
import ipaddress
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

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


def write_ca_and_server_cert(directory: Path, ip: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for `ip` signed by it (ca.pem, server.pem, server-key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kingbus test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


def test_configured_certificate_lets_a_replica_verify_the_node(
    tmp_path: Path, mysql_server: MySQLServerFactory, mysql_source: mysql.MySQLServer
) -> None:
    cluster = Cluster(tmp_path / "cluster", 3)
    configured, self_signed = cluster.members[0], cluster.members[1]
    ca, cert, key = write_ca_and_server_cert(tmp_path, configured.host)
    configured.extra = {"mysql": {"tls": {"cert_file": str(cert), "key_file": str(key)}}}
    cluster.start()
    try:
        cluster.leader(timeout=30)
        mysql_source.execute("CREATE DATABASE tls_test")
        cluster.set_source("127.0.0.1", mysql_source.port)
        cluster.wait_committed(mysql_source.gtid_executed(), timeout=60)
        verify = f", SOURCE_SSL=1, SOURCE_SSL_CA='{ca}', SOURCE_SSL_VERIFY_SERVER_CERT=1"
        trusting, refusing = mysql_server(server_id=6201), mysql_server(server_id=6202)

        attach(
            trusting,
            configured.mysql_port,
            host=configured.host,
            user="repl",
            password="replpass",
            options=verify,
        )
        wait_until(
            lambda: replica_io_state(trusting) == ("ON", 0, ""),
            timeout=30,
            what="the replica to verify the configured certificate (identity included) and stream",
        )
        assert trusting.replica_status()["Source_SSL_Verify_Server_Cert"] == "Yes"

        # The same replica settings against a node with its self-signed certificate fail in TLS.
        attach(
            refusing,
            self_signed.mysql_port,
            host=self_signed.host,
            user="repl",
            password="replpass",
            options=verify,
        )
        _state, number, message = wait_until(
            lambda: (o := replica_io_state(refusing))[1] and o,
            timeout=30,
            what="the verifying replica to fail",
        )
        assert number == 2026, (number, message)  # CR_SSL_CONNECTION_ERROR
        assert self_signed.status()["replicas"] == []
    finally:
        cluster.stop()
