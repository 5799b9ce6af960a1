/*
 * snap.c - named snapshots in the daemon: the snapshot table, the views
 * requests read through, and the read-only /.snapshots directory.
 *
 * Why: the engine keeps named snapshots (a sequence number each, in its
 * manifest) and reads any key as of one through an lsm_snapshot handle.
 * A snapshot of the whole tree therefore costs O(1): /.snapshots/NAME/ is
 * served from the very keys of the live tree, read at the snapshot's
 * sequence number. FUSE node ids tell the trees apart (itable.h): a live
 * inode is its own number (< 2^44), inode `ino` of snapshot `sid` is
 * (sid << 44) | ino, and /.snapshots is the reserved NODE_SNAPDIR. Engine
 * snapshot ids are never reused, so a node id always means the same,
 * immutable inode: st_ino inside snapshots is the node id, stable across
 * remounts, and the kernel may cache snapshot content for as long as it
 * likes.
 *
 * The table maps engine ids to entries holding the engine read handle.
 * Every request on a snapshot node takes a reference for its duration
 * (snap_view_get/put), open files and directories keep theirs until
 * release, and the table holds one while the snapshot is listed. Deleting
 * a snapshot unlists it at once (it can no longer be found by name), while
 * its nodes keep working as long as something holds a reference (an open
 * file in it, a request in flight): a file open in a deleted snapshot
 * stays readable and fstat-able until closed. After the last reference
 * its nodes answer ENOENT.
 *
 * Invariants:
 *  1. t->v holds every entry not yet freed, in ascending id order; a
 *     listed entry has !is_deleted and exactly one table reference;
 *     names of listed entries are unique.
 *  2. An entry's id, name and handle never change; the handle is released
 *     with the last reference only (nref == 0), after it left t->v.
 *  3. Create and delete run one at a time (op_mu) so the table and the
 *     engine agree on which names exist; a snapshot the daemon cannot
 *     serve (id above NODE_SID_MAX, handle failed) is deleted again.
 *  4. /.snapshots is mode 0755 owned by the daemon's uid/gid; only root
 *     and that uid may create or delete snapshots through mkdir/rmdir.
 *     Everything else that would change it or a snapshot is EROFS (the
 *     ops modules check node_is_live before changing anything).
 *  5. Kernel notifications are sent holding no lock: the kernel may hold
 *     the /.snapshots inode lock while waiting for one of our replies.
 *
 * Locks: op_mu (held around the engine's create/delete) before mu (the
 * table; a leaf, never held while calling the engine or taking another
 * lock).
 *
 * Thread safety: any loop thread and the control thread (ctl.c);
 * snap_init/snap_release only while no request runs.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "snap.h"

struct snap_ent {
	uint64_t id; /* the engine's snapshot id, 1..NODE_SID_MAX */
	char name[LSM_SNAPSHOT_NAME_MAX + 1];
	lsm_snapshot *snap; /* engine read handle, owned */
	uint32_t nref;      /* table mu */
	bool is_deleted;    /* table mu: unlisted, waiting for nref 0 */
};

struct snap_table {
	pthread_mutex_t op_mu; /* serializes create and delete */
	pthread_mutex_t mu;    /* protects the fields below */
	struct snap_ent **v;   /* ascending id, deleted ones included */
	size_t n_ents;
	size_t ents_cap;
	size_t n_listed;
	struct timespec mtime; /* of /.snapshots: last create or delete */
	uid_t uid;             /* owner of /.snapshots: the daemon's */
	gid_t gid;
};

