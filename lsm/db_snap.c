/*
 * db_snap.c - named snapshots, checkpoints and the store identity.
 *
 * A named snapshot is a sequence number with a name, recorded in the
 * MANIFEST (version/vset.c keeps the list). Compaction treats it like an
 * in-memory snapshot: db_snapshot_seqs_locked() returns both kinds, so
 * every version a named snapshot sees survives until it is deleted.
 *
 * A checkpoint is a directory that opens as a store: hard links to every
 * live SST, a fresh MANIFEST and CURRENT, an empty WAL (the manifest names
 * it as the live log), and a fresh IDENTITY (once opened, the copy is a
 * store of its own). It is durable when lsm_checkpoint returns (its
 * directory and the parent's entry synced); a failed one is removed.
 *
 * Invariants:
 *  1. A named snapshot at sequence s is recorded only after every write
 *     with a sequence <= s is in a synced WAL: after a crash, recovery's
 *     last sequence is >= s, so no later write can reuse a number the
 *     snapshot sees.
 *  2. A checkpoint lists only named snapshots whose sequence is covered by
 *     the data it links (those created before its flush).
 *  3. The IDENTITY file never changes once written; a store without one
 *     (older stores) gets one at open.
 *
 * Thread-safety: every function takes db->mu for the shared state; file
 * links and copies run without it, holding a version reference so that
 * compaction cannot delete the files being linked.
 */
#include "db_int.h"
#include "util/status.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static int check_name(const char *name)
{
	size_t n;
	if (!name)
		return lsm_err(-EINVAL, "snapshot name missing");
	n = strlen(name);
	if (n == 0)
		return lsm_err(-EINVAL, "snapshot name is empty");
	if (n > LSM_SNAPSHOT_NAME_MAX)
		return lsm_err(-EINVAL, "snapshot name longer than %d bytes",
			       LSM_SNAPSHOT_NAME_MAX);
	return 0;
}

/* The checks every change of a named snapshot starts with. */
static int check_change(lsm_db *db, const char *name)
{
	lsm_err_clear();
	if (!db)
		return -EINVAL;
	if (db->opts.read_only)
		return db_refuse_read_only(db);
	return check_name(name);
}

static void fill_info(const struct named_snap *ns, lsm_snapshot_info *info)
{
	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "%s", ns->name);
	info->id = ns->id;
	info->seq = ns->seq;
	info->created_ns = ns->created_ns;
}

int lsm_snapshot_create(lsm_db *db, const char *name, lsm_snapshot_info *info)
{
	struct version_edit e;
	struct named_snap ns;
	struct timespec ts;
	lsm_snapshot *pin;
	uint64_t seq;
	int rc;

	rc = check_change(db, name);
	if (rc)
		return rc;
	/* Pin seq as an in-memory snapshot first: a flush or compaction
	 * that starts before the record is in vs->snaps must already keep
	 * what seq sees. invariant 1: everything up to seq is durable before
	 * the record. */
	rc = lsm_snapshot_acquire(db, &pin);
	if (rc)
		return rc;
	seq = pin->seq;
	rc = lsm_sync(db);
	if (rc) {
		lsm_snapshot_release(db, pin);
		return rc;
	}
	clock_gettime(CLOCK_REALTIME, &ts);

	pthread_mutex_lock(&db->mu);
	if (db->shutting_down) {
		rc = LSM_E_CLOSED;
		goto out;
	}
	if (db->bg_error && db->bg_error != -ENOSPC) {
		rc = db->bg_error;
		goto out;
	}
	if (vset_find_snap(db->vs, name)) {
		rc = lsm_err(LSM_E_EXISTS, "snapshot \"%s\" exists", name);
		goto out;
	}
	ns.name = (char *)name;
	ns.id = db->vs->next_snap_id;
	ns.seq = seq;
	ns.created_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	edit_init(&e);
	rc = edit_add_snap(&e, &ns);
	e.has_next_snap_id = true;
	e.next_snap_id = ns.id + 1;
	if (db->vs->last_seq < seq)
		db->vs->last_seq = seq;
	if (!rc)
		rc = vset_apply(db->vs, &e);
	edit_release(&e);
	if (!rc) {
		if (info)
			fill_info(&ns, info);
		db_log(db, "snapshot \"%s\" (id %llu) at sequence %llu", name,
		       (unsigned long long)ns.id, (unsigned long long)seq);
	}
out:
	pthread_mutex_unlock(&db->mu);
	lsm_snapshot_release(db, pin);
	return rc;
}

