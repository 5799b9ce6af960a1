/*
 * test_sst.c - SST blocks, writer and reader: block round trips with
 * seek/seek_for_prev/prev across restarts, whole-file round trips under
 * each compression (gets, full scans both ways, random seeks), range
 * tombstones, properties, block cache use, and corruption (flipped bytes,
 * truncation) which must be reported, never crash or return wrong data.
 * Also the read-path helpers: the inlined key comparison against
 * ikey_cmp(), block iterators on a caller's key buffer, entry headers
 * with multi-byte varints, the one-pass block checksum against the
 * streaming one, the two-step uncompression, bloom probes with a
 * precomputed hash, and iterator readahead (each data byte read once by a
 * scan).
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
#include "sst/compress.h"
#include "sst/keycmp.h"
#include "sst/sst.h"
#include "sst/sst_format.h"
#include "sst/sst_int.h"
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

/* write_model(), then the file opened as number n, without a cache. */
static struct sst_reader *write_open(const char *path, const struct model *m,
				     const struct sst_writer_opts *o,
				     uint64_t n)
{
	struct sst_reader *r = NULL;
	write_model(path, m, o, NULL);
	assert_int_equal(sstr_open(env_posix(), path, n, NULL, true, &r), 0);
	return r;
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
	r = write_open(path, &m, &o, 3);
	assert_int_equal(sstr_props(r)->filter_bytes, 0);
	check_reader(r, &m, 2);
	sstr_close(r);
	free(m.e);

	model_build(&m, 1, 1);
	o.block_size = 4096;
	r = write_open(path, &m, &o, 3);
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

/* ---- read-path helpers ---- */

static int sign(int x)
{
	return (x > 0) - (x < 0);
}

/* ikey_cmp_fast() and bytes_cmp_fast() order exactly as ikey_cmp() and
 * slice_cmp(): random keys from a 3-letter alphabet (long shared prefixes,
 * every length from 0 to 20 user bytes, crossing the 8-byte words) with
 * random trailers, including equal user keys. */
static void test_keycmp_fast_matches_ikey_cmp(void **state)
{
	enum { N = 400 };
	static uint8_t keys[N][40];
	size_t lens[N];
	uint64_t s = 77;
	for (int i = 0; i < N; i++) {
		size_t ul = (size_t)(rng_next(&s) % 21);
		for (size_t j = 0; j < ul; j++)
			keys[i][j] = (uint8_t)("a\x80\xff"[rng_next(&s) % 3]);
		if (i % 5 == 1) { /* same user key as the previous one */
			ul = lens[i - 1] - 8;
			memcpy(keys[i], keys[i - 1], ul);
		}
		ikey_put_trailer(keys[i] + ul, rng_next(&s) % 4,
				 (unsigned)(rng_next(&s) % 2));
		lens[i] = ul + 8;
	}
	for (int i = 0; i < N; i++) {
		for (int j = 0; j < N; j++) {
			struct slice a = slice_make(keys[i], lens[i]);
			struct slice b = slice_make(keys[j], lens[j]);
			assert_int_equal(sign(ikey_cmp_fast(a, b)),
					 sign(ikey_cmp(a, b)));
			assert_int_equal(
				sign(bytes_cmp_fast(a.p, a.len, b.p, b.len)),
				sign(slice_cmp(a, b)));
		}
	}
}

/* Edge cases of the inlined comparison: user keys of 0..20 bytes that
 * are all 0x00, all 0xff, or one a prefix of the other, differing only in
 * their last byte or in the byte on either side of an 8-byte word edge
 * (0x7f against 0x80: an unsigned order), each with the smallest and the
 * largest trailers. Every pair agrees in sign with ikey_cmp(). */
static void test_keycmp_fast_edge_cases(void **state)
{
	enum { MAXK = 21 * 8 * 3 };
	static uint8_t keys[MAXK][40];
	static size_t lens[MAXK];
	const uint64_t trailers[] = {0, ikey_pack(1, IKEY_PUT),
				     ikey_pack(IKEY_SEQ_MAX, IKEY_SENTINEL)};
	size_t n = 0;
	for (size_t ul = 0; ul <= 20; ul++) {
		for (int shape = 0; shape < 8; shape++) {
			uint8_t u[24];
			memset(u, shape == 0 ? 0x00 : 0xff, sizeof(u));
			if (shape == 2 && ul)
				u[ul - 1] = 0xfe; /* last byte differs */
			if (shape == 3 && ul > 7)
				u[7] = 0x7f; /* last byte of word 0 */
			if (shape == 4 && ul > 8)
				u[8] = 0x80; /* first byte of word 1 */
			if (shape == 5 && ul > 8) {
				u[7] = 0x80;
				u[8] = 0x7f;
			}
			if (shape == 6)
				for (size_t j = 0; j < ul; j++)
					u[j] = (uint8_t)('a' + j % 3);
			if (shape == 7 && ul)
				u[0] = 0x00; /* differs in the first byte */
			for (size_t t = 0; t < 3; t++) {
				memcpy(keys[n], u, ul);
				put_fixed64(keys[n] + ul, trailers[t]);
				lens[n++] = ul + 8;
			}
		}
	}
	assert_int_equal(n, MAXK);
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < n; j++) {
			struct slice a = slice_make(keys[i], lens[i]);
			struct slice b = slice_make(keys[j], lens[j]);
			assert_int_equal(sign(ikey_cmp_fast(a, b)),
					 sign(ikey_cmp(a, b)));
			assert_int_equal(
				sign(bytes_cmp_fast(a.p, a.len, b.p, b.len)),
				sign(slice_cmp(a, b)));
			if (i == j)
				assert_int_equal(ikey_cmp_fast(a, b), 0);
		}
	}
	/* empty byte strings, including a NULL pointer */
	assert_int_equal(bytes_cmp_fast(NULL, 0, NULL, 0), 0);
	assert_int_equal(sign(bytes_cmp_fast(NULL, 0, keys[0], 1)), -1);
}

