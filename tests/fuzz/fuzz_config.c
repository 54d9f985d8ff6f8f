/* fuzz_config.c — libFuzzer harness for kvd's settings (node/config.c node_config_load): the
 * command-line flags, a --config file and the persisted DIR/cluster.conf.
 *
 * Input: three parts separated by two NUL bytes: the flags (one argument per NUL-separated
 * piece), the --config file's text (given only when not empty) and a cluster.conf put in the
 * data directory beforehand (likewise). The harness always passes --data-dir (a scratch
 * directory emptied for each input) and refuses inputs that name data-dir or config
 * themselves, so the fuzzer never makes kvd read or write elsewhere.
 * Checked beyond "no crash": an error comes with a message; an accepted configuration keeps
 * every promise kvd relies on (the node is a member; members sorted, unique, at most
 * NODE_NODES_MAX, with addresses that parse; groups and timings in range; strings
 * terminated), and a restart with only --data-dir reads back the same identity from the
 * cluster.conf the first load wrote.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv/kv_limits.h"
#include "net/frame.h"
#include "node/config.h"
#include "wal/wal_limits.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_config: check failed: %s (line %d)\n", #c,           \
				__LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define ARGS_MAX 64

static char root[64], data_dir[128], conf_path[128];

static void empty_data_dir(void)
{
	DIR *d = opendir(data_dir);
	if (d == NULL)
		return;
	struct dirent *e;
	char path[512];
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", data_dir, e->d_name);
		unlink(path);
	}
	closedir(d);
}

static void cleanup(void)
{
	empty_data_dir();
	rmdir(data_dir);
	unlink(conf_path);
	rmdir(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	snprintf(root, sizeof root, "/tmp/ringraft-fuzz-config-XXXXXX");
	CHECK(mkdtemp(root) != NULL);
	snprintf(data_dir, sizeof data_dir, "%s/data", root);
	snprintf(conf_path, sizeof conf_path, "%s/kvd.conf", root);
	atexit(cleanup);
	return 0;
}

static void write_file(const char *path, const uint8_t *p, size_t len)
{
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	CHECK(fwrite(p, 1, len, f) == len);
	fclose(f);
}

static const uint8_t *find2nul(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++)
		if (p[i] == 0 && p[i + 1] == 0)
			return p + i;
	return NULL;
}

static bool names_a_path(const uint8_t *p, size_t len)
{
	return memmem(p, len, "data-dir", 8) != NULL || memmem(p, len, "config", 6) != NULL;
}

static void check_accepted(const struct node_config *c)
{
	CHECK(memchr(c->data_dir, '\0', sizeof c->data_dir) != NULL);
	CHECK(memchr(c->peer_addr, '\0', sizeof c->peer_addr) != NULL);
	CHECK(memchr(c->client_addr, '\0', sizeof c->client_addr) != NULL);
	CHECK(memchr(c->resp_addr, '\0', sizeof c->resp_addr) != NULL);
	CHECK(memchr(c->metrics_addr, '\0', sizeof c->metrics_addr) != NULL);
	CHECK(c->n_members >= 1 && c->n_members <= NODE_NODES_MAX);
	/* a bootstrap member is in --cluster; a node that joins later (--join) is not, and has
	 * a peer address of its own */
	if (c->join)
		CHECK(node_config_member_index(c, c->id) < 0 && c->peer_addr[0] != '\0');
	else
		CHECK(node_config_member_index(c, c->id) >= 0);
	struct sockaddr_storage ss;
	for (size_t i = 0; i < c->n_members; i++) {
		CHECK(c->members[i].id >= 1);
		CHECK(i == 0 || c->members[i - 1].id < c->members[i].id);
		CHECK(memchr(c->members[i].peer_addr, '\0', NODE_ADDR_MAX) != NULL);
		CHECK(net_parse_addr(c->members[i].peer_addr, &ss) == NET_OK);
	}
	CHECK(net_parse_addr(c->peer_addr, &ss) == NET_OK);
	CHECK(net_parse_addr(c->client_addr, &ss) == NET_OK);
	CHECK(strcmp(c->peer_addr, c->client_addr) != 0);
	CHECK(c->groups >= 1 && c->groups <= KV_GROUPS_MAX && c->groups <= WAL_GROUPS_MAX);
	CHECK(c->tick_ms >= 1 && c->tick_ms <= c->heartbeat_ms &&
	      2 * c->heartbeat_ms <= c->election_ms);
	CHECK(c->value_max >= 1 && c->value_max + KV_KEY_MAX + 1024 <= NET_CLIENT_FRAME_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 8192)
		return 0;
	const uint8_t *end = data + size;
	const uint8_t *sep1 = find2nul(data, size);
	const uint8_t *flags_end = sep1 ? sep1 : end;
	const uint8_t *file = sep1 ? sep1 + 2 : end;
	const uint8_t *sep2 = find2nul(file, (size_t)(end - file));
	const uint8_t *file_end = sep2 ? sep2 : end;
	const uint8_t *persisted = sep2 ? sep2 + 2 : end;
	if (names_a_path(data, (size_t)(flags_end - data)) ||
	    names_a_path(file, (size_t)(file_end - file)))
		return 0;

	empty_data_dir();
	mkdir(data_dir, 0755);
	unlink(conf_path);
	if (persisted < end) {
		char path[256];
		snprintf(path, sizeof path, "%s/cluster.conf", data_dir);
		write_file(path, persisted, (size_t)(end - persisted));
	}
	char *argv[ARGS_MAX + 6];
	int argc = 0;
	argv[argc++] = strdup("kvd");
	argv[argc++] = strdup("--data-dir");
	argv[argc++] = strdup(data_dir);
	if (file < file_end) {
		write_file(conf_path, file, (size_t)(file_end - file));
		argv[argc++] = strdup("--config");
		argv[argc++] = strdup(conf_path);
	}
	const uint8_t *p = data;
	while (p < flags_end && argc < ARGS_MAX) {
		const uint8_t *z = memchr(p, 0, (size_t)(flags_end - p));
		size_t l = z ? (size_t)(z - p) : (size_t)(flags_end - p);
		argv[argc] = malloc(l + 1); /* exact size: ASan sees any read past it */
		CHECK(argv[argc] != NULL);
		memcpy(argv[argc], p, l);
		argv[argc][l] = '\0';
		argc++;
		p += l + 1;
	}
	argv[argc] = NULL;

	struct node_config cfg;
	char err[256];
	memset(err, 0x5a, sizeof err);
	int rc = node_config_load(argc, argv, &cfg, err, sizeof err);
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	if (rc == 1)
		return 0; /* --help */
	if (rc != 0) {
		CHECK(rc == NODE_ECONFIG);
		CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
		return 0;
	}
	check_accepted(&cfg);

	/* a restart needs only --data-dir, and finds the same identity */
	char *argv2[] = {strdup("kvd"), strdup("--data-dir"), strdup(data_dir), NULL};
	struct node_config again;
	rc = node_config_load(3, argv2, &again, err, sizeof err);
	for (int i = 0; i < 3; i++)
		free(argv2[i]);
	if (rc != 0)
		fprintf(stderr, "fuzz_config: restart refused: %s\n", err);
	CHECK(rc == 0);
	check_accepted(&again);
	CHECK(again.id == cfg.id && again.groups == cfg.groups &&
	      again.cluster_id == cfg.cluster_id && again.n_members == cfg.n_members);
	CHECK(strcmp(again.peer_addr, cfg.peer_addr) == 0);
	CHECK(strcmp(again.client_addr, cfg.client_addr) == 0);
	for (size_t i = 0; i < cfg.n_members; i++) {
		CHECK(again.members[i].id == cfg.members[i].id);
		CHECK(strcmp(again.members[i].peer_addr, cfg.members[i].peer_addr) == 0);
	}
	return 0;
}
