"""Lossless semi-synchronous replication from the source into the cluster.

With the source's semi-sync plugin on (wait point AFTER_SYNC, a timeout long enough never to
fall back to async), a commit returns to the source's client only once Kingbus acknowledged
it, and Kingbus acknowledges only after Raft committed it: so every returned commit is
already in the cluster's committed GTID set, and with the cluster down commits wait.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

from kingbus.binlog.gtids import GtidSet
from kingbus.devenv import mysql
from kingbus.devenv.localcluster import Cluster, wait_until

pytestmark = [pytest.mark.mysql, pytest.mark.cluster]


@pytest.fixture
def semisync_source(mysql_source: mysql.MySQLServer) -> mysql.MySQLServer:
    # Tables first: once semi-sync is on, every commit waits for an acknowledgement.
    mysql_source.execute("CREATE DATABASE semi")
    mysql_source.execute("CREATE TABLE semi.t (id INT PRIMARY KEY, v VARCHAR(100))")
    mysql_source.execute("INSTALL PLUGIN rpl_semi_sync_source SONAME 'semisync_source.so'")
    mysql_source.execute("SET GLOBAL rpl_semi_sync_source_wait_point = 'AFTER_SYNC'")
    mysql_source.execute("SET GLOBAL rpl_semi_sync_source_timeout = 3600000")  # ms: never give up
    mysql_source.execute("SET GLOBAL rpl_semi_sync_source_wait_for_replica_count = 1")
    mysql_source.execute("SET GLOBAL rpl_semi_sync_source_enabled = 1")
    return mysql_source


def _global_status(source: mysql.MySQLServer, name: str) -> object:
    return source.scalar(
        "SELECT variable_value FROM performance_schema.global_status WHERE variable_name = %s", (name,)
    )


def _wait_for_semisync_client(source: mysql.MySQLServer) -> None:
    wait_until(
        lambda: _global_status(source, "Rpl_semi_sync_source_clients") == "1",
        timeout=30,
        what="Kingbus to connect as a semi-sync replica",
    )


def _committed(cluster: Cluster) -> GtidSet:
    return GtidSet.parse(cluster.leader().status()["committed_gtid_set"])


def test_every_returned_commit_is_already_committed_by_the_cluster(
    cluster: Cluster, semisync_source: mysql.MySQLServer
) -> None:
    cluster.set_source("127.0.0.1", semisync_source.port, semi_sync=True)
    cluster.wait_committed(semisync_source.gtid_executed(), timeout=60)
    _wait_for_semisync_client(semisync_source)
    with semisync_source.connect() as conn:
        conn.autocommit(True)
        cur = conn.cursor()
        for i in range(50):
            cur.execute("INSERT INTO semi.t VALUES (%s, 'x')", (i,))
            cur.execute("SELECT @@GLOBAL.gtid_executed")
            executed = GtidSet.parse(str(cur.fetchone()[0]).replace("\n", ""))
            # The commit has returned: the cluster must already hold it (no waiting here).
            assert executed.issubset(_committed(cluster)), f"commit {i} returned before Raft committed it"
    no_tx = _global_status(semisync_source, "Rpl_semi_sync_source_no_tx")
    assert no_tx == "0", "some commits were not acknowledged (the source fell back to async)"


def test_with_the_cluster_stopped_commits_wait(cluster: Cluster, semisync_source: mysql.MySQLServer) -> None:
    cluster.set_source("127.0.0.1", semisync_source.port, semi_sync=True)
    cluster.wait_committed(semisync_source.gtid_executed(), timeout=60)
    _wait_for_semisync_client(semisync_source)
    for member in cluster.members:
        member.kill9()
    returned = threading.Event()

    def commit() -> None:
        with semisync_source.connect() as conn:
            conn.autocommit(True)
            conn.cursor().execute("INSERT INTO semi.t VALUES (1000, 'waits')")
        returned.set()

    writer = threading.Thread(target=commit, daemon=True)
    writer.start()
    assert not returned.wait(5), "a commit returned while no Kingbus member was up to acknowledge it"
    for member in cluster.members:
        member.start()
    assert returned.wait(60), "the commit never returned after the cluster came back"
    cluster.wait_committed(semisync_source.gtid_executed(), timeout=60)


def test_commits_keep_returning_across_leader_kills(
    cluster: Cluster, semisync_source: mysql.MySQLServer
) -> None:
    """A leader killed between Raft's commit and its acknowledgement must not leave the
    source waiting: the next leader acknowledges what the cluster already holds."""
    cluster.set_source("127.0.0.1", semisync_source.port, semi_sync=True)
    cluster.wait_committed(semisync_source.gtid_executed(), timeout=60)
    done = threading.Event()
    committed: list[int] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with semisync_source.connect() as conn:
                conn.autocommit(True)
                cur = conn.cursor()
                i = 0
                while not done.is_set():
                    cur.execute("INSERT INTO semi.t VALUES (%s, 'k')", (10_000 + i,))
                    committed.append(i)
                    i += 1
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        for round_ in range(6):
            before = len(committed)
            wait_until(lambda before=before: len(committed) > before + 5, timeout=60, what="commits to flow")
            victim = cluster.leader()
            if round_ % 2:
                victim.kill9()
                cluster.leader(timeout=30)
                victim.start()
            else:
                # Frozen, not dead: with commits streaming the leader almost always holds a
                # transaction that its followers have but it has not acknowledged yet.
                assert victim.process is not None
                os.kill(victim.process.pid, signal.SIGSTOP)
                try:
                    wait_until(
                        lambda victim=victim: cluster.leader(timeout=30) is not victim,
                        timeout=30,
                        what="a new leader while the old one is frozen",
                    )
                finally:
                    os.kill(victim.process.pid, signal.SIGCONT)
        before = len(committed)
        wait_until(lambda: len(committed) > before + 5, timeout=60, what="commits to flow after the kills")
    finally:
        done.set()
        thread.join(60)
    assert not errors, errors
    cluster.wait_committed(semisync_source.gtid_executed(), timeout=60)
    no_tx = _global_status(semisync_source, "Rpl_semi_sync_source_no_tx")
    assert no_tx == "0", "the source fell back to asynchronous replication"
