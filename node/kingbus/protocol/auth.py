"""Authentication as a pure state machine: client packets in, packets to send and a verdict out.

Theory of operation
-------------------
The adapter builds an :class:`Authenticator` with the user table, the nonce it put in the
Handshake v10, the peer's host (for the error message) and whether the connection is TLS.
It passes the decoded HandshakeResponse41 to :meth:`Authenticator.start` and each later
client payload to :meth:`Authenticator.receive`. Each call returns an :class:`AuthStep`:
payloads to send, in order (the adapter frames them, continuing the sequence ids), and an
``outcome`` that stays ``None`` while the exchange goes on and ends as :class:`Accept` or
:class:`Reject`. The final OK (on accept) or ERR (on reject) is already among the payloads.

Paths (``caching_sha2_password`` is the server's plugin; mysql_native_password is used only
when the client proposes it and the account has a native hash):

* **fast path** -- a 32-byte scramble checked against the stored ``stage2``; success sends
  ``0x01 0x03`` then OK. Because stage2 is stored permanently, this always works; MySQL takes
  it only for cached users. ``fast_path=False`` mimics a cold cache (see
  :class:`FastAuthCache`, which decides it per account) and forces:
* **full authentication** -- send ``0x01 0x04``. Over TLS the client answers with its
  password and a NUL. Without TLS it either asks for the public key (``0x02``; we answer
  ``0x01`` + PEM) or, holding the key already, sends the RSA-OAEP ciphertext of
  ``(password || NUL) XOR nonce`` directly.
* **empty password** -- an empty response (or a lone NUL) is accepted only for an account
  without a password.
* **auth switch** -- a client proposing any other plugin (or native for an account without
  a native hash) gets ``0xFE``, ``caching_sha2_password\\0``, a fresh 20-byte nonce and a
  trailing NUL, which the stock client requires; its answer is handled as above.

Unknown users are rejected with the same ER_ACCESS_DENIED_ERROR as a wrong password.
"""

from __future__ import annotations

import dataclasses
import enum
import hmac
import os
from collections.abc import Callable, Mapping

from cryptography.hazmat.primitives.asymmetric import rsa

from kingbus.protocol import responses, scrambles, wire
from kingbus.protocol.constants import (
    CACHING_SHA2_PASSWORD,
    MYSQL_NATIVE_PASSWORD,
    SERVER_CAPABILITIES,
    Capability,
)
from kingbus.protocol.errors import ER_NOT_SUPPORTED_AUTH_MODE, MySQLError, access_denied
from kingbus.protocol.handshake import HandshakeResponse, make_nonce

AUTH_MORE_DATA = 0x01
AUTH_SWITCH_REQUEST = 0xFE
FAST_AUTH_SUCCESS = b"\x01\x03"
PERFORM_FULL_AUTHENTICATION = b"\x01\x04"
REQUEST_PUBLIC_KEY = b"\x02"


