/*
 * ops_xattr.c - setxattr, getxattr, listxattr, removexattr.
 *
 * Why: each extended attribute is one "X" ino name key, so get is a point
 * read and list a prefix scan; deleting an inode drops them all with one
 * range deletion. The kernel asks for "security.capability" before every
 * write (to strip capabilities), so its absence is cached per inode.
 *
 * Invariants:
 *  1. A set or remove is one batch with the inode record (ctime), under
 *     e->mu.
 *  2. e->no_caps is set only by a miss observed under e->mu and cleared
 *     by every set of "security.capability" under the same lock, so it is
 *     never stale.
 *  3. Limits (like ext4 + the VFS): name <= 255 bytes (ERANGE), value <=
 *     65536 bytes (E2BIG).
 *  4. Snapshot nodes are read at their snapshot (snap.c); set and remove
 *     on them or on /.snapshots are EROFS; /.snapshots has no xattrs.
 *
 * Thread safety: any loop thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "snap.h"

#define CAPS_NAME "security.capability"

/* The namespaces ext4 stores; any other prefix is EOPNOTSUPP there. */
static bool xattr_namespace_ok(const char *name)
{
	static const char *const ns[] = {"user.", "trusted.", "security.",
					 "system."};
	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++)
		if (strncmp(name, ns[i], strlen(ns[i])) == 0)
			return true;
	return false;
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	size_t name_len = strlen(name), klen, vlen;
	uint8_t key[KEY_MAX_LEN];
	struct inode_ent *e;
	struct lsmfs_inode in;
	lsm_batch *b = NULL;
	bool exists;
	int rc;

	if (!node_is_live(ino)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (name_len == 0 || name_len > FS_NAME_MAX) {
		fuse_reply_err(req, ERANGE);
		return;
	}
	if (size > FS_XATTR_SIZE_MAX) {
		fuse_reply_err(req, E2BIG);
		return;
	}
	if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (!xattr_namespace_ok(name)) {
		fuse_reply_err(req, EOPNOTSUPP); /* as ext4 */
		return;
	}
	rc = space_admit(fs, name_len + size);
	if (rc) {
		fuse_reply_err(req, fs_errno(rc));
		return;
	}
	e = itable_get(fs->itab, ino);
	if (!e) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	klen = key_xattr(key, ino, name, name_len);
	pthread_mutex_lock(&e->mu);
	rc = ient_load_locked(e, fs->db);
	if (rc)
		goto out_unlock;
	rc = lsm_get_into(fs->db, NULL, key, klen, NULL, 0, &vlen);
	if (rc && rc != LSM_E_NOTFOUND)
		goto out_unlock;
	exists = rc == 0;
	rc = 0;
	if ((flags & XATTR_CREATE) && exists) {
		rc = -EEXIST;
		goto out_unlock;
	}
	if ((flags & XATTR_REPLACE) && !exists) {
		rc = -ENODATA;
		goto out_unlock;
	}
	b = lsm_batch_new();
	if (!b) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	in = e->in;
	inode_now(&in.ctime);
	in.flags |= INODE_F_XATTRS;
	rc = lsm_batch_put(b, key, klen, value, size);
	if (!rc)
		rc = fs_batch_put_inode(b, ino, &in, e->target, e->target_len);
	if (!rc)
		rc = lsm_write(fs->db, b, 0);
	if (!rc) {
		ient_store_locked(e, &in, NULL, 0);
		if (strcmp(name, CAPS_NAME) == 0)
			e->no_caps = false;
	}
out_unlock:
	pthread_mutex_unlock(&e->mu);
	itable_put(fs->itab, e);
	lsm_batch_free(b);
	fuse_reply_err(req, fs_errno(rc));
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	size_t name_len = strlen(name), klen, vlen = 0;
	bool is_caps = strcmp(name, CAPS_NAME) == 0;
	struct inode_ent *e = NULL;
	uint8_t key[KEY_MAX_LEN];
	void *val = NULL;
	struct fs_view v;
	int rc;

	if (name_len == 0 || name_len > FS_NAME_MAX) {
		fuse_reply_err(req, ERANGE);
		return;
	}
	if (ino == NODE_SNAPDIR) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	rc = snap_view_get(fs, ino, &v);
	if (rc) {
		fuse_reply_err(req, fs_errno(rc));
		return;
	}
	klen = key_xattr(key, node_ino(ino), name, name_len);
	if (is_caps) {
		e = itable_get(fs->itab, ino);
		if (!e) {
			snap_view_put(fs, &v);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		pthread_mutex_lock(&e->mu);
		if (e->no_caps) {
			pthread_mutex_unlock(&e->mu);
			itable_put(fs->itab, e);
			snap_view_put(fs, &v);
			fuse_reply_err(req, ENODATA);
			return;
		}
	}
	rc = lsm_get(fs->db, v.snap, key, klen, &val, &vlen);
	snap_view_put(fs, &v);
	if (rc == LSM_E_NOTFOUND) {
		rc = -ENODATA;
		if (e)
			e->no_caps = true;
	}
	if (e) {
		pthread_mutex_unlock(&e->mu);
		itable_put(fs->itab, e);
	}
	if (rc)
		fuse_reply_err(req, fs_errno(rc));
	else if (size == 0)
		fuse_reply_xattr(req, vlen);
	else if (vlen > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, vlen);
	lsm_free(val);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	uint8_t lo[KEY_MAX_LEN], hi[KEY_MAX_LEN];
	size_t used = 0, cap = 4096;
	char *buf = malloc(cap);
	struct fs_view v;
	lsm_iter *it;
	int rc = 0;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fs_view_live(&v);
	if (ino == NODE_SNAPDIR)
		goto out; /* no xattrs */
	rc = snap_view_get(fs, ino, &v);
	if (rc)
		goto out;
	rc = fs_iter_range(fs, v.snap, lo,
			   key_ino(lo, KEY_XATTR, node_ino(ino)), hi,
			   key_ino(hi, KEY_XATTR, node_ino(ino) + 1), &it);
	if (rc)
		goto out;
	for (lsm_iter_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
		size_t klen;
		const uint8_t *k = lsm_iter_key(it, &klen);

		if (klen <= 9)
			continue;
		if (used + klen - 9 + 1 > cap) {
			char *nb = realloc(buf, cap * 2 + klen);

			if (!nb) {
				rc = -ENOMEM;
				break;
			}
			buf = nb;
			cap = cap * 2 + klen;
		}
		memcpy(buf + used, k + 9, klen - 9);
		used += klen - 9;
		buf[used++] = '\0';
	}
	if (!rc)
		rc = lsm_iter_status(it);
	lsm_iter_free(it);
out:
	snap_view_put(fs, &v);
	if (rc)
		fuse_reply_err(req, fs_errno(rc));
	else if (size == 0)
		fuse_reply_xattr(req, used);
	else if (used > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	size_t name_len = strlen(name), klen, vlen;
	uint8_t key[KEY_MAX_LEN];
	struct lsmfs_inode in;
	struct inode_ent *e;
	lsm_batch *b = NULL;
	int rc;

	if (!node_is_live(ino)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (name_len == 0 || name_len > FS_NAME_MAX) {
		fuse_reply_err(req, ERANGE);
		return;
	}
	e = itable_get(fs->itab, ino);
	if (!e) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	klen = key_xattr(key, ino, name, name_len);
	pthread_mutex_lock(&e->mu);
	rc = ient_load_locked(e, fs->db);
	if (!rc)
		rc = lsm_get_into(fs->db, NULL, key, klen, NULL, 0, &vlen);
	if (rc == LSM_E_NOTFOUND)
		rc = -ENODATA;
	if (rc)
		goto out_unlock;
	b = lsm_batch_new();
	if (!b) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	in = e->in;
	inode_now(&in.ctime);
	rc = lsm_batch_delete(b, key, klen);
	if (!rc)
		rc = fs_batch_put_inode(b, ino, &in, e->target, e->target_len);
	if (!rc)
		rc = lsm_write(fs->db, b, 0);
	if (!rc) {
		ient_store_locked(e, &in, NULL, 0);
		space_freed(fs, ino);
	}
out_unlock:
	pthread_mutex_unlock(&e->mu);
	itable_put(fs->itab, e);
	lsm_batch_free(b);
	fuse_reply_err(req, fs_errno(rc));
}

void ops_xattr_register(struct fuse_lowlevel_ops *ops)
{
	ops->setxattr = op_setxattr;
	ops->getxattr = op_getxattr;
	ops->listxattr = op_listxattr;
	ops->removexattr = op_removexattr;
}
