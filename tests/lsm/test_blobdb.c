/*
 * test_blobdb.c - key-value separation through the public API: large
 * values in blob files, read back by gets and iterators (both ways), after
 * reopening (WAL replay with references) and after flushes; garbage
 * counting and file deletion as values are overwritten and compacted,
 * with and without a snapshot holding the old values; relocation out of
 * mostly-garbage files; synced writes; checkpoints; read-only opens; and
 * damage: a flipped byte in a blob file, a truncated blob file, a missing
 * one, and a WAL whose blob never reached the disk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lsm.h"
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>

#define THRESH 1024
#define BIG 5000 /* value length of the large values */

static void opts_blob(lsm_options *o)
{
	lsm_options_init(o);
	o->blob_threshold = THRESH;
	o->blob_file_size = 1u << 20;
	o->write_buffer_size = 1u << 20;
	o->background_threads = 1;
}

static size_t key_of(unsigned i, char *buf)
{
	return (size_t)snprintf(buf, 16, "k%05u", i);
}

/* Value of key i in generation g: BIG bytes when i is even (blob), 100
 * bytes when odd (inline); the content names both. */
static size_t val_of(unsigned i, unsigned g, uint8_t *buf)
{
	size_t n = (i % 2 == 0) ? BIG : 100;
	for (size_t j = 0; j < n; j++)
		buf[j] = (uint8_t)(i * 31 + g * 7 + j);
	return n;
}

static void put_all(lsm_db *db, unsigned n, unsigned g, int flags)
{
	static uint8_t v[BIG];
	char k[16];
	for (unsigned i = 0; i < n; i++) {
		size_t kl = key_of(i, k), vl = val_of(i, g, v);
		assert_int_equal(lsm_put(db, k, kl, v, vl, flags), 0);
	}
}

static void check_all(lsm_db *db, const lsm_snapshot *snap, unsigned n,
		      unsigned g)
{
	static uint8_t exp[BIG];
	char k[16];
	for (unsigned i = 0; i < n; i++) {
		size_t kl = key_of(i, k), el = val_of(i, g, exp), vl = 0;
		void *v = NULL;
		int rc = lsm_get(db, snap, k, kl, &v, &vl);
		if (rc)
			fail_msg("get k%05u: %s (%s)", i, lsm_strerror(rc),
				 lsm_errdetail());
		assert_int_equal(vl, el);
		assert_memory_equal(v, exp, el);
		free(v);
	}
}

static void check_iter(lsm_db *db, unsigned n, unsigned g)
{
	static uint8_t exp[BIG];
	lsm_iter_options io;
	lsm_iter *it;
	unsigned i = 0;
	lsm_iter_options_init(&io);
	assert_int_equal(lsm_iter_new(db, &io, &it), 0);
	for (lsm_iter_first(it); lsm_iter_valid(it); lsm_iter_next(it), i++) {
		size_t vl, el = val_of(i, g, exp);
		const void *v = lsm_iter_value(it, &vl);
		assert_non_null(v);
		assert_int_equal(vl, el);
		assert_memory_equal(v, exp, el);
	}
	assert_int_equal(lsm_iter_status(it), 0);
	assert_int_equal(i, n);
	/* backwards, reading every other value only */
	for (lsm_iter_last(it); lsm_iter_valid(it); lsm_iter_prev(it)) {
		size_t vl;
		i--;
		if (i % 3)
			continue;
		const void *v = lsm_iter_value(it, &vl);
		assert_int_equal(vl, val_of(i, g, exp));
		assert_memory_equal(v, exp, vl);
	}
	assert_int_equal(i, 0);
	assert_int_equal(lsm_iter_status(it), 0);
	lsm_iter_free(it);
}

static int count_blob_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if (l > 5 && strcmp(e->d_name + l - 5, ".blob") == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* The path of the first blob file of dir (by name). */
static void first_blob_file(const char *dir, char *out, size_t cap)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);
	bool found = false;
	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		size_t l = strlen(names[i]->d_name);
		if (!found && l > 5 &&
		    strcmp(names[i]->d_name + l - 5, ".blob") == 0) {
			snprintf(out, cap, "%s/%s", dir, names[i]->d_name);
			found = true;
		}
		free(names[i]);
	}
	free(names);
	assert_true(found);
}

