/*
 * backup.c - lsmfsctl backup, backup list, backup prune and verify
 * (docs/BACKUP-FORMAT.md; restore is in backup_restore.c).
 *
 * Why: a named snapshot lives in the same store it protects. A backup
 * copies it elsewhere, incrementally: the daemon makes a checkpoint (hard
 * links to every live SST and blob file, so compaction cannot delete them
 * while we copy), and only files the backup directory does not hold yet
 * are copied, because SSTs and the blob files a version lists are
 * immutable and their (store identity, kind, file number) key is never
 * reused. Blob files (values kept out of the tree) follow exactly the
 * SSTs' rules; below, "store file" means either.
 *
 * Backup states: lock DEST -> read records -> ctl checkpoint -> copy new
 * store files (temp, fsync, rename, fsync dir) -> read meta files ->
 * re-read the copies -> write the record (temp, fsync, no-replace rename,
 * fsync dir) -> re-read it -> ctl checkpoint-release. Any failure or
 * signal after the checkpoint still ends with checkpoint-release.
 *
 * Invariants:
 *  1. A record is written only after every store file it names is
 *     durable in DEST with the size and checksum it records.
 *  2. A store file is reused only when a readable record names the same
 *     key, its recorded size equals the checkpoint file's size, and the
 *     last BK_TAIL_CHECK bytes of both files are equal (an SST ends with
 *     its index, properties and footer, which carry checksums of the
 *     rest; a blob file ends with its last values and their checksums: a
 *     store cloned with the same identity that reused a number is caught
 *     without reading whole files).
 *  3. prune deletes records before files, and only files no remaining
 *     record names; with a damaged record present it deletes nothing.
 *  4. verify reads each store file at most once, however many records
 *     use it.
 *
 * Thread safety: single-threaded command-line tool.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "backup_int.h"
#include "lsmfsctl.h"

/* What the daemon's "checkpoint" reply says. */
struct ckpt {
	char *path;
	uint64_t snap_id;
	uint64_t snap_seq;
	int64_t snap_ns;
	char identity[BK_IDENTITY_LEN + 1];
};

/* One SST or blob file of the checkpoint and what the backup does with
 * it. */
struct ck_file {
	char name[32];
	enum bk_kind kind;
	uint64_t number;
	uint64_t size;
	uint64_t xxh;
	bool is_copied;
};

struct backup_stats {
	uint64_t n_copied, bytes_copied;
	uint64_t n_reused, bytes_reused;
	uint64_t record_bytes;
	uint64_t record_number;
};

static bool valid_name(const char *name)
{
	size_t len = strlen(name);

	return len >= 1 && len <= BK_NAME_MAX;
}

/* ---- the checkpoint reply ------------------------------------------- */

/* "PATH\nID SEQ CREATED_NS\nIDENTITY\n". PATH is absolute. */
static int parse_checkpoint(char *body, struct ckpt *ck, struct bk_err *e)
{
	char *l1 = body, *l2, *l3, *end;
	unsigned long long id, seq;
	long long ns;
	int used = 0;

	l2 = strchr(l1, '\n');
	if (!l2)
		goto bad;
	*l2++ = '\0';
	l3 = strchr(l2, '\n');
	if (!l3)
		goto bad;
	*l3++ = '\0';
	end = strchr(l3, '\n');
	if (!end || end[1] != '\0')
		goto bad;
	*end = '\0';
	if (l1[0] != '/')
		goto bad;
	if (sscanf(l2, "%llu %llu %lld%n", &id, &seq, &ns, &used) != 3 ||
	    l2[used] != '\0')
		goto bad;
	if (!brec_valid_identity(l3, strlen(l3)))
		goto bad;
	ck->path = l1;
	ck->snap_id = id;
	ck->snap_seq = seq;
	ck->snap_ns = ns;
	memcpy(ck->identity, l3, BK_IDENTITY_LEN + 1);
	return 0;
bad:
	return bk_fail(e, -EPROTO,
		       "unexpected reply from the daemon to "
		       "'checkpoint'");
}

/* ---- the copy ------------------------------------------------------- */

/* SSTs first, then blob files; ascending numbers within each. */
static int ck_file_cmp(const void *a, const void *b)
{
	const struct ck_file *x = a, *y = b;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return x->number < y->number ? -1 : x->number > y->number;
}

/* Lists the checkpoint: SSTs and blob files into *files (sorted by
 * ck_file_cmp), other files (meta) read whole into metas/datas. LOCK
 * and LOG are not part of a store's state. */
