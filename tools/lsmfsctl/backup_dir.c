/*
 * backup_dir.c - a backup directory (DEST) as a whole: creation, the
 * marker, the lock, and reading every record
 * (docs/BACKUP-FORMAT.md, "Layout" and "Marker").
 *
 * Why: each command starts the same way (is this a backup directory, may
 * I use it now, what does it hold), and each must refuse a directory that
 * is not ours before touching anything in it.
 *
 * Invariants:
 *  1. DEST appears under its name only complete: it is built as
 *     DEST.new-PID (marker, LOCK, sst/, records/), fsynced, then renamed
 *     (never over an existing DEST).
 *  2. Writers (backup, prune) hold LOCK exclusively and readers (list,
 *     verify, restore) shared, for the whole command; a held lock is an
 *     error, never a wait.
 *  3. d->recs holds every record that decodes, in ascending number;
 *     d->damaged every record file that does not; d->max_number covers
 *     both, so a new record never reuses a damaged one's number.
 *
 * Thread safety: single-threaded tool.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup_int.h"

#define MARKER_LINE1 "lsmfs backup directory\n"
#define MARKER_FORMAT 1
#define MARKER_MAX 4096

void bdir_file_path(char *buf, size_t cap, const char *identity,
		    enum bk_kind kind, uint64_t number)
{
	snprintf(buf, cap, BK_SST "/%s/%06" PRIu64 ".%s", identity, number,
		 bk_kind_suffix(kind));
}

void bdir_record_path(char *buf, size_t cap, uint64_t number)
{
	snprintf(buf, cap, BK_RECORDS "/%08" PRIu64 ".rec", number);
}

/* Builds DEST.new-PID and renames it to path. 0 also when another
 * process created path meanwhile (the caller then checks it). */
static int create_dest(const char *path, struct bk_err *e)
{
	char tmp[4096], marker[64], parent[4096];
	int fd, lock, rc;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.new-%ld", path,
			     (long)getpid()) >= sizeof(tmp))
		return bk_fail(e, -ENAMETOOLONG, "%s: name too long", path);
	bfile_remove_tree(AT_FDCWD, tmp);
	if (mkdir(tmp, 0700) != 0)
		return bk_fail(e, -errno, "%s: cannot create: %s", path,
			       strerror(errno));
	fd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = bk_fail(e, -errno, "%s: %s", tmp, strerror(errno));
		goto out_remove;
	}
	if (mkdirat(fd, BK_SST, 0700) != 0 ||
	    mkdirat(fd, BK_RECORDS, 0700) != 0) {
		rc = bk_fail(e, -errno, "%s: mkdir: %s", tmp, strerror(errno));
		goto out_close;
	}
	lock = openat(fd, "LOCK", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (lock < 0) {
		rc = bk_fail(e, -errno, "%s/LOCK: %s", tmp, strerror(errno));
		goto out_close;
	}
	close(lock);
	snprintf(marker, sizeof(marker), MARKER_LINE1 "format %d\n",
		 MARKER_FORMAT);
	rc = bfile_write_atomic(fd, BK_MARKER, marker, strlen(marker), 0600,
				false, e);
	if (rc)
		goto out_close;
	if (fsync(fd) != 0) {
		rc = bk_fail(e, -errno, "%s: fsync: %s", tmp, strerror(errno));
		goto out_close;
	}
	close(fd);
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) != 0) {
		rc = -errno;
		bfile_remove_tree(AT_FDCWD, tmp);
		if (rc == -EEXIST)
			return 0; /* a concurrent creator won: check theirs */
		return bk_fail(e, rc, "%s: cannot create: %s", path,
			       strerror(-rc));
	}
	snprintf(parent, sizeof(parent), "%s", path);
	return bfile_fsync_dir(AT_FDCWD, dirname(parent), e);
out_close:
	close(fd);
out_remove:
	bfile_remove_tree(AT_FDCWD, tmp);
	return rc;
}

static int check_marker(struct bdir *d, struct bk_err *e)
{
	struct bk_err ignore = {0};
	uint8_t *buf;
	size_t len, l1 = strlen(MARKER_LINE1);
	int rc, format;
	char *end;

	rc = bfile_read_all(d->fd, BK_MARKER, MARKER_MAX, &buf, &len, &ignore);
	if (rc)
		return bk_fail(e, -ENOTDIR,
			       "%s: not a backup directory (no "
			       "readable " BK_MARKER " marker)",
			       d->path);
	buf[len] = '\0';
	if (len < l1 || memcmp(buf, MARKER_LINE1, l1) != 0 ||
	    strncmp((char *)buf + l1, "format ", 7) != 0) {
		free(buf);
		return bk_fail(e, -ENOTDIR,
			       "%s: not a backup directory (bad " BK_MARKER
			       " marker)",
			       d->path);
	}
	errno = 0;
	format = (int)strtol((char *)buf + l1 + 7, &end, 10);
	rc = 0;
	if (errno || *end != '\n')
		rc = bk_fail(e, -ENOTDIR,
			     "%s: not a backup directory (bad " BK_MARKER
			     " marker)",
			     d->path);
	else if (format != MARKER_FORMAT)
		rc = bk_fail(e, BK_E_FORMAT,
			     "%s: backup directory format %d "
			     "is not supported (this lsmfsctl writes %d)",
			     d->path, format, MARKER_FORMAT);
	free(buf);
	return rc;
}

