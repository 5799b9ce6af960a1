/*
 * orphan.c - files unlinked while still open.
 *
 * Why: POSIX lets an unlinked file live on until its last close. The
 * unlink that drops the last link of an open inode keeps the inode record
 * (nlink 0) and writes an "O" ino key in the same batch; the last release
 * deletes the inode, its blocks, xattrs and the "O" key in one batch. If
 * the daemon dies in between, the next mount sweeps every "O" key.
 *
 * Invariants:
 *  1. An inode with nlink 0 in the store has an "O" key (same batch).
 *  2. Open counts (e->nopen) change only under e->mu, so the decision
 *     "orphan or delete now" and the release that ends an orphan never
 *     race.
 *  3. Deleting an inode is one batch: a point delete of the record and
 *     of the "O" key, and one range deletion each for blocks and xattrs.
 *  4. Live inodes only: a snapshot's node (snap.c) is never deleted, and
 *     the sweep reads the live tree.
 *
 * Thread safety: *_locked functions run under e->mu; orphan_sweep runs
 * before the session starts.
 */
#include <errno.h>
#include <string.h>

#include "fs.h"

int orphan_unlinked_locked(struct lsmfs *fs, lsm_batch *b, struct inode_ent *e,
			   const struct lsmfs_inode *in)
{
	uint8_t key[KEY_MAX_LEN];
	size_t klen;
	int rc;

	(void)fs;
	if (e->nopen == 0)
		return fs_batch_drop_inode(b, e->ino, in);
	rc = fs_batch_put_inode(b, e->ino, in, e->target, e->target_len);
	if (rc)
		return rc;
	klen = key_ino(key, KEY_ORPHAN, e->ino);
	return lsm_batch_put(b, key, klen, "", 0);
}

void orphan_unlinked_done_locked(struct inode_ent *e,
				 const struct lsmfs_inode *in)
{
	if (e->nopen == 0)
		ient_mark_gone_locked(e, in);
	else
		ient_store_locked(e, in, NULL, 0);
}

int orphan_release_locked(struct lsmfs *fs, struct inode_ent *e)
{
	lsm_batch *b;
	int rc;

	if (e->nopen > 0)
		e->nopen--;
	if (e->nopen > 0 || !e->is_loaded || e->in.nlink > 0 || e->is_gone ||
	    !node_is_live(e->ino))
		return 0;
	b = lsm_batch_new();
	if (!b)
		return -ENOMEM;
	rc = fs_batch_drop_inode(b, e->ino, &e->in);
	if (!rc)
		rc = lsm_write(fs->db, b, 0);
	if (!rc) {
		struct lsmfs_inode last = e->in;
		ient_mark_gone_locked(e, &last);
		space_freed(fs, e->ino);
	}
	lsm_batch_free(b);
	return rc;
}

int orphan_sweep(struct lsmfs *fs, uint64_t *n_swept)
{
	uint8_t lo[1] = {KEY_ORPHAN}, hi[1] = {KEY_ORPHAN + 1};
	lsm_iter *it;
	lsm_batch *b;
	uint64_t n = 0;
	int rc;

	rc = fs_iter_range(fs, NULL, lo, 1, hi, 1, &it);
	if (rc)
		return rc;
	b = lsm_batch_new();
	if (!b) {
		lsm_iter_free(it);
		return -ENOMEM;
	}
	for (lsm_iter_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
		size_t klen;
		const uint8_t *k = lsm_iter_key(it, &klen);

		if (klen != 9)
			continue; /* not ours; leave it */
		rc = fs_batch_drop_inode(b, key_get_be64(k + 1), NULL);
		if (rc)
			goto out;
		n++;
	}
	rc = lsm_iter_status(it);
	if (!rc && n)
		rc = lsm_write(fs->db, b, LSM_SYNC);
out:
	lsm_batch_free(b);
	lsm_iter_free(it);
	if (!rc)
		*n_swept = n;
	return rc;
}
