"""How the operator reads the API server's refusals and a cluster's deletion (pure predicates of
handlers)."""

from __future__ import annotations

import pytest

from kingbus_operator.handlers import _namespace_terminating, _still_wanted
from kingbus_operator.kubeapi import KubeError

TERMINATING = (
    'configmaps "kb-config" is forbidden: unable to create new content in namespace t1 because it '
    "is being terminated"
)


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (403, TERMINATING, True),
        (
            403,
            'events "kopf-event-" is forbidden: unable to create new content in namespace t1 '
            "because it is being terminated",
            True,
        ),
        # RBAC refusals are real problems and must still be reported.
        (403, 'configmaps is forbidden: User "system:serviceaccount:x:y" cannot create resource', False),
        (409, TERMINATING, False),
        (404, 'namespaces "t1" not found', False),
    ],
)
def test_only_the_namespace_lifecycle_refusal_counts_as_terminating(
    status: int, message: str, expected: bool
) -> None:
    assert _namespace_terminating(KubeError(status, message)) is expected


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        ({"metadata": {"uid": "u1"}}, True),
        # Marked for deletion while a pass was gathering (another finalizer holds it).
        ({"metadata": {"uid": "u1", "deletionTimestamp": "2026-12-03T18:00:00Z"}}, False),
        # Gone, or deleted and re-created under the same name: the pass's body is stale.
        (None, False),
        ({"metadata": {"uid": "u2"}}, False),
        ({}, False),
    ],
)
def test_a_pass_acts_only_for_the_cluster_it_started_from(
    current: dict[str, object] | None, expected: bool
) -> None:
    assert _still_wanted(current, "u1") is expected
