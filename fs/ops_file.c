/*
 * ops_file.c - create, open, read, write, release, fsync,
 * fallocate, lseek (SEEK_DATA/SEEK_HOLE), copy_file_range; and the data
 * side of truncate.
 *
 * Why: file data is stored as "B" ino block-index keys of FS_BLOCK_SIZE
 * bytes, an absent block being a hole. A write is one batch holding the
 * blocks it touches and the updated inode record (size, mtime, ctime), so
 * a crash never shows new data with an old size or the reverse.
 *
 * Invariants:
 *  1. No stored byte lies at or beyond the file size: the block holding
 *     EOF is stored only up to EOF, truncation trims it, and writes store
 *     max(old length, end of write) within the block. A short block reads
 *     as zeros after its stored bytes.
 *  2. Writes, truncates, fallocate and the read-modify-write of partial
 *     blocks run under e->mu; reads take e->mu only to read the size.
 *  3. Open handles carry the entry (fi->fh) with one reference and one
 *     count in e->nopen, dropped at release.
 *  4. No file descriptor is held per file: all data goes through the
 *     engine.
 *  5. Snapshot files (snap.c) open read-only only (else EROFS); while
 *     open, e->snap holds a reference on their snapshot and reads go
 *     through its handle, so they keep working after the snapshot is
 *     deleted. write, fallocate and copy_file_range into them: EROFS.
 *
 * Thread safety: any loop thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snap.h"

/* Largest file offset: block indexes must fit comfortably in a u64. */
#define FS_MAX_FILE_SIZE ((uint64_t)INT64_MAX)

static struct inode_ent *fh_ent(struct fuse_file_info *fi)
{
	return (struct inode_ent *)(uintptr_t)fi->fh;
}

/* Reads the stored block (len <= FS_BLOCK_SIZE) into blk; 0 bytes for a
 * hole. */
static int block_get(struct lsmfs *fs, uint64_t ino, uint64_t idx, uint8_t *blk,
		     size_t *len)
{
	uint8_t key[KEY_MAX_LEN];
	size_t klen = key_block(key, ino, idx), vlen;
	int rc;

	rc = lsm_get_into(fs->db, NULL, key, klen, blk, FS_BLOCK_SIZE, &vlen);
	if (rc == LSM_E_NOTFOUND) {
		*len = 0;
		return 0;
	}
	if (rc)
		return rc;
	*len = vlen > FS_BLOCK_SIZE ? FS_BLOCK_SIZE : vlen;
	return 0;
}

static int block_put(lsm_batch *b, uint64_t ino, uint64_t idx, const void *data,
		     size_t len)
{
	uint8_t key[KEY_MAX_LEN];
	size_t klen = key_block(key, ino, idx);

	return lsm_batch_put(b, key, klen, data, len);
}

/* Zeroes [from, to) inside block idx (a partial block), keeping its
 * stored length. */
static int block_zero_range(struct lsmfs *fs, lsm_batch *b, uint64_t ino,
			    uint64_t idx, size_t from, size_t to)
{
	uint8_t blk[FS_BLOCK_SIZE];
	size_t len;
	int rc;

	rc = block_get(fs, ino, idx, blk, &len);
	if (rc || len <= from)
		return rc;
	if (to > len)
		to = len;
	memset(blk + from, 0, to - from);
	return block_put(b, ino, idx, blk, len);
}

int file_truncate_batch(struct lsmfs *fs, lsm_batch *b, uint64_t ino,
			uint64_t old_size, uint64_t new_size)
{
	uint8_t blk[FS_BLOCK_SIZE];
	uint64_t keep = new_size % FS_BLOCK_SIZE;
	size_t len;
	int rc;

	if (new_size >= old_size)
		return 0;
	rc = fs_batch_drop_blocks(
		b, ino, (new_size + FS_BLOCK_SIZE - 1) / FS_BLOCK_SIZE,
		(old_size + FS_BLOCK_SIZE - 1) / FS_BLOCK_SIZE);
	if (rc || keep == 0)
		return rc;
	rc = block_get(fs, ino, new_size / FS_BLOCK_SIZE, blk, &len);
	if (rc || len <= keep)
		return rc;
	return block_put(b, ino, new_size / FS_BLOCK_SIZE, blk, keep);
}

