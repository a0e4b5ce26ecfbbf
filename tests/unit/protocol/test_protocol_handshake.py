"""Handshake v10, SSLRequest and HandshakeResponse41."""

from __future__ import annotations

import pytest

from kingbus.protocol import handshake
from kingbus.protocol.constants import SERVER_CAPABILITIES, Capability, Charset, ServerStatus
from kingbus.protocol.errors import ProtocolError
from kingbus.protocol.handshake import Handshake, HandshakeResponse, SslRequest

NONCE = bytes(range(0x41, 0x41 + 20))


def test_handshake_v10_bytes() -> None:
    greeting = Handshake("8.4.0-kingbus", 7, NONCE, SERVER_CAPABILITIES | Capability.SSL)
    payload = handshake.encode_handshake(greeting)
    caps = int(SERVER_CAPABILITIES | Capability.SSL)
    expected = (
        b"\x0a"
        + b"8.4.0-kingbus\x00"
        + b"\x07\x00\x00\x00"
        + NONCE[:8]
        + b"\x00"
        + (caps & 0xFFFF).to_bytes(2, "little")
        + b"\xff"  # utf8mb4_0900_ai_ci
        + b"\x02\x00"  # SERVER_STATUS_AUTOCOMMIT
        + (caps >> 16).to_bytes(2, "little")
        + b"\x15"  # 21 = nonce + NUL
        + bytes(10)
        + NONCE[8:]
        + b"\x00"
        + b"caching_sha2_password\x00"
    )
    assert payload == expected
    assert handshake.decode_handshake(payload) == greeting


def test_handshake_refuses_versions_replicas_refuse() -> None:
    for version in ("kingbus-1.0", "4.1.0", ""):
        with pytest.raises(ValueError):
            handshake.encode_handshake(Handshake(version, 1, NONCE, SERVER_CAPABILITIES))
    with pytest.raises(ValueError):
        handshake.encode_handshake(Handshake("8.4.0", 1, b"\x00" * 20, SERVER_CAPABILITIES))
    with pytest.raises(ValueError):
        handshake.encode_handshake(Handshake("8.4.0", 1, b"a" * 19, SERVER_CAPABILITIES))


def test_make_nonce_is_seven_bit_without_nul_or_dollar() -> None:
    nonce = handshake.make_nonce(lambda n: bytes([0, ord("$"), 0x80, 0xA4, 0xFF] + [0x41] * (n - 5)))
    assert nonce[:5] == bytes([1, ord("$") + 1, 1, ord("$") + 1, 0x7F])
    assert len(handshake.make_nonce()) == 20
    for _ in range(50):
        random = handshake.make_nonce()
        assert b"\x00" not in random and b"$" not in random and max(random) < 0x80
    with pytest.raises(ValueError):
        handshake.make_nonce(lambda n: b"short")


CLIENT_CAPS = (
    Capability.LONG_PASSWORD
    | Capability.PROTOCOL_41
    | Capability.SECURE_CONNECTION
    | Capability.PLUGIN_AUTH
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
    | Capability.CONNECT_ATTRS
    | Capability.DEPRECATE_EOF
    | Capability.TRANSACTIONS
)


def test_handshake_response_as_a_mysql_replica_sends_it() -> None:
    # Built field by field, like the 8.4 IO thread: lenenc auth data, plugin, attributes.
    attrs = b"\x0cprogram_name\x06mysqld" + b"\x0c_client_role\x13binary_log_listener"
    payload = (
        int(CLIENT_CAPS).to_bytes(4, "little")
        + (1 << 30).to_bytes(4, "little")
        + b"\xff"
        + bytes(23)
        + b"repl\x00"
        + b"\x20"
        + b"S" * 32
        + b"caching_sha2_password\x00"
        + bytes((len(attrs),))
        + attrs
    )
    decoded = handshake.decode_handshake_response(payload)
    assert decoded == HandshakeResponse(
        CLIENT_CAPS,
        1 << 30,
        Charset.UTF8MB4_0900_AI_CI,
        "repl",
        b"S" * 32,
        None,
        "caching_sha2_password",
        (("program_name", "mysqld"), ("_client_role", "binary_log_listener")),
    )
    assert isinstance(decoded, HandshakeResponse)
    assert decoded.attribute("_client_role") == "binary_log_listener"
    assert decoded.attribute("missing") is None
    assert handshake.encode_handshake_response(decoded) == payload


