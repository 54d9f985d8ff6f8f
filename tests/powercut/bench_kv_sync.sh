#!/usr/bin/env bash
# bench_kv_sync.sh — what `kvd --kv-sync on` costs: `kvctl bench` puts against a fresh
# three-node cluster with --kv-sync off and on, alternating, RUNS times each (docs/DURABILITY.md
# "Synced commits"). Data on the plain disk under /tmp.
#   tests/powercut/bench_kv_sync.sh [RUNS] [kvctl bench flags...]
# Environment: RINGRAFT_BIN (default ./bin), RINGRAFT_TEST_IP_BASE (default 121).
set -u
root_dir="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${RINGRAFT_BIN:-$root_dir/bin}"
base="${RINGRAFT_TEST_IP_BASE:-121}"
runs="${1:-2}"
shift || true
bench_flags=("$@")
[ ${#bench_flags[@]} -gt 0 ] || bench_flags=(--op put --clients 16 --requests 10000 --value-size 100)
ip() { echo "127.0.0.$((base + $1 - 1))"; }
cluster_arg="1=$(ip 1):7001,2=$(ip 2):7001,3=$(ip 3):7001"
endpoints="$(ip 1):9001,$(ip 2):9001,$(ip 3):9001"
tmp="$(mktemp -d /tmp/powercut-bench-XXXXXX)"
pids=()

stop_all() {
  local p i
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  pids=()
}
trap 'stop_all; rm -rf "$tmp"' EXIT
trap 'exit 2' INT TERM

leaders_ready() {
  local out
  out="$("$bin/kvctl" --endpoints "$endpoints" --timeout 1s groups 2>/dev/null)" || return 1
  [ "$(printf '%s\n' "$out" | awk 'NR > 1 && $1 ~ /^[0-9]+$/' | wc -l)" -ge 1 ] &&
    [ "$(printf '%s\n' "$out" | awk 'NR > 1 && $2 == "none"' | wc -l)" -eq 0 ]
}

one() { # MODE RUN
  local d="$tmp/$1-$2" n i
  for n in 1 2 3; do
    mkdir -p "$d/node$n"
    setsid "$bin/kvd" --data-dir "$d/node$n" --id "$n" --client-addr "$(ip "$n"):9001" \
      --cluster "$cluster_arg" --groups 8 --kv-sync "$1" </dev/null >>"$d/node$n.log" 2>&1 &
    pids+=($!)
  done
  for i in $(seq 150); do leaders_ready && break; sleep 0.2; done
  "$bin/kvctl" --endpoints "$endpoints" bench "${bench_flags[@]}" >"$d/bench.out" 2>&1
  echo "kv-sync $1, run $2: $(grep -iE 'ops/s|throughput|req/s' "$d/bench.out" | head -1)"
  stop_all
  rm -rf "$d"
}

echo "bench_kv_sync: kvctl bench ${bench_flags[*]}, $runs runs per mode, alternating"
for r in $(seq "$runs"); do
  one off "$r"
  one on "$r"
done