static uint64_t prop(lsm_db *db, const char *name)
{
	uint64_t v = 0;
	assert_int_equal(lsm_property_u64(db, name, &v), 0);
	return v;
}

static void test_roundtrip_and_reopen(void **state)
{
	char dir[256];
	lsm_options o;
	lsm_db *db;
	(void)state;
	make_test_dir(dir, sizeof(dir), "blobrt");
	opts_blob(&o);
	assert_int_equal(lsm_open(dir, &o, &db), 0);
	put_all(db, 300, 1, 0);
	assert_int_equal(prop(db, "lsm.blob-values-written"), 150);
	check_all(db, NULL, 300, 1);
	check_iter(db, 300, 1);
	assert_true(count_blob_files(dir) >= 1);
	assert_int_equal(lsm_close(db), 0);

	/* References replayed from the WAL (or flushed at close). */
	assert_int_equal(lsm_open(dir, &o, &db), 0);
	check_all(db, NULL, 300, 1);
	assert_int_equal(lsm_flush(db), 0);
	check_all(db, NULL, 300, 1);
	check_iter(db, 300, 1);
	assert_true(prop(db, "lsm.blob-files") >= 1);
	/* Values below the threshold are unaffected, a value exactly at it
	 * goes to a blob file. */
	static uint8_t v[THRESH];
	memset(v, 'x', sizeof(v));
	assert_int_equal(lsm_put(db, "edge", 4, v, THRESH, LSM_SYNC), 0);
	/* (counters start at zero with each open) */
	assert_int_equal(prop(db, "lsm.blob-values-written"), 1);
	char buf[16];
	size_t vl = 0;
	assert_int_equal(
		lsm_get_into(db, NULL, "edge", 4, buf, sizeof(buf), &vl), 0);
	assert_int_equal(vl, THRESH);
	assert_memory_equal(buf, v, sizeof(buf));
	assert_int_equal(lsm_close(db), 0);

	/* Without the option the store still reads its blob values. */
	lsm_options_init(&o);
	o.blob_threshold = 0;
	assert_int_equal(lsm_open(dir, &o, &db), 0);
	check_all(db, NULL, 300, 1);
	assert_int_equal(lsm_close(db), 0);
	remove_test_dir(dir);
}

/* Overwriting every value and compacting turns the old blob files into
 * garbage and deletes them; a snapshot keeps them until it goes. */
static void test_garbage_and_snapshot(void **state)
{
	char dir[256];
	lsm_options o;
	lsm_db *db;
	lsm_snapshot *snap;
	(void)state;
	make_test_dir(dir, sizeof(dir), "blobgc");
	opts_blob(&o);
	assert_int_equal(lsm_open(dir, &o, &db), 0);
	put_all(db, 400, 1, 0);
	assert_int_equal(lsm_flush(db), 0);
	int first_files = count_blob_files(dir);
	assert_true(first_files >= 1);
	assert_int_equal(lsm_snapshot_acquire(db, &snap), 0);

	put_all(db, 400, 2, 0);
	assert_int_equal(lsm_flush(db), 0);
	assert_int_equal(lsm_compact_range(db, NULL, 0, NULL, 0), 0);
	/* The snapshot still sees generation 1. */
	check_all(db, snap, 400, 1);
	check_all(db, NULL, 400, 2);
	assert_true(count_blob_files(dir) > first_files);

	lsm_snapshot_release(db, snap);
	assert_int_equal(lsm_compact_range(db, NULL, 0, NULL, 0), 0);
	check_all(db, NULL, 400, 2);
	check_iter(db, 400, 2);
	/* Only generation 2's files are left, with no garbage. */
	assert_int_equal(prop(db, "lsm.blob-garbage-bytes"), 0);
	assert_int_equal((int)prop(db, "lsm.blob-files"),
			 count_blob_files(dir));
	assert_true(prop(db, "lsm.blob-files-dropped") >= 1);
	uint64_t live = prop(db, "lsm.blob-file-bytes");
	assert_true(live >= 200ull * BIG && live < 200ull * BIG * 2);

	/* Deleting every key makes everything garbage. */
	assert_int_equal(lsm_delete_range(db, "k", 1, "l", 1, 0), 0);
	assert_int_equal(lsm_flush(db), 0);
	assert_int_equal(lsm_compact_range(db, NULL, 0, NULL, 0), 0);
	assert_int_equal(prop(db, "lsm.blob-files"), 0);
	assert_int_equal(count_blob_files(dir), 0);
	assert_int_equal(lsm_close(db), 0);

	/* The manifest agrees after a reopen. */
	assert_int_equal(lsm_open(dir, &o, &db), 0);
	assert_int_equal(prop(db, "lsm.blob-files"), 0);
	assert_int_equal(lsm_close(db), 0);
	remove_test_dir(dir);
}

