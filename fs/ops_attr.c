/*
 * ops_attr.c - getattr, setattr (chmod, chown, truncate, utimens),
 * readlink, statfs, access, forget; and the helpers every op shares
 * (inode allocation, batch building, block reads, entry replies).
 *
 * Why: attributes live in one record per inode ("I" key), cached in the
 * inode table; a change is a read-modify-write of that record under the
 * inode's lock, committed as one batch with any data it implies (a
 * truncate's range deletion).
 *
 * Invariants:
 *  1. Every change to an inode record happens under e->mu, and the cache
 *     is updated only after lsm_write() succeeded.
 *  2. Inode numbers are never reused: next_ino only grows; the stored
 *     superblock's chunk end is >= every handed-out number once the
 *     batch that used it committed (the batch carries the superblock when
 *     the chunk advanced and it was not yet persisted). At mount the
 *     highest "I" key is also consulted.
 *  3. ctime changes with every setattr.
 *  4. Live inode numbers stay below NODE_INO_LIMIT (2^44 - 1): the node
 *     ids above belong to snapshots and /.snapshots (snap.c). Snapshot
 *     nodes are read at their snapshot; setattr on them is EROFS.
 *
 * Thread safety: any loop thread; alloc_mu guards the allocator only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "snap.h"

int fs_ino_alloc(struct lsmfs *fs, uint64_t *ino, uint64_t *sb_end)
{
	pthread_mutex_lock(&fs->alloc_mu);
	if (fs->next_ino >= NODE_INO_LIMIT) {
		pthread_mutex_unlock(&fs->alloc_mu);
		return -ENOSPC; /* the 44-bit inode number space is used up */
	}
	if (fs->next_ino >= fs->chunk_end)
		fs->chunk_end = fs->next_ino + INO_CHUNK;
	*ino = fs->next_ino++;
	*sb_end = fs->chunk_end > fs->persisted_end ? fs->chunk_end : 0;
	pthread_mutex_unlock(&fs->alloc_mu);
	return 0;
}

void fs_ino_persisted(struct lsmfs *fs, uint64_t sb_end)
{
	pthread_mutex_lock(&fs->alloc_mu);
	if (sb_end > fs->persisted_end)
		fs->persisted_end = sb_end;
	pthread_mutex_unlock(&fs->alloc_mu);
}

int fs_batch_put_super(struct lsmfs *fs, lsm_batch *b, uint64_t sb_end)
{
	struct lsmfs_super sb = fs->sb;
	uint8_t key[1], buf[SB_LEN];

	sb.next_ino = sb_end;
	sb_encode(&sb, buf);
	return lsm_batch_put(b, key, key_super(key), buf, sizeof(buf));
}

int fs_batch_put_inode(lsm_batch *b, uint64_t ino, const struct lsmfs_inode *in,
		       const char *target, size_t target_len)
{
	uint8_t key[KEY_MAX_LEN], buf[INODE_MAX_LEN];
	size_t klen = key_ino(key, KEY_INODE, ino);
	size_t vlen = inode_encode(in, target, target_len, buf);

	return lsm_batch_put(b, key, klen, buf, vlen);
}

int fs_batch_drop_blocks(lsm_batch *b, uint64_t ino, uint64_t first,
			 uint64_t end_idx)
{
	uint8_t k1[KEY_MAX_LEN], k2[KEY_MAX_LEN];
	size_t klen;
	int rc = 0;

	if (end_idx <= first)
		return 0;
	if (end_idx - first <= DROP_POINT_MAX_BLOCKS) {
		for (uint64_t i = first; !rc && i < end_idx; i++) {
			klen = key_block(k1, ino, i);
			rc = lsm_batch_delete(b, k1, klen);
		}
		return rc;
	}
	klen = key_block(k1, ino, first);
	if (end_idx == UINT64_MAX)
		return lsm_batch_delete_range(b, k1, klen, k2,
					      key_ino(k2, KEY_BLOCK, ino + 1));
	return lsm_batch_delete_range(b, k1, klen, k2,
				      key_block(k2, ino, end_idx));
}

int fs_batch_drop_inode(lsm_batch *b, uint64_t ino,
			const struct lsmfs_inode *in)
{
	uint8_t k1[KEY_MAX_LEN], k2[KEY_MAX_LEN];
	size_t klen;
	int rc;

	klen = key_ino(k1, KEY_INODE, ino);
	rc = lsm_batch_delete(b, k1, klen);
	if (rc)
		return rc;
	klen = key_ino(k1, KEY_ORPHAN, ino);
	rc = lsm_batch_delete(b, k1, klen);
	if (rc)
		return rc;
	rc = 0;
	if (!in)
		rc = fs_batch_drop_blocks(b, ino, 0, UINT64_MAX);
	else if (S_ISREG(in->mode))
		rc = fs_batch_drop_blocks(b, ino, 0,
					  (in->size + FS_BLOCK_SIZE - 1) /
						  FS_BLOCK_SIZE);
	if (rc)
		return rc;
	if (in && !(in->flags & INODE_F_XATTRS))
		return 0;
	key_ino(k1, KEY_XATTR, ino);
	key_ino(k2, KEY_XATTR, ino + 1);
	return lsm_batch_delete_range(b, k1, 9, k2, 9);
}

