/*
 * test_mem.c - the memtable against a sorted in-memory reference: iteration
 * both ways, seek / seek_for_prev, point reads at various sequence numbers,
 * range tombstones, reference lifetime, and one writer racing two readers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "iter/iter.h"
#include "mem/memtable.h"
#include "util/ikey.h"

/* ---- helpers ---- */

static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

struct ref_entry {
	uint8_t *ikey; /* malloc'd: user key + trailer */
	size_t ikey_len;
	uint8_t *value;
	size_t value_len;
};

static struct slice re_ikey(const struct ref_entry *e)
{
	return slice_make(e->ikey, e->ikey_len);
}

static int re_cmp(const void *a, const void *b)
{
	return ikey_cmp(re_ikey(a), re_ikey(b));
}

static struct slice mk_ikey(uint8_t *buf, struct slice user, uint64_t seq,
			    unsigned kind)
{
	if (user.len)
		memcpy(buf, user.p, user.len);
	ikey_put_trailer(buf + user.len, seq, kind);
	return slice_make(buf, user.len + IKEY_TRAILER);
}

/* A user key from a small alphabet so that prefixes and repeats occur. */
static size_t rand_user_key(uint64_t *s, uint8_t *buf, size_t n_distinct)
{
	uint64_t id = rnd(s) % n_distinct;
	size_t len = id % 7; /* 0..6 bytes, incl. the empty key */
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)("abc\xff"[(id >> (2 * i)) & 3]);
	return len;
}

struct model {
	struct ref_entry *e;
	size_t n;
};

static void model_free(struct model *md)
{
	for (size_t i = 0; i < md->n; i++) {
		free(md->e[i].ikey);
		free(md->e[i].value);
	}
	free(md->e);
}

/* Fills m and md with n point entries with distinct shuffled seqs 1..n. */
static void fill_random(struct memtable *m, struct model *md, size_t n,
			uint64_t seed, size_t n_distinct)
{
	uint64_t s = seed;
	uint64_t *seqs = malloc(n * sizeof(*seqs));
	assert_non_null(seqs);
	for (size_t i = 0; i < n; i++)
		seqs[i] = i + 1;
	for (size_t i = n; i > 1; i--) {
		size_t j = rnd(&s) % i;
		uint64_t t = seqs[i - 1];
		seqs[i - 1] = seqs[j];
		seqs[j] = t;
	}
	md->e = calloc(n, sizeof(*md->e));
	md->n = n;
	assert_non_null(md->e);
	for (size_t i = 0; i < n; i++) {
		uint8_t ubuf[16];
		size_t ulen = rand_user_key(&s, ubuf, n_distinct);
		unsigned kind = rnd(&s) % 4 ? IKEY_PUT : IKEY_DELETE;
		size_t vlen = kind == IKEY_PUT ? rnd(&s) % 40 : 0;
		struct ref_entry *e = &md->e[i];
		e->ikey = malloc(ulen + IKEY_TRAILER);
		e->value = malloc(vlen + 1);
		assert_non_null(e->ikey);
		assert_non_null(e->value);
		mk_ikey(e->ikey, slice_make(ubuf, ulen), seqs[i], kind);
		e->ikey_len = ulen + IKEY_TRAILER;
		for (size_t k = 0; k < vlen; k++)
			e->value[k] = (uint8_t)rnd(&s);
		e->value_len = vlen;
		assert_int_equal(mem_add(m, seqs[i], kind,
					 slice_make(ubuf, ulen),
					 slice_make(e->value, vlen)),
				 0);
	}
	free(seqs);
	qsort(md->e, n, sizeof(*md->e), re_cmp);
}

