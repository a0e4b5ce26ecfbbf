"""The server's system variables and how SELECT expressions are evaluated (pure).

A replica's IO thread and CDC tools read a handful of ``@@`` variables on connect
(notes/mysql-protocol.md §1.3); the answers come from :class:`ServerFacts`, a snapshot the
adapter takes from the node (its own server_id and UUID, the committed and purged GTID
sets).  Unknown variables get MySQL's ER_UNKNOWN_SYSTEM_VARIABLE (1193), which replicas
tolerate for optional probes (semi-sync); any other error would stop them.

User variables (``@source_heartbeat_period``, ``@replica_uuid``...) live in the session and
are handed in as a plain dict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from kingbus.protocol import errors, sql
from kingbus.protocol.errors import MySQLError

Value = str | int | float | None

SERVER_VERSION = "9.7.0-kingbus"


@dataclasses.dataclass(frozen=True, slots=True)
class ServerFacts:
    """What the answers depend on, captured once per statement."""

    server_id: int
    server_uuid: str
    gtid_executed: str
    gtid_purged: str
    port: int = 3306
    hostname: str = "kingbus"
    version: str = SERVER_VERSION
    unix_time: int = 0
    max_connections: int = 1024


def system_variables(facts: ServerFacts) -> dict[str, Value]:
    """Every variable this server knows, by lower-case name."""
    return {
        "server_id": facts.server_id,
        "server_uuid": facts.server_uuid,
        "version": facts.version,
        "version_comment": "Kingbus binlog server",
        "version_compile_os": "Linux",
        "version_compile_machine": "x86_64",
        "hostname": facts.hostname,
        "port": facts.port,
        "max_connections": facts.max_connections,
        "binlog_checksum": "CRC32",
        "master_verify_checksum": 0,
        "source_verify_checksum": 0,
        "gtid_mode": "ON",
        "enforce_gtid_consistency": "ON",
        "gtid_executed": facts.gtid_executed,
        "gtid_purged": facts.gtid_purged,
        "log_bin": 1,
        "log_replica_updates": 1,
        "log_slave_updates": 1,
        "binlog_format": "ROW",
        "binlog_row_image": "FULL",
        "server_id_bits": 32,
        "max_allowed_packet": 1 << 30,
        "net_buffer_length": 16384,
        "character_set_client": "utf8mb4",
        "character_set_connection": "utf8mb4",
        "character_set_results": "utf8mb4",
        "character_set_server": "utf8mb4",
        "character_set_database": "utf8mb4",
        "collation_server": "utf8mb4_0900_ai_ci",
        "collation_connection": "utf8mb4_0900_ai_ci",
        "collation_database": "utf8mb4_0900_ai_ci",
        "time_zone": "SYSTEM",
        "system_time_zone": "UTC",
        "lower_case_table_names": 0,
        "sql_mode": "",
        "autocommit": 1,
        "transaction_isolation": "REPEATABLE-READ",
        "tx_isolation": "REPEATABLE-READ",
        "transaction_read_only": 0,
        "read_only": 1,
        "wait_timeout": 28800,
        "interactive_timeout": 28800,
        "net_write_timeout": 60,
        "net_read_timeout": 30,
        "license": "GPL",
        "auto_increment_increment": 1,
        "performance_schema": 0,
        "init_connect": "",
        "have_ssl": "YES",
    }


def _user_value(raw: object) -> Value:
    if raw is None or isinstance(raw, str | int | float):
        return raw
    return str(raw)


def evaluate(expression: sql.Expression, facts: ServerFacts, user_vars: Mapping[str, object]) -> Value:
    """The value of one SELECT item; MySQLError for what this server cannot answer."""
    if isinstance(expression, sql.SystemVariable):
        table = system_variables(facts)
        if expression.name not in table:
            raise errors.unknown_system_variable(expression.name)
        return table[expression.name]
    if isinstance(expression, sql.UserVariable):
        return _user_value(user_vars.get(expression.name))
    if isinstance(expression, sql.Literal):
        return expression.value
    if isinstance(expression, sql.FunctionCall):
        if expression.name == "UNIX_TIMESTAMP" and not expression.args:
            return facts.unix_time
        if expression.name == "VERSION" and not expression.args:
            return facts.version
        if expression.name in ("DATABASE", "SCHEMA", "USER", "CURRENT_USER") and not expression.args:
            return None if expression.name in ("DATABASE", "SCHEMA") else "kingbus"
        if expression.name == "CONNECTION_ID" and not expression.args:
            return 0
    raise MySQLError(errors.ER_NOT_SUPPORTED_YET, "42000", "This version of Kingbus doesn't yet support it")


def heartbeat_period_seconds(user_vars: Mapping[str, object]) -> float | None:
    """The replica's requested heartbeat period, from nanoseconds under either name.

    ``None`` (no heartbeats) when unset or 0; CDC readers often never set it.
    """
    for name in ("source_heartbeat_period", "master_heartbeat_period"):
        raw = user_vars.get(name)
        if raw is None:
            continue
        try:
            nanos = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if nanos > 0:
            return nanos / 1e9
    return None


def replica_uuid(user_vars: Mapping[str, object]) -> str | None:
    """``@replica_uuid`` (8.x) or ``@slave_uuid`` (older), if the client set one."""
    for name in ("replica_uuid", "slave_uuid"):
        raw = user_vars.get(name)
        if isinstance(raw, str) and raw:
            return raw
    return None
