/* user.c — users of client authentication: a password is never stored, only a random salt and
 * PBKDF2-HMAC-SHA256(password, salt, iterations) (OpenSSL's PKCS5_PBKDF2_HMAC), so a copy of
 * the data directory gives an attacker a slow guessing game per user, not the passwords. The
 * check compares in constant time (CRYPTO_memcmp). Everything here is pure and bounded.
 */
#include "kv/user.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

#define RECORD_VERSION 1

bool kv_user_name_ok(const char *name, size_t len)
{
	if (len == 0 || len > KV_USER_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-'))
			return false;
	}
	return true;
}

int kv_user_role_parse(const char *s, size_t len)
{
	if (len == 2 && memcmp(s, "ro", 2) == 0)
		return KV_USER_RO;
	if (len == 2 && memcmp(s, "rw", 2) == 0)
		return KV_USER_RW;
	return 0;
}

const char *kv_user_role_name(int role)
{
	return role == KV_USER_RO ? "ro" : role == KV_USER_RW ? "rw" : "?";
}

static bool role_ok(int role)
{
	return role == KV_USER_RO || role == KV_USER_RW;
}

static int derive(const void *password, size_t len, const uint8_t *salt, uint32_t iterations,
		  uint8_t out[KV_USER_HASH_BYTES])
{
	return PKCS5_PBKDF2_HMAC(password, (int)len, salt, KV_USER_SALT_BYTES, (int)iterations,
				 EVP_sha256(), KV_USER_HASH_BYTES, out) == 1
		       ? 0
		       : -1;
}

int kv_user_make(int role, const void *password, size_t len, uint32_t iterations,
		 struct kv_user *out)
{
	memset(out, 0, sizeof *out);
	if (!role_ok(role) || len == 0 || len > KV_USER_PASSWORD_MAX ||
	    iterations < KV_USER_ITERATIONS_MIN || iterations > KV_USER_ITERATIONS_MAX)
		return -1;
	out->role = (uint8_t)role;
	out->iterations = iterations;
	if (RAND_bytes(out->salt, KV_USER_SALT_BYTES) != 1 ||
	    derive(password, len, out->salt, iterations, out->hash) != 0) {
		OPENSSL_cleanse(out, sizeof *out);
		return -1;
	}
	return 0;
}

bool kv_user_password_ok(const struct kv_user *u, const void *password, size_t len)
{
	if (len == 0 || len > KV_USER_PASSWORD_MAX)
		return false;
	uint8_t h[KV_USER_HASH_BYTES];
	bool ok = derive(password, len, u->salt, u->iterations, h) == 0 &&
		  CRYPTO_memcmp(h, u->hash, sizeof h) == 0;
	OPENSSL_cleanse(h, sizeof h);
	return ok;
}

void kv_user_record_encode(const struct kv_user *u, uint8_t out[KV_USER_RECORD_BYTES])
{
	out[0] = RECORD_VERSION;
	out[1] = u->role;
	out[2] = (uint8_t)(u->iterations >> 24);
	out[3] = (uint8_t)(u->iterations >> 16);
	out[4] = (uint8_t)(u->iterations >> 8);
	out[5] = (uint8_t)u->iterations;
	memcpy(out + 6, u->salt, KV_USER_SALT_BYTES);
	memcpy(out + 6 + KV_USER_SALT_BYTES, u->hash, KV_USER_HASH_BYTES);
}

int kv_user_record_decode(const void *b, size_t len, struct kv_user *out)
{
	const uint8_t *p = b;
	memset(out, 0, sizeof *out);
	if (len != KV_USER_RECORD_BYTES || p[0] != RECORD_VERSION || !role_ok(p[1]))
		return -1;
	uint32_t it =
		((uint32_t)p[2] << 24) | ((uint32_t)p[3] << 16) | ((uint32_t)p[4] << 8) | p[5];
	if (it < KV_USER_ITERATIONS_MIN || it > KV_USER_ITERATIONS_MAX)
		return -1;
	out->role = p[1];
	out->iterations = it;
	memcpy(out->salt, p + 6, KV_USER_SALT_BYTES);
	memcpy(out->hash, p + 6 + KV_USER_SALT_BYTES, KV_USER_HASH_BYTES);
	return 0;
}
