/* user.h — client authentication's users: names, roles and salted password hashes
 * (PBKDF2-HMAC-SHA256 from OpenSSL), and the record that stores one in the meta group
 * (docs/SECURITY.md "Client authentication"). Pure functions: no I/O, no loop. In kv/ because
 * the record is replicated state and both the node and kvctl (which hashes a new user's
 * password, so that the node's loop never runs PBKDF2 for it) need it.
 */
#ifndef RINGRAFT_KV_USER_H
#define RINGRAFT_KV_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KV_USER_NAME_MAX     64   /* bytes of a user name: [A-Za-z0-9_.-] */
#define KV_USER_PASSWORD_MAX 1024 /* bytes of a password (at least 1) */
#define KV_USER_SALT_BYTES   16
#define KV_USER_HASH_BYTES   32 /* SHA-256 */
/* PBKDF2 iterations of a new user. One check cost 48-69 ms (best of 5) on this project's
 * loaded 2-core test machine, more when it was saturated (docs/SECURITY.md;
 * tests/unit/kv/test_user prints the figure); it runs once per client connection, off the
 * event loop. A record keeps its own count, so raising this never locks anyone out. */
#define KV_USER_ITERATIONS     210000
#define KV_USER_ITERATIONS_MIN 10000    /* a stored record below this is refused */
#define KV_USER_ITERATIONS_MAX 10000000 /* and above this (a check must stay bounded) */
#define KV_USER_RECORD_BYTES   (1 + 1 + 4 + KV_USER_SALT_BYTES + KV_USER_HASH_BYTES)

enum kv_user_role { KV_USER_RO = 1, KV_USER_RW = 2 };

struct kv_user {
	uint8_t role; /* enum kv_user_role */
	uint32_t iterations;
	uint8_t salt[KV_USER_SALT_BYTES];
	uint8_t hash[KV_USER_HASH_BYTES];
};

/* True if name (len bytes, not NUL-terminated) is a valid user name. */
bool kv_user_name_ok(const char *name, size_t len);
/* "ro"/"rw" -> role, 0 for anything else; and back ("?" for an unknown role). */
int kv_user_role_parse(const char *s, size_t len);
const char *kv_user_role_name(int role);

/* A new user's record: a random salt and the hash of password with `iterations`. 0, or -1 if
 * the password is empty or over KV_USER_PASSWORD_MAX, the role or count is out of range, or
 * OpenSSL failed. Costs `iterations` HMACs: never call it on the event loop. */
int kv_user_make(int role, const void *password, size_t len, uint32_t iterations,
		 struct kv_user *out);
/* True if password is the user's. Costs u->iterations HMACs (off the loop); the hashes are
 * compared with CRYPTO_memcmp. */
bool kv_user_password_ok(const struct kv_user *u, const void *password, size_t len);

/* The stored form: version 1, role, iterations (big-endian), salt, hash. */
void kv_user_record_encode(const struct kv_user *u, uint8_t out[KV_USER_RECORD_BYTES]);
/* 0, or -1 if b is not a record of this version with a known role and a count in range. */
int kv_user_record_decode(const void *b, size_t len, struct kv_user *out);

#endif
