"""StateMachine: committed Raft entries -> the store, deterministically and idempotently.

Scenarios are built the way the syncer builds them (fabricated source history -> batcher ->
encoded entries), including what a leader change leaves in the log: a superseded session's
late entries, a session restarting from an older position (duplicates), a session ending in
the middle of a chunked transaction.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from kingbus.binlog.gtids import GtidSet
from kingbus.raft import entries
from kingbus.raft.statemachine import ReplicatedState, StateMachine
from kingbus.store.store import BinlogStore
from tests.support.fabricate import SourceStream, SourceTxn, check_segment_file, entries_for, file_digests

SEGMENT_BYTES = 8192
ENTRY_BYTES = 4096
S1 = entries.Session(1, 0)
S2 = entries.Session(2, 0)
S3 = entries.Session(2, 1)


def machine(directory: Path) -> StateMachine:
    return StateMachine(BinlogStore(directory, segment_bytes=SEGMENT_BYTES))


def apply_all(m: StateMachine, payloads: list[bytes]) -> None:
    for p in payloads:
        m.apply(p)


def stored_body(m: StateMachine) -> bytes:
    return b"".join(check_segment_file(m.store.directory / s.name).body for s in m.store.segments())


def expected(items: list[SourceTxn]) -> tuple[bytes, GtidSet]:
    seen: set[str] = set()
    body = b""
    for item in items:
        if item.txn.gtid not in seen:
            seen.add(item.txn.gtid)
            body += item.txn.data
    return body, GtidSet.parse(",".join(seen)) if seen else GtidSet()


def rich_history() -> list[SourceTxn]:
    """Small and large transactions, rotations by size, by source file and by FDE change."""
    stream = SourceStream()
    out = []
    for i in range(30):
        out.append(stream.txn(payload=[50, 400, 9000, 120, 30_000][i % 5]))
        if i == 11:
            stream.rotate()
        if i == 19:
            stream.rotate(server_id=42)
        if i == 24:
            stream.reconnect_fde()
    return out


def leader_change_log(items: list[SourceTxn]) -> list[bytes]:
    """Session 1 stores 0..18, its chunked txn 19 is cut off; session 2 restarts from 10
    (duplicates); late entries of session 1 arrive after session 2 began; session 3 follows."""
    s1 = entries_for(items[:20], session=S1, entry_bytes=ENTRY_BYTES)
    s1_decoded = [entries.decode(p) for p in s1]
    # Cut session 1 inside the chunks of its last (30 KB) transaction.
    cut = next(
        i
        for i, e in enumerate(s1_decoded)
        if isinstance(e, entries.TxnChunk) and e.first and e.txn.gtid == items[19].txn.gtid
    )
    s1_sent, s1_late = s1[: cut + 2], s1[cut + 2 :]
    s2 = [
        entries.encode(entries.Barrier(S2)),
        *entries_for(items[10:26], session=S2, entry_bytes=ENTRY_BYTES),
    ]
    s3 = entries_for(items[26:], session=S3, entry_bytes=ENTRY_BYTES)
    return [*s1_sent, *s2[:3], *s1_late, *s2[3:], s1[0], *s3]


@pytest.fixture
def items() -> list[SourceTxn]:
    return rich_history()


def test_plain_log_stores_every_transaction_in_order(tmp_path: Path, items: list[SourceTxn]) -> None:
    m = machine(tmp_path)
    payloads = entries_for(items, session=S1, entry_bytes=ENTRY_BYTES)
    assert any(isinstance(entries.decode(p), entries.TxnChunk) for p in payloads)
    apply_all(m, payloads)
    body, committed = expected(items)
    assert stored_body(m) == body
    assert m.store.committed_gtids == committed
    assert m.stats.applied_txns == len(items)
    assert m.stats.applied_bytes == len(body)
    assert m.stats.stale_entries == 0
    assert [s.source_file for s in m.store.segments()][-1] == "binlog.000003"
    assert len(m.store.segments()) > 5


def test_two_members_write_identical_files(tmp_path: Path, items: list[SourceTxn]) -> None:
    log = leader_change_log(items)
    a, b = machine(tmp_path / "a"), machine(tmp_path / "b")
    apply_all(a, log)
    apply_all(b, log)
    a.store.close()
    b.store.close()
    assert file_digests(tmp_path / "a") == file_digests(tmp_path / "b")
    body, committed = expected(items)
    assert a.store.committed_gtids == committed
    assert stored_body(a) == body
    assert a.stats.stale_entries > 0
    assert a.stats.skipped_txns >= 8


def test_a_leader_applying_the_objects_it_proposed_writes_what_a_follower_decodes(
    tmp_path: Path, items: list[SourceTxn]
) -> None:
    """`StateMachine.expect`: the leader hands over the entries it encoded instead of
    decoding them again; the store must be byte-identical to a follower's."""
    log = leader_change_log(items)
    leader, follower = machine(tmp_path / "leader"), machine(tmp_path / "follower")
    handed = 0
    for payload in log:
        entry = entries.decode(payload)
        if isinstance(entry, entries.TxnBatch | entries.TxnChunk):
            leader.expect(entry, payload)
            handed += 1
        leader.apply(payload)
        follower.apply(payload)
    assert handed > 10
    assert leader._proposed == {}  # every object handed over was used
    assert leader.stats == follower.stats
    leader.store.close()
    follower.store.close()
    assert file_digests(tmp_path / "leader") == file_digests(tmp_path / "follower")


