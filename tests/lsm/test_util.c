/*
 * test_util.c - varints, fixed-width coding, internal-key ordering, arena,
 * status messages, distinct-key sketches.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/arena.h"
#include "util/coding.h"
#include "util/hash.h"
#include "util/ikey.h"
#include "util/sketch.h"
#include "util/status.h"

static void test_varint_roundtrip(void **state)
{
	uint64_t vals[] = {
		0,         1,     127,   128,        255,
		300,       16383, 16384, UINT32_MAX, (uint64_t)UINT32_MAX + 1,
		UINT64_MAX};
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		uint8_t buf[10];
		uint8_t *end = put_varint64(buf, vals[i]);
		uint64_t got;
		assert_int_equal((size_t)(end - buf), varint_len(vals[i]));
		assert_ptr_equal(get_varint64(buf, end, &got), end);
		assert_true(got == vals[i]);
		/* every truncation is refused */
		for (uint8_t *t = buf; t < end; t++)
			assert_null(get_varint64(buf, t, &got));
	}
}

static void test_varint32_overflow_refused(void **state)
{
	uint8_t bad[] = {0xff, 0xff, 0xff, 0xff, 0x1f};
	uint32_t v;
	assert_null(get_varint32(bad, bad + sizeof(bad), &v));
	uint8_t ok[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
	assert_non_null(get_varint32(ok, ok + sizeof(ok), &v));
	assert_true(v == UINT32_MAX);
}

static void test_fixed_and_be(void **state)
{
	uint8_t b[8];
	put_fixed64(b, 0x0102030405060708ull);
	assert_int_equal(b[0], 8);
	assert_true(get_fixed64(b) == 0x0102030405060708ull);
	put_be64(b, 0x0102030405060708ull);
	assert_int_equal(b[0], 1);
	assert_true(get_be64(b) == 0x0102030405060708ull);
}

static struct slice mk(uint8_t *buf, const char *k, uint64_t seq, unsigned kind)
{
	size_t n = strlen(k);
	memcpy(buf, k, n);
	ikey_put_trailer(buf + n, seq, kind);
	return slice_make(buf, n + IKEY_TRAILER);
}

static void test_ikey_order(void **state)
{
	uint8_t a[32], b[32];
	/* user key ascending */
	assert_true(ikey_cmp(mk(a, "a", 1, IKEY_PUT), mk(b, "b", 9, IKEY_PUT)) <
		    0);
	/* shorter first */
	assert_true(ikey_cmp(mk(a, "a", 1, IKEY_PUT),
			     mk(b, "ab", 1, IKEY_PUT)) < 0);
	/* newer first among equal user keys */
	assert_true(ikey_cmp(mk(a, "k", 9, IKEY_PUT), mk(b, "k", 1, IKEY_PUT)) <
		    0);
	/* the boundary sentinel precedes every real version */
	assert_true(ikey_cmp(mk(a, "k", IKEY_SEQ_MAX, IKEY_SENTINEL),
			     mk(b, "k", IKEY_SEQ_MAX, IKEY_PUT)) < 0);
	struct slice s = mk(a, "key", 12345, IKEY_DELETE);
	assert_true(ikey_seq(s) == 12345);
	assert_int_equal(ikey_kind(s), IKEY_DELETE);
	assert_true(ikey_valid(s));
	assert_false(ikey_valid(slice_make(a, 7)));
}

static void test_arena(void **state)
{
	struct arena a;
	arena_init(&a);
	for (int i = 0; i < 10000; i++) {
		size_t n = (size_t)(i % 97) + 1;
		uint8_t *p = arena_alloc(&a, n);
		assert_non_null(p);
		assert_int_equal((uintptr_t)p & 7, 0);
		memset(p, 0xab, n);
	}
	uint8_t *big = arena_alloc(&a, 1 << 20);
	assert_non_null(big);
	memset(big, 1, 1 << 20);
	assert_true(arena_usage(&a) >= (1 << 20));
	arena_release(&a);
	assert_int_equal(arena_usage(&a), 0);
}

static void test_status_detail(void **state)
{
	int rc = LSM_CORRUPT("file %s offset %d", "000001.sst", 42);
	assert_int_equal(rc, LSM_E_CORRUPT);
	assert_non_null(strstr(lsm_errdetail(), "000001.sst offset 42"));
	assert_string_equal(lsm_strerror(-ENOSPC), strerror(ENOSPC));
	assert_string_equal(lsm_strerror(LSM_E_BUSY),
			    "store is in use by another process or handle");
	lsm_err_clear();
	assert_string_equal(lsm_errdetail(), "");
}

/* Keys lo..hi-1 (as 8-byte numbers) into a sketch. */
static void sketch_keys(uint8_t *regs, uint64_t lo, uint64_t hi)
{
	for (uint64_t k = lo; k < hi; k++)
		sketch_add(regs, lsm_hash64(&k, sizeof(k)));
}

/* Within four standard errors (4 x 4.6%) of the truth, or within one key
 * below a hundred keys (linear counting is near exact there). */
static void expect_near(double est, double truth)
{
	double tol = truth < 100 ? 1.0 : truth * 0.184;
	if (est < truth - tol || est > truth + tol)
		fail_msg("estimate %.1f for %.0f distinct keys", est, truth);
}

static void test_sketch_estimates(void **state)
{
	static const uint64_t sizes[] = {0, 1, 7, 60, 1000, 20000, 300000};
	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t regs[SKETCH_REGS] = {0};
		sketch_keys(regs, 0, sizes[i]);
		expect_near(sketch_estimate(regs), (double)sizes[i]);
		/* the same keys again change nothing */
		uint8_t again[SKETCH_REGS];
		memcpy(again, regs, sizeof(regs));
		sketch_keys(again, 0, sizes[i]);
		assert_memory_equal(again, regs, sizeof(regs));
	}
}

