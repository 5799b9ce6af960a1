/*
 * test_crash.c - power cuts, full disks and failing I/O against the whole
 * engine, through the fault env (env/env_fault.h).
 *
 * What and why: the engine promises that a batch written with LSM_SYNC is
 * durable when lsm_write returns, that batches are atomic and applied in
 * order, and that a crash at any instant leaves a store that opens. This
 * test drives random batches through a fault env, cuts power (optionally
 * with torn tails), fills the disk, or fails the n-th mutating operation,
 * then reopens and compares the store with a model.
 *
 * The check after a failure: batches are applied in order, so the
 * recovered state must equal the model after batch k for some k, where k
 * covers every batch acknowledged with LSM_SYNC (and at most the batches
 * attempted). The test replays the batches of the cycle from the state at
 * the cycle's start and looks for such a k. Values name their key and a
 * unique generation number, so a value that was never written, or a key
 * that was never written, is recognised as garbage at once.
 *
 * Invariants checked:
 *  1. After a power cut (plain or torn), lsm_close returns (errors
 *     allowed), and the store reopens.
 *  2. The reopened state is the model after some prefix k >= last synced
 *     batch; nothing never written appears; point reads agree with scans.
 *  3. Running out of space fails the write (or a later one) with an error;
 *     reads of the open handle still return everything acknowledged; after
 *     reopen with space restored, every synced batch is present.
 *  4. A failing mutating operation (sticky or once) never corrupts the
 *     store: it reopens without faults with every synced batch present;
 *     faults during lsm_open leave the store as it was.
 *  5. Named snapshots created now and then in the power-cut and
 *     failing-operation workloads: one whose create returned exists after
 *     recovery and reads exactly the model as it was at the create (which
 *     also makes every batch before it durable); one whose create or
 *     delete failed may or may not exist, but if it does it is complete.
 *     A deletion that returned is not undone by a cut.
 *
 * On failure the test prints the seed, the cycle and the batch index.
 * LSM_TEST_SCALE=n divides the number of cycles by n; LSM_TEST_SEED adds a
 * seed to the power-cut test.
 *
 * Thread-safety: single-threaded test driver (the engine's background
 * threads run underneath). A SIGALRM watchdog turns a hang into a failure
 * that names the phase.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "env/env.h"
#include "env/env_fault.h"
#include "lsm.h"
#include "testutil.h"

#define N_KEYS 1000
#define KEY_LEN 7 /* "k" + 6 digits */
#define MAX_BOPS 12
#define MAX_VALUE 5000

/* ---- watchdog: a hang becomes a failure naming the phase ---- */

static volatile const char *watchdog_phase = "";

static void watchdog_fire(int sig)
{
	(void)sig;
	static const char msg[] = "\nTEST HUNG (watchdog) in phase: ";
	const char *p = (const char *)watchdog_phase;
	if (write(2, msg, sizeof(msg) - 1) < 0 || write(2, p, strlen(p)) < 0 ||
	    write(2, "\n", 1) < 0)
		_exit(3);
	_exit(2);
}

static void watchdog_arm(unsigned seconds, const char *phase)
{
	watchdog_phase = phase;
	signal(SIGALRM, watchdog_fire);
	alarm(seconds);
}

/* ---- keys, values, model ---- */

static void key_of(unsigned r, char out[KEY_LEN + 1])
{
	snprintf(out, KEY_LEN + 1, "k%06u", r);
}

/* Rank of a key "k%06u" < N_KEYS, or -1 for anything else. */
static int rank_of(const void *k, size_t len)
{
	const char *s = k;
	if (len != KEY_LEN || s[0] != 'k')
		return -1;
	unsigned r = 0;
	for (size_t i = 1; i < KEY_LEN; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		r = r * 10 + (unsigned)(s[i] - '0');
	}
	return r < N_KEYS ? (int)r : -1;
}

struct mslot {
	uint64_t vgen; /* 0: absent */
	uint32_t vlen; /* 0 when absent */
	uint32_t pad;
};

