"""The codec against real MySQL 9.7 software: a replica's IO thread and the mysql CLI connect
to the stub server (protocol_stub_server), which is built only from kingbus.protocol.

This checks notes/mysql-protocol.md §1 and §3 against the real thing: the statements a 9.7
replica sends, in order, all classified (none Unknown); COM_REGISTER_SLAVE and
COM_BINLOG_DUMP_GTID decoded as the replica encodes them; and caching_sha2_password through
the fast path, RSA full authentication and TLS full authentication with libmysqlclient.
"""

from __future__ import annotations

import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kingbus.devenv import mysql
from kingbus.protocol import auth, commands, scrambles, sql
from kingbus.protocol.constants import Capability
from kingbus.protocol.sql import Assignment, Literal, Scope, SystemVariable, UserVariable
from tests.conftest import MySQLServerFactory  # type: ignore[attr-defined]
from tests.unit.protocol.protocol_stub_server import (
    SERVER_VERSION,
    VARIABLES,
    Server,
    ServerConfig,
    Session,
    make_tls_files,
    server_tls,
)

USERS = {"repl": auth.Credentials.from_password("s3cret")}
CONNECTION_STATUS = (
    "SELECT LAST_ERROR_NUMBER, LAST_ERROR_MESSAGE FROM performance_schema.replication_connection_status"
)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def stubs() -> Iterator[list[Server]]:
    servers: list[Server] = []
    yield servers
    for server in servers:
        server.close()


def wait_for_dump(server: Server, timeout: float = 30.0) -> Session:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for session in list(server.sessions):
            if any(isinstance(command, commands.BinlogDumpGtid) for command in session.commands):
                assert session.finished.wait(10)
                return session
        time.sleep(0.05)
    details = [(s.outcome, s.error, s.statements, s.commands) for s in server.sessions]
    raise AssertionError(f"no COM_BINLOG_DUMP_GTID within {timeout}s; sessions: {details}")


def replica_statements_in_order(replica_uuid: str) -> list[sql.Statement]:
    """notes/mysql-protocol.md §1.3, as the classifier describes them."""
    checksum = SystemVariable("binlog_checksum", Scope.GLOBAL)

    def select(expression: sql.Expression, text: str) -> sql.Select:
        return sql.Select((sql.SelectItem(expression, None, text),))

    return [
        select(sql.FunctionCall("UNIX_TIMESTAMP"), "UNIX_TIMESTAMP()"),
        select(SystemVariable("server_id", Scope.GLOBAL), "@@GLOBAL.SERVER_ID"),
        sql.Set(
            (
                Assignment(UserVariable("master_heartbeat_period"), Literal(30000001024)),
                Assignment(UserVariable("source_heartbeat_period"), Literal(30000001024)),
            )
        ),
        sql.Set(
            (
                Assignment(UserVariable("master_binlog_checksum"), checksum),
                Assignment(UserVariable("source_binlog_checksum"), checksum),
            )
        ),
        select(UserVariable("source_binlog_checksum"), "@source_binlog_checksum"),
        select(SystemVariable("gtid_mode", Scope.GLOBAL), "@@GLOBAL.GTID_MODE"),
        select(SystemVariable("server_uuid", Scope.GLOBAL), "@@GLOBAL.SERVER_UUID"),
        sql.Set(
            (
                Assignment(UserVariable("slave_uuid"), Literal(replica_uuid)),
                Assignment(UserVariable("replica_uuid"), Literal(replica_uuid)),
            )
        ),
    ]


