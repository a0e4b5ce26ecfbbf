# Sourced by the other scripts: where Kingbus caches what it builds outside the repository.
# KINGBUS_CACHE holds the unpacked MySQL 9.7 tree, the Kubernetes binaries and the
# virtualenvs; it survives between runs so CI on the same machine reuses them.
KINGBUS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export KINGBUS_ROOT
export KINGBUS_CACHE="${KINGBUS_CACHE:-$HOME/.cache/kingbus}"
# One virtualenv per checkout: Kingbus is installed in it in editable mode, so two checkouts
# (a developer's tree and a CI clone) must never share one.
_kb_root_hash="$(printf '%s' "$KINGBUS_ROOT" | sha256sum | cut -c1-12)"
export KINGBUS_VENV="${KINGBUS_VENV:-$KINGBUS_CACHE/venv-$_kb_root_hash}"
