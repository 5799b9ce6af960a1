/*
 * test_env.c - the POSIX env (round trips, locks, atomic writes) and the
 * fault-injecting env (n-th op failures, ENOSPC, power cuts, torn writes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "env/env.h"
#include "env/env_fault.h"
#include "util/status.h"

struct tdir {
	char path[64];
};

static void tdir_make(struct tdir *d)
{
	strcpy(d->path, "/tmp/lsm-test-env-XXXXXX");
	assert_non_null(mkdtemp(d->path));
}

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	return remove(p);
}

static void tdir_remove(struct tdir *d)
{
	assert_int_equal(nftw(d->path, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static char *pj(const struct tdir *d, const char *name)
{
	static _Thread_local char bufs[4][256];
	static _Thread_local int i;
	char *b = bufs[i++ & 3];
	snprintf(b, 256, "%s/%s", d->path, name);
	return b;
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static uint64_t real_size(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

static bool real_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* Writes a file through env: n bytes, synced if asked. */
static void write_file(lsm_env *env, const char *path, const uint8_t *p,
		       size_t n, bool do_sync)
{
	struct env_wfile *f;
	assert_int_equal(env_new_wfile(env, path, &f), 0);
	assert_int_equal(wfile_append(f, p, n), 0);
	if (do_sync)
		assert_int_equal(wfile_sync(f), 0);
	assert_int_equal(wfile_close(f), 0);
}