/* Values are >= 12 bytes: [u32 rank][u64 generation][bytes from gen]. */
static void fill_value(uint8_t *buf, size_t len, uint32_t rank, uint64_t g)
{
	uint64_t s = g * 0x2545f4914f6cdd1dull + rank;
	for (int b = 0; b < 4; b++)
		buf[b] = (uint8_t)(rank >> (8 * b));
	for (int b = 0; b < 8; b++)
		buf[4 + b] = (uint8_t)(g >> (8 * b));
	for (size_t i = 12; i < len;) {
		uint64_t r = rnd(&s);
		for (int b = 0; b < 8 && i < len; b++, i++)
			buf[i] = (uint8_t)(r >> (8 * b));
	}
}

/* Decodes and verifies a value; 0 if it is one we could have written. */
static int parse_value(const uint8_t *v, size_t len, uint32_t rank,
		       uint64_t *gen)
{
	uint8_t exp[MAX_VALUE];
	if (len < 12 || len > MAX_VALUE)
		return -1;
	uint32_t r = 0;
	uint64_t g = 0;
	for (int b = 0; b < 4; b++)
		r |= (uint32_t)v[b] << (8 * b);
	for (int b = 0; b < 8; b++)
		g |= (uint64_t)v[4 + b] << (8 * b);
	if (r != rank || g == 0)
		return -1;
	fill_value(exp, len, rank, g);
	if (memcmp(exp, v, len) != 0)
		return -1;
	*gen = g;
	return 0;
}

struct bop {
	uint8_t kind; /* 0 put, 1 delete, 2 delete range [r, r2) */
	uint32_t r, r2, vlen;
	uint64_t vgen;
};

struct cbatch {
	int n;
	bool synced;
	struct bop ops[MAX_BOPS];
};

static void apply_batch(struct mslot *m, const struct cbatch *b)
{
	for (int i = 0; i < b->n; i++) {
		const struct bop *o = &b->ops[i];
		if (o->kind == 0) {
			m[o->r].vgen = o->vgen;
			m[o->r].vlen = o->vlen;
		} else if (o->kind == 1) {
			m[o->r].vgen = 0;
			m[o->r].vlen = 0;
		} else {
			for (uint32_t j = o->r; j < o->r2; j++) {
				m[j].vgen = 0;
				m[j].vlen = 0;
			}
		}
	}
}

/* ---- the test context ---- */

#define MAX_NAMED 4

/* A named snapshot the test made: the model when it was created. */
struct named {
	enum { NAMED_FREE, NAMED_ACKED, NAMED_MAYBE } status;
	char name[24];
	struct mslot state[N_KEYS];
};

struct cctx {
	uint64_t seed, rs;
	const char *test;
	unsigned cycle;
	char dir[512];
	lsm_options opts;
	lsm_env *env;
	lsm_db *db;
	struct mslot model[N_KEYS]; /* state of the store at cycle start,
				     * then updated by acknowledged batches */
	struct mslot base[N_KEYS];  /* state at cycle start */
	struct cbatch *batches;     /* this cycle's attempted batches */
	int n_batches, cap_batches;
	int last_synced;  /* index of the last acked synced batch, or -1 */
	int n_acked;      /* batches[0..n_acked) were acknowledged */
	bool failed_tail; /* batches[n_acked] failed: may or may not apply */
	uint64_t next_gen;
	struct named named[MAX_NAMED];
	unsigned named_counter; /* names are fresh: "n<counter>" */
	lsm_batch *b;
	uint8_t vbuf[MAX_VALUE];
	/* statistics */
	unsigned n_cuts, n_torn, n_lost_unsynced, n_write_errors;
	unsigned n_named_created, n_named_checked, n_named_unsure;
};

#define CFAIL(c, ...)                                                   \
	do {                                                            \
		print_error("%s seed=%llu cycle=%u: ", (c)->test,       \
			    (unsigned long long)(c)->seed, (c)->cycle); \
		print_error(__VA_ARGS__);                               \
		print_error("\n");                                      \
		fail();                                                 \
	} while (0)

static void crash_options(struct cctx *c)
{
	lsm_options_init(&c->opts);
	c->opts.write_buffer_size = 64 << 10;
	c->opts.target_file_size = 32 << 10;
	c->opts.max_bytes_for_level_base = 128 << 10;
	c->opts.level0_compaction_trigger = 2;
	c->opts.block_size = 1024;
	c->opts.max_open_files = 32;
	c->opts.env = c->env;
}

