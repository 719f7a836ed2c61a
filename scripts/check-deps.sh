#!/usr/bin/env bash
# Keeps the contracts split (issue 13): the binaries meet through the protocol crates, never
# through each other. Checked on the whole workspace at once, because cargo unifies features
# across the packages it builds together, and that is how `4kr` once linked the server.
#
#   forkr-cli       reaches neither forkr-api, axum nor rusqlite;
#   forkr-operator  reaches neither forkr-node-agent, libbtrfsutil nor bindgen;
#   forkr-api       does not reach forkr-operator;
# and in node-agent, only sys/ holds `unsafe` or spawns a host binary (`Command::new`).
set -euo pipefail
cd "$(dirname "$0")/.."

tree=$(cargo tree --workspace --locked -e normal,build --no-dedupe --prefix depth --format '{p}')

# The packages one workspace member reaches, one name a line.
reach() {
    awk -v root="$1" '
        /^0/ { inside = ($0 ~ "^0" root " ") }
        inside && !/^0/ { sub(/^[0-9]+/, ""); print $1 }
    ' <<<"$tree" | sort -u
}

fail=0
forbid() {
    local from=$1; shift
    local reached
    reached=$(reach "$from")
    if [ -z "$reached" ]; then
        echo "check-deps: $from is not in the workspace tree" >&2
        fail=1
        return
    fi
    for p in "$@"; do
        if grep -qx "$p" <<<"$reached"; then
            echo "check-deps: $from depends on $p (see: cargo tree --workspace -e normal,build -i $p)" >&2
            fail=1
        fi
    done
}

forbid forkr-cli forkr-api axum rusqlite libsqlite3-sys forkr-node-agent forkr-operator
forbid forkr-operator forkr-node-agent libbtrfsutil bindgen forkr-api
forbid forkr-api forkr-operator

outside=$(grep -rnE 'Command::new|\bunsafe\b' node-agent/src --include='*.rs' | grep -v '^node-agent/src/sys/' || true)
if [ -n "$outside" ]; then
    echo "check-deps: unsafe or Command::new outside node-agent/src/sys/:" >&2
    echo "$outside" >&2
    fail=1
fi

if [ "$fail" -ne 0 ]; then
    exit 1
fi
echo "check-deps: the contracts hold (cli, operator and api reach only what they may)"
