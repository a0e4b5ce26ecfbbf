"""The leader's choice of a successor (kingbus.raft.successor): every rule, case by case."""

from __future__ import annotations

from kingbus.raft.successor import Choice, Follower, choose_successor


def follower(
    name: str, match: int = 100, *, connected: bool = True, catching_up: bool | None = False
) -> Follower:
    return Follower(
        raft=f"127.0.0.{name[-1]}:7000",
        name=name,
        connected=connected,
        match_index=match,
        catching_up=catching_up,
    )


def test_the_follower_that_matched_most_is_chosen() -> None:
    assert choose_successor([follower("kb1", 90), follower("kb2", 100)]) == Choice("127.0.0.2:7000")


def test_ties_go_to_the_first_name() -> None:
    assert choose_successor([follower("kb2", 100), follower("kb1", 100)]) == Choice("127.0.0.1:7000")


def test_a_catching_up_follower_is_passed_over_even_when_it_matched_most() -> None:
    chosen = choose_successor([follower("kb1", 500, catching_up=True), follower("kb2", 10)])
    assert chosen == Choice("127.0.0.2:7000")


def test_disconnected_and_unknown_followers_are_passed_over() -> None:
    followers = [
        follower("kb1", 500, connected=False),
        follower("kb2", 400, catching_up=None),
        follower("kb3", 1),
    ]
    assert choose_successor(followers) == Choice("127.0.0.3:7000")


def test_no_eligible_follower_gives_each_ones_reason() -> None:
    followers = [
        follower("kb2", catching_up=True),
        follower("kb1", connected=False),
        follower("kb3", catching_up=None),
    ]
    chosen = choose_successor(followers)
    assert chosen.raft is None
    assert chosen.reason == (
        "no follower can take over (kb1: not connected; kb2: catching up from its peers; kb3: status unknown)"
    )


def test_a_single_member_has_no_one_to_hand_over_to() -> None:
    assert choose_successor([]) == Choice(None, "there is no other member to hand leadership to")


def test_a_named_eligible_follower_is_chosen_even_if_another_matched_more() -> None:
    chosen = choose_successor([follower("kb1", 10), follower("kb2", 100)], named="127.0.0.1:7000")
    assert chosen == Choice("127.0.0.1:7000")


def test_a_named_follower_that_is_catching_up_is_refused_at_once() -> None:
    chosen = choose_successor([follower("kb1", catching_up=True)], named="127.0.0.1:7000")
    assert chosen == Choice(None, "kb1 cannot take over: catching up from its peers")


def test_a_named_disconnected_follower_is_refused() -> None:
    chosen = choose_successor([follower("kb1", connected=False)], named="127.0.0.1:7000")
    assert chosen == Choice(None, "kb1 cannot take over: not connected")


def test_a_named_follower_whose_status_is_unknown_is_still_tried() -> None:
    chosen = choose_successor([follower("kb1", catching_up=None)], named="127.0.0.1:7000")
    assert chosen == Choice("127.0.0.1:7000")


def test_a_name_that_is_not_a_follower_is_refused() -> None:
    chosen = choose_successor([follower("kb1")], named="127.0.0.9:7000")
    assert chosen == Choice(None, "127.0.0.9:7000 is not a follower of this leader")
