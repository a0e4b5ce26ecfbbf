"""Generic response packets: OK, ERR and EOF.

* OK: ``0x00``, lenenc affected rows, lenenc last insert id, u16 status, u16 warnings, then the
  info string -- length-encoded (followed by session-state changes) under SESSION_TRACK, the
  rest of the packet otherwise.
* With CLIENT_DEPRECATE_EOF the end of a result set is an OK packet whose header byte is
  ``0xFE`` instead of ``0x00`` ("OK-as-EOF"); without it, it is a classic EOF packet.
* EOF: ``0xFE``, u16 warnings, u16 status (4.1 protocol); always shorter than 9 bytes, which
  is how a reader tells it from a row starting with an 8-byte length-encoded integer.
* ERR: see :class:`kingbus.protocol.errors.MySQLError`, which encodes itself; this module
  decodes it.
"""

from __future__ import annotations

import dataclasses

from kingbus.protocol import wire
from kingbus.protocol.constants import Capability, ServerStatus
from kingbus.protocol.errors import MySQLError, ProtocolError

OK_HEADER = 0x00
EOF_HEADER = 0xFE
ERR_HEADER = 0xFF


@dataclasses.dataclass(frozen=True, slots=True)
class Ok:
    affected_rows: int = 0
    last_insert_id: int = 0
    status: ServerStatus = ServerStatus.AUTOCOMMIT
    warnings: int = 0
    info: str = ""
    session_state: bytes = b""


@dataclasses.dataclass(frozen=True, slots=True)
class Eof:
    warnings: int = 0
    status: ServerStatus = ServerStatus.AUTOCOMMIT


def encode_ok(ok: Ok, capabilities: Capability, *, as_eof: bool = False) -> bytes:
    """An OK packet; ``as_eof`` gives the ``0xFE`` header that ends a result set under
    CLIENT_DEPRECATE_EOF."""
    parts = [
        bytes((EOF_HEADER if as_eof else OK_HEADER,)),
        wire.lenenc_int(ok.affected_rows),
        wire.lenenc_int(ok.last_insert_id),
    ]
    if capabilities & Capability.PROTOCOL_41:
        parts += [wire.int2(ok.status), wire.int2(ok.warnings)]
    elif capabilities & Capability.TRANSACTIONS:
        parts.append(wire.int2(ok.status))
    info = ok.info.encode("utf-8")
    if capabilities & Capability.SESSION_TRACK:
        parts.append(wire.lenenc_bytes(info))
        if ok.status & ServerStatus.SESSION_STATE_CHANGED:
            parts.append(wire.lenenc_bytes(ok.session_state))
    else:
        parts.append(info)
    return b"".join(parts)


def decode_ok(payload: bytes, capabilities: Capability) -> Ok:
    """Decode an OK packet (header ``0x00``, or ``0xFE`` for OK-as-EOF)."""
    reader = wire.Reader(payload, "OK packet")
    header = reader.int1("header")
    if header not in (OK_HEADER, EOF_HEADER):
        raise ProtocolError(f"not an OK packet: header 0x{header:02x}")
    affected = reader.lenenc_int("affected rows")
    insert_id = reader.lenenc_int("last insert id")
    status = 0
    warnings = 0
    if capabilities & Capability.PROTOCOL_41:
        status = reader.int2("status")
        warnings = reader.int2("warnings")
    elif capabilities & Capability.TRANSACTIONS:
        status = reader.int2("status")
    session_state = b""
    if capabilities & Capability.SESSION_TRACK:
        info = reader.lenenc_bytes("info") if not reader.at_end() else b""
        if status & ServerStatus.SESSION_STATE_CHANGED:
            session_state = reader.lenenc_bytes("session state")
    else:
        info = reader.rest()
    return Ok(affected, insert_id, ServerStatus(status), warnings, wire.text(info), session_state)


def encode_eof(eof: Eof, capabilities: Capability) -> bytes:
    if capabilities & Capability.PROTOCOL_41:
        return bytes((EOF_HEADER,)) + wire.int2(eof.warnings) + wire.int2(eof.status)
    return bytes((EOF_HEADER,))


def decode_eof(payload: bytes, capabilities: Capability) -> Eof:
    if not is_eof(payload):
        raise ProtocolError("not an EOF packet")
    if not capabilities & Capability.PROTOCOL_41:
        return Eof(0, ServerStatus(0))
    reader = wire.Reader(payload, "EOF packet")
    reader.skip(1, "header")
    return Eof(reader.int2("warnings"), ServerStatus(reader.int2("status")))


def decode_err(payload: bytes, capabilities: Capability = Capability.PROTOCOL_41) -> MySQLError:
    """Decode an ERR packet into the error it carries."""
    reader = wire.Reader(payload, "ERR packet")
    if reader.int1("header") != ERR_HEADER:
        raise ProtocolError("not an ERR packet")
    code = reader.int2("error code")
    sqlstate = "HY000"
    if capabilities & Capability.PROTOCOL_41 and not reader.at_end() and reader.peek() == ord("#"):
        reader.skip(1, "SQLSTATE marker")
        raw_state = reader.fixed(5, "SQLSTATE")
        if not raw_state.isascii():
            raise ProtocolError("malformed ERR packet: SQLSTATE is not ASCII")
        sqlstate = raw_state.decode("ascii")
    return MySQLError(code, sqlstate, wire.text(reader.rest()))


def is_ok(payload: bytes) -> bool:
    return bool(payload) and payload[0] == OK_HEADER


def is_err(payload: bytes) -> bool:
    return bool(payload) and payload[0] == ERR_HEADER


def is_eof(payload: bytes) -> bool:
    """A classic EOF packet (also matches OK-as-EOF packets shorter than 9 bytes)."""
    return bool(payload) and payload[0] == EOF_HEADER and len(payload) < 9


def is_end_of_rows(payload: bytes, capabilities: Capability) -> bool:
    """Does this payload end a result set's rows? Under DEPRECATE_EOF, an OK-as-EOF packet
    (``0xFE``, shorter than a maximal packet) ends it; otherwise a classic EOF does."""
    if not payload or payload[0] != EOF_HEADER:
        return False
    if capabilities & Capability.DEPRECATE_EOF:
        return len(payload) < 0xFFFFFF
    return len(payload) < 9
