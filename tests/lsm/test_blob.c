/*
 * test_blob.c - blob files: the reference codec, write/read round trips
 * (also while the file is still being written), scans, torn and zero tails,
 * damaged values and headers, and writer poisoning through the fault env.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob/blob.h"
#include "env/env.h"
#include "env/env_fault.h"
#include "util/coding.h"
#include "util/hash.h"
#include "util/status.h"

#define NUM 7u /* the file number used by most tests */

struct tdir {
	char path[64];
	char file[96];
};

static void tdir_make(struct tdir *d)
{
	strcpy(d->path, "/tmp/lsm-test-blob-XXXXXX");
	assert_non_null(mkdtemp(d->path));
	blob_file_path(d->file, sizeof(d->file), d->path, NUM);
}

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void tdir_remove(struct tdir *d)
{
	assert_int_equal(nftw(d->path, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* Deterministic bytes for record i. */
static void fill(uint8_t *p, size_t len, uint32_t i)
{
	uint32_t x = i * 2654435761u + 7;
	for (size_t k = 0; k < len; k++) {
		x = x * 1103515245u + 12345u;
		p[k] = (uint8_t)(x >> 16);
	}
}

static uint64_t size_of(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

static void patch(const char *path, uint64_t off, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, p, n, (off_t)off), (ssize_t)n);
	assert_int_equal(close(fd), 0);
}

static uint8_t peek(const char *path, uint64_t off)
{
	uint8_t b;
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	assert_int_equal(close(fd), 0);
	return b;
}

static void flip(const char *path, uint64_t off)
{
	uint8_t b = peek(path, off) ^ 0x40;
	patch(path, off, &b, 1);
}

static void append_zeros(const char *path, size_t n)
{
	uint8_t *z = calloc(1, n);
	assert_non_null(z);
	patch(path, size_of(path), z, n);
	free(z);
}

/* ---- a set of records written to one file ---- */

#define MAX_RECS 16

struct recs {
	size_t n;
	size_t key_len[MAX_RECS], value_len[MAX_RECS];
	uint8_t *key[MAX_RECS], *value[MAX_RECS];
	struct blob_ref ref[MAX_RECS];
	uint64_t start[MAX_RECS]; /* file offset of the record */
	uint64_t end[MAX_RECS];   /* offset just past it */
};

static void recs_add(struct recs *r, size_t key_len, size_t value_len)
{
	size_t i = r->n++;
	assert_true(i < MAX_RECS);
	r->key_len[i] = key_len;
	r->value_len[i] = value_len;
	r->key[i] = malloc(key_len + 1);
	r->value[i] = malloc(value_len + 1);
	assert_non_null(r->key[i]);
	assert_non_null(r->value[i]);
	fill(r->key[i], key_len, (uint32_t)i + 1000);
	fill(r->value[i], value_len, (uint32_t)i);
}

static void recs_free(struct recs *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->key[i]);
		free(r->value[i]);
	}
}

/* Appends records [from, to) through w and checks the writer's counters
 * and the offsets it hands out. */
static void recs_write(struct recs *r, struct blob_writer *w, size_t from,
		       size_t to)
{
	for (size_t i = from; i < to; i++) {
		uint64_t before = blobw_size(w);
		size_t head = 4 + varint_len(r->key_len[i]) +
			      varint_len(r->value_len[i]) + r->key_len[i] + 4;
		assert_int_equal(
			blobw_add(w, slice_make(r->key[i], r->key_len[i]),
				  slice_make(r->value[i], r->value_len[i]),
				  &r->ref[i]),
			0);
		r->start[i] = before;
		r->end[i] = blobw_size(w);
		assert_int_equal(r->ref[i].number, NUM);
		assert_int_equal(r->ref[i].offset, before + head);
		assert_int_equal(r->ref[i].len, r->value_len[i]);
		assert_int_equal(r->ref[i].checksum,
				 lsm_checksum32(r->value[i], r->value_len[i]));
		assert_int_equal(r->end[i], r->ref[i].offset + r->value_len[i]);
		assert_int_equal(blobw_count(w), i + 1);
	}
}

/* Reads records [from, to) through reader and compares. */
static void recs_read(struct recs *r, struct blob_reader *rd, size_t from,
		      size_t to)
{
	for (size_t i = from; i < to; i++) {
		uint8_t *buf = malloc(r->value_len[i] + 1);
		assert_non_null(buf);
		assert_int_equal(blobr_read(rd, &r->ref[i], buf), 0);
		if (r->value_len[i])
			assert_memory_equal(buf, r->value[i], r->value_len[i]);
		free(buf);
	}
}

