"""OK / ERR / EOF packets and the one error hierarchy."""

from __future__ import annotations

import pymysql.err
import pymysql.protocol
import pytest

from kingbus.protocol import errors, responses
from kingbus.protocol.constants import Capability, ServerStatus
from kingbus.protocol.errors import MySQLError, ProtocolError

P41 = Capability.PROTOCOL_41
P41_EOF = Capability.PROTOCOL_41 | Capability.DEPRECATE_EOF


def test_ok_packet_bytes() -> None:
    ok = responses.Ok(affected_rows=3, last_insert_id=300, status=ServerStatus.AUTOCOMMIT, warnings=1)
    assert responses.encode_ok(ok, P41) == b"\x00\x03\xfc\x2c\x01\x02\x00\x01\x00"
    assert responses.encode_ok(ok, P41_EOF, as_eof=True) == b"\xfe\x03\xfc\x2c\x01\x02\x00\x01\x00"


def test_ok_packet_against_pymysql() -> None:
    ok = responses.Ok(
        affected_rows=70000, last_insert_id=5, status=ServerStatus.IN_TRANS, warnings=2, info="hi"
    )
    packet = pymysql.protocol.OKPacketWrapper(
        pymysql.protocol.MysqlPacket(responses.encode_ok(ok, P41), "utf8")
    )
    assert (packet.affected_rows, packet.insert_id, packet.server_status, packet.warning_count) == (
        70000,
        5,
        1,
        2,
    )
    assert packet.message == b"hi"


@pytest.mark.parametrize("as_eof", [False, True])
@pytest.mark.parametrize(
    "caps",
    [P41, P41_EOF, P41 | Capability.SESSION_TRACK, Capability.TRANSACTIONS, Capability(0)],
)
def test_ok_roundtrip(caps: Capability, as_eof: bool) -> None:
    status = ServerStatus.AUTOCOMMIT
    if caps & Capability.SESSION_TRACK:
        status |= ServerStatus.SESSION_STATE_CHANGED
    ok = responses.Ok(1, 2, status, 3, "info", b"\x00\x01x" if caps & Capability.SESSION_TRACK else b"")
    decoded = responses.decode_ok(responses.encode_ok(ok, caps, as_eof=as_eof), caps)
    if caps & P41:
        assert decoded == ok
    elif caps & Capability.TRANSACTIONS:
        assert decoded == responses.Ok(1, 2, status, 0, "info")
    else:
        assert decoded == responses.Ok(1, 2, ServerStatus(0), 0, "info")


def test_eof_packet() -> None:
    eof = responses.Eof(warnings=4, status=ServerStatus.AUTOCOMMIT | ServerStatus.MORE_RESULTS_EXISTS)
    payload = responses.encode_eof(eof, P41)
    assert payload == b"\xfe\x04\x00\x0a\x00"
    assert responses.is_eof(payload)
    assert responses.decode_eof(payload, P41) == eof
    wrapped = pymysql.protocol.EOFPacketWrapper(pymysql.protocol.MysqlPacket(payload, "utf8"))
    assert (wrapped.warning_count, wrapped.server_status) == (4, 10)


def test_end_of_rows_detection() -> None:
    ok_as_eof = responses.encode_ok(responses.Ok(info="x" * 20), P41_EOF, as_eof=True)
    assert len(ok_as_eof) >= 9
    assert responses.is_end_of_rows(ok_as_eof, P41_EOF)
    assert not responses.is_end_of_rows(ok_as_eof, P41)  # too long to be a classic EOF
    # A row whose first cell starts with the 8-byte lenenc prefix 0xFE is not an end marker.
    assert not responses.is_end_of_rows(b"\xfe" + bytes(8), P41)
    assert not responses.is_end_of_rows(b"", P41)
    assert not responses.is_end_of_rows(b"\x00", P41_EOF)


def test_err_packet_encoding_matches_mysqld_layout() -> None:
    error = MySQLError(1193, "HY000", "Unknown system variable 'x'")
    assert error.encode() == b"\xff\xa9\x04#HY000Unknown system variable 'x'"
    assert error.encode(Capability(0)) == b"\xff\xa9\x04Unknown system variable 'x'"
    assert responses.decode_err(error.encode()) == error
    with pytest.raises(pymysql.err.OperationalError) as caught:
        pymysql.err.raise_mysql_exception(error.encode())
    assert caught.value.args == (1193, "Unknown system variable 'x'")


def test_err_packet_without_sqlstate_marker() -> None:
    assert responses.decode_err(b"\xff\x10\x04Too many connections") == MySQLError(
        1040, "HY000", "Too many connections"
    )


def test_decoders_refuse_wrong_packet_types() -> None:
    with pytest.raises(ProtocolError):
        responses.decode_err(b"\x00")
    with pytest.raises(ProtocolError):
        responses.decode_ok(b"\xff\x00\x00", P41)
    with pytest.raises(ProtocolError):
        responses.decode_eof(b"\x00", P41)
    with pytest.raises(ProtocolError):
        responses.decode_err(b"\xff\x01\x00#HY")
    with pytest.raises(ProtocolError):
        responses.decode_ok(b"\x00\x01", P41)


def test_mysql_error_is_an_exception_and_a_value() -> None:
    error = errors.access_denied("repl", "10.0.0.7", using_password=True)
    assert isinstance(error, Exception)
    assert error == MySQLError(
        1045, "28000", "Access denied for user 'repl'@'10.0.0.7' (using password: YES)"
    )
    assert str(error) == "(1045, 28000) Access denied for user 'repl'@'10.0.0.7' (using password: YES)"
    assert "using password: NO" in errors.access_denied("u", "h", using_password=False).message
    assert errors.unknown_command() == MySQLError(1047, "08S01", "Unknown command")
    assert errors.unknown_system_variable("gtid_mode").code == 1193
    with pytest.raises(MySQLError):
        raise error
    assert len({error, errors.access_denied("repl", "10.0.0.7", using_password=True)}) == 1


def test_protocol_error_is_a_mysql_error_with_malformed_packet_code() -> None:
    error = ProtocolError("bad")
    assert isinstance(error, MySQLError)
    assert (error.code, error.sqlstate, error.message) == (1835, "HY000", "bad")
    assert responses.decode_err(error.encode()) == MySQLError(1835, "HY000", "bad")


@pytest.mark.parametrize(("code", "state"), [(-1, "HY000"), (70000, "HY000"), (1, "HY00"), (1, "HY0000")])
def test_mysql_error_validates_its_fields(code: int, state: str) -> None:
    with pytest.raises(ValueError):
        MySQLError(code, state, "x")
