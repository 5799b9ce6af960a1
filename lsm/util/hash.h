/*
 * hash.h - the engine's checksums and hashes, in one place.
 *
 * Checksums on disk are XXH3-64 (low 32 bits where a format stores 32).
 * Bloom filters hash keys with XXH3-64 too. Changing either changes every
 * format that uses it: see lsm/FORMAT.md.
 */
#ifndef LSM_UTIL_HASH_H
#define LSM_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

static inline uint64_t lsm_hash64(const void *p, size_t len)
{
	return XXH3_64bits(p, len);
}

static inline uint32_t lsm_checksum32(const void *p, size_t len)
{
	return (uint32_t)XXH3_64bits(p, len);
}

#endif
