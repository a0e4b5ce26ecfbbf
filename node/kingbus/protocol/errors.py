"""One error hierarchy for the MySQL wire protocol.

Every error this package raises or returns is a :class:`MySQLError`: an exception that also
*is* an ERR packet. A session handler can ``raise`` it, ``return`` it as a command result, or
hand it to :meth:`MySQLError.encode` to put it on the wire -- there is no second error style to
translate from.

:class:`ProtocolError` is the subclass for bytes from the peer that break the protocol
(truncated or malformed packets, oversized payloads, out-of-order sequence ids). Its default
code is ``ER_MALFORMED_PACKET``; specialised subclasses carry the code MySQL itself uses. A
session that catches one sends it as an ERR packet and closes the connection, because the
stream can no longer be trusted.

Programming mistakes on *our* side (encoding a negative length, a version string a replica
would refuse) raise the ordinary ``ValueError``: they are bugs to fix, not peers to answer.
"""

from __future__ import annotations

import struct
from typing import Final

from kingbus.protocol import constants

# Error codes and SQLSTATEs used by this server, named as in MySQL's mysqld_error.h.
ER_CON_COUNT_ERROR: Final = 1040  # 08004 "Too many connections"
ER_HANDSHAKE_ERROR: Final = 1043  # 08S01 "Bad handshake"
ER_ACCESS_DENIED_ERROR: Final = 1045  # 28000
ER_UNKNOWN_COM_ERROR: Final = 1047  # 08S01 "Unknown command"
ER_PARSE_ERROR: Final = 1064  # 42000
ER_NO_SUCH_THREAD: Final = 1094  # HY000
ER_UNKNOWN_ERROR: Final = 1105  # HY000
ER_NET_PACKET_TOO_LARGE: Final = 1153  # 08S01
ER_NET_PACKETS_OUT_OF_ORDER: Final = 1156  # 08S01
ER_UNKNOWN_SYSTEM_VARIABLE: Final = 1193  # HY000
ER_SPECIFIC_ACCESS_DENIED_ERROR: Final = 1227  # 42000
ER_NOT_SUPPORTED_YET: Final = 1235  # 42000
ER_SOURCE_FATAL_ERROR_READING_BINLOG: Final = 1236  # HY000
ER_NOT_SUPPORTED_AUTH_MODE: Final = 1251  # 08004
ER_MALFORMED_PACKET: Final = 1835  # HY000


class MySQLError(Exception):
    """An error with a MySQL error code, a 5-character SQLSTATE and a message.

    Equality compares the three fields, so tests can assert on whole errors.
    """

    code: int
    sqlstate: str
    message: str

    def __init__(self, code: int, sqlstate: str, message: str) -> None:
        if not 0 <= code <= 0xFFFF:
            raise ValueError(f"error code {code} does not fit in 16 bits")
        if len(sqlstate) != 5 or not sqlstate.isascii():
            raise ValueError(f"SQLSTATE must be 5 ASCII characters, got {sqlstate!r}")
        super().__init__(code, sqlstate, message)
        self.code = code
        self.sqlstate = sqlstate
        self.message = message

    def __str__(self) -> str:
        return f"({self.code}, {self.sqlstate}) {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.sqlstate!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MySQLError):
            return NotImplemented
        return (self.code, self.sqlstate, self.message) == (other.code, other.sqlstate, other.message)

    def __hash__(self) -> int:
        return hash((self.code, self.sqlstate, self.message))

    def encode(self, capabilities: constants.Capability = constants.Capability.PROTOCOL_41) -> bytes:
        """The ERR packet payload: ``0xFF``, u16 code, ``#`` + SQLSTATE (4.1 protocol), message."""
        marker = (
            b"#" + self.sqlstate.encode("ascii") if capabilities & constants.Capability.PROTOCOL_41 else b""
        )
        return b"\xff" + struct.pack("<H", self.code) + marker + self.message.encode("utf-8")


class ProtocolError(MySQLError):
    """The peer's bytes break the protocol; answer with this ERR, then close the connection."""

    def __init__(self, message: str, *, code: int = ER_MALFORMED_PACKET, sqlstate: str = "HY000") -> None:
        super().__init__(code, sqlstate, message)


class PacketTooLarge(ProtocolError):
    """A payload exceeds the configured maximum (MySQL's ``max_allowed_packet``)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"Got a packet bigger than 'max_allowed_packet' bytes ({size} > {limit})",
            code=ER_NET_PACKET_TOO_LARGE,
            sqlstate="08S01",
        )
        self.size = size
        self.limit = limit


class PacketsOutOfOrder(ProtocolError):
    """A continuation packet or reply arrived with an unexpected sequence id."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(
            f"Got packets out of order (expected sequence id {expected}, got {got})",
            code=ER_NET_PACKETS_OUT_OF_ORDER,
            sqlstate="08S01",
        )
        self.expected = expected
        self.got = got


def access_denied(user: str, host: str, *, using_password: bool) -> MySQLError:
    """ER_ACCESS_DENIED_ERROR exactly as mysqld words it."""
    yes_no = "YES" if using_password else "NO"
    return MySQLError(
        ER_ACCESS_DENIED_ERROR,
        "28000",
        f"Access denied for user '{user}'@'{host}' (using password: {yes_no})",
    )


def unknown_command() -> MySQLError:
    """ER_UNKNOWN_COM_ERROR: the answer to a command byte this server does not implement."""
    return MySQLError(ER_UNKNOWN_COM_ERROR, "08S01", "Unknown command")


def unknown_system_variable(name: str) -> MySQLError:
    """ER_UNKNOWN_SYSTEM_VARIABLE: replicas tolerate this one for optional probes."""
    return MySQLError(ER_UNKNOWN_SYSTEM_VARIABLE, "HY000", f"Unknown system variable '{name}'")


def too_many_connections() -> MySQLError:
    """ER_CON_COUNT_ERROR, which mysqld sends instead of its greeting when max_connections is
    reached.  Sent before any capabilities are negotiated, so without the SQLSTATE marker
    (``encode(Capability(0))``): MySQL 9.7 sends exactly ``ff 10 04`` + the message, with
    sequence id 0, and clients then report it as ``ERROR 1040 (HY000)``."""
    return MySQLError(ER_CON_COUNT_ERROR, "08004", "Too many connections")
