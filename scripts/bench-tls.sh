#!/usr/bin/env bash
# bench-tls.sh — issue 22's TLS cost (docs/PERFORMANCE.md "TLS"): `kvctl bench` puts against a
# fresh three-node cluster in plaintext and with TLS on every port (mutual between peers,
# kvctl verifying the nodes' certificates), alternating, one fresh cluster per run, and the
# ratio of the medians.
#
#   scripts/bench-tls.sh [--pairs N] [--ip-base B] [--bin DIR] [--requests N] [--clients N]
#
#   --pairs N     plaintext/TLS pairs (default 5)
#   --ip-base B   nodes on 127.0.0.B..B+2 (default 146)
#   --bin DIR     kvd and kvctl (default ./bin)
#   --requests N  puts per run (default 20000); --clients N (default 4); 100-byte values
#
# Certificates: a throwaway CA from scripts/tls-certs in the run's temp directory. Each run
# starts once every group has a leader and the leaders stayed put for a second (the leader
# balancer has settled). Stops exactly the nodes it started; removes its temp directory.
set -u

pairs=5 base=146 requests=20000 clients=4
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/bin"
while [ $# -gt 0 ]; do
  case "$1" in
  --pairs) pairs="$2"; shift 2 ;;
  --ip-base) base="$2"; shift 2 ;;
  --bin) bin="$2"; shift 2 ;;
  --requests) requests="$2"; shift 2 ;;
  --clients) clients="$2"; shift 2 ;;
  -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "bench-tls: unknown argument $1 (--help)" >&2; exit 2 ;;
  esac
done
tmp=$(mktemp -d /tmp/ringraft-bench-tls.XXXXXX)
pids=()
stop_nodes() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  pids=()
}
trap 'stop_nodes; rm -rf "$tmp"' EXIT
"$root/scripts/tls-certs" "$tmp/tls" node1 node2 node3 >/dev/null || exit 1

cluster="" eps=""
for i in 1 2 3; do
  cluster="${cluster:+$cluster,}$i=127.0.0.$((base + i - 1)):7001"
  eps="${eps:+$eps,}127.0.0.$((base + i - 1)):9001"
done

run() { # mode (plain|tls) -> "req/s p50_ms p99_ms errors"
  local mode=$1 d="$tmp/run" tlsargs=() kv=("$bin/kvctl" --endpoints "$eps")
  rm -rf "$d"
  mkdir -p "$d"
  for i in 1 2 3; do
    [ "$mode" = tls ] && tlsargs=(--tls-cert "$tmp/tls/node$i.pem" --tls-key "$tmp/tls/node$i.key"
      --tls-ca "$tmp/tls/ca.pem")
    "$bin/kvd" --id "$i" --data-dir "$d/n$i" --peer-addr "127.0.0.$((base + i - 1)):7001" \
      --client-addr "127.0.0.$((base + i - 1)):9001" --cluster "$cluster" --groups 8 \
      "${tlsargs[@]}" >"$d/n$i.log" 2>&1 &
    pids+=($!)
  done
  [ "$mode" = tls ] && kv+=(--tls-ca "$tmp/tls/ca.pem")
  local a b ok=0
  for _ in $(seq 1 60); do
    a=$("${kv[@]}" --timeout 1s groups 2>/dev/null | awk 'NR > 1 && $2 ~ /^[1-3]$/ {print $1, $2}')
    if [ "$(echo "$a" | grep -c .)" = 8 ]; then
      sleep 1
      b=$("${kv[@]}" --timeout 1s groups 2>/dev/null | awk 'NR > 1 && $2 ~ /^[1-3]$/ {print $1, $2}')
      [ "$a" = "$b" ] && ok=1 && break
    fi
    sleep 0.5
  done
  if [ "$ok" != 1 ]; then
    echo "bench-tls: the $mode cluster's leaders did not settle in 60 s" >&2
    stop_nodes
    return 1
  fi
  "${kv[@]}" -o json bench --op put --requests "$requests" --clients "$clients" --value-size 100 \
    2>/dev/null | awk '
      function num(k,   m) { if (!match($0, "\"" k "\": *[0-9.]+")) return "?"
        m = substr($0, RSTART, RLENGTH); sub(/.*: */, "", m); return m }
      { s = s $0 } END { $0 = s; print num("throughput"), num("p50_ms"), num("p99_ms"), num("errors") }'
  stop_nodes
}

median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "bench-tls: $(date -u '+%Y-%m-%d %H:%M') UTC, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "kvctl bench --op put --requests $requests --clients $clients --value-size 100; 3 nodes, 8 groups"
echo
echo "| pair | mode | req/s | p50 ms | p99 ms | errors |"
echo "| --- | --- | ---: | ---: | ---: | ---: |"
: >"$tmp/plain" && : >"$tmp/tls.res"
for ((p = 1; p <= pairs; p++)); do
  for mode in plain tls; do
    r=$(run "$mode") || exit 1
    read -r rps p50 p99 errs <<<"$r"
    echo "| $p | $mode | $rps | $p50 | $p99 | $errs |"
    if [ "$mode" = plain ]; then echo "$rps" >>"$tmp/plain"; else echo "$rps" >>"$tmp/tls.res"; fi
  done
done
mp=$(median <"$tmp/plain") mt=$(median <"$tmp/tls.res")
echo
echo "medians: plaintext $mp req/s, TLS $mt req/s, TLS/plaintext $(awk -v a="$mt" -v b="$mp" 'BEGIN {printf "%.2f", a / b}')"
