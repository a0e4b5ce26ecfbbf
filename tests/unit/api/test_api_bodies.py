"""kingbus.api.bodies: strict, pure parsing of admin request bodies."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kingbus.api import bodies
from kingbus.api.control import SourceSpec
from kingbus.api.errors import BadRequest
from kingbus.server import tlsmaterial

GOOD_SOURCE = {"host": "10.0.0.5", "port": 3306, "user": "repl", "password": "pw"}


def body(doc: object) -> bytes:
    return json.dumps(doc).encode()


def reason(parse: object, raw: bytes) -> str:
    with pytest.raises(BadRequest) as caught:
        parse(raw)  # type: ignore[operator]
    return caught.value.reason


def test_source_minimal_and_full() -> None:
    assert bodies.parse_source(body(GOOD_SOURCE)) == SourceSpec("10.0.0.5", 3306, "repl", "pw", "", False)
    full = GOOD_SOURCE | {"start_gtid_set": "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5", "semi_sync": True}
    spec = bodies.parse_source(body(full))
    assert spec.start_gtid_set == "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"
    assert spec.semi_sync is True


def test_source_tls_modes() -> None:
    assert bodies.parse_source(body(GOOD_SOURCE)).tls == "preferred"
    ca, _key = tlsmaterial.self_signed("a test CA")
    spec = bodies.parse_source(body(GOOD_SOURCE | {"tls": "verify_ca", "tls_ca": ca.decode()}))
    assert (spec.tls, spec.tls_ca) == ("verify_ca", ca.decode())
    assert "tls_ca" not in spec.public() and ca.decode() not in repr(spec)


def test_source_spec_repr_hides_the_password() -> None:
    spec = bodies.parse_source(body(GOOD_SOURCE | {"password": "hunter2"}))
    assert "hunter2" not in repr(spec)
    assert "hunter2" not in json.dumps(spec.public())


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({k: v for k, v in GOOD_SOURCE.items() if k != "host"}, "missing field 'host'"),
        ({k: v for k, v in GOOD_SOURCE.items() if k != "password"}, "missing field 'password'"),
        (GOOD_SOURCE | {"port": "3306"}, "field 'port' must be an integer, got string"),
        (GOOD_SOURCE | {"port": True}, "field 'port' must be an integer, got boolean"),
        (GOOD_SOURCE | {"port": 3306.0}, "field 'port' must be an integer, got number"),
        (GOOD_SOURCE | {"port": 0}, "field 'port': port 0 out of range 1..65535"),
        (GOOD_SOURCE | {"port": 70000}, "field 'port': port 70000 out of range 1..65535"),
        (GOOD_SOURCE | {"host": "bad host"}, "field 'host': invalid host 'bad host'"),
        (GOOD_SOURCE | {"host": ""}, "field 'host': invalid host ''"),
        (GOOD_SOURCE | {"host": None}, "field 'host' must be a string, got null"),
        (GOOD_SOURCE | {"user": ""}, "field 'user': must not be empty"),
        (GOOD_SOURCE | {"user": "u" * 33}, "field 'user': longer than 32 characters"),
        (GOOD_SOURCE | {"password": 123}, "field 'password' must be a string, got integer"),
        (GOOD_SOURCE | {"semi_sync": "yes"}, "field 'semi_sync' must be a boolean, got string"),
        (GOOD_SOURCE | {"start_gtid_set": "x; DROP"}, "field 'start_gtid_set': not a GTID set"),
        (GOOD_SOURCE | {"passwd": "x"}, "unknown field 'passwd'"),
        (
            GOOD_SOURCE | {"tls": "verify"},
            "field 'tls': must be one of preferred, required, verify_ca, disabled",
        ),
        (GOOD_SOURCE | {"tls": "verify_ca"}, "field 'tls_ca' is required when 'tls' is verify_ca"),
        (GOOD_SOURCE | {"tls_ca": "abc"}, "field 'tls_ca': must be a PEM certificate"),
        (
            GOOD_SOURCE | {"tls_ca": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
            "field 'tls_ca': is not a usable CA certificate",
        ),
        (GOOD_SOURCE | {"tls_ca": "x" * 70000}, "field 'tls_ca': must be at most 65536 characters"),
    ],
)
def test_source_refusals(doc: dict[str, object], expected: str) -> None:
    assert expected in reason(bodies.parse_source, body(doc))


def test_all_problems_are_reported_together() -> None:
    got = reason(bodies.parse_source, body({"host": 1, "port": "x", "extra": 0}))
    assert got == (
        "unknown field 'extra'; missing field 'user'; missing field 'password'; "
        "field 'host' must be a string, got integer; field 'port' must be an integer, got string"
    )


def test_a_refused_password_is_never_quoted() -> None:
    long_password = "P" * 2000
    got = reason(bodies.parse_source, body(GOOD_SOURCE | {"password": long_password, "port": "x"}))
    assert "PPPP" not in got
    assert "field 'password': longer than 1024 characters" in got


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "got an empty body"),
        (b"   \n", "got an empty body"),
        (b"{", "body is not valid JSON"),
        (b"[1, 2]", "expected a JSON object as the request body, got array"),
        (b'"text"', "got string"),
        (b"null", "got null"),
        (b'{"host": "a", "host": "b"}', "duplicate field 'host'"),
        (b'{"port": NaN}', "NaN is not valid JSON"),
        (b'{"port": Infinity}', "Infinity is not valid JSON"),
        (b'{"a": 1} {"b": 2}', "body is not valid JSON: Extra data"),
        (b"\xff\xfe\x00garbage", "body is not valid JSON"),
        (b"[" * 100_000, "body is not valid JSON"),
    ],
)
def test_not_one_json_object(raw: bytes, expected: str) -> None:
    assert expected in reason(bodies.parse_source, raw)


def test_member() -> None:
    spec = bodies.parse_member(
        body({"name": "kb-3", "raft": "kb-3.kb:7100", "admin": "http://kb-3.kb:9595/"})
    )
    assert spec == bodies.MemberSpec("kb-3", "kb-3.kb:7100", "http://kb-3.kb:9595")


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"name": "kb-3", "raft": "kb-3:7100"}, "missing field 'admin'"),
        (
            {"name": "kb 3", "raft": "kb-3:7100", "admin": "http://a:1"},
            "field 'name': invalid member name 'kb 3'",
        ),
        ({"name": "../x", "raft": "kb-3:7100", "admin": "http://a:1"}, "field 'name': invalid member name"),
        (
            {"name": "kb-3", "raft": "kb-3", "admin": "http://a:1"},
            "field 'raft': expected host:port, got 'kb-3'",
        ),
        (
            {"name": "kb-3", "raft": "0.0.0.0:7100", "admin": "http://a:1"},
            "field 'raft': 0.0.0.0 is a wildcard",
        ),
        ({"name": "kb-3", "raft": "kb-3:7100", "admin": "kb-3:9595"}, "field 'admin': expected an admin URL"),
        ({"name": "kb-3", "raft": "kb-3:7100", "admin": "http://a:1", "role": "x"}, "unknown field 'role'"),
        (
            {"name": ["kb-3"], "raft": "kb-3:7100", "admin": "http://a:1"},
            "field 'name' must be a string, got array",
        ),
    ],
)
def test_member_refusals(doc: dict[str, object], expected: str) -> None:
    assert expected in reason(bodies.parse_member, body(doc))


def test_transfer() -> None:
    assert bodies.parse_transfer(b"") == bodies.TransferSpec(None)
    assert bodies.parse_transfer(b"{}") == bodies.TransferSpec(None)
    assert bodies.parse_transfer(b'{"to": null}') == bodies.TransferSpec(None)
    assert bodies.parse_transfer(b'{"to": "kb-2"}') == bodies.TransferSpec("kb-2")
    assert bodies.parse_transfer(b'{"to": "10.0.0.2:7100"}') == bodies.TransferSpec("10.0.0.2:7100")
    assert "field 'to' must be a string, got integer" in reason(bodies.parse_transfer, b'{"to": 2}')
    assert "expected a member name or its Raft host:port, got 'a b'" in reason(
        bodies.parse_transfer, b'{"to": "a b"}'
    )
    assert "unknown field 'target'" in reason(bodies.parse_transfer, b'{"target": "kb-2"}')


def test_empty_bodies() -> None:
    bodies.parse_empty(b"")  # accepted: no exception
    bodies.parse_empty(b"{}")
    assert reason(bodies.parse_empty, b'{"now": true}') == "unknown field 'now'"
    assert "got array" in reason(bodies.parse_empty, b"[]")


@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_a_request_or_bad_request(raw: bytes) -> None:
    for parse in (bodies.parse_source, bodies.parse_member, bodies.parse_transfer, bodies.parse_empty):
        try:
            parse(raw)
        except BadRequest as exc:
            assert exc.reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.sampled_from(["host", "port", "user", "password", "semi_sync", "x"]), json_values))
def test_arbitrary_objects_give_a_valid_spec_or_bad_request(doc: dict[str, object]) -> None:
    try:
        spec = bodies.parse_source(body(doc))
    except BadRequest:
        return
    assert isinstance(spec.port, int) and 1 <= spec.port <= 65535
    assert isinstance(spec.host, str) and spec.host
    assert isinstance(spec.password, str)
