/* memberfile.h — DIR/members.conf, the cluster map a node learned (memberfile.c). */
#ifndef RINGRAFT_NODE_MEMBERFILE_H
#define RINGRAFT_NODE_MEMBERFILE_H

#include "node/config.h"
#include "node/engine.h"

/* 0, or -1 (errno set) when it cannot be written. */
int node_memberfile_save(const char *dir, struct node *n);
/* 0 when absent or loaded; -1 when unreadable or damaged (logged, ignored). */
int node_memberfile_load(const char *dir, struct node *n);

#endif