static void test_posix_roundtrip(void **state)
{
	lsm_env *env = env_posix();
	struct tdir d;
	struct env_wfile *w;
	struct env_rfile *r;
	size_t big_len = 200 * 1024, n = 0;
	uint8_t *big = malloc(big_len), *got = malloc(big_len + 10);
	uint64_t size = 0;

	tdir_make(&d);
	fill(big, big_len, 7);
	assert_int_equal(env_new_wfile(env, pj(&d, "a"), &w), 0);
	/* small appends (buffered), then one larger than the buffer */
	assert_int_equal(wfile_append(w, big, 10), 0);
	assert_int_equal(wfile_append(w, big + 10, 1000), 0);
	assert_int_equal(wfile_size(w), 1010);
	assert_int_equal(real_size(pj(&d, "a")), 0); /* still buffered */
	assert_int_equal(wfile_flush(w), 0);
	assert_int_equal(real_size(pj(&d, "a")), 1010);
	assert_int_equal(wfile_append(w, big + 1010, big_len - 1010), 0);
	assert_int_equal(wfile_sync(w), 0);
	assert_int_equal(wfile_size(w), big_len);
	assert_int_equal(real_size(pj(&d, "a")), big_len);
	assert_int_equal(wfile_append(w, "", 0), 0);
	assert_int_equal(wfile_close(w), 0);

	assert_int_equal(env_new_rfile(env, pj(&d, "a"), &r), 0);
	assert_int_equal(rfile_size(r), big_len);
	assert_int_equal(rfile_read(r, 0, big_len, got, &n), 0);
	assert_int_equal(n, big_len);
	assert_memory_equal(got, big, big_len);
	assert_int_equal(rfile_read(r, 12345, 777, got, &n), 0);
	assert_int_equal(n, 777);
	assert_memory_equal(got, big + 12345, 777);
	/* reads past the end are short, not errors */
	assert_int_equal(rfile_read(r, big_len - 5, 10, got, &n), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(got, big + big_len - 5, 5);
	assert_int_equal(rfile_read(r, big_len + 100, 10, got, &n), 0);
	assert_int_equal(n, 0);
	rfile_close(r);

	assert_int_equal(env->ops->file_exists(env, pj(&d, "a")), 1);
	assert_int_equal(env->ops->file_exists(env, pj(&d, "nope")), 0);
	assert_int_equal(env->ops->file_size(env, pj(&d, "a"), &size), 0);
	assert_int_equal(size, big_len);

	/* missing file: -ENOENT and a detail naming the path */
	assert_int_equal(env_new_rfile(env, pj(&d, "nope"), &r), -ENOENT);
	assert_non_null(strstr(lsm_errdetail(), pj(&d, "nope")));

	/* rename, link, remove, make_dir, list_dir */
	assert_int_equal(env->ops->rename_file(env, pj(&d, "a"), pj(&d, "b")),
			 0);
	assert_int_equal(env->ops->file_exists(env, pj(&d, "a")), 0);
	assert_int_equal(env->ops->link_file(env, pj(&d, "b"), pj(&d, "c")), 0);
	assert_int_equal(env->ops->link_file(env, pj(&d, "b"), pj(&d, "c")),
			 -EEXIST);
	assert_int_equal(env->ops->make_dir(env, pj(&d, "sub")), 0);
	assert_int_equal(env->ops->make_dir(env, pj(&d, "sub")), 0);
	assert_int_equal(env->ops->make_dir(env, pj(&d, "c")), -EEXIST);
	assert_int_equal(env->ops->sync_dir(env, d.path), 0);

	char **names;
	size_t n_names;
	assert_int_equal(env->ops->list_dir(env, d.path, &names, &n_names), 0);
	assert_int_equal(n_names, 3);
	int seen = 0;
	for (size_t i = 0; i < n_names; i++) {
		if (!strcmp(names[i], "b"))
			seen |= 1;
		else if (!strcmp(names[i], "c"))
			seen |= 2;
		else if (!strcmp(names[i], "sub"))
			seen |= 4;
	}
	assert_int_equal(seen, 7);
	env_free_names(names, n_names);

	assert_int_equal(env->ops->remove_file(env, pj(&d, "b")), 0);
	assert_int_equal(env->ops->remove_file(env, pj(&d, "b")), -ENOENT);
	assert_int_equal(env->ops->file_size(env, pj(&d, "c"), &size), 0);
	assert_int_equal(size, big_len); /* the link keeps the data */
	assert_int_equal(env->ops->remove_dir(env, pj(&d, "sub")), 0);

	uint64_t free_bytes = 0;
	assert_int_equal(env->ops->free_space(env, d.path, &free_bytes), 0);
	assert_true(free_bytes > 0);
	assert_true(env->ops->now_micros(env) > 1600000000ull * 1000000ull);

	/* a new_wfile on an existing file truncates it */
	assert_int_equal(env_new_wfile(env, pj(&d, "c"), &w), 0);
	assert_int_equal(wfile_close(w), 0);
	assert_int_equal(real_size(pj(&d, "c")), 0);

	tdir_remove(&d);
	free(big);
	free(got);
}

/* Checks that the file at path starts with want[0..n). */
static void check_prefix(const char *path, const uint8_t *want, size_t n)
{
	uint8_t *got = malloc(n + 1);
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	assert_int_equal(fread(got, 1, n, fp), n);
	fclose(fp);
	assert_memory_equal(got, want, n);
	free(got);
}

/* Reserves len bytes of w; on a file system without fallocate (the
 * engine then runs without reservations) closes w, removes d and returns
 * true: the caller skips. */
static bool reserve_or_skip(struct env_wfile *w, uint64_t len, struct tdir *d)
{
	int rc = wfile_reserve(w, len);
	if (rc == -EOPNOTSUPP) {
		print_message("no fallocate here: skipped\n");
		assert_int_equal(wfile_close(w), 0);
		tdir_remove(d);
		return true;
	}
	assert_int_equal(rc, 0);
	return false;
}

/* A reserved file (written through a mapping) mixes mapped appends with
 * buffered ones: after a sync, and after an append of a page or more,
 * appends go through the buffer and write(2) until the next flush, then
 * small ones through the mapping again. This checks the
 * contents that mix leaves, not which path each append took: whatever the
 * mix of flushes and syncs, what was flushed is in the file, in order,
 * also past the reserved space and across mapping windows; trim cuts the
 * file back to exactly the bytes appended. */
static void test_posix_reserved_after_sync(void **state)
{
	lsm_env *env = env_posix();
	struct tdir d;
	struct env_wfile *w;
	enum { TOTAL = 3 << 20, RESERVE = 2 << 20 };
	uint8_t *data = malloc(TOTAL);
	size_t off = 0, flushed = 0;
	uint32_t rnd = 99;
	int syncs = 0, flushes = 0;

	tdir_make(&d);
	fill(data, TOTAL, 3);
	assert_int_equal(env_new_wfile(env, pj(&d, "r"), &w), 0);
	if (reserve_or_skip(w, RESERVE, &d))
		return;
	assert_int_equal(real_size(pj(&d, "r")), RESERVE);
	while (off < TOTAL) {
		size_t n;
		rnd = rnd * 1103515245u + 12345u;
		n = 1 + (rnd >> 8) % 9000;
		if (n > TOTAL - off)
			n = TOTAL - off;
		assert_int_equal(wfile_append(w, data + off, n), 0);
		off += n;
		assert_int_equal(wfile_size(w), off);
		switch ((rnd >> 4) % 4) {
		case 0:
			assert_int_equal(wfile_sync(w), 0);
			flushed = off;
			syncs++;
			break;
		case 1:
			assert_int_equal(wfile_flush(w), 0);
			flushed = off;
			flushes++;
			break;
		default:
			break; /* leave it buffered or mapped */
		}
		if (flushed == off && (syncs + flushes) % 16 == 0)
			check_prefix(pj(&d, "r"), data, flushed);
	}
	assert_true(syncs > 50 && flushes > 50);
	assert_int_equal(wfile_flush(w), 0);
	check_prefix(pj(&d, "r"), data, TOTAL);
	assert_int_equal(wfile_trim(w), 0);
	assert_int_equal(real_size(pj(&d, "r")), TOTAL);
	assert_int_equal(wfile_close(w), 0);
	check_prefix(pj(&d, "r"), data, TOTAL);
	tdir_remove(&d);
	free(data);
}

/* wfile_sync_pair syncs two files at once (the posix env with Linux AIO):
 * blob-like appends (a page and more) into one reserved file, WAL-like
 * records into another, a plain file as a third; after each pair sync
 * both files hold exactly what was appended, and appends go on after it
 * (the mapping and the buffer take turns as after any sync). */
static void test_posix_sync_pair(void **state)
{
	lsm_env *env = env_posix();
	struct tdir d;
	struct env_wfile *a, *b, *c;
	enum { ROUNDS = 301, A_MAX = 9000, B_MAX = 200 };
	uint8_t *da = malloc(ROUNDS * A_MAX), *db = malloc(ROUNDS * B_MAX);
	size_t na = 0, nb = 0;
	uint32_t rnd = 7;

	tdir_make(&d);
	fill(da, ROUNDS * A_MAX, 11);
	fill(db, ROUNDS * B_MAX, 12);
	assert_int_equal(env_new_wfile(env, pj(&d, "a"), &a), 0);
	assert_int_equal(env_new_wfile(env, pj(&d, "b"), &b), 0);
	assert_int_equal(env_new_wfile(env, pj(&d, "c"), &c), 0);
	if (reserve_or_skip(a, 1 << 20, &d)) {
		assert_int_equal(wfile_close(b), 0);
		assert_int_equal(wfile_close(c), 0);
		free(da);
		free(db);
		return;
	}
	assert_int_equal(wfile_reserve(b, 64 << 10), 0);
	for (int i = 0; i < ROUNDS; i++) {
		size_t n, m;
		int b_rc = -1;
		rnd = rnd * 1103515245u + 12345u;
		n = 4096 + (rnd >> 8) % (A_MAX - 4096);
		m = 1 + (rnd >> 4) % B_MAX;
		assert_int_equal(wfile_append(a, da + na, 40), 0);
		assert_int_equal(wfile_append(a, da + na + 40, n - 40), 0);
		na += n;
		assert_int_equal(wfile_append(b, db + nb, m), 0);
		nb += m;
		/* a third file, not reserved, pairs with the WAL-like one */
		assert_int_equal(wfile_append(c, db + nb - m, m), 0);
		if (i % 3 == 1)
			assert_int_equal(wfile_sync_pair(c, b, &b_rc), 0);
		else
			assert_int_equal(wfile_sync_pair(a, b, &b_rc), 0);
		assert_int_equal(b_rc, 0);
		if (i % 75 == 0) { /* a was in this pair: i % 3 == 0 */
			check_prefix(pj(&d, "a"), da, na);
			check_prefix(pj(&d, "b"), db, nb);
		}
	}
	assert_int_equal(wfile_size(a), na);
	assert_int_equal(wfile_trim(a), 0);
	assert_int_equal(wfile_trim(b), 0);
	assert_int_equal(wfile_close(a), 0);
	assert_int_equal(wfile_close(b), 0);
	assert_int_equal(wfile_close(c), 0);
	assert_int_equal(real_size(pj(&d, "a")), na);
	assert_int_equal(real_size(pj(&d, "b")), nb);
	check_prefix(pj(&d, "a"), da, na);
	check_prefix(pj(&d, "b"), db, nb);
	check_prefix(pj(&d, "c"), db, nb);
	tdir_remove(&d);
	free(da);
	free(db);
}

/* A pair sync whose one file cannot be synced (a character device: no
 * fsync) reports that file's error, naming it, and still syncs the other,
 * whichever of the two it is; the healthy file pairs again afterwards. */
static void test_posix_sync_pair_refused(void **state)
{
	lsm_env *env = env_posix();
	struct tdir d;
	struct env_wfile *f, *dev, *g;
	int b_rc;

	tdir_make(&d);
	assert_int_equal(env_new_wfile(env, pj(&d, "f"), &f), 0);
	assert_int_equal(env_new_wfile(env, pj(&d, "g"), &g), 0);
	assert_int_equal(env_new_wfile(env, "/dev/null", &dev), 0);
	assert_int_equal(wfile_append(f, "data", 4), 0);
	assert_int_equal(wfile_append(dev, "gone", 4), 0);

	b_rc = 0;
	assert_int_equal(wfile_sync_pair(f, dev, &b_rc), 0);
	assert_true(b_rc < 0);
	assert_non_null(strstr(lsm_errdetail(), "fdatasync /dev/null"));

	b_rc = -1;
	assert_true(wfile_sync_pair(dev, f, &b_rc) < 0);
	assert_non_null(strstr(lsm_errdetail(), "fdatasync /dev/null"));
	assert_int_equal(b_rc, 0);

	assert_int_equal(wfile_append(f, "more", 4), 0);
	assert_int_equal(wfile_append(g, "other", 5), 0);
	b_rc = -1;
	assert_int_equal(wfile_sync_pair(f, g, &b_rc), 0);
	assert_int_equal(b_rc, 0);
	check_prefix(pj(&d, "f"), (const uint8_t *)"datamore", 8);
	check_prefix(pj(&d, "g"), (const uint8_t *)"other", 5);

	assert_int_equal(wfile_close(dev), 0);
	assert_int_equal(wfile_close(f), 0);
	assert_int_equal(wfile_close(g), 0);
	tdir_remove(&d);
}

/* Whether [off, off + len) of the file holds an unwritten (allocated but
 * never written) extent: 1 yes, 0 no, -1 the file system cannot tell. */
static int has_unwritten(const char *path, uint64_t off, uint64_t len)
{
	struct {
		struct fiemap fm;
		struct fiemap_extent ext[32];
	} q;
	int fd = open(path, O_RDONLY), r = 0;
	assert_true(fd >= 0);
	memset(&q, 0, sizeof(q));
	q.fm.fm_start = off;
	q.fm.fm_length = len;
	q.fm.fm_flags = FIEMAP_FLAG_SYNC;
	q.fm.fm_extent_count = 32;
	if (ioctl(fd, FS_IOC_FIEMAP, &q.fm) < 0 || q.fm.fm_mapped_extents == 0)
		r = -1;
	for (unsigned i = 0; r == 0 && i < q.fm.fm_mapped_extents; i++)
		if (q.ext[i].fe_flags & FIEMAP_EXTENT_UNWRITTEN)
			r = 1;
	close(fd);
	return r;
}

/* A small synced append into reserved space writes zeros over the next
 * 64 KiB, so the blocks later syncs fill are already written (on file
 * systems that report unwritten extents); the space further on stays
 * merely reserved, and the file reads back as the data then zeros. */
static void test_posix_zero_ahead(void **state)
{
	lsm_env *env = env_posix();
	struct tdir d;
	struct env_wfile *w;
	uint8_t rec[100], *got = malloc(1 << 20);
	int r;

	tdir_make(&d);
	fill(rec, sizeof(rec), 5);
	assert_int_equal(env_new_wfile(env, pj(&d, "z"), &w), 0);
	if (reserve_or_skip(w, 1 << 20, &d)) {
		free(got);
		return;
	}
	r = has_unwritten(pj(&d, "z"), 0, 1 << 20);
	assert_int_equal(wfile_append(w, rec, sizeof(rec)), 0);
	assert_int_equal(wfile_sync(w), 0);
	if (r == 1) {
		/* ext4 and xfs: fallocate leaves the space unwritten */
		assert_int_equal(has_unwritten(pj(&d, "z"), 0, 64 << 10), 0);
		assert_int_equal(
			has_unwritten(pj(&d, "z"), 256 << 10, 256 << 10), 1);
	} else {
		print_message("file system reports no unwritten extents; "
			      "checking contents only\n");
	}
	/* More synced records walk past the zeroed part: it moves along. */
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(wfile_append(w, rec, sizeof(rec)), 0);
		assert_int_equal(wfile_sync(w), 0);
	}
	if (r == 1)
		assert_int_equal(has_unwritten(pj(&d, "z"), 0, 100100 + 4096),
				 0);
	FILE *fp = fopen(pj(&d, "z"), "rb");
	assert_non_null(fp);
	assert_int_equal(fread(got, 1, 1 << 20, fp), 1 << 20);
	fclose(fp);
	for (int i = 0; i < 1001; i++)
		assert_memory_equal(got + i * 100, rec, sizeof(rec));
	for (size_t i = 100100; i < (1 << 20); i++)
		if (got[i] != 0)
			fail_msg("byte %zu past the data is %u", i, got[i]);
	assert_int_equal(wfile_trim(w), 0);
	assert_int_equal(real_size(pj(&d, "z")), 100100);
	assert_int_equal(wfile_close(w), 0);
	tdir_remove(&d);
	free(got);
}