static void cctx_init(struct cctx *c, const char *test, uint64_t seed)
{
	memset(c, 0, sizeof(*c));
	c->test = test;
	c->seed = seed;
	c->rs = mix64(seed ^ 0xc4a5ull);
	c->next_gen = 1;
	c->env = env_fault_new(env_posix());
	assert_non_null(c->env);
	c->b = lsm_batch_new();
	assert_non_null(c->b);
	c->cap_batches = 64;
	c->batches = malloc((size_t)c->cap_batches * sizeof(*c->batches));
	assert_non_null(c->batches);
	make_test_dir(c->dir, sizeof(c->dir), test);
	crash_options(c);
}

static void cctx_free(struct cctx *c)
{
	if (c->db != NULL)
		lsm_close(c->db);
	c->db = NULL;
	remove_test_dir(c->dir);
	env_fault_free(c->env);
	lsm_batch_free(c->b);
	free(c->batches);
}

static void begin_cycle(struct cctx *c)
{
	memcpy(c->base, c->model, sizeof(c->model));
	c->n_batches = 0;
	c->n_acked = 0;
	c->last_synced = -1;
	c->failed_tail = false;
}

static int open_db(struct cctx *c)
{
	lsm_db *db = NULL;
	int rc = lsm_open(c->dir, &c->opts, &db);
	if (rc != 0) {
		if (db != NULL)
			CFAIL(c, "failed lsm_open (%d) left *out != NULL", rc);
		return rc;
	}
	c->db = db;
	return 0;
}

static uint32_t pick_vlen(struct cctx *c)
{
	if (rnd_below(&c->rs, 50) == 0)
		return 4000 + (uint32_t)rnd_below(&c->rs, 900);
	return 12 + (uint32_t)rnd_below(&c->rs, 600);
}

/* Builds a random batch, writes it, records it. Returns lsm_write's rc. */
static int write_random_batch(struct cctx *c, unsigned sync_pct)
{
	if (c->n_batches == c->cap_batches) {
		c->cap_batches *= 2;
		c->batches = realloc(c->batches, (size_t)c->cap_batches *
							 sizeof(*c->batches));
		assert_non_null(c->batches);
	}
	struct cbatch *bt = &c->batches[c->n_batches];
	char k[KEY_LEN + 1], k2[KEY_LEN + 1];
	int rc;
	bt->n = 1 + (int)rnd_below(&c->rs, MAX_BOPS);
	bt->synced = rnd_below(&c->rs, 100) < sync_pct;
	lsm_batch_clear(c->b);
	for (int i = 0; i < bt->n; i++) {
		struct bop *o = &bt->ops[i];
		uint64_t t = rnd_below(&c->rs, 100);
		o->r = (uint32_t)rnd_below(&c->rs, N_KEYS);
		key_of(o->r, k);
		if (t < 75) {
			o->kind = 0;
			o->vlen = pick_vlen(c);
			o->vgen = c->next_gen++;
			fill_value(c->vbuf, o->vlen, o->r, o->vgen);
			rc = lsm_batch_put(c->b, k, KEY_LEN, c->vbuf, o->vlen);
		} else if (t < 95 || o->r + 1 >= N_KEYS) {
			o->kind = 1;
			rc = lsm_batch_delete(c->b, k, KEY_LEN);
		} else {
			o->kind = 2;
			o->r2 = o->r + 1 + (uint32_t)rnd_below(&c->rs, 20);
			if (o->r2 > N_KEYS - 1)
				o->r2 = N_KEYS - 1;
			key_of(o->r2, k2);
			rc = lsm_batch_delete_range(c->b, k, KEY_LEN, k2,
						    KEY_LEN);
		}
		assert_int_equal(rc, 0);
	}
	c->n_batches++;
	rc = lsm_write(c->db, c->b, bt->synced ? LSM_SYNC : 0);
	if (rc == 0) {
		assert_int_equal(c->n_acked, c->n_batches - 1);
		c->n_acked++;
		if (bt->synced)
			c->last_synced = c->n_batches - 1;
		apply_batch(c->model, bt);
	} else {
		c->failed_tail = true;
		c->n_write_errors++;
	}
	return rc;
}

/* Reads the whole store with an iterator into `out`; fails the test on
 * garbage. Returns 0, or the iterator's error. */