@pytest.mark.parametrize("mode", ["fast-path", "rsa-full-auth", "tls-full-auth", "tls-default-replica"])
def test_mysql_97_replica_io_thread(
    mode: str, mysql_server: MySQLServerFactory, stubs: list[Server], tls_files: tuple[Path, Path]
) -> None:
    config = ServerConfig(users=USERS)
    options = ", SOURCE_SSL=0"
    if mode == "rsa-full-auth":
        config = ServerConfig(users=USERS, rsa_key=scrambles.generate_rsa_key(), fast_path=False)
        options = ", SOURCE_SSL=0, GET_SOURCE_PUBLIC_KEY=1"
    elif mode == "tls-full-auth":
        config = ServerConfig(users=USERS, tls=server_tls(tls_files), fast_path=False)
        options = ", SOURCE_SSL=1"
    elif mode == "tls-default-replica":
        # No SSL options at all: what a replica does by default once the server offers TLS.
        config = ServerConfig(users=USERS, tls=server_tls(tls_files))
        options = ""
    stub = Server(config)
    stubs.append(stub)
    replica = mysql_server(server_id=4002)
    with replica.connect() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT @@server_uuid")
        (replica_uuid,) = cursor.fetchone()
        cursor.execute(
            f"CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT={stub.port}, "
            f"SOURCE_USER='repl', SOURCE_PASSWORD='s3cret', SOURCE_AUTO_POSITION=1, "
            f"SOURCE_CONNECT_RETRY=1{options}"
        )
        cursor.execute("START REPLICA IO_THREAD")
        try:
            session = wait_for_dump(stub)
        finally:
            cursor.execute("STOP REPLICA IO_THREAD")
        cursor.execute(CONNECTION_STATUS)
        last_error = cursor.fetchone()

    assert session.error is None
    assert session.outcome == auth.Accept("repl", "caching_sha2_password")
    assert session.used_tls is mode.startswith("tls")
    assert session.statements == replica_statements_in_order(replica_uuid)
    # §1.1: the IO thread identifies itself in its connection attributes.
    assert session.response is not None
    assert session.response.attribute("program_name") == "mysqld"
    assert session.response.attribute("_client_role") == "binary_log_listener"
    assert session.response.attribute("_client_replication_channel_name") == ""
    assert session.response.auth_plugin == "caching_sha2_password"

    queries = [command for command in session.commands if isinstance(command, commands.Query)]
    others = [command for command in session.commands if not isinstance(command, commands.Query)]
    assert len(queries) == len(session.statements)
    register, dump = others
    # No report_host/report_user: empty strings; the port is the replica's own.
    assert register == commands.RegisterReplica(4002, "", "", "", replica.port, 0, 0)
    assert isinstance(dump, commands.BinlogDumpGtid)
    assert dump.server_id == 4002
    assert dump.flags == commands.DumpFlag.HEARTBEAT_V2
    assert (dump.filename, dump.position) == ("", 4)
    # A fresh replica has an empty gtid_executed: the classic encoding of the empty set.
    assert dump.gtid_data == struct.pack("<Q", 0)
    # The replica stopped on the stub's ERR 1236 (fatal), i.e. it parsed our ERR packet.
    assert last_error is not None and last_error[0] == 13114 and "stub server has no binlog" in last_error[1]


def test_a_default_mysql_97_replica_requires_tls(
    mysql_server: MySQLServerFactory, stubs: list[Server]
) -> None:
    """Without SOURCE_SSL=0 a 9.7 replica refuses a source that does not offer CLIENT_SSL, so
    the replica-facing server must offer TLS to work with default replica settings."""
    stub = Server(ServerConfig(users=USERS))
    stubs.append(stub)
    replica = mysql_server()
    with replica.connect() as conn, conn.cursor() as cursor:
        cursor.execute(
            f"CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT={stub.port}, "
            "SOURCE_USER='repl', SOURCE_PASSWORD='s3cret', SOURCE_AUTO_POSITION=1, SOURCE_CONNECT_RETRY=1"
        )
        cursor.execute("START REPLICA IO_THREAD")
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline:
            cursor.execute(CONNECTION_STATUS)
            status = cursor.fetchone()
            if status is not None and status[0] != 0:
                break
            time.sleep(0.1)
        cursor.execute("STOP REPLICA IO_THREAD")
    assert status is not None and status[0] == 2026, status
    assert "SSL is required but the server doesn't support it" in status[1]
    assert all(session.outcome is None for session in stub.sessions)


