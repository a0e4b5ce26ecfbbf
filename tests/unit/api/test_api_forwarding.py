"""A follower forwards mutations to the leader: two real admin apps on 127.0.0.1 ports."""

from __future__ import annotations

import asyncio
import socket

from kingbus.api.forwarding import FORWARDED_HEADER, FORWARDED_TO_HEADER
from tests.unit.api.api_fake_node import FakeNodeControl
from tests.unit.api.conftest import AUTH, RunningNode, StartNode
from tests.unit.api.test_api_routes import SOURCE


async def follower_of(start_node: StartNode, leader: RunningNode, **kwargs: object) -> RunningNode:
    control = FakeNodeControl("kb-1", leader=False, leader_admin=leader.url)
    return await start_node(control, **kwargs)


async def test_follower_forwards_and_relays_the_leaders_answer(
    start_node: StartNode, leader: RunningNode
) -> None:
    follower = await follower_of(start_node, leader)
    answer = await follower.client.put("/source", json=SOURCE, headers=AUTH)
    assert answer.status == 200
    assert answer.headers[FORWARDED_TO_HEADER] == leader.url
    assert (await answer.json())["source"]["host"] == "10.0.0.5"
    # The leader did it (with the password, which travelled in the body); the follower did not.
    assert leader.control.mutations == ["set_source 10.0.0.5:3306"]
    assert leader.control.source is not None and leader.control.source.password == SOURCE["password"]
    assert follower.control.mutations == []


async def test_every_mutation_is_forwarded(start_node: StartNode, leader: RunningNode) -> None:
    follower = await follower_of(start_node, leader)
    await leader.control.add_member("kb-2", "10.0.0.3:7100", "http://10.0.0.3:9595")
    steps = [
        ("PUT", "/source", SOURCE, 200),
        ("POST", "/source/start", None, 200),
        ("POST", "/source/stop", None, 200),
        ("POST", "/members", {"name": "kb-9", "raft": "10.0.0.9:7100", "admin": "http://10.0.0.9:9595"}, 201),
        ("DELETE", "/members/kb-9", None, 200),
        ("POST", "/leader/transfer", {"to": "kb-2"}, 200),
    ]
    for method, path, doc, status in steps:
        answer = await follower.client.request(method, path, json=doc, headers=AUTH)
        assert answer.status == status, (method, path, await answer.text())
    assert leader.control.mutations == [
        "add_member kb-2",
        "set_source 10.0.0.5:3306",
        "start_source",
        "stop_source",
        "add_member kb-9",
        "remove_member kb-9",
        "transfer_leadership kb-2",
    ]


async def test_leaders_conflict_is_relayed_verbatim(start_node: StartNode, leader: RunningNode) -> None:
    follower = await follower_of(start_node, leader)
    member = {"name": "kb-0", "raft": "10.0.0.7:7100", "admin": "http://10.0.0.7:9595"}
    direct = await leader.client.post("/members", json=member, headers=AUTH)
    relayed = await follower.client.post("/members", json=member, headers=AUTH)
    assert direct.status == relayed.status == 409
    assert await relayed.read() == await direct.read()


async def test_leaders_404_is_relayed(start_node: StartNode, leader: RunningNode) -> None:
    follower = await follower_of(start_node, leader)
    answer = await follower.client.delete("/members/kb-42", headers=AUTH)
    assert answer.status == 404
    assert await answer.json() == {"error": "no member named 'kb-42'"}


async def test_leader_down_is_503(start_node: StartNode) -> None:
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    follower = await start_node(FakeNodeControl("kb-1", leader=False, leader_admin=dead))
    answer = await follower.client.post("/source/stop", headers=AUTH)
    assert answer.status == 503
    doc = await answer.json()
    assert f"the leader at {dead} is unreachable" in doc["error"]
    assert doc["retryable"] is True  # never connected, so nothing was sent


async def test_leader_stopped_mid_life_is_503(start_node: StartNode, leader: RunningNode) -> None:
    follower = await follower_of(start_node, leader)
    assert (await follower.client.post("/source/stop", headers=AUTH)).status == 200
    await leader.client.close()
    answer = await follower.client.post("/source/stop", headers=AUTH)
    assert answer.status == 503
    assert "unreachable" in (await answer.json())["error"]


