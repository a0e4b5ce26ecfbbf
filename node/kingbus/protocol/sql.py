"""Classification of the SQL statements that replicas and CDC readers send.

Theory of operation
-------------------
A binlog server is not a database; it answers a small, known set of statements (see
notes/mysql-protocol.md §1, §4, §5): clock and identity probes (``SELECT UNIX_TIMESTAMP()``,
``SELECT @@GLOBAL.SERVER_ID``), session variables the replica sets (``SET @source_heartbeat_period
= 30000001024, @source_binlog_checksum = @@global.binlog_checksum``), connector setup
(``SET NAMES``, ``SELECT @@a AS a, @@b``), and status statements (``SHOW BINARY LOGS`` ...).

:func:`classify` turns one statement into a frozen value describing *what was asked*; the
session decides the answer. Anything it does not recognise -- including syntax it cannot
tokenize -- becomes :class:`Unknown`; :func:`classify` never raises.

It works in two small steps: a tokenizer (:mod:`kingbus.protocol.sqltokens`) that understands
what real clients put around the statement (``/* */`` comments, ``/*!80000 ... */`` version
comments whose body is code, ``--`` and ``#`` line comments, backticks, quoted strings with
escapes, ``@@scope.var`` and ``@var``), then a recursive-descent parser over the few grammar
shapes above. Keywords are case-insensitive; variable names are lower-cased (MySQL compares
them case-insensitively); trailing semicolons are ignored, but two statements in one query are
Unknown (this server does not offer CLIENT_MULTI_STATEMENTS).
"""

from __future__ import annotations

import dataclasses
import enum

from kingbus.protocol import sqltokens

# -- statement values --------------------------------------------------------------------


class Scope(enum.StrEnum):
    GLOBAL = "global"
    SESSION = "session"


@dataclasses.dataclass(frozen=True, slots=True)
class SystemVariable:
    """``@@name``, ``@@global.name``, ``@@session.name`` (``local`` = session); ``scope`` is
    ``None`` when unqualified (session value, falling back to global)."""

    name: str
    scope: Scope | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class UserVariable:
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class Literal:
    value: int | float | str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Keyword:
    """A bare word used as a value: ``ON``, ``OFF``, ``DEFAULT``, a charset name ... (upper-cased)."""

    word: str


@dataclasses.dataclass(frozen=True, slots=True)
class FunctionCall:
    name: str  # upper-cased
    args: tuple[Expression, ...] = ()


Expression = SystemVariable | UserVariable | Literal | Keyword | FunctionCall


@dataclasses.dataclass(frozen=True, slots=True)
class SelectItem:
    expression: Expression
    alias: str | None
    text: str  # the expression as the client typed it

    @property
    def column_name(self) -> str:
        """The result column's name, as mysqld would report it."""
        if self.alias is not None:
            return self.alias
        if isinstance(self.expression, Literal) and isinstance(self.expression.value, str):
            return self.expression.value
        return self.text


@dataclasses.dataclass(frozen=True, slots=True)
class Select:
    """``SELECT item [[AS] alias], ... [FROM DUAL] [LIMIT n]`` over variables, literals and
    function calls."""

    items: tuple[SelectItem, ...]
    limit: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Assignment:
    target: SystemVariable | UserVariable
    value: Expression


