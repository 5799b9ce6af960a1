/*
 * db_blob.c - key-value separation: large values in blob files.
 *
 * A PUT whose value is at least opts.blob_threshold bytes is written once,
 * to the blob file of the current memtable (blob/blob.h), by the write
 * leader before the group reaches the WAL; the WAL record and the
 * memtable then hold an entry of kind IKEY_BLOB whose value is the
 * reference (file, offset, length, checksum). Reads follow the reference.
 *
 * Life of a blob file:
 *  - Its number is chosen with the memtable (so that every superversion
 *    holding the memtable pins the blob_meta, however old), the file is
 *    created on the memtable's first large value and
 *    closed (synced) when the memtable is switched out, or earlier when it
 *    reaches blob_file_size, which switches the memtable. So each memtable
 *    has at most one blob file and each blob file belongs to exactly one
 *    memtable (and WAL), until that memtable is flushed.
 *  - The flush counts the references it writes into SSTs ("linked") and
 *    the same manifest edit that adds the L0 files adds the blob file.
 *  - Compactions report every reference they drop (garbage) and, for blob
 *    files whose garbage reached blob_gc_percent of their linked bytes,
 *    copy each value they keep into a new blob file and rewrite its
 *    reference ("relocation"). The edit that makes a file's garbage equal
 *    its linked count drops it from the version; it is deleted when no
 *    reader holds that version any more (blob_meta references).
 *  - Snapshots need nothing special: compaction drops (and so counts as
 *    garbage) only versions no snapshot sees.
 *
 * Durability: the blob bytes of a group are handed to the OS before its
 * WAL record, and fdatasync'ed at the same time as the WAL when the group
 * asks for sync (wfile_sync_pair: 13% off the p50 of a 4 KiB write + fsync
 * in lsmfs against one sync after the other). A memtable switch syncs its
 * blob file before the next WAL takes writes. After a crash, recovery scans the
 * blob files of the WALs it replays and stops replaying at the first record
 * whose blob did not survive: that record and everything after it were never
 * acknowledged as durable (a later sync would have synced the blob file too).
 *
 * Thread-safety: the writer (db->blob) is used by the write leader only;
 * everything else runs under db->mu or on immutable data, except the
 * compaction hooks, which run in one compaction's thread on its own state.
 */
#include "db_blob.h"

#include "blob/blob.h"
#include "util/coding.h"
#include "util/ikey.h"
#include "util/status.h"

#include <stdlib.h>
#include <string.h>

/* ---- write path ---- */

int db_blob_meta_locked(lsm_db *db)
{
	if (!db->opts.blob_threshold || db->opts.read_only)
		return 0;
	db->mem_blob = blob_meta_new(vset_new_file_number(db->vs), 0);
	if (!db->mem_blob)
		return -ENOMEM;
	/* Every superversion holding the memtable holds this too: a reader
	 * that finds a reference in the memtable finds the file. */
	db->mem_blob->has_file = false;
	return 0;
}

int db_blob_open_locked(lsm_db *db)
{
	struct blob_writer *w;
	char path[4096];
	int rc;
	if (!db->mem_blob) {
		rc = db_blob_meta_locked(db);
		if (rc)
			return rc;
		db_install_sv_locked(db);
	}
	rc = blobw_open(db->env, db->dir, db->mem_blob->number, &w);
	if (rc)
		return rc;
	/* A synced write that lands here must not lose the file's name. */
	rc = db->env->ops->sync_dir(db->env, db->dir);
	if (rc) {
		blobw_close(w, false);
		file_path(path, sizeof(path), db->dir, db->mem_blob->number,
			  "blob");
		db->env->ops->remove_file(db->env, path);
		return rc;
	}
	db->mem_blob->has_file = true;
	db->blob = w;
	db->blob_unsynced = false;
	return 0;
}

int db_blob_close_locked(lsm_db *db)
{
	int rc;
	if (!db->blob)
		return 0;
	db->mem_blob->size = blobw_size(db->blob);
	rc = blobw_close(db->blob, true);
	db->blob = NULL;
	if (rc) {
		/* Acknowledged values may not be durable, and the memtable
		 * that references them moves on: stop writing. */
		db_log(db, "blob file %06llu: closing failed: %s",
		       (unsigned long long)db->mem_blob->number,
		       lsm_strerror(rc));
		if (!db->bg_error)
			db->bg_error = rc;
	}
	return rc;
}

