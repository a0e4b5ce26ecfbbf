#!/usr/bin/env bash
# The kind tier: builds what it needs (the kind node image and kind: e2e/kind/build.sh; the
# Kingbus image: e2e/image/build.sh; helm: e2e/helm/build.sh), then runs e2e/kind/e2e.py on a
# fresh kind cluster. Needs root and a Docker engine (see e2e/kind/README.md).
#
#   bash e2e/kind/run.sh [--keep]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../../scripts/env.sh"
KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
cache="${KINGBUS_CACHE:-$HOME/.cache/kingbus}"

# Where the sandbox withholds CAP_SYS_RESOURCE, every privileged container fails unless Docker
# runs them through runc-without-sys-resource (kind's nodes are privileged).
capbnd="$(awk '/^CapBnd/ {print $2}' /proc/self/status)"
if (( (0x$capbnd >> 24 & 1) == 0 )) \
  && [[ "$(docker info --format '{{.DefaultRuntime}}' 2>/dev/null)" != kb-runc ]]; then
  install -D -m 0755 "$here/runc-without-sys-resource" "$cache/kind/runc-without-sys-resource"
  cat >&2 <<MSG
run.sh: this machine withholds CAP_SYS_RESOURCE (CapBnd $capbnd),
so privileged containers fail in runc. Start dockerd with the wrapper as its default runtime:
  dockerd --add-runtime kb-runc=$cache/kind/runc-without-sys-resource --default-runtime kb-runc &
MSG
  exit 1
fi

bash "$KINGBUS_ROOT/scripts/setup.sh" >/dev/null
bash "$here/build.sh"
bash "$KINGBUS_ROOT/e2e/image/build.sh" >&2
bash "$KINGBUS_ROOT/e2e/helm/build.sh" >&2
helm_version="$(sed -n 's/^HELM_VERSION="${HELM_VERSION:-\(.*\)}"$/\1/p' "$KINGBUS_ROOT/e2e/helm/build.sh")"
helm="$cache/helm/${HELM_VERSION:-$helm_version}/bin/helm"
cd "$KINGBUS_ROOT"
PYTHONPATH=node:. exec "$KINGBUS_VENV/bin/python" e2e/kind/e2e.py \
  --node-image "kingbus/kind-node:$KUBE_VERSION" \
  --kind "$cache/kind/$KUBE_VERSION/bin/kind" \
  --kubectl "$cache/kube/$KUBE_VERSION/bin/kubectl" \
  --helm "$helm" "$@"
