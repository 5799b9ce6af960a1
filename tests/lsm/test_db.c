/*
 * test_db.c - targeted tests of the database layer (db.c, db_bg.c,
 * db_iter.c, stats.c): situations the randomized tests reach only by
 * chance.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "env/env.h"
#include "env/env_fault.h"
#include "lsm.h"
#include "util/coding.h"
#include "wal/wal.h"

struct tctx {
	char dir[256];
	lsm_options o;
	lsm_db *db;
};

static int setup(void **state)
{
	struct tctx *t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/lsm-test-db-XXXXXX");
	if (!mkdtemp(t->dir))
		return -1;
	lsm_options_init(&t->o);
	t->o.write_buffer_size = 64 << 10;
	t->o.target_file_size = 64 << 10;
	t->o.max_bytes_for_level_base = 256 << 10;
	t->o.level0_compaction_trigger = 2;
	if (lsm_open(t->dir, &t->o, &t->db) != 0)
		return -1;
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tctx *t = *state;
	if (t->db)
		lsm_close(t->db);
	lsm_destroy(t->dir, &t->o);
	free(t);
	return 0;
}

static void key_of(char *buf, size_t cap, unsigned th, unsigned i)
{
	snprintf(buf, cap, "t%u-%08u", th, i);
}

struct writer_arg {
	lsm_db *db;
	unsigned th, n;
	int rc;
};

static void *writer_main(void *p)
{
	struct writer_arg *a = p;
	char k[32], v[64];
	for (unsigned i = 0; i < a->n && a->rc == 0; i++) {
		key_of(k, sizeof(k), a->th, i);
		memset(v, 'a' + (int)(i % 26), sizeof(v));
		a->rc = lsm_put(a->db, k, strlen(k), v, sizeof(v),
				i % 64 == 0 ? LSM_SYNC : 0);
	}
	return NULL;
}

/* Starts one thread per writer_arg running fn. */
static void start_writers(pthread_t *th, struct writer_arg *a, unsigned n,
			  void *(*fn)(void *))
{
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(pthread_create(&th[i], NULL, fn, &a[i]), 0);
}

/* Joins them; each must have written everything without an error. */
static void join_writers(pthread_t *th, struct writer_arg *a, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].rc, 0);
	}
}

/* lsm_flush() holds a place in the writer queue while writers commit in
 * groups around it; every write must land and none may be lost. */
static void test_flush_while_writing(void **state)
{
	struct tctx *t = *state;
	enum { N_THREADS = 4, N_PER = 20000 };
	pthread_t th[N_THREADS];
	struct writer_arg a[N_THREADS];
	char k[32];
	for (unsigned i = 0; i < N_THREADS; i++)
		a[i] = (struct writer_arg){t->db, i, N_PER, 0};
	start_writers(th, a, N_THREADS, writer_main);
	for (int i = 0; i < 40; i++) {
		assert_int_equal(lsm_flush(t->db), 0);
		usleep(1000);
	}
	join_writers(th, a, N_THREADS);
	for (unsigned th_i = 0; th_i < N_THREADS; th_i++)
		for (unsigned i = 0; i < N_PER; i += 7) {
			size_t n;
			char v[64];
			key_of(k, sizeof(k), th_i, i);
			assert_int_equal(lsm_get_into(t->db, NULL, k, strlen(k),
						      v, sizeof(v), &n),
					 0);
			assert_int_equal(n, 64);
			assert_int_equal(v[0], 'a' + (int)(i % 26));
		}
	uint64_t writes = 0, groups = 0;
	assert_int_equal(lsm_property_u64(t->db, "lsm.user-writes", &writes),
			 0);
	assert_int_equal(lsm_property_u64(t->db, "lsm.write-groups", &groups),
			 0);
	assert_true(writes >= N_THREADS * N_PER);
	assert_true(groups <= writes);
}

static void test_get_into_short_buffer(void **state)
{
	struct tctx *t = *state;
	char buf[4];
	size_t n = 0;
	assert_int_equal(lsm_put(t->db, "key", 3, "0123456789", 10, 0), 0);
	assert_int_equal(
		lsm_get_into(t->db, NULL, "key", 3, buf, sizeof(buf), &n), 0);
	assert_int_equal(n, 10);
	assert_memory_equal(buf, "0123", 4);
	assert_int_equal(
		lsm_get_into(t->db, NULL, "nokey", 5, buf, sizeof(buf), &n),
		LSM_E_NOTFOUND);
}

