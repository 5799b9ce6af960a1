/*
 * version.h - which SST files make up the tree, and the MANIFEST that
 * records every change to that set.
 *
 * A version is an immutable snapshot of the files of every level. Readers
 * and compactions hold references on the version they use; applying a
 * version edit (files added and removed by a flush or compaction) makes a
 * new version and installs it as current. The version set owns the
 * MANIFEST: each edit is appended and synced there before it is installed,
 * so that a crash at any point leaves a manifest describing a complete
 * tree.
 *
 * Ownership: struct file_meta is shared by every version that lists it
 * (atomic refcount). When the last reference to a file that an edit
 * removed goes away, its SST is deleted and evicted from the table cache;
 * files still live at close are kept.
 *
 * Thread-safety: vset_* functions that change state must be called with
 * the database mutex held (names end in _locked) unless noted. Versions
 * are immutable once installed; version_ref/unref are atomic and may be
 * called from any thread.
 */
#ifndef LSM_VERSION_VERSION_H
#define LSM_VERSION_VERSION_H

#include "cache/cache.h"
#include "env/env.h"
#include "iter/iter.h"
#include "lsm.h"
#include "util/slice.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct vset;

struct file_meta {
	_Atomic int refs;
	uint64_t number;
	uint64_t size;
	/* Internal keys bounding everything in the file, range tombstones
	 * included (an exclusive tombstone end is (end, SEQ_MAX, SENTINEL)). */
	uint8_t *smallest, *largest;
	size_t smallest_len, largest_len;
	uint64_t smallest_seq, largest_seq;
	uint64_t num_entries, num_deletions, num_range_dels;
	uint64_t time_lo, time_hi; /* microseconds */
	/* Distinct-key sketch of the point keys (util/sketch.h,
	 * SKETCH_REGS bytes); NULL when the manifest has none (a file
	 * written before sketches were kept). */
	uint8_t *sketch;
	/* Protected by the database mutex. */
	bool being_compacted;
	/* Set (under the mutex, before the edit that drops the file is
	 * installed) when no future version will list the file. */
	_Atomic bool obsolete;
	struct vset *vset; /* for deleting the file when obsolete */
};

struct file_meta *file_meta_new(uint64_t number, uint64_t size,
				struct slice smallest, struct slice largest);
void file_meta_ref(struct file_meta *f);
void file_meta_unref(struct file_meta *f);
static inline struct slice fm_smallest(const struct file_meta *f)
{
	return slice_make(f->smallest, f->smallest_len);
}
static inline struct slice fm_largest(const struct file_meta *f)
{
	return slice_make(f->largest, f->largest_len);
}
/* Does the file hold any user key k with lo <= k <= hi? NULL bounds are
 * open. A largest key that is a range-tombstone sentinel is exclusive. */
bool fm_overlaps(const struct file_meta *f, const struct slice *lo,
		 const struct slice *hi);

/*
 * A blob file (blob/blob.h): values stored outside the tree, referenced
 * by entries of kind IKEY_BLOB. linked_* count the references the tree
 * received (a flush or a relocation writing an SST entry that points
 * here), garbage_* those of them compaction dropped since. The file
 * leaves the version when every linked reference is garbage. The
 * counters change only in vset_apply(), under the database mutex.
 */
struct blob_meta {
	_Atomic int refs;
	uint64_t number;
	uint64_t size; /* bytes of records (header included) */
	uint64_t linked_count, linked_bytes;
	uint64_t garbage_count, garbage_bytes;
	_Atomic bool obsolete; /* as file_meta's */
	/* false while it names the file a memtable would write its large
	 * values to, before the first one came (there is no file yet) */
	bool has_file;
	/* The user keys its values were written under span [smallest,
	 * largest]: a compaction of that range passes every reference. */
	uint8_t *smallest, *largest;
	size_t smallest_len, largest_len;
	bool has_keys;
	bool gc_picked; /* a garbage-collecting compaction ran for it (mu) */
	struct vset *vset;
};

struct blob_meta *blob_meta_new(uint64_t number, uint64_t size);
/* Widens b's key range to take in key (before b is shared). */
int blob_meta_extend(struct blob_meta *b, struct slice key);
void blob_meta_ref(struct blob_meta *b);
void blob_meta_unref(struct blob_meta *b);

struct version {
	_Atomic int refs;
	struct vset *vset;
	/* Blob files, ascending number; one reference each. */
	struct blob_meta **blobs;
	size_t n_blobs;
	size_t n_files[LSM_MAX_LEVELS];
	/* L0: newest first (decreasing largest_seq); L1+: sorted by key,
	 * disjoint. */
	struct file_meta **files[LSM_MAX_LEVELS];
	uint64_t level_bytes[LSM_MAX_LEVELS];
};

void version_ref(struct version *v);
void version_unref(struct version *v);
/* Files of `level` that overlap [lo, hi] (user keys, NULL = open). For L0
 * the range grows to cover every overlapping file, transitively.
 * *out is malloc'd (free it); *n may be 0. */
int version_overlapping(const struct version *v, int level,
			const struct slice *lo, const struct slice *hi,
			struct file_meta ***out, size_t *n);
/* The blob file numbered `number`, or NULL. */
struct blob_meta *version_find_blob(const struct version *v, uint64_t number);
/* Index of the first file in L>=1 whose largest key >= ikey. */
size_t version_find_file(const struct version *v, int level, struct slice ikey);
/* User-key span [*lo, *hi] of n >= 1 files (slices into their metadata). */
void version_files_span(struct file_meta **fs, size_t n, struct slice *lo,
			struct slice *hi);