def run_cli(
    tree: mysql.MySQLTree, port: int, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    argv = tree.command(
        tree.mysql,
        "--no-defaults",
        f"--character-sets-dir={tree.share_dir / 'charsets'}",
        "-h127.0.0.1",
        f"-P{port}",
        "-urepl",
        "--batch",
        *args,
    )
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(
    ("config_kwargs", "cli_args", "expect_tls"),
    [
        ({}, ["--ssl-mode=DISABLED"], False),
        (
            {"fast_path": False, "rsa_key": "generate"},
            ["--ssl-mode=DISABLED", "--get-server-public-key"],
            False,
        ),
        ({"fast_path": False, "tls": "yes"}, ["--ssl-mode=REQUIRED"], True),
        # The server proposes a plugin the client answers with other data: auth switch.
        ({"advertised_plugin": "sha256_password", "tls": "yes"}, ["--ssl-mode=REQUIRED"], True),
    ],
)
def test_mysql_cli(
    mysql_tree: mysql.MySQLTree,
    stubs: list[Server],
    tls_files: tuple[Path, Path],
    config_kwargs: dict[str, object],
    cli_args: list[str],
    expect_tls: bool,
) -> None:
    config = ServerConfig(
        users=USERS,
        fast_path=bool(config_kwargs.get("fast_path", True)),
        rsa_key=scrambles.generate_rsa_key() if config_kwargs.get("rsa_key") else None,
        tls=server_tls(tls_files) if config_kwargs.get("tls") else None,
        advertised_plugin=str(config_kwargs.get("advertised_plugin", "caching_sha2_password")),
    )
    stub = Server(config)
    stubs.append(stub)
    result = run_cli(
        mysql_tree,
        stub.port,
        "-ps3cret",
        *cli_args,
        "-e",
        "SELECT @@GLOBAL.SERVER_ID, VERSION(); SHOW VARIABLES LIKE 'gtid%'",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "@@GLOBAL.SERVER_ID\tVERSION()",
        f"{VARIABLES['server_id']}\t{SERVER_VERSION}",
        "Variable_name\tValue",
        "gtid_mode\tON",
    ]
    assert stub.last.used_tls is expect_tls
    assert stub.last.outcome == auth.Accept("repl", "caching_sha2_password")
    # libmysqlclient asks for DEPRECATE_EOF: the result sets above ended with OK-as-EOF.
    assert stub.last.response is not None
    assert stub.last.response.capabilities & Capability.DEPRECATE_EOF

    denied = run_cli(mysql_tree, stub.port, "-pwrong", *cli_args, "-e", "SELECT 1")
    assert denied.returncode == 1
    assert (
        "ERROR 1045 (28000): Access denied for user 'repl'@'127.0.0.1' (using password: YES)" in denied.stderr
    )


def test_mysql_cli_unknown_statement_gets_an_error_and_the_session_goes_on(
    mysql_tree: mysql.MySQLTree, stubs: list[Server]
) -> None:
    stub = Server(ServerConfig(users=USERS))
    stubs.append(stub)
    result = run_cli(
        mysql_tree, stub.port, "-ps3cret", "--ssl-mode=DISABLED", "--force", stdin="BEGIN;\nSELECT 7;\n"
    )
    assert "ERROR 1064 (42000) at line 1: You have an error in your SQL syntax" in result.stderr
    # --batch prints the column name (the literal) and then the value.
    assert result.stdout.splitlines() == ["7", "7"]
    # The 9.7 CLI also probes with `select $$`, which this server does not know either.
    kinds = [type(statement).__name__ for statement in stub.last.statements]
    assert kinds == ["Select", "Unknown", "Unknown", "Select"]


GTID_1_5 = (
    struct.pack("<Q", 1)
    + bytes.fromhex("3E11FA4771CA11E19E33C80AA9429562")
    + struct.pack("<Q", 1)
    + struct.pack("<QQ", 1, 6)
)


@pytest.mark.parametrize(
    ("cli_args", "expected_dump"),
    [
        (
            ["--read-from-remote-server", "binlog.000001"],
            commands.BinlogDump(4, commands.DumpFlag.NON_BLOCK, 0, "binlog.000001"),
        ),
        (
            [
                "--read-from-remote-source=BINLOG-DUMP-GTIDS",
                "--exclude-gtids=3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5",
                "binlog.000001",
            ],
            commands.BinlogDumpGtid(commands.DumpFlag.NON_BLOCK, 0, "binlog.000001", 4, GTID_1_5),
        ),
    ],
)
def test_mysqlbinlog_remote_reads(
    mysql_tree: mysql.MySQLTree,
    stubs: list[Server],
    cli_args: list[str],
    expected_dump: commands.ClientCommand,
) -> None:
    stub = Server(ServerConfig(users=USERS))
    stubs.append(stub)
    assert mysql_tree.mysqlbinlog is not None
    argv = mysql_tree.command(
        mysql_tree.mysqlbinlog,
        "--no-defaults",
        f"--character-sets-dir={mysql_tree.share_dir / 'charsets'}",
        "-h127.0.0.1",
        f"-P{stub.port}",
        "-urepl",
        "-ps3cret",
        "--ssl-mode=DISABLED",
        *cli_args,
    )
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    # It parsed the stub's ERR 1236 and reports its message.
    assert "Got error reading packet from server: stub server has no binlog" in result.stderr
    session = stub.last
    assert session.statements == [
        sql.Select((sql.SelectItem(sql.FunctionCall("VERSION"), None, "VERSION()"),)),
        sql.Set(
            (
                Assignment(UserVariable("master_binlog_checksum"), Literal("NONE")),
                Assignment(UserVariable("source_binlog_checksum"), Literal("NONE")),
            )
        ),
    ]
    assert session.commands[-1] == expected_dump
    # server_id 0 asks for a non-blocking dump.
    assert (
        isinstance(expected_dump, commands.BinlogDump | commands.BinlogDumpGtid)
        and expected_dump.non_blocking
    )