@dataclasses.dataclass(frozen=True, slots=True)
class Credentials:
    """What the server stores for one account: never the password itself.

    ``sha2_stage2`` is ``SHA256(SHA256(password))`` (empty for an account without password);
    ``native_stage2`` is ``SHA1(SHA1(password))``, or ``None`` to refuse mysql_native_password.
    """

    # Hidden from repr: a stored hash still allows offline guessing, so it stays out of logs.
    sha2_stage2: bytes = dataclasses.field(repr=False)
    native_stage2: bytes | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        if len(self.sha2_stage2) not in (0, 32):
            raise ValueError("sha2_stage2 must be 32 bytes (or empty for no password)")
        if self.native_stage2 is not None and len(self.native_stage2) not in (0, 20):
            raise ValueError("native_stage2 must be 20 bytes (or empty for no password)")

    @classmethod
    def from_password(cls, password: str | bytes, *, allow_native: bool = True) -> Credentials:
        raw = password.encode("utf-8") if isinstance(password, str) else password
        if not raw:
            return cls(b"", b"" if allow_native else None)
        native = scrambles.native_stage2(raw) if allow_native else None
        return cls(scrambles.caching_sha2_stage2(raw), native)

    @property
    def has_password(self) -> bool:
        return bool(self.sha2_stage2)

    def matches(self, password: bytes) -> bool:
        """Check a cleartext password (full authentication)."""
        if not password:
            return not self.has_password
        return self.has_password and hmac.compare_digest(
            scrambles.caching_sha2_stage2(password), self.sha2_stage2
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Accept:
    user: str
    plugin: str


@dataclasses.dataclass(frozen=True, slots=True)
class Reject:
    error: MySQLError


@dataclasses.dataclass(frozen=True, slots=True)
class AuthStep:
    """Payloads to send now, and the verdict once there is one."""

    send: tuple[bytes, ...]
    outcome: Accept | Reject | None = None

    @property
    def done(self) -> bool:
        return self.outcome is not None


FAST_AUTH_MODES = ("always", "after_full_auth")


class FastAuthCache:
    """Which accounts the caching_sha2 fast path serves.

    ``always`` (a node's default): every account, from the first connection on, because the
    node keeps ``stage2`` permanently.  ``after_full_auth`` behaves like a MySQL source, whose
    cache is empty after a restart: an account takes the fast path only once it has completed
    a full authentication (over TLS or with the RSA key) since the server started, so a
    replica without TLS and without GET_SOURCE_PUBLIC_KEY fails with the client's own 2061
    until another connection of the same account has authenticated fully.
    """

    def __init__(self, mode: str = "always") -> None:
        if mode not in FAST_AUTH_MODES:
            raise ValueError(f"fast auth mode must be one of {', '.join(FAST_AUTH_MODES)}, got {mode!r}")
        self.mode = mode
        self._cached: set[str] = set()

    def allows_fast_path(self, user: str) -> bool:
        return self.mode == "always" or user in self._cached

    def remember(self, accepted: Accept) -> None:
        """Record an accepted login; MySQL caches only caching_sha2_password accounts."""
        if accepted.plugin == CACHING_SHA2_PASSWORD:
            self._cached.add(accepted.user)


class _State(enum.Enum):
    INITIAL = "initial"
    AWAIT_SWITCH_RESPONSE = "await-switch-response"
    AWAIT_FULL_AUTH = "await-full-auth"
    AWAIT_RSA_CIPHERTEXT = "await-rsa-ciphertext"
    DONE = "done"


def _is_empty_response(data: bytes) -> bool:
    return data in (b"", b"\x00")


class Authenticator:
    """One connection's authentication exchange (see the module docstring)."""

    def __init__(
        self,
        *,
        users: Mapping[str, Credentials],
        nonce: bytes,
        host: str,
        tls: bool,
        server_capabilities: Capability = SERVER_CAPABILITIES,
        rsa_key: rsa.RSAPrivateKey | None = None,
        fast_path: bool = True,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._users = users
        self._nonce = nonce
        self._host = host
        self._tls = tls
        self._server_caps = server_capabilities
        self._rsa_key = rsa_key
        self._fast_path = fast_path
        self._random_bytes = random_bytes
        self._state = _State.INITIAL
        self._caps = server_capabilities
        self._user = ""
        self._credentials: Credentials | None = None

    @property
    def nonce(self) -> bytes:
        """The nonce currently in force (a new one after an auth switch)."""
        return self._nonce

    def start(self, response: HandshakeResponse) -> AuthStep:
        """Handle the HandshakeResponse41."""
        if self._state is not _State.INITIAL:
            raise RuntimeError("start() called twice")
        self._caps = self._server_caps & response.capabilities
        self._user = response.username
        self._credentials = self._users.get(response.username)
        data = response.auth_response
        if self._credentials is None:
            return self._reject(using_password=not _is_empty_response(data))
        plugin = response.auth_plugin
        if plugin is None or plugin == "":
            # Without CLIENT_PLUGIN_AUTH a 4.1 client speaks mysql_native_password.
            plugin = MYSQL_NATIVE_PASSWORD
        if plugin == CACHING_SHA2_PASSWORD:
            return self._caching_sha2(data)
        if plugin == MYSQL_NATIVE_PASSWORD and self._credentials.native_stage2 is not None:
            return self._native(data)
        if not response.capabilities & Capability.PLUGIN_AUTH:
            self._state = _State.DONE
            error = MySQLError(
                ER_NOT_SUPPORTED_AUTH_MODE,
                "08004",
                "Client does not support authentication protocol requested by server; "
                "consider upgrading MySQL client",
            )
            return AuthStep((error.encode(self._caps),), Reject(error))
        self._nonce = make_nonce(self._random_bytes)
        self._state = _State.AWAIT_SWITCH_RESPONSE
        switch = bytes((AUTH_SWITCH_REQUEST,)) + wire.nul_str(CACHING_SHA2_PASSWORD) + self._nonce + b"\x00"
        return AuthStep((switch,))

    def receive(self, payload: bytes) -> AuthStep:
        """Handle the next client payload of the exchange."""
        state = self._state
        if state is _State.AWAIT_SWITCH_RESPONSE:
            return self._caching_sha2(payload)
        if state is _State.AWAIT_FULL_AUTH:
            if self._tls:
                return self._check_cleartext(payload[:-1] if payload.endswith(b"\x00") else payload)
            if payload == REQUEST_PUBLIC_KEY:
                if self._rsa_key is None:
                    return self._reject(using_password=True)
                self._state = _State.AWAIT_RSA_CIPHERTEXT
                return AuthStep((bytes((AUTH_MORE_DATA,)) + scrambles.public_key_pem(self._rsa_key),))
            return self._rsa_ciphertext(payload)
        if state is _State.AWAIT_RSA_CIPHERTEXT:
            return self._rsa_ciphertext(payload)
        raise RuntimeError(f"receive() in state {state.value}")

    # -- paths ---------------------------------------------------------------------------

    def _caching_sha2(self, data: bytes) -> AuthStep:
        assert self._credentials is not None
        if _is_empty_response(data):
            if self._credentials.has_password:
                return self._reject(using_password=False)
            return self._accept(CACHING_SHA2_PASSWORD, ())
        if not self._credentials.has_password:
            return self._reject(using_password=True)
        if len(data) != 32:
            return self._reject(using_password=True)
        if not self._fast_path:
            self._state = _State.AWAIT_FULL_AUTH
            return AuthStep((PERFORM_FULL_AUTHENTICATION,))
        if scrambles.verify_caching_sha2(data, self._nonce, self._credentials.sha2_stage2):
            return self._accept(CACHING_SHA2_PASSWORD, (FAST_AUTH_SUCCESS,))
        return self._reject(using_password=True)

    def _native(self, data: bytes) -> AuthStep:
        assert self._credentials is not None and self._credentials.native_stage2 is not None
        stage2 = self._credentials.native_stage2
        if _is_empty_response(data):
            if stage2:
                return self._reject(using_password=False)
            return self._accept(MYSQL_NATIVE_PASSWORD, ())
        if stage2 and scrambles.verify_native(data, self._nonce, stage2):
            return self._accept(MYSQL_NATIVE_PASSWORD, ())
        return self._reject(using_password=True)

    def _rsa_ciphertext(self, payload: bytes) -> AuthStep:
        if self._rsa_key is None:
            # A cleartext password over an insecure connection is refused, like mysqld does.
            return self._reject(using_password=True)
        password = scrambles.rsa_decrypt_password(payload, self._nonce, self._rsa_key)
        if password is None:
            return self._reject(using_password=True)
        return self._check_cleartext(password)

    def _check_cleartext(self, password: bytes) -> AuthStep:
        assert self._credentials is not None
        if password and self._credentials.matches(password):
            return self._accept(CACHING_SHA2_PASSWORD, ())
        return self._reject(using_password=bool(password))

    # -- verdicts ------------------------------------------------------------------------

    def _accept(self, plugin: str, before_ok: tuple[bytes, ...]) -> AuthStep:
        self._state = _State.DONE
        ok = responses.encode_ok(responses.Ok(), self._caps)
        return AuthStep((*before_ok, ok), Accept(self._user, plugin))

    def _reject(self, *, using_password: bool) -> AuthStep:
        self._state = _State.DONE
        error = access_denied(self._user, self._host, using_password=using_password)
        return AuthStep((error.encode(self._caps),), Reject(error))
