/* backup.c — `kvctl backup FILE` and `kvctl restore FILE` (issue 21, docs/OPERATIONS.md
 * "Backup and restore").
 *
 * backup: for every data group in turn, asks its leader for a snapshot (BACKUP_BEGIN: the
 * leader confirms its leadership and the snapshot holds every write acknowledged before it,
 * node/backup.c) and reads the stream chunk by chunk (BACKUP_CHUNK) into FILE.tmp, in the
 * format of kv/backup.h; a group whose stream breaks (leader change, lost connection) is begun
 * again from its section's start. The trailer's checksum is computed by reading the file back
 * (a section's length is known only once its stream ends), then the file is synced and renamed
 * to FILE. The meta group (members, users) is not backed up: the restored cluster has its own
 * members, and its users are made again (docs/OPERATIONS.md says why).
 *
 * restore: checks a backup file offline (kv_backup_file_walk) and prints what it holds and the
 * kvd --restore command that seeds a new cluster with it; it changes nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "cli/client_int.h"
#include "cli/kvctl.h"
#include "kv/backup.h"
#include "kv/kv_limits.h"

#define BACKUP_ATTEMPTS_MAX 8          /* tries per group before giving up */
#define CLUSTER_ID_SEED     0x72696e67 /* node/config.c's cluster id: XXH64(members/groups) */

struct out {
	FILE *f;
	const char *tmp;
	uint64_t bytes; /* written so far */
};

static int put(struct out *o, const void *p, size_t n)
{
	if (n > 0 && fwrite(p, 1, n, o->f) != n)
		return -1;
	o->bytes += n;
	return 0;
}

static void end_quietly(struct cli_client *c, const char *addr, uint64_t id)
{
	Ringraft__Kv__Request req = RINGRAFT__KV__REQUEST__INIT;
	req.op = RINGRAFT__KV__OP__BACKUP_END;
	req.backup_id = id;
	Ringraft__Kv__Response *resp = NULL;
	bool sent;
	if (cli_attempt(c, addr, &req, cli_now_ms() + 1000, &resp, &sent) == 0)
		ringraft__kv__response__free_unpacked(resp, NULL);
}

/* One try at group g's stream into o, from its section start. CLI_OK, or the code that broke
 * it (the caller rewinds and tries again); *why says what happened. */
