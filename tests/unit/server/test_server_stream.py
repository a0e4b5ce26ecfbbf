"""The dump stream of an in-process ReplicaServer over a real store, read raw.

Checks notes/mysql-protocol.md §2.4-2.7 on the bytes a replica receives: fake Rotate with
CRC, FDE with BINLOG_IN_USE/created cleared (log_pos 0 past the start), Previous_gtids,
transactions byte-identical to the store, GTID skipping with the end-of-skip heartbeat,
positions that always equal the file offsets, segment switches, idle heartbeats, EOF for
non-blocking dumps, 1236 errors, zombies, and payloads over 16 MiB.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from kingbus.binlog import control_events, events, format_description
from kingbus.binlog.gtids import GtidSet
from kingbus.server.accounts import Accounts, Privilege
from kingbus.store.store import BinlogStore
from tests.support.fabricate import SOURCE_UUID, SourceStream
from tests.unit.server.harness import SERVER_ID, DumpClient, RunningServer, fill, make_store

ROTATE = events.EventType.ROTATE
FDE = events.EventType.FORMAT_DESCRIPTION
PREVIOUS = events.EventType.PREVIOUS_GTIDS
HEARTBEAT_V2 = events.EventType.HEARTBEAT_V2
HEARTBEAT = events.EventType.HEARTBEAT


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BinlogStore]:
    s = make_store(tmp_path / "binlog")
    yield s
    s.close()


@pytest.fixture
def running(store: BinlogStore) -> Iterator[RunningServer]:
    server = RunningServer(store)
    yield server
    server.close()


def kind(event: bytes) -> int:
    return events.EventHeader.parse(event).event_type


def gtids(text: str) -> GtidSet:
    return GtidSet.parse(text)


class Tracker:
    """Computes Read_Source_Log_Pos the way a MySQL replica does (notes §2.5)."""

    def __init__(self) -> None:
        self.file = ""
        self.pos = 0

    def feed(self, event: bytes) -> None:
        header = events.EventHeader.parse(event)
        if header.event_type == ROTATE:
            rotate = control_events.decode_rotate(event, checksum=True)
            self.file, self.pos = rotate.next_file, rotate.position
        elif header.event_type in (HEARTBEAT, HEARTBEAT_V2):
            beat = control_events.decode_heartbeat(event, checksum=True)
            assert beat.file == self.file
            assert beat.position >= self.pos, "a heartbeat below the replica's position is fatal"
            assert beat.position != 0xFFFFFFFF
            self.pos = beat.position
        elif header.event_type == FDE and header.log_pos == 0:
            pass
        else:
            self.pos += header.event_size


def test_gtid_dump_from_empty_set_streams_the_segment_as_stored(
    store: BinlogStore, running: RunningServer
) -> None:
    fill(store, SourceStream(), 5)
    segment = store.segments()[0]
    data = store.read(segment.name, 0, segment.size)
    client = DumpClient(running.connect())
    client.dump_gtid(GtidSet(), flags=0x02)
    rotate, fde, *rest = client.events(2 + 1 + 5 * 4)
    assert kind(rotate) == ROTATE and events.crc32_ok(rotate)
    decoded = control_events.decode_rotate(rotate, checksum=True)
    assert (decoded.next_file, decoded.position, decoded.artificial) == (segment.name, 4, True)
    assert events.EventHeader.parse(rotate).server_id == SERVER_ID
    info = format_description.decode_format_description(fde)
    assert info.header.flags & events.EventFlag.BINLOG_IN_USE == 0
    assert info.created == 0
    assert info.header.log_pos != 0
    stored_fde_size = info.header.event_size
    # Everything after the FDE is the file, byte for byte.
    assert b"".join(rest) == data[4 + stored_fde_size :]
    assert kind(rest[0]) == PREVIOUS
    tracker = Tracker()
    for event in (rotate, fde, *rest):
        tracker.feed(event)
    assert (tracker.file, tracker.pos) == (segment.name, segment.size)


def test_skipped_transactions_end_with_a_heartbeat_at_the_offset(
    store: BinlogStore, running: RunningServer
) -> None:
    stream = SourceStream()
    fill(store, stream, 6)
    segment = store.segments()[0]
    index = store.index(segment.name)
    client = DumpClient(running.connect())
    # The replica has 1-3 and 5: skip those, send 4 and 6.
    client.dump_gtid(gtids(f"{SOURCE_UUID}:1-3:5"), flags=0x02)
    received = list(client.events(2 + 1 + 1 + 4 + 1 + 4))
    tracker = Tracker()
    for event in received:
        tracker.feed(event)
    kinds = [kind(e) for e in received]
    assert kinds[:3] == [ROTATE, FDE, PREVIOUS]
    assert kinds[3] == HEARTBEAT_V2
    beat = control_events.decode_heartbeat(received[3], checksum=True)
    assert beat.position == index[3].offset  # end of the skipped run = start of txn 4
    assert b"".join(received[4:8]) == store.read(segment.name, index[3].offset, index[3].length)
    beat = control_events.decode_heartbeat(received[8], checksum=True)
    assert beat.position == index[5].offset
    assert b"".join(received[9:13]) == store.read(segment.name, index[5].offset, index[5].length)
    assert tracker.pos == segment.size
    # FDE of a dump whose first transaction is skipped: created is 0 (no temp-table drop).
    assert format_description.decode_format_description(received[1]).created == 0


def test_new_commits_wake_the_dump_and_idle_heartbeats_keep_the_position(
    store: BinlogStore, running: RunningServer
) -> None:
    stream = SourceStream()
    fill(store, stream, 2)
    conn = running.connect()
    client = DumpClient(conn)
    client.query("SET @master_heartbeat_period = 200000000, @source_heartbeat_period = 200000000")
    client.dump_gtid(GtidSet(), flags=0)  # v1 heartbeats
    tracker = Tracker()
    for event in client.events(3 + 8):
        tracker.feed(event)
    # Nothing else is committed: what arrives next can only be the requested heartbeat (the
    # client's read timeout fails the test if none comes; its period is not timed here).
    beat = client.next_event()
    assert kind(beat) == HEARTBEAT
    tracker.feed(beat)
    assert tracker.pos == store.segments()[0].size
    fill(store, stream, 1)
    received: list[bytes] = []
    while len(received) < 4:
        event = client.next_event()
        tracker.feed(event)
        if kind(event) != HEARTBEAT:
            received.append(event)
    assert tracker.pos == store.segments()[0].size
    entry = store.index(store.segments()[0].name)[2]
    assert b"".join(received) == store.read(store.segments()[0].name, entry.offset, entry.length)


def test_segment_switch_sends_real_rotate_then_fake_rotate_and_fde(tmp_path: Path) -> None:
    store = make_store(tmp_path / "binlog", segment_bytes=2048)
    server = RunningServer(store)
    try:
        stream = SourceStream()
        fill(store, stream, 30, payload=200)
        segments = store.segments()
        assert len(segments) >= 3
        client = DumpClient(server.connect())
        client.dump_gtid(GtidSet(), flags=0x03)  # non-blocking: EOF at the end
        tracker = Tracker()
        received: list[bytes] = []
        with pytest.raises(EOFError):
            while True:
                event = client.next_event()
                tracker.feed(event)
                received.append(event)
        rotates = [control_events.decode_rotate(e, checksum=True) for e in received if kind(e) == ROTATE]
        real = [r for r in rotates if not r.artificial]
        fake = [r for r in rotates if r.artificial]
        assert [r.next_file for r in real] == [s.name for s in segments[1:]]
        assert [r.next_file for r in fake] == [s.name for s in segments]
        assert (tracker.file, tracker.pos) == (segments[-1].name, segments[-1].size)
        gtid_count = sum(1 for e in received if kind(e) == events.EventType.GTID)
        assert gtid_count == 30
    finally:
        server.close()
        store.close()


def test_file_position_dump_from_the_middle(store: BinlogStore, running: RunningServer) -> None:
    fill(store, SourceStream(), 4)
    segment = store.segments()[0]
    index = store.index(segment.name)
    client = DumpClient(running.connect())
    client.dump_file(segment.name, index[2].offset, flags=0x01)
    rotate, fde = client.events(2)
    assert control_events.decode_rotate(rotate, checksum=True).position == index[2].offset
    header = events.EventHeader.parse(fde)
    assert header.log_pos == 0 and format_description.decode_format_description(fde).created == 0
    rest = []
    with pytest.raises(EOFError):
        while True:
            rest.append(client.next_event())
    assert b"".join(rest) == store.read(segment.name, index[2].offset, segment.size - index[2].offset)


@pytest.mark.parametrize(
    ("name", "position", "message"),
    [
        ("kingbus-bin.000009", 4, "Could not find first log file name"),
        ("kingbus-bin.000001", 3, "position < 4"),
        ("kingbus-bin.000001", 10**9, "position > file size"),
    ],
)
def test_file_dump_refusals(
    store: BinlogStore, running: RunningServer, name: str, position: int, message: str
) -> None:
    fill(store, SourceStream(), 1)
    client = DumpClient(running.connect())
    client.dump_file(name, position)
    with pytest.raises(pymysql.err.OperationalError) as caught:
        client.next_event()
    assert caught.value.args[0] == 1236 and message in caught.value.args[1]


def test_replica_with_transactions_the_cluster_never_had_gets_1236(
    store: BinlogStore, running: RunningServer
) -> None:
    fill(store, SourceStream(), 2)
    client = DumpClient(running.connect())
    client.dump_gtid(gtids(f"{SOURCE_UUID}:1-3"))
    with pytest.raises(pymysql.err.OperationalError) as caught:
        client.next_event()
    assert caught.value.args[0] == 1236 and "fewer transactions" in caught.value.args[1]


def test_replica_own_gtids_are_not_held_against_it(store: BinlogStore, running: RunningServer) -> None:
    fill(store, SourceStream(), 2)
    client = DumpClient(running.connect())
    client.dump_gtid(gtids("aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa:1-100"), flags=0x03)
    assert kind(client.next_event()) == ROTATE


def test_second_dump_of_the_same_replica_uuid_ends_the_first(
    store: BinlogStore, running: RunningServer
) -> None:
    fill(store, SourceStream(), 1)
    first = DumpClient(running.connect())
    first.query("SET @replica_uuid = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'")
    first.dump_gtid(GtidSet())
    list(first.events(3 + 4))
    second = DumpClient(running.connect())
    second.query("SET @replica_uuid = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'")
    second.dump_gtid(GtidSet())
    list(second.events(3 + 4))
    with pytest.raises(pymysql.err.OperationalError) as caught:
        first.next_event()
    assert caught.value.args[0] == 1236 and "same server_uuid" in caught.value.args[1]
    assert len(running.server.registry.sessions()) == 1


def test_a_replica_waiting_on_an_empty_store_shows_in_status_and_is_served_once_data_arrives(
    store: BinlogStore, running: RunningServer
) -> None:
    client = DumpClient(running.connect())
    client.query("SET @replica_uuid = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc'")
    client.dump_gtid(GtidSet())
    waiting = wait_for_sessions(running, 1)
    assert (waiting[0]["uuid"], waiting[0]["server_id"]) == ("cccccccc-cccc-4ccc-8ccc-cccccccccccc", 9001)
    fill(store, SourceStream(), 1)
    assert [kind(e) for e in client.events(3)] == [ROTATE, FDE, PREVIOUS]


def test_a_replica_that_leaves_an_empty_store_leaves_no_session_behind(
    store: BinlogStore, running: RunningServer
) -> None:
    client = DumpClient(running.connect())
    client.dump_gtid(GtidSet())
    wait_for_sessions(running, 1)
    client.conn._sock.shutdown(socket.SHUT_RDWR)  # gone without COM_QUIT, as a killed replica goes
    wait_for_sessions(running, 0)
    assert running.server.connections == 0


def test_a_second_dump_of_the_same_replica_ends_one_waiting_on_an_empty_store(
    store: BinlogStore, running: RunningServer
) -> None:
    first = DumpClient(running.connect())
    first.query("SET @replica_uuid = 'dddddddd-dddd-4ddd-8ddd-dddddddddddd'")
    first.dump_gtid(GtidSet())
    (waiting,) = wait_for_sessions(running, 1)
    second = DumpClient(running.connect())
    second.query("SET @replica_uuid = 'dddddddd-dddd-4ddd-8ddd-dddddddddddd'")
    second.dump_gtid(GtidSet())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sessions = running.server.replicas()
        if len(sessions) == 1 and sessions[0]["address"] != waiting["address"]:
            break
        time.sleep(0.02)
    else:
        raise AssertionError(f"the first session was not replaced: {running.server.replicas()}")
    with pytest.raises((EOFError, pymysql.err.OperationalError)):
        first.next_event()  # its connection was closed
    fill(store, SourceStream(), 1)
    assert [kind(e) for e in second.events(3)] == [ROTATE, FDE, PREVIOUS]


def wait_for_sessions(running: RunningServer, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sessions = running.server.replicas()
        if len(sessions) == count:
            return sessions
        time.sleep(0.02)
    raise AssertionError(f"expected {count} dump sessions, have {running.server.replicas()}")


def test_event_over_16_mib_is_split_and_reassembled(store: BinlogStore, running: RunningServer) -> None:
    stream = SourceStream()
    fill(store, stream, 1, payload=17 * 1024 * 1024)
    segment = store.segments()[-1]
    index = store.index(segment.name)
    client = DumpClient(running.connect())
    client.dump_gtid(GtidSet(), flags=0x01)
    received = list(client.events(3 + 4))
    assert b"".join(received[3:]) == store.read(segment.name, index[0].offset, index[0].length)
    assert max(len(e) for e in received) > 16 * 1024 * 1024


def test_purged_transactions_needed_by_the_replica_give_1236(tmp_path: Path) -> None:
    store = make_store(tmp_path / "binlog", segment_bytes=2048)
    stream = SourceStream()
    fill(store, stream, 30, payload=200)
    first = store.segments()[0].name
    store.purge([first])
    server = RunningServer(store)
    try:
        client = DumpClient(server.connect())
        client.dump_gtid(GtidSet())
        with pytest.raises(pymysql.err.OperationalError) as caught:
            client.next_event()
        assert caught.value.args[0] == 1236 and "purged" in caught.value.args[1]
    finally:
        server.close()
        store.close()


def test_binary_log_statements(store: BinlogStore, running: RunningServer) -> None:
    fill(store, SourceStream(), 3)
    segment = store.segments()[0]
    conn = running.connect()
    with conn.cursor() as cursor:
        cursor.execute("SHOW BINARY LOGS")
        assert cursor.fetchall() == ((segment.name, segment.size, "No"),)
        cursor.execute("SHOW BINARY LOG STATUS")
        assert cursor.fetchall() == ((segment.name, segment.size, "", "", f"{SOURCE_UUID}:1-3"),)
        cursor.execute("SHOW MASTER STATUS")
        assert cursor.fetchone()[1] == segment.size
        cursor.execute(f"SHOW BINLOG EVENTS IN '{segment.name}' LIMIT 3")
        rows = cursor.fetchall()
        assert [r[2] for r in rows] == ["Format_desc", "Previous_gtids", "Gtid"]
        assert rows[0][1] == 4 and rows[1][1] == rows[0][4]
        cursor.execute("SELECT @@server_id, @@server_uuid, @@gtid_mode, @@binlog_checksum, @@gtid_executed")
        assert cursor.fetchone() == (
            SERVER_ID,
            running.server.server_uuid,
            "ON",
            "CRC32",
            f"{SOURCE_UUID}:1-3",
        )
        with pytest.raises(pymysql.err.OperationalError) as caught:
            cursor.execute("SELECT @@no_such_variable")
        assert caught.value.args[0] == 1193
        with pytest.raises(pymysql.err.MySQLError):
            cursor.execute("DROP DATABASE everything")
        cursor.execute("SELECT 1")  # the session goes on after errors
        assert cursor.fetchone() == (1,)
        conn.ping()


def test_a_replica_briefly_ahead_waits_for_the_commit(store: BinlogStore, running: RunningServer) -> None:
    """A replica moved from a member that applied more is served once this member catches up."""
    stream = SourceStream()
    fill(store, stream, 2)
    client = DumpClient(running.connect())
    client.dump_gtid(gtids(f"{SOURCE_UUID}:1-3"), flags=0x02)
    time.sleep(0.5)
    fill(store, stream, 2)
    received = [kind(e) for e in client.events(2 + 1 + 1 + 4)]
    # Rotate, FDE, Previous_gtids, end-of-skip heartbeat, then transaction 4.
    assert received[:4] == [ROTATE, FDE, PREVIOUS, HEARTBEAT_V2]
    assert received[4] == events.EventType.GTID


def test_server_id_zero_means_non_blocking(store: BinlogStore, running: RunningServer) -> None:
    fill(store, SourceStream(), 1)
    client = DumpClient(running.connect())
    client.dump_gtid(GtidSet(), server_id=0, flags=0)
    list(client.events(3 + 4))
    with pytest.raises(EOFError):
        client.next_event()


def test_users_without_the_replication_privilege_cannot_dump(store: BinlogStore) -> None:
    accounts = Accounts.from_passwords(
        {"repl": "replpass", "reader": "pw"}, {"reader": [Privilege.REPLICATION_CLIENT]}
    )
    server = RunningServer(store, accounts=accounts)
    try:
        fill(store, SourceStream(), 1)
        conn = server.connect(user="reader", password="pw")
        with conn.cursor() as cursor:
            cursor.execute("SHOW BINARY LOGS")  # allowed
        client = DumpClient(conn)
        client.dump_gtid(GtidSet())
        with pytest.raises(pymysql.err.MySQLError) as caught:
            client.next_event()
        assert caught.value.args[0] == 1227
        assert server.server.registry.sessions() == []
    finally:
        server.close()


def test_long_skips_send_heartbeats_each_period(tmp_path: Path) -> None:
    store = make_store(tmp_path / "binlog", segment_bytes=64 << 20)
    stream = SourceStream()
    fill(store, stream, 3000, payload=2000)
    server = RunningServer(store)
    try:
        client = DumpClient(server.connect())
        client.query("SET @source_heartbeat_period = 1000000")  # 1 ms: several during the skip
        client.dump_gtid(gtids(f"{SOURCE_UUID}:1-2999"), flags=0x03)
        tracker = Tracker()
        kinds = []
        with pytest.raises(EOFError):
            while True:
                event = client.next_event()
                tracker.feed(event)
                kinds.append(kind(event))
        assert kinds.count(HEARTBEAT_V2) >= 2
        assert kinds.count(events.EventType.GTID) == 1
        assert tracker.pos == store.segments()[-1].size
    finally:
        server.close()
        store.close()
