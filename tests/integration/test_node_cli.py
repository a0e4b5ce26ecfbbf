"""kingbus-node refuses to start on a bad configuration and says which keys are wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_bad_configuration_is_refused_with_errors_by_key(tmp_path: Path) -> None:
    config = tmp_path / "kingbus.yaml"
    config.write_text(
        "name: kb-0\n"
        f"data_dir: {tmp_path}/data\n"
        "raft: {address: 'not-an-address', password_file: /nonexistent, fsync: sometimes}\n"
        "admin: {bind: 127.0.0.1:9595, token_file: /nonexistent}\n"
        "mysql: {bind: 127.0.0.1:3306, server_id: 4001}\n"
        "surprise: 1\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "kingbus.cli.node", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "KINGBUS_MYSQL_SERVER_ID": "zero"},
    )
    assert result.returncode == 2
    for key in ("raft.address", "raft.fsync", "raft.password_file", "surprise", "mysql.server_id"):
        assert key in result.stderr, (key, result.stderr)
    assert not (tmp_path / "data").exists(), "nothing may be created before the configuration is valid"
