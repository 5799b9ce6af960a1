/*
 * test_model.c - the whole engine against an in-memory reference model.
 *
 * What and why: unit tests check each module alone; this test drives the
 * public API (lsm.h) with long random sequences of writes, reads,
 * iterators, snapshots, flushes, compactions and reopens, and compares
 * every answer with a model that is simple enough to be obviously right.
 * Options are tiny (64 KiB memtables and files, L0 trigger 2) so that the
 * data moves through memtables, L0 and several levels all the time.
 *
 * The model: the key space is a fixed, sorted table of distinct keys
 * (1..24 bytes, shared prefixes, some 0x00/0xff bytes). The model state is
 * an array indexed by key rank: slot i says whether key i is live and, if
 * so, the length and generation number of its value. Values are never
 * stored: value bytes are a pure function of (key rank, generation,
 * length), so a snapshot of the model is a memcpy of the slot array and a
 * value read from the engine can be checked without the model
 * (self-validating values, used by the concurrent readers).
 *
 * Invariants checked:
 *  1. lsm_get/lsm_get_into at "now" or at any live snapshot return exactly
 *     the model's value at that time, or LSM_E_NOTFOUND.
 *  2. Iterators (with or without bounds and snapshots, any mix of
 *     first/last/seek/seek_for_prev/next/prev) visit exactly the model's
 *     live keys in the view, in order, with the right values; writes made
 *     while an iterator is open are invisible to it.
 *  3. Nothing changes across flush, compaction and close+reopen.
 *  3a. Named snapshots (lsm_snapshot_create) read, through handles from
 *     lsm_snapshot_open, exactly the model as it was at their creation,
 *     across flushes, compactions and reopens, until deleted; their ids
 *     go 1, 2, 3... and the list matches the model's.
 *  4. With 4 writers on disjoint key ranges and 2 readers running at once,
 *     readers only ever see well-formed values and ordered keys, snapshot
 *     reads repeat, and the final state equals the union of the writers'
 *     models.
 *
 * On a mismatch the test prints the seed, the operation index and the key
 * (escaped), and fails. Seeds are fixed; LSM_TEST_SEED adds one more,
 * LSM_TEST_SCALE=n divides the number of operations by n, and
 * LSM_TEST_FILTER=pattern runs only the matching tests. Stores live in
 * LSM_TEST_DIR, else /dev/shm, else TMPDIR or /tmp.
 *
 * Thread-safety: each test owns its context; the threaded part gives each
 * writer a disjoint range of model slots and reports failures through its
 * own thread result (cmocka assertions are used only on the main thread).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lsm.h"
#include "testutil.h"

#define MAX_KEY 24
#define MAX_SNAPS 5
#define MAX_NAMED 4
#define BIG_VALUE 5120
#define MAX_VALUE (BIG_VALUE + 64)

/* ---- random numbers (splitmix64; one state per user, no globals) ---- */

/* uniform in [0, n) for n > 0 */
static bool chance(uint64_t *s, unsigned per_million)
{
	return rnd_below(s, 1000000) < per_million;
}

/* ---- the key table ---- */

struct keytab {
	size_t n;
	uint8_t (*k)[MAX_KEY];
	uint8_t *len;
};

static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
	size_t m = alen < blen ? alen : blen;
	int c = memcmp(a, b, m);
	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

struct rawkey {
	uint8_t k[MAX_KEY];
	uint8_t len;
};

static int rawkey_cmp(const void *a, const void *b)
{
	const struct rawkey *x = a, *y = b;
	return key_cmp(x->k, x->len, y->k, y->len);
}

