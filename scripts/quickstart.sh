#!/usr/bin/env bash
# From a fresh clone to a working box, in one command: installs what is missing, builds the
# release binaries, installs them in /usr/local/bin, runs `4kr local up`, creates a box and runs a
# command in it. Run it again at any time: every step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "quickstart: run as root (local mode mounts a btrfs pool and runs boxes with runc)" >&2
  exit 1
fi

say() { printf '\n== %s\n' "$*"; }

say "installing what is missing"
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
forkr_install_apt

say "building the release binaries"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$FORKR_CACHE/target}
cargo build --release --locked -p forkr-api -p forkr-node-agent -p forkr-cli
for bin in forkr-api forkr-runner forkr-node-agent 4kr; do
  install -m 0755 "$CARGO_TARGET_DIR/release/$bin" "/usr/local/bin/$bin"
done

say "starting Forkr (4kr local up)"
4kr local up

box=${FORKR_QUICKSTART_BOX:-hello}
say "creating the box $box"
if ! 4kr show "$box" >/dev/null 2>&1; then
  4kr create "$box"
fi
4kr exec "$box" -- uname -a

cat <<NEXT

Forkr is running. Next, try:
  4kr list                              # your boxes
  4kr exec $box -- python3 --version    # run anything in the box
  4kr snapshot create $box              # a checkpoint of its root
  4kr create copy -f $box               # fork it
  4kr docs                              # the user guide
  4kr local status                      # where the data and the log are
  4kr local down                        # stop the server (data and boxes stay)
NEXT
