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
import ssl
import struct
import threading
from dataclasses import dataclass
from typing import Any

import pymysql

from kingbus.binlog.gtids import GtidSet
from kingbus.upstream.dumpstream import (
    AckRequested,
    DumpEvent,
    DumpStream,
    StreamEnd,
    StreamError,
    UnexpectedPacket,
)

COM_REGISTER_SLAVE = 0x15
COM_BINLOG_DUMP_GTID = 0x1E
DUMP_FLAG_HEARTBEAT_V2 = 0x02
SEMI_SYNC_INDICATOR = 0xEF
SEMI_SYNC_ACK_REQUESTED = 0x01
_STREAM_READ_BYTES = 256 * 1024


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


def _packet(payload: bytes, seq: int = 0) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def _lenenc_str(value: bytes) -> bytes:
    if len(value) >= 251:
        raise ValueError("string too long for this encoder")
    return bytes([len(value)]) + value


def _tls_arguments(mode: str, ca: str = "") -> dict[str, Any]:
    """PyMySQL's TLS arguments for a `source.tls` mode, with MySQL's meanings: `required`
    encrypts without checking the certificate (SOURCE_SSL=1), `verify_ca` also checks that
    `ca` signed it (SOURCE_SSL_CA), not the host name (SOURCE_SSL_VERIFY_SERVER_CERT=0)."""
    if mode == "disabled":
        return {"ssl_disabled": True}
    if mode in ("required", "verify_ca"):
        context = (
            ssl.create_default_context(cadata=ca or None)
            if mode == "verify_ca"
            else ssl.create_default_context()
        )
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED if mode == "verify_ca" else ssl.CERT_NONE
        return {"ssl": context}
    if mode == "preferred":
        return {}  # PyMySQL's default: TLS when the source offers it
    raise ValueError(f"unknown source TLS mode {mode!r}")


class ClosedHere(ConnectionError):
    """The stream ended because this node closed the connection (a new configuration, a
    lost leadership, shutdown): not a failure of the source."""


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
        tls: str = "preferred",
        tls_ca: str = "",
    ) -> None:
        self._conn = pymysql.connect(
            **_tls_arguments(tls, tls_ca),
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
        self._stream = DumpStream()
        self._ended = False
        self._closed_here = False

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

    def read_events(self) -> list[DumpEvent] | None:
        """The events that have arrived (at least one), or None once the source ended the
        stream (EOF).  An ERR packet raises the source's error, as PyMySQL would.

        After COM_BINLOG_DUMP_GTID the source only streams, so events are cut here from
        large reads of PyMySQL's socket file (`kingbus.upstream.dumpstream`), many at a time,
        instead of one `_read_packet` (two reads, a packet object) per event.
        """
        if self._ended:
            return None
        stream = self._stream
        stream.semi_sync = self.semi_sync
        while True:
            items = stream.take()
            if items:
                break
            # `close` may run on another thread at any moment: PyMySQL then drops `_rfile`
            # (None) or closes it (ValueError on read); shutdown makes a blocked read see EOF.
            rfile = self._conn._rfile
            try:
                if rfile is None:
                    raise ConnectionResetError("the connection is closed")
                chunk = rfile.read1(_STREAM_READ_BYTES)
            except (OSError, ValueError) as exc:
                if self._closed_here:
                    raise ClosedHere("the connection was closed by this node") from None
                if isinstance(exc, ValueError):
                    raise ConnectionResetError(f"the connection is closed: {exc}") from exc
                raise
            if not chunk:
                if self._closed_here:
                    raise ClosedHere("the connection was closed by this node")
                raise ConnectionResetError("the source closed the connection")
            stream.feed(chunk)
        last = items[-1]
        if isinstance(last, bytes | AckRequested):
            return items  # type: ignore[return-value]  # all events: only the last can be a stop
        events: list[DumpEvent] = items[:-1]  # type: ignore[assignment]
        if isinstance(last, StreamEnd):
            self._ended = True
            return events or None
        if isinstance(last, StreamError):
            pymysql.err.raise_mysql_exception(last.payload)  # e.g. 1236
        assert isinstance(last, UnexpectedPacket)
        raise SourceRefused(f"unexpected packet 0x{last.first_byte:02x} in the binlog stream")

    def acknowledge(self, source_file: str, position: int) -> None:
        """Semi-sync ACK; called from another thread than the reader, hence the raw write."""
        payload = bytes([SEMI_SYNC_INDICATOR]) + struct.pack("<Q", position) + source_file.encode()
        with self._write_lock:
            sock = self._conn._sock
            if sock is not None:
                sock.sendall(_packet(payload))

    def close(self) -> None:
        self._closed_here = True
        sock = getattr(self._conn, "_sock", None)
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        with contextlib.suppress(Exception):
            self._conn.close()