/* Writes [off, off + size) of e's file (e->mu held, record loaded). */
static int write_locked(struct lsmfs *fs, struct inode_ent *e, const char *buf,
			size_t size, uint64_t off)
{
	uint8_t blk[FS_BLOCK_SIZE];
	struct lsmfs_inode in = e->in;
	uint64_t end = off + size, idx;
	lsm_batch *b;
	int rc = 0;

	if (size == 0)
		return 0;
	if (off > FS_MAX_FILE_SIZE || size > FS_MAX_FILE_SIZE - off)
		return -EFBIG;
	b = lsm_batch_new();
	if (!b)
		return -ENOMEM;
	for (idx = off / FS_BLOCK_SIZE; idx <= (end - 1) / FS_BLOCK_SIZE;
	     idx++) {
		uint64_t bstart = idx * FS_BLOCK_SIZE;
		size_t s = (size_t)((off > bstart ? off : bstart) - bstart);
		size_t t = (size_t)((end < bstart + FS_BLOCK_SIZE
					     ? end
					     : bstart + FS_BLOCK_SIZE) -
				    bstart);
		const char *src = buf + (bstart + s - off);
		size_t len;

		if (s == 0 && t == FS_BLOCK_SIZE) {
			rc = block_put(b, e->ino, idx, src, FS_BLOCK_SIZE);
		} else {
			rc = block_get(fs, e->ino, idx, blk, &len);
			if (rc)
				break;
			if (len < s)
				memset(blk + len, 0, s - len);
			memcpy(blk + s, src, t - s);
			rc = block_put(b, e->ino, idx, blk, len > t ? len : t);
		}
		if (rc)
			break;
	}
	if (!rc) {
		if (end > in.size)
			in.size = end;
		/* With the writeback cache the kernel sets mtime and ctime
		 * at write(2) and sends them in a SETATTR; pages may come
		 * later, and stamping them here would store a time stat
		 * never showed. */
		if (!fs->writeback) {
			inode_now(&in.mtime);
			in.ctime = in.mtime;
		}
		rc = fs_batch_put_inode(b, e->ino, &in, NULL, 0);
	}
	if (!rc)
		rc = lsm_write(fs->db, b, 0);
	if (!rc)
		ient_store_locked(e, &in, NULL, 0);
	lsm_batch_free(b);
	return rc;
}

/* Size of the open file e, loading the record if needed, and the handle
 * its data is read at (NULL for a live file). */
static int file_size(struct lsmfs *fs, struct inode_ent *e, uint64_t *size,
		     const lsm_snapshot **snap)
{
	const lsm_snapshot *s = NULL;
	int rc;

	pthread_mutex_lock(&e->mu);
	if (node_is_live(e->ino)) {
		rc = ient_load_locked(e, fs->db);
	} else if (e->snap) {
		s = snap_handle(e->snap);
		rc = ient_load_at_locked(e, fs->db, s);
	} else {
		rc = -EBADF; /* not opened through snap_open_ent */
	}
	if (!rc) {
		*size = e->in.size;
		*snap = s;
	}
	pthread_mutex_unlock(&e->mu);
	return rc;
}

static int open_ent(struct lsmfs *fs, struct inode_ent *e,
		    struct fuse_file_info *fi)
{
	int rc;

	pthread_mutex_lock(&e->mu);
	rc = ient_load_locked(e, fs->db);
	if (!rc && S_ISDIR(e->in.mode))
		rc = -EISDIR;
	if (!rc)
		e->nopen++;
	pthread_mutex_unlock(&e->mu);
	if (rc)
		return rc;
	fi->fh = (uintptr_t)e;
	fi->keep_cache = fs->opts->keep_cache ? 1 : 0;
	return 0;
}

/* Opens snapshot node e read-only: the handle takes a reference on the
 * snapshot (kept in e->snap while any handle is open). */
