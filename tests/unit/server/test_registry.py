"""The registry of dump sessions: zombies by replica UUID or server id, retention, totals."""

from __future__ import annotations

from kingbus.server.registry import Registry, ReplicaInfo
from kingbus.store.store import segment_number


def info(server_id: int, uuid: str | None, file: str = "") -> ReplicaInfo:
    return ReplicaInfo(
        server_id=server_id, uuid=uuid, address="127.0.0.1:1", user="repl", mode="gtid", file=file
    )


def test_same_uuid_is_a_zombie_whatever_the_server_id() -> None:
    registry = Registry()
    first = info(1, "u")
    assert registry.register(first) == []
    assert registry.register(info(2, "u")) == [first]


def test_same_server_id_without_uuid_is_a_zombie() -> None:
    registry = Registry()
    first = info(7, None)
    registry.register(first)
    assert registry.register(info(7, None)) == [first]
    assert registry.register(info(8, None)) == []


def test_different_uuids_with_the_same_server_id_coexist() -> None:
    registry = Registry()
    registry.register(info(7, "a"))
    assert registry.register(info(7, "b")) == []


def test_oldest_file_for_retention_and_bytes_of_ended_sessions() -> None:
    registry = Registry()
    a = info(1, "a", "kingbus-bin.000010")
    b = info(2, "b", "kingbus-bin.000002")
    registry.register(a)
    registry.register(b)
    assert registry.oldest_file(segment_number) == "kingbus-bin.000002"
    b.bytes_sent = 100
    a.bytes_sent = 5
    registry.unregister(b)
    assert registry.oldest_file(segment_number) == "kingbus-bin.000010"
    assert registry.total_bytes_sent() == 105
    registry.unregister(a)
    assert registry.oldest_file(segment_number) is None
    assert registry.total_bytes_sent() == 105


def test_status_shows_lag_only_while_behind() -> None:
    entry = info(1, "a", "kingbus-bin.000001")
    entry.last_event_timestamp = 1000
    assert entry.lag_seconds(1010.0) == 10.0
    entry.caught_up = True
    assert entry.as_status(1010.0)["lag_seconds"] == 0.0
