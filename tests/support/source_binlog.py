"""Independent test oracle: the transactions in a MySQL datadir's binlog files, read from disk.

Written from the binlog format alone and deliberately sharing no code with ``kingbus.binlog``,
so a bug there cannot hide itself here. It follows ``binlog.index``, checks each file's magic,
walks events by the header's ``event_size`` (19-byte header: u32 timestamp, u8 type, u32
server_id, u32 event_size, u32 log_pos, u16 flags; all little-endian), and cuts transactions:

* a transaction starts at a GTID event (33) or a tagged GTID event (42);
* it ends at an XID (16); at a Query (2) ``COMMIT``/``ROLLBACK`` when it opened with ``BEGIN``;
  at its single DDL Query otherwise; at a TRANSACTION_PAYLOAD (40); or at XA_PREPARE (38).

A transaction still open at the end of the last file (the server is mid-write) is dropped.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

MAGIC = b"\xfebin"
HEADER = 19
FORMAT_DESCRIPTION, QUERY, XID, GTID, XA_PREPARE, PAYLOAD, GTID_TAGGED = 15, 2, 16, 33, 38, 40, 42


def _uuid_text(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _varlen(data: bytes, pos: int) -> tuple[int, int]:
    """MySQL serialization-framework unsigned integer: the count of trailing 1 bits in the first
    byte is the number of extra bytes (8 when the byte is 0xff); the rest is the value."""
    first = data[pos]
    extra = 0
    while extra < 8 and first & (1 << extra):
        extra += 1
    raw = int.from_bytes(data[pos : pos + 1 + extra], "little")
    return (raw >> 8 if extra == 8 else raw >> (extra + 1)), pos + 1 + extra


def _tagged_gtid(body: bytes) -> str:
    """uuid:tag:gno from a tagged GTID body: three header integers (observed on 9.7: 1, the
    body's serialized size, 0), then (field id, value) pairs: 0 flags, 1 uuid as 16 integers,
    2 gno zigzag-signed, 3 tag as length + bytes, then fields this oracle does not need."""
    pos = 0
    for _ in range(3):
        _, pos = _varlen(body, pos)
    uuid, gno, tag = b"", 0, ""
    while pos < len(body):
        field, pos = _varlen(body, pos)
        if field == 0:  # flags
            _, pos = _varlen(body, pos)
        elif field == 1:  # uuid: 16 varlen bytes
            out = bytearray()
            for _ in range(16):
                value, pos = _varlen(body, pos)
                out.append(value)
            uuid = bytes(out)
        elif field == 2:  # gno, zigzag-signed
            value, pos = _varlen(body, pos)
            gno = (value >> 1) ^ -(value & 1)
        elif field == 3:  # tag: length, then bytes
            length, pos = _varlen(body, pos)
            tag = body[pos : pos + length].decode()
            pos += length
            break
        else:
            break
    return f"{_uuid_text(uuid)}:{tag}:{gno}" if tag else f"{_uuid_text(uuid)}:{gno}"


def _query_text(body: bytes) -> bytes:
    # post-header: u32 thread, u32 exec_time, u8 db_len, u16 error_code, u16 status_vars_len
    db_len = body[8]
    (status_len,) = struct.unpack_from("<H", body, 11)
    return body[13 + status_len + db_len + 1 :]


def split_events(data: bytes) -> list[bytes]:
    """Cut a run of whole events into single events by their header sizes."""
    events, pos = [], 0
    while pos < len(data):
        (size,) = struct.unpack_from("<I", data, pos + 9)
        if size < HEADER or pos + size > len(data):
            raise ValueError(f"bad event size {size} at offset {pos}")
        events.append(data[pos : pos + size])
        pos += size
    return events


def crc_ok(event: bytes) -> bool:
    (stored,) = struct.unpack_from("<I", event, len(event) - 4)
    return zlib.crc32(event[:-4]) == int(stored)


def binlog_paths(datadir: Path, index_name: str = "binlog.index") -> list[Path]:
    lines = (datadir / index_name).read_text().split()
    return [(datadir / line).resolve() for line in lines]


def read_transactions(datadir: Path, index_name: str = "binlog.index") -> list[tuple[str, bytes]]:
    """Every complete transaction in the datadir's binlogs, in order, as (gtid_text, raw_bytes)."""
    found: list[tuple[str, bytes]] = []
    for path in binlog_paths(datadir, index_name):
        data = path.read_bytes()
        if data[:4] != MAGIC:
            raise ValueError(f"{path} is not a binlog file")
        pos, has_crc = 4, True
        gtid, start, state = "", 0, "idle"  # idle | first (after GTID) | open (after BEGIN)
        while pos + HEADER <= len(data):
            kind = data[pos + 4]
            (size,) = struct.unpack_from("<I", data, pos + 9)
            if size < HEADER or pos + size > len(data):
                break  # torn tail being written
            end = pos + size
            body = data[pos + HEADER : end - 4 if has_crc else end]
            if kind == FORMAT_DESCRIPTION:
                has_crc = data[end - 5] == 1
            if kind in (GTID, GTID_TAGGED):
                if kind == GTID:
                    (gno,) = struct.unpack_from("<q", body, 17)
                    gtid = f"{_uuid_text(body[1:17])}:{gno}"
                else:
                    gtid = _tagged_gtid(body)
                start, state = pos, "first"
            elif state != "idle":
                done = kind in (XID, PAYLOAD, XA_PREPARE)
                if kind == QUERY:
                    text = _query_text(body).strip().upper()
                    if state == "first" and text == b"BEGIN":
                        state = "open"
                    elif state == "first" or text in (b"COMMIT", b"ROLLBACK"):
                        done = True
                if done:
                    found.append((gtid, data[start:end]))
                    state = "idle"
                elif state == "first" and kind != QUERY:
                    state = "open"  # e.g. a Rows_query or Table_map before the rows
            pos = end
    return found