/* The standard mix: empty, tiny, 64 KiB, 1 MiB values, an empty key, and
 * a value bigger than the scanner's 1 MiB chunk. */
static void recs_standard(struct recs *r)
{
	recs_add(r, 8, 0);
	recs_add(r, 0, 1);
	recs_add(r, 16, 65536);
	recs_add(r, 200, 1 << 20);
	recs_add(r, 3, 100);
	recs_add(r, 300, 5000);
	recs_add(r, 24, (3 << 20) / 2); /* 1.5 MiB: checksummed in pieces */
	recs_add(r, 9, 777);
}

static void write_file(struct tdir *d, struct recs *r)
{
	struct blob_writer *w;
	assert_int_equal(blobw_open(env_posix(), d->path, NUM, &w), 0);
	recs_write(r, w, 0, r->n);
	assert_int_equal(blobw_size(w), r->end[r->n - 1]);
	assert_int_equal(blobw_close(w, true), 0);
	assert_int_equal(size_of(d->file), r->end[r->n - 1]);
}

/* ---- scanning ---- */

struct seen {
	struct recs *r;
	size_t n;
	bool with_values;
	int fail_at; /* return -42 at this record (or -1) */
};

static void seen_check(struct seen *s, struct slice key,
		       const struct blob_ref *ref)
{
	struct recs *r = s->r;
	size_t i = s->n;
	assert_true(i < r->n);
	assert_int_equal(key.len, r->key_len[i]);
	if (key.len)
		assert_memory_equal(key.p, r->key[i], key.len);
	assert_int_equal(ref->number, r->ref[i].number);
	assert_int_equal(ref->offset, r->ref[i].offset);
	assert_int_equal(ref->len, r->ref[i].len);
	assert_int_equal(ref->checksum, r->ref[i].checksum);
}

static int on_rec(void *ctx, struct slice key, const struct blob_ref *ref)
{
	struct seen *s = ctx;
	seen_check(s, key, ref);
	if ((int)s->n == s->fail_at)
		return -42;
	s->n++;
	return 0;
}

static int on_rec_value(void *ctx, struct slice key, struct slice value,
			const struct blob_ref *ref)
{
	struct seen *s = ctx;
	seen_check(s, key, ref);
	assert_int_equal(value.len, s->r->value_len[s->n]);
	if (value.len)
		assert_memory_equal(value.p, s->r->value[s->n], value.len);
	s->n++;
	return 0;
}

/* Scans with both variants; both must agree. Returns the status and the
 * number of records seen. */
static int scan_both(struct tdir *d, struct recs *r, uint64_t *valid,
		     size_t *n_seen)
{
	struct seen s1 = {r, 0, false, -1}, s2 = {r, 0, true, -1};
	uint64_t v1 = 12345, v2 = 54321;
	int rc1 = blob_scan(env_posix(), d->path, NUM, on_rec, &s1, &v1);
	int rc2 = blob_scan_values(env_posix(), d->path, NUM, on_rec_value, &s2,
				   &v2);
	assert_int_equal(rc1, rc2);
	assert_int_equal(s1.n, s2.n);
	if (rc1 >= 0)
		assert_int_equal(v1, v2);
	*valid = v1;
	*n_seen = s1.n;
	return rc1;
}

/* ---- tests ---- */

static void test_file_path(void **state)
{
	char buf[64];
	(void)state;
	assert_int_equal(blob_file_path(buf, sizeof(buf), "/s", 7), 14);
	assert_string_equal(buf, "/s/000007.blob");
	blob_file_path(buf, sizeof(buf), "d", 12345678);
	assert_string_equal(buf, "d/12345678.blob");
	/* Too small a buffer: truncated, but the needed length is told. */
	assert_int_equal(blob_file_path(buf, 4, "/s", 7), 14);
	assert_string_equal(buf, "/s/");
}

