/*
 * test_snapshot.c - named snapshots and checkpoints (db_snap.c, the
 * manifest records of version/, db_snapshot_space() in db_iter.c).
 *
 * What and why: a named snapshot is a promise that outlives the process:
 * the versions it sees stay readable through overwrites, flushes,
 * compactions, reopens and power cuts until it is deleted, and deleting it
 * gives their space back. A checkpoint is a second store made of hard
 * links. These tests hold the engine to those promises with exact
 * expected states (a generation number per key), not by sampling.
 *
 * Invariants checked:
 *  1. API: bad names are -EINVAL, a taken name LSM_E_EXISTS, an unknown
 *     one LSM_E_NOTFOUND; ids are 1, 2, 3... in creation order and never
 *     reused (not even after the newest is deleted and the store
 *     reopened); the list is oldest first; created_ns is the wall clock.
 *  2. A snapshot reads exactly the state at its creation, through every
 *     kind of write after it, flushes, full compactions and reopens
 *     (each reopen writes a fresh manifest from the recorded state).
 *  3. While a snapshot lives, compaction keeps what it sees (about twice
 *     the bytes after a full overwrite); once deleted, compaction drops it.
 *  4. LSM_SNAPSHOT_SPACE reports, byte for byte, the keys and values only
 *     one snapshot sees, the same whether the data is in the memtable or
 *     in SSTs.
 *  5. A create that returned survives a power cut and sees every write
 *     acknowledged before it; a create cut at any step leaves either a
 *     complete snapshot or none, and the store opens.
 *  6. A checkpoint opens as its own store (own identity) holding exactly
 *     the state at the call and the named snapshots, and outlives the
 *     source's files.
 *  7. Snapshots created while writers run are atomic with respect to
 *     batches and include every batch acknowledged before the create.
 *
 * Tests named after a bug reproduce it directly (their comment says
 * what was wrong and which test found it).
 *
 * Stores live in LSM_TEST_DIR, else /dev/shm, else TMPDIR or /tmp;
 * LSM_TEST_SCALE=n shortens the randomized parts.
 *
 * Thread-safety: test_concurrent_create and test_create_races_flush run
 * threads of their own; those report failures through their own result
 * fields (cmocka assertions only on the main thread, after the threads
 * are stopped).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "env/env.h"
#include "env/env_fault.h"
#include "lsm.h"
#include "testutil.h"
#include "util/coding.h"
#include "version/version.h"

/* ---- keys, values and expected states ---- */

#define N_KEYS 2000
#define VAL_MAX 200

static size_t key_of(unsigned i, char *buf)
{
	return (size_t)snprintf(buf, 16, "k%05u", i);
}

/* The value of key i at generation g (g > 0): names both, and its length
 * varies with them so that a value from another generation never matches. */
static size_t val_of(uint32_t g, unsigned i, char *buf)
{
	int n = snprintf(buf, VAL_MAX, "g%u-k%05u-", g, i);
	size_t len = (size_t)n + (g * 7u + i) % 90;
	for (size_t j = (size_t)n; j < len; j++)
		buf[j] = (char)('a' + (g + j) % 26);
	return len;
}

/* An expected state: gen[i] is key i's generation, 0 when absent. */
struct state {
	uint32_t gen[N_KEYS];
};

static void put_key(lsm_db *db, struct state *st, unsigned i, uint32_t g,
		    int flags)
{
	char k[16], v[VAL_MAX];
	size_t kl = key_of(i, k), vl = val_of(g, i, v);
	assert_int_equal(lsm_put(db, k, kl, v, vl, flags), 0);
	if (st)
		st->gen[i] = g;
}

static void del_key(lsm_db *db, struct state *st, unsigned i)
{
	char k[16];
	size_t kl = key_of(i, k);
	assert_int_equal(lsm_delete(db, k, kl, 0), 0);
	if (st)
		st->gen[i] = 0;
}

/* Deletes keys [a, b). */
static void del_range(lsm_db *db, struct state *st, unsigned a, unsigned b)
{
	char ka[16], kb[16];
	size_t al = key_of(a, ka), bl = key_of(b, kb);
	assert_int_equal(lsm_delete_range(db, ka, al, kb, bl, 0), 0);
	for (unsigned i = a; st && i < b && i < N_KEYS; i++)
		st->gen[i] = 0;
}

/* Compares a view (snap NULL: now) with st: a full forward scan, a
 * backward scan, and point reads of every `step`-th key. Returns the
 * first mismatch as text in why (empty when equal); usable off the main
 * thread. */
static bool view_equals(lsm_db *db, const lsm_snapshot *snap,
			const struct state *st, unsigned step, char *why,
			size_t why_cap)
{
	lsm_iter_options io;
	lsm_iter *it = NULL;
	char k[16], v[VAL_MAX];
	unsigned i = 0;
	int rc;

	why[0] = '\0';
	lsm_iter_options_init(&io);
	io.snapshot = snap;
	rc = lsm_iter_new(db, &io, &it);
	if (rc) {
		snprintf(why, why_cap, "lsm_iter_new: %d", rc);
		return false;
	}
	for (lsm_iter_first(it); lsm_iter_valid(it); lsm_iter_next(it), i++) {
		size_t kl, vl;
		const void *kp = lsm_iter_key(it, &kl);
		const void *vp = lsm_iter_value(it, &vl);
		while (i < N_KEYS && st->gen[i] == 0)
			i++;
		if (i == N_KEYS) {
			snprintf(why, why_cap, "scan: extra key %.*s", (int)kl,
				 (const char *)kp);
			goto fail;
		}
		size_t ekl = key_of(i, k), evl = val_of(st->gen[i], i, v);
		if (kl != ekl || memcmp(kp, k, kl) != 0) {
			snprintf(why, why_cap, "scan: key %.*s, expected %s",
				 (int)kl, (const char *)kp, k);
			goto fail;
		}
		if (vl != evl || memcmp(vp, v, vl) != 0) {
			snprintf(why, why_cap,
				 "scan: %s = %.*s, expected generation %u", k,
				 (int)(vl < 16 ? vl : 16), (const char *)vp,
				 st->gen[i]);
			goto fail;
		}
	}
	rc = lsm_iter_status(it);
	while (i < N_KEYS && st->gen[i] == 0)
		i++;
	if (rc || i != N_KEYS) {
		snprintf(why, why_cap, "scan: status %d, stopped before k%05u",
			 rc, i);
		goto fail;
	}
	/* backward */
	i = N_KEYS;
	for (lsm_iter_last(it); lsm_iter_valid(it); lsm_iter_prev(it)) {
		size_t kl;
		const void *kp = lsm_iter_key(it, &kl);
		while (i > 0 && st->gen[i - 1] == 0)
			i--;
		if (i == 0) {
			snprintf(why, why_cap, "reverse scan: extra key");
			goto fail;
		}
		i--;
		size_t ekl = key_of(i, k);
		if (kl != ekl || memcmp(kp, k, kl) != 0) {
			snprintf(why, why_cap,
				 "reverse scan: key %.*s, expected %s", (int)kl,
				 (const char *)kp, k);
			goto fail;
		}
	}
	while (i > 0 && st->gen[i - 1] == 0)
		i--;
	if (lsm_iter_status(it) || i != 0) {
		snprintf(why, why_cap, "reverse scan ended early at k%05u", i);
		goto fail;
	}
	lsm_iter_free(it);
	for (i = 0; i < N_KEYS; i += step) {
		void *got = NULL;
		size_t gl = 0, kl = key_of(i, k);
		rc = lsm_get(db, snap, k, kl, &got, &gl);
		if (st->gen[i] == 0) {
			if (rc == 0)
				lsm_free(got);
			if (rc != LSM_E_NOTFOUND) {
				snprintf(why, why_cap,
					 "get %s: %d, expected NOTFOUND", k,
					 rc);
				return false;
			}
			continue;
		}
		size_t evl = val_of(st->gen[i], i, v);
		bool ok = rc == 0 && gl == evl && memcmp(got, v, gl) == 0;
		if (rc == 0)
			lsm_free(got);
		if (!ok) {
			snprintf(why, why_cap,
				 "get %s: rc %d, expected generation %u", k, rc,
				 st->gen[i]);
			return false;
		}
	}
	return true;
fail:
	lsm_iter_free(it);
	return false;
}

static void assert_view(lsm_db *db, const lsm_snapshot *snap,
			const struct state *st, const char *what)
{
	char why[256];
	if (!view_equals(db, snap, st, 3, why, sizeof(why))) {
		print_error("%s: %s\n", what, why);
		fail();
	}
}

/* The named snapshot `name` equals st. */
static void assert_named(lsm_db *db, const char *name, const struct state *st,
			 const char *what)
{
	lsm_snapshot *s = NULL;
	int rc = lsm_snapshot_open(db, name, &s);
	if (rc)
		print_error("%s: open snapshot %s: %d (%s)\n", what, name, rc,
			    lsm_errdetail());
	assert_int_equal(rc, 0);
	char why[256];
	bool ok = view_equals(db, s, st, 3, why, sizeof(why));
	lsm_snapshot_release(db, s);
	if (!ok) {
		print_error("%s: %s\n", what, why);
		fail();
	}
}