int lsm_snapshot_delete(lsm_db *db, const char *name)
{
	struct version_edit e;
	const struct named_snap *ns;
	uint64_t id;
	int rc;

	rc = check_change(db, name);
	if (rc)
		return rc;
	pthread_mutex_lock(&db->mu);
	if (db->shutting_down) {
		rc = LSM_E_CLOSED;
		goto out;
	}
	ns = vset_find_snap(db->vs, name);
	if (!ns) {
		rc = lsm_err(LSM_E_NOTFOUND, "no snapshot \"%s\"", name);
		goto out;
	}
	id = ns->id;
	edit_init(&e);
	rc = edit_delete_snap(&e, id);
	if (!rc)
		rc = vset_apply(db->vs, &e);
	edit_release(&e);
	if (!rc) {
		db_log(db, "snapshot \"%s\" (id %llu) deleted", name,
		       (unsigned long long)id);
		/* What it alone kept goes at the next compaction of its
		 * files; let the pickers look again. */
		bg_schedule_locked(db);
	}
out:
	pthread_mutex_unlock(&db->mu);
	return rc;
}

int lsm_snapshot_list(lsm_db *db, int flags, lsm_snapshot_info **out,
		      size_t *n_out)
{
	lsm_snapshot_info *a;
	uint64_t *seqs = NULL, *bytes = NULL;
	size_t n;
	int rc = 0;

	lsm_err_clear();
	if (!db || !out || !n_out)
		return -EINVAL;
	pthread_mutex_lock(&db->mu);
	n = db->vs->n_snaps;
	a = calloc(n ? n : 1, sizeof(*a));
	seqs = calloc(n ? n : 1, sizeof(*seqs));
	if (!a || !seqs) {
		pthread_mutex_unlock(&db->mu);
		free(a);
		free(seqs);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		fill_info(&db->vs->snaps[i], &a[i]);
		seqs[i] = a[i].seq;
	}
	pthread_mutex_unlock(&db->mu);

	if ((flags & LSM_SNAPSHOT_SPACE) && n) {
		bytes = calloc(n, sizeof(*bytes));
		rc = bytes ? db_snapshot_space(db, seqs, n, bytes) : -ENOMEM;
		for (size_t i = 0; !rc && i < n; i++)
			a[i].exclusive_bytes = bytes[i];
	}
	free(bytes);
	free(seqs);
	if (rc) {
		free(a);
		return rc;
	}
	*out = a;
	*n_out = n;
	return 0;
}

int lsm_snapshot_open(lsm_db *db, const char *name, lsm_snapshot **out)
{
	const struct named_snap *ns;
	lsm_snapshot *s, *at;
	int rc;

	lsm_err_clear();
	if (!db || !out)
		return -EINVAL;
	rc = check_name(name);
	if (rc)
		return rc;
	s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_lock(&db->mu);
	ns = vset_find_snap(db->vs, name);
	if (!ns) {
		pthread_mutex_unlock(&db->mu);
		free(s);
		return lsm_err(LSM_E_NOTFOUND, "no snapshot \"%s\"", name);
	}
	s->seq = ns->seq;
	/* Keep db->snaps in ascending order: insert before the first
	 * handle with a larger sequence. */
	for (at = db->snaps.next; at != &db->snaps && at->seq <= s->seq;
	     at = at->next)
		;
	s->next = at;
	s->prev = at->prev;
	at->prev->next = s;
	at->prev = s;
	pthread_mutex_unlock(&db->mu);
	*out = s;
	return 0;
}

