/*
 * ops_dir.c - the namespace: lookup, mkdir, mknod, symlink, link, unlink,
 * rmdir, rename, opendir/readdir/readdirplus/releasedir, fsyncdir.
 *
 * Why: a directory is the set of "D" parent-ino name keys, each naming a
 * child ino and its type, so lookup is one point read and readdir one
 * prefix scan. Every change to the namespace is one batch holding the
 * dirents, the inode records whose nlink/times change, and for the last
 * link of a closed file the deletion of all it owns.
 *
 * Invariants:
 *  1. A directory's nlink is 2 + its subdirectories; its record keeps the
 *     parent's ino for "..", updated by a rename that moves it.
 *  2. Every inode whose record a batch rewrites is locked (e->mu, in
 *     ascending ino order through ient_lockset) from before the dirents
 *     are re-checked until the cache is updated. Dirents read before the
 *     locks are re-read under them; a change restarts the operation.
 *  3. A directory handle owns an lsm snapshot; offsets are positions in
 *     that snapshot's listing (1 = ".", 2 = "..", n + 2 = n-th entry), so
 *     every entry appears exactly once however the directory changes.
 *     The handle remembers the key of the last entry returned so the next
 *     sequential call seeks straight to it: O(n) for a whole listing.
 *  4. readdirplus counts a kernel lookup only for entries that fit in the
 *     reply buffer.
 *  5. Snapshots (snap.c): lookups and listings of a snapshot node read
 *     at the snapshot's handle and answer node ids of the same snapshot;
 *     every change to a snapshot node, or into one, is EROFS; in
 *     /.snapshots only mkdir and rmdir (take, delete a snapshot) work.
 *     The live root's ".snapshots" is the snapshot directory: a stored
 *     entry of that name is shadowed (not listed, not reachable), and
 *     creating or renaming onto that name fails with EEXIST.
 *
 * Thread safety: any loop thread; a directory handle has its own mutex
 * (the kernel may issue readdir calls on one handle concurrently).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snap.h"

#define DIRENT_VAL_LEN 9

static int check_name(const char *name)
{
	return strlen(name) > FS_NAME_MAX ? -ENAMETOOLONG : 0;
}

static uint8_t mode_dtype(uint32_t mode)
{
	return (uint8_t)((mode & S_IFMT) >> 12);
}

/* Reads dirent (parent, name): -ENOENT when absent. */
static int dirent_get(struct lsmfs *fs, const lsm_snapshot *snap,
		      uint64_t parent, const char *name, uint64_t *ino,
		      uint8_t *dtype)
{
	uint8_t key[KEY_MAX_LEN], val[DIRENT_VAL_LEN];
	size_t klen = key_dirent(key, parent, name, strlen(name)), vlen;
	int rc;

	rc = lsm_get_into(fs->db, snap, key, klen, val, sizeof(val), &vlen);
	if (rc == LSM_E_NOTFOUND)
		return -ENOENT;
	if (rc)
		return rc;
	if (vlen != DIRENT_VAL_LEN) {
		fs_log(fs, LOG_ERR, "dirent %llu/%s: value of %zu bytes",
		       (unsigned long long)parent, name, vlen);
		return LSM_E_CORRUPT;
	}
	*ino = key_get_be64(val);
	*dtype = val[8];
	if (*ino == 0 || *ino >= NODE_INO_LIMIT) {
		fs_log(fs, LOG_ERR, "dirent %llu/%s: bad inode number %llu",
		       (unsigned long long)parent, name,
		       (unsigned long long)*ino);
		return LSM_E_CORRUPT;
	}
	return 0;
}

static int dirent_put(lsm_batch *b, uint64_t parent, const char *name,
		      uint64_t ino, uint32_t mode)
{
	uint8_t key[KEY_MAX_LEN], val[DIRENT_VAL_LEN];
	size_t klen = key_dirent(key, parent, name, strlen(name));

	key_put_be64(val, ino);
	val[8] = mode_dtype(mode);
	return lsm_batch_put(b, key, klen, val, sizeof(val));
}

static int dirent_del(lsm_batch *b, uint64_t parent, const char *name)
{
	uint8_t key[KEY_MAX_LEN];
	size_t klen = key_dirent(key, parent, name, strlen(name));

	return lsm_batch_delete(b, key, klen);
}

static int dir_is_empty(struct lsmfs *fs, uint64_t ino, bool *empty)
{
	uint8_t lo[KEY_MAX_LEN], hi[KEY_MAX_LEN];
	lsm_iter *it;
	int rc;

	rc = fs_iter_range(fs, NULL, lo, key_ino(lo, KEY_DIRENT, ino), hi,
			   key_ino(hi, KEY_DIRENT, ino + 1), &it);
	if (rc)
		return rc;
	lsm_iter_first(it);
	*empty = !lsm_iter_valid(it);
	rc = lsm_iter_status(it);
	lsm_iter_free(it);
	return rc;
}

