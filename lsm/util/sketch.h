/*
 * sketch.h - a small distinct-key counter (HyperLogLog) per SST file.
 *
 * Each SST file's sketch holds SKETCH_REGS one-byte registers over the
 * 64-bit hashes of its distinct user keys (the bloom filter's hashes).
 * The union of several files' sketches (the register-wise maximum)
 * estimates how many distinct keys they hold together, to within about
 * 1.04 / sqrt(SKETCH_REGS) = 4.6% (one standard error), whatever the
 * number of files. Size-tiered compaction compares that to the entries
 * the files hold to estimate their garbage (compact/pick_tiered.c).
 *
 * Register j holds the largest rank seen among hashes whose top
 * SKETCH_BITS bits are j, where a hash's rank is 1 + the number of
 * leading zeros of its remaining bits (at most SKETCH_MAX_RANK). The
 * format is in lsm/FORMAT.md (manifest record 13): changing the hash,
 * SKETCH_BITS or the rank changes every stored sketch.
 */
#ifndef LSM_UTIL_SKETCH_H
#define LSM_UTIL_SKETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SKETCH_BITS 9
#define SKETCH_REGS (1u << SKETCH_BITS)
#define SKETCH_MAX_RANK (64 - SKETCH_BITS + 1)

static inline void sketch_add(uint8_t *regs, uint64_t hash)
{
	uint32_t j = (uint32_t)(hash >> (64 - SKETCH_BITS));
	uint64_t rest = hash << SKETCH_BITS;
	uint8_t rank = rest ? (uint8_t)(__builtin_clzll(rest) + 1)
			    : (uint8_t)SKETCH_MAX_RANK;
	if (rank > regs[j])
		regs[j] = rank;
}

/* dst becomes the sketch of the union of both key sets. */
static inline void sketch_union(uint8_t *dst, const uint8_t *src)
{
	for (uint32_t j = 0; j < SKETCH_REGS; j++)
		if (src[j] > dst[j])
			dst[j] = src[j];
}

/* Is every register a rank a sketch can hold? (For decoding.) */
bool sketch_valid(const uint8_t *regs, size_t len);
/* The estimated number of distinct keys. */
double sketch_estimate(const uint8_t *regs);

#endif