static bool snap_exists(lsm_db *db, const char *name)
{
	lsm_snapshot *s = NULL;
	int rc = lsm_snapshot_open(db, name, &s);
	if (rc == 0) {
		lsm_snapshot_release(db, s);
		return true;
	}
	assert_int_equal(rc, LSM_E_NOTFOUND);
	assert_null(s);
	return false;
}

/* Sum of the sizes of the *.sst files in dir. */
static uint64_t sst_bytes(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t sum = 0;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		char p[1024];
		struct stat sb;
		if (n < 4 || strcmp(e->d_name + n - 4, ".sst") != 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (stat(p, &sb) == 0)
			sum += (uint64_t)sb.st_size;
	}
	closedir(d);
	return sum;
}

/* Bytes of the files the engine wrote in dir (all but its text LOG). */
static uint64_t store_bytes(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t sum = 0;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char p[1024];
		struct stat sb;
		if (strcmp(e->d_name, "LOG") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode))
			sum += (uint64_t)sb.st_size;
	}
	closedir(d);
	return sum;
}

static void small_options(lsm_options *o)
{
	lsm_options_init(o);
	o->write_buffer_size = 64 << 10;
	o->target_file_size = 64 << 10;
	o->max_bytes_for_level_base = 256 << 10;
	o->level0_compaction_trigger = 2;
	o->block_size = 1024;
}

/* A test's store: its directory and handle, cleaned up by teardown even
 * when an assertion jumps out. */
struct tctx {
	char dir[512];
	char base[512]; /* dir's parent: room for checkpoints */
	lsm_options o;
	lsm_db *db;
	lsm_env *env;         /* fault env, when the test uses one */
	lsm_db *other;        /* a second store (checkpoint) */
	struct state st, st2; /* scratch expected states */
	struct state *more;   /* t_states(): more of them */
};

/* n expected states, zeroed, freed by teardown (also after a failure). */
static struct state *t_states(struct tctx *t, size_t n)
{
	free(t->more);
	t->more = calloc(n, sizeof(*t->more));
	assert_non_null(t->more);
	return t->more;
}

static int setup(void **state)
{
	struct tctx *t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	make_test_dir(t->dir, sizeof(t->dir), "snap");
	snprintf(t->base, sizeof(t->base), "%s", t->dir);
	*strrchr(t->base, '/') = '\0';
	small_options(&t->o);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tctx *t = *state;
	if (t->db)
		lsm_close(t->db);
	if (t->other)
		lsm_close(t->other);
	rm_rf(t->base);
	if (t->env)
		env_fault_free(t->env);
	free(t->more);
	free(t);
	return 0;
}

static void t_open(struct tctx *t)
{
	int rc = lsm_open(t->dir, &t->o, &t->db);
	if (rc)
		print_error("lsm_open: %d (%s)\n", rc, lsm_errdetail());
	assert_int_equal(rc, 0);
}

static void t_reopen(struct tctx *t)
{
	assert_int_equal(lsm_close(t->db), 0);
	t->db = NULL;
	t_open(t);
}

static void list_all(lsm_db *db, int flags, lsm_snapshot_info **a, size_t *n)
{
	int rc = lsm_snapshot_list(db, flags, a, n);
	if (rc)
		print_error("lsm_snapshot_list: %d (%s)\n", rc,
			    lsm_errdetail());
	assert_int_equal(rc, 0);
	assert_non_null(*a);
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void identity_of(lsm_db *db, char out[33]);
static void check_space(lsm_db *db, const uint64_t *want, size_t n_want,
			const char *when);

/* ---- 1. API basics ---- */

static void test_api_basics(void **state)
{
	struct tctx *t = *state;
	lsm_snapshot_info info, i2, i3;
	lsm_snapshot_info *a = NULL;
	lsm_snapshot *s = NULL;
	char longname[LSM_SNAPSHOT_NAME_MAX + 2];
	size_t n = 99;

	t_open(t);
	/* an empty list is an array of none */
	list_all(t->db, 0, &a, &n);
	assert_int_equal(n, 0);
	lsm_free(a);

	/* bad names */
	memset(longname, 'x', sizeof(longname));
	longname[LSM_SNAPSHOT_NAME_MAX + 1] = '\0'; /* 256 bytes */
	assert_int_equal(lsm_snapshot_create(t->db, NULL, NULL), -EINVAL);
	assert_int_equal(lsm_snapshot_create(t->db, "", NULL), -EINVAL);
	assert_int_equal(lsm_snapshot_create(t->db, longname, NULL), -EINVAL);
	assert_int_equal(lsm_snapshot_delete(t->db, NULL), -EINVAL);
	assert_int_equal(lsm_snapshot_delete(t->db, ""), -EINVAL);
	assert_int_equal(lsm_snapshot_delete(t->db, longname), -EINVAL);
	assert_int_equal(lsm_snapshot_open(t->db, NULL, &s), -EINVAL);
	assert_int_equal(lsm_snapshot_open(t->db, "", &s), -EINVAL);
	assert_int_equal(lsm_snapshot_open(t->db, longname, &s), -EINVAL);
	assert_null(s);
	assert_int_equal(lsm_snapshot_list(t->db, 0, NULL, &n), -EINVAL);
	list_all(t->db, 0, &a, &n);
	assert_int_equal(n, 0);
	lsm_free(a);

	/* unknown names */
	assert_int_equal(lsm_snapshot_delete(t->db, "nope"), LSM_E_NOTFOUND);
	assert_int_equal(lsm_snapshot_open(t->db, "nope", &s), LSM_E_NOTFOUND);
	assert_null(s);

	/* ids in order, created_ns is now, seqs follow the writes */
	put_key(t->db, NULL, 1, 1, 0);
	int64_t t0 = now_ns();
	assert_int_equal(lsm_snapshot_create(t->db, "first", &info), 0);
	int64_t t1 = now_ns();
	assert_string_equal(info.name, "first");
	assert_int_equal(info.id, 1);
	assert_true(info.seq >= 1);
	assert_true(info.created_ns >= t0 - 1000000000ll &&
		    info.created_ns <= t1 + 1000000000ll);
	assert_int_equal(info.exclusive_bytes, 0);
	put_key(t->db, NULL, 2, 1, 0);
	/* the longest name is fine; names are bytes, not words */
	longname[LSM_SNAPSHOT_NAME_MAX] = '\0';
	assert_int_equal(lsm_snapshot_create(t->db, longname, &i2), 0);
	assert_int_equal(i2.id, 2);
	assert_true(i2.seq > info.seq);
	assert_int_equal(
		lsm_snapshot_create(t->db, "a name/with\x01 odd bytes", &i3),
		0);
	assert_int_equal(i3.id, 3);
	assert_true(i3.seq == i2.seq); /* nothing written in between */

	/* duplicate */
	assert_int_equal(lsm_snapshot_create(t->db, "first", NULL),
			 LSM_E_EXISTS);
	assert_int_equal(lsm_snapshot_create(t->db, longname, NULL),
			 LSM_E_EXISTS);

	/* list: oldest first, the same records */
	list_all(t->db, 0, &a, &n);
	assert_int_equal(n, 3);
	assert_string_equal(a[0].name, "first");
	assert_string_equal(a[1].name, longname);
	assert_string_equal(a[2].name, "a name/with\x01 odd bytes");
	for (size_t i = 0; i < n; i++)
		assert_int_equal(a[i].id, i + 1);
	assert_int_equal(a[0].seq, info.seq);
	assert_int_equal(a[0].created_ns, info.created_ns);
	assert_int_equal(a[1].seq, i2.seq);
	assert_true(a[1].created_ns >= a[0].created_ns);
	lsm_free(a);

	/* an open handle sees the snapshot's sequence */
	assert_int_equal(lsm_snapshot_open(t->db, "first", &s), 0);
	assert_non_null(s);
	assert_int_equal(lsm_snapshot_seq(s), info.seq);
	lsm_snapshot_release(t->db, s);

	/* delete the newest, reopen, create: a new id, never 3 again */
	assert_int_equal(
		lsm_snapshot_delete(t->db, "a name/with\x01 odd bytes"), 0);
	assert_int_equal(
		lsm_snapshot_delete(t->db, "a name/with\x01 odd bytes"),
		LSM_E_NOTFOUND);
	t_reopen(t);
	assert_int_equal(lsm_snapshot_create(t->db, "after", &info), 0);
	assert_int_equal(info.id, 4);
	/* and a deleted name can be taken again, with a new id */
	assert_int_equal(
		lsm_snapshot_create(t->db, "a name/with\x01 odd bytes", &info),
		0);
	assert_int_equal(info.id, 5);
	/* delete everything, reopen twice: the counter still goes on */
	assert_int_equal(lsm_snapshot_delete(t->db, "first"), 0);
	assert_int_equal(lsm_snapshot_delete(t->db, longname), 0);
	assert_int_equal(lsm_snapshot_delete(t->db, "after"), 0);
	assert_int_equal(
		lsm_snapshot_delete(t->db, "a name/with\x01 odd bytes"), 0);
	t_reopen(t);
	list_all(t->db, 0, &a, &n);
	assert_int_equal(n, 0);
	lsm_free(a);
	t_reopen(t);
	assert_int_equal(lsm_snapshot_create(t->db, "first", &info), 0);
	assert_int_equal(info.id, 6);
	list_all(t->db, 0, &a, &n);
	assert_int_equal(n, 1);
	assert_int_equal(a[0].id, 6);
	assert_string_equal(a[0].name, "first");
	lsm_free(a);
}

/* ---- 2. persistence ---- */

static void check_list_same(lsm_db *db, const lsm_snapshot_info *want,
			    size_t n_want)
{
	lsm_snapshot_info *a = NULL;
	size_t n = 0;
	list_all(db, 0, &a, &n);
	assert_int_equal(n, n_want);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(a[i].name, want[i].name);
		assert_int_equal(a[i].id, want[i].id);
		assert_int_equal(a[i].seq, want[i].seq);
		assert_int_equal(a[i].created_ns, want[i].created_ns);
	}
	lsm_free(a);
}

