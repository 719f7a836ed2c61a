#!/usr/bin/env bash
# The real-cluster end-to-end suite of forkr-operator: boxes as real Pods on the single-node
# Kubernetes 1.20 of ../shared/k8s (or on the cluster KUBECONFIG names, with FORKR_E2E_OWN_CLUSTER=1).
#
# Steps: build (cached) and start the cluster through the shared scripts; build the operator,
# the agent and the runner; import the runner image from a rootfs; install the CRDs without CEL;
# run forkr-node-agent (loopback btrfs pool) and forkr-operator on the host with the kubeconfig;
# run operator/tests/cluster.rs. Any step that fails fails the suite: nothing is skipped.
#
# With --bench, runs operator/examples/k8s_bench.rs instead (Create -> Ready split, 1,000 boxes,
# steady-state writes, restart); with --api-bench, e2e/examples/kube_bench.rs (the kube
# backend's agent path against its Kubernetes exec fallback).
set -euo pipefail
cd "$(dirname "$0")/.."
# With --down, stops the cluster afterwards (../shared/k8s/down.sh); by default it stays up, so
# the next run starts in about a second.
BENCH=0
API_BENCH=0
DOWN=0
for arg in "$@"; do
  case $arg in
    --bench) BENCH=1 ;;
    --api-bench) API_BENCH=1 ;;
    --down) DOWN=1 ;;
    *) echo "usage: $0 [--bench|--api-bench] [--down]" >&2; exit 2 ;;
  esac
done
ROOT=$PWD
# The shared cluster scripts sit next to the repository; a clone elsewhere finds them at the
# workplace's fixed path.
K8S=${FORKR_K8S_DIR:-}
if [ -z "$K8S" ]; then
  for d in "$ROOT/../shared/k8s" /work/shared/k8s; do
    [ -x "$d/build.sh" ] && { K8S=$d; break; }
  done
  K8S=${K8S:-$ROOT/../shared/k8s}
fi
E2E=${FORKR_E2E_HOME:-/var/lib/forkr-e2e}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${FORKR_CACHE:-/var/cache/forkr}/target}
AGENT_ADDR=127.0.0.1:${FORKR_E2E_AGENT_PORT:-17443}
METRICS_ADDR=127.0.0.1:${FORKR_E2E_METRICS_PORT:-19090}
API_ADDR=127.0.0.1:${FORKR_E2E_API_PORT:-17070}
FALLBACK_ADDR=127.0.0.1:${FORKR_E2E_FALLBACK_PORT:-17071}

