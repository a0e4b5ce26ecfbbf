"""Names every layer agrees on: objects of a cluster, its members' DNS identities, labels.

Pure string functions.  A member is the pod ``<cluster>-<ordinal>``; its Raft address and admin
URL are stable DNS names under the headless peer Service (never pod IPs, which change when a pod
is recreated), so a member keeps its identity across restarts.
"""

from __future__ import annotations

from typing import Final

RAFT_PORT: Final = 7100
ADMIN_PORT: Final = 9595
MYSQL_PORT: Final = 3306
MANAGED_BY: Final = "kingbus-operator"
SERVER_ID_BASE: Final = 4000


def labels(cluster: str) -> dict[str, str]:
    """Labels on every object of ``cluster``; the pod selector is the same set."""
    return {
        "app.kubernetes.io/name": "kingbus",
        "app.kubernetes.io/instance": cluster,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def selector(cluster: str) -> str:
    return ",".join(f"{k}={v}" for k, v in labels(cluster).items())


def statefulset(cluster: str) -> str:
    return cluster


def peers_service(cluster: str) -> str:
    return f"{cluster}-peers"


def client_service(cluster: str) -> str:
    return cluster


def admin_service(cluster: str) -> str:
    return f"{cluster}-admin"


def config_map(cluster: str) -> str:
    return f"{cluster}-config"


def pdb(cluster: str) -> str:
    return cluster


def raft_secret(cluster: str) -> str:
    return f"{cluster}-raft"


def admin_token_secret(cluster: str) -> str:
    return f"{cluster}-admin-token"


def member(cluster: str, ordinal: int) -> str:
    return f"{cluster}-{ordinal}"


def ordinal(cluster: str, member_name: str) -> int | None:
    """The ordinal of ``member_name`` if it is a member name of ``cluster``, else None."""
    prefix = f"{cluster}-"
    if not member_name.startswith(prefix):
        return None
    tail = member_name[len(prefix) :]
    return int(tail) if tail.isdigit() else None


def peers_domain(cluster: str, namespace: str) -> str:
    return f"{peers_service(cluster)}.{namespace}.svc"


def raft_address(cluster: str, namespace: str, ordinal_: int) -> str:
    return f"{member(cluster, ordinal_)}.{peers_domain(cluster, namespace)}:{RAFT_PORT}"


def admin_url(cluster: str, namespace: str, ordinal_: int) -> str:
    return f"http://{member(cluster, ordinal_)}.{peers_domain(cluster, namespace)}:{ADMIN_PORT}"


def data_claim(cluster: str, ordinal_: int) -> str:
    """The PVC the StatefulSet makes for a member from the ``data`` claim template."""
    return f"data-{member(cluster, ordinal_)}"
