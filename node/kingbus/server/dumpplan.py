"""Dump planning: where a dump starts, which transactions it skips, what positions its
heartbeats carry, and the generated events around the stored ones (pure).

Theory of operation
-------------------
Segments are valid binlog files (magic, FDE, Previous_gtids, transactions, sealing Rotate);
a dump streams them from a (segment, offset) cursor.  What the replica receives per segment:

* a fake Rotate ``(segment, start)`` -- artificial, CRC32 because the server answers
  ``CRC32`` to ``SELECT @source_binlog_checksum``;
* the segment's FDE with BINLOG_IN_USE cleared and ``created`` zeroed (segments rotate at
  sizes the source never saw, so a non-zero ``created`` would make the replica drop its
  temporary tables mid-stream), and ``log_pos`` zeroed when the dump starts past the FDE
  (file/position mode, ``pos > 4``), so that the replica does not count it;
* the file's bytes from the cursor on, event by event, unchanged.  At the end of a sealed
  segment its real Rotate is among them and the next segment starts the same way at 4.

The replica's position is the rotate position plus the sizes of the events it counted
(notes/mysql-protocol.md §2.5), i.e. exactly our file offset, so every heartbeat carries the
file offset just past the last event sent or skipped -- never lower, never 0xFFFFFFFF.

GTID mode: the dump starts at the newest segment whose Previous_gtids is contained in the
replica's set; whole transactions in that set are skipped (:class:`GtidSkipper`), and before
the next event actually sent a heartbeat announces the end of the skipped run.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from collections.abc import Sequence

from kingbus.binlog import control_events, events, format_description, gtid_events
from kingbus.binlog.gtids import GtidSet
from kingbus.protocol.errors import ER_SOURCE_FATAL_ERROR_READING_BINLOG, MySQLError

FIRST_EVENT_POS = len(events.BINLOG_MAGIC)


_LOG_POS = struct.Struct("<I")


def dump_error(message: str) -> MySQLError:
    """ERR 1236: the replica stops and does not retry (notes §2.7)."""
    return MySQLError(ER_SOURCE_FATAL_ERROR_READING_BINLOG, "HY000", message)


@dataclasses.dataclass(frozen=True, slots=True)
class SegmentView:
    name: str
    size: int
    sealed: bool
    previous_gtids: GtidSet


@dataclasses.dataclass(frozen=True, slots=True)
class StartPoint:
    name: str
    position: int


def missing_for_replica(replica: GtidSet, purged: GtidSet) -> GtidSet:
    """Purged transactions the replica still needs (non-empty: refuse the dump)."""
    return purged - replica


def replica_extra(replica: GtidSet, committed: GtidSet) -> GtidSet:
    """Transactions the replica has of UUIDs this cluster serves, that the cluster lacks.

    GTIDs of other UUIDs (the replica's own writes, other sources) are the replica's business.
    """
    extra = GtidSet()
    for uuid in sorted({uuid for uuid, _tag in committed.tsids()}):
        extra = extra | (replica.for_uuid(uuid) - committed.for_uuid(uuid))
    return extra


def plan_gtid_dump(
    segments: Sequence[SegmentView], replica: GtidSet, committed: GtidSet, purged: GtidSet
) -> StartPoint | None:
    """The start of a COM_BINLOG_DUMP_GTID, or None when the store is still empty.

    Raises ERR 1236 when the replica needs purged transactions or is ahead of the cluster.
    """
    missing = missing_for_replica(replica, purged)
    if missing:
        raise dump_error(
            "Cannot replicate because the source purged required binary logs. Replicate the missing "
            f"transactions from elsewhere, or provision a new replica from backup. Missing: '{missing}'"
        )
    extra = replica_extra(replica, committed)
    if extra:
        raise dump_error(
            "Cannot replicate because the source has fewer transactions than the replica: the replica "
            f"has '{extra}' which this Kingbus cluster never received"
        )
    if not segments:
        return None
    for segment in reversed(segments):
        if segment.previous_gtids.issubset(replica):
            return StartPoint(segment.name, FIRST_EVENT_POS)
    # Even the oldest segment starts after transactions the replica lacks: they are gone.
    raise dump_error(
        "Cannot replicate because the source purged required binary logs: the oldest binary log "
        f"{segments[0].name} starts after '{segments[0].previous_gtids - replica}'"
    )


def plan_file_dump(segments: Sequence[SegmentView], name: str, position: int) -> StartPoint:
    """The start of a COM_BINLOG_DUMP; an empty name means the first segment (like MySQL)."""
    if not segments:
        raise dump_error("Binary log is not open")
    if not name:
        return StartPoint(segments[0].name, max(position, FIRST_EVENT_POS))
    segment = next((s for s in segments if s.name == name), None)
    if segment is None:
        raise dump_error("Could not find first log file name in binary log index file")
    if position < FIRST_EVENT_POS:
        raise dump_error(f"Client requested source to start replication from position < 4 ({position})")
    if position > segment.size:
        raise dump_error(
            "Client requested source to start replication from position > file size "
            f"({position} > {segment.size})"
        )
    return StartPoint(name, position)


def next_segment(segments: Sequence[SegmentView], name: str) -> SegmentView | None:
    for i, segment in enumerate(segments):
        if segment.name == name:
            return segments[i + 1] if i + 1 < len(segments) else None
    return None


# --- generated events ---------------------------------------------------------------------------


def fake_rotate(name: str, position: int, server_id: int) -> bytes:
    return control_events.encode_rotate(next_file=name, position=position, server_id=server_id, checksum=True)


def dump_fde(stored_fde: bytes, *, start: int) -> bytes:
    """The FDE as sent at the start of a segment's stream (see the module docstring)."""
    return format_description.rewrite_format_description(
        stored_fde, zero_created=True, zero_log_pos=start > FIRST_EVENT_POS, clear_in_use=True
    )


def heartbeat(name: str, position: int, *, server_id: int, v2: bool) -> bytes:
    if v2:
        return control_events.encode_heartbeat_v2(
            file=name, position=position, server_id=server_id, checksum=True
        )
    return control_events.encode_heartbeat_v1(
        file=name, position=position, server_id=server_id, checksum=True
    )


# --- GTID skipping ------------------------------------------------------------------------------

_GTID_TYPES = frozenset((int(events.EventType.GTID), int(events.EventType.GTID_TAGGED)))
_ANONYMOUS = int(events.EventType.ANONYMOUS_GTID)
_NEVER_SKIPPED = frozenset(
    (
        int(events.EventType.ROTATE),
        int(events.EventType.FORMAT_DESCRIPTION),
        int(events.EventType.PREVIOUS_GTIDS),
    )
)


def at_node_position(event: bytes, offset: int) -> bytes:
    """The event with its header log_pos set to where it ends in the node's own file.

    Stored transactions keep the source's log_pos (DESIGN invariant 1, and what GTID dumps
    send).  A file/position replica or CDC reader, however, records the header log_pos as its
    position (a MySQL replica's Exec_Source_Log_Pos, which relay-log recovery resumes from;
    python-mysql-replication's log_pos), so file/position dumps send the node's coordinates,
    with the CRC recomputed.
    """
    end = offset + len(event)
    if _LOG_POS.unpack_from(event, events.LOG_POS_OFFSET)[0] in (0, end):
        return event  # artificial events keep 0; our own events already carry our offsets
    patched = bytearray(event)
    _LOG_POS.pack_into(patched, events.LOG_POS_OFFSET, end)
    return events.recompute_crc(patched)


class Decision(enum.Enum):
    SEND = "send"
    SKIP = "skip"


class GtidSkipper:
    """Skips whole transactions whose GTID the replica has, event by event.

    A transaction runs from its GTID event up to the next GTID event; Rotate, FDE and
    Previous_gtids are never skipped.  ``pending_heartbeat`` becomes true when a skipped run
    ends, and stays true until the adapter has announced it with a heartbeat.
    """

    def __init__(self, replica: GtidSet | None) -> None:
        self._replica = replica
        self._skipping = False
        self.pending_heartbeat = False

    @property
    def skipping(self) -> bool:
        return self._skipping

    def decide(self, event: bytes) -> Decision:
        if self._replica is None:
            return Decision.SEND
        event_type = events.event_type_of(event)
        if event_type == _ANONYMOUS:
            raise dump_error(
                "Cannot replicate anonymous transaction when AUTO_POSITION = 1, at an anonymous GTID event"
            )
        if event_type in _GTID_TYPES:
            gtid = gtid_events.gtid_of_event(event, checksum=True)
            skip = self._replica.contains(gtid)
            if self._skipping and not skip:
                self.pending_heartbeat = True
            self._skipping = skip
        elif event_type in _NEVER_SKIPPED:
            if self._skipping:
                self.pending_heartbeat = True
            self._skipping = False
        return Decision.SKIP if self._skipping else Decision.SEND