/*
 * Entries whose headers need multi-byte varints (keys and values of 128
 * bytes or more) mixed with short ones: the general header decoder, keys
 * growing past a small borrowed buffer, seeks (exact and between keys)
 * and prev at every position, with restart intervals 1, 3 and 16.
 */
static void test_block_long_entries(void **state)
{
	enum { N = 120 };
	static uint8_t keys[N][320];
	size_t klen[N], vlen[N];
	static uint8_t vals[N][400];
	for (size_t i = 0; i < N; i++) {
		size_t ul = (size_t)snprintf((char *)keys[i], 16, "k%05zu", i);
		size_t pad = (i * 53) % 290; /* 0..289 bytes of padding */
		memset(keys[i] + ul, (int)(0x80 + i % 0x80), pad);
		ul += pad;
		ikey_put_trailer(keys[i] + ul, 1000 - i, IKEY_PUT);
		klen[i] = ul + 8;
		vlen[i] = (i * 37) % 400;
		for (size_t j = 0; j < vlen[i]; j++)
			vals[i][j] = (uint8_t)(i + j);
	}
	int intervals[] = {1, 3, 16};
	for (int iv = 0; iv < 3; iv++) {
		struct block_builder bb;
		struct slice raw;
		struct block b;
		block_builder_init(&bb, intervals[iv]);
		for (size_t i = 0; i < N; i++)
			assert_int_equal(
				block_builder_add(&bb,
						  slice_make(keys[i], klen[i]),
						  slice_make(vals[i], vlen[i])),
				0);
		assert_int_equal(block_builder_finish(&bb, &raw), 0);
		assert_int_equal(block_parse(raw.p, raw.len, "mem", 0, &b), 0);
		for (int borrowed = 0; borrowed < 2; borrowed++) {
			uint8_t small[16];
			struct block_iter it;
			block_iter_init(&it, &b, BLOCK_ORDER_IKEY, "mem", 0);
			if (borrowed)
				block_iter_use_buffer(&it, small,
						      sizeof(small));
			size_t i = 0;
			for (block_iter_first(&it); block_iter_valid(&it);
			     block_iter_next(&it), i++) {
				assert_true(
					slice_eq(block_iter_key(&it),
						 slice_make(keys[i], klen[i])));
				assert_int_equal(block_iter_value(&it).len,
						 vlen[i]);
				assert_memory_equal(block_iter_value(&it).p,
						    vals[i], vlen[i]);
			}
			assert_int_equal(i, N);
			for (block_iter_last(&it); block_iter_valid(&it);
			     block_iter_prev(&it)) {
				i--;
				assert_true(
					slice_eq(block_iter_key(&it),
						 slice_make(keys[i], klen[i])));
			}
			assert_int_equal(i, 0);
			for (size_t j = 0; j < N; j++) {
				block_iter_seek(&it,
						slice_make(keys[j], klen[j]));
				assert_true(block_iter_valid(&it));
				assert_true(
					slice_eq(block_iter_key(&it),
						 slice_make(keys[j], klen[j])));
				block_iter_prev(&it);
				assert_int_equal(block_iter_valid(&it), j > 0);
				if (j > 0)
					assert_true(slice_eq(
						block_iter_key(&it),
						slice_make(keys[j - 1],
							   klen[j - 1])));
				/* "k%05zu" alone sorts right before key j */
				uint8_t t[24];
				size_t ul = (size_t)snprintf((char *)t, 16,
							     "k%05zu", j);
				ikey_put_trailer(t + ul, IKEY_SEQ_MAX,
						 IKEY_KIND_SEEK);
				block_iter_seek(&it, slice_make(t, ul + 8));
				assert_true(block_iter_valid(&it));
				assert_true(
					slice_eq(block_iter_key(&it),
						 slice_make(keys[j], klen[j])));
			}
			assert_int_equal(block_iter_status(&it), 0);
			block_iter_release(&it);
		}
		block_builder_release(&bb);
	}
}

