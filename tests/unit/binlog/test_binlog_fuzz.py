"""Fuzzing: every decoder, fed damaged real events or arbitrary bytes, either returns a value
or raises `BinlogError` (a ValueError): never IndexError, struct.error, UnicodeError, ..."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kingbus.binlog import control_events, events, format_description, gtid_events, query
from kingbus.binlog.errors import BinlogError
from kingbus.binlog.transactions import TransactionAssembler, TransactionScanner
from tests.unit.binlog.binlog_samples import read, stream_events

REAL = list(events.split_events(read("mysql97-crc32.000001"), 4)) + stream_events(
    "dump-gtid-crc32-skip.stream"
)

DECODERS: list[Callable[[bytes], Any]] = [
    lambda e: events.EventHeader.parse(e),
    lambda e: events.check_event(e, checksum=True),
    lambda e: list(events.split_events(e)),
    lambda e: format_description.decode_format_description(e),
    lambda e: format_description.rewrite_format_description(e, zero_created=True),
    lambda e: control_events.decode_rotate(e, checksum=False),
    lambda e: control_events.decode_heartbeat(e, checksum=False),
    lambda e: control_events.decode_previous_gtids(e, checksum=False),
    lambda e: gtid_events.decode_gtid_event(e, checksum=False),
    lambda e: gtid_events.gtid_of_event(e, checksum=False),
    lambda e: query.decode_query(e, checksum=False),
    lambda e: query.query_statement(e, checksum=False),
    lambda e: query.decode_xid(e, checksum=False),
    lambda e: TransactionAssembler(checksum=False, verify_crc=False).feed(e),
    lambda e: list(TransactionScanner(e, checksum=False)),
]


@st.composite
def damaged_events(draw: st.DrawFn) -> bytes:
    event = bytearray(draw(st.sampled_from(REAL)))
    for _ in range(draw(st.integers(0, 4))):
        if event:
            event[draw(st.integers(0, len(event) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(event)))
    return bytes(event[:cut]) if draw(st.booleans()) else bytes(event)


@pytest.mark.parametrize("decoder", range(len(DECODERS)))
@settings(max_examples=300)
@given(st.one_of(damaged_events(), st.binary(max_size=80)))
def test_decoders_fail_only_with_binlog_errors(decoder: int, blob: bytes) -> None:
    with contextlib.suppress(BinlogError):
        DECODERS[decoder](blob)


@settings(max_examples=200)
@given(st.lists(damaged_events(), max_size=30))
def test_assembler_survives_damaged_streams(stream: list[bytes]) -> None:
    asm = TransactionAssembler(verify_crc=False)
    for e in stream:
        try:
            asm.feed(e)
        except BinlogError:
            asm.reset()
