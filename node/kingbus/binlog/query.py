"""Query (2) and XID (16) events: just enough to find transaction boundaries.

Query body:

    post-header (13 bytes): u32 thread_id, u32 exec_time, u8 db_len, u16 error_code,
                            u16 status_vars_len
    status_vars[status_vars_len]
    db[db_len] NUL
    statement                      up to the CRC footer, not NUL-terminated

XID body: u64 xid (the storage engine's transaction id).

The statement decides the boundary role of a Query event (see `StatementKind`): MySQL
writes `BEGIN`, `COMMIT` and `ROLLBACK` itself, in upper case and without comments, and XA
statements as `XA START X'..',X'..',n` etc., so a prefix test is exact. `ROLLBACK TO
SAVEPOINT` must *not* count as ROLLBACK, hence the whole-word comparison.
"""

from __future__ import annotations

import dataclasses
import enum
import struct

from kingbus.binlog.errors import MalformedEvent
from kingbus.binlog.events import CHECKSUM_LEN, HEADER_LEN, Buffer, EventType, build_event, type_name

QUERY_POST_HEADER_LEN = 13
_POST_HEADER = struct.Struct("<IIBHH")
_U64 = struct.Struct("<Q")


class StatementKind(enum.Enum):
    BEGIN = "BEGIN"
    COMMIT = "COMMIT"
    ROLLBACK = "ROLLBACK"
    XA_START = "XA START"
    XA_END = "XA END"
    XA_COMMIT = "XA COMMIT"
    XA_ROLLBACK = "XA ROLLBACK"
    #: Anything else: DDL, a statement-based DML, SAVEPOINT, ROLLBACK TO ...
    OTHER = "OTHER"


@dataclasses.dataclass(frozen=True, slots=True)
class QueryEvent:
    thread_id: int
    exec_time: int
    error_code: int
    status_vars: bytes
    database: bytes
    statement: bytes

    @property
    def kind(self) -> StatementKind:
        return classify_statement(self.statement)


def _query_layout(event: Buffer, checksum: bool) -> tuple[int, int, int]:
    """(db_offset, db_len, end): bounds-checked offsets inside a Query event."""
    end = len(event) - (CHECKSUM_LEN if checksum else 0)
    post = HEADER_LEN + QUERY_POST_HEADER_LEN
    if end < post:
        raise MalformedEvent(f"Query event of {len(event)} bytes is shorter than its post-header")
    if event[4] != EventType.QUERY:
        raise MalformedEvent(f"expected a Query event, got {type_name(event[4])}")
    db_len = event[HEADER_LEN + 8]
    status_len = event[HEADER_LEN + 11] | (event[HEADER_LEN + 12] << 8)
    db_offset = post + status_len
    if db_offset + db_len + 1 > end:
        raise MalformedEvent(
            f"Query event: status vars ({status_len}) and db name ({db_len}) run past the body"
        )
    if event[db_offset + db_len] != 0:
        raise MalformedEvent("Query event: database name is not NUL-terminated")
    return db_offset, db_len, end


def query_statement(event: Buffer, *, checksum: bool) -> bytes:
    """The statement text of a Query event, as bytes."""
    db_offset, db_len, end = _query_layout(event, checksum)
    return bytes(event[db_offset + db_len + 1 : end])


def decode_query(event: Buffer, *, checksum: bool) -> QueryEvent:
    db_offset, db_len, end = _query_layout(event, checksum)
    thread_id, exec_time, _, error_code, _ = _POST_HEADER.unpack_from(event, HEADER_LEN)
    return QueryEvent(
        thread_id=thread_id,
        exec_time=exec_time,
        error_code=error_code,
        status_vars=bytes(event[HEADER_LEN + QUERY_POST_HEADER_LEN : db_offset]),
        database=bytes(event[db_offset : db_offset + db_len]),
        statement=bytes(event[db_offset + db_len + 1 : end]),
    )


_WHOLE_WORDS = {
    b"BEGIN": StatementKind.BEGIN,
    b"COMMIT": StatementKind.COMMIT,
    b"ROLLBACK": StatementKind.ROLLBACK,
}
_XA_VERBS = (
    (b"START", StatementKind.XA_START),
    (b"BEGIN", StatementKind.XA_START),
    (b"END", StatementKind.XA_END),
    (b"COMMIT", StatementKind.XA_COMMIT),
    (b"ROLLBACK", StatementKind.XA_ROLLBACK),
)


def classify_statement(statement: Buffer) -> StatementKind:
    """The boundary role of a statement (leading/trailing whitespace and case ignored)."""
    head = bytes(statement[:24]).lstrip().upper()
    if len(head) <= 9:  # "ROLLBACK" plus trailing whitespace at most
        kind = _WHOLE_WORDS.get(head.rstrip())
        if kind is not None and bytes(statement).strip().upper() == head.rstrip():
            return kind
    if head.startswith(b"XA") and head[2:3].isspace():
        words = head[2:].split(None, 1)
        if words:
            for verb, kind in _XA_VERBS:
                if words[0] == verb:
                    return kind
    return StatementKind.OTHER


def decode_xid(event: Buffer, *, checksum: bool) -> int:
    if len(event) - (CHECKSUM_LEN if checksum else 0) - HEADER_LEN < 8:
        raise MalformedEvent("XID event body shorter than 8 bytes")
    if event[4] != EventType.XID:
        raise MalformedEvent(f"expected an XID event, got {type_name(event[4])}")
    return int(_U64.unpack_from(event, HEADER_LEN)[0])


# --- encoders (tests, demos and fabricated streams) --------------------------------------------


def encode_query(
    statement: str | bytes,
    *,
    server_id: int,
    log_pos: int,
    checksum: bool,
    database: bytes = b"",
    status_vars: bytes = b"",
    thread_id: int = 1,
    exec_time: int = 0,
    error_code: int = 0,
    flags: int = 0,
    timestamp: int = 0,
) -> bytes:
    raw = statement.encode("utf-8") if isinstance(statement, str) else statement
    body = (
        _POST_HEADER.pack(thread_id, exec_time, len(database), error_code, len(status_vars))
        + status_vars
        + database
        + b"\0"
        + raw
    )
    return build_event(
        event_type=EventType.QUERY,
        body=body,
        server_id=server_id,
        log_pos=log_pos,
        flags=flags,
        timestamp=timestamp,
        checksum=checksum,
    )


def encode_xid(xid: int, *, server_id: int, log_pos: int, checksum: bool, timestamp: int = 0) -> bytes:
    return build_event(
        event_type=EventType.XID,
        body=_U64.pack(xid),
        server_id=server_id,
        log_pos=log_pos,
        timestamp=timestamp,
        checksum=checksum,
    )
