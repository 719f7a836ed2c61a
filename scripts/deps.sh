#!/usr/bin/env bash
# Installs what Forkr needs on a Debian machine, idempotently: apt packages, the Python tools the
# tests use, and cargo-nextest. Silent when everything is already there. Source it or run it.
#
# FORKR_CACHE (default /var/cache/forkr) holds what is expensive to rebuild and lives outside the
# clone: the cargo target directory and the Python virtualenvs.
set -euo pipefail

FORKR_CACHE=${FORKR_CACHE:-/var/cache/forkr}

# Every system package the project uses, and why.
FORKR_APT_PACKAGES=(
  btrfs-progs       # mkfs.btrfs for loopback pools
  libbtrfsutil-dev  # libbtrfsutil, linked by the node agent
  libclang-dev      # bindgen for libbtrfsutil-sys
  pkg-config
  runc              # the local runtime (crun fails on hybrid cgroups)
  tini              # PID 1 inside boxes
  busybox-static    # a tiny static userland for test roots
  iproute2          # bridges, veth and netns for local networking
  iptables          # egress NAT for local boxes
  util-linux        # losetup, mount
  python3-venv      # the CRD schema validator's virtualenv
  mmdebstrap        # builds box-base from Debian for 4kr local up
)

# kubernetes-validate carries Kubernetes' OpenAPI schemas offline. 1.37 knows 1.25 and later
# (with CEL); 1.24 still knows 1.20, the version of the test cluster in ../shared/k8s.
FORKR_KV_LATEST=1.37.0
FORKR_KV_LEGACY=1.24.0

forkr_log() { printf 'deps: %s\n' "$*" >&2; }

forkr_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else forkr_log "need root to run: $*"; return 1
  fi
}

forkr_install_apt() {
  local missing=() pkg
  for pkg in "${FORKR_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  forkr_log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  local log
  log=$(mktemp)
  if ! { forkr_as_root apt-get update -qq && forkr_as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; return 1
  fi
  rm -f "$log"
}

# venv DIR VERSION: a virtualenv holding exactly that kubernetes-validate.
forkr_install_validator() {
  local dir=$1 version=$2 have
  have=$("$dir/bin/python" -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))' 2>/dev/null || true)
  [ "$have" = "$version" ] && return 0
  forkr_log "installing kubernetes-validate $version into $dir"
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$version"
}

forkr_install_nextest() {
  command -v cargo-nextest >/dev/null 2>&1 && return 0
  forkr_log "installing cargo-nextest"
  cargo install -q --locked cargo-nextest
}

forkr_install_all() {
  mkdir -p "$FORKR_CACHE"
  forkr_install_apt
  forkr_install_validator "$FORKR_CACHE/venv" "$FORKR_KV_LATEST"
  forkr_install_validator "$FORKR_CACHE/venv-legacy" "$FORKR_KV_LEGACY"
  forkr_install_nextest
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  forkr_install_all
fi
