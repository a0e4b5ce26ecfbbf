"""Pre-vote (Raft thesis §9.6): a member asks whether it could win before it calls an election.

pysyncobj 0.3.17 has no pre-vote. A member cut off from the others (a partition, a paused
process, a dropped link) times out again and again, raising its term each time; the moment it
is reachable again its higher term makes a healthy leader step down, and the cluster holds an
election it did not need (the leader's source session and every replica stream of that leader
restart with it). With pre-vote, a member whose election timer fires first asks the others for
a *pre-vote*, which changes no one's term; it calls the real election only with a majority of
grants. A member grants one only if it has not heard from a leader within the shortest
election timeout and the asker's log is at least as up to date as its own, so a cut-off member
never gets a majority while a leader is alive, and its term stays where it was.

This module holds the decisions (facts in, values out); `kingbus.raft.tuned` wires them into
pysyncobj's tick and message handling. The messages are plain dicts that a member without
pre-vote ignores (pysyncobj drops message types it does not know).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

REQUEST = "kb_pre_vote"
REPLY = "kb_pre_vote_reply"


class LogPosition(NamedTuple):
    """The term and index of a log's last entry: compared as Raft compares logs."""

    last_term: int
    last_index: int


def grants(
    *,
    candidate: LogPosition,
    own: LogPosition,
    is_leader: bool,
    seconds_since_leader: float | None,
    min_election_timeout: float,
) -> bool:
    """Whether this member would vote for the asker now. A leader never grants (it is alive);
    a follower that heard a leader within the shortest election timeout does not either (that
    leader is alive as far as it knows); otherwise Raft's election restriction decides: the
    asker's log must be at least as up to date (last term, then last index)."""
    if is_leader:
        return False
    if seconds_since_leader is not None and seconds_since_leader < min_election_timeout:
        return False
    return candidate >= own


def request(round_id: int, term: int, last: LogPosition) -> dict[str, Any]:
    """The pre-vote request; `term` is the term the asker would campaign in."""
    return {
        "type": REQUEST,
        "round": round_id,
        "term": term,
        "last_log_term": last.last_term,
        "last_log_index": last.last_index,
    }


def reply(round_id: int, term: int, granted: bool) -> dict[str, Any]:
    """The answer, with the answerer's current term (an asker behind it adopts it, so that
    its next campaign is not refused for a stale term)."""
    return {"type": REPLY, "round": round_id, "term": term, "granted": granted}


def candidate_position(message: dict[str, Any]) -> LogPosition:
    return LogPosition(int(message["last_log_term"]), int(message["last_log_index"]))


@dataclass
class Round:
    """One pre-vote round of this member: who granted, and how many grants win it (a strict
    majority of the voting members, counting itself)."""

    round_id: int
    voters: int
    granted: set[Any] = field(default_factory=set)

    @property
    def won(self) -> bool:
        return len(self.granted) + 1 > self.voters / 2

    def count(self, voter: Any, message: dict[str, Any]) -> bool:
        """Counts a reply; True when it makes the round won. Replies to other rounds, refusals
        and repeated grants change nothing."""
        if message.get("round") != self.round_id or not message.get("granted") or self.won:
            return False
        self.granted.add(voter)
        return self.won