static int snap_open_ent(struct lsmfs *fs, struct inode_ent *e,
			 struct fuse_file_info *fi)
{
	struct fs_view v;
	int rc;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		return -EROFS;
	rc = snap_view_get(fs, e->ino, &v);
	if (rc)
		return rc;
	pthread_mutex_lock(&e->mu);
	rc = ient_load_at_locked(e, fs->db, v.snap);
	if (!rc && S_ISDIR(e->in.mode))
		rc = -EISDIR;
	if (!rc) {
		if (e->nopen++ == 0) {
			e->snap = v.se; /* the view's reference moves here */
			fs_view_live(&v);
		}
	}
	pthread_mutex_unlock(&e->mu);
	snap_view_put(fs, &v);
	if (rc)
		return rc;
	fi->fh = (uintptr_t)e;
	fi->keep_cache = 1; /* snapshot data never changes */
	return 0;
}

static void close_ent(struct lsmfs *fs, struct inode_ent *e)
{
	struct snap_ent *se = NULL;
	int rc = 0;

	pthread_mutex_lock(&e->mu);
	if (node_is_live(e->ino)) {
		rc = orphan_release_locked(fs, e);
	} else if (e->nopen > 0 && --e->nopen == 0) {
		se = e->snap;
		e->snap = NULL;
	}
	pthread_mutex_unlock(&e->mu);
	snap_put(fs, se);
	if (rc)
		fs_log(fs, LOG_ERR, "release of inode %llu: %s",
		       (unsigned long long)e->ino, lsm_strerror(rc));
	itable_put(fs->itab, e);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	struct fuse_entry_param ep;
	struct inode_ent *child = NULL;
	int rc;

	rc = dir_make_node(fs, req, parent, name, S_IFREG | (mode & 07777), 0,
			   NULL, true, &ep, &child);
	if (rc == -EEXIST && !(fi->flags & O_EXCL) &&
	    !snapdir_is_name(parent, name)) {
		/* Lost a race with another creator: open what is there. */
		struct fs_view live;

		fs_view_live(&live);
		rc = dir_lookup_entry(fs, &live, parent, name, &ep, &child);
		if (!rc) {
			rc = open_ent(fs, child, fi);
			if (rc) {
				itable_forget(fs->itab, child->ino, 1);
				itable_put(fs->itab, child);
			}
		}
	} else if (!rc) {
		fi->fh = (uintptr_t)child;
		fi->keep_cache = fs->opts->keep_cache ? 1 : 0;
	}
	if (rc) {
		fuse_reply_err(req, fs_errno(rc));
		return;
	}
	if (fuse_reply_create(req, &ep, fi) == -ENOENT) {
		/* interrupted: the kernel never saw the handle */
		itable_forget(fs->itab, child->ino, 1);
		close_ent(fs, child);
	}
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	struct inode_ent *e = itable_get(fs->itab, ino);
	int rc;

	if (!e) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (node_is_live(ino))
		rc = open_ent(fs, e, fi);
	else if (ino == NODE_SNAPDIR)
		rc = -EISDIR;
	else
		rc = snap_open_ent(fs, e, fi);
	if (rc) {
		itable_put(fs->itab, e);
		fuse_reply_err(req, fs_errno(rc));
		return;
	}
	if (fuse_reply_open(req, fi) == -ENOENT)
		close_ent(fs, e);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	struct inode_ent *e = fh_ent(fi);
	const lsm_snapshot *snap;
	uint64_t fsize;
	char *buf;
	size_t n;
	int rc;

	(void)ino;
	rc = file_size(fs, e, &fsize, &snap);
	if (rc) {
		fuse_reply_err(req, fs_errno(rc));
		return;
	}
	if (off < 0 || (uint64_t)off >= fsize || size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	n = fsize - (uint64_t)off < size ? (size_t)(fsize - (uint64_t)off)
					 : size;
	buf = malloc(n);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = fs_read_data(fs, snap, node_ino(e->ino), (uint64_t)off, n, buf);
	if (rc)
		fuse_reply_err(req, fs_errno(rc));
	else
		fuse_reply_buf(req, buf, n);
	free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	struct inode_ent *e = fh_ent(fi);
	int rc;

	(void)ino;
	if (!node_is_live(e->ino)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	rc = space_admit(fs, size);
	if (rc) {
		fuse_reply_err(req, fs_errno(rc));
		return;
	}
	pthread_mutex_lock(&e->mu);
	rc = ient_load_locked(e, fs->db);
	if (!rc)
		rc = write_locked(fs, e, buf, size, (uint64_t)off);
	pthread_mutex_unlock(&e->mu);
	if (rc)
		fuse_reply_err(req, fs_errno(rc));
	else
		fuse_reply_write(req, size);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct lsmfs *fs = fuse_req_userdata(req);

	(void)ino;
	close_ent(fs, fh_ent(fi));
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	struct lsmfs *fs = fuse_req_userdata(req);

	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, fs_errno(lsm_sync(fs->db)));
}

static int punch_locked(struct lsmfs *fs, struct inode_ent *e, lsm_batch *b,
			uint64_t off, uint64_t end)
{
	uint64_t first_whole = (off + FS_BLOCK_SIZE - 1) / FS_BLOCK_SIZE;
	uint64_t end_whole = end / FS_BLOCK_SIZE;
	uint64_t head = off / FS_BLOCK_SIZE, tail = (end - 1) / FS_BLOCK_SIZE;
	int rc;

	rc = fs_batch_drop_blocks(b, e->ino, first_whole, end_whole);
	if (rc)
		return rc;
	if (off % FS_BLOCK_SIZE) {
		uint64_t bstart = head * FS_BLOCK_SIZE;
		uint64_t to = end < bstart + FS_BLOCK_SIZE
				      ? end
				      : bstart + FS_BLOCK_SIZE;

		rc = block_zero_range(fs, b, e->ino, head,
				      (size_t)(off - bstart),
				      (size_t)(to - bstart));
		if (rc)
			return rc;
	}
	if (end % FS_BLOCK_SIZE && !(tail == head && off % FS_BLOCK_SIZE)) {
		uint64_t bstart = tail * FS_BLOCK_SIZE;
		uint64_t from = off > bstart ? off : bstart;

		rc = block_zero_range(fs, b, e->ino, tail,
				      (size_t)(from - bstart),
				      (size_t)(end - bstart));
	}
	return rc;
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
			 off_t len, struct fuse_file_info *fi)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	struct inode_ent *e = fh_ent(fi);
	struct lsmfs_inode in;
	lsm_batch *b = NULL;
	uint64_t end;
	int rc;

	(void)ino;
	if (!node_is_live(e->ino)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE) ||
	    ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE))) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if ((uint64_t)off > FS_MAX_FILE_SIZE - (uint64_t)len) {
		fuse_reply_err(req, EFBIG);
		return;
	}
	end = (uint64_t)off + (uint64_t)len;
	pthread_mutex_lock(&e->mu);
	rc = ient_load_locked(e, fs->db);
	if (rc)
		goto out_unlock;
	in = e->in;
	if (mode == FALLOC_FL_KEEP_SIZE || (mode == 0 && end <= in.size))
		goto out_unlock; /* blocks are allocated on write */
	if (mode == 0) {
		rc = space_admit(fs, 0); /* grows the size: an add */
		if (rc)
			goto out_unlock;
	}
	b = lsm_batch_new();
	if (!b) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	inode_now(&in.ctime);
	if (mode == 0) {
		in.size = end;
		in.mtime = in.ctime;
	} else {
		if (end > in.size)
			end = in.size;
		if ((uint64_t)off < end) {
			rc = punch_locked(fs, e, b, (uint64_t)off, end);
			in.mtime = in.ctime;
		}
	}
	if (!rc)
		rc = fs_batch_put_inode(b, e->ino, &in, NULL, 0);
	if (!rc)
		rc = lsm_write(fs->db, b, 0);
	if (!rc)
		ient_store_locked(e, &in, NULL, 0);
	if (!rc && mode != 0)
		space_freed(fs, e->ino);
