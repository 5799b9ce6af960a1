/*
 * env_fault.c - a wrapping env that fails operations, runs out of space and
 * cuts power, so tests can check every error path and crash consistency.
 *
 * The fault env forwards every call to its base env and keeps, for every
 * file written through it, a record (struct fault_rec) of how many bytes
 * were appended, handed to the OS (flushed) and made durable (synced), and
 * under which name the file is durable. env_fault_power_cut() then rewinds
 * the real files to what a machine losing power would have kept (the model
 * is spelled out in env_fault.h).
 *
 * Invariants:
 *  1. synced <= flushed <= appended for every record.
 *  2. space_used == sum of `appended` over the records in the list.
 *  3. A record is either in fe->recs (its file exists at rec->path) or
 *     "gone" (removed, truncated by a new open, or renamed over); a gone
 *     record lives only while write handles still point at it.
 *  4. durable_path == NULL means no name of the file survives a cut; a
 *     backup exists for a path only while a rename over a durable file
 *     there is not yet made durable by a sync_dir.
 *  5. A write handle whose epoch differs from fe->epoch was open at a power
 *     cut: its base handle was closed (its buffered bytes written and then
 *     truncated away) and it fails everything with -EIO.
 *
 * Thread safety: all state is guarded by fe->mu, which is also held across
 * the forwarded calls of write handles, so a power cut never races a write.
 * Read handles only take the mutex to compare epochs.
 */
#include "env/env_fault.h"
#include "util/status.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fault_rec {
	struct fault_rec *next;
	char *path;         /* current name */
	char *durable_path; /* name that survives a cut, or NULL */
	uint64_t appended;
	uint64_t flushed;
	uint64_t synced;
	uint64_t reserved; /* wfile_reserve'd size (zeros past appended):
			    * durable at once, like the real allocation */
	int n_handles;     /* open write handles pointing here */
	bool is_gone;
};

/* Durable contents of a file replaced by a not-yet-durable rename. */
struct fault_backup {
	struct fault_backup *next;
	char *path;
	uint8_t *data;
	size_t len;
};

struct fault_env {
	lsm_env env; /* first: lsm_env * <-> fault_env * */
	lsm_env *base;
	pthread_mutex_t mu;
	uint64_t n_ops;   /* mutating ops attempted */
	uint64_t fail_at; /* n_ops value that fails; 0 = none */
	int fail_err;
	bool is_sticky;  /* the pending failure becomes sticky */
	bool is_failing; /* a sticky failure has started */
	bool is_dead;    /* power is off: every mutating op fails */
	uint64_t space_limit;
	uint64_t space_used;
	uint64_t epoch; /* power cuts so far */
	struct fault_rec *recs;
	struct fault_backup *backups;
	struct fault_wfile *wfiles; /* open write handles */
};

struct fault_wfile {
	struct env_file_base base;
	struct fault_env *fe;
	struct fault_wfile *next, *prev;
	struct env_wfile *inner; /* NULL once a cut closed it */
	struct fault_rec *rec;
	uint64_t epoch;
	uint64_t size;
};

struct fault_rfile {
	struct env_file_base base;
	struct fault_env *fe;
	struct env_rfile *inner;
	uint64_t epoch;
};

static const struct env_ops fault_ops;

static struct fault_env *FE(lsm_env *e)
{
	return (struct fault_env *)e;
}

/* --- records ---------------------------------------------------------- */

static struct fault_rec *rec_find_locked(struct fault_env *fe, const char *path)
{
	for (struct fault_rec *r = fe->recs; r; r = r->next)
		if (strcmp(r->path, path) == 0)
			return r;
	return NULL;
}

static void rec_free(struct fault_rec *r)
{
	free(r->path);
	free(r->durable_path);
	free(r);
}

/* Takes r out of the list (its bytes no longer count); frees it unless a
 * handle still points at it. */
