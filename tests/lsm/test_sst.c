/*
 * test_sst.c - SST blocks, writer and reader: block round trips with
 * seek/seek_for_prev/prev across restarts, whole-file round trips under
 * each compression (gets, full scans both ways, random seeks), range
 * tombstones, properties, block cache use, and corruption (flipped bytes,
 * truncation) which must be reported, never crash or return wrong data.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cache/cache.h"
#include "env/env.h"
#include "sst/block.h"
#include "sst/sst.h"
#include "sst/sst_format.h"
#include "util/coding.h"
#include "util/ikey.h"
#include "util/status.h"

/* ---- a deterministic model of entries ---- */

struct ent {
	uint8_t key[40];
	size_t klen;
	uint32_t id; /* value seed */
	uint32_t vlen;
};

struct model {
	struct ent *e;
	size_t n;
};

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t make_ukey(uint8_t *buf, uint32_t u)
{
	int n = snprintf((char *)buf, 24, "key-%08u", u);
	for (uint32_t i = 0; i < u % 5; i++)
		buf[n++] = (uint8_t)('a' + i);
	return (size_t)n;
}

static void make_value(const struct ent *e, uint8_t *buf)
{
	for (uint32_t i = 0; i < e->vlen; i++)
		buf[i] = (uint8_t)("value-text-"[(e->id + i) % 11] +
				   (i % 64 == 63 ? e->id % 7 : 0));
}

/* n_keys user keys 3*i+1; every 10th has 3 versions; every 7th version is a
 * delete. Absent user keys are 3*i+2. */
static void model_build(struct model *m, size_t n_keys, uint64_t seed)
{
	m->e = calloc(n_keys * 3, sizeof(*m->e));
	assert_non_null(m->e);
	m->n = 0;
	uint64_t s = seed;
	for (uint32_t i = 0; i < n_keys; i++) {
		unsigned nv = i % 10 == 0 ? 3 : 1;
		for (unsigned v = 0; v < nv; v++) {
			struct ent *e = &m->e[m->n];
			size_t ul = make_ukey(e->key, 3 * i + 1);
			uint64_t seq = (uint64_t)i * 4 + (3 - v) + 100;
			unsigned kind = m->n % 7 == 3 ? IKEY_DELETE : IKEY_PUT;
			ikey_put_trailer(e->key + ul, seq, kind);
			e->klen = ul + 8;
			e->id = (uint32_t)m->n;
			e->vlen = kind == IKEY_DELETE
					  ? 0
					  : (uint32_t)(rng_next(&s) % 120);
			m->n++;
		}
	}
}

static struct slice ent_key(const struct ent *e)
{
	return slice_make(e->key, e->klen);
}

static void tmp_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "/tmp/test_sst_%d_%s", (int)getpid(), name);
}

static void write_model(const char *path, const struct model *m,
			const struct sst_writer_opts *o,
			struct sst_props *props)
{
	struct sst_writer *w = NULL;
	uint8_t val[256];
	assert_int_equal(sstw_open(env_posix(), path, o, &w), 0);
	for (size_t i = 0; i < m->n; i++) {
		make_value(&m->e[i], val);
		assert_int_equal(sstw_add(w, ent_key(&m->e[i]),
					  slice_make(val, m->e[i].vlen)),
				 0);
	}
	assert_int_equal(sstw_num_entries(w), m->n);
	assert_int_equal(sstw_finish(w, props), 0);
}

static void assert_entry(struct slice k, struct slice v, const struct ent *e)
{
	uint8_t val[256];
	assert_true(slice_eq(k, ent_key(e)));
	make_value(e, val);
	assert_int_equal(v.len, e->vlen);
	assert_memory_equal(v.p, val, e->vlen ? e->vlen : 0);
}

