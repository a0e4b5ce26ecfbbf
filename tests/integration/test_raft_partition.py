"""Real network partitions: three kingbus-node processes, each in a network namespace of its
own (tests/support/netns.py), cut off by firewall rules inside a member's namespace.

A cut-off follower must not depose the leader when the network heals (pre-vote); a cut-off
leader must be replaced by the majority, and on healing must follow the new leader, with one
leader and one term everywhere."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kingbus.devenv.localcluster import Cluster, Member, wait_until
from tests.support.netns import Namespaces, namespaces

PORTS = (7100, 9595, 3306)  # the same in every namespace


@pytest.fixture
def spaced(tmp_path: Path) -> Iterator[tuple[Cluster, Namespaces]]:
    with namespaces(3) as spaces:
        cluster = Cluster(tmp_path / "cluster", 3, hosts=[spaces.address(i) for i in range(3)], ports=PORTS)
        for i, member in enumerate(cluster.members):
            member.launcher = spaces.launcher(i)
        cluster.start()
        try:
            yield cluster, spaces
        finally:
            cluster.stop()


def _settled(cluster: Cluster) -> tuple[Member, int]:
    """The leader every member follows, and its term."""

    def agreed() -> tuple[Member, int] | None:
        seen = [m.status() for m in cluster.members]
        leaders = {s["leader"] for s in seen}
        terms = {s["term"] for s in seen}
        if len(leaders) == 1 and None not in leaders and len(terms) == 1:
            (name,) = leaders  # a member's name once names are exchanged, its Raft address before
            return next(m for m in cluster.members if name in (m.name, m.raft)), terms.pop()
        return None

    found: tuple[Member, int] = wait_until(agreed, timeout=60, what=lambda: _roles(cluster))
    return found


def _roles(cluster: Cluster) -> str:
    out = []
    for m in cluster.members:
        try:
            s = m.status()
            out.append(f"{m.name}: {s['role']} term {s['term']} leader {s['leader']}")
        except Exception as exc:
            out.append(f"{m.name}: {exc}")
    return "every member to follow one leader at one term; " + "; ".join(out)


def test_a_follower_cut_off_by_the_network_does_not_depose_the_leader(
    spaced: tuple[Cluster, Namespaces],
) -> None:
    cluster, spaces = spaced
    leader, term = _settled(cluster)
    i, follower = next((i, m) for i, m in enumerate(cluster.members) if m is not leader)
    spaces.partition(i)
    try:
        time.sleep(4.0)  # several election timeouts (0.4-1.4 s)
        assert follower.status()["role"] != "leader"
        assert leader.status()["role"] == "leader"
    finally:
        spaces.heal(i)
    back = (leader.name, leader.raft)
    wait_until(lambda: follower.status()["leader"] in back, timeout=30, what="the follower to rejoin")
    time.sleep(2.0)
    after, after_term = _settled(cluster)
    assert (after.name, after_term) == (leader.name, term), _roles(cluster)
    # While cut off it asked, once per election timeout; the rounds are counted in /metrics.
    wait_until(lambda: _pre_vote_rounds(follower) >= 2, timeout=10, what="its pre-vote rounds counted")


def _pre_vote_rounds(member: Member) -> float:
    with urllib.request.urlopen(f"{member.admin}/metrics", timeout=10) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith("kingbus_raft_pre_vote_rounds_total "):
            return float(line.split()[1])
    raise AssertionError("kingbus_raft_pre_vote_rounds_total is not exported")


def test_a_leader_cut_off_is_replaced_and_follows_the_new_one_after_healing(
    spaced: tuple[Cluster, Namespaces],
) -> None:
    cluster, spaces = spaced
    old, term = _settled(cluster)
    i = cluster.members.index(old)
    spaces.partition(i)
    try:
        rest = [m for m in cluster.members if m is not old]
        wait_until(
            lambda: any(m.status()["role"] == "leader" for m in rest),
            timeout=30,
            what="a leader among the two",
        )
    finally:
        spaces.heal(i)
    new, new_term = _settled(cluster)
    assert new is not old and new_term > term, _roles(cluster)
    assert old.status()["role"] == "follower"
