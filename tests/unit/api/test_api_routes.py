"""The admin API's HTTP layer on a real port, in front of a stateful FakeNodeControl."""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from kingbus.api.app import make_admin_app
from kingbus.api.server import serve_admin
from tests.unit.api.api_fake_node import FakeNodeControl
from tests.unit.api.conftest import AUTH, TOKEN, RunningNode, StartNode

SOURCE = {"host": "10.0.0.5", "port": 3306, "user": "repl", "password": "Sup3r-S3cret-Pw!"}
MUTATIONS = [
    ("PUT", "/source", SOURCE),
    ("POST", "/source/start", None),
    ("POST", "/source/stop", None),
    ("POST", "/members", {"name": "kb-9", "raft": "10.0.0.9:7100", "admin": "http://10.0.0.9:9595"}),
    ("DELETE", "/members/kb-0", None),
    ("POST", "/leader/transfer", {}),
]


# ---- reads


async def test_status_is_the_nodes_document(leader: RunningNode) -> None:
    answer = await leader.client.get("/status")
    assert answer.status == 200
    assert answer.content_type == "application/json"
    assert await answer.json() == json.loads(json.dumps(leader.control.status()))


async def test_members_list(leader: RunningNode) -> None:
    answer = await leader.client.get("/members")
    assert answer.status == 200
    doc = await answer.json()
    assert [m["name"] for m in doc["members"]] == ["kb-0"]
    assert set(doc["members"][0]) == {"name", "raft", "admin", "role", "healthy"}


async def test_healthz_and_readyz(leader: RunningNode) -> None:
    assert (await leader.client.get("/healthz")).status == 200
    ready = await leader.client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["ready"] is True
    leader.control.quorum = False
    not_ready = await leader.client.get("/readyz")
    assert not_ready.status == 503
    assert await not_ready.json() == {"ready": False, "error": "no quorum: 1 of 3 members reachable"}
    assert (await leader.client.get("/healthz")).status == 200  # alive even when not ready


async def test_unknown_route_and_wrong_method_answer_json(leader: RunningNode) -> None:
    missing = await leader.client.get("/nope")
    assert missing.status == 404
    assert "error" in await missing.json()
    wrong = await leader.client.post("/status")
    assert wrong.status == 405
    assert "GET" in wrong.headers["Allow"]
    assert "error" in await wrong.json()


# ---- authentication


@pytest.mark.parametrize(("method", "path", "doc"), MUTATIONS)
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "missing Authorization"),
        ({"Authorization": "Bearer wrong-token"}, "invalid admin token"),
        ({"Authorization": f"Bearer {TOKEN}x"}, "invalid admin token"),
        ({"Authorization": f"Basic {TOKEN}"}, "malformed Authorization header"),
        ({"Authorization": "Bearer "}, "malformed Authorization header"),
    ],
)
async def test_mutations_need_the_token(
    leader: RunningNode, method: str, path: str, doc: object, headers: dict[str, str], expected: str
) -> None:
    answer = await leader.client.request(method, path, json=doc, headers=headers)
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert expected in (await answer.json())["error"]
    assert leader.control.mutations == []


async def test_bearer_scheme_is_case_insensitive(leader: RunningNode) -> None:
    answer = await leader.client.post("/source/stop", headers={"Authorization": f"bearer {TOKEN}"})
    assert answer.status == 200


async def test_reads_are_open(leader: RunningNode) -> None:
    for path in ("/status", "/members", "/metrics", "/healthz", "/readyz"):
        assert (await leader.client.get(path)).status == 200, path


def test_an_empty_token_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        make_admin_app(FakeNodeControl("kb-0"), token="", registry=CollectorRegistry())


# ---- mutations and their answers


