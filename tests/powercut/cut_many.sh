#!/usr/bin/env bash
# cut_many.sh — runs tests/powercut/cut_one.sh RUNS times with seeds 1, 11, 21, ... (each run
# a fresh cluster) and counts the outcomes: PASS (back by itself, nothing lost), REFUSED
# (nothing lost, a node had to be rebuilt by hand), DOWN (a majority refused), FAIL (an
# acknowledged write lost or wrong), SETUP (the run could not start), SLOW (it passed, but a
# cut node served only more than CUT_SERVE_MS, default 10000, after its restart: issue 21
# asks for 10 s). Each run's last lines go to stdout, and the slowest restart of all runs at
# the end; exit 0 only if every run passed. CUT_SEED0 (default 1) is the first seed: runs use
# CUT_SEED0, CUT_SEED0+10, ...
#   tests/powercut/cut_many.sh RUNS [cut_one.sh options, e.g. --cut 3 --kv-sync --writeback]
set -u
here="$(cd "$(dirname "$0")" && pwd)"
runs="${1:?usage: cut_many.sh RUNS [cut_one.sh options]}"
shift
serve_max="${CUT_SERVE_MS:-10000}"
declare -A count=([PASS]=0 [REFUSED]=0 [DOWN]=0 [FAIL]=0 [SETUP]=0 [SLOW]=0)
slowest=0
for k in $(seq 0 $((runs - 1))); do
  seed=$((10 * k + ${CUT_SEED0:-1}))
  out="$("$here/cut_one.sh" "$@" --seed "$seed" 2>&1)"
  rc=$?
  case "$rc" in 0) r=PASS ;; 3) r=REFUSED ;; 4) r=DOWN ;; 2) r=SETUP ;; *) r=FAIL ;; esac
  # "node N restarted: serving after MS ms", one line per cut node
  ms="$(printf '%s\n' "$out" | sed -n 's/.* restarted: serving after \([0-9]*\) ms.*/\1/p' | sort -n | tail -1)"
  if [ -n "$ms" ]; then
    [ "$ms" -gt "$slowest" ] && slowest="$ms"
    [ "$r" = PASS ] && [ "$ms" -gt "$serve_max" ] && r=SLOW
  fi
  count[$r]=$((count[$r] + 1))
  echo "cut_many: run $((k + 1))/$runs seed $seed: $r"
  printf '%s\n' "$out" | grep -E 'load:|restarted:|check:|rebuilt|aside: the|FAIL' | sed 's/^/cut_many:   /'
done
echo "cut_many: $runs runs of cut_one.sh $*: PASS ${count[PASS]}, REFUSED ${count[REFUSED]}," \
  "DOWN ${count[DOWN]}, FAIL ${count[FAIL]}, SETUP ${count[SETUP]}, SLOW ${count[SLOW]};" \
  "slowest restart to serving: $slowest ms"
[ "${count[PASS]}" = "$runs" ]
