/* memberfile.c — DIR/members.conf: the cluster map a node learned (node/members.c), saved by
 * the shell whenever it changes, so that a restart knows every member's peer address before
 * the meta group's leader tells it again. Written atomically (temp file, fsync, rename, fsync
 * of the directory); read back through the engine's own checks (node_members_load), so a
 * damaged file is ignored with a warning and the map comes from the cluster instead.
 *
 *   # comment
 *   epoch = 3
 *   member = 4 127.0.0.14:7001 127.0.0.14:8001 up
 *   member = 2 127.0.0.12:7001 - removed
 *   member = 5 127.0.0.15:7001 127.0.0.15:8001 leaving
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/log.h"
#include "node/memberfile.h"

#define MEMBERS_CONF "members.conf"

int node_memberfile_save(const char *dir, struct node *n)
{
	Ringraft__Kv__NodeInfo infos[NODE_NODES_MAX], *ptrs[NODE_NODES_MAX];
	uint64_t epoch;
	size_t k = node_members_map(n, infos, ptrs, &epoch);
	char path[NODE_PATH_MAX + 32], tmp[NODE_PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/%s", dir, MEMBERS_CONF);
	snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, MEMBERS_CONF);
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		return -1;
	fprintf(f, "# the cluster map this node learned (written by kvd; do not edit)\n"
		   "epoch = %" PRIu64 "\n",
		epoch);
	for (size_t i = 0; i < k; i++)
		fprintf(f, "member = %" PRIu64 " %s %s %s\n", infos[i].id, infos[i].peer_addr,
			infos[i].client_addr[0] ? infos[i].client_addr : "-",
			infos[i].removed ? "removed" : infos[i].leaving ? "leaving" : "up");
	int rc = fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : -1;
	if (fclose(f) != 0)
		rc = -1;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -1;
	if (rc == 0) {
		int fd = open(dir, O_RDONLY | O_DIRECTORY);
		if (fd < 0 || fsync(fd) != 0)
			rc = -1;
		if (fd >= 0)
			close(fd);
	}
	return rc;
}

int node_memberfile_load(const char *dir, struct node *n)
{
	char path[NODE_PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/%s", dir, MEMBERS_CONF);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return errno == ENOENT ? 0 : -1;
	Ringraft__Kv__NodeInfo infos[NODE_NODES_MAX], *ptrs[NODE_NODES_MAX];
	char peer[NODE_NODES_MAX][NODE_ADDR_MAX], client[NODE_NODES_MAX][NODE_ADDR_MAX];
	Ringraft__Kv__MemberMap map = RINGRAFT__KV__MEMBER_MAP__INIT;
	map.members = ptrs;
	char line[512];
	bool bad = false;
	while (!bad && fgets(line, sizeof line, f) != NULL) {
		uint64_t id;
		char p[NODE_ADDR_MAX], c[NODE_ADDR_MAX], state[16];
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "epoch = %" SCNu64, &map.epoch) == 1)
			continue;
		if (map.n_members >= NODE_NODES_MAX ||
		    sscanf(line, "member = %" SCNu64 " %63s %63s %15s", &id, p, c, state) != 4 ||
		    (strcmp(state, "up") != 0 && strcmp(state, "removed") != 0 &&
		     strcmp(state, "leaving") != 0)) {
			bad = true;
			break;
		}
		size_t i = map.n_members++;
		ringraft__kv__node_info__init(&infos[i]);
		snprintf(peer[i], NODE_ADDR_MAX, "%s", p);
		snprintf(client[i], NODE_ADDR_MAX, "%s", strcmp(c, "-") == 0 ? "" : c);
		infos[i].id = id;
		infos[i].peer_addr = peer[i];
		infos[i].client_addr = client[i];
		infos[i].removed = strcmp(state, "removed") == 0;
		infos[i].leaving = strcmp(state, "leaving") == 0;
		ptrs[i] = &infos[i];
	}
	fclose(f);
	if (bad || node_members_load(n, &map) != 0) {
		node_log(NODE_LOG_WARN, 0,
			 "%s is damaged: ignored, the cluster map comes from the meta group", path);
		return -1;
	}
	return 0;
}
