#!/usr/bin/env bash
# Builds a kind node image where no image can be pulled (see e2e/kind/README.md):
#
#   bash e2e/kind/build.sh        # -> image kingbus/kind-node:<KUBE_VERSION>, and kind itself
#
# 1. Go binaries: the node's Kubernetes (e2e/kube/build.sh with kubelet, kubeadm, kube-proxy),
#    kind and CoreDNS, from the Go module proxy.
# 2. The node's root filesystem: a Debian bookworm root (mmdebstrap) with systemd, Debian's
#    containerd, runc and CNI plugins, kind's static files and the node binaries
#    (customize-node-root.sh).
# 3. The images kubeadm runs, each made from a local binary (no registry): pause (pause.c),
#    kube-apiserver, kube-controller-manager, kube-scheduler, etcd and CoreDNS on an empty root;
#    kube-proxy on the node's root (it needs iptables and conntrack).
# 4. Those images imported into the node root's containerd, and the result committed.
#
# Needs root, a running Docker engine (Debian's docker.io: `dockerd &`), mmdebstrap, gcc and Go.
# Everything is cached under ~/.cache/kingbus/kind/<KUBE_VERSION>; the node image is rebuilt
# when this folder's files change, or with REBUILD=1.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../../scripts/env.sh"

KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
KIND_VERSION="${KIND_VERSION:-v0.30.0}"
# What kubeadm v1.34 deploys (cmd/kubeadm/app/constants): CoreDNSVersion, PauseVersion,
# DefaultEtcdVersion. kind's containerd config asks for pause 3.10, so both tags are made.
COREDNS_VERSION="v1.12.1"
PAUSE_TAGS=(3.10 3.10.1)
ETCD_TAG="3.6.5-0"
NODE_IMAGE="${KINGBUS_KIND_NODE_IMAGE:-kingbus/kind-node:$KUBE_VERSION}"
MIRROR="${KINGBUS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE="${KINGBUS_CACHE:-$HOME/.cache/kingbus}/kind/$KUBE_VERSION"
KUBE_BIN="${KINGBUS_CACHE:-$HOME/.cache/kingbus}/kube/$KUBE_VERSION/bin"
mkdir -p "$CACHE/bin"
log() { echo "[kind/build] $*" >&2; }

for tool in docker mmdebstrap gcc go; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing" >&2; exit 1; }
done
docker info >/dev/null 2>&1 || { echo "build.sh: no Docker engine answers (start dockerd)" >&2; exit 1; }

# 1. Go binaries.
KUBE_VERSION="$KUBE_VERSION" KUBE_EXTRA_BINARIES="kubelet kubeadm kube-proxy" \
  bash "$here/../kube/build.sh" >&2
go_install() {  # module@version -> $CACHE/bin (static, like the release binaries)
  GOBIN="$CACHE/bin" GOFLAGS=-mod=mod CGO_ENABLED=0 go install -trimpath -ldflags '-s -w' "$1"
}
[[ -x "$CACHE/bin/kind" ]] || { log "building kind $KIND_VERSION"; go_install "sigs.k8s.io/kind@$KIND_VERSION"; }
[[ -x "$CACHE/bin/coredns" ]] || { log "building coredns $COREDNS_VERSION"; go_install "github.com/coredns/coredns@$COREDNS_VERSION"; }
[[ -x "$CACHE/bin/pause" ]] || gcc -static -Os -o "$CACHE/bin/pause" "$here/pause.c"
KIND_SRC="$(GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" |
  sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
[[ -d "$KIND_SRC/images/base/files" ]] || { echo "build.sh: kind's module has no images/base/files" >&2; exit 1; }

# The node image is made again when anything it is made from changes: this folder's files
# and the versions above (recorded as a label on the image).
inputs="$( (cat "$here/build.sh" "$here/customize-node-root.sh" "$here/pause.c" \
  "$here/runc-without-sys-resource"; echo "$KUBE_VERSION $KIND_VERSION $MIRROR") | sha256sum | cut -c1-16)"
