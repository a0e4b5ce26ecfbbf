"""The replica-facing MySQL server of one node: listener, sessions, status.

``ReplicaServer`` is what ``kingbus.node`` starts and stops.  It accepts on ``mysql.bind``,
runs one :class:`~kingbus.server.session.Session` task per connection, keeps the
:class:`~kingbus.server.registry.Registry` of dump sessions (status, metrics, zombies,
retention) and turns the store's commit notifications into a loop-side
:class:`~kingbus.server.dumper.CommitSignal`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import ssl
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from kingbus.binlog import events
from kingbus.protocol import errors, framing, sql
from kingbus.protocol.auth import FastAuthCache
from kingbus.protocol.constants import Capability
from kingbus.server import dumpplan
from kingbus.server.accounts import Accounts
from kingbus.server.dumper import CommitSignal
from kingbus.server.queries import BinlogEvent
from kingbus.server.registry import Registry
from kingbus.server.session import HANDSHAKE_TIMEOUT, SHOW_EVENTS_MAX, Session
from kingbus.server.variables import SERVER_VERSION, ServerFacts
from kingbus.store.store import BinlogStore, StoreError, segment_number

log = logging.getLogger(__name__)


def _split_host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class ReplicaServer:
    def __init__(
        self,
        *,
        store: BinlogStore,
        bind: str,
        server_id: int,
        server_uuid: str,
        accounts: Accounts,
        tls: ssl.SSLContext,
        rsa_key: rsa.RSAPrivateKey,
        version: str = SERVER_VERSION,
        fast_auth: str = "always",
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        max_connections: int = 1024,
    ) -> None:
        self.store = store
        self.bind = bind
        self.server_id = server_id
        self.server_uuid = server_uuid
        self.accounts = accounts
        self.tls = tls
        self.rsa_key = rsa_key
        self.version = version
        # Which accounts may skip full authentication (config `mysql.fast_auth`).
        self.fast_auth = FastAuthCache(fast_auth)
        self.handshake_timeout = handshake_timeout
        self.max_connections = max_connections
        self.connections_refused = 0  # over max_connections, for metrics
        self._refusal_logged = 0.0
        self.auth_accepted = 0
        self.auth_rejected = 0
        self.registry = Registry()
        self.port = 0
        self._signal: CommitSignal | None = None
        self._listener: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)

    @property
    def signal(self) -> CommitSignal:
        assert self._signal is not None, "ReplicaServer.start() first"
        return self._signal

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._signal = CommitSignal(loop)
        self.store.add_listener(self._signal.notify_threadsafe)
        host, port = _split_host_port(self.bind)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.create_server((host, port), family=family, backlog=256, reuse_port=False)
        listener.setblocking(False)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._accept_task = asyncio.create_task(self._accept())
        log.info(
            "replica server listening on %s:%d (server_id %d, uuid %s)",
            host,
            self.port,
            self.server_id,
            self.server_uuid,
        )

    async def stop(self) -> None:
        if self._accept_task is not None:
            self._accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept_task
        if self._listener is not None:
            self._listener.close()
        for task in list(self._sessions):
            task.cancel()
        if self._sessions:
            await asyncio.wait(self._sessions, timeout=5)

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._listener is not None
        while True:
            try:
                sock, address = await loop.sock_accept(self._listener)
            except OSError as exc:  # EMFILE and friends: back off instead of spinning
                log.warning("replica server accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            peer = f"{address[0]}:{address[1]}"
            if len(self._sessions) >= self.max_connections:
                self._refuse(sock, peer)
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            session = Session(self, sock, peer, next(self._ids))
            task = asyncio.create_task(session.run())
            self._sessions.add(task)
            task.add_done_callback(self._sessions.discard)

    def _refuse(self, sock: socket.socket, peer: str) -> None:
        """What mysqld does at max_connections: ERR 1040 instead of the greeting, then close.
        The packet is a few dozen bytes into a fresh socket's empty send buffer: a
        non-blocking send takes it whole, and a peer that is not reading loses nothing."""
        self.connections_refused += 1
        packet = framing.frame(errors.too_many_connections().encode(Capability(0)), 0)[0]
        try:
            sock.setblocking(False)
            sock.send(packet)
        except OSError:
            pass  # the peer is gone already; it was refused either way
        finally:
            sock.close()
        now = time.monotonic()
        if now - self._refusal_logged >= 10:  # a client retrying in a loop must not flood the log
            self._refusal_logged = now
            log.warning(
                "refused a connection from %s: %d connections open (mysql.max_connections); "
                "%d refused so far",
                peer,
                len(self._sessions),
                self.connections_refused,
            )

    # -- facts for sessions ------------------------------------------------------------------
    def facts(self) -> ServerFacts:
        return ServerFacts(
            server_id=self.server_id,
            server_uuid=self.server_uuid,
            gtid_executed=str(self.store.committed_gtids),
            gtid_purged=str(self.store.purged_gtids),
            port=self.port,
            hostname=socket.gethostname(),
            version=self.version,
            unix_time=int(time.time()),
            max_connections=self.max_connections,
        )

    def binlog_events(self, statement: sql.ShowBinlogEvents) -> list[BinlogEvent]:
        """SHOW BINLOG EVENTS (worker thread): events of one segment, offset/limit applied."""
        segments = self.store.segments()
        if not segments:
            return []
        name = statement.filename or segments[0].name
        segment = next((s for s in segments if s.name == name), None)
        if segment is None:
            raise dumpplan.dump_error(
                "Error when executing command SHOW BINLOG EVENTS: Could not find target log"
            )
        pos = statement.position if statement.position is not None else dumpplan.FIRST_EVENT_POS
        limit = SHOW_EVENTS_MAX if statement.limit is None else min(statement.limit, SHOW_EVENTS_MAX)
        found: list[BinlogEvent] = []
        skip = statement.offset
        while pos + events.HEADER_LEN <= segment.size and len(found) < limit:
            try:
                header = events.EventHeader.parse(self.store.read(name, pos, events.HEADER_LEN))
            except StoreError as exc:
                raise dumpplan.dump_error(f"Error when executing command SHOW BINLOG EVENTS: {exc}") from None
            if header.event_size < events.HEADER_LEN or pos + header.event_size > segment.size:
                raise dumpplan.dump_error(
                    "Error when executing command SHOW BINLOG EVENTS: Wrong offset or I/O error"
                )
            if skip > 0:
                skip -= 1
            else:
                found.append(BinlogEvent(name, pos, self.store.read(name, pos, header.event_size)))
            pos += header.event_size
        return found

    # -- status ------------------------------------------------------------------------------
    @property
    def connections(self) -> int:
        """Client connections currently open (sessions of any kind)."""
        return len(self._sessions)

    def replicas(self) -> list[dict[str, Any]]:
        now = time.time()
        return [info.as_status(now) for info in self.registry.sessions()]

    def oldest_needed(self) -> str | None:
        return self.registry.oldest_file(segment_number)
