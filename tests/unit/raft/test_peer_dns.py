"""A peer's address is looked up again within seconds (kingbus.raft.peer_dns).

The seam is `socket.getaddrinfo`, the only thing pysyncobj's resolver asks: it answers with the
old pod IP, then with the new one, as cluster DNS does when a member's pod is recreated.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from pysyncobj.dns_resolver import DnsCachingResolver, globalDnsResolver

from kingbus.raft import peer_dns


def _answer(ip: str) -> list[tuple[Any, ...]]:
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, 0))]


def test_a_recreated_members_new_address_is_dialled_within_the_cache_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("pysyncobj.dns_resolver.monotonicTime", lambda: clock[0])
    current = ["10.244.0.6"]
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port: _answer(current[0]))
    # pysyncobj's own default would keep the old address for ten minutes.
    stock = DnsCachingResolver(cacheTime=600.0, failCacheTime=30.0)
    assert stock.resolve("kb-1.kb-peers.ns.svc") == "10.244.0.6"

    peer_dns.install()
    resolver = globalDnsResolver()
    assert resolver.resolve("kb-1.kb-peers.ns.svc") == "10.244.0.6"
    current[0] = "10.244.0.9"  # the pod was recreated
    clock[0] += peer_dns.CACHE_SECONDS + 0.1
    assert resolver.resolve("kb-1.kb-peers.ns.svc") == "10.244.0.9"
    assert stock.resolve("kb-1.kb-peers.ns.svc") == "10.244.0.6"


def test_a_name_that_did_not_resolve_is_asked_again_within_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [5000.0]
    monkeypatch.setattr("pysyncobj.dns_resolver.monotonicTime", lambda: clock[0])
    answers: list[list[tuple[Any, ...]]] = []

    def lookup(host: str, port: object) -> list[tuple[Any, ...]]:
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, "not yet")
        return answers[0]

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    peer_dns.install()
    resolver = globalDnsResolver()
    assert resolver.resolve("kb-3.kb-peers.ns.svc") is None  # its pod is not scheduled yet
    answers.append(_answer("10.244.0.12"))
    clock[0] += peer_dns.FAILED_LOOKUP_CACHE_SECONDS + 0.1
    assert resolver.resolve("kb-3.kb-peers.ns.svc") == "10.244.0.12"
