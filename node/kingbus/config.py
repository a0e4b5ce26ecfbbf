"""The node's configuration: one YAML file, overridden key by key from the environment.

Theory of operation
-------------------
Every setting has a dotted *key* (``raft.address``, ``store.retention_bytes``,
``raft.election_timeout_ms.min``) described once in ``_SCHEMA`` together with its parser,
default and whether it is required.  Loading happens in three passes:

1. **Gather raw values.**  The YAML document is walked section by section and flattened into
   ``{key: raw value}``; a key the schema does not know is an error.  Then each key's
   environment variable (``KINGBUS_`` + the key upper-cased with ``.`` → ``_``, e.g.
   ``KINGBUS_RAFT_ADDRESS``, ``KINGBUS_RAFT_ELECTION_TIMEOUT_MS_MIN``, ``KINGBUS_NAME``)
   replaces the file's value: the environment wins.  Environment values are strings; lists are
   comma-separated (``KINGBUS_RAFT_PEERS=a:7100,b:7100``; ``KINGBUS_MYSQL_USERS=repl:/path``).
   An empty environment value means "unset" (the default applies; a required key is missing).
   A ``KINGBUS_<SECTION>_*`` variable that names no key is an error (a typo must not be
   silently ignored); other ``KINGBUS_*`` variables (``KINGBUS_ADMIN`` for kingbusctl,
   build-script variables) are not ours and are left alone.
2. **Parse every key**, collecting *all* errors as ``"<key>: <reason>"`` instead of stopping at
   the first, so an operator fixes a broken file in one round.
3. **Cross-check** keys that depend on each other (a peer equal to our own address,
   election timeout min ≥ max) and build frozen dataclasses.

Secrets (Raft password, admin token, MySQL user passwords, source password) are never held in
the configuration: it holds the *paths* of files, checks at load time that they are readable,
and :func:`secret` reads them when they are needed.  Nothing here logs a secret's content;
:meth:`Config.redacted` is the view meant for logs.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import yaml

ENV_PREFIX: Final = "KINGBUS_"
MiB: Final = 1024 * 1024


class ConfigError(Exception):
    """The configuration is unusable; ``messages`` lists every problem, one per key."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = list(messages)


class SecretError(ConfigError):
    """A secret file could not be read (the message names the file, never its content)."""

    def __init__(self, message: str) -> None:
        super().__init__([message])


# --------------------------------------------------------------------------------------------
# Values shared with the admin API: host:port, member names, admin URLs.


