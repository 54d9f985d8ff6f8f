#!/usr/bin/env bash
# bench-idle.sh — what idle groups cost (docs/PERFORMANCE.md, "Idle groups"; issue 19).
#
# Starts 3 kvd nodes with --groups G on loopback, waits until every group has a leader, lets
# them idle for IDLE_S seconds and prints each node's CPU over that time (utime+stime from
# /proc/PID/stat, as a share of one core) and its RSS. Then it wakes groups: WAKE_PUTS puts of
# new keys (each lands in some group that was idle), timed one by one; and, unless NO_KILL=1,
# it kills one node (SIGKILL) and times puts through the other two until every one succeeds:
# the groups that node led must elect a new leader first, woken by their peers' failure
# detector (the link closes), raft/quiesce.c.
#
#   scripts/bench-idle.sh [--groups G] [--quiesce on|off|default] [--idle S] [--runs R]
# Environment: RINGRAFT_BIN (default ./bin), IP_BASE (default 111: nodes on 127.0.0.111-113),
# PORT (default 7400), WAKE_PUTS (default 20), SETTLE_S (default 10: wait after every group
# has a leader, before measuring), NO_KILL=1, KEEP=1 (keep the data directories).
set -u

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${RINGRAFT_BIN:-$root/bin}"
groups=1024
quiesce=on
idle_s=30
runs=1
while [ $# -gt 0 ]; do
  case "$1" in
  --groups) groups="$2"; shift 2 ;;
  --quiesce) quiesce="$2"; shift 2 ;;
  --idle) idle_s="$2"; shift 2 ;;
  --runs) runs="$2"; shift 2 ;;
  *) echo "usage: $0 [--groups G] [--quiesce on|off] [--idle S] [--runs R]" >&2; exit 2 ;;
  esac
done
# --quiesce default: pass no flag (a kvd from before quiescence, for the "before" figures)
quiesce_flag=()
[ "$quiesce" = default ] || quiesce_flag=(--quiesce "$quiesce")
ip_base="${IP_BASE:-111}"
port="${PORT:-7400}"
wake_puts="${WAKE_PUTS:-20}"
hz="$(getconf CLK_TCK)"
ips=("127.0.0.$ip_base" "127.0.0.$((ip_base + 1))" "127.0.0.$((ip_base + 2))")
cluster_arg="1=${ips[0]}:$port,2=${ips[1]}:$port,3=${ips[2]}:$port"
endpoints="${ips[0]}:$((port + 1)),${ips[1]}:$((port + 1)),${ips[2]}:$((port + 1))"
work="$(mktemp -d /tmp/bench-idle.XXXXXX)"
pids=()

cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  [ "${KEEP:-0}" = 1 ] && echo "data kept in $work" || rm -rf "$work"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, in clock ticks
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
rss_parts() { awk '/^RssAnon|^RssFile/ {printf "%s %d MB ", $1, $2 / 1024}' "/proc/$1/status"; }

leaders_ready() {
  local out rows none
  out="$("$bin/kvctl" --endpoints "$endpoints" --timeout 2s groups 2>/dev/null)" || return 1
  rows="$(printf '%s\n' "$out" | awk 'NR > 1 && $1 ~ /^[0-9]+$/' | wc -l)"
  none="$(printf '%s\n' "$out" | awk 'NR > 1 && $2 == "none"' | wc -l)"
  [ "$rows" -eq "$groups" ] && [ "$none" -eq 0 ]
}

stop_nodes() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  pids=()
}

one_run() {
  local r="$1" i dir
  pids=()
  for i in 1 2 3; do
    dir="$work/run$r/node$i"
    mkdir -p "$dir"
    "$bin/kvd" --data-dir "$dir" --id "$i" --peer-addr "${ips[$((i - 1))]}:$port" \
      --client-addr "${ips[$((i - 1))]}:$((port + 1))" --cluster "$cluster_arg" \
      --groups "$groups" ${quiesce_flag[@]+"${quiesce_flag[@]}"} </dev/null >"$work/run$r-node$i.log" 2>&1 &
    pids+=($!)
  done
  local t0 deadline
  t0="$(now_ms)"
  deadline=$((SECONDS + 120))
  until leaders_ready; do
    for i in 0 1 2; do
      kill -0 "${pids[i]}" 2>/dev/null ||
        { echo "run $r: node $((i + 1)) exited (addresses in use?): $work/run$r-node$((i + 1)).log" >&2; return 1; }
    done
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "run $r: groups still without a leader after 120 s" >&2
      return 1
    fi
    sleep 0.5
  done
  echo "run $r: $groups groups, quiesce $quiesce: every group has a leader after $(($(now_ms) - t0)) ms"
  sleep "${SETTLE_S:-10}" # leader balancing moves some leaderships in the first seconds
  for i in 0 1 2; do
    kill -0 "${pids[i]}" 2>/dev/null || { echo "run $r: node $((i + 1)) exited" >&2; return 1; }
  done
  # the idle window
  local before=() after=() t1 t2
  for i in 0 1 2; do before[i]="$(cpu_ticks "${pids[i]}")"; done
  t1="$(now_ms)"
  sleep "$idle_s"
  t2="$(now_ms)"
  for i in 0 1 2; do after[i]="$(cpu_ticks "${pids[i]}")"; done
  for i in 0 1 2; do
    awk -v a="${before[i]}" -v b="${after[i]}" -v hz="$hz" -v ms="$((t2 - t1))" -v n="$((i + 1))" \
      -v rss="$(rss_kb "${pids[i]}")" \
      -v parts="$(rss_parts "${pids[i]}")" \
      'BEGIN { printf "  node %d: idle CPU %.2f%% of a core over %.1f s (utime+stime %d ticks), RSS %d MB (%s)\n", n, 100 * (b - a) / hz / (ms / 1000), ms / 1000, b - a, rss / 1024, parts }'
  done
  # waking idle groups: one put each, timed
  local lat=() t
  for i in $(seq 1 "$wake_puts"); do
    t="$(now_ms)"
    "$bin/kvctl" --endpoints "$endpoints" --timeout 10s put "idle-$r-$i-$RANDOM" v >/dev/null ||
      echo "  put $i failed" >&2
    lat+=($(($(now_ms) - t)))
  done
  echo "  puts to idle groups (ms, kvctl process included): ${lat[*]}"
  if [ "${NO_KILL:-0}" = 1 ]; then
    stop_nodes
    return 0
  fi
  # the leader of a third of the groups dies
  local rest="${ips[1]}:$((port + 1)),${ips[2]}:$((port + 1))"
  sleep "$idle_s"
  kill -KILL "${pids[0]}"
  wait "${pids[0]}" 2>/dev/null
  local tk
  tk="$(now_ms)"
  lat=()
  for i in $(seq 1 "$wake_puts"); do
    t="$(now_ms)"
    "$bin/kvctl" --endpoints "$rest" --timeout 10s put "dead-$r-$i-$RANDOM" v >/dev/null ||
      echo "  put $i failed after the kill" >&2
    lat+=($(($(now_ms) - t)))
  done
  echo "  after SIGKILL of node 1, puts through nodes 2-3 (ms each, from $(($(now_ms) - tk)) ms in all): ${lat[*]}"
  stop_nodes
}

echo "bench-idle: $(date -u +%FT%TZ), $(nproc) CPUs, kvd $bin/kvd"
for r in $(seq 1 "$runs"); do
  one_run "$r" || exit 1
done
