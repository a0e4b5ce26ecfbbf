"""`mysql.max_connections`: the node refuses one connection too many exactly as mysqld does,
and a real MySQL 9.7 replica that was refused connects once a slot is free.

The refusal is compared byte for byte with what a real MySQL 9.7 server sends at its own
max_connections (recorded here by the first test against a real server): ERR 1040 with
sequence id 0, without the SQLSTATE marker, instead of the greeting.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from kingbus.devenv import mysql
from kingbus.store.store import BinlogStore
from tests.integration.test_replicas_auth import STATUS, attach
from tests.support import MySQLServerFactory, wait_until
from tests.support.fabricate import SourceStream
from tests.unit.server.harness import RunningServer, fill, make_store

pytestmark = [pytest.mark.mysql]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BinlogStore]:
    s = make_store(tmp_path / "binlog")
    fill(s, SourceStream(), 3)
    yield s
    s.close()


def read_packet(sock: socket.socket) -> bytes:
    """One whole packet, header included (a greeting or an error)."""
    data = b""
    while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:3], "little"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def first_packet(port: int) -> bytes:
    """What a server sends first on a new connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        return read_packet(sock)


def mysqld_refusal(mysql_server: MySQLServerFactory) -> bytes:
    """The first packet of a connection over a real mysqld's max_connections.

    mysqld admits max_connections + 1 sockets (the last one is kept for an account with
    CONNECTION_ADMIN, checked after authentication) and counts a closed connection out a
    moment after it closed, so sockets are opened and kept one by one until one is refused."""
    server = mysql_server(server_id=6101, extra_args=["--max-connections=1"])
    # Without an account for this host mysqld answers 1130 "not allowed to connect" instead.
    server.execute("CREATE USER IF NOT EXISTS probe@'%' IDENTIFIED BY 'probe'")
    held: list[socket.socket] = []
    try:
        for _ in range(10):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            held.append(sock)
            packet = read_packet(sock)
            if packet[4:5] == b"\xff":
                return packet
        raise AssertionError("mysqld admitted ten connections with max_connections=1")
    finally:
        for sock in held:
            sock.close()


def test_the_refusal_is_byte_identical_to_mysqld(
    mysql_server: MySQLServerFactory, store: BinlogStore
) -> None:
    expected = mysqld_refusal(mysql_server)
    assert expected == b"\x17\x00\x00\x00\xff\x10\x04Too many connections"
    server = RunningServer(store, max_connections=2)
    try:
        held = [server.connect(), server.connect()]
        assert first_packet(server.port) == expected
        with pytest.raises(pymysql.err.OperationalError) as refused:
            server.connect()
        assert refused.value.args == (1040, "Too many connections")
        assert server.server.connections_refused == 2
        # A slot frees when a session ends; the next connection is served.
        held.pop().close()
        wait_until(lambda: server.server.connections < 2, timeout=10, what="the session to end")
        again = server.connect()
        with again.cursor() as cursor:
            cursor.execute("SELECT @@max_connections")
            assert cursor.fetchone() == (2,)
        again.close()
        for conn in held:
            conn.close()
    finally:
        server.close()


def test_a_refused_replica_connects_once_a_slot_is_free(
    mysql_server: MySQLServerFactory, store: BinlogStore
) -> None:
    server = RunningServer(store, max_connections=1)
    try:
        blocker = server.connect()
        replica: mysql.MySQLServer = mysql_server(server_id=6102)
        attach(replica, server.port, user="repl", password="replpass", options="")

        def io_error() -> int:
            return int(replica.query(STATUS)[0][1])

        assert wait_until(io_error, timeout=30, what="the replica to be refused") == 1040
        assert "Too many connections" in str(replica.query(STATUS)[0][2])
        blocker.close()

        def streaming() -> bool:
            state = replica.query(STATUS)[0][0]
            return state == "ON" and bool(server.server.registry.sessions())

        wait_until(streaming, timeout=30, what="the replica to connect once the slot is free")
        # Nothing else gets in meanwhile: the replica holds the only slot.
        with pytest.raises(pymysql.err.OperationalError, match="1040"):
            server.connect()
        replica.execute("STOP REPLICA IO_THREAD")
    finally:
        server.close()