/* A file past blob_gc_percent garbage has its live values moved when
 * compaction passes them; then it goes. */
static void test_relocation(void **state)
{
	char dir[256], first[512];
	static uint8_t v[BIG];
	lsm_options o;
	lsm_db *db;
	(void)state;
	make_test_dir(dir, sizeof(dir), "blobmv");
	opts_blob(&o);
	o.blob_gc_percent = 50;
	assert_int_equal(lsm_open(dir, &o, &db), 0);
	put_all(db, 100, 1, 0); /* 50 blob values, one file */
	assert_int_equal(lsm_flush(db), 0);
	first_blob_file(dir, first, sizeof(first));
	/* Overwrite 70% of the large values, inline this time. */
	for (unsigned i = 0; i < 100; i += 2) {
		char k[16];
		if ((i / 2) % 10 >= 7)
			continue;
		size_t kl = key_of(i, k);
		memset(v, 'n', 10);
		assert_int_equal(lsm_put(db, k, kl, v, 10, 0), 0);
	}
	assert_int_equal(lsm_flush(db), 0);
	assert_int_equal(lsm_compact_range(db, NULL, 0, NULL, 0), 0);
	/* The first compaction counted the garbage; the next one moves the
	 * survivors out. */
	assert_int_equal(lsm_compact_range(db, NULL, 0, NULL, 0), 0);
	assert_int_equal(access(first, F_OK), -1);
	assert_true(prop(db, "lsm.blob-gc-bytes") > 0);
	static uint8_t exp[BIG];
	for (unsigned i = 0; i < 100; i++) {
		char k[16];
		size_t kl = key_of(i, k), vl;
		void *got;
		assert_int_equal(lsm_get(db, NULL, k, kl, &got, &vl), 0);
		if (i % 2 == 0 && (i / 2) % 10 < 7) {
			assert_int_equal(vl, 10);
		} else {
			size_t el = val_of(i, 1, exp);
			assert_int_equal(vl, el);
			assert_memory_equal(got, exp, el);
		}
		free(got);
	}
	assert_int_equal(lsm_close(db), 0);
	remove_test_dir(dir);
}

/* A file past blob_gc_percent whose live references sit where no
 * compaction goes: a background compaction of its key range moves them,
 * and the file goes. */
static void test_gc_by_range(void **state)
{
	char dir[256], first[512];
	static uint8_t v[BIG];
	lsm_options o;
	lsm_db *db;
	(void)state;
	make_test_dir(dir, sizeof(dir), "blobrange");
	opts_blob(&o);
	o.blob_gc_percent = 50;
	assert_int_equal(lsm_open(dir, &o, &db), 0);
	for (unsigned i = 0; i < 150; i++) {
		char k[16];
		snprintf(k, sizeof(k), "%c%04u", i < 100 ? 'a' : 'z', i);
		memset(v, (int)i, BIG);
		assert_int_equal(lsm_put(db, k, 5, v, BIG, 0), 0);
	}
	assert_int_equal(lsm_flush(db), 0);
	assert_int_equal(lsm_compact_range(db, NULL, 0, NULL, 0), 0);
	first_blob_file(dir, first, sizeof(first));
	/* Two thirds of its values die; the compaction that drops them
	 * finds the file still clean, so nothing moves yet. */
	assert_int_equal(lsm_delete_range(db, "a", 1, "b", 1, 0), 0);
	assert_int_equal(lsm_flush(db), 0);
	assert_int_equal(lsm_compact_range(db, "a", 1, "b", 1), 0);
	/* The background thread takes it from here (it may have already). */
	assert_true(prop(db, "lsm.blob-garbage-bytes") >= 100ull * BIG ||
		    prop(db, "lsm.blob-gc-compactions") == 1);
	for (int t = 0; t < 2000 && access(first, F_OK) == 0; t++)
		usleep(10000);
	assert_int_equal(access(first, F_OK), -1);
	assert_int_equal(prop(db, "lsm.blob-gc-compactions"), 1);
	assert_int_equal(prop(db, "lsm.blob-garbage-bytes"), 0);
	for (unsigned i = 100; i < 150; i++) {
		char k[16];
		void *got;
		size_t vl;
		snprintf(k, sizeof(k), "z%04u", i);
		assert_int_equal(lsm_get(db, NULL, k, 5, &got, &vl), 0);
		assert_int_equal(vl, BIG);
		assert_int_equal(((uint8_t *)got)[BIG - 1], (uint8_t)i);
		free(got);
	}
	assert_int_equal(lsm_close(db), 0);
	remove_test_dir(dir);
}