static void test_ref_roundtrip(void **state)
{
	const struct blob_ref cases[] = {
		{0, 0, 0, 0},
		{1, 42, 1, 0xdeadbeef},
		{NUM, 127, 128, 0x80},
		{1ull << 35, 1ull << 40, 1u << 28, 0x12345678},
		{UINT64_MAX, UINT64_MAX, UINT32_MAX, UINT32_MAX},
	};
	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		uint8_t buf[BLOB_REF_MAX + 8];
		struct blob_ref out;
		size_t n = blob_ref_encode(buf, &cases[c]);
		assert_true(n >= 7 && n <= BLOB_REF_MAX);
		assert_int_equal(blob_ref_decode(slice_make(buf, n), &out), 0);
		assert_int_equal(out.number, cases[c].number);
		assert_int_equal(out.offset, cases[c].offset);
		assert_int_equal(out.len, cases[c].len);
		assert_int_equal(out.checksum, cases[c].checksum);
		if (c == 0)
			assert_int_equal(n, 7);
		if (c == 4)
			assert_int_equal(n, BLOB_REF_MAX);

		/* Every truncation is rejected, and *r is left alone. */
		for (size_t k = 0; k < n; k++) {
			struct blob_ref keep = {9, 9, 9, 9};
			lsm_err_clear();
			assert_int_equal(
				blob_ref_decode(slice_make(buf, k), &keep),
				LSM_E_CORRUPT);
			assert_non_null(
				strstr(lsm_errdetail(), "blob reference"));
			assert_int_equal(keep.number, 9);
			assert_int_equal(keep.offset, 9);
			assert_int_equal(keep.len, 9);
			assert_int_equal(keep.checksum, 9);
		}
		/* So is anything after the checksum. */
		buf[n] = 0;
		assert_int_equal(blob_ref_decode(slice_make(buf, n + 1), &out),
				 LSM_E_CORRUPT);
	}
}

static void test_ref_rejects_bad_varints(void **state)
{
	struct blob_ref out;
	(void)state;
	/* Non-canonical: number 0 written as 0x80 0x00. */
	const uint8_t overlong[] = {0x80, 0x00, 0x01, 0x01, 1, 2, 3, 4};
	assert_int_equal(
		blob_ref_decode(slice_make(overlong, sizeof(overlong)), &out),
		LSM_E_CORRUPT);
	assert_non_null(strstr(lsm_errdetail(), "blob reference"));
	/* varint32 length past 2^32: fifth byte above 0x0f. */
	const uint8_t len_big[] = {0x01, 0x01, 0xff, 0xff, 0xff, 0xff,
				   0x1f, 1,    2,    3,    4};
	assert_int_equal(
		blob_ref_decode(slice_make(len_big, sizeof(len_big)), &out),
		LSM_E_CORRUPT);
	/* varint64 of 11 bytes. */
	uint8_t num_big[BLOB_REF_MAX];
	memset(num_big, 0xff, 10);
	num_big[10] = 0x01;
	memset(num_big + 11, 0x01, 2);
	memset(num_big + 13, 0, 4);
	assert_int_equal(blob_ref_decode(slice_make(num_big, 17), &out),
			 LSM_E_CORRUPT);
	/* Too long to be a reference at all. */
	uint8_t huge[BLOB_REF_MAX + 1] = {0};
	assert_int_equal(blob_ref_decode(slice_make(huge, sizeof(huge)), &out),
			 LSM_E_CORRUPT);
	/* The smallest valid one. */
	const uint8_t small[] = {0x05, 0x30, 0x00, 0, 0, 0, 0};
	assert_int_equal(
		blob_ref_decode(slice_make(small, sizeof(small)), &out), 0);
	assert_int_equal(out.number, 5);
	assert_int_equal(out.offset, 0x30);
	assert_int_equal(out.len, 0);
}

static void test_write_read_scan(void **state)
{
	struct tdir d;
	struct recs r = {0};
	struct blob_writer *w;
	struct blob_reader *rd, *rd2;
	uint64_t valid;
	size_t n_seen;
	(void)state;

	tdir_make(&d);
	recs_standard(&r);
	assert_int_equal(blobw_open(env_posix(), d.path, NUM, &w), 0);
	assert_int_equal(blobw_number(w), NUM);
	assert_int_equal(blobw_size(w), BLOB_HEADER_LEN);
	assert_int_equal(blobw_count(w), 0);
	recs_write(&r, w, 0, 4);
	assert_int_equal(blobw_flush(w), 0);

	/* Readable while the writer is open, once flushed. */
	assert_int_equal(blobr_open(env_posix(), d.path, NUM, &rd), 0);
	assert_int_equal(blobr_number(rd), NUM);
	recs_read(&r, rd, 0, 4);

	/* The file grows past what the reader saw at open. */
	recs_write(&r, w, 4, r.n);
	assert_int_equal(blobw_flush(w), 0);
	recs_read(&r, rd, 0, r.n);

	/* A scan of the active file sees everything flushed. */
	assert_int_equal(scan_both(&d, &r, &valid, &n_seen), 0);
	assert_int_equal(n_seen, r.n);
	assert_int_equal(valid, r.end[r.n - 1]);

	assert_int_equal(blobw_close(w, true), 0);
	assert_int_equal(size_of(d.file), r.end[r.n - 1]);
	recs_read(&r, rd, 0, r.n);
	blobr_close(rd);

	assert_int_equal(blobr_open(env_posix(), d.path, NUM, &rd2), 0);
	recs_read(&r, rd2, 0, r.n);
	blobr_close(rd2);

	assert_int_equal(scan_both(&d, &r, &valid, &n_seen), 0);
	assert_int_equal(n_seen, r.n);
	assert_int_equal(valid, size_of(d.file));

	recs_free(&r);
	tdir_remove(&d);
}