@dataclass(frozen=True, order=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_MEMBER_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
_WILDCARDS: Final = frozenset({"0.0.0.0", "::"})


def check_host(host: str) -> str:
    """Return ``host`` if it is an IPv4/IPv6 literal or an RFC 1123 host name, else raise ValueError."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if (
        not host
        or len(host) > 253
        or not all(_LABEL.match(label) for label in labels)
        # An all-numeric last label is a mistyped IPv4 address (10.0.0.256), not a name.
        or labels[-1].isdigit()
    ):
        raise ValueError(f"invalid host {host!r}")
    return host


def check_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} out of range 1..65535")
    return port


def parse_host_port(text: str, *, wildcard_ok: bool = True) -> HostPort:
    """Parse ``host:port`` or ``[v6]:port``; raise ValueError with a reason fit for a user."""
    expected = f"expected host:port, got {text!r}"
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep or ":" not in host:
            raise ValueError(expected)
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host or ":" in host:
            raise ValueError(expected)
    if not port_text.isascii() or not port_text.isdigit():
        raise ValueError(expected)
    host = check_host(host)
    if not wildcard_ok and host in _WILDCARDS:
        raise ValueError(f"{host} is a wildcard address; give one that other members can dial")
    return HostPort(host, check_port(int(port_text)))


def check_member_name(name: str) -> str:
    """Member names appear in URL paths (``DELETE /members/{name}``) and DNS names."""
    if not _MEMBER_NAME.match(name):
        raise ValueError(
            f"invalid member name {name!r}: 1-63 letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit"
        )
    return name


def parse_admin_url(text: str) -> str:
    """Validate an admin base URL (``http(s)://host[:port]``) and return it without a trailing slash."""
    reason = f"expected an admin URL like http://host:port, got {text!r}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(reason) from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise ValueError(reason)
    check_host(parts.hostname)
    if port is not None:
        check_port(port)
    return text.rstrip("/")


# --------------------------------------------------------------------------------------------
# The configuration as the node sees it.


# Addresses are kept as normalised "host:port" strings (IPv6 as "[v6]:port"): that is the form
# pysyncobj, the member directory and the DESIGN contract use; parse_host_port() splits them.


@dataclass(frozen=True)
class RaftConfig:
    address: str  # host:port the other members dial
    listen: str  # host:port to listen on; equals ``address`` unless set
    peers: tuple[str, ...]  # host:port of the other initial members
    password_file: Path
    fsync: str = "always"  # "always" | "never"
    entry_bytes: int = 2 * 1024 * 1024
    election_timeout_min_ms: int = 400  # file key raft.election_timeout_ms.min
    election_timeout_max_ms: int = 1400  # file key raft.election_timeout_ms.max
    journal_segment_bytes: int = 64 * MiB
    compaction_bytes: int = 64 * MiB
    join: tuple[str, ...] = ()  # admin URLs of running members to join through (first start only)


@dataclass(frozen=True)
class AdminConfig:
    bind: str  # host:port
    advertise: str  # base URL others use; derived from bind (or raft.address's host) if unset
    token_file: Path


@dataclass(frozen=True)
class MySQLUser:
    name: str
    password_file: Path
    # MySQL's grant names, canonical spelling ("REPLICATION SLAVE", "REPLICATION CLIENT");
    # None = both (the environment's name:path form cannot name privileges).
    privileges: tuple[str, ...] | None = None


# The privileges a node's account can hold, by every name MySQL accepts for them.
PRIVILEGE_NAMES: Final = {
    "REPLICATION SLAVE": "REPLICATION SLAVE",
    "REPLICATION REPLICA": "REPLICATION SLAVE",  # MySQL 8.0.26+ alias
    "REPLICATION CLIENT": "REPLICATION CLIENT",
}


@dataclass(frozen=True)
class TLSConfig:
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class MySQLConfig:
    bind: str  # host:port
    server_id: int
    users: tuple[MySQLUser, ...]
    tls: TLSConfig | None = None
    # "always": the caching_sha2 fast path works for every account from the start (the node
    # keeps SHA256(SHA256(password))). "after_full_auth": like a MySQL source after a restart,
    # an account must first authenticate fully (TLS or RSA key) before the fast path serves it.
    fast_auth: str = "always"
    # Client connections served at once (dump sessions and any other); one more is refused
    # with MySQL's own 1040 "Too many connections", before the handshake, as mysqld does.
    max_connections: int = 1024


@dataclass(frozen=True)
class SourceConfig:
    host: str
    port: int
    user: str
    password_file: Path
    start_gtid_set: str = ""
    semi_sync: bool = False
    tls: str = "preferred"
    tls_ca_file: Path | None = None  # the CA (PEM) that tls: verify_ca checks the source against


@dataclass(frozen=True)
class StoreConfig:
    segment_bytes: int = 64 * MiB
    retention_bytes: int = 0  # 0 = keep everything
    retention_seconds: int = 0  # 0 = keep everything
    retention_check_seconds: int = 60


@dataclass(frozen=True)
class Config:
    name: str
    data_dir: Path
    raft: RaftConfig
    admin: AdminConfig
    mysql: MySQLConfig
    store: StoreConfig
    source: SourceConfig | None = None
    log_level: str = "info"

    def redacted(self) -> dict[str, Any]:
        """A JSON-able view for logs.  The config holds secret *paths* only, which are fine to
        show; this stays the one place to strip anything sensitive should that change."""
        view: dict[str, Any] = _jsonable(self)
        return view


def _jsonable(value: Any) -> Any:
    if isinstance(value, HostPort | Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: _jsonable(getattr(value, field.name))
            for field in dataclasses.fields(value)
            if field.name != "password"  # never present today; kept as a guard
        }
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def secret(path: Path, *, allow_empty: bool = False) -> str:
    """Read a secret file, dropping one trailing newline (``echo`` and editors add one).

    Errors name the file, never the content.  An empty secret is refused unless asked for:
    an empty token or Raft password would quietly disable protection.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretError(f"{path}: cannot read secret: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SecretError(f"{path}: secret is not UTF-8 text") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text and not allow_empty:
        raise SecretError(f"{path}: secret file is empty")
    return text


# --------------------------------------------------------------------------------------------
# Parsers: raw value (a YAML scalar/list, or an environment string) -> typed value.
# Each raises ValueError with a reason; the caller prefixes the key.


Parser = Callable[[object], Any]


def _describe(raw: object) -> str:
    return "a list" if isinstance(raw, list) else "a mapping" if isinstance(raw, dict) else repr(raw)


def _text(raw: object) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ValueError(f"expected a string, got {_describe(raw)}")
    return str(raw)


def _nonempty(raw: object) -> str:
    text = _text(raw).strip()
    if not text:
        raise ValueError("must not be empty")
    return text


def _name(raw: object) -> str:
    return check_member_name(_text(raw))


def _int_between(lo: int, hi: int) -> Parser:
    def parse(raw: object) -> int:
        if isinstance(raw, bool):
            raise ValueError(f"expected an integer, got {raw!r}")
        if isinstance(raw, int):
            value = raw
        elif isinstance(raw, str) and re.fullmatch(r"\s*-?\d+\s*", raw):
            value = int(raw)
        else:
            raise ValueError(f"expected an integer, got {_describe(raw)}")
        if not lo <= value <= hi:
            raise ValueError(f"{value} out of range {lo}..{hi}")
        return value

    return parse


_UNITS: Final = {"": 1, "k": 1024, "kib": 1024, "m": MiB, "mib": MiB, "g": 1024 * MiB, "gib": 1024 * MiB}


def _size(lo: int) -> Parser:
    """Byte counts: an integer, or a string with a binary unit (``64MiB``, ``256KiB``, ``1G``)."""

    def parse(raw: object) -> int:
        if isinstance(raw, str):
            m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", raw)
            if not m or m.group(2).lower() not in _UNITS:
                raise ValueError(f"expected a size in bytes (e.g. 67108864 or 64MiB), got {raw!r}")
            raw = int(m.group(1)) * _UNITS[m.group(2).lower()]
        return int(_int_between(lo, 2**62)(raw))

    return parse


def _bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in ("true", "yes", "on", "1"):
            return True
        if word in ("false", "no", "off", "0"):
            return False
    raise ValueError(f"expected true or false, got {_describe(raw)}")


def _choice(*options: str) -> Parser:
    def parse(raw: object) -> str:
        text = _text(raw).strip().lower()
        if text not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {raw!r}")
        return text

    return parse


def _host_port(*, wildcard_ok: bool) -> Parser:
    def parse(raw: object) -> str:
        return str(parse_host_port(_text(raw).strip(), wildcard_ok=wildcard_ok))

    return parse


def _items(raw: object) -> list[object]:
    """A list from YAML, or a comma-separated string (from the environment or the file)."""
    if isinstance(raw, list):
        return raw
    if isinstance(raw, str):
        return [item.strip() for item in raw.split(",") if item.strip()]
    raise ValueError(f"expected a list, got {_describe(raw)}")


def _host_port_list(raw: object) -> tuple[str, ...]:
    peers: list[str] = []
    for i, item in enumerate(_items(raw)):
        try:
            peer = str(parse_host_port(_text(item).strip(), wildcard_ok=False))
        except ValueError as exc:
            raise ValueError(f"[{i}]: {exc}") from None
        if peer in peers:
            raise ValueError(f"[{i}]: {peer} is listed twice")
        peers.append(peer)
    return tuple(peers)


def _admin_url_list(raw: object) -> tuple[str, ...]:
    urls: list[str] = []
    for i, item in enumerate(_items(raw)):
        try:
            urls.append(parse_admin_url(_text(item).strip()))
        except ValueError as exc:
            raise ValueError(f"[{i}]: {exc}") from None
    return tuple(urls)


def _readable_file(raw: object) -> Path:
    path = Path(_nonempty(raw))
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{path} is not readable")
    return path


def _directory_path(raw: object) -> Path:
    return Path(_nonempty(raw))


def _admin_url(raw: object) -> str:
    return parse_admin_url(_text(raw).strip())


def _privileges(raw: object, where: str) -> tuple[str, ...]:
    """A list of MySQL grant names (any case, single spaces), canonicalised and deduplicated."""
    if not isinstance(raw, list):
        raise ValueError(f"{where}: expected a list of privileges, e.g. [REPLICATION SLAVE]")
    found: list[str] = []
    for i, item in enumerate(raw):
        name = " ".join(str(item).upper().split())
        if name not in PRIVILEGE_NAMES:
            known = ", ".join(PRIVILEGE_NAMES)
            raise ValueError(f"{where}[{i}]: unknown privilege {item!r} (known: {known})")
        if PRIVILEGE_NAMES[name] not in found:
            found.append(PRIVILEGE_NAMES[name])
    return tuple(found)


def _users(raw: object) -> tuple[MySQLUser, ...]:
    """``[{name, password_file, privileges?}, ...]`` in YAML; ``name:path,...`` in the environment."""
    users: list[MySQLUser] = []
    for i, item in enumerate(_items(raw)):
        where = f"[{i}]"
        if isinstance(item, str):
            user, sep, file = item.partition(":")
            if not sep:
                raise ValueError(f"{where}: expected name:password_file, got {item!r}")
            fields: dict[object, object] = {"name": user, "password_file": file}
        elif isinstance(item, dict):
            fields = item
        else:
            raise ValueError(f"{where}: expected a mapping with name and password_file")
        unknown = sorted(str(k) for k in fields if k not in ("name", "password_file", "privileges"))
        if unknown:
            raise ValueError(f"{where}.{unknown[0]}: unknown key")
        for field in ("name", "password_file"):
            if fields.get(field) is None:
                raise ValueError(f"{where}.{field}: required")
        try:
            name = _nonempty(fields["name"])
        except ValueError as exc:
            raise ValueError(f"{where}.name: {exc}") from None
        try:
            path = _readable_file(fields["password_file"])
        except ValueError as exc:
            raise ValueError(f"{where}.password_file: {exc}") from None
        if any(u.name == name for u in users):
            raise ValueError(f"{where}.name: user {name!r} is listed twice")
        privileges = None
        if fields.get("privileges") is not None:
            privileges = _privileges(fields["privileges"], f"{where}.privileges")
        users.append(MySQLUser(name, path, privileges))
    return tuple(users)


# --------------------------------------------------------------------------------------------
# The schema: every key, once.


@dataclass(frozen=True)
class _Key:
    parse: Parser
    required: bool = False
    default: Any = None


_REQUIRED: Final = True
_SCHEMA: Final[dict[str, _Key]] = {
    "name": _Key(_name, _REQUIRED),
    "data_dir": _Key(_directory_path, _REQUIRED),
    "log_level": _Key(_choice("debug", "info", "warning", "error", "critical"), default="info"),
    "raft.address": _Key(_host_port(wildcard_ok=False), _REQUIRED),
    "raft.listen": _Key(_host_port(wildcard_ok=True)),
    "raft.peers": _Key(_host_port_list, default=()),
    "raft.join": _Key(_admin_url_list, default=()),
    "raft.password_file": _Key(_readable_file, _REQUIRED),
    "raft.fsync": _Key(_choice("always", "never"), default="always"),
    "raft.entry_bytes": _Key(_size(1024), default=2 * 1024 * 1024),
    "raft.election_timeout_ms.min": _Key(_int_between(10, 600_000), default=400),
    "raft.election_timeout_ms.max": _Key(_int_between(10, 600_000), default=1400),
    "raft.journal_segment_bytes": _Key(_size(64 * 1024), default=64 * MiB),
    "raft.compaction_bytes": _Key(_size(64 * 1024), default=64 * MiB),
    "admin.bind": _Key(_host_port(wildcard_ok=True), default="127.0.0.1:9595"),
    "admin.advertise": _Key(_admin_url),
    "admin.token_file": _Key(_readable_file, _REQUIRED),
    "mysql.bind": _Key(_host_port(wildcard_ok=True), default="127.0.0.1:3306"),
    "mysql.server_id": _Key(_int_between(1, 2**32 - 1), _REQUIRED),
    "mysql.users": _Key(_users, default=()),
    "mysql.fast_auth": _Key(_choice("always", "after_full_auth"), default="always"),
    "mysql.max_connections": _Key(_int_between(1, 100_000), default=1024),
    "mysql.tls.cert_file": _Key(_readable_file, _REQUIRED),
    "mysql.tls.key_file": _Key(_readable_file, _REQUIRED),
    "source.host": _Key(lambda raw: check_host(_nonempty(raw)), _REQUIRED),
    "source.port": _Key(_int_between(1, 65535), default=3306),
    "source.user": _Key(_nonempty, _REQUIRED),
    "source.password_file": _Key(_readable_file, _REQUIRED),
    "source.start_gtid_set": _Key(lambda raw: _text(raw).strip(), default=""),
    "source.semi_sync": _Key(_bool, default=False),
    "source.tls": _Key(_choice("preferred", "required", "verify_ca", "disabled"), default="preferred"),
    "source.tls_ca_file": _Key(_readable_file, default=None),
    "store.segment_bytes": _Key(_size(4096), default=64 * MiB),
    "store.retention_bytes": _Key(_size(0), default=0),
    "store.retention_seconds": _Key(_int_between(0, 2**62), default=0),
    "store.retention_check_seconds": _Key(_int_between(1, 86_400), default=60),
}
# Mappings that may be absent as a whole; their required keys are required only when present.
_OPTIONAL_GROUPS: Final = ("mysql.tls", "source")


def env_name(key: str) -> str:
    """``raft.election_timeout_ms.min`` -> ``KINGBUS_RAFT_ELECTION_TIMEOUT_MS_MIN``."""
    return ENV_PREFIX + key.replace(".", "_").upper()


_ENV_KEYS: Final = {env_name(key): key for key in _SCHEMA}
_GROUPS: Final = frozenset(key.rpartition(".")[0] for key in _SCHEMA if "." in key)
_SECTIONS: Final = frozenset(key.split(".")[0] for key in _SCHEMA if "." in key)


def _flatten(doc: Mapping[object, object], prefix: str, out: dict[str, object], errors: list[str]) -> None:
    """Walk the YAML mapping along the schema; unknown keys and misplaced mappings are errors."""
    for raw_key, value in doc.items():
        key = f"{prefix}{raw_key}"
        if key in _SCHEMA:
            out[key] = value
        elif key in _GROUPS:
            if value is None:
                continue  # ``source:`` or ``tls:`` left empty: the group is absent
            if not isinstance(value, dict):
                errors.append(f"{key}: expected a mapping, got {_describe(value)}")
                continue
            out.setdefault(key, {})  # marks the group present, even when empty
            _flatten(value, f"{key}.", out, errors)
        else:
            errors.append(f"{key}: unknown key")


def _read_file(path: Path, errors: list[str]) -> dict[str, object]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        errors.append(f"{path}: cannot read configuration: {exc.strerror or exc}")
        return {}
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        errors.append(f"{path}: invalid YAML: {exc}")
        return {}
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        errors.append(f"{path}: expected a mapping at the top level, got {_describe(doc)}")
        return {}
    flat: dict[str, object] = {}
    _flatten(doc, "", flat, errors)
    return flat


def _apply_environment(flat: dict[str, object], environ: Mapping[str, str], errors: list[str]) -> set[str]:
    """Override from ``KINGBUS_*``; returns the keys whose value came from the environment."""
    from_env: set[str] = set()
    for var in sorted(environ):
        if not var.startswith(ENV_PREFIX):
            continue
        key = _ENV_KEYS.get(var)
        if key is None:
            rest = var[len(ENV_PREFIX) :].lower()
            if any(rest.startswith(section + "_") for section in _SECTIONS):
                errors.append(f"{var}: no such configuration key")
            continue
        value = environ[var]
        group = key.rpartition(".")[0]
        if value.strip() == "":
            # Empty means unset (templates render absent values as ""): the file's value is
            # dropped, a default applies, a required key is reported missing, and an optional
            # group (source, mysql.tls) is not brought into existence by it.
            flat.pop(key, None)
        else:
            flat[key] = value
            from_env.add(key)
            # Setting any key of an optional group (source, mysql.tls) makes the group present.
            while group:
                flat.setdefault(group, {})
                group = group.rpartition(".")[0]
    return from_env


def _present(flat: Mapping[str, object], key: str) -> bool:
    group = key.rpartition(".")[0]
    for optional in _OPTIONAL_GROUPS:
        if (group == optional or group.startswith(optional + ".")) and optional not in flat:
            return False
    return True


def load_config(path: Path | None, environ: Mapping[str, str]) -> Config:
    """Load and validate; raise :class:`ConfigError` listing every problem by key."""
    errors: list[str] = []
    flat = _read_file(path, errors) if path is not None else {}
    from_env = _apply_environment(flat, environ, errors)

    values: dict[str, Any] = {}
    for key, spec in _SCHEMA.items():
        if not _present(flat, key):
            continue
        raw = flat.get(key)
        if raw is None:
            if spec.required:
                errors.append(f"{key}: required (or set {env_name(key)})")
            else:
                values[key] = spec.default
            continue
        try:
            values[key] = spec.parse(raw)
        except ValueError as exc:
            origin = f" (from {env_name(key)})" if key in from_env else ""
            reason = str(exc)
            where = key
            if reason.startswith("["):  # a list item: "[2]: reason" -> "raft.peers[2]: reason"
                index, _, reason = reason.partition(": ")
                where += index
            errors.append(f"{where}{origin}: {reason}")

    errors.extend(_cross_check(values))
    if errors:
        raise ConfigError(errors)
    return _build(values, present={group for group in _OPTIONAL_GROUPS if group in flat})


def _cross_check(values: Mapping[str, Any]) -> Iterator[str]:
    address = values.get("raft.address")
    peers = values.get("raft.peers") or ()
    if address is not None and address in peers:
        yield f"raft.peers: contains this member's own raft.address {address}"
    lo, hi = values.get("raft.election_timeout_ms.min"), values.get("raft.election_timeout_ms.max")
    if lo is not None and hi is not None and lo >= hi:
        yield f"raft.election_timeout_ms: min ({lo}) must be below max ({hi})"
    admin_bind = values.get("admin.bind")
    mysql_bind = values.get("mysql.bind")
    if admin_bind is not None and admin_bind == mysql_bind:
        yield f"mysql.bind: same address as admin.bind ({admin_bind})"
    if values.get("source.tls") == "verify_ca" and values.get("source.tls_ca_file") is None:
        yield "source.tls_ca_file: required when source.tls is verify_ca"


def _default_advertise(bind_text: str, raft_address: str) -> str:
    # A wildcard bind says nothing about how to reach us; the Raft address is the name the
    # other members already dial, so it is the best guess for the admin host too.
    bind = parse_host_port(bind_text)
    host = parse_host_port(raft_address).host if bind.host in _WILDCARDS else bind.host
    return f"http://{HostPort(host, bind.port)}"


def _build(v: Mapping[str, Any], *, present: set[str]) -> Config:
    raft = RaftConfig(
        address=v["raft.address"],
        listen=v["raft.listen"] or v["raft.address"],
        peers=v["raft.peers"],
        password_file=v["raft.password_file"],
        fsync=v["raft.fsync"],
        entry_bytes=v["raft.entry_bytes"],
        election_timeout_min_ms=v["raft.election_timeout_ms.min"],
        election_timeout_max_ms=v["raft.election_timeout_ms.max"],
        journal_segment_bytes=v["raft.journal_segment_bytes"],
        compaction_bytes=v["raft.compaction_bytes"],
        join=v["raft.join"],
    )
    admin = AdminConfig(
        bind=v["admin.bind"],
        advertise=v["admin.advertise"] or _default_advertise(v["admin.bind"], raft.address),
        token_file=v["admin.token_file"],
    )
    tls = TLSConfig(v["mysql.tls.cert_file"], v["mysql.tls.key_file"]) if "mysql.tls" in present else None
    mysql = MySQLConfig(
        bind=v["mysql.bind"],
        server_id=v["mysql.server_id"],
        users=v["mysql.users"],
        tls=tls,
        fast_auth=v["mysql.fast_auth"],
        max_connections=v["mysql.max_connections"],
    )
    source = None
    if "source" in present:
        source = SourceConfig(
            host=v["source.host"],
            port=v["source.port"],
            user=v["source.user"],
            password_file=v["source.password_file"],
            start_gtid_set=v["source.start_gtid_set"],
            semi_sync=v["source.semi_sync"],
            tls=v["source.tls"],
            tls_ca_file=v["source.tls_ca_file"],
        )
    store = StoreConfig(
        segment_bytes=v["store.segment_bytes"],
        retention_bytes=v["store.retention_bytes"],
        retention_seconds=v["store.retention_seconds"],
        retention_check_seconds=v["store.retention_check_seconds"],
    )
    return Config(
        name=v["name"],
        data_dir=v["data_dir"],
        raft=raft,
        admin=admin,
        mysql=mysql,
        store=store,
        source=source,
        log_level=v["log_level"],
    )
