"""The SQL tokenizer under :mod:`kingbus.protocol.sql`.

It understands what real clients put around a statement: whitespace, ``/* */`` comments,
``/*!80000 ... */`` version comments (whose body is code, so it is tokenized), ``--`` and
``#`` line comments, backtick identifiers, quoted strings with backslash escapes and doubled
quotes, ``@@[scope.]name`` system variables and ``@name`` user variables (lower-cased, since
MySQL compares both case-insensitively). Every token keeps its offsets so the parser can
quote the client's own text (result column names are the expression as typed). Anything it
cannot tokenize raises :class:`Unparsable`.
"""

from __future__ import annotations

import dataclasses
import enum
import re


class Unparsable(Exception):
    """The text is outside what the classifier understands (never escapes ``sql.classify``)."""


class Kind(enum.Enum):
    WORD = "word"  # a keyword or a bare identifier, as written
    QUOTED_IDENT = "quoted-ident"
    STRING = "string"
    NUMBER = "number"
    SYSVAR = "sysvar"
    USERVAR = "uservar"
    PUNCT = "punct"


@dataclasses.dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    value: str
    start: int
    end: int
    scope: str | None = None  # SYSVAR only: GLOBAL, SESSION or LOCAL as written (upper-cased)

    def is_word(self, *words: str) -> bool:
        return self.kind is Kind.WORD and self.value.upper() in words


_IDENT_RE = re.compile(r"[A-Za-z0-9_$\u0080-\uffff]+")
_NUMBER_RE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_USERVAR_NAME_RE = re.compile(r"[A-Za-z0-9_$.\u0080-\uffff]+")
_WHITESPACE = " \t\r\n\f\v"
_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}
SCOPE_WORDS = ("GLOBAL", "SESSION", "LOCAL")


def _quoted(text: str, start: int) -> tuple[str, int]:
    """A quoted string or identifier starting at ``start``: its value and the end offset.
    Backslash escapes apply to strings, not to backtick identifiers; a doubled quote is the
    quote itself."""
    quote = text[start]
    out: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\" and quote != "`":
            if index + 1 >= len(text):
                break
            nxt = text[index + 1]
            # MySQL keeps \% and \_ as two characters so that LIKE patterns still see the escape.
            out.append("\\" + nxt if nxt in "%_" else _ESCAPES.get(nxt, nxt))
            index += 2
            continue
        if char == quote:
            if index + 1 < len(text) and text[index + 1] == quote:
                out.append(quote)
                index += 2
                continue
            return "".join(out), index + 1
        out.append(char)
        index += 1
    raise Unparsable("unterminated quoted text")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    index = 0
    in_version_comment = False
    length = len(text)
    while index < length:
        char = text[index]
        if char in _WHITESPACE:
            index += 1
        elif text.startswith("/*!", index):
            # A version comment: its body is code for servers at least that version.
            if in_version_comment:
                raise Unparsable("nested version comment")
            index += 3
            while index < length and text[index].isdigit():
                index += 1
            in_version_comment = True
        elif text.startswith("*/", index) and in_version_comment:
            in_version_comment = False
            index += 2
        elif text.startswith("/*", index):
            end = text.find("*/", index + 2)
            if end < 0:
                raise Unparsable("unterminated comment")
            index = end + 2
        elif char == "#" or (
            text.startswith("--", index) and (index + 2 == length or text[index + 2] in _WHITESPACE)
        ):
            end = text.find("\n", index)
            index = length if end < 0 else end + 1
        elif char in "'\"":
            value, end = _quoted(text, index)
            tokens.append(Token(Kind.STRING, value, index, end))
            index = end
        elif char == "`":
            value, end = _quoted(text, index)
            tokens.append(Token(Kind.QUOTED_IDENT, value, index, end))
            index = end
        elif text.startswith("@@", index):
            tokens.append(_system_variable(text, index))
            index = tokens[-1].end
        elif char == "@":
            tokens.append(_user_variable(text, index))
            index = tokens[-1].end
        elif (number := _NUMBER_RE.match(text, index)) and not (
            # "1abc" is an identifier in MySQL, not a number followed by a word.
            number.end() < length and _IDENT_RE.match(text[number.end()]) and "." not in number.group()
        ):
            tokens.append(Token(Kind.NUMBER, number.group(), index, number.end()))
            index = number.end()
        elif word := _IDENT_RE.match(text, index):
            tokens.append(Token(Kind.WORD, word.group(), index, word.end()))
            index = word.end()
        elif text.startswith(":=", index):
            tokens.append(Token(Kind.PUNCT, ":=", index, index + 2))
            index += 2
        else:
            tokens.append(Token(Kind.PUNCT, char, index, index + 1))
            index += 1
    if in_version_comment:
        raise Unparsable("unterminated version comment")
    return tokens


def _name_at(text: str, index: int) -> tuple[str, int]:
    """An identifier (bare or backticked) at ``index``."""
    if index < len(text) and text[index] == "`":
        return _quoted(text, index)
    word = _IDENT_RE.match(text, index)
    if word is None:
        raise Unparsable("expected a name")
    return word.group(), word.end()


def _system_variable(text: str, start: int) -> Token:
    name, end = _name_at(text, start + 2)
    scope: str | None = None
    if end < len(text) and text[end] == "." and name.upper() in SCOPE_WORDS:
        scope = name.upper()
        name, end = _name_at(text, end + 1)
    return Token(Kind.SYSVAR, name.lower(), start, end, scope)


def _user_variable(text: str, start: int) -> Token:
    index = start + 1
    if index < len(text) and text[index] in "`'\"":
        name, end = _quoted(text, index)
    else:
        match = _USERVAR_NAME_RE.match(text, index)
        if match is None:
            raise Unparsable("expected a user variable name")
        name, end = match.group(), match.end()
    return Token(Kind.USERVAR, name.lower(), start, end)