static int take_lock(struct bdir *d, bool exclusive, struct bk_err *e)
{
	d->lock_fd =
		openat(d->fd, "LOCK", O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
	if (d->lock_fd < 0)
		return bk_fail(e, -errno, "%s/LOCK: %s", d->path,
			       strerror(errno));
	if (flock(d->lock_fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK)
			return bk_fail(e, -EBUSY,
				       "%s: in use by another "
				       "lsmfsctl (backup or prune running)",
				       d->path);
		return bk_fail(e, -errno, "%s/LOCK: %s", d->path,
			       strerror(errno));
	}
	return 0;
}

/* True for NNNNNNNN.rec (8+ digits). */
static bool record_name(const char *name, uint64_t *number)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; name[i] >= '0' && name[i] <= '9'; i++) {
		if (n > (UINT64_MAX - 9) / 10)
			return false;
		n = n * 10 + (uint64_t)(name[i] - '0');
	}
	if (i < 8 || strcmp(name + i, ".rec") != 0)
		return false;
	*number = n;
	return true;
}

static int add_damaged(struct bdir *d, const char *file, const char *why)
{
	struct bk_damaged *n =
		realloc(d->damaged, (d->n_damaged + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	d->damaged = n;
	snprintf(n[d->n_damaged].file, sizeof(n->file), "%s", file);
	snprintf(n[d->n_damaged].why, sizeof(n->why), "%s", why);
	d->n_damaged++;
	return 0;
}

static int rec_cmp(const void *a, const void *b)
{
	const struct bk_record *x = a, *y = b;

	return x->number < y->number ? -1 : x->number > y->number;
}

static int load_one(struct bdir *d, uint64_t number, struct bk_err *e)
{
	struct bk_err why = {0};
	struct bk_record r, *grown;
	char file[64];
	uint8_t *buf;
	size_t len;
	int rc;

	bdir_record_path(file, sizeof(file), number);
	rc = bfile_read_all(d->fd, file, BK_RECORD_MAX, &buf, &len, &why);
	if (rc == -ENOMEM)
		return bk_fail(e, rc, "out of memory");
	if (rc == 0) {
		rc = brec_decode(buf, len, file, &r, &why);
		if (rc == 0 && r.number != number) {
			brec_release(&r);
			free(buf);
			snprintf(why.msg, sizeof(why.msg),
				 "%s: damaged "
				 "backup record: its number differs from its "
				 "file name",
				 file);
			return add_damaged(d, file, why.msg);
		}
		if (rc) {
			free(buf);
			if (rc == -ENOMEM)
				return bk_fail(e, rc, "out of memory");
		}
	}
	if (rc)
		return add_damaged(d, file, why.msg);
	r.buf = buf;
	grown = realloc(d->recs, (d->n_recs + 1) * sizeof(*grown));
	if (!grown) {
		brec_release(&r);
		return bk_fail(e, -ENOMEM, "out of memory");
	}
	d->recs = grown;
	d->recs[d->n_recs++] = r;
	return 0;
}

static int load_records(struct bdir *d, struct bk_err *e)
{
	struct dirent *de;
	DIR *dir;
	int fd, rc = 0;

	fd = openat(d->fd, BK_RECORDS, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return bk_fail(e, -errno, "%s/" BK_RECORDS ": %s", d->path,
			       strerror(errno));
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return bk_fail(e, -errno, "%s: %s", d->path, strerror(errno));
	}
	while ((de = readdir(dir)) != NULL) {
		uint64_t number;

		if (!record_name(de->d_name, &number))
			continue;
		if (number > d->max_number)
			d->max_number = number;
		rc = load_one(d, number, e);
		if (rc)
			break;
	}
	closedir(dir);
	if (!rc && d->n_recs > 1)
		qsort(d->recs, d->n_recs, sizeof(*d->recs), rec_cmp);
	return rc;
}

int bdir_open(struct bdir *d, const char *path, bool create, bool exclusive,
	      struct bk_err *e)
{
	struct stat st;
	int rc;

	memset(d, 0, sizeof(*d));
	d->path = path;
	d->fd = -1;
	d->lock_fd = -1;
	if (create && stat(path, &st) != 0 && errno == ENOENT) {
		rc = create_dest(path, e);
		if (rc)
			return rc;
	}
	d->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->fd < 0) {
		rc = -errno;
		if (rc == -ENOTDIR)
			return bk_fail(e, rc,
				       "%s: not a backup directory (not "
				       "a directory)",
				       path);
		return bk_fail(e, rc, "%s: %s", path, strerror(-rc));
	}
	rc = check_marker(d, e);
	if (!rc)
		rc = take_lock(d, exclusive, e);
	if (!rc)
		rc = load_records(d, e);
	if (rc)
		bdir_close(d);
	return rc;
}

void bdir_close(struct bdir *d)
{
	for (size_t i = 0; i < d->n_recs; i++)
		brec_release(&d->recs[i]);
	free(d->recs);
	free(d->damaged);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	if (d->fd >= 0)
		close(d->fd);
	memset(d, 0, sizeof(*d));
	d->fd = -1;
	d->lock_fd = -1;
}

const struct bk_record *bdir_find(const struct bdir *d, const char *name)
{
	for (size_t i = 0; i < d->n_recs; i++) {
		if (!strcmp(d->recs[i].name, name))
			return &d->recs[i];
	}
	return NULL;
}

static void remove_tmp_in(int dirfd, const char *sub)
{
	struct dirent *de;
	DIR *dir;
	int fd;

	fd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return;
	}
	while ((de = readdir(dir)) != NULL) {
		if (bfile_is_tmp_name(de->d_name))
			unlinkat(fd, de->d_name, 0);
	}
	closedir(dir);
}