static void test_empty_file_and_limits(void **state)
{
	struct tdir d;
	struct recs r = {0};
	struct blob_writer *w;
	struct blob_ref ref = {1, 2, 3, 4};
	uint64_t valid;
	size_t n_seen;
	uint8_t *key;
	(void)state;

	tdir_make(&d);
	assert_int_equal(blobw_open(env_posix(), d.path, NUM, &w), 0);
	assert_int_equal(blobw_close(w, false), 0);
	assert_int_equal(size_of(d.file), BLOB_HEADER_LEN);
	assert_int_equal(scan_both(&d, &r, &valid, &n_seen), 0);
	assert_int_equal(valid, BLOB_HEADER_LEN);
	assert_int_equal(n_seen, 0);

	/* Oversized key or value: -EINVAL, nothing written, not poisoned.
	 * (The too-long value is never read: the length is checked first.) */
	key = calloc(1, BLOB_MAX_KEY + 1);
	assert_non_null(key);
	assert_int_equal(blobw_open(env_posix(), d.path, NUM, &w), 0);
	assert_int_equal(blobw_add(w, slice_make(key, BLOB_MAX_KEY + 1),
				   slice_make("v", 1), &ref),
			 -EINVAL);
	assert_int_equal(blobw_add(w, slice_make("k", 1),
				   slice_make(key, (size_t)BLOB_MAX_VALUE + 1),
				   &ref),
			 -EINVAL);
	assert_int_equal(ref.number, 1); /* untouched */
	assert_int_equal(blobw_size(w), BLOB_HEADER_LEN);
	assert_int_equal(blobw_count(w), 0);
	/* The largest key is fine. */
	recs_add(&r, BLOB_MAX_KEY, 10);
	recs_write(&r, w, 0, 1);
	assert_int_equal(blobw_close(w, true), 0);
	assert_int_equal(scan_both(&d, &r, &valid, &n_seen), 0);
	assert_int_equal(n_seen, 1);
	assert_int_equal(valid, r.end[0]);

	free(key);
	recs_free(&r);
	tdir_remove(&d);
}

static void test_torn_tail(void **state)
{
	struct tdir d;
	struct recs r = {0};
	size_t last;
	(void)state;

	tdir_make(&d);
	recs_standard(&r);
	recs_add(&r, 50, 3000);
	last = r.n - 1;
	write_file(&d, &r);

	/* Cut points inside the last record: in its checksum, its varints,
	 * its key, its value checksum, its value, one byte short. */
	uint64_t s = r.start[last], v = r.ref[last].offset, e = r.end[last];
	uint64_t cuts[] = {s + 1, s + 4, s + 6,    s + 30, v - 2,
			   v,     v + 1, v + 1500, e - 1};
	for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
		uint64_t valid;
		size_t n_seen;
		assert_int_equal(truncate(d.file, (off_t)cuts[c]), 0);
		assert_int_equal(scan_both(&d, &r, &valid, &n_seen), 1);
		assert_int_equal(valid, s);
		assert_int_equal(n_seen, last);
		/* A torn record followed by zeros is still torn. */
		append_zeros(d.file, 100);
		assert_int_equal(scan_both(&d, &r, &valid, &n_seen), 1);
		assert_int_equal(valid, s);
	}
	/* Cut exactly at a record boundary: a clean, shorter file. */
	{
		uint64_t valid;
		size_t n_seen;
		assert_int_equal(truncate(d.file, (off_t)s), 0);
		assert_int_equal(scan_both(&d, &r, &valid, &n_seen), 0);
		assert_int_equal(valid, s);
		assert_int_equal(n_seen, last);
		assert_int_equal(truncate(d.file, BLOB_HEADER_LEN), 0);
		assert_int_equal(scan_both(&d, &r, &valid, &n_seen), 0);
		assert_int_equal(valid, BLOB_HEADER_LEN);
		assert_int_equal(n_seen, 0);
	}
	recs_free(&r);
	tdir_remove(&d);
}

