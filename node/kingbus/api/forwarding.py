"""Relaying a mutation from a follower to the leader's admin API.

Why forward rather than answer 307: a client (kingbusctl, the operator) then talks to any
node's address and gets the leader's real answer, and the bearer token is not re-sent by
clients that drop ``Authorization`` on redirects.

Rules:
* Same method, path and query, body and ``Authorization``; the request is marked with
  :data:`FORWARDED_HEADER` so a node that receives a forwarded request and is not the leader
  refuses it (503) instead of forwarding again: at most one hop, never a loop.
* The leader's status code and body are relayed verbatim; redirects are not followed.
* If the leader cannot be reached or does not answer in time, the answer is 503 with the
  reason.  In the timeout case the mutation may or may not have been applied, and the reason
  says so: a success is never reported unless the leader reported it.
"""

from __future__ import annotations

import logging
from typing import Final

import aiohttp
from aiohttp import web

from kingbus.api.errors import Unavailable

FORWARDED_HEADER: Final = "X-Kingbus-Forwarded"
FORWARDED_TO_HEADER: Final = "X-Kingbus-Forwarded-To"
_RELAYED_HEADERS: Final = ("Authorization", "Content-Type")
_RELAYED_ANSWER_HEADERS: Final = ("Content-Type", "WWW-Authenticate", "Allow", "Retry-After")

log = logging.getLogger(__name__)


class Forwarder:
    """Owns one aiohttp client session; ``start``/``close`` run inside the app's event loop."""

    def __init__(self, *, timeout_seconds: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._timeout_seconds = timeout_seconds
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def forward(self, request: web.Request, body: bytes, leader_admin: str) -> web.Response:
        if self._session is None:
            raise Unavailable(
                "cannot forward to the leader: the admin server is shutting down", retryable=True
            )
        url = leader_admin.rstrip("/") + request.raw_path
        headers = {name: request.headers[name] for name in _RELAYED_HEADERS if name in request.headers}
        headers[FORWARDED_HEADER] = "1"
        try:
            async with self._session.request(
                request.method, url, data=body, headers=headers, allow_redirects=False
            ) as answer:
                payload = await answer.read()
                status = answer.status
                relayed = {
                    name: answer.headers[name] for name in _RELAYED_ANSWER_HEADERS if name in answer.headers
                }
        except TimeoutError:
            log.warning(
                "forwarding %s %s to %s: no answer in %ss",
                request.method,
                request.path,
                url,
                self._timeout_seconds,
            )
            raise Unavailable(
                f"forwarded to the leader at {leader_admin}, which did not answer within "
                f"{self._timeout_seconds:g}s; the change may or may not have been applied"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            # Not connected, so nothing was sent: the client may retry without double effects.
            log.warning("forwarding %s %s to %s: cannot connect: %s", request.method, request.path, url, exc)
            raise Unavailable(f"the leader at {leader_admin} is unreachable: {exc}", retryable=True) from None
        except aiohttp.ClientError as exc:
            log.warning("forwarding %s %s to %s failed: %s", request.method, request.path, url, exc)
            raise Unavailable(
                f"the connection to the leader at {leader_admin} failed: {exc}; "
                "the change may or may not have been applied"
            ) from None
        log.info("forwarded %s %s to %s: %d", request.method, request.path, leader_admin, status)
        return web.Response(
            status=status,
            body=payload,
            headers=relayed | {FORWARDED_TO_HEADER: leader_admin},
        )
