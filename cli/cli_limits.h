/* cli_limits.h — bounds of the client library and kvctl, checked where input enters (arguments,
 * stdin, replies). Key and value limits mirror the server's (kv/kv_limits.h) so an oversize
 * request is refused locally, before any byte is sent.
 */
#ifndef RINGRAFT_CLI_LIMITS_H
#define RINGRAFT_CLI_LIMITS_H

#include "kv/kv_limits.h"
#include "net/net_limits.h"

#define CLI_ENDPOINTS_MAX      64u                    /* endpoints in one --endpoints list */
#define CLI_ADDR_MAX           128                    /* "host:port" including the NUL */
#define CLI_KEY_MAX            ((unsigned)KV_KEY_MAX) /* bytes */
#define CLI_VALUE_MAX          KV_VALUE_MAX_DEFAULT /* bytes; the server may be configured lower */
#define CLI_TIMEOUT_MS_DEFAULT 5000                 /* per request, all retries included */
#define CLI_TIMEOUT_MS_MAX     (3600u * 1000u)      /* one hour */
#define CLI_ATTEMPT_MS_MIN     1000 /* one attempt waits at least this (or what is left) */
#define CLI_BACKOFF_MS_MIN     5    /* first pause between retries */
#define CLI_BACKOFF_MS_MAX     200  /* pauses double up to this, with jitter */
#define CLI_SCAN_LIMIT_DEFAULT ((unsigned)KV_SCAN_DEFAULT)
#define CLI_SCAN_LIMIT_MAX     1000000 /* merged over all groups */
#define CLI_GROUPS_MAX         ((unsigned)KV_GROUPS_MAX)
#define CLI_GROUPS_ADD_MAX     32u /* groups add --count: the ids a cluster adds in its life */
#define CLI_NODES_MAX          64   /* nodes in a ring config / status table */
#define CLI_PIPELINE_MAX       1024 /* requests in flight per bench connection */
#define CLI_BENCH_CLIENTS_MAX  256  /* bench clients (each with its connections) */
#define CLI_BENCH_THREADS_MAX  64   /* bench threads running them */
#define CLI_BENCH_REQUESTS_MAX 100000000u
#define CLI_BENCH_RETRY_MS_MIN 50          /* bench: first pause before using a failed node again */
#define CLI_BENCH_RETRY_MS_MAX 1000        /* bench: pauses double up to this */
#define CLI_FRAME_MAX          (64u << 20) /* largest reply accepted (a scan page can be big) */
#define CLI_TTL_MS_MAX         (100ull * 365 * 24 * 3600 * 1000) /* put --ttl: 100 years */

#endif
