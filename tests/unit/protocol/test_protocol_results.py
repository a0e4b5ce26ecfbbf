"""Text result sets: column definitions, rows, EOF vs OK-as-EOF."""

from __future__ import annotations

import pymysql.protocol
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kingbus.protocol import responses, results
from kingbus.protocol.constants import Capability, Charset, ColumnFlag, ColumnType, ServerStatus
from kingbus.protocol.errors import MySQLError, ProtocolError
from kingbus.protocol.results import Column

P41 = Capability.PROTOCOL_41
P41_EOF = Capability.PROTOCOL_41 | Capability.DEPRECATE_EOF


def test_column_definition_bytes() -> None:
    payload = results.encode_column(Column.integer("UNIX_TIMESTAMP()", not_null=True))
    expected = (
        b"\x03def"  # catalog
        b"\x00\x00\x00"  # schema, table, org_table
        b"\x10UNIX_TIMESTAMP()"
        b"\x00"  # org_name
        b"\x0c"  # length of the fixed part
        b"\x3f\x00"  # charset 63 (binary)
        b"\x15\x00\x00\x00"  # length 21
        b"\x08"  # LONGLONG
        b"\x81\x80"  # NOT_NULL | BINARY | NUM
        b"\x00"  # decimals
        b"\x00\x00"
    )
    assert payload == expected


@pytest.mark.parametrize(
    "column",
    [
        Column.text("Variable_name"),
        Column.integer("File_size", unsigned=True),
        Column("x", ColumnType.BLOB, Charset.BINARY, 65535, ColumnFlag.BLOB, 0, "s", "t", "ot", "on"),
    ],
)
def test_column_definition_against_pymysql(column: Column) -> None:
    parsed = pymysql.protocol.FieldDescriptorPacket(results.encode_column(column), "utf8")
    assert parsed.catalog == b"def"
    assert parsed.db == column.schema.encode()
    assert (parsed.table_name, parsed.org_table, parsed.name, parsed.org_name) == (
        column.table,
        column.org_table,
        column.name,
        column.org_name,
    )
    assert (parsed.charsetnr, parsed.length, parsed.type_code, parsed.flags, parsed.scale) == (
        column.charset,
        column.length,
        column.type,
        column.flags,
        column.decimals,
    )
    assert results.decode_column(results.encode_column(column)) == column


def test_values_in_text_rows() -> None:
    assert results.encode_row(["ab", b"\x00\xff", 42, -1, None, True, 1.5, ""]) == (
        b"\x02ab\x02\x00\xff\x0242\x02-1\xfb\x011\x031.5\x00"
    )
    assert results.decode_row(b"\x02ab\xfb\x00", 3) == (b"ab", None, b"")
    with pytest.raises(ProtocolError, match="bytes after"):
        results.decode_row(b"\x01a\x01b", 1)
    with pytest.raises(ProtocolError):
        results.decode_row(b"\x05a", 1)


def show_binary_logs() -> tuple[list[Column], list[list[results.Value]]]:
    columns = [Column.text("Log_name"), Column.integer("File_size", unsigned=True), Column.text("Encrypted")]
    rows: list[list[results.Value]] = [["kingbus-bin.000001", 1234, "No"], ["kingbus-bin.000002", 4, "No"]]
    return columns, rows


def test_resultset_with_classic_eof() -> None:
    columns, rows = show_binary_logs()
    payloads = results.encode_resultset(columns, rows, P41)
    assert payloads[0] == b"\x03"
    assert payloads[4] == b"\xfe\x00\x00\x02\x00"  # EOF after the column definitions
    assert payloads[5] == b"\x12kingbus-bin.000001\x041234\x02No"
    assert payloads[-1] == b"\xfe\x00\x00\x02\x00"
    assert len(payloads) == 1 + 3 + 1 + 2 + 1
    decoded = results.decode_resultset(payloads, P41)
    assert decoded.columns == tuple(columns)
    assert decoded.rows == ((b"kingbus-bin.000001", b"1234", b"No"), (b"kingbus-bin.000002", b"4", b"No"))


def test_resultset_with_deprecate_eof() -> None:
    columns, rows = show_binary_logs()
    payloads = results.encode_resultset(columns, rows, P41_EOF, status=ServerStatus.AUTOCOMMIT, warnings=1)
    # No EOF after the column definitions; the rows end with an OK packet whose header is 0xFE.
    assert len(payloads) == 1 + 3 + 2 + 1
    assert payloads[4].startswith(b"\x12kingbus-bin.000001")
    assert payloads[-1] == b"\xfe\x00\x00\x02\x00\x01\x00"
    decoded = results.decode_resultset(payloads, P41_EOF)
    assert decoded.rows[1] == (b"kingbus-bin.000002", b"4", b"No")
    assert decoded.warnings == 1


def test_empty_resultset() -> None:
    payloads = results.encode_resultset([Column.text("Value")], [], P41_EOF)
    assert results.decode_resultset(payloads, P41_EOF).rows == ()


def test_encode_resultset_checks_its_arguments() -> None:
    with pytest.raises(ValueError):
        results.encode_resultset([], [], P41)
    with pytest.raises(ValueError):
        results.encode_resultset([Column.text("a")], [["x", "y"]], P41)


def test_decode_resultset_errors() -> None:
    columns, rows = show_binary_logs()
    payloads = results.encode_resultset(columns, rows, P41)
    with pytest.raises(ProtocolError, match="no end marker"):
        results.decode_resultset(payloads[:-1], P41)
    with pytest.raises(ProtocolError, match="missing EOF"):
        results.decode_resultset(payloads[:4] + payloads[5:], P41)
    with pytest.raises(ProtocolError):
        results.decode_resultset([], P41)
    with pytest.raises(ProtocolError):
        results.decode_resultset([b"\x00"], P41)
    with pytest.raises(ProtocolError, match="after the end marker"):
        results.decode_resultset([*payloads, payloads[-1]], P41)
    error = MySQLError(1317, "70100", "Query execution was interrupted")
    with pytest.raises(MySQLError) as caught:
        results.decode_resultset([*payloads[:5], error.encode()], P41)
    assert caught.value == error


def test_unknown_column_type_is_malformed() -> None:
    payload = bytearray(results.encode_column(Column.text("a")))
    payload[-6] = 100  # the type byte
    with pytest.raises(ProtocolError, match="unknown type"):
        results.decode_column(bytes(payload))


cell = st.one_of(st.none(), st.text(max_size=20), st.binary(max_size=300), st.integers())


@given(
    rows=st.lists(st.lists(cell, min_size=2, max_size=2), max_size=5),
    deprecate_eof=st.booleans(),
)
def test_resultset_roundtrip(rows: list[list[results.Value]], deprecate_eof: bool) -> None:
    caps = P41_EOF if deprecate_eof else P41
    columns = [Column.text("a"), Column.text("b")]
    decoded = results.decode_resultset(results.encode_resultset(columns, rows, caps), caps)

    def raw(value: results.Value) -> bytes | None:
        if value is None or isinstance(value, bytes):
            return value
        return str(value).encode()

    assert decoded.rows == tuple(tuple(raw(value) for value in row) for row in rows)
    assert responses.is_end_of_rows(results.encode_resultset(columns, rows, caps)[-1], caps)