/* The file's bytes as the disk has them (O_DIRECT, past the page cache):
 * [0, n) must be want[0..n), and if `zeros` the rest of the last page
 * zeros. */
static void check_disk(const char *path, const uint8_t *want, size_t n,
		       bool zeros)
{
	size_t len = (n + 4095) & ~(size_t)4095;
	void *p;
	int fd = open(path, O_RDONLY | O_DIRECT);
	if (fd < 0 && errno == EINVAL) /* no O_DIRECT: read it plainly */
		fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(posix_memalign(&p, 4096, len + 4096), 0);
	assert_int_equal(pread(fd, p, len, 0), (ssize_t)len);
	close(fd);
	assert_memory_equal(p, want, n);
	for (size_t i = n; zeros && i < len; i++)
		if (((uint8_t *)p)[i] != 0)
			fail_msg("byte %zu past the data is %u", i,
				 ((uint8_t *)p)[i]);
	free(p);
}

/* Whether the page cache holds the file's page at off. */
static bool page_cached(const char *path, uint64_t off)
{
	int fd = open(path, O_RDWR);
	unsigned char v = 0;
	void *m;
	assert_true(fd >= 0);
	m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd,
		 (off_t)(off & ~(uint64_t)4095));
	assert_true(m != MAP_FAILED);
	assert_int_equal(mincore(m, 4096, &v), 0);
	munmap(m, 4096);
	close(fd);
	return v & 1;
}

