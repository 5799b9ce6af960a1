/*
 * env_posix.c - the real env: POSIX file I/O.
 *
 * Write files buffer appends in user space (64 KiB) because the WAL and the
 * SST builder append many small pieces; one write(2) per piece would cost a
 * system call each. Appends at least as large as the buffer skip it and go
 * straight to write(2) once the buffer is drained.
 *
 * Reserved space (wfile_reserve: WALs and blob files) is written through a
 * shared memory mapping instead, one 1 MiB window at a time: an append is a
 * memcpy into the page cache, with no system call, and is as safe against
 * a killed process as a write(2) (the page cache, not the process, holds
 * it); fdatasync writes mapped pages back like written ones. The space is
 * allocated (fallocate) before it is mapped, so a store into the mapping
 * never needs a block the disk might not have, and the file is never
 * shorter than the mapped bytes written (no SIGBUS), until trim cuts the
 * unused part, after unmapping. Only small appends take the mapping: one
 * of a page or more (a blob value) goes through the buffer and write(2),
 * which copies it into the page cache without a page fault per page
 * (1 GiB into a mounted lsmfs, 1 MiB writes: 334 -> 549 MB/s), and the
 * appends after it follow it into the buffer until the next flush, so
 * the file's bytes stay in order. The appends that follow a sync go through
 * the buffer and write(2) until the next flush: the sync wrote the tail
 * page back and write-protected it, and a store into it would take a page
 * fault that costs more than the system call (a synced writer's next
 * append, before its next sync). Small synced appends also write zeros
 * ahead of the tail (pw_zero_ahead): fallocate leaves the reserved blocks
 * unwritten, and the first sync of data in each one must commit the
 * file system's journal to record that it now holds data, which made one
 * sync in 28 of a 140-byte record cost ~150 us instead of ~85 on this
 * machine. A sync of small appends that are all still in the buffer (a
 * synced writer's record after its previous sync), into blocks already
 * written, is a direct one (pw_sync_direct): one pwrite of the pages they
 * touch through a second descriptor opened O_DIRECT|O_DSYNC, staged with
 * the synced start of the tail page, which skips the page cache's
 * write-back (a synced put 87 -> 84 us p50 on this machine). The page
 * cache then no longer has the tail page; the next flush writes it whole
 * from the staged copy, so the kernel need not read it back. Two files
 * that must both be durable (a sync group's blob file
 * and WAL) sync at once (wfile_sync_pair): Linux AIO runs an fdatasync
 * of each in a kernel worker of its own, so one file's write-back and
 * cache flush overlap the other's; without AIO (or on a file that refuses
 * it) they sync one after the other. Read files use pread(2)
 * only, so one env_rfile can serve any number of threads at once.
 *
 * The store lock is an open-file-description lock (F_OFD_SETLK): unlike a
 * classic POSIX record lock it belongs to the open file, not the process,
 * so a second lock_file() of the same path from this same process fails
 * too, and closing some unrelated descriptor of that file never drops it.
 *
 * Invariants:
 *  1. A posix_wfile's buffer holds exactly the appended bytes that were not
 *     yet handed to write(2) or a direct sync: size == bytes in the file +
 *     buf_len.
 *  1a. While dhead_at == synced_size, dbuf starts with the file's bytes
 *     from the start of the page that holds synced_size up to it (a direct
 *     sync left them there). Bytes below synced_size never change, so the
 *     copy stays true until a later sync moves synced_size.
 *  2. A failed flush keeps the bytes it could not write at the front of
 *     the buffer, so a retry neither loses nor duplicates data.
 *  3. wfile_close() and rfile_close() free their object whatever happens.
 *  4. Every failure returns -errno and records "<op> <path>: <reason>" with
 *     lsm_err().
 *
 * Thread safety: the ops table is immutable and shared; an env_wfile is used
 * by one thread at a time (see env.h); an env_rfile may be read from many
 * threads concurrently (pread does not move a shared offset).
 */
#include "env/env.h"
#include "util/status.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define POSIX_WBUF_CAP ((size_t)64 * 1024)

#define POSIX_MAP_WINDOW ((uint64_t)1 << 20)

/* Appends of this size or more skip the mapping: write(2) copies a page
 * into the page cache for less than the fault a store into a fresh page
 * of the mapping takes (blob values). */
#define POSIX_MAP_MAX ((size_t)4096)

