/*
 * test_strategy.c - the compaction strategies (compact/pick_tiered.c,
 * db_bg.c, the manifest's style record): size-tiered merges and their
 * lower write amplification, time-window merges of closed windows,
 * writers not stalled by closed windows, TTL expiry, switching a store
 * between every pair of styles, lsm_compact_range under every style, and
 * option validation.
 *
 * Time-window tests run on a clock the test sets: an env that is the
 * POSIX env with now_micros replaced.
 *
 * The randomized whole-engine tests (test_model, test_crash,
 * test_corrupt) also run once per style through LSM_TEST_STRATEGY
 * (testutil.h, tests/lsm/meson.build).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compact/compact.h"
#include "env/env.h"
#include "lsm.h"
#include "testutil.h"
#include "util/coding.h"
#include "util/hash.h"
#include "util/sketch.h"
#include "version/version.h"

/* This test sets every style itself. */
#undef lsm_options_init

#define N_KEYS 2000
#define MAX_VAL 200

/* ---- a clock the test controls ---- */

struct clock_env {
	lsm_env base; /* first: the engine sees an lsm_env */
	struct env_ops ops;
	_Atomic uint64_t now_us;
};

static uint64_t fake_now(lsm_env *env)
{
	return atomic_load(&((struct clock_env *)env)->now_us);
}

static void clock_env_init(struct clock_env *ce, uint64_t start_s)
{
	ce->ops = *env_posix()->ops;
	ce->ops.now_micros = fake_now;
	ce->base.ops = &ce->ops;
	atomic_store(&ce->now_us, start_s * 1000000);
}

static void clock_advance(struct clock_env *ce, uint64_t seconds)
{
	atomic_fetch_add(&ce->now_us, seconds * 1000000);
}

/* ---- a model: the value of every key, or none ---- */

struct model {
	uint32_t len[N_KEYS];
	bool live[N_KEYS];
	uint8_t val[N_KEYS][MAX_VAL];
};

static void key_of(unsigned i, char *k)
{
	snprintf(k, 16, "k%06u", i);
}

static void m_put(lsm_db *db, struct model *m, unsigned i, uint64_t *rs)
{
	char k[16];
	uint32_t n = 20 + (uint32_t)rnd_below(rs, MAX_VAL - 20);
	for (uint32_t j = 0; j < n; j++)
		m->val[i][j] = (uint8_t)rnd(rs);
	key_of(i, k);
	assert_int_equal(lsm_put(db, k, strlen(k), m->val[i], n, 0), 0);
	m->len[i] = n;
	m->live[i] = true;
}

static void m_del(lsm_db *db, struct model *m, unsigned i)
{
	char k[16];
	key_of(i, k);
	assert_int_equal(lsm_delete(db, k, strlen(k), 0), 0);
	m->live[i] = false;
}

static void m_del_range(lsm_db *db, struct model *m, unsigned a, unsigned b)
{
	char ka[16], kb[16];
	key_of(a, ka);
	key_of(b, kb);
	assert_int_equal(
		lsm_delete_range(db, ka, strlen(ka), kb, strlen(kb), 0), 0);
	for (unsigned i = a; i < b; i++)
		m->live[i] = false;
}

/* Random puts (most), deletes and a few range deletes. */
static void m_random_ops(lsm_db *db, struct model *m, uint64_t *rs,
			 unsigned n_ops, unsigned n_keys)
{
	for (unsigned op = 0; op < n_ops; op++) {
		unsigned r = (unsigned)rnd_below(rs, 1000);
		unsigned i = (unsigned)rnd_below(rs, n_keys);
		if (r < 850)
			m_put(db, m, i, rs);
		else if (r < 995)
			m_del(db, m, i);
		else
			m_del_range(db, m, i,
				    i + 1 +
					    (unsigned)rnd_below(rs, 20) %
						    (n_keys - i));
	}
}

/* Every key by point read, and the whole store by iterator. */
static void m_check(lsm_db *db, const struct model *m)
{
	lsm_iter *it = NULL;
	unsigned expect = 0;
	for (unsigned i = 0; i < N_KEYS; i++) {
		char k[16];
		void *v = NULL;
		size_t vl = 0;
		key_of(i, k);
		int rc = lsm_get(db, NULL, k, strlen(k), &v, &vl);
		if (!m->live[i]) {
			if (rc != LSM_E_NOTFOUND)
				fail_msg("key %u: expected none, got rc %d", i,
					 rc);
			continue;
		}
		if (rc != 0)
			fail_msg("key %u: rc %d (%s)", i, rc, lsm_errdetail());
		assert_int_equal(vl, m->len[i]);
		assert_memory_equal(v, m->val[i], vl);
		lsm_free(v);
	}
	assert_int_equal(lsm_iter_new(db, NULL, &it), 0);
	for (lsm_iter_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
		size_t kl, vl;
		const char *k = lsm_iter_key(it, &kl);
		const void *v = lsm_iter_value(it, &vl);
		assert_true(kl == 7 && k[0] == 'k');
		unsigned i = (unsigned)strtoul(k + 1, NULL, 10);
		while (expect < i) {
			if (m->live[expect])
				fail_msg("iterator skipped key %u", expect);
			expect++;
		}
		assert_true(i < N_KEYS && m->live[i]);
		assert_int_equal(vl, m->len[i]);
		assert_memory_equal(v, m->val[i], vl);
		expect = i + 1;
	}
	assert_int_equal(lsm_iter_status(it), 0);
	for (; expect < N_KEYS; expect++)
		if (m->live[expect])
			fail_msg("iterator missed key %u", expect);
	lsm_iter_free(it);
}

