"""One client connection: handshake, authentication, commands, and possibly a dump.

The codec (``kingbus.protocol``) decides everything about bytes; this adapter owns the socket
and the order of things.  Failure policy, so that no input can crash or hang the server:

* the handshake (TLS included) must finish within ``HANDSHAKE_TIMEOUT``;
* a malformed or oversized packet at the framing level ends the connection after an ERR
  packet (the stream cannot be resynchronised);
* a malformed command or an unsupported statement gets an ERR and the session goes on;
* any unexpected exception is logged and closes only this connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING

from kingbus.binlog.gtids import GtidSet
from kingbus.protocol import auth, commands, compression, errors, framing, handshake, responses, sql
from kingbus.protocol.constants import SERVER_CAPABILITIES, Capability
from kingbus.protocol.errors import MySQLError, ProtocolError
from kingbus.server import dumpplan, queries
from kingbus.server.accounts import Privilege
from kingbus.server.conn import PacketConn, PeerClosed, read_first_packet, send_raw
from kingbus.server.dumper import DumpEnded, DumpStream, segment_views
from kingbus.server.registry import ReplicaInfo
from kingbus.server.variables import heartbeat_period_seconds, replica_uuid

if TYPE_CHECKING:
    from kingbus.server.server import ReplicaServer

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0
MAX_COMMAND_PAYLOAD = 16 << 20  # far above any command a replica or CDC reader sends
AHEAD_GRACE_SECONDS = 5.0  # a replica moved from a lagging member may be briefly ahead of it
SHOW_EVENTS_MAX = 100_000
ZOMBIE_MESSAGE = "A replica with the same server_uuid/server_id as this replica has connected to the source"


def _denied(user: str, privilege: Privilege) -> MySQLError:
    return MySQLError(
        errors.ER_SPECIFIC_ACCESS_DENIED_ERROR,
        "42000",
        f"Access denied; you need (at least one of) the {privilege.value} privilege(s) for this operation",
    )


class Session:
    def __init__(self, server: ReplicaServer, sock: socket.socket, peer: str, connection_id: int) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        self.connection_id = connection_id
        self.user = ""
        self.conn: PacketConn | None = None
        self.caps = SERVER_CAPABILITIES
        self.user_vars: MutableMapping[str, object] = {}
        self.registered: commands.RegisterReplica | None = None

    async def run(self) -> None:
        try:
            async with asyncio.timeout(self.server.handshake_timeout):
                accepted = await self._handshake()
            if accepted:
                await self._commands()
        except (PeerClosed, ConnectionError, TimeoutError, OSError):
            pass
        except ProtocolError as exc:
            await self._send_fatal(exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session %d from %s failed", self.connection_id, self.peer)
        finally:
            if self.conn is not None:
                await self.conn.close()
            else:
                self.sock.close()

    async def _send_fatal(self, error: MySQLError) -> None:
        with contextlib.suppress(Exception):
            if self.conn is not None:
                await asyncio.wait_for(self.conn.send([error.encode(self.caps)], 0), 2)
            else:
                await asyncio.wait_for(send_raw(self.sock, framing.frame(error.encode(self.caps), 2)[0]), 2)

    # -- connection phase --------------------------------------------------------------------
    async def _handshake(self) -> bool:
        server = self.server
        nonce = handshake.make_nonce()
        caps = SERVER_CAPABILITIES | Capability.SSL
        greeting = handshake.Handshake(server.version, self.connection_id, nonce, caps)
        await send_raw(self.sock, framing.frame(handshake.encode_handshake(greeting), 0)[0])
        packet = await read_first_packet(self.sock, MAX_COMMAND_PAYLOAD)
        first = handshake.decode_handshake_response(packet.payload)
        tls = isinstance(first, handshake.SslRequest)
        self.conn = await PacketConn.open(
            self.sock,
            tls=server.tls if tls else None,
            max_payload=MAX_COMMAND_PAYLOAD,
            handshake_timeout=server.handshake_timeout,
        )
        if isinstance(first, handshake.SslRequest):
            packet = await self.conn.read(expected_seq=packet.next_seq)
            first = handshake.decode_handshake_response(packet.payload)
            if not isinstance(first, handshake.HandshakeResponse):
                raise ProtocolError("a second SSLRequest after TLS started")
        self.caps = handshake.negotiate(caps, first.capabilities)
        codec = compression.negotiated(self.caps, first.zstd_level)  # a bad zstd level ends it here
        authenticator = auth.Authenticator(
            users=server.accounts.credentials,
            nonce=nonce,
            host=self.peer.rsplit(":", 1)[0],
            tls=tls,
            server_capabilities=caps,
            rsa_key=server.rsa_key,
            fast_path=server.fast_auth.allows_fast_path(first.username),
        )
        step = authenticator.start(first)
        while True:
            next_seq = await self.conn.send(step.send, packet.next_seq)
            if step.outcome is not None:
                break
            packet = await self.conn.read(expected_seq=next_seq)
            step = authenticator.receive(packet.payload)
        if isinstance(step.outcome, auth.Reject):
            server.auth_rejected += 1
            return False
        server.auth_accepted += 1
        if codec is not None:
            self.conn.start_compression(codec)  # after the OK, which went uncompressed (as in mysqld)
        server.fast_auth.remember(step.outcome)
        self.user = step.outcome.user
        return True

    # -- command phase -----------------------------------------------------------------------
    async def _commands(self) -> None:
        conn = self.conn
        assert conn is not None
        while True:
            packet = await conn.read(expected_seq=0)
            try:
                command = commands.decode_command(packet.payload)
            except MySQLError as exc:
                await conn.send([exc.encode(self.caps)], packet.next_seq)
                continue
            if isinstance(command, commands.Quit):
                return
            if isinstance(command, commands.BinlogDump | commands.BinlogDumpGtid):
                await self._dump(command, packet.next_seq)
                return  # like mysqld, a dump connection ends with its stream
            try:
                reply = await self._reply(command)
            except MySQLError as exc:
                reply = [exc.encode(self.caps)]
            await conn.send(reply, packet.next_seq)

    async def _reply(self, command: commands.ClientCommand) -> list[bytes]:
        if isinstance(command, commands.Ping | commands.InitDb):
            return [responses.encode_ok(responses.Ok(), self.caps)]
        if isinstance(command, commands.UnknownCommand):
            return [command.error().encode(self.caps)]
        if isinstance(command, commands.RegisterReplica):
            self._require(Privilege.REPLICATION_SLAVE)
            self.registered = command
            return [responses.encode_ok(responses.Ok(), self.caps)]
        if isinstance(command, commands.Query):
            statement = sql.classify(command.text)
            if isinstance(statement, sql.ShowBinaryLogs | sql.ShowBinaryLogStatus | sql.ShowBinlogEvents):
                self._require(Privilege.REPLICATION_CLIENT)
            context = self._context()
            if isinstance(statement, sql.ShowBinlogEvents):
                found = await asyncio.to_thread(self.server.binlog_events, statement)
                return queries.binlog_events_result(found, context)
            return queries.answer(statement, context)
        return [errors.unknown_command().encode(self.caps)]

    def _require(self, privilege: Privilege) -> None:
        if not self.server.accounts.allowed(self.user, privilege):
            raise _denied(self.user, privilege)

    def _context(self) -> queries.QueryContext:
        server = self.server
        return queries.QueryContext(
            facts=server.facts(),
            user_vars=self.user_vars,
            capabilities=self.caps,
            logs=[queries.LogFile(s.name, s.size) for s in server.store.segments()],
            replicas=[
                queries.ReplicaRow(r.server_id, r.report_host, r.report_port, r.uuid or "")
                for r in server.registry.sessions()
            ],
        )

    # -- dumps -------------------------------------------------------------------------------
    async def _dump(self, command: commands.BinlogDump | commands.BinlogDumpGtid, seq: int) -> None:
        conn = self.conn
        assert conn is not None
        server = self.server
        replica_gtids: GtidSet | None = None
        try:
            self._require(Privilege.REPLICATION_SLAVE)
            if isinstance(command, commands.BinlogDumpGtid):
                try:
                    replica_gtids = GtidSet.decode(command.gtid_data)
                except ValueError as exc:
                    raise dumpplan.dump_error(f"malformed GTID set in COM_BINLOG_DUMP_GTID: {exc}") from None
        except MySQLError as exc:
            await conn.send([exc.encode(self.caps)], seq)
            return
        info = ReplicaInfo(
            server_id=command.server_id,
            uuid=replica_uuid(self.user_vars),
            address=self.peer,
            user=self.user,
            mode="gtid" if replica_gtids is not None else "file",
            gtid_set=str(replica_gtids) if replica_gtids is not None else "",
            report_host=self.registered.host if self.registered else "",
            report_port=self.registered.port if self.registered else 0,
            compression=conn.codec.algorithm.value if conn.codec else None,
        )
        # Registered (and an older session of the same replica ended, as mysqld does) before
        # the start is planned: planning waits while the store is empty, and a replica that
        # waits there is connected and must show in /status like any other.
        planning: asyncio.Task[dumpplan.StartPoint] | None = None
        on_peer_gone: list[Callable[[], None]] = []

        def end_planning(_reason: str) -> None:
            if planning is not None:
                planning.cancel()

        info.end = end_planning
        on_peer_gone.append(lambda: end_planning("peer closed"))
        for zombie in server.registry.register(info):
            if zombie.end is not None:
                zombie.end(ZOMBIE_MESSAGE)
        watcher = asyncio.create_task(self._watch_peer(on_peer_gone))
        try:
            if replica_gtids is not None:
                planning = asyncio.create_task(self._plan_gtid(replica_gtids))
            else:
                file_command = command
                assert isinstance(file_command, commands.BinlogDump)
                planning = asyncio.create_task(self._plan_file(file_command))
            try:
                start = await planning
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the server is stopping
                return  # the replica went away, or a newer session of it took over
            except MySQLError as exc:
                await conn.send([exc.encode(self.caps)], seq)
                return
            non_blocking = bool(command.flags & commands.DumpFlag.NON_BLOCK) or command.server_id == 0
            dump = DumpStream(
                conn=conn,
                store=server.store,
                signal=server.signal,
                server_id=server.server_id,
                start=start,
                replica_gtids=replica_gtids,
                heartbeat_period=heartbeat_period_seconds(self.user_vars),
                heartbeat_v2=bool(command.flags & commands.DumpFlag.HEARTBEAT_V2),
                non_blocking=non_blocking,
                capabilities=self.caps,
                info=info,
            )
            if watcher.done():
                return  # gone while the plan was being made
            on_peer_gone[:] = [lambda: dump.end("peer closed", tell_replica=False)]
            try:
                await dump.run()
            except DumpEnded as ended:
                if ended.error is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.send([ended.error.encode(self.caps)], dump.seq), 2)
            except MySQLError as exc:  # e.g. an anonymous GTID on the GTID protocol
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.send([exc.encode(self.caps)], dump.seq), 2)
        finally:
            watcher.cancel()
            if planning is not None:
                planning.cancel()
            server.registry.unregister(info)

    async def _plan_file(self, command: commands.BinlogDump) -> dumpplan.StartPoint:
        return dumpplan.plan_file_dump(segment_views(self.server.store), command.filename, command.position)

    async def _plan_gtid(self, replica_gtids: GtidSet) -> dumpplan.StartPoint:
        """Plan, waiting while the store is empty or briefly behind the replica."""
        store = self.server.store
        deadline = time.monotonic() + AHEAD_GRACE_SECONDS
        wake = self.server.signal.subscribe()
        try:
            while True:
                wake.clear()
                try:
                    start = dumpplan.plan_gtid_dump(
                        segment_views(store), replica_gtids, store.committed_gtids, store.purged_gtids
                    )
                except MySQLError:
                    ahead = dumpplan.replica_extra(replica_gtids, store.committed_gtids)
                    if not ahead or time.monotonic() >= deadline:
                        raise
                    start = None
                if start is not None:
                    return start
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), 1.0)
        finally:
            self.server.signal.unsubscribe(wake)

    async def _watch_peer(self, on_gone: list[Callable[[], None]]) -> None:
        """During a dump the replica sends nothing; EOF (or garbage) means it is gone, and
        whatever the session is doing then (planning, streaming) is ended."""
        conn = self.conn
        assert conn is not None
        try:
            while await conn.reader.read(1 << 16):
                pass  # semi-sync ACKs would arrive here; this server does not ask for them
        except (OSError, ConnectionError):
            pass
        for ending in list(on_gone):
            ending()
