/* identity.h — the data directory's incarnation: a random 64-bit id drawn when the directory
 * is first used and kept in DIR/incarnation. It travels in the peer Hello, so peers see when a
 * node comes back with a replaced directory (docs/DESIGN-NOTES.md, "Replica recovery").
 */
#ifndef RINGRAFT_NODE_IDENTITY_H
#define RINGRAFT_NODE_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reads DIR/incarnation, or draws a new id and writes it durably (temp file, fsync, rename,
 * directory fsync) when the file is missing: *created says which. Returns 0, or NODE_ESTORE with a
 * message in err (an unreadable or malformed file is an error, never silently replaced). */
int node_incarnation_load(const char *dir, uint64_t *out, bool *created, char *err, size_t n);

#endif