def test_an_expected_object_is_used_only_for_its_own_payload(tmp_path: Path, items: list[SourceTxn]) -> None:
    payloads = entries_for(items[:3], session=S1, entry_bytes=ENTRY_BYTES)
    first = entries.decode(payloads[0])
    assert isinstance(first, entries.TxnBatch) and len(first.txns) > 1
    wrong = entries.TxnBatch(first.session, first.seq, first.fde, first.source_file, first.txns[:1])
    m = machine(tmp_path)
    m.expect(wrong, payloads[0] + b"longer")  # same (session, seq), another length: not used
    m.apply(payloads[0])
    assert m.stats.applied_txns == len(first.txns)
    m.expect(wrong, payloads[1])
    m.forget_proposed()  # the session ended: nothing of it is used any more
    assert m._proposed == {}


def test_replaying_any_prefix_changes_nothing(tmp_path: Path, items: list[SourceTxn]) -> None:
    """Journal replay after a restart re-applies entries the store already holds."""
    log = leader_change_log(items)
    ref = machine(tmp_path / "ref")
    apply_all(ref, log)
    ref.store.close()
    want = file_digests(tmp_path / "ref")
    for k in range(0, len(log) + 1, 3):
        d = tmp_path / f"k{k}"
        m = machine(d)
        apply_all(m, log[:k])
        m.store.close()
        again = machine(d)  # restart: fresh replicated state, replay from the journal start
        apply_all(again, log)
        again.store.close()
        assert file_digests(d) == want, f"replay after {k} entries"
        shutil.rmtree(d)


def test_replay_after_a_kill_at_any_entry(tmp_path: Path, items: list[SourceTxn]) -> None:
    """Killed (not closed) after k entries, mid-chunk included: what is on disk plus replay."""
    log = leader_change_log(items)
    ref = machine(tmp_path / "ref")
    apply_all(ref, log)
    ref.store.close()
    want = file_digests(tmp_path / "ref")
    for k in range(1, len(log) + 1, 2):
        m = machine(tmp_path / "live")
        apply_all(m, log[:k])
        if m.store._data is not None:
            m.store._data.flush()  # what the OS would have after a kill (no publish mid-chunk)
        shutil.copytree(tmp_path / "live", tmp_path / "crashed")
        again = machine(tmp_path / "crashed")
        apply_all(again, log)
        again.store.close()
        assert file_digests(tmp_path / "crashed") == want, f"kill after {k} entries"
        m.store.close()
        shutil.rmtree(tmp_path / "crashed")
        shutil.rmtree(tmp_path / "live")


def test_replay_from_a_snapshot_state(tmp_path: Path, items: list[SourceTxn]) -> None:
    """Restart from a snapshot: the replicated state is restored, replay starts after it."""
    log = leader_change_log(items)
    ref = machine(tmp_path / "ref")
    apply_all(ref, log)
    ref.store.close()
    want = file_digests(tmp_path / "ref")
    for j in range(0, len(log), 4):
        d = tmp_path / f"j{j}"
        m = machine(d)
        apply_all(m, log[:j])
        if m.in_chunk:
            continue  # the cluster postpones snapshots inside a chunked transaction
        state = m.state.to_json()
        apply_all(m, log[j : j + 3])  # applied after the snapshot, before the crash
        m.store.close()
        again = machine(d)
        again.state = ReplicatedState.from_json(state)
        apply_all(again, log[j:])
        again.store.close()
        assert file_digests(d) == want, f"snapshot at {j}"