static uint64_t prop(lsm_db *db, const char *name)
{
	uint64_t v = 0;
	assert_int_equal(lsm_property_u64(db, name, &v), 0);
	return v;
}

/* Waits until background work has settled: lsm.background-work (flushes
 * and compactions running or due) reads 0 three times in a row, 50 ms
 * apart; fails after two minutes (a compaction that never ends). */
static void wait_quiet(lsm_db *db)
{
	int idle = 0;
	for (int i = 0; i < 2400 && idle < 3; i++) {
		idle = prop(db, "lsm.background-work") ? 0 : idle + 1;
		if (idle < 3)
			usleep(50000);
	}
	assert_int_equal(idle, 3);
}

static void small_opts(lsm_options *o, lsm_compaction_style s)
{
	lsm_options_init(o);
	o->write_buffer_size = 64 << 10;
	o->target_file_size = 64 << 10;
	o->max_bytes_for_level_base = 256 << 10;
	o->level0_compaction_trigger = 4;
	o->block_size = 1024;
	o->compaction_style = s;
	o->window_seconds = 1;
}

/* ---- option validation ---- */

static void expect_bad(const lsm_options *o, const char *field)
{
	char dir[512];
	lsm_db *db = NULL;
	make_test_dir(dir, sizeof(dir), "strat-opt");
	assert_int_equal(lsm_open(dir, o, &db), -EINVAL);
	assert_null(db);
	if (!strstr(lsm_errdetail(), field))
		fail_msg("detail \"%s\" does not name %s", lsm_errdetail(),
			 field);
	remove_test_dir(dir);
}

static void expect_good(const lsm_options *o)
{
	char dir[512];
	lsm_db *db = NULL;
	make_test_dir(dir, sizeof(dir), "strat-opt");
	assert_int_equal(lsm_open(dir, o, &db), 0);
	assert_int_equal(lsm_close(db), 0);
	remove_test_dir(dir);
}

static void test_options_validated(void **state)
{
	(void)state;
	lsm_options o;
	lsm_options_init(&o);
	o.compaction_style = (lsm_compaction_style)7;
	expect_bad(&o, "compaction_style");
	lsm_options_init(&o);
	o.min_merge_width = 1;
	expect_bad(&o, "min_merge_width");
	lsm_options_init(&o);
	o.min_merge_width = 5;
	o.max_merge_width = 4;
	expect_bad(&o, "max_merge_width");
	/* a class could never merge before writers slow */
	lsm_options_init(&o);
	o.compaction_style = LSM_COMPACTION_TIERED;
	o.min_merge_width = 20;
	expect_bad(&o, "level0_slowdown_trigger");
	o.min_merge_width = 19;
	expect_good(&o);
	o.compaction_style = LSM_COMPACTION_LEVELED; /* it has no classes */
	o.min_merge_width = 20;
	expect_good(&o);
	lsm_options_init(&o);
	o.size_ratio_percent = 10001;
	expect_bad(&o, "size_ratio_percent");
	lsm_options_init(&o);
	o.max_size_amplification_percent = 0;
	expect_bad(&o, "max_size_amplification_percent");
	lsm_options_init(&o);
	o.window_seconds = 0;
	expect_bad(&o, "window_seconds");
	lsm_options_init(&o);
	o.window_seconds = 100;
	o.ttl_seconds = 50;
	expect_bad(&o, "ttl_seconds");
	/* the defaults */
	lsm_options_init(&o);
	assert_int_equal(o.min_merge_width, 8);
	assert_int_equal(o.max_merge_width, UINT32_MAX);
	assert_int_equal(o.size_ratio_percent, 100);
	assert_int_equal(o.max_size_amplification_percent, 200);
	assert_int_equal(o.window_seconds, 3600);
	assert_int_equal(o.ttl_seconds, 0);
}

/* ---- size-tiered ---- */