/* The unit of zeroing ahead and of direct writes: the page size, which is
 * also ext4's and xfs's usual block size and a multiple of any disk's
 * logical block (O_DIRECT's alignment). */
#define POSIX_BLOCK ((uint64_t)4096)
#define POSIX_ROUND_UP(x) (((x) + POSIX_BLOCK - 1) & ~(POSIX_BLOCK - 1))

/* Direct syncs: the largest span of appends they write, and the staging
 * buffer (the synced part of the tail page, a flush's worth of appends,
 * zeros to the end of the last page). */
#define POSIX_DIRECT_MAX ((uint64_t)16 << 10)
#define POSIX_STAGE_CAP ((size_t)(POSIX_WBUF_CAP + 2 * POSIX_BLOCK))

struct posix_wfile {
	struct env_file_base base;
	int fd;
	char *path;
	uint8_t *buf;
	size_t buf_len;
	uint64_t size;     /* bytes appended (written + buffered) */
	uint64_t reserved; /* allocated size from wfile_reserve, else 0 */
	uint8_t *map;      /* POSIX_MAP_WINDOW bytes at file offset map_off */
	uint64_t map_off;
	bool no_map;     /* mmap failed once: plain writes from then on */
	bool synced;     /* synced since the last write(2): skip the mapping */
	uint64_t zeroed; /* reserved bytes below this are written */
	uint64_t synced_size; /* size at the last sync */
	aio_context_t aio;    /* for wfile_sync_pair; 0: not set up yet */
	bool no_aio;    /* AIO failed once: plain fdatasync from then on */
	int dfd;        /* O_DIRECT|O_DSYNC descriptor of the file, -1: none */
	bool no_direct; /* a direct sync failed once: fdatasync from then on */
	uint64_t dhead_at; /* see invariant 1a; UINT64_MAX: none */
	uint8_t *dbuf;     /* page-aligned, POSIX_STAGE_CAP bytes, or NULL */
};

struct posix_rfile {
	struct env_file_base base;
	int fd;
	char *path;
	uint64_t size; /* from fstat at open */
};

struct env_lock {
	int fd;
	char *path;
};

static const struct env_ops posix_ops;

static int sys_err(int err, const char *op, const char *path)
{
	return lsm_err(-err, "%s %s: %s", op, path, strerror(err));
}

/* Writes all of buf, retrying on EINTR and short writes. On failure,
 * *n_done says how much was written before the error. */
static int write_all(int fd, const uint8_t *buf, size_t len, uint64_t off,
		     size_t *n_done)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n =
			pwrite(fd, buf + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			*n_done = done;
			return -errno;
		}
		if (n == 0) {
			*n_done = done;
			return -EIO;
		}
		done += (size_t)n;
	}
	*n_done = done;
	return 0;
}

static size_t pw_stage(struct posix_wfile *f);

static int pw_flush_buf(struct posix_wfile *f)
{
	const uint8_t *src = f->buf;
	uint64_t off = f->size - f->buf_len;
	size_t len = f->buf_len, skip = 0, done = 0;
	int rc;
	if (f->buf_len == 0)
		return 0;
	if (f->dhead_at == f->synced_size && off == f->synced_size &&
	    POSIX_ROUND_UP(f->size) <= f->reserved) {
		/* The tail page left the page cache with a direct sync:
		 * write it whole, from its copy, so that the kernel need
		 * not read it back from the disk first. */
		skip = (size_t)(off & (POSIX_BLOCK - 1));
		len = pw_stage(f);
		src = f->dbuf;
		off -= skip;
	}
	rc = write_all(f->fd, src, len, off, &done);
	done = done > skip ? done - skip : 0;
	if (done > f->buf_len)
		done = f->buf_len; /* the zeros past the end */
	if (done > 0 && done < f->buf_len)
		memmove(f->buf, f->buf + done, f->buf_len - done);
	f->buf_len -= done;
	if (rc < 0)
		return sys_err(-rc, "write", f->path);
	f->synced = false;
	return 0;
}

