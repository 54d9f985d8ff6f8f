#!/usr/bin/env bash
# Runs one phase of `make test` and records each program's verdict.
#   run-tests.sh PHASE BIN...           run each test binary (unit, integration)
#   run-tests.sh sim|nodesim|jepsen CMD ARGS... run one command as one test
#   run-tests.sh fuzz SECONDS BIN...    run each libFuzzer harness SECONDS over its corpus (fuzz.sh)
#   run-tests.sh summary                print "tests: N passed, N failed" and the end of each
#                                       failed program's output; fail if any failed
# Each program gets TEST_TIMEOUT seconds (default 600) so a hang fails instead of blocking CI.
# KEEP_GOING=1 records a failure and carries on (make test reports all failures at the end).
# RUN_WRAPPER, if set, is put in front of every command (e.g. valgrind and its flags).
set -u
results="${RINGRAFT_BUILD:-build}/test-results"
mkdir -p "$(dirname "$results")"
timeout_s="${TEST_TIMEOUT:-600}"
# Each program's output is also kept in $logs/NAME.log, so the summary can repeat the end of a
# failure's (a long run's log shows only its tail). Through a process substitution, which is
# not waited for: a daemon a test left behind holding the pipe cannot stall the run.
logs="$(dirname "$results")/test-logs"
mkdir -p "$logs"
log_of() { echo "$logs/${1//\//_}.log"; }
phase="$1"; shift

record() { # name status seconds
  echo "$2 $1 $3" >>"$results"
  printf '[%s] %-4s %s (%ss)\n' "$phase" "$2" "$1" "$3"
}

run_one() { # name cmd...
  local name="$1"; shift
  local t0 t1 rc
  t0=$(date +%s)
  echo "== [$phase] $name"
  # shellcheck disable=SC2086 # RUN_WRAPPER is a command with its flags
  timeout --signal=TERM --kill-after=10 "$timeout_s" ${RUN_WRAPPER:-} "$@" \
    > >(tee "$(log_of "$name")") 2>&1
  rc=$?
  t1=$(date +%s)
  if [ $rc -eq 0 ]; then record "$name" PASS $((t1 - t0)); return 0; fi
  [ $rc -eq 124 ] && echo "[$phase] $name: timed out after ${timeout_s}s"
  record "$name" FAIL $((t1 - t0))
  return 1
}

failed=0
case "$phase" in
  summary)
    [ -f "$results" ] || { echo "tests: no results recorded"; exit 1; }
    pass=$(grep -c '^PASS' "$results"); fail=$(grep -c '^FAIL' "$results")
    while read -r _ name _; do
      echo "---- the end of $name's output ($(log_of "$name")):"
      tail -n 25 "$(log_of "$name")" 2>/dev/null | sed 's/^/  | /'
    done < <(grep '^FAIL' "$results")
    grep '^FAIL' "$results" | sed 's/^/  /'
    echo "tests: $pass passed, $fail failed"
    [ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
    exit $?
    ;;
  sim|nodesim|jepsen)
    run_one "$phase" "$@" || failed=1
    ;;
  fuzz)
    secs="$1"; shift
    for bin in "$@"; do
      run_one "fuzz/$(basename "$bin")" "$(dirname "$0")/fuzz.sh" "$secs" "$bin" || failed=1
    done
    ;;
  *)
    for bin in "$@"; do
      run_one "${bin#"${RINGRAFT_BUILD:-build}"/}" "$bin" || failed=1
    done
    ;;
esac
if [ $failed -ne 0 ] && [ "${KEEP_GOING:-0}" != 1 ]; then exit 1; fi
exit 0
