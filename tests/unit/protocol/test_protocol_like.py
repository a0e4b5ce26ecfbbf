"""SQL LIKE matching."""

from __future__ import annotations

import pytest

from kingbus.protocol.like import compile_like, like


@pytest.mark.parametrize(
    ("value", "pattern", "expected"),
    [
        ("server_id", "server_id", True),
        ("SERVER_ID", "server_id", True),  # variable names compare case-insensitively
        ("server_id", "SERVER\\_ID", True),
        ("serverXid", "server\\_id", False),  # escaped _ is literal
        ("serverXid", "server_id", True),  # _ is any one character
        ("server_uuid", "server%", True),
        ("server", "server%", True),  # % matches nothing too
        ("binlog_checksum", "%checksum", True),
        ("binlog_checksum", "%check%", True),
        ("binlog_checksum", "check%", False),
        ("a%b", "a\\%b", True),
        ("axb", "a\\%b", False),
        ("a\\", "a\\", True),  # a trailing escape matches itself
        ("a.b", "a.b", True),  # regex characters are literal
        ("axb", "a.b", False),
        ("", "", True),
        ("", "%", True),
        ("x", "", False),
        ("line\nbreak", "line%", True),
        ("gtid_mode", "gtid\\_%", True),
        ("(x)", "(_)", True),
    ],
)
def test_like(value: str, pattern: str, expected: bool) -> None:
    assert like(value, pattern) is expected


def test_case_sensitive_and_custom_escape() -> None:
    assert not like("ABC", "abc", case_sensitive=True)
    assert like("a_c", "a!_c", escape="!")
    assert not like("abc", "a!_c", escape="!")
    assert like("a\\c", "a\\c", escape="")
    with pytest.raises(ValueError):
        compile_like("x", "ab")