int dir_lookup_entry(struct lsmfs *fs, const struct fs_view *v, uint64_t parent,
		     const char *name, struct fuse_entry_param *ep,
		     struct inode_ent **child)
{
	struct inode_ent *ce;
	uint64_t ino;
	uint8_t dtype;
	int rc;

	rc = check_name(name);
	if (!rc)
		rc = dirent_get(fs, v->snap, node_ino(parent), name, &ino,
				&dtype);
	if (rc)
		return rc;
	ce = itable_get(fs->itab, node_make(v->sid, ino));
	if (!ce)
		return -ENOMEM;
	pthread_mutex_lock(&ce->mu);
	rc = ient_load_at_locked(ce, fs->db, v->snap);
	if (!rc) {
		fs_fill_entry(fs, ce->ino, &ce->in, ep);
		itable_lookup_add(fs->itab, ce);
	}
	pthread_mutex_unlock(&ce->mu);
	if (rc) {
		itable_put(fs->itab, ce);
		return rc;
	}
	*child = ce;
	return 0;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	struct inode_ent *ce = NULL;
	struct fuse_entry_param ep;
	struct fs_view v;
	int rc;

	if (parent == NODE_SNAPDIR) {
		rc = snapdir_lookup(fs, name, &ep);
	} else if (snapdir_is_name(parent, name)) {
		snapdir_fill_entry(fs, &ep);
		rc = 0;
	} else {
		rc = snap_view_get(fs, parent, &v);
		if (!rc) {
			rc = dir_lookup_entry(fs, &v, parent, name, &ep, &ce);
			snap_view_put(fs, &v);
		}
	}
	if (rc == -ENOENT && fs->opts->negative_timeout > 0) {
		memset(&ep, 0, sizeof(ep));
		ep.entry_timeout = fs->opts->negative_timeout;
		fuse_reply_entry(req, &ep);
		return;
	}
	if (rc) {
		fuse_reply_err(req, fs_errno(rc));
		return;
	}
	itable_put(fs->itab, ce);
	if (fuse_reply_entry(req, &ep) == -ENOENT)
		itable_forget(fs->itab, ep.ino, 1);
}

/* A name in parent that no change may create: EROFS inside snapshots and
 * /.snapshots, EEXIST for the root's ".snapshots"; else 0. */
static int check_new_name(uint64_t parent, const char *name)
{
	if (!node_is_live(parent))
		return -EROFS;
	if (snapdir_is_name(parent, name))
		return -EEXIST;
	return 0;
}

/* A name in parent that no change may remove or move: EROFS inside
 * snapshots and /.snapshots, and for the root's ".snapshots". */
static int check_old_name(uint64_t parent, const char *name)
{
	if (!node_is_live(parent) || snapdir_is_name(parent, name))
		return -EROFS;
	return 0;
}

int dir_make_node(struct lsmfs *fs, fuse_req_t req, uint64_t parent,
		  const char *name, mode_t mode, dev_t rdev, const char *target,
		  bool is_open, struct fuse_entry_param *ep,
		  struct inode_ent **child)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	size_t target_len = target ? strlen(target) : 0;
	struct lsmfs_inode in, pin;
	struct inode_ent *pe, *ce;
	uint64_t ino, sb_end, cino;
	lsm_batch *b = NULL;
	uint8_t dtype;
	int rc;

	rc = check_new_name(parent, name);
	if (!rc)
		rc = check_name(name);
	if (rc)
		return rc;
	if (target_len > INODE_TARGET_MAX)
		return -ENAMETOOLONG;
	rc = space_admit(fs, strlen(name) + target_len);
	if (rc)
		return rc;
	pe = itable_get(fs->itab, parent);
	if (!pe)
		return -ENOMEM;
	pthread_mutex_lock(&pe->mu);
	rc = ient_load_locked(pe, fs->db);
	if (rc)
		goto out_unlock;
	if (!S_ISDIR(pe->in.mode)) {
		rc = -ENOTDIR;
		goto out_unlock;
	}
	if (pe->in.nlink == 0) {
		rc = -ENOENT; /* removed while open */
		goto out_unlock;
	}
	rc = dirent_get(fs, NULL, parent, name, &cino, &dtype);
	if (rc == 0)
		rc = -EEXIST;
	if (rc != -ENOENT)
		goto out_unlock;
	b = lsm_batch_new();
	if (!b) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	rc = fs_ino_alloc(fs, &ino, &sb_end);
	if (rc)
		goto out_unlock;
	memset(&in, 0, sizeof(in));
	in.mode = (uint32_t)mode;
	in.uid = ctx->uid;
	in.gid = ctx->gid;
	if (pe->in.mode & S_ISGID) {
		in.gid = pe->in.gid;
		if (S_ISDIR(mode))
			in.mode |= S_ISGID;
	}
	in.nlink = S_ISDIR(mode) ? 2 : 1;
	in.size = S_ISLNK(mode) ? target_len : 0;
	in.rdev = (uint64_t)rdev;
	in.parent = S_ISDIR(mode) ? parent : 0;
	inode_now(&in.ctime);
	in.atime = in.mtime = in.ctime;
	pin = pe->in;
	pin.mtime = pin.ctime = in.ctime;
	if (S_ISDIR(mode))
		pin.nlink++;
	rc = fs_batch_put_inode(b, ino, &in, target, target_len);
	if (!rc)
		rc = dirent_put(b, parent, name, ino, in.mode);
	if (!rc)
		rc = fs_batch_put_inode(b, parent, &pin, pe->target,
					pe->target_len);
	if (!rc && sb_end)
		rc = fs_batch_put_super(fs, b, sb_end);
	if (!rc)
		rc = lsm_write(fs->db, b, 0);
	if (rc)
		goto out_unlock;
	if (sb_end)
		fs_ino_persisted(fs, sb_end);
	ient_store_locked(pe, &pin, NULL, 0);
	ce = itable_get(fs->itab, ino);
	if (!ce) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	pthread_mutex_lock(&ce->mu);
	rc = ient_store_locked(ce, &in, target, target_len);
	if (is_open)
		ce->nopen++;
	ce->no_caps = true; /* a new inode has no xattrs */
	itable_lookup_add(fs->itab, ce);
	pthread_mutex_unlock(&ce->mu);
	fs_fill_entry(fs, ino, &in, ep);
	if (is_open) {
		*child = ce;
	} else {
		itable_put(fs->itab, ce);
		*child = NULL;
	}
	rc = 0;
