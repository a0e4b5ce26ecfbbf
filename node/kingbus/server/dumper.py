"""One dump stream: reads committed segment bytes and sends them as binlog events.

The planning, skipping and generated events are in :mod:`kingbus.server.dumpplan`; this
module only moves bytes.  It reads committed bytes with ``BinlogStore.read`` in a worker
thread (so fifty streams never block the loop on the disk), splits them into events at the
header sizes, and writes one packet per event, sequence ids continuing from 1 (payloads of
16 MiB or more are split by the codec).  At the committed end it waits on the
:class:`CommitSignal` -- woken by the store's listener on the Raft apply thread through
``call_soon_threadsafe`` -- or until the heartbeat period elapses; it never polls the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time

from kingbus.binlog import events
from kingbus.binlog.gtids import GtidSet
from kingbus.protocol import responses, stream
from kingbus.protocol.constants import Capability
from kingbus.protocol.errors import MySQLError
from kingbus.server import dumpplan
from kingbus.server.conn import PacketConn
from kingbus.server.registry import ReplicaInfo
from kingbus.store.store import BinlogStore, SegmentInfo, StoreError

READ_CHUNK = 1 << 20
FLUSH_BYTES = 1 << 18
_SIZE = struct.Struct("<I")
_GTID_TYPES = frozenset((int(events.EventType.GTID), int(events.EventType.GTID_TAGGED)))


class CommitSignal:
    """Wakes every waiting dump stream when the store publishes new committed bytes."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiters: set[asyncio.Event] = set()

    def notify_threadsafe(self) -> None:
        """Store listener: runs on the Raft apply thread."""
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self._loop.call_soon_threadsafe(self.notify)

    def notify(self) -> None:
        for waiter in self._waiters:
            waiter.set()

    def subscribe(self) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters.add(event)
        return event

    def unsubscribe(self, event: asyncio.Event) -> None:
        self._waiters.discard(event)


class DumpEnded(Exception):
    """The stream ends: with an ERR packet for the replica (``error``) or silently."""

    def __init__(self, error: MySQLError | None) -> None:
        super().__init__(error.message if error else "ended")
        self.error = error


def segment_views(store: BinlogStore) -> list[dumpplan.SegmentView]:
    return [
        dumpplan.SegmentView(s.name, s.size, s.sealed, GtidSet.parse(s.previous_gtids))
        for s in store.segments()
    ]


