/*
 * itable.h - the inode table: kernel lookup counts, open counts,
 * per-inode locks and cached inode records, keyed by FUSE node id.
 */
#ifndef LSMFS_ITABLE_H
#define LSMFS_ITABLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inode.h"
#include "lsm.h"

/*
 * FUSE node ids (see fs/snap.c). A live inode's node id is its inode
 * number, which the allocator keeps below NODE_INO_LIMIT (44 bits). A
 * node of snapshot `sid` (the engine's snapshot id, 1..NODE_SID_MAX) is
 * (sid << 44) | ino, its inode number as of that snapshot. NODE_SNAPDIR
 * is /.snapshots itself, never an inode number.
 */
#define NODE_INO_BITS 44
#define NODE_INO_MASK ((UINT64_C(1) << NODE_INO_BITS) - 1)
#define NODE_SNAPDIR NODE_INO_MASK
#define NODE_INO_LIMIT NODE_SNAPDIR /* live inode numbers are below it */
#define NODE_SID_MAX ((UINT64_C(1) << (64 - NODE_INO_BITS)) - 1)

static inline uint64_t node_sid(uint64_t node)
{
	return node >> NODE_INO_BITS;
}

static inline uint64_t node_ino(uint64_t node)
{
	return node & NODE_INO_MASK;
}

static inline uint64_t node_make(uint64_t sid, uint64_t ino)
{
	return (sid << NODE_INO_BITS) | ino;
}

/* A node of the live tree (not a snapshot's, not /.snapshots). */
static inline bool node_is_live(uint64_t node)
{
	return node < NODE_INO_LIMIT;
}

struct snap_ent;

/*
 * One inode the kernel or a request knows, live or in a snapshot. Found
 * through the table and refcounted: it stays in the table while nref > 0
 * (requests in flight, open handles) or nlookup > 0 (the kernel knows it).
 * A snapshot node's record is immutable: once loaded it stays valid.
 */
struct inode_ent {
	uint64_t ino;           /* the FUSE node id (= ino for live inodes) */
	struct inode_ent *next; /* shard chain; shard lock */
	uint64_t nlookup;       /* kernel lookups; shard lock */
	uint64_t nref;          /* references; shard lock */

	/* mu serializes every change to this inode (record, data, xattrs)
	 * and protects the fields below. Lock order: by ascending ino
	 * (struct ient_lockset). */
	pthread_mutex_t mu;
	uint32_t nopen; /* open handles (files and directories) */
	bool is_loaded; /* `in` and `target` mirror the stored record */
	struct lsmfs_inode in;
	char *target; /* symlink target (malloc'd) or NULL */
	size_t target_len;
	bool no_caps; /* "security.capability" is known to be absent */
	/* Deleted (last link gone, no open handle) while the kernel may still
	 * hold it: `in` keeps the last record with nlink 0, so getattr and
	 * the kernel's late time updates (setattr) succeed without storing
	 * anything. Never cleared: inode numbers are not reused. */
	bool is_gone;
	/* Snapshot nodes with open file handles: one reference on their
	 * snapshot (snap.c), held while nopen > 0, so reads keep working
	 * after the snapshot is deleted. NULL for live inodes. */
	struct snap_ent *snap;
};

struct itable;

struct itable *itable_new(void);
/* Frees every entry; only once no request is running. */
void itable_free(struct itable *t);
/* Returns the entry for ino with one reference, creating it if absent;
 * NULL only when out of memory. */
struct inode_ent *itable_get(struct itable *t, uint64_t ino);
/* Takes one more reference on an entry already held. */
void itable_ref(struct itable *t, struct inode_ent *e);
/* Drops a reference; frees the entry at nref == 0 and nlookup == 0. */
void itable_put(struct itable *t, struct inode_ent *e);
/* The kernel learned of e once more (an entry or create reply). */
void itable_lookup_add(struct itable *t, struct inode_ent *e);
/* FUSE forget: drops n lookups of ino. */
void itable_forget(struct itable *t, uint64_t ino, uint64_t n);

/* Loads the record of a live inode into the cache if needed (e->mu
 * held): 0, -ENOENT when the inode does not exist, -EROFS for a node that
 * is not live (a modifying path reached a snapshot), or an engine status. */
int ient_load_locked(struct inode_ent *e, lsm_db *db);
/* The same for any node: snap is the read handle of the node's snapshot
 * (NULL for a live node). A snapshot node is read at its snapshot only,
 * so its cached record never changes. */
int ient_load_at_locked(struct inode_ent *e, lsm_db *db,
			const lsm_snapshot *snap);
/* Records a committed record in the cache (e->mu held). The target is
 * copied; pass NULL to keep the cached one. */
int ient_store_locked(struct inode_ent *e, const struct lsmfs_inode *in,
		      const char *target, size_t target_len);
/* The inode was deleted: forget the cached record (e->mu held). */
void ient_invalidate_locked(struct inode_ent *e);
/* The inode was deleted while the kernel may still know it: keep `in`
 * (nlink 0) as its last record and mark it gone (e->mu held). */
void ient_mark_gone_locked(struct inode_ent *e, const struct lsmfs_inode *in);

/* Locks up to 4 entries in ascending ino order (duplicates and NULLs
 * ignored), so multi-inode operations cannot deadlock. */
struct ient_lockset {
	struct inode_ent *e[4];
	size_t n;
};
void ient_lockset_init(struct ient_lockset *ls);
void ient_lockset_add(struct ient_lockset *ls, struct inode_ent *e);
void ient_lockset_lock(struct ient_lockset *ls);
void ient_lockset_unlock(struct ient_lockset *ls);

#endif /* LSMFS_ITABLE_H */
