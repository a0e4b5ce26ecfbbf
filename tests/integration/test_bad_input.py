"""Bad input gets a clear error and changes no stored data (DESIGN invariant 6)."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from kingbus.devenv import mysql
from kingbus.devenv.localcluster import ApiError, Cluster, http, wait_until
from kingbus.devenv.workload import small_txn_load
from tests.integration.stored import segment_paths, source_transactions, stored_transactions
from tests.support import MySQLServerFactory

pytestmark = [pytest.mark.cluster]


@pytest.mark.parametrize(
    ("method", "path", "body", "reason"),
    [
        ("PUT", "/source", {"host": 5, "port": 3306, "user": "u", "password": "p"}, "host"),
        ("PUT", "/source", {"host": "h", "port": 70000, "user": "u", "password": "p"}, "port"),
        ("PUT", "/source", {"host": "h", "port": 3306, "user": "u"}, "password"),
        ("PUT", "/source", {"host": "h", "port": 3306, "user": "u", "password": "p", "extra": 1}, "extra"),
        ("POST", "/members", {"name": "x"}, "raft"),
        ("POST", "/leader/transfer", {"to": 12}, "to"),
    ],
)
def test_malformed_admin_requests_get_4xx_with_a_reason(
    cluster: Cluster, method: str, path: str, body: dict[str, object], reason: str
) -> None:
    leader = cluster.leader()
    with pytest.raises(ApiError) as info:
        http(method, f"{leader.admin}{path}", body)
    assert 400 <= info.value.status < 500
    assert reason in json.dumps(info.value.body)
    assert leader.status()["source"]["state"] == "stopped"


def test_a_body_that_is_not_json_is_refused(cluster: Cluster) -> None:
    leader = cluster.leader()
    request = urllib.request.Request(
        f"{leader.admin}/source",
        data=b"{not json",
        method="PUT",
        headers={"Authorization": "Bearer admin-token-for-tests"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 400


def test_a_wrong_token_gets_401_and_changes_nothing(cluster: Cluster) -> None:
    for member in cluster.members:
        with pytest.raises(ApiError) as info:
            http(
                "PUT",
                f"{member.admin}/source",
                {"host": "127.0.0.1", "port": 3306, "user": "u", "password": "p"},
                token="wrong",
            )
        assert info.value.status == 401
    assert cluster.leader().status()["source"]["host"] in ("", None)


@pytest.mark.mysql
def test_a_wrong_source_password_shows_in_status_is_retried_and_stores_nothing(
    cluster: Cluster, mysql_source: mysql.MySQLServer
) -> None:
    with mysql_source.connect() as conn:
        small_txn_load(conn, 20)
    started = time.monotonic()
    cluster.set_source("127.0.0.1", mysql_source.port, password="not-the-password")
    leader = cluster.leader()
    status = wait_until(
        lambda: (s := leader.status())["source"]["state"] == "error" and s,
        timeout=30,
        what="the syncer to report the error",
    )
    assert "Access denied" in status["source"]["error"]
    assert "not-the-password" not in json.dumps(status)
    first = status["source"]["attempts"]
    later = wait_until(
        lambda: (s := leader.status())["source"]["attempts"] > first and s, timeout=40, what="a retry"
    )
    # Retried, but backing off, not in a tight loop: delays start at 0.5 s and double, with
    # +-20 % jitter, so n attempts need at least 0.4 * (2**(n-1) - 1) s.  (Counted against
    # the time since PUT /source rather than a fixed sleep: under load the error is seen
    # late, and the next retry may then be seconds away.)
    attempts = later["source"]["attempts"]
    elapsed = time.monotonic() - started
    assert 0.4 * (2 ** (attempts - 1) - 1) <= elapsed + 0.5, (attempts, elapsed)
    assert later["committed_gtid_set"] == ""
    assert later["store"] == {"bytes": 0, "files": 0}
    for member in cluster.members:
        assert "not-the-password" not in member.log_path.read_text()

    # The right password: it streams, the state clears.
    cluster.set_source("127.0.0.1", mysql_source.port)
    cluster.wait_committed(mysql_source.gtid_executed(), timeout=60)
    assert cluster.leader().status()["source"]["error"] == ""


@pytest.mark.mysql
def test_a_corrupted_segment_tail_is_repaired_on_restart(
    cluster: Cluster, mysql_source: mysql.MySQLServer
) -> None:
    cluster.set_source("127.0.0.1", mysql_source.port)
    with mysql_source.connect() as conn:
        small_txn_load(conn, 300)
    cluster.wait_committed(mysql_source.gtid_executed(), timeout=60)
    follower = next(m for m in cluster.members if m is not cluster.leader())
    follower.kill9()
    segment = segment_paths(follower)[-1]
    data = bytearray(segment.read_bytes())
    data[-10] ^= 0xFF  # inside the last transaction's last event: its CRC no longer matches
    segment.write_bytes(bytes(data))
    follower.start()
    with mysql_source.connect() as conn:
        small_txn_load(conn, 50, database="kb_after")
    cluster.wait_committed(mysql_source.gtid_executed(), timeout=60)
    assert stored_transactions(follower) == source_transactions(mysql_source.datadir)
    assert "cutting" in follower.log_path.read_text()


@pytest.mark.mysql
def test_a_source_without_gtids_is_refused_with_the_reason(
    cluster: Cluster, mysql_server: MySQLServerFactory
) -> None:
    source = mysql_server(extra_args=["--gtid-mode=OFF", "--enforce-gtid-consistency=OFF"])
    source.create_replication_user()
    cluster.set_source("127.0.0.1", source.port)
    leader = cluster.leader()
    status = wait_until(
        lambda: (s := leader.status())["source"]["state"] == "error" and s,
        timeout=30,
        what="the syncer to refuse the source",
    )
    assert "gtid_mode is OFF" in status["source"]["error"]
    assert status["store"] == {"bytes": 0, "files": 0}
