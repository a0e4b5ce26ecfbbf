"""Debian packages unpacked into a private folder and run from there, never installed.

The development environment (MySQL 9.7 servers, the test suite's firewall tool) needs programs
that the machine may not have, in versions it does not ship.  This module fetches a package's
whole dependency closure (libc included) from Debian with a private apt root, unpacks it with
``dpkg -x`` and runs its binaries through the tree's own dynamic loader, so no host library
and no host package state is used or changed:

1. The private apt root has its own ``apt.conf`` passed through ``APT_CONFIG`` (the host's
   ``apt.conf.d`` and its ``Default-Release`` never apply) and an empty dpkg status, so
   ``apt-get --download-only install`` resolves the *whole* closure into ``.deb`` files.
2. The debs are kept next to the tree, so a damaged tree is unpacked again without network.
3. Binaries run as ``<tree>/…/ld-linux-x86-64.so.2 --inhibit-cache --library-path <tree libs>``.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

SID_SOURCE = (
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main"
)


def default_cache_dir() -> Path:
    """``$KINGBUS_CACHE`` or ``~/.cache/kingbus``, the same rule as scripts/env.sh."""
    env = os.environ.get("KINGBUS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "kingbus"


class ProvisioningError(RuntimeError):
    """A private tree could not be built, or what it holds is not what was expected."""


@dataclass(frozen=True)
class DebTree:
    """Unpacked packages and how to run their binaries with the tree's own loader."""

    root: Path

    @property
    def libdir(self) -> Path:
        return self.root / "usr" / "lib" / "x86_64-linux-gnu"

    @property
    def loader(self) -> Path:
        return self.libdir / "ld-linux-x86-64.so.2"

    def command(self, binary: Path, *args: str) -> list[str]:
        """argv running ``binary`` from this tree with the tree's own loader and libraries."""
        return [str(self.loader), "--inhibit-cache", "--library-path", str(self.libdir), str(binary), *args]


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path``: parallel processes wait instead of unpacking over
    each other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run(argv: Sequence[str], *, env: dict[str, str] | None = None, what: str) -> str:
    """Runs a provisioning step; its output on success, ``ProvisioningError`` with the output's
    tail otherwise."""
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-4000:]
        raise ProvisioningError(f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n{tail}")
    return result.stdout


def download_closure(packages: Sequence[str], work: Path, debs: Path, *, source: str = SID_SOURCE) -> None:
    """Resolves and downloads ``packages`` and everything they depend on into ``debs``
    (replaced whole, so a half-finished download never looks complete)."""
    apt = work / "apt"
    shutil.rmtree(apt, ignore_errors=True)
    for sub in (
        "etc/apt/apt.conf.d",
        "etc/apt/preferences.d",
        "etc/apt/sources.list.d",
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
        "var/lib/dpkg",
        "log",
    ):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    (apt / "var/lib/dpkg/status").touch()
    (apt / "etc/apt/sources.list").write_text(source + "\n")
    # The sid snapshot's InRelease may be past its Valid-Until; the private root does not get
    # the host's apt.conf.d that disables the check, so disable it here.
    (apt / "apt.conf").write_text(
        f'Dir::Etc "{apt}/etc/apt"; Dir::State "{apt}/var/lib/apt";\n'
        f'Dir::State::status "{apt}/var/lib/dpkg/status"; Dir::Cache "{apt}/var/cache/apt";\n'
        f'Dir::Log "{apt}/log"; APT::Architecture "amd64"; APT::Architectures {{ "amd64"; }};\n'
        'Debug::NoLocking "1"; APT::Install-Recommends "0";\n'
        f'APT::Sandbox::User "{getpass.getuser()}";\n'
        'Acquire::Check-Valid-Until "false"; Acquire::Check-Date "false";\n'
    )
    env = {**os.environ, "APT_CONFIG": str(apt / "apt.conf"), "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "-qq", "update"], env=env, what="apt-get update (private apt root)")
    run(
        ["apt-get", "-qq", "-y", "--download-only", "install", *packages],
        env=env,
        what="apt-get --download-only",
    )
    downloaded = sorted((apt / "var/cache/apt/archives").glob("*.deb"))
    for package in packages:
        if not any(p.name.startswith(package + "_") for p in downloaded):
            raise ProvisioningError(f"apt downloaded no {package} package into {apt}")
    staging = work / (debs.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for deb in downloaded:
        shutil.move(deb, staging / deb.name)
    shutil.rmtree(debs, ignore_errors=True)
    staging.rename(debs)
    # The package lists (~25 MB) are only needed to resolve; the debs are the reusable part.
    shutil.rmtree(apt, ignore_errors=True)


def unpack(debs: Path, tree: Path, *, skipped_prefixes: tuple[str, ...] = ()) -> None:
    """``dpkg -x`` of every deb in ``debs`` (but those named with ``skipped_prefixes``) into
    ``tree``, replaced whole."""
    staging = tree.with_name(tree.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for deb in sorted(debs.glob("*.deb")):
        if deb.name.startswith(skipped_prefixes):
            continue
        run(["dpkg", "-x", str(deb), str(staging)], what=f"dpkg -x {deb.name}")
    shutil.rmtree(tree, ignore_errors=True)
    staging.rename(tree)
