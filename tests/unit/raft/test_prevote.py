"""The pre-vote decisions (kingbus.raft.prevote), exhaustively over small values."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from kingbus.raft import prevote
from kingbus.raft.prevote import LogPosition

positions = st.builds(LogPosition, st.integers(0, 5), st.integers(0, 5))


@given(
    candidate=positions,
    own=positions,
    is_leader=st.booleans(),
    heard=st.none() | st.floats(0, 5, allow_nan=False),
)
def test_grants_only_without_a_live_leader_and_to_a_log_at_least_as_up_to_date(
    candidate: LogPosition, own: LogPosition, is_leader: bool, heard: float | None
) -> None:
    granted = prevote.grants(
        candidate=candidate,
        own=own,
        is_leader=is_leader,
        seconds_since_leader=heard,
        min_election_timeout=1.0,
    )
    leader_alive = is_leader or (heard is not None and heard < 1.0)
    up_to_date = candidate.last_term > own.last_term or (
        candidate.last_term == own.last_term and candidate.last_index >= own.last_index
    )
    assert granted == (not leader_alive and up_to_date)


def test_a_longer_log_of_an_older_term_is_not_up_to_date() -> None:
    args = {"is_leader": False, "seconds_since_leader": None, "min_election_timeout": 1.0}
    assert not prevote.grants(candidate=LogPosition(2, 100), own=LogPosition(3, 1), **args)
    assert prevote.grants(candidate=LogPosition(3, 1), own=LogPosition(2, 100), **args)
    assert prevote.grants(candidate=LogPosition(3, 7), own=LogPosition(3, 7), **args)
    assert not prevote.grants(candidate=LogPosition(3, 6), own=LogPosition(3, 7), **args)


def test_the_shortest_election_timeout_is_the_lease() -> None:
    args = {"candidate": LogPosition(1, 1), "own": LogPosition(1, 1), "is_leader": False}
    assert not prevote.grants(seconds_since_leader=0.399, min_election_timeout=0.4, **args)
    assert prevote.grants(seconds_since_leader=0.4, min_election_timeout=0.4, **args)


def test_a_round_is_won_by_a_strict_majority_counting_the_asker() -> None:
    for voters in range(1, 8):
        round_ = prevote.Round(7, voters)
        needed = voters // 2  # grants from others; the asker's own vote makes it a majority
        replies = [prevote.reply(7, 1, True) for _ in range(voters)]
        won_at = [round_.count(f"n{i}", reply) for i, reply in enumerate(replies[: voters - 1])]
        if voters == 1:
            assert round_.won and won_at == []
        else:
            assert won_at.index(True) == needed - 1 and won_at.count(True) == 1
            assert round_.won


def test_refusals_other_rounds_and_repeats_do_not_count() -> None:
    round_ = prevote.Round(3, voters=5)
    assert not round_.count("a", prevote.reply(3, 1, False))
    assert not round_.count("a", prevote.reply(2, 1, True))  # an earlier round's grant
    assert not round_.count("a", prevote.reply(3, 1, True))
    assert not round_.count("a", prevote.reply(3, 1, True))  # the same voter again
    assert not round_.won
    assert round_.count("b", prevote.reply(3, 1, True))
    assert not round_.count("c", prevote.reply(3, 1, True))  # already won: reported once


def test_messages_carry_what_the_other_side_reads() -> None:
    for round_id, term, last_term, last_index in itertools.product((1, 9), (0, 4), (0, 3), (0, 12)):
        request = prevote.request(round_id, term, LogPosition(last_term, last_index))
        assert request["type"] == prevote.REQUEST and request["round"] == round_id and request["term"] == term
        assert prevote.candidate_position(request) == LogPosition(last_term, last_index)
        reply = prevote.reply(round_id, term, True)
        assert (reply["type"], reply["round"], reply["term"], reply["granted"]) == (
            prevote.REPLY,
            round_id,
            term,
            True,
        )