static int scan_checkpoint(int ckfd, const char *ckpath, struct ck_file **files,
			   size_t *n_files, struct bk_meta *metas,
			   uint8_t **datas, size_t *n_metas, struct bk_err *e)
{
	struct ck_file *list = NULL;
	size_t n = 0, cap = 0, nm = 0;
	uint64_t meta_total = 0;
	struct dirent *de;
	DIR *dir;
	int fd, rc = 0;

	fd = dup(ckfd);
	if (fd < 0)
		return bk_fail(e, -errno, "%s: %s", ckpath, strerror(errno));
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return bk_fail(e, -errno, "%s: %s", ckpath, strerror(errno));
	}
	rewinddir(dir);
	while ((de = readdir(dir)) != NULL) {
		const char *nm_ = de->d_name;
		enum bk_kind kind;
		struct stat st;
		uint64_t number;

		if (!strcmp(nm_, ".") || !strcmp(nm_, "..") ||
		    !strcmp(nm_, "LOCK") || !strncmp(nm_, "LOG", 3))
			continue;
		if (fstatat(ckfd, nm_, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			rc = bk_fail(e, -errno, "%s/%s: %s", ckpath, nm_,
				     strerror(errno));
			break;
		}
		if (!S_ISREG(st.st_mode)) {
			rc = bk_fail(e, -EINVAL, "%s/%s: not a regular file",
				     ckpath, nm_);
			break;
		}
		if (bfile_is_store_file_name(nm_, &kind, &number)) {
			if (n == cap) {
				struct ck_file *g;

				cap = cap ? 2 * cap : 64;
				g = realloc(list, cap * sizeof(*g));
				if (!g) {
					rc = bk_fail(e, -ENOMEM,
						     "out of memory");
					break;
				}
				list = g;
			}
			size_t len = strlen(nm_);
			if (len >= sizeof(list[n].name)) {
				rc = bk_fail(e, -EINVAL, "%s/%s: name too long",
					     ckpath, nm_);
				break;
			}
			memset(&list[n], 0, sizeof(list[n]));
			memcpy(list[n].name, nm_, len + 1);
			list[n].kind = kind;
			list[n].number = number;
			list[n].size = (uint64_t)st.st_size;
			n++;
			continue;
		}
		if (!brec_valid_meta_name(nm_, strlen(nm_)) ||
		    nm == BK_META_MAX) {
			rc = bk_fail(e, -EINVAL,
				     "%s/%s: unexpected file in "
				     "the checkpoint",
				     ckpath, nm_);
			break;
		}
		rc = bfile_read_all(ckfd, nm_, BK_RECORD_MAX, &datas[nm],
				    &metas[nm].size, e);
		if (rc)
			break;
		snprintf(metas[nm].name, sizeof(metas[nm].name), "%s", nm_);
		metas[nm].data = datas[nm];
		metas[nm].xxh = XXH3_64bits(datas[nm], metas[nm].size);
		meta_total += metas[nm].size;
		nm++;
		if (meta_total > BK_RECORD_MAX / 2) {
			rc = bk_fail(e, -EFBIG,
				     "%s: checkpoint files besides "
				     "the SSTs and blob files exceed %u bytes",
				     ckpath, BK_RECORD_MAX / 2);
			break;
		}
	}
	closedir(dir);
	*n_metas = nm;
	if (rc) {
		free(list);
		return rc;
	}
	if (nm == 0) {
		free(list);
		return bk_fail(e, -EINVAL, "%s: checkpoint has no MANIFEST",
			       ckpath);
	}
	qsort(list, n, sizeof(*list), ck_file_cmp);
	*files = list;
	*n_files = n;
	return 0;
}

/* The record entry for key (identity, number), from any readable record. */
#define BK_TAIL_CHECK 4096

