/*
 * test_merge.c - the merging iterator against a sorted reference: 1..8
 * children of random keys with unique sequence numbers, forward, backward,
 * random next/prev walks (direction switches), seek, seek_for_prev, empty
 * children and children that fail. Also the vector and empty iterators.
 * Every check runs twice: on iter_new_merge()'s merge, and on
 * iter_new_merge_steps()'s (iter/merge.h) with step functions on half the
 * children and forward steps taken by iter_merge_step(), whose key must
 * agree with iter_key() at every step (the runner-up shortcut and the
 * cached values of stepped children against the reference).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>

#include "iter/iter.h"
#include "iter/merge.h"
#include "iter/vec_iter.h"
#include "util/ikey.h"

#define KEY_CAP 24

struct kbuf {
	uint8_t b[KEY_CAP];
};

/* One random data set split among children. */
struct dataset {
	size_t n;
	struct kbuf *kb;      /* n internal keys */
	struct kbuf *vb;      /* n values: the seq as text */
	struct slice *ref;    /* all keys, sorted */
	struct slice *refval; /* values matching ref */
	size_t n_children;
	size_t *n_child;      /* entries per child */
	struct slice **ckeys; /* per child, sorted */
	struct slice **cvals;
};

static int cmp_ikey_pair(const void *a, const void *b)
{
	return ikey_cmp(*(const struct slice *)a, *(const struct slice *)b);
}

static struct slice make_ikey(uint8_t *buf, unsigned user, uint64_t seq,
			      unsigned kind)
{
	int n = snprintf((char *)buf, KEY_CAP, "k%05u", user);
	ikey_put_trailer(buf + n, seq, kind);
	return slice_make(buf, (size_t)n + IKEY_TRAILER);
}

/* Sorts keys and their values together (values follow via index). */
static void sort_pairs(struct slice *keys, struct slice *vals, size_t n)
{
	struct slice *tmp = malloc((n ? n : 1) * 2 * sizeof(*tmp));
	assert_non_null(tmp);
	for (size_t i = 0; i < n; i++) {
		tmp[2 * i] = keys[i];
		tmp[2 * i + 1] = vals[i];
	}
	qsort(tmp, n, 2 * sizeof(*tmp), cmp_ikey_pair);
	for (size_t i = 0; i < n; i++) {
		keys[i] = tmp[2 * i];
		vals[i] = tmp[2 * i + 1];
	}
	free(tmp);
}

static void dataset_init(struct dataset *d, unsigned *seed, size_t n,
			 size_t n_children, unsigned n_users, bool has_empty)
{
	memset(d, 0, sizeof(*d));
	d->n = n;
	d->n_children = n_children;
	d->kb = calloc(n + 1, sizeof(*d->kb));
	d->vb = calloc(n + 1, sizeof(*d->vb));
	d->ref = calloc(n + 1, sizeof(*d->ref));
	d->refval = calloc(n + 1, sizeof(*d->refval));
	d->n_child = calloc(n_children, sizeof(*d->n_child));
	d->ckeys = calloc(n_children, sizeof(*d->ckeys));
	d->cvals = calloc(n_children, sizeof(*d->cvals));
	assert_true(d->kb && d->vb && d->ref && d->refval && d->n_child &&
		    d->ckeys && d->cvals);
	size_t *owner = calloc(n + 1, sizeof(*owner));
	assert_non_null(owner);
	/* unique seqs: a random permutation of 1..n, spread out */
	for (size_t i = 0; i < n; i++) {
		uint64_t seq = (uint64_t)(i + 1) * 3;
		unsigned user = (unsigned)rand_r(seed) % n_users;
		unsigned kind = (unsigned)rand_r(seed) % 3;
		d->ref[i] = make_ikey(d->kb[i].b, user, seq, kind);
		int vl = snprintf((char *)d->vb[i].b, KEY_CAP, "v%llu",
				  (unsigned long long)seq);
		d->refval[i] = slice_make(d->vb[i].b, (size_t)vl);
		/* child 0 stays empty when asked, to test empty children */
		size_t lo = has_empty && n_children > 1 ? 1 : 0;
		owner[i] = lo + (size_t)rand_r(seed) % (n_children - lo);
		d->n_child[owner[i]]++;
	}
	for (size_t c = 0; c < n_children; c++) {
		d->ckeys[c] = calloc(d->n_child[c] + 1, sizeof(struct slice));
		d->cvals[c] = calloc(d->n_child[c] + 1, sizeof(struct slice));
		assert_true(d->ckeys[c] && d->cvals[c]);
		size_t j = 0;
		for (size_t i = 0; i < n; i++) {
			if (owner[i] == c) {
				d->ckeys[c][j] = d->ref[i];
				d->cvals[c][j] = d->refval[i];
				j++;
			}
		}
		sort_pairs(d->ckeys[c], d->cvals[c], d->n_child[c]);
	}
	sort_pairs(d->ref, d->refval, n);
	free(owner);
}

