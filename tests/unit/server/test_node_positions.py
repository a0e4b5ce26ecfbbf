"""File/position dumps send the node's own coordinates in header log_pos (CRC recomputed)."""

from __future__ import annotations

import struct

from kingbus.binlog import events
from kingbus.server import dumpplan


def _event(log_pos: int) -> bytes:
    return events.build_event(
        event_type=events.EventType.XID, body=b"\x01" * 8, server_id=1, log_pos=log_pos, checksum=True
    )


def _log_pos(event: bytes) -> int:
    return int(struct.unpack_from("<I", event, events.LOG_POS_OFFSET)[0])


def test_a_source_position_becomes_the_node_position_with_a_valid_crc() -> None:
    event = _event(196_637_497)
    moved = dumpplan.at_node_position(event, 35_920_000)
    assert _log_pos(moved) == 35_920_000 + len(event)
    assert events.crc32_ok(moved)
    assert moved[: events.LOG_POS_OFFSET] == event[: events.LOG_POS_OFFSET]
    assert moved[events.LOG_POS_OFFSET + 4 : -4] == event[events.LOG_POS_OFFSET + 4 : -4]


def test_artificial_and_already_matching_events_are_sent_unchanged() -> None:
    assert dumpplan.at_node_position(_event(0), 1000) == _event(0)
    matching = _event(1000 + len(_event(0)))
    assert dumpplan.at_node_position(matching, 1000) is matching