struct separate {
	lsm_db *db;
	struct blob_writer *w;
	struct lsm_batch *out;
	uint64_t n_values;
};

static int separate_one(void *ctx, uint64_t seq, unsigned kind,
			struct slice key, struct slice value)
{
	struct separate *s = ctx;
	(void)seq;
	if (kind == IKEY_PUT && value.len >= s->db->opts.blob_threshold) {
		struct blob_ref ref;
		uint8_t enc[BLOB_REF_MAX];
		int rc = blobw_add(s->w, key, value, &ref);
		if (!rc)
			rc = blob_meta_extend(s->db->mem_blob, key);
		if (rc)
			return rc;
		s->n_values++;
		return batch_add_entry(
			s->out, IKEY_BLOB, key,
			slice_make(enc, blob_ref_encode(enc, &ref)));
	}
	return batch_add_entry(s->out, kind, key, value);
}

int db_blob_separate(lsm_db *db, struct blob_writer *w,
		     const struct lsm_batch *in, struct lsm_batch *out)
{
	struct separate s = {db, w, out, 0};
	uint64_t before = blobw_size(w);
	int rc;
	lsm_batch_clear(out);
	rc = batch_iterate(in->rep, in->len, separate_one, &s, "write", 0);
	if (rc)
		return rc;
	out->user_bytes = in->user_bytes;
	STAT_ADD(db, blob_bytes_written, blobw_size(w) - before);
	STAT_ADD(db, blob_values_written, s.n_values);
	return 0;
}

/* ---- reads ---- */

int db_blob_read(lsm_db *db, struct slice refval, void *buf, size_t cap,
		 void **val, size_t *len)
{
	struct blob_ref ref;
	struct cache_handle *h;
	void *dst;
	int rc = blob_ref_decode(refval, &ref);
	if (rc)
		return rc;
	rc = bcache_find(db->table_cache, &db->tcopts, ref.number, &h);
	if (rc)
		return rc;
	dst = buf && cap >= ref.len ? buf : malloc(ref.len ? ref.len : 1);
	if (!dst) {
		cache_release(db->table_cache, h);
		return -ENOMEM;
	}
	rc = blobr_read(bcache_reader(h), &ref, dst);
	cache_release(db->table_cache, h);
	STAT_ADD(db, blob_reads, 1);
	if (rc) {
		if (dst != buf)
			free(dst);
		return rc;
	}
	if (buf && dst != buf && cap)
		memcpy(buf, dst, cap); /* the caller's buffer is too small */
	*val = dst;
	*len = ref.len;
	return 0;
}

/* ---- flushes: counting the references written into SSTs ---- */

static struct blob_meta *find_meta(struct blob_meta **metas, size_t n,
				   uint64_t number)
{
	for (size_t i = 0; i < n; i++)
		if (metas[i] && metas[i]->number == number)
			return metas[i];
	return NULL;
}

static int link_dropped(void *ctx, struct slice value)
{
	/* never linked, so not garbage either */
	(void)ctx;
	(void)value;
	return 0;
}

static int link_kept(void *ctx, struct slice ukey, struct slice value,
		     struct slice *out)
{
	struct blob_link *l = ctx;
	struct blob_ref ref;
	struct blob_meta *b;
	int rc = blob_ref_decode(value, &ref);
	(void)ukey;
	(void)out;
	if (rc)
		return rc;
	b = find_meta(l->metas, l->n_metas, ref.number);
	if (!b)
		return LSM_CORRUPT("memtable entry refers to blob file %06llu, "
				   "which belongs to no memtable being flushed",
				   (unsigned long long)ref.number);
	b->linked_count++;
	b->linked_bytes += ref.len;
	return 0;
}

void db_blob_link_hooks(struct blob_link *l, struct compact_blob_hooks *h)
{
	h->ctx = l;
	h->dropped = link_dropped;
	h->kept = link_kept;
}