/* index of the first entry >= t (m->n if none) */
static size_t model_lower(const struct model *m, struct slice t)
{
	size_t lo = 0, hi = m->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (ikey_cmp(ent_key(&m->e[mid]), t) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* ---- blocks ---- */

static int ent_bytes_cmp(const void *a, const void *b)
{
	return slice_cmp(ent_key(a), ent_key(b));
}

static void check_block(enum block_order order, int interval, size_t n)
{
	struct block_builder bb;
	struct model m;
	model_build(&m, n, 7);
	if (order == BLOCK_ORDER_BYTES)
		qsort(m.e, m.n, sizeof(m.e[0]), ent_bytes_cmp);
	block_builder_init(&bb, interval);
	uint8_t val[256];
	for (size_t i = 0; i < m.n; i++) {
		make_value(&m.e[i], val);
		assert_int_equal(
			block_builder_add(&bb, ent_key(&m.e[i]),
					  slice_make(val, m.e[i].vlen)),
			0);
	}
	struct slice raw;
	assert_int_equal(block_builder_finish(&bb, &raw), 0);
	assert_int_equal(raw.len, block_builder_size(&bb));
	struct block b;
	assert_int_equal(block_parse(raw.p, raw.len, "mem", 0, &b), 0);
	struct block_iter it;
	block_iter_init(&it, &b, order, "mem", 0);

	size_t i = 0;
	for (block_iter_first(&it); block_iter_valid(&it);
	     block_iter_next(&it), i++)
		assert_entry(block_iter_key(&it), block_iter_value(&it),
			     &m.e[i]);
	assert_int_equal(i, m.n);
	assert_int_equal(block_iter_status(&it), 0);
	for (block_iter_last(&it); block_iter_valid(&it); block_iter_prev(&it))
		assert_entry(block_iter_key(&it), block_iter_value(&it),
			     &m.e[--i]);
	assert_int_equal(i, 0);

	/* exact seeks, prev/next from there, seek_for_prev */
	for (size_t j = 0; j < m.n; j++) {
		block_iter_seek(&it, ent_key(&m.e[j]));
		assert_true(block_iter_valid(&it));
		assert_entry(block_iter_key(&it), block_iter_value(&it),
			     &m.e[j]);
		block_iter_prev(&it);
		if (j == 0) {
			assert_false(block_iter_valid(&it));
		} else {
			assert_true(block_iter_valid(&it));
			assert_entry(block_iter_key(&it), block_iter_value(&it),
				     &m.e[j - 1]);
			block_iter_next(&it);
			assert_entry(block_iter_key(&it), block_iter_value(&it),
				     &m.e[j]);
		}
		block_iter_seek_for_prev(&it, ent_key(&m.e[j]));
		assert_entry(block_iter_key(&it), block_iter_value(&it),
			     &m.e[j]);
	}
	if (order == BLOCK_ORDER_IKEY) {
		/* between-key targets: user key 3i+2 */
		for (uint32_t u = 0; u < n; u++) {
			uint8_t t[48];
			size_t ul = make_ukey(t, 3 * u + 2);
			ikey_put_trailer(t + ul, IKEY_SEQ_MAX, IKEY_KIND_SEEK);
			struct slice ts = slice_make(t, ul + 8);
			size_t lo = model_lower(&m, ts);
			block_iter_seek(&it, ts);
			if (lo == m.n) {
				assert_false(block_iter_valid(&it));
			} else {
				assert_true(block_iter_valid(&it));
				assert_true(slice_eq(block_iter_key(&it),
						     ent_key(&m.e[lo])));
			}
			block_iter_seek_for_prev(&it, ts);
			assert_true(block_iter_valid(&it));
			assert_true(slice_eq(block_iter_key(&it),
					     ent_key(&m.e[lo - 1])));
		}
		/* before everything / after everything */
		uint8_t t[16] = "a";
		ikey_put_trailer(t + 1, 1, IKEY_PUT);
		block_iter_seek_for_prev(&it, slice_make(t, 9));
		assert_false(block_iter_valid(&it));
		block_iter_seek(&it, slice_make(t, 9));
		assert_true(slice_eq(block_iter_key(&it), ent_key(&m.e[0])));
		t[0] = 'z';
		block_iter_seek(&it, slice_make(t, 9));
		assert_false(block_iter_valid(&it));
		block_iter_seek_for_prev(&it, slice_make(t, 9));
		assert_true(
			slice_eq(block_iter_key(&it), ent_key(&m.e[m.n - 1])));
	}
	assert_int_equal(block_iter_status(&it), 0);
	block_iter_release(&it);
	block_builder_release(&bb);
	free(m.e);
}

static void test_block_roundtrip(void **state)
{
	check_block(BLOCK_ORDER_IKEY, 16, 300);
	check_block(BLOCK_ORDER_IKEY, 1, 100);
	check_block(BLOCK_ORDER_IKEY, 3, 257);
	check_block(BLOCK_ORDER_BYTES, 4, 90);
}

static void test_block_empty_and_reuse(void **state)
{
	struct block_builder bb;
	struct slice raw;
	struct block b;
	struct block_iter it;
	block_builder_init(&bb, 16);
	assert_true(block_builder_empty(&bb));
	assert_int_equal(block_builder_finish(&bb, &raw), 0);
	assert_int_equal(raw.len, 8);
	assert_int_equal(block_parse(raw.p, raw.len, "mem", 0, &b), 0);
	block_iter_init(&it, &b, BLOCK_ORDER_BYTES, "mem", 0);
	block_iter_first(&it);
	assert_false(block_iter_valid(&it));
	block_iter_last(&it);
	assert_false(block_iter_valid(&it));
	block_iter_seek(&it, slice_make("x", 1));
	assert_false(block_iter_valid(&it));
	assert_int_equal(block_iter_status(&it), 0);

	block_builder_reset(&bb);
	assert_int_equal(block_builder_add(&bb, slice_make("abc", 3),
					   slice_make("1", 1)),
			 0);
	assert_int_equal(
		block_builder_add(&bb, slice_make("abd", 3), slice_make("", 0)),
		0);
	assert_int_equal(block_builder_finish(&bb, &raw), 0);
	assert_int_equal(block_parse(raw.p, raw.len, "mem", 0, &b), 0);
	block_iter_reset(&it, &b, 0);
	block_iter_last(&it);
	assert_true(slice_eq(block_iter_key(&it), slice_make("abd", 3)));
	assert_int_equal(block_iter_value(&it).len, 0);
	block_iter_prev(&it);
	assert_true(slice_eq(block_iter_key(&it), slice_make("abc", 3)));
	block_iter_release(&it);
	block_builder_release(&bb);
}

/* Random mutations of a valid block: every outcome is fine except a crash
 * or an out-of-bounds read (ASan). */
static void test_block_garbage(void **state)
{
	struct block_builder bb;
	struct model m;
	struct slice raw;
	uint8_t val[256];
	uint64_t s = 99;
	model_build(&m, 60, 3);
	block_builder_init(&bb, 4);
	for (size_t i = 0; i < m.n; i++) {
		make_value(&m.e[i], val);
		assert_int_equal(
			block_builder_add(&bb, ent_key(&m.e[i]),
					  slice_make(val, m.e[i].vlen)),
			0);
	}
	assert_int_equal(block_builder_finish(&bb, &raw), 0);
	for (int round = 0; round < 3000; round++) {
		size_t len = raw.len;
		if (round % 3 == 0)
			len = rng_next(&s) % raw.len;
		uint8_t *c = malloc(len ? len : 1);
		memcpy(c, raw.p, len);
		for (int f = 0; f < 3 && len; f++)
			c[rng_next(&s) % len] ^=
				(uint8_t)(1 + rng_next(&s) % 255);
		struct block b;
		if (block_parse(c, len, "mem", 0, &b) == 0) {
			struct block_iter it;
			block_iter_init(&it, &b, BLOCK_ORDER_IKEY, "mem", 0);
			size_t steps = 0;
			for (block_iter_first(&it);
			     block_iter_valid(&it) && steps < 1000;
			     block_iter_next(&it))
				steps++;
			for (block_iter_last(&it);
			     block_iter_valid(&it) && steps < 2000;
			     block_iter_prev(&it))
				steps++;
			block_iter_seek(&it, ent_key(&m.e[m.n / 2]));
			block_iter_seek_for_prev(&it, ent_key(&m.e[m.n / 3]));
			int st = block_iter_status(&it);
			assert_true(st == 0 || st == LSM_E_CORRUPT);
			block_iter_release(&it);
		}
		free(c);
	}
	block_builder_release(&bb);
	free(m.e);
}

/* ---- whole files ---- */

struct got {
	const struct ent *want;
	int calls;
};

static int get_cb(void *ctx, struct slice ikey, struct slice value)
{
	struct got *g = ctx;
	g->calls++;
	assert_entry(ikey, value, g->want);
	return 0;
}

static int get_copy_cb(void *ctx, struct slice ikey, struct slice value)
{
	uint8_t *k = ctx;
	memcpy(k, ikey.p, ikey.len < 40 ? ikey.len : 40);
	return 0;
}

static void check_reader(struct sst_reader *r, const struct model *m,
			 uint64_t seed)
{
	/* gets: newest version of each user key, then each exact version */
	for (size_t i = 0; i < m->n; i++) {
		const struct ent *e = &m->e[i];
		bool neg = true;
		struct got g = {e, 0};
		assert_int_equal(sstr_get(r, ent_key(e), get_cb, &g, &neg), 1);
		assert_false(neg);
		assert_int_equal(g.calls, 1);
		if (i == 0 || !slice_eq(ikey_user(ent_key(&m->e[i - 1])),
					ikey_user(ent_key(e)))) {
			uint8_t t[48];
			struct slice u = ikey_user(ent_key(e));
			memcpy(t, u.p, u.len);
			ikey_put_trailer(t + u.len, IKEY_SEQ_MAX,
					 IKEY_KIND_SEEK);
			g.calls = 0;
			assert_int_equal(sstr_get(r, slice_make(t, u.len + 8),
						  get_cb, &g, NULL),
					 1);
			assert_int_equal(g.calls, 1);
		}
	}
	/* absent keys */
	size_t n_keys = (ikey_seq(ent_key(&m->e[m->n - 1])) - 100) / 4 + 1;
	int bloom_neg = 0;
	for (uint32_t u = 0; u < n_keys; u++) {
		uint8_t t[48], k[40];
		size_t ul = make_ukey(t, 3 * u + 2);
		ikey_put_trailer(t + ul, IKEY_SEQ_MAX, IKEY_KIND_SEEK);
		bool neg = false;
		assert_int_equal(sstr_get(r, slice_make(t, ul + 8), get_copy_cb,
					  k, &neg),
				 0);
		bloom_neg += neg;
	}
	if (sstr_props(r)->filter_bytes)
		assert_true(bloom_neg > (int)n_keys * 95 / 100);
	else
		assert_int_equal(bloom_neg, 0);

	/* full scans */
	struct ikv_iter *it = sstr_iter_new(r, true);
	assert_non_null(it);
	size_t i = 0;
	for (iter_first(it); iter_valid(it); iter_next(it), i++)
		assert_entry(iter_key(it), iter_value(it), &m->e[i]);
	assert_int_equal(iter_status(it), 0);
	assert_int_equal(i, m->n);
	for (iter_last(it); iter_valid(it); iter_prev(it))
		assert_entry(iter_key(it), iter_value(it), &m->e[--i]);
	assert_int_equal(i, 0);
	assert_int_equal(iter_status(it), 0);

	/* random seeks (present and absent targets) with a few steps */
	uint64_t s = seed;
	for (int q = 0; q < 3000; q++) {
		uint8_t t[48];
		uint32_t u = (uint32_t)(rng_next(&s) % (3 * n_keys + 3));
		size_t ul = make_ukey(t, u);
		uint64_t seq = rng_next(&s) % (4 * n_keys + 200);
		ikey_put_trailer(t + ul, seq, IKEY_KIND_SEEK);
		struct slice ts = slice_make(t, ul + 8);
		size_t lo = model_lower(m, ts);
		iter_seek(it, ts);
		for (size_t j = lo; j < lo + 3 && j < m->n; j++) {
			assert_true(iter_valid(it));
			assert_entry(iter_key(it), iter_value(it), &m->e[j]);
			iter_next(it);
		}
		if (lo + 3 >= m->n)
			assert_false(iter_valid(it));
		/* last entry <= t */
		size_t le = lo < m->n && ikey_cmp(ent_key(&m->e[lo]), ts) == 0
				    ? lo + 1
				    : lo;
		iter_seek_for_prev(it, ts);
		for (size_t j = le; j > 0 && j + 3 > le; j--) {
			assert_true(iter_valid(it));
			assert_entry(iter_key(it), iter_value(it),
				     &m->e[j - 1]);
			iter_prev(it);
		}
		if (le < 3)
			assert_false(iter_valid(it));
		assert_int_equal(iter_status(it), 0);
	}
	iter_free(it);

	/* approximate offsets grow with the key */
	uint64_t a = sstr_approx_offset(r, ent_key(&m->e[0]));
	uint64_t b = sstr_approx_offset(r, ent_key(&m->e[m->n / 2]));
	uint64_t c = sstr_approx_offset(r, ent_key(&m->e[m->n - 1]));
	assert_true(a == 0 && a <= b && b <= c);
	if (m->n > 100)
		assert_true(a < b);
	assert_true(c < sstr_props(r)->data_bytes);
}

static void roundtrip(lsm_compression comp, size_t n_keys)
{
	char path[128];
	struct model m;
	struct sst_writer_opts o;
	struct sst_props wp;
	struct sst_reader *r = NULL;
	tmp_path(path, sizeof(path), "rt.sst");
	model_build(&m, n_keys, 11 + comp);
	sst_writer_opts_init(&o);
	o.compression = comp;
	o.time_lo = 1000;
	o.time_hi = 2000;
	write_model(path, &m, &o, &wp);
	assert_int_equal(wp.num_entries, m.n);
	assert_int_equal(wp.compression, comp);

	struct cache *c = cache_new(1 << 20, 2);
	assert_non_null(c);
	assert_int_equal(sstr_open(env_posix(), path, 1, c, true, &r), 0);
	const struct sst_props *p = sstr_props(r);
	assert_int_equal(p->num_entries, wp.num_entries);
	assert_int_equal(p->file_size, wp.file_size);
	assert_int_equal(p->data_bytes, wp.data_bytes);
	if (comp != LSM_COMPRESS_NONE)
		assert_true(p->data_bytes <
			    p->raw_key_bytes + p->raw_value_bytes);
	check_reader(r, &m, 5);
	assert_true(cache_hits(c) > 0);
	sstr_close(r);
	cache_free(c);

	/* without a cache, without checksum verification */
	assert_int_equal(sstr_open(env_posix(), path, 2, NULL, false, &r), 0);
	check_reader(r, &m, 6);
	sstr_close(r);
	sst_props_release(&wp);
	unlink(path);
	free(m.e);
}

static void test_sst_roundtrip_none(void **state)
{
	roundtrip(LSM_COMPRESS_NONE, 90000);
}

static void test_sst_roundtrip_lz4(void **state)
{
	roundtrip(LSM_COMPRESS_LZ4, 90000);
}

static void test_sst_roundtrip_zstd(void **state)
{
	roundtrip(LSM_COMPRESS_ZSTD, 90000);
}

static void test_sst_small_blocks(void **state)
{
	/* one entry per block and tiny files */
	char path[128];
	struct model m;
	struct sst_writer_opts o;
	struct sst_reader *r = NULL;
	tmp_path(path, sizeof(path), "small.sst");
	sst_writer_opts_init(&o);
	o.block_size = 1;
	o.bloom_bits_per_key = 0;
	model_build(&m, 300, 1);
	write_model(path, &m, &o, NULL);
	assert_int_equal(sstr_open(env_posix(), path, 3, NULL, true, &r), 0);
	assert_int_equal(sstr_props(r)->filter_bytes, 0);
	check_reader(r, &m, 2);
	sstr_close(r);
	free(m.e);

	model_build(&m, 1, 1);
	o.block_size = 4096;
	write_model(path, &m, &o, NULL);
	assert_int_equal(sstr_open(env_posix(), path, 3, NULL, true, &r), 0);
	check_reader(r, &m, 2);
	sstr_close(r);
	free(m.e);
	unlink(path);
}

static void test_sst_empty_file(void **state)
{
	char path[128];
	struct sst_writer *w;
	struct sst_writer_opts o;
	struct sst_props p;
	struct sst_reader *r = NULL;
	tmp_path(path, sizeof(path), "empty.sst");
	sst_writer_opts_init(&o);
	assert_int_equal(sstw_open(env_posix(), path, &o, &w), 0);
	assert_int_equal(sstw_finish(w, &p), 0);
	assert_null(p.smallest);
	assert_int_equal(sstr_open(env_posix(), path, 4, NULL, true, &r), 0);
	struct ikv_iter *it = sstr_iter_new(r, false);
	iter_first(it);
	assert_false(iter_valid(it));
	iter_last(it);
	assert_false(iter_valid(it));
	assert_int_equal(iter_status(it), 0);
	iter_free(it);
	uint8_t k[9] = "a";
	ikey_put_trailer(k + 1, 5, IKEY_PUT);
	assert_int_equal(sstr_get(r, slice_make(k, 9), get_copy_cb, k, NULL),
			 0);
	assert_int_equal(sstr_props(r)->num_entries, 0);
	sstr_close(r);
	sst_props_release(&p);
	unlink(path);
}

static void test_sst_rejects_misuse(void **state)
{
	char path[128];
	struct sst_writer *w;
	struct sst_writer_opts o;
	uint8_t a[16] = "b", b[16] = "a";
	tmp_path(path, sizeof(path), "misuse.sst");
	sst_writer_opts_init(&o);
	assert_int_equal(sstw_open(env_posix(), path, &o, &w), 0);
	ikey_put_trailer(a + 1, 5, IKEY_PUT);
	ikey_put_trailer(b + 1, 6, IKEY_PUT);
	assert_int_equal(sstw_add(w, slice_make(a, 9), slice_make("", 0)), 0);
	/* out of order, duplicate, wrong kind, too short */
	assert_int_equal(sstw_add(w, slice_make(b, 9), slice_make("", 0)),
			 -EINVAL);
	assert_int_equal(sstw_add(w, slice_make(a, 9), slice_make("", 0)),
			 -EINVAL);
	ikey_put_trailer(b + 1, 6, IKEY_RANGE_DELETE);
	b[0] = 'c';
	assert_int_equal(sstw_add(w, slice_make(b, 9), slice_make("", 0)),
			 -EINVAL);
	assert_int_equal(sstw_add(w, slice_make(b, 4), slice_make("", 0)),
			 -EINVAL);
	/* empty range */
	assert_int_equal(
		sstw_add_range_del(w, slice_make(b, 9), slice_make("c", 1)),
		-EINVAL);
	/* the writer is still usable */
	ikey_put_trailer(b + 1, 7, IKEY_PUT);
	assert_int_equal(sstw_add(w, slice_make(b, 9), slice_make("v", 1)), 0);
	sstw_abandon(w);
	unlink(path);
}

static void test_sst_range_tombs_and_props(void **state)
{
	char path[128];
	struct sst_writer *w;
	struct sst_writer_opts o;
	struct sst_props wp;
	struct sst_reader *r = NULL;
	struct model m;
	uint8_t val[256];
	tmp_path(path, sizeof(path), "rd.sst");
	sst_writer_opts_init(&o);
	o.compression = LSM_COMPRESS_ZSTD;
	o.time_lo = 111;
	o.time_hi = 999;
	model_build(&m, 500, 4);
	assert_int_equal(sstw_open(env_posix(), path, &o, &w), 0);
	/* tombstones: [key-i, key-i~) at seq 5000+i, plus two on one key */
	static const char *starts[] = {"aaa", "key-00000100", "key-00000100",
				       "zzz"};
	static const char *ends[] = {"abc", "key-00000200", "zzzz", "zzzzz"};
	uint64_t seqs[] = {5000, 7000, 6000, 10};
	for (int i = 0; i < 4; i++) {
		uint8_t k[32];
		size_t l = strlen(starts[i]);
		memcpy(k, starts[i], l);
		ikey_put_trailer(k + l, seqs[i], IKEY_RANGE_DELETE);
		assert_int_equal(sstw_add_range_del(
					 w, slice_make(k, l + 8),
					 slice_make(ends[i], strlen(ends[i]))),
				 0);
	}
	uint64_t n_del = 0, kb = 0, vb = 0;
	for (size_t i = 0; i < m.n; i++) {
		make_value(&m.e[i], val);
		assert_int_equal(sstw_add(w, ent_key(&m.e[i]),
					  slice_make(val, m.e[i].vlen)),
				 0);
		n_del += ikey_kind(ent_key(&m.e[i])) == IKEY_DELETE;
		kb += m.e[i].klen;
		vb += m.e[i].vlen;
	}
	assert_int_equal(sstw_num_entries(w), m.n + 4);
	assert_true(sstw_estimated_size(w) > 0);
	assert_int_equal(sstw_finish(w, &wp), 0);

	assert_int_equal(sstr_open(env_posix(), path, 9, NULL, true, &r), 0);
	const struct range_tomb *t;
	assert_int_equal(sstr_range_tombs(r, &t), 4);
	for (int i = 0; i < 4; i++) {
		assert_true(slice_eq(t[i].start,
				     slice_make(starts[i], strlen(starts[i]))));
		assert_true(slice_eq(t[i].end,
				     slice_make(ends[i], strlen(ends[i]))));
		assert_int_equal(t[i].seq, seqs[i]);
	}
	const struct sst_props *p = sstr_props(r);
	assert_int_equal(p->num_entries, m.n);
	assert_int_equal(p->num_deletions, n_del);
	assert_true(n_del > 0);
	assert_int_equal(p->num_range_deletions, 4);
	assert_int_equal(p->raw_key_bytes, kb);
	assert_int_equal(p->raw_value_bytes, vb);
	assert_int_equal(p->smallest_seq, 10);
	assert_int_equal(p->largest_seq, 7000);
	assert_int_equal(p->time_lo, 111);
	assert_int_equal(p->time_hi, 999);
	assert_int_equal(p->compression, LSM_COMPRESS_ZSTD);
	assert_int_equal(p->format_version, SST_FORMAT_VERSION);
	assert_true(p->index_bytes > 0 && p->filter_bytes > 0);
	assert_true(p->data_bytes + p->index_bytes + p->filter_bytes <
		    p->file_size);
	assert_true(slice_eq(slice_make(p->smallest, p->smallest_len),
			     ent_key(&m.e[0])));
	assert_true(slice_eq(slice_make(p->largest, p->largest_len),
			     ent_key(&m.e[m.n - 1])));
	assert_int_equal(p->rd_smallest_len, 3 + 8);
	assert_memory_equal(p->rd_smallest, "aaa", 3);
	assert_int_equal(ikey_seq(slice_make(p->rd_smallest, 11)), 5000);
	assert_true(slice_eq(slice_make(p->rd_largest, p->rd_largest_len),
			     slice_make("zzzzz", 5)));
	/* writer's props agree */
	assert_int_equal(wp.file_size, p->file_size);
	assert_int_equal(wp.num_range_deletions, 4);
	assert_int_equal(wp.rd_largest_len, 5);
	/* point data unaffected by the tombstones */
	check_reader(r, &m, 8);
	sstr_close(r);
	sst_props_release(&wp);
	unlink(path);
	free(m.e);
}

static void test_sst_block_cache(void **state)
{
	char path[128];
	struct model m;
	struct sst_writer_opts o;
	struct sst_reader *r = NULL;
	tmp_path(path, sizeof(path), "cache.sst");
	sst_writer_opts_init(&o);
	o.compression = LSM_COMPRESS_LZ4;
	model_build(&m, 5000, 4);
	write_model(path, &m, &o, NULL);
	struct cache *c = cache_new(64 << 20, 2);
	assert_int_equal(sstr_open(env_posix(), path, 77, c, true, &r), 0);
	/* a scan that does not fill the cache leaves it empty */
	struct ikv_iter *it = sstr_iter_new(r, false);
	size_t n = 0;
	for (iter_first(it); iter_valid(it); iter_next(it))
		n++;
	assert_int_equal(n, m.n);
	iter_free(it);
	assert_int_equal(cache_usage(c), 0);
	/* a filling scan caches every block; a second scan reads nothing */
	it = sstr_iter_new(r, true);
	for (iter_first(it); iter_valid(it); iter_next(it))
		;
	assert_true(cache_usage(c) > 0);
	uint64_t br = sstr_bytes_read(r), hits = cache_hits(c);
	for (iter_last(it); iter_valid(it); iter_prev(it))
		;
	assert_int_equal(iter_status(it), 0);
	iter_free(it);
	assert_int_equal(sstr_bytes_read(r), br);
	assert_true(cache_hits(c) > hits);
	sstr_close(r);
	cache_free(c);
	unlink(path);
	free(m.e);
}

/* ---- corruption ---- */

static uint8_t *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc((size_t)n);
	assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return b;
}

static void write_all(const char *path, const uint8_t *b, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(b, 1, len, f), len);
	fclose(f);
}

