#!/usr/bin/env bash
# Builds the Kingbus image (Dockerfile) where no image can be pulled: the base is a Debian
# bookworm root filesystem made by mmdebstrap and imported, and the Python packages come from a
# wheelhouse built on this machine, so `docker build` runs with no network at all.
#
#   bash e2e/image/build.sh            # -> image kingbus:dev (override with KINGBUS_IMAGE)
#
# Needs root, a running Docker engine (Debian's docker.io: `dockerd &`) and mmdebstrap; the
# root filesystem and the wheelhouse are cached under ~/.cache/kingbus/image.
set -euo pipefail
source "$(dirname "$0")/../../scripts/env.sh"
IMAGE="${KINGBUS_IMAGE:-kingbus:dev}"
BASE_TAG="kingbus-base:bookworm"
CACHE="${KINGBUS_CACHE:-$HOME/.cache/kingbus}/image"
MIRROR="${KINGBUS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
mkdir -p "$CACHE"

for tool in docker mmdebstrap; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing (apt-get install docker.io mmdebstrap)" >&2; exit 1; }
done
docker info >/dev/null 2>&1 || { echo "build.sh: no Docker engine answers (start dockerd)" >&2; exit 1; }

# 1. The base: python3 3.11 and CA certificates on a minimal bookworm, made once.
base_tar="$CACHE/base-bookworm.tar"
if [[ ! -s "$base_tar" ]]; then
  echo "making the bookworm root filesystem (mmdebstrap, a few minutes, once)"
  mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$CACHE/base-bookworm.partial.tar" "$MIRROR"
  mv "$CACHE/base-bookworm.partial.tar" "$base_tar"
fi
docker image inspect "$BASE_TAG" >/dev/null 2>&1 || docker import "$base_tar" "$BASE_TAG"

# 2. The wheelhouse: the project and its pinned runtime dependencies (node and operator), plus
#    the build backend that `pip install /src` needs, keyed by pyproject.toml.
key=$(sha256sum "$KINGBUS_ROOT/pyproject.toml" | cut -c1-12)
wheels="$CACHE/wheels-$key"
if [[ ! -f "$wheels/.complete" ]]; then
  rm -rf "$wheels"
  "$KINGBUS_VENV/bin/python" -m pip wheel --quiet --wheel-dir "$wheels" "$KINGBUS_ROOT[operator]"
  "$KINGBUS_VENV/bin/python" -m pip download --quiet --dest "$wheels" "setuptools>=69" wheel
  rm -f "$wheels"/kingbus-*.whl  # the image builds the project from its sources
  touch "$wheels/.complete"
fi

# 3. A build context holding only what the Dockerfile copies.
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp -r "$KINGBUS_ROOT/Dockerfile" "$KINGBUS_ROOT/pyproject.toml" "$KINGBUS_ROOT/README.md" \
  "$KINGBUS_ROOT/node" "$KINGBUS_ROOT/operator" "$context/"
cp -r "$wheels" "$context/wheels"
find "$context" -name __pycache__ -prune -exec rm -rf {} +

docker build --network none --build-arg BASE="$BASE_TAG" \
  --build-arg PIP_ARGS="--no-index --find-links=/src/wheels" -t "$IMAGE" "$context"
docker image inspect "$IMAGE" --format "$IMAGE: {{.Size}} bytes, created {{.Created}}"