static void test_zero_tail(void **state)
{
	struct tdir d;
	struct recs r = {0};
	uint64_t valid, size;
	size_t n_seen;
	uint8_t junk = 0x5a;
	(void)state;

	tdir_make(&d);
	recs_standard(&r);
	write_file(&d, &r);
	size = size_of(d.file);

	append_zeros(d.file, 4096);
	assert_int_equal(scan_both(&d, &r, &valid, &n_seen), 0);
	assert_int_equal(valid, size);
	assert_int_equal(n_seen, r.n);
	/* More zeros than one scan chunk. */
	append_zeros(d.file, (size_t)3 << 20);
	assert_int_equal(scan_both(&d, &r, &valid, &n_seen), 0);
	assert_int_equal(valid, size);
	/* One nonzero byte far into the zeros makes it garbage. */
	patch(d.file, size_of(d.file) - 10, &junk, 1);
	assert_int_equal(scan_both(&d, &r, &valid, &n_seen), 1);
	assert_int_equal(valid, size);
	assert_int_equal(n_seen, r.n);

	/* A file of a header and zeros only. */
	assert_int_equal(truncate(d.file, BLOB_HEADER_LEN), 0);
	append_zeros(d.file, 4096);
	assert_int_equal(scan_both(&d, &r, &valid, &n_seen), 0);
	assert_int_equal(valid, BLOB_HEADER_LEN);
	assert_int_equal(n_seen, 0);

	recs_free(&r);
	tdir_remove(&d);
}

static void test_flipped_value_byte(void **state)
{
	struct tdir d;
	struct recs r = {0};
	struct blob_reader *rd;
	uint64_t valid;
	size_t n_seen, bad = 3; /* the 1 MiB value */
	char want[160];
	uint8_t *buf;
	(void)state;

	tdir_make(&d);
	recs_standard(&r);
	write_file(&d, &r);
	flip(d.file, r.ref[bad].offset + r.value_len[bad] / 2);

	assert_int_equal(blobr_open(env_posix(), d.path, NUM, &rd), 0);
	buf = malloc(r.value_len[bad]);
	assert_non_null(buf);
	lsm_err_clear();
	assert_int_equal(blobr_read(rd, &r.ref[bad], buf), LSM_E_CORRUPT);
	snprintf(want, sizeof(want), "file %s offset %llu:", d.file,
		 (unsigned long long)r.ref[bad].offset);
	assert_non_null(strstr(lsm_errdetail(), want));
	assert_non_null(strstr(lsm_errdetail(), "checksum"));
	free(buf);
	/* The other values are fine. */
	recs_read(&r, rd, 0, bad);
	recs_read(&r, rd, bad + 1, r.n);
	blobr_close(rd);

	/* The scan stops at the damaged record. */
	assert_int_equal(scan_both(&d, &r, &valid, &n_seen), 1);
	assert_int_equal(valid, r.start[bad]);
	assert_int_equal(n_seen, bad);

	/* The same for the value checked in pieces (1.5 MiB, record 6): */
	flip(d.file, r.ref[bad].offset + r.value_len[bad] / 2); /* undo */
	flip(d.file, r.end[6] - 1);
	assert_int_equal(scan_both(&d, &r, &valid, &n_seen), 1);
	assert_int_equal(valid, r.start[6]);
	assert_int_equal(n_seen, 6);
	flip(d.file, r.end[6] - 1);

	/* A flipped key byte fails the record's header checksum. */
	flip(d.file, r.start[5] + 8);
	assert_int_equal(scan_both(&d, &r, &valid, &n_seen), 1);
	assert_int_equal(valid, r.start[5]);
	assert_int_equal(n_seen, 5);
	flip(d.file, r.start[5] + 8);

	/* A damaged value length (huge) is not believed. */
	{
		uint8_t big[5] = {0xff, 0xff, 0xff, 0xff, 0x0f};
		/* record 2: key_len 16 (1 byte), value_len 65536 (3 bytes) */
		patch(d.file, r.start[2] + 5, big, 3);
		assert_int_equal(scan_both(&d, &r, &valid, &n_seen), 1);
		assert_int_equal(valid, r.start[2]);
		assert_int_equal(n_seen, 2);
	}
	recs_free(&r);
	tdir_remove(&d);
}