static int scan_db_at(struct cctx *c, const lsm_snapshot *snap,
		      struct mslot *out)
{
	lsm_iter_options io;
	lsm_iter *it = NULL;
	lsm_iter_options_init(&io);
	io.snapshot = snap;
	int rc = lsm_iter_new(c->db, &io, &it);
	if (rc != 0)
		return rc;
	memset(out, 0, N_KEYS * sizeof(*out));
	int prev = -1;
	for (lsm_iter_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
		size_t kl, vl;
		const void *k = lsm_iter_key(it, &kl);
		const void *v = lsm_iter_value(it, &vl);
		int r = rank_of(k, kl);
		uint64_t g;
		if (r < 0)
			CFAIL(c, "scan: a key that was never written (len %zu)",
			      kl);
		if (r <= prev)
			CFAIL(c, "scan: keys out of order (%d after %d)", r,
			      prev);
		if (parse_value(v, vl, (uint32_t)r, &g) != 0)
			CFAIL(c, "scan: garbage value for k%06d (len %zu)", r,
			      vl);
		if (g >= c->next_gen)
			CFAIL(c, "scan: value generation %llu never written",
			      (unsigned long long)g);
		out[r].vgen = g;
		out[r].vlen = (uint32_t)vl;
		prev = r;
	}
	rc = lsm_iter_status(it);
	lsm_iter_free(it);
	return rc;
}

static int scan_db(struct cctx *c, struct mslot *out)
{
	return scan_db_at(c, NULL, out);
}

/* Point reads of a sample of keys must agree with a scanned state. */
static void check_gets(struct cctx *c, const struct mslot *st, unsigned step)
{
	char k[KEY_LEN + 1];
	for (unsigned r = (unsigned)rnd_below(&c->rs, step); r < N_KEYS;
	     r += step) {
		void *v = NULL;
		size_t vl = 0;
		uint64_t g = 0;
		key_of(r, k);
		int rc = lsm_get(c->db, NULL, k, KEY_LEN, &v, &vl);
		if (st[r].vgen == 0) {
			if (rc == 0)
				lsm_free(v);
			if (rc != LSM_E_NOTFOUND)
				CFAIL(c, "get k%06u: expected NOTFOUND, got %d",
				      r, rc);
			continue;
		}
		if (rc != 0)
			CFAIL(c, "get k%06u: expected a value, got %d (%s)", r,
			      rc, lsm_errdetail());
		int bad = parse_value(v, vl, r, &g);
		lsm_free(v);
		if (bad || g != st[r].vgen || vl != st[r].vlen)
			CFAIL(c,
			      "get k%06u: gen %llu len %zu, scan said gen "
			      "%llu len %u",
			      r, (unsigned long long)g, vl,
			      (unsigned long long)st[r].vgen, st[r].vlen);
	}
}

/*
 * Finds k with state(base + batches[0..k)) == got, need <= k <= max_k.
 * Returns k, or fails the test explaining what is wrong.
 */
static int match_prefix(struct cctx *c, const struct mslot *got, int need,
			int max_k, const char *when)
{
	static struct mslot st[N_KEYS]; /* single-threaded test */
	memcpy(st, c->base, sizeof(st));
	int best = -1, below = -1;
	for (int k = 0; k <= max_k; k++) {
		if (k > 0)
			apply_batch(st, &c->batches[k - 1]);
		if (memcmp(st, got, sizeof(st)) == 0) {
			if (k >= need)
				best = k;
			else
				below = k;
		}
	}
	if (best >= 0)
		return best;
	/* explain: the first difference from the state after `need` */
	memcpy(st, c->base, sizeof(st));
	for (int k = 0; k < need && k < max_k; k++)
		apply_batch(st, &c->batches[k]);
	int diff = -1;
	for (int r = 0; r < N_KEYS; r++)
		if (memcmp(&st[r], &got[r], sizeof(st[r])) != 0) {
			diff = r;
			break;
		}
	if (below >= 0)
		CFAIL(c,
		      "%s: synced data lost: state matches only batch "
		      "prefix %d, but batch %d was synced (of %d acked); "
		      "first diff key k%06d",
		      when, below, need - 1, c->n_acked, diff);
	CFAIL(c,
	      "%s: state matches no batch prefix (need >= %d of %d "
	      "attempted); vs prefix %d first diff key k%06d: got gen %llu, "
	      "expected gen %llu",
	      when, need, max_k, need, diff,
	      diff >= 0 ? (unsigned long long)got[diff].vgen : 0ull,
	      diff >= 0 ? (unsigned long long)st[diff].vgen : 0ull);
	return -1;
}

