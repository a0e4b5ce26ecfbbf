"""The seam between the admin API and the node: what the HTTP layer may ask of a node.

The node (``kingbus.cli.node`` wiring raft, upstream, store, server) implements
:class:`NodeControl`; the API layer only translates HTTP to these calls and their results or
:mod:`kingbus.api.errors` back to HTTP.  Nothing here knows about aiohttp.

Contract for implementers
-------------------------
* The read methods (``status``, ``members``, ``is_ready``, ``is_leader``,
  ``leader_admin_url``) run on the event loop: answer from cached state, never block.
* A mutation that cannot be done on this node because it is not the leader raises
  :class:`~kingbus.api.errors.NotLeader` *before* changing anything; the API then forwards the
  request to the leader.  Other refusals raise ``BadRequest`` (400), ``NotFound`` (404),
  ``Conflict`` (409) or ``Unavailable`` (503; pass ``retryable=True`` only when nothing was
  attempted, e.g. no quorum known before proposing — never after a proposal timed out).
  Returning normally means *done*: committed through Raft where the change is replicated
  (the API reports success only then); ``transfer_leadership`` returns once leadership moved.
* Nothing returned by ``status``/``members`` may contain a password.  (The API also drops any
  key containing ``password`` from those documents as a second line of defence.)

Document shapes (the GET /status contract of DESIGN.md; keys may be added, never renamed) are
spelled out as TypedDicts below; the node may return them or plain dicts of the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict

Role = Literal["leader", "follower", "candidate", "learner"]
SourceState = Literal["streaming", "connecting", "stopped", "error"]


class MemberDoc(TypedDict):
    name: str
    raft: str  # host:port
    admin: str  # base URL
    role: Role
    healthy: bool


class SourceStatusDoc(TypedDict):
    host: str | None
    port: int | None
    user: str | None
    state: SourceState
    error: str | None
    lag_seconds: float | None


class StoreDoc(TypedDict):
    bytes: int
    files: int


class ReplicaDoc(TypedDict):
    server_id: int
    uuid: str | None
    address: str
    gtid_set: str
    bytes_sent: int


class StatusDoc(TypedDict):
    name: str
    role: Role
    term: int
    leader: str | None  # the leader's member name
    members: list[MemberDoc]
    commit_index: int
    committed_gtid_set: str
    purged_gtid_set: str
    source: SourceStatusDoc
    store: StoreDoc
    replicas: list[ReplicaDoc]


@dataclass(frozen=True)
class SourceSpec:
    """A validated PUT /source body.  ``password`` is excluded from repr so it cannot leak
    through a log line or a traceback's locals formatting of this object."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    start_gtid_set: str = ""
    semi_sync: bool = False
    tls: str = "preferred"
    tls_ca: str = field(default="", repr=False)  # a CA certificate (PEM): public, but long

    def public(self) -> dict[str, Any]:
        """The spec as it may be shown: everything but the password."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "start_gtid_set": self.start_gtid_set,
            "semi_sync": self.semi_sync,
            "tls": self.tls,
        }


class NodeControl(Protocol):
    # ---- reads (non-blocking, from cached state)
    def status(self) -> Mapping[str, Any]:
        """The GET /status document (:class:`StatusDoc`)."""
        ...

    def members(self) -> Sequence[Mapping[str, Any]]:
        """The current configuration's members (:class:`MemberDoc` each)."""
        ...

    def is_ready(self) -> tuple[bool, str]:
        """(ready, reason): member of a cluster with a known leader and caught up."""
        ...

    def is_leader(self) -> bool: ...

    def leader_admin_url(self) -> str | None:
        """The current leader's admin base URL, or None while no leader is known."""
        ...

    # ---- mutations (return when done; raise kingbus.api.errors otherwise)
    async def set_source(self, spec: SourceSpec) -> None: ...

    async def start_source(self) -> None: ...

    async def stop_source(self) -> None: ...

    async def add_member(self, name: str, raft: str, admin: str) -> None: ...

    async def remove_member(self, name: str) -> None: ...

    async def transfer_leadership(self, to: str | None) -> None:
        """Move leadership to member ``to`` (any suitable member when None); return once it moved."""
        ...
