#!/usr/bin/env bash
# bench-overload.sh — the overload check of docs/PERFORMANCE.md "Overload": starts a fresh
# three-node cluster from BIN, runs `kvctl bench` with the given load from P processes at once,
# samples every node's RssAnon (/proc/PID/status) while it runs, prints each process's summary
# and the peak anonymous memory of each node, then stops exactly the nodes it started.
#   scripts/bench-overload.sh BIN IP_BASE P [bench flags...]  (extra kvd flags: KVD_FLAGS)
# IP_BASE: nodes listen on 127.0.0.IP_BASE .. IP_BASE+2. Example:
#   scripts/bench-overload.sh bin 101 1 --clients 256 --pipeline 64 --value-size 4096 --requests 300000
set -u
bin="$1"; base="$2"; procs="$3"; shift 3
dir="$(mktemp -d /tmp/ringraft-overload.XXXXXX)"
cluster="" eps="" pids=()
for i in 1 2 3; do
  ip="127.0.0.$((base + i - 1))"
  cluster="${cluster:+$cluster,}$i=$ip:7001"
  eps="${eps:+$eps,}$ip:9001"
done
for i in 1 2 3; do
  ip="127.0.0.$((base + i - 1))"
  # shellcheck disable=SC2086
  "$bin/kvd" --id "$i" --data-dir "$dir/n$i" --peer-addr "$ip:7001" --client-addr "$ip:9001" \
    --cluster "$cluster" --metrics-addr "$ip:9180" ${KVD_FLAGS:-} >"$dir/n$i.log" 2>&1 &
  pids+=($!)
done
cleanup() { kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
# Every group led by its preferred node (group g by node (g-1) % 3 + 1: leaders balanced),
# so that no leadership moves during the run.
for _ in $(seq 1 100); do
  "$bin/kvctl" --endpoints "$eps" groups 2>/dev/null |
    awk 'NR > 1 && $2 != ($1 - 1) % 3 + 1 {bad = 1} NR > 1 {n++} END {exit !(n > 0 && !bad)}' &&
    break
  sleep 0.3
done
"$bin/kvctl" --endpoints "$eps" bench --clients 8 --requests 2000 --value-size 16 >/dev/null 2>&1
anon() { awk '/RssAnon/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
declare -A peak
for p in "${pids[@]}"; do peak[$p]=$(anon "$p"); done
echo "before: load $(cut -d' ' -f1-3 /proc/loadavg); RssAnon kB: $(for p in "${pids[@]}"; do printf '%s ' "${peak[$p]}"; done)"
bpids=()
for k in $(seq 1 "$procs"); do
  "$bin/kvctl" --endpoints "$eps" bench "$@" >"$dir/bench$k.out" 2>&1 &
  bpids+=($!)
done
while kill -0 "${bpids[@]}" 2>/dev/null; do
  for p in "${pids[@]}"; do
    a=$(anon "$p"); [ "${a:-0}" -gt "${peak[$p]}" ] && peak[$p]=$a
  done
  sleep 0.5
done
wait "${bpids[@]}"
for k in $(seq 1 "$procs"); do echo "-- bench $k"; cat "$dir/bench$k.out"; done
# The nodes' own view: put latency from arrival to answer (histogram), sheds, WAL fsyncs.
for i in 1 2 3; do
  curl -s --max-time 5 "http://127.0.0.$((base + i - 1)):9180/metrics" >"$dir/metrics$i" 2>/dev/null
  echo "node $i put latency buckets (le=count): $(grep '^ringraft_client_request_duration_seconds_bucket{op="put"' "$dir/metrics$i" | sed 's/.*le="\([^"]*\)"} \(.*\)/\1=\2/' | tr '\n' ' ')"
  echo "node $i: $(grep -h '^ringraft_requests_shed_total' "$dir/metrics$i" | tr '\n' ' ')"
done
echo "after: load $(cut -d' ' -f1-3 /proc/loadavg); peak RssAnon kB: $(for p in "${pids[@]}"; do printf '%s ' "${peak[$p]}"; done)"
