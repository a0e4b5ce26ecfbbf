"""The codec against a real MySQL client library: PyMySQL connects to the stub server of
protocol_stub_server (built only from kingbus.protocol): handshake, TLS upgrade, every auth
path, queries, result sets, errors, > 16 MiB packets in both directions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from kingbus.protocol import auth, commands, scrambles
from kingbus.protocol.constants import Capability
from tests.unit.protocol.protocol_stub_server import (
    SERVER_VERSION,
    UNIX_TIME,
    VARIABLES,
    Server,
    ServerConfig,
    client_tls,
    make_tls_files,
    server_tls,
)

USERS = {
    "repl": auth.Credentials.from_password("s3cret"),
    "nopass": auth.Credentials.from_password(""),
    "sha2only": auth.Credentials.from_password("s3cret", allow_native=False),
}


ServerFactory = Callable[..., Server]


@pytest.fixture
def server_factory() -> Iterator[ServerFactory]:
    servers: list[Server] = []

    def make(**kwargs: Any) -> Server:
        server = Server(ServerConfig(users=USERS, **kwargs))
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()
    for server in servers:
        for session in server.sessions:
            assert session.error is None, f"server-side failure: {session.error!r}"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


# -- authentication -----------------------------------------------------------------------


def test_fast_path_login_and_replica_probes(server_factory: ServerFactory) -> None:
    server = server_factory()
    with server.connect(user="repl", password="s3cret") as conn, conn.cursor() as cursor:
        assert conn.get_server_info() == SERVER_VERSION
        cursor.execute("SELECT UNIX_TIMESTAMP()")
        assert cursor.fetchall() == ((UNIX_TIME,),)
        cursor.execute("SELECT @@GLOBAL.SERVER_ID")
        assert cursor.fetchall() == ((4001,),)
        assert cursor.description[0][0] == "@@GLOBAL.SERVER_ID"
        cursor.execute("SET @master_heartbeat_period= 30000001024, @source_heartbeat_period= 30000001024")
        cursor.execute(
            "SET @master_binlog_checksum= @@global.binlog_checksum, "
            "@source_binlog_checksum= @@global.binlog_checksum"
        )
        cursor.execute("SELECT @source_binlog_checksum")
        assert cursor.fetchall() == (("CRC32",),)
        cursor.execute("SELECT @@GLOBAL.GTID_MODE, @@GLOBAL.SERVER_UUID AS uuid")
        assert cursor.fetchall() == (("ON", VARIABLES["server_uuid"]),)
        assert [column[0] for column in cursor.description] == ["@@GLOBAL.GTID_MODE", "uuid"]
        cursor.execute("SHOW VARIABLES LIKE 'server\\_%'")
        assert cursor.fetchall() == (("server_id", "4001"), ("server_uuid", VARIABLES["server_uuid"]))
        cursor.execute("SELECT @never_set")
        assert cursor.fetchall() == ((None,),)
    session = server.last
    assert session.outcome == auth.Accept("repl", "caching_sha2_password")
    assert isinstance(session.commands[-1], commands.Quit)
    # PyMySQL does not ask for DEPRECATE_EOF: the result sets above used classic EOF packets.
    assert session.response is not None
    assert not session.response.capabilities & Capability.DEPRECATE_EOF


def test_wrong_password_is_denied(server_factory: ServerFactory) -> None:
    server = server_factory()
    with pytest.raises(pymysql.err.OperationalError) as caught:
        server.connect(user="repl", password="nope")
    assert caught.value.args == (1045, "Access denied for user 'repl'@'127.0.0.1' (using password: YES)")
    with pytest.raises(pymysql.err.OperationalError) as caught:
        server.connect(user="repl", password="")
    assert caught.value.args[0] == 1045 and "using password: NO" in caught.value.args[1]


def test_empty_password_account(server_factory: ServerFactory) -> None:
    server = server_factory()
    with server.connect(user="nopass", password="") as conn:
        conn.ping()
    assert server.last.outcome == auth.Accept("nopass", "caching_sha2_password")


def test_full_auth_with_rsa_public_key_request(server_factory: ServerFactory) -> None:
    server = server_factory(rsa_key=scrambles.generate_rsa_key(), fast_path=False)
    with server.connect(user="repl", password="s3cret") as conn:
        conn.ping()
    assert server.last.outcome == auth.Accept("repl", "caching_sha2_password")
    assert not server.last.used_tls
    with pytest.raises(pymysql.err.OperationalError) as caught:
        server.connect(user="repl", password="wrong")
    assert caught.value.args[0] == 1045


def test_full_auth_with_a_known_public_key(server_factory: ServerFactory) -> None:
    key = scrambles.generate_rsa_key()
    server = server_factory(rsa_key=key, fast_path=False)
    with server.connect(
        user="repl", password="s3cret", server_public_key=scrambles.public_key_pem(key)
    ) as conn:
        conn.ping()
    assert server.last.outcome == auth.Accept("repl", "caching_sha2_password")


def test_tls_upgrade_and_full_auth_in_cleartext(
    server_factory: ServerFactory, tls_files: tuple[Path, Path]
) -> None:
    server = server_factory(tls=server_tls(tls_files), fast_path=False)
    with (
        server.connect(user="repl", password="s3cret", ssl=client_tls(tls_files)) as conn,
        conn.cursor() as cursor,
    ):
        cursor.execute("SELECT VERSION()")
        assert cursor.fetchall() == ((SERVER_VERSION,),)
    assert server.last.used_tls
    assert server.last.outcome == auth.Accept("repl", "caching_sha2_password")


def test_tls_fast_path(server_factory: ServerFactory, tls_files: tuple[Path, Path]) -> None:
    server = server_factory(tls=server_tls(tls_files))
    with server.connect(user="repl", password="s3cret", ssl=client_tls(tls_files)) as conn:
        conn.ping()
    assert server.last.used_tls and server.last.outcome == auth.Accept("repl", "caching_sha2_password")


def test_native_password_when_the_client_proposes_it(server_factory: ServerFactory) -> None:
    # PyMySQL answers with the plugin the server advertised; advertising native makes it propose native.
    server = server_factory(advertised_plugin="mysql_native_password")
    with server.connect(user="repl", password="s3cret") as conn:
        conn.ping()
    assert server.last.outcome == auth.Accept("repl", "mysql_native_password")


def test_auth_switch_to_caching_sha2(server_factory: ServerFactory) -> None:
    server = server_factory(advertised_plugin="mysql_native_password")
    with server.connect(user="sha2only", password="s3cret") as conn:
        conn.ping()
    assert server.last.outcome == auth.Accept("sha2only", "caching_sha2_password")
    with pytest.raises(pymysql.err.OperationalError) as caught:
        server.connect(user="sha2only", password="wrong")
    assert caught.value.args[0] == 1045


# -- command phase ------------------------------------------------------------------------


def test_errors_keep_the_session_alive(server_factory: ServerFactory) -> None:
    server = server_factory()
    with server.connect(user="repl", password="s3cret") as conn, conn.cursor() as cursor:
        with pytest.raises(pymysql.err.ProgrammingError) as caught:
            cursor.execute("CREATE TABLE t (x int)")
        assert caught.value.args[0] == 1064
        with pytest.raises(pymysql.err.OperationalError) as caught:
            cursor.execute("SELECT @@GLOBAL.rpl_semi_sync_source_enabled")
        assert caught.value.args == (1193, "Unknown system variable 'rpl_semi_sync_source_enabled'")
        conn._execute_command(0x1C, b"")  # COM_STMT_FETCH: not implemented here
        with pytest.raises(pymysql.err.OperationalError) as caught:
            conn._read_ok_packet()
        assert caught.value.args == (1047, "Unknown command")
        conn.select_db("anything")  # COM_INIT_DB
        cursor.execute("SELECT 1")
        assert cursor.fetchall() == ((1,),)


@pytest.mark.parametrize("size", [0xFFFFFF - 40, 0xFFFFFF + 1000])
def test_payloads_over_16_mib_in_both_directions(server_factory: ServerFactory, size: int) -> None:
    server = server_factory()
    value = "x" * size
    with (
        server.connect(user="repl", password="s3cret", max_allowed_packet=64 << 20) as conn,
        conn.cursor() as cursor,
    ):
        cursor.execute(f"SET @big = '{value}'")  # client -> server: reassembled by PacketReader
        cursor.execute("SELECT @big, 1")  # server -> client: split by frame()
        row = cursor.fetchone()
        assert row is not None and row[0] == value and row[1] == 1
        cursor.execute("SELECT 2")
        assert cursor.fetchall() == ((2,),)


def test_connect_with_database_and_autocommit(server_factory: ServerFactory) -> None:
    server = server_factory()
    with server.connect(user="repl", password="s3cret", database="db1", autocommit=True) as conn:
        conn.ping()
    assert server.last.outcome == auth.Accept("repl", "caching_sha2_password")