static int posix_new_wfile(lsm_env *env, const char *path,
			   struct env_wfile **out)
{
	struct posix_wfile *f = calloc(1, sizeof(*f));
	if (!f)
		return lsm_err(-ENOMEM, "open %s: out of memory", path);
	f->base.ops = &posix_ops;
	f->path = strdup(path);
	f->buf = malloc(POSIX_WBUF_CAP);
	if (!f->path || !f->buf) {
		free(f->buf);
		free(f->path);
		free(f);
		return lsm_err(-ENOMEM, "open %s: out of memory", path);
	}
	f->dfd = -1;
	f->dhead_at = UINT64_MAX;
	/* read-write: a reserved file is written through a mapping */
	f->fd = open(path, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0644);
	if (f->fd < 0) {
		int rc = sys_err(errno, "open", path);
		free(f->buf);
		free(f->path);
		free(f);
		return rc;
	}
	*out = (struct env_wfile *)f;
	return 0;
}

static void pw_unmap(struct posix_wfile *f)
{
	if (f->map)
		munmap(f->map, POSIX_MAP_WINDOW);
	f->map = NULL;
}

/* Appends through the mapping when the append is small, all of it lies in
 * the reserved space, nothing is buffered and the file was not synced
 * since its last write(2) (see the top of this file). false: use the
 * buffer and write(2); if the mapping failed midway, for the part that
 * f->size does not count yet. */
static bool pw_map_append(struct posix_wfile *f, const uint8_t *p, size_t len)
{
	if (!f->reserved || f->no_map || f->synced || f->buf_len ||
	    len >= POSIX_MAP_MAX || f->size + len > f->reserved)
		return false;
	while (len) {
		uint64_t off = f->size, win = off & ~(POSIX_MAP_WINDOW - 1);
		if (!f->map || f->map_off != win) {
			void *m;
			pw_unmap(f);
			m = mmap(NULL, POSIX_MAP_WINDOW, PROT_READ | PROT_WRITE,
				 MAP_SHARED, f->fd, (off_t)win);
			if (m == MAP_FAILED) {
				f->no_map = true; /* the rest by write(2) */
				return len == 0;
			}
			f->map = m;
			f->map_off = win;
		}
		size_t n = (size_t)(win + POSIX_MAP_WINDOW - off);
		if (n > len)
			n = len;
		memcpy(f->map + (off - win), p, n);
		f->size += n;
		p += n;
		len -= n;
	}
	return true;
}

static int posix_wfile_append(struct env_wfile *wf, const void *data,
			      size_t len)
{
	struct posix_wfile *f = (struct posix_wfile *)wf;
	const uint8_t *p = data;
	uint64_t before = f->size;
	int rc;

	if (pw_map_append(f, p, len))
		return 0;
	/* a part may have gone through the mapping */
	p += f->size - before;
	len -= (size_t)(f->size - before);

	if (len <= POSIX_WBUF_CAP - f->buf_len) {
		if (len)
			memcpy(f->buf + f->buf_len, p, len);
		f->buf_len += len;
		f->size += len;
		return 0;
	}
	rc = pw_flush_buf(f);
	if (rc < 0)
		return rc;
	if (len < POSIX_WBUF_CAP) {
		memcpy(f->buf, p, len);
		f->buf_len = len;
		f->size += len;
		return 0;
	}
	size_t done = 0;
	rc = write_all(f->fd, p, len, f->size, &done);
	if (rc < 0) {
		/* The file now holds a partial append: the handle is no
		 * longer trustworthy, but `size` stays what the file holds. */
		f->size += done;
		return sys_err(-rc, "write", f->path);
	}
	f->size += len;
	return 0;
}

static int posix_wfile_flush(struct env_wfile *wf)
{
	return pw_flush_buf((struct posix_wfile *)wf);
}

/* Bytes of zeros written ahead at once, and the largest append between
 * syncs that zeroes ahead (larger ones write many blocks per sync anyway,
 * so their block conversions share one journal commit). */
#define POSIX_ZERO_AHEAD ((uint64_t)64 << 10)
#define POSIX_ZERO_SMALL ((uint64_t)16 << 10)

/* Before syncing small appends into reserved space: once the block after
 * the tail is still unwritten, write zeros over the next POSIX_ZERO_AHEAD
 * bytes (within the reservation), so that the blocks the next syncs fill
 * are converted by this sync's one journal commit rather than one each.
 * The bytes past the tail read as zeros either way. Best effort: a
 * failure only stops it. */