/* Runs of small synced appends sync with direct writes of the pages they
 * touch (the page cache then no longer holds the tail page), between
 * bursts of unsynced appends and flushes that go through the page cache
 * (and the mapping) as before, and syncs of what those left. After every
 * sync the disk itself holds exactly the bytes appended, zeros after
 * them; the file read the ordinary way agrees. With `moved_to`, the file
 * is renamed there once open and another takes its name: direct syncs
 * still write the renamed file, and never the other. */
static void direct_sync_runs(const char *path, const char *moved_to,
			     bool drops_pages)
{
	static const char other[] = "another file";
	const char *name = path;
	lsm_env *env = env_posix();
	struct env_wfile *w;
	enum { TOTAL = 3 << 20, RESERVE = 4 << 20 };
	uint8_t *data = malloc(TOTAL);
	size_t off = 0;
	uint32_t rnd = 17;
	int syncs = 0, uncached = 0;

	fill(data, TOTAL, 21);
	assert_int_equal(env_new_wfile(env, path, &w), 0);
	assert_int_equal(wfile_reserve(w, RESERVE), 0);
	if (moved_to) {
		assert_int_equal(rename(name, moved_to), 0);
		write_file(env, name, (const uint8_t *)other, sizeof(other),
			   false);
		path = moved_to;
	}
	while (off < TOTAL - (256 << 10)) {
		rnd = rnd * 1103515245u + 12345u;
		int run = 1 + (int)((rnd >> 8) % 60);
		/* synced records, one to three appends each */
		for (int i = 0; i < run; i++) {
			int parts = 1 + (int)((rnd >> 3) % 3);
			for (int j = 0; j < parts; j++) {
				rnd = rnd * 1103515245u + 12345u;
				size_t n = 1 + (rnd >> 8) % 700;
				if ((rnd >> 4) % 50 == 0)
					n = 4096 + (rnd >> 8) % 6000;
				assert_int_equal(wfile_append(w, data + off, n),
						 0);
				off += n;
			}
			assert_int_equal(wfile_sync(w), 0);
			syncs++;
			if (i > 0 && !page_cached(path, off - 1))
				uncached++;
			if (syncs % 7 == 0)
				check_disk(path, data, off, true);
		}
		check_disk(path, data, off, true);
		check_prefix(path, data, off);
		/* then unsynced appends, flushed now and then */
		size_t burst = (rnd >> 6) % (100 << 10);
		for (size_t end = off + burst; off < end;) {
			rnd = rnd * 1103515245u + 12345u;
			size_t n = 1 + (rnd >> 8) % 300;
			assert_int_equal(wfile_append(w, data + off, n), 0);
			off += n;
			if ((rnd >> 4) % 16 == 0)
				assert_int_equal(wfile_flush(w), 0);
		}
		assert_int_equal(wfile_flush(w), 0);
		check_prefix(path, data, off);
	}
	assert_true(syncs > 500);
	/* Most syncs in a run were direct; those that also zero the blocks
	 * ahead (one per 64 KiB) go through the page cache. */
	if (drops_pages)
		assert_true(uncached > syncs / 2);
	assert_int_equal(wfile_sync(w), 0);
	check_disk(path, data, off, true);
	assert_int_equal(wfile_trim(w), 0);
	assert_int_equal(wfile_close(w), 0);
	assert_int_equal(real_size(path), off);
	check_prefix(path, data, off);
	if (moved_to) {
		assert_int_equal(real_size(name), sizeof(other));
		check_prefix(name, (const uint8_t *)other, sizeof(other));
	}
	free(data);
}