/* Adds to e, each with a reference of its own, the blob files of bs[0..n)
 * that some table references (linked_count > 0). */
static int edit_link_blobs(struct version_edit *e, struct blob_meta **bs,
			   size_t n)
{
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if (!bs[i]->linked_count)
			continue;
		blob_meta_ref(bs[i]);
		rc = edit_add_blob(e, bs[i]);
		if (rc)
			blob_meta_unref(bs[i]);
	}
	return rc;
}

int db_blob_link_edit(lsm_db *db, struct blob_meta *b, uint64_t size,
		      struct version_edit *e)
{
	if (!b)
		return 0;
	if (size)
		b->size = size;
	if (!b->linked_count) {
		/* Every value was overwritten before the flush: the file
		 * goes once no reader needs the memtable. */
		b->vset = db->vs;
		atomic_store(&b->obsolete, true);
		return 0;
	}
	return edit_link_blobs(e, &b, 1);
}

/* ---- compactions: garbage and relocation ---- */

int db_blob_gc_init(lsm_db *db, struct blob_gc *g, const struct version *v)
{
	memset(g, 0, sizeof(*g));
	g->db = db;
	for (size_t i = 0; i < v->n_blobs; i++) {
		const struct blob_meta *b = v->blobs[i];
		if (b->garbage_bytes * 100 <
		    (uint64_t)db->opts.blob_gc_percent * b->linked_bytes)
			continue;
		uint64_t *a = realloc(g->gc, (g->n_gc + 1) * sizeof(*a));
		if (!a)
			return -ENOMEM;
		g->gc = a;
		g->gc[g->n_gc++] = b->number;
	}
	return 0;
}

static int add_garbage(struct blob_gc *g, uint64_t number, uint64_t bytes)
{
	for (size_t i = 0; i < g->n_garbage; i++)
		if (g->garbage[i].number == number) {
			g->garbage[i].count++;
			g->garbage[i].bytes += bytes;
			return 0;
		}
	struct edit_blob *a =
		realloc(g->garbage, (g->n_garbage + 1) * sizeof(*a));
	if (!a)
		return -ENOMEM;
	g->garbage = a;
	g->garbage[g->n_garbage++] = (struct edit_blob){NULL, number, 1, bytes};
	return 0;
}

static int gc_dropped(void *ctx, struct slice value)
{
	struct blob_gc *g = ctx;
	struct blob_ref ref;
	int rc = blob_ref_decode(value, &ref);
	if (rc)
		return rc;
	return add_garbage(g, ref.number, ref.len);
}

static bool in_gc_set(const struct blob_gc *g, uint64_t number)
{
	for (size_t i = 0; i < g->n_gc; i++)
		if (g->gc[i] == number)
			return true;
	return false;
}

/* Closes the relocation output (synced) and keeps its metadata. */
static int gc_close_output(struct blob_gc *g)
{
	int rc;
	if (!g->out)
		return 0;
	g->out_meta->size = blobw_size(g->out);
	rc = blobw_close(g->out, true);
	g->out = NULL;
	return rc;
}

static int gc_kept(void *ctx, struct slice ukey, struct slice value,
		   struct slice *out)
{
	struct blob_gc *g = ctx;
	lsm_db *db = g->db;
	struct blob_ref ref, nref;
	void *val;
	size_t len;
	int rc = blob_ref_decode(value, &ref);
	if (rc || !in_gc_set(g, ref.number))
		return rc;
	if (g->out && blobw_size(g->out) >= db->opts.blob_file_size) {
		rc = gc_close_output(g);
		if (rc)
			return rc;
	}
	if (!g->out) {
		struct blob_meta **a =
			realloc(g->outs, (g->n_outs + 1) * sizeof(*a));
		if (!a)
			return -ENOMEM;
		g->outs = a;
		uint64_t number = db_new_file_number(db);
		g->out_meta = blob_meta_new(number, 0);
		if (!g->out_meta)
			return -ENOMEM;
		g->outs[g->n_outs++] = g->out_meta;
		rc = blobw_open(db->env, db->dir, number, &g->out);
		if (rc)
			return rc;
	}
	if (ref.len > g->buf_cap) {
		free(g->buf);
		g->buf = malloc(ref.len);
		g->buf_cap = g->buf ? ref.len : 0;
		if (!g->buf)
			return -ENOMEM;
	}
	rc = db_blob_read(db, value, g->buf, g->buf_cap, &val, &len);
	if (rc)
		return rc;
	rc = blobw_add(g->out, ukey, slice_make(val, len), &nref);
	if (!rc)
		rc = blob_meta_extend(g->out_meta, ukey);
	if (rc)
		return rc;
	g->out_meta->linked_count++;
	g->out_meta->linked_bytes += len;
	g->moved_bytes += len;
	rc = add_garbage(g, ref.number, ref.len);
	if (rc)
		return rc;
	*out = slice_make(g->ref_buf, blob_ref_encode(g->ref_buf, &nref));
	return 0;
}