static void test_persistence(void **state)
{
	struct tctx *t = *state;
	struct state *one = t_states(t, 2), *two = one + 1;
	struct state *now = &t->st;
	lsm_snapshot_info info[2];
	lsm_snapshot *h = NULL;
	assert_non_null(one);
	assert_non_null(two);

	t_open(t);
	memset(now, 0, sizeof(*now));
	for (unsigned i = 0; i < N_KEYS; i++)
		put_key(t->db, now, i, 1, 0);
	assert_int_equal(lsm_flush(t->db), 0);
	for (unsigned i = 0; i < N_KEYS; i += 3)
		put_key(t->db, now, i, 2, 0); /* some in L0, some in memory */
	assert_int_equal(lsm_snapshot_create(t->db, "one", &info[0]), 0);
	*one = *now;

	/* every kind of write after it */
	for (unsigned i = 0; i < N_KEYS; i++)
		put_key(t->db, now, i, 3, 0);
	for (unsigned i = 0; i < 100; i++)
		del_key(t->db, now, i);
	del_range(t->db, now, 500, 600);
	assert_int_equal(lsm_snapshot_create(t->db, "two", &info[1]), 0);
	*two = *now;
	for (unsigned i = 100; i < 200; i++)
		put_key(t->db, now, i, 4, 0);
	del_range(t->db, now, 0, N_KEYS); /* everything */
	for (unsigned i = 1000; i < 1100; i++)
		put_key(t->db, now, i, 5, 0);
	assert_view(t->db, NULL, now, "now, in memory");
	assert_named(t->db, "one", one, "one, before flush");
	assert_named(t->db, "two", two, "two, before flush");

	/* flush and a full compaction (which drops every older version no
	 * snapshot sees) */
	assert_int_equal(lsm_flush(t->db), 0);
	assert_named(t->db, "one", one, "one, after flush");
	assert_int_equal(lsm_compact_range(t->db, NULL, 0, NULL, 0), 0);
	assert_view(t->db, NULL, now, "now, compacted");
	assert_named(t->db, "one", one, "one, compacted");
	assert_named(t->db, "two", two, "two, compacted");

	/* reopen several times: each writes a fresh manifest from the
	 * recorded state; compact in between */
	for (int r = 0; r < 4; r++) {
		t_reopen(t);
		check_list_same(t->db, info, 2);
		assert_named(t->db, "one", one, "one, reopened");
		assert_named(t->db, "two", two, "two, reopened");
		assert_view(t->db, NULL, now, "now, reopened");
		for (unsigned i = 1500; i < 1600; i++)
			put_key(t->db, now, i, 6 + (uint32_t)r, 0);
		if (r % 2)
			assert_int_equal(
				lsm_compact_range(t->db, NULL, 0, NULL, 0), 0);
	}

	/* a handle outlives the deletion of its snapshot, even through a
	 * full compaction */
	assert_int_equal(lsm_snapshot_open(t->db, "one", &h), 0);
	assert_int_equal(lsm_snapshot_delete(t->db, "one"), 0);
	assert_false(snap_exists(t->db, "one"));
	assert_int_equal(lsm_compact_range(t->db, NULL, 0, NULL, 0), 0);
	assert_view(t->db, h, one, "handle on deleted snapshot one");
	lsm_snapshot_release(t->db, h);
	assert_int_equal(lsm_compact_range(t->db, NULL, 0, NULL, 0), 0);
	assert_named(t->db, "two", two, "two, after one was deleted");
	t_reopen(t);
	assert_false(snap_exists(t->db, "one"));
	check_list_same(t->db, &info[1], 1);
	assert_named(t->db, "two", two, "two, last reopen");
	assert_view(t->db, NULL, now, "now, last reopen");
}

/* Bug: recovery writes the replayed WAL to L0 through flush_mem() with
 * no snapshot list (db_write_level0 in db_bg.c), so of two versions of a
 * key in one WAL only the newest survives, even when a named snapshot
 * sees the older one. Found by test_create_survives_power_cut. */
static void test_recovery_flush_keeps_named_snapshot_versions(void **state)
{
	struct tctx *t = *state;
	void *v = NULL;
	size_t vl = 0;
	lsm_snapshot *s = NULL;
	t_open(t);
	assert_int_equal(lsm_put(t->db, "k", 1, "old", 3, 0), 0);
	assert_int_equal(lsm_snapshot_create(t->db, "s", NULL), 0);
	assert_int_equal(lsm_put(t->db, "k", 1, "new", 3, 0), 0);
	t_reopen(t); /* the WAL holds both versions: replayed, then written */
	assert_int_equal(lsm_snapshot_open(t->db, "s", &s), 0);
	int rc = lsm_get(t->db, s, "k", 1, &v, &vl);
	lsm_snapshot_release(t->db, s);
	bool ok = rc == 0 && vl == 3 && memcmp(v, "old", 3) == 0;
	if (rc == 0)
		lsm_free(v);
	if (!ok)
		print_error("snapshot s reads k: rc %d, len %zu\n", rc, vl);
	assert_true(ok);
	assert_int_equal(lsm_get(t->db, NULL, "k", 1, &v, &vl), 0);
	assert_memory_equal(v, "new", 3);
	lsm_free(v);
}

/* A snapshot of an empty store (sequence 0) sees nothing, ever. */
static void test_snapshot_of_empty_store(void **state)
{
	struct tctx *t = *state;
	lsm_snapshot_info info;
	static const uint64_t zero[] = {0};
	memset(&t->st2, 0, sizeof(t->st2));
	t_open(t);
	assert_int_equal(lsm_snapshot_create(t->db, "empty", &info), 0);
	assert_int_equal(info.id, 1);
	for (unsigned i = 0; i < N_KEYS; i++)
		put_key(t->db, NULL, i, 1, 0);
	assert_named(t->db, "empty", &t->st2, "empty snapshot, memtable");
	assert_int_equal(lsm_compact_range(t->db, NULL, 0, NULL, 0), 0);
	t_reopen(t);
	assert_named(t->db, "empty", &t->st2, "empty snapshot, compacted");
	check_space(t->db, zero, 1, "empty snapshot");
}

/* IDENTITY: made at the first open, kept; a store without one (made
 * before identities existed) gets one; a damaged one is corruption. */
static void test_identity(void **state)
{
	struct tctx *t = *state;
	char a[33], b[33], c[33], path[600];
	FILE *f;
	t_open(t);
	identity_of(t->db, a);
	t_reopen(t);
	identity_of(t->db, b);
	assert_string_equal(a, b);
	assert_int_equal(lsm_close(t->db), 0);
	t->db = NULL;
	snprintf(path, sizeof(path), "%s/IDENTITY", t->dir);
	assert_int_equal(unlink(path), 0);
	t_open(t);
	identity_of(t->db, c);
	assert_string_not_equal(a, c);
	t_reopen(t);
	identity_of(t->db, b);
	assert_string_equal(b, c);
	assert_int_equal(lsm_close(t->db), 0);
	t->db = NULL;
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("0123456789abcdef0123456789abcdeX\n", f);
	fclose(f);
	assert_int_equal(lsm_open(t->dir, &t->o, &t->db), LSM_E_CORRUPT);
	assert_null(t->db);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("0123456789abcdef", f); /* short */
	fclose(f);
	assert_int_equal(lsm_open(t->dir, &t->o, &t->db), LSM_E_CORRUPT);
	assert_null(t->db);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "%s\n", c);
	fclose(f);
	t_open(t);
	identity_of(t->db, b);
	assert_string_equal(b, c);
}

/* ---- 3. reclaim ---- */

#define RECLAIM_KEYS 2048
#define RECLAIM_VAL 4096

static void fill_random(uint8_t *p, size_t n, uint64_t *rs)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t r = rnd(rs);
		memcpy(p + i, &r, n - i < 8 ? n - i : 8);
	}
}

