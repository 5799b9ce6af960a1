/*
 * snap.h - named snapshots in the daemon: the snapshot table, the views
 * requests read through, and the /.snapshots directory (fs/snap.c).
 * Node ids of snapshot trees are defined in itable.h.
 */
#ifndef LSMFS_SNAP_H
#define LSMFS_SNAP_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fs.h"

/* The name of the snapshot directory in the live root. */
#define SNAPDIR_NAME ".snapshots"

/* True for the root's entry the snapshot directory shadows. */
static inline bool snapdir_is_name(uint64_t parent, const char *name)
{
	return parent == ROOT_INO && strcmp(name, SNAPDIR_NAME) == 0;
}

/* One snapshot the daemon serves (opaque; refcounted). */
struct snap_ent;

/* Loads the engine's named snapshots (after the store is open, before the
 * session starts). Returns 0 or -errno. */
int snap_init(struct lsmfs *fs);
/* Releases every snapshot handle (after the session ended, before the
 * store is closed; handles the kernel never released are dropped). */
void snap_release(struct lsmfs *fs);

/* Validates the name as a directory name (-EINVAL for "", ".", "..",
 * a '/'; -ENAMETOOLONG over 255), creates the engine snapshot
 * (-EEXIST if taken), adds it to the daemon's table; when
 * notify_kernel, invalidates the kernel's cached (negative) entry for
 * /.snapshots/NAME and the attributes of /.snapshots (never pass true
 * from inside a FUSE request on /.snapshots: the kernel holds that
 * directory's lock). Returns 0 or -errno; fills *info if not NULL. */
int snap_create(struct lsmfs *fs, const char *name, lsm_snapshot_info *info,
		bool notify_kernel);
/* -ENOENT if no such snapshot. Same notify rule. */
int snap_delete(struct lsmfs *fs, const char *name, bool notify_kernel);

/* The snapshot with engine id sid with one more reference, or NULL when
 * it does not exist (deleted, and nothing holds it any more). */
struct snap_ent *snap_get(struct lsmfs *fs, uint64_t sid);
/* Drops a reference (se may be NULL); the last one releases the engine's
 * read handle. */
void snap_put(struct lsmfs *fs, struct snap_ent *se);
/* The read handle: valid while the reference is held. */
const lsm_snapshot *snap_handle(const struct snap_ent *se);

/*
 * The tree one request works in: the live tree (se NULL, snap NULL, sid
 * 0) or one snapshot (se holds a reference; snap is its read handle).
 */
struct fs_view {
	struct snap_ent *se;
	const lsm_snapshot *snap;
	uint64_t sid;
};

static inline void fs_view_live(struct fs_view *v)
{
	v->se = NULL;
	v->snap = NULL;
	v->sid = 0;
}

/* The view of node (not NODE_SNAPDIR): 0, or -ENOENT when its snapshot
 * no longer exists. Release with snap_view_put. */
int snap_view_get(struct lsmfs *fs, uint64_t node, struct fs_view *v);
void snap_view_put(struct lsmfs *fs, struct fs_view *v);

/*
 * The /.snapshots directory (node NODE_SNAPDIR), for the ops modules.
 */
/* Its attributes. */
void snapdir_stat(struct lsmfs *fs, struct stat *st);
/* The entry of /.snapshots in the root (no lookup count: it is not in
 * the inode table). */
void snapdir_fill_entry(struct lsmfs *fs, struct fuse_entry_param *ep);
/* /.snapshots/NAME: fills *ep and counts a kernel lookup of the
 * snapshot's root. -ENOENT when there is no such snapshot. */
int snapdir_lookup(struct lsmfs *fs, const char *name,
		   struct fuse_entry_param *ep);
/* mkdir / rmdir in /.snapshots: take or delete a snapshot; only root and
 * the user who mounted (else -EPERM). mkdir fills *ep like a lookup. */
int snapdir_mkdir(struct lsmfs *fs, fuse_req_t req, const char *name,
		  struct fuse_entry_param *ep);
int snapdir_rmdir(struct lsmfs *fs, fuse_req_t req, const char *name);
/* readdir(plus) of /.snapshots at offset off: replies to req. */
void snapdir_readdir(struct lsmfs *fs, fuse_req_t req, size_t size, off_t off,
		     bool plus);

#endif /* LSMFS_SNAP_H */
