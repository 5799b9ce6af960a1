/*
 * test_rangedel.c - range-tombstone fragments against brute force: random
 * overlapping tombstones, many read sequence numbers, coverage and
 * find-next answers for many keys, plus the fragment-shape invariants.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <stdbool.h>

#include "iter/rangedel.h"

static struct slice S(const char *s) {
	return slice_make(s, strlen(s));
}

static void
test_basic_fragments(void **state)
{
	struct tomb_set *s = tomb_set_new();
	assert_non_null(s);
	assert_int_equal(tomb_set_count(s), 0);
	assert_true(tomb_set_cover(s, S("a")) == 0);
	/* [b, f)@5, [d, h)@9, [g, j)@3; empty and inverted ranges ignored */
	assert_int_equal(tomb_set_add(s, S("b"), S("f"), 5), 0);
	assert_int_equal(tomb_set_add(s, S("d"), S("h"), 9), 0);
	assert_int_equal(tomb_set_add(s, S("g"), S("j"), 3), 0);
	assert_int_equal(tomb_set_add(s, S("x"), S("x"), 50), 0);
	assert_int_equal(tomb_set_add(s, S("z"), S("y"), 50), 0);
	assert_int_equal(tomb_set_build(s, 100), 0);
	/* [b,d)@5 [d,h)@9 [h,j)@3 */
	assert_int_equal(tomb_set_count(s), 3);
	assert_true(tomb_set_cover(s, S("a")) == 0);
	assert_true(tomb_set_cover(s, S("b")) == 5);
	assert_true(tomb_set_cover(s, S("cz")) == 5);
	assert_true(tomb_set_cover(s, S("d")) == 9);
	assert_true(tomb_set_cover(s, S("gzz")) == 9);
	assert_true(tomb_set_cover(s, S("h")) == 3);
	assert_true(tomb_set_cover(s, S("j")) == 0);
	assert_true(tomb_set_cover(s, S("x")) == 0);
	struct slice st, en;
	uint64_t seq;
	assert_true(tomb_set_find(s, S("a"), &st, &en, &seq));
	assert_true(slice_eq(st, S("b")) && slice_eq(en, S("d")) && seq == 5);
	assert_true(tomb_set_find(s, S("e"), &st, &en, &seq));
	assert_true(slice_eq(st, S("d")) && slice_eq(en, S("h")) && seq == 9);
	assert_false(tomb_set_find(s, S("j"), &st, &en, &seq));

	/* at read_seq 8 the @9 tombstone is invisible: [b,f)@5 [g,j)@3 */
	assert_int_equal(tomb_set_build(s, 8), 0);
	assert_int_equal(tomb_set_count(s), 2);
	assert_true(tomb_set_cover(s, S("e")) == 5);
	assert_true(tomb_set_cover(s, S("f")) == 0);
	assert_true(tomb_set_find(s, S("f"), &st, &en, &seq));
	assert_true(slice_eq(st, S("g")) && slice_eq(en, S("j")) && seq == 3);
	assert_int_equal(tomb_set_build(s, 2), 0);
	assert_int_equal(tomb_set_count(s), 0);
	assert_false(tomb_set_find(s, S(""), &st, &en, &seq));

	/* adjacent equal-seq tombstones merge into one fragment; the empty
	 * key is a valid start */
	assert_int_equal(tomb_set_add(s, S(""), S("b"), 5), 0);
	assert_int_equal(tomb_set_build(s, 8), 0);
	assert_int_equal(tomb_set_count(s), 2);
	assert_true(tomb_set_cover(s, S("")) == 5);
	assert_true(tomb_set_find(s, S(""), &st, &en, &seq));
	assert_true(st.len == 0 && slice_eq(en, S("f")) && seq == 5);
	tomb_set_free(s);
	tomb_set_free(NULL);
}

/* Keys are 1-3 bytes over a small alphabet so that ranges overlap. */
static int rand_key(unsigned *seed, uint8_t *buf)
{
	int n = 1 + rand_r(seed) % 3;
	for (int i = 0; i < n; i++)
		buf[i] = (uint8_t)('a' + rand_r(seed) % 6);
	return n;
}

struct rtomb {
	uint8_t s[4], e[4];
	int s_len, e_len;
	uint64_t seq;
};

static uint64_t brute_cover(const struct rtomb *t, int n, uint64_t read_seq,
			    struct slice k)
{
	uint64_t best = 0;
	for (int i = 0; i < n; i++) {
		if (t[i].seq > read_seq || t[i].seq <= best)
			continue;
		if (slice_cmp(slice_make(t[i].s, (size_t)t[i].s_len), k) <= 0 &&
		    slice_cmp(k, slice_make(t[i].e, (size_t)t[i].e_len)) < 0)
			best = t[i].seq;
	}
	return best;
}

