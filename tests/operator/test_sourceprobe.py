"""``MySQLSourceProber`` against a real MySQL 9.7 server: reads gtid_executed, and a failed
login or an unreachable port comes back as an error that never quotes the password."""

from __future__ import annotations

from kingbus.devenv import mysql
from kingbus_operator.sourceprobe import MySQLSourceProber
from tests.support import REPL_PASSWORD, REPL_USER


async def test_reads_gtid_executed(mysql_source: mysql.MySQLServer) -> None:
    mysql_source.execute("CREATE DATABASE probe_me")
    probe = await MySQLSourceProber().probe(
        host="127.0.0.1", port=mysql_source.port, user=REPL_USER, password=REPL_PASSWORD
    )
    assert probe.error is None
    assert probe.gtid_executed == mysql_source.gtid_executed().replace("\n", "")
    assert probe.gtid_executed


async def test_wrong_password_is_an_error_without_the_password(mysql_source: mysql.MySQLServer) -> None:
    probe = await MySQLSourceProber().probe(
        host="127.0.0.1", port=mysql_source.port, user=REPL_USER, password="s3cret-wrong"
    )
    assert probe.gtid_executed is None and probe.error is not None
    assert "1045" in probe.error and "s3cret-wrong" not in probe.error


async def test_unreachable_is_an_error() -> None:
    probe = await MySQLSourceProber(timeout_seconds=2).probe(host="127.0.0.1", port=1, user="u", password="p")
    assert probe.gtid_executed is None and probe.error