async def test_leader_unknown_is_503(start_node: StartNode) -> None:
    follower = await start_node(FakeNodeControl("kb-1", leader=False, leader_admin=None))
    answer = await follower.client.post(
        "/members", json={"name": "a", "raft": "a:1", "admin": "http://a:1"}, headers=AUTH
    )
    assert answer.status == 503
    assert answer.headers["Retry-After"] == "1"
    doc = await answer.json()
    assert "no leader is known" in doc["error"]
    assert doc["retryable"] is True  # nothing was attempted: safe to send again


async def test_slow_leader_is_503_and_says_the_outcome_is_unknown(
    start_node: StartNode, leader: RunningNode
) -> None:
    leader.control.delay_seconds = 2.0
    follower = await follower_of(start_node, leader, forward_timeout_seconds=0.3)
    answer = await follower.client.post("/source/stop", headers=AUTH)
    assert answer.status == 503
    doc = await answer.json()
    assert "may or may not have been applied" in doc["error"]
    assert "retryable" not in doc and "Retry-After" not in answer.headers  # a retry could apply it twice


async def test_no_forwarding_loop(start_node: StartNode) -> None:
    # Two followers that each believe the other is the leader (stale views during an election).
    a = await start_node(FakeNodeControl("kb-a", leader=False))
    b = await start_node(FakeNodeControl("kb-b", leader=False, leader_admin=a.url))
    a.control.leader_admin = b.url
    answer = await a.client.post("/source/stop", headers=AUTH)
    assert answer.status == 503
    assert "not the leader" in (await answer.json())["error"]
    assert a.control.mutations == b.control.mutations == []


async def test_a_forwarded_request_is_not_forwarded_again(start_node: StartNode, leader: RunningNode) -> None:
    follower = await follower_of(start_node, leader)
    answer = await follower.client.post("/source/stop", headers=AUTH | {FORWARDED_HEADER: "1"})
    assert answer.status == 503
    assert leader.control.mutations == []


async def test_leadership_lost_mid_request_is_forwarded(start_node: StartNode, leader: RunningNode) -> None:
    # kb-1 believes it leads, but the node raises NotLeader (having changed nothing): forward.
    first = await start_node(FakeNodeControl("kb-1", leader=True, leader_admin=leader.url))
    first.control.lose_leadership_next = True
    answer = await first.client.post("/source/stop", headers=AUTH)
    assert answer.status == 200
    assert answer.headers[FORWARDED_TO_HEADER] == leader.url
    assert leader.control.mutations == ["stop_source"]
    assert first.control.mutations == []


async def test_follower_validates_before_forwarding(start_node: StartNode, leader: RunningNode) -> None:
    follower = await follower_of(start_node, leader)
    bad = await follower.client.put("/source", json=SOURCE | {"port": -1}, headers=AUTH)
    assert bad.status == 400
    unauthenticated = await follower.client.put("/source", json=SOURCE)
    assert unauthenticated.status == 401
    assert FORWARDED_TO_HEADER not in bad.headers and FORWARDED_TO_HEADER not in unauthenticated.headers
    assert leader.control.mutations == []


async def test_leader_checks_the_forwarded_token_itself(start_node: StartNode) -> None:
    leader = await start_node(FakeNodeControl("kb-0"), token="the-leaders-token")
    follower = await follower_of(start_node, leader)  # accepts AUTH's token, the leader does not
    answer = await follower.client.post("/source/stop", headers=AUTH)
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert await answer.json() == {"error": "invalid admin token"}
    assert leader.control.mutations == []


async def test_reads_are_answered_locally(start_node: StartNode, leader: RunningNode) -> None:
    follower = await follower_of(start_node, leader)
    status = await (await follower.client.get("/status")).json()
    assert status["name"] == "kb-1" and status["role"] == "follower"


async def test_leader_dropping_the_connection_is_503_not_retryable(start_node: StartNode) -> None:
    # Something accepts the connection, reads the request, and hangs up without answering:
    # the request may have been acted on, so the follower must not invite a blind retry.
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        follower = await start_node(
            FakeNodeControl("kb-1", leader=False, leader_admin=f"http://127.0.0.1:{port}")
        )
        answer = await follower.client.post("/source/stop", headers=AUTH)
        assert answer.status == 503
        doc = await answer.json()
        assert "may or may not have been applied" in doc["error"]
        assert "retryable" not in doc
    finally:
        server.close()
        await server.wait_closed()
