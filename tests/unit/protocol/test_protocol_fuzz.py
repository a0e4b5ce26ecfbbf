"""Fuzzing every decoder: random, truncated and oversized input ends in a value or a
MySQLError (ProtocolError included) -- never another exception, never a hang.

A SIGALRM guard turns a hang into a test failure instead of a stuck run. Set
KINGBUS_FUZZ_EXAMPLES to fuzz longer than the default 400 examples per decoder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kingbus.protocol import auth, commands, framing, handshake, responses, results, scrambles, sql
from kingbus.protocol.constants import Capability
from kingbus.protocol.errors import MySQLError

FUZZ = settings(
    max_examples=int(os.environ.get("KINGBUS_FUZZ_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
CAPS = st.sampled_from(
    [
        Capability.PROTOCOL_41,
        Capability.PROTOCOL_41 | Capability.DEPRECATE_EOF,
        Capability.PROTOCOL_41 | Capability.SESSION_TRACK,
        Capability(0),
    ]
)


@contextlib.contextmanager
def no_hang(seconds: int = 5) -> Iterator[None]:
    def alarm(signum: int, frame: Any) -> None:
        raise TimeoutError("decoder hung")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def value_or_mysql_error(decode: Callable[[], object]) -> object:
    with no_hang():
        try:
            return decode()
        except MySQLError as error:
            return error


# Valid packets to mutate: structure-aware seeds reach deeper than pure noise.
_RESPONSE_SEED = handshake.encode_handshake_response(
    handshake.HandshakeResponse(
        Capability.PROTOCOL_41
        | Capability.SECURE_CONNECTION
        | Capability.PLUGIN_AUTH
        | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
        | Capability.CONNECT_ATTRS
        | Capability.CONNECT_WITH_DB,
        1 << 24,
        255,
        "repl",
        b"s" * 32,
        "db",
        "caching_sha2_password",
        (("program_name", "mysqld"),),
    )
)
_COMMAND_SEEDS = [
    commands.encode_binlog_dump_gtid(commands.BinlogDumpGtid(commands.DumpFlag(2), 9, "f", 4, b"\x00" * 8)),
    commands.encode_register_replica(commands.RegisterReplica(9, "h", "u", "p", 3306, 0, 0)),
    commands.encode_binlog_dump(commands.BinlogDump(4, commands.DumpFlag(0), 9, "mysql-bin.000001")),
]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with random truncation, byte flips and insertions."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        index = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete", "big"]))
        if action == "flip":
            data[index] = draw(st.integers(0, 255))
        elif action == "insert":
            data[index:index] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[index]
        else:
            data[index : index + 1] = b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f"  # a huge lenenc length
    return bytes(data[: draw(st.integers(0, len(data)))])


@FUZZ
@given(
    data=st.binary(max_size=2000),
    chunks=st.lists(st.integers(1, 300), max_size=20),
    max_payload=st.integers(0, 1 << 25),
)
@example(data=b"\xff\xff\xff\x00", chunks=[], max_payload=1 << 30)
@example(data=b"\xff\xff\xff\x00" + b"x" * 100, chunks=[1], max_payload=10)
def test_packet_reader(data: bytes, chunks: list[int], max_payload: int) -> None:
    reader = framing.PacketReader(max_payload=max_payload)
    with no_hang():
        offset = 0
        try:
            for size in [*chunks, len(data)]:
                reader.feed(data[offset : offset + size])
                offset += size
                for packet in reader.packets():
                    assert len(packet.payload) <= max_payload
                    assert 0 <= packet.seq <= 255
        except MySQLError:
            pass
        # Whatever happened, buffered bytes never exceed what was fed.
        assert reader.buffered <= len(data)


@FUZZ
@given(st.one_of(st.binary(max_size=300), mutated([_RESPONSE_SEED])))
@example(b"")
@example(_RESPONSE_SEED[:32])
def test_handshake_response_decoder(data: bytes) -> None:
    result = value_or_mysql_error(lambda: handshake.decode_handshake_response(data))
    assert isinstance(result, handshake.HandshakeResponse | handshake.SslRequest | MySQLError)


@FUZZ
@given(st.binary(max_size=300))
def test_handshake_decoder(data: bytes) -> None:
    result = value_or_mysql_error(lambda: handshake.decode_handshake(b"\x0a" + data))
    assert isinstance(result, handshake.Handshake | MySQLError)


@FUZZ
@given(st.one_of(st.binary(max_size=300), mutated(_COMMAND_SEEDS)))
@example(b"\x15" + struct.pack("<I", 1) + b"\xfe" + b"\xff" * 8)
@example(b"\x1e" + struct.pack("<HII", 0, 1, 0xFFFFFFFF))
def test_command_decoder(data: bytes) -> None:
    result = value_or_mysql_error(lambda: commands.decode_command(data))
    assert isinstance(result, commands.ClientCommand | MySQLError)


@FUZZ
@given(st.text(max_size=400))
def test_sql_classifier(text: str) -> None:
    with no_hang():
        assert isinstance(sql.classify(text), sql.Statement)


@FUZZ
@given(st.binary(max_size=200), CAPS)
def test_response_decoders(data: bytes, caps: Capability) -> None:
    for decode in (responses.decode_ok, responses.decode_eof, responses.decode_err):
        value_or_mysql_error(lambda decode=decode: decode(data, caps))  # type: ignore[misc]
    value_or_mysql_error(lambda: results.decode_column(data))


@FUZZ
@given(st.lists(st.binary(max_size=60), max_size=8), CAPS)
def test_resultset_decoder(payloads: list[bytes], caps: Capability) -> None:
    result = value_or_mysql_error(lambda: results.decode_resultset(payloads, caps))
    assert isinstance(result, results.ResultSet | MySQLError)


_KEY = scrambles.generate_rsa_key(1024)


@settings(max_examples=150, deadline=None)
@given(
    first=st.binary(max_size=40),
    plugin=st.sampled_from([None, "", "caching_sha2_password", "mysql_native_password", "other"]),
    later=st.lists(st.binary(max_size=300), max_size=4),
    tls=st.booleans(),
    fast_path=st.booleans(),
)
def test_authenticator(
    first: bytes, plugin: str | None, later: list[bytes], tls: bool, fast_path: bool
) -> None:
    authenticator = auth.Authenticator(
        users={"repl": auth.Credentials.from_password("secret")},
        nonce=b"n" * 20,
        host="h",
        tls=tls,
        rsa_key=_KEY,
        fast_path=fast_path,
    )
    caps = Capability.PROTOCOL_41 | Capability.PLUGIN_AUTH | Capability.SECURE_CONNECTION
    with no_hang():
        step = authenticator.start(handshake.HandshakeResponse(caps, 0, 255, "repl", first, None, plugin))
        for payload in later:
            if step.done:
                with pytest.raises(RuntimeError):
                    authenticator.receive(payload)
                break
            step = authenticator.receive(payload)
            assert all(isinstance(packet, bytes) for packet in step.send)
        # Random bytes never authenticate.
        assert not isinstance(step.outcome, auth.Accept)
