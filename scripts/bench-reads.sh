#!/usr/bin/env bash
# bench-reads.sh - issue 19: linearizable (ReadIndex) against serializable gets, 64 clients.
# One fresh 3-node cluster (8 groups); 100k puts of 256 B over 100k keys; then RUNS rounds of
# 64-client gets, linearizable then serializable, same keys.
#   scripts/bench-reads.sh [RUNS]
set -u
# Environment: RINGRAFT_BIN (default ./bin), RINGRAFT_TEST_IP_BASE (default 131), KVD_ARGS (more
# kvd flags for every node, e.g. KVD_ARGS='--lease-reads on').
runs=${1:-5}; bin="${RINGRAFT_BIN:-./bin}"; base="${RINGRAFT_TEST_IP_BASE:-131}"
ip() { echo "127.0.0.$((base + $1 - 1))"; }
cluster_arg="1=$(ip 1):7001,2=$(ip 2):7001,3=$(ip 3):7001"
endpoints="$(ip 1):9001,$(ip 2):9001,$(ip 3):9001"
tmp="$(mktemp -d /tmp/reads-XXXXXX)"; pids=()
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done; }
trap 'stop_all; rm -rf "$tmp"' EXIT
for n in 1 2 3; do mkdir -p "$tmp/node$n"
  setsid "$bin/kvd" --data-dir "$tmp/node$n" --id "$n" --client-addr "$(ip "$n"):9001" --cluster "$cluster_arg" --groups 8 ${KVD_ARGS:-} </dev/null >>"$tmp/node$n.log" 2>&1 & pids+=($!); done
for _ in $(seq 150); do out="$("$bin/kvctl" --endpoints "$endpoints" --timeout 1s groups 2>/dev/null)" && [ "$(printf '%s\n' "$out" | awk 'NR > 1 && $2 == "none"' | wc -l)" -eq 0 ] && break; sleep 0.2; done
sleep 2
"$bin/kvctl" --endpoints "$endpoints" -o json bench --op put --clients 64 --requests 100000 --value-size 256 --keys 100000 | grep -oE '"throughput": [0-9.]+' | sed 's/^/puts /'
for r in $(seq "$runs"); do
  for mode in lin ser; do
    extra=(); [ $mode = ser ] && extra=(--serializable)
    out="$("$bin/kvctl" --endpoints "$endpoints" -o json bench --op get --clients 64 --requests 100000 --value-size 256 --keys 100000 "${extra[@]}")"
    echo "run $r $mode: $(printf '%s' "$out" | grep -oE '"(throughput|p50_ms|p99_ms|errors)": [0-9.]+' | tr '\n' ' ') load $(cut -d' ' -f1 /proc/loadavg)"
  done
done
