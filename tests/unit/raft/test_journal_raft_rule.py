"""The tentative cut: Raft's truncation rule applied under pysyncobj's follower call sequence.

`follower_append` below repeats, call for call, what pysyncobj 0.3.17's follower does with an
append_entries message (`SyncObj.__onMessageReceived`, `__getEntries`, `__deleteEntriesFrom`,
and the commit clamp that ends the handler).  The property tests drive a journal with random
duplicated, reordered, stale and conflicting messages through it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pysyncobj.journal import MemoryJournal

from kingbus.raft.journal import DiskJournal, Entry, JournalOptions


@dataclass
class Follower:
    """The part of a pysyncobj follower's state an append_entries handler touches."""

    log: Any  # a DiskJournal or pysyncobj's MemoryJournal
    commit: int = 1
    acked: int = 0  # highest index this follower acknowledged with success
    seen_len_during_handler: list[int] = field(default_factory=list)


def follower_append(
    f: Follower, prev_idx: int, prev_term: int, entries: list[Entry], leader_commit: int
) -> bool:
    """pysyncobj 0.3.17's follower path for a regular append_entries; True when it acks."""
    first = f.log[0][1]
    if prev_idx < first:
        return False
    prev_entries = f.log[prev_idx - first :]
    if not prev_entries:
        return False
    if prev_entries[0][2] != prev_term:
        return False
    if len(prev_entries) > 1:
        f.log.deleteEntriesFrom(prev_idx + 1 - first)
    for entry in entries:
        f.log.add(*entry)
    next_idx = entries[-1][1] + 1 if entries else prev_idx + 1
    f.acked = max(f.acked, next_idx - 1)
    f.seen_len_during_handler.append(f.log[-1][1])
    if f.commit > f.log[-1][1]:
        f.commit = f.log[-1][1]
    if leader_commit > f.commit:
        f.commit = min(leader_commit, f.log[-1][1])
    f.log.setRaftCommitIndex(f.commit)
    return True


def entries_of(log: Any) -> list[Entry]:
    return [(e[0], e[1], e[2]) for e in log[0 : len(log)]]


def leader_log(terms: list[int]) -> list[Entry]:
    return [(b"L%d-t%d" % (i, t), i, t) for i, t in enumerate(terms, start=1)]


def new_journal(tmp_path: Path, name: str = "j", **kwargs: Any) -> DiskJournal:
    return DiskJournal(tmp_path / name, JournalOptions(fsync="never", **kwargs))


# ---------------------------------------------------------------------- deterministic cases
def test_stale_prefix_message_keeps_the_acknowledged_tail(tmp_path: Path) -> None:
    log = leader_log([1] * 10)
    j = new_journal(tmp_path)
    f = Follower(j)
    j.add(*log[0])
    assert follower_append(f, 1, 1, log[1:10], leader_commit=8)  # acks up to 10
    assert f.acked == 10
    # A stale message from earlier: prev=3, entries 4..6.
    assert follower_append(f, 3, 1, log[3:6], leader_commit=5)
    assert entries_of(j) == log  # nothing lost
    assert j.kept_tail_events == 1
    assert j.kept_entries == 7  # 4..10 would have been deleted by a stock journal
    assert j.physical_truncations == 0
    # During the handler the journal showed exactly what the message verified (Raft's
    # "index of last new entry") ...
    assert f.seen_len_during_handler[-1] == 6
    # ... and after it the whole acknowledged log.
    assert len(j) == 10
    assert j[-1] == log[9]
    j._destroy()


def test_stock_memory_journal_loses_the_acknowledged_tail() -> None:
    """The same replay against pysyncobj's own journal: this is the bug being fixed."""
    log = leader_log([1] * 10)
    stock = MemoryJournal()
    f = Follower(stock)
    stock.add(*log[0])
    follower_append(f, 1, 1, log[1:10], leader_commit=8)
    follower_append(f, 3, 1, log[3:6], leader_commit=5)
    assert f.acked == 10
    assert len(stock) == 6  # entries 7..10 were acknowledged and are gone


