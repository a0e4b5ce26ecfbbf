"""Encrypting the source password that travels in the Raft log.

Every member must be able to start the syncer when it becomes leader, so the source
password is replicated; but the Raft journal and snapshots are files on disk, so it is never
stored in clear.  It is encrypted with a key derived from the cluster's Raft password (which
every member already holds and which pysyncobj uses to encrypt its transport).
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

_CONTEXT = b"kingbus/source-password/v1"


def _fernet(raft_password: str) -> Fernet:
    key = hashlib.pbkdf2_hmac("sha256", raft_password.encode(), _CONTEXT, 100_000)
    return Fernet(base64.urlsafe_b64encode(key))


class SecretBox:
    def __init__(self, raft_password: str) -> None:
        self._fernet = _fernet(raft_password)

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken:
            raise ValueError(
                "the source password cannot be decrypted: is raft.password_file the same on every member?"
            ) from None