out_unlock:
	pthread_mutex_unlock(&pe->mu);
	itable_put(fs->itab, pe);
	lsm_batch_free(b);
	return rc;
}

static void reply_new_entry(fuse_req_t req, int rc, struct fuse_entry_param *ep)
{
	struct lsmfs *fs = fuse_req_userdata(req);

	if (rc) {
		fuse_reply_err(req, fs_errno(rc));
		return;
	}
	if (fuse_reply_entry(req, ep) == -ENOENT)
		itable_forget(fs->itab, ep->ino, 1);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	struct fuse_entry_param ep;
	struct inode_ent *ce;
	int rc;

	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFIFO:
	case S_IFSOCK:
	case S_IFCHR:
	case S_IFBLK:
		break;
	case 0:
		mode |= S_IFREG;
		break;
	default:
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (!S_ISCHR(mode) && !S_ISBLK(mode))
		rdev = 0;
	rc = dir_make_node(fs, req, parent, name, mode, rdev, NULL, false, &ep,
			   &ce);
	reply_new_entry(req, rc, &ep);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	struct fuse_entry_param ep;
	struct inode_ent *ce;
	int rc;

	if (parent == NODE_SNAPDIR)
		rc = snapdir_mkdir(fs, req, name, &ep);
	else
		rc = dir_make_node(fs, req, parent, name,
				   S_IFDIR | (mode & 07777), 0, NULL, false,
				   &ep, &ce);
	reply_new_entry(req, rc, &ep);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	struct fuse_entry_param ep;
	struct inode_ent *ce;
	int rc;

	rc = dir_make_node(fs, req, parent, name, S_IFLNK | 0777, 0, link,
			   false, &ep, &ce);
	reply_new_entry(req, rc, &ep);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	struct inode_ent *pe, *ce;
	struct fuse_entry_param ep;
	struct ient_lockset ls;
	struct lsmfs_inode pin, cin;
	lsm_batch *b = NULL;
	uint64_t other;
	uint8_t dtype;
	int rc;

	rc = node_is_live(ino) ? check_new_name(newparent, newname) : -EROFS;
	if (!rc)
		rc = check_name(newname);
	if (!rc)
		rc = space_admit(fs, strlen(newname));
	if (rc) {
		fuse_reply_err(req, fs_errno(rc));
		return;
	}
	pe = itable_get(fs->itab, newparent);
	ce = itable_get(fs->itab, ino);
	if (!pe || !ce) {
		rc = -ENOMEM;
		goto out_put;
	}
	ient_lockset_init(&ls);
	ient_lockset_add(&ls, pe);
	ient_lockset_add(&ls, ce);
	ient_lockset_lock(&ls);
	rc = ient_load_locked(pe, fs->db);
	if (!rc)
		rc = ient_load_locked(ce, fs->db);
	if (rc)
		goto out_unlock;
	if (!S_ISDIR(pe->in.mode)) {
		rc = -ENOTDIR;
		goto out_unlock;
	}
	if (S_ISDIR(ce->in.mode)) {
		rc = -EPERM;
		goto out_unlock;
	}
	if (ce->in.nlink == 0 || pe->in.nlink == 0) {
		rc = -ENOENT;
		goto out_unlock;
	}
	rc = dirent_get(fs, NULL, newparent, newname, &other, &dtype);
	if (rc == 0)
		rc = -EEXIST;
	if (rc != -ENOENT)
		goto out_unlock;
	b = lsm_batch_new();
	if (!b) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	pin = pe->in;
	cin = ce->in;
	cin.nlink++;
	inode_now(&cin.ctime);
	pin.mtime = pin.ctime = cin.ctime;
	rc = dirent_put(b, newparent, newname, ino, cin.mode);
	if (!rc)
		rc = fs_batch_put_inode(b, ino, &cin, ce->target,
					ce->target_len);
	if (!rc)
		rc = fs_batch_put_inode(b, newparent, &pin, NULL, 0);
	if (!rc)
		rc = lsm_write(fs->db, b, 0);
	if (!rc) {
		ient_store_locked(pe, &pin, NULL, 0);
		ient_store_locked(ce, &cin, NULL, 0);
		fs_fill_entry(fs, ino, &cin, &ep);
		itable_lookup_add(fs->itab, ce);
	}
out_unlock:
	ient_lockset_unlock(&ls);
out_put:
	lsm_batch_free(b);
	itable_put(fs->itab, pe);
	itable_put(fs->itab, ce);
	reply_new_entry(req, rc, &ep);
}