static void rec_detach_locked(struct fault_env *fe, struct fault_rec *r)
{
	for (struct fault_rec **pp = &fe->recs; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	fe->space_used -= r->appended;
	r->is_gone = true;
	r->next = NULL;
	if (r->n_handles == 0)
		rec_free(r);
}

static bool rec_is_durable_at(const struct fault_rec *r, const char *path)
{
	return r->durable_path && strcmp(r->durable_path, path) == 0;
}

/* True if `path` names an entry of directory `dir`. */
static bool in_dir(const char *path, const char *dir)
{
	const char *slash = strrchr(path, '/');
	size_t d_len = strlen(dir), p_len;
	while (d_len > 1 && dir[d_len - 1] == '/')
		d_len--;
	if (!slash)
		return d_len == 1 && dir[0] == '.';
	p_len = (size_t)(slash - path);
	if (p_len == 0)
		p_len = 1; /* "/name" lives in "/" */
	return p_len == d_len && memcmp(path, dir, d_len) == 0;
}

static struct fault_backup **backup_find_locked(struct fault_env *fe,
						const char *path)
{
	struct fault_backup **pp;
	for (pp = &fe->backups; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->path, path) == 0)
			return pp;
	return NULL;
}

static void backup_unlink_free(struct fault_backup **pp)
{
	struct fault_backup *b = *pp;
	*pp = b->next;
	free(b->path);
	free(b->data);
	free(b);
}

/* --- failure injection ------------------------------------------------ */

/* Counts one mutating op; returns the injected error if it must fail. */
static int op_check_locked(struct fault_env *fe, const char *op,
			   const char *path)
{
	fe->n_ops++;
	if (fe->is_dead)
		return lsm_err(-EIO, "%s %s: the power is off", op, path);
	if (fe->is_failing || (fe->fail_at != 0 && fe->n_ops == fe->fail_at)) {
		if (fe->fail_at != 0 && fe->n_ops == fe->fail_at) {
			fe->fail_at = 0;
			if (fe->is_sticky)
				fe->is_failing = true;
		}
		return lsm_err(fe->fail_err, "%s %s: injected failure (%s)", op,
			       path, lsm_strerror(fe->fail_err));
	}
	return 0;
}

static int dead_handle(const char *op)
{
	return lsm_err(-EIO, "%s: file handle lost in a power cut", op);
}

/* --- write files ------------------------------------------------------ */

static int fault_new_wfile(lsm_env *env, const char *path,
			   struct env_wfile **out)
{
	struct fault_env *fe = FE(env);
	struct fault_wfile *f = calloc(1, sizeof(*f));
	struct fault_rec *r = calloc(1, sizeof(*r));
	struct fault_rec *old;
	bool is_durable;
	int rc;

	if (!f || !r || !(r->path = strdup(path))) {
		if (r)
			free(r->path);
		free(r);
		free(f);
		return lsm_err(-ENOMEM, "open %s: out of memory", path);
	}
	pthread_mutex_lock(&fe->mu);
	rc = op_check_locked(fe, "open", path);
	if (rc < 0)
		goto out_unlock;
	old = rec_find_locked(fe, path);
	/* Truncating a file keeps its name: durable if it was. Files not
	 * written through this env are taken to be durable. */
	is_durable = old ? rec_is_durable_at(old, path)
			 : fe->base->ops->file_exists(fe->base, path) == 1;
	rc = fe->base->ops->new_wfile(fe->base, path, &f->inner);
	if (rc < 0)
		goto out_unlock;
	if (old)
		rec_detach_locked(fe, old);
	/* Out of memory here only makes the name count as undurable. */
	r->durable_path = is_durable ? strdup(path) : NULL;
	r->n_handles = 1;
	r->next = fe->recs;
	fe->recs = r;

	f->base.ops = &fault_ops;
	f->fe = fe;
	f->rec = r;
	f->epoch = fe->epoch;
	f->next = fe->wfiles;
	if (fe->wfiles)
		fe->wfiles->prev = f;
	fe->wfiles = f;
	pthread_mutex_unlock(&fe->mu);
	*out = (struct env_wfile *)f;
	return 0;

out_unlock:
	pthread_mutex_unlock(&fe->mu);
	rec_free(r);
	free(f);
	return rc;
}

static bool wf_is_dead_locked(const struct fault_wfile *f)
{
	return f->inner == NULL || f->epoch != f->fe->epoch;
}

