#!/usr/bin/env bash
# cut_many.sh — runs tests/powercut/cut_one.sh RUNS times with seeds 1, 11, 21, ... (each run
# a fresh cluster) and counts the outcomes: PASS (back by itself, nothing lost), REFUSED
# (nothing lost, a node had to be rebuilt by hand), DOWN (a majority refused), FAIL (an
# acknowledged write lost or wrong), SETUP (the run could not start). Each run's last lines go
# to stdout; exit 0 only if every run passed.
#   tests/powercut/cut_many.sh RUNS [cut_one.sh options, e.g. --cut 3 --kv-sync --writeback]
set -u
here="$(cd "$(dirname "$0")" && pwd)"
runs="${1:?usage: cut_many.sh RUNS [cut_one.sh options]}"
shift
declare -A count=([PASS]=0 [REFUSED]=0 [DOWN]=0 [FAIL]=0 [SETUP]=0)
for k in $(seq 0 $((runs - 1))); do
  seed=$((10 * k + 1))
  out="$("$here/cut_one.sh" "$@" --seed "$seed" 2>&1)"
  rc=$?
  case "$rc" in 0) r=PASS ;; 3) r=REFUSED ;; 4) r=DOWN ;; 2) r=SETUP ;; *) r=FAIL ;; esac
  count[$r]=$((count[$r] + 1))
  echo "cut_many: run $((k + 1))/$runs seed $seed: $r"
  printf '%s\n' "$out" | grep -E 'load:|restarted:|check:|rebuilt' | sed 's/^/cut_many:   /'
done
echo "cut_many: $runs runs of cut_one.sh $*: PASS ${count[PASS]}, REFUSED ${count[REFUSED]}," \
  "DOWN ${count[DOWN]}, FAIL ${count[FAIL]}, SETUP ${count[SETUP]}"
[ "${count[PASS]}" = "$runs" ]