/* The one-byte-varint header shortcut keeps the bounds checks: a header
 * whose key or value runs past the entry region, or whose shared prefix
 * exceeds the previous key, is corruption, not a read outside the block. */
static void test_block_short_header_bounds(void **state)
{
	/* entry 0: shared 0, unshared 9, value 1; entry 1 below */
	uint8_t blk[64];
	const uint8_t k0[9] = {'a', 1, 0, 0, 0, 0, 0, 0, 0};
	struct {
		uint8_t hdr[3];
		int corrupt;
	} cases[] = {
		{{0, 1, 1}, 0},  /* well formed: key "w", value "x" */
		{{0, 9, 9}, 1},  /* value runs past the data */
		{{0, 60, 0}, 1}, /* key runs past the data */
		{{12, 1, 0}, 1}, /* shared > previous key (9) */
		{{9, 0, 2}, 0},  /* same key, value fits exactly */
		{{9, 0, 3}, 1},  /* one byte too long */
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		size_t n = 0;
		blk[n++] = 0;
		blk[n++] = 9;
		blk[n++] = 1;
		memcpy(blk + n, k0, 9);
		n += 9;
		blk[n++] = 'v';
		memcpy(blk + n, cases[c].hdr, 3);
		n += 3;
		blk[n++] = 'w'; /* two bytes after the second header */
		blk[n++] = 'x';
		put_fixed32(blk + n, 0); /* one restart at 0 */
		n += 4;
		put_fixed32(blk + n, 1);
		n += 4;
		struct block b;
		struct block_iter it;
		assert_int_equal(block_parse(blk, n, "mem", 0, &b), 0);
		block_iter_init(&it, &b, BLOCK_ORDER_BYTES, "mem", 0);
		block_iter_first(&it);
		assert_true(block_iter_valid(&it));
		block_iter_next(&it);
		if (cases[c].corrupt) {
			assert_false(block_iter_valid(&it));
			assert_int_equal(block_iter_status(&it), LSM_E_CORRUPT);
		} else {
			assert_true(block_iter_valid(&it));
			assert_int_equal(block_iter_status(&it), 0);
		}
		block_iter_release(&it);
	}
}

/* The reader's one-pass checksum over block + type byte equals the
 * writer's streaming one, on either side of XXH3's size classes. */
