"""The Raft entry codec: every record round-trips, and damaged payloads are refused."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kingbus.raft import entries

SESSION = entries.Session(term=7, counter=3)
UUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562"


def _txn(gno: int, data: bytes = b"\x01\x02") -> entries.Txn:
    return entries.Txn(f"{UUID}:{gno}", source_end_pos=1000 + gno, timestamp=1_700_000_000, data=data)


SAMPLES: list[entries.Entry] = [
    entries.TxnBatch(SESSION, 0, b"fde-bytes", "binlog.000001", (_txn(1), _txn(2, b""))),
    entries.TxnBatch(SESSION, 5, b"", "", ()),
    entries.TxnChunk(SESSION, 9, b"fde", "binlog.000002", True, False, _txn(3, b"x" * 1000)),
    entries.TxnChunk(SESSION, 10, b"fde", "binlog.000002", False, True, _txn(3, b"y")),
    entries.Barrier(SESSION),
    entries.SourceConfig("db.example", 3306, "repl", "token", f"{UUID}:1-5", True, False),
    entries.SourceConfig("db.example", 3306, "repl", "token", "", False, True, "disabled", "", initial=True),
    entries.MemberInfo("kb-1", "10.0.0.1:7100", "http://10.0.0.1:9595"),
    entries.MemberInfo("kb-1", "10.0.0.1:7100", "http://10.0.0.1:9595", removed=True),
]


@pytest.mark.parametrize("entry", SAMPLES, ids=lambda e: type(e).__name__)
def test_round_trip(entry: entries.Entry) -> None:
    assert entries.decode(entries.encode(entry)) == entry


@pytest.mark.parametrize("entry", SAMPLES, ids=lambda e: type(e).__name__)
def test_every_truncation_is_refused(entry: entries.Entry) -> None:
    payload = entries.encode(entry)
    for cut in range(len(payload)):
        with pytest.raises(entries.EntryError):
            entries.decode(payload[:cut])


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(entries.EntryError, match="trailing"):
        entries.decode(entries.encode(SAMPLES[0]) + b"\x00")


def test_unknown_format_and_kind_are_refused() -> None:
    with pytest.raises(entries.EntryError, match="format"):
        entries.decode(b"\x09\x01")
    with pytest.raises(entries.EntryError, match="unknown entry kind"):
        entries.decode(b"\x01\x63{}")


@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data: bytes) -> None:
    with contextlib.suppress(entries.EntryError):
        entries.decode(data)


@given(st.binary(max_size=5000))
def test_payload_packing_keeps_leading_and_trailing_zeros(data: bytes) -> None:
    value, length = entries.pack_payload(data)
    assert entries.unpack_payload(value, length) == data


def test_sessions_order_by_term_then_counter() -> None:
    assert entries.Session(1, 9) < entries.Session(2, 0) < entries.Session(2, 1)
