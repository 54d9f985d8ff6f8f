#!/usr/bin/env bash
# The node engine is pure (DESIGN.md 12, node/engine.h): no libuv, thread, socket, file, clock
# or randomness in its files; the shell (node/shell.c, resp.c, metrics_endpoint.c, http.c,
# config.c, identity.c, addrbook.c, memberfile.c, authfile.c, log.c) does all of that. Run by `make test`; exits 1 and
# names the line when an engine file reaches for one of them.
set -u
cd "$(dirname "$0")/.." || exit 2
ENGINE="node/engine.h node/engine.c node/node_int.h node/driver.c node/service.c node/snapshot.c node/move.c
        node/repair.c node/restore.c node/balance.c node/expire.c node/msg.h node/msg.c node/members.c
        node/reshard.h node/reshard.c node/backup.c node/auth.h node/auth.c node/groups.c"
pattern='#include *<(uv|pthread|sys/socket|sys/stat|time|unistd|fcntl|signal|dirent)\.h>'
pattern+='|#include *"(net/(server|resp_server)|node/(shell|node|identity))\.h"'
pattern+='|[^_a-z]rand\(|clock_gettime|gettimeofday|[^_a-z]time\(|uv_[a-z]|pthread_|getpid\('
pattern+='|[^_a-z](open|fopen|read|write|close|unlink|rename|mkdir)\('
# shellcheck disable=SC2086 # the list is word-split on purpose
hits=$(grep -nE "$pattern" $ENGINE | grep -vE '^[^:]+:[0-9]+:\s*(/?\*|//)')
if [ -n "$hits" ]; then
  echo "the node engine must stay pure (node/engine.h); found:"
  printf '  %s\n' "$hits"
  exit 1
fi
echo "node engine purity: $(echo $ENGINE | wc -w) files clean"
