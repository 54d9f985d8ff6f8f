#!/usr/bin/env bash
# cut_one.sh — cuts the power of one node of a real three-node cluster (`make powercut`).
#
# Node 1's data directory lives on powercutfs (tests/powercut/powercutfs.c), nodes 2 and 3 on
# the plain disk. Under a write load on every node's RESP port (load.py, acknowledged keys
# recorded), node 1 loses its power: the layer is cut (unsynced pages dropped but a seeded
# random KEEP/1000 of them), its kvd is killed with SIGKILL, and its boot id changes
# (RINGRAFT_TEST_BOOT_ID_FILE, kv/guard.c). The load goes on against the two others, then
# stops; node 1 is mounted and started again, as its machine would be after the reboot. Then:
#   1. does node 1 come back by itself, or how does it refuse (exit code, log line);
#   2. does every acknowledged key read back with its value from the cluster;
#   3. if node 1 refused, the remedy of docs/DURABILITY.md: its data directory emptied and kvd
#      started with its first-start flags; every acknowledged key must then be read from node
#      1 itself (READONLY), i.e. it was rebuilt from its peers.
# Exit status: 0 node 1 came back by itself and nothing acknowledged was lost; 3 nothing was
# lost but node 1 refused to start (rebuilt by the remedy); 1 an acknowledged write was lost
# or wrong, or the remedy failed; 2 the setup failed.
#
# Options: --keep K (per mille of unsynced pages kept, default 0) --seed S (default 1)
#          --load-s N (seconds of load before the cut, default 8) --same-boot (do not change
#          the boot id: what an undetected machine crash would do) --writeback (just before
#          the cut, syncfs(2) on node 1's mount: the kernel writes every dirty page, LMDB's
#          mmap'ed ones included, back to the layer, which keeps them unsynced; without it
#          most of LMDB's unsynced pages are still in the kernel's cache at the cut and are
#          lost whatever --keep says) --keep-dir (leave the temporary directory, with the
#          logs, for a look) --kv-sync (every node runs with kvd --kv-sync on: LMDB syncs
#          every applied batch)
# Environment: RINGRAFT_BIN (kvd, kvctl; default ./bin), POWERCUTFS (the layer; default
# build/tests/powercut/powercutfs), RINGRAFT_TEST_IP_BASE (nodes on 127.0.0.BASE..BASE+2,
# default 121).
set -u

root_dir="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${RINGRAFT_BIN:-$root_dir/bin}"
pcfs="${POWERCUTFS:-$root_dir/build/tests/powercut/powercutfs}"
base="${RINGRAFT_TEST_IP_BASE:-121}"
here="$root_dir/tests/powercut"
keep=0 seed=1 load_s=8 same_boot=0 keep_dir=0 writeback=0 kv_sync=off
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --load-s) load_s="$2"; shift 2 ;;
    --same-boot) same_boot=1; shift ;;
    --writeback) writeback=1; shift ;;
    --kv-sync) kv_sync=on; shift ;;
    --keep-dir) keep_dir=1; shift ;;
    *) echo "cut_one: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$bin/kvd" ] && [ -x "$bin/kvctl" ] || { echo "cut_one: no $bin/kvd or kvctl (make)" >&2; exit 2; }
[ -x "$pcfs" ] || { echo "cut_one: no $pcfs (make powercut-build)" >&2; exit 2; }

ip() { echo "127.0.0.$((base + $1 - 1))"; }
cluster_arg="1=$(ip 1):7001,2=$(ip 2):7001,3=$(ip 3):7001"
endpoints="$(ip 1):9001,$(ip 2):9001,$(ip 3):9001"
resp_all="$(ip 1):6379,$(ip 2):6379,$(ip 3):6379"
resp_others="$(ip 2):6379,$(ip 3):6379"

tmp="$(mktemp -d /tmp/powercut-XXXXXX)"
disk1="$tmp/disk1" mnt1="$tmp/node1" boot1="$tmp/boot_id1"
mkdir -p "$disk1" "$mnt1" "$tmp/node2" "$tmp/node3"
declare -A kvd_pid=()
pcfs_pid="" load_pid=""

