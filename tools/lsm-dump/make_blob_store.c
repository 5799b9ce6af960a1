/*
 * make_blob_store.c - writes a small store with blob files, for
 * test_dump.sh (not installed).
 *
 * What and why: the golden store predates key-value separation, so the
 * dump test needs a store whose files hold every blob-related record:
 * SST entries of kind BLOB, manifest tags 11 (blob file) and 12 (blob
 * garbage), a WAL whose batch carries a BLOB entry, and blob files on
 * disk. It is written through the public API only, with a blob threshold
 * of 4096 bytes so that the files stay small.
 *
 * Invariants:
 *  1. The same operations in the same order on every run, from one
 *     thread, and no blob relocation (blob_gc_percent 100): blob file
 *     numbers, offsets, sizes and counts are the same every time (SST
 *     numbers and time fields may differ if a background compaction
 *     runs).
 *  2. Phase A: four large values (big1..big4, 5000 bytes) and one small
 *     one, flushed: one SST, blob file 1 of the manifest (linked 4).
 *     Phase B: big1 and big2 rewritten (6000 bytes), big3 deleted,
 *     flushed, then the whole key space compacted: three of phase A's
 *     references become garbage (tag 12: count 3, bytes 15000). Phase C:
 *     big5 (7000 bytes) and a small value stay in the WAL and in a blob
 *     file the manifest does not list yet.
 *  3. Every value is read back and compared before the program exits
 *     with status 0; any failure prints one line and exits with 1.
 *
 * Thread-safety: single-threaded program.
 */
#include "lsm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THRESHOLD 4096

static void drop_log(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
}

/* The value of key `name` written in phase `phase`: len bytes that depend
 * on both, so a value read from the wrong place never compares equal. */
static void fill(uint8_t *v, size_t len, const char *name, int phase)
{
	uint32_t h = 2166136261u;
	for (const char *c = name; *c; c++)
		h = (h ^ (uint8_t)*c) * 16777619u;
	h ^= (uint32_t)phase * 0x9e3779b9u;
	for (size_t i = 0; i < len; i++) {
		h = h * 1103515245u + 12345u;
		v[i] = (uint8_t)(h >> 16);
	}
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "make-blob-store: %s: %s (%s)\n", what,
		lsm_strerror(rc), lsm_errdetail());
	return 1;
}

static int put(lsm_db *db, const char *key, size_t len, int phase)
{
	uint8_t *v = malloc(len ? len : 1);
	int rc;
	if (!v)
		return fail("out of memory", -12);
	fill(v, len, key, phase);
	rc = lsm_put(db, key, strlen(key), v, len, 0);
	free(v);
	return rc ? fail(key, rc) : 0;
}

/* Reads key and compares it with phase's value of len bytes (len 0 and
 * phase 0: the key must be absent). */
static int expect(lsm_db *db, const char *key, size_t len, int phase)
{
	void *got = NULL;
	size_t got_len = 0;
	int rc = lsm_get(db, NULL, key, strlen(key), &got, &got_len);
	if (phase == 0)
		return rc == LSM_E_NOTFOUND ? 0 : fail(key, rc ? rc : -17);
	if (rc)
		return fail(key, rc);
	uint8_t *want = malloc(len ? len : 1);
	bool is_same = want && got_len == len;
	if (is_same) {
		fill(want, len, key, phase);
		is_same = memcmp(want, got, len) == 0;
	}
	free(want);
	lsm_free(got);
	if (!is_same) {
		fprintf(stderr, "make-blob-store: %s: wrong value read back\n",
			key);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	lsm_options o;
	lsm_db *db = NULL;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: make-blob-store NEWDIR\n");
		return 2;
	}
	lsm_options_init(&o);
	o.create_if_missing = true;
	o.error_if_exists = true;
	o.blob_threshold = THRESHOLD;
	/* No relocation: a background compaction that moved big4 out of
	 * phase A's file (75% garbage) would make the result depend on
	 * timing. */
	o.blob_gc_percent = 100;
	o.log_fn = drop_log;
	rc = lsm_open(argv[1], &o, &db);
	if (rc)
		return fail(argv[1], rc);

	/* Phase A. */
	if (put(db, "big1", 5000, 1) || put(db, "big2", 5000, 1) ||
	    put(db, "big3", 5000, 1) || put(db, "big4", 5000, 1) ||
	    put(db, "small1", 100, 1))
		goto out_fail;
	if ((rc = lsm_flush(db))) {
		fail("flush A", rc);
		goto out_fail;
	}
	/* Phase B. */
	if (put(db, "big1", 6000, 2) || put(db, "big2", 6000, 2))
		goto out_fail;
	if ((rc = lsm_delete(db, "big3", 4, 0))) {
		fail("delete big3", rc);
		goto out_fail;
	}
	if ((rc = lsm_flush(db))) {
		fail("flush B", rc);
		goto out_fail;
	}
	if ((rc = lsm_compact_range(db, NULL, 0, NULL, 0))) {
		fail("compact", rc);
		goto out_fail;
	}
	/* Phase C: left in the WAL. */
	if (put(db, "big5", 7000, 3) || put(db, "small2", 10, 3))
		goto out_fail;

	if (expect(db, "big1", 6000, 2) || expect(db, "big2", 6000, 2) ||
	    expect(db, "big3", 0, 0) || expect(db, "big4", 5000, 1) ||
	    expect(db, "big5", 7000, 3) || expect(db, "small1", 100, 1) ||
	    expect(db, "small2", 10, 3))
		goto out_fail;
	rc = lsm_close(db);
	return rc ? fail("close", rc) : 0;

out_fail:
	lsm_close(db);
	return 1;
}