static void dataset_release(struct dataset *d)
{
	for (size_t c = 0; c < d->n_children; c++) {
		free(d->ckeys[c]);
		free(d->cvals[c]);
	}
	free(d->ckeys);
	free(d->cvals);
	free(d->n_child);
	free(d->ref);
	free(d->refval);
	free(d->kb);
	free(d->vb);
}

/* true: merges come from iter_new_merge_steps() and step by iter_merge_step()
 */
static bool g_direct;

/* A step function for any child, through its table (iter/merge.h). */
static bool table_step(struct ikv_iter *it, struct slice *key,
		       struct slice *value)
{
	iter_next(it);
	if (!iter_valid(it))
		return false;
	*key = iter_key(it);
	*value = iter_value(it);
	return true;
}

/* The merge of children ch[0..n) in the current mode: direct merges give
 * every even child a step function. */
static struct ikv_iter *make_merge(struct ikv_iter **ch, size_t n)
{
	if (!g_direct)
		return iter_new_merge(ch, n);
	iter_step_fn steps[8] = {0};
	assert_true(n <= 8);
	for (size_t c = 0; c < n; c += 2)
		steps[c] = table_step;
	struct ikv_iter *it = iter_new_merge_steps(ch, steps, n);
	assert_non_null(it);
	return it;
}

/* iter_next() in the current mode; a direct step's key must be the
 * merge's key. */
static void merge_next_checked(struct ikv_iter *it)
{
	if (!g_direct) {
		iter_next(it);
		return;
	}
	struct slice k = {NULL, 0};
	bool is_valid = iter_merge_step(it, &k);
	assert_int_equal(is_valid, iter_valid(it));
	if (is_valid)
		assert_true(slice_eq(k, iter_key(it)));
}

static struct ikv_iter *dataset_merge(const struct dataset *d)
{
	struct ikv_iter *ch[8];
	assert_true(d->n_children <= 8);
	for (size_t c = 0; c < d->n_children; c++)
		ch[c] = iter_new_vec(d->ckeys[c], d->cvals[c], d->n_child[c]);
	return make_merge(ch, d->n_children);
}

/* Checks that the iterator sits at ref[pos] (pos == n or SIZE_MAX means
 * invalid). */
static void expect_at(const struct dataset *d, struct ikv_iter *it, size_t pos)
{
	assert_int_equal(iter_status(it), 0);
	if (pos >= d->n) {
		assert_false(iter_valid(it));
		return;
	}
	assert_true(iter_valid(it));
	assert_true(slice_eq(iter_key(it), d->ref[pos]));
	assert_true(slice_eq(iter_value(it), d->refval[pos]));
}

/* First ref index with key >= t. */
static size_t ref_lower(const struct dataset *d, struct slice t)
{
	size_t i = 0;
	while (i < d->n && ikey_cmp(d->ref[i], t) < 0)
		i++;
	return i;
}

