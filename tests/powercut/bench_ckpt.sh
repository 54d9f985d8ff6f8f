#!/usr/bin/env bash
# bench_ckpt.sh — what the pinned checkpoint costs (docs/DURABILITY.md "Rollback to the pinned
# checkpoint", docs/PERFORMANCE.md): `kvctl bench` puts against a fresh three-node cluster
# (8 groups, data on the plain disk under /tmp) with build A and build B alternating, RUNS
# times each, and each node's LMDB size (`kvctl status`: pages in use, not the preallocated
# file) after the run.
#   tests/powercut/bench_ckpt.sh RUNS BIN_A BIN_B [kvctl bench flags...]
# Environment: RINGRAFT_TEST_IP_BASE (default 121); KVD_ARGS_A, KVD_ARGS_B (extra kvd flags).
set -u
runs="${1:?usage: bench_ckpt.sh RUNS BIN_A BIN_B [bench flags]}"
bin_a="${2:?}" bin_b="${3:?}"
shift 3
bench_flags=("$@")
[ ${#bench_flags[@]} -gt 0 ] ||
  bench_flags=(--op put --clients 64 --requests 100000 --value-size 256 --keys 100000)
base="${RINGRAFT_TEST_IP_BASE:-121}"
ip() { echo "127.0.0.$((base + $1 - 1))"; }
cluster_arg="1=$(ip 1):7001,2=$(ip 2):7001,3=$(ip 3):7001"
endpoints="$(ip 1):9001,$(ip 2):9001,$(ip 3):9001"
tmp="$(mktemp -d /tmp/powercut-bench-XXXXXX)"
pids=()

stop_all() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  pids=()
}
trap 'stop_all; rm -rf "$tmp"' EXIT
trap 'exit 2' INT TERM

leaders_ready() { # BIN
  local out
  out="$("$1/kvctl" --endpoints "$endpoints" --timeout 1s groups 2>/dev/null)" || return 1
  [ "$(printf '%s\n' "$out" | awk 'NR > 1 && $1 ~ /^[0-9]+$/' | wc -l)" -ge 1 ] &&
    [ "$(printf '%s\n' "$out" | awk 'NR > 1 && $2 == "none"' | wc -l)" -eq 0 ]
}

one() { # NAME BIN EXTRA RUN
  local d="$tmp/$1-$4" n sizes=""
  for n in 1 2 3; do
    mkdir -p "$d/node$n"
    # shellcheck disable=SC2086 # EXTRA is word-split on purpose
    setsid "$2/kvd" --data-dir "$d/node$n" --id "$n" --client-addr "$(ip "$n"):9001" \
      --cluster "$cluster_arg" --groups 8 $3 </dev/null >>"$d/node$n.log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 150); do leaders_ready "$2" && break; sleep 0.2; done
  sleep 2
  "$2/kvctl" --endpoints "$endpoints" -o json bench "${bench_flags[@]}" >"$d/bench.out" 2>&1
  for n in 1 2 3; do
    sizes="$sizes $("$2/kvctl" --endpoints "$(ip "$n"):9001" -o json status 2>/dev/null |
      grep -o '"lmdb_bytes": [0-9]*' | head -1 | awk '{ printf "%.1f", $2 / 1048576 }')"
  done
  echo "$1 run $4: $(grep -oE '"(ops_per_s|throughput|puts_per_s)[a-z_]*": [0-9.]+' "$d/bench.out" | head -1) lmdb_MiB:$sizes load: $(cut -d' ' -f1 /proc/loadavg)"
  stop_all
  rm -rf "$d"
}

echo "bench_ckpt: kvctl bench ${bench_flags[*]}; A=$bin_a ${KVD_ARGS_A:-}; B=$bin_b ${KVD_ARGS_B:-}"
for r in $(seq "$runs"); do
  if [ $((r % 2)) = 1 ]; then
    one A "$bin_a" "${KVD_ARGS_A:-}" "$r"
    one B "$bin_b" "${KVD_ARGS_B:-}" "$r"
  else
    one B "$bin_b" "${KVD_ARGS_B:-}" "$r"
    one A "$bin_a" "${KVD_ARGS_A:-}" "$r"
  fi
done
