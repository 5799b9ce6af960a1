/*
 * backup_restore.c - lsmfsctl restore DEST NAME NEWSTORE: a backup back
 * into a store lsmfs can mount, holding exactly the snapshot's tree.
 *
 * Why copy keys instead of handing over the checkpoint: the checkpoint
 * holds the whole store as it was when the backup ran (later writes,
 * other snapshots); reading it at the named snapshot and writing every
 * key into a fresh store gives exactly the snapshot and nothing else,
 * with a new identity, compacted by the engine as it is written.
 *
 * States: check NEWSTORE absent -> open DEST (shared lock) -> verify the
 * record's files (nothing is created before this passes) -> build
 * NEWSTORE.src-PID (SSTs linked or copied, meta files from the record)
 * -> open it, open the snapshot -> write NEWSTORE.tmp-PID in batches ->
 * sync, close -> rename to NEWSTORE (never over one) -> remove .src.
 *
 * The .src store is the checkpoint rebuilt: its SSTs and blob files
 * (values the tree refers to, beside the SSTs as the engine expects
 * them), and the meta files. Reading it follows blob references, so a
 * value that cannot be read stops the restore with the engine's error.
 *
 * Invariants:
 *  1. Nothing is written outside DEST's lock until every file of the
 *     backup verified.
 *  2. NEWSTORE appears only complete (synced and closed before the
 *     rename), or not at all: on any failure both temporary stores are
 *     removed.
 *  3. Files of DEST are only ever linked, never opened for writing; the
 *     engine never writes into an existing SST or into a blob file a
 *     manifest lists (and the .src store is opened read-only).
 *
 * Thread safety: single-threaded command; the engine runs its own
 * background threads inside the two lsm_db handles.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup_int.h"
#include "inode.h"
#include "lsm.h"
#include "lsmfsctl.h"

/* A batch is written when it holds this many bytes of keys and values. */
#define RESTORE_BATCH_BYTES (4u << 20)

static void quiet_log(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
}

static int lsm_fail(struct bk_err *e, int rc, const char *what,
		    const char *path)
{
	const char *detail = lsm_errdetail();

	return bk_fail(e, rc, "%s %s: %s%s%s", what, path, lsm_strerror(rc),
		       detail[0] ? ": " : "", detail);
}

/* Links (or copies, across file systems) one SST or blob file of r into
 * srcfd under the engine's name for it. */
static int place_file(struct bdir *d, const struct bk_record *r,
		      enum bk_kind kind, const struct bk_sst *s, int srcfd,
		      const char *src, uint8_t *buf, struct bk_err *e)
{
	char path[256], name[48];
	uint64_t size, xxh;
	int rc;

	bdir_file_path(path, sizeof(path), r->identity, kind, s->number);
	snprintf(name, sizeof(name), "%06" PRIu64 ".%s", s->number,
		 bk_kind_suffix(kind));
	if (linkat(d->fd, path, srcfd, name, 0) == 0)
		return 0;
	if (errno != EXDEV && errno != EPERM && errno != EMLINK &&
	    errno != ENOTSUP)
		return bk_fail(e, -errno, "link %s/%s to %s: %s", d->path, path,
			       src, strerror(errno));
	rc = bfile_copy(d->fd, path, srcfd, name, 0600, buf, NULL, &size, &xxh,
			e);
	if (rc)
		return rc;
	if (size != s->size || xxh != s->xxh)
		return bk_fail(e, -EIO, "%s/%s: changed while being restored",
			       d->path, path);
	return 0;
}

/* Places every SST and blob file of r into srcfd and writes the meta
 * files. */
static int build_source(struct bdir *d, const struct bk_record *r, int srcfd,
			const char *src, uint8_t *buf, struct bk_err *e)
{
	int rc;

	for (int k = 0; k < BK_N_KINDS; k++) {
		size_t n;
		const struct bk_sst *f = brec_files(r, (enum bk_kind)k, &n);

		for (size_t i = 0; i < n; i++) {
			rc = place_file(d, r, (enum bk_kind)k, &f[i], srcfd,
					src, buf, e);
			if (rc)
				return rc;
		}
	}
	for (size_t i = 0; i < r->n_metas; i++) {
		const struct bk_meta *m = &r->metas[i];

		rc = bfile_write_atomic(srcfd, m->name, m->data, m->size, 0600,
					true, e);
		if (rc)
			return rc;
	}
	if (fsync(srcfd) != 0)
		return bk_fail(e, -errno, "%s: fsync: %s", src,
			       strerror(errno));
	return 0;
}