static void pw_zero_ahead(struct posix_wfile *f)
{
	/* Never written; not const, so it sits in .bss instead of adding
	 * 64 KiB of zeros to the library. */
	static uint8_t zeros[POSIX_ZERO_AHEAD];
	uint64_t from = POSIX_ROUND_UP(f->size), to;
	if (!f->reserved || f->size - f->synced_size > POSIX_ZERO_SMALL ||
	    from + POSIX_BLOCK <= f->zeroed)
		return;
	if (from < f->zeroed)
		from = f->zeroed;
	to = from + POSIX_ZERO_AHEAD;
	if (to > f->reserved)
		to = f->reserved;
	if (from >= to)
		return;
	if (pwrite(f->fd, zeros, (size_t)(to - from), (off_t)from) !=
	    (ssize_t)(to - from)) {
		f->zeroed = UINT64_MAX; /* never again for this file */
		return;
	}
	f->zeroed = to;
}

/* What a sync does before its fdatasync. */
static int pw_sync_begin(struct posix_wfile *f)
{
	int rc = pw_flush_buf(f);
	if (rc < 0)
		return rc;
	pw_zero_ahead(f);
	return 0;
}

/* What it does after: err is the fdatasync's errno, or 0. */
static int pw_sync_end(struct posix_wfile *f, int err)
{
	if (err)
		return sys_err(err, "fdatasync", f->path);
	f->synced = true;
	f->synced_size = f->size;
	return 0;
}

/* Copies into f->dbuf the file's bytes from the start of the page that
 * holds f->synced_size, then the buffer (which must start there), then
 * zeros to the end of its last page; returns that length. The first part
 * is already in f->dbuf after a direct sync (invariant 1a); otherwise it is
 * read from the file: 0 if that fails. */
static size_t pw_stage(struct posix_wfile *f)
{
	size_t head = (size_t)(f->synced_size & (POSIX_BLOCK - 1));
	size_t len =
		(size_t)(POSIX_ROUND_UP(f->size) - (f->synced_size - head));
	if (f->dhead_at != f->synced_size && head &&
	    pread(f->fd, f->dbuf, head, (off_t)(f->synced_size - head)) !=
		    (ssize_t)head)
		return 0;
	memcpy(f->dbuf + head, f->buf, f->buf_len);
	memset(f->dbuf + head + f->buf_len, 0, len - head - f->buf_len);
	return len;
}

/* Opens the O_DIRECT|O_DSYNC descriptor (through /proc, so the file's
 * name does not matter: it may have been renamed) and the staging buffer;
 * false if the file system refuses O_DIRECT, there is no /proc, or what
 * it opened is not this file. */
static bool pw_direct_open(struct posix_wfile *f)
{
	struct stat a, b;
	char name[40];
	void *p;
	snprintf(name, sizeof(name), "/proc/self/fd/%d", f->fd);
	f->dfd = open(name, O_WRONLY | O_DIRECT | O_DSYNC | O_CLOEXEC);
	if (f->dfd < 0)
		return false;
	if (fstat(f->fd, &a) < 0 || fstat(f->dfd, &b) < 0 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino ||
	    posix_memalign(&p, POSIX_BLOCK, POSIX_STAGE_CAP) != 0)
		goto out_close;
	f->dbuf = p;
	return true;
out_close:
	close(f->dfd);
	f->dfd = -1;
	return false;
}

/* A sync of small appends that are all still in the buffer, into blocks
 * already written (pw_zero_ahead; if zeroing failed, the O_DSYNC write
 * commits the blocks' conversion itself): one pwrite of the pages they
 * touch through the O_DIRECT|O_DSYNC descriptor, which skips the page
 * cache's write-back (see the top of this file). true: done. false:
 * nothing was done that the plain sync would not redo, which then
 * follows; a failed direct write also turns direct syncs off for the file
 * (the plain sync reports the errors). */
static bool pw_sync_direct(struct posix_wfile *f)
{
	uint64_t from = f->synced_size & ~(POSIX_BLOCK - 1), last;
	size_t len, done;

	if (f->no_direct || !f->buf_len || f->buf_len > POSIX_DIRECT_MAX ||
	    f->size - f->buf_len != f->synced_size ||
	    POSIX_ROUND_UP(f->size) + POSIX_BLOCK > f->zeroed ||
	    POSIX_ROUND_UP(f->size) > f->reserved)
		return false;
	if (!f->dbuf && !pw_direct_open(f)) {
		f->no_direct = true;
		return false;
	}
	len = pw_stage(f);
	if (!len)
		return false;
	if (write_all(f->dfd, f->dbuf, len, from, &done) < 0) {
		f->no_direct = true;
		return false;
	}
	/* keep the new tail page's synced part at the front of dbuf */
	last = f->size & ~(POSIX_BLOCK - 1);
	memmove(f->dbuf, f->dbuf + (last - from), (size_t)(f->size - last));
	f->buf_len = 0;
	(void)pw_sync_end(f, 0); /* cannot fail without an errno */
	f->dhead_at = f->synced_size;
	return true;
}

