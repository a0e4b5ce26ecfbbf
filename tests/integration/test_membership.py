"""Membership changes with real data: a member with an empty disk joins a cluster holding
200+ MB and catches up byte-identical; a member is removed and the cluster goes on."""

from __future__ import annotations

import pytest

from kingbus.devenv import mysql
from kingbus.devenv.localcluster import ApiError, Cluster, http, wait_until
from kingbus.devenv.workload import large_txn_load, small_txn_load
from tests.integration.stored import source_transactions, stored_transactions

pytestmark = [pytest.mark.mysql, pytest.mark.cluster]


def test_empty_member_joins_a_200mb_cluster_then_a_member_is_removed(
    cluster: Cluster, mysql_source: mysql.MySQLServer
) -> None:
    cluster.set_source("127.0.0.1", mysql_source.port)
    with mysql_source.connect() as conn:
        large_txn_load(conn, 210, size=1024 * 1024)
    cluster.wait_committed(mysql_source.gtid_executed(), timeout=180)
    leader = cluster.leader()
    assert leader.status()["store"]["bytes"] >= 200 * 1024 * 1024

    newcomer = cluster.add_member("kb-3", "127.0.0.4")
    wait_until(
        lambda: len(leader.status()["members"]) == 4,
        timeout=120,
        what=f"kb-3 to join\n{newcomer.log_tail()}",
    )
    with mysql_source.connect() as conn:
        small_txn_load(conn, 200)
    cluster.wait_committed(mysql_source.gtid_executed(), timeout=180)
    expected = source_transactions(mysql_source.datadir)
    assert stored_transactions(newcomer) == expected

    # Remove a follower that is not the newcomer; the other three keep going.
    leader = cluster.leader()
    victim = next(m for m in cluster.members[:3] if m is not leader)
    http("DELETE", f"{leader.admin}/members/{victim.name}")
    victim.kill9()
    wait_until(
        lambda: (
            {m["name"] for m in cluster.leader().status()["members"]}
            == {m.name for m in cluster.members if m is not victim}
        ),
        timeout=60,
        what="the member list without the removed member",
    )
    with mysql_source.connect() as conn:
        small_txn_load(conn, 200)
    survivors = [m for m in cluster.members if m is not victim]
    cluster.wait_committed(mysql_source.gtid_executed(), timeout=120, members=survivors)
    expected = source_transactions(mysql_source.datadir)
    for member in survivors:
        assert stored_transactions(member) == expected, member.name


def test_adding_an_existing_name_with_another_address_is_a_conflict(cluster: Cluster) -> None:
    leader = cluster.leader()
    wait_until(
        lambda: all(m["admin"] for m in leader.status()["members"]),
        timeout=30,
        what="every member announced in the directory",
    )
    existing = cluster.members[1]
    with pytest.raises(Exception) as info:
        http(
            "POST",
            f"{leader.admin}/members",
            {"name": existing.name, "raft": "127.0.0.9:7100", "admin": "http://127.0.0.9:9595"},
        )
    assert getattr(info.value, "status", None) == 409


def test_leader_transfer_returns_once_leadership_moved(cluster: Cluster) -> None:
    leader = cluster.leader()
    wait_until(
        lambda: all(m["admin"] for m in leader.status()["members"]),
        timeout=30,
        what="every member announced in the directory",
    )
    target = next(m for m in cluster.members if m is not leader)
    http("POST", f"{leader.admin}/leader/transfer", {"to": target.name})
    # No waiting here: the call returns only after the move.
    assert target.status()["role"] == "leader"
    assert leader.status()["role"] == "follower"


def test_leader_transfer_to_the_current_leader_is_already_done(cluster: Cluster) -> None:
    """A request that names the member already leading -- typically sent to the old leader
    just after an election, which forwards it to the new one -- succeeds without an election."""
    leader = cluster.leader()
    wait_until(
        lambda: all(m["admin"] for m in leader.status()["members"]),
        timeout=30,
        what="every member announced in the directory",
    )
    follower = next(m for m in cluster.members if m is not leader)
    # Before the fix this was refused with 409 after 10 s (pysyncobj denies a transfer to the
    # leader itself); `http` raises on any error status.  Nothing is asserted about the term
    # afterwards: an unrelated election can happen at any time on a loaded machine (seen in CI).
    http("POST", f"{follower.admin}/leader/transfer", {"to": leader.name})


def test_leader_transfer_without_a_target_passes_over_a_member_that_cannot(cluster: Cluster) -> None:
    """With no target the leader asks each follower for its status and hands leadership to one
    that can take over; a named follower that cannot is refused at once, with the reason."""
    leader = cluster.leader()
    wait_until(
        lambda: all(m["admin"] for m in leader.status()["members"]),
        timeout=30,
        what="every member announced in the directory",
    )
    down, up = (m for m in cluster.members if m is not leader)
    down.kill9()

    def leader_sees_it_connected() -> bool:
        return any(f["connected"] for f in leader.status()["raft"]["followers"] if f["raft"] == down.raft)

    wait_until(
        lambda: not leader_sees_it_connected(),
        timeout=30,
        what=f"the leader to see {down.name} disconnected",
    )
    with pytest.raises(ApiError) as refused:
        http("POST", f"{leader.admin}/leader/transfer", {"to": down.name})
    assert refused.value.status == 409
    assert f"{down.name} cannot take over: not connected" in str(refused.value.body)

    http("POST", f"{leader.admin}/leader/transfer", {})
    assert up.status()["role"] == "leader"
    assert leader.status()["role"] == "follower"
