#!/usr/bin/env bash
# Creates (or refreshes) this checkout's virtualenv outside the repository and installs
# Kingbus with its pinned development and operator dependencies. Idempotent; quick when the
# pip cache is warm.
set -euo pipefail
source "$(dirname "$0")/env.sh"
mkdir -p "$KINGBUS_CACHE"
if [ ! -x "$KINGBUS_VENV/bin/python" ]; then
  python3 -m venv "$KINGBUS_VENV"
fi
stamp="$KINGBUS_VENV/.kingbus-installed"
want="$(sha256sum "$KINGBUS_ROOT/pyproject.toml" | cut -c1-16) $KINGBUS_ROOT"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$KINGBUS_VENV/bin/pip" install -q --upgrade pip
  "$KINGBUS_VENV/bin/pip" install -q -e "$KINGBUS_ROOT[dev,operator]"
  echo "$want" >"$stamp"
fi
