/* addrbook.c — DIR/peers.conf: the learned client addresses of the other nodes (addrbook.h).
 * Rewritten only when an address changes (rare), as temp file + fsync + rename, so a crash
 * leaves the old or the new file, never a torn one. */
#include "node/addrbook.h"
#include "node/node_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PEERS_FILE "peers.conf"

void node_addrbook_load(struct node_addrbook *b, const struct node_config *cfg)
{
	memset(b, 0, sizeof *b);
	char path[NODE_PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/%s", cfg->data_dir, PEERS_FILE);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return;
	char line[256];
	while (fgets(line, sizeof line, f) != NULL) {
		unsigned long long id;
		char addr[NODE_ADDR_MAX];
		if (sscanf(line, "%llu = %63s", &id, addr) != 2)
			continue;
		node_addrbook_set(b, cfg, id, addr);
	}
	fclose(f);
}

bool node_addrbook_set(struct node_addrbook *b, const struct node_config *cfg, uint64_t id,
		       const char *client_addr)
{
	int mi = node_config_member_index(cfg, id);
	if (mi < 0 || client_addr == NULL || client_addr[0] == '\0' ||
	    strlen(client_addr) >= NODE_ADDR_MAX || strcmp(b->client_addr[mi], client_addr) == 0)
		return false;
	snprintf(b->client_addr[mi], NODE_ADDR_MAX, "%s", client_addr);
	return true;
}

int node_addrbook_save(const struct node_addrbook *b, const struct node_config *cfg)
{
	char path[NODE_PATH_MAX + 32], tmp[NODE_PATH_MAX + 40];
	snprintf(path, sizeof path, "%s/%s", cfg->data_dir, PEERS_FILE);
	snprintf(tmp, sizeof tmp, "%s/%s.tmp", cfg->data_dir, PEERS_FILE);
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		return NODE_ESTORE;
	fprintf(f, "# client addresses learned from the peers' Hellos (rewritten by kvd)\n");
	for (size_t i = 0; i < cfg->n_members; i++)
		if (b->client_addr[i][0] != '\0')
			fprintf(f, "%llu = %s\n", (unsigned long long)cfg->members[i].id,
				b->client_addr[i]);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fclose(f);
		return NODE_ESTORE;
	}
	fclose(f);
	return rename(tmp, path);
}

const char *node_addrbook_get(const struct node_addrbook *b, const struct node_config *cfg,
			      uint64_t id)
{
	int mi = node_config_member_index(cfg, id);
	return mi < 0 ? "" : b->client_addr[mi];
}
