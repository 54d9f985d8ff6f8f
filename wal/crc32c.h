/* crc32c.h — CRC32C (Castagnoli), the checksum of every WAL record and segment header.
 *
 * wal_crc32c() uses the SSE4.2 crc32 instruction when the CPU has it (checked once at run
 * time) and a portable table otherwise; both give identical results and are exported so the
 * tests can compare them. Chaining: pass the previous result as `crc` (0 to start).
 */
#ifndef RINGRAFT_WAL_CRC32C_H
#define RINGRAFT_WAL_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

uint32_t wal_crc32c(uint32_t crc, const void *data, size_t len);
uint32_t wal_crc32c_sw(uint32_t crc, const void *data, size_t len);
/* Only valid when wal_crc32c_hw_available() (asserted). */
uint32_t wal_crc32c_hw(uint32_t crc, const void *data, size_t len);
bool wal_crc32c_hw_available(void);

#endif