/* After reopen: scan, check gets, find the prefix, adopt it as model. */
static int verify_recovered(struct cctx *c, const char *when)
{
	static struct mslot got[N_KEYS];
	int rc = scan_db(c, got);
	if (rc != 0)
		CFAIL(c, "%s: scan failed %d (%s)", when, rc, lsm_errdetail());
	check_gets(c, got, 3);
	int max_k = c->n_acked + (c->failed_tail ? 1 : 0);
	int k = match_prefix(c, got, c->last_synced + 1, max_k, when);
	if (k < c->n_acked)
		c->n_lost_unsynced++;
	memcpy(c->model, got, sizeof(got));
	return k;
}

static void maybe_background_op(struct cctx *c)
{
	uint64_t t = rnd_below(&c->rs, 1000);
	if (t < 8)
		lsm_flush(c->db); /* errors reported by later writes */
	else if (t < 10) {
		char a[KEY_LEN + 1], z[KEY_LEN + 1];
		unsigned r = (unsigned)rnd_below(&c->rs, N_KEYS);
		key_of(r, a);
		key_of(r + (unsigned)rnd_below(&c->rs, N_KEYS - r), z);
		lsm_compact_range(c->db, a, KEY_LEN, z, KEY_LEN);
	}
}

/* ---- named snapshots ---- */

/* Now and then: create a named snapshot of the model (a full slot
 * deletes its oldest first). A failed create or delete leaves the
 * snapshot's existence unknown until the next recovery. */
static void maybe_named_op(struct cctx *c, unsigned per_mille)
{
	int free_slot = -1, oldest = -1;
	int rc;
	if (rnd_below(&c->rs, 1000) >= per_mille)
		return;
	for (int i = 0; i < MAX_NAMED; i++) {
		if (c->named[i].status == NAMED_FREE) {
			if (free_slot < 0)
				free_slot = i;
		} else if (oldest < 0 ||
			   strcmp(c->named[i].name + 1,
				  c->named[oldest].name + 1) < 0) {
			oldest = i;
		}
	}
	if (free_slot < 0) {
		struct named *n = &c->named[oldest];
		if (n->status != NAMED_ACKED)
			return; /* settled at the next recovery */
		rc = lsm_snapshot_delete(c->db, n->name);
		if (rc == 0)
			n->status = NAMED_FREE;
		else if (rc == LSM_E_NOTFOUND)
			CFAIL(c, "delete %s: not found", n->name);
		else
			n->status = NAMED_MAYBE;
		return;
	}
	struct named *n = &c->named[free_slot];
	/* zero-padded, so that names compare in creation order */
	snprintf(n->name, sizeof(n->name), "n%08u", c->named_counter++);
	memcpy(n->state, c->model, sizeof(n->state));
	rc = lsm_snapshot_create(c->db, n->name, NULL);
	if (rc == 0) {
		n->status = NAMED_ACKED;
		/* the create synced every batch acknowledged before it */
		if (c->n_acked > 0)
			c->last_synced = c->n_acked - 1;
		c->n_named_created++;
	} else {
		if (rc == LSM_E_EXISTS || rc == -EINVAL)
			CFAIL(c, "create %s: %d", n->name, rc);
		n->status = NAMED_MAYBE;
	}
}

/* After recovery: every acknowledged snapshot exists and equals its
 * state; an unsure one, if it exists, too; nothing else exists. */
