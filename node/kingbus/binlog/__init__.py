"""kingbus.binlog: the pure binlog data layer (bytes in, values out; no I/O anywhere).

Public API, by module (import the module, call through it: `gtids.GtidSet.parse(...)`):

`errors`
    `BinlogError(ValueError)` > `MalformedEvent` (bad bytes: short, inconsistent, bad CRC)
    and `UnexpectedEvent` (well-formed event in the wrong place) > `AnonymousGtidEvent`.

`events`
    `EventType` (IntEnum of MySQL 8.4/9.x type codes), `EventFlag`, `ChecksumAlgorithm`,
    `EventHeader.parse(buf, offset=0)` / `.pack()`, `crc32_ok(event)`, `with_crc(raw)`,
    `recompute_crc(event)`, `build_event(...)`, `check_event(event, checksum=)`,
    `body_of(event, checksum=)`, `split_events(buf, offset=0)`, `BINLOG_MAGIC`.

`gtids`
    `Gtid(uuid, gno, tag="")`, `GtidSet` (immutable: `parse`, `format`/`str`, `encode`,
    `decode`, `union |`, `intersection &`, `difference -`, `issubset <=`, `contains`/`in`,
    `add`, `is_empty`, `count`, `for_uuid`, `intervals`), `GtidSetBuilder` (mutable, O(1)
    append of the next gno), `decode_prefix(buf, offset)` for a set embedded in a packet.

`format_description`
    `decode_format_description(event)` -> `FormatDescription`;
    `rewrite_format_description(event, zero_created=, zero_log_pos=, clear_in_use=)`;
    `encode_format_description(...)`.

`control_events`
    Rotate (`encode_rotate`, `decode_rotate`), heartbeats (`encode_heartbeat_v1`,
    `encode_heartbeat_v2`, `decode_heartbeat`), Previous_gtids (`encode_previous_gtids`,
    `decode_previous_gtids`).

`gtid_events`
    `decode_gtid_event(event, checksum=)` -> `GtidEventInfo` (types 33 and 42),
    `gtid_of_event`, `encode_gtid_event` (for tests and fabricated streams).

`query`
    `query_statement`, `decode_query`, `classify_statement` -> `StatementKind`,
    `decode_xid`, `encode_query`, `encode_xid`.

`transactions`
    `TransactionAssembler(checksum=None).feed(event)` -> `Transaction | ControlEvent | None`,
    `.reset()`; `TransactionScanner(buf, start=0, checksum=None)` yields `TransactionSpan`s
    and leaves `good_end`, `tail` (`Tail`) and `tail_error` describing a torn tail.

`varints`
    serialization-framework varlen integers and protocol length-encoded integers.

Conventions: every decoder takes a complete event (header included, CRC included when
the stream has checksums) as `bytes`/`bytearray`/`memoryview`, and is told `checksum=`
explicitly; the FDE is the exception, it always carries a CRC32 of its own.
"""