static void test_reclaim(void **state)
{
	struct tctx *t = *state;
	uint8_t *v = malloc(RECLAIM_VAL);
	uint64_t rs = 42, one = 0, two, three;
	assert_non_null(v);
	t->o.write_buffer_size = 1 << 20;
	t->o.target_file_size = 1 << 20;
	t->o.max_bytes_for_level_base = 4 << 20;
	for (int l = 0; l < LSM_MAX_LEVELS; l++)
		t->o.compression[l] = LSM_COMPRESS_NONE;
	t_open(t);
	for (int round = 0; round < 2; round++) {
		for (unsigned i = 0; i < RECLAIM_KEYS; i++) {
			char k[16];
			size_t kl = key_of(i, k);
			fill_random(v, RECLAIM_VAL, &rs);
			assert_int_equal(
				lsm_put(t->db, k, kl, v, RECLAIM_VAL, 0), 0);
		}
		assert_int_equal(lsm_compact_range(t->db, NULL, 0, NULL, 0), 0);
		if (round == 0) {
			one = sst_bytes(t->dir);
			assert_int_equal(lsm_snapshot_create(t->db, "s", NULL),
					 0);
		}
	}
	two = sst_bytes(t->dir);
	assert_int_equal(lsm_snapshot_delete(t->db, "s"), 0);
	assert_int_equal(lsm_compact_range(t->db, NULL, 0, NULL, 0), 0);
	three = sst_bytes(t->dir);
	print_message("reclaim: %llu bytes, %llu with the snapshot, %llu "
		      "after deleting it\n",
		      (unsigned long long)one, (unsigned long long)two,
		      (unsigned long long)three);
	assert_true(one >= (uint64_t)RECLAIM_KEYS * RECLAIM_VAL);
	assert_true(one < (uint64_t)RECLAIM_KEYS * RECLAIM_VAL * 11 / 10);
	assert_true(two > one * 19 / 10 && two < one * 22 / 10);
	assert_true(three < one * 11 / 10);
	free(v);
}

/* ---- 4. exclusive space ---- */

static void sput(lsm_db *db, const char *k, const char *v)
{
	assert_int_equal(lsm_put(db, k, strlen(k), v, strlen(v), 0), 0);
}

