"""The node's own server identity as replicas see it: a stable server UUID.

A replica refuses a source whose server_uuid equals its own, and a source whose UUID equals
one of its replicas' confuses ``kill_zombie_dump_threads``; so every node generates a random
UUID once and keeps it in its data directory (``server_uuid``), distinct from the source's
and every replica's with overwhelming probability, and unchanged across restarts.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

FILE_NAME = "server_uuid"


def load_or_create_server_uuid(data_dir: Path) -> str:
    path = data_dir / FILE_NAME
    try:
        text = path.read_text().strip()
        return str(uuid.UUID(text))
    except FileNotFoundError:
        pass
    except ValueError:
        pass  # a damaged file: replace it (replicas reconnect by GTID, not by UUID)
    value = str(uuid.uuid4())
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(value + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return value
