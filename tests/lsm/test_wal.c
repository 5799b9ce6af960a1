/*
 * test_wal.c - the record log: round trips, torn tails vs corruption,
 * writer error handling, and recovery after simulated power cuts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "env/env.h"
#include "env/env_fault.h"
#include "util/coding.h"
#include "util/hash.h"
#include "util/status.h"
#include "wal/wal.h"
#include "wal/wal_format.h"

struct tdir {
	char path[64];
	char file[96];
};

static void tdir_make(struct tdir *d)
{
	strcpy(d->path, "/tmp/lsm-test-wal-XXXXXX");
	assert_non_null(mkdtemp(d->path));
	snprintf(d->file, sizeof(d->file), "%s/000001.log", d->path);
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

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* The payload of record i: deterministic bytes of length len. */
static void payload(uint8_t *p, size_t len, uint32_t i)
{
	uint32_t x = i * 2654435761u + 1;
	for (size_t k = 0; k < len; k++) {
		x = x * 1103515245u + 12345u;
		p[k] = (uint8_t)(x >> 16);
	}
}

static void put_file(const char *path, const uint8_t *p, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	if (len)
		assert_int_equal(fwrite(p, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static uint8_t *get_file(const char *path, size_t *len)
{
	uint8_t *buf;
	assert_int_equal(env_read_file(env_posix(), path, &buf, len), 0);
	return buf;
}

/* Writes n records with the given sizes; offsets of each record (and the
 * end) go to offs[0..n]. */
static void write_log(lsm_env *env, const char *path, const size_t *sizes,
		      size_t n, uint64_t *offs)
{
	struct wal_writer *w;
	size_t max = 0;
	for (size_t i = 0; i < n; i++)
		if (sizes[i] > max)
			max = sizes[i];
	uint8_t *buf = malloc(max + 1);
	assert_int_equal(walw_open(env, path, &w), 0);
	for (size_t i = 0; i < n; i++) {
		offs[i] = walw_size(w);
		payload(buf, sizes[i], (uint32_t)i);
		assert_int_equal(walw_add(w, buf, sizes[i]), 0);
		assert_int_equal(walw_size(w),
				 offs[i] + WAL_HEADER_LEN + sizes[i]);
	}
	offs[n] = walw_size(w);
	assert_int_equal(walw_sync(w), 0);
	assert_int_equal(walw_close(w), 0);
	free(buf);
}

/* Reads the log and checks it holds exactly records 0..n_expect-1; returns
 * walr_next's final status. */
static int read_log(const char *path, const size_t *sizes, size_t n_expect,
		    const uint64_t *offs, bool *is_torn, uint64_t *torn_off)
{
	struct wal_reader *r;
	struct slice rec;
	uint64_t off;
	size_t i = 0;
	int rc;
	uint8_t *buf = NULL;

	assert_int_equal(walr_open(env_posix(), path, &r), 0);
	while ((rc = walr_next(r, &rec, &off)) == 1) {
		assert_true(i < n_expect);
		assert_int_equal(rec.len, sizes[i]);
		assert_int_equal(off, offs[i]);
		buf = realloc(buf, sizes[i] + 1);
		payload(buf, sizes[i], (uint32_t)i);
		if (rec.len)
			assert_memory_equal(rec.p, buf, rec.len);
		i++;
	}
	if (rc == 0)
		assert_int_equal(i, n_expect);
	/* the end is sticky */
	assert_int_equal(walr_next(r, &rec, &off), rc);
	*is_torn = walr_torn(r, torn_off);
	walr_close(r);
	free(buf);
	return rc;
}

static void test_roundtrip_random_sizes(void **state)
{
	struct tdir d;
	enum { N = 300 };
	size_t sizes[N];
	uint64_t offs[N + 1], s = 42, torn_off;
	bool is_torn;
	size_t len;

	for (size_t i = 0; i < N; i++) {
		uint64_t x = rng_next(&s);
		if (i == 0)
			sizes[i] = 0;
		else if (i == 1)
			sizes[i] = 1 << 20; /* the largest size */
		else if (x % 20 == 0)
			sizes[i] = (size_t)(rng_next(&s) % ((1 << 20) + 1));
		else
			sizes[i] = (size_t)(rng_next(&s) % 300);
	}
	tdir_make(&d);
	write_log(env_posix(), d.file, sizes, N, offs);
	free(get_file(d.file, &len));
	assert_int_equal(len, offs[N]);
	assert_int_equal(read_log(d.file, sizes, N, offs, &is_torn, &torn_off),
			 0);
	assert_false(is_torn);
	tdir_remove(&d);
}

static void test_empty_file(void **state)
{
	struct tdir d;
	bool is_torn;
	uint64_t torn_off = 77;
	struct wal_writer *w;

	tdir_make(&d);
	assert_int_equal(walw_open(env_posix(), d.file, &w), 0);
	assert_int_equal(walw_size(w), 0);
	assert_int_equal(walw_close(w), 0);
	assert_int_equal(read_log(d.file, NULL, 0, NULL, &is_torn, &torn_off),
			 0);
	assert_false(is_torn);
	assert_int_equal(torn_off, 77); /* untouched */
	tdir_remove(&d);
}

static void test_truncate_last_record(void **state)
{
	struct tdir d;
	size_t sizes[] = {10, 0, 5000, 300000, 37};
	enum { N = 5 };
	uint64_t offs[N + 1], torn_off;
	bool is_torn;
	size_t len;
	char cut[128];
	uint8_t *all;

	tdir_make(&d);
	snprintf(cut, sizeof(cut), "%s/cut.log", d.path);
	write_log(env_posix(), d.file, sizes, N, offs);
	all = get_file(d.file, &len);
	/* every cut inside the last record: clean prefix, torn at its start */
	for (uint64_t at = offs[N - 1]; at < offs[N]; at++) {
		put_file(cut, all, (size_t)at);
		assert_int_equal(
			read_log(cut, sizes, N - 1, offs, &is_torn, &torn_off),
			0);
		if (at == offs[N - 1]) {
			assert_false(is_torn);
		} else {
			assert_true(is_torn);
			assert_int_equal(torn_off, offs[N - 1]);
		}
	}
	/* cuts inside the big record before it (sampled) */
	for (uint64_t at = offs[3] + 1; at < offs[4]; at += 997) {
		put_file(cut, all, (size_t)at);
		assert_int_equal(
			read_log(cut, sizes, 3, offs, &is_torn, &torn_off), 0);
		assert_true(is_torn);
		assert_int_equal(torn_off, offs[3]);
	}
	free(all);
	tdir_remove(&d);
}

static void test_zero_tail_is_torn(void **state)
{
	struct tdir d;
	size_t sizes[] = {100, 200, 300};
	enum { N = 3 };
	uint64_t offs[N + 1], torn_off;
	bool is_torn;
	size_t len, zeros[] = {1, 5, 9, 20, 4096, 100000};
	uint8_t *all;

	tdir_make(&d);
	write_log(env_posix(), d.file, sizes, N, offs);
	all = get_file(d.file, &len);
	for (size_t z = 0; z < sizeof(zeros) / sizeof(zeros[0]); z++) {
		uint8_t *b = calloc(1, len + zeros[z]);
		memcpy(b, all, len);
		put_file(d.file, b, len + zeros[z]);
		assert_int_equal(
			read_log(d.file, sizes, N, offs, &is_torn, &torn_off),
			0);
		assert_true(is_torn);
		assert_int_equal(torn_off, offs[N]);
		/* a zeroed last record (preallocated space) is torn too */
		memset(b + offs[N - 1], 0, len - offs[N - 1]);
		put_file(d.file, b, len + zeros[z]);
		assert_int_equal(read_log(d.file, sizes, N - 1, offs, &is_torn,
					  &torn_off),
				 0);
		assert_true(is_torn);
		assert_int_equal(torn_off, offs[N - 1]);
		free(b);
	}
	free(all);
	tdir_remove(&d);
}

/* A writer that reserves its file size ahead: the file is larger than the
 * records (zeros), readers stop cleanly at the zeros, a record torn into
 * the reserved space (a prefix of it, then zeros) is a torn tail wherever
 * the cut falls, damage before the last record is still corruption, and
 * walw_trim cuts the file back to the records. */
static void test_reserved_log(void **state)
{
	struct tdir d;
	enum { N = 40, CHUNK = 64 << 10 };
	size_t sizes[N];
	uint64_t offs[N + 1], torn_off;
	struct wal_writer *w;
	uint8_t *buf = malloc(4096), *all, *b;
	bool is_torn;
	size_t len;
	struct stat st;

	tdir_make(&d);
	assert_int_equal(walw_open_reserved(env_posix(), d.file, CHUNK, &w), 0);
	for (size_t i = 0; i < N; i++) {
		sizes[i] = 100 + i * 97 % 3000;
		offs[i] = walw_size(w);
		payload(buf, sizes[i], (uint32_t)i);
		assert_int_equal(walw_add(w, buf, sizes[i]), 0);
	}
	offs[N] = walw_size(w);
	assert_int_equal(walw_sync(w), 0);
	assert_int_equal(stat(d.file, &st), 0);
	assert_true((uint64_t)st.st_size > offs[N]);
	assert_int_equal((uint64_t)st.st_size % CHUNK, 0);
	assert_int_equal(read_log(d.file, sizes, N, offs, &is_torn, &torn_off),
			 0);
	assert_true(is_torn);
	assert_int_equal(torn_off, offs[N]);

	/* Cut the last record at every few bytes: its prefix, then zeros. */
	all = get_file(d.file, &len);
	b = malloc(len);
	for (uint64_t cut = offs[N - 1] + 1; cut < offs[N]; cut += 7) {
		memcpy(b, all, len);
		memset(b + cut, 0, len - cut);
		put_file(d.file, b, len);
		assert_int_equal(read_log(d.file, sizes, N - 1, offs, &is_torn,
					  &torn_off),
				 0);
		assert_true(is_torn);
		assert_int_equal(torn_off, offs[N - 1]);
	}
	/* A flipped payload byte in a middle record is corruption. */
	memcpy(b, all, len);
	b[offs[N / 2] + WAL_HEADER_LEN + 3] ^= 0x40;
	put_file(d.file, b, len);
	assert_int_equal(read_log(d.file, sizes, N, offs, &is_torn, &torn_off),
			 LSM_E_CORRUPT);
	/* So is one in the last record when data follows in the tail. */
	memcpy(b, all, len);
	b[offs[N - 1] + WAL_HEADER_LEN + 1] ^= 0x40;
	b[offs[N] + 100] = 0x55;
	put_file(d.file, b, len);
	assert_int_equal(read_log(d.file, sizes, N, offs, &is_torn, &torn_off),
			 LSM_E_CORRUPT);
	put_file(d.file, all, len);

	/* Trim: back to the records, and a clean end. */
	assert_int_equal(walw_trim(w), 0);
	assert_int_equal(stat(d.file, &st), 0);
	assert_int_equal((uint64_t)st.st_size, offs[N]);
	assert_int_equal(walw_close(w), 0);
	assert_int_equal(read_log(d.file, sizes, N, offs, &is_torn, &torn_off),
			 0);
	assert_false(is_torn);
	free(all);
	free(b);
	free(buf);
	tdir_remove(&d);
}

static void test_flipped_middle_byte_is_corruption(void **state)
{
	struct tdir d;
	size_t sizes[] = {100, 200, 300, 400};
	enum { N = 4 };
	uint64_t offs[N + 1], torn_off;
	bool is_torn;
	size_t len;
	uint8_t *all;
	char want[160];

	tdir_make(&d);
	write_log(env_posix(), d.file, sizes, N, offs);
	all = get_file(d.file, &len);
	/* every byte of record 2 (checksum, length, type, header check,
	 * payload): the header check catches a damaged length, so even one
	 * that claims to run past the end is corruption, not a torn tail */
	for (uint64_t at = offs[2]; at < offs[3]; at++) {
		for (int bit = 0; bit < 8; bit += 3) {
			all[at] ^= (uint8_t)(1u << bit);
			put_file(d.file, all, len);
			all[at] ^= (uint8_t)(1u << bit);
			int rc = read_log(d.file, sizes, 2, offs, &is_torn,
					  &torn_off);
			assert_int_equal(rc, LSM_E_CORRUPT);
			assert_false(is_torn);
			snprintf(want, sizeof(want), "file %s offset %llu",
				 d.file, (unsigned long long)offs[2]);
			assert_non_null(strstr(lsm_errdetail(), want));
		}
	}
	free(all);
	tdir_remove(&d);
}

static void test_flipped_last_record_is_torn(void **state)
{
	struct tdir d;
	size_t sizes[] = {100, 200, 300, 400};
	enum { N = 4 };
	uint64_t offs[N + 1], torn_off;
	bool is_torn;
	size_t len;
	uint8_t *all;

	tdir_make(&d);
	write_log(env_posix(), d.file, sizes, N, offs);
	all = get_file(d.file, &len);
	/* a damaged checksum field or payload in the last record is a torn
	 * write; a damaged header (length, type, header check) is not
	 * something a crash produces: corruption */
	for (uint64_t at = offs[3]; at < offs[4]; at++) {
		bool in_header =
			at >= offs[3] + 4 && at < offs[3] + WAL_HEADER_LEN;
		all[at] ^= 0x41;
		put_file(d.file, all, len);
		all[at] ^= 0x41;
		int rc = read_log(d.file, sizes, 3, offs, &is_torn, &torn_off);
		if (in_header) {
			assert_int_equal(rc, LSM_E_CORRUPT);
			continue;
		}
		assert_int_equal(rc, 0);
		assert_true(is_torn);
		assert_int_equal(torn_off, offs[3]);
	}
	free(all);
	tdir_remove(&d);
}

/* Bug found by a 3000-seed power-cut run: a torn write kept all but the last
 * bytes of a short record and then a few bytes of garbage that reached past
 * the record's end, which the first rule ("bad and ends exactly at EOF")
 * called corruption. A bad record followed by less than a header is torn. */
static void test_torn_garbage_past_short_record(void **state)
{
	struct tdir d;
	size_t sizes[] = {300, 132, 50};
	enum { N = 3 };
	uint64_t offs[N + 1], torn_off;
	bool is_torn;
	size_t len;
	uint8_t *all;

	tdir_make(&d);
	write_log(env_posix(), d.file, sizes, N, offs);
	all = get_file(d.file, &len);
	/* record 1 loses its last 3 bytes to garbage and 1..8 bytes of the
	 * next header follow */
	for (uint64_t extra = 1; extra < WAL_HEADER_LEN; extra++) {
		uint8_t *b = malloc(len);
		memcpy(b, all, len);
		memset(b + offs[2] - 3, 0xa5, 3 + extra);
		put_file(d.file, b, (size_t)(offs[2] + extra));
		assert_int_equal(
			read_log(d.file, sizes, 1, offs, &is_torn, &torn_off),
			0);
		assert_true(is_torn);
		assert_int_equal(torn_off, offs[1]);
		/* a whole header's worth after it: corruption */
		put_file(d.file, b, (size_t)(offs[2] + WAL_HEADER_LEN));
		assert_int_equal(
			read_log(d.file, sizes, 1, offs, &is_torn, &torn_off),
			LSM_E_CORRUPT);
		free(b);
	}
	free(all);
	tdir_remove(&d);
}

static void test_oversize_length(void **state)
{
	struct tdir d;
	size_t sizes[] = {100, 200, 300};
	enum { N = 3 };
	uint64_t offs[N + 1], torn_off;
	bool is_torn;
	size_t len;
	uint8_t *all, dummy[1] = {0};
	struct wal_writer *w;

	tdir_make(&d);
	/* the writer refuses payloads over 1 GiB without reading them */
	assert_int_equal(walw_open(env_posix(), d.file, &w), 0);
	assert_int_equal(walw_add(w, dummy, (size_t)WAL_MAX_PAYLOAD + 1),
			 -EINVAL);
	assert_int_equal(walw_add(w, dummy, 1), 0); /* not poisoned */
	assert_int_equal(walw_close(w), 0);

	write_log(env_posix(), d.file, sizes, N, offs);
	all = get_file(d.file, &len);
	/* last record's length damaged to 0xffffffff: its header check
	 * fails with a whole record's bytes behind it: corruption */
	put_fixed32(all + offs[2] + 4, 0xffffffffu);
	put_file(d.file, all, len);
	assert_int_equal(read_log(d.file, sizes, 2, offs, &is_torn, &torn_off),
			 LSM_E_CORRUPT);
	assert_false(is_torn);
	/* a sound header whose payload runs past the end: a torn write */
	{
		uint8_t *cut = malloc(len);
		assert_non_null(cut);
		memcpy(cut, all, len);
		put_fixed32(cut + offs[2] + 4, (uint32_t)sizes[2]);
		put_file(d.file, cut, len - 10);
		assert_int_equal(
			read_log(d.file, sizes, 2, offs, &is_torn, &torn_off),
			0);
		assert_true(is_torn);
		assert_int_equal(torn_off, offs[2]);
		free(cut);
	}
	/* a middle record's length shrunk: bad and followed by more file */
	put_fixed32(all + offs[2] + 4, (uint32_t)sizes[2]);
	put_fixed32(all + offs[1] + 4, 3);
	put_file(d.file, all, len);
	assert_int_equal(read_log(d.file, sizes, 1, offs, &is_torn, &torn_off),
			 LSM_E_CORRUPT);
	assert_false(is_torn);
	/* an unknown type in a middle record whose header check matches
	 * (as a newer writer would make it) */
	put_fixed32(all + offs[1] + 4, (uint32_t)sizes[1]);
	all[offs[1] + 8] = 2;
	put_fixed32(all + offs[1] + WAL_HCHECK_OFF,
		    lsm_checksum32(all + offs[1] + 4, 5));
	put_file(d.file, all, len);
	assert_int_equal(read_log(d.file, sizes, 1, offs, &is_torn, &torn_off),
			 LSM_E_CORRUPT);
	assert_non_null(strstr(lsm_errdetail(), "unknown record type"));
	free(all);
	tdir_remove(&d);
}

static void test_writer_error_is_sticky(void **state)
{
	lsm_env *env = env_fault_new(env_posix());
	struct wal_writer *w;
	struct tdir d;

	tdir_make(&d);
	assert_int_equal(walw_open(env, d.file, &w), 0);
	assert_int_equal(walw_add(w, "abc", 3), 0);
	env_fault_fail_nth(env, 1, -EIO, false);
	assert_int_equal(walw_add(w, "def", 3), -EIO);
	/* the injected failure was one-shot, but the writer stays failed */
	assert_int_equal(walw_add(w, "ghi", 3), -EIO);
	assert_int_equal(walw_sync(w), -EIO);
	assert_int_equal(walw_flush(w), -EIO);
	assert_int_equal(walw_close(w), -EIO);

	/* an open that fails leaves nothing behind */
	env_fault_fail_nth(env, 1, -ENOSPC, false);
	w = NULL;
	assert_int_equal(walw_open(env, d.file, &w), -ENOSPC);
	assert_null(w);
	tdir_remove(&d);
	env_fault_free(env);
}

/* After a power cut (torn or not) the log reads back, without error, a
 * prefix of the records that holds at least every synced one. */
static void test_power_cut_recovery(void **state)
{
	enum { N = 200 };
	size_t sizes[N];
	uint64_t offs[N + 1], s = 9;
	uint8_t *buf = malloc(70000);

	for (size_t i = 0; i < N; i++)
		sizes[i] = (size_t)(rng_next(&s) % (i % 10 == 0 ? 70000 : 200));
	for (uint64_t seed = 0; seed < 300; seed++) {
		lsm_env *env = env_fault_new(env_posix());
		struct wal_writer *w;
		struct wal_reader *r;
		struct tdir d;
		struct slice rec;
		uint64_t off;
		size_t n_synced = 0, i = 0;
		int rc;

		tdir_make(&d);
		assert_int_equal(walw_open(env, d.file, &w), 0);
		assert_int_equal(env->ops->sync_dir(env, d.path), 0);
		for (size_t k = 0; k < N; k++) {
			offs[k] = walw_size(w);
			payload(buf, sizes[k], (uint32_t)k);
			assert_int_equal(walw_add(w, buf, sizes[k]), 0);
			if (k % 37 == 36) {
				assert_int_equal(walw_sync(w), 0);
				n_synced = k + 1;
			} else if (k % 11 == 10) {
				assert_int_equal(walw_flush(w), 0);
			}
		}
		env_fault_power_cut(env, seed);
		walw_close(w); /* dead handle: -EIO, still freed */

		assert_int_equal(walr_open(env, d.file, &r), 0);
		while ((rc = walr_next(r, &rec, &off)) == 1) {
			assert_true(i < N);
			assert_int_equal(off, offs[i]);
			assert_int_equal(rec.len, sizes[i]);
			payload(buf, sizes[i], (uint32_t)i);
			if (rec.len)
				assert_memory_equal(rec.p, buf, rec.len);
			i++;
		}
		assert_int_equal(rc, 0);
		assert_true(i >= n_synced);
		walr_close(r);
		tdir_remove(&d);
		env_fault_free(env);
	}
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_random_sizes),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_truncate_last_record),
		cmocka_unit_test(test_zero_tail_is_torn),
		cmocka_unit_test(test_reserved_log),
		cmocka_unit_test(test_flipped_middle_byte_is_corruption),
		cmocka_unit_test(test_flipped_last_record_is_torn),
		cmocka_unit_test(test_torn_garbage_past_short_record),
		cmocka_unit_test(test_oversize_length),
		cmocka_unit_test(test_writer_error_is_sticky),
		cmocka_unit_test(test_power_cut_recovery),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