static int fault_wfile_append(struct env_wfile *wf, const void *buf, size_t len)
{
	struct fault_wfile *f = (struct fault_wfile *)wf;
	struct fault_env *fe = f->fe;
	int rc;

	pthread_mutex_lock(&fe->mu);
	if (wf_is_dead_locked(f)) {
		rc = dead_handle("append");
		goto out_unlock;
	}
	rc = op_check_locked(fe, "append", f->rec->path);
	if (rc < 0)
		goto out_unlock;
	if (fe->space_limit != 0 && !f->rec->is_gone &&
	    (len > fe->space_limit || fe->space_used > fe->space_limit - len)) {
		rc = lsm_err(-ENOSPC,
			     "append %s: no space left on device (fault env "
			     "limit %llu bytes)",
			     f->rec->path, (unsigned long long)fe->space_limit);
		goto out_unlock;
	}
	rc = wfile_append(f->inner, buf, len);
	if (rc < 0)
		goto out_unlock;
	f->size += len;
	f->rec->appended += len;
	if (!f->rec->is_gone)
		fe->space_used += len;
out_unlock:
	pthread_mutex_unlock(&fe->mu);
	return rc;
}

static int fault_wfile_flush_or_sync(struct env_wfile *wf, bool is_sync)
{
	struct fault_wfile *f = (struct fault_wfile *)wf;
	struct fault_env *fe = f->fe;
	const char *op = is_sync ? "sync" : "flush";
	int rc;

	pthread_mutex_lock(&fe->mu);
	if (wf_is_dead_locked(f)) {
		rc = dead_handle(op);
		goto out_unlock;
	}
	rc = op_check_locked(fe, op, f->rec->path);
	if (rc < 0)
		goto out_unlock;
	rc = is_sync ? wfile_sync(f->inner) : wfile_flush(f->inner);
	if (rc < 0)
		goto out_unlock;
	f->rec->flushed = f->rec->appended;
	if (is_sync)
		f->rec->synced = f->rec->appended;
out_unlock:
	pthread_mutex_unlock(&fe->mu);
	return rc;
}

static int fault_wfile_flush(struct env_wfile *wf)
{
	return fault_wfile_flush_or_sync(wf, false);
}

static int fault_wfile_sync(struct env_wfile *wf)
{
	return fault_wfile_flush_or_sync(wf, true);
}

static int fault_wfile_close(struct env_wfile *wf)
{
	struct fault_wfile *f = (struct fault_wfile *)wf;
	struct fault_env *fe = f->fe;
	int rc = 0;

	pthread_mutex_lock(&fe->mu);
	if (f->inner) {
		rc = wfile_close(f->inner);
		if (rc == 0)
			f->rec->flushed = f->rec->appended;
	}
	if (f->prev)
		f->prev->next = f->next;
	else
		fe->wfiles = f->next;
	if (f->next)
		f->next->prev = f->prev;
	if (--f->rec->n_handles == 0 && f->rec->is_gone)
		rec_free(f->rec);
	pthread_mutex_unlock(&fe->mu);
	free(f);
	return rc;
}

/* Reserve and trim are forwarded and never fail on purpose; the model
 * keeps the reserved size, which survives a cut (the zeros reappear past
 * what survives of the data), until a trim. */
static int fault_wfile_reserve(struct env_wfile *wf, uint64_t len)
{
	struct fault_wfile *f = (struct fault_wfile *)wf;
	struct fault_env *fe = f->fe;
	int rc;

	pthread_mutex_lock(&fe->mu);
	if (wf_is_dead_locked(f)) {
		rc = dead_handle("reserve");
	} else {
		rc = wfile_reserve(f->inner, len);
		if (rc == 0 && len > f->rec->reserved)
			f->rec->reserved = len;
	}
	pthread_mutex_unlock(&fe->mu);
	return rc;
}

static int fault_wfile_trim(struct env_wfile *wf)
{
	struct fault_wfile *f = (struct fault_wfile *)wf;
	struct fault_env *fe = f->fe;
	int rc;

	pthread_mutex_lock(&fe->mu);
	if (wf_is_dead_locked(f)) {
		rc = dead_handle("trim");
	} else {
		rc = wfile_trim(f->inner); /* synced, like an fsync */
		if (rc == 0) {
			f->rec->reserved = 0;
			f->rec->flushed = f->rec->synced = f->rec->appended;
		}
	}
	pthread_mutex_unlock(&fe->mu);
	return rc;
}

