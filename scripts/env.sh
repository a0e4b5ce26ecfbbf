# Sourced by the other scripts: where Kingbus caches what it builds outside the repository.
# KINGBUS_CACHE holds the virtualenv, the unpacked MySQL 9.7 tree and the Kubernetes binaries;
# it survives between runs so CI on the same machine reuses them.
export KINGBUS_CACHE="${KINGBUS_CACHE:-$HOME/.cache/kingbus}"
export KINGBUS_VENV="${KINGBUS_VENV:-$KINGBUS_CACHE/venv}"
KINGBUS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export KINGBUS_ROOT
