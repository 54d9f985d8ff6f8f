#!/usr/bin/env bash
# bench-apply.sh — the counts behind docs/PERFORMANCE.md "Where the pin's cost was": builds
# alternating, a fresh three-node cluster per run (8 groups, fsync on), bench-compare.sh's
# put64 load (redis-benchmark, 64 clients over the three RESP ports, 256-byte values, 100,000
# keys), and per put, summed over the three kvd: user+sys CPU (/proc/PID/stat 14+15), minor
# page faults (field 10) and LMDB write transactions (`mdb_stat -e`, last txnid, before and
# after). Prints every run and the medians.
#
#   scripts/bench-apply.sh [--runs N] [--requests N] [--ip-base B] --bin DIR [--bin DIR ...]
#
#   --runs N      rounds; each round runs every --bin once, in the order given (default 3)
#   --requests N  puts per run (default 20000)
#   --ip-base B   the nodes listen on 127.0.0.B+1..B+3 (default 91, as bench-compare.sh)
#   KVD_FLAGS     extra kvd flags for every build (never one that turns fsync off)
#
# Needs redis-benchmark (redis-tools) and mdb_stat (lmdb-utils). Stops exactly what it started.
set -u

runs=3 requests=20000 base=91 groups=8 bins=()
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
  --runs) runs="$2"; shift 2 ;;
  --requests) requests="$2"; shift 2 ;;
  --ip-base) base="$2"; shift 2 ;;
  --bin) bins+=("$2"); shift 2 ;;
  -h | --help) usage; exit 0 ;;
  *) echo "bench-apply: unknown argument '$1' (--help)" >&2; exit 2 ;;
  esac
done
for v in "$runs" "$requests" "$base"; do
  case "$v" in '' | *[!0-9]*) echo "bench-apply: '$v' is not a number" >&2; exit 2 ;; esac
done
[ ${#bins[@]} -ge 1 ] || { echo "bench-apply: at least one --bin DIR" >&2; exit 2; }
if [ "$base" -lt 1 ] || [ "$base" -gt 250 ]; then echo "bench-apply: --ip-base 1..250" >&2; exit 2; fi
for b in "${bins[@]}"; do
  if [ ! -x "$b/kvd" ] || [ ! -x "$b/kvctl" ]; then echo "bench-apply: no kvd/kvctl in $b" >&2; exit 2; fi
done
if ! command -v redis-benchmark >/dev/null || ! command -v mdb_stat >/dev/null; then
  echo "bench-apply: needs redis-benchmark (redis-tools) and mdb_stat (lmdb-utils)" >&2; exit 2
fi

dir="$(mktemp -d /tmp/ringraft-bench-apply.XXXXXX)"
pids=()
stop() { [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; pids=(); }
trap 'stop; rm -rf "$dir"' EXIT
trap 'exit 130' INT TERM
hz=$(getconf CLK_TCK)

# one BIN: prints "puts/s cpu_us/put minflt/put txns/put"
one() {
  local bin="$1" cluster="" eps="" i ip ok=0 a b
  rm -rf "$dir/run"; mkdir -p "$dir/run"
  for i in 1 2 3; do
    ip="127.0.0.$((base + i))"
    cluster="${cluster:+$cluster,}$i=$ip:7001" eps="${eps:+$eps,}$ip:9001"
  done
  for i in 1 2 3; do
    ip="127.0.0.$((base + i))"
    # shellcheck disable=SC2086
    "$bin/kvd" --id "$i" --data-dir "$dir/run/n$i" --peer-addr "$ip:7001" --client-addr "$ip:9001" \
      --resp-addr "$ip:6379" --cluster "$cluster" --groups "$groups" ${KVD_FLAGS:-} \
      >"$dir/run/n$i.log" 2>&1 &
    pids+=($!)
  done
  # every group led, leaderships balanced and the same a second later (as bench-compare.sh)
  balanced() {
    "$bin/kvctl" --endpoints "$eps" groups 2>/dev/null | awk -v g="$groups" '
      NR > 1 && $2 ~ /^[1-3]$/ {n++; c[$2]++}
      END {lo = int(g / 3); hi = lo + (g % 3 > 0)
        for (i = 1; i <= 3; i++) if (c[i] < lo || c[i] > hi) exit 1
        exit !(n == g)}'
  }
  for _ in $(seq 1 60); do
    if balanced; then
      a=$("$bin/kvctl" --endpoints "$eps" groups 2>/dev/null | awk 'NR > 1 {print $1, $2}')
      sleep 1
      b=$("$bin/kvctl" --endpoints "$eps" groups 2>/dev/null | awk 'NR > 1 {print $1, $2}')
      [ "$a" = "$b" ] && balanced && ok=1 && break
    fi
    sleep 0.5
  done
  [ "$ok" = 1 ] || { echo "bench-apply: the leaders did not settle in 30 s ($bin)" >&2; stop; return 1; }
  procs() { local t=0 f=0 p x y; for p in "${pids[@]}"; do
    read -r x y < <(awk '{print $14 + $15, $10}' "/proc/$p/stat"); t=$((t + x)) f=$((f + y)); done; echo "$t $f"; }
  txns() { local s=0 i d; for i in 1 2 3; do
    d=$(dirname "$(find "$dir/run/n$i" -name data.mdb | head -1)")
    s=$((s + $(mdb_stat -e "$d" | awk '/Last transaction ID/ {print $4}'))); done; echo "$s"; }
  local x0 t0 f0 t1 f1 x1 c=(22 21 21) bp=() rps=0 line
  x0=$(txns); read -r t0 f0 < <(procs)
  for i in 0 1 2; do
    redis-benchmark -h "127.0.0.$((base + i + 1))" -p 6379 -t set -c "${c[$i]}" \
      -n $((requests * c[i] / 64)) -d 256 -r 100000 --csv >"$dir/run/b$i.csv" 2>&1 &
    bp+=($!)
  done
  wait "${bp[@]}"
  read -r t1 f1 < <(procs); x1=$(txns)
  stop
  for i in 0 1 2; do
    line=$(grep -i '^"set"' "$dir/run/b$i.csv" | head -1)
    [ -n "$line" ] || { echo "bench-apply: redis-benchmark gave no figures ($bin)" >&2; return 1; }
    rps=$(echo "$line" | awk -F'"' -v r="$rps" '{printf "%.0f", r + $4}')
  done
  awk -v r="$rps" -v t=$((t1 - t0)) -v hz="$hz" -v n="$requests" -v f=$((f1 - f0)) -v x=$((x1 - x0)) \
    'BEGIN {printf "%d %.1f %.2f %.3f\n", r, t / hz * 1e6 / n, f / n, x / n}'
}

echo "bench-apply: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $requests puts per run"
echo
echo "| round | bin | puts/s | CPU us/put | minor faults/put | LMDB txns/put | load |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
: >"$dir/all"
for r in $(seq 1 "$runs"); do
  for k in "${!bins[@]}"; do
    out=$(one "${bins[$k]}") || exit 1
    echo "$k $out" >>"$dir/all"
    echo "| $r | ${bins[$k]} | ${out// / | } | $(cut -d' ' -f1 /proc/loadavg) |"
  done
done
echo
echo "| bin | median puts/s | CPU us/put | minor faults/put | LMDB txns/put |"
echo "| --- | ---: | ---: | ---: | ---: |"
med() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
for k in "${!bins[@]}"; do
  col() { awk -v k="$k" -v c="$1" '$1 == k {print $c}' "$dir/all" | med; }
  echo "| ${bins[$k]} | $(col 2) | $(col 3) | $(col 4) | $(col 5) |"
done
