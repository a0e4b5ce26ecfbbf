"""`kingbus-node --config FILE`: run one member until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from kingbus.config import ConfigError, load_config
from kingbus.node import Node


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kingbus-node", description="Run one Kingbus member.")
    parser.add_argument(
        "--config", type=Path, help="YAML configuration file (KINGBUS_* variables override it)"
    )
    return parser.parse_args(argv)


async def _serve(node: Node) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await node.start()
    await stop.wait()
    logging.getLogger(__name__).info("stopping")
    await node.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        config = load_config(args.config, os.environ)
    except ConfigError as exc:
        print(f"kingbus-node: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, config.log_level.upper(), logging.INFO),
        format=f"%(asctime)s {config.name} %(levelname)s %(name)s: %(message)s",
    )
    try:
        node = Node(config)
    except (OSError, ValueError) as exc:
        print(f"kingbus-node: cannot start: {exc}", file=sys.stderr)
        return 1
    asyncio.run(_serve(node))
    return 0


if __name__ == "__main__":
    sys.exit(main())