/* Whether an O_DIRECT write into dir drops the page from the page cache
 * (ext4, xfs; tmpfs keeps its pages, some file systems refuse O_DIRECT):
 * only then does residency tell a direct sync from a plain one. */
static bool direct_drops_pages(const struct tdir *d)
{
	const char *path = pj(d, "probe");
	int fd = open(path, O_CREAT | O_RDWR, 0644), dfd;
	bool drops = false;
	void *page;
	assert_true(fd >= 0);
	assert_int_equal(posix_memalign(&page, 4096, 4096), 0);
	memset(page, 1, 4096);
	assert_int_equal(pwrite(fd, page, 4096, 0), 4096);
	assert_int_equal(fsync(fd), 0);
	dfd = open(path, O_WRONLY | O_DIRECT);
	if (dfd >= 0 && page_cached(path, 0)) {
		assert_int_equal(pwrite(dfd, page, 4096, 0), 4096);
		drops = !page_cached(path, 0);
	}
	if (dfd >= 0)
		close(dfd);
	close(fd);
	free(page);
	assert_int_equal(unlink(path), 0);
	if (!drops)
		print_message("O_DIRECT keeps or refuses pages here: "
			      "checking contents only\n");
	return drops;
}

static void test_posix_direct_sync(void **state)
{
	struct tdir d;
	tdir_make(&d);
	direct_sync_runs(pj(&d, "w"), NULL, direct_drops_pages(&d));
	tdir_remove(&d);
}

static void test_posix_direct_renamed(void **state)
{
	struct tdir d;
	tdir_make(&d);
	direct_sync_runs(pj(&d, "w"), pj(&d, "moved"), direct_drops_pages(&d));
	tdir_remove(&d);
}

/* Appends of 100 bytes, each synced, until the file holds n bytes. */
static size_t synced_records(struct env_wfile *w, uint8_t *data, size_t off,
			     size_t n)
{
	while (off + 100 <= n) {
		assert_int_equal(wfile_append(w, data + off, 100), 0);
		assert_int_equal(wfile_sync(w), 0);
		off += 100;
	}
	return off;
}

/* After direct syncs, an append of the buffer's size or more goes to the
 * file at once and the next sync is a plain one; the direct syncs after
 * it must stage the tail page's synced bytes that the large append and
 * its sync wrote, not the copy from before. */
static void test_posix_direct_after_large(void **state)
{
	lsm_env *env = env_posix();
	struct tdir d;
	struct env_wfile *w;
	enum { TOTAL = 400 << 10 };
	uint8_t *data = malloc(TOTAL);
	size_t off = 0;

	tdir_make(&d);
	fill(data, TOTAL, 31);
	assert_int_equal(env_new_wfile(env, pj(&d, "w"), &w), 0);
	if (reserve_or_skip(w, 1 << 20, &d)) {
		free(data);
		return;
	}
	for (int round = 0; round < 4; round++) {
		off = synced_records(w, data, off, off + 3050);
		assert_int_equal(wfile_append(w, data + off, 70000), 0);
		off += 70000;
		assert_int_equal(wfile_sync(w), 0);
		off = synced_records(w, data, off, off + 2000);
		check_disk(pj(&d, "w"), data, off, true);
	}
	assert_int_equal(wfile_close(w), 0);
	tdir_remove(&d);
	free(data);
}

/* Sets the process's file size limit (`ulimit -f`) to `limit` bytes,
 * with SIGXFSZ ignored so that a write past it fails with EFBIG; *old
 * gets what fsize_restore() puts back. */
static void fsize_limit(rlim_t limit, struct rlimit *old)
{
	struct rlimit lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, old), 0);
	lim = *old;
	lim.rlim_cur = limit;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
}

static void fsize_restore(const struct rlimit *old)
{
	assert_int_equal(setrlimit(RLIMIT_FSIZE, old), 0);
	signal(SIGXFSZ, SIG_DFL);
}

/* A flush after a direct sync writes the tail page whole from its staged
 * copy; when the kernel cuts that write short (the file size limit), the
 * bytes it did not take stay buffered, exactly once, and a later sync
 * writes them. */
static void test_posix_direct_flush_cut(void **state)
{
	lsm_env *env = env_posix();
	struct tdir d;
	struct env_wfile *w;
	struct rlimit old;
	enum { LIMIT = 1 << 20, TOTAL = LIMIT + (64 << 10) };
	uint8_t *data = malloc(TOTAL);
	size_t off;

	tdir_make(&d);
	fill(data, TOTAL, 41);
	assert_int_equal(env_new_wfile(env, pj(&d, "w"), &w), 0);
	if (reserve_or_skip(w, 2 << 20, &d)) {
		free(data);
		return;
	}
	off = synced_records(w, data, 0, LIMIT - 3000);
	fsize_limit(LIMIT, &old);
	assert_int_equal(wfile_append(w, data + off, 9000), 0);
	off += 9000;
	assert_int_equal(wfile_flush(w), -EFBIG);
	fsize_restore(&old);
	assert_int_equal(wfile_sync(w), 0);
	off = synced_records(w, data, off, off + 1000);
	check_disk(pj(&d, "w"), data, off, true);
	assert_int_equal(wfile_close(w), 0);
	tdir_remove(&d);
	free(data);
}

/* A direct sync that the kernel cuts short (here: the process's file
 * size limit, `ulimit -f`) falls back to the plain sync, which reports
 * the error; what earlier syncs made durable stays on the disk. */