static int count_range(lsm_db *db, const lsm_snapshot *s, const char *lo,
		       const char *hi)
{
	lsm_iter_options io;
	lsm_iter *it;
	int n = 0;
	lsm_iter_options_init(&io);
	io.snapshot = s;
	io.lower = lo;
	io.lower_len = strlen(lo);
	io.upper = hi;
	io.upper_len = strlen(hi);
	assert_int_equal(lsm_iter_new(db, &io, &it), 0);
	for (lsm_iter_first(it); lsm_iter_valid(it); lsm_iter_next(it))
		n++;
	assert_int_equal(lsm_iter_status(it), 0);
	lsm_iter_free(it);
	return n;
}

/* A range delete hides keys in every level at once; a snapshot taken
 * before it still sees them through flushes and compactions; once the
 * snapshot is gone a compaction drops the covered data. */
static void test_range_delete_across_levels(void **state)
{
	struct tctx *t = *state;
	char k[32];
	lsm_snapshot *snap;
	for (unsigned i = 0; i < 3000; i++) {
		key_of(k, sizeof(k), 1, i);
		assert_int_equal(
			lsm_put(t->db, k, strlen(k), "value-value", 11, 0), 0);
		if (i == 1000)
			assert_int_equal(
				lsm_compact_range(t->db, NULL, 0, NULL, 0), 0);
		if (i == 2000)
			assert_int_equal(lsm_flush(t->db), 0);
	}
	assert_int_equal(count_range(t->db, NULL, "t1-", "t1-~"), 3000);
	assert_int_equal(lsm_snapshot_acquire(t->db, &snap), 0);
	assert_int_equal(lsm_delete_range(t->db, "t1-00000500", 11,
					  "t1-00002500", 11, 0),
			 0);
	assert_int_equal(count_range(t->db, NULL, "t1-", "t1-~"), 1000);
	assert_int_equal(count_range(t->db, snap, "t1-", "t1-~"), 3000);
	assert_int_equal(lsm_compact_range(t->db, NULL, 0, NULL, 0), 0);
	assert_int_equal(count_range(t->db, NULL, "t1-", "t1-~"), 1000);
	assert_int_equal(count_range(t->db, snap, "t1-", "t1-~"), 3000);
	void *v;
	size_t n;
	assert_int_equal(lsm_get(t->db, NULL, "t1-00001000", 11, &v, &n),
			 LSM_E_NOTFOUND);
	assert_int_equal(lsm_get(t->db, snap, "t1-00001000", 11, &v, &n), 0);
	lsm_free(v);
	/* a put after the delete is visible again */
	assert_int_equal(lsm_put(t->db, "t1-00001000", 11, "back", 4, 0), 0);
	assert_int_equal(count_range(t->db, NULL, "t1-", "t1-~"), 1001);
	lsm_snapshot_release(t->db, snap);
	assert_int_equal(lsm_compact_range(t->db, NULL, 0, NULL, 0), 0);
	assert_int_equal(count_range(t->db, NULL, "t1-", "t1-~"), 1001);
	/* the covered entries are gone from the files: everything is in the
	 * last level and holds about 1001 entries' worth */
	char *levels = NULL;
	assert_int_equal(lsm_property(t->db, "lsm.levels", &levels), 0);
	assert_non_null(strstr(levels, "L6"));
	lsm_free(levels);
	uint64_t l0 = 1;
	assert_int_equal(
		lsm_property_u64(t->db, "lsm.num-files-at-level0", &l0), 0);
	assert_int_equal(l0, 0);
	/* and it all survives a reopen */
	assert_int_equal(lsm_close(t->db), 0);
	t->db = NULL;
	assert_int_equal(lsm_open(t->dir, &t->o, &t->db), 0);
	assert_int_equal(count_range(t->db, NULL, "t1-", "t1-~"), 1001);
	assert_int_equal(lsm_get(t->db, NULL, "t1-00001000", 11, &v, &n), 0);
	assert_int_equal(n, 4);
	lsm_free(v);
}

/* Key u of the version test: short, or (every 4th) longer than two words,
 * so that both copies of the saved user key and the masked tail compare of
 * the forward scan are used. */
