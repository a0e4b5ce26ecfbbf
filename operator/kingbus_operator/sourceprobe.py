"""The only module that talks to a MySQL source: reads its ``gtid_executed``.

Used before re-pointing a cluster, to refuse a source that lacks GTIDs the cluster already
committed.  PyMySQL is blocking, so the query runs in a worker thread with short timeouts.
The password is used for the login only and never appears in an error message.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import pymysql

from kingbus_operator.facts import SourceProbe


class SourceProber(Protocol):
    async def probe(self, *, host: str, port: int, user: str, password: str) -> SourceProbe: ...


class MySQLSourceProber:
    def __init__(self, *, timeout_seconds: float = 5.0) -> None:
        self.timeout = timeout_seconds

    def _read(self, host: str, port: int, user: str, password: str) -> str:
        seconds = max(1, int(self.timeout))
        conn = pymysql.connect(
            host=host,
            port=port,
            user=user,
            password=password,
            connect_timeout=seconds,
            read_timeout=seconds,
            write_timeout=seconds,
        )
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@GLOBAL.gtid_executed")
                row = cur.fetchone()
        finally:
            conn.close()
        return str(row[0] if row else "").replace("\n", "")

    async def probe(self, *, host: str, port: int, user: str, password: str) -> SourceProbe:
        try:
            executed = await asyncio.to_thread(self._read, host, port, user, password)
        except pymysql.MySQLError as exc:
            code = exc.args[0] if exc.args else "?"
            return SourceProbe(host=host, port=port, error=f"MySQL error {code} as {user!r}")
        except OSError as exc:
            return SourceProbe(host=host, port=port, error=f"{type(exc).__name__}: {exc}")
        return SourceProbe(host=host, port=port, gtid_executed=executed)
