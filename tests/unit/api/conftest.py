"""Admin apps served on real 127.0.0.1 ports, in front of FakeNodeControl instances."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from kingbus.api.app import make_admin_app
from tests.unit.api.api_fake_node import FakeNodeControl

TOKEN = "s3cret-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class RunningNode:
    control: FakeNodeControl
    app: web.Application
    client: TestClient[web.Request, web.Application]
    registry: CollectorRegistry

    @property
    def url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")


StartNode = Callable[..., Awaitable[RunningNode]]


@pytest.fixture
async def start_node() -> AsyncIterator[StartNode]:
    clients: list[TestClient[web.Request, web.Application]] = []

    async def start(
        control: FakeNodeControl,
        *,
        token: str = TOKEN,
        forward_timeout_seconds: float = 5.0,
        **kwargs: object,
    ) -> RunningNode:
        registry = CollectorRegistry()
        app = make_admin_app(
            control,
            token=token,
            registry=registry,
            forward_timeout_seconds=forward_timeout_seconds,
            **kwargs,  # type: ignore[arg-type]
        )
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        control.admin = str(client.make_url("")).rstrip("/")
        control.members_by_name[control.name].admin = control.admin
        return RunningNode(control, app, client, registry)

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
async def leader(start_node: StartNode) -> RunningNode:
    return await start_node(FakeNodeControl("kb-0"))
