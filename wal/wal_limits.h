/* wal_limits.h — bounds of the write-ahead log, checked on append and on recovery. */
#ifndef RINGRAFT_WAL_LIMITS_H
#define RINGRAFT_WAL_LIMITS_H

#define WAL_SEGMENT_BYTES    (64ull << 20) /* preallocated segment size */
#define WAL_RECORD_BYTES_MAX (16u << 20)   /* one record; larger lengths are corruption */
#define WAL_CACHE_BYTES      (64u << 20)   /* in-memory tail: the newest batches, all groups */
#define WAL_GROUPS_MAX       4096
#define WAL_BATCH_BYTES_MAX  (256u << 20) /* one wal_batch_write (one write syscall) */

#endif