static int posix_wfile_sync(struct env_wfile *wf)
{
	struct posix_wfile *f = (struct posix_wfile *)wf;
	int rc;
	if (pw_sync_direct(f))
		return 0;
	rc = pw_sync_begin(f);
	if (rc < 0)
		return rc;
	return pw_sync_end(f, fdatasync(f->fd) < 0 ? errno : 0);
}

/* fdatasync of a's and b's descriptors at the same time, with Linux AIO
 * (the kernel runs each IOCB_CMD_FDSYNC in a worker of its own; glibc has
 * no wrappers): err[i] gets each one's errno or 0. false: AIO cannot do it
 * here (no kernel support, or the file system refuses), and no sync is
 * under way; a->no_aio then keeps later pairs off this path. The context
 * belongs to a, whose single user thread (env.h) reaps only its own
 * events. */
static bool pw_fdsync_both(struct posix_wfile *a, struct posix_wfile *b,
			   int err[2])
{
	struct iocb cb[2], *cbs[2] = {&cb[0], &cb[1]};
	struct io_event ev[2];
	long n, got = 0;

	if (a->no_aio)
		return false;
	if (!a->aio && syscall(SYS_io_setup, 2, &a->aio) < 0) {
		a->aio = 0;
		a->no_aio = true;
		return false;
	}
	memset(cb, 0, sizeof(cb));
	for (int i = 0; i < 2; i++) {
		cb[i].aio_data = (uint64_t)i;
		cb[i].aio_lio_opcode = IOCB_CMD_FDSYNC;
		cb[i].aio_fildes = (uint32_t)(i ? b->fd : a->fd);
	}
	n = syscall(SYS_io_submit, a->aio, 2, cbs);
	if (n <= 0) {
		a->no_aio = true;
		return false;
	}
	if (n == 1) /* b's was refused: sync it here meanwhile */
		err[1] = fdatasync(b->fd) < 0 ? errno : 0;
	while (got < n) {
		long r = syscall(SYS_io_getevents, a->aio, n - got, n - got, ev,
				 NULL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			/* Cannot happen with a valid context; io_destroy
			 * waits for what is under way, then sync plainly. */
			syscall(SYS_io_destroy, a->aio);
			a->aio = 0;
			a->no_aio = true;
			return false;
		}
		for (long i = 0; i < r; i++)
			err[ev[i].data] = ev[i].res < 0 ? (int)-ev[i].res : 0;
		got += r;
	}
	return true;
}

static int posix_wfile_sync_pair(struct env_wfile *wa, struct env_wfile *wb,
				 int *b_rc)
{
	struct posix_wfile *a = (struct posix_wfile *)wa;
	struct posix_wfile *b = (struct posix_wfile *)wb;
	int rc_a = pw_sync_begin(a), rc_b = pw_sync_begin(b), err[2];

	if (rc_a < 0 || rc_b < 0) {
		/* a sync that cannot begin fails; the other goes on alone */
		*b_rc = rc_b < 0 ? rc_b : posix_wfile_sync(wb);
		return rc_a < 0 ? rc_a : posix_wfile_sync(wa);
	}
	if (!pw_fdsync_both(a, b, err)) {
		err[0] = fdatasync(a->fd) < 0 ? errno : 0;
		err[1] = fdatasync(b->fd) < 0 ? errno : 0;
	}
	*b_rc = pw_sync_end(b, err[1]);
	return pw_sync_end(a, err[0]);
}

static int posix_wfile_reserve(struct env_wfile *wf, uint64_t len)
{
	struct posix_wfile *f = (struct posix_wfile *)wf;
	int rc = pw_flush_buf(f);
	if (rc < 0)
		return rc;
	if (fallocate(f->fd, 0, 0, (off_t)len) < 0)
		return sys_err(errno, "fallocate", f->path);
	if (len > f->reserved)
		f->reserved = len;
	return 0;
}