def test_conflicting_term_truncates_exactly_there(tmp_path: Path) -> None:
    old = leader_log([1, 1, 1, 2, 2, 2, 2])
    j = new_journal(tmp_path, segment_bytes=60)  # several segments, so files are unlinked
    for e in old:
        j.add(*e)
    f = Follower(j)
    new = leader_log([1, 1, 1, 2, 3, 3])
    assert follower_append(f, 3, 1, new[3:6], leader_commit=6)
    assert entries_of(j) == new
    assert j.physical_truncations == 1
    assert j.truncated_entries == 3  # 5, 6, 7 of term 2
    assert j.kept_tail_events == 1  # entry 4 was kept before the conflict at 5
    j._destroy()
    k = new_journal(tmp_path, segment_bytes=60)
    assert entries_of(k) == new
    k._destroy()


def test_conflict_at_the_cut_point_keeps_nothing(tmp_path: Path) -> None:
    j = new_journal(tmp_path)
    for e in leader_log([1, 1, 2, 2]):
        j.add(*e)
    f = Follower(j)
    new = leader_log([1, 1, 3])
    assert follower_append(f, 2, 1, new[2:], leader_commit=3)
    assert entries_of(j) == new
    assert (j.kept_tail_events, j.physical_truncations, j.truncated_entries) == (0, 1, 2)
    j._destroy()


def test_heartbeat_with_an_old_prev_does_not_cut_and_does_not_commit_the_unverified_tail(
    tmp_path: Path,
) -> None:
    # The follower holds 1..3 of the leader's term 1 and 4..6 from a deposed leader (term 2).
    j = new_journal(tmp_path)
    for e in leader_log([1, 1, 1, 2, 2, 2]):
        j.add(*e)
    f = Follower(j)
    # The new leader (term 3) has different entries at 4..6 and a commit index of 6; its
    # heartbeat names prev=3 and carries nothing.  Raft: commit = min(6, 3).
    assert follower_append(f, 3, 1, [], leader_commit=6)
    assert f.commit == 3
    assert len(j) == 6  # the unverified tail is kept, as Raft says, until a conflict shows up
    assert j.physical_truncations == 0


def test_exact_duplicate_of_the_tail_rewrites_nothing(tmp_path: Path) -> None:
    log = leader_log([1] * 6)
    j = new_journal(tmp_path)
    for e in log:
        j.add(*e)
    size = j.bytes_on_disk()
    f = Follower(j)
    assert follower_append(f, 2, 1, log[2:6], leader_commit=6)
    assert j.bytes_on_disk() == size
    assert entries_of(j) == log
    assert not j.tentative
    assert j.kept_entries == 4
    j._destroy()


def test_message_extending_past_the_kept_tail_appends(tmp_path: Path) -> None:
    log = leader_log([1] * 8)
    j = new_journal(tmp_path)
    for e in log[:5]:
        j.add(*e)
    f = Follower(j)
    assert follower_append(f, 2, 1, log[2:8], leader_commit=6)
    assert entries_of(j) == log
    assert j.physical_truncations == 0
    j._destroy()


def test_same_term_different_bytes_is_treated_as_a_conflict(tmp_path: Path) -> None:
    j = new_journal(tmp_path)
    for e in leader_log([1, 1, 1]):
        j.add(*e)
    j.deleteEntriesFrom(1)
    j.add(b"forged", 2, 1)
    assert j.identity_mismatches == 1
    assert j.physical_truncations == 1
    assert entries_of(j) == [leader_log([1])[0], (b"forged", 2, 1)]
    j._destroy()


def test_tentative_state_is_settled_by_every_mutating_call(tmp_path: Path) -> None:
    def setup() -> DiskJournal:
        j = new_journal(tmp_path, name=f"j{len(list(tmp_path.iterdir()))}")
        for e in leader_log([1] * 5):
            j.add(*e)
        j.deleteEntriesFrom(2)
        assert len(j) == 2
        assert j[-1][1] == 2
        assert j.tentative
        return j

    calls: list[Callable[[DiskJournal], None]] = [
        lambda j: j.setRaftCommitIndex(1),
        lambda j: j.setCurrentTerm(4, None),
        lambda j: j.onOneSecondTimer(),
        lambda j: j.deleteEntriesFrom(4),
        lambda j: j.deleteEntriesTo(1),
    ]
    for call in calls:
        j = setup()
        call(j)
        assert j[-1][1] >= 4, call
        assert j.last_index == 5
        j._destroy()


