/*
 * db_bg.c - background work: flushing immutable memtables to L0 and
 * running compactions, in a pool of threads; also the synchronous
 * lsm_flush() and lsm_compact_range().
 *
 * Scheduling: each background thread loops under db->mu. A flush comes
 * first (writers may be waiting for it), one at a time so that L0 files
 * keep the order of their memtables. Then, under time-window with a TTL,
 * expired files are dropped (one manifest edit, no rewrite). Otherwise
 * the thread asks the picker of the compaction style for a compaction
 * whose files are free; several can run at once on disjoint files.
 * Threads sleep on work_cv; whatever changes the tree broadcasts it;
 * under time-window they also wake every second, since windows close and
 * files expire with the clock alone.
 *
 * The compaction style is recorded in the manifest (db_record_style at
 * open): a store opened with another style gets one edit naming it, and
 * its picker takes the tree as the old one left it.
 *
 * Errors: a failed flush sets bg_error, which stops writes (reads go on);
 * an out-of-space error is soft and retried, other errors stay until the
 * database is reopened. A failed compaction changes nothing (its outputs
 * are deleted) and is retried after a pause unless the error is
 * corruption, which poisons the handle.
 *
 * Invariants:
 *  1. An immutable memtable leaves db->imm only after the edit that adds
 *     its L0 file (and advances log_number past its WAL) is in the
 *     manifest.
 *  2. A compaction's inputs stay being_compacted from pick to install or
 *     abandon.
 */
#include "db_int.h"

#include "db_blob.h"

#include "iter/rangedel.h"
#include "util/ikey.h"
#include "util/status.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static uint64_t wall_us(lsm_db *db)
{
	return db->env->ops->now_micros(db->env);
}

static void writer_opts(lsm_db *db, int level, struct sst_writer_opts *w)
{
	sst_writer_opts_init(w);
	w->block_size = db->opts.block_size;
	w->restart_interval = db->opts.block_restart_interval;
	w->bloom_bits_per_key = db->opts.bloom_bits_per_key;
	w->compression = db->opts.compression[level];
	w->zstd_level = db->opts.zstd_level;
}

/* Tombstones of a memtable, as compaction input; the slices point into
 * the memtable, which the caller keeps referenced. */
static int mem_tombs(struct memtable *m, struct tomb_in **out, size_t *n)
{
	size_t cnt = (size_t)mem_num_tombs(m), i = 0;
	struct ikv_iter *it;
	*out = NULL;
	*n = 0;
	if (!cnt)
		return 0;
	*out = malloc(cnt * sizeof(**out));
	it = mem_tomb_iter_new(m);
	if (!*out || !it) {
		free(*out);
		*out = NULL;
		iter_free(it);
		return -ENOMEM;
	}
	/* The memtable outlives the iterator and its bytes never move. */
	for (iter_first(it); iter_valid(it) && i < cnt; iter_next(it)) {
		struct slice k = iter_key(it);
		(*out)[i].start = ikey_user(k);
		(*out)[i].end = iter_value(it);
		(*out)[i].seq = ikey_seq(k);
		i++;
	}
	iter_free(it);
	*n = i;
	return 0;
}

static int flush_mem(lsm_db *db, struct memtable *m, const uint64_t *snaps,
		     size_t n_snaps, struct blob_link *link,
		     struct compact_result *res)
{
	struct compact_out_opts o;
	struct compact_blob_hooks hooks;
	struct tomb_in *tombs;
	size_t n_tombs;
	struct ikv_iter *it;
	int rc;

	memset(&o, 0, sizeof(o));
	o.env = db->env;
	o.dir = db->dir;
	writer_opts(db, 0, &o.wopts);
	o.wopts.time_lo = o.wopts.time_hi = wall_us(db);
	o.snapshots = snaps;
	o.n_snapshots = n_snaps;
	o.v = NULL;
	o.out_level = 0;
	o.new_file_number = db_new_file_number;
	o.ctx = db;
	db_blob_link_hooks(link, &hooks);
	o.blob = &hooks;
	rc = mem_tombs(m, &tombs, &n_tombs);
	if (rc)
		return rc;
	it = mem_iter_new(m);
	if (!it) {
		free(tombs);
		return -ENOMEM;
	}
	rc = compact_write(&o, it, tombs, n_tombs, res);
	iter_free(it);
	free(tombs);
	return rc;
}