@pytest.mark.parametrize(
    "caps",
    [
        CLIENT_CAPS,
        CLIENT_CAPS & ~Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA,  # u8-length auth data
        Capability.PROTOCOL_41 | Capability.PLUGIN_AUTH,  # NUL-terminated auth data
        CLIENT_CAPS | Capability.CONNECT_WITH_DB | Capability.ZSTD_COMPRESSION_ALGORITHM,
    ],
)
def test_handshake_response_variants_roundtrip(caps: Capability) -> None:
    auth = b"\x01" * 20 if caps & Capability.SECURE_CONNECTION else b"abc"
    response = HandshakeResponse(
        caps,
        16 << 20,
        45,
        "ünicode",
        auth,
        "db" if caps & Capability.CONNECT_WITH_DB else None,
        "mysql_native_password",
        (("k", "v"),) if caps & Capability.CONNECT_ATTRS else (),
        7 if caps & Capability.ZSTD_COMPRESSION_ALGORITHM else None,
    )
    assert handshake.decode_handshake_response(handshake.encode_handshake_response(response)) == response


def test_optional_trailing_fields_may_be_absent() -> None:
    payload = (
        int(CLIENT_CAPS | Capability.CONNECT_WITH_DB).to_bytes(4, "little") + bytes(4) + b"\x21" + bytes(23)
    )
    payload += b"u\x00\x00"  # user, empty auth data; no database, plugin or attributes
    decoded = handshake.decode_handshake_response(payload)
    assert isinstance(decoded, HandshakeResponse)
    assert (decoded.username, decoded.auth_response, decoded.database, decoded.auth_plugin) == (
        "u",
        b"",
        None,
        None,
    )
    assert decoded.attributes == ()


def test_ssl_request_is_the_32_byte_prefix() -> None:
    request = SslRequest(CLIENT_CAPS | Capability.SSL, 1 << 24, 255)
    payload = handshake.encode_ssl_request(request)
    assert len(payload) == 32
    assert handshake.decode_handshake_response(payload) == request


def test_32_bytes_without_client_ssl_is_a_bad_handshake() -> None:
    with pytest.raises(ProtocolError) as caught:
        handshake.decode_handshake_response(int(CLIENT_CAPS).to_bytes(4, "little") + bytes(28))
    assert caught.value.code == 1043


def test_pre_41_clients_are_refused() -> None:
    with pytest.raises(ProtocolError) as caught:
        handshake.decode_handshake_response(b"\x05\x80\x00\x00" + bytes(40))
    assert (caught.value.code, caught.value.sqlstate) == (1043, "08S01")


def test_every_truncation_of_a_response_is_a_protocol_error_or_a_value() -> None:
    response = HandshakeResponse(
        CLIENT_CAPS | Capability.CONNECT_WITH_DB,
        1,
        255,
        "repl",
        b"x" * 32,
        "db",
        "caching_sha2_password",
        (("a", "b"),),
    )
    payload = handshake.encode_handshake_response(response)
    outcomes = set()
    for cut in range(len(payload)):
        try:
            decoded = handshake.decode_handshake_response(payload[:cut])
        except ProtocolError:
            outcomes.add("error")
        else:
            outcomes.add(type(decoded).__name__)
    # Truncation inside a field errors; at field boundaries of optional tail fields it decodes.
    assert outcomes == {"error", "HandshakeResponse"}


def test_negotiate_is_the_intersection() -> None:
    assert handshake.negotiate(SERVER_CAPABILITIES, CLIENT_CAPS | Capability.QUERY_ATTRIBUTES) == (
        SERVER_CAPABILITIES & CLIENT_CAPS
    )
    assert not SERVER_CAPABILITIES & (Capability.QUERY_ATTRIBUTES | Capability.SSL)
    # Both compression algorithms are offered (kingbus.protocol.compression).
    assert (
        SERVER_CAPABILITIES & Capability.COMPRESS
        and SERVER_CAPABILITIES & Capability.ZSTD_COMPRESSION_ALGORITHM
    )


def test_decode_handshake_status_and_plugin() -> None:
    greeting = Handshake(
        "9.7.0", 2**32 - 1, NONCE, SERVER_CAPABILITIES, 33, ServerStatus(0), "mysql_native_password"
    )
    assert handshake.decode_handshake(handshake.encode_handshake(greeting)) == greeting
    with pytest.raises(ProtocolError):
        handshake.decode_handshake(b"\x09rest")
