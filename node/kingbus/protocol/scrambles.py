"""Password scrambles of ``caching_sha2_password`` and ``mysql_native_password``, and the
RSA exchange of caching_sha2's full authentication.

Both plugins are challenge/response over a 20-byte server nonce, and both let the server
store a *derived* value instead of the password:

* caching_sha2: the client sends ``SHA256(p) XOR SHA256(SHA256(SHA256(p)) || nonce)``. The
  server keeps ``stage2 = SHA256(SHA256(p))``, computes ``cand = scramble XOR
  SHA256(stage2 || nonce)`` -- which is ``SHA256(p)`` when the password is right -- and
  accepts if ``SHA256(cand) == stage2``.
* native: the same shape with SHA1 and ``SHA1(p) XOR SHA1(nonce || SHA1(SHA1(p)))``.

Full authentication sends the password itself: in clear over TLS, or without TLS as
RSA-OAEP(SHA-1) of ``(password || NUL) XOR nonce`` (the nonce repeated to the length).

The ``scramble_*`` and ``rsa_encrypt_password`` functions are the *client* side; the server
uses ``verify_*`` and ``rsa_decrypt_password``. Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
from itertools import cycle

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def caching_sha2_stage2(password: bytes) -> bytes:
    """What the server stores for caching_sha2_password: ``SHA256(SHA256(password))``."""
    return _sha256(_sha256(password))


def native_stage2(password: bytes) -> bytes:
    """What the server stores for mysql_native_password: ``SHA1(SHA1(password))``."""
    return _sha1(_sha1(password))


def scramble_caching_sha2(password: bytes, nonce: bytes) -> bytes:
    """The 32-byte fast-path response a client computes (empty password: empty response)."""
    if not password:
        return b""
    stage1 = _sha256(password)
    return _xor(stage1, _sha256(_sha256(stage1) + nonce))


def scramble_native(password: bytes, nonce: bytes) -> bytes:
    """The 20-byte mysql_native_password response (empty password: empty response)."""
    if not password:
        return b""
    stage1 = _sha1(password)
    return _xor(stage1, _sha1(nonce + _sha1(stage1)))


def verify_caching_sha2(scramble: bytes, nonce: bytes, stage2: bytes) -> bool:
    if len(scramble) != 32 or len(stage2) != 32:
        return False
    candidate = _xor(scramble, _sha256(stage2 + nonce))
    return hmac.compare_digest(_sha256(candidate), stage2)


def verify_native(scramble: bytes, nonce: bytes, stage2: bytes) -> bool:
    if len(scramble) != 20 or len(stage2) != 20:
        return False
    candidate = _xor(scramble, _sha1(nonce + stage2))
    return hmac.compare_digest(_sha1(candidate), stage2)


def xor_with_nonce(data: bytes, nonce: bytes) -> bytes:
    """``data`` XOR the nonce repeated cyclically (the RSA exchange's obfuscation)."""
    if not nonce:
        raise ValueError("empty nonce")
    return bytes(a ^ b for a, b in zip(data, cycle(nonce)))


_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


def generate_rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """A fresh key pair for the RSA exchange (mysqld generates one at startup likewise)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def load_rsa_key(pem: bytes) -> rsa.RSAPrivateKey:
    """Load an unencrypted PEM private key; ``ValueError`` if it is not an RSA key."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def public_key_pem(key: rsa.RSAPrivateKey) -> bytes:
    """The PEM (SubjectPublicKeyInfo) the server sends after the client's ``0x02`` request."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def rsa_encrypt_password(password: bytes, nonce: bytes, public_pem: bytes) -> bytes:
    """Client side of the RSA exchange."""
    public_key = serialization.load_pem_public_key(public_pem)
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return public_key.encrypt(xor_with_nonce(password + b"\x00", nonce), _OAEP)


def rsa_decrypt_password(ciphertext: bytes, nonce: bytes, key: rsa.RSAPrivateKey) -> bytes | None:
    """The password a client RSA-encrypted, or ``None`` if the ciphertext does not decrypt."""
    if len(ciphertext) != key.key_size // 8:
        return None
    try:
        plain = key.decrypt(ciphertext, _OAEP)
    except ValueError:
        return None
    password = xor_with_nonce(plain, nonce)
    # The client encrypted password + NUL; anything else did not come from a real client.
    if not password.endswith(b"\x00"):
        return None
    return password[:-1]
