"""Accounts of the replica-facing server: credentials and privileges, from configuration.

Each configured user's password file is read once at start; only the derived hashes
(caching_sha2 stage2, native stage2) are kept, never the password.  An empty password file
means an account without password.

Privileges are data, not code: :class:`Accounts` maps each user to the privileges it holds,
and the session asks ``allowed(user, privilege)`` before serving a dump or a SHOW.  A user
configured without ``privileges`` gets :data:`DEFAULT_PRIVILEGES` (it may replicate and read
the status statements); ``privileges: []`` may only connect and read variables.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping

from kingbus.config import MySQLUser, secret
from kingbus.protocol.auth import Credentials


class Privilege(enum.StrEnum):
    REPLICATION_SLAVE = "REPLICATION SLAVE"  # COM_REGISTER_SLAVE, COM_BINLOG_DUMP[_GTID]
    REPLICATION_CLIENT = "REPLICATION CLIENT"  # SHOW BINARY LOGS / STATUS / BINLOG EVENTS


DEFAULT_PRIVILEGES = frozenset(Privilege)


@dataclasses.dataclass(frozen=True)
class Accounts:
    credentials: Mapping[str, Credentials]
    privileges: Mapping[str, frozenset[Privilege]]

    def allowed(self, user: str, privilege: Privilege) -> bool:
        return privilege in self.privileges.get(user, frozenset())

    @classmethod
    def from_passwords(
        cls, passwords: Mapping[str, str], privileges: Mapping[str, Iterable[Privilege]] | None = None
    ) -> Accounts:
        grants = privileges or {}
        return cls(
            {name: Credentials.from_password(password) for name, password in passwords.items()},
            {name: frozenset(grants.get(name, DEFAULT_PRIVILEGES)) for name in passwords},
        )


def load_accounts(users: Iterable[MySQLUser]) -> Accounts:
    users = list(users)
    return Accounts.from_passwords(
        {u.name: secret(u.password_file, allow_empty=True) for u in users},
        {u.name: [Privilege(p) for p in u.privileges] for u in users if u.privileges is not None},
    )
