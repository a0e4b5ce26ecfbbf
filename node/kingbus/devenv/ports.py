"""Free TCP ports on the loopback interface for throwaway test servers.

The kernel picks a free port when a socket binds to port 0; we close the socket at once and hand
the number out. Between that close and the server's own bind another process could take it, so
this is a best-effort helper: servers started on such a port must fail loudly when their bind
fails (``MySQLServer.start`` does). Ports handed out by this process are remembered so one test
session never gives the same port twice while the first owner may still be starting.
"""

from __future__ import annotations

import socket
import threading

_lock = threading.Lock()
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with _lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port: int = sock.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError(f"no free port found on {host}")


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Return ``count`` distinct free ports (see ``free_port``)."""
    return [free_port(host) for _ in range(count)]