int db_write_level0(lsm_db *db, struct memtable *m, struct version_edit *e)
{
	struct compact_result res;
	uint64_t *snaps;
	size_t n_snaps;
	/* Called during recovery, without the mutex (no thread runs yet).
	 * The manifest's named snapshots are loaded: keep what they see. */
	struct blob_link link = {db->rec_blobs, db->n_rec_blobs};
	int rc = db_snapshot_seqs_locked(db, &snaps, &n_snaps);
	if (rc)
		return rc;
	rc = flush_mem(db, m, snaps, n_snaps, &link, &res);
	free(snaps);
	if (rc)
		return rc;
	for (size_t i = 0; i < res.n_files && !rc; i++) {
		file_meta_ref(res.files[i]);
		rc = edit_add_file(e, 0, res.files[i]);
		if (rc)
			file_meta_unref(res.files[i]);
		else
			STAT_ADD(db, flush_bytes, res.files[i]->size);
	}
	if (rc == 0)
		STAT_LEVEL(db, 0, 0, res.bytes_written);
	compact_result_release(&res);
	return rc;
}

void db_delete_wal_locked(lsm_db *db, uint64_t number)
{
	/* Every memtable has exactly one WAL, so the WAL of a flushed
	 * memtable is retired by the edit that recorded the flush
	 * (invariant 3 of db.c). A failure leaves a leftover that the next
	 * open removes. */
	char path[4096];
	file_path(path, sizeof(path), db->dir, number, "log");
	db->env->ops->remove_file(db->env, path);
}

static void set_bg_error_locked(lsm_db *db, int rc, const char *what)
{
	STAT_ADD(db, bg_errors, 1);
	db_log(db, "%s failed: %s (%s)", what, lsm_strerror(rc),
	       lsm_errdetail());
	if (!db->bg_error)
		db->bg_error = rc;
	if (rc == -ENOSPC) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		db->bg_error_retry_us = (uint64_t)ts.tv_sec * 1000000 +
					(uint64_t)ts.tv_nsec / 1000 + 100000;
	}
}

static void do_flush_locked(lsm_db *db)
{
	struct memtable *m = db->imm[0].mem;
	struct blob_meta *blob = db->imm[0].blob;
	struct blob_link link = {&blob, blob ? 1 : 0};
	struct compact_result res;
	struct version_edit e;
	uint64_t *snaps;
	size_t n_snaps;
	int rc;

	db->flush_running = true;
	mem_ref(m);
	if (blob) {
		/* A retried flush counts afresh. */
		blob->linked_count = blob->linked_bytes = 0;
	}
	rc = db_snapshot_seqs_locked(db, &snaps, &n_snaps);
	if (!rc) {
		pthread_mutex_unlock(&db->mu);
		rc = flush_mem(db, m, snaps, n_snaps, &link, &res);
		pthread_mutex_lock(&db->mu);
	}
	free(snaps);
	mem_unref(m);

	if (rc == 0) {
		edit_init(&e);
		for (size_t i = 0; i < res.n_files && !rc; i++) {
			file_meta_ref(res.files[i]);
			rc = edit_add_file(&e, 0, res.files[i]);
			if (rc)
				file_meta_unref(res.files[i]);
		}
		e.has_log_number = true;
		e.log_number =
			db->n_imm > 1 ? db->imm[1].wal_number : db->wal_number;
		db->vs->last_seq = atomic_load(&db->last_seq);
		if (!rc)
			rc = db_blob_link_edit(db, blob, 0, &e);
		if (!rc)
			rc = vset_apply(db->vs, &e);
		edit_release(&e);
		/* On failure the outputs stay: the manifest record may have
		 * reached the disk before the error. If it did not, the next
		 * open removes them as leftovers. */
		for (size_t i = 0; rc == 0 && i < res.n_files; i++)
			STAT_ADD(db, flush_bytes, res.files[i]->size);
		if (rc == 0)
			STAT_LEVEL(db, 0, 0, res.bytes_written);
		compact_result_release(&res);
	}
	if (rc == 0) {
		uint64_t wal = db->imm[0].wal_number;
		mem_unref(db->imm[0].mem);
		blob_meta_unref(db->imm[0].blob);
		memmove(&db->imm[0], &db->imm[1],
			(size_t)(db->n_imm - 1) * sizeof(db->imm[0]));
		db->n_imm--;
		db->imm_flushed++;
		STAT_ADD(db, flushes, 1);
		db_install_sv_locked(db);
		db_delete_wal_locked(db, wal);
	} else {
		set_bg_error_locked(db, rc, "flush");
	}
	db->flush_running = false;
	pthread_cond_broadcast(&db->bg_cv);
	pthread_cond_broadcast(&db->work_cv);
}

