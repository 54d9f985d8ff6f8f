/* backup.h — the backup file (issue 21): what `kvctl backup` writes and `kvd --restore`
 * reads. Every data group's snapshot stream (kv_snapshot_*, snapshot.h), each at its own
 * applied index, between a header that says which cluster and ring it came from and a trailer
 * whose checksum covers every byte before it. Encoding, decoding, and a reader that checks a
 * whole file: the writer is cli/backup.c, the restore node/backup_load.c.
 *
 *   header (64):   "RRBACKUP" | u32 version (1) | u32 header length (64) | u64 cluster id |
 *                  u64 created (ms since the epoch) | u32 groups | u32 vnodes |
 *                  u64 ring epoch | u32 sections | u32 0 | u64 0
 *   per section:   "RRBKGRP1" | u32 group | u32 0 | u64 applied index | u64 applied term |
 *   (40 + length)  u64 length | the group's snapshot stream (length bytes)
 *   trailer (32):  "RRBKEND1" | u64 sections | u64 bytes before the trailer |
 *                  u64 XXH3-64 of every byte of the file before this field
 * All integers little-endian. Sections come in ascending group order, one per group 1..groups
 * (the meta group is never in a backup: its member records belong to the old cluster).
 */
#ifndef RINGRAFT_KV_BACKUP_H
#define RINGRAFT_KV_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h" /* raft_index, raft_term */

#define KV_BACKUP_MAGIC         "RRBACKUP"
#define KV_BACKUP_SECTION_MAGIC "RRBKGRP1"
#define KV_BACKUP_END_MAGIC     "RRBKEND1"
#define KV_BACKUP_VERSION       1u
#define KV_BACKUP_HEADER_BYTES  64u
#define KV_BACKUP_SECTION_BYTES 40u
#define KV_BACKUP_TRAILER_BYTES 32u
#define KV_BACKUP_SUM_OFFSET    24u /* the checksum's place in the trailer */

struct kv_backup_header {
	uint64_t cluster_id;
	uint64_t created_ms;
	uint32_t groups; /* data groups of the ring, 1..KV_GROUPS_MAX - 1 */
	uint32_t vnodes;
	uint64_t ring_epoch;
	uint32_t sections; /* = groups */
};
struct kv_backup_section {
	uint32_t group;
	raft_index index;
	raft_term term;
	uint64_t length; /* bytes of the snapshot stream that follow */
};
struct kv_backup_trailer {
	uint64_t sections;
	uint64_t length;   /* bytes of the file before the trailer */
	uint64_t checksum; /* XXH3-64 of the file up to KV_BACKUP_SUM_OFFSET of the trailer */
};

void kv_backup_header_encode(const struct kv_backup_header *h, uint8_t out[KV_BACKUP_HEADER_BYTES]);
void kv_backup_section_encode(const struct kv_backup_section *s,
			      uint8_t out[KV_BACKUP_SECTION_BYTES]);
void kv_backup_trailer_encode(const struct kv_backup_trailer *t,
			      uint8_t out[KV_BACKUP_TRAILER_BYTES]);

/* Decoders of untrusted bytes: 0, or -1 with a sentence saying what is wrong in why (a
 * NUL-terminated message of at most why_len bytes). They check the magic, the version, that
 * the numbers are in range (groups, a section's group <= groups), nothing across parts. */
int kv_backup_header_decode(const uint8_t in[KV_BACKUP_HEADER_BYTES], struct kv_backup_header *h,
			    char *why, size_t why_len);
int kv_backup_section_decode(const uint8_t in[KV_BACKUP_SECTION_BYTES], uint32_t groups,
			     struct kv_backup_section *s, char *why, size_t why_len);
int kv_backup_trailer_decode(const uint8_t in[KV_BACKUP_TRAILER_BYTES], struct kv_backup_trailer *t,
			     char *why, size_t why_len);

/* Reads the file at path from start to end, checking the header, every section's header, place
 * (groups 1..groups in order) and length, the trailer, and the XXH3-64 over the whole file; fn
 * (may be NULL) gets every section's stream in pieces as they are read (last set on a
 * section's final piece; its data valid during the call only) and may stop the walk with -1.
 * fn has seen the sections before a fault: a caller that installs must check the file first
 * (fn NULL) and read it again. 0 with *hdr, or -1 with a sentence in why (at most n bytes) that
 * says what is wrong. The file is never trusted: any bytes give 0 or -1, never a crash. */
typedef int (*kv_backup_section_fn)(const struct kv_backup_section *s, const void *data, size_t len,
				    bool last, void *arg);
int kv_backup_file_walk(const char *path, struct kv_backup_header *hdr, kv_backup_section_fn fn,
			void *arg, char *why, size_t n);

#endif
