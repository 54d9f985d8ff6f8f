#!/usr/bin/python3
"""load.py — the write load of tests/powercut/cut_one.sh, and its check.

  load.py write --nodes H:P,... --out FILE --stop FILE [--clients C] [--prefix P]
      C clients (threads), each on one node's RESP port (client i on node i mod N), SET keys
      P:i:n with a value naming the key, one key once, until FILE --stop exists. A write
      answered OK is acknowledged: written to --out as "key value" once the load stops. A
      write that failed (error, timeout, connection lost) may or may not have happened: it is
      not recorded, and the client goes on with a new key on the next node.
  load.py check --nodes H:P,... --in FILE [--readonly] [--wait-s S]
      GETs every acknowledged key (linearizable; --readonly: READONLY, from the contacted
      replica only, one node given) and counts those missing or with another value; with
      --wait-s, tries again until they all match or S seconds passed. Exit 0 only if all match.
"""
import argparse
import os
import sys
import threading
import time

import redis

VALUE_PAD = "x" * 100


def nodes_of(s):
    out = []
    for hp in s.split(","):
        h, p = hp.rsplit(":", 1)
        out.append((h, int(p)))
    return out


def connect(node, readonly=False):
    r = redis.Redis(host=node[0], port=node[1], socket_timeout=6, socket_connect_timeout=2)
    if readonly:
        r.execute_command("READONLY")
    return r


def writer(c, nodes, prefix, stop, acked, counts):
    k = c % len(nodes)
    r = None
    n = 0
    while not os.path.exists(stop):
        key = "%s:%d:%d" % (prefix, c, n)
        value = "%s=%s" % (key, VALUE_PAD)
        n += 1
        try:
            if r is None:
                r = connect(nodes[k])
            if r.set(key, value):
                acked.append((key, value))
                counts["ok"] += 1
        except (redis.RedisError, OSError):
            counts["failed"] += 1
            r = None
            k = (k + 1) % len(nodes)
            time.sleep(0.05)


def cmd_write(a):
    nodes = nodes_of(a.nodes)
    acked = [[] for _ in range(a.clients)]
    counts = [{"ok": 0, "failed": 0} for _ in range(a.clients)]
    ts = [threading.Thread(target=writer, args=(c, nodes, a.prefix, a.stop, acked[c], counts[c]))
          for c in range(a.clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    with open(a.out, "w") as f:
        for lst in acked:
            for key, value in lst:
                f.write("%s %s\n" % (key, value))
    print("load: %d writes acknowledged, %d failed (outcome unknown)" %
          (sum(c["ok"] for c in counts), sum(c["failed"] for c in counts)))
    return 0


def check_once(nodes, pairs, readonly):
    missing, wrong, errors = [], [], 0
    r = None
    k = 0
    for i in range(0, len(pairs), 500):
        batch = pairs[i:i + 500]
        for attempt in range(len(nodes) * 3):
            try:
                if r is None:
                    r = connect(nodes[k], readonly)
                p = r.pipeline(transaction=False)
                for key, _ in batch:
                    p.get(key)
                got = p.execute()
                break
            except (redis.RedisError, OSError):
                errors += 1
                r = None
                k = (k + 1) % len(nodes)
                time.sleep(0.2)
        else:
            return None, None, errors
        for (key, value), g in zip(batch, got):
            if g is None:
                missing.append(key)
            elif g.decode() != value:
                wrong.append(key)
    return missing, wrong, errors


def cmd_check(a):
    nodes = nodes_of(a.nodes)
    with open(a.__dict__["in"]) as f:
        pairs = [tuple(line.rstrip("\n").split(" ", 1)) for line in f if line.strip()]
    deadline = time.monotonic() + a.wait_s
    while True:
        missing, wrong, errors = check_once(nodes, pairs, a.readonly)
        done = missing is not None and not missing and not wrong
        if done or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    where = ("replica %s:%d (READONLY)" % nodes[0]) if a.readonly else "the cluster"
    if missing is None:
        print("check: %s did not answer (%d errors)" % (where, errors))
        return 1
    print("check: %d acknowledged keys read from %s: %d missing, %d with another value" %
          (len(pairs), where, len(missing), len(wrong)))
    for key in (missing + wrong)[:10]:
        print("check:   e.g. %s" % key)
    return 0 if not missing and not wrong else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("--nodes", required=True)
    w.add_argument("--out", required=True)
    w.add_argument("--stop", required=True)
    w.add_argument("--clients", type=int, default=8)
    w.add_argument("--prefix", default="pc")
    c = sub.add_parser("check")
    c.add_argument("--nodes", required=True)
    c.add_argument("--in", required=True)
    c.add_argument("--readonly", action="store_true")
    c.add_argument("--wait-s", type=float, default=0)
    a = ap.parse_args()
    return cmd_write(a) if a.cmd == "write" else cmd_check(a)


if __name__ == "__main__":
    sys.exit(main())