out_unlock:
	pthread_mutex_unlock(&e->mu);
	lsm_batch_free(b);
	fuse_reply_err(req, fs_errno(rc));
}

/* SEEK_DATA / SEEK_HOLE over the block keys. */
static int seek_blocks(struct lsmfs *fs, const lsm_snapshot *snap, uint64_t ino,
		       uint64_t size, uint64_t off, int whence, uint64_t *out)
{
	uint8_t lo[KEY_MAX_LEN], hi[KEY_MAX_LEN];
	uint64_t want = off / FS_BLOCK_SIZE, res;
	lsm_iter *it;
	int rc;

	rc = fs_iter_range(fs, snap, lo, key_block(lo, ino, want), hi,
			   key_ino(hi, KEY_BLOCK, ino + 1), &it);
	if (rc)
		return rc;
	res = whence == SEEK_DATA ? size : UINT64_MAX;
	for (lsm_iter_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
		size_t klen;
		const uint8_t *k = lsm_iter_key(it, &klen);
		uint64_t idx;

		if (klen != 17)
			continue;
		idx = key_get_be64(k + 9);
		if (whence == SEEK_DATA) {
			res = idx * FS_BLOCK_SIZE;
			break;
		}
		if (idx != want) {
			res = want * FS_BLOCK_SIZE; /* first missing block */
			break;
		}
		want++;
	}
	rc = lsm_iter_status(it);
	lsm_iter_free(it);
	if (rc)
		return rc;
	if (whence == SEEK_HOLE && res == UINT64_MAX)
		res = want * FS_BLOCK_SIZE;
	if (res < off)
		res = off;
	if (whence == SEEK_DATA && res >= size)
		return -ENXIO;
	if (res > size)
		res = size;
	*out = res;
	return 0;
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	struct inode_ent *e = fh_ent(fi);
	const lsm_snapshot *snap;
	uint64_t size, res;
	int rc;

	(void)ino;
	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	rc = file_size(fs, e, &size, &snap);
	if (!rc && (off < 0 || (uint64_t)off >= size))
		rc = -ENXIO;
	if (!rc)
		rc = seek_blocks(fs, snap, node_ino(e->ino), size,
				 (uint64_t)off, whence, &res);
	if (rc)
		fuse_reply_err(req, fs_errno(rc));
	else
		fuse_reply_lseek(req, (off_t)res);
}

