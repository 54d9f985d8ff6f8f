#!/usr/bin/env bash
# bench-reshard.sh - issue 18: what a ring change costs (docs/PERFORMANCE.md "Resharding").
# Part 1: a fresh 3-node cluster (8 groups) under a `kvctl bench` put load (64 clients, 100 B
# values over 100,000 keys, run as back-to-back slices of about two seconds); after BEFORE_S
# seconds `kvctl groups add`; the change is polled until "complete" (or WAIT_S); the load goes
# on for AFTER_S seconds more. Prints the put throughput before, during and after the move
# (each slice's successful puts shared out over the phases by the time it overlaps them) and
# the requests that failed in each phase, with their kinds (bench does not retry a refused
# write, nor follow WRONG_SHARD to the new ring: a slice learns the ring when it starts;
# reply_other is MOVING).
# Part 2: a fresh cluster loaded with KEYS keys (default 1,000,000) of VALUE_SIZE bytes
# (redis-cli --pipe of SETs to node 1's RESP port), no other load; `kvctl groups add`, timed
# until "complete"; then 200 keys spread over the key space are read back.
#   scripts/bench-reshard.sh [--keys N] [--value-size B] [--before S] [--after S] [--wait S]
#                            [--part 1|2|both]
# Environment: RINGRAFT_BIN (default ./bin), RINGRAFT_TEST_IP_BASE (default 111; nodes on
# base..base+2).
set -u
keys=1000000 value_size=16 before_s=20 after_s=20 wait_s=600 part=both
while [ $# -gt 0 ]; do
	case "$1" in
	--keys) keys=$2; shift ;;
	--value-size) value_size=$2; shift ;;
	--before) before_s=$2; shift ;;
	--after) after_s=$2; shift ;;
	--wait) wait_s=$2; shift ;;
	--part) part=$2; shift ;;
	-h | --help) sed -n '2,17p' "$0"; exit 0 ;;
	*) echo "bench-reshard: unknown argument '$1' (--help)" >&2; exit 2 ;;
	esac
	shift
done
for v in "$keys" "$value_size" "$before_s" "$after_s" "$wait_s"; do
	case "$v" in '' | *[!0-9]*) echo "bench-reshard: '$v' is not a number" >&2; exit 2 ;; esac
done
case "$part" in 1 | 2 | both) ;; *) echo "bench-reshard: --part is 1, 2 or both" >&2; exit 2 ;; esac
bin="${RINGRAFT_BIN:-./bin}" base="${RINGRAFT_TEST_IP_BASE:-111}"
command -v redis-cli >/dev/null || [ "$part" = 1 ] ||
	{ echo "bench-reshard: part 2 loads with redis-cli (apt-get install redis-tools)" >&2; exit 2; }
