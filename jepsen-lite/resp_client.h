/* resp_client.h — the register workload's operations over a node's RESP port (--protocol
 * resp): GET, SET and ringraft's CAS (SET NX when the key is expected absent), one command at
 * a time on one blocking connection, with the result codes of cli/client.h so that the
 * workload records them the same way: a definite failure (-TRYAGAIN, -CLUSTERDOWN, a node it
 * could not reach before sending) is retried on the next node until the timeout and is then
 * CLI_UNAVAILABLE; anything after which the command may have been applied (a timeout once
 * sent, a broken connection, "-ERR outcome unknown ...", any other error of a write) is
 * indeterminate (CLI_TIMEOUT, CLI_ECONN, CLI_INTERNAL) and is never retried: RESP has no
 * sessions, so a retry could apply a write twice.
 */
#ifndef RINGRAFT_JEPSEN_RESP_CLIENT_H
#define RINGRAFT_JEPSEN_RESP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct jl_resp;
/* endpoints: "host:port,host:port,..." of RESP ports (copied). 0, or CLI_EADDR / CLI_ENOMEM. */
int jl_resp_new(const char *endpoints, uint32_t timeout_ms, struct jl_resp **out);
void jl_resp_free(struct jl_resp *r);
void jl_resp_set_timeout(struct jl_resp *r, uint32_t timeout_ms);

/* CLI_OK with *value (malloc'd, NUL after len; free()), CLI_NOT_FOUND, or an error. */
int jl_resp_get(struct jl_resp *r, const char *key, void **value, size_t *len);
/* CLI_OK or an error. */
int jl_resp_put(struct jl_resp *r, const char *key, const void *value, size_t len);
/* expected NULL: only if absent. CLI_OK, CLI_CAS_MISMATCH, or an error. */
int jl_resp_cas(struct jl_resp *r, const char *key, const void *expected, size_t expected_len,
		const void *value, size_t len);

#endif