/* Finds name's child and locks {parent, child}; re-checks the dirent
 * under the locks. On success the caller holds ls and *ce (ref'd). */
static int lock_parent_child(struct lsmfs *fs, struct inode_ent *pe,
			     const char *name, struct ient_lockset *ls,
			     struct inode_ent **ce_out)
{
	for (;;) {
		uint64_t ino, again;
		uint8_t dtype;
		struct inode_ent *ce;
		int rc;

		rc = dirent_get(fs, NULL, pe->ino, name, &ino, &dtype);
		if (rc)
			return rc;
		ce = itable_get(fs->itab, ino);
		if (!ce)
			return -ENOMEM;
		ient_lockset_init(ls);
		ient_lockset_add(ls, pe);
		ient_lockset_add(ls, ce);
		ient_lockset_lock(ls);
		rc = dirent_get(fs, NULL, pe->ino, name, &again, &dtype);
		if (rc == 0 && again == ino) {
			*ce_out = ce;
			return 0;
		}
		ient_lockset_unlock(ls);
		itable_put(fs->itab, ce);
		if (rc && rc != -ENOENT)
			return rc;
	}
}

static void do_remove(fuse_req_t req, fuse_ino_t parent, const char *name,
		      bool is_rmdir)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	struct inode_ent *pe, *ce = NULL;
	struct lsmfs_inode pin, cin;
	struct ient_lockset ls;
	lsm_batch *b = NULL;
	bool empty;
	int rc;

	if (parent == NODE_SNAPDIR)
		rc = is_rmdir ? snapdir_rmdir(fs, req, name) : -EROFS;
	else
		rc = check_old_name(parent, name);
	if (!rc && parent != NODE_SNAPDIR)
		rc = check_name(name);
	if (rc || parent == NODE_SNAPDIR) {
		fuse_reply_err(req, fs_errno(rc));
		return;
	}
	pe = itable_get(fs->itab, parent);
	if (!pe) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = lock_parent_child(fs, pe, name, &ls, &ce);
	if (rc)
		goto out_put;
	rc = ient_load_locked(pe, fs->db);
	if (!rc)
		rc = ient_load_locked(ce, fs->db);
	if (rc)
		goto out_unlock;
	if (is_rmdir && !S_ISDIR(ce->in.mode)) {
		rc = -ENOTDIR;
		goto out_unlock;
	}
	if (!is_rmdir && S_ISDIR(ce->in.mode)) {
		rc = -EISDIR;
		goto out_unlock;
	}
	if (is_rmdir) {
		rc = dir_is_empty(fs, ce->ino, &empty);
		if (!rc && !empty)
			rc = -ENOTEMPTY;
		if (rc)
			goto out_unlock;
	}
	b = lsm_batch_new();
	if (!b) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	pin = pe->in;
	cin = ce->in;
	inode_now(&cin.ctime);
	pin.mtime = pin.ctime = cin.ctime;
	if (is_rmdir) {
		pin.nlink--;
		cin.nlink = 0;
	} else {
		cin.nlink--;
	}
	rc = dirent_del(b, parent, name);
	if (!rc)
		rc = fs_batch_put_inode(b, parent, &pin, NULL, 0);
	if (!rc && cin.nlink == 0)
		rc = orphan_unlinked_locked(fs, b, ce, &cin);
	else if (!rc)
		rc = fs_batch_put_inode(b, ce->ino, &cin, ce->target,
					ce->target_len);
	if (!rc)
		rc = lsm_write(fs->db, b, 0);
	if (!rc) {
		ient_store_locked(pe, &pin, NULL, 0);
		if (cin.nlink == 0)
			orphan_unlinked_done_locked(ce, &cin);
		else
			ient_store_locked(ce, &cin, NULL, 0);
		space_freed(fs, ce->ino);
	}
out_unlock:
	ient_lockset_unlock(&ls);
	itable_put(fs->itab, ce);
