#!/usr/bin/env bash
# The one test command: installs what is missing (quietly when nothing is), then runs the
# format check, clippy with warnings denied, every test of the workspace (the API conformance
# suite in e2e/ included), and the real-cluster suite of the operator on Kubernetes 1.20.
#
# Tests that need btrfs, loop devices or runc make their own fixtures; run as root (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/deps.sh
source scripts/deps.sh
forkr_install_all

# Build outputs live outside the clone so that a fresh clone reuses them.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$FORKR_CACHE/target}
export FORKR_CACHE
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "the contracts hold (scripts/check-deps.sh)"
scripts/check-deps.sh

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "tests"
cargo nextest run --workspace --locked --no-fail-fast

step "real-cluster suite (Kubernetes 1.20 of ../shared/k8s; KUBECONFIG with FORKR_E2E_OWN_CLUSTER=1)"
scripts/k8s-e2e.sh