static size_t vkey(char *buf, size_t cap, unsigned u)
{
	int n = u % 4 ? snprintf(buf, cap, "v-%05u", u)
		      : snprintf(buf, cap, "v-%05u-a-longer-user-key", u);
	return (size_t)n;
}

#define N_VKEYS 800

static uint64_t vrand(uint64_t *seed)
{
	*seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
	return *seed >> 33;
}

struct vview {
	unsigned u[N_VKEYS]; /* visible keys, ascending */
	char val[N_VKEYS][16];
	size_t n;
};

/* What a view shows, from point lookups (a path separate from the
 * iterator's). */
static void vview_load(lsm_db *db, const lsm_snapshot *s, struct vview *w)
{
	w->n = 0;
	for (unsigned u = 0; u < N_VKEYS; u++) {
		char k[40];
		void *v;
		size_t n;
		size_t kl = vkey(k, sizeof(k), u);
		int rc = lsm_get(db, s, k, kl, &v, &n);
		if (rc == LSM_E_NOTFOUND)
			continue;
		assert_int_equal(rc, 0);
		assert_true(n < sizeof(w->val[0]));
		memcpy(w->val[w->n], v, n);
		w->val[w->n][n] = 0;
		w->u[w->n++] = u;
		lsm_free(v);
	}
}

static void vexpect(lsm_iter *it, const struct vview *w, size_t i)
{
	assert_int_equal(lsm_iter_status(it), 0);
	if (i >= w->n) {
		assert_false(lsm_iter_valid(it));
		return;
	}
	char k[40];
	size_t kl = vkey(k, sizeof(k), w->u[i]), n;
	assert_true(lsm_iter_valid(it));
	const void *p = lsm_iter_key(it, &n);
	assert_int_equal(n, kl);
	assert_memory_equal(p, k, kl);
	p = lsm_iter_value(it, &n);
	assert_int_equal(n, strlen(w->val[i]));
	assert_memory_equal(p, w->val[i], n);
}

/* Checks one view's iterator against its point lookups: forward,
 * backward, seeks and walks that switch direction. */
static void vcheck(lsm_db *db, const lsm_snapshot *s, uint64_t *seed)
{
	struct vview *w = malloc(sizeof(*w));
	lsm_iter_options io;
	lsm_iter *it;
	assert_non_null(w);
	vview_load(db, s, w);
	lsm_iter_options_init(&io);
	io.snapshot = s;
	assert_int_equal(lsm_iter_new(db, &io, &it), 0);
	size_t i = 0;
	for (lsm_iter_first(it); lsm_iter_valid(it); lsm_iter_next(it))
		vexpect(it, w, i++);
	assert_int_equal(i, w->n);
	vexpect(it, w, SIZE_MAX);
	i = w->n;
	for (lsm_iter_last(it); lsm_iter_valid(it); lsm_iter_prev(it))
		vexpect(it, w, --i);
	assert_int_equal(i, 0);
	for (int r = 0; r < 60; r++) {
		unsigned target = (unsigned)(vrand(seed) % (N_VKEYS + 1));
		char k[40];
		size_t kl = vkey(k, sizeof(k), target);
		size_t pos = 0;
		while (pos < w->n && w->u[pos] < target)
			pos++;
		lsm_iter_seek(it, k, kl);
		for (int step = 0; step < 40 && pos < w->n; step++) {
			vexpect(it, w, pos);
			if (vrand(seed) % 3) {
				lsm_iter_next(it);
				pos++;
			} else {
				lsm_iter_prev(it);
				pos = pos ? pos - 1 : SIZE_MAX;
			}
		}
		vexpect(it, w, pos);
	}
	lsm_iter_free(it);
	free(w);
}

/*
 * The user iterator's forward fast paths (iter_merge_step, the level and
 * SST step functions, the saved-key comparison) against point lookups, on
 * versions of the same user keys spread over the last level, L0 files and
 * the memtable, with deletes, a range delete and two snapshots, forward,
 * backward and switching direction.
 */
