"""SQL ``LIKE`` pattern matching, as ``SHOW VARIABLES LIKE '...'`` needs it.

``%`` matches any run of characters (including none), ``_`` exactly one character, and the
escape character (backslash by default) makes the next character literal; a trailing lone
escape character matches itself, as in MySQL. Matching is case-insensitive by default
because variable and status names compare that way (their collation is ``_ci``).
"""

from __future__ import annotations

import functools
import re


@functools.lru_cache(maxsize=256)
def compile_like(pattern: str, escape: str = "\\", *, case_sensitive: bool = False) -> re.Pattern[str]:
    """The regular expression equivalent to a LIKE pattern (anchored at both ends)."""
    if len(escape) > 1:
        raise ValueError("the LIKE escape must be a single character (or empty for none)")
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if escape and char == escape and index + 1 < len(pattern):
            parts.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        if char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
        index += 1
    flags = re.DOTALL if case_sensitive else re.DOTALL | re.IGNORECASE
    return re.compile("".join(parts), flags)


def like(value: str, pattern: str, *, escape: str = "\\", case_sensitive: bool = False) -> bool:
    """Does ``value`` match the LIKE ``pattern``?"""
    return compile_like(pattern, escape, case_sensitive=case_sensitive).fullmatch(value) is not None
