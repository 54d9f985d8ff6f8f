/* jl_limits.h — bounds of jepsen-lite: history input, checker memory, workload size. Checked
 * where input enters (the parser, the command lines).
 */
#ifndef RINGRAFT_JEPSEN_LIMITS_H
#define RINGRAFT_JEPSEN_LIMITS_H

/* one history line, bytes: a final set read lists every element added (about 8 bytes each), so
 * this admits reads of several million elements */
#define JL_LINE_MAX (64u << 20)
#define JL_KEY_MAX  511 /* bytes of a key or string value, as in the store */
/* configurations one search remembers before answering unknown: 24 bytes each in a table at
 * most half full, so about 200 MB at the bound */
#define JL_LIN_CACHE_MAX (1u << 22)
#define JL_CLIENTS_MAX   256 /* workload threads */
#define JL_KEYS_MAX      64  /* register keys in use at once */

#endif