static void test_iter_versions_across_levels(void **state)
{
	struct tctx *t = *state;
	lsm_snapshot *s1, *s2;
	uint64_t seed = 77;
	char k[40], v[16];
	for (unsigned u = 0; u < N_VKEYS; u++) {
		size_t kl = vkey(k, sizeof(k), u);
		snprintf(v, sizeof(v), "a%u", u);
		assert_int_equal(lsm_put(t->db, k, kl, v, strlen(v), 0), 0);
	}
	assert_int_equal(lsm_compact_range(t->db, NULL, 0, NULL, 0), 0);
	assert_int_equal(lsm_snapshot_acquire(t->db, &s1), 0);
	for (unsigned u = 0; u < N_VKEYS; u++) {
		size_t kl = vkey(k, sizeof(k), u);
		snprintf(v, sizeof(v), "b%u", u);
		if (u % 5 == 0)
			assert_int_equal(lsm_delete(t->db, k, kl, 0), 0);
		else if (u % 3 == 0)
			assert_int_equal(lsm_put(t->db, k, kl, v, strlen(v), 0),
					 0);
	}
	assert_int_equal(lsm_flush(t->db), 0);
	assert_int_equal(lsm_snapshot_acquire(t->db, &s2), 0);
	char lo[40], hi[40];
	size_t lo_len = vkey(lo, sizeof(lo), 201),
	       hi_len = vkey(hi, sizeof(hi), 262);
	assert_int_equal(lsm_delete_range(t->db, lo, lo_len, hi, hi_len, 0), 0);
	for (unsigned u = 0; u < N_VKEYS; u++) {
		size_t kl = vkey(k, sizeof(k), u);
		snprintf(v, sizeof(v), "c%u", u);
		if (u % 11 == 0)
			assert_int_equal(lsm_delete(t->db, k, kl, 0), 0);
		else if (u % 7 == 0 || (u > 230 && u < 240))
			assert_int_equal(lsm_put(t->db, k, kl, v, strlen(v), 0),
					 0);
	}
	vcheck(t->db, s1, &seed);
	vcheck(t->db, s2, &seed);
	vcheck(t->db, NULL, &seed);
	lsm_snapshot_release(t->db, s1);
	lsm_snapshot_release(t->db, s2);
}

static void test_properties(void **state)
{
	struct tctx *t = *state;
	char *text = NULL;
	uint64_t v = 0;
	assert_int_equal(lsm_put(t->db, "a", 1, "b", 1, 0), 0);
	assert_int_equal(lsm_flush(t->db), 0);
	assert_int_equal(lsm_property(t->db, "lsm.stats", &text), 0);
	assert_non_null(strstr(text, "user_bytes_written"));
	assert_non_null(strstr(text, "write_amplification"));
	assert_non_null(strstr(text, "block_cache_hits"));
	lsm_free(text);
	assert_int_equal(lsm_property_u64(t->db, "lsm.flushes", &v), 0);
	assert_true(v >= 1);
	assert_int_equal(lsm_property_u64(t->db, "lsm.user-bytes-written", &v),
			 0);
	assert_int_equal(v, 2);
	assert_int_equal(lsm_property_u64(t->db, "lsm.no-such-thing", &v),
			 -EINVAL);
	assert_non_null(strstr(lsm_errdetail(), "lsm.no-such-thing"));
	assert_int_equal(lsm_property_u64(t->db, "lsm.num-files-at-level9", &v),
			 -EINVAL);
	assert_int_equal(lsm_property(t->db, "lsm.num-files-at-level0", &text),
			 0);
	lsm_free(text);
}

static void test_bad_arguments(void **state)
{
	struct tctx *t = *state;
	lsm_batch *b = lsm_batch_new();
	assert_non_null(b);
	assert_int_equal(lsm_write(t->db, b, 0x80), -EINVAL);
	assert_int_equal(lsm_write(t->db, b, 0), 0); /* empty: nothing */
	static char big[70 << 10];
	assert_int_equal(lsm_batch_put(b, big, sizeof(big), "v", 1), -EINVAL);
	assert_int_equal(lsm_batch_count(b), 0);
	/* an empty or reversed range deletes nothing */
	assert_int_equal(lsm_batch_delete_range(b, "b", 1, "a", 1), 0);
	assert_int_equal(lsm_batch_count(b), 0);
	lsm_batch_free(b);
	assert_int_equal(lsm_get(t->db, NULL, "k", 1, NULL, NULL), -EINVAL);
}

/* Writes WAL `number` in t->dir holding one batch per key (put key=key),
 * sequence numbers from `seq`; a marker record first if marker_prev. */
