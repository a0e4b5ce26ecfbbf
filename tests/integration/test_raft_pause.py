"""A follower process paused (SIGSTOP) for several election timeouts, then resumed: real
kingbus-node processes on 127.0.0.1-3. Its election timer has long passed when it runs again;
without pre-vote it called an election at once and its higher term deposed the leader."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from kingbus.devenv.localcluster import running_cluster, wait_until


def test_a_paused_follower_resumes_without_an_election(tmp_path: Path) -> None:
    with running_cluster(tmp_path / "cluster", 3) as cluster:
        leader = cluster.leader(timeout=60)
        wait_until(
            lambda: all(m.status()["leader"] == leader.name for m in cluster.members),
            timeout=30,
            what="every member to follow the leader",
        )
        term = leader.status()["term"]
        follower = next(m for m in cluster.members if m is not leader)
        assert follower.process is not None
        os.killpg(follower.process.pid, signal.SIGSTOP)
        try:
            time.sleep(4.0)  # the default election timeout is 0.4-1.4 s
        finally:
            os.killpg(follower.process.pid, signal.SIGCONT)
        wait_until(
            lambda: follower.status()["leader"] == leader.name, timeout=30, what="the follower to rejoin"
        )
        time.sleep(2.0)  # an election it called would show by now
        seen = {m.name: (m.status()["role"], m.status()["term"]) for m in cluster.members}
        assert seen[leader.name] == ("leader", term), seen
        assert all(t == term for _, t in seen.values()), seen
        assert "pre-vote won" not in follower.log_tail(200)
