"""iptables for the network-partition tests, from Debian's package unpacked into the cache
(`kingbus.devenv.debtree`), never installed: a fresh Debian 12 machine has none, and the
tests must not depend on what the host happens to have.  The kernel's nf_tables does the
work; `iptables` (the nft variant, Debian's default) only writes the rules."""

from __future__ import annotations

from pathlib import Path

from kingbus.devenv.debtree import (
    DebTree,
    ProvisioningError,
    default_cache_dir,
    download_closure,
    file_lock,
    run,
    unpack,
)


def _argv(root: Path) -> list[str]:
    tree = DebTree(root)
    # `env` carries the extensions' folder through `ip netns exec`; run through the loader,
    # the multi-call binary sees its own name and takes the command from its first argument.
    multi = root / "usr" / "sbin" / "xtables-nft-multi"
    return ["env", f"XTABLES_LIBDIR={tree.libdir / 'xtables'}", *tree.command(multi), "iptables"]


def provision(cache_dir: Path | None = None) -> list[str]:
    """The argv prefix that runs the private `iptables` (append its arguments; prefix it with
    `ip netns exec NAME` to act in a namespace), building the tree on first use."""
    base = (cache_dir or default_cache_dir()) / "iptables"
    debs, root = base / "debs", base / "tree"
    with file_lock(base / ".lock"):
        if not (debs / ".complete").exists():
            download_closure(["iptables"], base, debs)
            (debs / ".complete").touch()
        if not (root / ".complete").exists():
            unpack(debs, root)
            (root / ".complete").touch()
        argv = _argv(root)
        try:
            version = run([*argv, "--version"], what="iptables --version")
        except (ProvisioningError, OSError):
            unpack(debs, root)  # a damaged tree: again from the kept debs, without network
            version = run([*argv, "--version"], what="iptables --version")
        if "nf_tables" not in version:
            raise ProvisioningError(f"{argv} is not iptables with the nf_tables backend: {version!r}")
        return argv