/* Opens the file and reads everything; every entry returned must be the
 * model's. Returns the first error (0 if none). */
static int read_everything(const char *path, const struct model *m, bool verify,
			   bool strict)
{
	struct sst_reader *r = NULL;
	int rc = sstr_open(env_posix(), path, 1, NULL, verify, &r);
	if (rc)
		return rc;
	struct ikv_iter *it = sstr_iter_new(r, false);
	size_t i = 0;
	for (iter_first(it); iter_valid(it); iter_next(it), i++)
		if (strict)
			assert_entry(iter_key(it), iter_value(it), &m->e[i]);
	rc = iter_status(it);
	if (!rc && strict)
		assert_int_equal(i, m->n);
	if (!rc) {
		size_t j = 0;
		for (iter_last(it); iter_valid(it) && j < 100000; iter_prev(it))
			j++;
		rc = iter_status(it);
	}
	iter_free(it);
	for (size_t k = 0; k < m->n && !rc; k += 7) {
		uint8_t buf[40];
		rc = sstr_get(r, ent_key(&m->e[k]), get_copy_cb, buf, NULL);
		if (rc == 1 && strict)
			assert_memory_equal(buf, m->e[k].key, m->e[k].klen);
		if (rc == 0 && strict)
			fail_msg("entry %zu lost", k);
		rc = rc == 1 ? 0 : rc;
	}
	size_t n_t;
	const struct range_tomb *t;
	n_t = sstr_range_tombs(r, &t);
	if (strict && !rc)
		assert_int_equal(n_t, 2);
	sstr_close(r);
	return rc;
}

