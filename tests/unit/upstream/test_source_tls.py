"""`source.tls` modes -> PyMySQL's connection arguments (the real handshakes are tested against
MySQL 9.7 in tests/integration/test_source_settings.py)."""

from __future__ import annotations

import ssl

import pytest

from kingbus.server import tlsmaterial
from kingbus.upstream.client import _tls_arguments


def test_preferred_is_pymysqls_default_and_disabled_turns_tls_off() -> None:
    assert _tls_arguments("preferred") == {}
    assert _tls_arguments("disabled") == {"ssl_disabled": True}


def test_required_encrypts_without_checking_the_certificate() -> None:
    context = _tls_arguments("required")["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname


def test_verify_ca_checks_the_chain_against_the_given_ca_only() -> None:
    ca, _key = tlsmaterial.self_signed("test CA")
    context = _tls_arguments("verify_ca", ca.decode())["ssl"]
    assert context.verify_mode == ssl.CERT_REQUIRED and not context.check_hostname
    assert context.cert_store_stats()["x509"] == 1  # that certificate, not the system's CAs


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown source TLS mode"):
        _tls_arguments("verify_identity")
