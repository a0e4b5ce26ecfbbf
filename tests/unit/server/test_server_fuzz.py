"""Issue 3, "must pass" 7: fuzzing the running server with malformed, truncated and oversized
packets, before and after authentication.

Every case must end with an ERR packet, a closed connection, or (for a truncated packet the
server is still waiting on) nothing until the client gives up -- and then the server must
drop the session, log no unexpected exception, and keep answering new clients.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kingbus.protocol import framing
from kingbus.store.store import BinlogStore
from tests.support.fabricate import SourceStream
from tests.unit.server.harness import RunningServer, fill, make_store

FUZZ = settings(
    max_examples=int(os.environ.get("KINGBUS_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
HANDSHAKE_TIMEOUT = 0.3


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    path: Path = tmp_path_factory.mktemp("fuzz")
    store: BinlogStore = make_store(path / "binlog")
    fill(store, SourceStream(), 3)
    server = RunningServer(store, handshake_timeout=HANDSHAKE_TIMEOUT)
    yield server
    server.close()
    store.close()


def read_until_end(sock: socket.socket, timeout: float, *, first_packet: bool = False) -> tuple[bytes, bool]:
    """What the server sends within ``timeout`` (with ``first_packet``: stop once a whole
    packet arrived), and whether it closed the connection."""
    data = b""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 16)
        except TimeoutError:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
        if first_packet and len(data) >= 4 and len(data) >= 4 + int.from_bytes(data[:3], "little"):
            return data, False
    return data, False


def hang_up(sock: socket.socket) -> None:
    """Really close: PyMySQL's buffered reader keeps the descriptor open after close()."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def payloads(data: bytes) -> list[bytes]:
    reader = framing.PacketReader()
    reader.feed(data)
    out: list[bytes] = []
    with contextlib.suppress(Exception):  # whatever came before a framing error still counts
        out.extend(p.payload for p in reader.packets())
    return out


def server_still_answers(running: RunningServer) -> None:
    conn = running.connect()
    with conn.cursor() as cursor:
        cursor.execute("SELECT @@server_id")
        assert cursor.fetchone() == (running.server.server_id,)
    conn.close()


def wait_sessions_drained(running: RunningServer, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while running.server.connections > 0:
        assert time.monotonic() < deadline, f"{running.server.connections} sessions never ended"
        time.sleep(0.02)


def raw_packet(payload: bytes, seq: int) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes((seq,)) + payload


@pytest.fixture(autouse=True)
def no_unexpected_exceptions(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.ERROR, logger="kingbus.server")
    yield
    errors = [r for r in caplog.records if r.name.startswith("kingbus.server") and r.levelno >= logging.ERROR]
    assert not errors, errors[0].getMessage()


@FUZZ
@given(data=st.binary(max_size=300), seq=st.integers(0, 255), truncate=st.booleans())
@example(data=b"\x00" * 32, seq=1, truncate=False)  # an all-zero "SSLRequest"-sized response
@example(data=b"", seq=1, truncate=False)
def test_garbage_handshake_response(running: RunningServer, data: bytes, seq: int, truncate: bool) -> None:
    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as sock:
        greeting = b""
        while len(greeting) < 4 or len(greeting) < 4 + int.from_bytes(greeting[:3], "little"):
            greeting += sock.recv(4096)
        packet = raw_packet(data, seq)
        sock.sendall(packet[: max(1, len(packet) // 2)] if truncate else packet)
        answer, closed = read_until_end(sock, HANDSHAKE_TIMEOUT + 3, first_packet=True)
        # ERR, or the server closed (bad handshake / timeout); never silence past the timeout.
        assert closed or any(p[:1] == b"\xff" for p in payloads(answer)), answer[:64]


def authenticated_socket(
    running: RunningServer,
) -> tuple[pymysql.connections.Connection[object], socket.socket]:
    conn = running.connect()
    sock: socket.socket = conn._sock
    return conn, sock


@FUZZ
@given(payload=st.binary(min_size=1, max_size=400), command=st.integers(0, 255))
@example(payload=b"", command=0x1E)  # COM_BINLOG_DUMP_GTID without a body
@example(payload=b"\x00\x00\x01\x00\x00\x00\xff\xff\xff\xff", command=0x1E)  # name_len past the end
@example(payload=b"\x04\x00\x00\x00", command=0x12)  # COM_BINLOG_DUMP truncated
@example(payload=b"\x01\x00\x00\x00\xff", command=0x15)  # COM_REGISTER_SLAVE truncated
@example(payload=b"SELECT @@", command=0x03)
@example(payload=b"\xff\xfe\xfd", command=0x03)  # not UTF-8
def test_garbage_commands_get_an_error_and_the_session_goes_on(
    running: RunningServer, payload: bytes, command: int
) -> None:
    _conn, sock = authenticated_socket(running)
    try:
        body = bytes((command,)) + payload
        sock.sendall(raw_packet(body, 0))
        if command in (0x12, 0x1E):  # a dump: ERR (malformed) or a stream; then we leave
            answer, _closed = read_until_end(sock, 5, first_packet=True)
            assert answer, "a dump request got no answer at all"
            return
        if command == 0x01:  # COM_QUIT: the server closes
            _answer, closed = read_until_end(sock, 3)
            assert closed
            return
        answer, closed = read_until_end(sock, 5, first_packet=True)
        assert answer, f"no answer to command {command:#x}"
        assert not closed, f"command {command:#x} closed the session"
        time.sleep(0.01)  # a result set may still be arriving: drain it before the ping
        read_until_end(sock, 0.02)
        # The session still works: a ping gets OK.
        sock.sendall(raw_packet(b"\x0e", 0))
        pong, _ = read_until_end(sock, 5, first_packet=True)
        assert payloads(pong) and payloads(pong)[-1][:1] == b"\x00", pong
    finally:
        hang_up(sock)


@pytest.mark.parametrize(
    "wire",
    [
        struct.pack("<I", 0xFFFFFF)[:3] + b"\x00" + b"x" * 100,  # announces 16 MiB - 1, sends 100
        struct.pack("<I", 0xFFFFFF)[:3] + b"\x00" + b"y" * 0xFFFFFF + b"\xff\xff\xff\x01",  # > 16 MiB
        raw_packet(b"\x03SELECT 1", 5),  # out-of-order sequence id
        raw_packet(b"", 0),  # empty command
    ],
    ids=["truncated-large", "oversized", "out-of-order", "empty"],
)
def test_framing_errors_end_with_err_or_close(running: RunningServer, wire: bytes) -> None:
    _conn, sock = authenticated_socket(running)
    try:
        sock.sendall(wire)
        answer, closed = read_until_end(sock, 2.0, first_packet=True)
        got = payloads(answer)
        ended = closed or any(p[:1] == b"\xff" for p in got)
        waiting = not answer and not closed  # a truncated packet: the server waits for the rest
        assert ended or waiting, answer[:64]
    finally:
        hang_up(sock)
    wait_sessions_drained(running)
    server_still_answers(running)


def test_server_still_answers_after_the_fuzzing(running: RunningServer) -> None:
    wait_sessions_drained(running)
    server_still_answers(running)
