"""Real binlog bytes written by MySQL 9.7.4 (tests/unit/binlog/data), and how to read them.

The fixtures were produced on a throwaway `mysqld` 9.7.4 (server_id 1, GTID_MODE=ON, ROW
format) by running: CREATE DATABASE/TABLE (DDL), autocommit and multi-statement InnoDB
transactions, a MyISAM insert (BEGIN ... Query COMMIT), tagged GTIDs via
`SET gtid_next='AUTOMATIC:Tag_One'` / `'AUTOMATIC:zz'` (DDL and DML), two-phase XA COMMIT and
XA ROLLBACK, XA COMMIT ... ONE PHASE, a compressed transaction
(binlog_transaction_compression=ON), empty transactions with explicit (tagged) GTIDs of
another UUID, CREATE TABLE ... SELECT; then `FLUSH BINARY LOGS`.

* `mysql97-crc32.000001`: the binlog file of all that (binlog_checksum=CRC32).
* `mysql97-crc32.000002`: the next file: a tagged Previous_gtids event and a Rotate.
* `mysql97-none.000003`: a file written with binlog_checksum=NONE (an autocommit insert, a
  tagged DDL, a two-row transaction).
* `mysql97-crc32.000004`: the file opened by `SET GLOBAL binlog_checksum='CRC32'` (FDE,
  Previous_gtids, Rotate: changing the setting rotates the binlog).
* `mysql97-crc32-active.000005`: the file the server was still writing when copied: its FDE
  has BINLOG_IN_USE set, with a CRC32 computed as if the flag were clear.
* `dump-*.stream`: what the server sent for COM_BINLOG_DUMP_GTID (flags 0x03: non-blocking,
  heartbeat v2), each event prefixed by its u32 length: `-all` with an empty GTID set
  (files 000001 to 000005),
  `-skip` with `2ae24d10-e786-11f1-9275-02fc00000001:1-5:tag_one:1,
  11111111-2222-3333-4444-555555555555:7`, which makes the server skip transactions and send
  Heartbeat v2 events in their place; `-skip-hbv1` the same with flags 0x01 (Heartbeat v1).
"""

from __future__ import annotations

import pathlib
import struct

DATA = pathlib.Path(__file__).parent / "data"
SOURCE_UUID = "2ae24d10-e786-11f1-9275-02fc00000001"
OTHER_UUID = "11111111-2222-3333-4444-555555555555"


def read(name: str) -> bytes:
    return (DATA / name).read_bytes()


def stream_events(name: str) -> list[bytes]:
    raw = read(name)
    out: list[bytes] = []
    offset = 0
    while offset < len(raw):
        (n,) = struct.unpack_from("<I", raw, offset)
        out.append(raw[offset + 4 : offset + 4 + n])
        offset += 4 + n
    return out