static void test_posix_direct_sync_fails(void **state)
{
	lsm_env *env = env_posix();
	struct tdir d;
	struct env_wfile *w;
	struct rlimit old;
	uint8_t rec[100];
	size_t synced = 0;
	int rc = 0;

	tdir_make(&d);
	fill(rec, sizeof(rec), 9);
	assert_int_equal(env_new_wfile(env, pj(&d, "w"), &w), 0);
	if (reserve_or_skip(w, 2 << 20, &d))
		return;
	fsize_limit(1 << 20, &old);
	for (int i = 0; i < 20000 && rc == 0; i++) {
		assert_int_equal(wfile_append(w, rec, sizeof(rec)), 0);
		rc = wfile_sync(w);
		if (rc == 0)
			synced += sizeof(rec);
	}
	fsize_restore(&old);
	assert_int_equal(rc, -EFBIG);
	assert_non_null(strstr(lsm_errdetail(), "File too large"));
	assert_int_equal(synced, 10485 * sizeof(rec)); /* below 1 MiB */
	{
		uint8_t *want = malloc(synced);
		for (size_t i = 0; i < synced; i += sizeof(rec))
			memcpy(want + i, rec, sizeof(rec));
		/* past it, the failed sync may have left part of its
		 * record: recovery stops at its checksum */
		check_disk(pj(&d, "w"), want, synced, false);
		free(want);
	}
	wfile_close(w);
	tdir_remove(&d);
}

static void test_posix_lock(void **state)
{
	lsm_env *env = env_posix();
	struct tdir d;
	struct env_lock *a = NULL, *b = NULL;

	tdir_make(&d);
	assert_int_equal(env->ops->lock_file(env, pj(&d, "LOCK"), &a), 0);
	assert_non_null(a);
	assert_int_equal(env->ops->lock_file(env, pj(&d, "LOCK"), &b),
			 LSM_E_BUSY);
	assert_null(b);
	assert_non_null(
		strstr(lsm_errdetail(), "store is locked by another process"));
	assert_non_null(strstr(lsm_errdetail(), pj(&d, "LOCK")));
	env->ops->unlock_file(env, a);
	assert_int_equal(env->ops->lock_file(env, pj(&d, "LOCK"), &b), 0);
	env->ops->unlock_file(env, b);
	tdir_remove(&d);
}

static void test_write_file_atomic(void **state)
{
	lsm_env *env = env_posix();
	struct tdir d;
	uint8_t *buf;
	size_t len;

	tdir_make(&d);
	assert_int_equal(env_write_file_atomic(env, d.path, "CURRENT",
					       "MANIFEST-1\n", 11),
			 0);
	assert_int_equal(env_read_file(env, pj(&d, "CURRENT"), &buf, &len), 0);
	assert_int_equal(len, 11);
	assert_memory_equal(buf, "MANIFEST-1\n", 11);
	free(buf);
	assert_int_equal(env_write_file_atomic(env, d.path, "CURRENT",
					       "MANIFEST-22\n", 12),
			 0);
	assert_int_equal(env_read_file(env, pj(&d, "CURRENT"), &buf, &len), 0);
	assert_int_equal(len, 12);
	assert_memory_equal(buf, "MANIFEST-22\n", 12);
	free(buf);
	assert_false(real_exists(pj(&d, "CURRENT.tmp")));
	/* empty file */
	assert_int_equal(env_write_file_atomic(env, d.path, "E", "", 0), 0);
	assert_int_equal(env_read_file(env, pj(&d, "E"), &buf, &len), 0);
	assert_int_equal(len, 0);
	free(buf);
	tdir_remove(&d);
}

static void test_fault_fail_nth(void **state)
{
	lsm_env *env = env_fault_new(env_posix());
	struct tdir d;
	struct env_wfile *w;
	uint64_t n0;

	tdir_make(&d);
	assert_int_equal(env_new_wfile(env, pj(&d, "f"), &w), 0);
	n0 = env_fault_op_count(env);
	assert_int_equal(n0, 1);

	/* one-shot: exactly the 2nd op from now fails */
	env_fault_fail_nth(env, 2, -EIO, false);
	assert_int_equal(wfile_append(w, "abc", 3), 0);
	assert_int_equal(wfile_append(w, "def", 3), -EIO);
	assert_non_null(strstr(lsm_errdetail(), "injected"));
	assert_int_equal(wfile_append(w, "ghi", 3), 0);
	assert_int_equal(wfile_size(w), 6);
	assert_int_equal(wfile_sync(w), 0);
	assert_int_equal(env_fault_op_count(env), n0 + 4);
	assert_int_equal(wfile_close(w), 0);
	assert_int_equal(real_size(pj(&d, "f")), 6);

	/* sticky: the 1st op from now and all later mutating ops fail */
	env_fault_fail_nth(env, 1, -ENOSPC, true);
	assert_int_equal(env->ops->rename_file(env, pj(&d, "f"), pj(&d, "g")),
			 -ENOSPC);
	assert_true(real_exists(pj(&d, "f")));
	assert_int_equal(env->ops->make_dir(env, pj(&d, "s")), -ENOSPC);
	assert_int_equal(env->ops->sync_dir(env, d.path), -ENOSPC);
	assert_int_equal(env_new_wfile(env, pj(&d, "h"), &w), -ENOSPC);
	assert_false(real_exists(pj(&d, "h")));
	assert_int_equal(env->ops->remove_file(env, pj(&d, "f")), -ENOSPC);
	assert_int_equal(env_write_file_atomic(env, d.path, "X", "x", 1),
			 -ENOSPC);
	/* reads still work */
	uint8_t *buf;
	size_t len;
	assert_int_equal(env_read_file(env, pj(&d, "f"), &buf, &len), 0);
	assert_int_equal(len, 6);
	assert_memory_equal(buf, "abcghi", 6);
	free(buf);

	env_fault_reset(env);
	assert_int_equal(env->ops->rename_file(env, pj(&d, "f"), pj(&d, "g")),
			 0);
	assert_int_equal(env_write_file_atomic(env, d.path, "X", "x", 1), 0);

	/* failing the k-th op of env_write_file_atomic leaves no X.tmp and
	 * the old X intact */
	for (uint64_t k = 1; k <= 6; k++) {
		env_fault_fail_nth(env, k, -EIO, false);
		int rc = env_write_file_atomic(env, d.path, "X", "yy", 2);
		env_fault_reset(env);
		assert_int_equal(env_read_file(env, pj(&d, "X"), &buf, &len),
				 0);
		if (rc == 0) {
			assert_int_equal(len, 2);
			/* restore for the next round */
			assert_int_equal(
				env_write_file_atomic(env, d.path, "X", "x", 1),
				0);
		} else {
			assert_int_equal(rc, -EIO);
			if (k < 5) { /* failed before the rename */
				assert_int_equal(len, 1);
				assert_false(real_exists(pj(&d, "X.tmp")));
			}
		}
		free(buf);
	}
	tdir_remove(&d);
	env_fault_free(env);
}