void db_blob_gc_hooks(struct blob_gc *g, struct compact_blob_hooks *h)
{
	h->ctx = g;
	h->dropped = gc_dropped;
	h->kept = gc_kept;
}

int db_blob_gc_finish(struct blob_gc *g)
{
	return gc_close_output(g);
}

int db_blob_gc_edit(struct blob_gc *g, struct version_edit *e)
{
	int rc = 0;
	for (size_t i = 0; i < g->n_garbage && !rc; i++)
		rc = edit_add_blob_garbage(e, g->garbage[i].number,
					   g->garbage[i].count,
					   g->garbage[i].bytes);
	return rc ? rc : edit_link_blobs(e, g->outs, g->n_outs);
}

void db_blob_gc_release(struct blob_gc *g, bool remove_outputs)
{
	char path[4096];
	if (g->out) {
		blobw_close(g->out, false);
		g->out = NULL;
	}
	for (size_t i = 0; i < g->n_outs; i++) {
		if (remove_outputs) {
			file_path(path, sizeof(path), g->db->dir,
				  g->outs[i]->number, "blob");
			g->db->env->ops->remove_file(g->db->env, path);
		}
		blob_meta_unref(g->outs[i]);
	}
	free(g->outs);
	free(g->gc);
	free(g->garbage);
	free(g->buf);
	memset(g, 0, sizeof(*g));
}

int db_blob_pick_gc_locked(lsm_db *db, struct compaction **out)
{
	struct version *v = db->vs->current;
	struct blob_meta *best = NULL;
	struct slice lo, hi;
	int rc;
	*out = NULL;
	for (size_t i = 0; i < v->n_blobs; i++) {
		struct blob_meta *b = v->blobs[i];
		if (b->gc_picked || !b->has_keys ||
		    b->garbage_bytes * 100 <
			    (uint64_t)db->opts.blob_gc_percent *
				    b->linked_bytes)
			continue;
		/* the largest share of garbage first */
		if (!best || b->garbage_bytes * best->linked_bytes >
				     best->garbage_bytes * b->linked_bytes)
			best = b;
	}
	if (!best)
		return 0;
	lo = slice_make(best->smallest, best->smallest_len);
	hi = slice_make(best->largest, best->largest_len);
	rc = compact_pick_range(v, &db->pick, &lo, &hi, out);
	if (rc == -EAGAIN)
		return 0; /* files busy: after the running compaction */
	if (rc)
		return rc;
	best->gc_picked = true;
	if (*out)
		(*out)->kind = COMPACT_BLOB_GC;
	return 0;
}

/* Garbage of whole SSTs dropped without a merge (the TTL): every blob
 * reference they hold. */
int db_blob_files_garbage(lsm_db *db, struct file_meta **files, size_t n,
			  struct version_edit *e)
{
	struct blob_gc g;
	int rc = 0;
	memset(&g, 0, sizeof(g));
	g.db = db;
	for (size_t i = 0; i < n && !rc; i++) {
		struct cache_handle *h;
		struct ikv_iter *it;
		rc = tcache_find(db->table_cache, &db->tcopts, files[i]->number,
				 &h);
		if (rc)
			break;
		it = sstr_iter_new(tcache_table(h)->r, false);
		if (!it) {
			cache_release(db->table_cache, h);
			rc = -ENOMEM;
			break;
		}
		for (iter_first(it); iter_valid(it) && !rc; iter_next(it))
			if (ikey_kind(iter_key(it)) == IKEY_BLOB)
				rc = gc_dropped(&g, iter_value(it));
		if (!rc)
			rc = iter_status(it);
		iter_free(it);
		cache_release(db->table_cache, h);
	}
	if (!rc)
		rc = db_blob_gc_edit(&g, e);
	db_blob_gc_release(&g, false);
	return rc;
}