/* Reads the last n bytes of fd into buf: 0, or -errno. */
static int read_tail(int fd, uint64_t size, uint8_t *buf, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = pread(fd, buf + done, n - done,
				  (off_t)(size - n + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		done += (size_t)r;
	}
	return 0;
}

/* invariant 2: do checkpoint file a/an and DEST file b/bn (both `size`
 * bytes) end alike? 1 yes, 0 no, or -errno. */
static int same_tail(int adir, const char *an, int bdir, const char *bn,
		     uint64_t size)
{
	uint8_t x[BK_TAIL_CHECK], y[BK_TAIL_CHECK];
	size_t n = size < BK_TAIL_CHECK ? (size_t)size : BK_TAIL_CHECK;
	int a = openat(adir, an, O_RDONLY | O_CLOEXEC);
	int b = openat(bdir, bn, O_RDONLY | O_CLOEXEC);
	int rc = a < 0 || b < 0 ? -errno : 0;
	if (!rc)
		rc = read_tail(a, size, x, n);
	if (!rc)
		rc = read_tail(b, size, y, n);
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	return rc ? rc : memcmp(x, y, n) == 0;
}

static const struct bk_sst *known_file(const struct bdir *d,
				       const char *identity, enum bk_kind kind,
				       uint64_t number)
{
	for (size_t i = d->n_recs; i-- > 0;) {
		const struct bk_sst *s;

		if (strcmp(d->recs[i].identity, identity) != 0)
			continue;
		s = brec_find(&d->recs[i], kind, number);
		if (s)
			return s;
	}
	return NULL;
}

static int ensure_dir(int dirfd, const char *name, struct bk_err *e)
{
	char parent[4096], *slash;

	if (mkdirat(dirfd, name, 0700) == 0) {
		snprintf(parent, sizeof(parent), "%s", name);
		slash = strrchr(parent, '/');
		if (slash)
			*slash = '\0';
		else
			snprintf(parent, sizeof(parent), ".");
		return bfile_fsync_dir(dirfd, parent, e);
	}
	if (errno == EEXIST)
		return 0;
	return bk_fail(e, -errno, "%s: mkdir: %s", name, strerror(errno));
}

/* Copies (or reuses) every SST and blob file, writes and checks the
 * record. */
static int backup_checkpoint(struct bdir *d, const char *name,
			     const struct ckpt *ck, struct backup_stats *bs,
			     struct bk_err *e)
{
	struct bk_meta metas[BK_META_MAX];
	uint8_t *datas[BK_META_MAX] = {0};
	struct ck_file *files = NULL;
	size_t n_files = 0, n_metas = 0, rec_len = 0, back_len = 0;
	size_t n_of[BK_N_KINDS] = {0};
	uint8_t *buf = NULL, *rec = NULL, *back = NULL;
	struct bk_sst *entries = NULL;
	struct bk_record r;
	struct bk_prog prog;
	uint64_t to_copy = 0, n_to_copy = 0;
	char iddir[128], path[256];
	int ckfd, rc;

	memset(metas, 0, sizeof(metas));
	memset(&r, 0, sizeof(r));
	ckfd = open(ck->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ckfd < 0)
		return bk_fail(e, -errno, "checkpoint %s: %s", ck->path,
			       strerror(errno));
	rc = scan_checkpoint(ckfd, ck->path, &files, &n_files, metas, datas,
			     &n_metas, e);
	if (rc)
		goto out;
	buf = malloc(BK_BUF_SIZE);
	/* The record's entries, in files' order: SSTs, then blob files. */
	entries = calloc(n_files ? n_files : 1, sizeof(*entries));
	if (!buf || !entries) {
		rc = bk_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	snprintf(iddir, sizeof(iddir), BK_SST "/%s", ck->identity);
	rc = ensure_dir(d->fd, iddir, e);
	if (rc)
		goto out;

	/* Decide first, so that progress knows the total. */
	for (size_t i = 0; i < n_files; i++) {
		struct ck_file *s = &files[i];
		const struct bk_sst *k =
			known_file(d, ck->identity, s->kind, s->number);
		struct stat st;

		n_of[s->kind]++;
		bdir_file_path(path, sizeof(path), ck->identity, s->kind,
			       s->number);
		if (k && k->size != s->size) {
			rc = bk_fail(e, -EEXIST,
				     "%s holds %" PRIu64 " bytes "
				     "for %s %s of store %s, the store has "
				     "%" PRIu64 " (two stores with one "
				     "identity?)",
				     d->path, k->size, bk_kind_name(s->kind),
				     s->name, ck->identity, s->size);
			goto out;
		}
		if (k && fstatat(d->fd, path, &st, 0) == 0 &&
		    (uint64_t)st.st_size == k->size) {
			int same =
				same_tail(ckfd, s->name, d->fd, path, s->size);
			if (same < 0) {
				rc = bk_fail(e, same, "comparing %s with %s/%s",
					     s->name, d->path, path);
				goto out;
			}
			if (!same) {
				rc = bk_fail(e, -EEXIST,
					     "%s/%s differs from %s %s of "
					     "store %s (a damaged backup file, "
					     "or two "
					     "stores with one identity?)",
					     d->path, path,
					     bk_kind_name(s->kind), s->name,
					     ck->identity);
				goto out;
			}
			s->xxh = k->xxh;
			continue;
		}
		s->is_copied = true;
		to_copy += s->size;
		n_to_copy++;
	}

	bprog_init(&prog, "backup", to_copy, n_to_copy);
	for (size_t i = 0; i < n_files; i++) {
		struct ck_file *s = &files[i];
		uint64_t size, xxh;

		entries[i].number = s->number;
		entries[i].size = s->size;
		if (!s->is_copied) {
			entries[i].xxh = s->xxh;
			bs->n_reused++;
			bs->bytes_reused += s->size;
			continue;
		}
		bdir_file_path(path, sizeof(path), ck->identity, s->kind,
			       s->number);
		rc = bfile_copy(ckfd, s->name, d->fd, path, 0400, buf, &prog,
				&size, &xxh, e);
		if (rc)
			goto out_prog;
		if (size != s->size) {
			rc = bk_fail(e, -EIO,
				     "%s/%s: read %" PRIu64 " bytes, "
				     "expected %" PRIu64,
				     ck->path, s->name, size, s->size);
			goto out_prog;
		}
		s->xxh = xxh;
		entries[i].xxh = xxh;
		bs->n_copied++;
		bs->bytes_copied += size;
		bprog_file_done(&prog);
	}
	bprog_end(&prog);

	/* Re-read what was written (from the disk: the copies were dropped
	 * from the page cache after their fsync). */
	bprog_init(&prog, "backup: checking the copies", to_copy, n_to_copy);
	for (size_t i = 0; i < n_files; i++) {
		struct ck_file *s = &files[i];
		uint64_t size, xxh;

		if (!s->is_copied)
			continue;
		bdir_file_path(path, sizeof(path), ck->identity, s->kind,
			       s->number);
		rc = bfile_hash(d->fd, path, buf, &prog, &size, &xxh, e);
		if (rc)
			goto out_prog;
		if (size != s->size || xxh != s->xxh) {
			rc = bk_fail(e, -EIO,
				     "%s/%s: differs from what was "
				     "written (read back %" PRIu64 " bytes, "
				     "checksum %016" PRIx64
				     ", wrote %016" PRIx64 ")",
				     d->path, path, size, xxh, s->xxh);
			goto out_prog;
		}
		bprog_file_done(&prog);
	}
	bprog_end(&prog);

	r.number = d->max_number + 1;
	r.backup_ns = bk_now_ns();
	r.snap_id = ck->snap_id;
	r.snap_seq = ck->snap_seq;
	r.snap_ns = ck->snap_ns;
	memcpy(r.identity, ck->identity, sizeof(r.identity));
	snprintf(r.name, sizeof(r.name), "%s", name);
	r.ssts = entries;
	r.n_ssts = n_of[BK_KIND_SST];
	r.blobs = entries + n_of[BK_KIND_SST];
	r.n_blobs = n_of[BK_KIND_BLOB];
	r.metas = metas;
	r.n_metas = n_metas;
	rc = brec_encode(&r, &rec, &rec_len, e);
	if (rc)
		goto out;
	bdir_record_path(path, sizeof(path), r.number);
	rc = bfile_write_atomic(d->fd, path, rec, rec_len, 0400, true, e);
	if (rc)
		goto out;
	rc = bfile_read_all(d->fd, path, BK_RECORD_MAX, &back, &back_len, e);
	if (rc)
		goto out;
	if (back_len != rec_len || memcmp(back, rec, rec_len) != 0) {
		rc = bk_fail(e, -EIO, "%s/%s: differs from what was written",
			     d->path, path);
		goto out;
	}
	bs->record_bytes = rec_len;
	bs->record_number = r.number;
	goto out;
out_prog:
	bprog_end(&prog);
out:
	free(back);
	free(rec);
	free(entries);
	free(buf);
	for (size_t i = 0; i < n_metas; i++)
		free(datas[i]);
	free(files);
	close(ckfd);
	return rc;
}

static int backup_create(const char *mount, const char *name, const char *dest)
{
	struct backup_stats bs = {0};
	struct ctl_conn *c = NULL;
	struct bk_err e = {0};
	struct ckpt ck = {0};
	char *body = NULL, *rbody = NULL;
	size_t body_len, rbody_len;
	char h1[32], h2[32];
	struct bdir d;
	int rc;

	if (!valid_name(name)) {
		fprintf(stderr,
			"lsmfsctl: backup: bad snapshot name (1..%d "
			"bytes)\n",
			BK_NAME_MAX);
		return 2;
	}
	bk_catch_signals();
	/* A wrong MOUNT must not leave a new, empty DEST behind. */
	if (ctl_open(mount, &c) != 0)
		return 2;
	ctl_close(c);
	c = NULL;
	rc = bdir_open(&d, dest, true, true, &e);
	if (rc) {
		bk_report(&e);
		return 2;
	}
	bdir_remove_tmp(&d);
	if (bdir_find(&d, name)) {
		fprintf(stderr, "lsmfsctl: backup ");
		bk_print_name(stderr, name);
		fprintf(stderr, " already exists in %s\n", dest);
		bdir_close(&d);
		return 2;
	}
	for (size_t i = 0; i < d.n_damaged; i++)
		fprintf(stderr,
			"lsmfsctl: warning: %s/%s; the files it "
			"names are not reused\n",
			dest, d.damaged[i].why);

	if (ctl_open(mount, &c) != 0) {
		bdir_close(&d);
		return 2;
	}
	{
		const char *args[1] = {name};

		rc = ctl_call(c, "checkpoint", args, 1, &body, &body_len);
	}
	ctl_close(c);
	c = NULL;
	if (rc != 0) {
		bdir_close(&d);
		return 2;
	}
	rc = parse_checkpoint(body, &ck, &e);
	if (rc) {
		/* Nothing to release: the reply did not say what. */
		bk_report(&e);
		free(body);
		bdir_close(&d);
		return 2;
	}
	if (!bk_interrupted())
		rc = backup_checkpoint(&d, name, &ck, &bs, &e);
	else
		rc = bk_fail(&e, -EINTR, "interrupted");

	/* Always hand the checkpoint back, whatever happened above. */
	{
		const char *args[1] = {ck.path};

		if (ctl_open(mount, &c) == 0) {
			if (ctl_call(c, "checkpoint-release", args, 1, &rbody,
				     &rbody_len) != 0)
				fprintf(stderr,
					"lsmfsctl: warning: checkpoint "
					"%s not released (the daemon "
					"removes it at its next "
					"mount)\n",
					ck.path);
			ctl_close(c);
		}
		free(rbody);
	}
	if (rc) {
		bk_report(&e);
		free(body);
		bdir_close(&d);
		return 2;
	}
	printf("backup ");
	bk_print_name(stdout, name);
	printf(": copied %" PRIu64 " files, %" PRIu64 " bytes (%s); reused "
	       "%" PRIu64 " files, %" PRIu64 " bytes (%s); record %08" PRIu64
	       ".rec, %" PRIu64 " bytes\n",
	       bs.n_copied, bs.bytes_copied,
	       bk_human(bs.bytes_copied, h1, sizeof(h1)), bs.n_reused,
	       bs.bytes_reused, bk_human(bs.bytes_reused, h2, sizeof(h2)),
	       bs.record_number, bs.record_bytes);
	free(body);
	bdir_close(&d);
	return 0;
}

/* ---- list ----------------------------------------------------------- */

static const char *fmt_time(int64_t ns, char *buf, size_t cap)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;

	if (!localtime_r(&t, &tm) ||
	    strftime(buf, cap, "%Y-%m-%dT%H:%M:%S%z", &tm) == 0)
		snprintf(buf, cap, "?");
	return buf;
}

static size_t encoded_len(const char *s)
{
	size_t n = 0;

	for (const unsigned char *c = (const unsigned char *)s; *c; c++)
		n += (*c < 0x21 || *c > 0x7e || *c == '%') ? 3 : 1;
	return n;
}

static int backup_list(const char *dest)
{
	struct bk_err e = {0};
	struct bset *uses;
	size_t width = 4;
	struct bdir d;
	int rc = 0;

	if (bdir_open(&d, dest, false, false, &e) != 0) {
		bk_report(&e);
		return 2;
	}
	uses = bset_new();
	if (!uses) {
		fprintf(stderr, "lsmfsctl: out of memory\n");
		bdir_close(&d);
		return 2;
	}
	for (size_t i = 0; i < d.n_recs; i++) {
		const struct bk_record *r = &d.recs[i];

		if (encoded_len(r->name) > width)
			width = encoded_len(r->name);
		for (int k = 0; k < BK_N_KINDS && !rc; k++) {
			size_t n;
			const struct bk_sst *f =
				brec_files(r, (enum bk_kind)k, &n);

			for (size_t j = 0; j < n && !rc; j++)
				rc = bset_add(uses, r->identity,
					      (enum bk_kind)k, f[j].number) < 0;
		}
	}
	if (rc) {
		fprintf(stderr, "lsmfsctl: out of memory\n");
		goto out;
	}
	printf("%-*s  %-24s  %-24s  %6s  %10s  %10s\n", (int)width, "NAME",
	       "SNAPSHOT", "BACKUP", "FILES", "SIZE", "UNIQUE");
	for (size_t i = 0; i < d.n_recs; i++) {
		const struct bk_record *r = &d.recs[i];
		uint64_t size = r->buf_len, unique = r->buf_len;
		char t1[40], t2[40], h1[32], h2[32];

		for (int k = 0; k < BK_N_KINDS; k++) {
			size_t n;
			const struct bk_sst *f =
				brec_files(r, (enum bk_kind)k, &n);

			for (size_t j = 0; j < n; j++) {
				size += f[j].size;
				if (bset_count(uses, r->identity,
					       (enum bk_kind)k,
					       f[j].number) == 1)
					unique += f[j].size;
			}
		}
		bk_print_name(stdout, r->name);
		printf("%*s  %-24s  %-24s  %6zu  %10s  %10s\n",
		       (int)(width - encoded_len(r->name)), "",
		       fmt_time(r->snap_ns, t1, sizeof(t1)),
		       fmt_time(r->backup_ns, t2, sizeof(t2)),
		       r->n_ssts + r->n_blobs + r->n_metas,
		       bk_human(size, h1, sizeof(h1)),
		       bk_human(unique, h2, sizeof(h2)));
	}
	for (size_t i = 0; i < d.n_damaged; i++)
		fprintf(stderr, "lsmfsctl: %s/%s\n", dest, d.damaged[i].why);
	rc = d.n_damaged ? 1 : 0;
out:
	bset_free(uses);
	bdir_close(&d);
	return rc;
}

/* ---- prune ---------------------------------------------------------- */

static int newest_first(const void *a, const void *b)
{
	const struct bk_record *x = *(const struct bk_record *const *)a;
	const struct bk_record *y = *(const struct bk_record *const *)b;

	if (x->backup_ns != y->backup_ns)
		return x->backup_ns > y->backup_ns ? -1 : 1;
	return x->number > y->number ? -1 : x->number < y->number;
}

/* Deletes the SSTs and blob files of sst/IDENTITY/ that no key in `keep`
 * names, and temporary files; removes the directory when it ends up
 * empty. */
static int prune_identity(struct bdir *d, int sstfd, const char *identity,
			  const struct bset *keep, uint64_t *n_files,
			  uint64_t *n_bytes, struct bk_err *e)
{
	struct dirent *de;
	bool is_empty = true;
	DIR *dir;
	int fd, rc = 0;

	fd = openat(sstfd, identity, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return bk_fail(e, -errno, "%s/" BK_SST "/%s: %s", d->path,
			       identity, strerror(errno));
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return bk_fail(e, -errno, "%s: %s", d->path, strerror(errno));
	}
	while ((de = readdir(dir)) != NULL) {
		enum bk_kind kind;
		uint64_t number;
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!bfile_is_tmp_name(de->d_name) &&
		    (!bfile_is_store_file_name(de->d_name, &kind, &number) ||
		     bset_count(keep, identity, kind, number) > 0)) {
			is_empty = false;
			continue;
		}
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			st.st_size = 0;
		if (unlinkat(fd, de->d_name, 0) != 0) {
			rc = bk_fail(e, -errno, "%s/" BK_SST "/%s/%s: %s",
				     d->path, identity, de->d_name,
				     strerror(errno));
			is_empty = false;
			continue;
		}
		(*n_files)++;
		*n_bytes += (uint64_t)st.st_size;
	}
	if (fsync(fd) != 0 && !rc)
		rc = bk_fail(e, -errno, "%s/" BK_SST "/%s: fsync: %s", d->path,
			     identity, strerror(errno));
	closedir(dir);
	if (is_empty && !rc)
		unlinkat(sstfd, identity, AT_REMOVEDIR);
	return rc;
}