label="io.kingbus.kind-node-inputs"
if [[ -z "${REBUILD:-}" ]] &&
  [[ "$(docker image inspect "$NODE_IMAGE" --format "{{index .Config.Labels \"$label\"}}" 2>/dev/null)" == "$inputs" ]]; then
  log "$NODE_IMAGE is up to date (REBUILD=1 makes it again)"
  exit 0
fi

# 2. The node's root filesystem.
root_tar="$CACHE/node-root-$inputs.tar"
if [[ -n "${REBUILD:-}" || ! -s "$root_tar" ]]; then
  log "making the node's root filesystem (mmdebstrap)"
  KINGBUS_KIND_DIR="$here" KIND_SRC="$KIND_SRC" KUBE_BIN="$KUBE_BIN" KUBE_VERSION="$KUBE_VERSION" \
    mmdebstrap --variant=minbase --aptopt='APT::Install-Recommends "false"' \
    --include=systemd,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,bash,ca-certificates,curl,jq,procps,containerd,runc,containernetworking-plugins \
    --customize-hook="bash '$here/customize-node-root.sh' \"\$1\"" \
    bookworm "$CACHE/node-root.partial.tar" "$MIRROR"
  rm -f "$CACHE"/node-root-*.tar
  mv "$CACHE/node-root.partial.tar" "$root_tar"
fi
base_image="kingbus/kind-node-base:$KUBE_VERSION"
docker import \
  -c 'ENV container=docker' \
  -c 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
  "$root_tar" "$base_image" >/dev/null

# 3. The images kubeadm runs.
scratch_image() {  # tag binary-path path-in-image [docker import -c changes...]
  local tag="$1" binary="$2" dest="$3"
  shift 3
  local dir
  dir="$(mktemp -d)"
  install -D -m 0755 "$binary" "$dir/$dest"
  tar -C "$dir" -c . | docker import "$@" - "$tag" >/dev/null
  rm -rf "$dir"
}
images=()
for tag in "${PAUSE_TAGS[@]}"; do
  scratch_image "registry.k8s.io/pause:$tag" "$CACHE/bin/pause" pause -c 'ENTRYPOINT ["/pause"]'
  images+=("registry.k8s.io/pause:$tag")
done
# kubeadm's static pods run these by name.
for name in kube-apiserver kube-controller-manager kube-scheduler; do
  scratch_image "registry.k8s.io/$name:$KUBE_VERSION" "$KUBE_BIN/$name" "usr/local/bin/$name" \
    -c 'ENV PATH=/usr/local/bin'
  images+=("registry.k8s.io/$name:$KUBE_VERSION")
done
scratch_image "registry.k8s.io/etcd:$ETCD_TAG" "$KUBE_BIN/etcd" usr/local/bin/etcd -c 'ENV PATH=/usr/local/bin'
images+=("registry.k8s.io/etcd:$ETCD_TAG")
scratch_image "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" "$CACHE/bin/coredns" coredns \
  -c 'ENTRYPOINT ["/coredns"]'
images+=("registry.k8s.io/coredns/coredns:$COREDNS_VERSION")
proxy_ctx="$(mktemp -d)"
install -m 0755 "$KUBE_BIN/kube-proxy" "$proxy_ctx/kube-proxy"
printf 'FROM %s\nCOPY kube-proxy /usr/local/bin/kube-proxy\nENTRYPOINT []\n' "$base_image" >"$proxy_ctx/Dockerfile"
docker build --network none -q -t "registry.k8s.io/kube-proxy:$KUBE_VERSION" "$proxy_ctx" >/dev/null
rm -rf "$proxy_ctx"
images+=("registry.k8s.io/kube-proxy:$KUBE_VERSION")

# 4. Preload them into the node's containerd (the k8s.io namespace the CRI uses), then commit.
#    bookworm's ctr (containerd 1.6) cannot pin them (--label); kind's kubelet configuration
#    turns image garbage collection off (imageGCHighThresholdPercent: 100) anyway.
builder="kingbus-kind-build-$$"
trap 'docker rm -f "$builder" >/dev/null 2>&1 || true' EXIT
docker run -d --privileged --name "$builder" --entrypoint sleep "$base_image" infinity >/dev/null
docker exec -d "$builder" containerd
for _ in $(seq 50); do
  docker exec "$builder" ctr version >/dev/null 2>&1 && break
  sleep 0.2
done
log "importing ${#images[@]} images into the node's containerd"
docker save "${images[@]}" |
  docker exec -i "$builder" ctr -n k8s.io images import --all-platforms --no-unpack -
docker exec "$builder" sh -c 'pkill containerd; while pgrep -x containerd >/dev/null; do sleep 0.1; done'
# docker commit and import cannot set STOPSIGNAL (systemd stops cleanly on SIGRTMIN+3, as in
# kind's image); a one-line build on top of the commit can.
docker rmi "$NODE_IMAGE" >/dev/null 2>&1 || true  # the previous build (kept while a cluster uses it)
docker commit \
  -c 'ENV container=docker' -c 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' -c 'CMD []' \
  "$builder" "$NODE_IMAGE-unsealed" >/dev/null
printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\nLABEL %s=%s\n' "$NODE_IMAGE-unsealed" "$label" "$inputs" |
  docker build --network none -q -t "$NODE_IMAGE" - >/dev/null
docker rmi "$NODE_IMAGE-unsealed" >/dev/null
docker image inspect "$NODE_IMAGE" --format "$NODE_IMAGE: {{.Size}} bytes" >&2
