/*
 * bloom.c - cache-line blocked bloom filter.
 *
 * The filter is n lines of 512 bits. A key's 64-bit XXH3 hash h picks one
 * line with its high half (fastrange: ((h >> 32) * n) >> 32) and sets k bits
 * inside that line by double hashing its low half a = (uint32_t)h with
 * delta = a rotated left by 15: probe i uses the top 9 bits of
 * a + i * delta (mod 2^32). One lookup therefore touches one cache line.
 *
 * Invariants:
 *  1. n = ceil(n_keys * bits_per_key / 512) >= 1, k = round(0.69 * bpk) in
 *     [1, 30]; both are stored in the trailer, so readers never recompute
 *     them from options.
 *  2. bloom_parse() accepts a filter only if its length is exactly
 *     n * 64 + 8 and k is in [1, 30].
 *
 * Thread safety: a built filter is immutable; lookups are pure.
 */
#include "sst/bloom.h"

#include "sst/sst_format.h"
#include "util/coding.h"
#include "util/hash.h"
#include "util/status.h"

#include <string.h>

unsigned bloom_num_probes(int bits_per_key)
{
	int k = (int)(bits_per_key * 0.69 + 0.5);
	if (k < 1)
		k = 1;
	if (k > SST_BLOOM_MAX_K)
		k = SST_BLOOM_MAX_K;
	return (unsigned)k;
}

static uint64_t num_lines(size_t n_keys, int bits_per_key)
{
	uint64_t bits = (uint64_t)n_keys * (uint64_t)bits_per_key;
	uint64_t n = (bits + 511) / 512;
	return n ? n : 1;
}

size_t bloom_filter_size(size_t n_keys, int bits_per_key)
{
	return (size_t)num_lines(n_keys, bits_per_key) * SST_BLOOM_LINE +
	       SST_BLOOM_TRAILER;
}

uint64_t bloom_hash(struct slice user_key)
{
	return lsm_hash64(user_key.p, user_key.len);
}

static inline uint32_t pick_line(uint64_t h, uint32_t n)
{
	return (uint32_t)(((h >> 32) * (uint64_t)n) >> 32);
}

static inline uint32_t rotl32(uint32_t x, int r)
{
	return x << r | x >> (32 - r);
}

void bloom_build(const uint64_t *hashes, size_t n, int bits_per_key,
		 uint8_t *out)
{
	uint32_t lines = (uint32_t)num_lines(n, bits_per_key);
	unsigned k = bloom_num_probes(bits_per_key);
	memset(out, 0, (size_t)lines * SST_BLOOM_LINE);
	for (size_t i = 0; i < n; i++) {
		uint8_t *line = out + (size_t)pick_line(hashes[i], lines) *
					      SST_BLOOM_LINE;
		uint32_t a = (uint32_t)hashes[i];
		uint32_t delta = rotl32(a, 15);
		for (unsigned j = 0; j < k; j++) {
			uint32_t bit = a >> 23;
			line[bit >> 3] |= (uint8_t)(1u << (bit & 7));
			a += delta;
		}
	}
	put_fixed32(out + (size_t)lines * SST_BLOOM_LINE, lines);
	put_fixed32(out + (size_t)lines * SST_BLOOM_LINE + 4, k);
}

int bloom_parse(const uint8_t *p, size_t len, const char *path, uint64_t off,
		struct bloom *out)
{
	if (len < SST_BLOOM_TRAILER + SST_BLOOM_LINE)
		return LSM_CORRUPT("file %s offset %llu: filter block of %zu "
				   "bytes too short",
				   path, (unsigned long long)off, len);
	uint32_t lines = get_fixed32(p + len - SST_BLOOM_TRAILER);
	uint32_t k = get_fixed32(p + len - 4);
	if (lines == 0 ||
	    (uint64_t)lines * SST_BLOOM_LINE != len - SST_BLOOM_TRAILER ||
	    k < 1 || k > SST_BLOOM_MAX_K)
		return LSM_CORRUPT("file %s offset %llu: bad filter trailer "
				   "(lines %u, probes %u, %zu bytes)",
				   path, (unsigned long long)off, lines, k,
				   len);
	out->bits = p;
	out->n_lines = lines;
	out->k = k;
	return 0;
}

bool bloom_may_contain(const struct bloom *f, uint64_t hash)
{
	const uint8_t *line =
		f->bits + (size_t)pick_line(hash, f->n_lines) * SST_BLOOM_LINE;
	uint32_t a = (uint32_t)hash;
	uint32_t delta = rotl32(a, 15);
	for (unsigned j = 0; j < f->k; j++) {
		uint32_t bit = a >> 23;
		if (!(line[bit >> 3] & (1u << (bit & 7))))
			return false;
		a += delta;
	}
	return true;
}