/* Copies every key of src at the snapshot into dst. */
static int copy_keys(lsm_db *src, lsm_snapshot *snap, lsm_db *dst,
		     const char *dst_path, uint64_t *n_keys, uint64_t *n_bytes,
		     struct bk_err *e)
{
	lsm_iter_options io;
	struct bk_prog prog;
	lsm_batch *b;
	lsm_iter *it;
	size_t pending = 0;
	int rc;

	b = lsm_batch_new();
	if (!b)
		return bk_fail(e, -ENOMEM, "out of memory");
	lsm_iter_options_init(&io);
	io.snapshot = snap;
	io.fill_cache = false;
	rc = lsm_iter_new(src, &io, &it);
	if (rc) {
		lsm_batch_free(b);
		return lsm_fail(e, rc, "cannot read", "the backup");
	}
	bprog_init(&prog, "restore", 0, 0);
	for (lsm_iter_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
		size_t kl, vl;
		const void *k = lsm_iter_key(it, &kl);
		const void *v = lsm_iter_value(it, &vl);

		/* A value in a blob file that cannot be read invalidates
		 * the iterator; its status says why (below). */
		if (!lsm_iter_valid(it))
			break;
		rc = lsm_batch_put(b, k, kl, v, vl);
		if (rc) {
			rc = lsm_fail(e, rc, "cannot write", dst_path);
			goto out;
		}
		pending += kl + vl;
		(*n_keys)++;
		*n_bytes += kl + vl;
		prog.done_files++;
		if (pending < RESTORE_BATCH_BYTES)
			continue;
		if (bk_interrupted()) {
			rc = bk_fail(e, -EINTR, "interrupted");
			goto out;
		}
		rc = lsm_write(dst, b, 0);
		if (rc) {
			rc = lsm_fail(e, rc, "cannot write", dst_path);
			goto out;
		}
		lsm_batch_clear(b);
		bprog_add(&prog, pending);
		pending = 0;
	}
	rc = lsm_iter_status(it);
	if (rc) {
		rc = lsm_fail(e, rc, "cannot read", "the backup");
		goto out;
	}
	if (lsm_batch_count(b)) {
		rc = lsm_write(dst, b, 0);
		if (rc) {
			rc = lsm_fail(e, rc, "cannot write", dst_path);
			goto out;
		}
	}
	rc = lsm_sync(dst);
	if (rc)
		rc = lsm_fail(e, rc, "cannot sync", dst_path);
out:
	bprog_end(&prog);
	lsm_iter_free(it);
	lsm_batch_free(b);
	return rc;
}

/* Opens the rebuilt source store, reads it at the snapshot and writes
 * the new store at tmp. */
static int restore_keys(const struct bk_record *r, const char *src,
			const char *tmp, uint64_t *n_keys, uint64_t *n_bytes,
			struct bk_err *e)
{
	lsm_snapshot *snap = NULL;
	lsm_db *sdb = NULL, *ndb = NULL;
	lsm_options o;
	int rc, rc2;

	lsm_options_init(&o);
	o.create_if_missing = false;
	o.read_only = true; /* only read at the snapshot */
	o.log_fn = quiet_log;
	rc = lsm_open(src, &o, &sdb);
	if (rc)
		return lsm_fail(e, rc, "cannot open the backup's store copy",
				src);
	rc = lsm_snapshot_open(sdb, r->name, &snap);
	if (rc) {
		rc = rc == LSM_E_NOTFOUND
			     ? bk_fail(e, BK_E_CORRUPT,
				       "the backup's checkpoint "
				       "holds no snapshot named %s",
				       r->name)
			     : lsm_fail(e, rc, "cannot open the snapshot in",
					src);
		goto out_close_src;
	}
	if (lsm_snapshot_seq(snap) != r->snap_seq) {
		rc = bk_fail(e, BK_E_CORRUPT,
			     "snapshot %s in the backup sees "
			     "sequence %" PRIu64 ", the record says %" PRIu64,
			     r->name, lsm_snapshot_seq(snap), r->snap_seq);
		goto out_release;
	}
	lsm_options_init(&o);
	o.create_if_missing = true;
	o.error_if_exists = true;
	/* As the daemon writes (fs/main.c): full data blocks go to blob
	 * files. */
	o.blob_threshold = FS_BLOCK_SIZE;
	rc = lsm_open(tmp, &o, &ndb);
	if (rc) {
		rc = lsm_fail(e, rc, "cannot create", tmp);
		goto out_release;
	}
	rc = copy_keys(sdb, snap, ndb, tmp, n_keys, n_bytes, e);
	rc2 = lsm_close(ndb);
	if (rc2 && !rc)
		rc = lsm_fail(e, rc2, "cannot close", tmp);
out_release:
	lsm_snapshot_release(sdb, snap);
out_close_src:
	lsm_close(sdb);
	return rc;
}

