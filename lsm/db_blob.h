/*
 * db_blob.h - the database's side of blob files (db_blob.c): separating
 * large values on the write path, following references on reads, counting
 * references in flushes, garbage and relocation in compactions, and
 * recovery of the blob files of unflushed memtables.
 */
#ifndef LSM_DB_BLOB_H
#define LSM_DB_BLOB_H

#include "blob/blob.h"
#include "db_int.h"

/* Names the blob file of a new memtable (db->mem_blob; no file yet);
 * nothing when blob_threshold is 0 (mu held). */
int db_blob_meta_locked(lsm_db *db);
/* Opens the current memtable's blob file (mu held, write leader). */
int db_blob_open_locked(lsm_db *db);
/* Syncs and closes it; a failure poisons writes (mu held). */
int db_blob_close_locked(lsm_db *db);
/* out = in with every PUT of at least blob_threshold bytes written to w
 * and replaced by a BLOB entry (no lock; write leader). */
int db_blob_separate(lsm_db *db, struct blob_writer *w,
		     const struct lsm_batch *in, struct lsm_batch *out);
/*
 * Reads the value a reference names. With buf and cap >= its length the
 * value lands in buf (*val = buf); otherwise in a malloc'd buffer (*val,
 * free it), of which the first cap bytes are also copied to buf if given.
 * *len = the value's length.
 */
int db_blob_read(lsm_db *db, struct slice refval, void *buf, size_t cap,
		 void **val, size_t *len);

/* Flush: counts the references written into SSTs on metas[i]. */
struct blob_link {
	struct blob_meta **metas;
	size_t n_metas;
};
void db_blob_link_hooks(struct blob_link *l, struct compact_blob_hooks *h);
/* Adds b (with its linked counts) to e, or marks it obsolete when the
 * flush linked nothing. size: the file's size, 0 to keep b->size. */
int db_blob_link_edit(lsm_db *db, struct blob_meta *b, uint64_t size,
		      struct version_edit *e);

/* Compaction: garbage of dropped references; relocation of the kept ones
 * that point into files past blob_gc_percent. */
struct blob_gc {
	lsm_db *db;
	uint64_t *gc; /* files whose values move */
	size_t n_gc;
	struct edit_blob *garbage;
	size_t n_garbage;
	struct blob_writer *out;
	struct blob_meta *out_meta, **outs;
	size_t n_outs;
	uint8_t *buf;
	size_t buf_cap;
	uint8_t ref_buf[BLOB_REF_MAX];
	uint64_t moved_bytes;
};
/* Chooses the files to relocate from v (mu held). */
int db_blob_gc_init(lsm_db *db, struct blob_gc *g, const struct version *v);
void db_blob_gc_hooks(struct blob_gc *g, struct compact_blob_hooks *h);
/* Closes the relocation output, synced (after compact_write). */
int db_blob_gc_finish(struct blob_gc *g);
/* Records the garbage and the new blob files in e. */
int db_blob_gc_edit(struct blob_gc *g, struct version_edit *e);
void db_blob_gc_release(struct blob_gc *g, bool remove_outputs);
/* When nothing else needs compacting: a compaction of the key range of
 * the blob file with the most garbage past blob_gc_percent, which passes
 * (and so moves) every live reference into it. Once per file. Mu held. */
int db_blob_pick_gc_locked(lsm_db *db, struct compaction **out);
/* Records as garbage every reference in files dropped whole. */
int db_blob_files_garbage(lsm_db *db, struct file_meta **files, size_t n,
			  struct version_edit *e);

/* Recovery: scans the blob files the manifest does not list (db->rec_blobs
 * gets one blob_meta each, size = the valid prefix). */
int db_blob_recover_scan(lsm_db *db, char **names, size_t n_names,
			 uint64_t (*parse)(const char *, const char *));
/* Are the blob values a WAL record refers to all there? */
int db_blob_check_batch(lsm_db *db, struct slice rec, const char *path,
			uint64_t off, bool *durable);
/* Adds the recovered files the recovery flush linked to e. */
int db_blob_recover_edit(lsm_db *db, struct version_edit *e);
void db_blob_recover_release(lsm_db *db);

#endif
