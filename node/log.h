/* log.h — kvd's log lines: one line per event on stderr, `level time node group message k=v`
 * (STYLE.md), e.g. `I 2026-11-23T07:09:15.123Z n1 g3 became leader term=4`. Quiet by default:
 * only errors and warnings unless --log-level says otherwise. Group 0 prints as "-".
 */
#ifndef RINGRAFT_NODE_LOG_H
#define RINGRAFT_NODE_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum node_log_level { NODE_LOG_ERROR = 0, NODE_LOG_WARN, NODE_LOG_INFO, NODE_LOG_DEBUG };

void node_log_init(uint64_t node_id, int level);
/* "error"|"warn"|"info"|"debug" -> level, or -1. */
int node_log_level_parse(const char *s);
bool node_log_enabled(int level);
void node_log(int level, uint32_t group, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
