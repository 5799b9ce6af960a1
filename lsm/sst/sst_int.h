/*
 * sst_int.h - helpers shared by sst_writer.c and sst_reader.c only.
 */
#ifndef LSM_SST_SST_INT_H
#define LSM_SST_SST_INT_H

#include "util/hash.h"

#include <stddef.h>
#include <stdint.h>

/* The block trailer checksum: low 32 bits of XXH3-64 over the stored block
 * bytes followed by the type byte. */
static inline uint32_t sst_block_checksum(const uint8_t *p, size_t len,
					  uint8_t type)
{
	XXH3_state_t st;
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, p, len);
	XXH3_64bits_update(&st, &type, 1);
	return (uint32_t)XXH3_64bits_digest(&st);
}

/* The same checksum over a block as read from the file: p[0..size) is the
 * block and p[size] its type byte, so the checksum is one XXH3 pass over
 * p[0..size] (XXH3's streaming and one-shot forms agree). */
static inline uint32_t sst_stored_block_checksum(const uint8_t *p, size_t size)
{
	return (uint32_t)XXH3_64bits(p, size + 1);
}

#endif
