"""Who is connected: dump sessions by replica identity, for status, zombies and retention.

MySQL ends an older dump when a new one arrives with the same ``@replica_uuid`` (or the same
server_id when no UUID was set) -- the replica reconnected and the old session is a zombie.
:meth:`Registry.register` returns the sessions to end; each :class:`ReplicaInfo` carries an
``end`` callback set by its dump stream.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable
from typing import Any

_ids = itertools.count(1)


@dataclasses.dataclass(eq=False)
class ReplicaInfo:
    server_id: int
    uuid: str | None
    address: str
    user: str
    mode: str  # "gtid" or "file"
    report_host: str = ""  # from COM_REGISTER_SLAVE (the replica's report_host/port)
    report_port: int = 0
    gtid_set: str = ""
    file: str = ""
    position: int = 0
    bytes_sent: int = 0  # on the wire: after compression, when the replica asked for it
    compression: str | None = None  # "zlib", "zstd" or None
    caught_up: bool = False
    last_event_timestamp: int = 0
    connected_at: float = dataclasses.field(default_factory=time.time)
    session_id: int = dataclasses.field(default_factory=lambda: next(_ids))
    end: Callable[[str], None] | None = None

    def lag_seconds(self, now: float) -> float:
        if self.caught_up or not self.last_event_timestamp:
            return 0.0
        return max(0.0, now - self.last_event_timestamp)

    def as_status(self, now: float) -> dict[str, Any]:
        return {
            "server_id": self.server_id,
            "uuid": self.uuid,
            "address": self.address,
            "user": self.user,
            "report_host": self.report_host,
            "report_port": self.report_port,
            "mode": self.mode,
            "gtid_set": self.gtid_set,
            "file": self.file,
            "position": self.position,
            "bytes_sent": self.bytes_sent,
            "compression": self.compression,
            "lag_seconds": self.lag_seconds(now),
            "connected_seconds": round(now - self.connected_at, 3),
        }


class Registry:
    def __init__(self) -> None:
        self._sessions: dict[int, ReplicaInfo] = {}
        self.bytes_sent_closed = 0  # bytes of sessions that already ended

    def register(self, info: ReplicaInfo) -> list[ReplicaInfo]:
        """Adds ``info``; returns the older sessions of the same replica (zombies to end)."""
        zombies = [
            other
            for other in self._sessions.values()
            if (info.uuid is not None and other.uuid == info.uuid)
            or (
                info.uuid is None
                and other.uuid is None
                and info.server_id
                and other.server_id == info.server_id
            )
        ]
        self._sessions[info.session_id] = info
        return zombies

    def unregister(self, info: ReplicaInfo) -> None:
        if self._sessions.pop(info.session_id, None) is not None:
            self.bytes_sent_closed += info.bytes_sent

    def sessions(self) -> list[ReplicaInfo]:
        return list(self._sessions.values())

    def total_bytes_sent(self) -> int:
        return self.bytes_sent_closed + sum(s.bytes_sent for s in self._sessions.values())

    def oldest_file(self, order: Callable[[str], int]) -> str | None:
        """The oldest segment some session still reads (retention must keep it)."""
        files = [s.file for s in self._sessions.values() if s.file]
        return min(files, key=order) if files else None
