"""Strict parsing of admin request bodies: bytes in, a typed request or ``BadRequest`` out.

No I/O.  A body must be one JSON object (duplicate keys, NaN/Infinity and trailing data are
refused) with exactly the documented fields: a missing required field, a wrong type (``true``
is not an integer, ``"3306"`` is not a port) or an unknown field is an error.  All problems
of a body are reported together, ``"; "``-separated, each naming its field.  Reasons never
quote a password.
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from kingbus import config
from kingbus.api.control import SourceSpec
from kingbus.api.errors import BadRequest
from kingbus.raft.entries import SOURCE_TLS_MODES

MAX_USER_LENGTH: Final = 32  # MySQL's limit on user names
MAX_CA_LENGTH: Final = 64 * 1024
MAX_PASSWORD_LENGTH: Final = 1024
_GTID_SET_CHARS: Final = re.compile(r"^[0-9A-Za-z_:,\-\s]*$")


@dataclass(frozen=True)
class MemberSpec:
    name: str
    raft: str  # normalised host:port
    admin: str  # normalised base URL, no trailing slash


@dataclass(frozen=True)
class TransferSpec:
    to: str | None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise BadRequest(f"duplicate field {key!r}")
        doc[key] = value
    return doc


def _no_constants(name: str) -> None:
    raise BadRequest(f"{name} is not valid JSON")


def parse_object(raw: bytes, *, allow_empty: bool = False) -> dict[str, Any]:
    """Decode a body that must be a JSON object (an empty body counts as ``{}`` if allowed)."""
    if not raw.strip():
        if allow_empty:
            return {}
        raise BadRequest("expected a JSON object as the request body, got an empty body")
    try:
        doc = json.loads(raw, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except (UnicodeDecodeError, RecursionError):
        raise BadRequest("body is not valid JSON text") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"expected a JSON object as the request body, got {_json_type(doc)}")
    return doc


class _Fields:
    """Collects every problem of one body before raising, so the operator sees them all."""

    def __init__(self, doc: dict[str, Any], *, required: tuple[str, ...], optional: tuple[str, ...] = ()):
        self.doc = doc
        self.problems: list[str] = []
        for key in doc:
            if key not in required and key not in optional:
                self.problems.append(f"unknown field {key!r}")
        for key in required:
            if key not in doc:
                self.problems.append(f"missing field {key!r}")

    def get(
        self, key: str, kind: type, check: Callable[[Any], Any] | None = None, *, nullable: bool = False
    ) -> Any:
        if key not in self.doc:
            return None
        value = self.doc[key]
        if value is None and nullable:
            return None
        # bool is a subclass of int in Python, but not an integer in JSON terms.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problems.append(f"field {key!r} must be {_article(kind)}, got {_json_type(value)}")
            return None
        if check is None:
            return value
        try:
            return check(value)
        except ValueError as exc:
            self.problems.append(f"field {key!r}: {exc}")
            return None

    def done(self) -> None:
        if self.problems:
            raise BadRequest("; ".join(self.problems))


def _article(kind: type) -> str:
    return {str: "a string", int: "an integer", bool: "a boolean"}[kind]


def _nonempty(limit: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        if len(value) > limit:
            raise ValueError(f"longer than {limit} characters")
        return value

    return check


def _password(value: str) -> str:
    # Never quote the value in a reason.
    if len(value) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"longer than {MAX_PASSWORD_LENGTH} characters")
    return value


def _gtid_set(value: str) -> str:
    if not _GTID_SET_CHARS.match(value):
        raise ValueError("not a GTID set (expected uuid[:tag]:interval[:interval],...)")
    return value.strip()


def _source_tls(value: str) -> str:
    if value not in SOURCE_TLS_MODES:
        raise ValueError(f"must be one of {', '.join(SOURCE_TLS_MODES)}")
    return value


def _pem_certificate(value: str) -> str:
    if len(value) > MAX_CA_LENGTH:
        raise ValueError(f"must be at most {MAX_CA_LENGTH} characters")
    if "-----BEGIN CERTIFICATE-----" not in value:
        raise ValueError("must be a PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        ssl.create_default_context().load_verify_locations(cadata=value)
    except ssl.SSLError as exc:
        raise ValueError(f"is not a usable CA certificate: {exc.reason or exc}") from None
    return value


def parse_source(raw: bytes) -> SourceSpec:
    """PUT /source ``{"host", "port", "user", "password", "start_gtid_set"?, "semi_sync"?, "tls"?,
    "tls_ca"?}`` (``tls_ca``: the CA certificate, PEM, that ``tls: verify_ca`` checks against)."""
    fields = _Fields(
        parse_object(raw),
        required=("host", "port", "user", "password"),
        optional=("start_gtid_set", "semi_sync", "tls", "tls_ca"),
    )
    host = fields.get("host", str, config.check_host)
    port = fields.get("port", int, config.check_port)
    user = fields.get("user", str, _nonempty(MAX_USER_LENGTH))
    password = fields.get("password", str, _password)
    start = fields.get("start_gtid_set", str, _gtid_set)
    semi_sync = fields.get("semi_sync", bool)
    tls = fields.get("tls", str, _source_tls)
    tls_ca = fields.get("tls_ca", str, _pem_certificate)
    if tls == "verify_ca" and not tls_ca:
        fields.problems.append("field 'tls_ca' is required when 'tls' is verify_ca")
    fields.done()
    return SourceSpec(
        host=host,
        port=port,
        user=user,
        password=password,
        start_gtid_set=start or "",
        semi_sync=bool(semi_sync),
        tls=tls or "preferred",
        tls_ca=tls_ca or "",
    )


def parse_member(raw: bytes) -> MemberSpec:
    """POST /members ``{"name", "raft", "admin"}``."""
    fields = _Fields(parse_object(raw), required=("name", "raft", "admin"))
    name = fields.get("name", str, config.check_member_name)
    raft = fields.get("raft", str, lambda text: str(config.parse_host_port(text, wildcard_ok=False)))
    admin = fields.get("admin", str, config.parse_admin_url)
    fields.done()
    return MemberSpec(name=name, raft=raft, admin=admin)


def _member_ref(text: str) -> str:
    """A member is named by its name, or by its Raft host:port (members list a member that
    has not announced its name yet under its address)."""
    try:
        return config.check_member_name(text)
    except ValueError:
        pass
    try:
        return str(config.parse_host_port(text, wildcard_ok=False))
    except ValueError:
        raise ValueError(f"expected a member name or its Raft host:port, got {text!r}") from None


def parse_transfer(raw: bytes) -> TransferSpec:
    """POST /leader/transfer ``{"to"?}``: an empty body or ``{}`` lets the node pick."""
    fields = _Fields(parse_object(raw, allow_empty=True), required=(), optional=("to",))
    to = fields.get("to", str, _member_ref, nullable=True)
    fields.done()
    return TransferSpec(to=to)


def parse_empty(raw: bytes) -> None:
    """POST /source/start and /source/stop take no fields: an empty body or ``{}``."""
    _Fields(parse_object(raw, allow_empty=True), required=()).done()