log() { echo "cut_one: $*"; }
now_ms() { date +%s%3N; }

mounted() { awk -v m="$mnt1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; }

mount_layer() {
  "$pcfs" "$disk1" "$mnt1" -f >>"$tmp/powercutfs.log" 2>&1 &
  pcfs_pid=$!
  local i
  for i in $(seq 100); do # bounded: 10 s
    mounted && return 0
    kill -0 "$pcfs_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "cut_one: powercutfs did not mount:" >&2
  cat "$tmp/powercutfs.log" >&2
  return 1
}

umount_layer() {
  [ -n "$pcfs_pid" ] || return 0
  local i
  for i in $(seq 50); do # bounded: 5 s, while the killed kvd's files close
    mounted || break
    fusermount3 -u "$mnt1" 2>/dev/null && break
    sleep 0.1
  done
  mounted && fusermount3 -uz "$mnt1"
  for i in $(seq 50); do
    kill -0 "$pcfs_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$pcfs_pid" 2>/dev/null
  wait "$pcfs_pid" 2>/dev/null
  pcfs_pid=""
}

start_kvd() { # N [first]: first start (flags of identity) or restart
  local n="$1" dir="$tmp/node$1"
  local args=(--data-dir "$dir" --resp-addr "$(ip "$n"):6379" --election-ms 400
    --heartbeat-ms 50 --log-level info --kv-sync "$kv_sync")
  if [ "${2:-}" = first ]; then
    args+=(--id "$n" --client-addr "$(ip "$n"):9001" --cluster "$cluster_arg" --groups 4
      --snapshot-entries 2000)
  fi
  if [ "$n" = 1 ]; then
    RINGRAFT_TEST_BOOT_ID_FILE="$boot1" setsid "$bin/kvd" "${args[@]}" </dev/null \
      >>"$tmp/node$n.log" 2>&1 &
  else
    setsid "$bin/kvd" "${args[@]}" </dev/null >>"$tmp/node$n.log" 2>&1 &
  fi
  kvd_pid[$n]=$!
}

stop_kvd() { # N SIGNAL
  local pid="${kvd_pid[$1]:-}" i
  [ -n "$pid" ] || return 0
  kill "-$2" "$pid" 2>/dev/null
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  kvd_pid[$1]=""
}

cleanup() {
  [ -n "$load_pid" ] && { touch "$tmp/stop"; kill "$load_pid" 2>/dev/null; wait "$load_pid" 2>/dev/null; }
  local n
  for n in 1 2 3; do stop_kvd "$n" TERM; done
  umount_layer
  if [ "$keep_dir" = 1 ]; then log "left $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 2' INT TERM

leaders_ready() { # every group has a leader
  local out
  out="$("$bin/kvctl" --endpoints "$1" --timeout 1s groups 2>/dev/null)" || return 1
  local rows none
  rows="$(printf '%s\n' "$out" | awk 'NR > 1 && $1 ~ /^[0-9]+$/' | wc -l)"
  none="$(printf '%s\n' "$out" | awk 'NR > 1 && $2 == "none"' | wc -l)"
  [ "$rows" -ge 1 ] && [ "$none" -eq 0 ]
}

wait_leaders() { # ENDPOINTS SECONDS
  local i
  for i in $(seq "$(($2 * 5))"); do
    leaders_ready "$1" && return 0
    sleep 0.2
  done
  return 1
}

# ------------------------------------------------------------------------ the run
# (one function, read whole before it runs: editing this file during a run is harmless)
run() {
  cat /proc/sys/kernel/random/uuid >"$boot1"
  mount_layer || exit 2
  for n in 1 2 3; do start_kvd "$n" first; done
  wait_leaders "$endpoints" 30 || { log "no leaders after 30 s"; tail -5 "$tmp"/node*.log; exit 2; }
  log "cluster up on $(ip 1)-$(ip 3); node 1's data directory on powercutfs"

  /usr/bin/python3 "$here/load.py" write --nodes "$resp_all" --clients 8 --out "$tmp/acked" \
    --stop "$tmp/stop" >"$tmp/load.log" 2>&1 &
  load_pid=$!
  sleep "$load_s"

  # The cut: the layer first (nothing after this reaches node 1's disk), then the process.
  # syncfs reaches no FUSE daemon as a sync: it only makes the kernel write its dirty pages.
  [ "$writeback" = 1 ] && sync -f "$mnt1/."
  before="$(cat "$mnt1/.powercut" 2>/dev/null | tr '\n' ' ')"
  echo "cut $keep $seed" >"$mnt1/.powercut"
  stop_kvd 1 KILL 2>/dev/null # (no "Killed" line from the shell)
  [ "$same_boot" = 1 ] || cat /proc/sys/kernel/random/uuid >"$boot1"
  log "cut node 1 after ${load_s}s of load (keep $keep/1000, seed $seed); layer before the cut: $before"
  grep 'cut:' "$tmp/powercutfs.log" | sed 's/^/cut_one:   /'
  umount_layer

  sleep 3 # the load goes on against nodes 2 and 3
  touch "$tmp/stop"
  wait "$load_pid"
  load_pid=""
  sed 's/^/cut_one: /' "$tmp/load.log"

  # The reboot: the disk as the cut left it, the same flags as before.
  mount_layer || exit 2
  t0="$(now_ms)"
  start_kvd 1
  back=0 status="still starting"
  for i in $(seq 200); do # bounded: 20 s
    if ! kill -0 "${kvd_pid[1]}" 2>/dev/null; then
      wait "${kvd_pid[1]}"
      status="exited with status $?"
      kvd_pid[1]=""
      break
    fi
    if "$bin/kvctl" --endpoints "$(ip 1):9001" --timeout 1s status >/dev/null 2>&1 &&
      wait_leaders "$(ip 1):9001" 1; then
      back=1
      status="serving after $(($(now_ms) - t0)) ms"
      break
    fi
    sleep 0.1
  done
  log "node 1 restarted: $status"
  if [ "$back" = 0 ]; then
    grep -E '^(error|E) ' "$tmp/node1.log" | grep -v 'node stops: WAL' | tail -3 | sed 's/^/cut_one:   node 1: /'
  fi

  rc=0
  /usr/bin/python3 "$here/load.py" check --nodes "$resp_others" --in "$tmp/acked" | sed 's/^/cut_one: /'
  [ "${PIPESTATUS[0]}" = 0 ] || rc=1
  if [ "$back" = 1 ]; then
    # node 1 must also hold them itself (what it acknowledged or caught up on)
    /usr/bin/python3 "$here/load.py" check --nodes "$(ip 1):6379" --readonly --wait-s 20 \
      --in "$tmp/acked" | sed 's/^/cut_one: /'
    [ "${PIPESTATUS[0]}" = 0 ] || rc=1
  else
    # The remedy of docs/DURABILITY.md: rebuild node 1 from its peers.
    stop_kvd 1 KILL
    rm -rf "${mnt1:?}"/*
    t0="$(now_ms)"
    start_kvd 1 first
    /usr/bin/python3 "$here/load.py" check --nodes "$(ip 1):6379" --readonly --wait-s 60 \
      --in "$tmp/acked" | sed 's/^/cut_one: /'
    if [ "${PIPESTATUS[0]}" = 0 ]; then
      log "node 1 rebuilt from its peers (data directory emptied, first-start flags): every acknowledged key read from it within $(($(now_ms) - t0)) ms"
      [ "$rc" = 0 ] && rc=3
    else
      log "node 1 was not rebuilt from its peers within 60 s"
      tail -5 "$tmp/node1.log" | sed 's/^/cut_one:   node 1: /'
      rc=1
    fi
  fi
  case "$rc" in
    0) log "PASS: node 1 came back by itself; no acknowledged write lost" ;;
    3) log "REFUSED: no acknowledged write lost, but node 1 did not come back by itself" ;;
    *) log "FAIL" ;;
  esac
  return "$rc"
}
run; exit $?
