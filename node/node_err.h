/* node_err.h — node/'s error codes: 0 or a negative NODE_E*, named by node_strerror. */
#ifndef RINGRAFT_NODE_ERR_H
#define RINGRAFT_NODE_ERR_H

/* node/ errors: 0 or one of these (node_strerror names them). */
enum {
	NODE_OK = 0,
	NODE_ENOMEM = -1,     /* out of memory */
	NODE_ESTORE = -2,     /* the WAL or LMDB could not be read or opened (logged) */
	NODE_ELISTEN = -3,    /* a port could not be bound (logged) */
	NODE_EINIT = -4,      /* the event loop, a timer or a thread could not be set up */
	NODE_ECONFIG = -5,    /* a setting is invalid (logged) */
	NODE_EMALFORMED = -6, /* a peer's message does not decode into a valid one */
	NODE_EINVAL = -7,     /* a request that makes no sense for the cluster as it is */
	NODE_ENOTLEADER = -8, /* the request needs the group's leader and this node is not */
};
const char *node_strerror(int rc);

#endif
