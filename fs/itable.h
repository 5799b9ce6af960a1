/*
 * itable.h - the live inode table: kernel lookup counts, open counts,
 * per-inode locks and cached inode records.
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
 * One live inode. Found through the table and refcounted: it stays in the
 * table while nref > 0 (requests in flight, open handles) or nlookup > 0
 * (the kernel knows it).
 */
struct inode_ent {
	uint64_t ino;
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

/* Loads the record into the cache if needed (e->mu held): 0, -ENOENT when
 * the inode does not exist, or an engine status. */
int ient_load_locked(struct inode_ent *e, lsm_db *db);
/* Records a committed record in the cache (e->mu held). The target is
 * copied; pass NULL to keep the cached one. */
int ient_store_locked(struct inode_ent *e, const struct lsmfs_inode *in,
		      const char *target, size_t target_len);
/* The inode was deleted: forget the cached record (e->mu held). */
void ient_invalidate_locked(struct inode_ent *e);

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