/* Index of the first entry with id >= sid (mu held). */
static size_t lower_bound_locked(const struct snap_table *t, uint64_t sid)
{
	size_t lo = 0, hi = t->n_ents;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->v[mid]->id < sid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct snap_ent *find_name_locked(const struct snap_table *t,
					 const char *name)
{
	for (size_t i = 0; i < t->n_ents; i++)
		if (!t->v[i]->is_deleted && strcmp(t->v[i]->name, name) == 0)
			return t->v[i];
	return NULL;
}

static int insert_locked(struct snap_table *t, struct snap_ent *se)
{
	size_t i;

	if (t->n_ents == t->ents_cap) {
		size_t cap = t->ents_cap ? t->ents_cap * 2 : 16;
		struct snap_ent **nv = realloc(t->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		t->v = nv;
		t->ents_cap = cap;
	}
	i = lower_bound_locked(t, se->id);
	memmove(t->v + i + 1, t->v + i, (t->n_ents - i) * sizeof(*t->v));
	t->v[i] = se;
	t->n_ents++;
	return 0;
}

static void remove_locked(struct snap_table *t, struct snap_ent *se)
{
	size_t i = lower_bound_locked(t, se->id);

	if (i < t->n_ents && t->v[i] == se) {
		memmove(t->v + i, t->v + i + 1,
			(t->n_ents - i - 1) * sizeof(*t->v));
		t->n_ents--;
	}
}

static void ent_free(struct lsmfs *fs, struct snap_ent *se)
{
	if (se->snap)
		lsm_snapshot_release(fs->db, se->snap);
	free(se);
}

struct snap_ent *snap_get(struct lsmfs *fs, uint64_t sid)
{
	struct snap_table *t = fs->snaps;
	struct snap_ent *se = NULL;
	size_t i;

	if (!t)
		return NULL;
	pthread_mutex_lock(&t->mu);
	i = lower_bound_locked(t, sid);
	if (i < t->n_ents && t->v[i]->id == sid) {
		se = t->v[i];
		se->nref++;
	}
	pthread_mutex_unlock(&t->mu);
	return se;
}

void snap_put(struct lsmfs *fs, struct snap_ent *se)
{
	struct snap_table *t = fs->snaps;
	bool is_last;

	if (!se)
		return;
	pthread_mutex_lock(&t->mu);
	is_last = --se->nref == 0;
	if (is_last)
		remove_locked(t, se);
	pthread_mutex_unlock(&t->mu);
	if (is_last)
		ent_free(fs, se);
}

const lsm_snapshot *snap_handle(const struct snap_ent *se)
{
	return se->snap;
}

int snap_view_get(struct lsmfs *fs, uint64_t node, struct fs_view *v)
{
	struct snap_ent *se;

	fs_view_live(v);
	if (node == NODE_SNAPDIR)
		return -ENOENT; /* not a tree: callers handle it first */
	if (node_sid(node) == 0)
		return 0;
	se = snap_get(fs, node_sid(node));
	if (!se)
		return -ENOENT; /* the snapshot was deleted */
	v->se = se;
	v->snap = se->snap;
	v->sid = se->id;
	return 0;
}

void snap_view_put(struct lsmfs *fs, struct fs_view *v)
{
	snap_put(fs, v->se);
	fs_view_live(v);
}

static int check_name(const char *name)
{
	size_t len = strlen(name);

	if (len > FS_NAME_MAX)
		return -ENAMETOOLONG;
	if (len == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
	    strchr(name, '/'))
		return -EINVAL;
	return 0;
}

/* The kernel forgets what it cached about /.snapshots/NAME (a negative
 * entry, or a deleted snapshot) and the attributes of /.snapshots. */
static void notify_kernel_of(struct lsmfs *fs, const char *name)
{
	struct fuse_session *se = fs->se;

	if (!se)
		return;
	/* -ENOENT only means the kernel had nothing cached. */
	(void)fuse_lowlevel_notify_inval_entry(se, NODE_SNAPDIR, name,
					       strlen(name));
	(void)fuse_lowlevel_notify_inval_inode(se, NODE_SNAPDIR, -1, 0);
}

/* Maps an engine status to -errno (callers outside fs/ get errnos). */
static int to_errno(int rc)
{
	return rc ? -fs_errno(rc) : 0;
}

int snap_create(struct lsmfs *fs, const char *name, lsm_snapshot_info *info,
		bool notify_kernel)
{
	struct snap_table *t = fs->snaps;
	lsm_snapshot_info inf;
	struct snap_ent *se;
	int rc, r2;

	rc = check_name(name);
	if (rc)
		return rc;
	se = calloc(1, sizeof(*se));
	if (!se)
		return -ENOMEM;
	pthread_mutex_lock(&t->op_mu);
	rc = lsm_snapshot_create(fs->db, name, &inf);
	if (rc == LSM_E_EXISTS)
		rc = -EEXIST;
	if (rc)
		goto out_unlock;
	if (inf.id == 0 || inf.id > NODE_SID_MAX) {
		fs_log(fs, LOG_ERR,
		       "snapshot \"%s\": id %llu does not fit in a node id; "
		       "deleting it",
		       name, (unsigned long long)inf.id);
		rc = -EOVERFLOW;
		goto out_drop;
	}
	rc = lsm_snapshot_open(fs->db, name, &se->snap);
	if (rc)
		goto out_drop;
	se->id = inf.id;
	memcpy(se->name, name, strlen(name) + 1);
	se->nref = 1; /* the table's */
	pthread_mutex_lock(&t->mu);
	rc = insert_locked(t, se);
	if (!rc) {
		t->n_listed++;
		clock_gettime(CLOCK_REALTIME, &t->mtime);
	}
	pthread_mutex_unlock(&t->mu);
	if (rc)
		goto out_drop;
	pthread_mutex_unlock(&t->op_mu);
	if (notify_kernel)
		notify_kernel_of(fs, name);
	if (info)
		*info = inf;
	return 0;
out_drop:
	/* A snapshot the daemon cannot serve must not stay behind. */
	r2 = lsm_snapshot_delete(fs->db, name);
	if (r2)
		fs_log(fs, LOG_ERR, "snapshot \"%s\": cannot delete it: %s",
		       name, lsm_strerror(r2));
out_unlock:
	pthread_mutex_unlock(&t->op_mu);
	if (se->snap)
		lsm_snapshot_release(fs->db, se->snap);
	free(se);
	return to_errno(rc);
}

int snap_delete(struct lsmfs *fs, const char *name, bool notify_kernel)
{
	struct snap_table *t = fs->snaps;
	struct snap_ent *se = NULL;
	int rc;

	if (strlen(name) > FS_NAME_MAX)
		return -ENAMETOOLONG;
	if (check_name(name))
		return -ENOENT; /* no snapshot can have that name */
	pthread_mutex_lock(&t->op_mu);
	rc = lsm_snapshot_delete(fs->db, name);
	if (rc == LSM_E_NOTFOUND)
		rc = -ENOENT;
	if (!rc) {
		pthread_mutex_lock(&t->mu);
		se = find_name_locked(t, name);
		if (se) {
			se->is_deleted = true;
			t->n_listed--;
		}
		clock_gettime(CLOCK_REALTIME, &t->mtime);
		pthread_mutex_unlock(&t->mu);
		snap_put(fs, se); /* the table's reference */
	}
	pthread_mutex_unlock(&t->op_mu);
	if (!rc && notify_kernel)
		notify_kernel_of(fs, name);
	return to_errno(rc);
}

int snap_init(struct lsmfs *fs)
{
	struct snap_table *t = calloc(1, sizeof(*t));
	lsm_snapshot_info *arr = NULL;
	int64_t newest_ns = -1;
	size_t n = 0, i;
	int rc;

	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->op_mu, NULL);
	pthread_mutex_init(&t->mu, NULL);
	t->uid = getuid();
	t->gid = getgid();
	t->mtime = fs->sb.created;
	fs->snaps = t;
	rc = lsm_snapshot_list(fs->db, 0, &arr, &n);
	if (rc)
		goto out_fail;
	for (i = 0; i < n; i++) {
		struct snap_ent *se;

		if (arr[i].id == 0 || arr[i].id > NODE_SID_MAX ||
		    check_name(arr[i].name)) {
			fs_log(fs, LOG_WARNING,
			       "snapshot \"%s\" (id %llu) cannot be shown "
			       "under /%s: skipped",
			       arr[i].name, (unsigned long long)arr[i].id,
			       SNAPDIR_NAME);
			continue;
		}
		se = calloc(1, sizeof(*se));
		if (!se) {
			rc = -ENOMEM;
			goto out_fail;
		}
		rc = lsm_snapshot_open(fs->db, arr[i].name, &se->snap);
		if (!rc) {
			se->id = arr[i].id;
			memcpy(se->name, arr[i].name, sizeof(se->name));
			se->name[LSM_SNAPSHOT_NAME_MAX] = '\0';
			se->nref = 1;
			rc = insert_locked(t, se);
		}
		if (rc) {
			ent_free(fs, se);
			goto out_fail;
		}
		t->n_listed++;
		if (arr[i].created_ns > newest_ns)
			newest_ns = arr[i].created_ns;
	}
	if (newest_ns >= 0) {
		t->mtime.tv_sec = (time_t)(newest_ns / 1000000000);
		t->mtime.tv_nsec = (long)(newest_ns % 1000000000);
	}
	lsm_free(arr);
	return 0;
out_fail:
	lsm_free(arr);
	snap_release(fs);
	return to_errno(rc);
}

void snap_release(struct lsmfs *fs)
{
	struct snap_table *t = fs->snaps;

	if (!t)
		return;
	for (size_t i = 0; i < t->n_ents; i++)
		ent_free(fs, t->v[i]);
	free(t->v);
	pthread_mutex_destroy(&t->mu);
	pthread_mutex_destroy(&t->op_mu);
	free(t);
	fs->snaps = NULL;
}

/*
 * The /.snapshots directory.
 */
void snapdir_stat(struct lsmfs *fs, struct stat *st)
{
	struct snap_table *t = fs->snaps;

	memset(st, 0, sizeof(*st));
	st->st_ino = NODE_SNAPDIR;
	st->st_mode = S_IFDIR | 0755;
	st->st_uid = t->uid;
	st->st_gid = t->gid;
	st->st_blksize = FS_BLOCK_SIZE;
	pthread_mutex_lock(&t->mu);
	st->st_nlink = 2 + t->n_listed;
	st->st_mtim = t->mtime;
	pthread_mutex_unlock(&t->mu);
	st->st_atim = st->st_ctim = st->st_mtim;
}

void snapdir_fill_entry(struct lsmfs *fs, struct fuse_entry_param *ep)
{
	memset(ep, 0, sizeof(*ep));
	ep->ino = NODE_SNAPDIR;
	snapdir_stat(fs, &ep->attr);
	ep->attr_timeout = fs->opts->attr_timeout;
	ep->entry_timeout = fs->opts->entry_timeout;
}

int snapdir_lookup(struct lsmfs *fs, const char *name,
		   struct fuse_entry_param *ep)
{
	struct snap_table *t = fs->snaps;
	struct inode_ent *e;
	struct snap_ent *se;
	int rc;

	if (strlen(name) > FS_NAME_MAX)
		return -ENAMETOOLONG;
	pthread_mutex_lock(&t->mu);
	se = find_name_locked(t, name);
	if (se)
		se->nref++;
	pthread_mutex_unlock(&t->mu);
	if (!se)
		return -ENOENT;
	e = itable_get(fs->itab, node_make(se->id, ROOT_INO));
	if (!e) {
		rc = -ENOMEM;
		goto out_put;
	}
	pthread_mutex_lock(&e->mu);
	rc = ient_load_at_locked(e, fs->db, se->snap);
	if (!rc) {
		fs_fill_entry(fs, e->ino, &e->in, ep);
		itable_lookup_add(fs->itab, e);
	}
	pthread_mutex_unlock(&e->mu);
	itable_put(fs->itab, e);
out_put:
	snap_put(fs, se);
	return rc;
}

static int check_owner(struct lsmfs *fs, fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	if (ctx->uid != 0 && ctx->uid != fs->snaps->uid)
		return -EPERM;
	return 0;
}

int snapdir_mkdir(struct lsmfs *fs, fuse_req_t req, const char *name,
		  struct fuse_entry_param *ep)
{
	int rc = check_owner(fs, req);

	if (!rc)
		rc = snap_create(fs, name, NULL, false);
	if (!rc)
		rc = snapdir_lookup(fs, name, ep);
	return rc;
}

int snapdir_rmdir(struct lsmfs *fs, fuse_req_t req, const char *name)
{
	int rc = check_owner(fs, req);

	if (!rc)
		rc = snap_delete(fs, name, false);
	return rc;
}

/* References on every listed snapshot with id > after, in id order, in a
 * malloc'd array *out (NULL when there is none) of *n_out: 0, or -ENOMEM
 * (the listing must not silently come back empty). */
static int list_after(struct lsmfs *fs, uint64_t after, struct snap_ent ***out,
		      size_t *n_out)
{
	struct snap_table *t = fs->snaps;
	struct snap_ent **v = NULL;
	size_t n = 0;

	pthread_mutex_lock(&t->mu);
	if (t->n_ents) {
		v = malloc(t->n_ents * sizeof(*v));
		if (!v) {
			pthread_mutex_unlock(&t->mu);
			return -ENOMEM;
		}
	}
	for (size_t i = lower_bound_locked(t, after + 1); v && i < t->n_ents;
	     i++) {
		if (t->v[i]->is_deleted)
			continue;
		t->v[i]->nref++;
		v[n++] = t->v[i];
	}
	pthread_mutex_unlock(&t->mu);
	*out = v;
	*n_out = n;
	return 0;
}

/*
 * Offsets: 1 after ".", 2 after "..", id + 2 after the snapshot with that
 * id. Ids only grow and are never reused, so a listing resumed at any
 * offset shows every snapshot that still exists exactly once, whatever
 * was created or deleted in between; no per-handle state is needed.
 */
void snapdir_readdir(struct lsmfs *fs, fuse_req_t req, size_t size, off_t off,
		     bool plus)
{
	struct snap_ent **v = NULL;
	struct fs_view live;
	size_t used = 0, n = 0, i;
	bool full = false;
	char *buf;

	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fs_view_live(&live);
	if (off < 1)
		used += dir_add_entry(req, fs, &live, plus, buf + used,
				      size - used, ".", NODE_SNAPDIR, DT_DIR, 1,
				      &full);
	if (!full && off < 2)
		used += dir_add_entry(req, fs, &live, plus, buf + used,
				      size - used, "..", ROOT_INO, DT_DIR, 2,
				      &full);
	if (!full &&
	    list_after(fs, off > 2 ? (uint64_t)off - 2 : 0, &v, &n) != 0) {
		free(buf);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (i = 0; i < n && !full; i++) {
		struct fs_view sv = {v[i], v[i]->snap, v[i]->id};

		used += dir_add_entry(req, fs, &sv, plus, buf + used,
				      size - used, v[i]->name,
				      node_make(v[i]->id, ROOT_INO), DT_DIR,
				      (off_t)v[i]->id + 2, &full);
	}
	for (i = 0; i < n; i++)
		snap_put(fs, v[i]);
	free(v);
	fuse_reply_buf(req, buf, used);
	free(buf);
}