static int group_once(struct cli_client *c, const struct kvctl_args *a, uint32_t g, struct out *o,
		      struct kv_backup_section *sec, char *why, size_t why_len)
{
	char addr[CLI_ADDR_MAX];
	uint64_t leader;
	int rc = cli_leader_of(c, g, false, &leader, addr);
	if (rc != CLI_OK)
		rc = cli_leader_of(c, g, true, &leader, addr);
	if (rc != CLI_OK) {
		snprintf(why, why_len, "no leader known for group %u", g);
		return rc;
	}
	uint64_t at = ftello(o->f) < 0 ? 0 : (uint64_t)ftello(o->f);
	uint8_t placeholder[KV_BACKUP_SECTION_BYTES] = {0};
	if (put(o, placeholder, sizeof placeholder) < 0) {
		snprintf(why, why_len, "cannot write %.200s: %s", o->tmp, strerror(errno));
		return CLI_EINVAL;
	}
	Ringraft__Kv__Request req = RINGRAFT__KV__REQUEST__INIT;
	req.op = RINGRAFT__KV__OP__BACKUP_BEGIN;
	req.group = g;
	req.redirect = true;
	uint64_t id = 0, offset = 0;
	bool done = false;
	while (!done) {
		Ringraft__Kv__Response *resp = NULL;
		bool sent;
		rc = cli_attempt(c, addr, &req, cli_now_ms() + a->timeout_ms, &resp, &sent);
		if (rc != 0) {
			snprintf(why, why_len, "%s: %s", addr, cli_strerror(rc));
			cli_conn_drop(c, addr);
			return rc;
		}
		rc = (int)resp->code;
		if (rc == CLI_NOT_LEADER) {
			/* begin again at the leader it names (the routing cache learns it) */
			snprintf(why, why_len, "%s no longer leads group %u", addr, g);
			ringraft__kv__response__free_unpacked(resp, NULL);
			(void)cli_leader_of(c, g, true, &leader, addr);
			return CLI_NOT_LEADER;
		}
		if (rc != CLI_OK) {
			snprintf(why, why_len, "%s: %s%s%s", addr, cli_strerror(rc),
				 resp->error && resp->error[0] ? ": " : "",
				 resp->error ? resp->error : "");
			ringraft__kv__response__free_unpacked(resp, NULL);
			if (id != 0)
				end_quietly(c, addr, id);
			return rc;
		}
		/* the answer is the node's: check it before it lands in the file */
		if ((id != 0 && resp->backup_id != id) || resp->backup_id == 0 ||
		    resp->backup_offset != offset ||
		    (id != 0 &&
		     (resp->applied_index != sec->index || resp->backup_term != sec->term))) {
			uint64_t theirs = resp->backup_id;
			snprintf(why, why_len, "%s: a chunk that does not follow the last one",
				 addr);
			ringraft__kv__response__free_unpacked(resp, NULL);
			end_quietly(c, addr, theirs);
			return CLI_EPROTO;
		}
		if (id == 0) {
			id = resp->backup_id;
			sec->index = resp->applied_index;
			sec->term = resp->backup_term;
		}
		if (put(o, resp->value.data, resp->value.len) < 0) {
			snprintf(why, why_len, "cannot write %.200s: %s", o->tmp, strerror(errno));
			ringraft__kv__response__free_unpacked(resp, NULL);
			end_quietly(c, addr, id);
			return CLI_EINVAL;
		}
		offset += resp->value.len;
		done = resp->done;
		ringraft__kv__response__free_unpacked(resp, NULL);
		req = (Ringraft__Kv__Request)RINGRAFT__KV__REQUEST__INIT;
		req.op = RINGRAFT__KV__OP__BACKUP_CHUNK;
		req.backup_id = id;
		req.backup_offset = offset;
	}
	sec->group = g;
	sec->length = offset;
	uint8_t sh[KV_BACKUP_SECTION_BYTES];
	kv_backup_section_encode(sec, sh);
	if (fseeko(o->f, (off_t)at, SEEK_SET) != 0 || fwrite(sh, 1, sizeof sh, o->f) != sizeof sh ||
	    fseeko(o->f, 0, SEEK_END) != 0) {
		snprintf(why, why_len, "cannot write %.200s: %s", o->tmp, strerror(errno));
		return CLI_EINVAL;
	}
	return CLI_OK;
}

/* Appends the trailer: the checksum of every byte so far, read back from the file. */
static int finish_file(struct out *o, uint32_t sections)
{
	if (fflush(o->f) != 0)
		return -1;
	XXH3_state_t *h = XXH3_createState();
	uint8_t *buf = malloc(1u << 20);
	int rc = -1;
	if (h == NULL || buf == NULL)
		goto out;
	XXH3_64bits_reset(h);
	if (fseeko(o->f, 0, SEEK_SET) != 0)
		goto out;
	uint64_t left = o->bytes;
	while (left > 0) {
		size_t take = left < (1u << 20) ? (size_t)left : (1u << 20);
		if (fread(buf, 1, take, o->f) != take)
			goto out;
		XXH3_64bits_update(h, buf, take);
		left -= take;
	}
	struct kv_backup_trailer t = {.sections = sections, .length = o->bytes};
	uint8_t tb[KV_BACKUP_TRAILER_BYTES];
	kv_backup_trailer_encode(&t, tb);
	XXH3_64bits_update(h, tb, KV_BACKUP_SUM_OFFSET);
	t.checksum = XXH3_64bits_digest(h);
	kv_backup_trailer_encode(&t, tb);
	if (fseeko(o->f, 0, SEEK_END) != 0 || fwrite(tb, 1, sizeof tb, o->f) != sizeof tb ||
	    fflush(o->f) != 0 || fsync(fileno(o->f)) != 0)
		goto out;
	o->bytes += sizeof tb;
	rc = 0;
out:
	XXH3_freeState(h);
	free(buf);
	return rc;
}

