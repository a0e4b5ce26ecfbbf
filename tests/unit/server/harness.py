"""An in-process ReplicaServer over a real BinlogStore, and a raw dump client (PyMySQL).

The server runs on its own asyncio loop in a thread, exactly as a node runs it; tests append
fabricated transactions to the store (the Raft apply path's calls: append + publish) and read
what a replica would receive.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql

from kingbus.binlog.gtids import GtidSet
from kingbus.protocol import commands, scrambles
from kingbus.server.accounts import Accounts
from kingbus.server.server import ReplicaServer
from kingbus.server.tlsmaterial import server_material
from kingbus.store.store import BinlogStore
from tests.support.fabricate import SourceStream, incoming

SERVER_ID = 7001
SERVER_UUID = "11111111-2222-4333-8444-555555555555"
PASSWORDS = {"repl": "replpass", "nopass": ""}


class RunningServer:
    def __init__(self, store: BinlogStore, **options: Any) -> None:
        self.store = store
        self.loop = asyncio.new_event_loop()
        tls, _key = server_material(None)
        self.server = ReplicaServer(
            store=store,
            bind="127.0.0.1:0",
            server_id=SERVER_ID,
            server_uuid=SERVER_UUID,
            accounts=options.pop("accounts", None) or Accounts.from_passwords(PASSWORDS),
            tls=tls,
            rsa_key=scrambles.generate_rsa_key(),
            **options,
        )
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.call(self.server.start())
        self.port = self.server.port

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def connect(self, **kwargs: Any) -> pymysql.connections.Connection[Any]:
        settings: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "user": "repl",
            "password": "replpass",
        }
        settings.update(kwargs)
        return pymysql.connect(connect_timeout=10, read_timeout=30, **settings)


def fill(store: BinlogStore, stream: SourceStream, count: int, payload: int = 100) -> None:
    """Appends ``count`` transactions and publishes them (what Raft apply does)."""
    for _ in range(count):
        item = stream.txn(payload)
        store.append(incoming(item), item.fde)
    store.publish()


class DumpClient:
    """A replica's dump session, raw: the events exactly as received (payload minus 0x00)."""

    def __init__(self, conn: pymysql.connections.Connection[Any]) -> None:
        self.conn = conn

    def query(self, sql: str) -> None:
        with self.conn.cursor() as cursor:
            cursor.execute(sql)

    def _send(self, payload: bytes) -> None:
        self.conn._write_bytes(struct.pack("<I", len(payload))[:3] + b"\x00" + payload)
        self.conn._next_seq_id = 1

    def dump_gtid(self, gtids: GtidSet, *, server_id: int = 9001, flags: int = 0x02) -> None:
        command = commands.BinlogDumpGtid(commands.DumpFlag(flags), server_id, "", 4, gtids.encode())
        self._send(commands.encode_binlog_dump_gtid(command))

    def dump_file(self, name: str, position: int, *, server_id: int = 9001, flags: int = 0) -> None:
        command = commands.BinlogDump(position, commands.DumpFlag(flags), server_id, name)
        self._send(commands.encode_binlog_dump(command))

    def next_event(self) -> bytes:
        """The next event; raises pymysql's error for an ERR packet, EOFError for EOF."""
        packet = self.conn._read_packet()
        data: bytes = packet.get_all_data()
        if data[:1] == b"\xfe" and len(data) < 9:
            raise EOFError
        assert data[:1] == b"\x00", data[:16]
        return data[1:]

    def events(self, count: int) -> Iterator[bytes]:
        for _ in range(count):
            yield self.next_event()


def make_store(path: Path, segment_bytes: int = 1 << 20) -> BinlogStore:
    return BinlogStore(path, segment_bytes=segment_bytes, fsync=False)