static void test_fault_enospc(void **state)
{
	lsm_env *env = env_fault_new(env_posix());
	struct tdir d;
	struct env_wfile *w;
	uint8_t buf[1000];
	uint64_t free_bytes;

	fill(buf, sizeof(buf), 3);
	tdir_make(&d);
	env_fault_set_space_limit(env, 1000);
	assert_int_equal(env_new_wfile(env, pj(&d, "a"), &w), 0);
	assert_int_equal(wfile_append(w, buf, 600), 0);
	assert_int_equal(env->ops->free_space(env, d.path, &free_bytes), 0);
	assert_int_equal(free_bytes, 400);
	assert_int_equal(wfile_append(w, buf, 500), -ENOSPC);
	assert_non_null(strstr(lsm_errdetail(), pj(&d, "a")));
	assert_int_equal(wfile_append(w, buf, 400), 0);
	assert_int_equal(wfile_append(w, buf, 1), -ENOSPC);
	assert_int_equal(wfile_size(w), 1000);
	assert_int_equal(wfile_close(w), 0);
	assert_int_equal(real_size(pj(&d, "a")), 1000); /* nothing partial */

	assert_int_equal(env_new_wfile(env, pj(&d, "b"), &w), 0);
	assert_int_equal(wfile_append(w, buf, 1), -ENOSPC);
	/* removing a file frees its bytes */
	assert_int_equal(env->ops->remove_file(env, pj(&d, "a")), 0);
	assert_int_equal(wfile_append(w, buf, 900), 0);
	assert_int_equal(wfile_append(w, buf, 101), -ENOSPC);
	assert_int_equal(wfile_close(w), 0);
	/* truncating by re-creating frees them too */
	assert_int_equal(env_new_wfile(env, pj(&d, "b"), &w), 0);
	assert_int_equal(wfile_append(w, buf, 1000), 0);
	assert_int_equal(wfile_close(w), 0);

	env_fault_set_space_limit(env, 0);
	assert_int_equal(env_new_wfile(env, pj(&d, "c"), &w), 0);
	assert_int_equal(wfile_append(w, buf, 1000), 0);
	assert_int_equal(wfile_close(w), 0);
	tdir_remove(&d);
	env_fault_free(env);
}

static void test_fault_power_cut(void **state)
{
	lsm_env *env = env_fault_new(env_posix());
	struct tdir d;
	struct env_wfile *a, *b, *c;
	struct env_rfile *r;
	uint8_t buf[4096], got[4096];
	size_t n;

	fill(buf, sizeof(buf), 11);
	tdir_make(&d);
	/* old: written and synced, name durable */
	write_file(env, pj(&d, "old"), buf, 300, true);
	/* a: 100 synced + 50 flushed + 20 buffered */
	assert_int_equal(env_new_wfile(env, pj(&d, "a"), &a), 0);
	assert_int_equal(wfile_append(a, buf, 100), 0);
	assert_int_equal(wfile_sync(a), 0);
	assert_int_equal(env->ops->sync_dir(env, d.path), 0);
	assert_int_equal(wfile_append(a, buf + 100, 50), 0);
	assert_int_equal(wfile_flush(a), 0);
	assert_int_equal(wfile_append(a, buf + 150, 20), 0);
	/* b: created after the last sync_dir, synced, still open */
	assert_int_equal(env_new_wfile(env, pj(&d, "b"), &b), 0);
	assert_int_equal(wfile_append(b, buf, 10), 0);
	assert_int_equal(wfile_sync(b), 0);
	/* c: created in a synced-later sub directory */
	assert_int_equal(env->ops->make_dir(env, pj(&d, "sub")), 0);
	assert_int_equal(env_new_wfile(env, pj(&d, "sub/c"), &c), 0);
	assert_int_equal(wfile_append(c, buf, 64), 0);
	assert_int_equal(wfile_sync(c), 0);
	assert_int_equal(wfile_close(c), 0);
	assert_int_equal(env->ops->sync_dir(env, pj(&d, "sub")), 0);
	/* an open reader */
	assert_int_equal(env_new_rfile(env, pj(&d, "old"), &r), 0);

	env_fault_power_cut(env, 0);

	assert_int_equal(real_size(pj(&d, "a")), 100);
	assert_false(real_exists(pj(&d, "b")));
	assert_int_equal(real_size(pj(&d, "sub/c")), 64);
	assert_int_equal(real_size(pj(&d, "old")), 300);

	/* handles from before the cut are dead */
	assert_int_equal(wfile_append(a, buf, 1), -EIO);
	assert_int_equal(wfile_flush(a), -EIO);
	assert_int_equal(wfile_sync(b), -EIO);
	assert_int_equal(rfile_read(r, 0, 10, got, &n), -EIO);
	rfile_close(r);
	assert_int_equal(wfile_close(a), 0);
	assert_int_equal(wfile_close(b), 0);
	/* buffered bytes of the old handle never reach the file */
	assert_int_equal(real_size(pj(&d, "a")), 100);
	assert_int_equal(env_new_rfile(env, pj(&d, "a"), &r), 0);
	assert_int_equal(rfile_read(r, 0, 4096, got, &n), 0);
	assert_int_equal(n, 100);
	assert_memory_equal(got, buf, 100);
	rfile_close(r);

	/* the surviving state is durable: a second cut changes nothing */
	env_fault_power_cut(env, 0);
	assert_int_equal(real_size(pj(&d, "a")), 100);
	assert_int_equal(real_size(pj(&d, "sub/c")), 64);

	/* the power stays off until reset: nothing can be written */
	assert_int_equal(env_new_wfile(env, pj(&d, "n"), &a), -EIO);
	assert_int_equal(env->ops->remove_file(env, pj(&d, "a")), -EIO);
	assert_int_equal(real_size(pj(&d, "a")), 100);

	/* new handles work once power is back */
	env_fault_reset(env);
	assert_int_equal(env_new_wfile(env, pj(&d, "n"), &a), 0);
	assert_int_equal(wfile_append(a, buf, 5), 0);
	assert_int_equal(wfile_close(a), 0);
	assert_int_equal(real_size(pj(&d, "n")), 5);
	tdir_remove(&d);
	env_fault_free(env);
}