static void check_dataset(const struct dataset *d, unsigned *seed,
			  unsigned n_users)
{
	struct ikv_iter *it = dataset_merge(d);
	assert_non_null(it);
	assert_false(iter_valid(it) && d->n == 0);

	/* forward */
	iter_first(it);
	for (size_t i = 0; i < d->n; i++) {
		expect_at(d, it, i);
		merge_next_checked(it);
	}
	expect_at(d, it, d->n);

	/* backward */
	iter_last(it);
	for (size_t i = d->n; i-- > 0;) {
		expect_at(d, it, i);
		iter_prev(it);
	}
	expect_at(d, it, SIZE_MAX);

	/* seek and seek_for_prev to random targets, some exact */
	for (int r = 0; r < 200; r++) {
		uint8_t tb[KEY_CAP];
		struct slice t;
		if (d->n && rand_r(seed) % 4 == 0) {
			t = d->ref[(size_t)rand_r(seed) % d->n];
		} else {
			uint64_t seq = (uint64_t)rand_r(seed) % (3 * d->n + 4);
			t = make_ikey(tb,
				      (unsigned)rand_r(seed) % (n_users + 1),
				      seq, IKEY_KIND_SEEK);
		}
		size_t lo = ref_lower(d, t);
		iter_seek(it, t);
		expect_at(d, it, lo);
		/* seek_for_prev: last <= t */
		size_t fp;
		if (lo < d->n && ikey_cmp(d->ref[lo], t) == 0)
			fp = lo;
		else
			fp = lo ? lo - 1 : SIZE_MAX;
		iter_seek_for_prev(it, t);
		expect_at(d, it, fp);
	}

	/* random walks with direction switches */
	for (int walk = 0; walk < 20; walk++) {
		size_t pos;
		int how = rand_r(seed) % 3;
		if (how == 0) {
			iter_first(it);
			pos = 0;
		} else if (how == 1) {
			iter_last(it);
			pos = d->n ? d->n - 1 : SIZE_MAX;
		} else {
			uint8_t tb[KEY_CAP];
			struct slice t = make_ikey(
				tb, (unsigned)rand_r(seed) % n_users,
				(uint64_t)rand_r(seed) % (3 * d->n + 4),
				IKEY_KIND_SEEK);
			iter_seek(it, t);
			pos = ref_lower(d, t);
		}
		for (int step = 0; step < 300 && pos < d->n; step++) {
			expect_at(d, it, pos);
			/* runs of the same direction, then switches */
			if (rand_r(seed) % 2) {
				merge_next_checked(it);
				pos++;
			} else {
				iter_prev(it);
				pos = pos ? pos - 1 : SIZE_MAX;
			}
		}
		expect_at(d, it, pos);
	}
	iter_free(it);
}

static void run_random(unsigned seed0, int rounds, bool has_empty)
{
	unsigned seed = seed0;
	for (int r = 0; r < rounds; r++) {
		size_t n_children = 1 + (size_t)rand_r(&seed) % 8;
		size_t n = (size_t)rand_r(&seed) % 300;
		unsigned n_users = 1 + (unsigned)rand_r(&seed) % 100;
		struct dataset d;
		dataset_init(&d, &seed, n, n_children, n_users, has_empty);
		check_dataset(&d, &seed, n_users);
		dataset_release(&d);
	}
}

static void test_merge_random(void **state)
{
	run_random(42, 150, false);
}

static void test_merge_direct_random(void **state)
{
	g_direct = true;
	run_random(43, 150, false);
	run_random(8, 60, true);
	/* iter_new_merge_steps() merges 0 and 1 children too */
	unsigned seed = 5;
	for (size_t n_children = 1; n_children <= 2; n_children++) {
		struct dataset d;
		dataset_init(&d, &seed, 120, n_children, 40, false);
		check_dataset(&d, &seed, 40);
		dataset_release(&d);
	}
	struct ikv_iter *it = iter_new_merge_steps(NULL, NULL, 0);
	assert_non_null(it);
	iter_first(it);
	assert_false(iter_valid(it));
	assert_int_equal(iter_status(it), 0);
	iter_free(it);
	g_direct = false;
}

static void test_merge_with_empty_children(void **state)
{
	run_random(7, 60, true);
	/* no children, and only empty children */
	struct ikv_iter *it = iter_new_merge(NULL, 0);
	iter_first(it);
	assert_false(iter_valid(it));
	assert_int_equal(iter_status(it), 0);
	iter_free(it);
	struct ikv_iter *ch[3] = {iter_new_vec(NULL, NULL, 0),
				  iter_new_empty(0),
				  iter_new_vec(NULL, NULL, 0)};
	it = iter_new_merge(ch, 3);
	iter_first(it);
	assert_false(iter_valid(it));
	iter_last(it);
	assert_false(iter_valid(it));
	assert_int_equal(iter_status(it), 0);
	iter_free(it);
}