say() { printf '== k8s-e2e: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (the cluster, btrfs loop devices and privileged pods need it)"

if [ "${FORKR_E2E_OWN_CLUSTER:-}" = 1 ]; then
  [ -n "${KUBECONFIG:-}" ] || die "FORKR_E2E_OWN_CLUSTER=1 needs KUBECONFIG"
  say "using the cluster of KUBECONFIG=$KUBECONFIG"
else
  [ -x "$K8S/build.sh" ] || die "no single-node Kubernetes scripts at $K8S"
  "$K8S/build.sh" || die "building Kubernetes failed"
  "$K8S/up.sh" || die "starting Kubernetes failed"
  eval "$("$K8S/env.sh")"
fi
kubectl version --short >/dev/null 2>&1 || kubectl get --raw /version >/dev/null || die "the apiserver does not answer"
NODE=$(kubectl get nodes -o jsonpath='{.items[0].metadata.name}')
[ -n "$NODE" ] || die "the cluster has no node"

say "building forkr-operator, forkr-node-agent, forkr-runner, forkr-crdgen, forkr-api"
# The API benchmark measures release binaries, as users run them; the suites use debug ones.
PROFILE=debug
[ "$API_BENCH" = 1 ] && PROFILE=release
cargo build --locked --profile "${PROFILE/debug/dev}" -p forkr-operator -p forkr-node-agent -p forkr-crds -p forkr-api --bins
BIN=$CARGO_TARGET_DIR/$PROFILE

say "runner image from a rootfs"
mkdir -p "$E2E/logs" "$E2E/pool"
RFS=$E2E/runner-rootfs
rm -rf "$RFS"
mkdir -p "$RFS"/{proc,sys,dev,volumes,forkr/scratch,forkr-data,tmp,etc,bin}
for v in box-bin box-all box-proj home; do mkdir -p "$RFS/forkr-system/$v"; done
cp "$BIN/forkr-runner" "$RFS/forkr-runner"
for lib in $(ldd "$BIN/forkr-runner" | grep -o '/[^ ]*'); do
  mkdir -p "$RFS$(dirname "$lib")"; cp -L "$lib" "$RFS$lib"
done
# busybox lets `kubectl exec` reach the box (chroot /volumes) when the agent path is down.
cp /usr/bin/busybox "$RFS/bin/busybox"
TAG=e2e-$(sha256sum "$BIN/forkr-runner" | cut -c1-12)
IMAGE=local/forkr-runner:$TAG
if [ "${FORKR_E2E_OWN_CLUSTER:-}" != 1 ]; then
  if ! "$K8S/image-import.sh" --list 2>/dev/null | grep -q "$IMAGE"; then
    "$K8S/image-import.sh" "$IMAGE" "$RFS" --entrypoint '["/forkr-runner"]' || die "image import failed"
  fi
else
  IMAGE=${FORKR_RUNNER_IMAGE:?set FORKR_RUNNER_IMAGE to a runner image your cluster can pull}
fi

say "CRDs (forkr-crdgen --without-cel: no CEL rules and no null in enums, as 1.20 needs)"
"$BIN/forkr-crdgen" --without-cel --stdout > "$E2E/crds.yaml" || die "rendering the CRDs failed"
kubectl apply -f "$E2E/crds.yaml" >/dev/null || die "installing the CRDs failed"
for crd in boxes bases snapshots datavolumes forkgrants; do
  kubectl wait --for condition=established --timeout=60s "crd/$crd.forkr.dev" >/dev/null || die "CRD $crd not established"
done
kubectl get ns forkr-system >/dev/null 2>&1 || kubectl create ns forkr-system >/dev/null

PIDS=()
cleanup() {
  [ -s "$E2E/api.pid" ] && PIDS+=("$(cat "$E2E/api.pid")") && rm -f "$E2E/api.pid"
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$DOWN" = 1 ] && [ "${FORKR_E2E_OWN_CLUSTER:-}" != 1 ]; then "$K8S/down.sh" || true; fi
}
trap cleanup EXIT
[ -s "$E2E/token" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$E2E/token"

say "forkr-node-agent on the host (pool $E2E/pool, $AGENT_ADDR)"
# The agent finds a box's PID 1 through containerd's task records, which no box can write; the
# test cluster keeps containerd's state under its home instead of /run/containerd.
CONTAINERD_STATE=${FORKR_E2E_CONTAINERD_STATE:-${FORKR_K8S_HOME:-/var/lib/forkr-k8s}/containerd/state}
"$BIN/forkr-node-agent" --pool "$E2E/pool" --loopback-gib 8 --socket "$E2E/agent.sock" \
  --listen "$AGENT_ADDR" --token-file "$E2E/token" --containerd-state "$CONTAINERD_STATE" \
  > "$E2E/logs/agent.log" 2>&1 &
PIDS+=($!)

say "forkr-operator on the host (leader election in forkr-system, metrics on $METRICS_ADDR)"
FORKR_DOMAIN=e2e.forkr.test "$BIN/forkr-operator" --runner-image "$IMAGE" --pool-dir "$E2E/pool" \
  --agent "$NODE=http://$AGENT_ADDR" --agent-token-file "$E2E/token" --listen "$METRICS_ADDR" \
  --identity "e2e-$$" --insecure > "$E2E/logs/operator.log" 2>&1 &
PIDS+=($!)

for _ in $(seq 1 100); do
  curl -fsS "http://$METRICS_ADDR/healthz" >/dev/null 2>&1 && break
  kill -0 "${PIDS[1]}" 2>/dev/null || { tail -20 "$E2E/logs/operator.log" >&2; die "forkr-operator exited"; }
  sleep 0.2
done
curl -fsS "http://$METRICS_ADDR/healthz" >/dev/null || die "forkr-operator /healthz does not answer"
kill -0 "${PIDS[0]}" 2>/dev/null || { tail -20 "$E2E/logs/agent.log" >&2; die "forkr-node-agent exited"; }

export FORKR_E2E_AGENT=http://$AGENT_ADDR FORKR_E2E_TOKEN_FILE=$E2E/token FORKR_E2E_POOL=$E2E/pool \
  FORKR_E2E_METRICS=http://$METRICS_ADDR FORKR_E2E_NODE=$NODE FORKR_E2E_OPERATOR_PID=${PIDS[1]}
# First, while the operator runs: the cluster suite ends by stopping it (leader takeover).
if [ "$BENCH" = 0 ]; then
  say "forkr-api with the Kubernetes backend on $API_ADDR (node agent first) and $FALLBACK_ADDR (Kubernetes exec only)"
  API_DATA=$E2E/api
  mkdir -p "$API_DATA" "$E2E/api-fallback"
  ADMIN=$("$BIN/forkr-api" token --admin --name e2e --data-dir "$API_DATA")
  SHOP=$("$BIN/forkr-api" token --project shop --name e2e --data-dir "$API_DATA")
  FB_ADMIN=$("$BIN/forkr-api" token --admin --name e2e --data-dir "$E2E/api-fallback")
  # The conformance suite kills this one with -9 and starts it again through this script, so it
  # runs detached and leaves its pid in a file for the cleanup.
  cat > "$E2E/api-start.sh" <<EOS
#!/usr/bin/env bash
export KUBECONFIG=${KUBECONFIG:-}
[ -s "$E2E/api.pid" ] && kill -9 "\$(cat "$E2E/api.pid")" 2>/dev/null
sleep 0.2
FORKR_DOMAIN=e2e.forkr.test setsid "$BIN/forkr-api" --data-dir "$API_DATA" --listen "$API_ADDR" \\
  --agent "$NODE=http://$AGENT_ADDR" --agent-token-file "$E2E/token" \\
  >> "$E2E/logs/api.log" 2>&1 < /dev/null &
echo \$! > "$E2E/api.pid"
EOS
  chmod +x "$E2E/api-start.sh"
  # A pid file left by a run that did not clean up names some other process by now.
  rm -f "$E2E/api.pid"
  : > "$E2E/logs/api.log"
  "$E2E/api-start.sh"
  FORKR_DOMAIN=e2e.forkr.test "$BIN/forkr-api" --data-dir "$E2E/api-fallback" --listen "$FALLBACK_ADDR" \
    > "$E2E/logs/api-fallback.log" 2>&1 &
  PIDS+=($!)
  for addr in "$API_ADDR" "$FALLBACK_ADDR"; do
    for _ in $(seq 1 300); do
      curl -fsS "http://$addr/readyz" >/dev/null 2>&1 && break
      sleep 0.2
    done
    curl -fsS "http://$addr/readyz" >/dev/null || { tail -n 20 "$E2E/logs/api.log" "$E2E/logs/api-fallback.log" >&2; die "forkr-api (kube backend) on $addr is not ready"; }
  done
  api_failed() {
    say "forkr-api log tail:"; tail -30 "$E2E/logs/api.log" >&2
    say "operator log tail:"; tail -30 "$E2E/logs/operator.log" >&2
    die "$1"
  }
  export FORKR_E2E_URL=http://$API_ADDR FORKR_E2E_ADMIN_TOKEN=$ADMIN FORKR_E2E_SHOP_TOKEN=$SHOP \
    FORKR_E2E_FALLBACK_URL=http://$FALLBACK_ADDR FORKR_E2E_FALLBACK_TOKEN=$FB_ADMIN \
    FORKR_E2E_DOMAIN=e2e.forkr.test FORKR_E2E_RESTART="$E2E/api-start.sh" \
    FORKR_E2E_CONCURRENCY=${FORKR_E2E_CONCURRENCY:-10}
  if [ "$API_BENCH" = 1 ]; then
    say "running e2e/examples/kube_bench.rs (release)"
    cargo run --locked --release -p forkr-e2e --example kube_bench || api_failed "the benchmark failed"
    exit 0
  fi
  say "running e2e/tests/kube.rs through forkr-api's Kubernetes backend"
  cargo nextest run --locked -p forkr-e2e --features kube --test kube --no-capture \
    || api_failed "the kube backend suite failed"
  # The API conformance suite: every backend-neutral test binary of e2e/tests (conformance,
  # tenancy and the others that speak HTTP only), one test at a time (they share this server),
  # so a suite added there runs here without a change. Its exceptions, documented in
  # docs/api.md: the publish test needs forkr-api's own reverse proxy, which a cluster replaces
  # with Ingress; tests/tls.rs starts local servers only.
  say "running the API conformance suite (e2e/tests/*.rs but kube and tls) through the Kubernetes backend"
  cargo nextest run --locked -p forkr-e2e --tests --no-capture --test-threads 1 \
    -E 'not binary(tls) and not test(publish_routes_hosts_through_the_proxy)' \
    || api_failed "the API conformance suite failed through the kube backend"
  unset FORKR_E2E_URL
fi
status=0
if [ "$BENCH" = 1 ]; then
  say "running operator/examples/k8s_bench.rs"
  cargo run --locked -p forkr-operator --features e2e --example k8s_bench || status=$?
else
  say "running operator/tests/cluster.rs"
  # The tenancy test first, on its own: the other one ends by stopping the leader operator.
  cargo nextest run --locked -p forkr-operator --features e2e --test cluster --no-capture \
    -E 'test(tenancy)' || status=$?
  [ "$status" = 0 ] && { cargo nextest run --locked -p forkr-operator --features e2e --test cluster \
    --no-capture -E 'not test(tenancy)' || status=$?; }
fi
if [ "$status" != 0 ]; then
  say "operator log tail:"; tail -40 "$E2E/logs/operator.log" >&2
  say "agent log tail:"; tail -20 "$E2E/logs/agent.log" >&2
  die "the cluster suite failed"
fi
say "passed"
