/* crc32c.c — CRC32C with the SSE4.2 instruction and a portable slicing-by-1 table fallback.
 *
 * The hardware path processes 8 bytes per instruction (about 20x the table path), which keeps
 * checksumming well below the cost of the write itself. The choice is made once, at the first
 * call, from __builtin_cpu_supports("sse4.2").
 */
#include "wal/crc32c.h"

#include <assert.h>
#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#define POLY_REFLECTED 0x82F63B78u

static uint32_t table[256];
static bool use_hw;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ POLY_REFLECTED : c >> 1;
		table[i] = c;
	}
#if defined(__x86_64__)
	__builtin_cpu_init();
	use_hw = __builtin_cpu_supports("sse4.2");
#endif
}

bool wal_crc32c_hw_available(void)
{
	pthread_once(&init_once, init);
	return use_hw;
}

uint32_t wal_crc32c_sw(uint32_t crc, const void *data, size_t len)
{
	pthread_once(&init_once, init);
	const uint8_t *p = data;
	uint32_t c = ~crc;
	while (len--)
		c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return ~c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t hw(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = (uint32_t)~crc;
	while (len && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8((uint32_t)c, *p++);
		len--;
	}
	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = _mm_crc32_u64(c, v);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return ~(uint32_t)c;
}
#endif

uint32_t wal_crc32c_hw(uint32_t crc, const void *data, size_t len)
{
	assert(wal_crc32c_hw_available());
#if defined(__x86_64__)
	return hw(crc, data, len);
#else
	(void)crc, (void)data, (void)len;
	return 0;
#endif
}

uint32_t wal_crc32c(uint32_t crc, const void *data, size_t len)
{
	pthread_once(&init_once, init);
	return use_hw ? wal_crc32c_hw(crc, data, len) : wal_crc32c_sw(crc, data, len);
}
