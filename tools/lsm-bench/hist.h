/*
 * hist.h - log-bucket latency histogram for lsm-bench.
 *
 * Records durations in nanoseconds into buckets whose width grows with the
 * value (16 sub-buckets per power of two, so any reported percentile is
 * within ~6% of the true value). One histogram per thread, merged after the
 * threads join: recording takes no lock.
 */
#ifndef LSM_BENCH_HIST_H
#define LSM_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 4
#define HIST_SUB (1u << HIST_SUB_BITS)
/* Values up to 2^48 ns (~3 days) have their own bucket; larger ones go in
 * the last. */
#define HIST_N_BUCKETS ((48 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
	uint64_t count;
	uint64_t sum_ns;
	uint64_t min_ns;
	uint64_t max_ns;
	uint64_t buckets[HIST_N_BUCKETS];
};

void hist_init(struct hist *h);
void hist_add(struct hist *h, uint64_t ns);
/* Adds every sample of src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);
/* The value (ns) below which a fraction q (0..1) of the samples lie,
 * interpolated inside its bucket; 0 for an empty histogram. */
double hist_quantile_ns(const struct hist *h, double q);

#endif /* LSM_BENCH_HIST_H */