static uint64_t craft_wal(struct tctx *t, uint64_t number, uint64_t seq,
			  const char *const *keys, int n, uint64_t marker_prev,
			  uint64_t marker_len)
{
	char path[512];
	struct wal_writer *w;
	snprintf(path, sizeof(path), "%s/%06llu.log", t->dir,
		 (unsigned long long)number);
	assert_int_equal(walw_open(env_posix(), path, &w), 0);
	if (marker_prev) {
		uint8_t m[40], *q = m + BATCH_HEADER;
		memset(m, 0, BATCH_HEADER);
		*q++ = WAL_MARKER_ABANDONED;
		q = put_varint64(q, marker_prev);
		q = put_varint64(q, marker_len);
		assert_int_equal(walw_add(w, m, (size_t)(q - m)), 0);
	}
	for (int i = 0; i < n; i++) {
		lsm_batch *b = lsm_batch_new();
		assert_non_null(b);
		assert_int_equal(lsm_batch_put(b, keys[i], strlen(keys[i]),
					       keys[i], strlen(keys[i])),
				 0);
		batch_set_seq(b->rep, seq + (uint64_t)i);
		assert_int_equal(walw_add(w, b->rep, b->len), 0);
		lsm_batch_free(b);
	}
	uint64_t size = walw_size(w);
	assert_int_equal(walw_close(w), 0);
	return size;
}

static void truncate_file(struct tctx *t, uint64_t number, uint64_t len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%06llu.log", t->dir,
		 (unsigned long long)number);
	assert_int_equal(truncate(path, (off_t)len), 0);
}

static bool has_key(lsm_db *db, const char *k)
{
	void *v;
	size_t n;
	int rc = lsm_get(db, NULL, k, strlen(k), &v, &n);
	if (rc == 0)
		lsm_free(v);
	return rc == 0;
}

/* Only the newest WAL may end torn: a damaged older WAL followed by a WAL
 * with newer writes would lose acknowledged writes from the middle of the
 * history, so it is corruption. After a failed append, the next WAL's
 * marker says where the older one's good part ends. */
static void test_wal_history_gap(void **state)
{
	struct tctx *t = *state;
	static const char *const a[] = {"a1", "a2", "a3"};
	static const char *const b[] = {"b1", "b2"};
	assert_int_equal(lsm_put(t->db, "k0", 2, "v", 1, LSM_SYNC), 0);
	assert_int_equal(lsm_close(t->db), 0);
	t->db = NULL;

	/* two WALs above anything the store used; the older one damaged */
	uint64_t len_a = craft_wal(t, 900, 100, a, 3, 0, 0);
	craft_wal(t, 901, 200, b, 2, 0, 0);
	truncate_file(t, 900, len_a - 3);
	assert_int_equal(lsm_open(t->dir, &t->o, &t->db), LSM_E_CORRUPT);
	assert_non_null(strstr(lsm_errdetail(), "000900.log"));
	assert_non_null(strstr(lsm_errdetail(), "later WAL"));

	/* the same, but the newer WAL says the older was abandoned after
	 * its first two records: the third is the failed append */
	uint64_t len_a2 = craft_wal(t, 900, 100, a, 2, 0, 0);
	craft_wal(t, 900, 100, a, 3, 0, 0);
	truncate_file(t, 900, len_a - 3);
	craft_wal(t, 901, 200, b, 2, 900, len_a2);
	assert_int_equal(lsm_open(t->dir, &t->o, &t->db), 0);
	assert_true(has_key(t->db, "k0"));
	assert_true(has_key(t->db, "a2"));
	assert_false(has_key(t->db, "a3"));
	assert_true(has_key(t->db, "b2"));
}

/* A marker that claims more than the older WAL holds means records of
 * its good part are missing: corruption. */
static void test_wal_marker_beyond_end(void **state)
{
	struct tctx *t = *state;
	static const char *const a[] = {"a1", "a2"};
	static const char *const b[] = {"b1"};
	assert_int_equal(lsm_close(t->db), 0);
	t->db = NULL;
	uint64_t len_a = craft_wal(t, 900, 100, a, 2, 0, 0);
	craft_wal(t, 901, 200, b, 1, 900, len_a + 100);
	assert_int_equal(lsm_open(t->dir, &t->o, &t->db), LSM_E_CORRUPT);
	assert_non_null(strstr(lsm_errdetail(), "000900.log"));
}

