"""Fabricated binlog streams for tests that need valid events but no server.

Built with `kingbus.binlog`'s encoders, which are checked byte for byte against MySQL 9.7 in
`tests/unit/binlog`.  Positions imitate a source file: each event's log_pos is its end offset.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from kingbus.binlog import control_events, events, format_description, gtid_events, query
from kingbus.binlog.gtids import Gtid, GtidSet
from kingbus.raft import entries
from kingbus.store.store import IncomingTxn
from kingbus.upstream.batcher import Batcher, SourceContext
from tests.support import source_binlog

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


def ddl_transaction(
    gno: int,
    *,
    statement: str = "CREATE TABLE t (id INT)",
    start: int = 1000,
    uuid: str = SOURCE_UUID,
    timestamp: int = 1_700_000_100,
) -> FabricatedTxn:
    """GTID and a single DDL Query: a transaction without BEGIN/COMMIT."""
    gtid = Gtid(uuid, gno)
    gtid_size = len(gtid_events.encode_gtid_event(gtid, server_id=SERVER_ID, log_pos=0, checksum=True))
    first = gtid_events.encode_gtid_event(
        gtid, server_id=SERVER_ID, log_pos=start + gtid_size, checksum=True, timestamp=timestamp
    )
    pos = start + gtid_size
    q_size = len(query.encode_query(statement, server_id=SERVER_ID, log_pos=0, checksum=True))
    second = query.encode_query(
        statement, server_id=SERVER_ID, log_pos=pos + q_size, checksum=True, timestamp=timestamp
    )
    return FabricatedTxn(str(gtid), first + second, pos + q_size, timestamp)


def tagged_transaction(gno: int, tag: str, *, payload: int = 50, start: int = 1000) -> FabricatedTxn:
    """Like `transaction`, with a tagged GTID (event type 42)."""
    plain = transaction(gno, payload=payload, start=start)
    gtid = Gtid(SOURCE_UUID, gno, tag)
    first_size = int.from_bytes(plain.data[9:13], "little")
    rest = plain.data[first_size:]
    tagged = gtid_events.encode_gtid_event(gtid, server_id=SERVER_ID, log_pos=start, checksum=True)
    return FabricatedTxn(str(gtid), tagged + rest, plain.end_pos, plain.timestamp)


@dataclass(frozen=True, slots=True)
class SourceTxn:
    """A fabricated transaction with the source context a syncer would attach to it."""

    txn: FabricatedTxn
    source_file: str
    fde: bytes


class SourceStream:
    """A fabricated source history: transactions in files, with rotations and FDE changes.

    Positions restart at the FDE's end in each new source file, like a real source's.
    """

    def __init__(self, *, uuid: str = SOURCE_UUID, timestamp: int = 1_700_000_100) -> None:
        self.uuid = uuid
        self.gno = 0
        self.file_no = 1
        self.fde = fde()
        self.pos = 4 + len(self.fde) + 31  # after the FDE and a small Previous_gtids
        self.timestamp = timestamp
        self.items: list[SourceTxn] = []

    @property
    def source_file(self) -> str:
        return f"binlog.{self.file_no:06d}"

    def txn(self, payload: int = 100) -> SourceTxn:
        self.gno += 1
        self.timestamp += 1
        made = transaction(
            self.gno, payload=payload, start=self.pos, uuid=self.uuid, timestamp=self.timestamp
        )
        self.pos = made.end_pos
        item = SourceTxn(made, self.source_file, self.fde)
        self.items.append(item)
        return item

    def rotate(self, *, server_id: int | None = None) -> None:
        """The source moves to its next binlog file (a new FDE; a new server when server_id)."""
        self.file_no += 1
        self.fde = fde(server_id=server_id or SERVER_ID, created=self.timestamp)
        self.pos = 4 + len(self.fde) + 31

    def reconnect_fde(self) -> None:
        """Same file, but the FDE a reconnect sends (created = 0, another timestamp)."""
        self.fde = format_description.encode_format_description(
            server_id=events.EventHeader.parse(self.fde).server_id, created=0, timestamp=self.timestamp
        )


def entries_for(
    items: list[SourceTxn], *, session: entries.Session, entry_bytes: int = 4096, first_seq: int = 0
) -> list[bytes]:
    """Encoded Raft entries for `items`, as the syncer's batcher would propose them."""
    batcher = Batcher(session, entry_bytes, next_seq=first_seq)
    out: list[entries.TxnBatch | entries.TxnChunk] = []
    for item in items:
        t = item.txn
        out.extend(
            batcher.add(
                entries.Txn(t.gtid, t.end_pos, t.timestamp, t.data), SourceContext(item.source_file, item.fde)
            )
        )
    out.extend(batcher.flush())
    return [entries.encode(e) for e in out]


def incoming(item: SourceTxn) -> IncomingTxn:
    t = item.txn
    return IncomingTxn(t.gtid, t.data, item.source_file, t.end_pos, t.timestamp)


@dataclass(frozen=True, slots=True)
class CheckedSegment:
    name: str
    previous_gtids: GtidSet
    body: bytes  # the bytes between Previous_gtids and the sealing Rotate (the transactions)
    rotate_to: str | None


def check_segment_file(path: Path) -> CheckedSegment:
    """Asserts a segment is a valid binlog file, with the independent oracle's event split and CRC.

    magic; FDE with log_pos = 4 + its size and BINLOG_IN_USE clear; Previous_gtids ending where
    its log_pos says; every event's CRC; an optional final Rotate whose log_pos is the file size.
    """
    data = path.read_bytes()
    assert data[:4] == source_binlog.MAGIC, f"{path.name}: no magic"
    evs = source_binlog.split_events(data[4:])
    assert all(source_binlog.crc_ok(e) for e in evs), f"{path.name}: bad CRC"
    fde_ev, prev_ev = evs[0], evs[1]
    assert fde_ev[4] == source_binlog.FORMAT_DESCRIPTION
    assert int.from_bytes(fde_ev[13:17], "little") == 4 + len(fde_ev)
    assert int.from_bytes(fde_ev[17:19], "little") & events.EventFlag.BINLOG_IN_USE == 0
    assert prev_ev[4] == events.EventType.PREVIOUS_GTIDS
    assert int.from_bytes(prev_ev[13:17], "little") == 4 + len(fde_ev) + len(prev_ev)
    previous = control_events.decode_previous_gtids(prev_ev, checksum=True)
    start = 4 + len(fde_ev) + len(prev_ev)
    rotate_to = None
    end = len(data)
    last = evs[-1]
    if len(evs) > 2 and last[4] == events.EventType.ROTATE:
        assert int.from_bytes(last[13:17], "little") == len(data)
        assert int.from_bytes(last[19:27], "little") == 4
        rotate_to = last[27:-4].decode()
        end -= len(last)
    assert all(e[4] != events.EventType.ROTATE for e in evs[2:-1])
    return CheckedSegment(path.name, previous, data[start:end], rotate_to)


def file_digests(directory: Path) -> dict[str, str]:
    """sha256 of every segment and index file (the checkpoint is not data and is left out)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.name.startswith("kingbus-bin.")
    }