/* Builds the merged input of a compaction and collects its tombstones.
 * Table handles are pinned in *handles until the caller releases them. */
static int compaction_input(lsm_db *db, struct compaction *c,
			    struct ikv_iter **out, struct tomb_in **tombs,
			    size_t *n_tombs, struct cache_handle ***handles,
			    size_t *n_handles)
{
	size_t n = 0, nt = 0, ti = 0;
	struct ikv_iter **kids;
	struct cache_handle **hs;
	int rc = 0;

	for (int l = 0; l < LSM_MAX_LEVELS; l++)
		n += c->n_inputs[l];
	kids = calloc(n ? n : 1, sizeof(*kids));
	hs = calloc(n ? n : 1, sizeof(*hs));
	if (!kids || !hs) {
		free(kids);
		free(hs);
		return -ENOMEM;
	}
	n = 0;
	for (int l = 0; l < LSM_MAX_LEVELS && !rc; l++)
		for (size_t i = 0; i < c->n_inputs[l] && !rc; i++) {
			rc = tcache_find(db->table_cache, &db->tcopts,
					 c->inputs[l][i]->number, &hs[n]);
			if (rc)
				break;
			struct table *t = tcache_table(hs[n]);
			kids[n] = sstr_iter_new(t->r, false);
			if (!kids[n]) {
				cache_release(db->table_cache, hs[n]);
				rc = -ENOMEM;
				break;
			}
			nt += t->n_rt;
			n++;
		}
	if (!rc && nt) {
		*tombs = malloc(nt * sizeof(**tombs));
		if (!*tombs)
			rc = -ENOMEM;
		for (size_t i = 0; i < n && !rc; i++) {
			struct table *t = tcache_table(hs[i]);
			for (size_t j = 0; j < t->n_rt; j++) {
				(*tombs)[ti].start = t->rt[j].start;
				(*tombs)[ti].end = t->rt[j].end;
				(*tombs)[ti].seq = t->rt[j].seq;
				ti++;
			}
		}
	} else {
		*tombs = NULL;
	}
	if (rc) {
		for (size_t i = 0; i < n; i++) {
			iter_free(kids[i]);
			cache_release(db->table_cache, hs[i]);
		}
		free(kids);
		free(hs);
		return rc;
	}
	*n_tombs = ti;
	*out = iter_new_merge(kids, n);
	free(kids);
	*handles = hs;
	*n_handles = n;
	return 0;
}