static uint64_t fault_wfile_size(const struct env_wfile *wf)
{
	return ((const struct fault_wfile *)wf)->size;
}

/* --- read files ------------------------------------------------------- */

static int fault_new_rfile(lsm_env *env, const char *path,
			   struct env_rfile **out)
{
	struct fault_env *fe = FE(env);
	struct fault_rfile *f = calloc(1, sizeof(*f));
	int rc;
	if (!f)
		return lsm_err(-ENOMEM, "open %s: out of memory", path);
	rc = fe->base->ops->new_rfile(fe->base, path, &f->inner);
	if (rc < 0) {
		free(f);
		return rc;
	}
	f->base.ops = &fault_ops;
	f->fe = fe;
	pthread_mutex_lock(&fe->mu);
	f->epoch = fe->epoch;
	pthread_mutex_unlock(&fe->mu);
	*out = (struct env_rfile *)f;
	return 0;
}

static int fault_rfile_read(struct env_rfile *rf, uint64_t off, size_t len,
			    void *buf, size_t *n_read)
{
	struct fault_rfile *f = (struct fault_rfile *)rf;
	bool is_dead;
	pthread_mutex_lock(&f->fe->mu);
	is_dead = f->epoch != f->fe->epoch;
	pthread_mutex_unlock(&f->fe->mu);
	if (is_dead)
		return dead_handle("read");
	return rfile_read(f->inner, off, len, buf, n_read);
}

static uint64_t fault_rfile_size(const struct env_rfile *rf)
{
	return rfile_size(((const struct fault_rfile *)rf)->inner);
}

static void fault_rfile_close(struct env_rfile *rf)
{
	struct fault_rfile *f = (struct fault_rfile *)rf;
	rfile_close(f->inner);
	free(f);
}

/* --- names ------------------------------------------------------------ */

static int fault_file_exists(lsm_env *env, const char *path)
{
	lsm_env *b = FE(env)->base;
	return b->ops->file_exists(b, path);
}

static int fault_file_size(lsm_env *env, const char *path, uint64_t *size)
{
	lsm_env *b = FE(env)->base;
	return b->ops->file_size(b, path, size);
}

static int fault_list_dir(lsm_env *env, const char *dir, char ***names,
			  size_t *n_names)
{
	lsm_env *b = FE(env)->base;
	return b->ops->list_dir(b, dir, names, n_names);
}

static int fault_remove_file(lsm_env *env, const char *path)
{
	struct fault_env *fe = FE(env);
	struct fault_rec *r;
	struct fault_backup **bp;
	int rc;

	pthread_mutex_lock(&fe->mu);
	rc = op_check_locked(fe, "remove", path);
	if (rc < 0)
		goto out_unlock;
	rc = fe->base->ops->remove_file(fe->base, path);
	if (rc < 0)
		goto out_unlock;
	r = rec_find_locked(fe, path);
	if (r)
		rec_detach_locked(fe, r);
	bp = backup_find_locked(fe, path);
	if (bp)
		backup_unlink_free(bp);
out_unlock:
	pthread_mutex_unlock(&fe->mu);
	return rc;
}

static int fault_remove_dir(lsm_env *env, const char *path)
{
	struct fault_env *fe = FE(env);
	int rc;
	pthread_mutex_lock(&fe->mu);
	rc = op_check_locked(fe, "rmdir", path);
	if (rc == 0)
		rc = fe->base->ops->remove_dir(fe->base, path);
	pthread_mutex_unlock(&fe->mu);
	return rc;
}

/* Saves the durable contents of `to` before a rename replaces it, unless a
 * backup of that path is already pending (the older one is the durable
 * one) or nothing durable lives there. */