static void verify_named(struct cctx *c, const char *when)
{
	static struct mslot got[N_KEYS]; /* single-threaded test */
	lsm_snapshot_info *a = NULL;
	size_t n = 0, n_have = 0;
	for (int i = 0; i < MAX_NAMED; i++) {
		struct named *nm = &c->named[i];
		lsm_snapshot *s = NULL;
		if (nm->status == NAMED_FREE)
			continue;
		int rc = lsm_snapshot_open(c->db, nm->name, &s);
		if (rc == LSM_E_NOTFOUND && nm->status == NAMED_MAYBE) {
			nm->status = NAMED_FREE;
			c->n_named_unsure++;
			continue;
		}
		if (rc != 0)
			CFAIL(c, "%s: named snapshot %s (%s): open failed %d",
			      when, nm->name,
			      nm->status == NAMED_ACKED ? "acknowledged"
							: "unsure",
			      rc);
		rc = scan_db_at(c, s, got);
		if (rc != 0)
			CFAIL(c, "%s: scan of snapshot %s failed: %d (%s)",
			      when, nm->name, rc, lsm_errdetail());
		lsm_snapshot_release(c->db, s);
		for (int r = 0; r < N_KEYS; r++)
			if (memcmp(&got[r], &nm->state[r], sizeof(got[r])) != 0)
				CFAIL(c,
				      "%s: named snapshot %s: k%06d has gen "
				      "%llu, expected gen %llu",
				      when, nm->name, r,
				      (unsigned long long)got[r].vgen,
				      (unsigned long long)nm->state[r].vgen);
		nm->status = NAMED_ACKED;
		n_have++;
		c->n_named_checked++;
	}
	int rc = lsm_snapshot_list(c->db, 0, &a, &n);
	if (rc != 0)
		CFAIL(c, "%s: lsm_snapshot_list: %d", when, rc);
	lsm_free(a);
	if (n != n_have)
		CFAIL(c, "%s: %zu named snapshots, expected %zu", when, n,
		      n_have);
}

/* ---- power cuts ---- */

static void run_power_cuts(void **state, uint64_t seed, unsigned n_cycles)
{
	struct cctx *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	cctx_init(c, "powercut", seed);
	*state = c; /* freed by crash_teardown if the test fails */
	print_message("powercut seed=%llu cycles=%u dir=%s\n",
		      (unsigned long long)seed, n_cycles, c->dir);
	watchdog_arm(300, "powercut: open");
	assert_int_equal(open_db(c), 0);
	for (c->cycle = 0; c->cycle < n_cycles; c->cycle++) {
		begin_cycle(c);
		watchdog_arm(120, "powercut: workload");
		int n = 1 + (int)rnd_below(&c->rs, 250);
		unsigned sync_pct = 30;
		for (int i = 0; i < n; i++) {
			int rc = write_random_batch(c, sync_pct);
			if (rc != 0)
				CFAIL(c,
				      "write %d failed before the cut: %d "
				      "(%s)",
				      i, rc, lsm_errdetail());
			maybe_background_op(c);
			maybe_named_op(c, 15);
		}
		bool torn = rnd_below(&c->rs, 2) == 0;
		uint64_t torn_seed = torn ? rnd(&c->rs) | 1 : 0;
		/* sometimes wait a moment so background work is mid-way */
		if (rnd_below(&c->rs, 4) == 0)
			usleep((useconds_t)rnd_below(&c->rs, 2000));
		env_fault_power_cut(c->env, torn_seed);
		c->n_cuts++;
		c->n_torn += torn;
		watchdog_arm(120, "powercut: lsm_close after cut");
		lsm_close(c->db); /* errors allowed */
		c->db = NULL;
		env_fault_reset(c->env);
		watchdog_arm(120, "powercut: reopen");
		int rc = open_db(c);
		if (rc != 0)
			CFAIL(c, "reopen after %s power cut failed: %d %s (%s)",
			      torn ? "torn" : "clean", rc, lsm_strerror(rc),
			      lsm_errdetail());
		verify_recovered(c, torn ? "after torn cut" : "after cut");
		verify_named(c, torn ? "after torn cut" : "after cut");
		/* now and then a clean close/reopen cycle too */
		if (rnd_below(&c->rs, 10) == 0) {
			assert_int_equal(lsm_close(c->db), 0);
			c->db = NULL;
			assert_int_equal(open_db(c), 0);
			begin_cycle(c);
			verify_recovered(c, "after clean reopen");
			verify_named(c, "after clean reopen");
		}
	}
	alarm(0);
	print_message("powercut seed=%llu: %u cuts (%u torn); %u recoveries "
		      "dropped acknowledged unsynced batches (allowed); %u "
		      "named snapshots created, checked %u times\n",
		      (unsigned long long)seed, c->n_cuts, c->n_torn,
		      c->n_lost_unsynced, c->n_named_created,
		      c->n_named_checked);
	*state = NULL;
	cctx_free(c);
	free(c);
}

static void test_power_cut(void **state)
{
	unsigned n = 220 / test_scale();
	run_power_cuts(state, 11, n < 20 ? 20 : n);
}

