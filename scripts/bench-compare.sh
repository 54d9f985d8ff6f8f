#!/usr/bin/env bash
# bench-compare.sh — issue 19's side-by-side figures (docs/PERFORMANCE.md "Against Redis"):
# one Redis node with AOF on and fsync always, and a fresh three-node ringraft cluster (fsync
# on, its RESP port), driven by the same load generator (redis-benchmark) with the same loads:
# puts from 1 client, puts from 64 clients, 64 connections pipelining 16, gets from 64 clients;
# 256-byte values over 100,000 keys. Each load runs against Redis, then against ringraft, in
# every round (alternating, so that a noisy neighbour hits both); the servers' CPU (user+sys of
# every server process, /proc/PID/stat) is sampled around each load. Prints every run, then
# the medians and the ratios as a markdown table.
#
#   scripts/bench-compare.sh [--runs N] [--requests N] [--ip-base B] [--bin DIR] [--groups G]
#
#   --runs N      rounds (default 5: the medians of docs/PERFORMANCE.md)
#   --requests N  requests per multi-client load (default 200000; the 1-client load does N/10)
#   --ip-base B   Redis listens on 127.0.0.B, the nodes on B+1..B+3 (default 91)
#   --bin DIR     kvd and kvctl (default ./bin)
#   --groups G    ringraft's --groups (default 8)
#   --loads LIST  which loads, comma-separated (default put1,put64,pipe64,get64)
#   --counts      also count the servers' system calls and context switches per operation
#                 (perf stat, tracepoint raw_syscalls:sys_enter; perf from Debian's linux-perf)
#   KVD_FLAGS     extra kvd flags (never one that turns fsync off)
#
# redis-server comes from Debian: installed when missing (as root), with its service kept
# from starting (this script starts its own Redis, on its own address, and stops it).
# The load generator runs as three redis-benchmark processes for every multi-client load
# (64 connections split 22/21/21; ringraft: one process per node, each node forwarding what
# it does not lead), so both servers see the same shape of load. Stops exactly what it started.
set -u

runs=5 requests=200000 base=91 groups=8 loads="put1,put64,pipe64,get64" counts=0
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/bin"
usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
  --runs) runs="$2"; shift 2 ;;
  --requests) requests="$2"; shift 2 ;;
  --ip-base) base="$2"; shift 2 ;;
  --bin) bin="$2"; shift 2 ;;
  --groups) groups="$2"; shift 2 ;;
  --loads) loads="$2"; shift 2 ;;
  --counts) counts=1; shift ;;
  -h | --help) usage; exit 0 ;;
  *) echo "bench-compare: unknown argument '$1' (--help)" >&2; exit 2 ;;
  esac
done
for v in "$runs" "$requests" "$base" "$groups"; do
  case "$v" in '' | *[!0-9]*) echo "bench-compare: '$v' is not a number" >&2; exit 2 ;; esac
done
[ "$runs" -ge 1 ] && [ "$requests" -ge 1000 ] || { echo "bench-compare: --runs >= 1, --requests >= 1000" >&2; exit 2; }
[ "$base" -ge 1 ] && [ "$base" -le 250 ] || { echo "bench-compare: --ip-base 1..250" >&2; exit 2; }
[ -x "$bin/kvd" ] && [ -x "$bin/kvctl" ] || { echo "bench-compare: no kvd/kvctl in $bin (make first)" >&2; exit 2; }
for l in ${loads//,/ }; do
  case "$l" in put1 | put64 | pipe64 | get64) ;; *) echo "bench-compare: unknown load '$l' (put1, put64, pipe64, get64)" >&2; exit 2 ;; esac
done
if [ "$counts" = 1 ] && ! perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
  echo "bench-compare: --counts needs perf with the raw_syscalls tracepoint (Debian linux-perf, run as root)" >&2; exit 2
fi
command -v redis-benchmark >/dev/null || { echo "bench-compare: redis-benchmark missing (make installs redis-tools)" >&2; exit 2; }

# ------------------------------------------------------------------- redis-server from Debian
if ! command -v redis-server >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "bench-compare: redis-server missing; run as root: apt-get install -y redis-server" >&2; exit 2; }
  echo "bench-compare: installing redis-server (apt-get), its service kept from starting" >&2
  # policy-rc.d exit 101 = "action forbidden": the package's postinst does not start a Redis
  # of its own; only made (and removed) when there is none already.
  policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; made_policy=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >&2
  rc=$?
  [ "$made_policy" = 1 ] && rm -f "$policy"
  [ "$rc" = 0 ] || { echo "bench-compare: apt-get install redis-server failed" >&2; exit 2; }
