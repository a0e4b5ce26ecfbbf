"""TLS and RSA material of the replica-facing server.

A MySQL 9.7 replica with default settings refuses a source that does not offer TLS, so the
server always offers it: with the configured certificate and key, or else with a self-signed
certificate generated at start (kept in memory only; replicas that verify the server's
identity need configured files).  The RSA key answering GET_SOURCE_PUBLIC_KEY is the TLS key
when it is RSA, otherwise a fresh one.
"""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from kingbus.config import TLSConfig
from kingbus.protocol import scrambles


def self_signed(common_name: str) -> tuple[bytes, rsa.RSAPrivateKey]:
    """A one-year self-signed certificate (PEM) and its RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), key


def _context_from_pem(cert_pem: bytes, key: rsa.RSAPrivateKey) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # load_cert_chain only reads files: write both to a private temporary file and drop it.
    fd, path = tempfile.mkstemp(prefix="kingbus-tls-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(cert_pem + key_pem)
        context.load_cert_chain(path)
    finally:
        os.unlink(path)
    return context


def server_material(tls: TLSConfig | None) -> tuple[ssl.SSLContext, rsa.RSAPrivateKey]:
    """The server's TLS context and the RSA key for GET_SOURCE_PUBLIC_KEY."""
    if tls is None:
        cert_pem, key = self_signed(f"kingbus-{socket.gethostname()}")
        return _context_from_pem(cert_pem, key), key
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    loaded = serialization.load_pem_private_key(tls.key_file.read_bytes(), password=None)
    rsa_key = loaded if isinstance(loaded, rsa.RSAPrivateKey) else scrambles.generate_rsa_key()
    return context, rsa_key