/* ---- recovery ---- */

static int scan_keys(void *ctx, struct slice key, const struct blob_ref *r)
{
	(void)r;
	return blob_meta_extend(ctx, key);
}

int db_blob_recover_scan(lsm_db *db, char **names, size_t n_names,
			 uint64_t (*parse)(const char *, const char *))
{
	for (size_t i = 0; i < n_names; i++) {
		uint64_t num = parse(names[i], "blob"), valid = 0;
		struct blob_meta *b, **a;
		int rc;
		if (!num)
			continue;
		/* Numbers handed out after the manifest's last edit are
		 * never handed out again. */
		if (num >= db->vs->next_file)
			db->vs->next_file = num + 1;
		if (version_find_blob(db->vs->current, num))
			continue;
		/* A memtable's file: its WAL is about to be replayed (or it
		 * is a leftover, removed after recovery). */
		b = blob_meta_new(num, 0);
		if (!b)
			return -ENOMEM;
		rc = blob_scan(db->env, db->dir, num, scan_keys, b, &valid);
		if (rc < 0 && rc != LSM_E_CORRUPT) {
			blob_meta_unref(b);
			return rc;
		}
		if (rc != 0)
			db_log(db,
			       "%06llu.blob: valid up to offset %llu (%s); "
			       "values past it were never acknowledged as "
			       "durable",
			       (unsigned long long)num,
			       (unsigned long long)valid,
			       rc == 1 ? "torn tail" : "bad header");
		if (rc == LSM_E_CORRUPT)
			valid = 0;
		b->size = valid;
		a = realloc(db->rec_blobs, (db->n_rec_blobs + 1) * sizeof(*a));
		if (!a) {
			blob_meta_unref(b);
			return -ENOMEM;
		}
		db->rec_blobs = a;
		db->rec_blobs[db->n_rec_blobs++] = b;
	}
	return 0;
}

struct check_refs {
	lsm_db *db;
	bool bad;
	uint64_t number;
};

static int check_one(void *ctx, uint64_t seq, unsigned kind, struct slice key,
		     struct slice value)
{
	struct check_refs *c = ctx;
	struct blob_ref ref;
	struct blob_meta *b;
	int rc;
	(void)seq;
	(void)key;
	if (kind != IKEY_BLOB || c->bad)
		return 0;
	rc = blob_ref_decode(value, &ref);
	if (rc)
		return rc;
	b = find_meta(c->db->rec_blobs, c->db->n_rec_blobs, ref.number);
	if (!b || ref.offset + ref.len > b->size) {
		c->bad = true;
		c->number = ref.number;
	}
	return 0;
}

int db_blob_check_batch(lsm_db *db, struct slice rec, const char *path,
			uint64_t off, bool *durable)
{
	struct check_refs c = {db, false, 0};
	int rc = batch_iterate(rec.p, rec.len, check_one, &c, path, off);
	if (rc)
		return rc;
	*durable = !c.bad;
	if (c.bad)
		db_log(db,
		       "%s: record at offset %llu refers to a value in blob "
		       "file %06llu that did not survive",
		       path, (unsigned long long)off,
		       (unsigned long long)c.number);
	return 0;
}

int db_blob_recover_edit(lsm_db *db, struct version_edit *e)
{
	return edit_link_blobs(e, db->rec_blobs, db->n_rec_blobs);
}

void db_blob_recover_release(lsm_db *db)
{
	for (size_t i = 0; i < db->n_rec_blobs; i++)
		blob_meta_unref(db->rec_blobs[i]);
	free(db->rec_blobs);
	db->rec_blobs = NULL;
	db->n_rec_blobs = 0;
}
