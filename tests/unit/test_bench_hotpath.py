"""`bench/hotpath.py` keeps working: its synthetic stream is a valid dump stream of exactly the
transactions asked for, and every stage runs (the figures themselves are not asserted)."""

from __future__ import annotations

import pytest

from bench import hotpath
from kingbus.raft import entries


def test_the_synthetic_stream_holds_the_transactions_asked_for() -> None:
    payloads = hotpath.syncer_stage(hotpath.synthetic_stream(300, 500), entry_bytes=64 * 1024)
    decoded = [entries.decode(p) for p in payloads]
    txns = [t for e in decoded if isinstance(e, entries.TxnBatch) for t in e.txns]
    assert len(decoded) > 1  # batches were cut by size
    assert [int(t.gtid.rsplit(":", 1)[1]) for t in txns] == list(range(1, 301))
    assert all(len(t.data) > 500 for t in txns)


def test_every_stage_runs_and_prints_its_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert hotpath.main(["--transactions", "200", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for stage in ("syncer", "decode", "apply (follower)", "apply (leader)"):
        assert f"  {stage} " in out
