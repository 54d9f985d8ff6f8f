/* shell.h — kvd's libuv shell around the node engine (engine.h): the loop and its timers, the
 * peer transport and the client ports, the WAL writer thread, signals, config and logs. It
 * feeds the engine its events and carries out its effects (node_io); shell.c, resp.c (the
 * RESP port) and metrics_endpoint.c (--metrics-addr) share this state.
 */
#ifndef RINGRAFT_NODE_SHELL_H
#define RINGRAFT_NODE_SHELL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "net/peer.h"
#include "net/resp_server.h"
#include "net/server.h"
#include "node/config.h"
#include "node/engine.h"

struct node_metrics_endpoint;

struct node_shell {
	struct node_config cfg;
	struct node *n; /* the engine */
	uv_loop_t loop;
	struct wal *wal;
	struct kv *kv;
	uint64_t incarnation;
	struct net_peers *peers;
	struct net_server *server;
	struct net_resp_server *resp_server; /* NULL without --resp-addr (resp.c) */
	SSL_CTX *tls; /* NULL in plaintext; shared by the three ports */
	struct node_metrics_endpoint *metrics_ep;
	uv_timer_t tick, stop_poll;
	uint64_t tick_origin_ns; /* uv_hrtime() when ticking began */
	uint64_t clock_ticks;    /* --lease-reads: clock ticks given the engine since then */
	bool catch_up;           /* --lease-reads: keep the clock at the ticks due */
	uint64_t tick_ns;        /* --tick-ms */
	uv_prepare_t prepare;
	uv_check_t check;
	uv_signal_t sigterm, sigint;
	bool stopped;
	/* The WAL writer thread: writes the batch the engine hands over (io.wal_write), tells the
	 * loop through wal_news as soon as it is durable, then updates the WAL's index (and
	 * compacts when asked) while the loop goes on. */
	pthread_t wal_thread;
	bool wal_thread_started;
	pthread_mutex_t wal_mu;
	pthread_cond_t wal_cv;
	struct wal_batch *wal_todo;   /* under wal_mu: handed over, not yet taken */
	bool wal_todo_compact;        /* under wal_mu */
	bool wal_quit;                /* under wal_mu */
	bool writing;                 /* a batch is with the writer and not yet reported durable */
	struct wal_batch *inline_todo; /* --wal-writer inline: the batch the loop writes next */
	bool inline_compact;
	_Atomic bool durable;         /* set by the writer for the batch in flight */
	_Atomic int wal_pending;      /* batches handed over and not finished (shutdown waits) */
	_Atomic int wal_failed;       /* a write or compaction failed: the loop stops the node */
	_Atomic size_t wal_compacted; /* segments removed, for the loop to log */
	uv_async_t wal_news;          /* a batch is durable, or something above changed */
	uv_work_t prep_work;          /* wal_prepare on the thread pool */
	bool preparing;               /* prep_work queued and not done */
	uint64_t started_ms;          /* node_shell_now_ms() when the loop was set up */
	uv_work_t ckpt_work;          /* an LMDB checkpoint's sync on the thread pool */
	struct kv_ckpt *ckpt;         /* that checkpoint, while queued */
	int prep_rc;                  /* of the last wal_prepare */
	uint64_t prep_retry_ms;       /* after a failed wal_prepare: not again before this */
};

uint64_t node_shell_now_ms(void);

/* With leases, advances the engine's clock (node_advance_clock) to the ticks due by the
 * monotonic clock since the loop began (shell.c): call it before handing the engine any
 * request or peer message. */
void node_shell_catch_up_ticks(struct node_shell *s);

/* resp.c — the Redis protocol port (--resp-addr) */
/* Client authentication (shell.c): checks user's password on libuv's thread pool (PBKDF2,
 * never on the loop) and calls done(arg, role) on the loop: the user's role (kv/user.h), or 0
 * for a wrong user or password. pw is copied. -1 (done never called) when too many checks
 * run already (the caller answers "busy") or out of memory. */
int node_shell_password_check(struct node_shell *s, const char *user, const void *pw, size_t len,
			      void (*done)(void *arg, int role), void *arg);
int node_resp_open(struct node_shell *s);   /* no-op without --resp-addr; < 0 if it cannot listen */
void node_resp_flush(struct node_shell *s); /* once per turn, with the client port's flush */
void node_resp_stop_accepting(struct node_shell *s);
void node_resp_close(struct node_shell *s); /* before the loop's last run */
void node_resp_free(struct node_shell *s);  /* after it */

/* metrics_endpoint.c: serves --metrics-addr (nothing when it is empty). open logs why it
 * failed; close only after node_run (the loop has closed the endpoint's timer). */
int node_metrics_endpoint_open(struct node_shell *s);
void node_metrics_endpoint_close(struct node_shell *s);

#endif
