"""The embedded default: a local MySQL 9.7 source, three Kingbus members in front of it, a
short write workload, and the cluster's status.

    python -m kingbus.devenv.demo [--keep] [--transactions N] [--dir DIR]

Everything runs on loopback addresses (the source on 127.0.0.1, members on 127.0.0.1-3) in a
scratch directory and is stopped on exit; `--keep` leaves it running until Ctrl-C and prints
how to point kingbusctl or a MySQL replica at it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kingbus.devenv import mysql
from kingbus.devenv.localcluster import Cluster, wait_until
from kingbus.devenv.ports import free_port
from kingbus.devenv.workload import mixed_workload


def _summary(status: dict[str, Any]) -> str:
    source = status["source"]
    return (
        f"{status['name']:<6} {status['role']:<9} term={status['term']:<3} "
        f"commit_index={status['commit_index']:<6} store={status['store']['bytes']:>10} B "
        f"source={source['state']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kingbus-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=500, help="size of the write workload")
    parser.add_argument("--keep", action="store_true", help="keep everything running until Ctrl-C")
    parser.add_argument("--dir", type=Path, help="scratch directory (default: a new temporary one)")
    args = parser.parse_args(argv)

    base = args.dir or Path(tempfile.mkdtemp(prefix="kingbus-demo-"))
    print(f"scratch directory: {base}")
    print("provisioning MySQL 9.7 (cached after the first run) ...", flush=True)
    tree = mysql.provision()
    source = mysql.MySQLServer(tree, base / "source", port=free_port(), server_id=1)
    cluster = Cluster(base / "cluster", 3)
    try:
        source.start()
        source.create_replication_user()
        print(f"MySQL source on 127.0.0.1:{source.port} ({source.server_uuid})")
        cluster.start()
        leader = cluster.leader(timeout=60)
        print(f"three members up; leader is {leader.name}")
        cluster.set_source("127.0.0.1", source.port)
        started = time.monotonic()
        with source.connect() as conn:
            counts = mixed_workload(conn, transactions=args.transactions, seed=1)
        print(
            f"workload: {counts.transactions} transactions "
            f"({counts.inserted_rows} inserts, {counts.updated_rows} updates, "
            f"{counts.deleted_rows} deletes, {counts.ddl} DDL)"
        )
        cluster.wait_committed(source.gtid_executed(), timeout=120)
        print(f"all three members committed the source's gtid_executed in {time.monotonic() - started:.1f}s")
        wait_until(
            lambda: all(m["admin"] for m in cluster.leader().status()["members"]),
            timeout=30,
            what="every member to announce itself in the member directory",
        )
        # A leader elected a moment ago is still dialling the source: show the steady state.
        wait_until(
            lambda: cluster.leader().status()["source"]["state"] == "streaming",
            timeout=60,
            what="the leader's source session to stream",
        )
        print()
        for member in cluster.members:
            print(_summary(member.status()))
        print()
        print(json.dumps(cluster.leader().status(), indent=2))
        if args.keep:
            token_file = cluster.members[0].base / "admin-token"
            print()
            print("running; Ctrl-C stops everything. Try:")
            print(f"  kingbusctl --admin {cluster.leader().admin} --token-file {token_file} status")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return 0
    finally:
        cluster.stop()
        source.kill9()
        if not args.keep and args.dir is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