/* The union of two overlapping sets estimates their union, not their
 * sum: [0, 200000) and [100000, 300000) hold 300000 distinct keys. */
static void test_sketch_union(void **state)
{
	uint8_t a[SKETCH_REGS] = {0}, b[SKETCH_REGS] = {0};
	(void)state;
	sketch_keys(a, 0, 200000);
	sketch_keys(b, 100000, 300000);
	sketch_union(a, b);
	expect_near(sketch_estimate(a), 300000);
	sketch_union(a, b); /* idempotent */
	expect_near(sketch_estimate(a), 300000);
}

static void test_sketch_valid(void **state)
{
	uint8_t regs[SKETCH_REGS] = {0};
	(void)state;
	assert_true(sketch_valid(regs, SKETCH_REGS));
	assert_false(sketch_valid(regs, SKETCH_REGS - 1));
	regs[7] = SKETCH_MAX_RANK;
	assert_true(sketch_valid(regs, SKETCH_REGS));
	regs[7] = SKETCH_MAX_RANK + 1;
	assert_false(sketch_valid(regs, SKETCH_REGS));
	/* a hash whose bits below the register index are all zero */
	memset(regs, 0, sizeof(regs));
	sketch_add(regs, (uint64_t)5 << (64 - SKETCH_BITS));
	assert_int_equal(regs[5], SKETCH_MAX_RANK);
	assert_true(sketch_valid(regs, SKETCH_REGS));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_varint_roundtrip),
		cmocka_unit_test(test_varint32_overflow_refused),
		cmocka_unit_test(test_fixed_and_be),
		cmocka_unit_test(test_ikey_order),
		cmocka_unit_test(test_arena),
		cmocka_unit_test(test_status_detail),
		cmocka_unit_test(test_sketch_estimates),
		cmocka_unit_test(test_sketch_union),
		cmocka_unit_test(test_sketch_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
