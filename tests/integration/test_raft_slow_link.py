"""A follower behind a slow link (a real one: a token-bucket filter on its veth, see
tests/support/netns.py): the leader must hold back what it sends that follower instead of
queueing the whole backlog, the majority must go on committing at the source's pace, and the
slow follower must end up with every transaction, byte-identical, without an election.

Three kingbus-node processes in network namespaces of their own; a MySQL 9.7 source in the
root namespace, listening on every address, preloaded with 96 MiB of 1 MiB transactions.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kingbus.devenv import mysql
from kingbus.devenv.localcluster import Cluster, Member, wait_until
from tests.integration.test_ingest import assert_identical_to_source
from tests.support import MySQLServerFactory
from tests.support.netns import Namespaces, namespaces

pytestmark = [pytest.mark.mysql, pytest.mark.cluster, pytest.mark.slow]

PORTS = (7100, 9595, 3306)  # the same in every namespace
TRANSACTIONS = 96
ROW_BYTES = 1024 * 1024
SLOW_RATE = "48mbit"  # ~6 MB/s toward the slow follower: 96 MiB take ~17 s to reach it


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


def _preloaded_source(mysql_server: MySQLServerFactory) -> mysql.MySQLServer:
    source = mysql_server(extra_args=["--bind-address=*"])
    source.create_replication_user()
    source.execute("CREATE DATABASE flow")
    source.execute("CREATE TABLE flow.blobs (id INT PRIMARY KEY, body LONGBLOB)")
    for i in range(TRANSACTIONS):
        # Random bytes: nothing on the way may shrink them.
        source.execute("INSERT INTO flow.blobs VALUES (%s, %s)", (i, os.urandom(ROW_BYTES)))
    return source


def _slow_down_link_to(spaces: Namespaces, i: int) -> None:
    """Everything the bridge forwards to member i leaves through the hub's end of its veth."""
    subprocess.run(
        ["ip", "netns", "exec", spaces.hub, "tc", "qdisc", "add", "dev", f"{spaces.tag}-{i}h", "root",
         "tbf", "rate", SLOW_RATE, "burst", "64kb", "latency", "2s"],
        check=True,
        capture_output=True,
    )  # fmt: skip


def _metric(member: Member, name: str) -> float:
    with urllib.request.urlopen(f"{member.admin}/metrics", timeout=10) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not exported")


def test_a_follower_behind_a_slow_link_is_held_back_and_catches_up(
    spaced: tuple[Cluster, Namespaces], mysql_server: MySQLServerFactory
) -> None:
    cluster, spaces = spaced
    source = _preloaded_source(mysql_server)
    target = source.gtid_executed()
    leader = cluster.leader()
    term = leader.status()["term"]
    i, slow = next((i, m) for i, m in enumerate(cluster.members) if m is not leader)
    fast = next(m for m in cluster.members if m not in (leader, slow))
    _slow_down_link_to(spaces, i)

    started = time.monotonic()
    cluster.set_source(spaces.root_address, source.port)
    cluster.wait_committed(target, timeout=120, members=[leader, fast])
    majority_seconds = time.monotonic() - started
    slow_committed = slow.status()["committed_gtid_set"]
    # The slow link really held the follower back while the majority committed everything.
    assert slow_committed != target, f"the slow follower kept up ({majority_seconds:.1f} s)"
    wait_until(
        lambda: _metric(leader, "kingbus_raft_sends_held_total") > 0,
        timeout=10,
        what="the leader to count sends held back",
    )

    cluster.wait_committed(target, timeout=180, members=[slow])
    assert_identical_to_source(cluster, source)
    after = leader.status()
    assert (after["role"], after["term"]) == ("leader", term), "the slow follower caused an election"
