/* client_int.h — the client's private state and its one retry engine, shared by the files that
 * implement client.h (client.c: calls and retries; scan.c; cluster.c: status and leadership)
 * and by kvctl bench, which pipelines on the client's routing cache. Internal to cli/.
 */
#ifndef RINGRAFT_CLI_CLIENT_INT_H
#define RINGRAFT_CLI_CLIENT_INT_H

#include "cli/client.h"
#include "cli/codec.h"
#include "cli/conn.h"
#include "cli/route.h"

#define CLI_CONNS_MAX (CLI_ENDPOINTS_MAX + CLI_NODES_MAX)

struct cli_client {
	struct cli_options o;
	size_t n_eps;
	char eps[CLI_ENDPOINTS_MAX][CLI_ADDR_MAX];
	size_t next_ep; /* round robin over eps when no leader is known */
	struct cli_route route;
	struct cli_conn *conns[CLI_CONNS_MAX]; /* by address, at most one each */
	uint64_t client_id, seq, next_req_id;
	uint64_t members_epoch; /* the highest cluster map epoch a STATUS answer named */
	uint64_t rng; /* xorshift state for backoff jitter */
	SSL_CTX *tls; /* NULL in plaintext; owned */
};

/* What one routed call asks for. */
struct cli_call {
	Ringraft__Kv__Request req; /* op, key, value, ... filled by the caller */
	const void *key;           /* routing key (req.group == 0) */
	size_t key_len;
	bool write; /* attach (client_id, next seq) and count unanswered attempts as maybe-applied
		     */
};

/* Runs a call with routing and retries until a definite answer or the deadline: returns the
 * final cli_code (or negative error); when the node answered, *resp is its reply (free with
 * ringraft__kv__response__free_unpacked), else NULL. */
int cli_call_routed(struct cli_client *c, struct cli_call *call, Ringraft__Kv__Response **resp);
/* One attempt of req on addr before deadline_ms (sets req->id). 0 with *resp, or a negative
 * error; *sent says whether the whole request left this host. */
int cli_attempt(struct cli_client *c, const char *addr, Ringraft__Kv__Request *req,
		int64_t deadline_ms, Ringraft__Kv__Response **resp, bool *sent);
/* Learns ring and leaders by STATUS from the endpoints in turn, each tried at most once. */
int cli_refresh(struct cli_client *c, int64_t deadline_ms);
/* Installs what a STATUS response says about the ring and the leaders. */
void cli_learn_status(struct cli_client *c, const Ringraft__Kv__Response *resp);
/* The cached connection to addr, opened if needed. */
int cli_conn_get(struct cli_client *c, const char *addr, int64_t deadline_ms,
		 struct cli_conn **out);
void cli_conn_drop(struct cli_client *c, const char *addr);

#endif
