/* bind_peer.c — LD_PRELOAD shim: kvd's outgoing peer connections leave from the node's own
 * loopback address, so iptables can tell the nodes apart (else all come from 127.0.0.1); the
 * workload client's connections leave from the clients' own address the same way (the
 * client-partition nemesis). Built by jepsen-lite/run into its temp dir; kept out of the module
 * library since it defines connect(). JL_BIND_IP: address to bind; JL_PEER_PORT: destination
 * port, or comma-separated ports (at most 8 are looked at), whose sockets we bind.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

/* Is port one of the comma-separated list? */
static int port_listed(const char *list, unsigned port)
{
	for (int i = 0; i < 8 && *list; i++) {
		char *end;
		unsigned long p = strtoul(list, &end, 10);
		if (end == list)
			return 0;
		if (p == port)
			return 1;
		if (*end != ',')
			return 0;
		list = end + 1;
	}
	return 0;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	static connect_fn real;
	if (!real)
		real = (connect_fn)dlsym(RTLD_NEXT, "connect");
	const char *ip = getenv("JL_BIND_IP"), *port = getenv("JL_PEER_PORT");
	if (ip && port && addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *to = (const struct sockaddr_in *)addr;
		if (port_listed(port, ntohs(to->sin_port))) {
			struct sockaddr_in from;
			memset(&from, 0, sizeof from);
			from.sin_family = AF_INET;
			from.sin_port = 0;
			if (inet_pton(AF_INET, ip, &from.sin_addr) == 1) {
				int saved = errno;
				/* fails harmlessly (EINVAL) if the socket is already bound */
				(void)bind(fd, (const struct sockaddr *)&from, sizeof from);
				errno = saved;
			}
		}
	}
	return real(fd, addr, len);
}