/* lsm_sync() makes earlier unsynced writes durable: they survive a power
 * cut right after it. */
static void *sync_writer_main(void *p)
{
	struct writer_arg *a = p;
	char k[32];
	for (unsigned i = 0; i < a->n && a->rc == 0; i++) {
		key_of(k, sizeof(k), a->th, i);
		a->rc = lsm_put(a->db, k, strlen(k), k, strlen(k), LSM_SYNC);
	}
	return NULL;
}

static uint64_t prop(lsm_db *db, const char *name)
{
	uint64_t v = 0;
	assert_int_equal(lsm_property_u64(db, name, &v), 0);
	return v;
}

/* Group commit of synced writes: a lone writer syncs every write and never
 * waits for company; writers on several threads share syncs (the leader
 * waits briefly for the others), each thread stopping at a different
 * point (later groups expect fewer writers), with lsm_flush() taking
 * queue places in between; every write lands. */
static void test_sync_group_commit(void **state)
{
	struct tctx *t = *state;
	enum { N_THREADS = 4, N_PER = 150 };
	pthread_t th[N_THREADS];
	struct writer_arg a[N_THREADS];
	uint64_t syncs0, puts = 0;
	char k[32], v[32];
	size_t n;

	a[0] = (struct writer_arg){t->db, 99, 200, 0};
	sync_writer_main(&a[0]);
	assert_int_equal(a[0].rc, 0);
	assert_int_equal(prop(t->db, "lsm.wal-syncs"), 200);
	assert_int_equal(prop(t->db, "lsm.sync-gathers"), 0);

	syncs0 = prop(t->db, "lsm.wal-syncs");
	for (unsigned i = 0; i < N_THREADS; i++) {
		a[i] = (struct writer_arg){t->db, i, N_PER * (i + 1), 0};
		puts += a[i].n;
	}
	start_writers(th, a, N_THREADS, sync_writer_main);
	for (int i = 0; i < 5; i++)
		assert_int_equal(lsm_flush(t->db), 0);
	join_writers(th, a, N_THREADS);
	/* Some syncs served several writers: fewer syncs than writes. */
	assert_true(prop(t->db, "lsm.wal-syncs") - syncs0 < puts);
	assert_true(prop(t->db, "lsm.sync-gathers") > 0);
	for (unsigned th_i = 0; th_i < N_THREADS; th_i++)
		for (unsigned i = 0; i < a[th_i].n; i++) {
			key_of(k, sizeof(k), th_i, i);
			assert_int_equal(lsm_get_into(t->db, NULL, k, strlen(k),
						      v, sizeof(v), &n),
					 0);
			assert_int_equal(n, strlen(k));
			assert_memory_equal(v, k, n);
		}
}

static void test_sync_makes_earlier_writes_durable(void **state)
{
	struct tctx *t = *state;
	lsm_env *fe = env_fault_new(env_posix());
	assert_non_null(fe);
	assert_int_equal(lsm_close(t->db), 0);
	t->db = NULL;
	t->o.env = fe;
	assert_int_equal(lsm_open(t->dir, &t->o, &t->db), 0);
	for (int i = 0; i < 100; i++) {
		char k[16];
		snprintf(k, sizeof(k), "s%03d", i);
		assert_int_equal(lsm_put(t->db, k, strlen(k), "v", 1, 0), 0);
	}
	assert_int_equal(lsm_sync(t->db), 0);
	env_fault_power_cut(fe, 0);
	lsm_close(t->db); /* may fail: the power is off */
	t->db = NULL;
	env_fault_reset(fe);
	assert_int_equal(lsm_open(t->dir, &t->o, &t->db), 0);
	for (int i = 0; i < 100; i++) {
		char k[16];
		snprintf(k, sizeof(k), "s%03d", i);
		assert_true(has_key(t->db, k));
	}
	assert_int_equal(lsm_close(t->db), 0);
	t->db = NULL;
	t->o.env = NULL;
	env_fault_free(fe);
}

