/* kv_limits.h — bounds of the state machine, checked where requests and snapshots enter. */
#ifndef RINGRAFT_KV_LIMITS_H
#define RINGRAFT_KV_LIMITS_H

#define KV_KEY_MAX                511           /* LMDB's default maximum key size */
#define KV_VALUE_MAX_DEFAULT      (1u << 20)    /* 1 MiB */
#define KV_MAP_BYTES_DEFAULT      (64ull << 20) /* 64 MiB (preallocated with writemap); doubles */
#define KV_MAP_BYTES_MAX_DEFAULT  (1ull << 40)  /* growth stops at 1 TiB of address space */
#define KV_VALUE_MAX_HARD         (4u << 20)    /* absolute, checked on decode (= a Raft entry) */
#define KV_MULTI_KEYS_MAX         65536         /* keys of one MSET/MDEL entry */
#define KV_GROUPS_MAX             4096
#define KV_SCAN_MAX               10000
#define KV_SCAN_DEFAULT           1000
#define KV_SESSION_TTL_ENTRIES    100000ull
#define KV_SESSIONS_MAX           10000
#define KV_SESSION_WINDOW         64 /* results remembered per client (in flight) */
#define KV_SNAPSHOT_CHUNK_DEFAULT (256u << 10)
#define KV_DROP_KEYS_MAX          4096       /* keys one DROP entry examines (bounds its apply) */
#define KV_SCRUB_RECORDS_DEFAULT  256        /* records checked per kv_scrub_step */
#define KV_SCRUB_RECORDS_MAX      10000      /* bounds one step's read transaction */
#define KV_FORMAT_VERSION         3          /* on-disk format; 2: CRC32C; 3: + expiry */
/* see kv_err_of_write (kv.c): 8 MiB of slack, plus a whole WAL segment (64 MiB), which the
 * WAL's thread may hold in a preallocation that fails on the full disk and then gives back just
 * before the check reads the free space */
#define KV_ENOSPC_SLACK_BYTES     (72u << 20)
/* Batched applies (kv.h): what the open transaction holds before kv_apply commits it on its
 * own, a bound on its dirty pages (LMDB keeps them in memory until the commit) and on the
 * work a crash throws away; the node also commits it every --apply-commit-ms. */
#define KV_APPLY_HOLD_ENTRIES     4096
#define KV_APPLY_HOLD_BYTES       (16u << 20)

#endif
