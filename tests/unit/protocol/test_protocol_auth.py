"""Scrambles (checked against PyMySQL's client implementation) and the auth state machine."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pymysql._auth
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kingbus.protocol import auth, responses, scrambles
from kingbus.protocol.auth import Accept, Authenticator, Credentials, Reject
from kingbus.protocol.constants import SERVER_CAPABILITIES, Capability
from kingbus.protocol.errors import MySQLError
from kingbus.protocol.handshake import HandshakeResponse

NONCE = b"0123456789abcdefghij"
SWITCH_NONCE = b"ABCDEFGHIJKLMNOPQRST"
PASSWORDS = [b"secret", b"p\xc3\xa4ssw\xc3\xb6rd", b"x" * 100, b"\x00\x01"]


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return scrambles.generate_rsa_key()


@pytest.mark.parametrize("password", PASSWORDS)
def test_scrambles_match_pymysql(password: bytes) -> None:
    assert scrambles.scramble_caching_sha2(password, NONCE) == pymysql._auth.scramble_caching_sha2(
        password, NONCE
    )
    assert scrambles.scramble_native(password, NONCE) == pymysql._auth.scramble_native_password(
        password, NONCE
    )


def test_scramble_vector_computed_by_hand() -> None:
    # Independent of both implementations: the formula written out with hashlib.
    password = b"secret"
    stage1 = hashlib.sha256(password).digest()
    mask = hashlib.sha256(hashlib.sha256(stage1).digest() + NONCE).digest()
    expected = bytes(a ^ b for a, b in zip(stage1, mask, strict=True))
    assert scrambles.scramble_caching_sha2(password, NONCE) == expected
    assert scrambles.caching_sha2_stage2(password) == hashlib.sha256(stage1).digest()
    assert scrambles.native_stage2(password) == hashlib.sha1(hashlib.sha1(password).digest()).digest()
    assert scrambles.scramble_caching_sha2(b"", NONCE) == b""
    assert scrambles.scramble_native(b"", NONCE) == b""


@pytest.mark.parametrize("password", PASSWORDS)
def test_verify_accepts_the_right_password_only(password: bytes) -> None:
    stage2 = scrambles.caching_sha2_stage2(password)
    assert scrambles.verify_caching_sha2(pymysql._auth.scramble_caching_sha2(password, NONCE), NONCE, stage2)
    assert not scrambles.verify_caching_sha2(
        pymysql._auth.scramble_caching_sha2(b"wrong", NONCE), NONCE, stage2
    )
    assert not scrambles.verify_caching_sha2(
        pymysql._auth.scramble_caching_sha2(password, SWITCH_NONCE), NONCE, stage2
    )
    assert not scrambles.verify_caching_sha2(b"short", NONCE, stage2)
    native = scrambles.native_stage2(password)
    assert scrambles.verify_native(pymysql._auth.scramble_native_password(password, NONCE), NONCE, native)
    assert not scrambles.verify_native(pymysql._auth.scramble_native_password(b"wrong", NONCE), NONCE, native)


def test_rsa_exchange_with_pymysql_client_side(rsa_key: rsa.RSAPrivateKey) -> None:
    pem = scrambles.public_key_pem(rsa_key)
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    ciphertext = pymysql._auth.sha2_rsa_encrypt(b"secret", NONCE, pem)
    assert scrambles.rsa_decrypt_password(ciphertext, NONCE, rsa_key) == b"secret"
    ours = scrambles.rsa_encrypt_password(b"secret", NONCE, pem)
    assert scrambles.rsa_decrypt_password(ours, NONCE, rsa_key) == b"secret"
    assert (
        scrambles.rsa_decrypt_password(ours, SWITCH_NONCE, rsa_key) is None
    )  # wrong nonce: no NUL at the end
    assert scrambles.rsa_decrypt_password(b"\x00" * 256, NONCE, rsa_key) is None
    assert scrambles.rsa_decrypt_password(b"short", NONCE, rsa_key) is None


def test_load_rsa_key(rsa_key: rsa.RSAPrivateKey) -> None:
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert scrambles.public_key_pem(scrambles.load_rsa_key(pem)) == scrambles.public_key_pem(rsa_key)


def test_xor_with_nonce_repeats_the_nonce() -> None:
    assert scrambles.xor_with_nonce(b"\x00" * 45, NONCE) == (NONCE * 3)[:45]
    with pytest.raises(ValueError):
        scrambles.xor_with_nonce(b"x", b"")


def test_credentials() -> None:
    creds = Credentials.from_password("secret")
    assert creds.sha2_stage2 == scrambles.caching_sha2_stage2(b"secret")
    assert creds.native_stage2 == scrambles.native_stage2(b"secret")
    assert creds.matches(b"secret") and not creds.matches(b"other") and not creds.matches(b"")
    assert Credentials.from_password("secret", allow_native=False).native_stage2 is None
    empty = Credentials.from_password("")
    assert not empty.has_password and empty.matches(b"") and not empty.matches(b"x")
    with pytest.raises(ValueError):
        Credentials(b"short")
    with pytest.raises(ValueError):
        Credentials(b"x" * 32, b"short")
    assert repr(creds) == "Credentials()"  # no hash material in logs


# -- state machine ----------------------------------------------------------------------

CLIENT_CAPS = (
    Capability.PROTOCOL_41
    | Capability.SECURE_CONNECTION
    | Capability.PLUGIN_AUTH
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
    | Capability.DEPRECATE_EOF
)
NEGOTIATED = SERVER_CAPABILITIES & CLIENT_CAPS
OK = responses.encode_ok(responses.Ok(), NEGOTIATED)
USERS = {
    "repl": Credentials.from_password("secret"),
    "nopass": Credentials.from_password(""),
    "sha2only": Credentials.from_password("secret", allow_native=False),
}


def make(
    *, tls: bool = False, fast_path: bool = True, rsa_key: rsa.RSAPrivateKey | None = None
) -> Authenticator:
    fixed: Callable[[int], bytes] = lambda n: SWITCH_NONCE  # noqa: E731 - deterministic "randomness"
    return Authenticator(
        users=USERS,
        nonce=NONCE,
        host="10.0.0.7",
        tls=tls,
        rsa_key=rsa_key,
        fast_path=fast_path,
        random_bytes=fixed,
    )


def response(
    user: str, data: bytes, plugin: str | None = "caching_sha2_password", caps: Capability = CLIENT_CAPS
) -> HandshakeResponse:
    return HandshakeResponse(caps, 1 << 24, 255, user, data, None, plugin)


def denied(user: str, yes: bool) -> MySQLError:
    return MySQLError(
        1045,
        "28000",
        f"Access denied for user '{user}'@'10.0.0.7' (using password: {'YES' if yes else 'NO'})",
    )


def assert_rejected(step: auth.AuthStep, user: str, *, using_password: bool) -> None:
    assert step.outcome == Reject(denied(user, using_password))
    assert step.send == (denied(user, using_password).encode(NEGOTIATED),)


def test_fast_path() -> None:
    authenticator = make()
    step = authenticator.start(response("repl", pymysql._auth.scramble_caching_sha2(b"secret", NONCE)))
    assert step.send == (b"\x01\x03", OK)
    assert step.outcome == Accept("repl", "caching_sha2_password")
    assert step.done
    with pytest.raises(RuntimeError):
        authenticator.receive(b"")
    with pytest.raises(RuntimeError):
        authenticator.start(response("repl", b""))


def test_fast_path_wrong_password() -> None:
    step = make().start(response("repl", pymysql._auth.scramble_caching_sha2(b"nope", NONCE)))
    assert_rejected(step, "repl", using_password=True)


@pytest.mark.parametrize("data", [b"", b"\x00"])
def test_empty_password(data: bytes) -> None:
    step = make().start(response("nopass", data))
    assert step.send == (OK,)
    assert step.outcome == Accept("nopass", "caching_sha2_password")
    assert_rejected(make().start(response("repl", data)), "repl", using_password=False)


def test_password_for_a_passwordless_account_is_rejected() -> None:
    step = make().start(response("nopass", pymysql._auth.scramble_caching_sha2(b"x", NONCE)))
    assert_rejected(step, "nopass", using_password=True)


def test_scramble_of_wrong_length_is_rejected() -> None:
    assert_rejected(make().start(response("repl", b"x" * 20)), "repl", using_password=True)


def test_unknown_user_is_denied_like_a_wrong_password() -> None:
    step = make().start(response("ghost", pymysql._auth.scramble_caching_sha2(b"secret", NONCE)))
    assert_rejected(step, "ghost", using_password=True)
    assert_rejected(make().start(response("ghost", b"")), "ghost", using_password=False)


def test_full_auth_over_tls_cleartext() -> None:
    authenticator = make(tls=True, fast_path=False)
    step = authenticator.start(response("repl", pymysql._auth.scramble_caching_sha2(b"secret", NONCE)))
    assert step == auth.AuthStep((b"\x01\x04",))
    step = authenticator.receive(b"secret\x00")
    assert step.send == (OK,)
    assert step.outcome == Accept("repl", "caching_sha2_password")


def test_full_auth_over_tls_wrong_cleartext() -> None:
    authenticator = make(tls=True, fast_path=False)
    authenticator.start(response("repl", b"x" * 32))
    assert_rejected(authenticator.receive(b"wrong\x00"), "repl", using_password=True)
    authenticator = make(tls=True, fast_path=False)
    authenticator.start(response("repl", b"x" * 32))
    assert_rejected(authenticator.receive(b"\x00"), "repl", using_password=False)


def test_full_auth_with_rsa_key_request(rsa_key: rsa.RSAPrivateKey) -> None:
    authenticator = make(fast_path=False, rsa_key=rsa_key)
    assert authenticator.start(response("repl", b"x" * 32)).send == (b"\x01\x04",)
    step = authenticator.receive(b"\x02")
    assert step.outcome is None
    assert step.send == (b"\x01" + scrambles.public_key_pem(rsa_key),)
    pem = step.send[0][1:]
    step = authenticator.receive(pymysql._auth.sha2_rsa_encrypt(b"secret", NONCE, pem))
    assert step.send == (OK,)
    assert step.outcome == Accept("repl", "caching_sha2_password")


def test_full_auth_rsa_wrong_password_or_garbage(rsa_key: rsa.RSAPrivateKey) -> None:
    pem = scrambles.public_key_pem(rsa_key)
    for ciphertext in (pymysql._auth.sha2_rsa_encrypt(b"wrong", NONCE, pem), b"garbage"):
        authenticator = make(fast_path=False, rsa_key=rsa_key)
        authenticator.start(response("repl", b"x" * 32))
        authenticator.receive(b"\x02")
        assert_rejected(authenticator.receive(ciphertext), "repl", using_password=True)


def test_full_auth_client_that_already_has_the_key(rsa_key: rsa.RSAPrivateKey) -> None:
    authenticator = make(fast_path=False, rsa_key=rsa_key)
    authenticator.start(response("repl", b"x" * 32))
    ciphertext = pymysql._auth.sha2_rsa_encrypt(b"secret", NONCE, scrambles.public_key_pem(rsa_key))
    assert authenticator.receive(ciphertext).outcome == Accept("repl", "caching_sha2_password")


def test_full_auth_without_tls_or_key_is_refused() -> None:
    authenticator = make(fast_path=False)
    authenticator.start(response("repl", b"x" * 32))
    assert_rejected(authenticator.receive(b"\x02"), "repl", using_password=True)
    # Cleartext over an insecure connection is never accepted.
    authenticator = make(fast_path=False)
    authenticator.start(response("repl", b"x" * 32))
    assert_rejected(authenticator.receive(b"secret\x00"), "repl", using_password=True)


def test_auth_switch_from_another_plugin() -> None:
    authenticator = make()
    step = authenticator.start(response("repl", b"whatever", plugin="sha256_password"))
    assert step.outcome is None
    assert step.send == (b"\xfe" + b"caching_sha2_password\x00" + SWITCH_NONCE + b"\x00",)
    assert authenticator.nonce == SWITCH_NONCE
    step = authenticator.receive(pymysql._auth.scramble_caching_sha2(b"secret", SWITCH_NONCE))
    assert step.send == (b"\x01\x03", OK)
    assert step.outcome == Accept("repl", "caching_sha2_password")


def test_auth_switch_answered_with_the_old_nonce_fails() -> None:
    authenticator = make()
    authenticator.start(response("repl", b"", plugin="mysql_clear_password"))
    step = authenticator.receive(pymysql._auth.scramble_caching_sha2(b"secret", NONCE))
    assert_rejected(step, "repl", using_password=True)


def test_native_password_when_the_client_asks_and_the_account_allows() -> None:
    step = make().start(
        response("repl", pymysql._auth.scramble_native_password(b"secret", NONCE), "mysql_native_password")
    )
    assert step.send == (OK,)
    assert step.outcome == Accept("repl", "mysql_native_password")
    wrong = make().start(
        response("repl", pymysql._auth.scramble_native_password(b"bad", NONCE), "mysql_native_password")
    )
    assert_rejected(wrong, "repl", using_password=True)
    assert make().start(response("nopass", b"", "mysql_native_password")).outcome == Accept(
        "nopass", "mysql_native_password"
    )
    assert_rejected(
        make().start(response("repl", b"", "mysql_native_password")), "repl", using_password=False
    )


def test_native_requested_for_a_sha2_only_account_switches() -> None:
    authenticator = make()
    step = authenticator.start(response("sha2only", b"x" * 20, "mysql_native_password"))
    assert step.send[0].startswith(b"\xfecaching_sha2_password\x00")
    step = authenticator.receive(pymysql._auth.scramble_caching_sha2(b"secret", SWITCH_NONCE))
    assert step.outcome == Accept("sha2only", "caching_sha2_password")


def test_client_without_plugin_auth_uses_native_or_is_refused() -> None:
    caps = Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION
    scramble = pymysql._auth.scramble_native_password(b"secret", NONCE)
    assert make().start(response("repl", scramble, None, caps)).outcome == Accept(
        "repl", "mysql_native_password"
    )
    step = make().start(response("sha2only", scramble, None, caps))
    assert isinstance(step.outcome, Reject)
    assert step.outcome.error.code == 1251


# ---- which accounts take the fast path (mysql.fast_auth)


def test_fast_auth_always_serves_every_account_from_the_start() -> None:
    cache = auth.FastAuthCache("always")
    assert cache.allows_fast_path("repl") and cache.allows_fast_path("anyone")


def test_fast_auth_after_full_auth_caches_only_caching_sha2_logins() -> None:
    cache = auth.FastAuthCache("after_full_auth")
    assert not cache.allows_fast_path("repl")
    cache.remember(auth.Accept("repl", auth.MYSQL_NATIVE_PASSWORD))
    assert not cache.allows_fast_path("repl"), "MySQL's cache holds caching_sha2 accounts only"
    cache.remember(auth.Accept("repl", auth.CACHING_SHA2_PASSWORD))
    assert cache.allows_fast_path("repl")
    assert not cache.allows_fast_path("other")


def test_fast_auth_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="always, after_full_auth"):
        auth.FastAuthCache("sometimes")