static void fsync_parent(const char *path)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/* The ring and the cluster id from one endpoint's STATUS: KVCTL_EXIT_OK, or the exit code
 * after saying why. */
static int ring_of(struct cli_client *c, const struct kvctl_args *a, struct kv_backup_header *h)
{
	char eps[4096];
	snprintf(eps, sizeof eps, "%s", a->endpoints);
	char *save = NULL;
	int rc = CLI_UNAVAILABLE;
	for (char *ep = strtok_r(eps, ",", &save); ep != NULL; ep = strtok_r(NULL, ",", &save)) {
		struct cli_node_status st;
		rc = cli_status(c, ep, &st);
		if (rc != CLI_OK)
			continue;
		bool bootstrap_ring = st.ring_epoch == 1;
		for (size_t i = 0; i < st.n_ring_ids; i++)
			if (st.ring_ids[i] != i + 1)
				bootstrap_ring = false;
		if (st.n_ring_ids != 0 && st.n_ring_ids != st.ring_groups)
			bootstrap_ring = false;
		h->groups = st.ring_groups;
		h->vnodes = st.ring_vnodes;
		h->ring_epoch = st.ring_epoch;
		h->sections = st.ring_groups;
		char id[sizeof st.bootstrap + 32];
		int l = snprintf(id, sizeof id, "%s/groups=%u", st.bootstrap, st.ring_groups);
		h->cluster_id = XXH64(id, (size_t)l, CLUSTER_ID_SEED);
		cli_node_status_free(&st);
		if (!bootstrap_ring) {
			fprintf(stderr,
				"kvctl: backup: the cluster's ring was resharded (epoch %llu): a "
				"backup holds the bootstrap ring only (groups 1..G, epoch 1)\n",
				(unsigned long long)h->ring_epoch);
			return KVCTL_EXIT_USAGE;
		}
		if (h->groups == 0 || h->groups >= KV_GROUPS_MAX) {
			fprintf(stderr, "kvctl: backup: the node reports %u groups\n", h->groups);
			return KVCTL_EXIT_UNAVAILABLE;
		}
		return KVCTL_EXIT_OK;
	}
	return kvctl_fail(a, "backup", rc);
}

