#!/usr/bin/env bash
# Ingest benchmark (bench/ingest.py): a three-node Kingbus cluster with fsync always against a
# real MySQL 9.7 replica's receiver on the same preloaded binlog. `--quick` for a smoke run,
# `--help` for the sizes. Provisions the venv and MySQL on first use.
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash "$KINGBUS_ROOT/scripts/setup.sh"
cd "$KINGBUS_ROOT"
exec "$KINGBUS_VENV/bin/python" -m bench.ingest "$@"