/* 0..n-1 in a random order (malloc'd). */
static unsigned *shuffled(unsigned n, uint64_t *rs)
{
	unsigned *perm = malloc(n * sizeof(*perm));
	assert_non_null(perm);
	for (unsigned i = 0; i < n; i++)
		perm[i] = i;
	for (unsigned i = n - 1; i > 0; i--) {
		unsigned j = (unsigned)rnd_below(rs, i + 1), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	return perm;
}

/* Inserts `n` distinct keys in a random order under a style (the shape of
 * lsm-bench's fill); returns W-amp x1000, and the sorted runs once
 * compaction settles. Checks every key afterwards, and after a reopen. */
static uint64_t run_fill(lsm_compaction_style s, unsigned n, uint64_t *runs_out)
{
	char dir[512];
	lsm_options o;
	lsm_db *db = NULL;
	uint64_t rs = 42, wamp;
	unsigned *perm = shuffled(n, &rs);
	uint8_t v[100];
	small_opts(&o, s);
	make_test_dir(dir, sizeof(dir), "strat-fill");
	assert_int_equal(lsm_open(dir, &o, &db), 0);
	for (unsigned i = 0; i < n; i++) {
		char k[16];
		snprintf(k, sizeof(k), "f%08u", perm[i]);
		for (size_t j = 0; j < sizeof(v); j++)
			v[j] = (uint8_t)rnd(&rs); /* incompressible */
		v[0] = (uint8_t)(perm[i] & 0xff);
		assert_int_equal(lsm_put(db, k, strlen(k), v, sizeof(v), 0), 0);
	}
	assert_int_equal(lsm_flush(db), 0);
	wait_quiet(db);
	/* settled: nothing running, nothing the picker would start */
	assert_int_equal(prop(db, "lsm.background-work"), 0);
	wamp = prop(db, "lsm.write-amplification-x1000");
	if (getenv("TEST_STRATEGY_VERBOSE")) {
		char *txt = NULL;
		assert_int_equal(lsm_property(db, "lsm.stats", &txt), 0);
		fputs(txt, stdout);
		lsm_free(txt);
	}
	*runs_out = prop(db, "lsm.read-amplification");
	if (s == LSM_COMPACTION_TIERED) {
		assert_true(prop(db, "lsm.tiered-merges") +
				    prop(db, "lsm.tiered-full-merges") >
			    0);
		assert_int_equal(prop(db, "lsm.compaction-style"),
				 LSM_COMPACTION_TIERED);
	}
	for (int pass = 0; pass < 2; pass++) {
		lsm_iter *it = NULL;
		unsigned cnt = 0;
		if (pass) {
			assert_int_equal(lsm_close(db), 0);
			assert_int_equal(lsm_open(dir, &o, &db), 0);
		}
		assert_int_equal(lsm_iter_new(db, NULL, &it), 0);
		for (lsm_iter_first(it); lsm_iter_valid(it);
		     lsm_iter_next(it)) {
			size_t kl, vl;
			const char *k = lsm_iter_key(it, &kl);
			const uint8_t *val = lsm_iter_value(it, &vl);
			char want[16];
			snprintf(want, sizeof(want), "f%08u", cnt);
			assert_int_equal(kl, strlen(want));
			assert_memory_equal(k, want, kl);
			assert_int_equal(vl, sizeof(v));
			assert_int_equal(val[0], cnt & 0xff);
			cnt++;
		}
		assert_int_equal(lsm_iter_status(it), 0);
		lsm_iter_free(it);
		assert_int_equal(cnt, n);
	}
	assert_int_equal(lsm_close(db), 0);
	remove_test_dir(dir);
	free(perm);
	return wamp;
}

static void test_tiered_writes_less(void **state)
{
	(void)state;
	uint64_t runs_l, runs_t;
	uint64_t wl = run_fill(LSM_COMPACTION_LEVELED, 60000, &runs_l);
	uint64_t wt = run_fill(LSM_COMPACTION_TIERED, 60000, &runs_t);
	print_message("fill of 60000 keys: write amplification x1000: "
		      "leveled %llu, tiered %llu; sorted runs: leveled %llu, "
		      "tiered %llu\n",
		      (unsigned long long)wl, (unsigned long long)wt,
		      (unsigned long long)runs_l, (unsigned long long)runs_t);
	assert_true(wt < wl);
	/* settled: under the count limit of rule c (trigger 4 + 6 levels) */
	assert_true(runs_t < 4 + 6);
}

/* Puts keys g%06u of perm[0..n) with values whose first byte is `round`. */
static void put_round(lsm_db *db, const unsigned *perm, unsigned n,
		      uint8_t round, uint64_t *rs)
{
	uint8_t v[100];
	for (unsigned i = 0; i < n; i++) {
		char k[16];
		snprintf(k, sizeof(k), "g%06u", perm[i]);
		for (size_t j = 0; j < sizeof(v); j++)
			v[j] = (uint8_t)rnd(rs);
		v[0] = round;
		assert_int_equal(lsm_put(db, k, strlen(k), v, sizeof(v), 0), 0);
	}
}

/* Every key g000000..g(n-1) holds a value of `round`, or none is left. */
static void check_round(lsm_db *db, unsigned n, int round)
{
	lsm_iter *it = NULL;
	unsigned cnt = 0;
	assert_int_equal(lsm_iter_new(db, NULL, &it), 0);
	for (lsm_iter_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
		size_t kl, vl;
		const char *k = lsm_iter_key(it, &kl);
		const uint8_t *v = lsm_iter_value(it, &vl);
		char want[16];
		snprintf(want, sizeof(want), "g%06u", cnt++);
		assert_true(round >= 0);
		assert_int_equal(kl, strlen(want));
		assert_memory_equal(k, want, kl);
		assert_int_equal(vl, 100);
		assert_int_equal(v[0], round);
	}
	assert_int_equal(lsm_iter_status(it), 0);
	lsm_iter_free(it);
	assert_int_equal(cnt, round >= 0 ? n : 0);
}

/* The space bound counts garbage, not size: a store that only grows
 * never merges everything, though its newer runs outgrow the last one
 * many times over (the bound is 50%); once every key is overwritten
 * twice, or deleted, it does. */
static void test_tiered_bound_counts_garbage(void **state)
{
	enum { N = 30000 };
	char dir[512];
	lsm_options o;
	lsm_db *db = NULL;
	uint64_t rs = 7, full, sst_full;
	unsigned *perm = shuffled(N, &rs);
	(void)state;
	small_opts(&o, LSM_COMPACTION_TIERED);
	o.min_merge_width = 4;
	o.max_size_amplification_percent = 50;
	make_test_dir(dir, sizeof(dir), "strat-garbage");
	assert_int_equal(lsm_open(dir, &o, &db), 0);

	put_round(db, perm, N, 1, &rs);
	assert_int_equal(lsm_flush(db), 0);
	wait_quiet(db);
	assert_true(prop(db, "lsm.tiered-merges") > 0);
	assert_int_equal(prop(db, "lsm.tiered-full-merges"), 0);
	/* nothing is garbage: the estimate is near 1 (one in 1000) */
	assert_true(prop(db, "lsm.space-amplification-x1000") < 1200);
	assert_true(prop(db, "lsm.read-amplification") > 1);
	check_round(db, N, 1);

	put_round(db, perm, N, 2, &rs);
	put_round(db, perm, N, 3, &rs);
	assert_int_equal(lsm_flush(db), 0);
	wait_quiet(db);
	full = prop(db, "lsm.tiered-full-merges");
	/* (The bound is checked when a merge is due, so the settled store
	 * may hold more garbage than it until the next L0 files come.) */
	assert_true(full > 0);
	check_round(db, N, 3);
	sst_full = prop(db, "lsm.sst-bytes");

	for (unsigned i = 0; i < N; i++) {
		char k[16];
		snprintf(k, sizeof(k), "g%06u", perm[i]);
		assert_int_equal(lsm_delete(db, k, strlen(k), 0), 0);
	}
	assert_int_equal(lsm_flush(db), 0);
	wait_quiet(db);
	assert_true(prop(db, "lsm.tiered-full-merges") > full);
	/* A full merge may have run halfway through the deletes, leaving
	 * the rest of them in L0 runs below the trigger, and the bound is
	 * checked only when a merge is due: four small flushes make one due
	 * with every delete in view, which must then merge everything. */
	for (unsigned i = 0; i < 4; i++) {
		char k[16];
		snprintf(k, sizeof(k), "f%06u", i);
		assert_int_equal(lsm_put(db, k, strlen(k), "v", 1, 0), 0);
		assert_int_equal(lsm_flush(db), 0);
	}
	wait_quiet(db);
	for (unsigned i = 0; i < 4; i++) {
		char k[16];
		snprintf(k, sizeof(k), "f%06u", i);
		assert_int_equal(lsm_delete(db, k, strlen(k), 0), 0);
	}
	assert_int_equal(lsm_flush(db), 0);
	wait_quiet(db);
	check_round(db, N, -1);
	assert_true(prop(db, "lsm.sst-bytes") < sst_full / 2);

	/* the sketches come back from the manifest: the same estimate */
	uint64_t samp = prop(db, "lsm.space-amplification-x1000");
	assert_int_equal(lsm_close(db), 0);
	assert_int_equal(lsm_open(dir, &o, &db), 0);
	assert_int_equal(prop(db, "lsm.space-amplification-x1000"), samp);
	check_round(db, N, -1);
	assert_int_equal(lsm_close(db), 0);
	remove_test_dir(dir);
	free(perm);
}

/* The picker's options of a size-tiered store with default settings
 * but the merge width. */
static void tiered_pick_opts(struct pick_opts *po, uint32_t width)
{
	memset(po, 0, sizeof(*po));
	po->style = LSM_COMPACTION_TIERED;
	po->num_levels = LSM_MAX_LEVELS;
	po->level0_trigger = 4;
	po->min_merge_width = width;
	po->max_merge_width = UINT32_MAX;
	po->size_ratio_percent = 100;
	po->max_size_amp_percent = 200;
}

/* Writers slow for the longest size class of L0 files, not for all of
 * them: runs at rest in older classes owe no work. Pending bytes (which
 * slow writers too) count the classes a merge is due for, or everything
 * once the space bound is passed. */
static void test_tiered_owed_work_by_class(void **state)
{
	static const uint64_t sizes[][12] = {
		/* three classes of three: at rest with width 4 */
		{10, 11, 9, 80, 90, 85, 700, 650, 720, 0},
		/* a small newest file does not hide the class behind it */
		{1, 10, 10, 10, 10, 10, 10, 0},
		/* older, smaller files join a class */
		{10, 10, 10, 3, 2, 0},
	};
	static const size_t want_stall[] = {3, 6, 5};
	static const uint64_t want_pending[] = {0, 60, 35};
	struct pick_opts po;
	uint8_t key[9] = "k";
	(void)state;
	tiered_pick_opts(&po, 4);
	for (size_t t = 0; t < 2 * 3; t++) {
		const uint64_t *sz = sizes[t % 3];
		bool same_keys = t >= 3; /* every file holds the same keys */
		struct version v = {0};
		struct file_meta *f[12];
		size_t n = 0;
		while (sz[n])
			n++;
		for (size_t i = 0; i < n; i++) {
			uint64_t base = same_keys ? 0 : i * 1000;
			f[i] = file_meta_new(100 - i, sz[i] << 20,
					     slice_make(key, 9),
					     slice_make(key, 9));
			assert_non_null(f[i]);
			f[i]->sketch = calloc(1, SKETCH_REGS);
			assert_non_null(f[i]->sketch);
			for (uint64_t k = base; k < base + 1000; k++)
				sketch_add(f[i]->sketch,
					   lsm_hash64(&k, sizeof(k)));
			f[i]->num_entries = 1000;
			v.level_bytes[0] += sz[i] << 20;
		}
		v.files[0] = f;
		v.n_files[0] = n;
		assert_int_equal(compact_stall_files(&v, &po, 0),
				 want_stall[t % 3]);
		assert_int_equal(compact_pending_bytes(&v, &po),
				 same_keys ? v.level_bytes[0]
					   : want_pending[t] << 20);
		/* leveled and time-window (one window) count every file */
		po.style = LSM_COMPACTION_LEVELED;
		assert_int_equal(compact_stall_files(&v, &po, 0), n);
		po.style = LSM_COMPACTION_TIERED;
		for (size_t i = 0; i < n; i++)
			file_meta_unref(f[i]);
	}
}

/* A file of `gib` GiB holding the keys 0..999, with their sketch. */
static struct file_meta *sketched_file(uint64_t number, uint64_t gib)
{
	uint8_t key[9] = "k";
	struct file_meta *f = file_meta_new(
		number, gib << 30, slice_make(key, 9), slice_make(key, 9));
	assert_non_null(f);
	f->sketch = calloc(1, SKETCH_REGS);
	assert_non_null(f->sketch);
	for (uint64_t k = 0; k < 1000; k++)
		sketch_add(f->sketch, lsm_hash64(&k, sizeof(k)));
	f->num_entries = 1000;
	return f;
}

/* Past the space bound but below the L0 trigger the picker starts
 * nothing, so nothing is owed either: pending bytes that writers stop
 * for must be work a merge will start. With the trigger reached, the
 * merge of everything is picked and everything is owed. */
static void test_tiered_owes_only_what_it_picks(void **state)
{
	struct pick_opts po;
	struct version v = {0};
	/* every file holds the same keys: of 4000 or 5000 entries, 3000 or
	 * 4000 are garbage, 300% or 400% of the live ones (bound 200%) */
	struct file_meta *l0[4] = {
		sketched_file(14, 100), sketched_file(13, 100),
		sketched_file(12, 100), sketched_file(11, 100)};
	struct file_meta *l6 = sketched_file(10, 300);
	struct compaction *c = NULL;
	(void)state;
	tiered_pick_opts(&po, 8);
	atomic_store(&v.refs, 1);
	v.files[6] = &l6;
	v.n_files[6] = 1;
	v.level_bytes[6] = 300ull << 30;
	v.files[0] = &l0[1]; /* the three older L0 files only */
	v.n_files[0] = 3;
	v.level_bytes[0] = 300ull << 30;
	assert_int_equal(compact_pick_style(&v, &po, 0, &c), 0);
	assert_null(c);
	assert_int_equal(compact_pending_bytes(&v, &po), 0);

	v.files[0] = l0; /* all four */
	v.n_files[0] = 4;
	v.level_bytes[0] = 400ull << 30;
	assert_int_equal(compact_pending_bytes(&v, &po), 700ull << 30);
	assert_int_equal(compact_pick_style(&v, &po, 0, &c), 0);
	assert_non_null(c);
	assert_int_equal(c->kind, COMPACT_TIERED_FULL);
	assert_int_equal(c->out_level, 6);
	assert_int_equal(c->n_inputs[0], 4);
	assert_int_equal(c->n_inputs[6], 1);
	compaction_free(c);
	for (int i = 0; i < 4; i++)
		file_meta_unref(l0[i]);
	file_meta_unref(l6);
}

/* ---- leveled: where L0 goes, and level0_size_percent ---- */

static void put_keys(lsm_db *db, uint64_t *rs, unsigned n)
{
	uint8_t v[100];
	for (unsigned i = 0; i < n; i++) {
		char k[16];
		snprintf(k, sizeof(k), "p%08u",
			 (unsigned)rnd_below(rs, 100000));
		for (size_t j = 0; j < sizeof(v); j++)
			v[j] = (uint8_t)rnd(rs);
		assert_int_equal(lsm_put(db, k, strlen(k), v, sizeof(v), 0), 0);
	}
}

/* n flushes of `keys` random keys each, then waits for compactions. */
static void flushes(lsm_db *db, uint64_t *rs, int n, unsigned keys)
{
	for (int f = 0; f < n; f++) {
		put_keys(db, rs, keys);
		assert_int_equal(lsm_flush(db), 0);
	}
	wait_quiet(db);
}

/* A small store's L0 compacts into the level above the last (the last
 * level fills later, from above, at first by cheap moves). With
 * level0_size_percent = 100, four small L0 files wait while they hold
 * far less than the base level, the store counts as settled
 * (lsm.background-work 0), and the eighth file (twice the trigger)
 * starts the compaction anyway. With 0, four files start it. */
static void test_l0_size_percent(void **state)
{
	(void)state;
	for (int pct = 0; pct <= 100; pct += 100) {
		char dir[512];
		lsm_options o;
		lsm_db *db = NULL;
		uint64_t rs = 77;
		small_opts(&o, LSM_COMPACTION_LEVELED);
		o.write_buffer_size = 4 << 20; /* only lsm_flush flushes */
		o.level0_size_percent = pct;
		make_test_dir(dir, sizeof(dir), "strat-l0pct");
		assert_int_equal(lsm_open(dir, &o, &db), 0);
		flushes(db, &rs, 4, 500); /* ~200 KB: under the base size */
		assert_int_equal(prop(db, "lsm.num-files-at-level0"), 0);
		assert_true(prop(db, "lsm.num-files-at-level5") > 0);
		assert_int_equal(prop(db, "lsm.num-files-at-level6"), 0);
		uint64_t base = prop(db, "lsm.bytes-at-level5");
		flushes(db, &rs, 4, 20); /* four files of ~2 KB each */
		assert_true(prop(db, "lsm.bytes-at-level0") < base / 4);
		assert_int_equal(prop(db, "lsm.num-files-at-level0"),
				 pct ? 4 : 0);
		assert_int_equal(prop(db, "lsm.background-work"), 0);
		flushes(db, &rs, 3, 20);
		assert_int_equal(prop(db, "lsm.num-files-at-level0"),
				 pct ? 7 : 3);
		flushes(db, &rs, 1, 20);
		assert_int_equal(prop(db, "lsm.num-files-at-level0"), 0);
		assert_int_equal(prop(db, "lsm.background-work"), 0);
		assert_int_equal(lsm_close(db), 0);
		rm_rf(dir);
	}
}

/* ---- time-window ---- */

static lsm_db *open_clock(const char *dir, struct clock_env *ce, lsm_options *o,
			  uint64_t window, uint64_t ttl)
{
	lsm_db *db = NULL;
	small_opts(o, LSM_COMPACTION_TIME_WINDOW);
	o->env = &ce->base;
	o->window_seconds = window;
	o->ttl_seconds = ttl;
	int rc = lsm_open(dir, o, &db);
	if (rc)
		fail_msg("open: %s (%s)", lsm_strerror(rc), lsm_errdetail());
	return db;
}

static void test_window_closed_merged(void **state)
{
	(void)state;
	char dir[512];
	struct clock_env ce;
	struct model *m = calloc(1, sizeof(*m));
	lsm_options o;
	uint64_t rs = 7;
	assert_non_null(m);
	clock_env_init(&ce, 1000000);
	make_test_dir(dir, sizeof(dir), "strat-win");
	lsm_db *db = open_clock(dir, &ce, &o, 100, 0);
	/* three files in window 10000 */
	for (int f = 0; f < 3; f++) {
		m_random_ops(db, m, &rs, 300, N_KEYS);
		assert_int_equal(lsm_flush(db), 0);
	}
	wait_quiet(db);
	assert_int_equal(prop(db, "lsm.num-files-at-level0"), 3);
	assert_int_equal(prop(db, "lsm.window-merges"), 0);
	/* the window closes: its three files become one */
	clock_advance(&ce, 100);
	m_random_ops(db, m, &rs, 300, N_KEYS);
	assert_int_equal(lsm_flush(db), 0);
	wait_quiet(db);
	assert_int_equal(prop(db, "lsm.window-merges"), 1);
	assert_int_equal(prop(db, "lsm.num-files-at-level0"), 2);
	for (int l = 1; l < LSM_MAX_LEVELS; l++) {
		char name[64];
		snprintf(name, sizeof(name), "lsm.num-files-at-level%d", l);
		assert_int_equal(prop(db, name), 0);
	}
	m_check(db, m);
	/* the open window's files (now seven) merge four at a time (the
	 * level0 trigger): at most three of one size class stay beside the
	 * merged run, next to the closed window's file */
	for (int f = 0; f < 6; f++) {
		m_random_ops(db, m, &rs, 200, N_KEYS);
		assert_int_equal(lsm_flush(db), 0);
	}
	wait_quiet(db);
	assert_true(prop(db, "lsm.window-merges") >= 2);
	assert_true(prop(db, "lsm.num-files-at-level0") <= 1 + 3 + 1);
	m_check(db, m);
	assert_int_equal(lsm_close(db), 0);
	db = open_clock(dir, &ce, &o, 100, 0);
	m_check(db, m);
	assert_int_equal(lsm_close(db), 0);
	remove_test_dir(dir);
	free(m);
}

/* Closed windows are many L0 files, but writers count only the open
 * window's against level0_slowdown/stop_trigger. */
static void test_windows_do_not_stall(void **state)
{
	(void)state;
	char dir[512];
	struct clock_env ce;
	struct model *m = calloc(1, sizeof(*m));
	lsm_options o;
	uint64_t rs = 9;
	assert_non_null(m);
	clock_env_init(&ce, 5000000);
	make_test_dir(dir, sizeof(dir), "strat-stall");
	small_opts(&o, LSM_COMPACTION_TIME_WINDOW);
	o.env = &ce.base;
	o.window_seconds = 10;
	o.level0_compaction_trigger = 2;
	o.level0_slowdown_trigger = 3;
	o.level0_stop_trigger = 4;
	lsm_db *db = NULL;
	assert_int_equal(lsm_open(dir, &o, &db), 0);
	for (int w = 0; w < 8; w++) {
		m_random_ops(db, m, &rs, 100, N_KEYS);
		assert_int_equal(lsm_flush(db), 0);
		clock_advance(&ce, 10);
	}
	wait_quiet(db);
	assert_true(prop(db, "lsm.num-files-at-level0") >= 8);
	uint64_t slow = prop(db, "lsm.slowdown-count");
	uint64_t stall = prop(db, "lsm.stall-count");
	m_random_ops(db, m, &rs, 200, N_KEYS);
	assert_int_equal(prop(db, "lsm.slowdown-count"), slow);
	assert_int_equal(prop(db, "lsm.stall-count"), stall);
	assert_true(prop(db, "lsm.read-amplification") >= 8);
	m_check(db, m);
	assert_int_equal(lsm_close(db), 0);
	remove_test_dir(dir);
	free(m);
}

static void test_ttl_drops_old_windows(void **state)
{
	(void)state;
	char dir[512];
	struct clock_env ce;
	struct model *m = calloc(1, sizeof(*m));
	lsm_options o;
	uint64_t rs = 11;
	assert_non_null(m);
	clock_env_init(&ce, 1000000);
	make_test_dir(dir, sizeof(dir), "strat-ttl");
	lsm_db *db = open_clock(dir, &ce, &o, 10, 20);
	/* keys 0..499 at t, 500..999 at t+10, 1000..1499 at t+20 */
	for (int w = 0; w < 3; w++) {
		if (w)
			clock_advance(&ce, 10);
		for (unsigned i = 0; i < 500; i++)
			m_put(db, m, (unsigned)w * 500 + i, &rs);
		assert_int_equal(lsm_flush(db), 0);
	}
	wait_quiet(db);
	assert_int_equal(prop(db, "lsm.ttl-files-dropped"), 0);
	m_check(db, m);
	/* now t+35: the first two windows (newest write t, t+10) are older
	 * than now - ttl = t+15 */
	clock_advance(&ce, 15);
	for (int i = 0; i < 100 && prop(db, "lsm.ttl-files-dropped") < 2; i++)
		usleep(50000);
	assert_int_equal(prop(db, "lsm.ttl-files-dropped"), 2);
	assert_true(prop(db, "lsm.ttl-bytes-dropped") > 0);
	for (unsigned i = 0; i < 1000; i++)
		m->live[i] = false;
	m_check(db, m);
	assert_int_equal(lsm_close(db), 0);
	/* the drop is in the manifest */
	db = open_clock(dir, &ce, &o, 10, 20);
	m_check(db, m);
	assert_int_equal(lsm_close(db), 0);
	remove_test_dir(dir);
	free(m);
}

/* ---- switching styles ---- */

static uint32_t recorded_style(const char *dir)
{
	struct vset_config cfg = {env_posix(), dir, LSM_MAX_LEVELS, NULL};
	struct vset *vs = NULL;
	assert_int_equal(vset_recover(&cfg, &vs), 0);
	uint32_t s = vs->style;
	vset_free(vs);
	return s;
}

static void test_switch_every_pair(void **state)
{
	(void)state;
	static const lsm_compaction_style styles[3] = {
		LSM_COMPACTION_LEVELED, LSM_COMPACTION_TIERED,
		LSM_COMPACTION_TIME_WINDOW};
	struct model *m = malloc(sizeof(*m));
	assert_non_null(m);
	for (int a = 0; a < 3; a++)
		for (int b = 0; b < 3; b++) {
			char dir[512];
			lsm_options o;
			lsm_db *db = NULL;
			uint64_t rs = (uint64_t)(a * 3 + b + 100);
			if (a == b)
				continue;
			memset(m, 0, sizeof(*m));
			make_test_dir(dir, sizeof(dir), "strat-switch");
			small_opts(&o, styles[a]);
			assert_int_equal(lsm_open(dir, &o, &db), 0);
			for (int f = 0; f < 12; f++) {
				m_random_ops(db, m, &rs, 600, N_KEYS);
				if (f % 3 == 0)
					assert_int_equal(lsm_flush(db), 0);
			}
			wait_quiet(db);
			m_check(db, m);
			assert_int_equal(lsm_close(db), 0);
			assert_int_equal(recorded_style(dir), styles[a]);

			small_opts(&o, styles[b]);
			assert_int_equal(lsm_open(dir, &o, &db), 0);
			m_check(db, m);
			for (int f = 0; f < 12; f++) {
				m_random_ops(db, m, &rs, 600, N_KEYS);
				if (f % 3 == 0)
					assert_int_equal(lsm_flush(db), 0);
			}
			wait_quiet(db);
			m_check(db, m);
			assert_int_equal(lsm_close(db), 0);
			assert_int_equal(recorded_style(dir), styles[b]);

			/* and back */
			small_opts(&o, styles[a]);
			assert_int_equal(lsm_open(dir, &o, &db), 0);
			m_random_ops(db, m, &rs, 2000, N_KEYS);
			assert_int_equal(lsm_flush(db), 0);
			wait_quiet(db);
			m_check(db, m);
			assert_int_equal(lsm_close(db), 0);
			assert_int_equal(recorded_style(dir), styles[a]);
			remove_test_dir(dir);
		}
	free(m);
}

/* ---- lsm_compact_range under every style ---- */

static void test_compact_range_every_style(void **state)
{
	(void)state;
	struct model *m = malloc(sizeof(*m));
	assert_non_null(m);
	for (int s = 0; s < 3; s++) {
		char dir[512];
		lsm_options o;
		lsm_db *db = NULL;
		uint64_t rs = (uint64_t)s + 500;
		memset(m, 0, sizeof(*m));
		make_test_dir(dir, sizeof(dir), "strat-range");
		small_opts(&o, (lsm_compaction_style)s);
		assert_int_equal(lsm_open(dir, &o, &db), 0);
		for (int f = 0; f < 6; f++) {
			m_random_ops(db, m, &rs, 800, N_KEYS);
			assert_int_equal(lsm_flush(db), 0);
		}
		m_del_range(db, m, 100, 900);
		assert_int_equal(lsm_flush(db), 0);
		assert_int_equal(lsm_compact_range(db, NULL, 0, NULL, 0), 0);
		/* everything merged into the last level */
		for (int l = 0; l < LSM_MAX_LEVELS - 1; l++) {
			char name[64];
			snprintf(name, sizeof(name), "lsm.num-files-at-level%d",
				 l);
			assert_int_equal(prop(db, name), 0);
		}
		assert_true(prop(db, "lsm.num-files-at-level6") > 0);
		m_check(db, m);
		/* the style keeps working afterwards */
		for (int f = 0; f < 6; f++) {
			m_random_ops(db, m, &rs, 800, N_KEYS);
			assert_int_equal(lsm_flush(db), 0);
		}
		wait_quiet(db);
		m_check(db, m);
		assert_int_equal(lsm_close(db), 0);
		remove_test_dir(dir);
	}
	free(m);
}

/* ---- the manifest records (tags 10 and 13) ---- */

/* A new-file field, then its sketch (tag 13): a round trip keeps the
 * sketch; a bad rank, a short sketch, a sketch for a file the record
 * did not add, and a second sketch for one file are corruption. */
static void test_sketch_tag(void **state)
{
	uint8_t key[9] = "k", regs[SKETCH_REGS] = {0};
	struct version_edit e, d;
	struct file_meta *f;
	uint8_t *buf = NULL, *bad;
	size_t len = 0, flen;
	(void)state;
	for (uint64_t k = 0; k < 5000; k++)
		sketch_add(regs, lsm_hash64(&k, sizeof(k)));
	edit_init(&e);
	f = file_meta_new(12, 4096, slice_make(key, 9), slice_make(key, 9));
	assert_non_null(f);
	assert_int_equal(edit_add_file(&e, 0, f), 0);
	/* without a sketch */
	assert_int_equal(edit_encode(&e, &buf, &len), 0);
	flen = len;
	assert_int_equal(edit_decode(&d, buf, len, "test", 0), 0);
	assert_null(d.added[0].f->sketch);
	edit_release(&d);
	free(buf);
	/* with one */
	f->sketch = malloc(SKETCH_REGS);
	assert_non_null(f->sketch);
	memcpy(f->sketch, regs, SKETCH_REGS);
	assert_int_equal(edit_encode(&e, &buf, &len), 0);
	assert_int_equal(edit_decode(&d, buf, len, "test", 0), 0);
	assert_non_null(d.added[0].f->sketch);
	assert_memory_equal(d.added[0].f->sketch, regs, SKETCH_REGS);
	edit_release(&d);
	/* the sketch is the record's last SKETCH_REGS bytes */
	bad = malloc(len + 2 * SKETCH_REGS + 16);
	assert_non_null(bad);
	memcpy(bad, buf, len);
	bad[len - 1] = SKETCH_MAX_RANK + 1;
	assert_int_equal(edit_decode(&d, bad, len, "test", 0), LSM_E_CORRUPT);
	assert_non_null(strstr(lsm_errdetail(), "invalid sketch"));
	assert_int_equal(edit_decode(&d, buf, len - 1, "test", 0),
			 LSM_E_CORRUPT);
	/* a second sketch for the same file */
	memcpy(bad, buf, len);
	memcpy(bad + len, buf + flen, len - flen);
	assert_int_equal(edit_decode(&d, bad, 2 * len - flen, "test", 0),
			 LSM_E_CORRUPT);
	assert_non_null(strstr(lsm_errdetail(), "second sketch"));
	/* a sketch alone: its file is not in the record */
	assert_int_equal(edit_decode(&d, buf + flen, len - flen, "test", 0),
			 LSM_E_CORRUPT);
	assert_non_null(strstr(lsm_errdetail(), "stray sketch"));
	/* a sketch of the wrong length */
	{
		uint8_t *p = bad;
		memcpy(p, buf, flen);
		p += flen;
		p = put_varint64(p, 13);
		p = put_varint64(p, 12);
		p = put_varint64(p, SKETCH_REGS - 1);
		memcpy(p, regs, SKETCH_REGS - 1);
		p += SKETCH_REGS - 1;
		assert_int_equal(
			edit_decode(&d, bad, (size_t)(p - bad), "test", 0),
			LSM_E_CORRUPT);
	}
	free(bad);
	free(buf);
	edit_release(&e);
}

static void test_style_tag_round_trip(void **state)
{
	(void)state;
	struct version_edit e, d;
	uint8_t *buf = NULL;
	size_t len = 0;
	edit_init(&e);
	e.has_style = true;
	e.style = LSM_COMPACTION_TIME_WINDOW;
	assert_int_equal(edit_encode(&e, &buf, &len), 0);
	assert_int_equal(edit_decode(&d, buf, len, "test", 0), 0);
	assert_true(d.has_style);
	assert_int_equal(d.style, LSM_COMPACTION_TIME_WINDOW);
	edit_release(&d);
	free(buf);
	/* a style this lsm does not know is refused, not guessed */
	e.style = 9;
	assert_int_equal(edit_encode(&e, &buf, &len), 0);
	assert_int_equal(edit_decode(&d, buf, len, "test", 0), LSM_E_FORMAT);
	assert_non_null(strstr(lsm_errdetail(), "compaction style"));
	free(buf);
	/* a truncated value is corruption */
	e.style = 1;
	assert_int_equal(edit_encode(&e, &buf, &len), 0);
	assert_int_equal(edit_decode(&d, buf, len - 1, "test", 0),
			 LSM_E_CORRUPT);
	free(buf);
	edit_release(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options_validated),
		cmocka_unit_test(test_style_tag_round_trip),
		cmocka_unit_test(test_sketch_tag),
		cmocka_unit_test(test_tiered_bound_counts_garbage),
		cmocka_unit_test(test_tiered_owed_work_by_class),
		cmocka_unit_test(test_tiered_owes_only_what_it_picks),
		cmocka_unit_test(test_tiered_writes_less),
		cmocka_unit_test(test_l0_size_percent),
		cmocka_unit_test(test_window_closed_merged),
		cmocka_unit_test(test_windows_do_not_stall),
		cmocka_unit_test(test_ttl_drops_old_windows),
		cmocka_unit_test(test_switch_every_pair),
		cmocka_unit_test(test_compact_range_every_style),
	};
	if (getenv("LSM_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("LSM_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