int kvctl_cmd_backup(struct cli_client *c, const struct kvctl_args *a)
{
	const char *path = a->pos[1];
	char tmp[4200];
	if (strlen(path) == 0 || strlen(path) > 4000) {
		fprintf(stderr, "kvctl: backup: FILE must be a path of 1..4000 bytes\n");
		return KVCTL_EXIT_USAGE;
	}
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	struct kv_backup_header h = {0};
	int rc = ring_of(c, a, &h);
	if (rc != KVCTL_EXIT_OK)
		return rc;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	h.created_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	struct out o = {.tmp = tmp};
	o.f = fopen(tmp, "w+b");
	if (o.f == NULL) {
		fprintf(stderr, "kvctl: backup: cannot create %s: %s\n", tmp, strerror(errno));
		return KVCTL_EXIT_USAGE;
	}
	uint8_t hb[KV_BACKUP_HEADER_BYTES];
	kv_backup_header_encode(&h, hb);
	int ex = KVCTL_EXIT_UNAVAILABLE;
	if (put(&o, hb, sizeof hb) < 0) {
		fprintf(stderr, "kvctl: backup: cannot write %s: %s\n", tmp, strerror(errno));
		goto fail;
	}
	for (uint32_t g = 1; g <= h.groups; g++) {
		uint64_t start = o.bytes;
		struct kv_backup_section sec = {0};
		char why[512] = "";
		int grc = CLI_UNAVAILABLE;
		for (int attempt = 0; attempt < BACKUP_ATTEMPTS_MAX; attempt++) {
			if (attempt > 0) {
				fprintf(stderr, "kvctl: backup: group %u: %s; beginning it again\n",
					g, why);
				usleep(200000u * (unsigned)attempt);
				if (fflush(o.f) != 0 || ftruncate(fileno(o.f), (off_t)start) != 0 ||
				    fseeko(o.f, (off_t)start, SEEK_SET) != 0) {
					fprintf(stderr, "kvctl: backup: cannot rewind %s: %s\n",
						tmp, strerror(errno));
					goto fail;
				}
				o.bytes = start;
			}
			grc = group_once(c, a, g, &o, &sec, why, sizeof why);
			if (grc == CLI_OK || grc == CLI_EINVAL || grc == CLI_UNAUTHENTICATED ||
			    grc == CLI_PERMISSION_DENIED)
				break;
		}
		if (grc != CLI_OK) {
			fprintf(stderr, "kvctl: backup: group %u failed: %s\n", g, why);
			if (grc == CLI_UNAUTHENTICATED || grc == CLI_PERMISSION_DENIED)
				ex = KVCTL_EXIT_AUTH;
			goto fail;
		}
		char hb2[32];
		fprintf(stderr, "kvctl: backup: group %u/%u applied=%" PRIu64 " %s (total %s)\n", g,
			h.groups, sec.index, kvctl_human_bytes(sec.length, hb2, sizeof hb2),
			kvctl_human_bytes(o.bytes, (char[32]){0}, 32));
	}
	if (finish_file(&o, h.groups) < 0) {
		fprintf(stderr, "kvctl: backup: cannot finish %s: %s\n", tmp, strerror(errno));
		goto fail;
	}
	fclose(o.f);
	o.f = NULL;
	if (rename(tmp, path) != 0) {
		fprintf(stderr, "kvctl: backup: cannot rename %s to %s: %s\n", tmp, path,
			strerror(errno));
		goto fail;
	}
	fsync_parent(path);
	printf("backup %s: %u groups, %" PRIu64 " bytes, cluster %016" PRIx64 "\n", path, h.groups,
	       o.bytes, h.cluster_id);
	return KVCTL_EXIT_OK;
fail:
	if (o.f != NULL)
		fclose(o.f);
	unlink(tmp);
	return ex;
}

static int count_fn(const struct kv_backup_section *s, const void *data, size_t len, bool last,
		    void *arg)
{
	(void)data;
	(void)len;
	if (last)
		printf("  group %u: applied index %" PRIu64 ", term %" PRIu64 ", %" PRIu64
		       " bytes\n",
		       s->group, s->index, s->term, s->length);
	(void)arg;
	return 0;
}

int kvctl_cmd_restore(struct cli_client *c, const struct kvctl_args *a)
{
	(void)c;
	const char *path = a->pos[1];
	struct kv_backup_header h;
	char why[512];
	/* checked whole first: nothing of a damaged file is printed as if it were good */
	if (kv_backup_file_walk(path, &h, NULL, NULL, why, sizeof why) < 0) {
		fprintf(stderr, "kvctl: restore: %s: %s\n", path, why);
		return KVCTL_EXIT_USAGE;
	}
	printf("%s: a good backup of cluster %016" PRIx64 ", %u groups (ring epoch %" PRIu64
	       ", %u points per group), taken at %" PRIu64 " ms since the epoch\n",
	       path, h.cluster_id, h.groups, h.ring_epoch, h.vnodes, h.created_ms);
	if (kv_backup_file_walk(path, &h, count_fn, NULL, why, sizeof why) < 0) {
		fprintf(stderr, "kvctl: restore: %s: %s\n", path, why);
		return KVCTL_EXIT_USAGE;
	}
	printf("To seed a new cluster with it, start every node of the new cluster for the first "
	       "time with\n  kvd --data-dir EMPTY_DIR --id N --cluster ... --groups %u "
	       "--restore %s\n(docs/OPERATIONS.md, \"Backup and restore\").\n",
	       h.groups, path);
	return KVCTL_EXIT_OK;
}
