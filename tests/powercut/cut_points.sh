#!/usr/bin/env bash
# cut_points.sh — the crash-point test of issue 21: the power of node 1 of a real three-node
# cluster (`make powercut-points`) is cut at each named point of its durability code
# (wal/crashpoint.h; the list is in docs/DURABILITY.md "Crash points": the steps of a
# checkpoint, of a WAL segment switch, of a compaction and of a snapshot install), at its
# first and at a later hit, alone (--cut 1) and with the two others cut right after it
# (--cut 3), half the time keeping a random half of the unsynced pages in random order
# (--keep 500 --writeback). Each run is tests/powercut/cut_one.sh --at (through cut_many.sh:
# every acknowledged write read back from the cluster and from each cut node's own replica,
# digests equal, serving again within 10 s), with 1 MiB WAL segments so that segments switch
# and are compacted during the run. Exit 0 only if every run passed.
#   tests/powercut/cut_points.sh [POINT...]   (default: every point)
set -u
here="$(cd "$(dirname "$0")" && pwd)"
points=("$@")
[ ${#points[@]} -gt 0 ] || points=(ckpt.lmdb-synced ckpt.tmp-synced ckpt.renamed ckpt.pinned
  wal.seg.header-synced wal.seg.renamed wal.seg.installed
  wal.compact.restated wal.compact.unlinked wal.compact.removed
  snap.chunk-staged snap.installed)
runs=0 passed=0 failed=()
seed=7001
for p in "${points[@]}"; do
  for hit in 1 3; do
    for cut in 1 3; do
      # (runs in fours: cut 1 and cut 3 each with and without the kept pages)
      if [ $(((seed / 20) % 2)) = 0 ]; then keep=(--keep 500 --writeback); else keep=(); fi
      out="$(CUT_SEED0=$seed "$here/cut_many.sh" 1 --at "$p:$hit" --cut "$cut" --small-wal "${keep[@]}" 2>&1)"
      rc=$?
      runs=$((runs + 1))
      verdict="$(printf '%s\n' "$out" | sed -n 's/^cut_many: run 1\/1 seed [0-9]*: //p')"
      echo "cut_points: $p:$hit --cut $cut ${keep[*]} (seed $seed): ${verdict:-?}"
      if [ "$rc" = 0 ]; then
        passed=$((passed + 1))
      else
        failed+=("$p:$hit/cut$cut/seed$seed")
        printf '%s\n' "$out" | grep -v '^cut_many: run ' | sed 's/^/cut_points:   /' | tail -25
      fi
      seed=$((seed + 10))
    done
  done
done
echo "cut_points: $passed of $runs runs passed${failed[*]:+; failed: ${failed[*]}}"
[ "$passed" = "$runs" ]
