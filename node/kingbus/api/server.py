"""Serving the admin app on ``admin.bind``: start, report the bound address, stop.

A thin wrapper over aiohttp's AppRunner/TCPSite so the node's wiring does not repeat it.  The
access log keeps aiohttp's default format, which records method, path, status and size but
neither headers nor bodies, so tokens and passwords never reach it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from kingbus.config import HostPort, parse_host_port


@dataclass
class AdminServer:
    runner: web.AppRunner
    address: HostPort  # the bound address (the real port when asked for port 0)

    async def stop(self) -> None:
        await self.runner.cleanup()


async def serve_admin(
    app: web.Application, bind_address: str, *, shutdown_timeout: float = 5.0
) -> AdminServer:
    """Serve ``app`` on ``bind_address`` (``host:port``, as in ``admin.bind``; port 0 = any free)."""
    bind = _parse_bind(bind_address)
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, bind.host, bind.port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    # runner.addresses lists the listening sockets' names: the real port when bind asked for 0.
    port = int(runner.addresses[0][1]) if runner.addresses else bind.port
    return AdminServer(runner, HostPort(bind.host, port))


def _parse_bind(text: str) -> HostPort:
    if text.endswith(":0"):  # port 0 is refused by the config but useful for tests
        return HostPort(parse_host_port(text[:-2] + ":1").host, 0)
    return parse_host_port(text)