out_put:
	itable_put(fs->itab, pe);
	lsm_batch_free(b);
	fuse_reply_err(req, fs_errno(rc));
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	do_remove(req, parent, name, false);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	do_remove(req, parent, name, true);
}

/* Computes and writes a rename whose inodes are all locked and loaded.
 * de may be NULL (no target). */
static int rename_locked(struct lsmfs *fs, struct inode_ent *pe,
			 const char *name, struct inode_ent *npe,
			 const char *newname, struct inode_ent *se,
			 struct inode_ent *de, unsigned int flags)
{
	struct lsmfs_inode pin = pe->in, npin = npe->in, sin = se->in, din;
	struct lsmfs_inode *pp = &pin, *np = npe == pe ? &pin : &npin;
	bool s_dir = S_ISDIR(sin.mode), d_dir = false, cross = pe != npe;
	bool drop_de = false;
	struct timespec now;
	lsm_batch *b;
	int rc;

	if (de) {
		din = de->in;
		d_dir = S_ISDIR(din.mode);
	}
	if (flags & RENAME_EXCHANGE) {
		if (!de)
			return -ENOENT;
	} else if (de) {
		bool empty;

		if (flags & RENAME_NOREPLACE)
			return -EEXIST;
		if (s_dir && !d_dir)
			return -ENOTDIR;
		if (!s_dir && d_dir)
			return -EISDIR;
		if (d_dir) {
			rc = dir_is_empty(fs, de->ino, &empty);
			if (rc)
				return rc;
			if (!empty)
				return -ENOTEMPTY;
		}
	}
	b = lsm_batch_new();
	if (!b)
		return -ENOMEM;
	inode_now(&now);
	pp->mtime = pp->ctime = now;
	np->mtime = np->ctime = now;
	sin.ctime = now;
	if (flags & RENAME_EXCHANGE) {
		din.ctime = now;
		rc = dirent_put(b, pe->ino, name, de->ino, din.mode);
		if (!rc)
			rc = dirent_put(b, npe->ino, newname, se->ino,
					sin.mode);
		if (cross && s_dir) {
			pp->nlink--;
			np->nlink++;
			sin.parent = npe->ino;
		}
		if (cross && d_dir) {
			np->nlink--;
			pp->nlink++;
			din.parent = pe->ino;
		}
	} else {
		rc = dirent_del(b, pe->ino, name);
		if (!rc)
			rc = dirent_put(b, npe->ino, newname, se->ino,
					sin.mode);
		if (de) {
			din.ctime = now;
			if (d_dir) {
				din.nlink = 0;
				np->nlink--;
			} else {
				din.nlink--;
			}
			drop_de = din.nlink == 0;
		}
		if (cross && s_dir) {
			pp->nlink--;
			np->nlink++;
			sin.parent = npe->ino;
		}
	}
	if (!rc)
		rc = fs_batch_put_inode(b, pe->ino, &pin, NULL, 0);
	if (!rc && cross)
		rc = fs_batch_put_inode(b, npe->ino, &npin, NULL, 0);
	if (!rc)
		rc = fs_batch_put_inode(b, se->ino, &sin, se->target,
					se->target_len);
	if (!rc && de && drop_de)
		rc = orphan_unlinked_locked(fs, b, de, &din);
	else if (!rc && de)
		rc = fs_batch_put_inode(b, de->ino, &din, de->target,
					de->target_len);
	if (!rc)
		rc = lsm_write(fs->db, b, 0);
	lsm_batch_free(b);
	if (rc)
		return rc;
	ient_store_locked(pe, &pin, NULL, 0);
	if (cross)
		ient_store_locked(npe, &npin, NULL, 0);
	ient_store_locked(se, &sin, NULL, 0);
	if (de && drop_de) {
		orphan_unlinked_done_locked(de, &din);
		space_freed(fs, de->ino);
	} else if (de) {
		ient_store_locked(de, &din, NULL, 0);
	}
	return 0;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	struct inode_ent *pe, *npe, *se = NULL, *de = NULL;
	struct ient_lockset ls;
	int rc;

