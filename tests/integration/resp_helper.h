/* resp_helper.h — what the RESP integration tests share (test_resp_expiry.c,
 * test_resp_fault.c): redis-cli and shell runs against a node's RESP port, raw connections with
 * bounded reads, and the wall clock that expiry is judged by. Every call asserts (Check) on
 * failure of the harness itself; results are for the test to judge.
 */
#ifndef RINGRAFT_TEST_RESP_HELPER_H
#define RINGRAFT_TEST_RESP_HELPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tests/integration/cluster.h"

/* Runs a shell command, returns its stdout (malloc'd, trailing newlines removed). */
char *rh_run(const char *cmd);
/* The same, and the command's exit status in *status (128 when it did not exit). */
char *rh_run_status(const char *cmd, int *status);
/* redis-cli's raw output (as when piped) of args against node's RESP port (malloc'd). */
char *rh_cli(struct cluster *c, int node, const char *args);
/* Asserts that redis-cli's output is exactly want. */
void rh_cli_is(struct cluster *c, int node, const char *args, const char *want);
/* redis-cli's output as an integer (asserts that it is one). */
long long rh_cli_int(struct cluster *c, int node, const char *args);
/* host and port of node's RESP address */
void rh_host_port(struct cluster *c, int node, char *host, size_t hl, int *port);
/* A blocking connection to node's RESP port. */
int rh_dial(struct cluster *c, int node);
void rh_send_all(int fd, const void *p, size_t n);
/* Reads one RESP2 reply (simple, error, integer, bulk or null bulk) within timeout_ms into
 * out (NUL-terminated; a bulk's bytes, a simple/error/integer line without its type byte) and
 * returns its type byte ('+', '-', ':', '$', or 'n' for null), or 0 on timeout/close. */
char rh_reply(int fd, char *out, size_t cap, int timeout_ms);
/* ms since the Unix epoch (CLOCK_REALTIME: the clock kvd judges expiry by). */
uint64_t rh_wall_ms(void);

#endif