static void test_stored_block_checksum(void **state)
{
	static uint8_t buf[5000];
	uint64_t s = 5;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rng_next(&s);
	size_t sizes[] = {0,   1,   15,   16,   17,   127,  128,  129, 239,
			  240, 241, 1023, 1024, 1025, 4095, 4096, 4999};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		for (uint8_t type = 0; type < 3; type++) {
			uint8_t save = buf[n];
			buf[n] = type;
			assert_int_equal(sst_stored_block_checksum(buf, n),
					 sst_block_checksum(buf, n, type));
			buf[n] = save;
		}
	}
}

/* sst_uncompressed_len() + sst_uncompress_to() decode what sst_compress()
 * made, and refuse a wrong length, an unknown type, a truncated or
 * damaged stream, as sst_uncompress() does. */
static void test_uncompress_steps(void **state)
{
	uint8_t raw[6000];
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)("abcabd"[i % 6] + (i % 97 == 0));
	int types[] = {SST_BLOCK_LZ4, SST_BLOCK_ZSTD};
	for (int t = 0; t < 2; t++) {
		uint8_t *buf = NULL;
		size_t cap = 0, len = 0;
		assert_int_equal(sst_compress(types[t], 3,
					      slice_make(raw, sizeof(raw)),
					      &buf, &cap, &len),
				 1);
		size_t rl = 0;
		struct slice st;
		assert_int_equal(sst_uncompressed_len(types[t],
						      slice_make(buf, len),
						      "mem", 0, &rl, &st),
				 0);
		assert_int_equal(rl, sizeof(raw));
		uint8_t *out = malloc(rl);
		assert_int_equal(
			sst_uncompress_to(types[t], st, "mem", 0, out, rl), 0);
		assert_memory_equal(out, raw, rl);
		/* one byte short of / past the real length */
		assert_int_equal(
			sst_uncompress_to(types[t], st, "mem", 0, out, rl - 1),
			LSM_E_CORRUPT);
		uint8_t *big = malloc(rl + 1);
		assert_int_equal(
			sst_uncompress_to(types[t], st, "mem", 0, big, rl + 1),
			LSM_E_CORRUPT);
		free(big);
		/* truncated stream */
		assert_int_equal(sst_uncompress_to(types[t],
						   slice_make(st.p, st.len / 2),
						   "mem", 0, out, rl),
				 LSM_E_CORRUPT);
		/* unknown type at either step */
		assert_int_equal(sst_uncompressed_len(7, slice_make(buf, len),
						      "mem", 0, &rl, &st),
				 LSM_E_CORRUPT);
		assert_int_equal(sst_uncompress_to(7, st, "mem", 0, out, rl),
				 LSM_E_CORRUPT);
		/* an empty or over-long length prefix */
		assert_int_equal(sst_uncompressed_len(types[t],
						      slice_make(buf, 0), "mem",
						      0, &rl, &st),
				 LSM_E_CORRUPT);
		uint8_t huge[16];
		uint8_t *e =
			put_varint64(huge, (uint64_t)SST_MAX_BLOCK_RAW + 1);
		assert_int_equal(sst_uncompressed_len(
					 types[t],
					 slice_make(huge, (size_t)(e - huge)),
					 "mem", 0, &rl, &st),
				 LSM_E_CORRUPT);
		free(out);
		free(buf);
	}
}

/* A block iterator on a caller's small key buffer: keys longer than it
 * move to the heap, the results are those of a normal iterator, and
 * release frees only what the iterator allocated (ASan checks). */
