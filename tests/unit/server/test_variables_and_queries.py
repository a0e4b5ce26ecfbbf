"""Variable answers and SQL replies (pure), under both @master_* and @source_* names."""

from __future__ import annotations

import pytest

from kingbus.protocol import results, sql
from kingbus.protocol.constants import Capability
from kingbus.protocol.errors import MySQLError
from kingbus.server import queries, variables
from kingbus.server.queries import LogFile, QueryContext
from kingbus.server.variables import ServerFacts

CAPS = Capability.PROTOCOL_41 | Capability.DEPRECATE_EOF
FACTS = ServerFacts(
    server_id=4242,
    server_uuid="11111111-2222-4333-8444-555555555555",
    gtid_executed="3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10",
    gtid_purged="3e11fa47-71ca-11e1-9e33-c80aa9429562:1-2",
    unix_time=1_800_000_000,
)


def context(**kwargs: object) -> QueryContext:
    return QueryContext(facts=FACTS, user_vars=kwargs.pop("user_vars", {}), capabilities=CAPS, **kwargs)  # type: ignore[arg-type]


def rows(payloads: list[bytes]) -> list[tuple[str | None, ...]]:
    decoded = results.decode_resultset(payloads, CAPS)
    return [tuple(None if v is None else v.decode() for v in row) for row in decoded.rows]


def run(text: str, ctx: QueryContext | None = None) -> list[tuple[str | None, ...]]:
    return rows(queries.answer(sql.classify(text), ctx or context()))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT UNIX_TIMESTAMP()", "1800000000"),
        ("SELECT @@GLOBAL.SERVER_ID", "4242"),
        ("SELECT @@GLOBAL.SERVER_UUID", "11111111-2222-4333-8444-555555555555"),
        ("SELECT @@GLOBAL.GTID_MODE", "ON"),
        ("SELECT @@global.binlog_checksum", "CRC32"),
        ("SELECT @@gtid_executed", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10"),
        ("SELECT @@GLOBAL.gtid_purged", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-2"),
        ("SELECT VERSION()", variables.SERVER_VERSION),
        ("SELECT @@version", variables.SERVER_VERSION),
    ],
)
def test_replica_probes(text: str, expected: str) -> None:
    assert run(text) == [(expected,)]


def test_version_starts_with_a_digit_at_least_5() -> None:
    assert int(variables.SERVER_VERSION.split(".")[0]) >= 5


@pytest.mark.parametrize(
    "text",
    [
        "SELECT @@global.rpl_semi_sync_source_enabled",
        "SELECT @@global.rpl_semi_sync_master_enabled",
        "SELECT @@GLOBAL.gtid_domain_id",
        "SELECT @@nonsense",
    ],
)
def test_unknown_variables_are_1193(text: str) -> None:
    with pytest.raises(MySQLError) as caught:
        queries.answer(sql.classify(text), context())
    assert caught.value.code == 1193


def test_checksum_handshake_under_both_names() -> None:
    ctx = context()
    run_ok = queries.answer(
        sql.classify(
            "SET @master_binlog_checksum = @@global.binlog_checksum, "
            "@source_binlog_checksum = @@global.binlog_checksum"
        ),
        ctx,
    )
    assert run_ok[0][:1] == b"\x00"
    assert run("SELECT @source_binlog_checksum", ctx) == [("CRC32",)]
    assert run("SELECT @master_binlog_checksum", ctx) == [("CRC32",)]


@pytest.mark.parametrize(
    "names",
    [
        ("master_heartbeat_period",),
        ("source_heartbeat_period",),
        ("master_heartbeat_period", "source_heartbeat_period"),
    ],
)
def test_heartbeat_period_in_nanoseconds_under_either_name(names: tuple[str, ...]) -> None:
    ctx = context()
    assignments = ", ".join(f"@{n} = 30000001024" for n in names)
    queries.answer(sql.classify(f"SET {assignments}"), ctx)
    assert variables.heartbeat_period_seconds(ctx.user_vars) == pytest.approx(30.000001024)


def test_no_heartbeat_period_means_none() -> None:
    assert variables.heartbeat_period_seconds({}) is None
    assert variables.heartbeat_period_seconds({"source_heartbeat_period": 0}) is None
    assert variables.heartbeat_period_seconds({"source_heartbeat_period": "junk"}) is None


def test_replica_uuid_under_either_name() -> None:
    ctx = context()
    queries.answer(sql.classify("SET @slave_uuid = 'u-1', @replica_uuid = 'u-1'"), ctx)
    assert variables.replica_uuid(ctx.user_vars) == "u-1"
    assert variables.replica_uuid({"slave_uuid": "u-2"}) == "u-2"
    assert variables.replica_uuid({}) is None


def test_failing_set_changes_nothing() -> None:
    ctx = context()
    with pytest.raises(MySQLError):
        queries.answer(sql.classify("SET @a = 1, @b = @@nonsense"), ctx)
    assert "a" not in ctx.user_vars


def test_show_variables_like_and_where() -> None:
    assert run("SHOW GLOBAL VARIABLES LIKE 'BINLOG_CHECKSUM'") == [("binlog_checksum", "CRC32")]
    assert run("SHOW VARIABLES LIKE 'server_id'") == [("server_id", "4242")]
    assert ("server_uuid", FACTS.server_uuid) in run("SHOW VARIABLES LIKE 'server%'")
    assert run("SHOW VARIABLES WHERE Variable_name = 'gtid_mode'") == [("gtid_mode", "ON")]


def test_show_binary_logs_and_status() -> None:
    ctx = context(logs=[LogFile("kingbus-bin.000001", 500), LogFile("kingbus-bin.000002", 77)])
    assert run("SHOW BINARY LOGS", ctx) == [
        ("kingbus-bin.000001", "500", "No"),
        ("kingbus-bin.000002", "77", "No"),
    ]
    expected = [("kingbus-bin.000002", "77", "", "", FACTS.gtid_executed)]
    assert run("SHOW BINARY LOG STATUS", ctx) == expected
    assert run("SHOW MASTER STATUS", ctx) == expected
    assert run("SHOW BINARY LOG STATUS", context()) == []


@pytest.mark.parametrize(
    "text", ["DROP TABLE x", "START REPLICA", "SELECT * FROM t", "KILL 5", "garbage \x00"]
)
def test_unsupported_statements_are_errors(text: str) -> None:
    with pytest.raises(MySQLError):
        queries.answer(sql.classify(text), context())


def test_set_names_and_ping_like_statements_are_ok() -> None:
    assert queries.answer(sql.classify("SET NAMES utf8mb4"), context())[0][:1] == b"\x00"
    assert run("SELECT 1") == [("1",)]