static void test_random_vs_brute_force(void **state)
{
	unsigned seed = 2024;
	for (int round = 0; round < 300; round++) {
		int n = rand_r(&seed) % 40;
		struct rtomb t[40];
		struct tomb_set *s = tomb_set_new();
		assert_non_null(s);
		for (int i = 0; i < n; i++) {
			t[i].s_len = rand_key(&seed, t[i].s);
			t[i].e_len = rand_key(&seed, t[i].e);
			/* seqs may repeat across tombstones */
			t[i].seq = 1 + (uint64_t)(rand_r(&seed) % 30);
			/* add from a scratch copy that is then scribbled on:
			 * the set must have copied the bytes */
			uint8_t scratch[8];
			memcpy(scratch, t[i].s, (size_t)t[i].s_len);
			memcpy(scratch + 4, t[i].e, (size_t)t[i].e_len);
			int rc = tomb_set_add(
				s, slice_make(scratch, (size_t)t[i].s_len),
				slice_make(scratch + 4, (size_t)t[i].e_len),
				t[i].seq);
			assert_int_equal(rc, 0);
			memset(scratch, 0x7f, sizeof(scratch));
		}

		for (int rs = 0; rs < 8; rs++) {
			uint64_t read_seq = (uint64_t)(rand_r(&seed) % 34);
			assert_int_equal(tomb_set_build(s, read_seq), 0);
			size_t nf = tomb_set_count(s);
			/* shape: sorted, disjoint, non-empty, seq > 0, adjacent
			 * fragments differ in seq; walk them with find() */
			struct slice st, en, prev_end = {NULL, 0};
			uint64_t seq, prev_seq = 0;
			size_t walked = 0;
			struct slice at = slice_make("", 0);
			bool has_prev = false;
			while (tomb_set_find(s, at, &st, &en, &seq)) {
				assert_true(slice_cmp(st, en) < 0);
				assert_true(seq > 0 && seq <= read_seq);
				if (has_prev) {
					int c = slice_cmp(prev_end, st);
					assert_true(c <= 0);
					if (c == 0)
						assert_true(seq != prev_seq);
				}
				/* every fragment's whole span has its seq */
				assert_true(tomb_set_cover(s, st) == seq);
				assert_true(brute_cover(t, n, read_seq, st) ==
					    seq);
				prev_end = en;
				prev_seq = seq;
				has_prev = true;
				walked++;
				at = en;
				assert_true(walked <= nf);
			}
			assert_int_equal(walked, nf);

			/* coverage and find for many random keys */
			for (int q = 0; q < 400; q++) {
				uint8_t k[4];
				struct slice key = slice_make(
					k, (size_t)rand_key(&seed, k));
				if (rand_r(&seed) % 8 == 0)
					key.len = 0;
				uint64_t want =
					brute_cover(t, n, read_seq, key);
				assert_true(tomb_set_cover(s, key) == want);
				bool found =
					tomb_set_find(s, key, &st, &en, &seq);
				if (want) {
					/* the fragment containing key */
					assert_true(found);
					assert_true(seq == want);
					assert_true(slice_cmp(st, key) <= 0);
					assert_true(slice_cmp(key, en) < 0);
				} else if (found) {
					/* the next fragment: starts after key
					 * and nothing is covered in between */
					assert_true(slice_cmp(key, st) < 0);
				}
			}
		}
		tomb_set_free(s);
	}
}

static void test_many_tombstones(void **state)
{
	/* nested ranges [i, 2000-i) @ i+1: each key's cover is its depth */
	struct tomb_set *s = tomb_set_new();
	char a[16], b[16];
	for (int i = 0; i < 1000; i++) {
		snprintf(a, sizeof(a), "%06d", i);
		snprintf(b, sizeof(b), "%06d", 2000 - i);
		assert_int_equal(tomb_set_add(s, S(a), S(b), (uint64_t)i + 1),
				 0);
	}
	assert_int_equal(tomb_set_build(s, UINT64_MAX), 0);
	assert_int_equal(tomb_set_count(s), 1999);
	for (int k = 0; k < 2100; k++) {
		snprintf(a, sizeof(a), "%06d", k);
		int depth = k < 1000 ? k + 1 : k < 2000 ? 2000 - k : 0;
		assert_true(tomb_set_cover(s, S(a)) == (uint64_t)depth);
	}
	assert_int_equal(tomb_set_build(s, 500), 0);
	snprintf(a, sizeof(a), "%06d", 1000);
	assert_true(tomb_set_cover(s, S(a)) == 500);
	assert_int_equal(tomb_set_count(s), 999);
	tomb_set_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic_fragments),
		cmocka_unit_test(test_random_vs_brute_force),
		cmocka_unit_test(test_many_tombstones),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