static int posix_wfile_trim(struct env_wfile *wf)
{
	struct posix_wfile *f = (struct posix_wfile *)wf;
	int rc = pw_flush_buf(f);
	if (rc < 0)
		return rc;
	pw_unmap(f); /* no store may land past the new end */
	f->reserved = 0;
	if (ftruncate(f->fd, (off_t)f->size) < 0)
		return sys_err(errno, "ftruncate", f->path);
	if (fsync(f->fd) < 0)
		return sys_err(errno, "fsync", f->path);
	return 0;
}

static int posix_wfile_close(struct env_wfile *wf)
{
	struct posix_wfile *f = (struct posix_wfile *)wf;
	int rc = pw_flush_buf(f);
	pw_unmap(f);
	if (f->aio)
		syscall(SYS_io_destroy, f->aio);
	if (f->dfd >= 0)
		close(f->dfd);
	free(f->dbuf);
	if (close(f->fd) < 0 && rc == 0)
		rc = sys_err(errno, "close", f->path);
	free(f->buf);
	free(f->path);
	free(f);
	return rc;
}

static uint64_t posix_wfile_size(const struct env_wfile *wf)
{
	return ((const struct posix_wfile *)wf)->size;
}

static int posix_new_rfile(lsm_env *env, const char *path,
			   struct env_rfile **out)
{
	struct stat st;
	struct posix_rfile *f = calloc(1, sizeof(*f));
	int rc;
	if (!f)
		return lsm_err(-ENOMEM, "open %s: out of memory", path);
	f->base.ops = &posix_ops;
	f->path = strdup(path);
	if (!f->path) {
		rc = lsm_err(-ENOMEM, "open %s: out of memory", path);
		goto out_free;
	}
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0) {
		rc = sys_err(errno, "open", path);
		goto out_free;
	}
	if (fstat(f->fd, &st) < 0) {
		rc = sys_err(errno, "fstat", path);
		goto out_close;
	}
	f->size = (uint64_t)st.st_size;
	*out = (struct env_rfile *)f;
	return 0;

out_close:
	close(f->fd);
out_free:
	free(f->path);
	free(f);
	return rc;
}

static int posix_rfile_read(struct env_rfile *rf, uint64_t off, size_t len,
			    void *buf, size_t *n_read)
{
	struct posix_rfile *f = (struct posix_rfile *)rf;
	uint8_t *p = buf;
	size_t done = 0;
	while (done < len) {
		ssize_t n =
			pread(f->fd, p + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return sys_err(errno, "pread", f->path);
		}
		if (n == 0)
			break; /* end of file */
		done += (size_t)n;
	}
	*n_read = done;
	return 0;
}

static uint64_t posix_rfile_size(const struct env_rfile *rf)
{
	return ((const struct posix_rfile *)rf)->size;
}

static void posix_rfile_close(struct env_rfile *rf)
{
	struct posix_rfile *f = (struct posix_rfile *)rf;
	close(f->fd);
	free(f->path);
	free(f);
}

static int posix_file_exists(lsm_env *env, const char *path)
{
	struct stat st;
	if (stat(path, &st) == 0)
		return 1;
	if (errno == ENOENT || errno == ENOTDIR)
		return 0;
	return sys_err(errno, "stat", path);
}

static int posix_file_size(lsm_env *env, const char *path, uint64_t *size)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return sys_err(errno, "stat", path);
	*size = (uint64_t)st.st_size;
	return 0;
}

static int posix_list_dir(lsm_env *env, const char *dir, char ***names,
			  size_t *n_names)
{
	DIR *d = opendir(dir);
	char **v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int rc = 0;

	if (!d)
		return sys_err(errno, "opendir", dir);
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno != 0)
				rc = sys_err(errno, "readdir", dir);
			break;
		}
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **nv = realloc(v, ncap * sizeof(*nv));
			if (!nv) {
				rc = lsm_err(-ENOMEM, "list %s: out of memory",
					     dir);
				break;
			}
			v = nv;
			cap = ncap;
		}
		v[n] = strdup(de->d_name);
		if (!v[n]) {
			rc = lsm_err(-ENOMEM, "list %s: out of memory", dir);
			break;
		}
		n++;
	}
	closedir(d);
	if (rc < 0) {
		env_free_names(v, n);
		return rc;
	}
	*names = v;
	*n_names = n;
	return 0;
}

static int posix_remove_file(lsm_env *env, const char *path)
{
	if (unlink(path) < 0)
		return sys_err(errno, "unlink", path);
	return 0;
}

