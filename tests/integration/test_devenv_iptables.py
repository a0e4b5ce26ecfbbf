"""The private iptables the partition tests use (tests/support/iptables.py): provisioned from
Debian's packages into a cache of its own, runnable, repaired from its kept debs when its tree
is damaged, and its rules act in a network namespace only."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support import iptables


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, (argv, done.stderr)
    return done.stdout


def test_provisioned_iptables_runs_and_a_damaged_tree_is_repaired(tmp_path: Path) -> None:
    argv = iptables.provision(tmp_path)
    assert "nf_tables" in _run([*argv, "--version"])
    libxtables = next((tmp_path / "iptables" / "tree").rglob("libxtables.so.*"))
    libxtables.unlink()
    assert iptables.provision(tmp_path) == argv
    assert "nf_tables" in _run([*argv, "--version"])


def test_rules_written_in_a_namespace_stay_in_it() -> None:
    argv = iptables.provision()
    netns = f"kbipt{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
    _run(["ip", "netns", "add", netns])
    try:
        within = ["ip", "netns", "exec", netns, *argv]
        _run([*within, "-A", "INPUT", "-s", "10.9.9.9", "-j", "DROP"])
        assert "-A INPUT -s 10.9.9.9/32 -j DROP" in _run([*within, "-S"])
        assert "10.9.9.9" not in _run([*argv, "-S"])  # the root namespace's rules
        _run([*within, "-F", "INPUT"])
        assert "10.9.9.9" not in _run([*within, "-S"])
    finally:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
