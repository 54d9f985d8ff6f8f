/* net_limits.h — bounds of the transport, checked on every frame and connection. */
#ifndef RINGRAFT_NET_LIMITS_H
#define RINGRAFT_NET_LIMITS_H

#define NET_CLIENT_FRAME_MAX     (2u << 20)   /* a client request: 1 MiB value + key + slack */
#define NET_PEER_FRAME_MAX       (64u << 20)  /* a peer frame: batches of entries/snapshot chunks */
#define NET_CLIENT_OUTBUF_MAX    (8u << 20)   /* unread replies before a client is dropped */
#define NET_PEER_QUEUE_BYTES_MAX (64u << 20)  /* queued to one peer before dropping */
#define NET_CLIENT_INFLIGHT_MAX  4096         /* requests in flight on one client connection */
#define NET_CLIENTS_MAX          10000        /* client connections per node */
#define NET_PEERS_MAX            16           /* other nodes one node links to */
#define NET_ADDR_STR_MAX         64           /* "host:port" strings, NUL included */
#define NET_PEER_KEEPALIVE_MS    250          /* an empty frame when a link was idle this long */
#define NET_PEER_DEAD_MS         3000         /* nothing heard for this long: close and redial */
#define NET_PEER_HANDSHAKE_MS    2000         /* connect + Hello must finish within this */
#define NET_PEER_READ_BYTES      (256u << 10) /* one read from a peer socket */
#define NET_PEER_HELLO_FRAME_MAX 4096u        /* frame limit before the Hello is accepted */
#define NET_PEER_BACKOFF_MIN_MS  50u          /* redial backoff: doubles up to the max, jittered */
#define NET_PEER_BACKOFF_MAX_MS  1000u
/* Peer authentication (peer_auth.h): secrets per node (rotation: the current one and up to
 * three accepted besides), their sizes, the nonce and the proof (HMAC-SHA256). */
#define NET_PEER_SECRETS_MAX     4
#define NET_PEER_SECRET_MIN      16
#define NET_PEER_SECRET_MAX      1024
#define NET_PEER_NONCE_BYTES     32
#define NET_PEER_PROOF_BYTES     32
#define NET_PEER_REFUSAL_LOG_MS  1000 /* at most one refusal log line per reason per second */
#define NET_CLIENT_READ_CHUNK    (64u << 10) /* one read from a client socket */
#define NET_DECODER_KEEP_BYTES   (16u << 10) /* a decoder's buffer above this is freed once empty */
#define NET_OUT_KEEP_BYTES       (256u << 10) /* an out buffer kept for the next turn up to this */
#define NET_TLS_HANDSHAKE_MS     5000        /* a client's TLS handshake must finish within this */
#define NET_TLS_PLAIN_CHUNK      (16u << 10) /* plaintext out of one SSL_read (a TLS record) */
/* The RESP port (resp.c, resp_server.c). Its bulk limit is the node's --value-max plus
 * NET_RESP_BULK_SLACK, so a value a little over the limit gets an -ERR naming the limit and
 * only a grossly oversized one is a protocol error (connection closed). */
#define NET_RESP_BULK_SLACK   (64u << 10)
#define NET_RESP_ARRAY_MAX    (1u << 18)  /* arguments of one command (MSET of 128 Ki keys) */
#define NET_RESP_INLINE_MAX   (64u << 10) /* an inline command; a header line */
#define NET_RESP_DEPTH_MAX    8           /* nesting of a parsed reply (commands: flat) */
#define NET_RESP_QUERY_MAX    (8u << 20)  /* bytes of one command (more cannot fit an entry) */
#define NET_RESP_INFLIGHT_MAX 1024        /* pipelined commands unanswered before reads pause */
#define NET_RESP_OUTBUF_MAX   (32u << 20) /* unsent reply bytes before a client is dropped */

#endif