static void gen_key(uint64_t *rs, struct rawkey *out)
{
	static const char *const prefixes[] = {
		"",           "a", "ab", "abc/",     "user/",    "user/0001/",
		"user/0002/", "k", "zz", "\xff\xff", "\x00\x01",
	};
	static const size_t plen[] = {0, 1, 2, 4, 5, 10, 10, 1, 2, 2, 2};
	static const char alpha[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	size_t p = rnd_below(rs, sizeof(plen) / sizeof(plen[0]));
	size_t total = 1 + rnd_below(rs, MAX_KEY);
	if (total < plen[p])
		total = plen[p] > 0 ? plen[p] : 1;
	memcpy(out->k, prefixes[p], plen[p]);
	for (size_t i = plen[p]; i < total; i++) {
		uint64_t r = rnd_below(rs, 100);
		if (r == 0)
			out->k[i] = 0x00;
		else if (r == 1)
			out->k[i] = 0xff;
		else if (r == 2)
			out->k[i] = 0x80;
		else
			out->k[i] = (uint8_t)alpha[rnd_below(rs, 36)];
	}
	out->len = (uint8_t)total;
}

static void keytab_build(struct keytab *kt, uint64_t seed, size_t n)
{
	uint64_t rs = seed ^ 0x6b65797321ull;
	size_t cap = n * 2 + 64, have = 0;
	struct rawkey *raw = malloc(cap * sizeof(*raw));
	assert_non_null(raw);
	while (have < n) {
		while (have < cap)
			gen_key(&rs, &raw[have++]);
		qsort(raw, have, sizeof(*raw), rawkey_cmp);
		size_t u = 0;
		for (size_t i = 0; i < have; i++)
			if (u == 0 || rawkey_cmp(&raw[u - 1], &raw[i]) != 0)
				raw[u++] = raw[i];
		have = u;
		if (have < n)
			continue;
		/* keep a random subset of exactly n, still sorted */
		uint8_t *drop = calloc(have, 1);
		assert_non_null(drop);
		for (size_t d = have - n; d > 0;) {
			size_t i = (size_t)rnd_below(&rs, have);
			if (!drop[i]) {
				drop[i] = 1;
				d--;
			}
		}
		size_t w = 0;
		for (size_t i = 0; i < have; i++)
			if (!drop[i])
				raw[w++] = raw[i];
		free(drop);
		have = w;
	}
	kt->n = n;
	kt->k = malloc(n * MAX_KEY);
	kt->len = malloc(n);
	assert_non_null(kt->k);
	assert_non_null(kt->len);
	for (size_t i = 0; i < n; i++) {
		memcpy(kt->k[i], raw[i].k, MAX_KEY);
		kt->len[i] = raw[i].len;
	}
	free(raw);
}

static void keytab_free(struct keytab *kt)
{
	free(kt->k);
	free(kt->len);
}

/* First rank whose key is >= key (kt->n if none). */
static size_t keytab_lower_bound(const struct keytab *kt, const void *key,
				 size_t len)
{
	size_t lo = 0, hi = kt->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (key_cmp(kt->k[mid], kt->len[mid], key, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool keytab_has(const struct keytab *kt, const void *key, size_t len)
{
	size_t r = keytab_lower_bound(kt, key, len);
	return r < kt->n && key_cmp(kt->k[r], kt->len[r], key, len) == 0;
}

/* ---- values: a pure function of (rank, generation, length) ---- */

struct mslot {
	uint64_t vgen; /* 0: absent */
	uint32_t vlen;
	uint32_t pad;
};

static void fill_value(uint8_t *buf, size_t len, uint32_t kidx, uint64_t vgen)
{
	size_t i = 0;
	uint64_t s = vgen * 0x2545f4914f6cdd1dull + kidx;
	if (len >= 12) {
		for (int b = 0; b < 4; b++)
			buf[b] = (uint8_t)(kidx >> (8 * b));
		for (int b = 0; b < 8; b++)
			buf[4 + b] = (uint8_t)(vgen >> (8 * b));
		i = 12;
	}
	while (i < len) {
		uint64_t r = rnd(&s);
		for (int b = 0; b < 8 && i < len; b++, i++)
			buf[i] = (uint8_t)(r >> (8 * b));
	}
}

/* For concurrent readers: a value of >= 12 bytes names its key and
 * generation; check it is exactly what a writer of that key produced.
 * Returns false if the value is malformed. */
static bool value_self_check(const uint8_t *v, size_t len, uint32_t kidx)
{
	if (len < 12)
		return true;
	if (len > MAX_VALUE)
		return false;
	uint32_t k = 0;
	uint64_t g = 0;
	for (int b = 0; b < 4; b++)
		k |= (uint32_t)v[b] << (8 * b);
	for (int b = 0; b < 8; b++)
		g |= (uint64_t)v[4 + b] << (8 * b);
	if (k != kidx || g == 0)
		return false;
	uint8_t exp[MAX_VALUE];
	fill_value(exp, len, kidx, g);
	return memcmp(exp, v, len) == 0;
}

/* ---- the single-threaded model test ---- */

struct snap {
	lsm_snapshot *s;
	struct mslot *state; /* copy of the model when acquired */
	uint64_t taken_at;   /* op index */
};

/* A named snapshot of the model: its name, id and the model's state when
 * it was created (it lives across reopens; no handle is kept). */
struct named {
	char name[48];
	uint64_t id;
	struct mslot *state;
};

struct mctx {
	uint64_t seed;
	uint64_t rs;
	uint64_t op; /* current operation index */
	char dir[512];
	lsm_options opts;
	lsm_db *db;
	struct keytab kt;
	struct mslot *model;
	struct snap snaps[MAX_SNAPS];
	int n_snaps;
	struct named named[MAX_NAMED]; /* oldest first */
	int n_named;
	uint64_t last_named_id; /* ids are 1, 2, ... never reused */
	uint64_t next_vgen;
	lsm_batch *batch;
	/* workload knobs, drawn from the seed */
	unsigned big_ppm;  /* values of 5 KiB, per million puts */
	unsigned sync_ppm; /* LSM_SYNC writes */
	uint8_t vbuf[MAX_VALUE];
	uint8_t ebuf[MAX_VALUE];
	/* counts, printed at the end */
	uint64_t n_put, n_del, n_range, n_batch, n_get, n_iter, n_iter_steps,
		n_snap, n_flush, n_compact, n_reopen, n_named_ops;
};

static void key_repr(char *out, size_t cap, const uint8_t *k, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 5 < cap; i++) {
		if (k[i] >= 0x21 && k[i] < 0x7f && k[i] != '\\')
			out[o++] = (char)k[i];
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x",
					      k[i]);
	}
	out[o] = '\0';
}

#define MFAIL(c, key, klen, ...)                                            \
	do {                                                                \
		char kr_[MAX_KEY * 4 + 8 + 2 * MAX_KEY];                    \
		key_repr(kr_, sizeof(kr_), (const uint8_t *)(key), (klen)); \
		print_error("MODEL MISMATCH seed=%llu op=%llu key='%s': ",  \
			    (unsigned long long)(c)->seed,                  \
			    (unsigned long long)(c)->op, kr_);              \
		print_error(__VA_ARGS__);                                   \
		print_error("\n");                                          \
		fail();                                                     \
	} while (0)

#define MCHECK_RC(c, rc, what)                                                 \
	do {                                                                   \
		if ((rc) != 0) {                                               \
			print_error("seed=%llu op=%llu: %s failed: %d %s "     \
				    "(%s)\n",                                  \
				    (unsigned long long)(c)->seed,             \
				    (unsigned long long)(c)->op, (what), (rc), \
				    lsm_strerror(rc), lsm_errdetail());        \
			fail();                                                \
		}                                                              \
	} while (0)

static void mctx_open(struct mctx *c)
{
	int rc = lsm_open(c->dir, &c->opts, &c->db);
	MCHECK_RC(c, rc, "lsm_open");
	assert_non_null(c->db);
}

static void small_options(lsm_options *o)
{
	lsm_options_init(o);
	o->write_buffer_size = 64 << 10;
	o->target_file_size = 64 << 10;
	o->max_bytes_for_level_base = 256 << 10;
	o->level0_compaction_trigger = 2;
	o->block_size = 1024;
	o->block_cache_bytes = 256 << 10;
	o->max_open_files = 64;
}

static uint32_t pick_vlen(struct mctx *c)
{
	if (chance(&c->rs, c->big_ppm))
		return (uint32_t)(BIG_VALUE - 32 + rnd_below(&c->rs, 64));
	uint64_t r = rnd_below(&c->rs, 100);
	if (r < 5)
		return 0;
	if (r < 30)
		return (uint32_t)rnd_below(&c->rs, 16);
	return (uint32_t)rnd_below(&c->rs, 301);
}

static int write_flags(struct mctx *c)
{
	return chance(&c->rs, c->sync_ppm) ? LSM_SYNC : 0;
}

static size_t pick_rank(struct mctx *c)
{
	/* skew toward a hot set so keys get many versions */
	if (rnd_below(&c->rs, 4) == 0)
		return (size_t)rnd_below(&c->rs, c->kt.n < 64 ? c->kt.n : 64) *
		       (c->kt.n / 64 ? c->kt.n / 64 : 1) % c->kt.n;
	return (size_t)rnd_below(&c->rs, c->kt.n);
}

/* A probe key: a table key, a key between table keys, or random bytes. */
static size_t pick_probe(struct mctx *c, uint8_t *buf)
{
	size_t r = (size_t)rnd_below(&c->rs, c->kt.n);
	size_t len = c->kt.len[r];
	memcpy(buf, c->kt.k[r], len);
	switch (rnd_below(&c->rs, 6)) {
	case 0:
	case 1:
	case 2:
		return len; /* exact */
	case 3:             /* just after key r */
		buf[len] = 0x00;
		return len + 1;
	case 4: /* shortened */
		return len > 1 ? len - 1 - (size_t)rnd_below(&c->rs, len - 1)
			       : 0;
	default: {
		struct rawkey rk;
		gen_key(&c->rs, &rk);
		memcpy(buf, rk.k, rk.len);
		return rk.len;
	}
	}
}

/* Draws a range [s, e) with s < e; returns false if it could not. */
static bool pick_range(struct mctx *c, uint8_t *s, size_t *slen, uint8_t *e,
		       size_t *elen)
{
	for (int tries = 0; tries < 8; tries++) {
		/* mostly short ranges: wide ones would empty the store */
		if (rnd_below(&c->rs, 40) != 0) {
			/* a short range of table keys */
			size_t a = (size_t)rnd_below(&c->rs, c->kt.n);
			size_t w = 1 + (size_t)rnd_below(
					       &c->rs,
					       rnd_below(&c->rs, 10) == 0 ? 400
									  : 20);
			size_t b = a + w;
			memcpy(s, c->kt.k[a], c->kt.len[a]);
			*slen = c->kt.len[a];
			if (b >= c->kt.n) {
				memset(e, 0xff, MAX_KEY);
				*elen = MAX_KEY;
			} else {
				memcpy(e, c->kt.k[b], c->kt.len[b]);
				*elen = c->kt.len[b];
			}
		} else {
			*slen = pick_probe(c, s);
			*elen = pick_probe(c, e);
		}
		int cmp = key_cmp(s, *slen, e, *elen);
		if (cmp < 0)
			return true;
		if (cmp > 0) {
			uint8_t t[MAX_KEY + 1];
			size_t tl = *slen;
			memcpy(t, s, tl);
			memcpy(s, e, *elen);
			*slen = *elen;
			memcpy(e, t, tl);
			*elen = tl;
			return true;
		}
	}
	return false;
}

static void model_put(struct mctx *c, size_t r, uint32_t vlen, uint64_t vgen)
{
	c->model[r].vgen = vgen;
	c->model[r].vlen = vlen;
}

static void model_del_range(struct mslot *m, const struct keytab *kt,
			    const uint8_t *s, size_t slen, const uint8_t *e,
			    size_t elen)
{
	size_t lo = keytab_lower_bound(kt, s, slen);
	size_t hi = keytab_lower_bound(kt, e, elen);
	for (size_t i = lo; i < hi; i++)
		m[i].vgen = 0;
}

static void do_put(struct mctx *c)
{
	size_t r = pick_rank(c);
	uint32_t vlen = pick_vlen(c);
	uint64_t g = c->next_vgen++;
	fill_value(c->vbuf, vlen, (uint32_t)r, g);
	int rc = lsm_put(c->db, c->kt.k[r], c->kt.len[r], c->vbuf, vlen,
			 write_flags(c));
	MCHECK_RC(c, rc, "lsm_put");
	model_put(c, r, vlen, g);
	c->n_put++;
}

static void do_delete(struct mctx *c)
{
	size_t r = pick_rank(c);
	int rc = lsm_delete(c->db, c->kt.k[r], c->kt.len[r], write_flags(c));
	MCHECK_RC(c, rc, "lsm_delete");
	c->model[r].vgen = 0;
	c->n_del++;
}

static void do_delete_range(struct mctx *c)
{
	uint8_t s[MAX_KEY + 1], e[MAX_KEY + 1];
	size_t slen, elen;
	if (!pick_range(c, s, &slen, e, &elen))
		return;
	int rc = lsm_delete_range(c->db, s, slen, e, elen, write_flags(c));
	MCHECK_RC(c, rc, "lsm_delete_range");
	model_del_range(c->model, &c->kt, s, slen, e, elen);
	c->n_range++;
}

struct bop {
	int kind; /* 0 put, 1 delete, 2 delete range */
	size_t r;
	uint32_t vlen;
	uint64_t vgen;
	uint8_t s[MAX_KEY + 1], e[MAX_KEY + 1];
	size_t slen, elen;
};

static void do_batch(struct mctx *c)
{
	struct bop ops[40];
	size_t n = 1 + (size_t)rnd_below(&c->rs, 40);
	int rc;
	lsm_batch_clear(c->batch);
	assert_int_equal(lsm_batch_count(c->batch), 0);
	size_t hot = pick_rank(c);
	for (size_t i = 0; i < n; i++) {
		struct bop *b = &ops[i];
		uint64_t k = rnd_below(&c->rs, 100);
		/* the same key several times in one batch: order matters */
		b->r = rnd_below(&c->rs, 4) == 0 ? hot : pick_rank(c);
		if (k < 65) {
			b->kind = 0;
			b->vlen = pick_vlen(c);
			b->vgen = c->next_vgen++;
			fill_value(c->vbuf, b->vlen, (uint32_t)b->r, b->vgen);
			rc = lsm_batch_put(c->batch, c->kt.k[b->r],
					   c->kt.len[b->r], c->vbuf, b->vlen);
		} else if (k < 92) {
			b->kind = 1;
			rc = lsm_batch_delete(c->batch, c->kt.k[b->r],
					      c->kt.len[b->r]);
		} else {
			b->kind = 2;
			if (!pick_range(c, b->s, &b->slen, b->e, &b->elen)) {
				b->kind = 1;
				rc = lsm_batch_delete(c->batch, c->kt.k[b->r],
						      c->kt.len[b->r]);
			} else {
				rc = lsm_batch_delete_range(
					c->batch, b->s, b->slen, b->e, b->elen);
			}
		}
		MCHECK_RC(c, rc, "lsm_batch_*");
	}
	assert_int_equal(lsm_batch_count(c->batch), (uint32_t)n);
	rc = lsm_write(c->db, c->batch, write_flags(c));
	MCHECK_RC(c, rc, "lsm_write");
	for (size_t i = 0; i < n; i++) {
		struct bop *b = &ops[i];
		if (b->kind == 0)
			model_put(c, b->r, b->vlen, b->vgen);
		else if (b->kind == 1)
			c->model[b->r].vgen = 0;
		else
			model_del_range(c->model, &c->kt, b->s, b->slen, b->e,
					b->elen);
	}
	c->n_batch++;
}

static void check_get_rank(struct mctx *c, const struct snap *sn, size_t r)
{
	const struct mslot *m = sn ? &sn->state[r] : &c->model[r];
	const lsm_snapshot *s = sn ? sn->s : NULL;
	const uint8_t *key = c->kt.k[r];
	size_t klen = c->kt.len[r];
	int rc;
	if (rnd_below(&c->rs, 4) == 0) {
		/* lsm_get_into with a random, often too small, buffer */
		size_t cap = (size_t)rnd_below(&c->rs, 320);
		size_t vlen = (size_t)-1;
		memset(c->vbuf, 0xa5, cap + 1);
		rc = lsm_get_into(c->db, s, key, klen, c->vbuf, cap, &vlen);
		if (m->vgen == 0) {
			if (rc != LSM_E_NOTFOUND)
				MFAIL(c, key, klen,
				      "get_into%s: expected NOTFOUND, got %d "
				      "(len %zu)",
				      sn ? " at snapshot" : "", rc, vlen);
			return;
		}
		if (rc != 0)
			MFAIL(c, key, klen,
			      "get_into%s: expected value, got %d",
			      sn ? " at snapshot" : "", rc);
		if (vlen != m->vlen)
			MFAIL(c, key, klen, "get_into: length %zu, expected %u",
			      vlen, m->vlen);
		fill_value(c->ebuf, m->vlen, (uint32_t)r, m->vgen);
		size_t n = cap < vlen ? cap : vlen;
		if (memcmp(c->ebuf, c->vbuf, n) != 0)
			MFAIL(c, key, klen, "get_into: wrong bytes");
		if (c->vbuf[cap] != 0xa5)
			MFAIL(c, key, klen, "get_into wrote past cap %zu", cap);
		return;
	}
	void *v = NULL;
	size_t vlen = 0;
	rc = lsm_get(c->db, s, key, klen, &v, &vlen);
	if (m->vgen == 0) {
		if (rc != LSM_E_NOTFOUND)
			MFAIL(c, key, klen,
			      "get%s: expected NOTFOUND, got %d (len %zu)",
			      sn ? " at snapshot" : "", rc, rc == 0 ? vlen : 0);
		return;
	}
	if (rc != 0)
		MFAIL(c, key, klen,
		      "get%s: expected %u-byte value gen %llu, "
		      "got %d %s",
		      sn ? " at snapshot" : "", m->vlen,
		      (unsigned long long)m->vgen, rc, lsm_strerror(rc));
	fill_value(c->ebuf, m->vlen, (uint32_t)r, m->vgen);
	bool ok =
		vlen == m->vlen && (vlen == 0 || memcmp(v, c->ebuf, vlen) == 0);
	uint64_t got_gen = 0;
	if (vlen >= 12)
		for (int b = 0; b < 8; b++)
			got_gen |= (uint64_t)((uint8_t *)v)[4 + b] << (8 * b);
	lsm_free(v);
	if (!ok)
		MFAIL(c, key, klen,
		      "get%s: wrong value: len %zu gen %llu, expected len %u "
		      "gen %llu",
		      sn ? " at snapshot" : "", vlen,
		      (unsigned long long)got_gen, m->vlen,
		      (unsigned long long)m->vgen);
}

/* ---- named snapshots ---- */

static void named_remove_at(struct mctx *c, int i)
{
	free(c->named[i].state);
	memmove(&c->named[i], &c->named[i + 1],
		(size_t)(c->n_named - i - 1) * sizeof(c->named[0]));
	c->n_named--;
}

/* A read handle on named snapshot i, as a struct snap for the checks. */
static void named_open(struct mctx *c, int i, struct snap *out)
{
	int rc = lsm_snapshot_open(c->db, c->named[i].name, &out->s);
	MCHECK_RC(c, rc, "lsm_snapshot_open");
	out->state = c->named[i].state;
	out->taken_at = c->op;
}

static void do_named_create(struct mctx *c)
{
	lsm_snapshot_info info;
	struct named *n;
	int rc;
	if (c->n_named == MAX_NAMED) {
		/* a taken name */
		int i = (int)rnd_below(&c->rs, (uint64_t)c->n_named);
		rc = lsm_snapshot_create(c->db, c->named[i].name, NULL);
		if (rc != LSM_E_EXISTS)
			MFAIL(c, "", 0, "create of taken name %s: %d",
			      c->named[i].name, rc);
		return;
	}
	n = &c->named[c->n_named];
	/* random bytes (no NUL), then a counter to keep names new */
	size_t len = (size_t)rnd_below(&c->rs, 24);
	for (size_t j = 0; j < len; j++)
		n->name[j] = (char)(1 + rnd_below(&c->rs, 255));
	snprintf(n->name + len, sizeof(n->name) - len, "#%llu",
		 (unsigned long long)c->last_named_id + 1);
	n->state = malloc(c->kt.n * sizeof(*n->state));
	assert_non_null(n->state);
	rc = lsm_snapshot_create(c->db, n->name, &info);
	if (rc != 0) {
		free(n->state);
		MCHECK_RC(c, rc, "lsm_snapshot_create");
	}
	memcpy(n->state, c->model, c->kt.n * sizeof(*n->state));
	n->id = info.id;
	c->n_named++;
	c->n_named_ops++;
	if (info.id != c->last_named_id + 1 || strcmp(info.name, n->name))
		MFAIL(c, "", 0, "named snapshot id %llu, expected %llu",
		      (unsigned long long)info.id,
		      (unsigned long long)c->last_named_id + 1);
	c->last_named_id = info.id;
}

static void do_named_delete(struct mctx *c)
{
	int rc;
	if (c->n_named == 0) {
		rc = lsm_snapshot_delete(c->db, "no such snapshot");
		if (rc != LSM_E_NOTFOUND)
			MFAIL(c, "", 0, "delete of unknown name: %d", rc);
		return;
	}
	int i = (int)rnd_below(&c->rs, (uint64_t)c->n_named);
	rc = lsm_snapshot_delete(c->db, c->named[i].name);
	MCHECK_RC(c, rc, "lsm_snapshot_delete");
	named_remove_at(c, i);
	c->n_named_ops++;
}

/* The engine's list equals the model's: names and ids, oldest first. */
static void check_named_list(struct mctx *c)
{
	lsm_snapshot_info *a = NULL;
	size_t n = 0;
	int rc = lsm_snapshot_list(c->db, 0, &a, &n);
	MCHECK_RC(c, rc, "lsm_snapshot_list");
	bool ok = n == (size_t)c->n_named;
	for (size_t i = 0; ok && i < n; i++)
		ok = a[i].id == c->named[i].id &&
		     strcmp(a[i].name, c->named[i].name) == 0;
	lsm_free(a);
	if (!ok)
		MFAIL(c, "", 0, "snapshot list: %zu entries, model has %d", n,
		      c->n_named);
}

static void do_get_at(struct mctx *c, const struct snap *sn)
{
	if (rnd_below(&c->rs, 10) == 0) {
		/* a key outside the table: never present */
		uint8_t k[MAX_KEY + 1];
		size_t klen = pick_probe(c, k);
		if (klen == 0 || keytab_has(&c->kt, k, klen))
			return;
		void *v = NULL;
		size_t vlen = 0;
		int rc = lsm_get(c->db, sn ? sn->s : NULL, k, klen, &v, &vlen);
		if (rc == 0)
			lsm_free(v);
		if (rc != LSM_E_NOTFOUND)
			MFAIL(c, k, klen, "get of a never-written key: %d", rc);
		return;
	}
	check_get_rank(c, sn, pick_rank(c));
	c->n_get++;
}

static void do_get(struct mctx *c)
{
	struct snap named;
	if (c->n_named > 0 && rnd_below(&c->rs, 6) == 0) {
		int i = (int)rnd_below(&c->rs, (uint64_t)c->n_named);
		named_open(c, i, &named);
		if (rnd_below(&c->rs, 50) == 0) {
			/* deleted while a handle is open: the handle stays
			 * good, through a flush too */
			struct mslot *keep = c->named[i].state;
			c->named[i].state = NULL;
			MCHECK_RC(c,
				  lsm_snapshot_delete(c->db, c->named[i].name),
				  "lsm_snapshot_delete");
			named_remove_at(c, i);
			MCHECK_RC(c, lsm_flush(c->db), "lsm_flush");
			named.state = keep;
			for (int j = 0; j < 20; j++)
				do_get_at(c, &named);
			free(keep);
		} else {
			do_get_at(c, &named);
		}
		lsm_snapshot_release(c->db, named.s);
		return;
	}
	const struct snap *sn = NULL;
	if (c->n_snaps > 0 && rnd_below(&c->rs, 3) == 0)
		sn = &c->snaps[rnd_below(&c->rs, (uint64_t)c->n_snaps)];
	do_get_at(c, sn);
}

/* ---- iterators ---- */

struct iview {
	const struct mslot *m;
	size_t lo, hi; /* ranks in the bounds: [lo, hi) */
};

/* next live rank >= r in the view, or SIZE_MAX */
static size_t view_fwd(const struct iview *v, size_t r)
{
	if (r < v->lo)
		r = v->lo;
	for (; r < v->hi; r++)
		if (v->m[r].vgen != 0)
			return r;
	return SIZE_MAX;
}

/* previous live rank <= r in the view (r may be SIZE_MAX-ish: clamp) */
static size_t view_back(const struct iview *v, size_t r_plus_1)
{
	size_t r = r_plus_1 > v->hi ? v->hi : r_plus_1;
	while (r > v->lo) {
		r--;
		if (v->m[r].vgen != 0)
			return r;
	}
	return SIZE_MAX;
}

static void check_iter_at(struct mctx *c, lsm_iter *it, const struct iview *v,
			  size_t exp, const char *how)
{
	bool valid = lsm_iter_valid(it);
	int st = lsm_iter_status(it);
	if (st != 0)
		MFAIL(c, "", 0, "iterator status %d (%s) after %s", st,
		      lsm_strerror(st), how);
	if (exp == SIZE_MAX) {
		if (valid) {
			size_t kl;
			const void *k = lsm_iter_key(it, &kl);
			MFAIL(c, k, kl,
			      "iterator valid after %s, expected the end", how);
		}
		return;
	}
	if (!valid)
		MFAIL(c, c->kt.k[exp], c->kt.len[exp],
		      "iterator invalid after %s, expected this key", how);
	size_t kl = 0, vl = 0;
	const void *k = lsm_iter_key(it, &kl);
	const void *val = lsm_iter_value(it, &vl);
	if (key_cmp(k, kl, c->kt.k[exp], c->kt.len[exp]) != 0) {
		char want[MAX_KEY * 4 + 1];
		key_repr(want, sizeof(want), c->kt.k[exp], c->kt.len[exp]);
		MFAIL(c, k, kl, "iterator at this key after %s, expected '%s'",
		      how, want);
	}
	const struct mslot *m = &v->m[exp];
	fill_value(c->ebuf, m->vlen, (uint32_t)exp, m->vgen);
	if (vl != m->vlen || (vl > 0 && memcmp(val, c->ebuf, vl) != 0))
		MFAIL(c, k, kl,
		      "iterator value after %s: len %zu, expected len %u gen "
		      "%llu",
		      how, vl, m->vlen, (unsigned long long)m->vgen);
}

static void do_iter(struct mctx *c, bool full_scan)
{
	lsm_iter_options io;
	lsm_iter_options_init(&io);
	struct iview v = {.m = c->model, .lo = 0, .hi = c->kt.n};
	const struct snap *sn = NULL;
	struct mslot *own = NULL; /* frozen copy when we write meanwhile */
	uint8_t lb[MAX_KEY + 1], ub[MAX_KEY + 1];
	size_t lbl = 0, ubl = 0;
	int rc;

	struct snap named = {.s = NULL};
	if (!full_scan && c->n_named > 0 && rnd_below(&c->rs, 6) == 0) {
		named_open(c, (int)rnd_below(&c->rs, (uint64_t)c->n_named),
			   &named);
		sn = &named;
		io.snapshot = sn->s;
		v.m = sn->state;
	} else if (!full_scan && c->n_snaps > 0 && rnd_below(&c->rs, 3) == 0) {
		sn = &c->snaps[rnd_below(&c->rs, (uint64_t)c->n_snaps)];
		io.snapshot = sn->s;
		v.m = sn->state;
	}
	if (!full_scan) {
		uint64_t b = rnd_below(&c->rs, 4);
		if (b == 1 || b == 3) {
			lbl = pick_probe(c, lb);
			io.lower = lb;
			io.lower_len = lbl;
			v.lo = keytab_lower_bound(&c->kt, lb, lbl);
		}
		if (b == 2 || b == 3) {
			ubl = pick_probe(c, ub);
			if (b == 3 && key_cmp(lb, lbl, ub, ubl) > 0) {
				/* keep lower <= upper */
				io.upper = lb;
				io.upper_len = lbl;
				io.lower = ub;
				io.lower_len = ubl;
				v.lo = keytab_lower_bound(&c->kt, ub, ubl);
				v.hi = keytab_lower_bound(&c->kt, lb, lbl);
			} else {
				io.upper = ub;
				io.upper_len = ubl;
				v.hi = keytab_lower_bound(&c->kt, ub, ubl);
			}
		}
	}
	io.fill_cache = rnd_below(&c->rs, 2) == 0;
	bool write_meanwhile = !full_scan && rnd_below(&c->rs, 10) == 0;
	if (write_meanwhile && sn == NULL) {
		own = malloc(c->kt.n * sizeof(*own));
		assert_non_null(own);
		memcpy(own, c->model, c->kt.n * sizeof(*own));
		v.m = own;
	}
	lsm_iter *it = NULL;
	rc = lsm_iter_new(c->db, &io, &it);
	MCHECK_RC(c, rc, "lsm_iter_new");
	assert_non_null(it);
	c->n_iter++;

	if (full_scan) {
		size_t exp = view_fwd(&v, 0);
		lsm_iter_first(it);
		check_iter_at(c, it, &v, exp, "first (full scan)");
		while (exp != SIZE_MAX) {
			lsm_iter_next(it);
			exp = view_fwd(&v, exp + 1);
			check_iter_at(c, it, &v, exp, "next (full scan)");
			c->n_iter_steps++;
		}
		/* and backward */
		exp = view_back(&v, SIZE_MAX);
		lsm_iter_last(it);
		check_iter_at(c, it, &v, exp, "last (full scan)");
		while (exp != SIZE_MAX) {
			lsm_iter_prev(it);
			exp = view_back(&v, exp);
			check_iter_at(c, it, &v, exp, "prev (full scan)");
			c->n_iter_steps++;
		}
		lsm_iter_free(it);
		return;
	}

	size_t pos = SIZE_MAX;
	bool positioned = false;
	int steps = 1 + (int)rnd_below(&c->rs, 40);
	for (int s = 0; s < steps; s++) {
		if (write_meanwhile && rnd_below(&c->rs, 4) == 0) {
			if (rnd_below(&c->rs, 2))
				do_put(c);
			else
				do_delete_range(c);
		}
		if (!positioned || pos == SIZE_MAX ||
		    rnd_below(&c->rs, 10) == 0) {
			uint8_t k[MAX_KEY + 1];
			size_t kl;
			switch (rnd_below(&c->rs, 4)) {
			case 0:
				lsm_iter_first(it);
				pos = view_fwd(&v, 0);
				check_iter_at(c, it, &v, pos, "first");
				break;
			case 1:
				lsm_iter_last(it);
				pos = view_back(&v, SIZE_MAX);
				check_iter_at(c, it, &v, pos, "last");
				break;
			case 2:
				kl = pick_probe(c, k);
				lsm_iter_seek(it, k, kl);
				pos = view_fwd(
					&v, keytab_lower_bound(&c->kt, k, kl));
				check_iter_at(c, it, &v, pos, "seek");
				break;
			default: {
				kl = pick_probe(c, k);
				size_t lbr = keytab_lower_bound(&c->kt, k, kl);
				/* last key <= k: ranks < lbr, plus lbr if equal
				 */
				size_t upto = lbr;
				if (lbr < c->kt.n &&
				    key_cmp(c->kt.k[lbr], c->kt.len[lbr], k,
					    kl) == 0)
					upto = lbr + 1;
				lsm_iter_seek_for_prev(it, k, kl);
				pos = view_back(&v, upto);
				check_iter_at(c, it, &v, pos, "seek_for_prev");
				break;
			}
			}
			positioned = true;
		} else if (rnd_below(&c->rs, 2)) {
			lsm_iter_next(it);
			pos = view_fwd(&v, pos + 1);
			check_iter_at(c, it, &v, pos, "next");
		} else {
			lsm_iter_prev(it);
			pos = view_back(&v, pos);
			check_iter_at(c, it, &v, pos, "prev");
		}
		c->n_iter_steps++;
	}
	lsm_iter_free(it);
	if (named.s != NULL)
		lsm_snapshot_release(c->db, named.s);
	free(own);
}

/* ---- snapshots, flush, compaction, reopen ---- */

static void do_snap_acquire(struct mctx *c)
{
	if (c->n_snaps == MAX_SNAPS)
		return;
	struct snap *s = &c->snaps[c->n_snaps];
	s->state = malloc(c->kt.n * sizeof(*s->state));
	assert_non_null(s->state);
	int rc = lsm_snapshot_acquire(c->db, &s->s);
	MCHECK_RC(c, rc, "lsm_snapshot_acquire");
	assert_non_null(s->s);
	if (c->n_snaps > 0 &&
	    lsm_snapshot_seq(s->s) <
		    lsm_snapshot_seq(c->snaps[c->n_snaps - 1].s))
		MFAIL(c, "", 0, "snapshot sequence went backwards");
	memcpy(s->state, c->model, c->kt.n * sizeof(*s->state));
	s->taken_at = c->op;
	c->n_snaps++;
	c->n_snap++;
}

static void snap_release_at(struct mctx *c, int i)
{
	lsm_snapshot_release(c->db, c->snaps[i].s);
	free(c->snaps[i].state);
	c->snaps[i] = c->snaps[c->n_snaps - 1];
	c->n_snaps--;
}

static void release_all_snaps(struct mctx *c)
{
	while (c->n_snaps > 0)
		snap_release_at(c, c->n_snaps - 1);
}

/* Every step-th key of every named snapshot, by point reads. */
static void check_all_named(struct mctx *c, size_t step)
{
	for (int i = 0; i < c->n_named; i++) {
		struct snap named;
		named_open(c, i, &named);
		for (size_t r = (size_t)rnd_below(&c->rs, step); r < c->kt.n;
		     r += step)
			check_get_rank(c, &named, r);
		lsm_snapshot_release(c->db, named.s);
	}
}

/* Every key of every live snapshot, and of now, by point reads. */
static void check_all_gets(struct mctx *c)
{
	for (size_t r = 0; r < c->kt.n; r++)
		check_get_rank(c, NULL, r);
	for (int i = 0; i < c->n_snaps; i++)
		for (size_t r = 0; r < c->kt.n; r += 7)
			check_get_rank(c, &c->snaps[i], r);
	check_all_named(c, 7);
}

static void do_reopen(struct mctx *c)
{
	release_all_snaps(c);
	int rc = lsm_close(c->db);
	c->db = NULL;
	MCHECK_RC(c, rc, "lsm_close");
	mctx_open(c);
	c->n_reopen++;
	do_iter(c, true);
	check_named_list(c);
	check_all_named(c, 13);
}

/* Frees a context in any state: snapshots, handle, directory, memory. */
static void mctx_free(struct mctx *c)
{
	if (c->db != NULL) {
		release_all_snaps(c);
		lsm_close(c->db);
		c->db = NULL;
	}
	for (int i = 0; i < c->n_snaps; i++)
		free(c->snaps[i].state);
	while (c->n_named > 0)
		named_remove_at(c, c->n_named - 1);
	if (c->dir[0] != '\0')
		remove_test_dir(c->dir);
	lsm_batch_free(c->batch);
	free(c->model);
	keytab_free(&c->kt);
	free(c);
}

static void run_model(uint64_t seed, uint64_t n_ops, struct mctx **owner)
{
	struct mctx *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	*owner = c;
	c->seed = seed;
	c->rs = mix64(seed);
	c->next_vgen = 1;
	size_t n_keys = 2000 + (size_t)rnd_below(&c->rs, 18001);
	c->big_ppm = (unsigned)rnd_below(&c->rs, 20000);
	c->sync_ppm = 2000;
	keytab_build(&c->kt, seed, n_keys);
	c->model = calloc(n_keys, sizeof(*c->model));
	assert_non_null(c->model);
	c->batch = lsm_batch_new();
	assert_non_null(c->batch);
	make_test_dir(c->dir, sizeof(c->dir), "model");
	small_options(&c->opts);
	if (rnd_below(&c->rs, 2) == 0) {
		c->opts.compression[0] = LSM_COMPRESS_NONE;
		c->opts.compression[2] = LSM_COMPRESS_ZSTD;
	}
	if (rnd_below(&c->rs, 3) == 0)
		c->opts.bloom_bits_per_key = 0;
	print_message("model seed=%llu keys=%zu ops=%llu big=%u/1e6 dir=%s\n",
		      (unsigned long long)seed, n_keys,
		      (unsigned long long)n_ops, c->big_ppm, c->dir);
	mctx_open(c);

	/* phase weights, per million ops */
	for (c->op = 0; c->op < n_ops; c->op++) {
		uint64_t r = rnd_below(&c->rs, 1000000);
		if (r < 300000)
			do_put(c);
		else if (r < 380000)
			do_delete(c);
		else if (r < 390000)
			do_delete_range(c);
		else if (r < 450000)
			do_batch(c);
		else if (r < 820000)
			do_get(c);
		else if (r < 870000)
			do_iter(c, false);
		else if (r < 880000)
			do_snap_acquire(c);
		else if (r < 890000) {
			if (c->n_snaps > 0)
				snap_release_at(
					c,
					(int)rnd_below(&c->rs,
						       (uint64_t)c->n_snaps));
		} else if (r < 890500) {
			MCHECK_RC(c, lsm_flush(c->db), "lsm_flush");
			c->n_flush++;
		} else if (r < 890700) {
			uint8_t s[MAX_KEY + 1], e[MAX_KEY + 1];
			size_t sl, el;
			int rc;
			if (rnd_below(&c->rs, 3) == 0)
				rc = lsm_compact_range(c->db, NULL, 0, NULL, 0);
			else if (pick_range(c, s, &sl, e, &el))
				rc = lsm_compact_range(c->db, s, sl, e, el);
			else
				rc = 0;
			MCHECK_RC(c, rc, "lsm_compact_range");
			c->n_compact++;
		} else if (r < 890760) {
			do_reopen(c);
		} else if (r < 890800) {
			do_iter(c, true);
		} else if (r < 891300) {
			do_named_create(c);
		} else if (r < 891700) {
			do_named_delete(c);
		} else {
			do_get(c);
		}
	}
	check_all_gets(c);
	do_iter(c, true);
	do_reopen(c);
	check_all_gets(c);
	char *levels = NULL;
	if (lsm_property(c->db, "lsm.levels", &levels) == 0) {
		print_message("%s\n", levels);
		lsm_free(levels);
	}
	print_message(
		"seed=%llu done: put=%llu del=%llu range=%llu "
		"batch=%llu get=%llu iter=%llu steps=%llu snap=%llu "
		"flush=%llu compact=%llu reopen=%llu named=%llu\n",
		(unsigned long long)seed, (unsigned long long)c->n_put,
		(unsigned long long)c->n_del, (unsigned long long)c->n_range,
		(unsigned long long)c->n_batch, (unsigned long long)c->n_get,
		(unsigned long long)c->n_iter,
		(unsigned long long)c->n_iter_steps,
		(unsigned long long)c->n_snap, (unsigned long long)c->n_flush,
		(unsigned long long)c->n_compact,
		(unsigned long long)c->n_reopen,
		(unsigned long long)c->n_named_ops);
	assert_int_equal(lsm_close(c->db), 0);
	c->db = NULL;
	*owner = NULL;
	mctx_free(c);
}

#define OPS_PER_SEED 250000

/* One model run: its seed and, while it runs, its context (so that the
 * teardown can clean up after a failure). */
struct model_case {
	uint64_t seed;
	struct mctx *c;
};

static void test_model_seed(void **state)
{
	struct model_case *mc = *state;
	run_model(mc->seed, OPS_PER_SEED / test_scale(), &mc->c);
}

static void test_model_env_seed(void **state)
{
	struct model_case *mc = *state;
	const char *s = getenv("LSM_TEST_SEED");
	if (s == NULL || s[0] == '\0') {
		print_message("LSM_TEST_SEED not set\n");
		skip();
	}
	run_model(strtoull(s, NULL, 0), OPS_PER_SEED / test_scale(), &mc->c);
}

/* After a failure (fail() jumps out of run_model): release the snapshots,
 * close the store, remove its directory. */
static int model_teardown(void **state)
{
	struct model_case *mc = *state;
	if (mc->c != NULL) {
		mctx_free(mc->c);
		mc->c = NULL;
	}
	return 0;
}

/* ---- concurrent writers and readers ---- */

#define MT_WRITERS 4
#define MT_READERS 2

struct mt_shared {
	lsm_db *db;
	struct keytab kt;
	struct mslot *model; /* writer t owns ranks [t*n/4, (t+1)*n/4) */
	atomic_int writers_left;
	atomic_bool stop;
	uint64_t seed;
	uint64_t ops_per_writer;
};

struct mt_thread {
	struct mt_shared *sh;
	int id;
	char err[512]; /* empty: no failure */
	uint64_t n_ops;
};

static void *mt_writer(void *arg)
{
	struct mt_thread *t = arg;
	struct mt_shared *sh = t->sh;
	uint64_t rs = mix64(sh->seed * 31 + (uint64_t)t->id);
	size_t lo = sh->kt.n * (size_t)t->id / MT_WRITERS;
	size_t hi = sh->kt.n * (size_t)(t->id + 1) / MT_WRITERS;
	uint64_t vgen = ((uint64_t)(t->id + 1) << 48) + 1;
	uint8_t *vbuf = malloc(MAX_VALUE);
	lsm_batch *b = lsm_batch_new();
	int rc = 0;
	const char *what = "";
	if (vbuf == NULL || b == NULL) {
		snprintf(t->err, sizeof(t->err), "out of memory");
		goto out;
	}
	for (uint64_t i = 0; i < sh->ops_per_writer; i++) {
		uint64_t r = rnd_below(&rs, 100);
		size_t k = lo + (size_t)rnd_below(&rs, hi - lo);
		if (r < 60) {
			uint32_t vl = rnd_below(&rs, 50) == 0
					      ? BIG_VALUE
					      : (uint32_t)rnd_below(&rs, 301);
			fill_value(vbuf, vl, (uint32_t)k, vgen);
			what = "put";
			rc = lsm_put(sh->db, sh->kt.k[k], sh->kt.len[k], vbuf,
				     vl,
				     rnd_below(&rs, 500) == 0 ? LSM_SYNC : 0);
			if (rc == 0) {
				sh->model[k].vgen = vgen;
				sh->model[k].vlen = vl;
			}
			vgen++;
		} else if (r < 75) {
			what = "delete";
			rc = lsm_delete(sh->db, sh->kt.k[k], sh->kt.len[k], 0);
			if (rc == 0)
				sh->model[k].vgen = 0;
		} else if (r < 78) {
			/* [k, e) with e inside our own range */
			size_t e = k + 1 + (size_t)rnd_below(&rs, 30);
			if (e >= hi)
				continue;
			what = "delete_range";
			rc = lsm_delete_range(sh->db, sh->kt.k[k],
					      sh->kt.len[k], sh->kt.k[e],
					      sh->kt.len[e], 0);
			if (rc == 0)
				for (size_t j = k; j < e; j++)
					sh->model[j].vgen = 0;
		} else if (r < 98) {
			struct {
				size_t k;
				uint32_t vl;
				uint64_t g;
			} ops[16];
			size_t n = 1 + (size_t)rnd_below(&rs, 16);
			lsm_batch_clear(b);
			what = "batch";
			for (size_t j = 0; j < n && rc == 0; j++) {
				ops[j].k = lo + (size_t)rnd_below(&rs, hi - lo);
				if (rnd_below(&rs, 5) == 0) {
					ops[j].g = 0;
					ops[j].vl = 0;
					rc = lsm_batch_delete(
						b, sh->kt.k[ops[j].k],
						sh->kt.len[ops[j].k]);
				} else {
					ops[j].vl =
						(uint32_t)rnd_below(&rs, 200);
					ops[j].g = vgen++;
					fill_value(vbuf, ops[j].vl,
						   (uint32_t)ops[j].k,
						   ops[j].g);
					rc = lsm_batch_put(b,
							   sh->kt.k[ops[j].k],
							   sh->kt.len[ops[j].k],
							   vbuf, ops[j].vl);
				}
			}
			if (rc == 0)
				rc = lsm_write(sh->db, b, 0);
			if (rc == 0)
				for (size_t j = 0; j < n; j++) {
					sh->model[ops[j].k].vgen = ops[j].g;
					sh->model[ops[j].k].vlen = ops[j].vl;
				}
		} else if (t->id == 0 && r < 99) {
			what = "flush";
			rc = lsm_flush(sh->db);
		} else {
			/* read back one of our own keys: must match exactly */
			void *v = NULL;
			size_t vl = 0;
			what = "get own key";
			rc = lsm_get(sh->db, NULL, sh->kt.k[k], sh->kt.len[k],
				     &v, &vl);
			if (sh->model[k].vgen == 0) {
				if (rc == 0)
					lsm_free(v);
				if (rc != LSM_E_NOTFOUND) {
					snprintf(t->err, sizeof(t->err),
						 "writer %d op %llu: deleted "
						 "key "
						 "rank %zu read back rc %d",
						 t->id, (unsigned long long)i,
						 k, rc);
					goto out;
				}
				rc = 0;
			} else if (rc == 0) {
				uint8_t *exp = malloc(MAX_VALUE);
				bool ok =
					exp != NULL && vl == sh->model[k].vlen;
				if (ok) {
					fill_value(exp, vl, (uint32_t)k,
						   sh->model[k].vgen);
					ok = vl == 0 || memcmp(exp, v, vl) == 0;
				}
				free(exp);
				lsm_free(v);
				if (!ok) {
					snprintf(t->err, sizeof(t->err),
						 "writer %d op %llu: own key "
						 "rank "
						 "%zu read back wrong value",
						 t->id, (unsigned long long)i,
						 k);
					goto out;
				}
			}
		}
		if (rc != 0) {
			snprintf(t->err, sizeof(t->err),
				 "writer %d op %llu: %s failed: %d %s (%s)",
				 t->id, (unsigned long long)i, what, rc,
				 lsm_strerror(rc), lsm_errdetail());
			goto out;
		}
		t->n_ops++;
	}
out:
	lsm_batch_free(b);
	free(vbuf);
	atomic_fetch_sub(&sh->writers_left, 1);
	return NULL;
}

static size_t mt_rank_of(const struct keytab *kt, const void *k, size_t kl)
{
	size_t r = keytab_lower_bound(kt, k, kl);
	if (r < kt->n && key_cmp(kt->k[r], kt->len[r], k, kl) == 0)
		return r;
	return SIZE_MAX;
}

static void *mt_reader(void *arg)
{
	struct mt_thread *t = arg;
	struct mt_shared *sh = t->sh;
	uint64_t rs = mix64(sh->seed * 77 + (uint64_t)t->id);
	while (!atomic_load(&sh->stop) && t->err[0] == '\0') {
		uint64_t r = rnd_below(&rs, 100);
		if (r < 60) {
			size_t k = (size_t)rnd_below(&rs, sh->kt.n);
			void *v = NULL;
			size_t vl = 0;
			int rc = lsm_get(sh->db, NULL, sh->kt.k[k],
					 sh->kt.len[k], &v, &vl);
			if (rc == 0) {
				if (!value_self_check(v, vl, (uint32_t)k))
					snprintf(t->err, sizeof(t->err),
						 "reader: malformed value for "
						 "rank %zu (len %zu)",
						 k, vl);
				lsm_free(v);
			} else if (rc != LSM_E_NOTFOUND) {
				snprintf(t->err, sizeof(t->err),
					 "reader: get failed %d (%s)", rc,
					 lsm_errdetail());
			}
		} else if (r < 85) {
			lsm_iter *it = NULL;
			int rc = lsm_iter_new(sh->db, NULL, &it);
			if (rc != 0) {
				snprintf(t->err, sizeof(t->err),
					 "reader: iter_new %d", rc);
				break;
			}
			size_t k = (size_t)rnd_below(&rs, sh->kt.n);
			bool back = rnd_below(&rs, 2) == 0;
			if (back)
				lsm_iter_seek_for_prev(it, sh->kt.k[k],
						       sh->kt.len[k]);
			else
				lsm_iter_seek(it, sh->kt.k[k], sh->kt.len[k]);
			size_t prev = SIZE_MAX;
			for (int s = 0; s < 100 && lsm_iter_valid(it); s++) {
				size_t kl, vl;
				const void *key = lsm_iter_key(it, &kl);
				const void *val = lsm_iter_value(it, &vl);
				size_t rank = mt_rank_of(&sh->kt, key, kl);
				if (rank == SIZE_MAX) {
					snprintf(t->err, sizeof(t->err),
						 "reader: iterator returned a "
						 "key never written");
					break;
				}
				if (prev != SIZE_MAX &&
				    (back ? rank >= prev : rank <= prev)) {
					snprintf(t->err, sizeof(t->err),
						 "reader: iterator out of "
						 "order: "
						 "rank %zu after %zu (%s)",
						 rank, prev,
						 back ? "backward" : "forward");
					break;
				}
				if (!value_self_check(val, vl,
						      (uint32_t)rank)) {
					snprintf(t->err, sizeof(t->err),
						 "reader: iterator malformed "
						 "value at rank %zu",
						 rank);
					break;
				}
				prev = rank;
				if (back)
					lsm_iter_prev(it);
				else
					lsm_iter_next(it);
			}
			if (t->err[0] == '\0' && lsm_iter_status(it) != 0)
				snprintf(t->err, sizeof(t->err),
					 "reader: iterator status %d",
					 lsm_iter_status(it));
			lsm_iter_free(it);
		} else {
			/* a snapshot's reads repeat while writers go on */
			lsm_snapshot *snap = NULL;
			int rc = lsm_snapshot_acquire(sh->db, &snap);
			if (rc != 0) {
				snprintf(t->err, sizeof(t->err),
					 "reader: snapshot_acquire %d", rc);
				break;
			}
			size_t keys[16];
			uint64_t gens[16];
			int rcs[16];
			for (int pass = 0; pass < 2 && t->err[0] == '\0';
			     pass++) {
				for (int j = 0; j < 16; j++) {
					if (pass == 0)
						keys[j] = (size_t)rnd_below(
							&rs, sh->kt.n);
					void *v = NULL;
					size_t vl = 0;
					rc = lsm_get(
						sh->db, snap, sh->kt.k[keys[j]],
						sh->kt.len[keys[j]], &v, &vl);
					uint64_t g =
						rc == 0 ? vl * 1000003ull +
								  (vl > 0 ? ((uint8_t *)
										     v)
										    [vl -
										     1]
									  : 0)
							: 0;
					if (rc == 0)
						lsm_free(v);
					if (pass == 0) {
						rcs[j] = rc;
						gens[j] = g;
					} else if (rcs[j] != rc ||
						   gens[j] != g) {
						snprintf(
							t->err, sizeof(t->err),
							"reader: snapshot read "
							"of rank %zu changed "
							"(rc %d -> %d)",
							keys[j], rcs[j], rc);
						break;
					}
				}
				if (pass == 0)
					usleep(200);
			}
			lsm_snapshot_release(sh->db, snap);
		}
		t->n_ops++;
	}
	return NULL;
}

static void mt_check_all(struct mt_shared *sh)
{
	uint8_t *exp = malloc(MAX_VALUE);
	assert_non_null(exp);
	for (size_t k = 0; k < sh->kt.n; k++) {
		void *v = NULL;
		size_t vl = 0;
		int rc = lsm_get(sh->db, NULL, sh->kt.k[k], sh->kt.len[k], &v,
				 &vl);
		const struct mslot *m = &sh->model[k];
		if (m->vgen == 0) {
			if (rc == 0)
				lsm_free(v);
			if (rc != LSM_E_NOTFOUND)
				print_error(
					"threads seed=%llu: rank %zu should "
					"be absent, get=%d\n",
					(unsigned long long)sh->seed, k, rc);
			assert_int_equal(rc, LSM_E_NOTFOUND);
			continue;
		}
		if (rc != 0)
			print_error(
				"threads seed=%llu: rank %zu missing (%d)\n",
				(unsigned long long)sh->seed, k, rc);
		assert_int_equal(rc, 0);
		fill_value(exp, m->vlen, (uint32_t)k, m->vgen);
		bool ok = vl == m->vlen && (vl == 0 || memcmp(v, exp, vl) == 0);
		lsm_free(v);
		if (!ok)
			print_error("threads seed=%llu: rank %zu wrong value\n",
				    (unsigned long long)sh->seed, k);
		assert_true(ok);
	}
	/* and one full scan */
	lsm_iter *it = NULL;
	assert_int_equal(lsm_iter_new(sh->db, NULL, &it), 0);
	size_t r = 0;
	for (lsm_iter_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
		while (r < sh->kt.n && sh->model[r].vgen == 0)
			r++;
		assert_true(r < sh->kt.n);
		size_t kl;
		const void *key = lsm_iter_key(it, &kl);
		assert_int_equal(key_cmp(key, kl, sh->kt.k[r], sh->kt.len[r]),
				 0);
		r++;
	}
	assert_int_equal(lsm_iter_status(it), 0);
	while (r < sh->kt.n && sh->model[r].vgen == 0)
		r++;
	assert_int_equal(r, sh->kt.n);
	lsm_iter_free(it);
	free(exp);
}

static void test_model_threads(void **state)
{
	(void)state;
	struct mt_shared sh;
	memset(&sh, 0, sizeof(sh));
	char dir[512];
	lsm_options o;
	sh.seed = 4242;
	sh.ops_per_writer = 40000 / test_scale();
	keytab_build(&sh.kt, sh.seed, 4000);
	sh.model = calloc(sh.kt.n, sizeof(*sh.model));
	assert_non_null(sh.model);
	make_test_dir(dir, sizeof(dir), "mt");
	small_options(&o);
	o.background_threads = 2;
	print_message(
		"threads seed=%llu writers=%d readers=%d ops/writer=%llu\n",
		(unsigned long long)sh.seed, MT_WRITERS, MT_READERS,
		(unsigned long long)sh.ops_per_writer);
	assert_int_equal(lsm_open(dir, &o, &sh.db), 0);
	atomic_init(&sh.writers_left, MT_WRITERS);
	atomic_init(&sh.stop, false);

	struct mt_thread th[MT_WRITERS + MT_READERS];
	pthread_t tid[MT_WRITERS + MT_READERS];
	memset(th, 0, sizeof(th));
	for (int i = 0; i < MT_WRITERS + MT_READERS; i++) {
		th[i].sh = &sh;
		th[i].id = i;
		assert_int_equal(
			pthread_create(&tid[i], NULL,
				       i < MT_WRITERS ? mt_writer : mt_reader,
				       &th[i]),
			0);
	}
	for (int i = 0; i < MT_WRITERS; i++)
		pthread_join(tid[i], NULL);
	atomic_store(&sh.stop, true);
	for (int i = MT_WRITERS; i < MT_WRITERS + MT_READERS; i++)
		pthread_join(tid[i], NULL);
	bool failed = false;
	for (int i = 0; i < MT_WRITERS + MT_READERS; i++) {
		if (th[i].err[0] != '\0') {
			print_error("threads seed=%llu thread %d: %s\n",
				    (unsigned long long)sh.seed, i, th[i].err);
			failed = true;
		}
	}
	print_message("threads: reader ops %llu, %llu\n",
		      (unsigned long long)th[MT_WRITERS].n_ops,
		      (unsigned long long)th[MT_WRITERS + 1].n_ops);
	assert_false(failed);
	mt_check_all(&sh);
	assert_int_equal(lsm_close(sh.db), 0);
	assert_int_equal(lsm_open(dir, &o, &sh.db), 0);
	mt_check_all(&sh);
	assert_int_equal(lsm_close(sh.db), 0);
	remove_test_dir(dir);
	free(sh.model);
	keytab_free(&sh.kt);
}

/* ---- focused tests named after engine bugs found by the model ---- */

/* Bug: mem_usage() counts whole 64 KiB arena blocks, so with the smallest
 * valid write_buffer_size (64 KiB) the first write already "fills" the
 * memtable and every write switches memtable and WAL and flushes an SST. */
static void test_small_write_buffer_holds_many_writes(void **state)
{
	(void)state;
	char dir[512];
	lsm_options o;
	lsm_db *db = NULL;
	uint64_t flushes = 0;
	uint8_t v[100];
	make_test_dir(dir, sizeof(dir), "wbuf");
	lsm_options_init(&o);
	o.write_buffer_size = 64 << 10;
	assert_int_equal(lsm_open(dir, &o, &db), 0);
	memset(v, 'v', sizeof(v));
	/* 200 x ~110 bytes: about a third of the write buffer */
	for (int i = 0; i < 200; i++) {
		char k[16];
		snprintf(k, sizeof(k), "key%05d", i);
		assert_int_equal(lsm_put(db, k, strlen(k), v, sizeof(v), 0), 0);
	}
	assert_int_equal(lsm_property_u64(db, "lsm.flushes", &flushes), 0);
	if (flushes != 0)
		print_error(
			"200 small writes into a 64 KiB write buffer caused "
			"%llu flushes\n",
			(unsigned long long)flushes);
	assert_int_equal(lsm_close(db), 0);
	remove_test_dir(dir);
	assert_true(flushes == 0);
}

struct flush_race {
	lsm_db *db;
	int id;
	int n;
	int rc;
};

static void *flush_race_writer(void *arg)
{
	struct flush_race *w = arg;
	for (int i = 0; i < w->n && w->rc == 0; i++) {
		char k[32];
		snprintf(k, sizeof(k), "w%d-%06d", w->id, i);
		w->rc = lsm_put(w->db, k, strlen(k), k, strlen(k), 0);
	}
	return NULL;
}

/* Bug: db_flush_wait() queues a struct writer with batch == NULL in the
 * writer queue; a write-group leader gathering the queue dereferences
 * p->batch and crashes (lsm_flush concurrent with writers). */
static void test_flush_during_group_commit(void **state)
{
	(void)state;
	char dir[512];
	lsm_options o;
	lsm_db *db = NULL;
	struct flush_race w[4];
	pthread_t tid[4];
	int n = 4000 / (int)test_scale();
	make_test_dir(dir, sizeof(dir), "flushrace");
	lsm_options_init(&o);
	o.write_buffer_size = 64 << 10;
	assert_int_equal(lsm_open(dir, &o, &db), 0);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct flush_race){.db = db, .id = i, .n = n, .rc = 0};
		assert_int_equal(
			pthread_create(&tid[i], NULL, flush_race_writer, &w[i]),
			0);
	}
	for (int i = 0; i < 200; i++)
		assert_int_equal(lsm_flush(db), 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(tid[i], NULL);
		assert_int_equal(w[i].rc, 0);
	}
	for (int t = 0; t < 4; t++)
		for (int i = 0; i < n; i++) {
			char k[32];
			void *v = NULL;
			size_t vl = 0;
			snprintf(k, sizeof(k), "w%d-%06d", t, i);
			assert_int_equal(
				lsm_get(db, NULL, k, strlen(k), &v, &vl), 0);
			assert_int_equal(vl, strlen(k));
			assert_memory_equal(v, k, vl);
			lsm_free(v);
		}
	assert_int_equal(lsm_close(db), 0);
	remove_test_dir(dir);
}

int main(void)
{
	/* LSM_TEST_FILTER=pattern runs only the matching tests */
	if (getenv("LSM_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("LSM_TEST_FILTER"));
	struct model_case cases[] = {
		{1, NULL}, {2, NULL}, {3, NULL}, {20261124, NULL}, {0, NULL},
	};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_prestate_setup_teardown(
			test_model_seed, NULL, model_teardown, &cases[0]),
		cmocka_unit_test_prestate_setup_teardown(
			test_model_seed, NULL, model_teardown, &cases[1]),
		cmocka_unit_test_prestate_setup_teardown(
			test_model_seed, NULL, model_teardown, &cases[2]),
		cmocka_unit_test_prestate_setup_teardown(
			test_model_seed, NULL, model_teardown, &cases[3]),
		cmocka_unit_test_prestate_setup_teardown(
			test_model_env_seed, NULL, model_teardown, &cases[4]),
		cmocka_unit_test(test_model_threads),
		cmocka_unit_test(test_small_write_buffer_holds_many_writes),
		cmocka_unit_test(test_flush_during_group_commit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
