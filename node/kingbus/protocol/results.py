"""Text-protocol result sets, the answer to a COM_QUERY that returns rows.

Wire layout (each item one payload; the adapter frames them with consecutive sequence ids)::

    column count            lenenc int
    column definition  x N  ColumnDefinition41
    EOF                     only without CLIENT_DEPRECATE_EOF
    row                x M  one lenenc string per column, 0xFB for NULL
    end                     EOF, or OK with header 0xFE under CLIENT_DEPRECATE_EOF

A ColumnDefinition41 is six lenenc strings (catalog -- always ``def`` --, schema, table,
org_table, name, org_name), lenenc 0x0C (the length of the fixed part), u16 charset,
u32 column length, u8 type, u16 flags, u8 decimals and two zero bytes.

The server answers only small, computed result sets (SHOW VARIABLES, SHOW BINARY LOGS,
SELECT @@x), so columns are either text (VAR_STRING, utf8mb4) or integers (LONGLONG, binary
charset); :meth:`Column.text` and :meth:`Column.integer` build them the way mysqld does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from kingbus.protocol import responses, wire
from kingbus.protocol.constants import Capability, Charset, ColumnFlag, ColumnType, ServerStatus
from kingbus.protocol.errors import ProtocolError

_NO_FLAGS = ColumnFlag(0)

Value = str | bytes | int | float | None


@dataclasses.dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType = ColumnType.VAR_STRING
    charset: int = Charset.UTF8MB4_0900_AI_CI
    length: int = 1024
    flags: ColumnFlag = _NO_FLAGS
    decimals: int = 0
    schema: str = ""
    table: str = ""
    org_table: str = ""
    org_name: str = ""
    catalog: str = "def"

    @classmethod
    def text(cls, name: str, *, length: int = 1024, not_null: bool = False) -> Column:
        """A utf8mb4 string column (``length`` is in bytes, as mysqld reports it)."""
        flags = ColumnFlag.NOT_NULL if not_null else ColumnFlag(0)
        return cls(name, ColumnType.VAR_STRING, Charset.UTF8MB4_0900_AI_CI, length, flags, decimals=31)

    @classmethod
    def integer(cls, name: str, *, unsigned: bool = False, not_null: bool = False) -> Column:
        """A BIGINT column; numbers use the binary charset and carry the NUM flag."""
        flags = ColumnFlag.BINARY | ColumnFlag.NUM
        if unsigned:
            flags |= ColumnFlag.UNSIGNED
        if not_null:
            flags |= ColumnFlag.NOT_NULL
        return cls(name, ColumnType.LONGLONG, Charset.BINARY, 20 if unsigned else 21, flags)


@dataclasses.dataclass(frozen=True, slots=True)
class ResultSet:
    """A decoded text result set: column definitions and rows of raw values (``None`` = NULL)."""

    columns: tuple[Column, ...]
    rows: tuple[tuple[bytes | None, ...], ...]
    end_status: ServerStatus = ServerStatus.AUTOCOMMIT
    warnings: int = 0


def encode_column(column: Column) -> bytes:
    return b"".join(
        (
            wire.lenenc_str(column.catalog),
            wire.lenenc_str(column.schema),
            wire.lenenc_str(column.table),
            wire.lenenc_str(column.org_table),
            wire.lenenc_str(column.name),
            wire.lenenc_str(column.org_name),
            wire.lenenc_int(0x0C),
            wire.int2(column.charset),
            wire.int4(column.length),
            wire.int1(column.type),
            wire.int2(column.flags),
            wire.int1(column.decimals),
            b"\x00\x00",
        )
    )


def decode_column(payload: bytes) -> Column:
    reader = wire.Reader(payload, "column definition")
    catalog, schema, table, org_table, name, org_name = (
        wire.text(reader.lenenc_bytes(field))
        for field in ("catalog", "schema", "table", "org_table", "name", "org_name")
    )
    if reader.lenenc_int("fixed-fields length") < 0x0A:
        raise ProtocolError("malformed column definition: fixed part shorter than 10 bytes")
    charset = reader.int2("charset")
    length = reader.int4("column length")
    type_byte = reader.int1("type")
    flags = reader.int2("flags")
    decimals = reader.int1("decimals")
    try:
        column_type = ColumnType(type_byte)
    except ValueError:
        raise ProtocolError(f"malformed column definition: unknown type {type_byte}") from None
    return Column(
        name,
        column_type,
        charset,
        length,
        ColumnFlag(flags),
        decimals,
        schema,
        table,
        org_table,
        org_name,
        catalog,
    )


def encode_value(value: Value) -> bytes:
    """One text-protocol cell: a lenenc string, or ``0xFB`` for NULL."""
    if value is None:
        return bytes((wire.NULL_MARKER,))
    if isinstance(value, bytes):
        return wire.lenenc_bytes(value)
    if isinstance(value, bool):
        # bool is an int; MySQL has no boolean type and shows 1/0.
        return wire.lenenc_bytes(b"1" if value else b"0")
    if isinstance(value, int | float):
        return wire.lenenc_bytes(repr(value).encode("ascii"))
    return wire.lenenc_str(value)


def encode_row(values: Sequence[Value]) -> bytes:
    return b"".join(encode_value(value) for value in values)


def encode_resultset(
    columns: Sequence[Column],
    rows: Iterable[Sequence[Value]],
    capabilities: Capability,
    *,
    status: ServerStatus = ServerStatus.AUTOCOMMIT,
    warnings: int = 0,
) -> list[bytes]:
    """Payloads of a complete text result set, ready for :func:`~kingbus.protocol.framing.frame_all`."""
    if not columns:
        raise ValueError("a result set needs at least one column")
    deprecate_eof = bool(capabilities & Capability.DEPRECATE_EOF)
    payloads = [wire.lenenc_int(len(columns))]
    payloads += [encode_column(column) for column in columns]
    if not deprecate_eof:
        payloads.append(responses.encode_eof(responses.Eof(warnings, status), capabilities))
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"row has {len(row)} values for {len(columns)} columns")
        payloads.append(encode_row(row))
    if deprecate_eof:
        end = responses.Ok(status=status, warnings=warnings)
        payloads.append(responses.encode_ok(end, capabilities, as_eof=True))
    else:
        payloads.append(responses.encode_eof(responses.Eof(warnings, status), capabilities))
    return payloads


def decode_row(payload: bytes, column_count: int) -> tuple[bytes | None, ...]:
    reader = wire.Reader(payload, "row")
    values = tuple(reader.lenenc_bytes_or_null(f"column {index}") for index in range(column_count))
    if not reader.at_end():
        raise ProtocolError(f"malformed row: {reader.remaining} bytes after {column_count} columns")
    return values


def decode_resultset(payloads: Sequence[bytes], capabilities: Capability) -> ResultSet:
    """Decode the payloads of one text result set (the inverse of :func:`encode_resultset`)."""
    if not payloads:
        raise ProtocolError("empty result set")
    count_reader = wire.Reader(payloads[0], "column count")
    count = count_reader.lenenc_int("column count")
    if count == 0 or not count_reader.at_end():
        raise ProtocolError("malformed column count packet")
    if len(payloads) < 1 + count + 1:
        raise ProtocolError(f"truncated result set: {len(payloads)} payloads for {count} columns")
    columns = tuple(decode_column(payload) for payload in payloads[1 : 1 + count])
    index = 1 + count
    if not capabilities & Capability.DEPRECATE_EOF:
        if not responses.is_eof(payloads[index]):
            raise ProtocolError("result set: missing EOF after column definitions")
        index += 1
    rows: list[tuple[bytes | None, ...]] = []
    for position in range(index, len(payloads)):
        payload = payloads[position]
        if responses.is_end_of_rows(payload, capabilities):
            if position != len(payloads) - 1:
                raise ProtocolError("result set: payloads after the end marker")
            if capabilities & Capability.DEPRECATE_EOF:
                ok = responses.decode_ok(payload, capabilities)
                return ResultSet(columns, tuple(rows), ok.status, ok.warnings)
            eof = responses.decode_eof(payload, capabilities)
            return ResultSet(columns, tuple(rows), eof.status, eof.warnings)
        if responses.is_err(payload):
            raise responses.decode_err(payload, capabilities)
        rows.append(decode_row(payload, count))
    raise ProtocolError("truncated result set: no end marker")
