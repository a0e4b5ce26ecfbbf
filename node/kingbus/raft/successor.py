"""Which follower a leader hands leadership to (pure: facts in, a choice or a reason out).

pysyncobj, asked to transfer leadership without a target, picks the follower with the highest
matched index.  It cannot know that a follower whose store is still catching up from its peers
(`/status` `catching_up`) ignores the TimeoutNow (`kingbus.raft.tuned`): such a member could
neither serve replicas nor resume the source, so the transfer would only time out.  The node
asks every follower for its status and lets this module decide; a named target that is
catching up is refused at once, with the reason, instead of after the transfer's timeout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Follower:
    """What the leader knows about one follower when a transfer is asked for."""

    raft: str
    name: str
    connected: bool  # the leader's Raft connection to it is up
    match_index: int
    # From the follower's own /status; None when it could not be asked (no admin URL yet, or
    # no answer in time): a member the leader cannot ask is not handed leadership blindly.
    catching_up: bool | None


@dataclass(frozen=True, slots=True)
class Choice:
    raft: str | None  # the follower to hand leadership to, or None with a reason
    reason: str = ""


def _why_not(follower: Follower) -> str | None:
    if not follower.connected:
        return "not connected"
    if follower.catching_up is None:
        return "status unknown"
    if follower.catching_up:
        return "catching up from its peers"
    return None


def choose_successor(followers: Sequence[Follower], named: str | None = None) -> Choice:
    """The follower to transfer to.  With `named` (a Raft address), that follower if it is
    eligible; without, the eligible follower that matched the most of the log (ties: by
    name, so the choice is reproducible)."""
    if named is not None:
        found = next((f for f in followers if f.raft == named), None)
        if found is None:
            return Choice(None, f"{named} is not a follower of this leader")
        # A named member whose status is unknown is still tried: someone asked for it, and
        # the transfer itself tells whether it takes over.
        if not found.connected or found.catching_up:
            return Choice(None, f"{found.name} cannot take over: {_why_not(found)}")
        return Choice(found.raft)
    eligible = [f for f in followers if _why_not(f) is None]
    if not eligible:
        if not followers:
            return Choice(None, "there is no other member to hand leadership to")
        detail = "; ".join(f"{f.name}: {_why_not(f)}" for f in sorted(followers, key=lambda f: f.name))
        return Choice(None, f"no follower can take over ({detail})")
    best = min(eligible, key=lambda f: (-f.match_index, f.name))
    return Choice(best.raft)
