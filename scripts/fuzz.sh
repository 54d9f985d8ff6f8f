#!/usr/bin/env bash
# Runs libFuzzer harnesses (tests/fuzz, built by `make fuzz-build`) one after the other.
#   fuzz.sh SECONDS BIN...
# Each harness runs SECONDS (-max_total_time) under `nice -n 10`, one process at a time, over
# a scratch copy of its seed corpus tests/fuzz/corpus/<name> (new inputs never touch the
# tree), and gets a line: executions, corpus size, crashes (crash, leak, timeout and
# out-of-memory inputs; libFuzzer's slow-unit-* reports of inputs slower than 10 s are kept
# too but not counted). They are kept in build/fuzz/artifacts/<name>/. Exit status 1 if any
# harness found something.
# FUZZ_WORK: scratch directory (default build/fuzz/work); FUZZ_KEEP=1 keeps the corpus grown
# by the previous run (to fuzz longer in several sittings); FUZZ_ARGS: extra libFuzzer flags.
set -u
secs="$1"; shift
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${FUZZ_WORK:-$root/build/fuzz/work}"
status=0
for bin in "$@"; do
  name="$(basename "$bin")"
  short="${name#fuzz_}"
  seeds="$root/tests/fuzz/corpus/$short"
  corpus="$work/$short/corpus"
  arts="$root/build/fuzz/artifacts/$short"
  log="$work/$short/log"
  if [ "${FUZZ_KEEP:-0}" != 1 ]; then rm -rf "$corpus"; fi
  mkdir -p "$corpus" "$arts"
  [ -d "$seeds" ] && cp -n "$seeds"/* "$corpus"/ 2>/dev/null
  found_now() { ls "$arts" | grep -cE '^(crash|leak|timeout|oom)-'; }
  before=$(found_now)
  t0=$(date +%s)
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
  nice -n 10 "$bin" -max_total_time="$secs" -timeout=60 -rss_limit_mb=1536 -print_final_stats=1 \
    -artifact_prefix="$arts/" ${FUZZ_ARGS:-} "$corpus" >"$log" 2>&1
  rc=$?
  t1=$(date +%s)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  found=$(( $(found_now) - before ))
  printf '%-16s %5ss  execs %-10s corpus %-6s crashes %s  (rc %s)\n' "$short" $((t1 - t0)) \
    "${execs:-?}" "$(ls "$corpus" | wc -l)" "$found" "$rc"
  if [ $rc -ne 0 ] || [ "$found" -ne 0 ]; then
    status=1
    grep -E -A40 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error|SUMMARY' "$log" | head -80
    echo "fuzz: $short: see $log and $arts"
  fi
done
exit $status
