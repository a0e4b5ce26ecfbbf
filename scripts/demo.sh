#!/usr/bin/env bash
# The embedded default: sets up the environment, then runs a local MySQL 9.7 source with a
# three-member Kingbus cluster in front of it, a short write workload, and prints the status.
# Extra arguments go to the demo (e.g. --keep, --transactions 5000).
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash "$KINGBUS_ROOT/scripts/setup.sh"
cd "$KINGBUS_ROOT"
exec "$KINGBUS_VENV/bin/python" -m kingbus.devenv.demo "$@"