/*
 * Version edits: the unit of change, and the MANIFEST record format
 * (lsm/FORMAT.md "MANIFEST").
 */
struct edit_file {
	int level;
	struct file_meta *f; /* added files: a reference owned by the edit */
	uint64_t number;     /* deleted files */
};

/* A named, persistent snapshot (lsm_snapshot_create). */
struct named_snap {
	char *name; /* NUL-terminated, 1..LSM_SNAPSHOT_NAME_MAX bytes */
	uint64_t id;
	uint64_t seq;
	int64_t created_ns;
};

/* A blob file added by an edit (b: a reference owned by the edit, counts
 * in b->linked_*), or garbage recorded against one (b == NULL). */
struct edit_blob {
	struct blob_meta *b;
	uint64_t number, count, bytes;
};

struct version_edit {
	size_t n_blobs_added, n_blob_garbage;
	struct edit_blob *blobs_added, *blob_garbage;
	bool has_log_number, has_next_file, has_last_seq, has_format;
	bool has_next_snap_id;
	bool has_style;
	uint32_t style;        /* lsm_compaction_style (tag 10) */
	uint64_t next_snap_id; /* next named-snapshot id to hand out */
	size_t n_snaps_added, n_snaps_deleted;
	struct named_snap *snaps_added; /* names owned by the edit */
	uint64_t *snaps_deleted;        /* ids */
	uint64_t log_number; /* WALs numbered below this are obsolete */
	uint64_t next_file;  /* next file number to allocate */
	uint64_t last_seq;   /* last sequence number used */
	uint32_t format;     /* store format version (first edit only) */
	size_t n_added, n_deleted;
	size_t added_cap, deleted_cap;
	struct edit_file *added;
	struct edit_file *deleted;
};

void edit_init(struct version_edit *e);
void edit_release(struct version_edit *e);
/* Takes over the caller's reference on f. */
int edit_add_file(struct version_edit *e, int level, struct file_meta *f);
int edit_delete_file(struct version_edit *e, int level, uint64_t number);
/* Takes over the caller's reference on b. */
int edit_add_blob(struct version_edit *e, struct blob_meta *b);
/* Adds to the garbage the edit records against blob file `number`. */
int edit_add_blob_garbage(struct version_edit *e, uint64_t number,
			  uint64_t count, uint64_t bytes);
/* Copies the name. */
int edit_add_snap(struct version_edit *e, const struct named_snap *s);
int edit_delete_snap(struct version_edit *e, uint64_t id);
/* Encodes e into a malloc'd buffer. */
int edit_encode(const struct version_edit *e, uint8_t **buf, size_t *len);
/* Decodes one record; `what` names the file and offset for errors. */
int edit_decode(struct version_edit *e, const uint8_t *p, size_t len,
		const char *path, uint64_t off);

/* The store format this code writes and reads. */
#define LSM_STORE_FORMAT 1

struct vset_config {
	lsm_env *env;
	const char *dir;
	int num_levels;
	struct cache *table_cache; /* may be NULL in tools */
};

struct vset {
	struct vset_config cfg;
	char *dir;
	struct version *current; /* holds one reference */
	uint64_t next_file;
	uint64_t last_seq; /* published: atomic reads by readers */
	uint64_t log_number;
	uint64_t manifest_number;
	struct wal_writer *manifest;
	uint64_t manifest_bytes;
	/* Named snapshots, ascending id (creation order). Sequence numbers
	 * usually ascend too, but two creates racing may record them in
	 * the other order: nothing may rely on it. */
	struct named_snap *snaps;
	size_t n_snaps;
	uint64_t next_snap_id;
	/* The compaction style the store was last opened with (0, leveled,
	 * when the manifest records none). */
	uint32_t style;
};

/* Recovers the version set from CURRENT and the MANIFEST it names.
 * LSM_E_NOSTORE if there is no CURRENT. */
int vset_recover(const struct vset_config *cfg, struct vset **out);
/* Creates the initial MANIFEST and CURRENT of a new store. */
int vset_create(const struct vset_config *cfg, struct vset **out);
void vset_free(struct vset *vs);
uint64_t vset_new_file_number(struct vset *vs);
/* Writes a new MANIFEST holding the whole current state and switches
 * CURRENT to it; used at open and when the manifest grows large. */
int vset_write_snapshot(struct vset *vs);
/* Writes, into directory dir of the same env, a MANIFEST numbered
 * manifest_number holding version v, the counters and the named snapshots
 * of vs whose sequence is <= max_snap_seq, with log number log_number,
 * and a CURRENT naming it (both synced). For checkpoints. */
int vset_write_manifest_to(struct vset *vs, const struct version *v,
			   const char *dir, uint64_t manifest_number,
			   uint64_t log_number, uint64_t max_snap_seq);
/* The named snapshot called name, or NULL. */
const struct named_snap *vset_find_snap(const struct vset *vs,
					const char *name);
/* Appends e to the MANIFEST (synced), then installs the resulting
 * version. Called with the db mutex held; the manifest write happens
 * under it (edits are small and rare). Files deleted by e are marked
 * obsolete. On failure nothing is installed. */
int vset_apply(struct vset *vs, struct version_edit *e);
struct version *vset_current_ref(struct vset *vs);

/* Path helpers: <dir>/<number>.sst, .log, .blob, MANIFEST-<number>. */
void file_path(char *buf, size_t cap, const char *dir, uint64_t number,
	       const char *suffix);

#endif