static void test_read_bad_refs(void **state)
{
	struct tdir d;
	struct recs r = {0};
	struct blob_reader *rd;
	struct blob_ref ref;
	uint8_t *buf;
	char want[160];
	(void)state;

	tdir_make(&d);
	recs_standard(&r);
	write_file(&d, &r);
	buf = malloc(r.value_len[3] + 16);
	assert_non_null(buf);
	assert_int_equal(blobr_open(env_posix(), d.path, NUM, &rd), 0);

	/* Past the end of the file: cut short. */
	ref = r.ref[r.n - 1];
	ref.len += 10;
	assert_int_equal(blobr_read(rd, &ref, buf), LSM_E_CORRUPT);
	snprintf(want, sizeof(want), "file %s offset %llu:", d.file,
		 (unsigned long long)ref.offset);
	assert_non_null(strstr(lsm_errdetail(), want));
	assert_non_null(strstr(lsm_errdetail(), "cut short"));
	/* Wrong checksum. */
	ref = r.ref[1];
	ref.checksum ^= 1;
	assert_int_equal(blobr_read(rd, &ref, buf), LSM_E_CORRUPT);
	/* An empty value still has its checksum checked. */
	ref = r.ref[0];
	assert_int_equal(ref.len, 0);
	assert_int_equal(blobr_read(rd, &ref, buf), 0);
	ref.checksum ^= 1;
	assert_int_equal(blobr_read(rd, &ref, buf), LSM_E_CORRUPT);
	/* Offsets inside the header, lengths over the limit, overflow. */
	ref = r.ref[1];
	ref.offset = 3;
	assert_int_equal(blobr_read(rd, &ref, buf), LSM_E_CORRUPT);
	ref = r.ref[1];
	ref.len = BLOB_MAX_VALUE + 1;
	assert_int_equal(blobr_read(rd, &ref, buf), LSM_E_CORRUPT);
	ref = r.ref[1];
	ref.offset = UINT64_MAX - 2;
	assert_int_equal(blobr_read(rd, &ref, buf), LSM_E_CORRUPT);
	ref.offset = (uint64_t)1 << 40; /* far past the end */
	assert_int_equal(blobr_read(rd, &ref, buf), LSM_E_CORRUPT);
	assert_non_null(strstr(lsm_errdetail(), "cut short"));
	/* Another file's reference. */
	ref = r.ref[1];
	ref.number = NUM + 1;
	assert_int_equal(blobr_read(rd, &ref, buf), -EINVAL);

	blobr_close(rd);
	free(buf);
	recs_free(&r);
	tdir_remove(&d);
}

/* Rewrites the file header with these fields and a correct checksum. */
static void rewrite_header(const char *path, uint32_t version, uint32_t flags,
			   uint64_t number, uint32_t reserved)
{
	uint8_t h[BLOB_HEADER_LEN];
	memcpy(h, BLOB_MAGIC, BLOB_MAGIC_LEN);
	put_fixed32(h + 8, version);
	put_fixed32(h + 12, flags);
	put_fixed64(h + 16, number);
	put_fixed32(h + 24, reserved);
	put_fixed32(h + 28, lsm_checksum32(h, 28));
	patch(path, 0, h, sizeof(h));
}

static int open_and_scan(struct tdir *d, int want)
{
	struct blob_reader *rd = NULL;
	uint64_t valid = 99;
	struct recs r = {0};
	struct seen s = {&r, 0, false, -1};
	int rc = blobr_open(env_posix(), d->path, NUM, &rd);
	assert_int_equal(rc, want);
	assert_null(rd);
	rc = blob_scan(env_posix(), d->path, NUM, on_rec, &s, &valid);
	assert_int_equal(rc, want);
	assert_int_equal(s.n, 0);
	assert_int_equal(valid, 99); /* not written on failure */
	return rc;
}