	if ((flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) ||
	    ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	rc = check_old_name(parent, name);
	if (!rc)
		rc = check_new_name(newparent, newname);
	if (!rc)
		rc = check_name(name);
	if (!rc)
		rc = check_name(newname);
	if (rc) {
		fuse_reply_err(req, fs_errno(rc));
		return;
	}
	pe = itable_get(fs->itab, parent);
	npe = itable_get(fs->itab, newparent);
	if (!pe || !npe) {
		rc = -ENOMEM;
		goto out_put;
	}
	for (bool is_admitted = false;;) {
		uint64_t sino, dino = 0, s2, d2 = 0;
		uint8_t dtype;
		int r2;

		rc = dirent_get(fs, NULL, parent, name, &sino, &dtype);
		if (rc)
			goto out_put;
		rc = dirent_get(fs, NULL, newparent, newname, &dino, &dtype);
		if (rc && rc != -ENOENT)
			goto out_put;
		if (rc == -ENOENT && !is_admitted) {
			/* A new name, nothing replaced: an add. (Raced
			 * changes of the target after this are let through.) */
			r2 = space_admit(fs, strlen(newname));
			if (r2) {
				rc = r2;
				goto out_put;
			}
			is_admitted = true;
		}
		se = itable_get(fs->itab, sino);
		de = rc == 0 ? itable_get(fs->itab, dino) : NULL;
		if (!se || (rc == 0 && !de)) {
			rc = -ENOMEM;
			goto out_put;
		}
		ient_lockset_init(&ls);
		ient_lockset_add(&ls, pe);
		ient_lockset_add(&ls, npe);
		ient_lockset_add(&ls, se);
		ient_lockset_add(&ls, de);
		ient_lockset_lock(&ls);
		rc = dirent_get(fs, NULL, parent, name, &s2, &dtype);
		r2 = dirent_get(fs, NULL, newparent, newname, &d2, &dtype);
		if (rc == 0 && s2 == sino &&
		    ((de && r2 == 0 && d2 == dino) || (!de && r2 == -ENOENT)))
			break;
		ient_lockset_unlock(&ls);
		itable_put(fs->itab, se);
		itable_put(fs->itab, de);
		se = de = NULL;
		if (rc && rc != -ENOENT)
			goto out_put;
		if (r2 && r2 != -ENOENT) {
			rc = r2;
			goto out_put;
		}
	}
	rc = ient_load_locked(pe, fs->db);
	if (!rc)
		rc = ient_load_locked(npe, fs->db);
	if (!rc)
		rc = ient_load_locked(se, fs->db);
	if (!rc && de)
		rc = ient_load_locked(de, fs->db);
	if (!rc && !S_ISDIR(npe->in.mode))
		rc = -ENOTDIR;
	/* Two names of one inode: POSIX says do nothing. */
	if (!rc && se != de)
		rc = rename_locked(fs, pe, name, npe, newname, se, de, flags);
	ient_lockset_unlock(&ls);
out_put:
	itable_put(fs->itab, se);
	itable_put(fs->itab, de);
	itable_put(fs->itab, pe);
	itable_put(fs->itab, npe);
	fuse_reply_err(req, fs_errno(rc));
}

/*
 * Directory handles.
 */
struct dir_handle {
	pthread_mutex_t mu;       /* protects everything below */
	struct inode_ent *e;      /* the directory; one ref (+ one open count
				     for live directories) */
	struct fs_view v;         /* its tree: a snapshot's holds a reference */
	lsm_snapshot *own_snap;   /* live: the listing's snapshot, owned */
	const lsm_snapshot *snap; /* what the listing reads: own_snap or
				     the snapshot's handle */
	uint64_t dotdot;          /* node id for ".." */
	off_t next_off;           /* offset a sequential call will ask for */
	uint8_t last_key[KEY_MAX_LEN]; /* key of the entry before next_off */
	size_t last_key_len;           /* 0: none (restart from the top) */
	/* Every open handle is on fs->dir_handles (fs->dir_handles_mu), so
	 * that the ones the kernel never released (unmount) are freed. */
	struct dir_handle *prev, *next;
};

static void dir_handle_link(struct lsmfs *fs, struct dir_handle *dh)
{
	pthread_mutex_lock(&fs->dir_handles_mu);
	dh->prev = NULL;
	dh->next = fs->dir_handles;
	if (dh->next)
		dh->next->prev = dh;
	fs->dir_handles = dh;
	pthread_mutex_unlock(&fs->dir_handles_mu);
}

static void dir_handle_unlink(struct lsmfs *fs, struct dir_handle *dh)
{
	pthread_mutex_lock(&fs->dir_handles_mu);
	if (dh->prev)
		dh->prev->next = dh->next;
	else if (fs->dir_handles == dh)
		fs->dir_handles = dh->next;
	if (dh->next)
		dh->next->prev = dh->prev;
	dh->prev = dh->next = NULL;
	pthread_mutex_unlock(&fs->dir_handles_mu);
}

/* Undoes what opendir did to e (the open count of a live directory). */
static void dir_close_ent(struct lsmfs *fs, struct inode_ent *e)
{
	int rc = 0;

	if (node_is_live(e->ino)) {
		pthread_mutex_lock(&e->mu);
		rc = orphan_release_locked(fs, e);
		pthread_mutex_unlock(&e->mu);
	}
	if (rc)
		fs_log(fs, LOG_ERR, "releasedir of inode %llu: %s",
		       (unsigned long long)e->ino, lsm_strerror(rc));
	itable_put(fs->itab, e);
}

static void dir_handle_free(struct lsmfs *fs, struct dir_handle *dh)
{
	dir_handle_unlink(fs, dh);
	if (dh->own_snap)
		lsm_snapshot_release(fs->db, dh->own_snap);
	dir_close_ent(fs, dh->e);
	snap_view_put(fs, &dh->v);
	pthread_mutex_destroy(&dh->mu);
	free(dh);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	struct dir_handle *dh;
	struct inode_ent *e = NULL;
	struct fs_view v;
	uint64_t parent;
	int rc;

	if (ino == NODE_SNAPDIR) {
		/* snapdir_readdir needs no handle */
		fi->fh = 0;
		fuse_reply_open(req, fi);
		return;
	}
	rc = snap_view_get(fs, ino, &v);
	if (rc) {
		fuse_reply_err(req, fs_errno(rc));
		return;
	}
	dh = calloc(1, sizeof(*dh));
	if (dh)
		e = itable_get(fs->itab, ino);
	if (!dh || !e) {
		rc = -ENOMEM;
		goto out_fail;
	}
	pthread_mutex_lock(&e->mu);
	rc = ient_load_at_locked(e, fs->db, v.snap);
	if (!rc && !S_ISDIR(e->in.mode))
		rc = -ENOTDIR;
	if (!rc) {
		if (!v.sid)
			e->nopen++;
		parent = e->in.parent ? e->in.parent : node_ino(ino);
		/* a snapshot's root sits in /.snapshots */
		dh->dotdot = v.sid && node_ino(ino) == ROOT_INO
				     ? NODE_SNAPDIR
				     : node_make(v.sid, parent);
	}
	pthread_mutex_unlock(&e->mu);
	if (rc)
		goto out_fail;
	pthread_mutex_init(&dh->mu, NULL);
	dh->e = e;
	dh->v = v;
	if (!v.sid)
		rc = lsm_snapshot_acquire(fs->db, &dh->own_snap);
	dh->snap = v.sid ? v.snap : dh->own_snap;
	if (rc) {
		dir_handle_free(fs, dh);
		fuse_reply_err(req, fs_errno(rc));
		return;
	}
	fi->fh = (uintptr_t)dh;
	dir_handle_link(fs, dh);
	/* A snapshot's directory never changes: the kernel may cache its
	 * listing. */
	fi->cache_readdir = v.sid ? 1 : 0;
	fi->keep_cache = v.sid ? 1 : 0;
	if (fuse_reply_open(req, fi) == -ENOENT)
		dir_handle_free(fs, dh);
	return;
out_fail:
	itable_put(fs->itab, e);
	free(dh);
	snap_view_put(fs, &v);
	fuse_reply_err(req, fs_errno(rc));
}

/* Adds one entry of a readdirplus listing; returns its size (0 with
 * *full set when it does not fit). */
static size_t add_plus(fuse_req_t req, struct lsmfs *fs,
		       const struct fs_view *v, char *buf, size_t room,
		       const char *name, uint64_t node, uint8_t dtype,
		       off_t next, bool *full)
{
	struct fuse_entry_param ep;
	struct inode_ent *ce = NULL;
	size_t n;
	int rc = -ENOENT;

	memset(&ep, 0, sizeof(ep));
	if (strcmp(name, ".") && strcmp(name, ".."))
		ce = itable_get(fs->itab, node);
	if (ce) {
		pthread_mutex_lock(&ce->mu);
		rc = ient_load_at_locked(ce, fs->db, v->snap);
		if (!rc)
			fs_fill_entry(fs, node, &ce->in, &ep);
		pthread_mutex_unlock(&ce->mu);
	}
	if (rc) {
		/* "." and "..", or an entry removed since the snapshot: no
		 * inode for the kernel to learn, a plain entry. */
		ep.ino = 0;
		ep.attr.st_ino = node;
		ep.attr.st_mode = (mode_t)dtype << 12;
	}
	n = fuse_add_direntry_plus(req, buf, room, name, &ep, next);
	if (n > room) {
		*full = true;
		n = 0;
	} else if (ce && !rc) {
		itable_lookup_add(fs->itab, ce);
	}
	itable_put(fs->itab, ce);
	return n;
}

size_t dir_add_entry(fuse_req_t req, struct lsmfs *fs, const struct fs_view *v,
		     bool plus, char *buf, size_t room, const char *name,
		     uint64_t node, uint8_t dtype, off_t next, bool *full)
{
	struct stat st;
	size_t n;

	if (plus)
		return add_plus(req, fs, v, buf, room, name, node, dtype, next,
				full);
	memset(&st, 0, sizeof(st));
	st.st_ino = node;
	st.st_mode = (mode_t)dtype << 12;
	n = fuse_add_direntry(req, buf, room, name, &st, next);
	if (n > room) {
		*full = true;
		return 0;
	}
	return n;
}

static int list_dir(fuse_req_t req, struct lsmfs *fs, struct dir_handle *dh,
		    size_t size, off_t off, bool plus, char *buf,
		    size_t *used_out)
{
	uint8_t lo[KEY_MAX_LEN], hi[KEY_MAX_LEN];
	uint64_t node = dh->e->ino, ino = node_ino(node);
	bool is_live_root = node == ROOT_INO;
	char name[FS_NAME_MAX + 1];
	size_t used = 0;
	bool full = false;
	off_t pos = off;
	lsm_iter *it;
	int rc;

	if (pos < 1) {
		used += dir_add_entry(req, fs, &dh->v, plus, buf + used,
				      size - used, ".", node, DT_DIR, 1, &full);
		if (full)
			goto out;
		pos = 1;
	}
	if (pos < 2) {
		used += dir_add_entry(req, fs, &dh->v, plus, buf + used,
				      size - used, "..", dh->dotdot, DT_DIR, 2,
				      &full);
		if (full)
			goto out;
		pos = 2;
	}
	rc = fs_iter_range(fs, dh->snap, lo, key_ino(lo, KEY_DIRENT, ino), hi,
			   key_ino(hi, KEY_DIRENT, ino + 1), &it);
	if (rc)
		return rc;
	if (pos > 2 && pos == dh->next_off && dh->last_key_len) {
		size_t klen;
		const void *k;

		lsm_iter_seek(it, dh->last_key, dh->last_key_len);
		k = lsm_iter_valid(it) ? lsm_iter_key(it, &klen) : NULL;
		if (k && klen == dh->last_key_len &&
		    memcmp(k, dh->last_key, klen) == 0)
			lsm_iter_next(it);
	} else {
		/* A seek elsewhere: count from the top of the snapshot. */
		lsm_iter_first(it);
		for (off_t i = 2; i < pos && lsm_iter_valid(it); i++)
			lsm_iter_next(it);
	}
	for (; lsm_iter_valid(it); lsm_iter_next(it)) {
		size_t klen, vlen, n = 0;
		const uint8_t *k = lsm_iter_key(it, &klen);
		const uint8_t *v = lsm_iter_value(it, &vlen);
		uint64_t child;

		if (klen <= 9 || klen > KEY_MAX_LEN || vlen != DIRENT_VAL_LEN)
			continue; /* malformed: skip rather than fail */
		child = key_get_be64(v);
		if (child == 0 || child >= NODE_INO_LIMIT)
			continue;
		memcpy(name, k + 9, klen - 9);
		name[klen - 9] = '\0';
		/* A stored root entry named ".snapshots" is shadowed by the
		 * snapshot directory: it keeps its position, unlisted. */
		if (!(is_live_root && strcmp(name, SNAPDIR_NAME) == 0)) {
			n = dir_add_entry(req, fs, &dh->v, plus, buf + used,
					  size - used, name,
					  node_make(dh->v.sid, child), v[8],
					  pos + 1, &full);
			if (full)
				break;
		}
		used += n;
		pos++;
		memcpy(dh->last_key, k, klen);
		dh->last_key_len = klen;
		dh->next_off = pos;
	}
	rc = lsm_iter_status(it);
	lsm_iter_free(it);
	if (rc)
		return rc;
out:
	*used_out = used;
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	struct dir_handle *dh = (struct dir_handle *)(uintptr_t)fi->fh;
	size_t used = 0;
	char *buf;
	int rc = 0;

	if (ino == NODE_SNAPDIR) {
		snapdir_readdir(fs, req, size, off, plus);
		return;
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&dh->mu);
	if (off == 0) {
		dh->next_off = 0;
		dh->last_key_len = 0;
	}
	if (off == 0 && dh->own_snap) {
		/* rewinddir sees the live directory as it is now */
		lsm_snapshot *snap;

		rc = lsm_snapshot_acquire(fs->db, &snap);
		if (!rc) {
			lsm_snapshot_release(fs->db, dh->own_snap);
			dh->own_snap = snap;
			dh->snap = snap;
		}
	}
	if (!rc)
		rc = list_dir(req, fs, dh, size, off, plus, buf, &used);
	pthread_mutex_unlock(&dh->mu);
	if (rc)
		fuse_reply_err(req, fs_errno(rc));
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

void dir_handles_release(struct lsmfs *fs)
{
	for (;;) {
		struct dir_handle *dh;
		pthread_mutex_lock(&fs->dir_handles_mu);
		dh = fs->dir_handles;
		pthread_mutex_unlock(&fs->dir_handles_mu);
		if (!dh)
			break;
		dir_handle_free(fs, dh);
	}
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct lsmfs *fs = fuse_req_userdata(req);

	if (ino != NODE_SNAPDIR && fi->fh)
		dir_handle_free(fs, (struct dir_handle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	struct lsmfs *fs = fuse_req_userdata(req);

	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, fs_errno(lsm_sync(fs->db)));
}

void ops_dir_register(struct fuse_lowlevel_ops *ops)
{
	ops->lookup = op_lookup;
	ops->mknod = op_mknod;
	ops->mkdir = op_mkdir;
	ops->symlink = op_symlink;
	ops->link = op_link;
	ops->unlink = op_unlink;
	ops->rmdir = op_rmdir;
	ops->rename = op_rename;
	ops->opendir = op_opendir;
	ops->readdir = op_readdir;
	ops->readdirplus = op_readdirplus;
	ops->releasedir = op_releasedir;
	ops->fsyncdir = op_fsyncdir;
}
