/* resp_helper.c — see resp_helper.h. */
#include "tests/integration/resp_helper.h"

#include <arpa/inet.h>
#include <check.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net/frame.h"

char *rh_run_status(const char *cmd, int *status)
{
	FILE *f = popen(cmd, "r");
	ck_assert_msg(f != NULL, "popen %s", cmd);
	size_t cap = 1 << 16, len = 0;
	char *out = malloc(cap);
	size_t r;
	while ((r = fread(out + len, 1, cap - len - 1, f)) > 0) {
		len += r;
		if (cap - len < 2)
			out = realloc(out, cap *= 2);
	}
	int st = pclose(f);
	if (status != NULL)
		*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
	while (len > 0 && out[len - 1] == '\n')
		len--;
	out[len] = '\0';
	return out;
}

char *rh_run(const char *cmd)
{
	return rh_run_status(cmd, NULL);
}

void rh_host_port(struct cluster *c, int node, char *host, size_t hl, int *port)
{
	const char *a = cluster_resp_addr(c, node);
	const char *colon = strrchr(a, ':');
	ck_assert_ptr_nonnull(colon);
	snprintf(host, hl, "%.*s", (int)(colon - a), a);
	*port = atoi(colon + 1);
}

char *rh_cli(struct cluster *c, int node, const char *args)
{
	char host[64], cmd[2048];
	int port;
	rh_host_port(c, node, host, sizeof host, &port);
	snprintf(cmd, sizeof cmd, "redis-cli -h %s -p %d %s 2>&1", host, port, args);
	return rh_run(cmd);
}

void rh_cli_is(struct cluster *c, int node, const char *args, const char *want)
{
	char *out = rh_cli(c, node, args);
	ck_assert_msg(strcmp(out, want) == 0, "node %d: redis-cli %s: got [%s], want [%s]", node,
		      args, out, want);
	free(out);
}

long long rh_cli_int(struct cluster *c, int node, const char *args)
{
	char *out = rh_cli(c, node, args), *end;
	long long v = strtoll(out, &end, 10);
	ck_assert_msg(*out != '\0' && *end == '\0', "node %d: redis-cli %s: [%s] is no integer",
		      node, args, out);
	free(out);
	return v;
}

int rh_dial(struct cluster *c, int node)
{
	struct sockaddr_storage ss;
	ck_assert_int_eq(net_parse_addr(cluster_resp_addr(c, node), &ss), NET_OK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
	return fd;
}

void rh_send_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w <= 0)
			return; /* the server may have closed already */
		b += w;
		n -= (size_t)w;
	}
}

/* One byte at a time is slow but simple, and the replies here are short. */
static bool read_line(int fd, char *out, size_t cap, uint64_t end)
{
	size_t n = 0;
	while (cluster_now_ms() < end) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 20) <= 0)
			continue;
		char ch;
		if (recv(fd, &ch, 1, 0) != 1)
			return false;
		if (ch == '\n' && n > 0 && out[n - 1] == '\r') {
			out[n - 1] = '\0';
			return true;
		}
		if (n + 1 < cap)
			out[n++] = ch;
	}
	return false;
}

char rh_reply(int fd, char *out, size_t cap, int timeout_ms)
{
	uint64_t end = cluster_now_ms() + (uint64_t)timeout_ms;
	char line[1024];
	if (!read_line(fd, line, sizeof line, end) || line[0] == '\0')
		return 0;
	if (line[0] != '$') {
		snprintf(out, cap, "%s", line + 1);
		return line[0];
	}
	long len = strtol(line + 1, NULL, 10);
	if (len < 0) {
		out[0] = '\0';
		return 'n';
	}
	char body[1024];
	if ((size_t)len + 1 > sizeof body || !read_line(fd, body, sizeof body, end))
		return 0;
	snprintf(out, cap, "%s", body);
	return '$';
}

uint64_t rh_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