ip() { echo "127.0.0.$((base + $1 - 1))"; }
cluster_arg="1=$(ip 1):7001,2=$(ip 2):7001,3=$(ip 3):7001"
endpoints="$(ip 1):9001,$(ip 2):9001,$(ip 3):9001"
tmp="$(mktemp -d /tmp/bench-reshard-XXXXXX)"
pids=() loadpid=""
now_ms() { date +%s%3N; }
say() { printf '[bench-reshard %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
stop_all() {
	[ -n "$loadpid" ] && kill "$loadpid" 2>/dev/null && wait "$loadpid" 2>/dev/null
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	pids=() loadpid=""
}
trap 'stop_all; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

start_cluster() { # dir [kvd flags...]
	local n out d=$1
	shift
	for n in 1 2 3; do
		mkdir -p "$d/node$n"
		setsid "$bin/kvd" --data-dir "$d/node$n" --id "$n" --client-addr "$(ip "$n"):9001" \
			--peer-addr "$(ip "$n"):7001" --resp-addr "$(ip "$n"):6379" \
			--cluster "$cluster_arg" --groups 8 "$@" </dev/null >>"$d/node$n.log" 2>&1 &
		pids+=($!)
	done
	for _ in $(seq 150); do # bounded: 30 s
		out="$("$bin/kvctl" --endpoints "$endpoints" --timeout 1s groups 2>/dev/null)" &&
			[ "$(printf '%s\n' "$out" | awk 'NR > 1 && $1 ~ /^[0-9]+$/ && $2 == "none"' |
				wc -l)" -eq 0 ] && return 0
		sleep 0.2
	done
	say "the cluster did not elect every group's leader within 30 s (logs: $d)"
	return 1
}

# "STATE TO_EPOCH" of the latest change ("none 0" without one)
change() {
	"$bin/kvctl" --endpoints "$endpoints" --timeout 3s -o json groups 2>/dev/null | awk '
		/"change": \{/ {
			s = $0; sub(/.*"change": \{.*"state": "/, "", s); sub(/".*/, "", s)
			e = $0; sub(/.*"to_epoch": /, "", e); sub(/[^0-9].*/, "", e)
			gsub(/ /, "_", s); print s, e; found = 1
		}
		END { if (!found) print "none", 0 }'
}
# the share (percent) of the hash space that group g owns, by `kvctl groups -o json`
share_of() {
	"$bin/kvctl" --endpoints "$endpoints" --timeout 3s -o json groups 2>/dev/null |
		awk -v g="$1" 'index($0, "{\"group\": " g ",") {
			s = $0; sub(/.*"share": /, "", s); sub(/[^0-9.].*/, "", s); printf "%.2f", 100 * s }'
}
# `kvctl groups add`; waits (bounded: wait_s) for "complete". Prints "GROUP MS STATE".
add_and_time() {
	local t0 st g out
	t0=$(now_ms)
	out=$("$bin/kvctl" --endpoints "$endpoints" --timeout 20s groups add 2>&1) ||
		{ say "groups add failed: $out"; echo "- 0 refused"; return 1; }
	say "$out"
	g=$(printf '%s\n' "$out" | grep -o 'adding group [0-9]*' | head -n 1 | awk '{ print $3 }')
	while :; do
		read -r st _ < <(change)
		[ "$st" = complete ] && break
		[ $(($(now_ms) - t0)) -ge $((wait_s * 1000)) ] && break
		sleep 0.2
	done
	echo "${g:--} $(($(now_ms) - t0)) $st"
}

# ------------------------------------------------------------------ part 1
part1() {
	local dir="$tmp/p1" slices="$tmp/slices" reqs=5000 t_add t_done g ms st
	say "part 1: 3 nodes, 8 groups, put load of 64 clients; groups add after ${before_s} s"
	start_cluster "$dir" || return 1
	# slices of about two seconds each, back to back, until stopped
	(
		while :; do
			s=$(now_ms)
			o=$("$bin/kvctl" --endpoints "$endpoints" -o json bench --op put --clients 64 \
				--requests "$reqs" --value-size 100 --keys 100000 2>/dev/null)
			e=$(now_ms)
			ok=$(printf '%s' "$o" | grep -oE '"ok": [0-9]+' | awk '{ print $2 }')
			tp=$(printf '%s' "$o" | grep -oE '"throughput": [0-9.]+' | awk '{ print $2 }')
			er=$(printf '%s' "$o" | grep -oE '"errors": [0-9]+' | head -n 1 | awk '{ print $2 }')
			ek=$(printf '%s' "$o" | grep -oE '"error_kinds": \{[^}]*\}' | sed 's/.*{//; s/}//; s/[" ]//g')
			echo "$s $e ${ok:-0} ${er:-0} ${ek:--}" >>"$slices"
			# the next slice's size: about two seconds at this rate
			[ -n "$tp" ] && reqs=$(awk -v t="$tp" 'BEGIN { r = int(2 * t); print r < 1000 ? 1000 : r }')
		done
	) &
	loadpid=$!
	sleep "$before_s"
	t_add=$(now_ms)
	read -r g ms st < <(add_and_time)
	t_done=$((t_add + ms))
	say "group $g: $st after $ms ms"
	sleep "$after_s"
	kill "$loadpid" 2>/dev/null
	wait "$loadpid" 2>/dev/null
	loadpid=""
	# each slice's ok puts (throughput x elapsed) shared out over the phases by overlap
	awk -v a="$t_add" -v d="$t_done" -v st="$st" -v g="$g" -v ms="$ms" -v sh="$(share_of "$g")" '
		function ov(s, e, x, y) { s = s > x ? s : x; e = e < y ? e : y; return e > s ? e - s : 0 }
		{
			s = $1; e = $2; ok = $3; er = $4; len = e - s; if (len <= 0) next
			if (NR == 1) first = s
			last = e
			split("", w)
			w[1] = ov(s, e, 0, a); w[2] = ov(s, e, a, d); w[3] = ov(s, e, d, 1e18)
			for (p = 1; p <= 3; p++) { okp[p] += ok * w[p] / len; erp[p] += er * w[p] / len }
			# the kinds of the failures, by whether the slice overlaps the change
			n = split($5, kk, ","); ph = w[2] > 0 ? "during" : "outside"
			for (i = 1; i <= n; i++) if (split(kk[i], kv, ":") == 2) kinds[ph " " kv[1]] += kv[2]
		}
		END {
			t[1] = a - first; t[2] = d - a; t[3] = last - d
			split("before during after", name)
			printf "\nPart 1: put throughput around a ring change (64 clients, 100 B values, 100,000 keys, 8 -> 9 groups)\n"
			printf "%-8s %10s %14s %16s\n", "phase", "seconds", "puts/s", "failed requests"
			for (p = 1; p <= 3; p++)
				printf "%-8s %10.1f %14.0f %16.0f\n", name[p], t[p] / 1000,
					(t[p] > 0 ? okp[p] / (t[p] / 1000) : 0), erp[p]
			printf "change: group %s %s after %.1f s (its share: %s%%)\n", g, st, ms / 1000, sh
			for (k in kinds) {
				split(k, kp, " ")
				printf "failed requests, slices %s the change: %s %d\n", kp[1], kp[2], kinds[k]
			}
		}' "$slices"
	stop_all
}

# ------------------------------------------------------------------ part 2
part2() {
	local dir="$tmp/p2" t0 t1 g ms st n
	say "part 2: 3 nodes, 8 groups, $keys keys of $value_size B, then groups add"
	# redis-cli --pipe keeps every command in flight: no bound per connection, else -TRYAGAIN
	start_cluster "$dir" --conn-max-inflight 0 --conn-max-inflight-bytes 0 || return 1
	t0=$(now_ms)
	awk -v n="$keys" -v vs="$value_size" 'BEGIN {
		v = sprintf("%0" vs "d", 0)
		for (i = 0; i < n; i++) {
			k = sprintf("m/%08d", i)
			printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v
		}
	}' | redis-cli -h "$(ip 1)" -p 6379 --pipe >"$tmp/pipe.out" 2>&1
	t1=$(now_ms)
	n=$(grep -oE 'replies: [0-9]+' "$tmp/pipe.out" | awk '{ print $2 }')
	say "loaded: $(tail -n 1 "$tmp/pipe.out") in $((t1 - t0)) ms"
	if ! grep -q 'errors: 0,' "$tmp/pipe.out"; then
		say "the load had errors: $(grep -E '^(ERR|TRYAGAIN|-|[A-Z]+ )' "$tmp/pipe.out" |
			sort | uniq -c | sort -rn | head -n 5)"
	fi
	read -r g ms st < <(add_and_time)
	local sh
	sh=$(share_of "$g")
	printf '\nPart 2: moving keys to an added group (no other load; 8 -> 9 groups)\n'
	printf '%-12s %12s %12s %14s %12s %12s\n' keys "value (B)" "load (s)" "new group share" "move (s)" state
	printf '%-12s %12s %12.1f %14s %12.1f %12s\n' "${n:-?}" "$value_size" \
		"$(awk -v x=$((t1 - t0)) 'BEGIN { print x / 1000 }')" "${sh:-?}%" \
		"$(awk -v x="$ms" 'BEGIN { print x / 1000 }')" "$st"
	awk -v n="${n:-0}" -v sh="${sh:-0}" -v ms="$ms" 'BEGIN {
		m = n * sh / 100; if (ms > 0) printf "about %.0f keys moved, %.0f keys/s\n", m, m / (ms / 1000) }'
	# a spot check: 200 keys spread over the key space read back through node 2
	local i k miss=0
	for i in $(seq 0 199); do
		k=$(printf 'm/%08d' $((i * keys / 200 + i % 7)))
		[ "$(redis-cli -h "$(ip 2)" -p 6379 GET "$k" 2>/dev/null)" = "$(printf "%0${value_size}d" 0)" ] ||
			miss=$((miss + 1))
	done
	echo "200 keys read back after the move: $((200 - miss)) with their value, $miss not"
	stop_all
}

status=0
case "$part" in 1 | both) part1 || status=1 ;; esac
case "$part" in 2 | both) part2 || status=1 ;; esac
exit $status