static void test_bad_header(void **state)
{
	struct tdir d;
	struct recs r = {0};
	struct blob_reader *rd;
	(void)state;

	tdir_make(&d);
	recs_standard(&r);
	write_file(&d, &r);

	/* The header as written is exactly what the spec says. */
	{
		uint8_t h[BLOB_HEADER_LEN];
		int fd = open(d.file, O_RDONLY);
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, h, sizeof(h), 0), sizeof(h));
		close(fd);
		assert_memory_equal(h, "LSMBLOB1", 8);
		assert_int_equal(get_fixed32(h + 8), 1);
		assert_int_equal(get_fixed32(h + 12), 0);
		assert_int_equal(get_fixed64(h + 16), NUM);
		assert_int_equal(get_fixed32(h + 24), 0);
		assert_int_equal(get_fixed32(h + 28), lsm_checksum32(h, 28));
	}

	/* Every single flipped header byte is corruption. */
	for (uint64_t off = 0; off < BLOB_HEADER_LEN; off++) {
		flip(d.file, off);
		lsm_err_clear();
		open_and_scan(&d, LSM_E_CORRUPT);
		assert_non_null(strstr(lsm_errdetail(), d.file));
		flip(d.file, off);
	}
	assert_int_equal(blobr_open(env_posix(), d.path, NUM, &rd), 0);
	blobr_close(rd);

	/* A well-formed header naming another file. */
	rewrite_header(d.file, 1, 0, NUM + 1, 0);
	open_and_scan(&d, LSM_E_CORRUPT);
	assert_non_null(strstr(lsm_errdetail(), "000008"));
	/* Unknown version, flags, reserved bits. */
	rewrite_header(d.file, 2, 0, NUM, 0);
	open_and_scan(&d, LSM_E_FORMAT);
	assert_non_null(strstr(lsm_errdetail(), "version 2"));
	rewrite_header(d.file, 1, 4, NUM, 0);
	open_and_scan(&d, LSM_E_FORMAT);
	rewrite_header(d.file, 1, 0, NUM, 1);
	open_and_scan(&d, LSM_E_FORMAT);
	/* Back to good. */
	rewrite_header(d.file, 1, 0, NUM, 0);
	assert_int_equal(blobr_open(env_posix(), d.path, NUM, &rd), 0);
	recs_read(&r, rd, 0, r.n);
	blobr_close(rd);

	/* Shorter than a header, and empty. */
	assert_int_equal(truncate(d.file, 20), 0);
	open_and_scan(&d, LSM_E_CORRUPT);
	assert_int_equal(truncate(d.file, 0), 0);
	open_and_scan(&d, LSM_E_CORRUPT);
	/* Missing. */
	assert_int_equal(unlink(d.file), 0);
	open_and_scan(&d, -ENOENT);

	recs_free(&r);
	tdir_remove(&d);
}

static void test_scan_fn_stops(void **state)
{
	struct tdir d;
	struct recs r = {0};
	struct seen s;
	uint64_t valid = 99;
	(void)state;

	tdir_make(&d);
	recs_standard(&r);
	write_file(&d, &r);
	s = (struct seen){&r, 0, false, 2};
	assert_int_equal(
		blob_scan(env_posix(), d.path, NUM, on_rec, &s, &valid), -42);
	assert_int_equal(s.n, 2);
	assert_int_equal(valid, 99);
	recs_free(&r);
	tdir_remove(&d);
}

static void test_writer_poisoned_by_append(void **state)
{
	struct tdir d;
	struct recs r = {0};
	struct blob_writer *w;
	struct blob_ref ref = {0, 0, 0, 0};
	uint64_t valid, ops;
	size_t n_seen;
	lsm_env *env = env_fault_new(env_posix());
	(void)state;

	assert_non_null(env);
	tdir_make(&d);
	recs_add(&r, 5, 100);
	recs_add(&r, 6, 200000);
	recs_add(&r, 7, 300);
	assert_int_equal(blobw_open(env, d.path, NUM, &w), 0);
	recs_write(&r, w, 0, 2);
	assert_int_equal(blobw_flush(w), 0);

	/* The next mutating env operation (the first append of the add)
	 * fails, once. */
	env_fault_fail_nth(env, 1, -EIO, false);
	assert_int_equal(blobw_add(w, slice_make(r.key[2], r.key_len[2]),
				   slice_make(r.value[2], r.value_len[2]),
				   &ref),
			 -EIO);
	assert_int_equal(ref.len, 0); /* not filled on failure */
	ops = env_fault_op_count(env);
	/* The env works again, but the writer keeps failing with the first
	 * error and writes nothing. */
	assert_int_equal(blobw_add(w, slice_make(r.key[2], r.key_len[2]),
				   slice_make(r.value[2], r.value_len[2]),
				   &ref),
			 -EIO);
	assert_int_equal(blobw_flush(w), -EIO);
	assert_int_equal(blobw_sync(w), -EIO);
	assert_int_equal(env_fault_op_count(env), ops);
	assert_int_equal(blobw_count(w), 2);
	assert_int_equal(blobw_close(w, true), -EIO);

	/* What was flushed before the failure is intact. */
	r.n = 2;
	assert_int_equal(scan_both(&d, &r, &valid, &n_seen), 0);
	assert_int_equal(n_seen, 2);
	assert_int_equal(valid, r.end[1]);
	r.n = 3;

	recs_free(&r);
	tdir_remove(&d);
	env_fault_free(env);
}