def test_seq_gap_drops_the_rest_of_the_session(tmp_path: Path) -> None:
    stream = SourceStream()
    items = [stream.txn(payload=1500) for _ in range(12)]
    log = entries_for(items, session=S1, entry_bytes=ENTRY_BYTES)
    assert len(log) >= 5
    m = machine(tmp_path)
    apply_all(m, [log[0], log[1], log[3], log[4]])
    committed_two = m.store.committed_gtids
    assert m.stats.stale_entries == 2
    assert committed_two == GtidSet.parse(
        ",".join(t.gtid for e in log[:2] for t in _batch(e).txns)  # only the first two entries
    )
    apply_all(m, [log[2], log[3]])  # the gap filled: it goes on in order
    assert m.store.committed_gtids.issuperset(GtidSet.parse(",".join(t.gtid for t in _batch(log[3]).txns)))


def _batch(payload: bytes) -> entries.TxnBatch:
    e = entries.decode(payload)
    assert isinstance(e, entries.TxnBatch)
    return e


def test_a_new_session_must_start_at_seq_zero_and_old_sessions_are_ignored(tmp_path: Path) -> None:
    stream = SourceStream()
    items = [stream.txn() for _ in range(6)]
    m = machine(tmp_path)
    apply_all(m, entries_for(items[:2], session=S2))
    apply_all(m, entries_for(items[2:4], session=S3, first_seq=1))  # newer session, seq 1: dropped
    apply_all(m, entries_for(items[2:4], session=S1))  # older session: dropped
    assert m.store.committed_gtids == GtidSet.parse(f"{items[0].txn.gtid},{items[1].txn.gtid}")
    assert m.stats.stale_entries == 2
    apply_all(m, entries_for(items[2:], session=S3))
    _, committed = expected(items)
    assert m.store.committed_gtids == committed


def test_barrier_starts_a_session(tmp_path: Path) -> None:
    stream = SourceStream()
    items = [stream.txn() for _ in range(4)]
    m = machine(tmp_path)
    m.apply(entries.encode(entries.Barrier(S1)))
    assert S1 in m.barriers_applied
    apply_all(m, entries_for(items, session=S1))
    m.apply(entries.encode(entries.Barrier(S1)))  # a repeated barrier changes nothing
    apply_all(m, entries_for(items, session=S1, first_seq=1))
    assert m.stats.applied_txns == 4
    assert m.state.seq == 1


def _chunks_of(item: SourceTxn, session: entries.Session, first_seq: int = 0) -> list[bytes]:
    log = entries_for([item], session=session, entry_bytes=ENTRY_BYTES, first_seq=first_seq)
    assert all(isinstance(entries.decode(p), entries.TxnChunk) for p in log) and len(log) >= 3
    return log


def test_partial_chunked_transaction_is_never_visible(tmp_path: Path) -> None:
    stream = SourceStream()
    small = stream.txn()
    big = stream.txn(payload=20_000)
    m = machine(tmp_path)
    apply_all(m, entries_for([small], session=S1))
    segs, committed = m.store.segments(), m.store.committed_gtids
    chunks = _chunks_of(big, S1, first_seq=1)
    for chunk in chunks[:-1]:
        m.apply(chunk)
        assert m.in_chunk
        assert m.store.segments() == segs
        assert m.store.committed_gtids == committed
        assert not m.store.is_committed(big.txn.gtid)
        seg = segs[-1]
        assert m.store.read(seg.name, 0, seg.size) == (tmp_path / seg.name).read_bytes()[: seg.size]
        assert [e.gtid for e in m.store.index(seg.name)] == [small.txn.gtid]
    m.apply(chunks[-1])
    assert not m.in_chunk
    assert stored_body(m) == small.txn.data + big.txn.data