int bk_restore(int argc, char **argv)
{
	uint64_t n_problems = 0, n_bytes = 0, n_keys = 0, kv_bytes = 0;
	char src[4096], tmp[4096], parent[4096];
	const char *dest, *name, *newstore;
	const struct bk_record *r;
	bool made_src = false;
	struct bk_err e = {0};
	struct bk_prog prog;
	uint8_t *buf = NULL;
	uint64_t total = 0;
	struct stat st;
	struct bdir d;
	int srcfd = -1, rc;
	char h[32];

	if (argc != 4) {
		fprintf(stderr, "usage: lsmfsctl restore DEST NAME NEWSTORE\n");
		return 2;
	}
	dest = argv[1];
	name = argv[2];
	newstore = argv[3];
	bk_catch_signals();
	if (lstat(newstore, &st) == 0 || errno != ENOENT) {
		fprintf(stderr, "lsmfsctl: restore: %s: %s\n", newstore,
			errno == ENOENT || errno == 0 ? "already exists"
						      : strerror(errno));
		return 2;
	}
	snprintf(parent, sizeof(parent), "%s", newstore);
	if (stat(dirname(parent), &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr,
			"lsmfsctl: restore: %s: the parent directory "
			"does not exist\n",
			newstore);
		return 2;
	}
	snprintf(parent, sizeof(parent), "%s", newstore);
	if ((size_t)snprintf(src, sizeof(src), "%s.src-%ld", newstore,
			     (long)getpid()) >= sizeof(src) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", newstore,
			     (long)getpid()) >= sizeof(tmp)) {
		fprintf(stderr, "lsmfsctl: restore: %s: name too long\n",
			newstore);
		return 2;
	}
	if (bdir_open(&d, dest, false, false, &e) != 0) {
		bk_report(&e);
		return 2;
	}
	r = bdir_find(&d, name);
	if (!r) {
		fprintf(stderr, "lsmfsctl: restore: no %sbackup named ",
			d.n_damaged ? "readable " : "");
		bk_print_name(stderr, name);
		fprintf(stderr, " in %s\n", dest);
		bdir_close(&d);
		return 2;
	}
	buf = malloc(BK_BUF_SIZE);
	if (!buf) {
		rc = bk_fail(&e, -ENOMEM, "out of memory");
		goto out;
	}

	/* Invariant 1: every file checks out before anything is made. */
	for (size_t i = 0; i < r->n_ssts; i++)
		total += r->ssts[i].size;
	for (size_t i = 0; i < r->n_blobs; i++)
		total += r->blobs[i].size;
	bprog_init(&prog, "restore: verifying", total, r->n_ssts + r->n_blobs);
	rc = bk_verify_record(&d, r, buf, &prog, NULL, &n_problems, &n_bytes,
			      &e);
	bprog_end(&prog);
	if (rc)
		goto out;
	if (n_problems) {
		fprintf(stderr, "lsmfsctl: restore: backup ");
		bk_print_name(stderr, name);
		fprintf(stderr,
			" failed verification (%" PRIu64 " problems); "
			"nothing was written\n",
			n_problems);
		rc = -EIO;
		e.is_reported = true;
		goto out;
	}

	if (mkdir(src, 0700) != 0) {
		rc = bk_fail(&e, -errno, "restore: %s: %s", src,
			     strerror(errno));
		goto out;
	}
	made_src = true;
	srcfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (srcfd < 0) {
		rc = bk_fail(&e, -errno, "restore: %s: %s", src,
			     strerror(errno));
		goto out;
	}
	rc = build_source(&d, r, srcfd, src, buf, &e);
	if (rc)
		goto out;
	rc = restore_keys(r, src, tmp, &n_keys, &kv_bytes, &e);
	if (rc)
		goto out;
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, newstore, RENAME_NOREPLACE) !=
	    0) {
		rc = bk_fail(&e, -errno, "restore: %s: %s", newstore,
			     errno == EEXIST ? "appeared meanwhile"
					     : strerror(errno));
		goto out;
	}
	rc = bfile_fsync_dir(AT_FDCWD, dirname(parent), &e);
	if (rc)
		goto out;
	printf("restore ");
	bk_print_name(stdout, name);
	printf(": %" PRIu64 " keys, %" PRIu64 " bytes (%s) into %s\n", n_keys,
	       kv_bytes, bk_human(kv_bytes, h, sizeof(h)), newstore);
out:
	if (srcfd >= 0)
		close(srcfd);
	if (made_src)
		bfile_remove_tree(AT_FDCWD, src);
	if (rc)
		bfile_remove_tree(AT_FDCWD, tmp);
	free(buf);
	bdir_close(&d);
	if (rc) {
		bk_report(&e);
		return 2;
	}
	return 0;
}
