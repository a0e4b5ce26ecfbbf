"""A minimal *blocking* MySQL server built only from kingbus.protocol, for tests that point
real clients (PyMySQL, the mysql CLI, a MySQL 9.7 replica's IO thread) at the codec.

Test scaffolding and a reference for the asyncio adapter -- not part of it. It answers the
replica probes of notes/mysql-protocol.md §1 from a fixed variable table, records every
decoded command and classified statement, accepts COM_REGISTER_SLAVE and ends a dump
request with ERR 1236 (there is no binlog behind it).
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pymysql
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from kingbus.protocol import auth, commands, errors, framing, handshake, like, responses, results, sql
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
    response: handshake.HandshakeResponse | None = None
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

    def read(self, *, expected_seq: int, exact: bool = False) -> framing.Packet:
        """The next payload; ``exact`` reads no byte beyond it (before a possible TLS upgrade)."""
        while (packet := self.reader.next_packet(expected_seq=expected_seq)) is None:
            data = self.sock.recv(self.reader.wanted if exact else 1 << 20)
            if not data:
                raise ConnectionError("peer closed")
            self.reader.feed(data)
        return packet

    def send(self, payloads: tuple[bytes, ...] | list[bytes], seq: int) -> int:
        """Send payloads from sequence id ``seq``; returns the id the peer must answer with."""
        data, next_seq = framing.frame_all(payloads, seq)
        self.sock.sendall(data)
        return next_seq


def serve(sock: socket.socket, config: ServerConfig, session: Session) -> None:
    conn = Connection(sock)
    nonce = handshake.make_nonce()
    caps = SERVER_CAPABILITIES | (Capability.SSL if config.tls else Capability(0))
    greeting = handshake.Handshake(SERVER_VERSION, 7, nonce, caps, auth_plugin=config.advertised_plugin)
    packet = conn.read(expected_seq=conn.send([handshake.encode_handshake(greeting)], 0), exact=True)
    first = handshake.decode_handshake_response(packet.payload)
    if isinstance(first, handshake.SslRequest):
        assert config.tls is not None
        conn = Connection(config.tls.wrap_socket(sock, server_side=True))
        session.used_tls = True
        packet = conn.read(expected_seq=packet.next_seq)
        first = handshake.decode_handshake_response(packet.payload)
    assert isinstance(first, handshake.HandshakeResponse)
    session.response = first
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
        next_seq = conn.send(step.send, packet.next_seq)
        if step.outcome is not None:
            break
        packet = conn.read(expected_seq=next_seq)
        step = authenticator.receive(packet.payload)
    session.outcome = step.outcome
    if isinstance(step.outcome, auth.Reject):
        return
    user_vars: dict[str, object] = {}
    while True:
        packet = conn.read(expected_seq=0)  # every command starts a new sequence
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
        elif isinstance(command, commands.RegisterReplica):
            reply = [responses.encode_ok(responses.Ok(), negotiated)]
        else:  # a dump request: nothing to stream here
            no_binlog = MySQLError(
                errors.ER_SOURCE_FATAL_ERROR_READING_BINLOG, "HY000", "stub server has no binlog"
            )
            conn.send([no_binlog.encode(negotiated)], packet.next_seq)
            return
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
    if isinstance(statement, sql.ShowBinaryLogStatus):
        columns = [
            results.Column.text("File"),
            results.Column.integer("Position", unsigned=True),
            results.Column.text("Binlog_Do_DB"),
            results.Column.text("Binlog_Ignore_DB"),
            results.Column.text("Executed_Gtid_Set"),
        ]
        return results.encode_resultset(columns, [["binlog.000001", 4, "", "", ""]], caps)
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
            # One thread per connection: clients such as python-mysql-replication keep one
            # connection open while they open another.
            threading.Thread(target=self._serve, args=(sock, session), daemon=True).start()

    def _serve(self, sock: socket.socket, session: Session) -> None:
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


def make_tls_files(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
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
    """Verifies the certificate and its 127.0.0.1 SAN."""
    return ssl.create_default_context(cafile=str(tls_files[0]))
