/* reset.c — emptying one group (its data, applied index/term, configuration and sessions) in
 * one write transaction (and retiring it: emptied, with the configuration it was removed
 * from left as a marker; or given another configuration, for a group restored from a backup
 * into a new cluster), so that a replica whose copy was found damaged can be rebuilt from
 * its peers by log or snapshot as if it had never applied anything (DESIGN.md 16: recover
 * from the majority). mdb_drop(.., 0) empties a DBI and keeps its handle open.
 */
#include "kv/kv_int.h"

static int reset_fn(MDB_txn *txn, void *arg)
{
	const struct kv_group *g = arg;
	int rc = mdb_drop(txn, g->data, 0);
	if (rc == 0)
		rc = mdb_drop(txn, g->meta, 0);
	return rc;
}

int kv_group_reset(struct kv *kv, uint32_t group)
{
	struct kv_group *g;
	int err = kv_group_get(kv, group, &g);
	if (err != KV_OK)
		return err;
	return kv_write(kv, group, "group_reset", reset_fn, g);
}

struct retire_arg {
	const struct kv_group *g;
	const struct raft_conf *conf;
};

static int retire_fn(MDB_txn *txn, void *arg)
{
	const struct retire_arg *a = arg;
	int rc = reset_fn(txn, (void *)a->g);
	if (rc != 0)
		return rc;
	uint8_t buf[KV_CONF_BYTES_MAX], tag = KV_META_CONF;
	MDB_val k = {1, &tag}, v = {kv_conf_encode(a->conf, buf), buf};
	return mdb_put(txn, a->g->meta, &k, &v, 0);
}

int kv_group_retire(struct kv *kv, uint32_t group, const struct raft_conf *conf)
{
	struct kv_group *g;
	int err = kv_group_get(kv, group, &g);
	if (err != KV_OK)
		return err;
	struct retire_arg a = {g, conf};
	return kv_write(kv, group, "group_retire", retire_fn, &a);
}

struct conf_arg {
	const struct kv_group *g;
	const struct raft_conf *conf;
};

static int conf_set_fn(MDB_txn *txn, void *arg)
{
	const struct conf_arg *a = arg;
	uint8_t buf[KV_CONF_BYTES_MAX], tag = KV_META_CONF;
	MDB_val k = {1, &tag}, v = {kv_conf_encode(a->conf, buf), buf};
	return mdb_put(txn, a->g->meta, &k, &v, 0);
}

int kv_group_conf_set(struct kv *kv, uint32_t group, const struct raft_conf *conf)
{
	struct kv_group *g;
	int err = kv_group_get(kv, group, &g);
	if (err != KV_OK)
		return err;
	struct kv_group_meta km;
	if ((err = kv_meta(kv, group, &km)) != KV_OK)
		return err;
	if (km.applied_index == 0)
		return KV_EINVAL; /* applied index 0 with a conf means "retired" (kv_group_retire) */
	struct conf_arg a = {g, conf};
	return kv_write(kv, group, "group_conf_set", conf_set_fn, &a);
}