static void test_power_cut_env_seed(void **state)
{
	const char *s = getenv("LSM_TEST_SEED");
	if (s == NULL || s[0] == '\0') {
		print_message("LSM_TEST_SEED not set\n");
		skip();
	}
	unsigned n = 220 / test_scale();
	run_power_cuts(state, strtoull(s, NULL, 0), n < 20 ? 20 : n);
}

/* A cut right after the first writes to a new store, before anything was
 * synced: the store must open (empty or with a prefix). */
static void test_power_cut_fresh_store(void **state)
{
	for (unsigned i = 0; i < 20; i++) {
		struct cctx *c = calloc(1, sizeof(*c));
		assert_non_null(c);
		cctx_init(c, "powercut-fresh", 100 + i);
		*state = c;
		c->cycle = i;
		watchdog_arm(60, "powercut-fresh");
		assert_int_equal(open_db(c), 0);
		begin_cycle(c);
		for (unsigned j = 0; j < i * 3; j++)
			assert_int_equal(write_random_batch(c, 0), 0);
		env_fault_power_cut(c->env, i % 2 ? mix64(i) | 1 : 0);
		lsm_close(c->db);
		c->db = NULL;
		env_fault_reset(c->env);
		int rc = open_db(c);
		if (rc != 0)
			CFAIL(c, "fresh store after cut does not open: %d (%s)",
			      rc, lsm_errdetail());
		verify_recovered(c, "fresh store after cut");
		*state = NULL;
		cctx_free(c);
		free(c);
	}
	alarm(0);
}

/* ---- out of space ---- */

static void test_enospc(void **state)
{
	struct cctx *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	cctx_init(c, "enospc", 7);
	*state = c; /* freed by crash_teardown if the test fails */
	unsigned iters = 30 / test_scale();
	if (iters < 6)
		iters = 6;
	unsigned n_no_error = 0;
	for (c->cycle = 0; c->cycle < iters; c->cycle++) {
		/* a fresh fault env: the limit counts only files it writes */
		env_fault_free(c->env);
		c->env = env_fault_new(env_posix());
		assert_non_null(c->env);
		c->opts.env = c->env;
		watchdog_arm(120, "enospc: open");
		assert_int_equal(open_db(c), 0);
		begin_cycle(c);
		int pre = 10 + (int)rnd_below(&c->rs, 60);
		for (int i = 0; i < pre; i++)
			assert_int_equal(write_random_batch(c, 30), 0);
		uint64_t limit = 4096 + rnd_below(&c->rs, 160 << 10);
		env_fault_set_space_limit(c->env, limit);
		watchdog_arm(120, "enospc: writing into a full disk");
		int rc = 0, i;
		for (i = 0; i < 4000 && rc == 0; i++) {
			rc = write_random_batch(c, 30);
			if (rc == 0 && rnd_below(&c->rs, 50) == 0)
				lsm_flush(c->db);
		}
		if (rc == 0) {
			n_no_error++;
			print_message("enospc cycle %u: limit %llu never hit\n",
				      c->cycle, (unsigned long long)limit);
		} else if (rc >= 0 || rc == LSM_E_NOTFOUND) {
			CFAIL(c, "write into full disk: odd status %d", rc);
		}
		/* reads keep working and show every acknowledged batch */
		static struct mslot got[N_KEYS];
		watchdog_arm(120, "enospc: reads after the error");
		int src = scan_db(c, got);
		if (src != 0)
			CFAIL(c, "scan after ENOSPC failed: %d (%s)", src,
			      lsm_errdetail());
		check_gets(c, got, 5);
		/* every acked batch is visible (the failed one may be) */
		match_prefix(c, got, c->n_acked,
			     c->n_acked + (c->failed_tail ? 1 : 0),
			     "open handle after ENOSPC");
		watchdog_arm(120, "enospc: close");
		lsm_close(c->db); /* the poisoning error is allowed */
		c->db = NULL;
		env_fault_reset(c->env);
		watchdog_arm(120, "enospc: reopen");
		rc = open_db(c);
		if (rc != 0)
			CFAIL(c, "reopen after ENOSPC failed: %d (%s)", rc,
			      lsm_errdetail());
		int k = verify_recovered(c, "reopen after ENOSPC");
		if (k < c->n_acked)
			print_message("enospc cycle %u: reopen kept %d of %d "
				      "acknowledged batches (last synced %d)\n",
				      c->cycle, k, c->n_acked, c->last_synced);
		assert_int_equal(lsm_close(c->db), 0);
		c->db = NULL;
	}
	alarm(0);
	print_message("enospc: %u cycles, %u never hit the limit\n", iters,
		      n_no_error);
	assert_true(n_no_error < iters);
	*state = NULL;
	cctx_free(c);
	free(c);
}