/* The directory's names, sizes and modification times, as one string. */
static char *dir_state(const char *dir)
{
	char cmd[512], *out = NULL;
	size_t cap = 0, len = 0;
	FILE *f;
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && find . -printf '%%p %%s %%T@\\n' | sort", dir);
	f = popen(cmd, "r");
	assert_non_null(f);
	for (;;) {
		if (len + 4096 > cap) {
			cap = cap ? 2 * cap : 65536;
			out = realloc(out, cap);
			assert_non_null(out);
		}
		size_t got = fread(out + len, 1, cap - len - 1, f);
		if (got == 0)
			break;
		len += got;
	}
	out[len] = 0;
	assert_int_equal(pclose(f), 0);
	return out;
}

/* A read-only open serves everything, including writes that only the
 * WAL holds and named snapshots, refuses every change with -EROFS, and
 * leaves every file of the store as it was. */
static void test_read_only_open(void **state)
{
	struct tctx *t = *state;
	char k[32], v[64], path[300], *before, *after;
	lsm_db *ro = NULL, *other = NULL;
	lsm_snapshot *snap;
	lsm_options o;
	void *val;
	size_t len;

	for (unsigned i = 0; i < 3000; i++) {
		key_of(k, sizeof(k), 0, i);
		snprintf(v, sizeof(v), "one-%u", i);
		assert_int_equal(lsm_put(t->db, k, strlen(k), v, strlen(v), 0),
				 0);
	}
	assert_int_equal(lsm_flush(t->db), 0);
	assert_int_equal(lsm_snapshot_create(t->db, "s", NULL), 0);
	for (unsigned i = 0; i < 500; i++) { /* in the WAL only */
		key_of(k, sizeof(k), 0, i);
		snprintf(v, sizeof(v), "two-%u", i);
		assert_int_equal(lsm_put(t->db, k, strlen(k), v, strlen(v), 0),
				 0);
	}
	assert_int_equal(lsm_close(t->db), 0);
	t->db = NULL;
	before = dir_state(t->dir);

	o = t->o;
	o.read_only = true;
	assert_int_equal(lsm_open(t->dir, &o, &ro), 0);
	assert_int_equal(lsm_open(t->dir, &t->o, &other), LSM_E_BUSY);
	key_of(k, sizeof(k), 0, 7);
	assert_int_equal(lsm_get(ro, NULL, k, strlen(k), &val, &len), 0);
	assert_memory_equal(val, "two-7", 5);
	lsm_free(val);
	key_of(k, sizeof(k), 0, 2999);
	assert_int_equal(lsm_get(ro, NULL, k, strlen(k), &val, &len), 0);
	assert_memory_equal(val, "one-2999", 8);
	lsm_free(val);
	assert_int_equal(lsm_snapshot_open(ro, "s", &snap), 0);
	key_of(k, sizeof(k), 0, 7);
	assert_int_equal(lsm_get(ro, snap, k, strlen(k), &val, &len), 0);
	assert_memory_equal(val, "one-7", 5);
	lsm_free(val);
	lsm_snapshot_release(ro, snap);

	assert_int_equal(lsm_put(ro, "x", 1, "y", 1, 0), -EROFS);
	assert_int_equal(lsm_delete(ro, "x", 1, LSM_SYNC), -EROFS);
	assert_int_equal(lsm_flush(ro), -EROFS);
	assert_int_equal(lsm_compact_range(ro, NULL, 0, NULL, 0), -EROFS);
	assert_int_equal(lsm_snapshot_create(ro, "t", NULL), -EROFS);
	assert_int_equal(lsm_snapshot_delete(ro, "s"), -EROFS);
	snprintf(path, sizeof(path), "%s/ckpt", t->dir);
	assert_int_equal(lsm_checkpoint(ro, path), -EROFS);
	assert_int_equal(lsm_sync(ro), 0);
	assert_int_equal(lsm_close(ro), 0);

	after = dir_state(t->dir);
	assert_string_equal(before, after);
	free(before);
	free(after);

	/* No store: nothing is created. */
	snprintf(path, sizeof(path), "%s/none", t->dir);
	assert_int_equal(lsm_open(path, &o, &ro), LSM_E_NOSTORE);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(lsm_open(t->dir, &t->o, &t->db), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flush_while_writing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sync_group_commit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_get_into_short_buffer,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_delete_across_levels,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_iter_versions_across_levels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_properties, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_wal_history_gap, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_wal_marker_beyond_end,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_sync_makes_earlier_writes_durable, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_read_only_open, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