static void test_checkpoint_and_read_only(void **state)
{
	char dir[256], cp[300];
	lsm_options o;
	lsm_db *db;
	(void)state;
	make_test_dir(dir, sizeof(dir), "blobcp");
	opts_blob(&o);
	assert_int_equal(lsm_open(dir, &o, &db), 0);
	put_all(db, 200, 1, LSM_SYNC);
	snprintf(cp, sizeof(cp), "%s.cp", dir);
	assert_int_equal(lsm_checkpoint(db, cp), 0);
	put_all(db, 200, 2, 0);
	assert_int_equal(lsm_close(db), 0);

	assert_true(count_blob_files(cp) >= 1);
	assert_int_equal(lsm_open(cp, &o, &db), 0);
	check_all(db, NULL, 200, 1);
	assert_int_equal(lsm_close(db), 0);

	/* A read-only open serves values whose references are only in the
	 * WAL (the store was closed without a flush of generation 3). */
	assert_int_equal(lsm_open(dir, &o, &db), 0);
	put_all(db, 200, 3, LSM_SYNC);
	assert_int_equal(lsm_close(db), 0);
	o.read_only = true;
	assert_int_equal(lsm_open(dir, &o, &db), 0);
	check_all(db, NULL, 200, 3);
	assert_int_equal(lsm_close(db), 0);
	rm_rf(cp);
	remove_test_dir(dir);
}

static void flip_byte(const char *path, off_t at)
{
	int fd = open(path, O_RDWR);
	uint8_t b;
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, at), 1);
	b ^= 0x40;
	assert_int_equal(pwrite(fd, &b, 1, at), 1);
	close(fd);
}

