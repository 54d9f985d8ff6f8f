/* statemachine.c — the per-node state machine the simulator applies committed entries to.
 *
 * A tiny KV of at most SIM_KEYS_MAX keys; each key keeps the index of the entry that wrote it,
 * so a read can be checked against acknowledged writes. Its snapshot is its text serialization
 * ("applied\nkey=value@ver\n..."), served to InstallSnapshot in chunks.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "tests/sim/sim.h"

void sm_reset(struct sm *s)
{
	memset(s, 0, sizeof(*s));
}

static struct sm_kv *find(struct sm *s, const char *key, bool create)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->kv[i].key, key) == 0)
			return &s->kv[i];
	if (!create || s->n == SIM_KEYS_MAX)
		return NULL;
	struct sm_kv *kv = &s->kv[s->n++];
	memset(kv, 0, sizeof(*kv));
	snprintf(kv->key, sizeof(kv->key), "%s", key);
	return kv;
}

const struct sm_kv *sm_get(const struct sm *s, const char *key)
{
	return find((struct sm *)s, key, false);
}

char *sm_command(uint64_t uid, const char *op, size_t *len)
{
	char tmp[128];
	int n = snprintf(tmp, sizeof(tmp), "#%" PRIu64 " %s", uid, op);
	char *p = malloc((size_t)n);
	if (!p)
		abort();
	memcpy(p, tmp, (size_t)n); /* no NUL: entries are bytes */
	*len = (size_t)n;
	return p;
}

uint64_t sm_apply(struct sm *s, raft_index index, const void *data, size_t len)
{
	s->applied = index;
	if (len == 0 || len >= 128)
		return 0;
	char cmd[128];
	memcpy(cmd, data, len);
	cmd[len] = '\0';
	uint64_t uid = 0;
	char key[SIM_KEY_BYTES], val[SIM_VAL_BYTES];
	if (sscanf(cmd, "#%" SCNu64 " put %15[^=]=%31s", &uid, key, val) == 3) {
		struct sm_kv *kv = find(s, key, true);
		if (kv) {
			snprintf(kv->val, sizeof(kv->val), "%s", val);
			kv->ver = index;
		}
	} else {
		sscanf(cmd, "#%" SCNu64, &uid);
	}
	return uid;
}

size_t sm_serialize(const struct sm *s, char *buf, size_t cap)
{
	size_t off = (size_t)snprintf(buf, cap, "%" PRIu64 "\n", s->applied);
	for (int i = 0; i < s->n && off < cap; i++)
		off += (size_t)snprintf(buf + off, cap - off, "%s=%s@%" PRIu64 "\n", s->kv[i].key,
					s->kv[i].val, s->kv[i].ver);
	if (off >= cap) {
		fprintf(stderr, "sim: snapshot larger than %zu bytes\n", cap);
		abort();
	}
	return off;
}

int sm_deserialize(struct sm *s, const char *buf, size_t len)
{
	char tmp[SIM_SNAP_BYTES_MAX + 1];
	if (len > SIM_SNAP_BYTES_MAX)
		return -1;
	memcpy(tmp, buf, len);
	tmp[len] = '\0';
	sm_reset(s);
	char *save = NULL;
	char *line = strtok_r(tmp, "\n", &save);
	if (!line || sscanf(line, "%" SCNu64, &s->applied) != 1)
		return -1;
	while ((line = strtok_r(NULL, "\n", &save))) {
		char key[SIM_KEY_BYTES], val[SIM_VAL_BYTES];
		uint64_t ver;
		if (sscanf(line, "%15[^=]=%31[^@]@%" SCNu64, key, val, &ver) != 3)
			return -1;
		struct sm_kv *kv = find(s, key, true);
		if (!kv)
			return -1;
		snprintf(kv->val, sizeof(kv->val), "%s", val);
		kv->ver = ver;
	}
	return 0;
}