/* A vector iterator that fails with -EIO on its fail_at-th move. */
struct failing_iter {
	struct ikv_iter base;
	struct ikv_iter *inner;
	int moves, fail_at;
	bool failed;
};

static struct failing_iter *to_fail(const struct ikv_iter *it)
{
	return (struct failing_iter *)it;
}

static void fail_count(struct ikv_iter *it)
{
	struct failing_iter *f = to_fail(it);
	if (++f->moves == f->fail_at)
		f->failed = true;
}

static bool fail_valid(const struct ikv_iter *it)
{
	return !to_fail(it)->failed && iter_valid(to_fail(it)->inner);
}
static void fail_first(struct ikv_iter *it)
{
	iter_first(to_fail(it)->inner);
	fail_count(it);
}
static void fail_last(struct ikv_iter *it)
{
	iter_last(to_fail(it)->inner);
	fail_count(it);
}
static void fail_seek(struct ikv_iter *it, struct slice t)
{
	iter_seek(to_fail(it)->inner, t);
	fail_count(it);
}
static void fail_seek_for_prev(struct ikv_iter *it, struct slice t)
{
	iter_seek_for_prev(to_fail(it)->inner, t);
	fail_count(it);
}
static void fail_next(struct ikv_iter *it)
{
	assert_true(fail_valid(it));
	iter_next(to_fail(it)->inner);
	fail_count(it);
}
static void fail_prev(struct ikv_iter *it)
{
	assert_true(fail_valid(it));
	iter_prev(to_fail(it)->inner);
	fail_count(it);
}
static struct slice fail_key(const struct ikv_iter *it)
{
	assert_true(fail_valid(it));
	return iter_key(to_fail(it)->inner);
}
static struct slice fail_value(const struct ikv_iter *it)
{
	assert_true(fail_valid(it));
	return iter_value(to_fail(it)->inner);
}
static int fail_status(const struct ikv_iter *it)
{
	return to_fail(it)->failed ? -EIO : 0;
}
static void fail_free(struct ikv_iter *it)
{
	iter_free(to_fail(it)->inner);
	free(it);
}

static const struct ikv_iter_ops fail_ops = {
	.valid = fail_valid,
	.first = fail_first,
	.last = fail_last,
	.seek = fail_seek,
	.seek_for_prev = fail_seek_for_prev,
	.next = fail_next,
	.prev = fail_prev,
	.key = fail_key,
	.value = fail_value,
	.status = fail_status,
	.free = fail_free,
};

static struct ikv_iter *failing_new(struct ikv_iter *inner, int fail_at)
{
	struct failing_iter *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->base.ops = &fail_ops;
	f->inner = inner;
	f->fail_at = fail_at;
	return &f->base;
}

static bool owned_by(const struct dataset *d, size_t c, struct slice key)
{
	for (size_t j = 0; j < d->n_child[c]; j++)
		if (d->ckeys[c][j].p == key.p)
			return true;
	return false;
}

