"""The SQL classifier, fed the statements real replicas, CDC readers and connectors send."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kingbus.protocol import sql
from kingbus.protocol.sql import (
    Assignment,
    FunctionCall,
    Keyword,
    Kill,
    Literal,
    Scope,
    Select,
    SelectItem,
    Set,
    SetCharacterSet,
    SetNames,
    ShowBinaryLogs,
    ShowBinaryLogStatus,
    ShowBinlogEvents,
    ShowReplicas,
    ShowStatus,
    ShowVariables,
    SystemVariable,
    Unknown,
    UserVariable,
)

# -- the MySQL 8.4/9.x replica IO thread, in order (notes/mysql-protocol.md §1) -----------


def test_replica_clock_probe() -> None:
    assert sql.classify("SELECT UNIX_TIMESTAMP()") == Select(
        (SelectItem(FunctionCall("UNIX_TIMESTAMP"), None, "UNIX_TIMESTAMP()"),)
    )


def test_replica_server_id_probe() -> None:
    statement = sql.classify("SELECT @@GLOBAL.SERVER_ID")
    assert statement == Select(
        (SelectItem(SystemVariable("server_id", Scope.GLOBAL), None, "@@GLOBAL.SERVER_ID"),)
    )
    assert isinstance(statement, Select)
    assert statement.items[0].column_name == "@@GLOBAL.SERVER_ID"  # mysqld names the column as typed


def test_replica_heartbeat_period() -> None:
    assert sql.classify(
        "SET @master_heartbeat_period= 30000001024, @source_heartbeat_period= 30000001024"
    ) == Set(
        (
            Assignment(UserVariable("master_heartbeat_period"), Literal(30000001024)),
            Assignment(UserVariable("source_heartbeat_period"), Literal(30000001024)),
        )
    )


def test_replica_checksum_negotiation() -> None:
    text = (
        "SET @master_binlog_checksum= @@global.binlog_checksum, "
        "@source_binlog_checksum= @@global.binlog_checksum"
    )
    checksum = SystemVariable("binlog_checksum", Scope.GLOBAL)
    assert sql.classify(text) == Set(
        (
            Assignment(UserVariable("master_binlog_checksum"), checksum),
            Assignment(UserVariable("source_binlog_checksum"), checksum),
        )
    )
    assert sql.classify("SELECT @source_binlog_checksum") == Select(
        (SelectItem(UserVariable("source_binlog_checksum"), None, "@source_binlog_checksum"),)
    )


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("SELECT @@GLOBAL.GTID_MODE", "gtid_mode"),
        ("SELECT @@GLOBAL.SERVER_UUID", "server_uuid"),
        ("SELECT @@global.rpl_semi_sync_source_enabled", "rpl_semi_sync_source_enabled"),
        ("SELECT @@GLOBAL.gtid_domain_id", "gtid_domain_id"),
    ],
)
def test_replica_global_probes(text: str, name: str) -> None:
    statement = sql.classify(text)
    assert isinstance(statement, Select)
    assert statement.items[0].expression == SystemVariable(name, Scope.GLOBAL)


def test_replica_uuid() -> None:
    uuid = "5a2ad0a6-6c1c-11ef-9f2e-0242ac120002"
    assert sql.classify(f"SET @slave_uuid= '{uuid}', @replica_uuid= '{uuid}'") == Set(
        (
            Assignment(UserVariable("slave_uuid"), Literal(uuid)),
            Assignment(UserVariable("replica_uuid"), Literal(uuid)),
        )
    )


def test_semi_sync_registration() -> None:
    assert sql.classify("SET @rpl_semi_sync_replica = 1, @rpl_semi_sync_slave = 1") == Set(
        (
            Assignment(UserVariable("rpl_semi_sync_replica"), Literal(1)),
            Assignment(UserVariable("rpl_semi_sync_slave"), Literal(1)),
        )
    )


# -- MariaDB replicas, go-mysql, python-mysql-replication, connectors ----------------------


def test_mariadb_replica_statements() -> None:
    assert sql.classify("SHOW VARIABLES LIKE 'SERVER_ID'") == ShowVariables(like="SERVER_ID")
    assert sql.classify("SET @mariadb_slave_capability=4") == Set(
        (Assignment(UserVariable("mariadb_slave_capability"), Literal(4)),)
    )
    assert sql.classify("SET @slave_connect_state='0-1-100,1-2-5'") == Set(
        (Assignment(UserVariable("slave_connect_state"), Literal("0-1-100,1-2-5")),)
    )
    assert sql.classify("SET @slave_gtid_strict_mode=1") == Set(
        (Assignment(UserVariable("slave_gtid_strict_mode"), Literal(1)),)
    )


def test_float_and_negative_values() -> None:
    assert sql.classify("SET @master_heartbeat_period=1.5e9, @x = -3, @y = +2.25, @z=.5") == Set(
        (
            Assignment(UserVariable("master_heartbeat_period"), Literal(1.5e9)),
            Assignment(UserVariable("x"), Literal(-3)),
            Assignment(UserVariable("y"), Literal(2.25)),
            Assignment(UserVariable("z"), Literal(0.5)),
        )
    )


def test_select_variable_list_with_aliases_like_connector_j() -> None:
    text = (
        "/* mysql-connector-j-9.1.0 (Revision: abc) */SELECT  @@session.auto_increment_increment AS "
        "auto_increment_increment, @@character_set_client AS character_set_client, @@max_allowed_packet "
        "AS max_allowed_packet, @@time_zone, @@`tx_isolation` tx"
    )
    statement = sql.classify(text)
    assert isinstance(statement, Select)
    assert [item.expression for item in statement.items] == [
        SystemVariable("auto_increment_increment", Scope.SESSION),
        SystemVariable("character_set_client"),
        SystemVariable("max_allowed_packet"),
        SystemVariable("time_zone"),
        SystemVariable("tx_isolation"),
    ]
    assert [item.column_name for item in statement.items] == [
        "auto_increment_increment",
        "character_set_client",
        "max_allowed_packet",
        "@@time_zone",
        "tx",
    ]


def test_mysql_cli_version_comment_probe() -> None:
    assert sql.classify("select @@version_comment limit 1") == Select(
        (SelectItem(SystemVariable("version_comment"), None, "@@version_comment"),), limit=1
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT VERSION()", FunctionCall("VERSION")),
        ("select version( )", FunctionCall("VERSION")),
        ("SELECT 1", Literal(1)),
        ("SELECT 'x'", Literal("x")),
        ("SELECT NULL", Literal(None)),
        ("SELECT TRUE", Literal(1)),
        ("SELECT FALSE", Literal(0)),
        ("SELECT CURRENT_USER", FunctionCall("CURRENT_USER")),
        ("SELECT @@local.sql_mode", SystemVariable("sql_mode", Scope.SESSION)),
        ("SELECT @`My Var`", UserVariable("my var")),
        ("SELECT @'q'", UserVariable("q")),
        ("SELECT CONCAT('a', @b, 1)", FunctionCall("CONCAT", (Literal("a"), UserVariable("b"), Literal(1)))),
    ],
)
def test_select_single_expressions(text: str, expected: sql.Expression) -> None:
    statement = sql.classify(text)
    assert isinstance(statement, Select)
    assert [item.expression for item in statement.items] == [expected]


def test_select_literal_string_column_is_named_by_its_value() -> None:
    statement = sql.classify("SELECT 'abc', 1 AS `one`, 2 'two' FROM DUAL")
    assert isinstance(statement, Select)
    assert [item.column_name for item in statement.items] == ["abc", "one", "two"]


@pytest.mark.parametrize(
    "text",
    [
        "select @@global.server_id;",
        "  SELECT\n\t@@GLOBAL.server_id ;; ",
        "/* hi */ SELECT /* there */ @@global.server_id /* end */",
        "SELECT @@global.server_id -- trailing comment",
        "SELECT @@global.server_id # hash comment",
        "/*!80000 SELECT @@global.server_id */",
        "SELECT @@global.`server_id`",
        "SELECT @@`global`.server_id",
    ],
)
def test_whitespace_comments_backticks_and_semicolons(text: str) -> None:
    statement = sql.classify(text)
    assert isinstance(statement, Select)
    assert statement.items[0].expression == SystemVariable("server_id", Scope.GLOBAL)


def test_version_comment_body_is_code() -> None:
    assert sql.classify("/*!40101 SET NAMES utf8mb4 */") == SetNames("utf8mb4")
    assert sql.classify("SET /*!40101 NAMES */ utf8mb4") == SetNames("utf8mb4")


# -- SET ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SET NAMES utf8mb4", SetNames("utf8mb4")),
        ("set names 'UTF8MB4' collate 'utf8mb4_0900_ai_ci'", SetNames("utf8mb4", "utf8mb4_0900_ai_ci")),
        ("SET NAMES latin1 COLLATE latin1_swedish_ci;", SetNames("latin1", "latin1_swedish_ci")),
        ("SET NAMES DEFAULT", SetNames("default")),
        ("SET CHARACTER SET utf8mb4", SetCharacterSet("utf8mb4")),
        ("SET CHARSET 'binary'", SetCharacterSet("binary")),
    ],
)
def test_set_names(text: str, expected: sql.Statement) -> None:
    assert sql.classify(text) == expected


def test_set_system_variables_with_scopes() -> None:
    statement = sql.classify(
        "SET autocommit=1, SESSION sql_mode = 'STRICT', GLOBAL x := ON, y = OFF, "
        "@@session.wait_timeout=28800, LOCAL z = DEFAULT, @@net_write_timeout = 600, time_zone = '+00:00'"
    )
    assert statement == Set(
        (
            Assignment(SystemVariable("autocommit", Scope.SESSION), Literal(1)),
            Assignment(SystemVariable("sql_mode", Scope.SESSION), Literal("STRICT")),
            Assignment(SystemVariable("x", Scope.GLOBAL), Keyword("ON")),
            Assignment(SystemVariable("y", Scope.GLOBAL), Keyword("OFF")),  # the scope carries over
            Assignment(SystemVariable("wait_timeout", Scope.SESSION), Literal(28800)),
            Assignment(SystemVariable("z", Scope.SESSION), Keyword("DEFAULT")),
            Assignment(SystemVariable("net_write_timeout", Scope.SESSION), Literal(600)),
            Assignment(SystemVariable("time_zone", Scope.SESSION), Literal("+00:00")),
        )
    )


def test_set_unqualified_system_variable_is_session() -> None:
    assert sql.classify("SET @@wait_timeout = 10") == Set(
        (Assignment(SystemVariable("wait_timeout", Scope.SESSION), Literal(10)),)
    )
    assert sql.classify("SET GLOBAL a = 1, @@b = 2") == Set(
        (
            Assignment(SystemVariable("a", Scope.GLOBAL), Literal(1)),
            Assignment(SystemVariable("b", Scope.GLOBAL), Literal(1 + 1)),
        )
    )


def test_set_string_escapes() -> None:
    assert sql.classify(r"SET @a = 'it''s', @b = 'x\'y\n', @c = " + '"dq"') == Set(
        (
            Assignment(UserVariable("a"), Literal("it's")),
            Assignment(UserVariable("b"), Literal("x'y\n")),
            Assignment(UserVariable("c"), Literal("dq")),
        )
    )
    # MySQL keeps the backslash of \% and \_ (they stay LIKE escapes).
    assert sql.classify(r"SELECT 'a\_b\%c\d'") == Select(
        (SelectItem(Literal("a\\_b\\%cd"), None, r"'a\_b\%c\d'"),)
    )


def test_variable_names_are_case_insensitive() -> None:
    assert sql.classify("SET @Source_Binlog_Checksum = @@GLOBAL.Binlog_Checksum") == Set(
        (Assignment(UserVariable("source_binlog_checksum"), SystemVariable("binlog_checksum", Scope.GLOBAL)),)
    )


# -- SHOW ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SHOW VARIABLES", ShowVariables()),
        ("show global variables like 'binlog%'", ShowVariables(Scope.GLOBAL, "binlog%")),
        ('SHOW SESSION VARIABLES LIKE "gtid\\_mode"', ShowVariables(Scope.SESSION, "gtid\\_mode")),
        (
            "SHOW VARIABLES WHERE Variable_name = 'language' OR Variable_name = 'net_write_timeout'",
            ShowVariables(
                None,
                None,
                "Variable_name = 'language' OR Variable_name = 'net_write_timeout'",
                ("language", "net_write_timeout"),
            ),
        ),
        (
            "SHOW VARIABLES WHERE `Variable_name` IN ('A', 'b');",
            ShowVariables(None, None, "`Variable_name` IN ('A', 'b')", ("a", "b")),
        ),
        (
            "SHOW VARIABLES WHERE Value > 3",
            ShowVariables(None, None, "Value > 3", None),
        ),
        ("SHOW VARIABLES WHERE Variable_name", ShowVariables(None, None, "Variable_name", None)),
        ("SHOW VARIABLES WHERE Variable_name = 5", ShowVariables(None, None, "Variable_name = 5", None)),
        (
            "SHOW VARIABLES WHERE Variable_name LIKE 'a'",
            ShowVariables(None, None, "Variable_name LIKE 'a'", None),
        ),
        (
            "SHOW VARIABLES WHERE Variable_name = 'a' AND Value = 'b'",
            ShowVariables(None, None, "Variable_name = 'a' AND Value = 'b'", None),
        ),
        (
            "SHOW VARIABLES WHERE Variable_name IN ('a' 'b')",
            ShowVariables(None, None, "Variable_name IN ('a' 'b')", None),
        ),
        (
            "SHOW VARIABLES WHERE Variable_name IN ('a', 1)",
            ShowVariables(None, None, "Variable_name IN ('a', 1)", None),
        ),
        (
            "SHOW VARIABLES WHERE Variable_name IN ('a'",
            ShowVariables(None, None, "Variable_name IN ('a'", None),
        ),
        (
            "SHOW VARIABLES WHERE Variable_name = 'a' OR",
            ShowVariables(None, None, "Variable_name = 'a' OR", None),
        ),
        ("SHOW STATUS", ShowStatus()),
        ("SHOW GLOBAL STATUS LIKE 'Uptime'", ShowStatus(Scope.GLOBAL, "Uptime")),
        ("SHOW BINARY LOGS", ShowBinaryLogs()),
        ("show master logs", ShowBinaryLogs()),
        ("SHOW BINARY LOG STATUS", ShowBinaryLogStatus()),
        ("SHOW MASTER STATUS", ShowBinaryLogStatus()),
        ("SHOW BINLOG STATUS", ShowBinaryLogStatus()),
        ("SHOW BINLOG EVENTS", ShowBinlogEvents()),
        ("SHOW BINLOG EVENTS IN 'kingbus-bin.000002'", ShowBinlogEvents("kingbus-bin.000002")),
        ("SHOW BINLOG EVENTS IN 'f' FROM 4 LIMIT 10", ShowBinlogEvents("f", 4, 0, 10)),
        ("SHOW BINLOG EVENTS FROM 120 LIMIT 5, 10", ShowBinlogEvents(None, 120, 5, 10)),
        ("SHOW BINLOG EVENTS LIMIT 10 OFFSET 3", ShowBinlogEvents(None, None, 3, 10)),
        ("SHOW REPLICAS", ShowReplicas()),
        ("SHOW SLAVE HOSTS", ShowReplicas()),
        ("KILL 42", Kill(42)),
        ("KILL CONNECTION 42", Kill(42)),
        ("kill query 7;", Kill(7, query_only=True)),
    ],
)
def test_show_and_kill(text: str, expected: sql.Statement) -> None:
    assert sql.classify(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        ";",
        "   ",
        "-- only a comment",
        "BEGIN",
        "SELECT * FROM t",
        "SELECT 1; SELECT 2",
        "SELECT @@x + 1",
        "SELECT 'unterminated",
        "SELECT /* unterminated",
        "/*!80000 SELECT 1",
        "SELECT `unterminated",
        "SET @a = 1 + 2",
        "SET @a",
        "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "SET PERSIST max_connections = 10",
        "SHOW SLAVE STATUS",
        "SHOW GLOBAL BINARY LOGS",
        "SHOW BINARY LOGS extra",
        "SHOW VARIABLES LIKE",
        "SHOW VARIABLES WHERE",
        "SHOW BINLOG EVENTS FROM 'x'",
        "SHOW BINLOG EVENTS LIMIT",
        "KILL",
        "KILL -1",
        "KILL 1.5",
        "SELECT @@",
        "SELECT @",
        "SELECT " + "F(" * 40 + ")" * 40,
        "SELECT " + "9" * 5000 + " LIMIT 1",
        "SELECT 1 LIMIT " + "9" * 5000,
        "SELECT 1 FROM t",
        "SELECT 1 AS",
        "SELECT 1,",
        "SELECT 1 AS 5",
        "SET @a = -x",
        "SET NAMES 5",
        "SHOW VARIABLES LIKE x",
    ],
)
def test_anything_else_is_unknown(text: str) -> None:
    assert sql.classify(text) == Unknown(text)


@given(st.text(max_size=200))
def test_classify_never_raises(text: str) -> None:
    assert isinstance(sql.classify(text), sql.Statement)


_fragments = st.sampled_from(
    [
        "SELECT", "SET", "SHOW", "KILL", "@@", "@", "global", ".", "x", "=", ":=", ",", "'s'", '"', "`", "(",
        ")", "/*", "*/", "/*!", "--", " ", "\n", "#", ";", "LIKE", "WHERE", "IN", "OR", "Variable_name", "1",
        "1.5e3", "-", "NAMES", "BINLOG", "EVENTS", "FROM", "LIMIT", "\\", "AS",
    ]
)  # fmt: skip


@given(st.lists(_fragments, max_size=25))
def test_classify_never_raises_on_sql_like_noise(parts: list[str]) -> None:
    text = "".join(parts)
    assert isinstance(sql.classify(text), sql.Statement)


# Statements other CDC readers and connectors are known to send (from their sources; only
# python-mysql-replication is actually run against the codec, in test_protocol_cdc_reader).
@pytest.mark.parametrize(
    "text",
    [
        "SHOW GLOBAL VARIABLES LIKE 'BINLOG_CHECKSUM'",  # go-mysql, debezium, python-mysql-replication
        "SET @master_binlog_checksum='NONE'",  # go-mysql
        "SET @master_heartbeat_period=1000000000",
        "SELECT @@gtid_mode",
        "SELECT @@GLOBAL.gtid_executed",
        "SET @slave_connect_state='0-1-100'",
        "SHOW GLOBAL VARIABLES LIKE 'GTID_MODE'",  # debezium
        "SHOW GRANTS FOR CURRENT_USER",
        "set @slave_uuid=uuid()",  # canal
        "set wait_timeout=9999999",
        "set net_write_timeout=1800",
        "set names 'binary'",
        "select @@global.binlog_checksum",
        "show variables like 'binlog_row_image'",  # maxwell
        "select @@server_id as server_id",
        "SET character_set_results = NULL",  # Connector/J
        "SET autocommit=1",
        "SELECT @@session.transaction_read_only",
        "SHOW MASTER STATUS",
        "SHOW BINARY LOGS",
    ],
)
def test_cdc_reader_and_connector_statements(text: str) -> None:
    statement = sql.classify(text)
    if text.startswith("SHOW GRANTS"):
        assert statement == Unknown(text)  # the session decides how to answer the rest
    else:
        assert not isinstance(statement, Unknown)


def test_canal_uuid_and_connector_null() -> None:
    assert sql.classify("set @slave_uuid=uuid()") == Set(
        (Assignment(UserVariable("slave_uuid"), FunctionCall("UUID")),)
    )
    assert sql.classify("SET character_set_results = NULL") == Set(
        (Assignment(SystemVariable("character_set_results", Scope.SESSION), Literal(None)),)
    )
