/*
 * backup_io.c - the file plumbing under lsmfsctl's backup commands:
 * checksummed reads and copies, crash-safe writes, the error line, the
 * progress line and the interrupt flag.
 *
 * Why: backup, verify, restore and prune all read whole files through an
 * XXH3-64 state, write files that must never be seen half-written, and
 * report exactly one clear line on failure. Doing that once here keeps
 * the commands about policy, not syscalls.
 *
 * Invariants:
 *  1. A file written by bfile_copy or bfile_write_atomic appears under its
 *     final name only complete and fsynced, and its directory entry is
 *     fsynced before the function returns 0. The temporary name is
 *     NAME.tmp-PID; on failure it is removed.
 *  2. bk_err keeps the first failure only: the line a user sees names the
 *     step that really failed, not a consequence of it.
 *  3. Nothing is read or written through stdio except the messages.
 *
 * Thread safety: single-threaded tool. The one piece of global state is
 * the interrupt flag (a signal handler can reach nothing else); it is
 * only ever set by the handler and read by the loops.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "backup_int.h"

static volatile sig_atomic_t interrupted;

int bk_fail(struct bk_err *e, int rc, const char *fmt, ...)
{
	va_list ap;

	if (e->rc)
		return rc;
	e->rc = rc ? rc : -EIO;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return rc;
}

int bk_fail_reported(struct bk_err *e, int rc)
{
	if (!e->rc) {
		e->rc = rc ? rc : -EIO;
		e->is_reported = true;
	}
	return rc;
}

void bk_report(const struct bk_err *e)
{
	if (e->is_reported)
		return;
	fprintf(stderr, "lsmfsctl: %s\n",
		e->msg[0] ? e->msg : "unknown failure");
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

void bk_catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* Restart syscalls: the loops poll the flag between chunks, and the
	 * control-socket client need not know about EINTR. */
	sa.sa_flags = SA_RESTART;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

bool bk_interrupted(void)
{
	return interrupted != 0;
}

int64_t bk_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

const char *bk_human(uint64_t bytes, char *buf, size_t cap)
{
	static const char *const units[] = {"B",   "KiB", "MiB",
					    "GiB", "TiB", "PiB"};
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, cap, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, cap, "%.1f %s", v, units[u]);
	return buf;
}

void bk_print_name(FILE *f, const char *s)
{
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c < 0x21 || *c > 0x7e || *c == '%')
			fprintf(f, "%%%02X", *c);
		else
			fputc(*c, f);
	}
}

/* ---- progress ------------------------------------------------------- */

static double elapsed(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) +
	       (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

void bprog_init(struct bk_prog *p, const char *what, uint64_t total_bytes,
		uint64_t total_files)
{
	memset(p, 0, sizeof(*p));
	p->is_tty = isatty(STDERR_FILENO) == 1;
	p->what = what;
	p->total_bytes = total_bytes;
	p->total_files = total_files;
	clock_gettime(CLOCK_MONOTONIC, &p->start);
	p->last = p->start;
}

static void prog_draw(struct bk_prog *p, bool force)
{
	char done[32], total[32], rate[32], eta[32] = "";
	struct timespec now;
	double secs, bps;

	if (!p->is_tty)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!force && p->drawn && elapsed(&p->last, &now) < 0.25)
		return;
	p->last = now;
	secs = elapsed(&p->start, &now);
	bps = secs > 0 ? (double)p->done_bytes / secs : 0;
	bk_human(p->done_bytes, done, sizeof(done));
	bk_human((uint64_t)bps, rate, sizeof(rate));
	if (p->total_bytes && bps > 0 && p->done_bytes <= p->total_bytes) {
		uint64_t left =
			(uint64_t)((double)(p->total_bytes - p->done_bytes) /
				   bps);

		snprintf(eta, sizeof(eta), ", ETA %" PRIu64 ":%02u", left / 60,
			 (unsigned)(left % 60));
	}
	if (p->total_bytes) {
		bk_human(p->total_bytes, total, sizeof(total));
		fprintf(stderr,
			"\r\033[K%s: %s / %s, %" PRIu64 "/%" PRIu64
			" files, %s/s%s",
			p->what, done, total, p->done_files, p->total_files,
			rate, eta);
	} else {
		fprintf(stderr, "\r\033[K%s: %s, %" PRIu64 " %s, %s/s", p->what,
			done, p->done_files, p->total_files ? "files" : "keys",
			rate);
	}
	fflush(stderr);
	p->drawn = true;
}

void bprog_add(struct bk_prog *p, uint64_t bytes)
{
	p->done_bytes += bytes;
	prog_draw(p, false);
}

void bprog_file_done(struct bk_prog *p)
{
	p->done_files++;
	prog_draw(p, false);
}