static int backup_prune(const char *dest, const char *keep_arg)
{
	uint64_t n_files = 0, n_bytes = 0, n_dropped = 0;
	const struct bk_record **order = NULL;
	struct bset *keep = NULL;
	struct bk_err e = {0};
	unsigned long long n_keep;
	struct dirent *de;
	struct bdir d;
	char *end, h[32];
	int sstfd, rc = 0;
	DIR *dir;

	errno = 0;
	n_keep = strtoull(keep_arg, &end, 10);
	if (errno || *end || !*keep_arg || keep_arg[0] == '-' || n_keep < 1) {
		fprintf(stderr,
			"lsmfsctl: backup prune: --keep needs a number "
			">= 1, not '%s'\n",
			keep_arg);
		return 2;
	}
	if (bdir_open(&d, dest, false, true, &e) != 0) {
		bk_report(&e);
		return 2;
	}
	if (d.n_damaged) {
		fprintf(stderr,
			"lsmfsctl: backup prune: %s/%s; cannot tell "
			"which files it needs: nothing deleted\n",
			dest, d.damaged[0].why);
		bdir_close(&d);
		return 2;
	}
	order = calloc(d.n_recs ? d.n_recs : 1, sizeof(*order));
	keep = bset_new();
	if (!order || !keep) {
		rc = bk_fail(&e, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < d.n_recs; i++)
		order[i] = &d.recs[i];
	qsort(order, d.n_recs, sizeof(*order), newest_first);
	for (size_t i = 0; i < d.n_recs; i++) {
		const struct bk_record *r = order[i];
		char path[64];

		if (i < n_keep) {
			for (int k = 0; k < BK_N_KINDS; k++) {
				size_t n;
				const struct bk_sst *f =
					brec_files(r, (enum bk_kind)k, &n);

				for (size_t j = 0; j < n; j++) {
					if (bset_add(keep, r->identity,
						     (enum bk_kind)k,
						     f[j].number) < 0) {
						rc = bk_fail(&e, -ENOMEM,
							     "out of memory");
						goto out;
					}
				}
			}
			continue;
		}
		bdir_record_path(path, sizeof(path), r->number);
		if (unlinkat(d.fd, path, 0) != 0) {
			rc = bk_fail(&e, -errno, "%s/%s: %s", dest, path,
				     strerror(errno));
			goto out;
		}
		printf("pruned backup ");
		bk_print_name(stdout, r->name);
		printf("\n");
		n_dropped++;
	}
	/* Records first: a crash from here on leaves only unused files. */
	rc = bfile_fsync_dir(d.fd, BK_RECORDS, &e);
	if (rc)
		goto out;
	sstfd = openat(d.fd, BK_SST, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sstfd < 0) {
		rc = bk_fail(&e, -errno, "%s/" BK_SST ": %s", dest,
			     strerror(errno));
		goto out;
	}
	dir = fdopendir(sstfd);
	if (!dir) {
		close(sstfd);
		rc = bk_fail(&e, -errno, "%s: %s", dest, strerror(errno));
		goto out;
	}
	while ((de = readdir(dir)) != NULL) {
		if (!brec_valid_identity(de->d_name, strlen(de->d_name)))
			continue;
		rc = prune_identity(&d, sstfd, de->d_name, keep, &n_files,
				    &n_bytes, &e);
		if (rc)
			break;
	}
	if (!rc && fsync(sstfd) != 0)
		rc = bk_fail(&e, -errno, "%s/" BK_SST ": fsync: %s", dest,
			     strerror(errno));
	closedir(dir);
	bdir_remove_tmp(&d);
	if (!rc)
		printf("prune: kept %zu backups, removed %" PRIu64 ", deleted "
		       "%" PRIu64 " files, %" PRIu64 " bytes (%s)\n",
		       d.n_recs - (size_t)n_dropped, n_dropped, n_files,
		       n_bytes, bk_human(n_bytes, h, sizeof(h)));
out:
	if (rc)
		bk_report(&e);
	bset_free(keep);
	free(order);
	bdir_close(&d);
	return rc ? 2 : 0;
}

/* ---- verify --------------------------------------------------------- */

static void problem(const struct bdir *d, const char *path,
		    const struct bk_record *r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void problem(const struct bdir *d, const char *path,
		    const struct bk_record *r, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "lsmfsctl: verify: %s/%s: ", d->path, path);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (backup ");
	bk_print_name(stderr, r->name);
	fprintf(stderr, ")\n");
}

/* bk_verify_record for one file. */
static int verify_file(struct bdir *d, const struct bk_record *r,
		       enum bk_kind kind, const struct bk_sst *s, uint8_t *buf,
		       struct bk_prog *p, struct bset *checked,
		       uint64_t *n_problems, uint64_t *n_bytes,
		       struct bk_err *e)
{
	struct bk_err why = {0};
	uint64_t size, xxh;
	char path[256];
	struct stat st;
	int rc;

	if (bk_interrupted())
		return bk_fail(e, -EINTR, "interrupted");
	if (checked) {
		if (bset_count(checked, r->identity, kind, s->number))
			return 0;
		if (bset_add(checked, r->identity, kind, s->number) < 0)
			return bk_fail(e, -ENOMEM, "out of memory");
	}
	bdir_file_path(path, sizeof(path), r->identity, kind, s->number);
	if (fstatat(d->fd, path, &st, 0) != 0) {
		problem(d, path, r, "%s",
			errno == ENOENT ? "missing" : strerror(errno));
		(*n_problems)++;
		return 0;
	}
	if ((uint64_t)st.st_size != s->size) {
		problem(d, path, r, "size %" PRIu64 ", expected %" PRIu64,
			(uint64_t)st.st_size, s->size);
		(*n_problems)++;
		if (p)
			bprog_add(p, s->size);
		return 0;
	}
	rc = bfile_hash(d->fd, path, buf, p, &size, &xxh, &why);
	if (rc == -EINTR || rc == -ENOMEM)
		return bk_fail(e, rc, "%s", why.msg);
	if (rc) {
		problem(d, path, r, "%s", why.msg);
		(*n_problems)++;
		return 0;
	}
	*n_bytes += size;
	if (size != s->size || xxh != s->xxh) {
		problem(d, path, r, "checksum mismatch (corrupt)");
		(*n_problems)++;
	}
	if (p)
		bprog_file_done(p);
	return 0;
}

int bk_verify_record(struct bdir *d, const struct bk_record *r, uint8_t *buf,
		     struct bk_prog *p, struct bset *checked,
		     uint64_t *n_problems, uint64_t *n_bytes, struct bk_err *e)
{
	for (int k = 0; k < BK_N_KINDS; k++) {
		size_t n;
		const struct bk_sst *f = brec_files(r, (enum bk_kind)k, &n);

		for (size_t i = 0; i < n; i++) {
			int rc =
				verify_file(d, r, (enum bk_kind)k, &f[i], buf,
					    p, checked, n_problems, n_bytes, e);
			if (rc)
				return rc;
		}
	}
	return 0;
}

int cmd_verify(int argc, char **argv)
{
	uint64_t n_problems = 0, n_bytes = 0, total = 0, n_files = 0;
	const struct bk_record *only = NULL;
	struct bset *checked = NULL;
	struct bk_err e = {0};
	uint8_t *buf = NULL;
	struct bk_prog prog;
	size_t n_checked = 0;
	struct bdir d;
	char h[32];
	int rc = 0;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: lsmfsctl verify DEST [NAME]\n");
		return 2;
	}
	bk_catch_signals();
	if (bdir_open(&d, argv[1], false, false, &e) != 0) {
		bk_report(&e);
		return 2;
	}
	if (argc == 3) {
		only = bdir_find(&d, argv[2]);
		if (!only && !d.n_damaged) {
			fprintf(stderr, "lsmfsctl: verify: no backup named ");
			bk_print_name(stderr, argv[2]);
			fprintf(stderr, " in %s\n", argv[1]);
			bdir_close(&d);
			return 2;
		}
	}
	if (!only) {
		/* All records, or a name that may be in a damaged one. */
		for (size_t i = 0; i < d.n_damaged; i++) {
			fprintf(stderr, "lsmfsctl: verify: %s/%s\n", argv[1],
				d.damaged[i].why);
			n_problems++;
		}
		if (argc == 3) {
			fprintf(stderr, "lsmfsctl: verify: no readable backup "
					"named ");
			bk_print_name(stderr, argv[2]);
			fprintf(stderr, " in %s\n", argv[1]);
			goto out_summary;
		}
	}
	buf = malloc(BK_BUF_SIZE);
	checked = bset_new();
	if (!buf || !checked) {
		rc = bk_fail(&e, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < d.n_recs; i++) {
		if (only && &d.recs[i] != only)
			continue;
		for (int k = 0; k < BK_N_KINDS; k++) {
			size_t n;
			const struct bk_sst *f =
				brec_files(&d.recs[i], (enum bk_kind)k, &n);

			for (size_t j = 0; j < n; j++) {
				int c = bset_add(checked, d.recs[i].identity,
						 (enum bk_kind)k, f[j].number);

				if (c < 0) {
					rc = bk_fail(&e, -ENOMEM,
						     "out of memory");
					goto out;
				}
				if (c == 1) {
					total += f[j].size;
					n_files++;
				}
			}
		}
	}
	bset_free(checked);
	checked = bset_new();
	if (!checked) {
		rc = bk_fail(&e, -ENOMEM, "out of memory");
		goto out;
	}
	bprog_init(&prog, "verify", total, n_files);
	for (size_t i = 0; i < d.n_recs && !rc; i++) {
		if (only && &d.recs[i] != only)
			continue;
		n_checked++;
		rc = bk_verify_record(&d, &d.recs[i], buf, &prog, checked,
				      &n_problems, &n_bytes, &e);
	}
	bprog_end(&prog);
	if (rc)
		goto out;
out_summary:
	printf("verify: %zu backups, %" PRIu64 " files, %s checked: ",
	       n_checked, n_files, bk_human(n_bytes, h, sizeof(h)));
	if (n_problems)
		printf("%" PRIu64 " problems\n", n_problems);
	else
		printf("ok\n");
out:
	if (rc)
		bk_report(&e);
	bset_free(checked);
	free(buf);
	bdir_close(&d);
	if (rc)
		return 2;
	return n_problems ? 1 : 0;
}

/* ---- dispatch ------------------------------------------------------- */

static void backup_usage(void)
{
	fprintf(stderr, "usage: lsmfsctl backup MOUNT NAME DEST\n"
			"       lsmfsctl backup list DEST\n"
			"       lsmfsctl backup prune DEST --keep N\n");
}

int cmd_backup(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "list"))
		return backup_list(argv[2]);
	if (argc == 5 && !strcmp(argv[1], "prune") &&
	    !strcmp(argv[3], "--keep"))
		return backup_prune(argv[2], argv[4]);
	if (argc == 4)
		return backup_create(argv[1], argv[2], argv[3]);
	backup_usage();
	return 2;
}

int cmd_restore(int argc, char **argv)
{
	return bk_restore(argc, argv);
}