class DumpStream:
    def __init__(
        self,
        *,
        conn: PacketConn,
        store: BinlogStore,
        signal: CommitSignal,
        server_id: int,
        start: dumpplan.StartPoint,
        replica_gtids: GtidSet | None,
        heartbeat_period: float | None,
        heartbeat_v2: bool,
        non_blocking: bool,
        capabilities: Capability,
        info: ReplicaInfo,
    ) -> None:
        self._conn = conn
        self._store = store
        self._signal = signal
        self._server_id = server_id
        self._name = start.name
        self._pos = start.position
        self._start_pos = start.position
        self._skipper = dumpplan.GtidSkipper(replica_gtids)
        self._file_positions = replica_gtids is None  # see dumpplan.at_node_position
        self._period = heartbeat_period
        self._v2 = heartbeat_v2
        self._non_blocking = non_blocking
        self._caps = capabilities
        self._info = info
        self._seq = 1
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._last_send = time.monotonic()
        self._wake = signal.subscribe()
        self._ended: DumpEnded | None = None
        info.file, info.position = self._name, self._pos
        info.end = self.end

    # -- control ---------------------------------------------------------------------------
    @property
    def seq(self) -> int:
        """The sequence id of the next packet (for a final ERR)."""
        return self._seq

    def end(self, reason: str, *, tell_replica: bool = True) -> None:
        """Ask the stream to stop (zombie replaced, peer gone, server stopping)."""
        if self._ended is None:
            self._ended = DumpEnded(dumpplan.dump_error(reason) if tell_replica else None)
        self._wake.set()

    def _check_ended(self) -> None:
        if self._ended is not None:
            raise self._ended

    # -- output ----------------------------------------------------------------------------
    def _queue(self, event: bytes) -> None:
        payload = stream.event_payload(event)
        self._pending.append(payload)
        self._pending_bytes += len(payload)

    async def _flush(self) -> None:
        if not self._pending:
            return
        before = self._conn.bytes_sent
        pending, self._pending = self._pending, []
        self._pending_bytes = 0
        self._seq = await self._conn.send(pending, self._seq)
        self._info.bytes_sent += self._conn.bytes_sent - before
        self._info.file, self._info.position = self._name, self._pos
        self._last_send = time.monotonic()

    async def _maybe_flush(self) -> None:
        if self._pending_bytes >= FLUSH_BYTES:
            await self._flush()

    def _heartbeat(self, position: int) -> None:
        self._queue(dumpplan.heartbeat(self._name, position, server_id=self._server_id, v2=self._v2))

    # -- reading ---------------------------------------------------------------------------
    async def _read(self, offset: int, length: int) -> bytes:
        try:
            return await asyncio.to_thread(self._store.read, self._name, offset, length)
        except StoreError as exc:
            raise DumpEnded(dumpplan.dump_error(f"could not read binary log {self._name}: {exc}")) from None

    def _segment(self) -> SegmentInfo:
        # SegmentInfo, not SegmentView: this runs at every wake-up of every stream, and the
        # Previous_gtids text need not be parsed here.
        for segment in self._store.segments():
            if segment.name == self._name:
                return segment
        raise DumpEnded(dumpplan.dump_error(f"binary log {self._name} was purged while being read"))

    def _following(self) -> str | None:
        names = [s.name for s in self._store.segments()]
        i = names.index(self._name) if self._name in names else -1
        return names[i + 1] if 0 <= i < len(names) - 1 else None

    async def _start_segment(self) -> None:
        """Fake Rotate, then the segment's FDE (notes §2.4.2-3)."""
        head = await self._read(dumpplan.FIRST_EVENT_POS, events.HEADER_LEN)
        size = _SIZE.unpack_from(head, events.EVENT_SIZE_OFFSET)[0]
        fde = await self._read(dumpplan.FIRST_EVENT_POS, size)
        self._queue(dumpplan.fake_rotate(self._name, self._pos, self._server_id))
        self._queue(dumpplan.dump_fde(fde, start=self._pos))
        if self._pos == dumpplan.FIRST_EVENT_POS:
            self._pos += size

    async def _stream_to(self, end: int) -> None:
        """Sends (or skips) every event in [pos, end); end is a committed event boundary."""
        while self._pos < end:
            self._check_ended()
            chunk = await self._read(self._pos, min(end - self._pos, READ_CHUNK))
            used = 0
            while used + events.HEADER_LEN <= len(chunk):
                size = _SIZE.unpack_from(chunk, used + events.EVENT_SIZE_OFFSET)[0]
                if size < events.HEADER_LEN:
                    raise DumpEnded(dumpplan.dump_error(f"corrupt event at {self._name}:{self._pos + used}"))
                if used + size > len(chunk):
                    break
                self._event(chunk[used : used + size], self._pos + used)
                used += size
            if used == 0:  # one event larger than the chunk: read it whole
                size = _SIZE.unpack_from(chunk, events.EVENT_SIZE_OFFSET)[0]
                if self._pos + size > end:
                    raise DumpEnded(dumpplan.dump_error(f"truncated event at {self._name}:{self._pos}"))
                self._event(await self._read(self._pos, size), self._pos)
                used = size
            self._pos += used
            await self._maybe_flush()

    def _event(self, event: bytes, at: int) -> None:
        decision = self._skipper.decide(event)
        if decision is dumpplan.Decision.SKIP:
            # A long skip still proves liveness once per period (at transaction starts only).
            if (
                self._period is not None
                and events.event_type_of(event) in _GTID_TYPES
                and time.monotonic() - self._last_send >= self._period
            ):
                self._heartbeat(at)
                self._last_send = time.monotonic()
            return
        if self._skipper.pending_heartbeat:
            self._heartbeat(at)
            self._skipper.pending_heartbeat = False
        if self._file_positions:
            event = dumpplan.at_node_position(event, at)
        self._queue(event)
        self._info.last_event_timestamp = _SIZE.unpack_from(event, 0)[0]

    # -- main loop -------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self._signal.unsubscribe(self._wake)

    async def _run(self) -> None:
        fresh = True
        while True:
            self._check_ended()
            self._wake.clear()
            segment = self._segment()
            if fresh:
                await self._start_segment()
                fresh = False
            if self._pos < segment.size:
                self._info.caught_up = False
                await self._stream_to(segment.size)
                continue
            if segment.sealed:
                following = self._following()
                if following is not None:
                    self._name, self._pos, fresh = following, dumpplan.FIRST_EVENT_POS, True
                    continue
            await self._flush()
            self._info.caught_up = True
            if self._non_blocking:
                await self._conn.send([responses.encode_eof(responses.Eof(), self._caps)], self._seq)
                raise DumpEnded(None)
            await self._idle()

    async def _idle(self) -> None:
        """Waits for new commits; a heartbeat each period without one."""
        timeout = None
        if self._period is not None:
            timeout = max(0.0, self._period - (time.monotonic() - self._last_send))
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            self._check_ended()
            self._heartbeat(self._pos)
            self._skipper.pending_heartbeat = False
            await self._flush()