fi

dir="$(mktemp -d /tmp/ringraft-compare.XXXXXX)"
pids=() rpid=""
cleanup() {
  [ -n "$rpid" ] && kill "$rpid" 2>/dev/null
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -------------------------------------------------------------------------- start the servers
rip="127.0.0.$base"
redis-server --bind "$rip" --port 6379 --dir "$dir" --appendonly yes --appendfsync always \
  --save "" --daemonize no --logfile "$dir/redis.log" &
rpid=$!
cluster="" eps=""
for i in 1 2 3; do
  ip="127.0.0.$((base + i))"
  cluster="${cluster:+$cluster,}$i=$ip:7001"
  eps="${eps:+$eps,}$ip:9001"
done
for i in 1 2 3; do
  ip="127.0.0.$((base + i))"
  # shellcheck disable=SC2086
  "$bin/kvd" --id "$i" --data-dir "$dir/n$i" --peer-addr "$ip:7001" --client-addr "$ip:9001" \
    --resp-addr "$ip:6379" --cluster "$cluster" --groups "$groups" ${KVD_FLAGS:-} \
    >"$dir/n$i.log" 2>&1 &
  pids+=($!)
done
ok=0
for _ in $(seq 1 100); do
  redis-cli -h "$rip" ping >/dev/null 2>&1 && ok=1 && break
  sleep 0.2
done
[ "$ok" = 1 ] || { echo "bench-compare: redis-server did not start:" >&2; tail -5 "$dir/redis.log" >&2; exit 1; }
# Every group has a leader and the leaderships are balanced (the balancer's floor/ceil of
# G/3 per node), the same in two samples a second apart: no leadership moves during the loads.
balanced() {
  "$bin/kvctl" --endpoints "$eps" groups 2>/dev/null | awk -v g="$groups" '
    NR > 1 && $2 ~ /^[1-3]$/ {n++; c[$2]++}
    END {lo = int(g / 3); hi = lo + (g % 3 > 0)
      for (i = 1; i <= 3; i++) if (c[i] < lo || c[i] > hi) exit 1
      exit !(n == g)}'
}
ok=0
for _ in $(seq 1 60); do
  if balanced; then
    a=$("$bin/kvctl" --endpoints "$eps" groups 2>/dev/null | awk 'NR > 1 {print $1, $2}')
    sleep 1
    b=$("$bin/kvctl" --endpoints "$eps" groups 2>/dev/null | awk 'NR > 1 {print $1, $2}')
    [ "$a" = "$b" ] && balanced && ok=1 && break
  fi
  sleep 0.5
done
[ "$ok" = 1 ] || { echo "bench-compare: the cluster's leaders did not settle in 30 s" >&2; exit 1; }

# ticks of user+sys of the given pids (fields 14 and 15 of /proc/PID/stat; the command name
# in field 2 has no spaces here)
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
hz=$(getconf CLK_TCK)

# load NAME TARGET: runs one load against "redis" or "ringraft"; prints
#   NAME TARGET rps p50_ms cpu_us_per_op wall_s [syscalls_per_op cswitches_per_op]
load() {
  local name="$1" target="$2" hosts=() spids=() c=() n t0 t1 i p
  if [ "$target" = redis ]; then hosts=("$rip" "$rip" "$rip") spids=("$rpid")
  else hosts=("127.0.0.$((base + 1))" "127.0.0.$((base + 2))" "127.0.0.$((base + 3))") spids=("${pids[@]}"); fi
  local test=set pipe=1
  case "$name" in
  put1) c=(1) n=$((requests / 10)) ;;
  put64) c=(22 21 21) n=$requests ;;
  pipe64) c=(22 21 21) n=$((requests * 2)) pipe=16 ;;
  get64) c=(22 21 21) n=$requests test=get ;;
  esac
  t0=$(ticks "${spids[@]}")
  local start end bp=() ppid=""
  if [ "$counts" = 1 ]; then
    local plist
    plist=$(IFS=,; echo "${spids[*]}")
    perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "$plist" -o "$dir/$name.$target.perf" &
    ppid=$!
    sleep 0.2 # perf attaches before the load begins
  fi
  start=$(date +%s.%N)
  for i in "${!c[@]}"; do
    redis-benchmark -h "${hosts[$i]}" -p 6379 -t "$test" -c "${c[$i]}" -P "$pipe" \
      -n $((n * c[i] / (c[0] + ${c[1]:-0} + ${c[2]:-0}))) -d 256 -r 100000 --csv \
      >"$dir/$name.$target.$i.csv" 2>"$dir/$name.$target.$i.err" &
    bp+=($!)
  done
  wait "${bp[@]}"
  end=$(date +%s.%N)
  t1=$(ticks "${spids[@]}")
  if [ -n "$ppid" ]; then kill -INT "$ppid"; wait "$ppid" 2>/dev/null; fi
  # rps: the processes' own figures summed (each measured over its own run); p50: the
  # slowest process's (they overlap, so the worst is the honest one for "a client sees")
  local rps=0 p50=0 line
  for i in "${!c[@]}"; do
    line=$(grep -i "^\"$test\"" "$dir/$name.$target.$i.csv" | head -1)
    [ -n "$line" ] || { echo "bench-compare: redis-benchmark against $target gave no figures:" >&2; cat "$dir/$name.$target.$i.err" >&2; return 1; }
    rps=$(echo "$line" | awk -F'"' -v r="$rps" '{printf "%.0f", r + $4}')
    p50=$(echo "$line" | awk -F'"' -v p="$p50" '{printf "%.3f", ($10 > p ? $10 : p)}')
  done
  local ops=$n
  local cpu
  cpu=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v ops="$ops" 'BEGIN {printf "%.1f", t / hz * 1e6 / ops}')
  local extra=""
  if [ "$counts" = 1 ]; then
    # perf's CSV: value,unit,event,...; counted over the load (plus 0.2 s of idle before it)
    extra=$(awk -F, -v ops="$ops" '$3 == "raw_syscalls:sys_enter" {s = $1} $3 == "context-switches" {c = $1}
      END {printf " %.1f %.2f", s / ops, c / ops}' "$dir/$name.$target.perf")
  fi
  echo "$name $target $rps $p50 $cpu $(awk -v s="$start" -v e="$end" 'BEGIN {printf "%.1f", e - s}')$extra"
}