static int backup_target_locked(struct fault_env *fe, const char *to,
				struct fault_backup **out)
{
	struct fault_rec *t = rec_find_locked(fe, to);
	struct fault_backup *b;
	uint8_t *data = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	if (backup_find_locked(fe, to))
		return 0;
	if (t ? !rec_is_durable_at(t, to)
	      : fe->base->ops->file_exists(fe->base, to) != 1)
		return 0;
	rc = env_read_file(fe->base, to, &data, &len);
	if (rc < 0)
		return rc;
	if (t && len > t->synced)
		len = (size_t)t->synced;
	b = calloc(1, sizeof(*b));
	if (!b || !(b->path = strdup(to))) {
		free(b);
		free(data);
		return lsm_err(-ENOMEM, "rename %s: out of memory", to);
	}
	b->data = data;
	b->len = len;
	*out = b;
	return 0;
}

static int fault_rename_file(lsm_env *env, const char *from, const char *to)
{
	struct fault_env *fe = FE(env);
	struct fault_backup *b = NULL;
	struct fault_rec *r, *t;
	char *new_path = strdup(to);
	int rc;

	if (!new_path)
		return lsm_err(-ENOMEM, "rename %s: out of memory", from);
	pthread_mutex_lock(&fe->mu);
	rc = op_check_locked(fe, "rename", from);
	if (rc < 0)
		goto out_unlock;
	if (strcmp(from, to) == 0) {
		rc = fe->base->ops->rename_file(fe->base, from, to);
		goto out_unlock;
	}
	r = rec_find_locked(fe, from);
	if (!r) {
		/* A file not written through this env: track it from now on
		 * so that a cut can move it back to its durable name. */
		uint64_t size = 0;
		rc = fe->base->ops->file_size(fe->base, from, &size);
		if (rc < 0)
			goto out_unlock;
		r = calloc(1, sizeof(*r));
		if (!r || !(r->path = strdup(from)) ||
		    !(r->durable_path = strdup(from))) {
			if (r)
				rec_free(r);
			rc = lsm_err(-ENOMEM, "rename %s: out of memory", from);
			goto out_unlock;
		}
		r->appended = r->flushed = r->synced = size;
		r->next = fe->recs;
		fe->recs = r;
		fe->space_used += size;
	}
	rc = backup_target_locked(fe, to, &b);
	if (rc < 0)
		goto out_unlock;
	rc = fe->base->ops->rename_file(fe->base, from, to);
	if (rc < 0) {
		if (b) {
			free(b->path);
			free(b->data);
			free(b);
		}
		goto out_unlock;
	}
	if (b) {
		b->next = fe->backups;
		fe->backups = b;
	}
	t = rec_find_locked(fe, to);
	if (t)
		rec_detach_locked(fe, t);
	free(r->path);
	r->path = new_path;
	new_path = NULL;
out_unlock:
	pthread_mutex_unlock(&fe->mu);
	free(new_path);
	return rc;
}

static int fault_link_file(lsm_env *env, const char *from, const char *to)
{
	struct fault_env *fe = FE(env);
	int rc;
	pthread_mutex_lock(&fe->mu);
	rc = op_check_locked(fe, "link", from);
	if (rc == 0)
		rc = fe->base->ops->link_file(fe->base, from, to);
	pthread_mutex_unlock(&fe->mu);
	return rc;
}

static int fault_make_dir(lsm_env *env, const char *path)
{
	struct fault_env *fe = FE(env);
	int rc;
	pthread_mutex_lock(&fe->mu);
	rc = op_check_locked(fe, "mkdir", path);
	if (rc == 0)
		rc = fe->base->ops->make_dir(fe->base, path);
	pthread_mutex_unlock(&fe->mu);
	return rc;
}

static int fault_sync_dir(lsm_env *env, const char *path)
{
	struct fault_env *fe = FE(env);
	struct fault_backup **bp;
	int rc;

	pthread_mutex_lock(&fe->mu);
	rc = op_check_locked(fe, "sync dir", path);
	if (rc < 0)
		goto out_unlock;
	rc = fe->base->ops->sync_dir(fe->base, path);
	if (rc < 0)
		goto out_unlock;
	for (struct fault_rec *r = fe->recs; r; r = r->next) {
		if (in_dir(r->path, path)) {
			if (!rec_is_durable_at(r, r->path)) {
				char *d = strdup(r->path);
				if (d) {
					free(r->durable_path);
					r->durable_path = d;
				}
			}
		} else if (r->durable_path && in_dir(r->durable_path, path)) {
			/* Moved out of this directory: the old name is
			 * durably gone, the new one not yet durable. */
			free(r->durable_path);
			r->durable_path = NULL;
		}
	}
	for (bp = &fe->backups; *bp;) {
		if (in_dir((*bp)->path, path))
			backup_unlink_free(bp);
		else
			bp = &(*bp)->next;
	}
out_unlock:
	pthread_mutex_unlock(&fe->mu);
	return rc;
}

