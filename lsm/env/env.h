/*
 * env.h - the seam through which the engine does all file I/O.
 *
 * An lsm_env is a table of functions. env_posix() is the real one; tests
 * wrap it in a fault-injecting env (env_fault.h) that can fail the N-th
 * operation, run out of space, or cut power (drop what was never synced).
 *
 * Files:
 *  - env_wfile: a new file written front to back. wfile_append() may buffer
 *    in user space; wfile_flush() hands everything appended to the OS (so a
 *    killed process loses nothing flushed); wfile_sync() makes it durable
 *    (flush + fdatasync). wfile_close() flushes but does not sync.
 *  - env_rfile: a file read at offsets (pread); safe for concurrent reads.
 *
 * Every function returns 0 or a negative errno (or LSM_E_BUSY from
 * env_lock), and sets lsm_errdetail() with the path on failure.
 * All functions are thread-safe; a single env_wfile is used by one thread
 * at a time.
 */
#ifndef LSM_ENV_ENV_H
#define LSM_ENV_ENV_H

#include "lsm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct env_wfile;
struct env_rfile;
struct env_lock;

struct env_ops {
	int (*new_wfile)(lsm_env *env, const char *path,
			 struct env_wfile **out); /* create or truncate */
	int (*wfile_append)(struct env_wfile *f, const void *buf, size_t len);
	int (*wfile_flush)(struct env_wfile *f);
	int (*wfile_sync)(struct env_wfile *f);
	/* wfile_sync of two files of this env that must both be durable, in
	 * no order: the env may sync them at the same time. Returns a's
	 * result, *b_rc b's. NULL: one after the other. */
	int (*wfile_sync_pair)(struct env_wfile *a, struct env_wfile *b,
			       int *b_rc);
	int (*wfile_close)(struct env_wfile *f); /* frees f even on error */
	uint64_t (*wfile_size)(const struct env_wfile *f); /* bytes appended */
	/* Extends the file with zeros to at least len bytes (allocated on
	 * disk) so that appends up to there do not change its size: a sync
	 * of such an append needs no size update. Best effort: callers may
	 * ignore a failure. Readers see the zeros as the end of the data. */
	int (*wfile_reserve)(struct env_wfile *f, uint64_t len);
	/* Cuts the file back to the bytes appended, durably (the size change
	 * is synced before it returns). */
	int (*wfile_trim)(struct env_wfile *f);

	int (*new_rfile)(lsm_env *env, const char *path,
			 struct env_rfile **out);
	/* Reads up to len bytes at off; *n_read < len only at end of file. */
	int (*rfile_read)(struct env_rfile *f, uint64_t off, size_t len,
			  void *buf, size_t *n_read);
	uint64_t (*rfile_size)(const struct env_rfile *f);
	void (*rfile_close)(struct env_rfile *f);

	int (*file_exists)(lsm_env *env, const char *path); /* 1, 0 or <0 */
	int (*file_size)(lsm_env *env, const char *path, uint64_t *size);
	/* Names in dir (no "." or ".."); *names is one malloc'd array of
	 * malloc'd strings, freed with env_free_names(). */
	int (*list_dir)(lsm_env *env, const char *dir, char ***names,
			size_t *n_names);
	int (*remove_file)(lsm_env *env, const char *path);
	int (*remove_dir)(lsm_env *env, const char *path);
	int (*rename_file)(lsm_env *env, const char *from, const char *to);
	int (*link_file)(lsm_env *env, const char *from, const char *to);
	int (*make_dir)(lsm_env *env, const char *path); /* 0 if it exists */
	int (*sync_dir)(lsm_env *env, const char *path);
	/* Exclusive lock on a file (created if needed); LSM_E_BUSY if any
	 * other holder, in this process or another, has it. */
	int (*lock_file)(lsm_env *env, const char *path, struct env_lock **out);
	void (*unlock_file)(lsm_env *env, struct env_lock *lock);
	/* Bytes free for an unprivileged user on the file system holding
	 * path. */
	int (*free_space)(lsm_env *env, const char *path, uint64_t *bytes);
	uint64_t (*now_micros)(lsm_env *env);
};

struct lsm_env {
	const struct env_ops *ops;
};

/* The process-wide POSIX env. It holds no mutable state of its own (lock
 * bookkeeping lives in the lock objects plus a registry it guards), so
 * sharing it between databases is safe. */
lsm_env *env_posix(void);

void env_free_names(char **names, size_t n_names);

/* Helpers over the table. */
static inline int env_new_wfile(lsm_env *e, const char *p, struct env_wfile **o)
{
	return e->ops->new_wfile(e, p, o);
}
/* Each wfile/rfile starts with a pointer back to its env's ops so that the
 * helpers below can dispatch; implementations embed struct env_file_base
 * first. */
struct env_file_base {
	const struct env_ops *ops;
};
static inline int wfile_append(struct env_wfile *f, const void *b, size_t n)
{
	return ((struct env_file_base *)f)->ops->wfile_append(f, b, n);
}
static inline int wfile_flush(struct env_wfile *f)
{
	return ((struct env_file_base *)f)->ops->wfile_flush(f);
}
static inline int wfile_reserve(struct env_wfile *f, uint64_t len)
{
	return ((struct env_file_base *)f)->ops->wfile_reserve(f, len);
}

static inline int wfile_trim(struct env_wfile *f)
{
	return ((struct env_file_base *)f)->ops->wfile_trim(f);
}

static inline int wfile_sync(struct env_wfile *f)
{
	return ((struct env_file_base *)f)->ops->wfile_sync(f);
}
/* Syncs a and b: returns a's wfile_sync result and sets *b_rc to b's, so
 * 0 and 0 mean both are durable. A crash during the call may leave either,
 * both or neither durable: the caller needs no order between the two (an
 * env syncs them at once where it can). */
static inline int wfile_sync_pair(struct env_wfile *a, struct env_wfile *b,
				  int *b_rc)
{
	const struct env_ops *ops = ((struct env_file_base *)a)->ops;
	int rc;
	if (ops->wfile_sync_pair && ops == ((struct env_file_base *)b)->ops)
		return ops->wfile_sync_pair(a, b, b_rc);
	rc = wfile_sync(a);
	*b_rc = wfile_sync(b);
	return rc;
}
static inline int wfile_close(struct env_wfile *f)
{
	return ((struct env_file_base *)f)->ops->wfile_close(f);
}
static inline uint64_t wfile_size(const struct env_wfile *f)
{
	return ((const struct env_file_base *)f)->ops->wfile_size(f);
}
static inline int env_new_rfile(lsm_env *e, const char *p, struct env_rfile **o)
{
	return e->ops->new_rfile(e, p, o);
}
static inline int rfile_read(struct env_rfile *f, uint64_t off, size_t len,
			     void *buf, size_t *n)
{
	return ((struct env_file_base *)f)
		->ops->rfile_read(f, off, len, buf, n);
}
static inline uint64_t rfile_size(const struct env_rfile *f)
{
	return ((const struct env_file_base *)f)->ops->rfile_size(f);
}
static inline void rfile_close(struct env_rfile *f)
{
	((struct env_file_base *)f)->ops->rfile_close(f);
}

/* Reads a whole (small) file into a malloc'd buffer. */
int env_read_file(lsm_env *env, const char *path, uint8_t **buf, size_t *len);
/* Writes a whole file durably: data synced, then renamed over `path`, then
 * the directory synced. */
int env_write_file_atomic(lsm_env *env, const char *dir, const char *name,
			  const void *buf, size_t len);

#endif
