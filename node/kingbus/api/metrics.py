"""The node's Prometheus metrics, registered on a registry the caller owns.

No global registry: :class:`Metrics` registers on the ``CollectorRegistry`` it is given (or
a fresh one of its own, ``Metrics().registry``), which ``make_admin_app`` then serves on
/metrics.
prometheus_client metrics are thread-safe, so the Raft tick thread may update them directly.

States are exported as one gauge per possible value with a label (``kingbus_raft_role{role=
"leader"} 1``, the others 0), which keeps PromQL short and lets alerts match on the label.
An unknown state value sets every state to 0 and logs a warning, rather than raising: a metrics
update must never take down the loop that calls it.
"""

from __future__ import annotations

import logging
from typing import Any, Final, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Info

from kingbus.api.control import Role, SourceState

ROLES: Final[tuple[str, ...]] = get_args(Role)
SOURCE_STATES: Final[tuple[str, ...]] = get_args(SourceState)

log = logging.getLogger(__name__)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = CollectorRegistry() if registry is None else registry
        self.node_info = Info("kingbus_node", "Identity of this node", registry=r)
        self.raft_role = Gauge(
            "kingbus_raft_role", "1 for this node's current Raft role", ["role"], registry=r
        )
        self.raft_term = Gauge("kingbus_raft_term", "Current Raft term", registry=r)
        self.raft_commit_index = Gauge("kingbus_raft_commit_index", "Raft commit index", registry=r)
        self.raft_applied_index = Gauge(
            "kingbus_raft_applied_index", "Last Raft index applied to the store", registry=r
        )
        self.apply_lag_entries = Gauge(
            "kingbus_apply_lag_entries", "Raft commit index minus applied index", registry=r
        )
        self.raft_members = Gauge("kingbus_raft_members", "Members in the current configuration", registry=r)
        self.raft_leader_changes = Counter(
            "kingbus_raft_leader_changes", "Leader changes seen by this node", registry=r
        )
        self.raft_pre_vote_rounds = Counter(
            "kingbus_raft_pre_vote_rounds",
            "Pre-vote rounds this member started: each is an election timeout without a leader heard "
            "(a steady rise on one member points at its network or a paused process)",
            registry=r,
        )
        self.raft_sends_held = Counter(
            "kingbus_raft_sends_held",
            "Times the leader sent a follower nothing more because what it had queued for it was over "
            "the send window (a steady rise means a follower that reads slower than the source writes)",
            registry=r,
        )
        self.committed_transactions = Counter(
            "kingbus_committed_transactions", "Transactions committed through Raft and stored", registry=r
        )
        self.committed_bytes = Counter(
            "kingbus_committed_bytes", "Bytes of transactions committed through Raft and stored", registry=r
        )
        self.source_state = Gauge(
            "kingbus_source_state", "1 for the syncer's current state (leader only)", ["state"], registry=r
        )
        self.source_lag_seconds = Gauge(
            "kingbus_source_lag_seconds", "Seconds between the source writing and Raft committing", registry=r
        )
        self.source_reconnects = Counter(
            "kingbus_source_reconnects", "Connections the syncer opened to the source", registry=r
        )
        self.store_bytes = Gauge("kingbus_store_bytes", "Bytes in the binlog store's segments", registry=r)
        self.store_files = Gauge("kingbus_store_files", "Segment files in the binlog store", registry=r)
        self.replicas_connected = Gauge(
            "kingbus_replicas_connected", "Replica dump sessions being served", registry=r
        )
        self.client_connections = Gauge(
            "kingbus_client_connections", "Client connections open on the MySQL port", registry=r
        )
        self.connections_refused = Counter(
            "kingbus_connections_refused",
            "Connections refused with 1040 because mysql.max_connections were open",
            registry=r,
        )
        self.replica_bytes_sent = Counter(
            "kingbus_replica_bytes_sent", "Binlog bytes sent to replicas", registry=r
        )
        # One series per connected replica, labelled like `/status`'s replicas; a replica's
        # series disappear when its session ends (see set_replicas).
        labels = ["server_id", "uuid", "address"]
        self.replica_lag_seconds = Gauge(
            "kingbus_replica_lag_seconds",
            "Seconds between the newest committed transaction and what this replica was sent",
            labels,
            registry=r,
        )
        self.replica_session_bytes_sent = Gauge(
            "kingbus_replica_session_bytes_sent",
            "Bytes sent to this replica in its session",
            labels,
            registry=r,
        )
        self._replica_labels: set[tuple[str, str, str]] = set()
        self.set_role("follower")
        self.set_source_state("stopped")

    def set_identity(self, *, name: str, raft: str, admin: str) -> None:
        self.node_info.info({"name": name, "raft": raft, "admin": admin})

    def set_role(self, role: str) -> None:
        if role not in ROLES:
            log.warning("metrics: unknown Raft role %r", role)
        for each in ROLES:
            self.raft_role.labels(role=each).set(1 if each == role else 0)

    def set_source_state(self, state: str) -> None:
        if state not in SOURCE_STATES:
            log.warning("metrics: unknown source state %r", state)
        for each in SOURCE_STATES:
            self.source_state.labels(state=each).set(1 if each == state else 0)

    def set_raft_progress(self, *, term: int, commit_index: int, applied_index: int) -> None:
        self.raft_term.set(term)
        self.raft_commit_index.set(commit_index)
        self.raft_applied_index.set(applied_index)
        self.apply_lag_entries.set(max(0, commit_index - applied_index))

    def record_commit(self, transactions: int, nbytes: int) -> None:
        """Transactions (and their bytes) committed through Raft and stored."""
        self.committed_transactions.inc(transactions)
        self.committed_bytes.inc(nbytes)

    def set_replicas(self, replicas: list[dict[str, Any]]) -> None:
        """Per-replica series from `/status`-shaped rows; series of gone replicas are removed."""
        current: set[tuple[str, str, str]] = set()
        for row in replicas:
            key = (str(row["server_id"]), str(row.get("uuid") or ""), str(row["address"]))
            current.add(key)
            self.replica_lag_seconds.labels(*key).set(float(row.get("lag_seconds") or 0.0))
            self.replica_session_bytes_sent.labels(*key).set(int(row["bytes_sent"]))
        for key in self._replica_labels - current:
            self.replica_lag_seconds.remove(*key)
            self.replica_session_bytes_sent.remove(*key)
        self._replica_labels = current

    def set_store(self, *, nbytes: int, files: int) -> None:
        self.store_bytes.set(nbytes)
        self.store_files.set(files)

    def update(
        self,
        *,
        role: str | None = None,
        term: int | None = None,
        commit_index: int | None = None,
        apply_lag: int | None = None,
        source_state: str | None = None,
        source_lag: float | None = None,
        store_bytes: int | None = None,
        store_files: int | None = None,
    ) -> None:
        """Set the gauges given (a periodic snapshot of the node); None leaves a gauge alone."""
        if role is not None:
            self.set_role(role)
        if term is not None:
            self.raft_term.set(term)
        if commit_index is not None:
            self.raft_commit_index.set(commit_index)
        if apply_lag is not None:
            self.apply_lag_entries.set(max(0, apply_lag))
        if source_state is not None:
            self.set_source_state(source_state)
        if source_lag is not None:
            self.source_lag_seconds.set(source_lag)
        if store_bytes is not None:
            self.store_bytes.set(store_bytes)
        if store_files is not None:
            self.store_files.set(store_files)
