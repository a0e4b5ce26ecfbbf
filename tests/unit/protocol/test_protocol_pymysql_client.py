"""The codec against a real MySQL client library: PyMySQL connects to a minimal blocking
server built only from kingbus.protocol (handshake, TLS upgrade, every auth path, queries,
result sets, errors, > 16 MiB packets in both directions).

The server here is test scaffolding -- a reference for the asyncio adapter, not part of it.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from kingbus.protocol import (
    auth,
    commands,
    errors,
    framing,
    handshake,
    like,
    responses,
    results,
    scrambles,
    sql,
)
from kingbus.protocol.constants import CACHING_SHA2_PASSWORD, SERVER_CAPABILITIES, Capability
from kingbus.protocol.errors import MySQLError

SERVER_VERSION = "8.4.0-kingbus-test"
UNIX_TIME = 1_700_000_000
VARIABLES: dict[str, str | int] = {
    "server_id": 4001,
    "server_uuid": "5a2ad0a6-6c1c-11ef-9f2e-0242ac120002",
    "binlog_checksum": "CRC32",
    "gtid_mode": "ON",
    "version": SERVER_VERSION,
    "version_comment": "kingbus",
}


@dataclasses.dataclass
class ServerConfig:
    users: dict[str, auth.Credentials]
    tls: ssl.SSLContext | None = None
    rsa_key: rsa.RSAPrivateKey | None = None
    fast_path: bool = True
    advertised_plugin: str = CACHING_SHA2_PASSWORD


@dataclasses.dataclass
class Session:
    """What the server saw on one connection, for assertions."""

    outcome: auth.Accept | auth.Reject | None = None
    used_tls: bool = False
    statements: list[sql.Statement] = dataclasses.field(default_factory=list)
    commands: list[commands.ClientCommand] = dataclasses.field(default_factory=list)
    error: BaseException | None = None
    finished: threading.Event = dataclasses.field(default_factory=threading.Event)


class Connection:
    """Blocking socket + PacketReader: the smallest possible adapter."""

    def __init__(self, sock: socket.socket | ssl.SSLSocket) -> None:
        self.sock = sock
        self.reader = framing.PacketReader(max_payload=64 << 20)

    def read(self, *, exact: bool = False) -> framing.Packet:
        """The next payload; ``exact`` reads no byte beyond it (before a possible TLS upgrade)."""
        while (packet := self.reader.next_packet()) is None:
            data = self.sock.recv(self.reader.wanted if exact else 1 << 20)
            if not data:
                raise ConnectionError("peer closed")
            self.reader.feed(data)
        return packet

    def send(self, payloads: tuple[bytes, ...] | list[bytes], seq: int) -> None:
        data, _ = framing.frame_all(payloads, seq)
        self.sock.sendall(data)


def serve(sock: socket.socket, config: ServerConfig, session: Session) -> None:
    conn = Connection(sock)
    nonce = handshake.make_nonce()
    caps = SERVER_CAPABILITIES | (Capability.SSL if config.tls else Capability(0))
    greeting = handshake.Handshake(SERVER_VERSION, 7, nonce, caps, auth_plugin=config.advertised_plugin)
    conn.send([handshake.encode_handshake(greeting)], 0)
    packet = conn.read(exact=True)
    first = handshake.decode_handshake_response(packet.payload)
    if isinstance(first, handshake.SslRequest):
        assert config.tls is not None
        conn = Connection(config.tls.wrap_socket(sock, server_side=True))
        session.used_tls = True
        packet = conn.read()
        first = handshake.decode_handshake_response(packet.payload)
    assert isinstance(first, handshake.HandshakeResponse)
    negotiated = handshake.negotiate(caps, first.capabilities)
    authenticator = auth.Authenticator(
        users=config.users,
        nonce=nonce,
        host="127.0.0.1",
        tls=session.used_tls,
        server_capabilities=caps,
        rsa_key=config.rsa_key,
        fast_path=config.fast_path,
    )
    step = authenticator.start(first)
    while True:
        conn.send(step.send, packet.next_seq)
        if step.outcome is not None:
            break
        packet = conn.read()
        step = authenticator.receive(packet.payload)
    session.outcome = step.outcome
    if isinstance(step.outcome, auth.Reject):
        return
    user_vars: dict[str, object] = {}
    while True:
        packet = conn.read()
        command = commands.decode_command(packet.payload)
        session.commands.append(command)
        if isinstance(command, commands.Quit):
            return
        reply: list[bytes]
        if isinstance(command, commands.Ping | commands.InitDb):
            reply = [responses.encode_ok(responses.Ok(), negotiated)]
        elif isinstance(command, commands.UnknownCommand):
            reply = [command.error().encode(negotiated)]
        elif isinstance(command, commands.Query):
            statement = sql.classify(command.text)
            session.statements.append(statement)
            try:
                reply = answer(statement, user_vars, negotiated)
            except MySQLError as error:
                reply = [error.encode(negotiated)]
        else:
            reply = [MySQLError(errors.ER_NOT_SUPPORTED_YET, "42000", "not in this test").encode(negotiated)]
        conn.send(reply, packet.next_seq)


def evaluate(expression: sql.Expression, user_vars: dict[str, object]) -> object:
    if isinstance(expression, sql.SystemVariable):
        if expression.name not in VARIABLES:
            raise errors.unknown_system_variable(expression.name)
        return VARIABLES[expression.name]
    if isinstance(expression, sql.UserVariable):
        return user_vars.get(expression.name)
    if isinstance(expression, sql.Literal):
        return expression.value
    if isinstance(expression, sql.FunctionCall) and expression.name == "UNIX_TIMESTAMP":
        return UNIX_TIME
    if isinstance(expression, sql.FunctionCall) and expression.name == "VERSION":
        return SERVER_VERSION
    raise MySQLError(errors.ER_NOT_SUPPORTED_YET, "42000", "unsupported expression")


def answer(statement: sql.Statement, user_vars: dict[str, object], caps: Capability) -> list[bytes]:
    if isinstance(statement, sql.Select):
        values = [evaluate(item.expression, user_vars) for item in statement.items]
        columns = [
            results.Column.integer(item.column_name)
            if isinstance(value, int)
            else results.Column.text(item.column_name)
            for item, value in zip(statement.items, values, strict=True)
        ]
        row = [
            value if value is None or isinstance(value, str | int | float) else str(value) for value in values
        ]
        return results.encode_resultset(columns, [row], caps)
    if isinstance(statement, sql.Set):
        for assignment in statement.assignments:
            if isinstance(assignment.target, sql.UserVariable):
                user_vars[assignment.target.name] = evaluate(assignment.value, user_vars)
        return [responses.encode_ok(responses.Ok(), caps)]
    if isinstance(statement, sql.SetNames):
        return [responses.encode_ok(responses.Ok(), caps)]
    if isinstance(statement, sql.ShowVariables):
        rows = [[name, str(value)] for name, value in sorted(VARIABLES.items())]
        if statement.like is not None:
            rows = [row for row in rows if like.like(row[0], statement.like)]
        columns = [results.Column.text("Variable_name"), results.Column.text("Value")]
        return results.encode_resultset(columns, rows, caps)
    raise MySQLError(errors.ER_PARSE_ERROR, "42000", "You have an error in your SQL syntax")


class Server:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.listener.settimeout(0.1)  # so that close() is noticed; accept() is not interruptible
        self.stopping = threading.Event()
        self.sessions: list[Session] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(30)
            session = Session()
            self.sessions.append(session)
            try:
                serve(sock, self.config, session)
            except BaseException as error:  # recorded and asserted on by the tests
                session.error = error
            finally:
                sock.close()
                session.finished.set()

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()
        self.thread.join(timeout=10)

    def connect(self, **kwargs: Any) -> Any:
        return pymysql.connect(host="127.0.0.1", port=self.port, connect_timeout=10, **kwargs)

    @property
    def last(self) -> Session:
        """The latest session, once the server has finished with it."""
        session = self.sessions[-1]
        assert session.finished.wait(10)
        return session


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
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kingbus-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def server_tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    return context


def client_tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(tls_files[0]))
    return context  # verifies the certificate and the 127.0.0.1 SAN


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
