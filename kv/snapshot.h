/* snapshot.h — the snapshot stream format, shared by the writer (snapshot.c) and the reader
 * (restore.c). Internal to kv/.
 *
 *   header:  "RRKVSNP1" | u32 version (3) | u32 group | u64 applied index | u64 applied term
 *   records: u8 tag ('D' data, 'M' meta) | u32 key length | u32 value length | key | value
 *            data records in key order, then meta records in key order. Version 3: a data
 *            record's value is the stored record, u32 LE CRC32C of (key || expiry || value),
 *            u64 LE expiry, then the value (record.c), checked by restore. Older ringraft
 *            sent version 2 (u32 CRC32C of (key || value), then the value: no expiry) and
 *            version 1 (the bare value): restore checks or computes the CRC and stores them
 *            without expiry
 *   trailer: u8 'E' | u64 number of records | u64 XXH3-64 of every byte before this field
 * All integers little-endian. The meta records carry the applied index/term (equal to the
 * header's), the configuration and the client sessions.
 */
#ifndef RINGRAFT_KV_SNAPSHOT_H
#define RINGRAFT_KV_SNAPSHOT_H

#define SNAP_MAGIC          "RRKVSNP1"
#define SNAP_VERSION        3
#define SNAP_VERSION_CRC    2 /* data values with a CRC, no expiry */
#define SNAP_VERSION_BARE   1 /* data values without their CRC */
#define SNAP_HEADER         32
#define SNAP_REC_HEADER     9
#define SNAP_TRAILER        17
#define SNAP_TAG_DATA       'D'
#define SNAP_TAG_META       'M'
#define SNAP_TAG_END        'E'
#define SNAP_META_KEY_MAX   KV_META_EXPIRY_KEY_MAX  /* the longest meta key (kv_int.h layout) */
#define SNAP_META_VALUE_MAX (KV_VALUE_MAX_HARD + 2) /* a cached CAS result */

#endif