async def test_set_start_stop_source(leader: RunningNode) -> None:
    answer = await leader.client.put("/source", json=SOURCE | {"semi_sync": True}, headers=AUTH)
    assert answer.status == 200
    assert await answer.json() == {
        "ok": True,
        "source": {
            "host": "10.0.0.5",
            "port": 3306,
            "user": "repl",
            "start_gtid_set": "",
            "semi_sync": True,
            "tls": "preferred",
        },
    }
    assert leader.control.source is not None and leader.control.source.password == SOURCE["password"]
    assert (await leader.client.post("/source/start", headers=AUTH)).status == 200
    assert leader.control.status()["source"]["state"] == "streaming"
    assert (await leader.client.post("/source/stop", json={}, headers=AUTH)).status == 200
    assert leader.control.mutations == ["set_source 10.0.0.5:3306", "start_source", "stop_source"]


async def test_source_tls_mode_is_kept_and_checked(leader: RunningNode) -> None:
    answer = await leader.client.put("/source", json=SOURCE | {"tls": "required"}, headers=AUTH)
    assert answer.status == 200
    assert (await answer.json())["source"]["tls"] == "required"
    assert leader.control.source is not None and leader.control.source.tls == "required"
    refused = await leader.client.put("/source", json=SOURCE | {"tls": "verify"}, headers=AUTH)
    assert refused.status == 400
    reason = (await refused.json())["error"]
    assert "tls" in reason and "preferred, required, verify_ca, disabled" in reason


async def test_start_without_source_is_a_conflict(leader: RunningNode) -> None:
    answer = await leader.client.post("/source/start", headers=AUTH)
    assert answer.status == 409
    assert await answer.json() == {"error": "no source configured; PUT /source first"}


async def test_add_and_remove_members(leader: RunningNode) -> None:
    new = {"name": "kb-1", "raft": "10.0.0.2:7100", "admin": "http://10.0.0.2:9595/"}
    answer = await leader.client.post("/members", json=new, headers=AUTH)
    assert answer.status == 201
    assert await answer.json() == {"ok": True, "member": new | {"admin": "http://10.0.0.2:9595"}}
    again = await leader.client.post("/members", json=new, headers=AUTH)
    assert again.status == 409
    assert await again.json() == {"error": "a member named 'kb-1' already exists"}
    assert (await leader.client.delete("/members/kb-1", headers=AUTH)).status == 200
    gone = await leader.client.delete("/members/kb-1", headers=AUTH)
    assert gone.status == 404
    assert await gone.json() == {"error": "no member named 'kb-1'"}


async def test_leader_transfer(leader: RunningNode) -> None:
    await leader.client.post(
        "/members", json={"name": "kb-1", "raft": "10.0.0.2:7100", "admin": "http://a:1"}, headers=AUTH
    )
    unknown = await leader.client.post("/leader/transfer", json={"to": "kb-7"}, headers=AUTH)
    assert unknown.status == 404
    answer = await leader.client.post("/leader/transfer", json={"to": "kb-1"}, headers=AUTH)
    assert answer.status == 200
    assert leader.control.mutations[-1] == "transfer_leadership kb-1"


async def test_no_quorum_is_503(leader: RunningNode) -> None:
    leader.control.quorum = False
    answer = await leader.client.post("/source/stop", headers=AUTH)
    assert answer.status == 503
    assert await answer.json() == {
        "error": "no quorum: the change cannot be committed"
    }  # not marked retryable


async def test_the_nodes_own_bad_request_is_400(leader: RunningNode) -> None:
    answer = await leader.client.put("/source", json=SOURCE | {"start_gtid_set": "bogus"}, headers=AUTH)
    assert answer.status == 400
    assert await answer.json() == {"error": "start_gtid_set: not a GTID set"}


async def test_unexpected_failure_is_500_without_internals(
    leader: RunningNode, caplog: pytest.LogCaptureFixture
) -> None:
    leader.control.crash_next = True
    answer = await leader.client.post("/source/stop", headers=AUTH)
    assert answer.status == 500
    text = await answer.text()
    assert "/secret/path" not in text and "RuntimeError" not in text
    assert "internal error" in json.loads(text)["error"]
    assert any("/source/stop failed" in r.getMessage() for r in caplog.records)


# ---- malformed bodies over HTTP