static void test_block_borrowed_key_buffer(void **state)
{
	struct block_builder bb;
	struct model m;
	struct slice raw;
	struct block b;
	uint8_t val[256];
	model_build(&m, 200, 3);
	block_builder_init(&bb, 4);
	for (size_t i = 0; i < m.n; i++) {
		make_value(&m.e[i], val);
		assert_int_equal(
			block_builder_add(&bb, ent_key(&m.e[i]),
					  slice_make(val, m.e[i].vlen)),
			0);
	}
	assert_int_equal(block_builder_finish(&bb, &raw), 0);
	assert_int_equal(block_parse(raw.p, raw.len, "mem", 0, &b), 0);
	size_t caps[] = {8, 64};
	for (size_t c = 0; c < 2; c++) {
		uint8_t small[64];
		struct block_iter it;
		block_iter_init(&it, &b, BLOCK_ORDER_IKEY, "mem", 0);
		block_iter_use_buffer(&it, small, caps[c]);
		size_t i = 0;
		for (block_iter_first(&it); block_iter_valid(&it);
		     block_iter_next(&it), i++)
			assert_entry(block_iter_key(&it), block_iter_value(&it),
				     &m.e[i]);
		assert_int_equal(i, m.n);
		/* keys here are 20-24 bytes: the 64-byte buffer kept them */
		if (caps[c] == 64)
			assert_ptr_equal(block_iter_key(&it).p, small);
		block_iter_seek(&it, ent_key(&m.e[m.n / 2]));
		assert_entry(block_iter_key(&it), block_iter_value(&it),
			     &m.e[m.n / 2]);
		block_iter_prev(&it);
		assert_entry(block_iter_key(&it), block_iter_value(&it),
			     &m.e[m.n / 2 - 1]);
		assert_int_equal(block_iter_status(&it), 0);
		block_iter_release(&it);
	}
	block_builder_release(&bb);
	free(m.e);
}

/*
 * block_iter_next()'s inline path (block.h) against the entries added:
 * keys short and long (one- and two-byte varints), shared prefixes that
 * end inside a word, a key buffer that must grow mid-scan (borrowed 8
 * bytes, then the heap), and a last entry with no value whose key suffix
 * ends right before the restart array. The block is copied to an
 * allocation of its exact size, so ASan sees any read past it.
 */
static void test_block_inline_next(void **state)
{
	uint8_t keys[40][200], val[300];
	size_t klen[40], vlen[40];
	struct block_builder bb;
	struct slice raw;
	struct block b;
	block_builder_init(&bb, 16);
	for (size_t i = 0; i < 40; i++) {
		/* 20 common bytes, the index (ascending), a tail of 0..12 or
		 * 130 bytes: shared prefixes end inside a word, suffixes
		 * take one- and two-byte varints */
		size_t ul = 24 + (i % 9 == 4 ? 130 : i % 13);
		char digits[8];
		memset(keys[i], 'q', ul);
		memset(keys[i], 'A', 20);
		snprintf(digits, sizeof(digits), "%04zu", i);
		memcpy(keys[i] + 20, digits, 4);
		ikey_put_trailer(keys[i] + ul, 1000 - i, IKEY_PUT);
		klen[i] = ul + IKEY_TRAILER;
		vlen[i] = i == 39 ? 0 : i % 7 == 3 ? 200 : i % 11;
		for (size_t j = 0; j < vlen[i]; j++)
			val[j] = (uint8_t)(i + j);
		assert_int_equal(block_builder_add(&bb,
						   slice_make(keys[i], klen[i]),
						   slice_make(val, vlen[i])),
				 0);
	}
	assert_int_equal(block_builder_finish(&bb, &raw), 0);
	uint8_t *exact = malloc(raw.len);
	assert_non_null(exact);
	memcpy(exact, raw.p, raw.len);
	assert_int_equal(block_parse(exact, raw.len, "mem", 0, &b), 0);
	for (int borrowed = 0; borrowed < 2; borrowed++) {
		uint8_t small[8];
		struct block_iter it;
		block_iter_init(&it, &b, BLOCK_ORDER_IKEY, "mem", 0);
		if (borrowed)
			block_iter_use_buffer(&it, small, sizeof(small));
		size_t i = 0;
		for (block_iter_first(&it); block_iter_valid(&it);
		     block_iter_next(&it), i++) {
			struct slice v = block_iter_value(&it);
			assert_true(i < 40);
			assert_true(slice_eq(block_iter_key(&it),
					     slice_make(keys[i], klen[i])));
			assert_int_equal(v.len, vlen[i]);
			for (size_t j = 0; j < v.len; j++)
				assert_int_equal(v.p[j], (uint8_t)(i + j));
		}
		assert_int_equal(i, 40);
		assert_int_equal(block_iter_status(&it), 0);
		/* the end is sticky; next and prev around a seek */
		block_iter_next(&it);
		assert_false(block_iter_valid(&it));
		block_iter_seek(&it, slice_make(keys[30], klen[30]));
		block_iter_next(&it);
		assert_true(slice_eq(block_iter_key(&it),
				     slice_make(keys[31], klen[31])));
		block_iter_prev(&it);
		assert_true(slice_eq(block_iter_key(&it),
				     slice_make(keys[30], klen[30])));
		block_iter_release(&it);
	}
	/* a bad shared length is still caught through the fallback: entry 1
	 * claims one byte more than key 0 has */
	size_t off1 = 3 + klen[0] + vlen[0];
	assert_true(exact[off1] < 0x80);
	exact[off1] = (uint8_t)(klen[0] + 1);
	struct block_iter it;
	block_iter_init(&it, &b, BLOCK_ORDER_IKEY, "mem", 0);
	block_iter_first(&it);
	assert_true(block_iter_valid(&it));
	block_iter_next(&it);
	assert_false(block_iter_valid(&it));
	assert_int_equal(block_iter_status(&it), LSM_E_CORRUPT);
	block_iter_release(&it);
	free(exact);
	block_builder_release(&bb);
}

