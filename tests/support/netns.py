"""Kingbus members in their own network namespaces, for real network partitions.

Layout (all made here, removed at the end; needs root and `ip`; the firewall rules are written
by a private `iptables`, provisioned by `tests.support.iptables`):

    root netns --veth-- [hub netns: bridge] --veth-- netns m0 (10.x.y.1)
      10.x.y.254                             --veth-- netns m1 (10.x.y.2)
                                             --veth-- netns m2 (10.x.y.3)

The bridge lives in a namespace of its own, so that the root namespace's firewall (a Docker
engine sets FORWARD to DROP) never sees the members' traffic. The test process reaches every
member from the root namespace through 10.x.y.254; `partition(i)` drops, inside member i's
namespace, everything to and from the other members (the root's address stays reachable,
so its status can be read while it is cut off), and `heal(i)` removes that again.
Each namespace has its own ports, so every member uses the same ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.support import iptables


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")


@dataclass
class Namespaces:
    tag: str
    subnet: str  # the first three octets, e.g. "10.201.7"
    size: int
    iptables: list[str]  # the argv prefix of `iptables` (tests.support.iptables)

    @property
    def hub(self) -> str:
        return f"{self.tag}-hub"

    def name(self, i: int) -> str:
        return f"{self.tag}-m{i}"

    def address(self, i: int) -> str:
        return f"{self.subnet}.{i + 1}"

    @property
    def root_address(self) -> str:
        return f"{self.subnet}.254"

    def launcher(self, i: int) -> list[str]:
        """What runs `kingbus-node` inside member i's namespace (`ip netns exec` execs it, so
        the pid is the node's own)."""
        return ["ip", "netns", "exec", self.name(i), sys.executable, "-m", "kingbus.cli.node"]

    def create(self) -> None:
        _run("ip", "netns", "add", self.hub)
        hub = ("ip", "netns", "exec", self.hub)
        _run(*hub, "ip", "link", "add", "br0", "type", "bridge")
        _run(*hub, "ip", "link", "set", "br0", "up")
        _run(*hub, "ip", "link", "set", "lo", "up")
        self._plug(None, f"{self.tag}-r", self.root_address)
        for i in range(self.size):
            _run("ip", "netns", "add", self.name(i))
            self._plug(self.name(i), f"{self.tag}-{i}", self.address(i))

    def _plug(self, netns: str | None, host_end: str, address: str) -> None:
        """A veth pair: one end on the hub's bridge, the other (eth0, or `host_end` itself in
        the root namespace) with `address`."""
        hub_end = f"{host_end}h"
        inner = "eth0" if netns else host_end
        _run("ip", "link", "add", host_end, "type", "veth", "peer", "name", hub_end)
        _run("ip", "link", "set", hub_end, "netns", self.hub)
        _run("ip", "netns", "exec", self.hub, "ip", "link", "set", hub_end, "master", "br0", "up")
        if netns:
            _run("ip", "link", "set", host_end, "netns", netns, "name", inner)
        within = ("ip", "netns", "exec", netns) if netns else ()
        _run(*within, "ip", "addr", "add", f"{address}/24", "dev", inner)
        _run(*within, "ip", "link", "set", inner, "up")
        if netns:
            _run(*within, "ip", "link", "set", "lo", "up")

    def partition(self, i: int) -> None:
        within = ("ip", "netns", "exec", self.name(i), *self.iptables)
        for j in range(self.size):
            if j != i:
                _run(*within, "-A", "INPUT", "-s", self.address(j), "-j", "DROP")
                _run(*within, "-A", "OUTPUT", "-d", self.address(j), "-j", "DROP")

    def heal(self, i: int) -> None:
        within = ("ip", "netns", "exec", self.name(i), *self.iptables)
        _run(*within, "-F", "INPUT")
        _run(*within, "-F", "OUTPUT")

    def remove(self) -> None:
        """Deletes what this tag names, made here or not; deleting a namespace deletes its
        veth ends, and with them their peers."""
        subprocess.run(["ip", "link", "del", f"{self.tag}-r"], capture_output=True, check=False)
        for netns in [*(self.name(i) for i in range(self.size)), self.hub]:
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)


@contextmanager
def namespaces(size: int) -> Iterator[Namespaces]:
    """`size` member namespaces and the hub, named and numbered after this process (so that
    runs side by side do not collide), removed at the end whatever happens."""
    pid = os.getpid()
    spaces = Namespaces(
        tag=f"kb{pid % 100000}",
        subnet=f"10.{200 + pid % 50}.{pid % 250}",
        size=size,
        iptables=iptables.provision(),
    )
    spaces.remove()  # left over by a run of a process with the same number that was killed
    try:
        spaces.create()
        yield spaces
    finally:
        spaces.remove()