/* ---- failing the n-th mutating operation ---- */

static void test_fail_nth(void **state)
{
	struct cctx *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	cctx_init(c, "fail_nth", 99);
	*state = c; /* freed by crash_teardown if the test fails */
	unsigned cycles = 120 / test_scale();
	if (cycles < 12)
		cycles = 12;
	unsigned n_open_failed = 0, n_hit = 0;
	for (c->cycle = 0; c->cycle < cycles; c->cycle++) {
		bool sticky = rnd_below(&c->rs, 10) < 7;
		int err = rnd_below(&c->rs, 2) ? -EIO : -ENOSPC;
		begin_cycle(c);
		watchdog_arm(120, "fail_nth: open");
		if (rnd_below(&c->rs, 4) == 0) {
			/* the fault strikes during lsm_open / recovery */
			env_fault_fail_nth(c->env, 1 + rnd_below(&c->rs, 40),
					   err, sticky);
			int rc = open_db(c);
			if (rc != 0) {
				n_open_failed++;
				env_fault_reset(c->env);
				rc = open_db(c);
				if (rc != 0)
					CFAIL(c,
					      "open after a failed open "
					      "failed: %d (%s)",
					      rc, lsm_errdetail());
				verify_recovered(c, "after failed open");
				verify_named(c, "after failed open");
				lsm_close(c->db);
				c->db = NULL;
				continue;
			}
		} else {
			assert_int_equal(open_db(c), 0);
			env_fault_fail_nth(c->env, 1 + rnd_below(&c->rs, 300),
					   err, sticky);
		}
		watchdog_arm(120, "fail_nth: workload");
		int n = 20 + (int)rnd_below(&c->rs, 300);
		for (int i = 0; i < n; i++) {
			if (write_random_batch(c, 30) != 0) {
				n_hit++;
				break;
			}
			maybe_background_op(c);
			maybe_named_op(c, 20);
		}
		watchdog_arm(120, "fail_nth: close");
		lsm_close(c->db); /* errors allowed */
		c->db = NULL;
		env_fault_reset(c->env);
		watchdog_arm(120, "fail_nth: reopen");
		int rc = open_db(c);
		if (rc != 0)
			CFAIL(c,
			      "reopen after failing op (%s, %s) failed: %d "
			      "(%s)",
			      sticky ? "sticky" : "once", strerror(-err), rc,
			      lsm_errdetail());
		verify_recovered(c, "reopen after failing op");
		verify_named(c, "reopen after failing op");
		assert_int_equal(lsm_close(c->db), 0);
		c->db = NULL;
	}
	alarm(0);
	print_message("fail_nth: %u cycles, %u writes failed, %u opens "
		      "failed; %u named snapshots created, %u unsure ones "
		      "absent\n",
		      cycles, n_hit, n_open_failed, c->n_named_created,
		      c->n_named_unsure);
	*state = NULL;
	cctx_free(c);
	free(c);
}

/* A failed test leaves its context behind (fail() jumps out): close the
 * store, remove its directory, and disarm the watchdog so that it cannot
 * fire in the next test. */
static int crash_teardown(void **state)
{
	struct cctx *c = *state;
	alarm(0);
	if (c != NULL) {
		cctx_free(c);
		free(c);
		*state = NULL;
	}
	return 0;
}

int main(void)
{
	/* LSM_TEST_FILTER=pattern runs only the matching tests */
	if (getenv("LSM_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("LSM_TEST_FILTER"));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_power_cut_fresh_store,
					  crash_teardown),
		cmocka_unit_test_teardown(test_power_cut, crash_teardown),
		cmocka_unit_test_teardown(test_power_cut_env_seed,
					  crash_teardown),
		cmocka_unit_test_teardown(test_enospc, crash_teardown),
		cmocka_unit_test_teardown(test_fail_nth, crash_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
