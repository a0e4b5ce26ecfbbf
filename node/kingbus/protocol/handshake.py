"""Connection phase packets: the server's Handshake v10, the client's SSLRequest and
HandshakeResponse41.

Theory of operation
-------------------
The server speaks first with Handshake v10: protocol version 10, a NUL-terminated version
string, the connection id, the first 8 bytes of the 20-byte nonce, the capability flags (split
in two 16-bit halves around charset and status), the length of the auth data, ten reserved
bytes, the remaining 12 nonce bytes plus a NUL, and the default authentication plugin name.

The client answers with either

* an **SSLRequest** -- exactly the first 32 bytes of a HandshakeResponse41 (capabilities with
  CLIENT_SSL, max packet size, charset, 23 zero bytes), after which both sides start TLS and
  the client sends the full response over the encrypted stream (sequence id continuing); or
* a **HandshakeResponse41**: those 32 bytes, a NUL-terminated user name, the auth response
  (lenenc under PLUGIN_AUTH_LENENC_CLIENT_DATA, u8-length-prefixed under SECURE_CONNECTION,
  NUL-terminated otherwise), the database (CONNECT_WITH_DB), the auth plugin name
  (PLUGIN_AUTH) and connection attributes (CONNECT_ATTRS: a lenenc total length followed by
  lenenc key/value pairs).

Only the 4.1 protocol is accepted: a response without CLIENT_PROTOCOL_41 is refused with
ER_HANDSHAKE_ERROR, as modern servers do. Optional trailing fields that are simply absent are
tolerated (several connectors omit them); anything truncated in the middle of a field is a
:class:`~kingbus.protocol.errors.ProtocolError`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable

from kingbus.protocol import wire
from kingbus.protocol.constants import CACHING_SHA2_PASSWORD, Capability, Charset, ServerStatus
from kingbus.protocol.errors import ER_HANDSHAKE_ERROR, ProtocolError

PROTOCOL_VERSION = 10
NONCE_LENGTH = 20
SSL_REQUEST_LENGTH = 32

# A replica refuses a source whose version string does not start with a number >= 5.
_VERSION_RE = re.compile(r"^(\d+)")


def make_nonce(random_bytes: Callable[[int], bytes] = os.urandom) -> bytes:
    """A 20-byte authentication nonce as mysqld makes them: 7-bit bytes with no NUL (the nonce
    is sent NUL-terminated) and no ``$`` (a separator in stored hashes)."""
    raw = random_bytes(NONCE_LENGTH)
    if len(raw) != NONCE_LENGTH:
        raise ValueError("random_bytes returned the wrong number of bytes")
    out = bytearray(byte & 0x7F for byte in raw)
    for index, byte in enumerate(out):
        if byte in (0, ord("$")):
            out[index] = byte + 1
    return bytes(out)


@dataclasses.dataclass(frozen=True, slots=True)
class Handshake:
    """Handshake v10, the server's greeting."""

    server_version: str
    connection_id: int
    nonce: bytes
    capabilities: Capability
    charset: int = Charset.UTF8MB4_0900_AI_CI
    status: ServerStatus = ServerStatus.AUTOCOMMIT
    auth_plugin: str = CACHING_SHA2_PASSWORD


def encode_handshake(handshake: Handshake) -> bytes:
    match = _VERSION_RE.match(handshake.server_version)
    if match is None or int(match.group(1)) < 5:
        raise ValueError(
            f"replicas refuse a server version not starting with a number >= 5: {handshake.server_version!r}"
        )
    nonce = handshake.nonce
    if len(nonce) != NONCE_LENGTH or b"\x00" in nonce:
        raise ValueError("the nonce must be 20 bytes without NUL")
    caps = int(handshake.capabilities)
    return b"".join(
        (
            wire.int1(PROTOCOL_VERSION),
            wire.nul_str(handshake.server_version),
            wire.int4(handshake.connection_id),
            nonce[:8],
            b"\x00",
            wire.int2(caps & 0xFFFF),
            wire.int1(handshake.charset & 0xFF),
            wire.int2(handshake.status),
            wire.int2(caps >> 16),
            wire.int1(NONCE_LENGTH + 1 if caps & Capability.PLUGIN_AUTH else 0),
            bytes(10),
            nonce[8:] + b"\x00",
            wire.nul_str(handshake.auth_plugin) if caps & Capability.PLUGIN_AUTH else b"",
        )
    )


def decode_handshake(payload: bytes) -> Handshake:
    """Decode Handshake v10 (used by tests and by anything acting as a client)."""
    reader = wire.Reader(payload, "Handshake v10")
    version = reader.int1("protocol version")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported handshake protocol version {version}")
    server_version = wire.text(reader.nul_bytes("server version"))
    connection_id = reader.int4("connection id")
    nonce = reader.fixed(8, "auth data part 1")
    reader.skip(1, "filler")
    caps = reader.int2("capabilities (low)")
    charset = reader.int1("charset")
    status = reader.int2("status")
    caps |= reader.int2("capabilities (high)") << 16
    auth_data_length = reader.int1("auth data length")
    reader.skip(10, "reserved")
    plugin = ""
    if caps & Capability.SECURE_CONNECTION:
        part2 = reader.fixed(max(13, auth_data_length - 8), "auth data part 2")
        nonce += part2[:-1] if part2.endswith(b"\x00") else part2
    if caps & Capability.PLUGIN_AUTH:
        # Some old servers omit the final NUL; the name then runs to the end of the packet.
        plugin = wire.text(reader.rest().split(b"\x00", 1)[0])
    return Handshake(
        server_version, connection_id, nonce, Capability(caps), charset, ServerStatus(status), plugin
    )