@pytest.mark.parametrize("how", ["new_session", "restart_chunk", "batch_inside"])
def test_abandoned_chunked_transaction_leaves_no_trace(tmp_path: Path, how: str) -> None:
    stream = SourceStream()
    small, big, after = stream.txn(), stream.txn(payload=20_000), stream.txn()
    chunks = _chunks_of(big, S1, first_seq=1)
    m = machine(tmp_path / "m")
    apply_all(m, [*entries_for([small], session=S1), *chunks[:2]])
    if how == "new_session":
        apply_all(m, entries_for([after], session=S2))
        want = small.txn.data + after.txn.data
    elif how == "restart_chunk":  # a new first chunk of the same session starts over
        apply_all(m, _chunks_of(big, S1, first_seq=3))
        want = small.txn.data + big.txn.data
    else:
        apply_all(m, entries_for([after], session=S1, first_seq=3))
        want = small.txn.data + after.txn.data
    assert not m.in_chunk
    assert stored_body(m) == want
    m.store.close()
    seg = m.store.segments()[-1]
    assert seg.size == (tmp_path / "m" / seg.name).stat().st_size


def test_chunk_without_its_beginning_is_dropped(tmp_path: Path) -> None:
    stream = SourceStream()
    big = stream.txn(payload=20_000)
    chunks = _chunks_of(big, S1)
    m = machine(tmp_path)
    m.apply(entries.encode(entries.Barrier(S1)))
    m.state.seq = 0  # as if seq 0 had been applied and lost its effect
    apply_all(m, chunks[1:])
    assert not m.store.is_committed(big.txn.gtid)
    assert m.store.segments() == []


def test_chunked_duplicate_is_skipped(tmp_path: Path) -> None:
    stream = SourceStream()
    big = stream.txn(payload=20_000)
    m = machine(tmp_path)
    apply_all(m, _chunks_of(big, S1))
    m.store.publish()
    before = file_digests(tmp_path)
    apply_all(m, _chunks_of(big, S2))
    assert m.stats.skipped_txns == 1
    assert file_digests(tmp_path) == before


def test_undecodable_entry_is_counted_and_ignored(tmp_path: Path) -> None:
    m = machine(tmp_path)
    m.apply(b"\x01\x01\x00")
    m.apply(b"\x09\x01")
    assert m.stats.bad_entries == 2
    assert m.store.segments() == []


