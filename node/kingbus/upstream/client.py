"""A replica connection to the real MySQL source, over PyMySQL (blocking; I/O adapter).

PyMySQL does the parts that are easy to get wrong (caching_sha2_password with TLS or RSA,
reassembling packets over 16 MiB); this module speaks the replication part of the protocol
itself, as a MySQL 8.4/9.x replica IO thread does (notes/mysql-protocol.md §1 and §4):
checks, session variables under both the `@master_*` and `@source_*` names,
COM_REGISTER_SLAVE, COM_BINLOG_DUMP_GTID from a GTID set, then raw events.  It uses two
private PyMySQL members, `_write_bytes` and `_read_packet`, as python-mysql-replication does;
PyMySQL is pinned for that reason.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass

import pymysql

from kingbus.binlog.gtids import GtidSet

COM_REGISTER_SLAVE = 0x15
COM_BINLOG_DUMP_GTID = 0x1E
DUMP_FLAG_HEARTBEAT_V2 = 0x02
SEMI_SYNC_INDICATOR = 0xEF
SEMI_SYNC_ACK_REQUESTED = 0x01


class SourceRefused(Exception):
    """The source is reachable but unusable as configured; retrying will not fix it by itself."""


@dataclass(frozen=True, slots=True)
class SourceFacts:
    server_uuid: str
    server_id: int
    version: str
    gtid_mode: str
    binlog_format: str
    binlog_checksum: str
    gtid_executed: str
    gtid_purged: str
    semi_sync_available: bool
    tls_cipher: str  # empty when the connection is not encrypted


@dataclass(frozen=True, slots=True)
class DumpEvent:
    raw: bytes  # the event exactly as the source sent it: header, body, CRC
    ack_requested: bool  # semi-sync: the source waits for an acknowledgement of this event


def _packet(payload: bytes, seq: int = 0) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def _lenenc_str(value: bytes) -> bytes:
    if len(value) >= 251:
        raise ValueError("string too long for this encoder")
    return bytes([len(value)]) + value


class SourceConnection:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        user: str,
        password: str,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self._conn = pymysql.connect(
            host=host,
            port=port,
            user=user,
            password=password,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            write_timeout=read_timeout,
            autocommit=True,
            charset="utf8mb4",
            max_allowed_packet=1 << 30,
            program_name="kingbus",
        )
        self.semi_sync = False
        self._write_lock = threading.Lock()

    def _scalar(self, sql: str) -> str:
        with self._conn.cursor() as cur:
            cur.execute(sql)
            row = cur.fetchone()
        if row is None or row[0] is None:
            return ""
        value = row[0]
        return value.decode() if isinstance(value, bytes) else str(value)

    def facts(self) -> SourceFacts:
        def optional(sql: str) -> str:
            try:
                return self._scalar(sql)
            except pymysql.err.OperationalError:
                return ""

        return SourceFacts(
            server_uuid=self._scalar("SELECT @@GLOBAL.server_uuid"),
            server_id=int(self._scalar("SELECT @@GLOBAL.server_id")),
            version=self._scalar("SELECT VERSION()"),
            gtid_mode=self._scalar("SELECT @@GLOBAL.gtid_mode"),
            binlog_format=self._scalar("SELECT @@GLOBAL.binlog_format"),
            binlog_checksum=self._scalar("SELECT @@GLOBAL.binlog_checksum"),
            gtid_executed=self._scalar("SELECT @@GLOBAL.gtid_executed").replace("\n", ""),
            gtid_purged=self._scalar("SELECT @@GLOBAL.gtid_purged").replace("\n", ""),
            semi_sync_available=optional("SELECT @@GLOBAL.rpl_semi_sync_source_enabled") == "1",
            tls_cipher=self._status("Ssl_cipher"),
        )

    def _status(self, name: str) -> str:
        with self._conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE %s", (name,))
            row = cur.fetchone()
        return "" if row is None else str(row[1])

    def prepare(self, *, replica_uuid: str, heartbeat_seconds: float, semi_sync: bool) -> None:
        period_ns = int(heartbeat_seconds * 1e9)
        with self._conn.cursor() as cur:
            cur.execute(f"SET @master_heartbeat_period = {period_ns}, @source_heartbeat_period = {period_ns}")
            cur.execute(
                "SET @master_binlog_checksum = @@global.binlog_checksum, "
                "@source_binlog_checksum = @@global.binlog_checksum"
            )
            cur.execute("SET @slave_uuid = %s, @replica_uuid = %s", (replica_uuid, replica_uuid))
            if semi_sync:
                cur.execute("SET @rpl_semi_sync_replica = 1, @rpl_semi_sync_slave = 1")
        self.semi_sync = semi_sync

    def register(self, *, server_id: int, report_host: str, report_port: int) -> None:
        payload = (
            bytes([COM_REGISTER_SLAVE])
            + struct.pack("<I", server_id)
            + _lenenc_str(report_host.encode())
            + _lenenc_str(b"")
            + _lenenc_str(b"")
            + struct.pack("<HII", report_port, 0, 0)
        )
        self._command(payload)
        self._conn._read_packet()  # OK, or raises the source's error

    def dump_gtid(self, *, server_id: int, gtids: GtidSet) -> None:
        data = gtids.encode()
        payload = (
            bytes([COM_BINLOG_DUMP_GTID])
            + struct.pack("<HII", DUMP_FLAG_HEARTBEAT_V2, server_id, 0)
            + struct.pack("<QI", 4, len(data))
            + data
        )
        self._command(payload)

    def _command(self, payload: bytes) -> None:
        self._conn._next_seq_id = 1
        self._conn._write_bytes(_packet(payload))

    def read_event(self) -> DumpEvent | None:
        """The next event, or None when the source ended the stream (EOF)."""
        packet = self._conn._read_packet()
        data: bytes = packet.get_all_data()
        if data[0] == 0xFE and len(data) < 9:
            return None
        if data[0] != 0:
            raise SourceRefused(f"unexpected packet 0x{data[0]:02x} in the binlog stream")
        if self.semi_sync and len(data) > 2 and data[1] == SEMI_SYNC_INDICATOR:
            return DumpEvent(data[3:], bool(data[2] & SEMI_SYNC_ACK_REQUESTED))
        return DumpEvent(data[1:], False)

    def acknowledge(self, source_file: str, position: int) -> None:
        """Semi-sync ACK; called from another thread than the reader, hence the raw write."""
        payload = bytes([SEMI_SYNC_INDICATOR]) + struct.pack("<Q", position) + source_file.encode()
        with self._write_lock:
            sock = self._conn._sock
            if sock is not None:
                sock.sendall(_packet(payload))

    def close(self) -> None:
        sock = getattr(self._conn, "_sock", None)
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        with contextlib.suppress(Exception):
            self._conn.close()
