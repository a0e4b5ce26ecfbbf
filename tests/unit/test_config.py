"""kingbus.config: the YAML contract, KINGBUS_* overrides, and errors reported by key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kingbus import config
from kingbus.config import ConfigError, load_config, secret


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    d = tmp_path / "secrets"
    d.mkdir()
    for name in ("raft-password", "admin-token", "repl-password", "source-password", "cert", "key"):
        (d / name).write_text(f"{name}-value\n")
    return d


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kingbus.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def full_file(tmp_path: Path, secrets_dir: Path) -> Path:
    s = secrets_dir
    return write(
        tmp_path,
        f"""\
        name: kb-0
        data_dir: /var/lib/kingbus
        raft:
          address: 127.0.0.1:7100
          listen: 0.0.0.0:7100
          peers: [127.0.0.2:7100, 127.0.0.3:7100]
          password_file: {s}/raft-password
          fsync: always
        admin:
          bind: 127.0.0.1:9595
          advertise: http://127.0.0.1:9595
          token_file: {s}/admin-token
        mysql:
          bind: 127.0.0.1:3306
          server_id: 4001
          users:
            - {{name: repl, password_file: {s}/repl-password}}
          tls: {{cert_file: {s}/cert, key_file: {s}/key}}
        source:
          {{host: 10.0.0.5, port: 3306, user: repl, password_file: {s}/source-password,
            start_gtid_set: "", semi_sync: false}}
        """,
    )


def minimal_env(secrets_dir: Path) -> dict[str, str]:
    return {
        "KINGBUS_NAME": "kb-1",
        "KINGBUS_DATA_DIR": "/data",
        "KINGBUS_RAFT_ADDRESS": "kb-1.kb.ns.svc:7100",
        "KINGBUS_RAFT_PASSWORD_FILE": str(secrets_dir / "raft-password"),
        "KINGBUS_ADMIN_TOKEN_FILE": str(secrets_dir / "admin-token"),
        "KINGBUS_MYSQL_SERVER_ID": "4002",
    }


def errors_of(path: Path | None, environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ)
    return caught.value.messages


# ---- the contract's example file


def test_the_design_example_loads_into_typed_values(full_file: Path, secrets_dir: Path) -> None:
    cfg = load_config(full_file, {})
    assert cfg.name == "kb-0"
    assert cfg.data_dir == Path("/var/lib/kingbus")
    assert cfg.raft.address == "127.0.0.1:7100"
    assert cfg.raft.listen == "0.0.0.0:7100"
    assert cfg.raft.peers == ("127.0.0.2:7100", "127.0.0.3:7100")
    assert cfg.raft.password_file == secrets_dir / "raft-password"
    assert cfg.raft.fsync == "always"
    assert cfg.admin.advertise == "http://127.0.0.1:9595"
    assert cfg.mysql.server_id == 4001
    assert cfg.mysql.users == (config.MySQLUser("repl", secrets_dir / "repl-password"),)
    assert cfg.mysql.tls == config.TLSConfig(secrets_dir / "cert", secrets_dir / "key")
    assert cfg.source == config.SourceConfig(
        "10.0.0.5", 3306, "repl", secrets_dir / "source-password", "", False
    )


def test_defaults_of_the_extensions(full_file: Path) -> None:
    cfg = load_config(full_file, {})
    assert cfg.raft.entry_bytes == 2 * 1024 * 1024
    assert cfg.mysql.fast_auth == "always"
    assert cfg.mysql.max_connections == 1024
    assert (cfg.raft.election_timeout_min_ms, cfg.raft.election_timeout_max_ms) == (400, 1400)
    assert cfg.raft.join == ()
    assert cfg.raft.journal_segment_bytes == 64 * 1024 * 1024
    assert cfg.raft.compaction_bytes == 64 * 1024 * 1024
    assert cfg.store == config.StoreConfig(64 * 1024 * 1024, 0, 0, 60)
    assert cfg.log_level == "info"


def test_environment_alone_is_enough(secrets_dir: Path) -> None:
    cfg = load_config(None, minimal_env(secrets_dir))
    assert cfg.name == "kb-1"
    assert cfg.raft.address == "kb-1.kb.ns.svc:7100"
    assert cfg.raft.listen == cfg.raft.address  # listen defaults to the address
    assert cfg.raft.peers == ()
    assert cfg.admin.bind == "127.0.0.1:9595"
    assert cfg.admin.advertise == "http://127.0.0.1:9595"
    assert cfg.mysql.users == ()
    assert cfg.mysql.tls is None
    assert cfg.source is None


def test_wildcard_admin_bind_advertises_the_raft_host(secrets_dir: Path) -> None:
    env = minimal_env(secrets_dir) | {"KINGBUS_ADMIN_BIND": "0.0.0.0:9595"}
    assert load_config(None, env).admin.advertise == "http://kb-1.kb.ns.svc:9595"


# ---- precedence


def test_environment_overrides_the_file(full_file: Path, secrets_dir: Path) -> None:
    env = {
        "KINGBUS_NAME": "kb-9",
        "KINGBUS_RAFT_ADDRESS": "10.1.1.1:7200",
        "KINGBUS_RAFT_PEERS": "10.1.1.2:7200, 10.1.1.3:7200",
        "KINGBUS_RAFT_FSYNC": "never",
        "KINGBUS_RAFT_ELECTION_TIMEOUT_MS_MIN": "1000",
        "KINGBUS_RAFT_ELECTION_TIMEOUT_MS_MAX": "3000",
        "KINGBUS_SOURCE_SEMI_SYNC": "true",
        "KINGBUS_SOURCE_PORT": "3307",
        "KINGBUS_STORE_RETENTION_BYTES": "10GiB",
        "KINGBUS_MYSQL_USERS": f"a:{secrets_dir}/repl-password,b:{secrets_dir}/source-password",
        "KINGBUS_LOG_LEVEL": "DEBUG",
    }
    cfg = load_config(full_file, env)
    assert cfg.name == "kb-9"
    assert cfg.raft.address == "10.1.1.1:7200"
    assert cfg.raft.listen == "0.0.0.0:7100"  # file value kept where env is silent
    assert cfg.raft.peers == ("10.1.1.2:7200", "10.1.1.3:7200")
    assert cfg.raft.fsync == "never"
    assert (cfg.raft.election_timeout_min_ms, cfg.raft.election_timeout_max_ms) == (1000, 3000)
    assert cfg.source is not None and cfg.source.semi_sync is True and cfg.source.port == 3307
    assert cfg.store.retention_bytes == 10 * 1024**3
    assert [u.name for u in cfg.mysql.users] == ["a", "b"]
    assert cfg.log_level == "debug"


def test_empty_environment_list_clears_peers(full_file: Path) -> None:
    assert load_config(full_file, {"KINGBUS_RAFT_PEERS": ""}).raft.peers == ()


def test_empty_environment_value_unsets_an_optional_key(full_file: Path) -> None:
    cfg = load_config(full_file, {"KINGBUS_RAFT_LISTEN": ""})
    assert cfg.raft.listen == cfg.raft.address


def test_empty_environment_values_do_not_create_a_section_or_satisfy_a_requirement(
    full_file: Path, secrets_dir: Path
) -> None:
    env = minimal_env(secrets_dir) | {"KINGBUS_SOURCE_HOST": "", "KINGBUS_MYSQL_TLS_CERT_FILE": " "}
    cfg = load_config(None, env)
    assert cfg.source is None and cfg.mysql.tls is None
    assert errors_of(full_file, {"KINGBUS_NAME": ""}) == ["name: required (or set KINGBUS_NAME)"]


def test_environment_can_create_the_optional_source_section(secrets_dir: Path) -> None:
    env = minimal_env(secrets_dir) | {
        "KINGBUS_SOURCE_HOST": "db.example",
        "KINGBUS_SOURCE_USER": "repl",
        "KINGBUS_SOURCE_PASSWORD_FILE": str(secrets_dir / "source-password"),
    }
    source = load_config(None, env).source
    assert source == config.SourceConfig("db.example", 3306, "repl", secrets_dir / "source-password")


def test_booleans_and_sizes_from_strings(secrets_dir: Path) -> None:
    base = minimal_env(secrets_dir) | {
        "KINGBUS_SOURCE_HOST": "db",
        "KINGBUS_SOURCE_USER": "u",
        "KINGBUS_SOURCE_PASSWORD_FILE": str(secrets_dir / "source-password"),
    }
    for word, expected in [("yes", True), ("On", True), ("1", True), ("false", False), ("off", False)]:
        cfg = load_config(None, base | {"KINGBUS_SOURCE_SEMI_SYNC": word})
        assert cfg.source is not None and cfg.source.semi_sync is expected
    for text, size in [("4096", 4096), ("256KiB", 262144), ("64MiB", 64 << 20), ("1G", 1 << 30)]:
        assert load_config(None, base | {"KINGBUS_STORE_SEGMENT_BYTES": text}).store.segment_bytes == size


def test_source_tls_mode(secrets_dir: Path) -> None:
    base = minimal_env(secrets_dir) | {
        "KINGBUS_SOURCE_HOST": "db",
        "KINGBUS_SOURCE_USER": "u",
        "KINGBUS_SOURCE_PASSWORD_FILE": str(secrets_dir / "source-password"),
    }
    default = load_config(None, base).source
    assert default is not None and default.tls == "preferred"
    for mode in ("preferred", "required", "disabled", "Required"):
        cfg = load_config(None, base | {"KINGBUS_SOURCE_TLS": mode})
        assert cfg.source is not None and cfg.source.tls == mode.lower()
    with pytest.raises(ConfigError) as refused:
        load_config(None, base | {"KINGBUS_SOURCE_TLS": "verify"})
    assert (
        "source.tls (from KINGBUS_SOURCE_TLS): expected one of preferred, required, verify_ca, disabled"
        in (str(refused.value))
    )
    with pytest.raises(ConfigError) as refused:
        load_config(None, base | {"KINGBUS_SOURCE_TLS": "verify_ca"})
    assert "source.tls_ca_file: required when source.tls is verify_ca" in str(refused.value)
    ca_file = secrets_dir / "source-password"  # any readable file: its content is checked on use
    cfg = load_config(
        None, base | {"KINGBUS_SOURCE_TLS": "verify_ca", "KINGBUS_SOURCE_TLS_CA_FILE": str(ca_file)}
    )
    assert cfg.source is not None and cfg.source.tls_ca_file == ca_file


def test_join_seeds(full_file: Path) -> None:
    env = {"KINGBUS_RAFT_JOIN": "http://kb-0.kb:9595/, https://kb-1.kb:9595"}
    assert load_config(full_file, env).raft.join == ("http://kb-0.kb:9595", "https://kb-1.kb:9595")
    assert errors_of(full_file, {"KINGBUS_RAFT_JOIN": "http://a:1,kb-1:9595"}) == [
        "raft.join[1] (from KINGBUS_RAFT_JOIN): expected an admin URL like http://host:port, got 'kb-1:9595'"
    ]


def test_addresses_are_normalised(secrets_dir: Path) -> None:
    env = minimal_env(secrets_dir) | {
        "KINGBUS_RAFT_ADDRESS": " [FD00:0::1]:07100 ",
        "KINGBUS_MYSQL_BIND": "0.0.0.0:3306",
    }
    cfg = load_config(None, env)
    assert cfg.raft.address == "[fd00::1]:7100"
    assert cfg.mysql.bind == "0.0.0.0:3306"


def test_ipv6_addresses(secrets_dir: Path) -> None:
    env = minimal_env(secrets_dir) | {
        "KINGBUS_RAFT_ADDRESS": "[fd00::1]:7100",
        "KINGBUS_RAFT_PEERS": "[fd00::2]:7100",
    }
    cfg = load_config(None, env)
    assert cfg.raft.address == "[fd00::1]:7100"
    assert config.parse_host_port(cfg.raft.address) == config.HostPort("fd00::1", 7100)
    assert cfg.raft.peers == ("[fd00::2]:7100",)


def test_fast_auth_mode_from_the_environment_and_refused_by_key(full_file: Path) -> None:
    cfg = load_config(full_file, {"KINGBUS_MYSQL_FAST_AUTH": "after_full_auth"})
    assert cfg.mysql.fast_auth == "after_full_auth"
    messages = errors_of(full_file, {"KINGBUS_MYSQL_FAST_AUTH": "sometimes"})
    assert messages == [
        "mysql.fast_auth (from KINGBUS_MYSQL_FAST_AUTH): expected one of always, after_full_auth, "
        "got 'sometimes'"
    ], messages


@pytest.mark.parametrize("raw", ["0", "-5", "100001", "many"])
def test_max_connections_is_refused_out_of_range(full_file: Path, raw: str) -> None:
    assert load_config(full_file, {"KINGBUS_MYSQL_MAX_CONNECTIONS": "2"}).mysql.max_connections == 2
    (message,) = errors_of(full_file, {"KINGBUS_MYSQL_MAX_CONNECTIONS": raw})
    assert message.startswith("mysql.max_connections (from KINGBUS_MYSQL_MAX_CONNECTIONS): "), message


def users_file(tmp_path: Path, secrets_dir: Path, users: str) -> Path:
    return write(
        tmp_path,
        f"""\
        name: kb-0
        data_dir: /var/lib/kingbus
        raft: {{address: 127.0.0.1:7100, password_file: {secrets_dir}/raft-password}}
        admin: {{token_file: {secrets_dir}/admin-token}}
        mysql:
          server_id: 4001
          users: {users}
        """,
    )


def test_user_privileges_are_canonical_mysql_grant_names(tmp_path: Path, secrets_dir: Path) -> None:
    pw = secrets_dir / "repl-password"
    path = users_file(
        tmp_path,
        secrets_dir,
        f"[{{name: repl, password_file: {pw}}},"
        f" {{name: cdc, password_file: {pw}, privileges: [replication  client]}},"
        f" {{name: r2, password_file: {pw}, privileges: [REPLICATION REPLICA, REPLICATION SLAVE]}},"
        f" {{name: none, password_file: {pw}, privileges: []}}]",
    )
    users = {u.name: u.privileges for u in load_config(path, {}).mysql.users}
    assert users == {
        "repl": None,  # not given: both
        "cdc": ("REPLICATION CLIENT",),
        "r2": ("REPLICATION SLAVE",),  # the 8.0.26+ alias is the same privilege
        "none": (),
    }


@pytest.mark.parametrize(
    ("privileges", "message"),
    [
        (
            "[SUPER]",
            "mysql.users[0].privileges[0]: unknown privilege 'SUPER' (known: REPLICATION SLAVE, "
            "REPLICATION REPLICA, REPLICATION CLIENT)",
        ),
        (
            "REPLICATION SLAVE",
            "mysql.users[0].privileges: expected a list of privileges, e.g. [REPLICATION SLAVE]",
        ),
    ],
)
def test_bad_privileges_are_refused_by_key(
    tmp_path: Path, secrets_dir: Path, privileges: str, message: str
) -> None:
    pw = secrets_dir / "repl-password"
    path = users_file(
        tmp_path, secrets_dir, f"[{{name: cdc, password_file: {pw}, privileges: {privileges}}}]"
    )
    assert errors_of(path, {}) == [message]


# ---- errors, all reported, each by key


def test_every_error_is_reported_by_key_at_once(tmp_path: Path, secrets_dir: Path) -> None:
    path = write(
        tmp_path,
        f"""\
        name: "bad name!"
        raft:
          address: nonsense
          peers: [127.0.0.2:7100, "127.0.0.3:99999"]
          password_file: {tmp_path}/missing
          fsync: sometimes
          entry_bytes: lots
          election_timeout_ms: {{min: 2000, max: 1000}}
        admin:
          bind: 127.0.0.1:http
          advertise: ftp://x
          token_file: {secrets_dir}/admin-token
        mysql:
          server_id: true
          users: [{{name: repl}}]
        store:
          retention_seconds: -1
        log_level: loud
        """,
    )
    messages = errors_of(path, {})
    by_key = {m.split(":")[0].split(" ")[0].split("[")[0]: m for m in messages}
    assert set(by_key) == {
        "name",
        "data_dir",
        "raft.address",
        "raft.peers",
        "raft.password_file",
        "raft.fsync",
        "raft.entry_bytes",
        "raft.election_timeout_ms",
        "admin.bind",
        "admin.advertise",
        "mysql.server_id",
        "mysql.users",
        "store.retention_seconds",
        "log_level",
    }, messages
    assert by_key["raft.address"] == "raft.address: expected host:port, got 'nonsense'"
    assert by_key["raft.peers"] == "raft.peers[1]: port 99999 out of range 1..65535"
    assert by_key["raft.password_file"] == f"raft.password_file: {tmp_path}/missing is not a file"
    assert by_key["raft.fsync"] == "raft.fsync: expected one of always, never, got 'sometimes'"
    assert (
        by_key["raft.election_timeout_ms"] == "raft.election_timeout_ms: min (2000) must be below max (1000)"
    )
    assert by_key["data_dir"] == "data_dir: required (or set KINGBUS_DATA_DIR)"
    assert by_key["mysql.server_id"] == "mysql.server_id: expected an integer, got True"
    assert by_key["mysql.users"] == "mysql.users[0].password_file: required"
    assert (
        by_key["store.retention_seconds"] == "store.retention_seconds: -1 out of range 0..4611686018427387904"
    )


def test_the_error_message_lists_every_problem(secrets_dir: Path) -> None:
    env = minimal_env(secrets_dir) | {"KINGBUS_RAFT_ADDRESS": "x", "KINGBUS_MYSQL_SERVER_ID": "0"}
    with pytest.raises(ConfigError) as caught:
        load_config(None, env)
    assert str(caught.value).splitlines() == caught.value.messages
    assert len(caught.value.messages) == 2


def test_environment_errors_name_the_variable(secrets_dir: Path) -> None:
    env = minimal_env(secrets_dir) | {"KINGBUS_RAFT_ADDRESS": "no-port"}
    assert errors_of(None, env) == [
        "raft.address (from KINGBUS_RAFT_ADDRESS): expected host:port, got 'no-port'",
    ]


def test_required_keys(tmp_path: Path) -> None:
    assert errors_of(None, {}) == [
        "name: required (or set KINGBUS_NAME)",
        "data_dir: required (or set KINGBUS_DATA_DIR)",
        "raft.address: required (or set KINGBUS_RAFT_ADDRESS)",
        "raft.password_file: required (or set KINGBUS_RAFT_PASSWORD_FILE)",
        "admin.token_file: required (or set KINGBUS_ADMIN_TOKEN_FILE)",
        "mysql.server_id: required (or set KINGBUS_MYSQL_SERVER_ID)",
    ]


def test_an_optional_section_once_present_needs_its_required_keys(full_file: Path, secrets_dir: Path) -> None:
    env = minimal_env(secrets_dir) | {
        "KINGBUS_SOURCE_HOST": "db",
        "KINGBUS_MYSQL_TLS_CERT_FILE": str(secrets_dir / "cert"),
    }
    assert errors_of(None, env) == [
        "mysql.tls.key_file: required (or set KINGBUS_MYSQL_TLS_KEY_FILE)",
        "source.user: required (or set KINGBUS_SOURCE_USER)",
        "source.password_file: required (or set KINGBUS_SOURCE_PASSWORD_FILE)",
    ]


def test_unknown_keys_are_errors_at_every_level(tmp_path: Path, secrets_dir: Path) -> None:
    path = write(
        tmp_path,
        """\
        nmae: kb-0
        raft:
          adress: 127.0.0.1:7100
          election_timeout_ms: {min: 100, max: 200, mean: 150}
        mysql:
          tls: {cert: x}
          users: [{name: a, password_file: /etc/hostname, pasword: x}]
        sources: {}
        """,
    )
    messages = errors_of(path, minimal_env(secrets_dir))
    assert "nmae: unknown key" in messages
    assert "raft.adress: unknown key" in messages
    assert "raft.election_timeout_ms.mean: unknown key" in messages
    assert "mysql.tls.cert: unknown key" in messages
    assert "mysql.users[0].pasword: unknown key" in messages
    assert "sources: unknown key" in messages


def test_misspelled_environment_variable_of_a_section_is_an_error(secrets_dir: Path) -> None:
    env = minimal_env(secrets_dir) | {
        "KINGBUS_RAFT_ADRESS": "x:1",  # typo: must not be ignored
        "KINGBUS_ADMIN": "http://elsewhere:9595",  # kingbusctl's variable: not ours
        "KINGBUS_CACHE": "/tmp/cache",  # build scripts' variable: not ours
    }
    assert errors_of(None, env) == ["KINGBUS_RAFT_ADRESS: no such configuration key"]


def test_a_section_that_is_not_a_mapping(tmp_path: Path, secrets_dir: Path) -> None:
    path = write(tmp_path, "raft: [1, 2]\nstore: 5\n")
    messages = errors_of(path, minimal_env(secrets_dir))
    assert messages == ["raft: expected a mapping, got a list", "store: expected a mapping, got 5"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a:b:c", "expected host:port, got 'a:b:c'"),
        (":7100", "expected host:port, got ':7100'"),
        ("host:", "expected host:port, got 'host:'"),
        ("host:-1", "expected host:port, got 'host:-1'"),
        ("host:0", "port 0 out of range 1..65535"),
        ("host:65536", "port 65536 out of range 1..65535"),
        ("10.0.0.256:1", "invalid host '10.0.0.256'"),
        ("bad_host:1", "invalid host 'bad_host'"),
        ("-x.example:1", "invalid host '-x.example'"),
        ("[::1:1", "expected host:port, got '[::1:1'"),
        ("[nothost]:1", "expected host:port, got '[nothost]:1'"),
        ("0.0.0.0:7100", "0.0.0.0 is a wildcard address; give one that other members can dial"),
    ],
)
def test_raft_address_syntax(secrets_dir: Path, text: str, reason: str) -> None:
    env = minimal_env(secrets_dir) | {"KINGBUS_RAFT_ADDRESS": text}
    assert errors_of(None, env) == [f"raft.address (from KINGBUS_RAFT_ADDRESS): {reason}"]


def test_peers_must_not_repeat_or_include_ourselves(secrets_dir: Path) -> None:
    env = minimal_env(secrets_dir) | {"KINGBUS_RAFT_PEERS": "a:1,a:1"}
    assert errors_of(None, env) == ["raft.peers[1] (from KINGBUS_RAFT_PEERS): a:1 is listed twice"]
    env = minimal_env(secrets_dir) | {"KINGBUS_RAFT_PEERS": "kb-1.kb.ns.svc:7100"}
    assert errors_of(None, env) == ["raft.peers: contains this member's own raft.address kb-1.kb.ns.svc:7100"]


def test_admin_and_mysql_cannot_share_an_address(secrets_dir: Path) -> None:
    env = minimal_env(secrets_dir) | {"KINGBUS_MYSQL_BIND": "127.0.0.1:9595"}
    assert errors_of(None, env) == ["mysql.bind: same address as admin.bind (127.0.0.1:9595)"]


def test_secret_path_that_is_not_a_file(secrets_dir: Path) -> None:
    env = minimal_env(secrets_dir) | {"KINGBUS_ADMIN_TOKEN_FILE": str(secrets_dir)}
    assert errors_of(None, env) == [
        f"admin.token_file (from KINGBUS_ADMIN_TOKEN_FILE): {secrets_dir} is not a file"
    ]


def test_file_problems(tmp_path: Path, secrets_dir: Path) -> None:
    assert errors_of(tmp_path / "nope.yaml", minimal_env(secrets_dir)) == [
        f"{tmp_path}/nope.yaml: cannot read configuration: No such file or directory"
    ]
    broken = write(tmp_path, "raft: [unclosed\n")
    (message,) = errors_of(broken, minimal_env(secrets_dir))
    assert message.startswith(f"{broken}: invalid YAML")
    listy = write(tmp_path, "- a\n- b\n")
    assert errors_of(listy, minimal_env(secrets_dir)) == [
        f"{listy}: expected a mapping at the top level, got a list"
    ]


def test_an_empty_file_with_environment_is_fine(tmp_path: Path, secrets_dir: Path) -> None:
    assert load_config(write(tmp_path, ""), minimal_env(secrets_dir)).name == "kb-1"


def test_yaml_type_surprises_are_caught(tmp_path: Path, secrets_dir: Path) -> None:
    # YAML 1.1 reads `no` as false: a member called "no" must be quoted, and we say so.
    path = write(tmp_path, "name: no\n")
    assert errors_of(path, {k: v for k, v in minimal_env(secrets_dir).items() if k != "KINGBUS_NAME"}) == [
        "name: expected a string, got False"
    ]


# ---- secrets and the redacted view


def test_secret_strips_exactly_one_trailing_newline(tmp_path: Path) -> None:
    f = tmp_path / "s"
    for content, expected in [
        ("pw\n", "pw"),
        ("pw\n\n", "pw\n"),
        ("pw\r\n", "pw"),
        ("pw", "pw"),
        (" pw \n", " pw "),
    ]:
        f.write_text(content, newline="")
        assert secret(f) == expected


def test_secret_errors_never_show_content(tmp_path: Path) -> None:
    with pytest.raises(config.SecretError, match="cannot read secret"):
        secret(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(config.SecretError, match="secret file is empty"):
        secret(empty)
    assert secret(empty, allow_empty=True) == ""
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfetopsecret")
    with pytest.raises(config.SecretError) as caught:
        secret(binary)
    assert "topsecret" not in str(caught.value)


def test_config_does_not_read_secrets(full_file: Path, secrets_dir: Path) -> None:
    cfg = load_config(full_file, {})
    shown = repr(cfg) + str(cfg.redacted())
    assert "-value" not in shown  # no secret file's content was loaded


def test_redacted_view_is_plain_data(full_file: Path, secrets_dir: Path) -> None:
    view = load_config(full_file, {}).redacted()
    assert view["raft"]["address"] == "127.0.0.1:7100"
    assert view["raft"]["peers"] == ["127.0.0.2:7100", "127.0.0.3:7100"]
    assert view["raft"]["password_file"] == f"{secrets_dir}/raft-password"
    assert view["mysql"]["users"] == [
        {"name": "repl", "password_file": f"{secrets_dir}/repl-password", "privileges": None}
    ]
    assert view["source"]["semi_sync"] is False


def test_config_is_frozen(full_file: Path) -> None:
    cfg = load_config(full_file, {})
    with pytest.raises(AttributeError):
        cfg.name = "other"  # type: ignore[misc]


# ---- helpers shared with the API


@pytest.mark.parametrize("url", ["http://a:1", "https://kb-0.kb.ns.svc:9595/", "http://[fd00::1]:9595"])
def test_admin_urls_accepted(url: str) -> None:
    assert config.parse_admin_url(url) == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://a:1",
        "http://",
        "http://a:1/path",
        "http://a:1?x=1",
        "http://u:p@a:1",
        "http://a:99999",
        "a:1",
        "http://a_b",
    ],
)
def test_admin_urls_refused(url: str) -> None:
    with pytest.raises(ValueError):
        config.parse_admin_url(url)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("64 MB", "expected a size in bytes (e.g. 67108864 or 64MiB), got '64 MB'"),
        ("-1", "expected a size in bytes (e.g. 67108864 or 64MiB), got '-1'"),
        ("1KiB", "1024 out of range 4096..4611686018427387904"),
        ("lots", "expected a size in bytes (e.g. 67108864 or 64MiB), got 'lots'"),
    ],
)
def test_size_syntax(secrets_dir: Path, value: str, reason: str) -> None:
    env = minimal_env(secrets_dir) | {"KINGBUS_STORE_SEGMENT_BYTES": value}
    assert errors_of(None, env) == [f"store.segment_bytes (from KINGBUS_STORE_SEGMENT_BYTES): {reason}"]