def test_crash_in_the_tentative_state_reopens_the_whole_log(tmp_path: Path) -> None:
    j = new_journal(tmp_path)
    log = leader_log([1] * 5)
    for e in log:
        j.add(*e)
    j.deleteEntriesFrom(1)
    j.add(*log[1])
    # no settle: the process dies here
    k = DiskJournal(tmp_path / "j", JournalOptions(fsync="never"))
    assert entries_of(k) == log


def test_on_kept_tail_gets_the_revealed_entries(tmp_path: Path) -> None:
    j = new_journal(tmp_path)
    log = leader_log([1] * 6)
    for e in log:
        j.add(*e)
    seen: list[list[Entry]] = []
    j.on_kept_tail = lambda view: seen.append(list(view))
    f = Follower(j)
    follower_append(f, 1, 1, log[1:3], leader_commit=3)
    assert seen == [log[3:6]]
    j._destroy()


def test_add_at_a_wrong_index_in_the_tentative_state_is_refused(tmp_path: Path) -> None:
    from kingbus.raft.journal import JournalError

    j = new_journal(tmp_path)
    for e in leader_log([1] * 4):
        j.add(*e)
    j.deleteEntriesFrom(1)
    with pytest.raises(JournalError):
        j.add(b"x", 5, 1)
    j._destroy()


# ---------------------------------------------------------------------- property tests
Scenario = tuple[list[Entry], list[Entry], list[tuple[int, int, int]]]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A leader log, the follower's starting log, and messages cut from the leader log.

    The leader log is `shared` entries of term 1 followed by entries of terms >= 3.  The
    follower starts with the shared prefix, possibly followed by a stale tail of term 2 left by
    a deposed leader.  A message is (prev, last, leader_commit): entries prev+1..last.
    """
    n = draw(st.integers(2, 30))
    shared = draw(st.integers(1, n))
    terms = [1] * shared
    term = 3
    for _ in range(n - shared):
        term += draw(st.integers(0, 1))
        terms.append(term)
    log = leader_log(terms)
    stale_len = draw(st.integers(0, 6))
    start = log[:shared] + [(b"stale-%d" % i, i, 2) for i in range(shared + 1, shared + 1 + stale_len)]
    messages = []
    for _ in range(draw(st.integers(1, 25))):
        prev = draw(st.integers(1, n))
        last = draw(st.integers(prev, n))
        commit = draw(st.integers(1, n))
        messages.append((prev, last, commit))
    return log, start, messages


def run_scenario(f: Follower, log: list[Entry], messages: list[tuple[int, int, int]]) -> None:
    for prev, last, leader_commit in messages:
        follower_append(f, prev, log[prev - 1][2], log[prev:last], leader_commit)
        # Raft safety: what the follower considers committed is the leader's log ...
        content = entries_of(f.log)
        for i in range(1, f.commit + 1):
            assert content[i - 1] == log[i - 1], (i, f.commit)
        # ... and nothing it acknowledged has gone (the property the stock journal breaks).
        assert len(content) >= f.acked
        for i in range(1, f.acked + 1):
            assert content[i - 1] == log[i - 1]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenarios(), st.sampled_from([0, 40, 1 << 20]))
def test_random_replays_never_lose_acknowledged_or_commit_unverified_entries(
    tmp_path_factory: pytest.TempPathFactory,
    scenario: tuple[list[Entry], list[Entry], list[tuple[int, int, int]]],
    recent_bytes: int,
) -> None:
    """Also with the in-memory cache of recent entries: none, a few, all of them."""
    log, start, messages = scenario
    j = DiskJournal(
        tmp_path_factory.mktemp("prop") / "j",
        JournalOptions(fsync="never", segment_bytes=200, recent_bytes=recent_bytes),
    )
    for e in start:
        j.add(*e)
    run_scenario(Follower(j), log, messages)
    # After any sequence of messages from one leader, the log is consistent with it wherever
    # they overlap, and a restart sees the same thing.
    content = entries_of(j)
    j._destroy()
    k = DiskJournal(j.path, JournalOptions(fsync="never", segment_bytes=200))
    assert entries_of(k) == content
    k._destroy()


def test_the_property_fails_for_the_stock_journal() -> None:
    """The same checker flags pysyncobj's MemoryJournal: the property test can fail."""
    log = leader_log([2] * 8)
    stock = MemoryJournal()
    stock.add(*log[0])
    with pytest.raises(AssertionError):
        run_scenario(Follower(stock), log, [(1, 8, 8), (2, 4, 8)])