static void test_damage(void **state)
{
	char dir[256], path[512];
	lsm_options o;
	lsm_db *db;
	struct stat st;
	void *v;
	size_t vl;
	(void)state;
	make_test_dir(dir, sizeof(dir), "blobbad");
	opts_blob(&o);
	assert_int_equal(lsm_open(dir, &o, &db), 0);
	put_all(db, 20, 1, 0);
	assert_int_equal(lsm_flush(db), 0);
	assert_int_equal(lsm_close(db), 0);
	first_blob_file(dir, path, sizeof(path));

	/* A flipped byte in the last value: that get fails, naming the
	 * file; the others still read. */
	assert_int_equal(stat(path, &st), 0);
	flip_byte(path, st.st_size - 10);
	assert_int_equal(lsm_open(dir, &o, &db), 0);
	int bad = 0;
	for (unsigned i = 0; i < 20; i += 2) {
		char k[16];
		size_t kl = key_of(i, k);
		int rc = lsm_get(db, NULL, k, kl, &v, &vl);
		if (rc == 0) {
			free(v);
			continue;
		}
		assert_int_equal(rc, LSM_E_CORRUPT);
		assert_non_null(strstr(lsm_errdetail(), ".blob"));
		bad++;
	}
	assert_int_equal(bad, 1);
	/* An iterator stops there with the error. */
	lsm_iter_options io;
	lsm_iter *it;
	lsm_iter_options_init(&io);
	assert_int_equal(lsm_iter_new(db, &io, &it), 0);
	for (lsm_iter_first(it); lsm_iter_valid(it); lsm_iter_next(it))
		(void)lsm_iter_value(it, &vl);
	assert_int_equal(lsm_iter_status(it), LSM_E_CORRUPT);
	lsm_iter_free(it);
	assert_int_equal(lsm_close(db), 0);

	/* Truncated: the values past the cut fail, nothing crashes. */
	assert_int_equal(truncate(path, st.st_size / 2), 0);
	assert_int_equal(lsm_open(dir, &o, &db), 0);
	bad = 0;
	for (unsigned i = 0; i < 20; i += 2) {
		char k[16];
		size_t kl = key_of(i, k);
		int rc = lsm_get(db, NULL, k, kl, &v, &vl);
		if (rc == 0)
			free(v);
		else
			bad++;
	}
	assert_true(bad >= 4);
	assert_int_equal(lsm_close(db), 0);

	/* Missing: the store refuses to open and says which file. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(lsm_open(dir, &o, &db), LSM_E_CORRUPT);
	assert_non_null(strstr(lsm_errdetail(), "missing"));
	assert_non_null(strstr(lsm_errdetail(), ".blob"));
	remove_test_dir(dir);
}

/* A damaged value in the blob file of a memtable that was never flushed,
 * after a clean close: the WAL was trimmed after the blob file was
 * synced, so the missing value is damage, not a lost tail; the open
 * fails instead of dropping the later writes. */
static void test_damage_unflushed(void **state)
{
	char dir[256], path[512];
	lsm_options o;
	lsm_db *db;
	(void)state;
	make_test_dir(dir, sizeof(dir), "blobbadwal");
	opts_blob(&o);
	o.write_buffer_size = 64u << 20; /* everything stays in the WAL */
	assert_int_equal(lsm_open(dir, &o, &db), 0);
	put_all(db, 20, 1, 0);
	assert_int_equal(lsm_close(db), 0);
	first_blob_file(dir, path, sizeof(path));
	flip_byte(path, 32 + 18 + BIG / 2); /* inside the first value */
	assert_int_equal(lsm_open(dir, &o, &db), LSM_E_CORRUPT);
	assert_non_null(strstr(lsm_errdetail(), "closed cleanly"));
	remove_test_dir(dir);
}

/* A WAL record whose blob value never reached the disk (a power cut
 * between the two writes of an unsynced group) ends the replay there. */
static void test_lost_blob_tail(void **state)
{
	char dir[256], path[512];
	lsm_options o;
	lsm_db *db;
	struct stat st;
	void *v;
	size_t vl;
	static uint8_t big[BIG];
	(void)state;
	make_test_dir(dir, sizeof(dir), "blobtail");
	opts_blob(&o);
	o.write_buffer_size = 64u << 20; /* keep everything in the WAL */
	assert_int_equal(lsm_open(dir, &o, &db), 0);
	assert_int_equal(lsm_put(db, "a", 1, "small", 5, LSM_SYNC), 0);
	memset(big, 'b', sizeof(big));
	assert_int_equal(lsm_put(db, "b", 1, big, sizeof(big), LSM_SYNC), 0);
	memset(big, 'c', sizeof(big));
	assert_int_equal(lsm_put(db, "c", 1, big, sizeof(big), 0), 0);
	assert_int_equal(lsm_put(db, "d", 1, "tiny", 4, 0), 0);
	/* Simulate the crash: the process dies with the files as they
	 * are, then the unsynced tail of the blob file is lost. */
	first_blob_file(dir, path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	/* header, b's record, and half of c's value (records: 4-byte check,
	 * 1-byte key length, 2-byte value length, key, 4-byte value check);
	 * the file's size is larger: space is reserved ahead with zeros */
	off_t keep = 32 + 2 * (4 + 1 + 2 + 1 + 4) + BIG + BIG / 2;
	assert_true(st.st_size > keep);
	/* Reopen from a copy of the directory as it is now. */
	char cp[300], cmd[700];
	snprintf(cp, sizeof(cp), "%s.copy", dir);
	snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", dir, cp);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(lsm_close(db), 0);
	first_blob_file(cp, path, sizeof(path));
	assert_int_equal(truncate(path, keep), 0);
	assert_int_equal(lsm_open(cp, &o, &db), 0);
	assert_int_equal(lsm_get(db, NULL, "a", 1, &v, &vl), 0);
	free(v);
	assert_int_equal(lsm_get(db, NULL, "b", 1, &v, &vl), 0);
	assert_int_equal(vl, BIG);
	assert_int_equal(((uint8_t *)v)[0], 'b');
	free(v);
	/* c's value is gone, so c and everything after it are not there. */
	assert_int_equal(lsm_get(db, NULL, "c", 1, &v, &vl), LSM_E_NOTFOUND);
	assert_int_equal(lsm_get(db, NULL, "d", 1, &v, &vl), LSM_E_NOTFOUND);
	/* and the store takes new writes */
	assert_int_equal(lsm_put(db, "c", 1, big, sizeof(big), LSM_SYNC), 0);
	assert_int_equal(lsm_close(db), 0);
	assert_int_equal(lsm_open(cp, &o, &db), 0);
	assert_int_equal(lsm_get(db, NULL, "c", 1, &v, &vl), 0);
	assert_int_equal(vl, BIG);
	free(v);
	assert_int_equal(lsm_close(db), 0);
	rm_rf(cp);
	remove_test_dir(dir);
}

/* A blob file made after the manifest's last edit (its memtable never
 * flushed) keeps its number: a reopened store must not hand it out again
 * and overwrite the file. */
static void test_numbers_after_recovery(void **state)
{
	char dir[256];
	lsm_options o;
	lsm_db *db;
	(void)state;
	make_test_dir(dir, sizeof(dir), "blobnum");
	opts_blob(&o);
	o.write_buffer_size = 64u << 20;
	for (unsigned round = 1; round <= 4; round++) {
		assert_int_equal(lsm_open(dir, &o, &db), 0);
		if (round > 1)
			check_all(db, NULL, 40 * (round - 1), round - 1);
		/* new files, each numbered after the last edit */
		put_all(db, 40 * round, round, LSM_SYNC);
		check_all(db, NULL, 40 * round, round);
		assert_int_equal(lsm_close(db), 0);
	}
	assert_int_equal(lsm_open(dir, &o, &db), 0);
	check_all(db, NULL, 160, 4);
	assert_int_equal(lsm_flush(db), 0);
	assert_int_equal(lsm_compact_range(db, NULL, 0, NULL, 0), 0);
	check_all(db, NULL, 160, 4);
	assert_int_equal(lsm_close(db), 0);
	remove_test_dir(dir);
}

/* Writers, readers and background compactions (with relocation) at
 * once: every value read is one some writer wrote for that key. Run under
 * ThreadSanitizer in CI. */
struct conc {
	lsm_db *db;
	_Atomic bool stop;
	_Atomic int errors;
};

struct conc_thread {
	struct conc *c;
	uint64_t seed;
};

#define CONC_KEYS 64

/* Values: [u32 key][u32 gen][filler derived from both]. */
static size_t conc_val(unsigned k, unsigned g, uint8_t *buf)
{
	size_t n = (g % 3 == 0) ? 200 : 1500 + (g % 7) * 300;
	memcpy(buf, &k, 4);
	memcpy(buf + 4, &g, 4);
	for (size_t j = 8; j < n; j++)
		buf[j] = (uint8_t)(k + g * 13 + j);
	return n;
}

static bool conc_check(unsigned k, const uint8_t *v, size_t n)
{
	static _Thread_local uint8_t exp[4096];
	unsigned kk, g;
	if (n < 8)
		return false;
	memcpy(&kk, v, 4);
	memcpy(&g, v + 4, 4);
	return kk == k && conc_val(k, g, exp) == n && memcmp(v, exp, n) == 0;
}

static void *conc_writer(void *arg)
{
	struct conc *c = ((struct conc_thread *)arg)->c;
	uint64_t rs = ((struct conc_thread *)arg)->seed;
	uint8_t v[4096];
	for (unsigned g = 1; !atomic_load(&c->stop) && g < 4000; g++) {
		unsigned k = (unsigned)rnd_below(&rs, CONC_KEYS);
		char key[16];
		size_t kl = key_of(k, key), vl = conc_val(k, g, v);
		if (lsm_put(c->db, key, kl, v, vl, g % 50 ? 0 : LSM_SYNC))
			atomic_fetch_add(&c->errors, 1);
	}
	return NULL;
}

static void *conc_reader(void *arg)
{
	struct conc *c = ((struct conc_thread *)arg)->c;
	uint64_t rs = ((struct conc_thread *)arg)->seed + 99;
	while (!atomic_load(&c->stop)) {
		unsigned k = (unsigned)rnd_below(&rs, CONC_KEYS);
		char key[16];
		size_t kl = key_of(k, key), vl;
		void *v;
		int rc = lsm_get(c->db, NULL, key, kl, &v, &vl);
		if (rc == 0) {
			if (!conc_check(k, v, vl))
				atomic_fetch_add(&c->errors, 1);
			free(v);
		} else if (rc != LSM_E_NOTFOUND) {
			atomic_fetch_add(&c->errors, 1);
		}
		if (k % 8 == 0) {
			lsm_iter_options io;
			lsm_iter *it;
			lsm_iter_options_init(&io);
			if (lsm_iter_new(c->db, &io, &it)) {
				atomic_fetch_add(&c->errors, 1);
				continue;
			}
			for (lsm_iter_first(it); lsm_iter_valid(it);
			     lsm_iter_next(it)) {
				size_t n;
				const char *ik = lsm_iter_key(it, &n);
				const void *iv = lsm_iter_value(it, &vl);
				unsigned kk = (unsigned)atoi(ik + 1);
				if (iv && !conc_check(kk, iv, vl))
					atomic_fetch_add(&c->errors, 1);
			}
			if (lsm_iter_status(it))
				atomic_fetch_add(&c->errors, 1);
			lsm_iter_free(it);
		}
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	char dir[256];
	lsm_options o;
	struct conc c = {0};
	struct conc_thread ta[2];
	pthread_t w[2], r[2];
	(void)state;
	make_test_dir(dir, sizeof(dir), "blobconc");
	opts_blob(&o);
	o.write_buffer_size = 256u << 10;
	o.blob_file_size = 1u << 20;
	o.background_threads = 2;
	o.level0_compaction_trigger = 2;
	o.blob_gc_percent = 20;
	assert_int_equal(lsm_open(dir, &o, &c.db), 0);
	for (int i = 0; i < 2; i++) {
		ta[i].c = &c;
		ta[i].seed = 1000 + (uint64_t)i;
		assert_int_equal(
			pthread_create(&w[i], NULL, conc_writer, &ta[i]), 0);
		assert_int_equal(
			pthread_create(&r[i], NULL, conc_reader, &ta[i]), 0);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(w[i], NULL);
	atomic_store(&c.stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(r[i], NULL);
	assert_int_equal(atomic_load(&c.errors), 0);
	/* the background work the readers raced */
	assert_true(prop(c.db, "lsm.flushes") >= 10);
	assert_true(prop(c.db, "lsm.compactions") >= 2);
	if (getenv("TEST_BLOBDB_STATS")) {
		char *st;
		assert_int_equal(lsm_property(c.db, "lsm.stats", &st), 0);
		fputs(st, stderr);
		free(st);
	}
	assert_int_equal(lsm_compact_range(c.db, NULL, 0, NULL, 0), 0);
	assert_int_equal(lsm_close(c.db), 0);
	assert_int_equal(lsm_open(dir, &o, &c.db), 0);
	for (unsigned k = 0; k < CONC_KEYS; k++) {
		char key[16];
		size_t kl = key_of(k, key), vl;
		void *v;
		int rc = lsm_get(c.db, NULL, key, kl, &v, &vl);
		if (rc == LSM_E_NOTFOUND)
			continue;
		assert_int_equal(rc, 0);
		assert_true(conc_check(k, v, vl));
		free(v);
	}
	assert_int_equal(lsm_close(c.db), 0);
	remove_test_dir(dir);
}

static void test_options(void **state)
{
	char dir[256];
	lsm_options o;
	lsm_db *db;
	(void)state;
	make_test_dir(dir, sizeof(dir), "blobopt");
	opts_blob(&o);
	o.blob_threshold = 10;
	assert_int_equal(lsm_open(dir, &o, &db), -EINVAL);
	assert_non_null(strstr(lsm_errdetail(), "blob_threshold"));
	opts_blob(&o);
	o.blob_gc_percent = 0;
	assert_int_equal(lsm_open(dir, &o, &db), -EINVAL);
	opts_blob(&o);
	o.blob_file_size = 1000;
	assert_int_equal(lsm_open(dir, &o, &db), -EINVAL);
	remove_test_dir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_and_reopen),
		cmocka_unit_test(test_garbage_and_snapshot),
		cmocka_unit_test(test_relocation),
		cmocka_unit_test(test_gc_by_range),
		cmocka_unit_test(test_checkpoint_and_read_only),
		cmocka_unit_test(test_damage),
		cmocka_unit_test(test_damage_unflushed),
		cmocka_unit_test(test_lost_blob_tail),
		cmocka_unit_test(test_numbers_after_recovery),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_options),
	};
	if (getenv("LSM_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("LSM_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