@dataclasses.dataclass(frozen=True, slots=True)
class Set:
    """``SET a = v, @b = v, GLOBAL c = v, @@session.d = v`` (``=`` or ``:=``). A scope keyword
    before an unprefixed name applies to it and to following unprefixed names; without one,
    system variables are assigned in the session scope (targets always carry a scope)."""

    assignments: tuple[Assignment, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class SetNames:
    """``SET NAMES charset [COLLATE collation]``; ``charset`` is lower-cased, ``default`` kept."""

    charset: str
    collation: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class SetCharacterSet:
    """``SET CHARACTER SET charset`` / ``SET CHARSET charset``."""

    charset: str


@dataclasses.dataclass(frozen=True, slots=True)
class ShowVariables:
    """``SHOW [GLOBAL|SESSION] VARIABLES [LIKE 'p' | WHERE ...]``. ``where_names`` holds the
    names when the WHERE clause is the usual ``Variable_name = 'x' OR ...`` or
    ``Variable_name IN ('x', ...)``; otherwise only the raw ``where`` text is known."""

    scope: Scope | None = None
    like: str | None = None
    where: str | None = None
    where_names: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ShowStatus:
    scope: Scope | None = None
    like: str | None = None
    where: str | None = None
    where_names: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ShowBinaryLogs:
    """``SHOW BINARY LOGS`` / ``SHOW MASTER LOGS``."""


@dataclasses.dataclass(frozen=True, slots=True)
class ShowBinaryLogStatus:
    """``SHOW BINARY LOG STATUS`` (8.2+), ``SHOW MASTER STATUS`` (removed in 8.4, still sent by
    older tools), ``SHOW BINLOG STATUS`` (MariaDB)."""


@dataclasses.dataclass(frozen=True, slots=True)
class ShowBinlogEvents:
    filename: str | None = None
    position: int | None = None
    offset: int = 0
    limit: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ShowReplicas:
    """``SHOW REPLICAS`` / ``SHOW SLAVE HOSTS``."""


@dataclasses.dataclass(frozen=True, slots=True)
class Kill:
    connection_id: int
    query_only: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Unknown:
    text: str


Statement = (
    Select
    | Set
    | SetNames
    | SetCharacterSet
    | ShowVariables
    | ShowStatus
    | ShowBinaryLogs
    | ShowBinaryLogStatus
    | ShowBinlogEvents
    | ShowReplicas
    | Kill
    | Unknown
)

# -- parser ------------------------------------------------------------------------------

_SCOPES = {"GLOBAL": Scope.GLOBAL, "SESSION": Scope.SESSION, "LOCAL": Scope.SESSION}


def _scope(word: str | None) -> Scope | None:
    return None if word is None else _SCOPES[word]


class _Parser:
    def __init__(self, text: str, tokens: list[sqltokens.Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.index = 0

    def peek(self) -> sqltokens.Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def next(self) -> sqltokens.Token:
        token = self.peek()
        if token is None:
            raise sqltokens.Unparsable("unexpected end of statement")
        self.index += 1
        return token

    def at_end(self) -> bool:
        return self.index >= len(self.tokens)

    def accept_word(self, *words: str) -> str | None:
        token = self.peek()
        if token is not None and token.is_word(*words):
            self.index += 1
            return token.value.upper()
        return None

    def expect_word(self, *words: str) -> str:
        word = self.accept_word(*words)
        if word is None:
            raise sqltokens.Unparsable(f"expected {' or '.join(words)}")
        return word

    def accept_punct(self, *puncts: str) -> bool:
        token = self.peek()
        if token is not None and token.kind is sqltokens.Kind.PUNCT and token.value in puncts:
            self.index += 1
            return True
        return False

    def expect_punct(self, *puncts: str) -> None:
        if not self.accept_punct(*puncts):
            raise sqltokens.Unparsable(f"expected {' or '.join(puncts)}")

    def expect_end(self) -> None:
        if not self.at_end():
            raise sqltokens.Unparsable("unexpected text after the statement")

    def integer(self) -> int:
        token = self.next()
        if token.kind is not sqltokens.Kind.NUMBER or not token.value.isdecimal():
            raise sqltokens.Unparsable("expected an integer")
        return int(token.value)

    def string(self) -> str:
        token = self.next()
        if token.kind is not sqltokens.Kind.STRING:
            raise sqltokens.Unparsable("expected a quoted string")
        return token.value

    def rest_text(self) -> str:
        """The remaining tokens as the client wrote them; consumes them."""
        if self.at_end():
            raise sqltokens.Unparsable("expected more text")
        start = self.tokens[self.index].start
        end = self.tokens[-1].end
        self.index = len(self.tokens)
        return self.text[start:end]

    # -- expressions ---------------------------------------------------------------------

    def expression(self, *, bare_words: bool, depth: int = 0) -> Expression:
        if depth > _MAX_NESTING:
            raise sqltokens.Unparsable("expression nested too deeply")
        token = self.next()
        if token.kind is sqltokens.Kind.SYSVAR:
            return SystemVariable(token.value, _scope(token.scope))
        if token.kind is sqltokens.Kind.USERVAR:
            return UserVariable(token.value)
        if token.kind is sqltokens.Kind.STRING:
            return Literal(token.value)
        if token.kind is sqltokens.Kind.NUMBER:
            return Literal(_number(token.value))
        if token.kind is sqltokens.Kind.PUNCT and token.value in "-+":
            operand = self.next()
            if operand.kind is not sqltokens.Kind.NUMBER:
                raise sqltokens.Unparsable("expected a number after a sign")
            value = _number(operand.value)
            return Literal(-value if token.value == "-" else value)
        if token.kind is sqltokens.Kind.WORD:
            word = token.value.upper()
            if self.accept_punct("("):
                args: list[Expression] = []
                if not self.accept_punct(")"):
                    args.append(self.expression(bare_words=False, depth=depth + 1))
                    while self.accept_punct(","):
                        args.append(self.expression(bare_words=False, depth=depth + 1))
                    self.expect_punct(")")
                return FunctionCall(word, tuple(args))
            if word == "NULL":
                return Literal(None)
            if word in ("TRUE", "FALSE"):
                return Literal(1 if word == "TRUE" else 0)
            if word in ("CURRENT_USER", "CURRENT_TIMESTAMP", "CURRENT_DATE", "CURRENT_TIME", "NOW"):
                # Callable without parentheses.
                return FunctionCall(word)
            if bare_words:
                return Keyword(word)
        raise sqltokens.Unparsable("unsupported expression")


def _number(text: str) -> int | float:
    if text.isdigit():
        return int(text)
    return float(text)


_MAX_NESTING = 16
_ALIAS_FORBIDDEN = ("FROM", "LIMIT", "WHERE", "INTO", "ORDER", "GROUP", "HAVING", "UNION", "FOR")


def _select(parser: _Parser) -> Select:
    items: list[SelectItem] = []
    while True:
        first = parser.peek()
        if first is None:
            raise sqltokens.Unparsable("empty select list")
        expression = parser.expression(bare_words=False)
        text = parser.text[first.start : parser.tokens[parser.index - 1].end]
        alias: str | None = None
        if parser.accept_word("AS"):
            token = parser.next()
            if token.kind not in (sqltokens.Kind.WORD, sqltokens.Kind.QUOTED_IDENT, sqltokens.Kind.STRING):
                raise sqltokens.Unparsable("expected an alias")
            alias = token.value
        else:
            token_or_none = parser.peek()
            if token_or_none is not None and (
                token_or_none.kind in (sqltokens.Kind.QUOTED_IDENT, sqltokens.Kind.STRING)
                or (
                    token_or_none.kind is sqltokens.Kind.WORD and not token_or_none.is_word(*_ALIAS_FORBIDDEN)
                )
            ):
                alias = parser.next().value
        items.append(SelectItem(expression, alias, text))
        if not parser.accept_punct(","):
            break
    if parser.accept_word("FROM"):
        parser.expect_word("DUAL")
    limit: int | None = None
    if parser.accept_word("LIMIT"):
        limit = parser.integer()
    parser.expect_end()
    return Select(tuple(items), limit)


def _set(parser: _Parser) -> Set | SetNames | SetCharacterSet:
    if parser.accept_word("NAMES"):
        charset = _charset_name(parser)
        collation = None
        if parser.accept_word("COLLATE"):
            collation = _charset_name(parser)
        parser.expect_end()
        return SetNames(charset, collation)
    if parser.accept_word("CHARSET") or (parser.accept_word("CHARACTER") and parser.expect_word("SET")):
        charset = _charset_name(parser)
        parser.expect_end()
        return SetCharacterSet(charset)
    assignments: list[Assignment] = []
    scope: Scope | None = None
    while True:
        scope_word = parser.accept_word(*sqltokens.SCOPE_WORDS)
        if scope_word is not None:
            scope = _SCOPES[scope_word]
        token = parser.next()
        target: SystemVariable | UserVariable
        if token.kind is sqltokens.Kind.USERVAR:
            target = UserVariable(token.value)
        elif token.kind is sqltokens.Kind.SYSVAR:
            # An unqualified @@x in SET assigns the session value, like a bare name.
            target = SystemVariable(token.value, _scope(token.scope) or scope or Scope.SESSION)
        elif token.kind in (sqltokens.Kind.WORD, sqltokens.Kind.QUOTED_IDENT):
            if token.kind is sqltokens.Kind.WORD and token.value.upper() in (
                "TRANSACTION",
                "PERSIST",
                "PERSIST_ONLY",
            ):
                raise sqltokens.Unparsable("unsupported SET form")
            target = SystemVariable(token.value.lower(), scope or Scope.SESSION)
        else:
            raise sqltokens.Unparsable("expected a variable")
        parser.expect_punct("=", ":=")
        assignments.append(Assignment(target, parser.expression(bare_words=True)))
        if not parser.accept_punct(","):
            break
    parser.expect_end()
    return Set(tuple(assignments))


def _charset_name(parser: _Parser) -> str:
    token = parser.next()
    if token.kind not in (sqltokens.Kind.WORD, sqltokens.Kind.QUOTED_IDENT, sqltokens.Kind.STRING):
        raise sqltokens.Unparsable("expected a character set name")
    return token.value.lower()


def _like_or_where(parser: _Parser) -> tuple[str | None, str | None, tuple[str, ...] | None]:
    if parser.accept_word("LIKE"):
        pattern = parser.string()
        parser.expect_end()
        return pattern, None, None
    if parser.accept_word("WHERE"):
        start = parser.index
        where = parser.rest_text()
        return None, where, _where_names(parser.tokens[start:])
    parser.expect_end()
    return None, None, None


def _where_names(tokens: list[sqltokens.Token]) -> tuple[str, ...] | None:
    """Names from ``Variable_name = 'a' OR Variable_name = 'b'`` or ``Variable_name IN ('a', 'b')``."""

    def is_column(token: sqltokens.Token) -> bool:
        return (
            token.kind in (sqltokens.Kind.WORD, sqltokens.Kind.QUOTED_IDENT)
            and token.value.lower() == "variable_name"
        )

    names: list[str] = []
    index = 0
    while True:
        if index + 2 >= len(tokens):
            return None
        column, operator = tokens[index], tokens[index + 1]
        if not is_column(column):
            return None
        if operator.kind is sqltokens.Kind.PUNCT and operator.value == "=":
            value = tokens[index + 2]
            if value.kind is not sqltokens.Kind.STRING:
                return None
            names.append(value.value.lower())
            index += 3
        elif (
            operator.is_word("IN")
            and tokens[index + 2].kind is sqltokens.Kind.PUNCT
            and tokens[index + 2].value == "("
        ):
            index += 3
            while True:
                if index >= len(tokens) or tokens[index].kind is not sqltokens.Kind.STRING:
                    return None
                names.append(tokens[index].value.lower())
                index += 1
                if (
                    index < len(tokens)
                    and tokens[index].kind is sqltokens.Kind.PUNCT
                    and tokens[index].value == ","
                ):
                    index += 1
                    continue
                if (
                    index < len(tokens)
                    and tokens[index].kind is sqltokens.Kind.PUNCT
                    and tokens[index].value == ")"
                ):
                    index += 1
                    break
                return None
        else:
            return None
        if index == len(tokens):
            return tuple(names)
        if not tokens[index].is_word("OR"):
            return None
        index += 1


def _show(parser: _Parser) -> Statement:
    scope = _scope(parser.accept_word(*sqltokens.SCOPE_WORDS))
    if parser.accept_word("VARIABLES"):
        return ShowVariables(scope, *_like_or_where(parser))
    if parser.accept_word("STATUS"):
        return ShowStatus(scope, *_like_or_where(parser))
    if scope is not None:
        raise sqltokens.Unparsable("scope on a SHOW without scope")
    if parser.accept_word("BINARY"):
        if parser.accept_word("LOGS"):
            parser.expect_end()
            return ShowBinaryLogs()
        parser.expect_word("LOG")
        parser.expect_word("STATUS")
        parser.expect_end()
        return ShowBinaryLogStatus()
    if parser.accept_word("MASTER"):
        if parser.expect_word("LOGS", "STATUS") == "LOGS":
            parser.expect_end()
            return ShowBinaryLogs()
        parser.expect_end()
        return ShowBinaryLogStatus()
    if parser.accept_word("BINLOG"):
        if parser.accept_word("STATUS"):
            parser.expect_end()
            return ShowBinaryLogStatus()
        parser.expect_word("EVENTS")
        return _show_binlog_events(parser)
    if parser.accept_word("REPLICAS"):
        parser.expect_end()
        return ShowReplicas()
    if parser.accept_word("SLAVE", "REPLICA"):
        parser.expect_word("HOSTS")
        parser.expect_end()
        return ShowReplicas()
    raise sqltokens.Unparsable("unsupported SHOW")


def _show_binlog_events(parser: _Parser) -> ShowBinlogEvents:
    filename = parser.string() if parser.accept_word("IN") else None
    position = parser.integer() if parser.accept_word("FROM") else None
    offset = 0
    limit: int | None = None
    if parser.accept_word("LIMIT"):
        limit = parser.integer()
        if parser.accept_punct(","):
            offset, limit = limit, parser.integer()
        elif parser.accept_word("OFFSET"):
            offset = parser.integer()
    parser.expect_end()
    return ShowBinlogEvents(filename, position, offset, limit)


def _kill(parser: _Parser) -> Kill:
    query_only = parser.accept_word("CONNECTION", "QUERY") == "QUERY"
    connection_id = parser.integer()
    parser.expect_end()
    return Kill(connection_id, query_only)


def classify(text: str) -> Statement:
    """Describe one SQL statement; never raises."""
    try:
        tokens = sqltokens.tokenize(text)
        while tokens and tokens[-1].kind is sqltokens.Kind.PUNCT and tokens[-1].value == ";":
            tokens.pop()
        if any(token.kind is sqltokens.Kind.PUNCT and token.value == ";" for token in tokens):
            return Unknown(text)
        parser = _Parser(text, tokens)
        verb = parser.accept_word("SELECT", "SET", "SHOW", "KILL")
        if verb == "SELECT":
            return _select(parser)
        if verb == "SET":
            return _set(parser)
        if verb == "SHOW":
            return _show(parser)
        if verb == "KILL":
            return _kill(parser)
    except (sqltokens.Unparsable, ValueError):  # ValueError: int() of a number with thousands of digits
        pass
    return Unknown(text)
