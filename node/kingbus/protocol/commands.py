"""Command-phase decoding: one client payload in, one frozen value out.

The first byte of a payload is the ``COM_*`` command. This server understands the few that
replicas and CDC readers send; every other byte becomes :class:`UnknownCommand`, which the
session answers with ER_UNKNOWN_COM_ERROR (1047) while keeping the connection open, as mysqld
does. A known command whose body is truncated or malformed raises
:class:`~kingbus.protocol.errors.ProtocolError`.

Layouts (all integers little-endian):

* COM_BINLOG_DUMP (0x12): u32 pos, u16 flags, u32 server_id, file name to the end.
* COM_REGISTER_SLAVE (0x15): u32 server_id, lenenc host, lenenc user, lenenc password,
  u16 port, u32 rank, u32 master_id; mysqld requires the 10 bytes after the strings.
* COM_BINLOG_DUMP_GTID (0x1e): u16 flags, u32 server_id, u32 name_len, name, u64 pos,
  u32 data_len, data. mysqld reads ``data_len``/``data`` whatever the flags say; ``data`` is an
  encoded GTID set, kept as bytes here (``kingbus.binlog.gtids`` parses it).
"""

from __future__ import annotations

import dataclasses
import enum

from kingbus.protocol import wire
from kingbus.protocol.constants import Command
from kingbus.protocol.errors import MySQLError, ProtocolError, unknown_command


class DumpFlag(enum.IntFlag):
    """Flags of COM_BINLOG_DUMP / COM_BINLOG_DUMP_GTID."""

    NON_BLOCK = 0x01  # end with EOF at the end of the binlog instead of waiting
    HEARTBEAT_V2 = 0x02  # USE_HEARTBEAT_EVENT_V2: send type-41 heartbeats
    # 8.3+: MYSQL_RPL_SKIP_TAGGED_GTIDS. python-mysql-replication sets it meaning the old
    # BINLOG_THROUGH_GTID, so the server must not read much into it.
    SKIP_TAGGED_GTIDS = 0x04


@dataclasses.dataclass(frozen=True, slots=True)
class Quit:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Query:
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class InitDb:
    schema: str


@dataclasses.dataclass(frozen=True, slots=True)
class BinlogDump:
    position: int
    flags: DumpFlag
    server_id: int
    filename: str

    @property
    def non_blocking(self) -> bool:
        # server_id 0 also asks for a non-blocking dump (mysqlbinlog does this).
        return bool(self.flags & DumpFlag.NON_BLOCK) or self.server_id == 0


@dataclasses.dataclass(frozen=True, slots=True)
class RegisterReplica:
    server_id: int
    host: str
    user: str
    password: str = dataclasses.field(repr=False)  # never printed: secrets stay out of logs
    port: int
    rank: int
    master_id: int


@dataclasses.dataclass(frozen=True, slots=True)
class BinlogDumpGtid:
    flags: DumpFlag
    server_id: int
    filename: str
    position: int
    gtid_data: bytes

    @property
    def non_blocking(self) -> bool:
        return bool(self.flags & DumpFlag.NON_BLOCK) or self.server_id == 0


@dataclasses.dataclass(frozen=True, slots=True)
class UnknownCommand:
    command: int
    payload: bytes = dataclasses.field(repr=False)

    def error(self) -> MySQLError:
        """The ERR this server answers with; the session continues afterwards."""
        return unknown_command()


ClientCommand = Quit | Ping | Query | InitDb | BinlogDump | RegisterReplica | BinlogDumpGtid | UnknownCommand


def _filename(raw: bytes) -> str:
    # C strings on the server side: some clients NUL-terminate the name, the value ends there.
    return wire.text(raw.split(b"\x00", 1)[0])


def decode_command(payload: bytes) -> ClientCommand:
    """Decode one command-phase payload."""
    if not payload:
        raise ProtocolError("empty command packet")
    command = payload[0]
    body = payload[1:]
    if command == Command.QUIT:
        return Quit()
    if command == Command.PING:
        return Ping()
    if command == Command.QUERY:
        return Query(wire.text(body))
    if command == Command.INIT_DB:
        return InitDb(wire.text(body))
    if command == Command.BINLOG_DUMP:
        return _binlog_dump(body)
    if command == Command.REGISTER_SLAVE:
        return _register_replica(body)
    if command == Command.BINLOG_DUMP_GTID:
        return _binlog_dump_gtid(body)
    return UnknownCommand(command, payload)


def _binlog_dump(body: bytes) -> BinlogDump:
    reader = wire.Reader(body, "COM_BINLOG_DUMP")
    position = reader.int4("binlog position")
    flags = DumpFlag(reader.int2("flags"))
    server_id = reader.int4("server id")
    return BinlogDump(position, flags, server_id, _filename(reader.rest()))


def _register_replica(body: bytes) -> RegisterReplica:
    reader = wire.Reader(body, "COM_REGISTER_SLAVE")
    server_id = reader.int4("server id")
    host = wire.text(reader.lenenc_bytes("report host"))
    user = wire.text(reader.lenenc_bytes("report user"))
    password = wire.text(reader.lenenc_bytes("report password"))
    if reader.remaining < 10:
        raise ProtocolError(
            f"truncated COM_REGISTER_SLAVE: {reader.remaining} bytes after the strings, need 10"
        )
    port = reader.int2("port")
    rank = reader.int4("rank")
    master_id = reader.int4("master id")
    return RegisterReplica(server_id, host, user, password, port, rank, master_id)


def _binlog_dump_gtid(body: bytes) -> BinlogDumpGtid:
    reader = wire.Reader(body, "COM_BINLOG_DUMP_GTID")
    flags = DumpFlag(reader.int2("flags"))
    server_id = reader.int4("server id")
    name = reader.fixed(reader.int4("file name length"), "file name")
    position = reader.int8("binlog position")
    data = reader.fixed(reader.int4("GTID data length"), "GTID data")
    return BinlogDumpGtid(flags, server_id, _filename(name), position, data)


def encode_binlog_dump(command: BinlogDump) -> bytes:
    """Client-side encoders, for tests and for talking to an upstream source."""
    return (
        wire.int1(Command.BINLOG_DUMP)
        + wire.int4(command.position)
        + wire.int2(command.flags)
        + wire.int4(command.server_id)
        + command.filename.encode("utf-8")
    )


def encode_register_replica(command: RegisterReplica) -> bytes:
    return b"".join(
        (
            wire.int1(Command.REGISTER_SLAVE),
            wire.int4(command.server_id),
            wire.lenenc_str(command.host),
            wire.lenenc_str(command.user),
            wire.lenenc_str(command.password),
            wire.int2(command.port),
            wire.int4(command.rank),
            wire.int4(command.master_id),
        )
    )


def encode_binlog_dump_gtid(command: BinlogDumpGtid) -> bytes:
    name = command.filename.encode("utf-8")
    return b"".join(
        (
            wire.int1(Command.BINLOG_DUMP_GTID),
            wire.int2(command.flags),
            wire.int4(command.server_id),
            wire.int4(len(name)),
            name,
            wire.int8(command.position),
            wire.int4(len(command.gtid_data)),
            command.gtid_data,
        )
    )
