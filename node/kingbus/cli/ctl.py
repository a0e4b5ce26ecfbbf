"""kingbusctl: the admin API from a shell.

No HTTP library: argparse and urllib.request, plus ``kingbus.config.secret`` for reading
files, so it runs wherever the kingbus package is installed.  Any node's admin URL will do; followers forward
mutations to the leader.

Output is the server's JSON answer, pretty-printed (``--format table`` renders status and
member lists as text).  A 503 marked ``"retryable": true`` (no leader known yet, nothing was
attempted) is retried every second for up to ``--wait`` seconds; other answers are final.

Exit codes: 0 success, 1 the server refused (its ``error`` reason is printed to stderr),
2 usage errors (argparse), 3 the node could not be reached.

Passwords are read from files (``--password-file``), sent in the request body only, and never
printed: neither the request nor its body appears in any message.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TextIO

from kingbus.config import ConfigError, secret

DEFAULT_ADMIN: Final = "http://127.0.0.1:9595"
EXIT_REFUSED: Final = 1
EXIT_UNREACHABLE: Final = 3


class CtlError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class Client:
    """One admin endpoint; ``call`` returns the decoded JSON answer or raises CtlError."""

    def __init__(self, admin: str, *, token: str | None, timeout: float, wait: float = 0.0) -> None:
        self.admin = admin.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.wait = wait

    def call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, auth: bool = False
    ) -> Any:
        deadline = time.monotonic() + self.wait
        while True:
            try:
                return self._call_once(method, path, body, auth=auth)
            except _Retryable as exc:
                if time.monotonic() + 1.0 > deadline:
                    raise CtlError(str(exc), EXIT_REFUSED) from None
                time.sleep(1.0)

    def _call_once(self, method: str, path: str, body: Mapping[str, Any] | None, *, auth: bool) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.admin + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if auth:
            if self.token is None:
                raise CtlError(f"{method} {path} needs the admin token: pass --token-file", EXIT_REFUSED)
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return _decode(answer.read())
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            message = f"{method} {path}: HTTP {exc.code}: {_reason(payload) or exc.reason}"
            if exc.code == 503 and _retryable(payload):
                raise _Retryable(message) from None
            raise CtlError(message, EXIT_REFUSED) from None
        except (urllib.error.URLError, OSError) as exc:
            why = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise CtlError(f"cannot reach {self.admin}: {why}", EXIT_UNREACHABLE) from None


class _Retryable(Exception):
    """A 503 the server marked as safe to repeat (nothing was attempted)."""


def _retryable(payload: bytes) -> bool:
    try:
        doc = json.loads(payload)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("retryable") is True


def _decode(payload: bytes) -> Any:
    try:
        return json.loads(payload) if payload.strip() else {}
    except ValueError:
        raise CtlError("the server answered with something that is not JSON", EXIT_REFUSED) from None


def _reason(payload: bytes) -> str | None:
    try:
        doc = json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", "replace").strip()[:500] or None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return str(doc["error"])
    return None


# ---- rendering


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    cells = [[c.upper() for c in columns]] + [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(text.ljust(w) for text, w in zip(line, widths, strict=True)).rstrip() for line in cells
    )


_MEMBER_COLUMNS: Final = ("name", "role", "healthy", "raft", "admin")


def render_status_table(status: Mapping[str, Any]) -> str:
    source = status.get("source") or {}
    store = status.get("store") or {}
    where = f"{source.get('host')}:{source.get('port')}" if source.get("host") else "-"
    lines = [
        f"name:        {_cell(status.get('name'))} ({_cell(status.get('role'))}, "
        f"term {_cell(status.get('term'))})",
        f"leader:      {_cell(status.get('leader'))}",
        f"commit:      {_cell(status.get('commit_index'))}",
        f"committed:   {status.get('committed_gtid_set') or '-'}",
        f"purged:      {status.get('purged_gtid_set') or '-'}",
        f"source:      {where} user={_cell(source.get('user'))} state={_cell(source.get('state'))} "
        f"lag={_cell(source.get('lag_seconds'))}s"
        + (f" error={source['error']}" if source.get("error") else ""),
        f"store:       {_cell(store.get('bytes'))} bytes in {_cell(store.get('files'))} files",
        "",
        _table(status.get("members") or [], _MEMBER_COLUMNS),
    ]
    replicas = status.get("replicas") or []
    if replicas:
        lines += ["", _table(replicas, ("server_id", "address", "uuid", "bytes_sent", "gtid_set"))]
    return "\n".join(lines)


def _render(args: argparse.Namespace, answer: Any, out: TextIO) -> None:
    if args.format == "table" and isinstance(answer, dict):
        if args.command == "status":
            print(render_status_table(answer), file=out)
            return
        if "members" in answer and isinstance(answer["members"], list):
            print(_table(answer["members"], _MEMBER_COLUMNS), file=out)
            return
    print(json.dumps(answer, indent=2, sort_keys=False), file=out)


# ---- commands


def _run(args: argparse.Namespace, client: Client) -> Any:
    if args.command == "status":
        return client.call("GET", "/status")
    if args.command == "members":
        if args.members_command in (None, "list"):
            return client.call("GET", "/members")
        if args.members_command == "add":
            member = {"name": args.name, "raft": args.raft, "admin": args.member_admin}
            return client.call("POST", "/members", member, auth=True)
        quoted = urllib.parse.quote(args.name, safe="")
        return client.call("DELETE", f"/members/{quoted}", auth=True)
    if args.command == "source":
        if args.source_command == "set":
            try:
                password = secret(Path(args.password_file), allow_empty=True)
            except ConfigError as exc:
                raise CtlError(str(exc), EXIT_REFUSED) from None
            body: dict[str, Any] = {
                "host": args.host,
                "port": args.port,
                "user": args.user,
                "password": password,
            }
            if args.start_gtid_set is not None:
                body["start_gtid_set"] = args.start_gtid_set
            if args.semi_sync:
                body["semi_sync"] = True
            if args.tls is not None:
                body["tls"] = args.tls
            if args.tls_ca_file is not None:
                try:
                    body["tls_ca"] = Path(args.tls_ca_file).read_text()
                except OSError as exc:
                    raise CtlError(f"--tls-ca-file: {exc.strerror or exc}", EXIT_REFUSED) from None
            return client.call("PUT", "/source", body, auth=True)
        return client.call("POST", f"/source/{args.source_command}", auth=True)
    if args.command == "leader":
        return client.call("POST", "/leader/transfer", {} if args.to is None else {"to": args.to}, auth=True)
    raise AssertionError(f"unhandled command {args.command}")


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kingbusctl", description="Drive a Kingbus cluster through its admin API."
    )
    parser.add_argument(
        "--admin",
        default=environ.get("KINGBUS_ADMIN", DEFAULT_ADMIN),
        help="admin URL of any node (default: $KINGBUS_ADMIN or %(default)s)",
    )
    parser.add_argument(
        "--token-file",
        default=environ.get("KINGBUS_TOKEN_FILE"),
        help="file holding the admin bearer token, needed for changes (default: $KINGBUS_TOKEN_FILE)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for an answer")
    parser.add_argument(
        "--wait",
        type=float,
        default=10.0,
        help="seconds to keep retrying while the cluster has no known leader (default: %(default)s)",
    )
    parser.add_argument("--format", choices=("json", "table"), default="json")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("status", help="this node's view of the cluster")

    members = commands.add_parser("members", help="list, add or remove members")
    member_commands = members.add_subparsers(dest="members_command", metavar="ACTION")
    member_commands.add_parser("list", help="list members (the default)")
    add = member_commands.add_parser("add", help="add a member")
    add.add_argument("name")
    add.add_argument("--raft", required=True, metavar="HOST:PORT", help="the new member's Raft address")
    add.add_argument("--admin", required=True, dest="member_admin", metavar="URL", help="its admin URL")
    remove = member_commands.add_parser("remove", help="remove a member")
    remove.add_argument("name")

    source = commands.add_parser("source", help="configure, start or stop pulling from the MySQL source")
    source_commands = source.add_subparsers(dest="source_command", required=True, metavar="ACTION")
    set_source = source_commands.add_parser("set", help="set the source")
    set_source.add_argument("--host", required=True)
    set_source.add_argument("--port", type=int, default=3306)
    set_source.add_argument("--user", required=True)
    set_source.add_argument("--password-file", required=True, help="file holding the replication password")
    set_source.add_argument("--start-gtid-set", default=None, help="GTID set to start after (default: none)")
    set_source.add_argument(
        "--semi-sync", action="store_true", help="acknowledge to the source after Raft commit"
    )
    set_source.add_argument(
        "--tls",
        choices=("preferred", "required", "verify_ca", "disabled"),
        default=None,
        help="TLS toward the source, like SOURCE_SSL (default: preferred)",
    )
    set_source.add_argument(
        "--tls-ca-file", default=None, help="CA certificate (PEM) the source's must be signed by (verify_ca)"
    )
    source_commands.add_parser("start", help="start pulling")
    source_commands.add_parser("stop", help="stop pulling")

    leader = commands.add_parser("leader", help="leadership")
    leader_commands = leader.add_subparsers(dest="leader_command", required=True, metavar="ACTION")
    transfer = leader_commands.add_parser("transfer", help="move leadership to another member")
    transfer.add_argument("--to", default=None, metavar="NAME", help="target member (default: any)")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    environ = os.environ if environ is None else environ
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    args = build_parser(environ).parse_args(argv)
    try:
        token = None
        if args.token_file:
            try:
                token = secret(Path(args.token_file))
            except ConfigError as exc:
                raise CtlError(f"--token-file: {exc}", EXIT_REFUSED) from None
        client = Client(args.admin, token=token, timeout=args.timeout, wait=args.wait)
        answer = _run(args, client)
    except CtlError as exc:
        print(f"kingbusctl: {exc}", file=err)
        return exc.code
    _render(args, answer, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
