"""The only module that talks to Kingbus nodes: their admin API over HTTP (DESIGN.md).

:class:`NodeClient` is the seam: ``handlers`` depends on the protocol, and
:class:`HttpNodeClient` implements it with aiohttp and the cluster's bearer token.  The test
tier against a real Kubernetes control plane (where pods never run) plugs a stateful fake in
here, and only here.

Errors: :class:`NodeUnreachable` (connection failed, timeout, 5xx) and :class:`NodeRefused`
(the node answered with an error status and a reason).  A 503 marked ``retryable`` (nothing
was done: no leader yet, or a leader change discarded the entry) is asked again a few times,
``Retry-After`` apart, before it is reported: every call here is idempotent, and an election
settles in about a second, far sooner than a requeued reconcile.  A mutation
returning normally means the node reported success (the API never reports a success it did
not get; a follower forwards to the leader).  The token is never put into a message.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp


class NodeError(Exception):
    """A node could not do what was asked."""


class NodeUnreachable(NodeError):
    pass


class NodeRefused(NodeError):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class SourceRequest:
    host: str
    port: int
    user: str
    password: str
    start_gtid_set: str = ""
    semi_sync: bool = False
    tls: str = "preferred"
    tls_ca: str = ""

    def __repr__(self) -> str:  # the password must never reach a log line
        return f"SourceRequest(host={self.host!r}, port={self.port}, user={self.user!r})"

    def body(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
        }
        if self.start_gtid_set:
            doc["start_gtid_set"] = self.start_gtid_set
        if self.semi_sync:
            doc["semi_sync"] = True
        if self.tls != "preferred":
            doc["tls"] = self.tls
        if self.tls_ca:
            doc["tls_ca"] = self.tls_ca
        return doc


class NodeClient(Protocol):
    """Admin API calls the operator makes; ``admin`` is a member's base URL.  There is no
    ``add_member``: a new member adds itself once it has caught up (``raft.join``)."""

    async def status(self, admin: str) -> Mapping[str, Any]: ...

    async def remove_member(self, admin: str, name: str) -> None: ...

    async def transfer_leader(self, admin: str, to: str) -> None: ...

    async def set_source(self, admin: str, source: SourceRequest) -> None: ...

    async def close(self) -> None: ...


class HttpNodeClient:
    """:class:`NodeClient` over aiohttp.  One instance per cluster (one token)."""

    def __init__(self, token: str, *, timeout_seconds: float = 10.0, retryable_attempts: int = 4) -> None:
        if retryable_attempts < 1:
            # Zero attempts would make every call fail without a request being sent.
            raise ValueError(f"retryable_attempts must be at least 1, not {retryable_attempts}")
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, not {timeout_seconds}")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None
        self._attempts = retryable_attempts

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _call(self, method: str, url: str, body: Mapping[str, Any] | None = None) -> Any:
        for attempt in range(1, self._attempts + 1):
            try:
                return await self._call_once(method, url, body)
            except _Retryable as exc:
                if attempt == self._attempts:
                    raise NodeUnreachable(str(exc)) from None
                await asyncio.sleep(exc.after)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _call_once(self, method: str, url: str, body: Mapping[str, Any] | None) -> Any:
        headers = {"Authorization": f"Bearer {self._token}"} if method != "GET" else {}
        try:
            async with self._client().request(method, url, json=body, headers=headers) as response:
                try:
                    doc = await response.json(content_type=None)
                except ValueError:
                    doc = {}
                if response.status == 503 and isinstance(doc, dict) and doc.get("retryable") is True:
                    after = _seconds(response.headers.get("Retry-After"))
                    raise _Retryable(f"{method} {url}: HTTP 503: {_reason(doc)}", after)
                if response.status >= 500:
                    raise NodeUnreachable(f"{method} {url}: HTTP {response.status}: {_reason(doc)}")
                if response.status >= 400:
                    raise NodeRefused(response.status, _reason(doc))
                return doc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise NodeUnreachable(f"{method} {url}: {type(exc).__name__}: {exc}") from None

    async def status(self, admin: str) -> Mapping[str, Any]:
        doc = await self._call("GET", f"{admin}/status")
        if not isinstance(doc, dict):
            raise NodeUnreachable(f"GET {admin}/status: not a JSON object")
        return doc

    async def remove_member(self, admin: str, name: str) -> None:
        await self._call("DELETE", f"{admin}/members/{name}")

    async def transfer_leader(self, admin: str, to: str) -> None:
        await self._call("POST", f"{admin}/leader/transfer", {"to": to})

    async def set_source(self, admin: str, source: SourceRequest) -> None:
        await self._call("PUT", f"{admin}/source", source.body())

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class _Retryable(Exception):
    """A 503 the node marked retryable; `after` is its Retry-After, bounded."""

    def __init__(self, message: str, after: float) -> None:
        super().__init__(message)
        self.after = after


def _seconds(retry_after: str | None) -> float:
    """Retry-After in seconds (the node sends 1), kept within [0.1, 2]; a date or garbage
    counts as 1."""
    try:
        value = float(retry_after) if retry_after is not None else 1.0
    except ValueError:
        value = 1.0
    if not math.isfinite(value):
        value = 1.0
    return min(max(value, 0.1), 2.0)


def _reason(doc: Any) -> str:
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return str(doc["error"])
    return "no reason given"
