"""Errors the node raises across the :class:`~kingbus.api.control.NodeControl` seam.

Each one maps to exactly one HTTP status, so handlers never guess: the node says *why* it
refused and the API layer picks the code.  ``reason`` is shown to the operator verbatim in
``{"error": reason}``; it must never contain a secret.
"""

from __future__ import annotations

from typing import ClassVar


class ApiError(Exception):
    """Base class: a refusal with a reason for the operator and an HTTP status."""

    status: ClassVar[int] = 500

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class BadRequest(ApiError):
    """The request is malformed or names something impossible (400)."""

    status = 400


class Unauthorized(ApiError):
    """A mutation without the right bearer token (401)."""

    status = 401


class NotFound(ApiError):
    """The request names a member (or other object) that does not exist (404)."""

    status = 404


class Conflict(ApiError):
    """The request contradicts the current state, e.g. a member name already taken (409)."""

    status = 409


class Unavailable(ApiError):
    """The cluster cannot do it now: no leader, no quorum, a change already in flight (503).

    ``retryable=True`` promises that nothing was attempted (no leader known, the leader
    refused the connection), so the same request may simply be sent again; the answer then
    carries ``"retryable": true`` and ``Retry-After``.  Leave it False when the change may
    have happened (a timeout after sending), so clients do not apply it twice.
    """

    status = 503


class NotLeader(ApiError):
    """This node is not the leader; the API forwards the mutation to ``leader_admin``.

    Raising it promises that nothing was changed.  ``leader_admin`` is the leader's admin base
    URL when known, else None (then the API answers 503).
    """

    status = 503

    def __init__(self, leader_admin: str | None) -> None:
        where = f"the leader is at {leader_admin}" if leader_admin else "no leader is known"
        super().__init__(f"this node is not the leader; {where}", retryable=True)
        self.leader_admin = leader_admin