void bprog_end(struct bk_prog *p)
{
	if (p->is_tty && p->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
	p->drawn = false;
}

/* ---- files ---------------------------------------------------------- */

const char *bk_kind_suffix(enum bk_kind kind)
{
	return kind == BK_KIND_BLOB ? "blob" : "sst";
}

const char *bk_kind_name(enum bk_kind kind)
{
	return kind == BK_KIND_BLOB ? "blob file" : "SST";
}

/* NNNNNN.<suffix>, 6+ digits, as the engine names its files. */
static bool is_numbered(const char *name, const char *suffix, uint64_t *number)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; name[i] >= '0' && name[i] <= '9'; i++) {
		if (n > (UINT64_MAX - 9) / 10)
			return false;
		n = n * 10 + (uint64_t)(name[i] - '0');
	}
	if (i < 6 || name[i] != '.' || strcmp(name + i + 1, suffix) != 0)
		return false;
	*number = n;
	return true;
}

bool bfile_is_sst_name(const char *name, uint64_t *number)
{
	return is_numbered(name, "sst", number);
}

bool bfile_is_store_file_name(const char *name, enum bk_kind *kind,
			      uint64_t *number)
{
	for (int k = 0; k < BK_N_KINDS; k++) {
		if (is_numbered(name, bk_kind_suffix((enum bk_kind)k),
				number)) {
			*kind = (enum bk_kind)k;
			return true;
		}
	}
	return false;
}

bool bfile_is_tmp_name(const char *name)
{
	return strstr(name, ".tmp-") != NULL;
}

int bfile_hash_fd(int fd, const char *name, uint8_t *buf, struct bk_prog *p,
		  uint64_t *size, uint64_t *xxh, struct bk_err *e)
{
	XXH3_state_t *st = XXH3_createState();
	uint64_t n = 0;
	off_t off = 0;
	int rc = 0;

	if (!st)
		return bk_fail(e, -ENOMEM, "out of memory");
	XXH3_64bits_reset(st);
	for (;;) {
		ssize_t got;

		if (bk_interrupted()) {
			rc = bk_fail(e, -EINTR, "interrupted");
			goto out_free;
		}
		got = pread(fd, buf, BK_BUF_SIZE, off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = bk_fail(e, -errno, "%s: read: %s", name,
				     strerror(errno));
			goto out_free;
		}
		if (got == 0)
			break;
		XXH3_64bits_update(st, buf, (size_t)got);
		off += got;
		n += (uint64_t)got;
		if (p)
			bprog_add(p, (uint64_t)got);
	}
	*size = n;
	*xxh = XXH3_64bits_digest(st);
out_free:
	XXH3_freeState(st);
	return rc;
}

int bfile_hash(int dirfd, const char *name, uint8_t *buf, struct bk_prog *p,
	       uint64_t *size, uint64_t *xxh, struct bk_err *e)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return bk_fail(e, -errno, "%s: %s", name, strerror(errno));
	rc = bfile_hash_fd(fd, name, buf, p, size, xxh, e);
	close(fd);
	return rc;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void tmp_name(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "%s.tmp-%ld", name, (long)getpid());
}

int bfile_fsync_dir(int dirfd, const char *name, struct bk_err *e)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return bk_fail(e, -errno, "%s: %s", name, strerror(errno));
	if (fsync(fd) != 0)
		rc = bk_fail(e, -errno, "%s: fsync: %s", name, strerror(errno));
	close(fd);
	return rc;
}

/* The directory part of name ("." when none), for the fsync after a
 * rename. */
static void dir_of(char *buf, size_t cap, const char *name)
{
	const char *slash = strrchr(name, '/');

	if (!slash)
		snprintf(buf, cap, ".");
	else
		snprintf(buf, cap, "%.*s", (int)(slash - name), name);
}

/* Opens a fresh temporary file for dst_name (removing a stale one). */
static int open_tmp(int dirfd, const char *tmp, mode_t mode, struct bk_err *e)
{
	int fd;

	unlinkat(dirfd, tmp, 0);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return bk_fail(e, -errno, "%s: create: %s", tmp,
			       strerror(errno));
	return fd;
}

/* Syncs and closes a finished temporary file and moves it to name; with
 * no_replace an existing name is an error (-EEXIST). */
static int finish_tmp(int dirfd, int fd, const char *tmp, const char *name,
		      bool no_replace, struct bk_err *e)
{
	char dir[4096];
	int rc = 0;

	if (fsync(fd) != 0) {
		rc = bk_fail(e, -errno, "%s: fsync: %s", tmp, strerror(errno));
		close(fd);
		return rc;
	}
	/* The caller re-reads what it wrote: make that read come from the
	 * disk rather than the page cache where the kernel allows it. */
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	if (close(fd) != 0)
		return bk_fail(e, -errno, "%s: close: %s", tmp,
			       strerror(errno));
	if (no_replace) {
		/* link() never replaces: a portable "rename if absent". */
		if (linkat(dirfd, tmp, dirfd, name, 0) != 0)
			return bk_fail(e, -errno, "%s: %s", name,
				       strerror(errno));
		unlinkat(dirfd, tmp, 0);
	} else if (renameat(dirfd, tmp, dirfd, name) != 0) {
		return bk_fail(e, -errno, "%s: rename: %s", name,
			       strerror(errno));
	}
	dir_of(dir, sizeof(dir), name);
	return bfile_fsync_dir(dirfd, dir, e);
}