static void test_sst_corruption(void **state)
{
	char path[128], bad[128];
	struct model m;
	struct sst_writer_opts o;
	struct sst_writer *w;
	uint8_t val[256];
	tmp_path(path, sizeof(path), "good.sst");
	tmp_path(bad, sizeof(bad), "bad.sst");
	for (int comp = 0; comp < 3; comp++) {
		sst_writer_opts_init(&o);
		o.compression = (lsm_compression)comp;
		o.block_size = 512;
		model_build(&m, 600, 21);
		assert_int_equal(sstw_open(env_posix(), path, &o, &w), 0);
		uint8_t k[16] = "key-0";
		ikey_put_trailer(k + 5, 9999, IKEY_RANGE_DELETE);
		assert_int_equal(sstw_add_range_del(w, slice_make(k, 13),
						    slice_make("key-1", 5)),
				 0);
		k[4] = '5';
		assert_int_equal(sstw_add_range_del(w, slice_make(k, 13),
						    slice_make("key-6", 5)),
				 0);
		for (size_t i = 0; i < m.n; i++) {
			make_value(&m.e[i], val);
			assert_int_equal(sstw_add(w, ent_key(&m.e[i]),
						  slice_make(val, m.e[i].vlen)),
					 0);
		}
		assert_int_equal(sstw_finish(w, NULL), 0);
		assert_int_equal(read_everything(path, &m, true, true), 0);

		size_t len;
		uint8_t *good = read_all(path, &len);
		uint8_t *c = malloc(len);
		uint64_t s = 1234 + (uint64_t)comp;
		for (int round = 0; round < 300; round++) {
			size_t pos = round < 64 ? len - 64 + (size_t)round
						: rng_next(&s) % len;
			memcpy(c, good, len);
			c[pos] ^= (uint8_t)(1 + rng_next(&s) % 255);
			write_all(bad, c, len);
			int rc = read_everything(bad, &m, true, true);
			if (rc != LSM_E_CORRUPT && rc != LSM_E_FORMAT)
				fail_msg("flip at %zu of %zu: rc %d", pos, len,
					 rc);
			/* without checksums: no crash, any outcome */
			rc = read_everything(bad, &m, false, false);
			assert_true(rc <= 0);
		}
		size_t cuts[] = {0,       1,        63,       64,     len / 3,
				 len / 2, len - 65, len - 64, len - 1};
		for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
			write_all(bad, good, cuts[i]);
			int rc = read_everything(bad, &m, true, true);
			if (rc != LSM_E_CORRUPT)
				fail_msg("cut at %zu of %zu: rc %d", cuts[i],
					 len, rc);
		}
		free(c);
		free(good);
		free(m.e);
	}
	/* a wrong version is a format error, not corruption */
	unlink(bad);
	unlink(path);
}