/*
 * sstr_iter_step() (the level iterator's direct step) agrees with
 * iter_next() + iter_valid() + iter_key() + iter_value() over a file of
 * many small blocks, also after a direction switch and a seek, and
 * reports the end the same way.
 */
static void test_sst_iter_step(void **state)
{
	char path[128];
	struct model m;
	struct sst_writer_opts o;
	struct sst_reader *r = NULL;
	tmp_path(path, sizeof(path), "step.sst");
	model_build(&m, 600, 21);
	sst_writer_opts_init(&o);
	o.block_size = 200;
	o.compression = LSM_COMPRESS_LZ4;
	r = write_open(path, &m, &o, 1);
	struct ikv_iter *it = sstr_iter_new(r, false);
	assert_non_null(it);
	struct slice k, v;
	size_t i = 0;
	iter_first(it);
	assert_true(iter_valid(it));
	assert_entry(iter_key(it), iter_value(it), &m.e[0]);
	while (sstr_iter_step(it, &k, &v)) {
		i++;
		assert_true(i < m.n);
		assert_entry(k, v, &m.e[i]);
		assert_true(slice_eq(k, iter_key(it)));
		assert_true(slice_eq(v, iter_value(it)));
		if (i == m.n / 3) { /* back one, then on again */
			iter_prev(it);
			assert_entry(iter_key(it), iter_value(it), &m.e[i - 1]);
			assert_true(sstr_iter_step(it, &k, &v));
			assert_entry(k, v, &m.e[i]);
		}
	}
	assert_int_equal(i, m.n - 1);
	assert_false(iter_valid(it));
	assert_int_equal(iter_status(it), 0);
	iter_seek(it, ent_key(&m.e[m.n / 2]));
	assert_true(sstr_iter_step(it, &k, &v));
	assert_entry(k, v, &m.e[m.n / 2 + 1]);
	iter_free(it);
	sstr_close(r);
	unlink(path);
	free(m.e);
}

/*
 * Readahead: a full scan without a cache reads every byte of the data
 * region exactly once (windows are reused, never overlap and stop at the
 * data region's end), and returns every entry; a scan that jumps around
 * (seeks) still sees the right entries. Point lookups with a precomputed
 * hash answer as sstr_get does.
 */