static int cmp_seq(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int db_snapshot_seqs_locked(lsm_db *db, uint64_t **seqs, size_t *n)
{
	size_t cnt = db->vs->n_snaps, i = 0;
	for (lsm_snapshot *s = db->snaps.next; s != &db->snaps; s = s->next)
		cnt++;
	*seqs = NULL;
	*n = 0;
	if (!cnt)
		return 0;
	*seqs = malloc(cnt * sizeof(uint64_t));
	if (!*seqs)
		return -ENOMEM;
	for (lsm_snapshot *s = db->snaps.next; s != &db->snaps; s = s->next)
		(*seqs)[i++] = s->seq;
	for (size_t j = 0; j < db->vs->n_snaps; j++)
		(*seqs)[i++] = db->vs->snaps[j].seq;
	qsort(*seqs, cnt, sizeof(uint64_t), cmp_seq);
	*n = cnt;
	return 0;
}

/* ---- identity ---- */

#define IDENTITY_LEN 32

static int new_identity(char *hex)
{
	uint8_t raw[IDENTITY_LEN / 2];
	size_t got = 0;
	while (got < sizeof(raw)) {
		ssize_t r = getrandom(raw + got, sizeof(raw) - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)r;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

static bool identity_valid(const uint8_t *p, size_t len)
{
	if (len != IDENTITY_LEN + 1 || p[IDENTITY_LEN] != '\n')
		return false;
	for (size_t i = 0; i < IDENTITY_LEN; i++)
		if (!((p[i] >= '0' && p[i] <= '9') ||
		      (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

int db_load_identity(lsm_db *db)
{
	char path[4096], hex[IDENTITY_LEN + 2];
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	snprintf(path, sizeof(path), "%s/IDENTITY", db->dir);
	rc = env_read_file(db->env, path, &buf, &len);
	if (rc == 0) {
		if (!identity_valid(buf, len)) {
			free(buf);
			return LSM_CORRUPT("%s: not a store identity", path);
		}
		memcpy(db->identity, buf, IDENTITY_LEN);
		db->identity[IDENTITY_LEN] = 0;
		free(buf);
		return 0;
	}
	if (rc != -ENOENT)
		return rc;
	if (db->opts.read_only) {
		db->identity[0] = 0; /* an older store: none until written */
		return 0;
	}
	rc = new_identity(hex);
	if (rc)
		return rc;
	memcpy(db->identity, hex, IDENTITY_LEN + 1);
	hex[IDENTITY_LEN] = '\n';
	return env_write_file_atomic(db->env, db->dir, "IDENTITY", hex,
				     IDENTITY_LEN + 1);
}

/* ---- checkpoints ---- */

/* Copies from -> to through the env (the fallback when a hard link
 * cannot cross file systems), synced. */
static int copy_file(lsm_env *env, const char *from, const char *to)
{
	struct env_rfile *r = NULL;
	struct env_wfile *w = NULL;
	uint64_t off = 0, size;
	size_t cap = 1 << 20, got;
	char *buf;
	int rc = env_new_rfile(env, from, &r);
	if (rc)
		return rc;
	size = rfile_size(r);
	buf = malloc(cap);
	rc = buf ? env_new_wfile(env, to, &w) : -ENOMEM;
	while (!rc && off < size) {
		rc = rfile_read(r, off, cap, buf, &got);
		if (!rc && got == 0)
			rc = LSM_CORRUPT("%s: shorter than expected", from);
		if (!rc)
			rc = wfile_append(w, buf, got);
		off += got;
	}
	if (!rc)
		rc = wfile_sync(w);
	if (w) {
		int rc2 = wfile_close(w);
		if (!rc)
			rc = rc2;
	}
	rfile_close(r);
	free(buf);
	if (rc && w)
		env->ops->remove_file(env, to);
	return rc;
}

static int link_one(lsm_db *db, const char *dir, uint64_t num,
		    const char *suffix)
{
	char from[4096], to[4096];
	int rc;
	file_path(from, sizeof(from), db->dir, num, suffix);
	file_path(to, sizeof(to), dir, num, suffix);
	rc = db->env->ops->link_file(db->env, from, to);
	if (rc == -EXDEV || rc == -EPERM || rc == -EMLINK)
		rc = copy_file(db->env, from, to);
	return rc;
}

/* The SSTs and blob files of v (both immutable once listed). */
static int link_version_files(lsm_db *db, const struct version *v,
			      const char *dir)
{
	int rc = 0;
	for (int l = 0; l < LSM_MAX_LEVELS && !rc; l++)
		for (size_t i = 0; i < v->n_files[l] && !rc; i++)
			rc = link_one(db, dir, v->files[l][i]->number, "sst");
	for (size_t i = 0; i < v->n_blobs && !rc; i++)
		rc = link_one(db, dir, v->blobs[i]->number, "blob");
	return rc;
}

/* Removes what a failed checkpoint left in dir, and dir. */
static void remove_checkpoint(lsm_env *env, const char *dir)
{
	char **names, path[4096];
	size_t n;
	if (env->ops->list_dir(env, dir, &names, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
			env->ops->remove_file(env, path);
		}
		env_free_names(names, n);
	}
	env->ops->remove_dir(env, dir);
}

/* Syncs the directory holding path (its new entry must be durable). */
static int sync_parent(lsm_env *env, const char *path)
{
	char parent[4096];
	char *slash;
	snprintf(parent, sizeof(parent), "%s", path);
	while ((slash = strrchr(parent, '/')) && slash[1] == 0 &&
	       slash != parent)
		*slash = 0; /* trailing slashes */
	slash = strrchr(parent, '/');
	if (!slash)
		return env->ops->sync_dir(env, ".");
	if (slash == parent)
		slash[1] = 0; /* "/x" -> "/" */
	else
		*slash = 0;
	return env->ops->sync_dir(env, parent);
}

int lsm_checkpoint(lsm_db *db, const char *dir)
{
	struct version *v;
	struct env_wfile *w = NULL;
	uint64_t covered, manifest_no, log_no;
	char path[4096], hex[IDENTITY_LEN + 2];
	int rc;

	lsm_err_clear();
	if (!db || !dir || !*dir)
		return -EINVAL;
	if (db->opts.read_only)
		return db_refuse_read_only(db);
	if (strlen(dir) > 3800)
		return lsm_err(-ENAMETOOLONG, "checkpoint path too long");
	rc = db->env->ops->file_exists(db->env, dir);
	if (rc < 0)
		return rc;
	if (rc == 1)
		return lsm_err(LSM_E_EXISTS, "%s: exists", dir);
	rc = db->env->ops->make_dir(db->env, dir);
	if (rc)
		return lsm_err(rc, "%s: cannot create: %s", dir, strerror(-rc));

	/* invariant 2: everything up to `covered` is in SSTs after this. */
	covered = atomic_load_explicit(&db->last_seq, memory_order_acquire);
	rc = db_flush_wait(db);
	if (rc) {
		remove_checkpoint(db->env, dir);
		return rc;
	}

	pthread_mutex_lock(&db->mu);
	v = vset_current_ref(db->vs);
	manifest_no = vset_new_file_number(db->vs);
	log_no = vset_new_file_number(db->vs);
	rc = vset_write_manifest_to(db->vs, v, dir, manifest_no, log_no,
				    covered);
	pthread_mutex_unlock(&db->mu);

	if (!rc)
		rc = link_version_files(db, v, dir);
	version_unref(v);
	if (!rc) {
		/* The live WAL the manifest names: empty. */
		file_path(path, sizeof(path), dir, log_no, "log");
		rc = env_new_wfile(db->env, path, &w);
		if (!rc) {
			rc = wfile_sync(w);
			int rc2 = wfile_close(w);
			if (!rc)
				rc = rc2;
		}
	}
	if (!rc)
		rc = new_identity(hex);
	if (!rc) {
		hex[IDENTITY_LEN] = '\n';
		rc = env_write_file_atomic(db->env, dir, "IDENTITY", hex,
					   IDENTITY_LEN + 1);
	}
	if (!rc)
		rc = db->env->ops->sync_dir(db->env, dir);
	if (!rc)
		rc = sync_parent(db->env, dir);
	if (rc) {
		db_log(db, "checkpoint %s failed: %s", dir, lsm_strerror(rc));
		remove_checkpoint(db->env, dir);
		return rc;
	}
	db_log(db, "checkpoint %s (manifest %llu)", dir,
	       (unsigned long long)manifest_no);
	return 0;
}