static int fault_lock_file(lsm_env *env, const char *path,
			   struct env_lock **out)
{
	lsm_env *b = FE(env)->base;
	return b->ops->lock_file(b, path, out);
}

static void fault_unlock_file(lsm_env *env, struct env_lock *lock)
{
	lsm_env *b = FE(env)->base;
	b->ops->unlock_file(b, lock);
}

static int fault_free_space(lsm_env *env, const char *path, uint64_t *bytes)
{
	struct fault_env *fe = FE(env);
	uint64_t n = 0;
	int rc = fe->base->ops->free_space(fe->base, path, &n);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&fe->mu);
	if (fe->space_limit != 0) {
		uint64_t left = fe->space_used < fe->space_limit
					? fe->space_limit - fe->space_used
					: 0;
		if (left < n)
			n = left;
	}
	pthread_mutex_unlock(&fe->mu);
	*bytes = n;
	return 0;
}

static uint64_t fault_now_micros(lsm_env *env)
{
	lsm_env *b = FE(env)->base;
	return b->ops->now_micros(b);
}

static const struct env_ops fault_ops = {
	.new_wfile = fault_new_wfile,
	.wfile_append = fault_wfile_append,
	.wfile_reserve = fault_wfile_reserve,
	.wfile_trim = fault_wfile_trim,
	.wfile_flush = fault_wfile_flush,
	.wfile_sync = fault_wfile_sync,
	.wfile_close = fault_wfile_close,
	.wfile_size = fault_wfile_size,
	.new_rfile = fault_new_rfile,
	.rfile_read = fault_rfile_read,
	.rfile_size = fault_rfile_size,
	.rfile_close = fault_rfile_close,
	.file_exists = fault_file_exists,
	.file_size = fault_file_size,
	.list_dir = fault_list_dir,
	.remove_file = fault_remove_file,
	.remove_dir = fault_remove_dir,
	.rename_file = fault_rename_file,
	.link_file = fault_link_file,
	.make_dir = fault_make_dir,
	.sync_dir = fault_sync_dir,
	.lock_file = fault_lock_file,
	.unlock_file = fault_unlock_file,
	.free_space = fault_free_space,
	.now_micros = fault_now_micros,
};

/* --- power cut -------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Cuts one durable-named file back to what survives; returns its new
 * length. Errors are ignored: a cut is best effort on a scratch dir. */
static uint64_t cut_file_locked(struct fault_rec *r, uint64_t *rng,
				bool is_torn)
{
	uint64_t keep = r->synced;
	size_t n_garbage = 0;
	uint8_t garbage[8];

	if (is_torn && r->flushed > r->synced) {
		uint64_t tail = r->flushed - r->synced;
		uint64_t k = splitmix64(rng) % (tail + 1);
		keep += k;
		if (k < tail && (splitmix64(rng) & 1)) {
			uint64_t g = splitmix64(rng);
			n_garbage = 1 + (size_t)(g % sizeof(garbage));
			for (size_t i = 0; i < sizeof(garbage); i++)
				garbage[i] = (uint8_t)(splitmix64(rng) | 1);
		}
	}
	if (truncate(r->path, (off_t)keep) < 0)
		return keep;
	if (r->reserved > keep && !n_garbage &&
	    truncate(r->path, (off_t)r->reserved) == 0)
		return r->reserved; /* the allocation survived: zeros */
	if (n_garbage) {
		int fd = open(r->path, O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (pwrite(fd, garbage, n_garbage, (off_t)keep) ==
			    (ssize_t)n_garbage)
				keep += n_garbage;
			close(fd);
		}
	}
	return keep;
}

