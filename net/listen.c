/* listen.c — opening a listening TCP socket for the peer and client ports: address parsing,
 * bind and listen in one place, with the handle's state on failure said in listen.h. */
#include "net/listen.h"

#include <sys/socket.h>

#include "net/frame.h"

int net_tcp_listen(uv_loop_t *loop, uv_tcp_t *h, void *data, const char *addr, int backlog,
		   uv_connection_cb cb, int *uv_err)
{
	struct sockaddr_storage sa;
	if (net_parse_addr(addr, &sa) != NET_OK)
		return NET_EADDR;
	uv_tcp_init(loop, h);
	h->data = data;
	int rc = uv_tcp_bind(h, (const struct sockaddr *)&sa, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)h, backlog, cb);
	*uv_err = rc;
	return rc == 0 ? NET_OK : NET_EIO;
}
