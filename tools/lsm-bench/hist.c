/*
 * hist.c - log-bucket latency histogram (see hist.h).
 *
 * Bucket layout: values below HIST_SUB are exact (bucket = value). A larger
 * value v with its highest set bit at position b (b >= HIST_SUB_BITS) falls
 * in group g = b - HIST_SUB_BITS + 1, sub-bucket (v >> (b - HIST_SUB_BITS))
 * minus HIST_SUB, i.e. the HIST_SUB_BITS bits after the leading one.
 *
 * Invariants:
 *  1. Bucket i covers [hist_lower(i), hist_lower(i + 1)); the ranges are
 *     contiguous, increasing and cover [0, 2^48); larger values are clamped
 *     into the last bucket (max_ns keeps the true maximum).
 *  2. count == sum of buckets[]; min_ns/max_ns are exact.
 *
 * Thread safety: none. Each thread owns its histogram; merge after join.
 */
#include "hist.h"

#include <string.h>

static unsigned hist_bucket(uint64_t v)
{
	unsigned b, idx;

	if (v < HIST_SUB)
		return (unsigned)v;
	b = 63u - (unsigned)__builtin_clzll(v);
	idx = (b - HIST_SUB_BITS + 1) * HIST_SUB +
	      (unsigned)((v >> (b - HIST_SUB_BITS)) & (HIST_SUB - 1));
	if (idx >= HIST_N_BUCKETS)
		idx = HIST_N_BUCKETS - 1;
	return idx;
}

/* Smallest value that falls in bucket i (inverse of hist_bucket). */
static uint64_t hist_lower(unsigned i)
{
	unsigned g = i / HIST_SUB, sub = i % HIST_SUB, b;

	if (g == 0)
		return i;
	b = g + HIST_SUB_BITS - 1;
	return ((uint64_t)(HIST_SUB + sub)) << (b - HIST_SUB_BITS);
}

void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min_ns = UINT64_MAX;
}

void hist_add(struct hist *h, uint64_t ns)
{
	h->buckets[hist_bucket(ns)]++;
	h->count++;
	h->sum_ns += ns;
	if (ns < h->min_ns)
		h->min_ns = ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	for (unsigned i = 0; i < HIST_N_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
	dst->count += src->count;
	dst->sum_ns += src->sum_ns;
	if (src->min_ns < dst->min_ns)
		dst->min_ns = src->min_ns;
	if (src->max_ns > dst->max_ns)
		dst->max_ns = src->max_ns;
}

double hist_quantile_ns(const struct hist *h, double q)
{
	double target, seen = 0;

	if (h->count == 0)
		return 0;
	if (q < 0)
		q = 0;
	if (q > 1)
		q = 1;
	target = q * (double)h->count;
	for (unsigned i = 0; i < HIST_N_BUCKETS; i++) {
		double n = (double)h->buckets[i];
		double lo, hi, v;

		if (n == 0 || seen + n < target) {
			seen += n;
			continue;
		}
		/* Linear interpolation inside the bucket, clamped to the
		 * observed extremes so a sparse tail is not overstated. */
		lo = (double)hist_lower(i);
		hi = i + 1 < HIST_N_BUCKETS ? (double)hist_lower(i + 1)
					    : (double)h->max_ns + 1;
		v = lo + (hi - lo) * ((target - seen) / n);
		if (v < (double)h->min_ns)
			v = (double)h->min_ns;
		if (v > (double)h->max_ns)
			v = (double)h->max_ns;
		return v;
	}
	return (double)h->max_ns;
}