static void test_sst_readahead_scan(void **state)
{
	char path[128];
	struct model m;
	struct sst_writer_opts o;
	struct sst_reader *r = NULL;
	tmp_path(path, sizeof(path), "ra.sst");
	model_build(&m, 40000, 9);
	for (int comp = 0; comp < 2; comp++) {
		sst_writer_opts_init(&o);
		o.block_size = 512; /* ~2,500 blocks: windows of many blocks */
		o.compression = comp ? LSM_COMPRESS_LZ4 : LSM_COMPRESS_NONE;
		r = write_open(path, &m, &o, 5);
		uint64_t opened = sstr_bytes_read(r);
		struct ikv_iter *it = sstr_iter_new(r, false);
		size_t i = 0;
		for (iter_first(it); iter_valid(it); iter_next(it), i++)
			assert_entry(iter_key(it), iter_value(it), &m.e[i]);
		assert_int_equal(iter_status(it), 0);
		assert_int_equal(i, m.n);
		assert_int_equal(sstr_bytes_read(r) - opened,
				 sstr_props(r)->data_bytes);
		/* jumps: seek, then a few steps forward */
		uint64_t s = 3;
		for (int q = 0; q < 300; q++) {
			size_t j = (size_t)(rng_next(&s) % m.n);
			iter_seek(it, ent_key(&m.e[j]));
			for (size_t k = j; k < j + 40 && k < m.n; k++) {
				assert_true(iter_valid(it));
				assert_entry(iter_key(it), iter_value(it),
					     &m.e[k]);
				iter_next(it);
			}
		}
		assert_int_equal(iter_status(it), 0);
		iter_free(it);
		for (size_t k = 0; k < m.n; k += 13) {
			struct got g = {&m.e[k], 0};
			struct slice ik = ent_key(&m.e[k]);
			uint64_t h = sstr_key_hash(ikey_user(ik));
			assert_int_equal(
				sstr_get_hashed(r, ik, h, get_cb, &g, NULL), 1);
			assert_int_equal(g.calls, 1);
		}
		sstr_close(r);
	}
	unlink(path);
	free(m.e);
}

/* Bloom probes with a precomputed hash answer exactly as those that hash
 * the key themselves, for present and absent keys, and sstr_get_hashed()
 * as sstr_get() (found entry, bloom-negative flag); a file without a
 * filter answers "maybe" to every hash. */
static void test_sst_hashed_bloom_probe(void **state)
{
	char path[128];
	struct model m;
	struct sst_writer_opts o;
	struct sst_reader *r = NULL;
	tmp_path(path, sizeof(path), "bh.sst");
	model_build(&m, 3000, 4);
	for (int bits = 0; bits < 2; bits++) {
		sst_writer_opts_init(&o);
		o.bloom_bits_per_key = bits ? 10 : 0;
		r = write_open(path, &m, &o, 6);
		int negatives = 0;
		for (uint32_t u = 0; u < 2 * 3000; u++) {
			uint8_t t[48], k[40];
			/* 3i+1 present, 3i+2 absent */
			size_t ul = make_ukey(t, 3 * (u / 2) + 1 + u % 2);
			struct slice uk = slice_make(t, ul);
			uint64_t h = sstr_key_hash(uk);
			bool may = sstr_may_contain_hash(r, h);
			assert_int_equal(may, sstr_may_contain(r, uk));
			if (u % 2 == 0 || !bits)
				assert_true(may);
			negatives += !may;
			ikey_put_trailer(t + ul, IKEY_SEQ_MAX, IKEY_KIND_SEEK);
			struct slice lk = slice_make(t, ul + 8);
			bool n1 = false, n2 = true;
			memset(k, 0, sizeof(k));
			int r1 = sstr_get(r, lk, get_copy_cb, k, &n1);
			uint8_t k2[40];
			memset(k2, 0, sizeof(k2));
			int r2 =
				sstr_get_hashed(r, lk, h, get_copy_cb, k2, &n2);
			assert_int_equal(r1, r2);
			assert_int_equal(n1, n2);
			assert_int_equal(n1, !may);
			assert_memory_equal(k, k2, sizeof(k));
			assert_int_equal(r1, u % 2 == 0);
		}
		if (bits)
			assert_true(negatives > 3000 * 95 / 100);
		else
			assert_int_equal(negatives, 0);
		sstr_close(r);
	}
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
		cmocka_unit_test(test_keycmp_fast_matches_ikey_cmp),
		cmocka_unit_test(test_keycmp_fast_edge_cases),
		cmocka_unit_test(test_block_long_entries),
		cmocka_unit_test(test_block_short_header_bounds),
		cmocka_unit_test(test_stored_block_checksum),
		cmocka_unit_test(test_uncompress_steps),
		cmocka_unit_test(test_sst_hashed_bloom_probe),
		cmocka_unit_test(test_block_borrowed_key_buffer),
		cmocka_unit_test(test_block_inline_next),
		cmocka_unit_test(test_sst_iter_step),
		cmocka_unit_test(test_sst_readahead_scan),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
