"""The image, run: a MySQL 9.7 source on 127.0.0.1, three Kingbus members each in a container
of the image (host network on 127.0.0.1-3, the image's user 65532, the scratch directory
mounted at the same path), a workload, every member committing the source's gtid_executed,
a real MySQL 9.7 replica streaming from a containerized member, and one member killed and
restarted in a new container.

    bash e2e/image/build.sh && PYTHONPATH=node:. python e2e/image/smoke.py [--image kingbus:dev]

Exit status 0 only if every step did what it says; containers are removed at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from kingbus.devenv import mysql
from kingbus.devenv.localcluster import Cluster, Member
from kingbus.devenv.ports import free_port
from kingbus.devenv.workload import mixed_workload

IMAGE_USER = 65532  # the Dockerfile's USER


def _containerize(member: Member, image: str) -> None:
    member.launcher = [
        "docker", "run", "--rm", "--name", _container(member), "--network", "host",
        "--volume", f"{member.base}:{member.base}", image, "kingbus-node",
    ]  # fmt: skip
    member.write_config()
    # The node runs as the image's user: it must own its directory (the secrets stay readable).
    for path in [member.base, *member.base.rglob("*")]:
        os.chown(path, IMAGE_USER, IMAGE_USER)


def _container(member: Member) -> str:
    return f"kingbus-smoke-{os.getpid()}-{member.name}"


def _remove_containers(cluster: Cluster) -> None:
    names = [_container(m) for m in cluster.members]
    subprocess.run(["docker", "rm", "--force", *names], capture_output=True, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default=os.environ.get("KINGBUS_IMAGE", "kingbus:dev"))
    parser.add_argument("--transactions", type=int, default=300)
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="kingbus-image-smoke-"))
    os.chmod(base, 0o755)
    tree = mysql.provision()
    source = mysql.MySQLServer(tree, base / "source", port=free_port(), server_id=1)
    replica = mysql.MySQLServer(tree, base / "replica", port=free_port(), server_id=2)
    cluster = Cluster(base / "cluster", 3)
    (base / "cluster").mkdir()
    os.chmod(base / "cluster", 0o755)
    try:
        source.start()
        source.create_replication_user()
        for member in cluster.members:
            _containerize(member, args.image)
        cluster.start()
        leader = cluster.leader(timeout=120)
        print(f"three containerized members up; leader {leader.name}", flush=True)
        cluster.set_source("127.0.0.1", source.port)
        with source.connect() as conn:
            mixed_workload(conn, transactions=args.transactions, seed=7)
        cluster.wait_committed(source.gtid_executed(), timeout=180)
        print(f"every member committed the source's gtid_executed {source.gtid_executed()}", flush=True)

        follower = next(m for m in cluster.members if m.name != cluster.leader().name)
        replica.start()
        replica.replicate_from(follower.host, follower.mysql_port)
        replica.wait_replica_caught_up(source.gtid_executed(), timeout=120)
        print(f"a MySQL 9.7 replica of {follower.name} (in its container) caught up", flush=True)

        subprocess.run(["docker", "kill", _container(follower)], check=True, capture_output=True)
        if follower.process is not None:
            follower.process.wait(30)  # the `docker run` client exits with its container
        with source.connect() as conn:
            mixed_workload(conn, transactions=50, seed=8)
        follower.start()
        cluster.wait_committed(source.gtid_executed(), timeout=180)
        replica.wait_replica_caught_up(source.gtid_executed(), timeout=120)
        print(f"{follower.name} killed, restarted in a new container, caught up; so did its replica")
        print("image smoke test: passed")
        return 0
    finally:
        _remove_containers(cluster)
        cluster.stop()
        replica.stop()
        source.stop()
        print(f"scratch directory: {base}")


if __name__ == "__main__":
    sys.exit(main())
