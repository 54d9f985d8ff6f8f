/* errors.c — names of the client's outcome and error codes, and which of them are definite
 * (DESIGN.md section 7: a client must know whether a failed write may still have happened).
 */
#include "cli/client.h"

const char *cli_strerror(int code)
{
	switch (code) {
	case CLI_OK:
		return "ok";
	case CLI_NOT_FOUND:
		return "not found";
	case CLI_CAS_MISMATCH:
		return "compare failed: the key holds another value";
	case CLI_NOT_LEADER:
		return "not the leader";
	case CLI_INVALID:
		return "invalid request";
	case CLI_TOO_LARGE:
		return "key or value too large";
	case CLI_WRONG_SHARD:
		return "stale ring (wrong shard)";
	case CLI_UNAVAILABLE:
		return "unavailable: no node could serve the request";
	case CLI_TIMEOUT:
		return "timed out: the outcome is unknown";
	case CLI_LEADER_LOST:
		return "leader lost: the outcome is unknown";
	case CLI_INTERNAL:
		return "internal error on the node: the outcome is unknown";
	case CLI_BUSY:
		return "busy: the node is overloaded and did not take it; try again";
	case CLI_MOVING:
		return "moving: the key's range is moving to another group; not written, try again";
	case CLI_UNAUTHENTICATED:
		return "not authenticated: authentication is on; give a user (--user, "
		       "RINGRAFT_USER) and its password (RINGRAFT_PASSWORD or the prompt)";
	case CLI_PERMISSION_DENIED:
		return "permission denied: the user's role does not allow it";
	case CLI_EINVAL:
		return "invalid argument";
	case CLI_ENOMEM:
		return "out of memory";
	case CLI_EADDR:
		return "bad endpoint address (want host:port)";
	case CLI_EPROTO:
		return "protocol error: undecodable reply";
	case CLI_ECONN:
		return "connection failed";
	case CLI_ETLS:
		return "TLS setup failed";
	default:
		return "unknown error";
	}
}

bool cli_result_is_definite(int code)
{
	switch (code) {
	case CLI_TIMEOUT:
	case CLI_LEADER_LOST:
	case CLI_INTERNAL:
	case CLI_ECONN:
	case CLI_EPROTO:
		return false;
	default:
		return true;
	}
}