/* Asserts the exclusive bytes of the snapshots, in list order. */
static void check_space(lsm_db *db, const uint64_t *want, size_t n_want,
			const char *when)
{
	lsm_snapshot_info *a = NULL;
	size_t n = 0;
	bool ok;
	list_all(db, LSM_SNAPSHOT_SPACE, &a, &n);
	ok = n == n_want;
	for (size_t i = 0; ok && i < n; i++)
		ok = a[i].exclusive_bytes == want[i];
	if (!ok) {
		print_error("%s: exclusive bytes:", when);
		for (size_t i = 0; i < n; i++)
			print_error(" %s=%llu", a[i].name,
				    (unsigned long long)a[i].exclusive_bytes);
		print_error("; expected");
		for (size_t i = 0; i < n_want; i++)
			print_error(" %llu", (unsigned long long)want[i]);
		print_error("\n");
	}
	/* without the flag: zero */
	lsm_free(a);
	list_all(db, 0, &a, &n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(a[i].exclusive_bytes, 0);
	lsm_free(a);
	assert_true(ok);
}

/*
 * A hand-built history. Sizes are key + value bytes.
 *
 *   before S1: a=AAAA (5), b=BB (3), c=CCC (4), d=DDDDD (6), g=G1 (3)
 *   S1
 *   a=A2 (3), e=EE (3), g=G2 (3) then g=G3 (3)     [g=G2 is seen by no one]
 *   S2
 *   b=B33 (4), delete e, delete_range [c, d), h=HHHHHHHH (9)
 *   S3
 *   b=B4444 (6), c=C5 (3)
 *
 * Who sees what (S1, S2, S3, live):
 *   a=AAAA S1 only -> S1 += 5;  a=A2 S2 S3 live
 *   b=BB S1 S2;  b=B33 S3 only -> S3 += 4;  b=B4444 live
 *   c=CCC S1 S2 (the range deletion hides it from S3 and live); c=C5 live
 *   d, g=G1.. : d shared by all; g=G1 S1 only -> S1 += 3; g=G3 S2 S3 live
 *   e=EE S2 only -> S2 += 3; the deletion of e: S3 and live
 *   h: S3 and live
 * So S1 = 8, S2 = 3, S3 = 4.
 *
 * Deleting S2 moves what S1 and S2 shared to S1 (b=BB 3, c=CCC 4): S1 =
 * 15; e=EE is then seen by no one (freed). S3 stays 4.
 * Deleting S3 too: b=B33 is seen by no one, a=A2 and h are live; S1 = 15.
 */
static void build_space_history(lsm_db *db)
{
	sput(db, "a", "AAAA");
	sput(db, "b", "BB");
	sput(db, "c", "CCC");
	sput(db, "d", "DDDDD");
	sput(db, "g", "G1");
	assert_int_equal(lsm_snapshot_create(db, "S1", NULL), 0);
	sput(db, "a", "A2");
	sput(db, "e", "EE");
	sput(db, "g", "G2");
	sput(db, "g", "G3");
	assert_int_equal(lsm_snapshot_create(db, "S2", NULL), 0);
	sput(db, "b", "B33");
	assert_int_equal(lsm_delete(db, "e", 1, 0), 0);
	assert_int_equal(lsm_delete_range(db, "c", 1, "d", 1, 0), 0);
	sput(db, "h", "HHHHHHHH");
	assert_int_equal(lsm_snapshot_create(db, "S3", NULL), 0);
	sput(db, "b", "B4444");
	sput(db, "c", "C5");
}

static void test_exclusive_space(void **state)
{
	struct tctx *t = *state;
	static const uint64_t three[] = {8, 3, 4}, two[] = {15, 4},
			      one[] = {15};
	t_open(t);
	build_space_history(t->db);
	check_space(t->db, three, 3, "memtable");
	assert_int_equal(lsm_flush(t->db), 0);
	check_space(t->db, three, 3, "flushed");
	assert_int_equal(lsm_compact_range(t->db, NULL, 0, NULL, 0), 0);
	check_space(t->db, three, 3, "compacted");
	t_reopen(t);
	check_space(t->db, three, 3, "reopened");

	assert_int_equal(lsm_snapshot_delete(t->db, "S2"), 0);
	check_space(t->db, two, 2, "S2 deleted");
	assert_int_equal(lsm_compact_range(t->db, NULL, 0, NULL, 0), 0);
	check_space(t->db, two, 2, "S2 deleted, compacted");
	assert_int_equal(lsm_snapshot_delete(t->db, "S3"), 0);
	check_space(t->db, one, 1, "S3 deleted");
	assert_int_equal(lsm_compact_range(t->db, NULL, 0, NULL, 0), 0);
	check_space(t->db, one, 1, "S3 deleted, compacted");
	assert_int_equal(lsm_snapshot_delete(t->db, "S1"), 0);
	check_space(t->db, NULL, 0, "none left");

	/* A second store: the same history, but kept in the memtable while
	 * the snapshots are deleted. */
	assert_int_equal(lsm_close(t->db), 0);
	t->db = NULL;
	assert_int_equal(lsm_destroy(t->dir, &t->o), 0);
	t_open(t);
	build_space_history(t->db);
	assert_int_equal(lsm_snapshot_delete(t->db, "S2"), 0);
	check_space(t->db, two, 2, "memtable, S2 deleted");
	assert_int_equal(lsm_snapshot_delete(t->db, "S3"), 0);
	check_space(t->db, one, 1, "memtable, S3 deleted");
}

/* A point deletion only a snapshot still sees is what deleting the
 * snapshot frees: its key counts. Two snapshots at one sequence share
 * everything. */
static void test_exclusive_space_tombstones_and_twins(void **state)
{
	struct tctx *t = *state;
	static const uint64_t w1[] = {0, 0, 2}, w2[] = {4, 2}, w3[] = {2},
			      w0[] = {0};
	t_open(t);
	sput(t->db, "k1", "v1");
	assert_int_equal(lsm_snapshot_create(t->db, "A", NULL), 0);
	assert_int_equal(lsm_snapshot_create(t->db, "A'", NULL), 0);
	assert_int_equal(lsm_delete(t->db, "k1", 2, 0), 0);
	assert_int_equal(lsm_snapshot_create(t->db, "B", NULL), 0);
	sput(t->db, "k1", "again");
	/* k1=v1: A and A' (shared); the deletion: B alone (2 bytes) */
	check_space(t->db, w1, 3, "twins, memtable");
	assert_int_equal(lsm_compact_range(t->db, NULL, 0, NULL, 0), 0);
	check_space(t->db, w1, 3, "twins, compacted");
	/* A' gone: k1=v1 is A's alone (4 bytes) */
	assert_int_equal(lsm_snapshot_delete(t->db, "A'"), 0);
	check_space(t->db, w2, 2, "A' deleted");
	/* A gone too: k1=v1 is seen by no one; B keeps its deletion */
	assert_int_equal(lsm_snapshot_delete(t->db, "A"), 0);
	check_space(t->db, w3, 1, "A deleted");
	/* compaction then drops k1=v1 and, at the last level, the deletion
	 * hides nothing any more: dropped too, nothing left for B */
	assert_int_equal(lsm_compact_range(t->db, NULL, 0, NULL, 0), 0);
	check_space(t->db, w0, 1, "A deleted, compacted");
}

/* ---- 5. crashes ---- */

static void fault_options(struct tctx *t)
{
	t->env = env_fault_new(env_posix());
	assert_non_null(t->env);
	t->o.env = t->env;
}

/* Power cut, close (errors allowed), reset, reopen. */
static void cut_and_reopen(struct tctx *t, uint64_t torn_seed)
{
	env_fault_power_cut(t->env, torn_seed);
	lsm_close(t->db);
	t->db = NULL;
	env_fault_reset(t->env);
	t_open(t);
}

/* Writes after a snapshot are single puts of fresh generations; after a
 * cut, the live state must be base plus a prefix of them. */
struct tail {
	unsigned key[64];
	uint32_t gen[64];
	int n;
};

static void check_prefix(lsm_db *db, const struct state *base,
			 const struct tail *tl, int need, const char *what)
{
	static struct state st; /* single-threaded test */
	char why[256];
	st = *base;
	for (int k = 0; k <= tl->n; k++) {
		if (k > 0)
			st.gen[tl->key[k - 1]] = tl->gen[k - 1];
		if (k < need)
			continue;
		if (view_equals(db, NULL, &st, N_KEYS, why, sizeof(why)))
			return;
	}
	print_error("%s: the live state is no prefix >= %d of the %d writes "
		    "after the base\n",
		    what, need, tl->n);
	fail();
}

#define CUT_SNAPS 6

static void test_create_survives_power_cut(void **state)
{
	struct tctx *t = *state;
	struct state *snaps = t_states(t, CUT_SNAPS);
	bool live[CUT_SNAPS] = {false};
	lsm_snapshot_info infos[CUT_SNAPS];
	uint64_t rs = 7;
	uint32_t gen = 1;
	unsigned cycles = 150 / test_scale();
	assert_non_null(snaps);
	fault_options(t);
	t_open(t);
	memset(&t->st, 0, sizeof(t->st));
	for (unsigned cy = 0; cy < (cycles < 10 ? 10 : cycles); cy++) {
		struct tail tl = {.n = 0};
		int slot = (int)(cy % CUT_SNAPS);
		char name[16];
		/* unsynced writes, sometimes a flush in the middle */
		int nw = 1 + (int)rnd_below(&rs, 300);
		for (int i = 0; i < nw; i++) {
			unsigned k = (unsigned)rnd_below(&rs, N_KEYS);
			if (rnd_below(&rs, 8) == 0)
				del_key(t->db, &t->st, k);
			else
				put_key(t->db, &t->st, k, gen++, 0);
			if (rnd_below(&rs, 200) == 0)
				assert_int_equal(lsm_flush(t->db), 0);
		}
		snprintf(name, sizeof(name), "c%d", slot);
		if (live[slot]) {
			/* a deletion that returned survives the cut too */
			assert_int_equal(lsm_snapshot_delete(t->db, name), 0);
			live[slot] = false;
		}
		assert_int_equal(lsm_snapshot_create(t->db, name, &infos[slot]),
				 0);
		live[slot] = true;
		snaps[slot] = t->st;
		/* unsynced writes after: may be lost */
		tl.n = (int)rnd_below(&rs, 64);
		for (int i = 0; i < tl.n; i++) {
			tl.key[i] = (unsigned)rnd_below(&rs, N_KEYS);
			tl.gen[i] = gen++;
			put_key(t->db, NULL, tl.key[i], tl.gen[i], 0);
		}
		if (rnd_below(&rs, 3) == 0)
			usleep((useconds_t)rnd_below(&rs, 2000));
		cut_and_reopen(t, cy % 2 ? rnd(&rs) | 1 : 0);
		{
			/* the live ones, with the ids and sequences create
			 * returned, oldest first */
			lsm_snapshot_info want[CUT_SNAPS], *a = NULL;
			size_t n_want = 0, n = 0;
			for (int s = 0; s < CUT_SNAPS; s++)
				if (live[s])
					want[n_want++] = infos[s];
			for (size_t i = 1; i < n_want; i++)
				for (size_t j = i;
				     j > 0 && want[j].id < want[j - 1].id;
				     j--) {
					lsm_snapshot_info x = want[j];
					want[j] = want[j - 1];
					want[j - 1] = x;
				}
			list_all(t->db, 0, &a, &n);
			bool same = n == n_want;
			for (size_t i = 0; same && i < n; i++)
				same = a[i].id == want[i].id &&
				       a[i].seq == want[i].seq &&
				       strcmp(a[i].name, want[i].name) == 0;
			if (!same) {
				print_error("cycle %u: after the cut:", cy);
				for (size_t i = 0; i < n; i++)
					print_error(
						" %s(id %llu seq %llu)",
						a[i].name,
						(unsigned long long)a[i].id,
						(unsigned long long)a[i].seq);
				print_error("; expected");
				for (size_t i = 0; i < n_want; i++)
					print_error(
						" %s(id %llu seq %llu)",
						want[i].name,
						(unsigned long long)want[i].id,
						(unsigned long long)want[i]
							.seq);
				print_error("\n");
			}
			lsm_free(a);
			assert_true(same);
		}
		for (int s = 0; s < CUT_SNAPS; s++) {
			char nm[16];
			snprintf(nm, sizeof(nm), "c%d", s);
			if (!live[s]) {
				assert_false(snap_exists(t->db, nm));
				continue;
			}
			char what[64];
			snprintf(what, sizeof(what),
				 "cycle %u: snapshot %s after power cut", cy,
				 nm);
			assert_named(t->db, nm, &snaps[s], what);
		}
		check_prefix(t->db, &t->st, &tl, 0, "after power cut");
		/* adopt what survived as the new base */
		for (int i = 0; i < tl.n; i++) {
			char k[16];
			void *v = NULL;
			size_t vl, kl = key_of(tl.key[i], k);
			int rc = lsm_get(t->db, NULL, k, kl, &v, &vl);
			if (rc == 0) {
				char e[VAL_MAX];
				size_t el = val_of(tl.gen[i], tl.key[i], e);
				if (vl == el && memcmp(v, e, el) == 0)
					t->st.gen[tl.key[i]] = tl.gen[i];
				lsm_free(v);
			}
		}
		assert_view(t->db, NULL, &t->st, "adopted state");
	}
}

/* Fails the n-th mutating operation of a create, for every n the create
 * performs (and a few more), then cuts power or just closes. */
static void create_cut_at_each_step(struct tctx *t, bool cut)
{
	uint64_t rs = cut ? 99 : 98, ops;
	uint32_t gen = 1;
	lsm_snapshot_info info;
	static struct state base; /* single-threaded test */

	fault_options(t);
	t_open(t);
	memset(&t->st, 0, sizeof(t->st));
	for (unsigned i = 0; i < N_KEYS; i++)
		put_key(t->db, &t->st, i, gen++, 0);
	assert_int_equal(lsm_flush(t->db), 0);
	/* how many mutating operations a create takes */
	put_key(t->db, &t->st, 5, gen++, 0);
	ops = env_fault_op_count(t->env);
	assert_int_equal(lsm_snapshot_create(t->db, "probe", NULL), 0);
	ops = env_fault_op_count(t->env) - ops;
	assert_int_equal(lsm_snapshot_delete(t->db, "probe"), 0);
	assert_true(ops >= 2); /* a WAL sync and a manifest record */
	print_message("a create takes %llu mutating operations\n",
		      (unsigned long long)ops);

	for (uint64_t n = 1; n <= ops + 3; n++) {
		struct tail tl = {.n = 0};
		char name[16];
		int rc;
		assert_int_equal(lsm_sync(t->db), 0);
		base = t->st;
		/* unsynced writes the create must make durable */
		tl.n = 1 + (int)rnd_below(&rs, 40);
		for (int i = 0; i < tl.n; i++) {
			tl.key[i] = (unsigned)rnd_below(&rs, N_KEYS);
			tl.gen[i] = gen++;
			put_key(t->db, &t->st, tl.key[i], tl.gen[i], 0);
		}
		snprintf(name, sizeof(name), "x%llu", (unsigned long long)n);
		env_fault_fail_nth(t->env, n, -EIO, cut);
		rc = lsm_snapshot_create(t->db, name, NULL);
		int rc2 = -1;
		char name2[24];
		snprintf(name2, sizeof(name2), "y%llu", (unsigned long long)n);
		if (cut) {
			cut_and_reopen(t, n % 2 ? mix64(n) | 1 : 0);
		} else {
			/* the failure struck once: the next create, in the
			 * same session, may well succeed (after a failed
			 * manifest append it starts a fresh manifest), unless
			 * the fault poisoned the handle */
			rc2 = lsm_snapshot_create(t->db, name2, NULL);
			lsm_close(t->db); /* errors allowed */
			t->db = NULL;
			env_fault_reset(t->env);
			t_open(t);
		}
		bool exists = snap_exists(t->db, name);
		if (rc == 0 && !exists) {
			print_error("fail op %llu: create returned 0 but the "
				    "snapshot is gone\n",
				    (unsigned long long)n);
			fail();
		}
		if (exists)
			assert_named(t->db, name, &t->st,
				     "snapshot made under a fault");
		if (rc2 == 0) {
			assert_named(t->db, name2, &t->st,
				     "snapshot made after a fault");
			assert_int_equal(lsm_snapshot_delete(t->db, name2), 0);
		} else if (!cut && snap_exists(t->db, name2)) {
			assert_named(t->db, name2, &t->st,
				     "snapshot made after a fault");
			assert_int_equal(lsm_snapshot_delete(t->db, name2), 0);
		}
		/* the live state: the base and a prefix of the writes (all of
		 * them when the snapshot exists) */
		check_prefix(t->db, &base, &tl, exists ? tl.n : 0,
			     "after a fault in create");
		/* adopt the survivors */
		for (unsigned i = 0; i < N_KEYS; i++) {
			char k[16];
			void *v = NULL;
			size_t vl, kl = key_of(i, k);
			int r2 = lsm_get(t->db, NULL, k, kl, &v, &vl);
			if (r2 == 0) {
				char vb[VAL_MAX];
				unsigned g = 0;
				assert_true(vl < sizeof(vb));
				memcpy(vb, v, vl);
				vb[vl] = '\0';
				lsm_free(v);
				assert_int_equal(sscanf(vb, "g%u-", &g), 1);
				t->st.gen[i] = g;
			} else {
				assert_int_equal(r2, LSM_E_NOTFOUND);
				t->st.gen[i] = 0;
			}
		}
		if (exists)
			assert_int_equal(lsm_snapshot_delete(t->db, name), 0);
		/* the store takes snapshots again */
		assert_int_equal(lsm_snapshot_create(t->db, name, &info), 0);
		assert_named(t->db, name, &t->st, "snapshot after recovery");
		assert_int_equal(lsm_snapshot_delete(t->db, name), 0);
	}
}

static void test_create_cut_at_each_step(void **state)
{
	create_cut_at_each_step(*state, true);
}

static void test_create_fails_at_each_step(void **state)
{
	create_cut_at_each_step(*state, false);
}

/* Bug: after a failed WAL append (wal_error) the next writer moves to a
 * new WAL without syncing the old one, whose acknowledged writes are
 * only in the OS until the background flush of its memtable ends.
 * lsm_sync(), and so lsm_snapshot_create(), sync only the new WAL: a
 * snapshot recorded then, and a power cut before that flush, leave a
 * snapshot that misses writes acknowledged before its create. */
static void test_create_after_failed_wal_append(void **state)
{
	struct tctx *t = *state;
	char pad[200];
	unsigned n = 20000;
	memset(pad, 'q', sizeof(pad));
	fault_options(t);
	t->o.write_buffer_size = 64 << 20; /* one big memtable: slow flush */
	t_open(t);
	for (unsigned i = 0; i < n; i++) {
		char k[16];
		snprintf(k, sizeof(k), "w%06u", i);
		assert_int_equal(lsm_put(t->db, k, 7, pad, sizeof(pad), 0), 0);
	}
	env_fault_fail_nth(t->env, 1, -EIO, false);
	assert_int_not_equal(lsm_put(t->db, "doomed", 6, "x", 1, 0), 0);
	/* Room for a few small writes but not for the flush's SST, so that
	 * the old memtable cannot reach an SST before the cut (which it
	 * could, by chance, in a race with the create). */
	env_fault_set_space_limit(t->env, store_bytes(t->dir) + (256 << 10));
	assert_int_equal(lsm_snapshot_create(t->db, "s", NULL), 0);
	cut_and_reopen(t, 0);
	assert_true(snap_exists(t->db, "s"));
	lsm_snapshot *s = NULL;
	assert_int_equal(lsm_snapshot_open(t->db, "s", &s), 0);
	unsigned missing = 0;
	for (unsigned i = 0; i < n; i++) {
		char k[16];
		void *v = NULL;
		size_t vl = 0;
		snprintf(k, sizeof(k), "w%06u", i);
		if (lsm_get(t->db, s, k, 7, &v, &vl) == 0)
			lsm_free(v);
		else
			missing++;
	}
	lsm_snapshot_release(t->db, s);
	if (missing)
		print_error("%u of %u writes acknowledged before the create "
			    "are missing from the snapshot\n",
			    missing, n);
	assert_int_equal(missing, 0);
}

/* Bug: replay_wal() in db.c stops at the abandoned tail of a WAL (the
 * group whose append or sync failed, past the good size the next WAL's
 * marker records) with `break` while rc still holds walr_next()'s 1, so
 * lsm_open() returned 1 and the store did not open. Found by
 * test_create_fails_at_each_step when the failing operation was the
 * create's WAL sync. */
static void test_reopen_after_failed_wal_sync(void **state)
{
	struct tctx *t = *state;
	uint64_t ops;
	void *v = NULL;
	size_t vl = 0;
	fault_options(t);
	t->o.write_buffer_size = 64 << 20; /* no flush in between */
	t_open(t);
	sput(t->db, "k1", "v1");
	/* the operations of a synced put; its last is the sync */
	ops = env_fault_op_count(t->env);
	assert_int_equal(lsm_put(t->db, "probe", 5, "p", 1, LSM_SYNC), 0);
	ops = env_fault_op_count(t->env) - ops;
	env_fault_fail_nth(t->env, ops, -EIO, false);
	assert_int_equal(lsm_put(t->db, "k2", 2, "v2", 2, LSM_SYNC), -EIO);
	sput(t->db, "k3", "v3"); /* a new WAL, marked */
	assert_int_equal(lsm_close(t->db), 0);
	t->db = NULL;
	t_open(t);
	assert_int_equal(lsm_get(t->db, NULL, "k1", 2, &v, &vl), 0);
	lsm_free(v);
	assert_int_equal(lsm_get(t->db, NULL, "probe", 5, &v, &vl), 0);
	lsm_free(v);
	assert_int_equal(lsm_get(t->db, NULL, "k3", 2, &v, &vl), 0);
	assert_memory_equal(v, "v3", 2);
	lsm_free(v);
}

/* ---- 6. checkpoints ---- */

static void identity_of(lsm_db *db, char out[33])
{
	char *s = NULL;
	assert_int_equal(lsm_property(db, "lsm.identity", &s), 0);
	assert_non_null(s);
	assert_int_equal(strlen(s), 32);
	for (int i = 0; i < 32; i++)
		assert_true((s[i] >= '0' && s[i] <= '9') ||
			    (s[i] >= 'a' && s[i] <= 'f'));
	memcpy(out, s, 33);
	lsm_free(s);
}

/* Does some *.sst of dir have more than one link? */
static bool has_linked_sst(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool found = false;
	assert_non_null(d);
	while (!found && (e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		char p[1024];
		struct stat sb;
		if (n < 4 || strcmp(e->d_name + n - 4, ".sst") != 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		found = stat(p, &sb) == 0 && sb.st_nlink > 1;
	}
	closedir(d);
	return found;
}

static void test_checkpoint(void **state)
{
	struct tctx *t = *state;
	struct state *sa = t_states(t, 3), *sb = sa + 1, *at_cp = sa + 2;
	lsm_snapshot_info ia, ib, *a = NULL;
	char cp[600], id_src[33], id_src2[33], id_cp[33], id_cp2[33];
	size_t n = 0;
	uint32_t gen = 1;
	assert_non_null(sa);
	assert_non_null(sb);
	assert_non_null(at_cp);
	snprintf(cp, sizeof(cp), "%s/cp", t->base);

	t_open(t);
	memset(&t->st, 0, sizeof(t->st));
	for (unsigned i = 0; i < N_KEYS; i++)
		put_key(t->db, &t->st, i, gen++, 0);
	assert_int_equal(lsm_compact_range(t->db, NULL, 0, NULL, 0), 0);
	assert_int_equal(lsm_snapshot_create(t->db, "a", &ia), 0);
	*sa = t->st;
	for (unsigned i = 0; i < N_KEYS; i += 2)
		put_key(t->db, &t->st, i, gen++, 0);
	assert_int_equal(lsm_flush(t->db), 0);
	del_range(t->db, &t->st, 100, 300);
	del_key(t->db, &t->st, 7);
	assert_int_equal(lsm_snapshot_create(t->db, "b", &ib), 0);
	*sb = t->st;
	for (unsigned i = 1; i < N_KEYS; i += 5)
		put_key(t->db, &t->st, i, gen++, 0); /* in the memtable */
	*at_cp = t->st;
	identity_of(t->db, id_src);

	assert_int_equal(lsm_checkpoint(t->db, cp), 0);
	assert_true(has_linked_sst(cp));
	/* into an existing path */
	assert_int_equal(lsm_checkpoint(t->db, cp), LSM_E_EXISTS);
	assert_int_equal(lsm_checkpoint(t->db, t->dir), LSM_E_EXISTS);
	assert_int_equal(lsm_checkpoint(t->db, t->base), LSM_E_EXISTS);

	/* the source goes on, and compacts away every file it linked */
	for (unsigned i = 0; i < N_KEYS; i += 3)
		put_key(t->db, &t->st, i, gen++, 0);
	del_range(t->db, &t->st, 1000, 1200);
	assert_int_equal(lsm_snapshot_delete(t->db, "a"), 0);
	assert_int_equal(lsm_snapshot_create(t->db, "c", NULL), 0);
	assert_int_equal(lsm_compact_range(t->db, NULL, 0, NULL, 0), 0);
	assert_view(t->db, NULL, &t->st, "source after the checkpoint");
	assert_named(t->db, "b", sb, "source's b after the checkpoint");

	/* the checkpoint opens beside its source */
	assert_int_equal(lsm_open(cp, &t->o, &t->other), 0);
	assert_view(t->other, NULL, at_cp, "checkpoint");
	assert_named(t->other, "a", sa, "checkpoint's a");
	assert_named(t->other, "b", sb, "checkpoint's b");
	assert_false(snap_exists(t->other, "c"));
	check_list_same(t->other, (lsm_snapshot_info[]){ia, ib}, 2);
	identity_of(t->other, id_cp);
	assert_string_not_equal(id_cp, id_src);
	assert_int_equal(lsm_close(t->other), 0);
	t->other = NULL;

	/* identities are stable across reopen */
	t_reopen(t);
	identity_of(t->db, id_src2);
	assert_string_equal(id_src, id_src2);
	assert_view(t->db, NULL, &t->st, "source reopened");

	/* the checkpoint outlives its source entirely */
	assert_int_equal(lsm_close(t->db), 0);
	t->db = NULL;
	assert_int_equal(lsm_destroy(t->dir, &t->o), 0);
	assert_int_equal(lsm_open(cp, &t->o, &t->other), 0);
	identity_of(t->other, id_cp2);
	assert_string_equal(id_cp, id_cp2);
	assert_view(t->other, NULL, at_cp, "checkpoint, source destroyed");
	assert_named(t->other, "a", sa, "checkpoint's a, source destroyed");
	assert_named(t->other, "b", sb, "checkpoint's b, source destroyed");
	/* and is a store of its own: writes, compactions, new ids */
	put_key(t->other, at_cp, 3, gen++, 0);
	assert_int_equal(lsm_snapshot_create(t->other, "d", &ia), 0);
	assert_int_equal(ia.id, 3);
	assert_int_equal(lsm_snapshot_delete(t->other, "a"), 0);
	assert_int_equal(lsm_compact_range(t->other, NULL, 0, NULL, 0), 0);
	assert_named(t->other, "b", sb, "checkpoint's b, compacted");
	assert_named(t->other, "d", at_cp, "checkpoint's d");
	list_all(t->other, 0, &a, &n);
	assert_int_equal(n, 2);
	lsm_free(a);
	assert_int_equal(lsm_close(t->other), 0);
	t->other = NULL;
}

static void test_checkpoint_of_empty_store(void **state)
{
	struct tctx *t = *state;
	char cp[600];
	lsm_snapshot_info *a = NULL;
	size_t n = 9;
	lsm_iter *it = NULL;
	snprintf(cp, sizeof(cp), "%s/cp-empty", t->base);
	t_open(t);
	assert_int_equal(lsm_checkpoint(t->db, cp), 0);
	assert_int_equal(lsm_open(cp, &t->o, &t->other), 0);
	assert_int_equal(lsm_iter_new(t->other, NULL, &it), 0);
	lsm_iter_first(it);
	assert_false(lsm_iter_valid(it));
	assert_int_equal(lsm_iter_status(it), 0);
	lsm_iter_free(it);
	list_all(t->other, 0, &a, &n);
	assert_int_equal(n, 0);
	lsm_free(a);
	sput(t->other, "x", "y");
	assert_int_equal(lsm_snapshot_create(t->other, "s", NULL), 0);
	assert_int_equal(lsm_close(t->other), 0);
	t->other = NULL;
	assert_int_equal(lsm_open(cp, &t->o, &t->other), 0);
	assert_true(snap_exists(t->other, "s"));
	void *v = NULL;
	size_t vl = 0;
	assert_int_equal(lsm_get(t->other, NULL, "x", 1, &v, &vl), 0);
	assert_int_equal(vl, 1);
	lsm_free(v);
	/* the source saw none of it */
	assert_int_equal(lsm_get(t->db, NULL, "x", 1, &v, &vl), LSM_E_NOTFOUND);
	assert_false(snap_exists(t->db, "s"));
}

/* ---- 7. concurrency ---- */

#define CW_THREADS 3
#define CW_SLOTS 300
#define CW_SNAPS 20

struct cw_shared {
	lsm_db *db;
	atomic_bool stop;
	/* acked[t]: batches of thread t acknowledged so far */
	atomic_uint_fast64_t acked[CW_THREADS];
};

struct cw_thread {
	struct cw_shared *sh;
	int id;
	int rc;
};

/* Batch number b of thread t sets (t, b % CW_SLOTS, a) and (.., b) to
 * "t.b". */
static void cw_key(int t, unsigned slot, char ab, char *k)
{
	snprintf(k, 24, "t%d-%04u-%c", t, slot, ab);
}

static void *cw_writer(void *arg)
{
	struct cw_thread *w = arg;
	struct cw_shared *sh = w->sh;
	lsm_batch *b = lsm_batch_new();
	if (!b) {
		w->rc = -ENOMEM;
		return NULL;
	}
	for (uint64_t n = 1; !atomic_load(&sh->stop) && w->rc == 0; n++) {
		char ka[24], kb[24], v[32];
		unsigned slot = (unsigned)(n % CW_SLOTS);
		int vl = snprintf(v, sizeof(v), "%d.%llu", w->id,
				  (unsigned long long)n);
		cw_key(w->id, slot, 'a', ka);
		cw_key(w->id, slot, 'b', kb);
		lsm_batch_clear(b);
		w->rc = lsm_batch_put(b, ka, strlen(ka), v, (size_t)vl);
		if (!w->rc)
			w->rc = lsm_batch_put(b, kb, strlen(kb), v, (size_t)vl);
		if (!w->rc)
			w->rc = lsm_write(sh->db, b, 0);
		if (!w->rc)
			atomic_store(&sh->acked[w->id], n);
	}
	lsm_batch_free(b);
	return NULL;
}

/* The batch number stored in a value "t.n" (0 if malformed). */
static uint64_t cw_num(const void *v, size_t vl, int t)
{
	char buf[32];
	int tt = -1;
	unsigned long long n = 0;
	if (vl == 0 || vl >= sizeof(buf))
		return 0;
	memcpy(buf, v, vl);
	buf[vl] = '\0';
	if (sscanf(buf, "%d.%llu", &tt, &n) != 2 || tt != t)
		return 0;
	return n;
}

/* Checks snapshot `name`: pairs equal, and batch acked[t] of each thread
 * (hence all before it) visible. Returns false with the reason in why;
 * no assertion, so that the caller can stop its threads first. */
static bool cw_check(lsm_db *db, const char *name, const uint64_t *acked,
		     const char *when, char *why, size_t why_cap)
{
	lsm_snapshot *s = NULL;
	lsm_iter_options io;
	lsm_iter *it = NULL;
	int rc = lsm_snapshot_open(db, name, &s);
	why[0] = '\0';
	if (rc) {
		snprintf(why, why_cap, "%s: open %s: %d", when, name, rc);
		return false;
	}
	lsm_iter_options_init(&io);
	io.snapshot = s;
	rc = lsm_iter_new(db, &io, &it);
	if (rc) {
		snprintf(why, why_cap, "%s: iterator on %s: %d", when, name,
			 rc);
		goto out;
	}
	/* pairs: 'a' is followed by its 'b' with the same value */
	for (lsm_iter_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
		size_t kl, vl, kl2 = 0, vl2 = 0;
		char ka[32], va[32];
		const char *k = lsm_iter_key(it, &kl);
		const char *v = lsm_iter_value(it, &vl);
		if (kl >= sizeof(ka) || vl >= sizeof(va) || kl < 2 ||
		    k[kl - 1] != 'a') {
			snprintf(why, why_cap, "%s: %s: odd key %.*s", when,
				 name, (int)kl, k);
			goto out;
		}
		memcpy(ka, k, kl);
		memcpy(va, v, vl);
		lsm_iter_next(it);
		if (lsm_iter_valid(it)) {
			k = lsm_iter_key(it, &kl2);
			v = lsm_iter_value(it, &vl2);
		}
		if (!lsm_iter_valid(it) || kl2 != kl ||
		    memcmp(k, ka, kl - 1) != 0 || k[kl - 1] != 'b' ||
		    vl2 != vl || memcmp(v, va, vl) != 0) {
			snprintf(why, why_cap,
				 "%s: snapshot %s: pair %.*s=%.*s without its "
				 "twin (next: %.*s=%.*s)",
				 when, name, (int)kl, ka, (int)vl, va, (int)kl2,
				 k, (int)vl2, v);
			goto out;
		}
	}
	if (lsm_iter_status(it)) {
		snprintf(why, why_cap, "%s: %s: iterator status %d", when, name,
			 lsm_iter_status(it));
		goto out;
	}
	/* every acknowledged batch: the slot of the last one holds it or a
	 * later batch of the same slot */
	for (int t = 0; t < CW_THREADS && !why[0]; t++) {
		uint64_t lo = acked[t] > CW_SLOTS ? acked[t] - CW_SLOTS + 1 : 1;
		for (uint64_t b = lo; b <= acked[t] && !why[0]; b++) {
			char k[24];
			void *v = NULL;
			size_t vl = 0;
			cw_key(t, (unsigned)(b % CW_SLOTS), 'a', k);
			rc = lsm_get(db, s, k, strlen(k), &v, &vl);
			uint64_t got = rc == 0 ? cw_num(v, vl, t) : 0;
			if (rc == 0)
				lsm_free(v);
			if (got < b || got % CW_SLOTS != b % CW_SLOTS)
				snprintf(why, why_cap,
					 "%s: snapshot %s: thread %d batch "
					 "%llu acknowledged before the "
					 "create, but %s holds batch %llu "
					 "(rc %d)",
					 when, name, t, (unsigned long long)b,
					 k, (unsigned long long)got, rc);
		}
	}
out:
	lsm_iter_free(it);
	lsm_snapshot_release(db, s);
	return why[0] == '\0';
}

static void test_concurrent_create(void **state)
{
	struct tctx *t = *state;
	struct cw_shared sh;
	struct cw_thread th[CW_THREADS];
	pthread_t tid[CW_THREADS];
	uint64_t acked[CW_SNAPS][CW_THREADS];
	char why[512] = "";
	int rc = 0;
	t_open(t);
	memset(&sh, 0, sizeof(sh));
	sh.db = t->db;
	atomic_init(&sh.stop, false);
	for (int i = 0; i < CW_THREADS; i++) {
		atomic_init(&sh.acked[i], 0);
		th[i] = (struct cw_thread){.sh = &sh, .id = i, .rc = 0};
		assert_int_equal(
			pthread_create(&tid[i], NULL, cw_writer, &th[i]), 0);
	}
	for (int s = 0; s < CW_SNAPS; s++) {
		char name[16];
		snprintf(name, sizeof(name), "cw%02d", s);
		usleep(2000 + 500 * (unsigned)s);
		for (int i = 0; i < CW_THREADS; i++)
			acked[s][i] = atomic_load(&sh.acked[i]);
		rc = lsm_snapshot_create(t->db, name, NULL);
		if (rc == 0 && !cw_check(t->db, name, acked[s], "while writing",
					 why, sizeof(why)))
			break;
		if (rc == 0 && s % 5 == 4)
			rc = lsm_flush(t->db);
		if (rc)
			break;
	}
	atomic_store(&sh.stop, true);
	for (int i = 0; i < CW_THREADS; i++)
		pthread_join(tid[i], NULL);
	if (why[0])
		print_error("%s\n", why);
	assert_int_equal(rc, 0);
	assert_true(why[0] == '\0');
	for (int i = 0; i < CW_THREADS; i++) {
		assert_int_equal(th[i].rc, 0);
		assert_true(atomic_load(&sh.acked[i]) > 0);
	}
	/* the same after a full compaction and a reopen */
	assert_int_equal(lsm_compact_range(t->db, NULL, 0, NULL, 0), 0);
	t_reopen(t);
	for (int s = 0; s < CW_SNAPS; s++) {
		char name[16];
		snprintf(name, sizeof(name), "cw%02d", s);
		if (!cw_check(t->db, name, acked[s], "reopened", why,
			      sizeof(why)))
			print_error("%s\n", why);
		assert_true(why[0] == '\0');
	}
}

/* Bug: lsm_snapshot_create() chose its sequence number, then synced the
 * WAL, and only then recorded the snapshot; a flush or compaction that
 * started in between took a snapshot list without it while its input
 * already held newer versions, and dropped the versions the new snapshot
 * was to see. Here a writer overwrites one key while another thread
 * flushes without pause, and each snapshot must see at least the value
 * acknowledged before its create began. */
struct race_arg {
	lsm_db *db;
	atomic_bool stop;
	atomic_uint_fast64_t acked;
	int wrc, frc; /* each thread's own status */
};

static void *race_writer(void *p)
{
	struct race_arg *a = p;
	char pad[512];
	memset(pad, 'p', sizeof(pad));
	for (uint64_t n = 1; !atomic_load(&a->stop) && a->wrc == 0; n++) {
		char v[24];
		int vl = snprintf(v, sizeof(v), "%llu", (unsigned long long)n);
		a->wrc = lsm_put(a->db, "x", 1, v, (size_t)vl, 0);
		if (a->wrc == 0 && n % 4 == 0)
			a->wrc = lsm_put(a->db, "pad", 3, pad, sizeof(pad), 0);
		if (a->wrc == 0)
			atomic_store(&a->acked, n);
	}
	return NULL;
}

static void *race_flusher(void *p)
{
	struct race_arg *a = p;
	while (!atomic_load(&a->stop) && a->frc == 0)
		a->frc = lsm_flush(a->db);
	return NULL;
}

static void test_create_races_flush(void **state)
{
	struct tctx *t = *state;
	struct race_arg a;
	pthread_t w, f;
	int n_snaps = (int)(2000 / test_scale());
	t_open(t);
	memset(&a, 0, sizeof(a));
	a.db = t->db;
	atomic_init(&a.stop, false);
	atomic_init(&a.acked, 0);
	assert_int_equal(pthread_create(&w, NULL, race_writer, &a), 0);
	assert_int_equal(pthread_create(&f, NULL, race_flusher, &a), 0);
	for (int i = 0; i < (n_snaps < 30 ? 30 : n_snaps); i++) {
		lsm_snapshot *s = NULL;
		void *v = NULL;
		size_t vl = 0;
		char buf[24];
		unsigned long long got = 0;
		uint64_t before = atomic_load(&a.acked);
		assert_int_equal(lsm_snapshot_create(t->db, "r", NULL), 0);
		assert_int_equal(lsm_snapshot_open(t->db, "r", &s), 0);
		int rc = lsm_get(t->db, s, "x", 1, &v, &vl);
		if (rc == 0) {
			snprintf(buf, sizeof(buf), "%.*s", (int)vl,
				 (const char *)v);
			got = strtoull(buf, NULL, 10);
			lsm_free(v);
		}
		lsm_snapshot_release(t->db, s);
		assert_int_equal(lsm_snapshot_delete(t->db, "r"), 0);
		if (before > 0 && (rc != 0 || got < before)) {
			atomic_store(&a.stop, true);
			pthread_join(w, NULL);
			pthread_join(f, NULL);
			print_error("snapshot %d: x=%llu (rc %d), but %llu was "
				    "acknowledged before the create\n",
				    i, got, rc, (unsigned long long)before);
			fail();
		}
	}
	atomic_store(&a.stop, true);
	pthread_join(w, NULL);
	pthread_join(f, NULL);
	assert_int_equal(a.wrc, 0);
	assert_int_equal(a.frc, 0);
}

/* One manifest record holding a single named-snapshot field (tag 7). */
static size_t snap_record(uint8_t *buf, uint64_t id, const char *name,
			  size_t name_len)
{
	uint8_t *p = buf;
	p = put_varint64(p, 7);
	p = put_varint64(p, id);
	p = put_varint64(p, 42);         /* seq */
	p = put_varint64(p, 1000000000); /* created_ns */
	p = put_varint64(p, name_len);
	memcpy(p, name, name_len);
	return (size_t)(p - buf) + name_len;
}

/* Junk in the manifest's snapshot fields is reported as corruption (or
 * as an unknown field), never taken in. */
static void test_manifest_snapshot_junk(void **state)
{
	uint8_t buf[600];
	char name[300];
	struct version_edit e;
	size_t n;

	(void)state;
	memset(name, 'a', sizeof(name));
	n = snap_record(buf, 3, "good", 4);
	assert_int_equal(edit_decode(&e, buf, n, "MANIFEST-x", 0), 0);
	assert_int_equal(e.n_snaps_added, 1);
	assert_string_equal(e.snaps_added[0].name, "good");
	edit_release(&e);

	n = snap_record(buf, 3, name, 0); /* empty name */
	assert_int_equal(edit_decode(&e, buf, n, "MANIFEST-x", 0),
			 LSM_E_CORRUPT);
	n = snap_record(buf, 3, name, 256); /* too long */
	assert_int_equal(edit_decode(&e, buf, n, "MANIFEST-x", 0),
			 LSM_E_CORRUPT);
	n = snap_record(buf, 0, "zero", 4); /* id 0 */
	assert_int_equal(edit_decode(&e, buf, n, "MANIFEST-x", 0),
			 LSM_E_CORRUPT);
	n = snap_record(buf, 3, "a\0b", 3); /* NUL inside */
	assert_int_equal(edit_decode(&e, buf, n, "MANIFEST-x", 0),
			 LSM_E_CORRUPT);
	n = snap_record(buf, 3, "cut", 3); /* name runs past the record */
	assert_int_equal(edit_decode(&e, buf, n - 1, "MANIFEST-x", 0),
			 LSM_E_CORRUPT);
	n = snap_record(buf, 3, "x", 1);
	buf[0] = 99; /* a tag this lsm does not know */
	assert_int_equal(edit_decode(&e, buf, n, "MANIFEST-x", 0),
			 LSM_E_FORMAT);
}

int main(void)
{
	if (getenv("LSM_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("LSM_TEST_FILTER"));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_manifest_snapshot_junk),
		cmocka_unit_test_setup_teardown(test_api_basics, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_persistence, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_recovery_flush_keeps_named_snapshot_versions,
			setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_of_empty_store,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reclaim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exclusive_space, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_exclusive_space_tombstones_and_twins, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_create_survives_power_cut,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_cut_at_each_step,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_fails_at_each_step,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_create_after_failed_wal_append, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_reopen_after_failed_wal_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_of_empty_store,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_create, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_create_races_flush, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
