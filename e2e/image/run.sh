#!/usr/bin/env bash
# Builds the image (e2e/image/build.sh) and runs it: three members in containers of it in front
# of a local MySQL 9.7 source, a MySQL 9.7 replica of one of them, a member killed and
# restarted (e2e/image/smoke.py). Needs root and a running Docker engine.
set -euo pipefail
source "$(dirname "$0")/../../scripts/env.sh"
bash "$KINGBUS_ROOT/scripts/setup.sh" >/dev/null
bash "$KINGBUS_ROOT/e2e/image/build.sh"
cd "$KINGBUS_ROOT"
PYTHONPATH=node:. exec "$KINGBUS_VENV/bin/python" e2e/image/smoke.py "$@"