def test_source_config_with_start_gtid_set_on_an_empty_store(tmp_path: Path) -> None:
    m = machine(tmp_path)
    src = entries.SourceConfig("h", 3306, "u", "enc", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5", False, True)
    m.apply(entries.encode(src))
    assert m.store.purged_gtids == GtidSet.parse(src.start_gtid_set)
    stream = SourceStream()
    stream.gno = 5
    item = stream.txn()
    apply_all(m, entries_for([item], session=S1))
    m.apply(entries.encode(src))  # a later repeat (journal replay) must not touch the data
    assert m.store.committed_gtids == GtidSet.parse("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-6")


def test_the_configuration_files_source_applies_only_to_a_cluster_without_one(tmp_path: Path) -> None:
    """The log a full restart can produce: the file's source (tls disabled), a later PUT
    /source (required), then the file's source proposed again by a leader that had not yet
    applied the PUT (its applied state lagged the committed log). Log order decides."""
    from_file = entries.SourceConfig("h", 3306, "u", "enc", "", False, True, "disabled", initial=True)
    put = entries.SourceConfig("h", 3306, "u", "enc2", "", False, True, "required")
    m = machine(tmp_path)
    m.apply(entries.encode(from_file))
    assert m.state.source == replace(from_file, initial=False)  # stored like any setting
    m.apply(entries.encode(put))
    assert m.state.source == put
    m.apply(entries.encode(from_file))
    assert m.state.source == put
    m.apply(entries.encode(replace(put, running=False)))  # stop/start build on the stored one
    assert m.state.source == replace(put, running=False)


def test_source_config_while_a_chunk_opened_the_first_segment(tmp_path: Path) -> None:
    """A SourceConfig between chunks: the store has a segment (not yet published data)."""
    stream = SourceStream()
    stream.gno = 5
    big = stream.txn(payload=20_000)
    chunks = _chunks_of(big, S1)
    m = machine(tmp_path)
    m.apply(chunks[0])
    src = entries.SourceConfig("h", 3306, "u", "enc", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5", False, True)
    m.apply(entries.encode(src))  # must not raise on the apply path
    apply_all(m, chunks[1:])
    assert m.store.is_committed(big.txn.gtid)


def test_replicated_state_round_trips(tmp_path: Path) -> None:
    m = machine(tmp_path)
    m.apply(entries.encode(entries.MemberInfo("kb-0", "a:1", "http://a")))
    m.apply(entries.encode(entries.MemberInfo("kb-1", "b:1", "http://b")))
    m.apply(entries.encode(entries.MemberInfo("kb-1", "b:1", "http://b", removed=True)))
    m.apply(entries.encode(entries.SourceConfig("h", 1, "u", "e", "", True, False)))
    apply_all(m, entries_for([SourceStream().txn()], session=S2))
    back = ReplicatedState.from_json(m.state.to_json())
    assert back.session == S2 and back.seq == 0
    assert list(back.members) == ["kb-0"]
    assert back.source == m.state.source


# ---------------------------------------------------------------------------------------------
# Property: random logs of interleaved, gapped, restarted sessions.

POOL = rich_history()[:24]
POOL_BY_GTID = {i.txn.gtid: i.txn.data for i in POOL}


@st.composite
def random_logs(draw: st.DrawFn) -> list[bytes]:
    """Sessions (growing) that each resend a slice of the source history, interleaved the way
    a leader change interleaves them, with some entries lost and some barriers."""
    n_sessions = draw(st.integers(1, 4))
    per_session: list[list[bytes]] = []
    for i in range(n_sessions):
        start = draw(st.integers(0, len(POOL) - 1))
        count = draw(st.integers(1, 10))
        session = entries.Session(1 + i // 2, i % 2)
        made = entries_for(POOL[start : start + count], session=session, entry_bytes=ENTRY_BYTES)
        if draw(st.booleans()):
            made.insert(0, entries.encode(entries.Barrier(session)))
        per_session.append(made)
    log: list[bytes] = []
    cursors = [0] * n_sessions
    opened = 1
    while any(c < len(s) for c, s in zip(cursors, per_session, strict=True)):
        if opened < n_sessions and draw(st.booleans()):
            opened += 1
        live = [i for i in range(opened) if cursors[i] < len(per_session[i])]
        if not live:
            opened = n_sessions
            continue
        i = draw(st.sampled_from(live))
        if draw(st.integers(0, 15)) != 0:  # sometimes an entry is never committed
            log.append(per_session[i][cursors[i]])
        cursors[i] += 1
    return log


def describe(log: list[bytes]) -> str:
    """A readable summary of a log for failure reports."""
    out = []
    for p in log:
        e = entries.decode(p)
        if isinstance(e, entries.TxnBatch):
            gnos = ",".join(t.gtid.rsplit(":", 1)[1] for t in e.txns)
            out.append(f"B{e.session.term}.{e.session.counter}#{e.seq}[{gnos}]{e.source_file[-1]}")
        elif isinstance(e, entries.TxnChunk):
            flags = ("f" if e.first else "") + ("l" if e.last else "")
            out.append(
                f"C{e.session.term}.{e.session.counter}#{e.seq}[{e.txn.gtid.rsplit(':', 1)[1]}{flags}]"
            )
        elif isinstance(e, entries.Barrier):
            out.append(f"X{e.session.term}.{e.session.counter}")
    return " ".join(out)


def stored_transactions(m: StateMachine) -> list[tuple[str, bytes]]:
    out = []
    for seg in m.store.segments():
        for e in m.store.index(seg.name):
            out.append((e.gtid, m.store.read(seg.name, e.offset, e.length)))
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=random_logs(), kill_at=st.floats(0, 1))
def test_random_logs_are_deterministic_idempotent_and_exact(log: list[bytes], kill_at: float) -> None:
    note(describe(log))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        a, b = machine(root / "a"), machine(root / "b")
        apply_all(a, log)
        apply_all(b, log)
        a.store.close()  # an unfinished chunked transaction at the end is discarded
        b.store.close()
        stored = stored_transactions(a)
        gtids = [g for g, _ in stored]
        assert len(set(gtids)) == len(gtids), "a transaction was stored twice"
        for gtid, data in stored:
            assert POOL_BY_GTID[gtid] == data
        assert a.store.committed_gtids == (GtidSet.parse(",".join(gtids)) if gtids else GtidSet())
        assert stored_body(a) == b"".join(d for _, d in stored)
        want = file_digests(root / "a")
        assert file_digests(root / "b") == want
        # Killed after k entries, restarted, the whole log replayed: identical files.
        k = int(kill_at * len(log))
        c = machine(root / "c")
        apply_all(c, log[:k])
        if c.store._data is not None:
            c.store._data.flush()
        shutil.copytree(root / "c", root / "killed")
        c.store.close()
        again = machine(root / "killed")
        apply_all(again, log)
        again.store.close()
        assert file_digests(root / "killed") == want


def test_store_staging_dropped_under_a_chunk_never_commits_a_partial_transaction(tmp_path: Path) -> None:
    """A catch-up import discards the store's staged pieces (import_data): the rest of the
    chunks must not be committed as if they were the whole transaction."""
    stream = SourceStream()
    small, big = stream.txn(), stream.txn(payload=20_000)
    m = machine(tmp_path)
    apply_all(m, entries_for([small], session=S1))
    chunks = _chunks_of(big, S1, first_seq=1)
    apply_all(m, chunks[:2])
    m.store.discard_staged()  # what import_data does to a staged transaction
    apply_all(m, chunks[2:])
    assert not m.store.is_committed(big.txn.gtid)
    assert stored_body(m) == small.txn.data
    assert not m.in_chunk
    # The next session carries on normally.
    after = stream.txn()
    apply_all(m, entries_for([big, after], session=S2))
    assert stored_body(m) == small.txn.data + big.txn.data + after.txn.data


def test_replicated_state_replaced_mid_chunk_does_not_break_the_next_batch(tmp_path: Path) -> None:
    """A snapshot install replaces `state` (no chunk in it) while the store has staged pieces."""
    stream = SourceStream()
    small, big, after = stream.txn(), stream.txn(payload=20_000), stream.txn()
    m = machine(tmp_path)
    apply_all(m, entries_for([small], session=S1))
    chunks = _chunks_of(big, S1, first_seq=1)
    apply_all(m, chunks[:2])
    m.state = ReplicatedState.from_json(m.state.to_json())
    apply_all(m, entries_for([after], session=S1, first_seq=m.state.seq + 1))
    assert stored_body(m) == small.txn.data + after.txn.data
    assert not m.store.has_staged


def test_member_caught_up_by_import_then_applying_the_rest_stays_identical(
    tmp_path: Path, items: list[SourceTxn]
) -> None:
    """Snapshot install on a new member: copy the peer's files, take its replicated state,
    then apply the entries after the snapshot like everyone else."""
    log = leader_change_log(items)
    for snap in range(0, len(log), 5):
        peer = machine(tmp_path / f"peer{snap}")
        apply_all(peer, log[:snap])
        if peer.in_chunk:
            continue
        peer.store.publish()
        new = machine(tmp_path / f"new{snap}")
        for seg in peer.store.segments():
            for a in range(0, seg.size, 777):  # pieces that split events and transactions
                new.store.import_data(seg.name, a, peer.store.read(seg.name, a, min(777, seg.size - a)))
            new.store.finish_import(seg.name, source_file=seg.source_file)
        new.state = ReplicatedState.from_json(peer.state.to_json())
        apply_all(peer, log[snap:])
        apply_all(new, log[snap:])
        peer.store.close()
        new.store.close()
        assert file_digests(tmp_path / f"new{snap}") == file_digests(tmp_path / f"peer{snap}"), snap


def test_reapplying_any_prefix_to_a_complete_store_changes_nothing(
    tmp_path: Path, items: list[SourceTxn]
) -> None:
    log = leader_change_log(items)
    m = machine(tmp_path)
    apply_all(m, log)
    m.store.close()
    want = file_digests(tmp_path)
    for k in range(len(log) + 1):
        again = machine(tmp_path)
        apply_all(again, log[:k])
        assert again.stats.applied_txns == 0
        again.store.close()
        assert file_digests(tmp_path) == want, k
    live = machine(tmp_path)  # and without a restart: the same prefix again on a live machine
    apply_all(live, log)
    apply_all(live, log[: len(log) // 2])
    assert live.stats.applied_txns == 0
    live.store.close()
    assert file_digests(tmp_path) == want
