"""python-mysql-replication (a real CDC reader) against the stub server: everything it sends
must decode and classify, none of it as Unknown."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from pymysqlreplication import BinLogStreamReader

from kingbus.protocol import auth, commands, sql
from tests.unit.protocol.protocol_stub_server import Server, ServerConfig, Session

# The library warns about its own use of PyMySQL's deprecated keyword names.
pytestmark = pytest.mark.filterwarnings("ignore:'(db|passwd)' is deprecated:DeprecationWarning")


@pytest.fixture
def stub() -> Iterator[Server]:
    server = Server(ServerConfig(users={"repl": auth.Credentials.from_password("s3cret")}))
    yield server
    server.close()
    for session in server.sessions:
        assert session.error is None, repr(session.error)


def run_reader(stub: Server, **kwargs: Any) -> list[Session]:
    settings = {"host": "127.0.0.1", "port": stub.port, "user": "repl", "passwd": "s3cret"}
    stream = BinLogStreamReader(connection_settings=settings, server_id=77, blocking=False, **kwargs)
    try:
        with pytest.raises(pymysql.err.MySQLError) as caught:
            list(stream)
    finally:
        stream.close()
    assert caught.value.args[0] in (1236, 1064)
    sessions = list(stub.sessions)
    for session in sessions:
        assert session.finished.wait(10)
        assert session.outcome == auth.Accept("repl", "caching_sha2_password")
        assert not [statement for statement in session.statements if isinstance(statement, sql.Unknown)]
    return sessions


def dump_commands(sessions: list[Session]) -> list[commands.ClientCommand]:
    return [
        command
        for session in sessions
        for command in session.commands
        if isinstance(command, commands.BinlogDump | commands.BinlogDumpGtid)
    ]


def test_gtid_auto_position(stub: Server) -> None:
    sessions = run_reader(stub, auto_position="3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5")
    (dump,) = dump_commands(sessions)
    assert isinstance(dump, commands.BinlogDumpGtid)
    # Flag 0x04 here means the old BINLOG_THROUGH_GTID to this client (see commands.DumpFlag).
    assert dump.flags == commands.DumpFlag.NON_BLOCK | commands.DumpFlag.SKIP_TAGGED_GTIDS
    assert (dump.server_id, dump.filename, dump.position) == (77, "", 4)
    assert dump.gtid_data == (
        struct.pack("<Q", 1)
        + bytes.fromhex("3E11FA4771CA11E19E33C80AA9429562")
        + struct.pack("<Q", 1)
        + struct.pack("<QQ", 1, 6)
    )
    statements = [statement for session in sessions for statement in session.statements]
    assert sql.ShowVariables(sql.Scope.GLOBAL, "BINLOG_CHECKSUM") in statements
    assert (
        sql.Set((sql.Assignment(sql.UserVariable("mariadb_slave_capability"), sql.Literal(4)),)) in statements
    )


def test_file_and_position(stub: Server) -> None:
    (dump,) = dump_commands(run_reader(stub, log_file="binlog.000001", log_pos=4))
    assert dump == commands.BinlogDump(4, commands.DumpFlag.NON_BLOCK, 77, "binlog.000001")


def test_no_position_asks_for_the_binary_log_status(stub: Server) -> None:
    sessions = run_reader(stub)
    statements = [statement for session in sessions for statement in session.statements]
    assert sql.ShowBinaryLogStatus() in statements
    # It then dumps from the file and position the stub's SHOW BINARY LOG STATUS reported.
    (dump,) = dump_commands(sessions)
    assert dump == commands.BinlogDump(4, commands.DumpFlag.NON_BLOCK, 77, "binlog.000001")