@pytest.mark.parametrize(
    ("method", "path", "raw", "expected"),
    [
        ("PUT", "/source", b"", "empty body"),
        ("PUT", "/source", b"not json", "not valid JSON"),
        ("PUT", "/source", b"[]", "got array"),
        ("PUT", "/source", json.dumps(SOURCE | {"port": "3306"}).encode(), "field 'port' must be an integer"),
        ("PUT", "/source", json.dumps(SOURCE | {"extra": 1}).encode(), "unknown field 'extra'"),
        ("PUT", "/source", json.dumps({"host": "h"}).encode(), "missing field 'port'"),
        ("POST", "/members", b'{"name": "a b", "raft": "x:1", "admin": "http://x:1"}', "invalid member name"),
        ("POST", "/members", b'{"name": "a", "raft": "x:99999", "admin": "http://x:1"}', "out of range"),
        ("POST", "/members", b'{"name": "a", "raft": "x:1", "admin": "x:1"}', "expected an admin URL"),
        ("POST", "/members", b'{"name": "a", "name": "b"}', "duplicate field 'name'"),
        ("POST", "/leader/transfer", b'{"to": 1}', "field 'to' must be a string"),
        ("POST", "/source/start", b'{"force": true}', "unknown field 'force'"),
        ("POST", "/source/stop", b"1", "got integer"),
        ("DELETE", "/members/kb-0", b'{"x": 1}', "unknown field 'x'"),
    ],
)
async def test_malformed_bodies_are_400_with_a_reason(
    leader: RunningNode, method: str, path: str, raw: bytes, expected: str
) -> None:
    answer = await leader.client.request(
        method, path, data=raw, headers=AUTH | {"Content-Type": "application/json"}
    )
    assert answer.status == 400
    assert expected in (await answer.json())["error"]
    assert leader.control.mutations == []


async def test_oversized_body_is_413(start_node: StartNode) -> None:
    node = await start_node(FakeNodeControl("kb-0"), max_body_bytes=1024)
    answer = await node.client.put("/source", data=b'{"host": "' + b"a" * 5000 + b'"}', headers=AUTH)
    assert answer.status == 413
    assert await answer.json() == {"error": "request body too large (limit 1024 bytes)"}


# ---- secrets


async def test_the_password_never_comes_back(leader: RunningNode, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    password = str(SOURCE["password"])
    seen: list[str] = []
    answer = await leader.client.put("/source", json=SOURCE, headers=AUTH)
    seen.append(await answer.text())
    bad = await leader.client.put("/source", json=SOURCE | {"port": "x"}, headers=AUTH)
    seen.append(await bad.text())
    await leader.client.post("/source/start", headers=AUTH)
    for path in ("/status", "/members", "/metrics", "/readyz"):
        seen.append(await (await leader.client.get(path)).text())
    assert all(password not in text for text in seen)
    assert all(password not in record.getMessage() for record in caplog.records)
    assert "10.0.0.5" in seen[-4]  # the status does show where the source is


async def test_status_keys_naming_a_password_are_scrubbed(leader: RunningNode) -> None:
    leaky = leader.control.status()

    def status() -> dict[str, object]:
        return dict(leaky) | {"source": dict(leaky["source"]) | {"password": "leak!", "Password_Hash": "x"}}

    leader.control.status = status  # type: ignore[method-assign]
    doc: dict[str, Any] = await (await leader.client.get("/status")).json()
    assert "password" not in doc["source"] and "Password_Hash" not in doc["source"]
    assert doc["source"]["host"] is None


async def test_serve_admin_on_a_real_socket() -> None:
    app = make_admin_app(FakeNodeControl("kb-0"), token=TOKEN, registry=CollectorRegistry())
    server = await serve_admin(app, "127.0.0.1:0")
    try:
        assert server.address.port > 0
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{server.address}/healthz") as answer:
                assert answer.status == 200
            async with session.post(f"http://{server.address}/source/stop", headers=AUTH) as answer:
                assert answer.status == 200
    finally:
        await server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session:
            await session.get(f"http://{server.address}/healthz")
