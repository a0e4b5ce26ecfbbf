"""A stateful FAKE of the node behind the NodeControl seam, for testing the HTTP layer only.

This is not the node: it keeps a member table, a source and a leader flag in memory and
enforces the same refusals the real node promises (409 for a taken name, 404 for an unknown
member, 409 for starting without a source, 503 without quorum, NotLeader on followers), so the
API tier can be tested for what it does with each answer.  The real node is tested against
real processes elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kingbus.api.control import NodeControl, SourceSpec
from kingbus.api.errors import BadRequest, Conflict, NotFound, NotLeader, Unavailable


@dataclass
class FakeMember:
    name: str
    raft: str
    admin: str


@dataclass
class FakeNodeControl:
    name: str
    admin: str = "http://127.0.0.1:1"
    leader: bool = True
    leader_admin: str | None = None  # for followers: where the leader is
    quorum: bool = True
    members_by_name: dict[str, FakeMember] = field(default_factory=dict)
    source: SourceSpec | None = None
    source_state: str = "stopped"
    term: int = 3
    delay_seconds: float = 0.0  # makes mutations slow (forwarding timeouts)
    lose_leadership_next: bool = False  # the next mutation raises NotLeader mid-way
    crash_next: bool = False  # the next mutation raises an unexpected exception
    mutations: list[str] = field(default_factory=list)  # what this fake actually changed

    def __post_init__(self) -> None:
        self.members_by_name.setdefault(self.name, FakeMember(self.name, "127.0.0.1:7100", self.admin))

    # ---- reads

    def status(self) -> Mapping[str, Any]:
        source = self.source
        return {
            "name": self.name,
            "role": "leader" if self.leader else "follower",
            "term": self.term,
            "leader": self.name if self.leader else None,
            "members": list(self.members()),
            "commit_index": 42,
            "committed_gtid_set": "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5",
            "purged_gtid_set": "",
            "source": {
                "host": source.host if source else None,
                "port": source.port if source else None,
                "user": source.user if source else None,
                "state": self.source_state,
                "error": None,
                "lag_seconds": 0.5 if self.source_state == "streaming" else None,
            },
            "store": {"bytes": 1234, "files": 2},
            "replicas": [],
        }

    def members(self) -> Sequence[Mapping[str, Any]]:
        return [
            {
                "name": m.name,
                "raft": m.raft,
                "admin": m.admin,
                "role": ("leader" if self.leader else "follower") if m.name == self.name else "follower",
                "healthy": True,
            }
            for m in self.members_by_name.values()
        ]

    def is_ready(self) -> tuple[bool, str]:
        if not self.quorum:
            return False, "no quorum: 1 of 3 members reachable"
        return True, "member of a cluster with a leader, caught up"

    def is_leader(self) -> bool:
        return self.leader

    def leader_admin_url(self) -> str | None:
        return self.admin if self.leader else self.leader_admin

    # ---- mutations

    async def _enter(self) -> None:
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if self.crash_next:
            self.crash_next = False
            raise RuntimeError("fake node bug with internal detail /secret/path")
        if self.lose_leadership_next:
            self.lose_leadership_next = False
            self.leader = False
        if not self.leader:
            raise NotLeader(self.leader_admin)
        if not self.quorum:
            raise Unavailable("no quorum: the change cannot be committed")

    async def set_source(self, spec: SourceSpec) -> None:
        await self._enter()
        if spec.start_gtid_set == "bogus":
            raise BadRequest("start_gtid_set: not a GTID set")
        self.source = spec
        self.mutations.append(f"set_source {spec.host}:{spec.port}")

    async def start_source(self) -> None:
        await self._enter()
        if self.source is None:
            raise Conflict("no source configured; PUT /source first")
        self.source_state = "streaming"
        self.mutations.append("start_source")

    async def stop_source(self) -> None:
        await self._enter()
        self.source_state = "stopped"
        self.mutations.append("stop_source")

    async def add_member(self, name: str, raft: str, admin: str) -> None:
        await self._enter()
        if name in self.members_by_name:
            raise Conflict(f"a member named {name!r} already exists")
        if any(m.raft == raft for m in self.members_by_name.values()):
            raise Conflict(f"raft address {raft} already belongs to a member")
        self.members_by_name[name] = FakeMember(name, raft, admin)
        self.mutations.append(f"add_member {name}")

    async def remove_member(self, name: str) -> None:
        await self._enter()
        if name not in self.members_by_name:
            raise NotFound(f"no member named {name!r}")
        del self.members_by_name[name]
        self.mutations.append(f"remove_member {name}")

    async def transfer_leadership(self, to: str | None) -> None:
        await self._enter()
        if to is not None and to not in self.members_by_name:
            raise NotFound(f"no member named {to!r}")
        if to == self.name:
            raise Conflict(f"{to} is already the leader")
        self.leader = False
        self.mutations.append(f"transfer_leadership {to}")


def _conforms(control: FakeNodeControl) -> NodeControl:
    return control  # mypy checks that the fake satisfies the protocol
