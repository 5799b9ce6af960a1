/*
 * bloom.h - the cache-line blocked bloom filter of SST files.
 * Layout and hashing: lsm/FORMAT.md, "SST filter block".
 */
#ifndef LSM_SST_BLOOM_H
#define LSM_SST_BLOOM_H

#include "util/slice.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Number of probes for bits_per_key (>= 1): round(bpk * 0.69) in [1, 30]. */
unsigned bloom_num_probes(int bits_per_key);
/* Bytes of a filter over n_keys keys (64-byte lines plus trailer). */
size_t bloom_filter_size(size_t n_keys, int bits_per_key);
/* Hash of a user key as the filter uses it. */
uint64_t bloom_hash(struct slice user_key);
/* Writes the filter over hashes[0..n) into out (bloom_filter_size bytes). */
void bloom_build(const uint64_t *hashes, size_t n, int bits_per_key,
		 uint8_t *out);

/* A parsed filter; points into the caller's memory. */
struct bloom {
	const uint8_t *bits;
	uint32_t n_lines;
	uint32_t k;
};
/* 0 or LSM_E_CORRUPT naming path/off. */
int bloom_parse(const uint8_t *p, size_t len, const char *path, uint64_t off,
		struct bloom *out);
/* false only if the key with this hash was certainly not added. */
bool bloom_may_contain(const struct bloom *f, uint64_t hash);

#endif