static void test_fault_power_cut_rename(void **state)
{
	lsm_env *env = env_fault_new(env_posix());
	struct tdir d;
	uint8_t *buf;
	size_t len;

	tdir_make(&d);
	assert_int_equal(
		env_write_file_atomic(env, d.path, "CURRENT", "one", 3), 0);
	/* a rename over CURRENT without the directory sync is undone */
	write_file(env, pj(&d, "CURRENT.tmp"), (const uint8_t *)"two", 3, true);
	assert_int_equal(env->ops->rename_file(env, pj(&d, "CURRENT.tmp"),
					       pj(&d, "CURRENT")),
			 0);
	env_fault_power_cut(env, 0);
	assert_int_equal(env_read_file(env, pj(&d, "CURRENT"), &buf, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(buf, "one", 3);
	free(buf);
	assert_false(real_exists(pj(&d, "CURRENT.tmp")));
	env_fault_reset(env);

	/* with the directory sync it sticks */
	assert_int_equal(
		env_write_file_atomic(env, d.path, "CURRENT", "three", 5), 0);
	env_fault_power_cut(env, 0);
	assert_int_equal(env_read_file(env, pj(&d, "CURRENT"), &buf, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, "three", 5);
	free(buf);
	env_fault_reset(env);

	/* a durable file renamed without a dir sync goes back to its name */
	write_file(env, pj(&d, "x"), (const uint8_t *)"xx", 2, true);
	assert_int_equal(env->ops->sync_dir(env, d.path), 0);
	assert_int_equal(env->ops->rename_file(env, pj(&d, "x"), pj(&d, "y")),
			 0);
	env_fault_power_cut(env, 0);
	assert_true(real_exists(pj(&d, "x")));
	assert_false(real_exists(pj(&d, "y")));
	tdir_remove(&d);
	env_fault_free(env);
}

static void test_fault_torn(void **state)
{
	uint8_t buf[8192];
	int n_kept_more = 0, n_exact = 0;

	fill(buf, sizeof(buf), 5);
	for (uint64_t seed = 1; seed <= 40; seed++) {
		lsm_env *env = env_fault_new(env_posix());
		struct env_wfile *w;
		struct tdir d;
		uint8_t *got;
		size_t len;

		tdir_make(&d);
		assert_int_equal(env_new_wfile(env, pj(&d, "f"), &w), 0);
		assert_int_equal(wfile_append(w, buf, 1000), 0);
		assert_int_equal(wfile_sync(w), 0);
		assert_int_equal(env->ops->sync_dir(env, d.path), 0);
		assert_int_equal(wfile_append(w, buf + 1000, 3000), 0);
		assert_int_equal(wfile_flush(w), 0);
		/* never flushed: cannot survive */
		assert_int_equal(wfile_append(w, buf + 4000, 2000), 0);
		env_fault_power_cut(env, seed);
		assert_int_equal(wfile_close(w), 0);

		assert_int_equal(env_read_file(env, pj(&d, "f"), &got, &len),
				 0);
		assert_true(len >= 1000);
		assert_true(len <= 4000 + 8);
		/* the synced part always survives intact */
		assert_memory_equal(got, buf, 1000);
		if (len > 1000)
			n_kept_more++;
		/* whatever survives is a prefix of what was written, except
		 * for at most 8 bytes of garbage at the end */
		size_t same = 0;
		while (same < len && got[same] == buf[same])
			same++;
		assert_true(len - same <= 8);
		if (same == len)
			n_exact++;
		free(got);
		tdir_remove(&d);
		env_fault_free(env);
	}
	assert_true(n_kept_more > 20);
	assert_true(n_exact > 5);
	assert_true(n_exact < 40); /* some garbage was written too */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_posix_roundtrip),
		cmocka_unit_test(test_posix_reserved_after_sync),
		cmocka_unit_test(test_posix_zero_ahead),
		cmocka_unit_test(test_posix_sync_pair),
		cmocka_unit_test(test_posix_sync_pair_refused),
		cmocka_unit_test(test_posix_direct_sync),
		cmocka_unit_test(test_posix_direct_renamed),
		cmocka_unit_test(test_posix_direct_sync_fails),
		cmocka_unit_test(test_posix_direct_after_large),
		cmocka_unit_test(test_posix_direct_flush_cut),
		cmocka_unit_test(test_posix_lock),
		cmocka_unit_test(test_write_file_atomic),
		cmocka_unit_test(test_fault_fail_nth),
		cmocka_unit_test(test_fault_enospc),
		cmocka_unit_test(test_fault_power_cut),
		cmocka_unit_test(test_fault_power_cut_rename),
		cmocka_unit_test(test_fault_torn),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
