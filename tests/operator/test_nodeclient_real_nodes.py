"""``HttpNodeClient`` against three real kingbus-node processes (and a real MySQL 9.7 source):
the JSON shapes the operator reads and sends are the ones the node really serves and accepts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kingbus.devenv import mysql
from kingbus.devenv.localcluster import ADMIN_TOKEN, Cluster, running_cluster, wait_until
from kingbus_operator import handlers, nodeclient
from tests.support import REPL_PASSWORD, REPL_USER

pytestmark = pytest.mark.cluster


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[Cluster]:
    with running_cluster(tmp_path / "cluster", 3) as c:
        c.leader(timeout=30)
        yield c


@pytest.fixture
async def client() -> AsyncIterator[nodeclient.HttpNodeClient]:
    http = nodeclient.HttpNodeClient(ADMIN_TOKEN, timeout_seconds=30)
    yield http
    await http.close()


def _named(nodes: Cluster) -> None:
    """Founding members know each other by Raft address until the names are exchanged."""

    def named() -> bool:
        want = ["kb-0", "kb-1", "kb-2"]
        return all(sorted(m["name"] for m in x.status()["members"]) == want for x in nodes.members)

    wait_until(named, timeout=30, what="member names known everywhere")


async def test_status_parses_into_raft_facts(nodes: Cluster, client: nodeclient.HttpNodeClient) -> None:
    _named(nodes)
    leader = nodes.leader()
    for member in nodes.members:
        fact = handlers._raft_fact(await client.status(member.admin))
        assert fact.reporter == member.name
        assert fact.leader == leader.name
        assert sorted(m.name for m in fact.members) == ["kb-0", "kb-1", "kb-2"]
    fact = handlers._raft_fact(await client.status(leader.admin))
    wait_until(lambda: all(m["healthy"] for m in leader.status()["members"]), timeout=30, what="healthy")
    fact = handlers._raft_fact(await client.status(leader.admin))
    assert all(m.healthy for m in fact.members) and fact.source.state == "stopped"
    assert fact.source.host is None and fact.source.port is None  # unset: "" and 0 on the wire


async def test_transfer_then_remove_a_follower(nodes: Cluster, client: nodeclient.HttpNodeClient) -> None:
    _named(nodes)
    leader = nodes.leader()
    target = next(m for m in nodes.members if m.name != leader.name)
    await client.transfer_leader(leader.admin, target.name)
    assert handlers._raft_fact(await client.status(target.admin)).leader == target.name
    victim = next(m for m in nodes.members if m.name not in (leader.name, target.name))
    await client.remove_member(target.admin, victim.name)
    fact = handlers._raft_fact(await client.status(target.admin))
    assert sorted(m.name for m in fact.members) == sorted([leader.name, target.name])


async def test_set_source_through_the_leader(
    nodes: Cluster, client: nodeclient.HttpNodeClient, mysql_source: mysql.MySQLServer
) -> None:
    leader = nodes.leader()
    request = nodeclient.SourceRequest("127.0.0.1", mysql_source.port, REPL_USER, REPL_PASSWORD)
    assert REPL_PASSWORD not in repr(request)
    await client.set_source(leader.admin, request)
    source = handlers._raft_fact(await client.status(leader.admin)).source
    # Kingbus nodes extend DESIGN's /status source document with the user and the TLS mode.
    assert (source.host, source.port, source.user, source.tls_mode) == (
        "127.0.0.1",
        mysql_source.port,
        REPL_USER,
        "preferred",
    )


async def test_errors(nodes: Cluster, client: nodeclient.HttpNodeClient) -> None:
    leader = nodes.leader()
    wrong = nodeclient.HttpNodeClient("not-the-token")
    try:
        with pytest.raises(nodeclient.NodeRefused) as refused:
            await wrong.remove_member(leader.admin, "kb-1")
        assert refused.value.status == 401
    finally:
        await wrong.close()
    with pytest.raises(nodeclient.NodeRefused) as unknown:
        await client.remove_member(leader.admin, "nobody")
    assert 400 <= unknown.value.status < 500
    with pytest.raises(nodeclient.NodeUnreachable):
        await client.status("http://127.0.0.1:1")
