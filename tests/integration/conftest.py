"""Fixtures for tests that run real kingbus-node processes (see kingbus.devenv.localcluster)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kingbus.devenv.localcluster import Cluster, running_cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Three started members on 127.0.0.1/.2/.3, killed (-9) at the end whatever happens."""
    with running_cluster(tmp_path / "cluster", 3) as c:
        c.leader(timeout=30)
        yield c