/* Runs c (mutex held on entry and exit; released while writing). */
static int run_compaction_locked(lsm_db *db, struct compaction *c)
{
	struct version_edit e;
	struct compact_result res;
	int rc = 0;

	edit_init(&e);
	for (int l = 0; l < LSM_MAX_LEVELS; l++)
		for (size_t i = 0; i < c->n_inputs[l]; i++) {
			rc = edit_delete_file(&e, l, c->inputs[l][i]->number);
			if (rc)
				goto out;
		}
	if (c->trivial_move) {
		for (size_t i = 0; i < c->n_inputs[c->level] && !rc; i++) {
			struct file_meta *f = c->inputs[c->level][i];
			file_meta_ref(f);
			rc = edit_add_file(&e, c->out_level, f);
			if (rc)
				file_meta_unref(f);
		}
		db->vs->last_seq = atomic_load(&db->last_seq);
		if (!rc)
			rc = vset_apply(db->vs, &e);
		if (!rc)
			STAT_ADD(db, trivial_moves, 1);
		goto out;
	}

	{
		struct compact_out_opts o;
		struct compact_blob_hooks hooks;
		struct blob_gc gc;
		struct ikv_iter *in = NULL;
		struct tomb_in *tombs = NULL;
		size_t n_tombs = 0, n_handles = 0;
		struct cache_handle **handles = NULL;
		uint64_t *snaps;
		size_t n_snaps;
		uint64_t in_bytes = compaction_input_bytes(c);

		memset(&o, 0, sizeof(o));
		o.env = db->env;
		o.dir = db->dir;
		writer_opts(db, c->out_level, &o.wopts);
		o.wopts.time_lo = UINT64_MAX;
		for (int l = 0; l < LSM_MAX_LEVELS; l++)
			for (size_t i = 0; i < c->n_inputs[l]; i++) {
				struct file_meta *f = c->inputs[l][i];
				if (f->time_lo < o.wopts.time_lo)
					o.wopts.time_lo = f->time_lo;
				if (f->time_hi > o.wopts.time_hi)
					o.wopts.time_hi = f->time_hi;
			}
		o.target_file_size =
			c->single_output ? 0 : db->opts.target_file_size;
		o.max_grandparent_overlap = 10 * db->opts.target_file_size;
		o.grandparents = c->grandparents;
		o.n_grandparents = c->n_grandparents;
		o.v = c->keep_deletes ? NULL : c->v;
		o.out_level = c->out_level;
		o.new_file_number = db_new_file_number;
		o.ctx = db;
		rc = db_blob_gc_init(db, &gc, c->v);
		if (rc) {
			db_blob_gc_release(&gc, false);
			goto out;
		}
		db_blob_gc_hooks(&gc, &hooks);
		o.blob = &hooks;
		rc = db_snapshot_seqs_locked(db, &snaps, &n_snaps);
		if (rc) {
			db_blob_gc_release(&gc, false);
			goto out; /* no list, no guessing */
		}
		o.snapshots = snaps;
		o.n_snapshots = n_snaps;
		pthread_mutex_unlock(&db->mu);
		memset(&res, 0, sizeof(res));
		rc = compaction_input(db, c, &in, &tombs, &n_tombs, &handles,
				      &n_handles);
		if (!rc) {
			rc = compact_write(&o, in, tombs, n_tombs, &res);
			iter_free(in);
			for (size_t i = 0; i < n_handles; i++)
				cache_release(db->table_cache, handles[i]);
			free(handles);
			free(tombs);
		}
		if (!rc)
			rc = db_blob_gc_finish(&gc);
		pthread_mutex_lock(&db->mu);
		free(snaps);
		if (rc) {
			/* If compact_write succeeded, the blob output did
			 * not: its SSTs go too. */
			for (size_t i = 0; i < res.n_files; i++) {
				char path[4096];
				file_path(path, sizeof(path), db->dir,
					  res.files[i]->number, "sst");
				db->env->ops->remove_file(db->env, path);
			}
			compact_result_release(&res);
			db_blob_gc_release(&gc, true);
			goto out;
		}
		for (size_t i = 0; i < res.n_files && !rc; i++) {
			file_meta_ref(res.files[i]);
			rc = edit_add_file(&e, c->out_level, res.files[i]);
			if (rc)
				file_meta_unref(res.files[i]);
		}
		if (!rc)
			rc = db_blob_gc_edit(&gc, &e);
		db->vs->last_seq = atomic_load(&db->last_seq);
		if (!rc)
			rc = vset_apply(db->vs, &e);
		if (rc == 0) {
			STAT_ADD(db, blob_gc_bytes, gc.moved_bytes);
			for (size_t i = 0; i < e.n_blob_garbage; i++) {
				struct blob_meta *b = version_find_blob(
					c->v, e.blob_garbage[i].number);
				if (b && b->garbage_count >= b->linked_count)
					STAT_ADD(db, blob_files_dropped, 1);
			}
		}
		db_blob_gc_release(&gc, false);
		/* On failure the outputs stay (see do_flush_locked). */
		if (rc == 0) {
			if (c->kind == COMPACT_TIERED)
				STAT_ADD(db, tiered_merges, 1);
			else if (c->kind == COMPACT_TIERED_FULL)
				STAT_ADD(db, tiered_full_merges, 1);
			else if (c->kind == COMPACT_WINDOW)
				STAT_ADD(db, window_merges, 1);
			else if (c->kind == COMPACT_BLOB_GC)
				STAT_ADD(db, blob_gc_compactions, 1);
			STAT_ADD(db, compactions, 1);
			STAT_ADD(db, compaction_bytes_read, in_bytes);
			STAT_ADD(db, compaction_bytes_written,
				 res.bytes_written);
			STAT_LEVEL(db, c->out_level, in_bytes,
				   res.bytes_written);
		}
		compact_result_release(&res);
	}
out:
	edit_release(&e);
	if (rc == 0)
		db_install_sv_locked(db);
	return rc;
}