int bfile_copy(int src_dirfd, const char *src_name, int dst_dirfd,
	       const char *dst_name, mode_t mode, uint8_t *buf,
	       struct bk_prog *p, uint64_t *size, uint64_t *xxh,
	       struct bk_err *e)
{
	XXH3_state_t *st;
	char tmp[4096];
	uint64_t n = 0;
	int in, out, rc = 0;

	in = openat(src_dirfd, src_name, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return bk_fail(e, -errno, "%s: %s", src_name, strerror(errno));
	posix_fadvise(in, 0, 0, POSIX_FADV_SEQUENTIAL);
	st = XXH3_createState();
	if (!st) {
		rc = bk_fail(e, -ENOMEM, "out of memory");
		goto out_close_in;
	}
	XXH3_64bits_reset(st);
	tmp_name(tmp, sizeof(tmp), dst_name);
	out = open_tmp(dst_dirfd, tmp, mode, e);
	if (out < 0) {
		rc = out;
		goto out_free;
	}
	for (;;) {
		ssize_t got;

		if (bk_interrupted()) {
			rc = bk_fail(e, -EINTR, "interrupted");
			goto out_unlink;
		}
		got = read(in, buf, BK_BUF_SIZE);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = bk_fail(e, -errno, "%s: read: %s", src_name,
				     strerror(errno));
			goto out_unlink;
		}
		if (got == 0)
			break;
		XXH3_64bits_update(st, buf, (size_t)got);
		rc = write_all(out, buf, (size_t)got);
		if (rc) {
			bk_fail(e, rc, "%s: write: %s", tmp, strerror(-rc));
			goto out_unlink;
		}
		n += (uint64_t)got;
		if (p)
			bprog_add(p, (uint64_t)got);
		/* Start writing back what is done while the next part is
		 * read: the fsync at the end then waits for little. */
		if (n % BK_WRITEBACK_STEP == 0)
			sync_file_range(out, (off_t)(n - BK_WRITEBACK_STEP),
					BK_WRITEBACK_STEP,
					SYNC_FILE_RANGE_WRITE);
	}
	rc = finish_tmp(dst_dirfd, out, tmp, dst_name, false, e);
	out = -1;
	if (rc)
		goto out_unlink;
	*size = n;
	*xxh = XXH3_64bits_digest(st);
	goto out_free;
out_unlink:
	if (out >= 0)
		close(out);
	unlinkat(dst_dirfd, tmp, 0);
out_free:
	XXH3_freeState(st);
out_close_in:
	close(in);
	return rc;
}

int bfile_write_atomic(int dirfd, const char *name, const void *data,
		       size_t len, mode_t mode, bool no_replace,
		       struct bk_err *e)
{
	char tmp[4096];
	int fd, rc;

	tmp_name(tmp, sizeof(tmp), name);
	fd = open_tmp(dirfd, tmp, mode, e);
	if (fd < 0)
		return fd;
	rc = write_all(fd, data, len);
	if (rc) {
		close(fd);
		unlinkat(dirfd, tmp, 0);
		return bk_fail(e, rc, "%s: write: %s", tmp, strerror(-rc));
	}
	rc = finish_tmp(dirfd, fd, tmp, name, no_replace, e);
	if (rc)
		unlinkat(dirfd, tmp, 0);
	return rc;
}

int bfile_read_all(int dirfd, const char *name, size_t max, uint8_t **out,
		   size_t *len, struct bk_err *e)
{
	struct stat st;
	uint8_t *buf;
	size_t n = 0;
	int fd, rc = 0;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return bk_fail(e, -errno, "%s: %s", name, strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = bk_fail(e, -errno, "%s: %s", name, strerror(errno));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		rc = bk_fail(e, BK_E_CORRUPT,
			     "%s: not a regular file of at "
			     "most %zu bytes",
			     name, max);
		goto out_close;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = bk_fail(e, -ENOMEM, "out of memory");
		goto out_close;
	}
	while (n < (size_t)st.st_size) {
		ssize_t got = read(fd, buf + n, (size_t)st.st_size - n);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = bk_fail(e, -errno, "%s: read: %s", name,
				     strerror(errno));
			free(buf);
			goto out_close;
		}
		if (got == 0)
			break; /* shrank under us: decode what is there */
		n += (size_t)got;
	}
	*out = buf;
	*len = n;
out_close:
	close(fd);
	return rc;
}

int bfile_remove_tree(int dirfd, const char *name)
{
	struct dirent *de;
	int rc = 0, fd;
	DIR *dir;

	fd = openat(dirfd, name,
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	dir = fdopendir(fd);
	if (!dir) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while ((de = readdir(dir)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (unlinkat(fd, de->d_name, 0) == 0)
			continue;
		if (errno == EISDIR || errno == EPERM) {
			int r = bfile_remove_tree(fd, de->d_name);

			if (r && !rc)
				rc = r;
		} else if (!rc) {
			rc = -errno;
		}
	}
	closedir(dir);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && !rc)
		rc = -errno;
	return rc;
}