static void check_child_error(void)
{
	unsigned seed = 99;
	struct dataset d;
	dataset_init(&d, &seed, 200, 4, 50, false);

	/* a child that is an error from the start */
	struct ikv_iter *ch[5];
	for (size_t c = 0; c < 4; c++)
		ch[c] = iter_new_vec(d.ckeys[c], d.cvals[c], d.n_child[c]);
	ch[4] = iter_new_empty(-EIO);
	struct ikv_iter *it = g_direct ? iter_new_merge_steps(ch, NULL, 5)
				       : iter_new_merge(ch, 5);
	iter_first(it);
	assert_false(iter_valid(it));
	assert_int_equal(iter_status(it), -EIO);
	iter_seek_for_prev(it, d.ref[100]);
	assert_false(iter_valid(it));
	assert_int_equal(iter_status(it), -EIO);
	iter_free(it);

	/* a child failing mid-scan, forward and backward */
	for (int dir = 0; dir < 2; dir++) {
		for (size_t c = 0; c < 4; c++) {
			struct ikv_iter *v = iter_new_vec(
				d.ckeys[c], d.cvals[c], d.n_child[c]);
			ch[c] = c == 2 ? failing_new(v, 20) : v;
		}
		it = make_merge(ch, 4);
		if (dir == 0)
			iter_first(it);
		else
			iter_last(it);
		size_t seen = 0;
		size_t pos = dir == 0 ? 0 : d.n - 1;
		while (iter_valid(it)) {
			/* entries before the failure are right */
			assert_true(slice_eq(iter_key(it), d.ref[pos]));
			seen++;
			if (dir == 0) {
				merge_next_checked(it);
				pos++;
			} else {
				iter_prev(it);
				pos--;
			}
		}
		assert_int_equal(iter_status(it), -EIO);
		assert_true(seen < d.n);
		assert_true(seen >= 19);
		iter_free(it);
	}

	/* the error surfaces during a direction switch too */
	for (size_t c = 0; c < 4; c++) {
		struct ikv_iter *v =
			iter_new_vec(d.ckeys[c], d.cvals[c], d.n_child[c]);
		ch[c] = c == 1 ? failing_new(v, 2) : v;
	}
	it = make_merge(ch, 4);
	/* seek (child 1: move 1) to an entry that is not child 1's */
	size_t k = 1;
	while (owned_by(&d, 1, d.ref[k]))
		k++;
	iter_seek(it, d.ref[k]);
	assert_true(iter_valid(it));
	assert_true(slice_eq(iter_key(it), d.ref[k]));
	/* prev() repositions child 1 (move 2), which fails */
	iter_prev(it);
	assert_false(iter_valid(it));
	assert_int_equal(iter_status(it), -EIO);
	/* repositioning reports the error again: the child is still failed */
	iter_first(it);
	assert_false(iter_valid(it));
	assert_int_equal(iter_status(it), -EIO);
	iter_free(it);
	dataset_release(&d);
}

static void test_merge_child_error(void **state)
{
	check_child_error();
	g_direct = true; /* the failing child (2) has a step function */
	check_child_error();
	g_direct = false;
}

static void test_vec_and_empty(void **state)
{
	uint8_t b[4][KEY_CAP];
	struct slice k[4] = {make_ikey(b[0], 1, 9, IKEY_PUT),
			     make_ikey(b[1], 1, 5, IKEY_PUT),
			     make_ikey(b[2], 2, 7, IKEY_DELETE),
			     make_ikey(b[3], 4, 1, IKEY_PUT)};
	struct ikv_iter *it = iter_new_vec(k, NULL, 4);
	assert_false(iter_valid(it));
	iter_first(it);
	assert_true(slice_eq(iter_key(it), k[0]));
	assert_int_equal(iter_value(it).len, 0);
	uint8_t tb[KEY_CAP];
	iter_seek(it, make_ikey(tb, 1, 6, IKEY_KIND_SEEK));
	assert_true(slice_eq(iter_key(it), k[1]));
	iter_seek_for_prev(it, make_ikey(tb, 3, 0, IKEY_PUT));
	assert_true(slice_eq(iter_key(it), k[2]));
	iter_seek_for_prev(it, k[3]);
	assert_true(slice_eq(iter_key(it), k[3]));
	iter_seek_for_prev(it, make_ikey(tb, 0, 0, IKEY_PUT));
	assert_false(iter_valid(it));
	iter_seek(it, make_ikey(tb, 5, 0, IKEY_PUT));
	assert_false(iter_valid(it));
	iter_last(it);
	iter_prev(it);
	assert_true(slice_eq(iter_key(it), k[2]));
	assert_int_equal(iter_status(it), 0);
	iter_free(it);

	it = iter_new_empty(-EIO);
	iter_first(it);
	iter_seek(it, k[0]);
	assert_false(iter_valid(it));
	assert_int_equal(iter_status(it), -EIO);
	iter_free(it);
	iter_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vec_and_empty),
		cmocka_unit_test(test_merge_random),
		cmocka_unit_test(test_merge_direct_random),
		cmocka_unit_test(test_merge_with_empty_children),
		cmocka_unit_test(test_merge_child_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