/* Drops the files the TTL expired (time-window with ttl_seconds > 0).
 * Returns 0 with *dropped telling whether the tree changed. */
static int ttl_drop_locked(lsm_db *db, bool *dropped)
{
	struct file_meta **files = NULL;
	int *levels = NULL;
	size_t n = 0;
	uint64_t bytes = 0;
	struct version_edit e;
	int rc;

	*dropped = false;
	if (db->pick.style != LSM_COMPACTION_TIME_WINDOW || !db->pick.ttl_us)
		return 0;
	rc = compact_ttl_expired(db->vs->current, &db->pick, wall_us(db),
				 &files, &levels, &n);
	if (rc || !n)
		return rc;
	edit_init(&e);
	for (size_t i = 0; i < n && !rc; i++) {
		rc = edit_delete_file(&e, levels[i], files[i]->number);
		bytes += files[i]->size;
	}
	if (!rc)
		rc = db_blob_files_garbage(db, files, n, &e);
	db->vs->last_seq = atomic_load(&db->last_seq);
	if (!rc)
		rc = vset_apply(db->vs, &e);
	edit_release(&e);
	if (!rc) {
		STAT_ADD(db, ttl_files_dropped, n);
		STAT_ADD(db, ttl_bytes_dropped, bytes);
		db_log(db, "ttl: dropped %zu files, %llu bytes", n,
		       (unsigned long long)bytes);
		db_install_sv_locked(db);
		*dropped = true;
	}
	free(files);
	free(levels);
	return rc;
}

int db_record_style(lsm_db *db)
{
	struct version_edit e;
	int rc = 0;
	pthread_mutex_lock(&db->mu);
	if (db->vs->style != (uint32_t)db->opts.compaction_style) {
		db_log(db, "compaction style %u -> %d", db->vs->style,
		       (int)db->opts.compaction_style);
		edit_init(&e);
		e.has_style = true;
		e.style = (uint32_t)db->opts.compaction_style;
		rc = vset_apply(db->vs, &e);
		edit_release(&e);
	}
	pthread_mutex_unlock(&db->mu);
	return rc;
}

static bool compaction_allowed_locked(lsm_db *db)
{
	return !db->shutting_down && !db->manual_waiting &&
	       (!db->bg_error || db->bg_error == -ENOSPC) &&
	       db->n_compactions < db->opts.background_threads;
}

