/*
 * gen.h - keys, values and random numbers for lsm-bench.
 *
 * Keys are the key number written as zero-padded decimal, exactly
 * key_size bytes ("%016llu" for the default 16), so numeric order is byte
 * order. A "missing" key is a real key followed by one '.' byte: it sorts
 * right after its real neighbour and never exists in the store.
 *
 * Values come from one read-only buffer of pre-generated slots, each
 * value_size bytes, half random bytes and half a copy of them, so every
 * value compresses to about 50% (like db_bench's compression ratio 0.5).
 */
#ifndef LSM_BENCH_GEN_H
#define LSM_BENCH_GEN_H

#include <stddef.h>
#include <stdint.h>

/* splitmix64: small, fast, good enough for choosing keys. One per thread. */
struct gen_rng {
	uint64_t state;
};

void gen_rng_seed(struct gen_rng *r, uint64_t seed);
uint64_t gen_rng_next(struct gen_rng *r);
/* Uniform in [0, n) without modulo bias worth measuring (n > 0). */
uint64_t gen_rng_below(struct gen_rng *r, uint64_t n);

/* Largest key number that fits in key_size decimal digits, or UINT64_MAX
 * when key_size >= 20. */
uint64_t gen_key_max(size_t key_size);
/* Writes exactly key_size bytes (num must be <= gen_key_max(key_size)). */
void gen_key(char *buf, size_t key_size, uint64_t num);
/* Writes key_size + 1 bytes: gen_key() then '.'. */
void gen_missing_key(char *buf, size_t key_size, uint64_t num);

struct gen_values {
	uint8_t *buf;
	size_t value_size;
	size_t n_slots;
};

/* Fills about 1 MiB (at least 64 slots) of values; 0 or -ENOMEM. */
int gen_values_init(struct gen_values *g, size_t value_size, uint64_t seed);
void gen_values_release(struct gen_values *g);
/* Slot i modulo the number of slots; valid until gen_values_release(). */
const uint8_t *gen_value(const struct gen_values *g, uint64_t i);

#endif /* LSM_BENCH_GEN_H */