int fs_read_data(struct lsmfs *fs, const lsm_snapshot *snap, uint64_t ino,
		 uint64_t off, size_t size, char *buf)
{
	uint8_t lo[KEY_MAX_LEN], hi[KEY_MAX_LEN];
	uint64_t first, last;
	lsm_iter *it;
	int rc;

	memset(buf, 0, size);
	if (size == 0)
		return 0;
	first = off / FS_BLOCK_SIZE;
	last = (off + size - 1) / FS_BLOCK_SIZE;
	rc = fs_iter_range(fs, snap, lo, key_block(lo, ino, first), hi,
			   key_block(hi, ino, last + 1), &it);
	if (rc)
		return rc;
	for (lsm_iter_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
		size_t klen, vlen;
		const uint8_t *k = lsm_iter_key(it, &klen);
		const uint8_t *v = lsm_iter_value(it, &vlen);
		uint64_t bstart, s, e;

		if (klen != 17)
			continue;
		bstart = key_get_be64(k + 9) * FS_BLOCK_SIZE;
		if (vlen > FS_BLOCK_SIZE)
			vlen = FS_BLOCK_SIZE;
		s = bstart > off ? bstart : off;
		e = bstart + vlen;
		if (e > off + size)
			e = off + size;
		if (e > s)
			memcpy(buf + (s - off), v + (s - bstart), e - s);
	}
	rc = lsm_iter_status(it);
	lsm_iter_free(it);
	return rc;
}

void fs_fill_entry(struct lsmfs *fs, uint64_t ino, const struct lsmfs_inode *in,
		   struct fuse_entry_param *ep)
{
	memset(ep, 0, sizeof(*ep));
	ep->ino = ino;
	ep->generation = 0;
	inode_to_stat(in, ino, &ep->attr);
	ep->attr_timeout = fs->opts->attr_timeout;
	ep->entry_timeout = fs->opts->entry_timeout;
}

/* Loads node's record at its view and runs under e->mu: shared by the
 * read-only ops that work on any node. Returns 0 with *out holding a
 * reference, or an error. */
static int load_node(struct lsmfs *fs, uint64_t node, struct fs_view *v,
		     struct inode_ent **out)
{
	struct inode_ent *e;
	int rc;

	rc = snap_view_get(fs, node, v);
	if (rc)
		return rc;
	e = itable_get(fs->itab, node);
	if (!e) {
		snap_view_put(fs, v);
		return -ENOMEM;
	}
	pthread_mutex_lock(&e->mu);
	rc = ient_load_at_locked(e, fs->db, v->snap);
	if (rc) {
		pthread_mutex_unlock(&e->mu);
		itable_put(fs->itab, e);
		snap_view_put(fs, v);
		return rc;
	}
	*out = e;
	return 0;
}

/* Ends what load_node began. */
static void unload_node(struct lsmfs *fs, struct fs_view *v,
			struct inode_ent *e)
{
	pthread_mutex_unlock(&e->mu);
	itable_put(fs->itab, e);
	snap_view_put(fs, v);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	struct inode_ent *e;
	struct fs_view v;
	struct stat st;
	int rc;

	(void)fi;
	if (ino == NODE_SNAPDIR) {
		snapdir_stat(fs, &st);
		fuse_reply_attr(req, &st, fs->opts->attr_timeout);
		return;
	}
	rc = load_node(fs, ino, &v, &e);
	if (!rc) {
		inode_to_stat(&e->in, ino, &st);
		unload_node(fs, &v, e);
	}
	if (rc)
		fuse_reply_err(req, fs_errno(rc));
	else
		fuse_reply_attr(req, &st, fs->opts->attr_timeout);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	struct inode_ent *e;
	struct lsmfs_inode in;
	struct timespec now;
	lsm_batch *b = NULL;
	bool is_shrink = false;
	struct stat st;
	int rc;

