/*
 * gen.c - keys, values and random numbers for lsm-bench (see gen.h).
 *
 * Invariants:
 *  1. gen_key(num) is a strictly increasing function of num in byte order,
 *     and gen_missing_key(num) sorts strictly between gen_key(num) and
 *     gen_key(num + 1), so readmissing probes land among real keys.
 *  2. Every value slot is value_size bytes whose first ceil(value_size / 2)
 *     bytes are random and whose remaining bytes repeat the start, so any
 *     LZ-style compressor saves about half of each value, and values are
 *     always taken at slot boundaries (never a window across two slots,
 *     which would be less compressible).
 *  3. The value buffer is written once in gen_values_init() and only read
 *     afterwards.
 *
 * Thread safety: gen_rng is per thread; gen_values is shared read-only
 * after init; the key functions are pure.
 */
#include "gen.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void gen_rng_seed(struct gen_rng *r, uint64_t seed)
{
	r->state = seed ^ 0x6a09e667f3bcc909ull;
}

uint64_t gen_rng_next(struct gen_rng *r)
{
	uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t gen_rng_below(struct gen_rng *r, uint64_t n)
{
	/* Multiply-shift: the high 64 bits of a 64x64 product. */
	return (uint64_t)(((unsigned __int128)gen_rng_next(r) * n) >> 64);
}

uint64_t gen_key_max(size_t key_size)
{
	uint64_t m = 1;

	if (key_size >= 20)
		return UINT64_MAX;
	for (size_t i = 0; i < key_size; i++)
		m *= 10;
	return m - 1;
}

void gen_key(char *buf, size_t key_size, uint64_t num)
{
	for (size_t i = key_size; i > 0; i--) {
		buf[i - 1] = (char)('0' + num % 10);
		num /= 10;
	}
}

void gen_missing_key(char *buf, size_t key_size, uint64_t num)
{
	gen_key(buf, key_size, num);
	buf[key_size] = '.';
}

int gen_values_init(struct gen_values *g, size_t value_size, uint64_t seed)
{
	struct gen_rng rng;
	size_t n_slots, half;
	uint8_t *buf;

	n_slots = value_size ? (1u << 20) / value_size : 1;
	if (n_slots < 64)
		n_slots = 64;
	buf = malloc(n_slots * value_size + 1);
	if (!buf)
		return -ENOMEM;
	gen_rng_seed(&rng, seed ^ 0x5eed5eedull);
	half = (value_size + 1) / 2;
	for (size_t s = 0; s < n_slots; s++) {
		uint8_t *v = buf + s * value_size;

		for (size_t i = 0; i < half; i++)
			v[i] = (uint8_t)gen_rng_next(&rng);
		for (size_t i = half; i < value_size; i++)
			v[i] = v[i - half];
	}
	g->buf = buf;
	g->value_size = value_size;
	g->n_slots = n_slots;
	return 0;
}

void gen_values_release(struct gen_values *g)
{
	free(g->buf);
	g->buf = NULL;
}

const uint8_t *gen_value(const struct gen_values *g, uint64_t i)
{
	return g->buf + (size_t)(i % g->n_slots) * g->value_size;
}