#define COPY_CHUNK (1u << 20)
#define COPY_MAX (16u << 20)

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			       off_t off_out, struct fuse_file_info *fi_out,
			       size_t len, int flags)
{
	struct lsmfs *fs = fuse_req_userdata(req);
	struct inode_ent *ein = fh_ent(fi_in), *eout = fh_ent(fi_out);
	const lsm_snapshot *snap;
	size_t done = 0;
	uint64_t isize;
	char *buf;
	int rc;

	(void)ino_in;
	(void)ino_out;
	if (!node_is_live(eout->ino)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (flags != 0 || off_in < 0 || off_out < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (len > COPY_MAX)
		len = COPY_MAX;
	buf = malloc(COPY_CHUNK);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = file_size(fs, ein, &isize, &snap);
	while (!rc && done < len && (uint64_t)off_in + done < isize) {
		size_t n = len - done < COPY_CHUNK ? len - done : COPY_CHUNK;

		if (isize - ((uint64_t)off_in + done) < n)
			n = (size_t)(isize - ((uint64_t)off_in + done));
		rc = space_admit(fs, n);
		if (!rc)
			rc = fs_read_data(fs, snap, node_ino(ein->ino),
					  (uint64_t)off_in + done, n, buf);
		if (rc)
			break;
		pthread_mutex_lock(&eout->mu);
		rc = ient_load_locked(eout, fs->db);
		if (!rc)
			rc = write_locked(fs, eout, buf, n,
					  (uint64_t)off_out + done);
		pthread_mutex_unlock(&eout->mu);
		if (!rc)
			done += n;
	}
	free(buf);
	if (rc && done == 0)
		fuse_reply_err(req, fs_errno(rc));
	else
		fuse_reply_write(req, done);
}

void ops_file_register(struct fuse_lowlevel_ops *ops)
{
	ops->create = op_create;
	ops->open = op_open;
	ops->read = op_read;
	ops->write = op_write;
	/* No flush: the kernel then stops sending FLUSH at every close (a
	 * round trip per close). Nothing needs it: writes are stored as they
	 * arrive, locks are kernel-local, and close still reports write-back
	 * errors, which the kernel checks before it would send FLUSH. */
	ops->release = op_release;
	ops->fsync = op_fsync;
	ops->fallocate = op_fallocate;
	ops->lseek = op_lseek;
	ops->copy_file_range = op_copy_file_range;
}
