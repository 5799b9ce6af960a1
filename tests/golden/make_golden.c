/*
 * make_golden.c - writes the golden store tests/golden/store-v1.
 *
 * What and why: test_golden checks that this version of lsm still reads a
 * store written by format version 1. The store is made once by this
 * program, through the public API only, from the fixed operations of
 * golden_ops.h, and committed. It is NOT run by the test suite: run it
 * only to make a new golden store (see tests/golden/README.md), never to
 * "refresh" store-v1, whose point is that its bytes are old.
 *
 * Invariants:
 *  1. Two sessions: phase A with lz4 data blocks then lsm_flush (the lz4
 *     SST); reopen with zstd, phase B then lsm_flush (the zstd SST);
 *     phase C stays in the WAL. One thread, so each single write or batch
 *     is one WAL record and operation i has sequence i + 1.
 *  2. Background compaction never runs (trigger above two L0 files).
 *  3. The output holds only format files: CURRENT, MANIFEST-*, *.log,
 *     *.sst (LOCK and LOG are removed; the informational log is dropped).
 *     The program checks it made exactly one CURRENT, one MANIFEST, two
 *     SSTs and one WAL, else it fails.
 *
 * Thread-safety: single-threaded program.
 */
#include "lsm.h"

#include "golden_ops.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void drop_log(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
}

static int die(const char *what, int rc)
{
	fprintf(stderr, "make_golden: %s: %s (%s)\n", what, lsm_strerror(rc),
		lsm_errdetail());
	return 1;
}

static int open_store(const char *dir, lsm_compression c, lsm_db **db)
{
	lsm_options o;
	lsm_options_init(&o);
	o.block_size = GOLDEN_BLOCK_SIZE;
	o.level0_compaction_trigger = 8;
	o.background_threads = 1;
	for (int l = 0; l < LSM_MAX_LEVELS; l++)
		o.compression[l] = c;
	o.log_fn = drop_log;
	return lsm_open(dir, &o, db);
}

/* Applies every op of `phase`; consecutive ops sharing a batch id go in
 * one lsm_write. */
static int apply_phase(lsm_db *db, const struct golden_op *ops, size_t n,
		       int phase)
{
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		const struct golden_op *op = &ops[i];
		if (op->phase != phase)
			continue;
		if (op->batch) {
			lsm_batch *b = lsm_batch_new();
			if (!b)
				return -ENOMEM;
			size_t j = i;
			for (; j < n && ops[j].batch == op->batch && !rc; j++) {
				const struct golden_op *q = &ops[j];
				if (q->kind == G_PUT)
					rc = lsm_batch_put(b, q->key,
							   q->key_len, q->val,
							   q->val_len);
				else if (q->kind == G_DEL)
					rc = lsm_batch_delete(b, q->key,
							      q->key_len);
				else
					rc = lsm_batch_delete_range(
						b, q->key, q->key_len, q->val,
						q->val_len);
			}
			if (!rc)
				rc = lsm_write(db, b, LSM_SYNC);
			lsm_batch_free(b);
			i = j - 1;
		} else if (op->kind == G_PUT) {
			rc = lsm_put(db, op->key, op->key_len, op->val,
				     op->val_len, LSM_SYNC);
		} else if (op->kind == G_DEL) {
			rc = lsm_delete(db, op->key, op->key_len, LSM_SYNC);
		} else {
			rc = lsm_delete_range(db, op->key, op->key_len, op->val,
					      op->val_len, LSM_SYNC);
		}
	}
	return rc;
}

/* Removes LOCK and LOG, then checks invariant 3. */
static int check_output(const char *dir)
{
	char path[4096];
	int n_current = 0, n_manifest = 0, n_sst = 0, n_log = 0, n_other = 0;
	snprintf(path, sizeof(path), "%s/LOCK", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/LOG", dir);
	unlink(path);
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *nm = de->d_name;
		size_t l = strlen(nm);
		if (!strcmp(nm, ".") || !strcmp(nm, ".."))
			continue;
		if (!strcmp(nm, "CURRENT"))
			n_current++;
		else if (!strncmp(nm, "MANIFEST-", 9))
			n_manifest++;
		else if (l > 4 && !strcmp(nm + l - 4, ".sst"))
			n_sst++;
		else if (l > 4 && !strcmp(nm + l - 4, ".log"))
			n_log++;
		else {
			fprintf(stderr, "make_golden: unexpected file %s\n",
				nm);
			n_other++;
		}
	}
	closedir(d);
	if (n_current != 1 || n_manifest != 1 || n_sst != 2 || n_log != 1 ||
	    n_other) {
		fprintf(stderr,
			"make_golden: made %d CURRENT, %d MANIFEST, %d SST, "
			"%d WAL files; want 1, 1, 2, 1\n",
			n_current, n_manifest, n_sst, n_log);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct golden_op ops[GOLDEN_MAX_OPS];
	size_t n = golden_ops(ops);
	lsm_db *db = NULL;
	struct stat st;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: make_golden NEW_STORE_DIR\n");
		return 2;
	}
	if (stat(argv[1], &st) == 0) {
		fprintf(stderr, "make_golden: %s exists; remove it first\n",
			argv[1]);
		return 2;
	}
	if ((rc = open_store(argv[1], LSM_COMPRESS_LZ4, &db)))
		return die("open (lz4)", rc);
	if ((rc = apply_phase(db, ops, n, 'A')) || (rc = lsm_flush(db)))
		return die("phase A", rc);
	if ((rc = lsm_close(db)))
		return die("close 1", rc);
	if ((rc = open_store(argv[1], LSM_COMPRESS_ZSTD, &db)))
		return die("open (zstd)", rc);
	if ((rc = apply_phase(db, ops, n, 'B')) || (rc = lsm_flush(db)))
		return die("phase B", rc);
	if ((rc = apply_phase(db, ops, n, 'C')))
		return die("phase C", rc);
	if ((rc = lsm_close(db)))
		return die("close 2", rc);
	if ((rc = check_output(argv[1])))
		return die("output", rc);
	printf("make_golden: wrote %s (%zu operations)\n", argv[1], n);
	return 0;
}
