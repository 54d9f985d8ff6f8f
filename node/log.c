/* log.c — formatting of kvd's log lines (see log.h): a UTC timestamp with milliseconds, the
 * node id and the group, written with one fprintf so concurrent lines never interleave. */
#include "node/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static uint64_t log_node;
static int log_level = NODE_LOG_WARN;

void node_log_init(uint64_t node_id, int level)
{
	log_node = node_id;
	log_level = level;
}

int node_log_level_parse(const char *s)
{
	static const char *names[] = {"error", "warn", "info", "debug"};
	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

bool node_log_enabled(int level)
{
	return level <= log_level;
}

void node_log(int level, uint32_t group, const char *fmt, ...)
{
	if (level > log_level)
		return;
	static const char letters[] = "EWID";
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char gbuf[16] = "-";
	if (group != 0)
		snprintf(gbuf, sizeof gbuf, "g%u", group);
	fprintf(stderr, "%c %04d-%02d-%02dT%02d:%02d:%02d.%03ldZ n%llu %s %s\n", letters[level],
		tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		ts.tv_nsec / 1000000, (unsigned long long)log_node, gbuf, msg);
}
