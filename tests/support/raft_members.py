"""Real pysyncobj members in the test process, on loopback addresses: the scaffolding the
in-process Raft tests (`tests/integration/test_raft_*.py`) share.  Each test keeps its own
member class and `SyncObjConf`; this module only starts them on free ports, waits for a
leader, and stops them."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from kingbus.devenv.ports import free_port
from tests.support import wait_until


class RaftMember(Protocol):
    """What these helpers use of a pysyncobj `SyncObj` (its names)."""

    @property
    def raftCurrentTerm(self) -> int: ...

    def _isLeader(self) -> bool: ...

    def _getLeader(self) -> Any: ...

    def destroy_synchronous(self) -> None: ...


Member = TypeVar("Member", bound=RaftMember)


@contextlib.contextmanager
def running_members(
    hosts: Sequence[str], build: Callable[[str, list[str]], Member]
) -> Iterator[list[Member]]:
    """One member per host, each built by `build(address, peer_addresses)` on a free port;
    every member still in the list is destroyed on the way out (a test that destroys one
    itself removes it from the list)."""
    addresses = [f"{host}:{free_port(host)}" for host in hosts]
    members: list[Member] = []
    try:
        for address in addresses:
            members.append(build(address, [a for a in addresses if a != address]))
        yield members
    finally:
        for member in members:
            member.destroy_synchronous()


def sole_leader(members: Sequence[Member], timeout: float = 30.0) -> Member:
    """The one member that considers itself leader, once exactly one does."""

    def leaders() -> list[Member]:
        found = [m for m in members if m._isLeader()]
        return found if len(found) == 1 else []

    (leader,) = wait_until(leaders, timeout=timeout, what="a single leader")
    return leader


def settled_leader(members: Sequence[Member], timeout: float = 20.0) -> Member:
    """A leader that every member follows at its term."""

    def settled() -> list[Member]:
        found = [m for m in members if m._isLeader()]
        if len(found) != 1:
            return []
        term = found[0].raftCurrentTerm
        agreed = all(m.raftCurrentTerm == term and m._getLeader() is not None for m in members)
        return found if agreed else []

    (leader,) = wait_until(settled, timeout=timeout, what="a leader every member follows")
    return leader


class Ticking(Protocol):
    def addOnTickCallback(self, callback: Callable[[], None]) -> None: ...

    def removeOnTickCallback(self, callback: Callable[[], None]) -> None: ...


def on_tick_thread(member: Ticking, action: Callable[[], None], timeout: float = 10.0) -> None:
    """Runs `action` once on `member`'s tick thread and waits for it: pysyncobj's Raft state
    and its transport are not thread-safe.  What `action` raises is raised here."""
    done = threading.Event()
    raised: list[BaseException] = []

    def on_tick() -> None:
        # pysyncobj holds its callback lock while calling this: it cannot remove itself.
        if done.is_set():
            return
        try:
            action()
        except BaseException as exc:  # re-raised on the caller's thread
            raised.append(exc)
        finally:
            done.set()

    member.addOnTickCallback(on_tick)
    try:
        assert done.wait(timeout), "the tick thread did not run the action"
    finally:
        member.removeOnTickCallback(on_tick)
    if raised:
        raise raised[0]
