/* kvd_main.c — the kvd program: parse the settings (node/config.h), open the node, run it.
 * Exit status: 0 after SIGTERM/SIGINT, 1 on a fatal error (failed fsync, ...), 2 on bad flags.
 */
#include <signal.h>
#include <stdio.h>

#include "node/config.h"
#include "node/log.h"
#include "node/node.h"

int main(int argc, char **argv)
{
	static struct node_config cfg;
	char err[1024];
	signal(SIGPIPE, SIG_IGN);
	int rc = node_config_load(argc, argv, &cfg, err, sizeof err);
	if (rc == 1)
		return 0;
	if (rc < 0) {
		fprintf(stderr, "kvd: %s\n", err);
		return 2;
	}
	/* static: reachable from here, so a fatal exit() leaves no leak report under ASan */
	static struct node_shell *s;
	if (node_open(&cfg, &s) != 0) {
		fprintf(stderr, "kvd: cannot start (see the log lines above)\n");
		return 1;
	}
	rc = node_run(s);
	node_close(s);
	return rc;
}