void bdir_remove_tmp(struct bdir *d)
{
	struct dirent *de;
	DIR *dir;
	int fd;

	remove_tmp_in(d->fd, ".");
	remove_tmp_in(d->fd, BK_RECORDS);
	fd = openat(d->fd, BK_SST, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return;
	}
	while ((de = readdir(dir)) != NULL) {
		if (brec_valid_identity(de->d_name, strlen(de->d_name)))
			remove_tmp_in(fd, de->d_name);
	}
	closedir(dir);
}

/* ---- sets of file keys ---------------------------------------------- */

struct bset_slot {
	char identity[BK_IDENTITY_LEN + 1]; /* "" for an empty slot */
	enum bk_kind kind;
	uint64_t number;
	uint32_t count;
};

struct bset {
	struct bset_slot *slots;
	size_t cap; /* a power of two */
	size_t n;
};

struct bset *bset_new(void)
{
	struct bset *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->cap = 64;
	s->slots = calloc(s->cap, sizeof(*s->slots));
	if (!s->slots) {
		free(s);
		return NULL;
	}
	return s;
}

void bset_free(struct bset *s)
{
	if (!s)
		return;
	free(s->slots);
	free(s);
}

static size_t bset_hash(const char *identity, enum bk_kind kind,
			uint64_t number)
{
	uint64_t h = (number * 2 + (uint64_t)kind) * 0x9e3779b97f4a7c15ull;

	for (const char *c = identity; *c; c++)
		h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
	return (size_t)(h ^ (h >> 29));
}

static struct bset_slot *bset_slot(const struct bset *s, const char *identity,
				   enum bk_kind kind, uint64_t number)
{
	size_t i = bset_hash(identity, kind, number) & (s->cap - 1);

	for (;;) {
		struct bset_slot *sl = &s->slots[i];

		if (!sl->identity[0] ||
		    (sl->number == number && sl->kind == kind &&
		     !strcmp(sl->identity, identity)))
			return sl;
		i = (i + 1) & (s->cap - 1);
	}
}

static int bset_grow(struct bset *s)
{
	struct bset old = *s;

	s->cap *= 2;
	s->slots = calloc(s->cap, sizeof(*s->slots));
	if (!s->slots) {
		*s = old;
		return -ENOMEM;
	}
	for (size_t i = 0; i < old.cap; i++) {
		if (old.slots[i].identity[0])
			*bset_slot(s, old.slots[i].identity, old.slots[i].kind,
				   old.slots[i].number) = old.slots[i];
	}
	free(old.slots);
	return 0;
}

int bset_add(struct bset *s, const char *identity, enum bk_kind kind,
	     uint64_t number)
{
	struct bset_slot *sl;

	if ((s->n + 1) * 2 > s->cap && bset_grow(s) != 0)
		return -ENOMEM;
	sl = bset_slot(s, identity, kind, number);
	if (!sl->identity[0]) {
		snprintf(sl->identity, sizeof(sl->identity), "%s", identity);
		sl->kind = kind;
		sl->number = number;
		s->n++;
	}
	return (int)++sl->count;
}

uint32_t bset_count(const struct bset *s, const char *identity,
		    enum bk_kind kind, uint64_t number)
{
	return bset_slot(s, identity, kind, number)->count;
}
