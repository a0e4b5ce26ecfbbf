#!/usr/bin/env bash
# mmdebstrap customize hook for the kind node's root filesystem: $1 is the root being built.
#
# Does what kind's own base image Dockerfile (sigs.k8s.io/kind images/base) does, but with
# Debian bookworm's containerd, runc and CNI plugins instead of binaries built from GitHub
# clones, and kind's static files (entrypoint, systemd units, containerd config) read from the
# kind Go module named by KIND_SRC, not copied into this repository. Then the Kubernetes node
# binaries (KUBE_BIN) are added, as `kind build node-image` would.
#
# Environment: KIND_SRC (kind module folder), KUBE_BIN (kubeadm, kubelet, kubectl),
# KUBE_VERSION, KINGBUS_KIND_DIR (this folder).
set -euo pipefail
root="$1"
files="$KIND_SRC/images/base/files"

# kind's scripts and configuration, at the paths its Dockerfile puts them.
install -m 0755 "$files"/usr/local/bin/* "$root/usr/local/bin/"
mkdir -p "$root/kind/bin" "$root/etc/containerd" "$root/etc/systemd/system/kubelet.service.d"
install -m 0644 "$files/kind/README.txt" "$root/kind/"
install -m 0755 "$files"/kind/bin/* "$root/kind/bin/"
install -m 0644 "$files/etc/crictl.yaml" "$root/etc/"
install -m 0644 "$files/etc/default/kubelet" "$root/etc/default/"
install -m 0644 "$files"/etc/sysctl.d/* "$root/etc/sysctl.d/"
for unit in containerd.service kubelet.service kubelet.slice undo-mount-hacks.service; do
  install -m 0644 "$files/etc/systemd/system/$unit" "$root/etc/systemd/system/"
done
install -m 0644 "$files"/etc/systemd/system/kubelet.service.d/* "$root/etc/systemd/system/kubelet.service.d/"
# No fuse-overlayfs snapshotter here (only rootless or ZFS hosts need it): drop its proxy plugin.
# Where the sandbox withholds CAP_SYS_RESOURCE (see runc-without-sys-resource), two things
# need it inside the node too: privileged pods (kube-proxy) get every capability, so runc runs
# through the same wrapper (elsewhere it changes nothing); and a pod's oom_score_adj may not be
# set below containerd's own (static pods ask for -998, runc fails with "failed to update
# /proc/self/oom_score_adj: Permission denied"), which restrict_oom_score_adj = true clamps,
# as for rootless containerd.
install -m 0755 "$KINGBUS_KIND_DIR/runc-without-sys-resource" "$root/usr/local/sbin/"
sed '/^\[proxy_plugins/,/^$/d; /fuse-overlayfs/d
     s|restrict_oom_score_adj = false|restrict_oom_score_adj = true|
     s|^\( *\)SystemdCgroup = true|&\n\1BinaryName = "/usr/local/sbin/runc-without-sys-resource"|' \
  "$files/etc/containerd/config.toml" >"$root/etc/containerd/config.toml"

# Debian installs containerd in /usr/bin; kind's unit starts /usr/local/bin/containerd.
ln -sf /usr/bin/containerd "$root/usr/local/bin/containerd"
# Debian's CNI plugins live in /usr/lib/cni; containerd's CRI looks in /opt/cni/bin.
mkdir -p "$root/opt/cni/bin"
for plugin in "$root"/usr/lib/cni/*; do ln -sf "/usr/lib/cni/$(basename "$plugin")" "$root/opt/cni/bin/"; done

# No CNI configuration: kind's default CNI (kindnetd) is an image from a registry, so the
# cluster is created with disableDefaultCNI and e2e/kind/e2e.py does kindnetd's job once the
# nodes have their pod CIDRs (a bridge configuration per node, routes between nodes).

# The runtime spec kind's containerd config names, generated as kind generates it.
chroot "$root" sh -c "ctr oci spec \
  | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {\"path\": \"/kind/bin/mount-product-files.sh\"}' \
  | jq 'del(.process.rlimits)' >/etc/containerd/cri-base.json"

# systemd as PID 1 in a container: the same pruning kind does.
find "$root/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
rm -f "$root"/lib/systemd/system/multi-user.target.wants/* \
  "$root"/etc/systemd/system/*.wants/* \
  "$root"/lib/systemd/system/local-fs.target.wants/* \
  "$root"/lib/systemd/system/sockets.target.wants/*udev* \
  "$root"/lib/systemd/system/sockets.target.wants/*initctl* \
  "$root"/lib/systemd/system/basic.target.wants/*
echo "ReadKMsg=no" >>"$root/etc/systemd/journald.conf"
ln -sf /lib/systemd/systemd "$root/sbin/init"
chroot "$root" systemctl enable kubelet.service containerd.service undo-mount-hacks.service
chroot "$root" systemctl mask systemd-binfmt.service
mkdir -p "$root/etc/kubernetes/manifests"

# The node's Kubernetes: what `kind build node-image` adds to the base.
for bin in kubeadm kubelet kubectl; do install -m 0755 "$KUBE_BIN/$bin" "$root/usr/bin/"; done
printf '%s' "$KUBE_VERSION" >"$root/kind/version"
