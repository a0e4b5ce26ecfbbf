"""The compressed protocol on the wire: a raw client (built from kingbus.protocol) negotiates
CLIENT_COMPRESS or zstd with a real MySQL 9.7 server and with an in-process ReplicaServer, and
both must frame the same way: the authentication's OK uncompressed, every reply after it in
compressed packets that continue the client's compressed sequence. Then what only Kingbus is
asked here: a malformed compressed packet ends the session with ERR 1835 (and the server goes
on serving), a zstd level outside 1..22 is refused at the handshake.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from kingbus.devenv import mysql
from kingbus.protocol import compression, handshake
from kingbus.protocol.compression import Algorithm, Codec
from kingbus.protocol.constants import Capability
from kingbus.store.store import BinlogStore
from tests.support import MySQLServerFactory
from tests.unit.server.harness import RunningServer, make_store

CLIENT_CAPS = (
    Capability.PROTOCOL_41
    | Capability.SECURE_CONNECTION
    | Capability.PLUGIN_AUTH
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
    | Capability.DEPRECATE_EOF
    | Capability.LONG_PASSWORD
    | Capability.TRANSACTIONS
)
QUERY = b"SELECT @@server_id"


class RawClient:
    """Just enough of a client: handshake with an empty password, then compressed commands."""

    def __init__(self, port: int, user: str, codec: Codec, *, zstd_level: int | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.codec = codec
        greeting = handshake.decode_handshake(self._packet()[1])
        assert greeting.capabilities & Capability.COMPRESS
        assert greeting.capabilities & Capability.ZSTD_COMPRESSION_ALGORITHM
        caps = CLIENT_CAPS | (
            Capability.COMPRESS
            if codec.algorithm is Algorithm.ZLIB
            else Capability.ZSTD_COMPRESSION_ALGORITHM
        )
        level = codec.level if zstd_level is None else zstd_level
        response = handshake.HandshakeResponse(
            caps, 1 << 24, 255, user, b"", None, "caching_sha2_password", (), level
        )
        payload = handshake.encode_handshake_response(response)
        self.sock.sendall(len(payload).to_bytes(3, "little") + b"\x01" + payload)
        self.reader = compression.CompressedReader(codec)

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError(f"closed after {len(data)} of {n} bytes")
            data += chunk
        return data

    def _packet(self) -> tuple[int, bytes]:
        """One uncompressed packet: (sequence id, payload)."""
        header = self._exact(4)
        return header[3], self._exact(int.from_bytes(header[:3], "little"))

    def auth_result(self) -> tuple[int, bytes]:
        return self._packet()

    def command(self, payload: bytes, *, compressed_seq: int = 0) -> None:
        packet = len(payload).to_bytes(3, "little") + b"\x00" + payload
        wire, _ = compression.compress_stream(packet, compressed_seq, self.codec)
        self.sock.sendall(wire)

    def reply(self) -> tuple[list[int], list[tuple[int, bytes]]]:
        """The compressed sequence ids and the inner packets (seq, payload) of one reply,
        read until its last packet (an OK, EOF or ERR)."""
        seqs: list[int] = []
        stream = b""
        inner: list[tuple[int, bytes]] = []
        while not inner or inner[-1][1][:1] not in (b"\x00", b"\xfe", b"\xff") or len(inner) == 2:
            header = self._exact(7)
            seqs.append(header[3])
            stream += self.reader.take_after(header + self._exact(int.from_bytes(header[:3], "little")))
            while len(stream) >= 4 and len(stream) - 4 >= (n := int.from_bytes(stream[:3], "little")):
                inner.append((stream[3], stream[4 : 4 + n]))
                stream = stream[4 + n :]
            if inner and inner[0][1][:1] in (b"\x00", b"\xff"):
                break  # an OK or ERR alone
        return seqs, inner

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BinlogStore]:
    s = make_store(tmp_path / "binlog")
    yield s
    s.close()


@pytest.fixture
def kingbus(store: BinlogStore) -> Iterator[RunningServer]:
    server = RunningServer(store)
    yield server
    server.close()


@pytest.fixture(scope="module")
def real_mysql(mysql_tree: mysql.MySQLTree, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    factory = MySQLServerFactory(mysql_tree, tmp_path_factory)
    try:
        server = factory()
        server.execute("CREATE USER 'nopass'@'%' IDENTIFIED WITH caching_sha2_password BY ''")
        server.execute("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'nopass'@'%'")
        yield server.port
    finally:
        factory.kill_all()


def _framing(port: int, codec: Codec) -> dict[str, object]:
    client = RawClient(port, "nopass", codec)
    try:
        ok_seq, ok = client.auth_result()
        client.command(b"\x03" + QUERY)
        query_seqs, query_packets = client.reply()
        client.command(b"\x0e")  # COM_PING
        ping_seqs, ping_packets = client.reply()
    finally:
        client.close()
    return {
        "auth_ok": (ok_seq, ok[:1]),  # read as a plain packet: the OK was not compressed
        "query_compressed_seqs": query_seqs[:1],
        "query_inner_seqs": [seq for seq, _ in query_packets],
        "query_last": query_packets[-1][1][:1],
        "ping": (ping_seqs, [(seq, payload[:1]) for seq, payload in ping_packets]),
    }


@pytest.mark.mysql
@pytest.mark.parametrize(
    "codec", [Codec(Algorithm.ZLIB), Codec(Algorithm.ZSTD, 3)], ids=lambda c: c.algorithm.value
)
def test_kingbus_frames_compressed_replies_as_mysql_97_does(
    codec: Codec, real_mysql: int, kingbus: RunningServer
) -> None:
    expected = _framing(real_mysql, codec)
    assert expected["auth_ok"] == (2, b"\x00")
    assert expected["query_compressed_seqs"] == [1]
    assert _framing(kingbus.port, codec) == expected


def test_a_malformed_compressed_packet_ends_the_session_with_an_error(kingbus: RunningServer) -> None:
    codec = Codec(Algorithm.ZLIB)
    client = RawClient(kingbus.port, "nopass", codec)
    try:
        assert client.auth_result()[1][:1] == b"\x00"
        # Announces 100 bytes after compression, carries bytes that are no deflate stream.
        client.sock.sendall(bytes((5, 0, 0, 0, 100, 0, 0)) + b"\x00\x01\x02\x03\x04")
        _, packets = client.reply()
        error = packets[-1][1]
        assert error[:1] == b"\xff" and int.from_bytes(error[1:3], "little") == 1835
        assert b"malformed compressed packet" in error
        with pytest.raises((EOFError, ConnectionError)):
            client.reply()
    finally:
        client.close()
    # The server goes on serving others.
    other = RawClient(kingbus.port, "nopass", codec)
    try:
        assert other.auth_result()[1][:1] == b"\x00"
        other.command(b"\x0e")  # COM_PING
        _, packets = other.reply()
        assert packets[-1][1][:1] == b"\x00"
    finally:
        other.close()


def test_a_zstd_level_outside_1_to_22_is_refused_at_the_handshake(kingbus: RunningServer) -> None:
    client = RawClient(kingbus.port, "nopass", Codec(Algorithm.ZSTD, 3), zstd_level=0)
    try:
        _, payload = client.auth_result()
        assert payload[:1] == b"\xff", payload
        assert b"zstd compression level 0 is outside 1..22" in payload
    finally:
        client.close()