static void *bg_main(void *arg)
{
	lsm_db *db = arg;
	uint64_t compaction_backoff_us = 0;

	pthread_mutex_lock(&db->mu);
	while (!db->shutting_down) {
		struct compaction *c = NULL;
		if (db->n_imm > 0 && !db->flush_running && !db->bg_error) {
			do_flush_locked(db);
			continue;
		}
		if (compaction_allowed_locked(db) && !db->bg_error) {
			bool dropped = false;
			int rc = ttl_drop_locked(db, &dropped);
			if (rc) {
				db_log(db, "ttl drop failed: %s (%s)",
				       lsm_strerror(rc), lsm_errdetail());
				STAT_ADD(db, bg_errors, 1);
			} else if (dropped) {
				pthread_cond_broadcast(&db->bg_cv);
				continue;
			}
		}
		if (compaction_allowed_locked(db) && !db->bg_error &&
		    compact_pick_style(db->vs->current, &db->pick, wall_us(db),
				       &c) == 0 &&
		    !c && db->n_compactions == 0)
			db_blob_pick_gc_locked(db, &c);
		if (c) {
			int rc;
			db->n_compactions++;
			rc = run_compaction_locked(db, c);
			compaction_free(c);
			db->n_compactions--;
			pthread_cond_broadcast(&db->bg_cv);
			pthread_cond_broadcast(&db->work_cv);
			if (rc == 0) {
				compaction_backoff_us = 0;
				continue;
			}
			db_log(db, "compaction failed: %s (%s)",
			       lsm_strerror(rc), lsm_errdetail());
			STAT_ADD(db, bg_errors, 1);
			if (rc == LSM_E_CORRUPT || rc == -EIO) {
				if (!db->bg_error)
					db->bg_error = rc;
				continue;
			}
			/* Pause before trying again (out of space, memory). */
			compaction_backoff_us =
				compaction_backoff_us
					? compaction_backoff_us * 2
					: 100000;
			if (compaction_backoff_us > 5000000)
				compaction_backoff_us = 5000000;
		}
		if (compaction_backoff_us || (db->bg_error == -ENOSPC)) {
			struct timespec dl;
			uint64_t wait = compaction_backoff_us
						? compaction_backoff_us
						: 100000;
			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_sec += (time_t)(wait / 1000000);
			dl.tv_nsec += (long)(wait % 1000000) * 1000;
			if (dl.tv_nsec >= 1000000000) {
				dl.tv_sec++;
				dl.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&db->work_cv, &db->mu, &dl);
			if (db->bg_error == -ENOSPC) {
				/* Space may have been freed: retry. */
				db->bg_error = 0;
			}
			compaction_backoff_us = 0;
			continue;
		}
		if (db->pick.style == LSM_COMPACTION_TIME_WINDOW) {
			struct timespec dl;
			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_sec += 1;
			pthread_cond_timedwait(&db->work_cv, &db->mu, &dl);
			continue;
		}
		pthread_cond_wait(&db->work_cv, &db->mu);
	}
	pthread_mutex_unlock(&db->mu);
	return NULL;
}

uint64_t bg_work_locked(lsm_db *db)
{
	uint64_t n = (uint64_t)db->n_imm + (uint64_t)db->n_compactions;
	struct compaction *c = NULL;
	struct file_meta **files = NULL;
	int *levels = NULL;
	size_t n_ttl = 0;

	if (db->flush_running)
		n++;
	if (!db->vs || db->shutting_down)
		return n;
	/* Ask the picker; dropping its pick frees the files it marked. */
	if (compact_pick_style(db->vs->current, &db->pick, wall_us(db), &c) ==
		    0 &&
	    c) {
		n++;
		compaction_free(c);
	}
	if (db->pick.style == LSM_COMPACTION_TIME_WINDOW && db->pick.ttl_us &&
	    compact_ttl_expired(db->vs->current, &db->pick, wall_us(db), &files,
				&levels, &n_ttl) == 0 &&
	    n_ttl)
		n++;
	free(files);
	free(levels);
	return n;
}