static int posix_remove_dir(lsm_env *env, const char *path)
{
	if (rmdir(path) < 0)
		return sys_err(errno, "rmdir", path);
	return 0;
}

static int posix_rename_file(lsm_env *env, const char *from, const char *to)
{
	if (rename(from, to) < 0) {
		int e = errno;
		return lsm_err(-e, "rename %s -> %s: %s", from, to,
			       strerror(e));
	}
	return 0;
}

static int posix_link_file(lsm_env *env, const char *from, const char *to)
{
	if (link(from, to) < 0) {
		int e = errno;
		return lsm_err(-e, "link %s -> %s: %s", from, to, strerror(e));
	}
	return 0;
}

static int posix_make_dir(lsm_env *env, const char *path)
{
	struct stat st;
	if (mkdir(path, 0755) == 0)
		return 0;
	if (errno != EEXIST)
		return sys_err(errno, "mkdir", path);
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	return sys_err(EEXIST, "mkdir", path);
}

static int posix_sync_dir(lsm_env *env, const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;
	if (fd < 0)
		return sys_err(errno, "open dir", path);
	if (fsync(fd) < 0)
		rc = sys_err(errno, "fsync dir", path);
	close(fd);
	return rc;
}

static int posix_lock_file(lsm_env *env, const char *path,
			   struct env_lock **out)
{
	struct env_lock *lk = calloc(1, sizeof(*lk));
	struct flock fl;
	int rc;

	if (!lk)
		return lsm_err(-ENOMEM, "lock %s: out of memory", path);
	lk->path = strdup(path);
	if (!lk->path) {
		rc = lsm_err(-ENOMEM, "lock %s: out of memory", path);
		goto out_free;
	}
	lk->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (lk->fd < 0) {
		rc = sys_err(errno, "open", path);
		goto out_free;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = 0;
	fl.l_len = 0; /* the whole file */
	fl.l_pid = 0; /* required for OFD locks */
	if (fcntl(lk->fd, F_OFD_SETLK, &fl) < 0) {
		if (errno == EAGAIN || errno == EACCES)
			rc = lsm_err(LSM_E_BUSY,
				     "store is locked by another process: %s",
				     path);
		else
			rc = sys_err(errno, "lock", path);
		goto out_close;
	}
	*out = lk;
	return 0;

out_close:
	close(lk->fd);
out_free:
	free(lk->path);
	free(lk);
	return rc;
}

static void posix_unlock_file(lsm_env *env, struct env_lock *lk)
{
	if (!lk)
		return;
	/* Closing the only descriptor of the open file description releases
	 * the OFD lock. */
	close(lk->fd);
	free(lk->path);
	free(lk);
}

static int posix_free_space(lsm_env *env, const char *path, uint64_t *bytes)
{
	struct statvfs sv;
	if (statvfs(path, &sv) < 0)
		return sys_err(errno, "statvfs", path);
	*bytes = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
	return 0;
}

static uint64_t posix_now_micros(lsm_env *env)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static const struct env_ops posix_ops = {
	.new_wfile = posix_new_wfile,
	.wfile_append = posix_wfile_append,
	.wfile_reserve = posix_wfile_reserve,
	.wfile_trim = posix_wfile_trim,
	.wfile_flush = posix_wfile_flush,
	.wfile_sync = posix_wfile_sync,
	.wfile_sync_pair = posix_wfile_sync_pair,
	.wfile_close = posix_wfile_close,
	.wfile_size = posix_wfile_size,
	.new_rfile = posix_new_rfile,
	.rfile_read = posix_rfile_read,
	.rfile_size = posix_rfile_size,
	.rfile_close = posix_rfile_close,
	.file_exists = posix_file_exists,
	.file_size = posix_file_size,
	.list_dir = posix_list_dir,
	.remove_file = posix_remove_file,
	.remove_dir = posix_remove_dir,
	.rename_file = posix_rename_file,
	.link_file = posix_link_file,
	.make_dir = posix_make_dir,
	.sync_dir = posix_sync_dir,
	.lock_file = posix_lock_file,
	.unlock_file = posix_unlock_file,
	.free_space = posix_free_space,
	.now_micros = posix_now_micros,
};

static lsm_env posix_env = {&posix_ops};

lsm_env *env_posix(void)
{
	return &posix_env;
}
