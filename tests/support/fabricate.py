"""Fabricated binlog streams for tests that need valid events but no server.

Built with `kingbus.binlog`'s encoders, which are checked byte for byte against MySQL 9.7 in
`tests/unit/binlog`.  Positions imitate a source file: each event's log_pos is its end offset.
"""

from __future__ import annotations

from dataclasses import dataclass

from kingbus.binlog import events, format_description, gtid_events, query
from kingbus.binlog.gtids import Gtid

SOURCE_UUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
SERVER_ID = 1


def fde(*, server_id: int = SERVER_ID, created: int = 1_700_000_000) -> bytes:
    return format_description.encode_format_description(
        server_id=server_id, created=created, timestamp=created, log_pos=4 + 0
    )


@dataclass(frozen=True, slots=True)
class FabricatedTxn:
    gtid: str
    data: bytes
    end_pos: int
    timestamp: int


def transaction(
    gno: int,
    *,
    payload: int = 100,
    start: int = 1000,
    uuid: str = SOURCE_UUID,
    timestamp: int = 1_700_000_100,
) -> FabricatedTxn:
    """GTID, BEGIN, one rows event with `payload` bytes of body, XID."""
    gtid = Gtid(uuid, gno)
    parts: list[bytes] = []
    pos = start

    def add(event_bytes: bytes) -> None:
        nonlocal pos
        parts.append(event_bytes)
        pos += len(event_bytes)

    gtid_size = len(gtid_events.encode_gtid_event(gtid, server_id=SERVER_ID, log_pos=0, checksum=True))
    add(
        gtid_events.encode_gtid_event(
            gtid, server_id=SERVER_ID, log_pos=pos + gtid_size, checksum=True, timestamp=timestamp
        )
    )
    begin_size = len(query.encode_query("BEGIN", server_id=SERVER_ID, log_pos=0, checksum=True))
    add(
        query.encode_query(
            "BEGIN", server_id=SERVER_ID, log_pos=pos + begin_size, checksum=True, timestamp=timestamp
        )
    )
    rows_size = events.HEADER_LEN + payload + events.CHECKSUM_LEN
    add(
        events.build_event(
            event_type=events.EventType.WRITE_ROWS,
            body=bytes([gno % 251]) * payload,
            server_id=SERVER_ID,
            log_pos=pos + rows_size,
            checksum=True,
            timestamp=timestamp,
        )
    )
    xid_size = len(query.encode_xid(gno, server_id=SERVER_ID, log_pos=0, checksum=True))
    add(
        query.encode_xid(gno, server_id=SERVER_ID, log_pos=pos + xid_size, checksum=True, timestamp=timestamp)
    )
    return FabricatedTxn(str(gtid), b"".join(parts), pos, timestamp)