echo "bench-compare: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "redis: $(redis-server --version | awk '{print $3}'), AOF always; ringraft: 3 nodes, $groups groups, fsync on"
echo "requests: put1 $((requests / 10)), put64 $requests, pipe64 $((requests * 2)), get64 $requests; 256-byte values, 100,000 keys"
echo
if [ "$counts" = 1 ]; then
  echo "| run | load | target | ops/s | p50 ms | server CPU us/op | wall s | syscalls/op | context switches/op |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
else
  echo "| run | load | target | ops/s | p50 ms | server CPU us/op | wall s |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
fi
: >"$dir/all"
for r in $(seq 1 "$runs"); do
  for name in ${loads//,/ }; do
    for target in redis ringraft; do
      out=$(load "$name" "$target") || exit 1
      echo "$r $out" >>"$dir/all"
      echo "$r $out" | awk '{printf "|"; for (i = 1; i <= NF; i++) printf " %s |", $i; printf "\n"}'
    done
  done
done
echo
echo "Medians of $runs runs (ratio = ringraft / redis; for p50 and CPU lower is better):"
echo
echo "| load | redis ops/s | ringraft ops/s | ratio | redis p50 ms | ringraft p50 ms | ratio | redis CPU us/op | ringraft CPU us/op |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
med() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
for name in ${loads//,/ }; do
  col() { awk -v n="$name" -v t="$1" -v c="$2" '$2 == n && $3 == t {print $c}' "$dir/all" | med; }
  rr=$(col redis 4) gr=$(col ringraft 4) rp=$(col redis 5) gp=$(col ringraft 5) rc=$(col redis 6) gc=$(col ringraft 6)
  awk -v n="$name" -v rr="$rr" -v gr="$gr" -v rp="$rp" -v gp="$gp" -v rc="$rc" -v gc="$gc" 'BEGIN {
    printf "| %s | %.0f | %.0f | %.2fx | %.3f | %.3f | %.2fx | %.1f | %.1f |\n", n, rr, gr, gr / rr, rp, gp, (rp > 0 ? gp / rp : 0), rc, gc }'
done
if [ "$counts" = 1 ]; then
  echo
  echo "Medians of $runs runs, per operation, summed over the server processes:"
  echo
  echo "| load | redis syscalls | ringraft syscalls | redis context switches | ringraft context switches |"
  echo "| --- | --- | --- | --- | --- |"
  for name in ${loads//,/ }; do
    col() { awk -v n="$name" -v t="$1" -v c="$2" '$2 == n && $3 == t {print $c}' "$dir/all" | med; }
    awk -v n="$name" -v a="$(col redis 8)" -v b="$(col ringraft 8)" -v c="$(col redis 9)" -v d="$(col ringraft 9)" \
      'BEGIN {printf "| %s | %.1f | %.1f | %.2f | %.2f |\n", n, a, b, c, d}'
  done
fi
