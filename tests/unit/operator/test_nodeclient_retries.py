"""HttpNodeClient against a stand-in HTTP server on loopback (the seam: it does not claim to
test a node, only how the client treats the answers DESIGN.md's admin API gives)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from kingbus_operator import nodeclient

TOKEN = "t0ken"


class StandIn:
    """Answers PUT /source with the queued responses, then 200."""

    def __init__(self) -> None:
        self.queued: list[web.Response] = []
        self.calls = 0

    async def put_source(self, request: web.Request) -> web.Response:
        self.calls += 1
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        if self.queued:
            return self.queued.pop(0)
        return web.json_response({"ok": True})


def retryable(reason: str = "the entry was discarded by a leader change", after: str = "0") -> web.Response:
    return web.json_response({"error": reason, "retryable": True}, status=503, headers={"Retry-After": after})


@pytest.fixture
async def node() -> AsyncIterator[tuple[StandIn, str]]:
    standin = StandIn()
    app = web.Application()
    app.router.add_put("/source", standin.put_source)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield standin, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _put(admin: str, **client: Any) -> None:
    http = nodeclient.HttpNodeClient(TOKEN, **client)
    try:
        await http.set_source(admin, nodeclient.SourceRequest("db", 3306, "repl", "pw"))
    finally:
        await http.close()


async def test_a_retryable_503_is_asked_again_until_it_succeeds(node: tuple[StandIn, str]) -> None:
    standin, admin = node
    standin.queued = [retryable(), retryable("this node is not the leader and no leader is known")]
    await _put(admin)
    assert standin.calls == 3


async def test_retryable_503s_beyond_the_attempts_are_reported_with_the_nodes_reason(
    node: tuple[StandIn, str],
) -> None:
    standin, admin = node
    standin.queued = [retryable() for _ in range(5)]
    with pytest.raises(nodeclient.NodeUnreachable, match="discarded by a leader change"):
        await _put(admin, retryable_attempts=3)
    assert standin.calls == 3


async def test_a_503_not_marked_retryable_and_other_errors_are_reported_at_once(
    node: tuple[StandIn, str],
) -> None:
    standin, admin = node
    standin.queued = [web.json_response({"error": "disk full"}, status=503)]
    with pytest.raises(nodeclient.NodeUnreachable, match="disk full"):
        await _put(admin)
    standin.queued = [web.json_response({"error": "port out of range"}, status=400)]
    with pytest.raises(nodeclient.NodeRefused, match="port out of range"):
        await _put(admin)
    standin.queued = [web.Response(status=500, text="<html>oops</html>")]
    with pytest.raises(nodeclient.NodeUnreachable, match="no reason given"):
        await _put(admin)
    assert standin.calls == 3


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, 1.0),
        ("0", 0.1),
        ("1", 1.0),
        ("3600", 2.0),
        ("soon", 1.0),
        ("nan", 1.0),
        ("inf", 1.0),
        ("-5", 0.1),
    ],
)
def test_retry_after_is_bounded(header: str | None, seconds: float) -> None:
    assert nodeclient._seconds(header) == seconds


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [({"retryable_attempts": 0}, "retryable_attempts"), ({"timeout_seconds": 0}, "timeout_seconds")],
)
def test_a_client_that_could_never_send_is_refused(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        nodeclient.HttpNodeClient(TOKEN, **kwargs)
