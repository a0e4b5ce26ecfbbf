"""Node's read-modify-write requests (POST /source/stop|start, member changes) wait until the
leader's applied state is current.

The seam is :class:`kingbus.raft.cluster.RaftMember`: a stand-in plays a leader elected a
moment ago whose log holds a later PUT /source that it has not applied yet (it applies it when
its election no-op commits).  The real Node, state machine and store decide; this tier does
not claim to test Raft (tests/integration does, with real members)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pysyncobj import FAIL_REASON

from kingbus.api import errors as api_errors
from kingbus.config import load_config
from kingbus.node import Node
from kingbus.raft import entries
from kingbus.raft.cluster import RaftError, nothing_done


def _source(tls: str, *, running: bool = True) -> entries.SourceConfig:
    return entries.SourceConfig("db.example", 3306, "repl", "token", "", False, running, tls=tls)


class FreshLeader:
    """A leader whose state machine has applied `applied` and still owes `owed`; it catches
    up after `polls_until_current` looks at `state_is_current` (never, if None)."""

    def __init__(self, node: Node, owed: list[bytes], polls_until_current: int | None) -> None:
        self.node = node
        self.owed = owed
        self.polls_left = polls_until_current
        self.proposed: list[bytes] = []

    def is_leader(self) -> bool:
        return True

    def state_is_current(self) -> bool:
        if self.polls_left is None:
            return False
        if self.polls_left > 0:
            self.polls_left -= 1
            return False
        for payload in self.owed:
            self.node.machine.apply(payload)
        self.owed = []
        return True

    def propose_and_wait(self, payload: bytes) -> None:
        self.proposed.append(payload)
        self.node.machine.apply(payload)

    def member_addresses(self) -> list[str]:
        return ["127.0.0.1:7100"]


@pytest.fixture
def node(tmp_path: Path) -> Node:
    (tmp_path / "token").write_text("admin-token\n")
    (tmp_path / "raft-password").write_text("raft-password\n")
    environ = {
        "KINGBUS_NAME": "kb-0",
        "KINGBUS_DATA_DIR": str(tmp_path / "data"),
        "KINGBUS_RAFT_ADDRESS": "127.0.0.1:7100",
        "KINGBUS_RAFT_PASSWORD_FILE": str(tmp_path / "raft-password"),
        "KINGBUS_ADMIN_TOKEN_FILE": str(tmp_path / "token"),
        "KINGBUS_MYSQL_SERVER_ID": "4001",
    }
    return Node(load_config(None, environ))


def _fresh_leader(node: Node, polls_until_current: int | None) -> FreshLeader:
    node.machine.apply(entries.encode(_source("disabled")))  # applied before the restart
    leader = FreshLeader(node, [entries.encode(_source("required"))], polls_until_current)
    node.raft = leader  # type: ignore[assignment]
    return leader


async def test_a_stop_waits_for_the_leaders_state_and_keeps_the_latest_settings(node: Node) -> None:
    leader = _fresh_leader(node, polls_until_current=3)
    await node.stop_source()
    source = node.machine.state.source
    assert source is not None and (source.tls, source.running) == ("required", False)
    assert len(leader.proposed) == 1


async def test_a_start_after_a_stop_the_fresh_leader_has_not_applied_proposes_the_start(node: Node) -> None:
    leader = _fresh_leader(node, polls_until_current=2)
    leader.owed.append(entries.encode(_source("required", running=False)))
    await node.start_source()
    source = node.machine.state.source
    assert source is not None and (source.tls, source.running) == ("required", True)
    assert len(leader.proposed) == 1  # decided on the stopped state, so a start was needed


async def test_a_leader_that_never_catches_up_answers_retryable_503_and_proposes_nothing(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    leader = _fresh_leader(node, polls_until_current=None)
    monkeypatch.setattr(node, "current_state_wait_seconds", 0.1)
    requests = [
        node.stop_source,
        lambda: node.add_member("kb-9", "127.0.0.9:7100", "http://127.0.0.9:9595"),
        lambda: node.remove_member("kb-1"),
    ]
    for request in requests:
        with pytest.raises(api_errors.Unavailable) as caught:
            await request()
        assert caught.value.retryable
        assert "earlier terms" in caught.value.reason
    assert leader.proposed == []


class RefusingLeader(FreshLeader):
    def __init__(self, node: Node, error: RaftError) -> None:
        super().__init__(node, [], polls_until_current=0)
        self.error = error

    def propose_and_wait(self, payload: bytes) -> None:
        raise self.error


@pytest.mark.parametrize("left_nothing", [True, False])
async def test_a_failed_proposal_is_retryable_only_when_nothing_was_done(
    node: Node, left_nothing: bool
) -> None:
    node.machine.apply(entries.encode(_source("required")))
    error = RaftError("the entry was discarded by a leader change", nothing_done=left_nothing)
    node.raft = RefusingLeader(node, error)  # type: ignore[assignment]
    with pytest.raises(api_errors.Unavailable) as caught:
        await node.stop_source()
    assert caught.value.retryable is left_nothing
    assert caught.value.reason == "the entry was discarded by a leader change"


def test_pysyncobj_failures_that_leave_nothing_behind() -> None:
    assert {code for code in range(16) if nothing_done(code)} == {
        FAIL_REASON.QUEUE_FULL,
        FAIL_REASON.MISSING_LEADER,
        FAIL_REASON.NOT_LEADER,
        FAIL_REASON.DISCARDED,
    }
    assert not nothing_done(FAIL_REASON.LEADER_CHANGED)  # a forwarded command's fate is unknown
    assert not nothing_done(FAIL_REASON.SUCCESS)