void env_fault_power_cut(lsm_env *e, uint64_t torn_seed)
{
	struct fault_env *fe = FE(e);
	lsm_env *b = fe->base;
	uint64_t rng = torn_seed;
	struct fault_rec *r, *next;

	pthread_mutex_lock(&fe->mu);
	fe->epoch++;
	/* Nothing happens on a machine without power: until reset, every
	 * mutating operation fails, so that threads still running cannot
	 * write what a real crash would have stopped. */
	fe->is_dead = true;
	/* Close the base handles first: whatever they still buffer lands in
	 * the files now and is truncated away below, so it cannot appear
	 * later. */
	for (struct fault_wfile *f = fe->wfiles; f; f = f->next) {
		if (f->inner) {
			wfile_close(f->inner);
			f->inner = NULL;
		}
	}
	/* Names never made durable vanish. */
	for (r = fe->recs; r; r = next) {
		next = r->next;
		if (!r->durable_path) {
			b->ops->remove_file(b, r->path);
			rec_detach_locked(fe, r);
		}
	}
	/* Contents roll back; undurable renames roll back. */
	for (r = fe->recs; r; r = r->next) {
		uint64_t len = cut_file_locked(r, &rng, torn_seed != 0);
		if (strcmp(r->path, r->durable_path) != 0 &&
		    b->ops->rename_file(b, r->path, r->durable_path) == 0) {
			char *p = strdup(r->durable_path);
			if (p) {
				free(r->path);
				r->path = p;
			}
		}
		fe->space_used -= r->appended;
		r->appended = r->flushed = r->synced = len;
		r->reserved = 0;
		fe->space_used += len;
	}
	/* Files replaced by undurable renames come back. */
	while (fe->backups) {
		struct fault_backup *bk = fe->backups;
		struct env_wfile *w;
		if (b->ops->new_wfile(b, bk->path, &w) == 0) {
			wfile_append(w, bk->data, bk->len);
			wfile_sync(w);
			wfile_close(w);
		}
		backup_unlink_free(&fe->backups);
	}
	pthread_mutex_unlock(&fe->mu);
	lsm_err_clear();
}

/* --- control ---------------------------------------------------------- */

lsm_env *env_fault_new(lsm_env *base)
{
	struct fault_env *fe = calloc(1, sizeof(*fe));
	if (!fe)
		return NULL;
	if (pthread_mutex_init(&fe->mu, NULL) != 0) {
		free(fe);
		return NULL;
	}
	fe->env.ops = &fault_ops;
	fe->base = base;
	return &fe->env;
}

void env_fault_free(lsm_env *e)
{
	struct fault_env *fe;
	if (!e)
		return;
	fe = FE(e);
	while (fe->recs) {
		struct fault_rec *r = fe->recs;
		fe->recs = r->next;
		rec_free(r);
	}
	while (fe->backups)
		backup_unlink_free(&fe->backups);
	pthread_mutex_destroy(&fe->mu);
	free(fe);
}

void env_fault_fail_nth(lsm_env *e, uint64_t n, int err, bool sticky)
{
	struct fault_env *fe = FE(e);
	pthread_mutex_lock(&fe->mu);
	fe->fail_at = n == 0 ? 0 : fe->n_ops + n;
	fe->fail_err = err;
	fe->is_sticky = sticky;
	fe->is_failing = false;
	pthread_mutex_unlock(&fe->mu);
}

void env_fault_set_space_limit(lsm_env *e, uint64_t bytes)
{
	struct fault_env *fe = FE(e);
	pthread_mutex_lock(&fe->mu);
	fe->space_limit = bytes;
	pthread_mutex_unlock(&fe->mu);
}

void env_fault_reset(lsm_env *e)
{
	struct fault_env *fe = FE(e);
	pthread_mutex_lock(&fe->mu);
	fe->fail_at = 0;
	fe->is_sticky = false;
	fe->is_failing = false;
	fe->is_dead = false;
	fe->space_limit = 0;
	pthread_mutex_unlock(&fe->mu);
}

uint64_t env_fault_op_count(lsm_env *e)
{
	struct fault_env *fe = FE(e);
	uint64_t n;
	pthread_mutex_lock(&fe->mu);
	n = fe->n_ops;
	pthread_mutex_unlock(&fe->mu);
	return n;
}