@dataclasses.dataclass(frozen=True, slots=True)
class SslRequest:
    """The client asks to switch to TLS before sending its HandshakeResponse41."""

    capabilities: Capability
    max_packet_size: int
    charset: int


@dataclasses.dataclass(frozen=True, slots=True)
class HandshakeResponse:
    """HandshakeResponse41. ``auth_plugin`` is ``None`` when the client did not send one
    (no CLIENT_PLUGIN_AUTH: it then speaks mysql_native_password)."""

    capabilities: Capability
    max_packet_size: int
    charset: int
    username: str
    auth_response: bytes = b""
    database: str | None = None
    auth_plugin: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    zstd_level: int | None = None

    def attribute(self, name: str) -> str | None:
        """A connection attribute by name (e.g. ``program_name``), or ``None``."""
        for key, value in self.attributes:
            if key == name:
                return value
        return None


def decode_handshake_response(payload: bytes) -> HandshakeResponse | SslRequest:
    """Decode the client's first packet: an SSLRequest or a HandshakeResponse41."""
    reader = wire.Reader(payload, "handshake response")
    caps = Capability(reader.int4("capabilities"))
    if not caps & Capability.PROTOCOL_41:
        raise ProtocolError(
            "Bad handshake: the client does not speak the 4.1 protocol",
            code=ER_HANDSHAKE_ERROR,
            sqlstate="08S01",
        )
    max_packet = reader.int4("max packet size")
    charset = reader.int1("charset")
    reader.skip(23, "filler")
    if reader.at_end():
        if not caps & Capability.SSL:
            raise ProtocolError(
                "Bad handshake: 32-byte response without CLIENT_SSL",
                code=ER_HANDSHAKE_ERROR,
                sqlstate="08S01",
            )
        return SslRequest(caps, max_packet, charset)
    username = wire.text(reader.nul_bytes("user name"))
    if caps & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
        auth_response = reader.lenenc_bytes("auth response")
    elif caps & Capability.SECURE_CONNECTION:
        auth_response = reader.fixed(reader.int1("auth response length"), "auth response")
    else:
        auth_response = reader.nul_bytes("auth response")
    database: str | None = None
    if caps & Capability.CONNECT_WITH_DB and not reader.at_end():
        database = wire.text(reader.nul_bytes("database"))
    plugin: str | None = None
    if caps & Capability.PLUGIN_AUTH and not reader.at_end():
        plugin = wire.text(reader.nul_bytes("auth plugin name"))
    attributes: list[tuple[str, str]] = []
    if caps & Capability.CONNECT_ATTRS and not reader.at_end():
        block = wire.Reader(reader.lenenc_bytes("connection attributes"), "connection attributes")
        while not block.at_end():
            key = wire.text(block.lenenc_bytes("attribute name"))
            attributes.append((key, wire.text(block.lenenc_bytes("attribute value"))))
    zstd_level: int | None = None
    if caps & Capability.ZSTD_COMPRESSION_ALGORITHM and not reader.at_end():
        zstd_level = reader.int1("zstd compression level")
    return HandshakeResponse(
        caps, max_packet, charset, username, auth_response, database, plugin, tuple(attributes), zstd_level
    )


def encode_ssl_request(request: SslRequest) -> bytes:
    return _fixed_prefix(request.capabilities | Capability.SSL, request.max_packet_size, request.charset)


def encode_handshake_response(response: HandshakeResponse) -> bytes:
    """The client side of :func:`decode_handshake_response` (tests, tools)."""
    caps = response.capabilities
    parts = [
        _fixed_prefix(caps, response.max_packet_size, response.charset),
        wire.nul_str(response.username),
    ]
    if caps & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
        parts.append(wire.lenenc_bytes(response.auth_response))
    elif caps & Capability.SECURE_CONNECTION:
        if len(response.auth_response) > 255:
            raise ValueError("auth response too long for SECURE_CONNECTION")
        parts.append(wire.int1(len(response.auth_response)) + response.auth_response)
    else:
        parts.append(wire.nul_bytes(response.auth_response))
    if caps & Capability.CONNECT_WITH_DB:
        parts.append(wire.nul_str(response.database or ""))
    if caps & Capability.PLUGIN_AUTH:
        parts.append(wire.nul_str(response.auth_plugin or ""))
    if caps & Capability.CONNECT_ATTRS:
        block = b"".join(wire.lenenc_str(key) + wire.lenenc_str(value) for key, value in response.attributes)
        parts.append(wire.lenenc_bytes(block))
    if caps & Capability.ZSTD_COMPRESSION_ALGORITHM:
        parts.append(wire.int1(3 if response.zstd_level is None else response.zstd_level))
    return b"".join(parts)


def _fixed_prefix(caps: Capability, max_packet: int, charset: int) -> bytes:
    return wire.int4(caps) + wire.int4(max_packet) + wire.int1(charset & 0xFF) + bytes(23)


def negotiate(server: Capability, client: Capability) -> Capability:
    """Capabilities in effect for the session: those both sides announced."""
    return server & client