	if (!node_is_live(ino)) {
		fuse_reply_err(req, EROFS); /* a snapshot or /.snapshots */
		return;
	}
	e = itable_get(fs->itab, ino);
	if (!e) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&e->mu);
	rc = ient_load_locked(e, fs->db);
	if (rc)
		goto out_unlock;
	b = lsm_batch_new();
	if (!b) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	in = e->in;
	inode_now(&now);
	if (to_set & FUSE_SET_ATTR_MODE)
		in.mode = (in.mode & S_IFMT) | (attr->st_mode & 07777);
	if (to_set & FUSE_SET_ATTR_UID)
		in.uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		in.gid = attr->st_gid;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (S_ISDIR(in.mode)) {
			rc = -EISDIR;
			goto out_unlock;
		}
		if (!S_ISREG(in.mode) || attr->st_size < 0) {
			rc = -EINVAL;
			goto out_unlock;
		}
		if ((uint64_t)attr->st_size > in.size)
			rc = space_admit(fs, 0); /* grows the size: an add */
		else if ((uint64_t)attr->st_size < in.size)
			is_shrink = true;
		if (!rc)
			rc = file_truncate_batch(fs, b, ino, in.size,
						 (uint64_t)attr->st_size);
		if (rc)
			goto out_unlock;
		/* POSIX: open(O_TRUNC) marks mtime and ctime even when the
		 * size does not change, and the kernel may send that as a
		 * bare size change. */
		in.mtime = now;
		in.size = (uint64_t)attr->st_size;
	}
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		in.atime = now;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		in.atime = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		in.mtime = now;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		in.mtime = attr->st_mtim;
	if (to_set & FUSE_SET_ATTR_CTIME)
		in.ctime = attr->st_ctim;
	else
		in.ctime = now;
	if (e->is_gone) {
		/* The kernel flushing times of an inode deleted since: there
		 * is nothing left to store (ext4 changes the dying inode). */
		e->in = in;
		inode_to_stat(&in, ino, &st);
		goto out_unlock;
	}
	rc = fs_batch_put_inode(b, ino, &in, e->target, e->target_len);
	if (!rc)
		rc = lsm_write(fs->db, b, 0);
	if (!rc) {
		ient_store_locked(e, &in, NULL, 0);
		inode_to_stat(&in, ino, &st);
		if (is_shrink)
			space_freed(fs, ino);
	}
out_unlock:
	pthread_mutex_unlock(&e->mu);
	lsm_batch_free(b);
	itable_put(fs->itab, e);
	(void)fi;
	if (rc)
		fuse_reply_err(req, fs_errno(rc));
	else
		fuse_reply_attr(req, &st, fs->opts->attr_timeout);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	struct inode_ent *e;
	char *target = NULL;
	struct fs_view v;
	int rc;

	rc = ino == NODE_SNAPDIR ? -EINVAL : load_node(fs, ino, &v, &e);
	if (!rc) {
		if (!S_ISLNK(e->in.mode))
			rc = -EINVAL;
		if (!rc) {
			target = strdup(e->target ? e->target : "");
			if (!target)
				rc = -ENOMEM;
		}
		unload_node(fs, &v, e);
	}
	if (rc)
		fuse_reply_err(req, fs_errno(rc));
	else
		fuse_reply_readlink(req, target);
	free(target);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	struct statvfs sv, out;
	uint64_t scale, bfree, bavail;

	(void)ino;
	if (statvfs(fs->opts->store, &sv) != 0) {
		fuse_reply_err(req, errno);
		return;
	}
	memset(&out, 0, sizeof(out));
	scale = sv.f_frsize ? sv.f_frsize : sv.f_bsize;
	out.f_bsize = FS_BLOCK_SIZE;
	out.f_frsize = FS_BLOCK_SIZE;
	out.f_blocks =
		(fsblkcnt_t)((uint64_t)sv.f_blocks * scale / FS_BLOCK_SIZE);
	/* What adds may still use: the reserve is not theirs (space.c). */
	space_statfs(fs, &sv, &bfree, &bavail);
	out.f_bfree = (fsblkcnt_t)(bfree / FS_BLOCK_SIZE);
	out.f_bavail = (fsblkcnt_t)(bavail / FS_BLOCK_SIZE);
	/* Inodes are only bounded by space: report a large pool. */
	pthread_mutex_lock(&fs->alloc_mu);
	out.f_files = (fsfilcnt_t)1 << 32;
	out.f_ffree = out.f_files - (fsfilcnt_t)(fs->next_ino & 0xffffffffu);
	pthread_mutex_unlock(&fs->alloc_mu);
	out.f_favail = out.f_ffree;
	out.f_namemax = FS_NAME_MAX;
	fuse_reply_statfs(req, &out);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	struct inode_ent *e;
	struct fs_view v;
	int rc = 0;

	(void)mask; /* default_permissions: the kernel checked the mode */
	if (ino != NODE_SNAPDIR) {
		rc = load_node(fs, ino, &v, &e);
		if (!rc)
			unload_node(fs, &v, e);
	}
	fuse_reply_err(req, fs_errno(rc));
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct lsmfs *fs = fuse_req_userdata(req);

	itable_forget(fs->itab, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	struct lsmfs *fs = fuse_req_userdata(req);

	for (size_t i = 0; i < count; i++)
		itable_forget(fs->itab, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

void ops_attr_register(struct fuse_lowlevel_ops *ops)
{
	ops->getattr = op_getattr;
	ops->setattr = op_setattr;
	ops->readlink = op_readlink;
	ops->statfs = op_statfs;
	ops->access = op_access;
	ops->forget = op_forget;
	ops->forget_multi = op_forget_multi;
}

int fs_iter_range(struct lsmfs *fs, const lsm_snapshot *snap, const void *lo,
		  size_t lo_len, const void *hi, size_t hi_len, lsm_iter **out)
{
	lsm_iter_options io;
	lsm_iter_options_init(&io);
	io.snapshot = snap;
	io.lower = lo;
	io.lower_len = lo_len;
	io.upper = hi;
	io.upper_len = hi_len;
	return lsm_iter_new(fs->db, &io, out);
}
