/* crashpoint.c — the power-cut hook of crash-point tests (crashpoint.h). */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wal/crashpoint.h"

#define NAME_MAX_LEN 64
#define CMD_MAX_LEN  64

static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool armed;
static char at_name[NAME_MAX_LEN];
static unsigned long at_hit = 1;
static atomic_ulong hits;
static char ctl_path[512];
static char cmd[CMD_MAX_LEN];
static char arm_path[512];
static bool writeback;

/* RINGRAFT_TEST_CRASH_AT=NAME[:N]; anything malformed leaves the hook disarmed and says so,
 * since a test that thinks it armed a crash and did not would pass for the wrong reason. */
static void parse_env(void)
{
	const char *at = getenv("RINGRAFT_TEST_CRASH_AT");
	if (at == NULL || at[0] == '\0')
		return;
	const char *colon = strchr(at, ':');
	size_t len = colon ? (size_t)(colon - at) : strlen(at);
	if (len == 0 || len >= sizeof at_name) {
		fprintf(stderr, "crash point: RINGRAFT_TEST_CRASH_AT=\"%s\" has no usable name: "
				"not armed\n", at);
		return;
	}
	if (colon != NULL) {
		char *end;
		unsigned long n = strtoul(colon + 1, &end, 10);
		if (*end != '\0' || n == 0) {
			fprintf(stderr, "crash point: RINGRAFT_TEST_CRASH_AT=\"%s\": the hit must be a "
					"number >= 1: not armed\n", at);
			return;
		}
		at_hit = n;
	}
	memcpy(at_name, at, len);
	at_name[len] = '\0';
	const char *ctl = getenv("RINGRAFT_TEST_CRASH_CTL");
	const char *c = getenv("RINGRAFT_TEST_CRASH_CMD");
	if (ctl != NULL && ctl[0] != '\0') {
		if (strlen(ctl) >= sizeof ctl_path || c == NULL || strlen(c) >= sizeof cmd) {
			fprintf(stderr, "crash point: RINGRAFT_TEST_CRASH_CTL needs a short path and "
					"RINGRAFT_TEST_CRASH_CMD a short command: not armed\n");
			return;
		}
		strcpy(ctl_path, ctl);
		strcpy(cmd, c);
		const char *wb = getenv("RINGRAFT_TEST_CRASH_WRITEBACK");
		writeback = wb != NULL && strcmp(wb, "1") == 0;
	}
	const char *arm = getenv("RINGRAFT_TEST_CRASH_ARM_FILE");
	if (arm != NULL && arm[0] != '\0') {
		if (strlen(arm) >= sizeof arm_path) {
			fprintf(stderr, "crash point: RINGRAFT_TEST_CRASH_ARM_FILE is too long: not "
					"armed\n");
			return;
		}
		strcpy(arm_path, arm);
	}
	armed = true;
}

bool crash_point_armed(void)
{
	pthread_once(&once, parse_env);
	return armed;
}

void crash_point(const char *name)
{
	if (!crash_point_armed() || strcmp(name, at_name) != 0)
		return;
	if (arm_path[0] && access(arm_path, F_OK) != 0)
		return; /* hits count only once the test says so */
	unsigned long hit = atomic_fetch_add(&hits, 1) + 1;
	if (hit != at_hit)
		return;
	/* Said before the cut: the log is on another disk, and after the cut nothing is. */
	fprintf(stderr, "crash point %s reached (hit %lu): %s\n", name, hit,
		ctl_path[0] ? "power cut" : "killed");
	fflush(stderr);
	if (ctl_path[0]) {
		int fd = open(ctl_path, O_WRONLY);
		/* the kernel's dirty pages (LMDB's among them) go down to the layer first, which
		 * keeps them unsynced: the cut then decides which of them survive */
		if (fd >= 0 && writeback)
			syncfs(fd);
		if (fd < 0 || write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd))
			fprintf(stderr, "crash point %s: the power-cut layer did not take \"%s\"\n",
				name, cmd);
		if (fd >= 0)
			close(fd);
	}
	kill(getpid(), SIGKILL);
	for (;;)
		pause();
}
