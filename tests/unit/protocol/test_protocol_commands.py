"""Command-phase decoding; packets built field by field as the real clients send them."""

from __future__ import annotations

import dataclasses
import struct

import pytest

from kingbus.protocol import commands
from kingbus.protocol.commands import (
    BinlogDump,
    BinlogDumpGtid,
    DumpFlag,
    InitDb,
    Ping,
    Query,
    Quit,
    RegisterReplica,
    UnknownCommand,
)
from kingbus.protocol.errors import MySQLError, ProtocolError

# The GTID set 3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5 in the classic encoding.
GTID_DATA = (
    struct.pack("<Q", 1)
    + bytes.fromhex("3E11FA4771CA11E19E33C80AA9429562")
    + struct.pack("<Q", 1)
    + struct.pack("<QQ", 1, 6)
)


def test_simple_commands() -> None:
    assert commands.decode_command(b"\x01") == Quit()
    assert commands.decode_command(b"\x0e") == Ping()
    assert commands.decode_command(b"\x03SELECT @@GLOBAL.SERVER_ID") == Query("SELECT @@GLOBAL.SERVER_ID")
    assert commands.decode_command(b"\x03") == Query("")
    assert commands.decode_command(b"\x03SELECT '\xc3\xa9'") == Query("SELECT 'é'")
    assert commands.decode_command(b"\x02mysql") == InitDb("mysql")


def test_com_binlog_dump() -> None:
    payload = (
        b"\x12"
        + struct.pack("<I", 1234)  # position
        + struct.pack("<H", 0x01)  # flags: non-blocking
        + struct.pack("<I", 4002)  # server id
        + b"kingbus-bin.000003"
    )
    decoded = commands.decode_command(payload)
    assert decoded == BinlogDump(1234, DumpFlag.NON_BLOCK, 4002, "kingbus-bin.000003")
    assert isinstance(decoded, BinlogDump) and decoded.non_blocking
    assert commands.encode_binlog_dump(decoded) == payload


def test_com_binlog_dump_nul_terminated_name_and_server_id_zero() -> None:
    decoded = commands.decode_command(b"\x12" + struct.pack("<IHI", 4, 0, 0) + b"f.000001\x00")
    assert decoded == BinlogDump(4, DumpFlag(0), 0, "f.000001")
    assert isinstance(decoded, BinlogDump) and decoded.non_blocking  # server_id 0 means non-blocking
    blocking = commands.decode_command(b"\x12" + struct.pack("<IHI", 4, 0, 9))
    assert isinstance(blocking, BinlogDump) and not blocking.non_blocking and blocking.filename == ""


def test_com_register_slave_as_a_mysql_replica_sends_it() -> None:
    payload = (
        b"\x15"
        + struct.pack("<I", 4002)
        + b"\x0910.0.0.42"  # report_host
        + b"\x04repl"  # report_user
        + b"\x00"  # report_password
        + struct.pack("<H", 3306)
        + struct.pack("<I", 0)  # rank
        + struct.pack("<I", 0)  # master id
    )
    decoded = commands.decode_command(payload)
    assert decoded == RegisterReplica(4002, "10.0.0.42", "repl", "", 3306, 0, 0)
    assert isinstance(decoded, RegisterReplica)
    assert commands.encode_register_replica(decoded) == payload


def test_com_register_slave_never_shows_the_password() -> None:
    decoded = RegisterReplica(1, "h", "u", "hunter2", 3306, 0, 0)
    assert "hunter2" not in repr(decoded)


@pytest.mark.parametrize("missing", [1, 5, 10])
def test_com_register_slave_requires_ten_trailing_bytes(missing: int) -> None:
    payload = commands.encode_register_replica(RegisterReplica(1, "h", "u", "p", 3306, 0, 0))
    with pytest.raises(ProtocolError, match="need 10"):
        commands.decode_command(payload[:-missing])


def test_com_register_slave_string_overruns_the_packet() -> None:
    with pytest.raises(ProtocolError, match="report host"):
        commands.decode_command(b"\x15" + struct.pack("<I", 1) + b"\x40short")


def test_com_binlog_dump_gtid_as_a_mysql_8_replica_sends_it() -> None:
    payload = (
        b"\x1e"
        + struct.pack("<H", 0x0002)  # heartbeat v2
        + struct.pack("<I", 4002)
        + struct.pack("<I", 0)  # name_len
        + struct.pack("<Q", 4)  # pos
        + struct.pack("<I", len(GTID_DATA))
        + GTID_DATA
    )
    decoded = commands.decode_command(payload)
    assert decoded == BinlogDumpGtid(DumpFlag.HEARTBEAT_V2, 4002, "", 4, GTID_DATA)
    assert isinstance(decoded, BinlogDumpGtid) and not decoded.non_blocking
    assert commands.encode_binlog_dump_gtid(decoded) == payload


def test_com_binlog_dump_gtid_with_file_name_and_unknown_flag_bits() -> None:
    command = BinlogDumpGtid(DumpFlag(0x05 | 0x100), 7, "mysql-bin.000009", 1 << 40, b"")
    decoded = commands.decode_command(commands.encode_binlog_dump_gtid(command))
    assert decoded == command
    assert isinstance(decoded, BinlogDumpGtid) and decoded.non_blocking


def test_com_binlog_dump_gtid_every_truncation_is_a_protocol_error() -> None:
    payload = commands.encode_binlog_dump_gtid(BinlogDumpGtid(DumpFlag(2), 1, "f", 4, GTID_DATA))
    for cut in range(1, len(payload)):
        with pytest.raises(ProtocolError):
            commands.decode_command(payload[:cut])


def test_com_binlog_dump_gtid_data_length_beyond_the_packet() -> None:
    payload = b"\x1e" + struct.pack("<HIIQI", 0, 1, 0, 4, 1000) + b"abc"
    with pytest.raises(ProtocolError, match="GTID data"):
        commands.decode_command(payload)


def test_com_binlog_dump_truncated() -> None:
    with pytest.raises(ProtocolError):
        commands.decode_command(b"\x12\x04\x00\x00\x00\x00")


@pytest.mark.parametrize("byte", [0, 4, 9, 17, 22, 23, 27, 31, 32, 33, 200, 255])
def test_unknown_commands_get_1047_and_the_session_goes_on(byte: int) -> None:
    decoded = commands.decode_command(bytes((byte,)) + b"body")
    assert decoded == UnknownCommand(byte, bytes((byte,)) + b"body")
    assert isinstance(decoded, UnknownCommand)
    assert decoded.error() == MySQLError(1047, "08S01", "Unknown command")


def test_empty_packet_is_malformed() -> None:
    with pytest.raises(ProtocolError):
        commands.decode_command(b"")


def test_values_are_frozen() -> None:
    decoded = commands.decode_command(b"\x03SELECT 1")
    assert isinstance(decoded, Query)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.text = "x"  # type: ignore[misc]
