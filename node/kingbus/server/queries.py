"""Answers to the SQL statements replicas and CDC tools send (pure: facts in, payloads out).

The session adapter classifies each COM_QUERY with ``kingbus.protocol.sql.classify`` and
calls :func:`answer` with a :class:`QueryContext` snapshot.  Every refusal is a
:class:`MySQLError` the adapter turns into an ERR packet; the session always goes on.

``SHOW BINLOG EVENTS`` needs segment bytes, so the adapter reads them and calls
:func:`binlog_events_result` with the decoded events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, MutableMapping, Sequence

from kingbus.binlog import events
from kingbus.protocol import errors, like, responses, results, sql
from kingbus.protocol.constants import Capability
from kingbus.protocol.errors import MySQLError
from kingbus.server.variables import ServerFacts, Value, evaluate, system_variables


@dataclasses.dataclass(frozen=True, slots=True)
class LogFile:
    """One segment as SHOW BINARY LOGS / SHOW BINARY LOG STATUS report it."""

    name: str
    size: int


@dataclasses.dataclass(frozen=True, slots=True)
class ReplicaRow:
    server_id: int
    host: str
    port: int
    uuid: str


@dataclasses.dataclass(slots=True)
class QueryContext:
    facts: ServerFacts
    user_vars: MutableMapping[str, object]
    capabilities: Capability
    logs: Sequence[LogFile] = ()
    replicas: Sequence[ReplicaRow] = ()


def _ok(ctx: QueryContext) -> list[bytes]:
    return [responses.encode_ok(responses.Ok(), ctx.capabilities)]


def _column(name: str, value: Value) -> results.Column:
    return results.Column.integer(name) if isinstance(value, int) else results.Column.text(name)


def _text_table(ctx: QueryContext, names: Sequence[str], rows: Iterable[Sequence[Value]]) -> list[bytes]:
    return results.encode_resultset([results.Column.text(n) for n in names], list(rows), ctx.capabilities)


def _select(statement: sql.Select, ctx: QueryContext) -> list[bytes]:
    values = [evaluate(item.expression, ctx.facts, ctx.user_vars) for item in statement.items]
    columns = [_column(item.column_name, value) for item, value in zip(statement.items, values, strict=True)]
    rows: list[list[Value]] = [values]
    if statement.limit == 0:
        rows = []
    return results.encode_resultset(columns, rows, ctx.capabilities)


def _set(statement: sql.Set, ctx: QueryContext) -> list[bytes]:
    # Evaluate everything first: a failing SET changes nothing, like MySQL.
    pending: list[tuple[str, Value]] = []
    for assignment in statement.assignments:
        if isinstance(assignment.target, sql.UserVariable):
            pending.append((assignment.target.name, evaluate(assignment.value, ctx.facts, ctx.user_vars)))
        # Session system variables (SET NAMES-like tweaks from connectors, sql_mode...) are
        # accepted and ignored: nothing this server does depends on them.
    for name, value in pending:
        ctx.user_vars[name] = value
    return _ok(ctx)


def _show_variables(statement: sql.ShowVariables, ctx: QueryContext) -> list[bytes]:
    table = system_variables(ctx.facts)
    rows = [[name, "" if value is None else str(value)] for name, value in sorted(table.items())]
    if statement.like is not None:
        rows = [row for row in rows if like.like(row[0], statement.like)]
    elif statement.where_names is not None:
        wanted = {n.lower() for n in statement.where_names}
        rows = [row for row in rows if row[0] in wanted]
    elif statement.where is not None:
        raise MySQLError(
            errors.ER_NOT_SUPPORTED_YET, "42000", "SHOW VARIABLES WHERE supports only name tests"
        )
    return _text_table(ctx, ("Variable_name", "Value"), rows)


def _show_binary_logs(ctx: QueryContext) -> list[bytes]:
    columns = [
        results.Column.text("Log_name"),
        results.Column.integer("File_size", unsigned=True),
        results.Column.text("Encrypted"),
    ]
    return results.encode_resultset(columns, [[f.name, f.size, "No"] for f in ctx.logs], ctx.capabilities)


def _show_binary_log_status(ctx: QueryContext) -> list[bytes]:
    columns = [
        results.Column.text("File"),
        results.Column.integer("Position", unsigned=True),
        results.Column.text("Binlog_Do_DB"),
        results.Column.text("Binlog_Ignore_DB"),
        results.Column.text("Executed_Gtid_Set"),
    ]
    rows: list[list[Value]] = []
    if ctx.logs:
        last = ctx.logs[-1]
        rows.append([last.name, last.size, "", "", ctx.facts.gtid_executed])
    return results.encode_resultset(columns, rows, ctx.capabilities)


def _show_replicas(ctx: QueryContext) -> list[bytes]:
    columns = [
        results.Column.integer("Server_Id", unsigned=True),
        results.Column.text("Host"),
        results.Column.integer("Port", unsigned=True),
        results.Column.integer("Source_Id", unsigned=True),
        results.Column.text("Replica_UUID"),
    ]
    rows: list[list[Value]] = [
        [r.server_id, r.host, r.port, ctx.facts.server_id, r.uuid] for r in ctx.replicas
    ]
    return results.encode_resultset(columns, rows, ctx.capabilities)


def answer(statement: sql.Statement, ctx: QueryContext) -> list[bytes]:
    """Payloads answering ``statement`` (everything but SHOW BINLOG EVENTS)."""
    if isinstance(statement, sql.Select):
        return _select(statement, ctx)
    if isinstance(statement, sql.Set):
        return _set(statement, ctx)
    if isinstance(statement, sql.SetNames | sql.SetCharacterSet):
        return _ok(ctx)
    if isinstance(statement, sql.ShowVariables):
        return _show_variables(statement, ctx)
    if isinstance(statement, sql.ShowStatus):
        return _text_table(ctx, ("Variable_name", "Value"), [])
    if isinstance(statement, sql.ShowBinaryLogs):
        return _show_binary_logs(ctx)
    if isinstance(statement, sql.ShowBinaryLogStatus):
        return _show_binary_log_status(ctx)
    if isinstance(statement, sql.ShowReplicas):
        return _show_replicas(ctx)
    if isinstance(statement, sql.Kill):
        raise MySQLError(errors.ER_NO_SUCH_THREAD, "HY000", f"Unknown thread id: {statement.connection_id}")
    if isinstance(statement, sql.ShowBinlogEvents):
        raise ValueError("SHOW BINLOG EVENTS is answered by binlog_events_result")
    raise MySQLError(
        errors.ER_PARSE_ERROR,
        "42000",
        "You have an error in your SQL syntax; Kingbus supports only the statements replicas use",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class BinlogEvent:
    log_name: str
    pos: int
    event: bytes


# The Event_type names mysqld prints; other types fall back to the codec's name.
_MYSQL_TYPE_NAMES = {
    events.EventType.FORMAT_DESCRIPTION: "Format_desc",
    events.EventType.PREVIOUS_GTIDS: "Previous_gtids",
    events.EventType.GTID: "Gtid",
    events.EventType.GTID_TAGGED: "Gtid_tagged_log_event",
    events.EventType.ANONYMOUS_GTID: "Anonymous_Gtid",
    events.EventType.QUERY: "Query",
    events.EventType.TABLE_MAP: "Table_map",
    events.EventType.WRITE_ROWS: "Write_rows",
    events.EventType.UPDATE_ROWS: "Update_rows",
    events.EventType.DELETE_ROWS: "Delete_rows",
    events.EventType.XID: "Xid",
    events.EventType.ROTATE: "Rotate",
    events.EventType.TRANSACTION_PAYLOAD: "Transaction_payload",
}


def event_type_name(type_code: int) -> str:
    try:
        return _MYSQL_TYPE_NAMES[events.EventType(type_code)]
    except (ValueError, KeyError):
        return events.type_name(type_code)


def _info(event: bytes) -> str:
    header = events.EventHeader.parse(event)
    if header.event_type == events.EventType.ROTATE:
        body = event[events.HEADER_LEN : -events.CHECKSUM_LEN]
        return f"{body[8:].decode('utf-8', 'replace')};pos={int.from_bytes(body[:8], 'little')}"
    if header.event_type == events.EventType.FORMAT_DESCRIPTION:
        version = event[events.HEADER_LEN + 2 : events.HEADER_LEN + 52].rstrip(b"\x00")
        return f"Server ver: {version.decode('ascii', 'replace')}, Binlog ver: 4"
    return ""


def binlog_events_result(found: Sequence[BinlogEvent], ctx: QueryContext) -> list[bytes]:
    """The SHOW BINLOG EVENTS result for events already read (offset/limit applied)."""
    columns = [
        results.Column.text("Log_name"),
        results.Column.integer("Pos", unsigned=True),
        results.Column.text("Event_type"),
        results.Column.integer("Server_id", unsigned=True),
        results.Column.integer("End_log_pos", unsigned=True),
        results.Column.text("Info"),
    ]
    rows: list[list[Value]] = []
    for item in found:
        header = events.EventHeader.parse(item.event)
        rows.append(
            [
                item.log_name,
                item.pos,
                event_type_name(header.event_type),
                header.server_id,
                item.pos + header.event_size,
                _info(item.event),
            ]
        )
    return results.encode_resultset(columns, rows, ctx.capabilities)
