/*
 * test_compact.c - where compact_write (compact/compact.c) cuts its
 * output files: at the target size with no level below the output, and
 * in line with the grandparent files when there is one: no grandparent
 * file is split between two outputs when it holds less than twice the
 * target, outputs are at least half the target (but the last), at most
 * about twice it, and a gap of the grandparent level wider than the
 * target gets outputs of its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compact/compact.h"
#include "env/env.h"
#include "iter/vec_iter.h"
#include "sst/sst.h"
#include "testutil.h"
#include "util/ikey.h"
#include "version/version.h"

#define N_KEYS 4000
#define KEY_LEN 8
#define VAL_LEN 100
#define TARGET (32u << 10) /* about 250 entries */

struct fixture {
	char dir[4096];
	uint8_t ikeys[N_KEYS][KEY_LEN + IKEY_TRAILER];
	uint8_t vals[N_KEYS][VAL_LEN];
	struct slice k[N_KEYS], v[N_KEYS];
	uint64_t next_number;
};

static void user_key(uint8_t *dst, unsigned i)
{
	char buf[KEY_LEN + 1];
	snprintf(buf, sizeof(buf), "k%07u", i);
	memcpy(dst, buf, KEY_LEN);
}

static uint64_t next_number(void *ctx)
{
	return ++((struct fixture *)ctx)->next_number;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	uint64_t seed = 7;
	assert_non_null(f);
	make_base_dir(f->dir, sizeof(f->dir), "compact");
	for (unsigned i = 0; i < N_KEYS; i++) {
		user_key(f->ikeys[i], i);
		ikey_put_trailer(f->ikeys[i] + KEY_LEN, 1000 + i, IKEY_PUT);
		for (unsigned j = 0; j < VAL_LEN; j++)
			f->vals[i][j] = (uint8_t)rnd(&seed);
		f->k[i] = slice_make(f->ikeys[i], sizeof(f->ikeys[i]));
		f->v[i] = slice_make(f->vals[i], VAL_LEN);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	rm_rf(f->dir);
	free(f);
	return 0;
}

/* A grandparent file spanning user keys [lo, hi] (numbers). */
static struct file_meta *gp_file(unsigned lo, unsigned hi)
{
	uint8_t a[KEY_LEN + IKEY_TRAILER], b[KEY_LEN + IKEY_TRAILER];
	user_key(a, lo);
	user_key(b, hi);
	ikey_put_trailer(a + KEY_LEN, 1, IKEY_PUT);
	ikey_put_trailer(b + KEY_LEN, 1, IKEY_PUT);
	struct file_meta *m =
		file_meta_new(0, 1u << 20, slice_make(a, sizeof(a)),
			      slice_make(b, sizeof(b)));
	assert_non_null(m);
	return m;
}

static unsigned key_number(struct slice ik)
{
	char buf[KEY_LEN];
	assert_true(ik.len >= KEY_LEN);
	memcpy(buf, ik.p + 1, KEY_LEN - 1);
	buf[KEY_LEN - 1] = '\0';
	return (unsigned)strtoul(buf, NULL, 10);
}

static void run(struct fixture *f, struct file_meta **gps, size_t n_gps,
		struct compact_result *res)
{
	struct compact_out_opts o;
	struct ikv_iter *in = iter_new_vec(f->k, f->v, N_KEYS);
	assert_non_null(in);
	memset(&o, 0, sizeof(o));
	o.env = env_posix();
	o.dir = f->dir;
	sst_writer_opts_init(&o.wopts);
	o.target_file_size = TARGET;
	o.grandparents = gps;
	o.n_grandparents = n_gps;
	o.out_level = 1;
	o.new_file_number = next_number;
	o.ctx = f;
	assert_int_equal(compact_write(&o, in, NULL, 0, res), 0);
	iter_free(in);
	assert_int_equal(res->entries_in, N_KEYS);
	assert_true(res->n_files >= 2);
	/* every key once, in order, the outputs disjoint */
	assert_int_equal(key_number(fm_smallest(res->files[0])), 0);
	assert_int_equal(key_number(fm_largest(res->files[res->n_files - 1])),
			 N_KEYS - 1);
	for (size_t i = 1; i < res->n_files; i++)
		assert_int_equal(key_number(fm_smallest(res->files[i])),
				 key_number(fm_largest(res->files[i - 1])) + 1);
}

static void test_cut_by_size_alone(void **state)
{
	struct fixture *f = *state;
	struct compact_result res;
	run(f, NULL, 0, &res);
	for (size_t i = 0; i < res.n_files; i++) {
		if (i + 1 < res.n_files)
			assert_true(res.files[i]->size >= TARGET);
		assert_true(res.files[i]->size < TARGET + TARGET / 4);
	}
	compact_result_release(&res);
}

/*
 * Grandparents of 100 to 350 keys (entries are about 130 bytes, so each
 * holds less than twice the target), some touching, with gaps of 2 to 700
 * keys between others: no grandparent may be split, and the gap of 700
 * keys (about three targets) must get an output lying wholly inside it.
 */
static void test_cut_in_line_with_grandparents(void **state)
{
	static const unsigned span[][2] = {
		{100, 299},   {300, 599},   {602, 700},   {701, 1050},
		{1200, 1399}, {1405, 1600}, {2300, 2500}, {2501, 2700},
		{2702, 2950}, {3000, 3300}, {3301, 3600},
	};
	enum { N_GP = sizeof(span) / sizeof(span[0]) };
	struct fixture *f = *state;
	struct file_meta *gps[N_GP];
	struct compact_result res;
	bool in_gap = false;

	for (size_t g = 0; g < N_GP; g++)
		gps[g] = gp_file(span[g][0], span[g][1]);
	run(f, gps, N_GP, &res);
	for (size_t i = 0; i < res.n_files; i++) {
		unsigned lo = key_number(fm_smallest(res.files[i]));
		unsigned hi = key_number(fm_largest(res.files[i]));
		if (i + 1 < res.n_files)
			assert_true(res.files[i]->size >= TARGET / 2);
		assert_true(res.files[i]->size < 2 * TARGET + TARGET / 4);
		for (size_t g = 0; g < N_GP; g++) {
			/* A grandparent partly inside this output is split. */
			bool meets = span[g][0] <= hi && span[g][1] >= lo;
			bool whole = span[g][0] >= lo && span[g][1] <= hi;
			bool covers = span[g][0] <= lo && span[g][1] >= hi;
			if (meets && !whole)
				fail_msg("output %zu [%u, %u] splits "
					 "grandparent [%u, %u]%s",
					 i, lo, hi, span[g][0], span[g][1],
					 covers ? " (inside it)" : "");
		}
		if (lo > 1600 && hi < 2300)
			in_gap = true;
	}
	assert_true(in_gap);
	compact_result_release(&res);
	for (size_t g = 0; g < N_GP; g++)
		file_meta_unref(gps[g]);
}

/* A grandparent of 1500 keys (about six targets) is cut inside anyway:
 * outputs stay under about twice the target. */
static void test_large_grandparent_still_cut(void **state)
{
	struct fixture *f = *state;
	struct file_meta *gp = gp_file(1000, 2499);
	struct compact_result res;
	size_t inside = 0;
	run(f, &gp, 1, &res);
	for (size_t i = 0; i < res.n_files; i++) {
		unsigned lo = key_number(fm_smallest(res.files[i]));
		unsigned hi = key_number(fm_largest(res.files[i]));
		assert_true(res.files[i]->size < 2 * TARGET + TARGET / 4);
		if (lo >= 1000 && hi <= 2499)
			inside++;
	}
	assert_true(inside >= 2);
	compact_result_release(&res);
	file_meta_unref(gp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cut_by_size_alone, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_cut_in_line_with_grandparents, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_large_grandparent_still_cut, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