/* Index of the first entry >= t (n if none). */
static size_t model_lower(const struct model *md, struct slice t)
{
	size_t lo = 0, hi = md->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ikey_cmp(re_ikey(&md->e[mid]), t) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Index of the first entry > t (n if none). */
static size_t model_upper(const struct model *md, struct slice t)
{
	size_t lo = 0, hi = md->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ikey_cmp(re_ikey(&md->e[mid]), t) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void assert_at(struct ikv_iter *it, const struct model *md, size_t i)
{
	if (i >= md->n) {
		assert_false(iter_valid(it));
		return;
	}
	assert_true(iter_valid(it));
	struct slice k = iter_key(it), v = iter_value(it);
	assert_true(slice_eq(k, re_ikey(&md->e[i])));
	assert_true(
		slice_eq(v, slice_make(md->e[i].value, md->e[i].value_len)));
}

/* ---- tests ---- */

static void test_empty(void **state)
{
	struct memtable *m = mem_new();
	assert_non_null(m);
	assert_true(mem_is_empty(m));
	assert_true(mem_num_entries(m) == 0);
	assert_true(mem_num_tombs(m) == 0);
	assert_true(mem_usage(m) > 0);
	struct ikv_iter *it = mem_iter_new(m);
	assert_non_null(it);
	iter_first(it);
	assert_false(iter_valid(it));
	iter_last(it);
	assert_false(iter_valid(it));
	uint8_t buf[16];
	iter_seek(it, mk_ikey(buf, slice_make("a", 1), 5, IKEY_KIND_SEEK));
	assert_false(iter_valid(it));
	iter_seek_for_prev(it, mk_ikey(buf, slice_make("a", 1), 5, 1));
	assert_false(iter_valid(it));
	assert_int_equal(iter_status(it), 0);
	iter_free(it);
	assert_int_equal(
		mem_get(m, slice_make("a", 1), IKEY_SEQ_MAX, NULL, NULL), 0);
	assert_true(mem_max_covering_tomb(m, slice_make("a", 1), 100) == 0);
	/* Bad arguments are refused and leave it empty. */
	assert_int_equal(
		mem_add(m, 1, 7, slice_make("a", 1), slice_make("", 0)),
		-EINVAL);
	assert_int_equal(mem_add(m, IKEY_SEQ_MAX + 1, IKEY_PUT,
				 slice_make("a", 1), slice_make("", 0)),
			 -EINVAL);
	assert_true(mem_is_empty(m));
	mem_unref(m);
}

static void test_iterate_both_ways(void **state)
{
	struct memtable *m = mem_new();
	struct model md;
	assert_non_null(m);
	fill_random(m, &md, 20000, 0x1234567, 3000);
	assert_true(mem_num_entries(m) == md.n);
	assert_false(mem_is_empty(m));

	struct ikv_iter *it = mem_iter_new(m);
	assert_non_null(it);
	size_t i = 0;
	for (iter_first(it); iter_valid(it); iter_next(it))
		assert_at(it, &md, i++);
	assert_int_equal(i, md.n);

	i = md.n;
	for (iter_last(it); iter_valid(it); iter_prev(it))
		assert_at(it, &md, --i);
	assert_int_equal(i, 0);
	assert_int_equal(iter_status(it), 0);
	iter_free(it);
	model_free(&md);
	mem_unref(m);
}

static void test_seek_and_seek_for_prev(void **state)
{
	struct memtable *m = mem_new();
	struct model md;
	assert_non_null(m);
	fill_random(m, &md, 5000, 0xabcdef, 800);
	struct ikv_iter *it = mem_iter_new(m);
	assert_non_null(it);
	uint64_t s = 99;
	for (int round = 0; round < 4000; round++) {
		uint8_t ubuf[24], tbuf[40];
		struct slice t;
		switch (round % 4) {
		case 0: /* an existing key exactly */
			t = re_ikey(&md.e[rnd(&s) % md.n]);
			break;
		case 1: { /* a random key (often between keys), random seq */
			size_t ulen = rand_user_key(&s, ubuf, 2000);
			t = mk_ikey(tbuf, slice_make(ubuf, ulen),
				    rnd(&s) % (md.n + 10), IKEY_KIND_SEEK);
			break;
		}
		case 2: /* past the end */
			memset(ubuf, 0xff, 8);
			t = mk_ikey(tbuf, slice_make(ubuf, 8), 1, IKEY_PUT);
			break;
		default: /* an existing user key with a suffix byte */
		{
			struct slice u =
				ikey_user(re_ikey(&md.e[rnd(&s) % md.n]));
			memcpy(ubuf, u.p, u.len);
			ubuf[u.len] = (uint8_t)rnd(&s);
			t = mk_ikey(tbuf, slice_make(ubuf, u.len + 1),
				    IKEY_SEQ_MAX, IKEY_KIND_SEEK);
			break;
		}
		}
		size_t lo = model_lower(&md, t);
		iter_seek(it, t);
		assert_at(it, &md, lo);
		/* step a little both ways from there */
		size_t pos = lo;
		for (int k = 0; k < 3 && iter_valid(it); k++) {
			iter_next(it);
			assert_at(it, &md, ++pos);
		}
		iter_seek(it, t);
		if (iter_valid(it)) {
			iter_prev(it);
			if (lo == 0)
				assert_false(iter_valid(it));
			else
				assert_at(it, &md, lo - 1);
		}

		size_t up = model_upper(&md, t); /* last <= t is up - 1 */
		iter_seek_for_prev(it, t);
		if (up == 0)
			assert_false(iter_valid(it));
		else
			assert_at(it, &md, up - 1);
	}
	/* before the beginning: empty user key, newest possible trailer */
	uint8_t b[8];
	struct slice first =
		mk_ikey(b, slice_make("", 0), IKEY_SEQ_MAX, IKEY_KIND_SEEK);
	iter_seek(it, first);
	assert_at(it, &md, 0);
	iter_seek_for_prev(it, first);
	if (ikey_cmp(re_ikey(&md.e[0]), first) > 0)
		assert_false(iter_valid(it));
	/* a bare user key (shorter than a trailer) seeks before its versions */
	iter_seek(it, slice_make("ab", 2));
	uint8_t kb[16];
	assert_at(it, &md,
		  model_lower(&md, mk_ikey(kb, slice_make("ab", 2),
					   IKEY_SEQ_MAX, IKEY_KIND_SEEK)));
	iter_free(it);
	model_free(&md);
	mem_unref(m);
}

struct got {
	int calls;
	uint8_t ikey[64];
	size_t ikey_len;
	uint8_t value[64];
	size_t value_len;
};

static int got_fn(void *ctx, struct slice ikey, struct slice value)
{
	struct got *g = ctx;
	g->calls++;
	g->ikey_len = ikey.len;
	memcpy(g->ikey, ikey.p, ikey.len);
	g->value_len = value.len;
	memcpy(g->value, value.p, value.len);
	return 0;
}

static void test_get_versions(void **state)
{
	struct memtable *m = mem_new();
	assert_non_null(m);
	struct slice a = slice_make("a", 1);
	assert_int_equal(mem_add(m, 5, IKEY_PUT, a, slice_make("v5", 2)), 0);
	assert_int_equal(mem_add(m, 9, IKEY_DELETE, a, slice_make("", 0)), 0);
	assert_int_equal(mem_add(m, 12, IKEY_PUT, a, slice_make("v12", 3)), 0);
	assert_int_equal(mem_add(m, 7, IKEY_PUT, slice_make("ab", 2),
				 slice_make("x", 1)),
			 0);
	assert_int_equal(mem_add(m, 3, IKEY_PUT, slice_make("", 0),
				 slice_make("empty", 5)),
			 0);

	struct got g = {0};
	assert_int_equal(mem_get(m, a, 100, got_fn, &g), 1);
	struct slice gk = slice_make(g.ikey, g.ikey_len);
	assert_true(ikey_seq(gk) == 12 && ikey_kind(gk) == IKEY_PUT);
	assert_true(slice_eq(ikey_user(gk), a));
	assert_memory_equal(g.value, "v12", 3);
	assert_int_equal(mem_get(m, a, 12, got_fn, &g), 1);
	assert_true(ikey_seq(slice_make(g.ikey, g.ikey_len)) == 12);
	assert_int_equal(mem_get(m, a, 11, got_fn, &g), 1);
	gk = slice_make(g.ikey, g.ikey_len);
	assert_true(ikey_seq(gk) == 9 && ikey_kind(gk) == IKEY_DELETE);
	assert_int_equal(mem_get(m, a, 8, got_fn, &g), 1);
	gk = slice_make(g.ikey, g.ikey_len);
	assert_true(ikey_seq(gk) == 5 && ikey_kind(gk) == IKEY_PUT);
	assert_memory_equal(g.value, "v5", 2);
	g.calls = 0;
	assert_int_equal(mem_get(m, a, 4, got_fn, &g), 0);
	assert_int_equal(g.calls, 0);
	/* neighbours sharing a prefix are not confused */
	assert_int_equal(mem_get(m, slice_make("ab", 2), 6, got_fn, &g), 0);
	assert_int_equal(mem_get(m, slice_make("aa", 2), 99, got_fn, &g), 0);
	assert_int_equal(mem_get(m, slice_make("ab", 2), 7, got_fn, &g), 1);
	assert_int_equal(mem_get(m, slice_make("", 0), 3, got_fn, &g), 1);
	assert_memory_equal(g.value, "empty", 5);
	assert_int_equal(mem_get(m, slice_make("b", 1), 99, got_fn, &g), 0);
	/* read_seq above the maximum is clamped, not wrapped */
	assert_int_equal(mem_get(m, a, UINT64_MAX, got_fn, &g), 1);
	assert_true(ikey_seq(slice_make(g.ikey, g.ikey_len)) == 12);
	mem_unref(m);
}

static void test_get_random_vs_model(void **state)
{
	struct memtable *m = mem_new();
	struct model md;
	assert_non_null(m);
	fill_random(m, &md, 6000, 0x5eed, 700);
	uint64_t s = 7;
	for (int round = 0; round < 5000; round++) {
		uint8_t ubuf[16];
		size_t ulen = rand_user_key(&s, ubuf, 800);
		struct slice u = slice_make(ubuf, ulen);
		uint64_t read_seq = rnd(&s) % (md.n + 5);
		/* brute force: newest entry of u with seq <= read_seq */
		const struct ref_entry *want = NULL;
		for (size_t i = 0; i < md.n; i++) {
			struct slice k = re_ikey(&md.e[i]);
			if (slice_eq(ikey_user(k), u) &&
			    ikey_seq(k) <= read_seq) {
				want = &md.e[i]; /* sorted: newest first */
				break;
			}
		}
		struct got g = {0};
		int r = mem_get(m, u, read_seq, got_fn, &g);
		if (!want) {
			assert_int_equal(r, 0);
			assert_int_equal(g.calls, 0);
			continue;
		}
		assert_int_equal(r, 1);
		assert_int_equal(g.calls, 1);
		assert_true(slice_eq(slice_make(g.ikey, g.ikey_len),
				     re_ikey(want)));
		assert_true(slice_eq(slice_make(g.value, g.value_len),
				     slice_make(want->value, want->value_len)));
	}
	model_free(&md);
	mem_unref(m);
}

struct tomb {
	char start[16], end[16];
	uint64_t seq;
};

static void test_range_tombstones(void **state)
{
	struct memtable *m = mem_new();
	assert_non_null(m);
	uint64_t s = 4242;
	enum { N_TOMBS = 300 };
	struct tomb t[N_TOMBS];
	for (int i = 0; i < N_TOMBS; i++) {
		unsigned a = rnd(&s) % 1000, len = 1 + rnd(&s) % 60;
		snprintf(t[i].start, sizeof(t[i].start), "k%03u", a);
		snprintf(t[i].end, sizeof(t[i].end), "k%03u",
			 a + len > 999 ? 999 : a + len);
		t[i].seq = 1000 + (uint64_t)i * 3;
		assert_int_equal(mem_add(m, t[i].seq, IKEY_RANGE_DELETE,
					 slice_make(t[i].start, 4),
					 slice_make(t[i].end, 4)),
				 0);
	}
	/* one point entry: tombstones are not point entries */
	assert_int_equal(mem_add(m, 1, IKEY_PUT, slice_make("k500", 4),
				 slice_make("v", 1)),
			 0);
	assert_true(mem_num_tombs(m) == N_TOMBS);
	assert_true(mem_num_entries(m) == 1);

	for (unsigned k = 0; k < 1000; k += 3) {
		char key[16];
		snprintf(key, sizeof(key), "k%03u", k);
		for (uint64_t rs = 999; rs < 1000 + 3 * N_TOMBS + 3; rs += 37) {
			uint64_t want = 0;
			for (int i = 0; i < N_TOMBS; i++)
				if (t[i].seq <= rs && t[i].seq > want &&
				    strcmp(t[i].start, key) <= 0 &&
				    strcmp(key, t[i].end) < 0)
					want = t[i].seq;
			assert_true(mem_max_covering_tomb(m, slice_make(key, 4),
							  rs) == want);
		}
	}
	/* a key longer than a start with the same prefix is after it */
	char k2[8] = "k0005";
	uint64_t want = 0;
	for (int i = 0; i < N_TOMBS; i++)
		if (strcmp(t[i].start, k2) <= 0 && strcmp(k2, t[i].end) < 0 &&
		    t[i].seq > want)
			want = t[i].seq;
	assert_true(mem_max_covering_tomb(m, slice_make(k2, 5), UINT64_MAX) ==
		    want);

	/* the tombstone iterator: start ikeys in order, values = ends */
	struct ikv_iter *it = mem_tomb_iter_new(m);
	assert_non_null(it);
	int n = 0;
	uint8_t prev[16];
	size_t prev_len = 0;
	for (iter_first(it); iter_valid(it); iter_next(it), n++) {
		struct slice k = iter_key(it);
		assert_int_equal(ikey_kind(k), IKEY_RANGE_DELETE);
		int idx = (int)((ikey_seq(k) - 1000) / 3);
		assert_true(idx >= 0 && idx < N_TOMBS);
		assert_true(
			slice_eq(ikey_user(k), slice_make(t[idx].start, 4)));
		assert_true(
			slice_eq(iter_value(it), slice_make(t[idx].end, 4)));
		if (n)
			assert_true(ikey_cmp(slice_make(prev, prev_len), k) <
				    0);
		memcpy(prev, k.p, k.len);
		prev_len = k.len;
	}
	assert_int_equal(n, N_TOMBS);
	int back = 0;
	for (iter_last(it); iter_valid(it); iter_prev(it))
		back++;
	assert_int_equal(back, N_TOMBS);
	iter_free(it);

	/* the point iterator sees only the point entry */
	it = mem_iter_new(m);
	iter_first(it);
	assert_true(iter_valid(it));
	assert_true(slice_eq(ikey_user(iter_key(it)), slice_make("k500", 4)));
	iter_next(it);
	assert_false(iter_valid(it));
	iter_free(it);
	mem_unref(m);
}

static void test_iterator_keeps_memtable_alive(void **state)
{
	struct memtable *m = mem_new();
	assert_non_null(m);
	for (int i = 0; i < 100; i++) {
		char k[16];
		snprintf(k, sizeof(k), "%04d", i);
		assert_int_equal(mem_add(m, (uint64_t)i + 1, IKEY_PUT,
					 slice_make(k, 4), slice_make(k, 4)),
				 0);
	}
	/* a big value takes its own arena block */
	size_t big_len = 100000;
	uint8_t *big = malloc(big_len);
	assert_non_null(big);
	memset(big, 'z', big_len);
	size_t before = mem_usage(m);
	assert_int_equal(mem_add(m, 1000, IKEY_PUT, slice_make("zz", 2),
				 slice_make(big, big_len)),
			 0);
	assert_true(mem_usage(m) >= before + big_len);

	struct ikv_iter *it = mem_iter_new(m);
	struct ikv_iter *tit = mem_tomb_iter_new(m);
	assert_non_null(it);
	assert_non_null(tit);
	mem_unref(m); /* the creator lets go; the iterators keep it */
	int n = 0;
	for (iter_first(it); iter_valid(it); iter_next(it)) {
		if (n < 100) {
			char k[16];
			snprintf(k, sizeof(k), "%04d", n);
			assert_true(slice_eq(iter_value(it), slice_make(k, 4)));
		} else {
			assert_true(slice_eq(iter_value(it),
					     slice_make(big, big_len)));
		}
		n++;
	}
	assert_int_equal(n, 101);
	iter_free(it); /* m still alive through tit */
	iter_first(tit);
	assert_false(iter_valid(tit));
	iter_free(tit); /* last reference: frees (ASan checks leaks) */
	free(big);
}

/* ---- one writer, two lock-free readers ---- */

#define CONC_N 200000

struct conc {
	struct memtable *m;
	atomic_bool done;
	atomic_int failures;
	atomic_long reader_passes;
	atomic_long partial_passes; /* passes that raced the writer */
};

static size_t conc_key(uint64_t i, uint8_t *buf)
{
	/* a scrambled 8-byte key; a few collide on purpose (versions) */
	uint64_t x = (i % (CONC_N - 1000)) * UINT64_C(0x9e3779b97f4a7c15);
	put_be64(buf, x);
	return 8;
}

static void *conc_writer(void *arg)
{
	struct conc *c = arg;
	uint8_t k[8], v[24];
	memset(v, 'v', sizeof(v));
	for (uint64_t i = 0; i < CONC_N; i++) {
		conc_key(i, k);
		put_fixed64(v, i);
		if (mem_add(c->m, i + 1, i % 10 ? IKEY_PUT : IKEY_DELETE,
			    slice_make(k, 8), slice_make(v, sizeof(v))) != 0)
			atomic_fetch_add(&c->failures, 1);
	}
	atomic_store(&c->done, true);
	return NULL;
}

static int conc_check_fn(void *ctx, struct slice ikey, struct slice value)
{
	memcpy(ctx, ikey.p, IKEY_TRAILER + 8);
	return 0;
}

static void *conc_reader(void *arg)
{
	struct conc *c = arg;
	enum { SAVED = 256 };
	static _Thread_local uint8_t saved[SAVED][16];
	size_t n_saved = 0;
	struct ikv_iter *it = mem_iter_new(c->m);
	if (!it) {
		atomic_fetch_add(&c->failures, 1);
		return NULL;
	}
	bool last_pass = false;
	uint64_t seen_before = 0;
	while (!last_pass) {
		last_pass = atomic_load(&c->done);
		uint64_t count = 0;
		uint8_t prev[16];
		bool has_prev = false;
		for (iter_first(it); iter_valid(it); iter_next(it)) {
			struct slice k = iter_key(it);
			if (k.len != 16 || iter_value(it).len != 24) {
				atomic_fetch_add(&c->failures, 1);
				break;
			}
			if (has_prev && ikey_cmp(slice_make(prev, 16), k) >= 0)
				atomic_fetch_add(&c->failures, 1);
			memcpy(prev, k.p, 16);
			has_prev = true;
			/* value carries the index the writer used */
			uint64_t idx = get_fixed64(iter_value(it).p);
			if (idx + 1 != ikey_seq(k))
				atomic_fetch_add(&c->failures, 1);
			if (count % 997 == 0 && n_saved < SAVED)
				memcpy(saved[n_saved++], k.p, 16);
			count++;
		}
		/* entries are never lost: each pass sees at least as many */
		if (count < seen_before)
			atomic_fetch_add(&c->failures, 1);
		seen_before = count;
		if (count > 0 && count < CONC_N)
			atomic_fetch_add(&c->partial_passes, 1);
		if (last_pass && count != CONC_N)
			atomic_fetch_add(&c->failures, 1);
		/* every key seen stays found, by get and by seek */
		for (size_t i = 0; i < n_saved; i++) {
			struct slice k = slice_make(saved[i], 16);
			uint8_t got[16];
			if (mem_get(c->m, ikey_user(k), ikey_seq(k),
				    conc_check_fn, got) != 1 ||
			    memcmp(got, saved[i], 16) != 0)
				atomic_fetch_add(&c->failures, 1);
			iter_seek(it, k);
			if (!iter_valid(it) || !slice_eq(iter_key(it), k))
				atomic_fetch_add(&c->failures, 1);
			iter_seek_for_prev(it, k);
			if (!iter_valid(it) || !slice_eq(iter_key(it), k))
				atomic_fetch_add(&c->failures, 1);
		}
		atomic_fetch_add(&c->reader_passes, 1);
	}
	iter_free(it);
	return NULL;
}

static void test_concurrent_writer_and_readers(void **state)
{
	struct conc c;
	c.m = mem_new();
	assert_non_null(c.m);
	atomic_init(&c.done, false);
	atomic_init(&c.failures, 0);
	atomic_init(&c.reader_passes, 0);
	atomic_init(&c.partial_passes, 0);
	pthread_t w, r[2];
	assert_int_equal(pthread_create(&r[0], NULL, conc_reader, &c), 0);
	assert_int_equal(pthread_create(&r[1], NULL, conc_reader, &c), 0);
	assert_int_equal(pthread_create(&w, NULL, conc_writer, &c), 0);
	assert_int_equal(pthread_join(w, NULL), 0);
	assert_int_equal(pthread_join(r[0], NULL), 0);
	assert_int_equal(pthread_join(r[1], NULL), 0);
	assert_int_equal(atomic_load(&c.failures), 0);
	assert_true(atomic_load(&c.reader_passes) >= 2);
	/* Not asserted (scheduling decides), but shown: a race happened. */
	print_message("reader passes %ld, during writes %ld\n",
		      (long)atomic_load(&c.reader_passes),
		      (long)atomic_load(&c.partial_passes));
	assert_true(mem_num_entries(c.m) == CONC_N);
	mem_unref(c.m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_iterate_both_ways),
		cmocka_unit_test(test_seek_and_seek_for_prev),
		cmocka_unit_test(test_get_versions),
		cmocka_unit_test(test_get_random_vs_model),
		cmocka_unit_test(test_range_tombstones),
		cmocka_unit_test(test_iterator_keeps_memtable_alive),
		cmocka_unit_test(test_concurrent_writer_and_readers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
