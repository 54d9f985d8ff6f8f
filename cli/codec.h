/* codec.h — conversions between the library's plain structs (client.h) and the generated
 * kv.proto messages. Requests borrow the caller's buffers; replies are deep copies, so a reply
 * outlives the protobuf message it came from. Internal to cli/.
 */
#ifndef RINGRAFT_CLI_CODEC_H
#define RINGRAFT_CLI_CODEC_H

#include "cli/client.h"
#include "proto/kv.pb-c.h"

/* Fills out (initialised here) from in; every pointer in out borrows from in. */
void cli_codec_request(const struct cli_request *in, Ringraft__Kv__Request *out);
/* Deep-copies a response: 0 or CLI_ENOMEM (then *out is freed and zeroed). */
int cli_codec_reply(const Ringraft__Kv__Response *in, struct cli_reply *out);
/* Deep-copies a STATUS response: 0, CLI_EPROTO (no status in it) or CLI_ENOMEM. */
int cli_codec_status(const Ringraft__Kv__Response *in, struct cli_node_status *out);
/* Copies a ring's node list (at most CLI_NODES_MAX), returns how many. */
size_t cli_codec_ring_nodes(const Ringraft__Kv__RingConfig *rc, struct cli_ring_node *nodes);
/* malloc(len + 1) copy with a NUL after the bytes; NULL only on allocation failure. */
void *cli_dup(const void *p, size_t len);

#endif