static void test_writer_poisoned_by_flush(void **state)
{
	struct tdir d;
	struct recs r = {0};
	struct blob_writer *w = NULL;
	struct blob_ref ref;
	lsm_env *env = env_fault_new(env_posix());
	(void)state;

	assert_non_null(env);
	tdir_make(&d);
	recs_add(&r, 5, 100);

	/* A failed create leaves *out alone. */
	env_fault_fail_nth(env, 1, -ENOSPC, false);
	assert_int_equal(blobw_open(env, d.path, NUM, &w), -ENOSPC);
	assert_null(w);

	assert_int_equal(blobw_open(env, d.path, NUM, &w), 0);
	recs_write(&r, w, 0, 1);
	env_fault_fail_nth(env, 1, -ENOSPC, false);
	assert_int_equal(blobw_flush(w), -ENOSPC);
	assert_int_equal(
		blobw_add(w, slice_make("k", 1), slice_make("v", 1), &ref),
		-ENOSPC);
	assert_int_equal(blobw_flush(w), -ENOSPC);
	assert_int_equal(blobw_close(w, false), -ENOSPC);

	/* A failed sync poisons too. */
	assert_int_equal(blobw_open(env, d.path, NUM, &w), 0);
	env_fault_fail_nth(env, 1, -EIO, false);
	assert_int_equal(blobw_sync(w), -EIO);
	assert_int_equal(
		blobw_add(w, slice_make("k", 1), slice_make("v", 1), &ref),
		-EIO);
	assert_int_equal(blobw_close(w, true), -EIO);

	recs_free(&r);
	tdir_remove(&d);
	env_fault_free(env);
}

struct reader_thread {
	struct blob_reader *rd;
	struct recs *r;
	int failures;
};

static void *read_loop(void *arg)
{
	struct reader_thread *t = arg;
	uint8_t *buf = malloc((size_t)2 << 20);
	if (!buf) {
		t->failures++;
		return NULL;
	}
	for (int round = 0; round < 10; round++)
		for (size_t i = 0; i < t->r->n; i++) {
			size_t len = t->r->value_len[i];
			if (blobr_read(t->rd, &t->r->ref[i], buf) != 0 ||
			    (len && memcmp(buf, t->r->value[i], len) != 0))
				t->failures++;
		}
	free(buf);
	return NULL;
}

static void test_concurrent_reads(void **state)
{
	struct tdir d;
	struct recs r = {0};
	struct blob_reader *rd;
	struct reader_thread t[4];
	pthread_t th[4];
	(void)state;

	tdir_make(&d);
	recs_standard(&r);
	write_file(&d, &r);
	assert_int_equal(blobr_open(env_posix(), d.path, NUM, &rd), 0);
	for (int i = 0; i < 4; i++) {
		t[i] = (struct reader_thread){rd, &r, 0};
		assert_int_equal(pthread_create(&th[i], NULL, read_loop, &t[i]),
				 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(t[i].failures, 0);
	}
	blobr_close(rd);
	recs_free(&r);
	tdir_remove(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_path),
		cmocka_unit_test(test_ref_roundtrip),
		cmocka_unit_test(test_ref_rejects_bad_varints),
		cmocka_unit_test(test_write_read_scan),
		cmocka_unit_test(test_empty_file_and_limits),
		cmocka_unit_test(test_torn_tail),
		cmocka_unit_test(test_zero_tail),
		cmocka_unit_test(test_flipped_value_byte),
		cmocka_unit_test(test_read_bad_refs),
		cmocka_unit_test(test_bad_header),
		cmocka_unit_test(test_scan_fn_stops),
		cmocka_unit_test(test_writer_poisoned_by_append),
		cmocka_unit_test(test_writer_poisoned_by_flush),
		cmocka_unit_test(test_concurrent_reads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