void bg_schedule_locked(lsm_db *db)
{
	pthread_cond_broadcast(&db->work_cv);
}

int bg_start(lsm_db *db)
{
	int n = db->opts.background_threads;
	db->threads = calloc((size_t)n, sizeof(pthread_t));
	if (!db->threads)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		int rc = pthread_create(&db->threads[i], NULL, bg_main, db);
		if (rc) {
			bg_stop(db);
			return -rc;
		}
		db->n_threads++;
	}
	pthread_mutex_lock(&db->mu);
	bg_schedule_locked(db);
	pthread_mutex_unlock(&db->mu);
	return 0;
}

void bg_stop(lsm_db *db)
{
	pthread_mutex_lock(&db->mu);
	db->shutting_down = true;
	pthread_cond_broadcast(&db->work_cv);
	pthread_cond_broadcast(&db->bg_cv);
	pthread_mutex_unlock(&db->mu);
	for (int i = 0; i < db->n_threads; i++)
		pthread_join(db->threads[i], NULL);
	free(db->threads);
	db->threads = NULL;
	db->n_threads = 0;
}

int db_flush_wait(lsm_db *db)
{
	int rc = 0;
	uint64_t target;
	pthread_mutex_lock(&db->mu);
	if (!mem_is_empty(db->mem)) {
		/* Take the writer queue's place: no write may run while the
		 * memtable switches. Wait until no leader is active. */
		struct writer w, *next;
		memset(&w, 0, sizeof(w));
		atomic_init(&w.state, WRITER_WAITING);
		if (db->wq_tail)
			db->wq_tail->next = &w;
		else
			db->wq_head = &w;
		db->wq_tail = &w;
		db_writer_queued_locked(db);
		if (db->wq_head != &w) {
			pthread_mutex_unlock(&db->mu);
			db_writer_sleep(db, &w, 0); /* until at the head */
			pthread_mutex_lock(&db->mu);
		}
		if (db->bg_error == -ENOSPC)
			db->bg_error = 0; /* an explicit flush retries */
		rc = db->bg_error ? db->bg_error
				  : db_switch_memtable_locked(db);
		db->wq_head = w.next;
		if (!db->wq_head)
			db->wq_tail = NULL;
		next = db->wq_head;
		if (next) {
			/* Wake the next leader without mu, as write_batch. */
			pthread_mutex_unlock(&db->mu);
			atomic_store(&next->state, WRITER_LEAD);
			db_writers_wake(db);
			pthread_mutex_lock(&db->mu);
		}
	}
	/* Wait until every memtable made immutable so far is flushed. */
	target = db->imm_created;
	while (rc == 0 && db->imm_flushed < target) {
		if (db->shutting_down) {
			rc = LSM_E_CLOSED;
			break;
		}
		if (db->bg_error) {
			rc = db->bg_error;
			break;
		}
		bg_schedule_locked(db);
		pthread_cond_wait(&db->bg_cv, &db->mu);
	}
	pthread_mutex_unlock(&db->mu);
	return rc;
}

int db_compact_range(lsm_db *db, const struct slice *lo, const struct slice *hi)
{
	struct compaction *c = NULL;
	int rc;
	pthread_mutex_lock(&db->mu);
	db->manual_waiting++;
	for (;;) {
		if (db->shutting_down) {
			rc = LSM_E_CLOSED;
			break;
		}
		if (db->bg_error) {
			rc = db->bg_error;
			break;
		}
		rc = compact_pick_range(db->vs->current, &db->pick, lo, hi, &c);
		if (rc != -EAGAIN)
			break;
		pthread_cond_wait(&db->bg_cv, &db->mu);
	}
	db->manual_waiting--;
	if (rc == 0 && c) {
		db->n_compactions++;
		rc = run_compaction_locked(db, c);
		compaction_free(c);
		db->n_compactions--;
	}
	pthread_cond_broadcast(&db->bg_cv);
	bg_schedule_locked(db);
	pthread_mutex_unlock(&db->mu);
	return rc;
}
