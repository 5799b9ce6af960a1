/*
 * test_bloom.c - the SST bloom filter: no false negatives, false-positive
 * rate at 10 bits/key, parameter choice and trailer checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lsm.h"
#include "sst/bloom.h"
#include "sst/sst_format.h"
#include "util/coding.h"

static uint64_t key_hash(const char *prefix, uint32_t i)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%s%u", prefix, i);
	return bloom_hash(slice_make(buf, (size_t)n));
}

static void test_bloom_fp_rate(void **state)
{
	const uint32_t n = 100000;
	uint64_t *h = malloc(n * sizeof(*h));
	assert_non_null(h);
	for (uint32_t i = 0; i < n; i++)
		h[i] = key_hash("present-key-", i);
	size_t len = bloom_filter_size(n, 10);
	assert_int_equal(len % SST_BLOOM_LINE, SST_BLOOM_TRAILER);
	assert_int_equal((len - SST_BLOOM_TRAILER) / SST_BLOOM_LINE,
			 (n * 10 + 511) / 512);
	uint8_t *f = malloc(len);
	assert_non_null(f);
	bloom_build(h, n, 10, f);
	struct bloom b;
	assert_int_equal(bloom_parse(f, len, "mem", 0, &b), 0);
	assert_int_equal(b.k, 7);
	for (uint32_t i = 0; i < n; i++)
		assert_true(bloom_may_contain(&b, h[i]));
	uint32_t fp = 0;
	for (uint32_t i = 0; i < n; i++)
		fp += bloom_may_contain(&b, key_hash("absent-key-", i));
	double rate = (double)fp / n;
	printf("bloom fp rate at 10 bits/key: %.4f\n", rate);
	assert_true(rate < 0.02);
	assert_true(rate > 0.0001); /* a filter that says no to all is wrong */
	free(f);
	free(h);
}

static void test_bloom_params(void **state)
{
	assert_int_equal(bloom_num_probes(1), 1);
	assert_int_equal(bloom_num_probes(10), 7);
	assert_int_equal(bloom_num_probes(20), 14);
	assert_int_equal(bloom_num_probes(100), 30);
	/* one key still gets a whole line */
	assert_int_equal(bloom_filter_size(1, 10),
			 SST_BLOOM_LINE + SST_BLOOM_TRAILER);
	uint64_t one = key_hash("k", 1);
	uint8_t f[SST_BLOOM_LINE + SST_BLOOM_TRAILER];
	bloom_build(&one, 1, 10, f);
	struct bloom b;
	assert_int_equal(bloom_parse(f, sizeof(f), "mem", 0, &b), 0);
	assert_true(bloom_may_contain(&b, one));
}

static void test_bloom_bad_trailer(void **state)
{
	uint64_t h = key_hash("k", 1);
	uint8_t f[2 * SST_BLOOM_LINE + SST_BLOOM_TRAILER];
	struct bloom b;
	bloom_build(&h, 1, 10, f + SST_BLOOM_LINE); /* 1 line at the end */
	/* length disagrees with the line count */
	assert_int_equal(bloom_parse(f, sizeof(f), "mem", 7, &b),
			 LSM_E_CORRUPT);
	uint8_t *g = f + SST_BLOOM_LINE;
	size_t glen = SST_BLOOM_LINE + SST_BLOOM_TRAILER;
	put_fixed32(g + glen - 4, 0); /* k = 0 */
	assert_int_equal(bloom_parse(g, glen, "mem", 7, &b), LSM_E_CORRUPT);
	put_fixed32(g + glen - 4, 31); /* k > 30 */
	assert_int_equal(bloom_parse(g, glen, "mem", 7, &b), LSM_E_CORRUPT);
	put_fixed32(g + glen - 4, 7);
	put_fixed32(g + glen - 8, 0); /* no lines */
	assert_int_equal(bloom_parse(g, glen, "mem", 7, &b), LSM_E_CORRUPT);
	assert_int_equal(bloom_parse(g, 3, "mem", 7, &b), LSM_E_CORRUPT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bloom_fp_rate),
		cmocka_unit_test(test_bloom_params),
		cmocka_unit_test(test_bloom_bad_trailer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