static void test_sst_footer_version(void **state)
{
	char path[128];
	struct sst_writer *w;
	struct sst_writer_opts o;
	struct sst_reader *r = NULL;
	tmp_path(path, sizeof(path), "ver.sst");
	sst_writer_opts_init(&o);
	assert_int_equal(sstw_open(env_posix(), path, &o, &w), 0);
	assert_int_equal(sstw_finish(w, NULL), 0);
	size_t len;
	uint8_t *b = read_all(path, &len);
	assert_int_equal(get_fixed64(b + len - 8), SST_MAGIC);
	put_fixed32(b + len - 16, 2);
	write_all(path, b, len);
	assert_int_equal(sstr_open(env_posix(), path, 1, NULL, true, &r),
			 LSM_E_FORMAT);
	assert_null(r);
	put_fixed32(b + len - 16, SST_FORMAT_VERSION);
	put_fixed32(b + len - 12, 4);
	write_all(path, b, len);
	assert_int_equal(sstr_open(env_posix(), path, 1, NULL, true, &r),
			 LSM_E_FORMAT);
	put_fixed32(b + len - 12, 0);
	b[len - 1] ^= 1;
	write_all(path, b, len);
	assert_int_equal(sstr_open(env_posix(), path, 1, NULL, true, &r),
			 LSM_E_CORRUPT);
	assert_non_null(strstr(lsm_errdetail(), "not an SST"));
	assert_non_null(strstr(lsm_errdetail(), path));
	free(b);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_block_roundtrip),
		cmocka_unit_test(test_block_empty_and_reuse),
		cmocka_unit_test(test_block_garbage),
		cmocka_unit_test(test_sst_roundtrip_none),
		cmocka_unit_test(test_sst_roundtrip_lz4),
		cmocka_unit_test(test_sst_roundtrip_zstd),
		cmocka_unit_test(test_sst_small_blocks),
		cmocka_unit_test(test_sst_empty_file),
		cmocka_unit_test(test_sst_rejects_misuse),
		cmocka_unit_test(test_sst_range_tombs_and_props),
		cmocka_unit_test(test_sst_block_cache),
		cmocka_unit_test(test_sst_corruption),
		cmocka_unit_test(test_sst_footer_version),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
