"""A real ``helm`` for the chart tests: ``$KINGBUS_HELM``, else the cache that
``e2e/helm/build.sh`` fills (``${KINGBUS_CACHE:-~/.cache/kingbus}/helm/<ver>/bin/helm``), else
built right now with that script (3-5 min cold). Never a skip: a helm that cannot be found or
built is an error naming the reason.

The pinned version is read from ``build.sh`` itself (one place to bump); ``$HELM_VERSION``
overrides it, as it does for the script.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "e2e" / "helm" / "build.sh"


class HelmError(RuntimeError):
    pass


def pinned_version() -> str:
    """HELM_VERSION from the environment, else the pin in e2e/helm/build.sh."""
    override = os.environ.get("HELM_VERSION")
    if override:
        return override
    match = re.search(r'^HELM_VERSION="\$\{HELM_VERSION:-(v[^}]+)\}"', BUILD_SCRIPT.read_text(), re.M)
    if not match:
        raise HelmError(f"no HELM_VERSION pin found in {BUILD_SCRIPT}")
    return match.group(1)


def cached_helm(version: str | None = None) -> Path:
    """Where e2e/helm/build.sh puts helm ``version``."""
    root = os.environ.get("KINGBUS_CACHE") or str(Path.home() / ".cache" / "kingbus")
    return Path(root) / "helm" / (version or pinned_version()) / "bin" / "helm"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def locate() -> Path | None:
    """$KINGBUS_HELM (which must then be executable), else the cache; None if neither."""
    explicit = os.environ.get("KINGBUS_HELM")
    if explicit:
        if not _executable(Path(explicit)):
            raise HelmError(f"KINGBUS_HELM={explicit} is not an executable file")
        return Path(explicit)
    cached = cached_helm()
    return cached if _executable(cached) else None


def ensure_helm() -> Path:
    """A helm binary: found, or built with e2e/helm/build.sh. Raises HelmError if that fails."""
    found = locate()
    if found is not None:
        return found
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, check=False)
    tail = "\n".join(result.stderr.splitlines()[-40:])
    if result.returncode != 0:
        raise HelmError(f"{BUILD_SCRIPT} failed ({result.returncode}):\n{tail}")
    built = cached_helm()
    if not _executable(built):
        raise HelmError(f"{BUILD_SCRIPT} succeeded but {built} is missing:\n{tail}")
    return built


class Helm:
    """Runs one helm binary with its state (config, cache, data) kept in ``home``."""

    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        self.home = home

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for var, sub in (
            ("HELM_CONFIG_HOME", "config"),
            ("HELM_CACHE_HOME", "cache"),
            ("HELM_DATA_HOME", "data"),
        ):
            env[var] = str(self.home / sub)
        return env

    def run(
        self, *args: str, check: bool = True, timeout: float = 120.0, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv: Sequence[str] = [str(self.binary), *args]
        if kubeconfig is not None:
            argv = [*argv, f"--kubeconfig={kubeconfig}"]
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, env=self.env()
        )
        if check and result.returncode != 0:
            raise HelmError(
                f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result
