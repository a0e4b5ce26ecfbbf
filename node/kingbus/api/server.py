"""Serving the admin app on ``admin.bind``: start, report the bound address, stop.

A thin wrapper over aiohttp's AppRunner/TCPSite so the node's wiring does not repeat it.  The
access log keeps aiohttp's default format, which records method, path, status and size but
neither headers nor bodies, so tokens and passwords never reach it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from kingbus.config import HostPort


@dataclass
class AdminServer:
    runner: web.AppRunner
    address: HostPort  # the bound address (the real port when asked for port 0)

    async def stop(self) -> None:
        await self.runner.cleanup()


async def serve_admin(app: web.Application, bind: HostPort, *, shutdown_timeout: float = 5.0) -> AdminServer:
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
