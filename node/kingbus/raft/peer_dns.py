"""How long a peer's resolved address is trusted: seconds, not pysyncobj's ten minutes.

pysyncobj dials a peer at ``globalDnsResolver().resolve(host)``, and that resolver keeps an
answer for 600 s (a failed lookup for 30 s). On Kubernetes a member's name
(``kb-1.kb-peers.<ns>.svc``) gets a new pod IP every time its pod is recreated, so the peers
that dial it (pysyncobj: only one side of each pair dials) kept dialling the dead pod's address
for up to ten minutes: the member came back, reached the others, but the leader never reached
it, and it stayed behind, not Ready. Found by the kind tier (e2e/kind), where a force-deleted
member stayed disconnected from its leader until the test gave up.

A lookup happens only when a connection is being (re)established, so a short cache costs one
`getaddrinfo` per dial attempt to a missing peer and nothing while peers are connected.
"""

from __future__ import annotations

from typing import Final

from pysyncobj.dns_resolver import globalDnsResolver

# A recreated pod is dialled at its new address within a couple of retry periods.
CACHE_SECONDS: Final = 2.0
# A name that does not resolve yet (its pod not yet scheduled) is asked again this soon.
FAILED_LOOKUP_CACHE_SECONDS: Final = 1.0


def install() -> None:
    """Shorten pysyncobj's process-wide peer address cache (idempotent)."""
    globalDnsResolver().setTimeouts(CACHE_SECONDS, FAILED_LOOKUP_CACHE_SECONDS)
