#!/usr/bin/env bash
# The one command that runs every check: lint, types, then the test suite against real
# MySQL 9.7 servers and real node processes (provisioned on first use, cached afterwards).
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash "$KINGBUS_ROOT/scripts/setup.sh"
cd "$KINGBUS_ROOT"
PY="$KINGBUS_VENV/bin"
"$PY/ruff" check node operator tests bench e2e
"$PY/ruff" format --check node operator tests bench e2e
"$PY/mypy"
exec "$PY/python" -m pytest "$@"
