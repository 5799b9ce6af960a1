/*
 * db.c - the database: open and recovery, the write path with group
 * commit, point reads, snapshots, properties, close.
 *
 * Write path. Writers queue on db->mu. The writer at the head is the
 * leader: it makes room (switching to a new memtable and WAL when the
 * current one is full, waiting when flushes or compactions fall behind),
 * gathers the batches queued behind it into one group, assigns the group
 * a range of sequence numbers, and then, without the mutex, appends the
 * group to the WAL as one record, hands it to the OS (so a killed process
 * loses nothing acknowledged), fsyncs once if any writer asked for
 * durability, and applies the group to the memtable. Then it publishes
 * the last sequence number, which makes the group visible to readers, and
 * wakes the writers of its group (struct writer in db_int.h: synced
 * writers spin for about a sync before they sleep on one futex word, and
 * one wake-up serves the group). A sync leader may first wait briefly
 * for more writers (gather_sync_group_locked).
 *
 * Invariants:
 *  1. Only the leader touches db->wal and inserts into db->mem, so the
 *     memtable has one writer at a time, as it requires.
 *  2. A group becomes visible (last_seq) only after it is in the WAL and
 *     the memtable; a sync group only after its fsync.
 *  3. A WAL is deleted only after the manifest records that every
 *     memtable it fed is in an SST (log_number passed it).
 *  4. After a WAL append fails, that WAL receives nothing more: the next
 *     writer starts a new WAL and memtable (wal_error), so a torn record
 *     can only be the last one of its file, which recovery tolerates.
 *
 * Recovery: lock the directory, replay the MANIFEST named by CURRENT,
 * check that every SST it lists exists, replay every WAL not yet retired
 * into memtables written out as L0 files, then record everything in a
 * fresh MANIFEST and start a fresh WAL. The old WALs are deleted only after
 * that manifest is current.
 *
 * Thread-safety: every public function may be called from any thread.
 * Readers take a superversion reference under sv_mu and read without
 * locks.
 */
#include "db_int.h"

#include "db_blob.h"

#include "iter/rangedel.h"
#include "util/ikey.h"
#include "util/status.h"
#include "wal/wal_format.h"

#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void db_log(lsm_db *db, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (db->opts.log_fn) {
		db->opts.log_fn(db->opts.log_ctx, line);
	} else if (db->log_file) {
		struct timespec ts;
		struct tm tm;
		char stamp[32];
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(db->log_file, "%s.%06ldZ %s\n", stamp,
			ts.tv_nsec / 1000, line);
		fflush(db->log_file);
	}
}

uint64_t db_new_file_number(void *arg)
{
	lsm_db *db = arg;
	uint64_t n;
	pthread_mutex_lock(&db->mu);
	n = vset_new_file_number(db->vs);
	pthread_mutex_unlock(&db->mu);
	return n;
}

/* ---- superversions ---- */

struct superversion *db_sv_get(lsm_db *db)
{
	struct superversion *sv;
	pthread_mutex_lock(&db->sv_mu);
	sv = db->sv;
	atomic_fetch_add_explicit(&sv->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&db->sv_mu);
	return sv;
}

void db_sv_put(struct superversion *sv)
{
	if (!sv ||
	    atomic_fetch_sub_explicit(&sv->refs, 1, memory_order_acq_rel) != 1)
		return;
	mem_unref(sv->mem);
	for (int i = 0; i < sv->n_imm; i++)
		mem_unref(sv->imm[i]);
	version_unref(sv->v);
	for (int i = 0; i < sv->n_blobs; i++)
		blob_meta_unref(sv->blobs[i]);
	free(sv);
}

void db_install_sv_locked(lsm_db *db)
{
	struct superversion *sv = calloc(1, sizeof(*sv)), *old;
	if (!sv) {
		/* Keep the old one: readers see a slightly stale but
		 * consistent state; the next install retries. Writers are
		 * not affected. */
		db_log(db, "out of memory installing a superversion");
		return;
	}
	atomic_init(&sv->refs, 1);
	sv->mem = db->mem;
	mem_ref(sv->mem);
	for (int i = 0; i < db->n_imm; i++) {
		sv->imm[i] = db->imm[db->n_imm - 1 - i].mem;
		mem_ref(sv->imm[i]);
	}
	sv->n_imm = db->n_imm;
	sv->v = vset_current_ref(db->vs);
	for (int i = -1; i < db->n_imm; i++) {
		struct blob_meta *b = i < 0 ? db->mem_blob : db->imm[i].blob;
		if (b) {
			blob_meta_ref(b);
			sv->blobs[sv->n_blobs++] = b;
		}
	}
	pthread_mutex_lock(&db->sv_mu);
	old = db->sv;
	db->sv = sv;
	pthread_mutex_unlock(&db->sv_mu);
	db_sv_put(old);
	db->pending_compaction_bytes = compact_pending_bytes(sv->v, &db->pick);
}

/* ---- open and recovery ---- */

/* A memtable with a point-key filter of 1/64 of the write buffer (1 MiB
 * for 64 MiB: about 8 bits per 64 bytes of entries), so a get of a key
 * that lives in the files skips the skiplist (mem/memtable.c). */
struct memtable *db_mem_new(lsm_db *db)
{
	return mem_new_filtered(db->opts.write_buffer_size / 64);
}

static int apply_to_mem(void *ctx, uint64_t seq, unsigned kind,
			struct slice key, struct slice value)
{
	return mem_add(ctx, seq, kind, key, value);
}

struct replay {
	lsm_db *db;
	struct memtable *mem;
	struct version_edit *edit;
	uint64_t max_seq;
};

/* What recovery needs to know of a WAL before replaying the one before
 * it: does it start with an "abandoned" marker, and does it hold writes? */
struct wal_info {
	uint64_t number;
	bool has_marker;
	uint64_t marker_prev, marker_len;
	bool has_data;
};

static bool is_marker(struct slice rec)
{
	return rec.len >= BATCH_HEADER && batch_get_seq(rec.p) == 0 &&
	       batch_get_count(rec.p) == 0;
}

/* Parses a marker record; LSM_E_CORRUPT if it is malformed. */
static int parse_marker(struct slice rec, const char *path, uint64_t off,
			struct wal_info *wi)
{
	const uint8_t *p = rec.p + BATCH_HEADER, *end = rec.p + rec.len;
	if (p < end && *p == WAL_MARKER_ABANDONED) {
		p = get_varint64(p + 1, end, &wi->marker_prev);
		if (p)
			p = get_varint64(p, end, &wi->marker_len);
		if (p == end) {
			wi->has_marker = true;
			return 0;
		}
	}
	return LSM_CORRUPT("%s: record at offset %llu: malformed WAL marker",
			   path, (unsigned long long)off);
}

/* Reads the first records of a WAL: marker and whether it holds data. */
static int peek_wal(lsm_db *db, struct wal_info *wi)
{
	struct wal_reader *r;
	char path[4096];
	struct slice rec;
	uint64_t off;
	int rc;

	file_path(path, sizeof(path), db->dir, wi->number, "log");
	rc = walr_open(db->env, path, &r);
	if (rc)
		return rc;
	for (int i = 0; i < 2 && (rc = walr_next(r, &rec, &off)) == 1; i++) {
		if (i == 0 && is_marker(rec)) {
			rc = parse_marker(rec, path, off, wi);
			if (rc)
				break;
			continue;
		}
		wi->has_data = true;
		break;
	}
	walr_close(r);
	return rc < 0 ? rc : 0;
}

/*
 * Replays one WAL into the recovery memtable. `limit` is where its good
 * part ends, if the next WAL's marker says so (UINT64_MAX if not); a torn
 * tail is accepted only at or past that point, or, without a marker, only
 * if no later WAL holds writes: otherwise acknowledged writes would vanish
 * from the middle of the history.
 */
static int replay_wal(struct replay *rp, uint64_t number, uint64_t limit,
		      bool later_has_data)
{
	lsm_db *db = rp->db;
	struct wal_reader *r;
	char path[4096];
	struct slice rec;
	uint64_t off, torn_off, good_end = 0, torn_at = 0;
	bool blob_torn = false;
	int rc;

	file_path(path, sizeof(path), db->dir, number, "log");
	rc = walr_open(db->env, path, &r);
	if (rc)
		return rc;
	while ((rc = walr_next(r, &rec, &off)) == 1) {
		uint64_t seq, count;
		if (off >= limit) {
			/* the abandoned, unacknowledged tail */
			rc = 0;
			break;
		}
		good_end = off + WAL_HEADER_LEN + rec.len;
		if (is_marker(rec)) {
			struct wal_info wi = {0};
			rc = parse_marker(rec, path, off, &wi);
			if (rc)
				break;
			continue;
		}
		if (rec.len < BATCH_HEADER) {
			rc = LSM_CORRUPT("%s: record at offset %llu is too "
					 "short for a batch",
					 path, (unsigned long long)off);
			break;
		}
		seq = batch_get_seq(rec.p);
		count = batch_get_count(rec.p);
		{
			bool durable = true;
			rc = db_blob_check_batch(db, rec, path, off, &durable);
			if (rc)
				break;
			if (!durable) {
				/* Its blob never reached the disk: this is
				 * where the durable history ends. */
				blob_torn = true;
				torn_at = off;
				break;
			}
		}
		rc = batch_iterate(rec.p, rec.len, apply_to_mem, rp->mem, path,
				   off);
		if (rc)
			break;
		if (count && seq + count - 1 > rp->max_seq)
			rp->max_seq = seq + count - 1;
		if (mem_usage(rp->mem) > db->opts.write_buffer_size &&
		    !db->opts.read_only) {
			rc = db_write_level0(db, rp->mem, rp->edit);
			if (rc)
				break;
			mem_unref(rp->mem);
			rp->mem = db_mem_new(db);
			if (!rp->mem) {
				rc = -ENOMEM;
				break;
			}
		}
	}
	if (rc == 0 && blob_torn) {
		/* Like a torn tail: fine unless acknowledged writes follow,
		 * or the WAL ends cleanly (trimmed), which it does only after
		 * its blob file was synced: then the value is damaged. */
		struct slice rest;
		uint64_t rest_off;
		int more;
		while ((more = walr_next(r, &rest, &rest_off)) == 1)
			;
		if (more < 0) {
			walr_close(r);
			return more;
		}
		if (!walr_torn(r, NULL))
			rc = LSM_CORRUPT("%s: record at offset %llu refers to "
					 "a blob value that is damaged or "
					 "missing, in a WAL closed cleanly",
					 path, (unsigned long long)torn_at);
		else if (later_has_data ||
			 (limit != UINT64_MAX && torn_at < limit))
			rc = LSM_CORRUPT("%s: record at offset %llu refers to "
					 "a blob value that is missing, but "
					 "later records were acknowledged",
					 path, (unsigned long long)torn_at);
		else
			db_log(db,
			       "%s: replay ends at offset %llu (a value in a "
			       "blob file was never made durable)",
			       path, (unsigned long long)torn_at);
		walr_close(r);
		return rc;
	}
	if (rc == 0 && limit != UINT64_MAX && good_end < limit &&
	    !(walr_torn(r, &torn_off) && torn_off >= limit))
		rc = LSM_CORRUPT("%s: ends at offset %llu, but the next WAL "
				 "records its writes up to offset %llu",
				 path, (unsigned long long)good_end,
				 (unsigned long long)limit);
	if (rc == 0 && limit == UINT64_MAX && walr_torn(r, &torn_off)) {
		if (later_has_data)
			rc = LSM_CORRUPT("%s: damaged at offset %llu, but a "
					 "later WAL holds newer writes",
					 path, (unsigned long long)torn_off);
		else
			db_log(db,
			       "%s: torn tail at offset %llu ignored (writes "
			       "that were never acknowledged as durable)",
			       path, (unsigned long long)torn_off);
	}
	walr_close(r);
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Parses "<digits>.<suffix>"; 0 if the name is not of that form. */
static uint64_t parse_numbered(const char *name, const char *suffix)
{
	uint64_t n = 0;
	const char *p = name;
	if (*p < '0' || *p > '9')
		return 0;
	while (*p >= '0' && *p <= '9') {
		n = n * 10 + (uint64_t)(*p - '0');
		p++;
	}
	return *p == '.' && strcmp(p + 1, suffix) == 0 ? n : 0;
}

static bool version_has_file(const struct version *v, uint64_t number)
{
	for (int l = 0; l < LSM_MAX_LEVELS; l++)
		for (size_t i = 0; i < v->n_files[l]; i++)
			if (v->files[l][i]->number == number)
				return true;
	return false;
}

static bool wal_listed(const uint64_t *w, size_t n, uint64_t number)
{
	for (size_t i = 0; i < n; i++)
		if (w[i] == number)
			return true;
	return false;
}

/* Checks that every SST the manifest lists is there and collects the
 * WALs to replay. */
static int scan_dir(lsm_db *db, uint64_t **wals, size_t *n_wals)
{
	char **names;
	size_t n, nw = 0;
	struct version *v = db->vs->current;
	uint64_t *w;
	int rc = db->env->ops->list_dir(db->env, db->dir, &names, &n);
	if (rc)
		return rc;
	w = malloc((n ? n : 1) * sizeof(*w));
	if (!w) {
		env_free_names(names, n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t num = parse_numbered(names[i], "log");
		if (num && num >= db->vs->log_number)
			w[nw++] = num;
	}
	for (int l = 0; l < LSM_MAX_LEVELS && !rc; l++)
		for (size_t i = 0; i < v->n_files[l] && !rc; i++) {
			uint64_t num = v->files[l][i]->number;
			bool found = false;
			for (size_t j = 0; j < n && !found; j++)
				found = parse_numbered(names[j], "sst") == num;
			if (!found)
				rc = LSM_CORRUPT("%s/%06llu.sst: listed in the "
						 "manifest (level %d) but "
						 "missing",
						 db->dir,
						 (unsigned long long)num, l);
		}
	for (size_t i = 0; i < v->n_blobs && !rc; i++) {
		uint64_t num = v->blobs[i]->number;
		bool found = false;
		for (size_t j = 0; j < n && !found; j++)
			found = parse_numbered(names[j], "blob") == num;
		if (!found)
			rc = LSM_CORRUPT("%s/%06llu.blob: listed in the "
					 "manifest but missing",
					 db->dir, (unsigned long long)num);
	}
	if (!rc)
		rc = db_blob_recover_scan(db, names, n, parse_numbered);
	/* The WAL the manifest names as the oldest live one exists until a
	 * later, synced edit retires it. If it is gone, the manifest lost
	 * that edit: its last record was damaged, not merely torn. */
	if (!rc && db->vs->log_number &&
	    (nw == 0 || !wal_listed(w, nw, db->vs->log_number)))
		rc = LSM_CORRUPT("%s/MANIFEST-%06llu: its last edit is lost "
				 "(WAL %06llu it relies on is missing)",
				 db->dir,
				 (unsigned long long)db->vs->manifest_number,
				 (unsigned long long)db->vs->log_number);
	env_free_names(names, n);
	if (rc) {
		free(w);
		return rc;
	}
	qsort(w, nw, sizeof(*w), cmp_u64);
	*wals = w;
	*n_wals = nw;
	return 0;
}

/* Removes files no longer part of the store: retired WALs, SSTs the
 * current version does not list (a crashed flush or compaction's output),
 * old manifests and temporary files. Runs at open before any thread. */
static void delete_leftovers(lsm_db *db)
{
	char **names, path[4096];
	size_t n;
	if (db->env->ops->list_dir(db->env, db->dir, &names, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		const char *nm = names[i];
		uint64_t num;
		bool del = false;
		if ((num = parse_numbered(nm, "log")))
			del = num < db->vs->log_number;
		else if ((num = parse_numbered(nm, "sst")))
			del = !version_has_file(db->vs->current, num);
		else if ((num = parse_numbered(nm, "blob")))
			del = !version_find_blob(db->vs->current, num);
		else if (strncmp(nm, "MANIFEST-", 9) == 0)
			del = strtoull(nm + 9, NULL, 10) !=
			      db->vs->manifest_number;
		else if (strcmp(nm, "CURRENT.tmp") == 0)
			del = true;
		if (!del)
			continue;
		snprintf(path, sizeof(path), "%s/%s", db->dir, nm);
		if (db->env->ops->remove_file(db->env, path) == 0)
			db_log(db, "removed leftover %s", nm);
	}
	env_free_names(names, n);
}

/* Does the directory hold any file a store writes besides LOCK and LOG? */
static bool holds_store_files(lsm_db *db)
{
	char **names;
	size_t n;
	bool found = false;
	if (db->env->ops->list_dir(db->env, db->dir, &names, &n))
		return false;
	for (size_t i = 0; i < n && !found; i++)
		found = parse_numbered(names[i], "log") ||
			parse_numbered(names[i], "sst") ||
			parse_numbered(names[i], "blob") ||
			strncmp(names[i], "MANIFEST-", 9) == 0;
	env_free_names(names, n);
	return found;
}

static int recover(lsm_db *db)
{
	struct vset_config cfg = {db->env, db->dir, LSM_MAX_LEVELS,
				  db->table_cache};
	struct version_edit edit;
	struct replay rp;
	uint64_t *wals = NULL;
	struct wal_info *infos = NULL;
	size_t n_wals = 0;
	int rc;

	rc = vset_recover(&cfg, &db->vs);
	if (rc == LSM_E_NOSTORE && holds_store_files(db)) {
		return LSM_CORRUPT("%s: CURRENT is missing but the directory "
				   "holds store files (manifest, SSTs or "
				   "WALs); refusing to create a new store "
				   "over them",
				   db->dir);
	}
	if (rc == LSM_E_NOSTORE) {
		if (!db->opts.create_if_missing || db->opts.read_only)
			return lsm_err(LSM_E_NOSTORE,
				       "%s: no store here (and "
				       "create_if_missing is off)",
				       db->dir);
		rc = vset_create(&cfg, &db->vs);
		if (rc)
			return rc;
		db_log(db, "created a new store in %s", db->dir);
	} else if (rc) {
		return rc;
	} else if (db->opts.error_if_exists) {
		return lsm_err(LSM_E_EXISTS,
			       "%s: a store exists and "
			       "error_if_exists is set",
			       db->dir);
	}
	rc = scan_dir(db, &wals, &n_wals);
	if (rc)
		return rc;

	edit_init(&edit);
	rp.db = db;
	rp.edit = &edit;
	rp.max_seq = db->vs->last_seq;
	rp.mem = db_mem_new(db);
	if (!rp.mem) {
		rc = -ENOMEM;
		goto out;
	}
	infos = calloc(n_wals ? n_wals : 1, sizeof(*infos));
	if (!infos) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n_wals && !rc; i++) {
		infos[i].number = wals[i];
		rc = peek_wal(db, &infos[i]);
	}
	for (size_t i = 0; i < n_wals && !rc; i++) {
		uint64_t limit = UINT64_MAX;
		bool later = false;
		if (i + 1 < n_wals && infos[i + 1].has_marker &&
		    infos[i + 1].marker_prev == wals[i])
			limit = infos[i + 1].marker_len;
		for (size_t j = i + 1; j < n_wals; j++)
			later = later || infos[j].has_data;
		rc = replay_wal(&rp, wals[i], limit, later);
		if (wals[i] >= db->vs->next_file)
			db->vs->next_file = wals[i] + 1;
	}
	if (!rc && db->opts.read_only) {
		/* Everything stays as it is: the replayed writes are served
		 * from memory, nothing is written. */
		db->vs->last_seq = rp.max_seq;
		atomic_store(&db->last_seq, rp.max_seq);
		db->mem = rp.mem;
		rp.mem = NULL;
		goto out;
	}
	if (!rc && !mem_is_empty(rp.mem))
		rc = db_write_level0(db, rp.mem, &edit);
	if (rc)
		goto out;

	db->wal_number = vset_new_file_number(db->vs);
	{
		char path[4096];
		file_path(path, sizeof(path), db->dir, db->wal_number, "log");
		rc = walw_open_reserved(db->env, path, DB_WAL_RESERVE,
					&db->wal);
		if (rc)
			goto out;
		/* The manifest is about to name this WAL as the oldest live
		 * one: its directory entry must be durable first. */
		rc = db->env->ops->sync_dir(db->env, db->dir);
		if (rc)
			goto out;
	}
	db->vs->last_seq = rp.max_seq;
	edit.has_log_number = true;
	edit.log_number = db->wal_number;
	rc = db_blob_recover_edit(db, &edit);
	if (rc)
		goto out;
	/* vset has no open manifest after recovery: this writes a fresh one
	 * with the whole state and switches CURRENT to it. */
	rc = vset_apply(db->vs, &edit);
	if (rc)
		goto out;
	atomic_store(&db->last_seq, rp.max_seq);
	db->mem = db_mem_new(db);
	if (!db->mem) {
		rc = -ENOMEM;
		goto out;
	}
	rc = db_blob_meta_locked(db);
	if (rc)
		goto out;
	delete_leftovers(db);
	if (n_wals)
		db_log(db, "recovered %zu WAL file(s); last sequence %llu",
		       n_wals, (unsigned long long)rp.max_seq);
out:
	if (rp.mem)
		mem_unref(rp.mem);
	edit_release(&edit);
	db_blob_recover_release(db);
	free(infos);
	free(wals);
	return rc;
}

static void db_free(lsm_db *db)
{
	if (db->wal)
		walw_close(db->wal);
	if (db->blob)
		blobw_close(db->blob, false);
	for (int i = 0; i < db->n_imm; i++)
		blob_meta_unref(db->imm[i].blob);
	blob_meta_unref(db->mem_blob);
	db_blob_recover_release(db);
	db_sv_put(db->sv);
	for (int i = 0; i < db->n_imm; i++)
		mem_unref(db->imm[i].mem);
	if (db->mem)
		mem_unref(db->mem);
	vset_free(db->vs);
	if (db->table_cache)
		cache_free(db->table_cache);
	if (db->block_cache)
		cache_free(db->block_cache);
	if (db->lock)
		db->env->ops->unlock_file(db->env, db->lock);
	if (db->log_file)
		fclose(db->log_file);
	batch_release(&db->group);
	batch_release(&db->sep);
	pthread_mutex_destroy(&db->mu);
	pthread_mutex_destroy(&db->sv_mu);
	pthread_cond_destroy(&db->bg_cv);
	pthread_cond_destroy(&db->work_cv);
	free(db->dir);
	free(db);
}

int lsm_open(const char *path, const lsm_options *opts, lsm_db **out)
{
	lsm_db *db;
	char lpath[4096];
	struct stat st;
	int rc;

	lsm_err_clear();
	if (out)
		*out = NULL;
	if (!path || !*path || !out)
		return lsm_err(-EINVAL, "lsm_open: no path given");
	if (strlen(path) > 3800)
		return lsm_err(-ENAMETOOLONG, "lsm_open: path too long");
	db = calloc(1, sizeof(*db));
	if (!db)
		return -ENOMEM;
	if (opts)
		db->opts = *opts;
	else
		lsm_options_init(&db->opts);
	pthread_mutex_init(&db->mu, NULL);
	pthread_mutex_init(&db->sv_mu, NULL);
	pthread_cond_init(&db->bg_cv, NULL);
	pthread_cond_init(&db->work_cv, NULL);
	db->snaps.next = db->snaps.prev = &db->snaps;
	db->dir = strdup(path);
	if (!db->dir || batch_init(&db->group) || batch_init(&db->sep)) {
		rc = -ENOMEM;
		goto out_free;
	}
	rc = options_validate(&db->opts);
	if (rc)
		goto out_free;
	db->env = db->opts.env ? db->opts.env : env_posix();
	db->pick.num_levels = LSM_MAX_LEVELS;
	db->pick.level0_trigger = db->opts.level0_compaction_trigger;
	db->pick.level0_size_percent = db->opts.level0_size_percent;
	db->pick.base_bytes = db->opts.max_bytes_for_level_base;
	db->pick.multiplier = db->opts.level_size_multiplier;
	db->pick.target_file_size = db->opts.target_file_size;
	db->pick.style = db->opts.compaction_style;
	db->pick.min_merge_width = db->opts.min_merge_width;
	db->pick.max_merge_width = db->opts.max_merge_width;
	db->pick.size_ratio_percent = db->opts.size_ratio_percent;
	db->pick.max_size_amp_percent = db->opts.max_size_amplification_percent;
	db->pick.window_us = db->opts.window_seconds * 1000000;
	db->pick.ttl_us = db->opts.ttl_seconds * 1000000;

	if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
		rc = lsm_err(-ENOTDIR, "%s: not a directory", path);
		goto out_free;
	}
	if (db->opts.create_if_missing && !db->opts.read_only) {
		rc = db->env->ops->make_dir(db->env, path);
		if (rc)
			goto out_free;
	} else if (db->env->ops->file_exists(db->env, path) != 1) {
		rc = lsm_err(LSM_E_NOSTORE, "%s: no such directory", path);
		goto out_free;
	}
	snprintf(lpath, sizeof(lpath), "%s/LOCK", path);
	rc = db->env->ops->lock_file(db->env, lpath, &db->lock);
	if (rc) {
		if (rc == LSM_E_BUSY)
			lsm_err(LSM_E_BUSY,
				"%s: store is in use (locked by another "
				"process or another open handle)",
				path);
		goto out_free;
	}
	if (!db->opts.log_fn && !db->opts.read_only) {
		snprintf(lpath, sizeof(lpath), "%s/LOG", path);
		db->log_file = fopen(lpath, "ae");
	}
	db->block_cache = cache_new(db->opts.block_cache_bytes, 4);
	db->table_cache = cache_new((size_t)db->opts.max_open_files - 10, 4);
	if (!db->block_cache || !db->table_cache) {
		rc = -ENOMEM;
		goto out_free;
	}
	db->tcopts.env = db->env;
	db->tcopts.dir = db->dir;
	db->tcopts.block_cache =
		db->opts.block_cache_bytes ? db->block_cache : NULL;
	db->tcopts.verify_checksums = db->opts.paranoid_checks;

	rc = recover(db);
	if (!rc)
		rc = db_load_identity(db);
	if (!rc)
		rc = db_record_style(db);
	if (rc)
		goto out_free;
	pthread_mutex_lock(&db->mu);
	db_install_sv_locked(db);
	pthread_mutex_unlock(&db->mu);
	if (!db->sv) {
		rc = -ENOMEM;
		goto out_free;
	}
	rc = db->opts.read_only ? 0 : bg_start(db);
	if (rc)
		goto out_free;
	db_log(db, "opened %s", path);
	*out = db;
	return 0;

out_free : {
	/* Keep the detail of the first failure. */
	char detail[512];
	snprintf(detail, sizeof(detail), "%s", lsm_errdetail());
	db_free(db);
	if (detail[0])
		lsm_err(rc, "%s", detail);
}
	return rc;
}

int lsm_close(lsm_db *db)
{
	int rc;
	if (!db)
		return 0;
	bg_stop(db);
	pthread_mutex_lock(&db->mu);
	rc = db->bg_error;
	if (db->blob) {
		int brc = db_blob_close_locked(db);
		if (brc && !rc)
			rc = brc;
	}
	if (db->wal && !db->wal_error) {
		int wrc = walw_trim(db->wal);
		if (wrc && !rc)
			rc = wrc;
	}
	pthread_mutex_unlock(&db->mu);
	db_log(db, "closed");
	db_free(db);
	return rc;
}

int lsm_destroy(const char *path, const lsm_options *opts)
{
	lsm_env *env = opts && opts->env ? opts->env : env_posix();
	char **names, p[4096];
	size_t n;
	int rc;
	if (!path)
		return -EINVAL;
	rc = env->ops->list_dir(env, path, &names, &n);
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		const char *nm = names[i];
		if (parse_numbered(nm, "log") || parse_numbered(nm, "sst") ||
		    strncmp(nm, "MANIFEST-", 9) == 0 ||
		    strcmp(nm, "CURRENT") == 0 || strcmp(nm, "LOCK") == 0 ||
		    strcmp(nm, "LOG") == 0 || strcmp(nm, "CURRENT.tmp") == 0 ||
		    strcmp(nm, "IDENTITY") == 0 ||
		    strcmp(nm, "IDENTITY.tmp") == 0) {
			snprintf(p, sizeof(p), "%s/%s", path, nm);
			env->ops->remove_file(env, p);
		}
	}
	env_free_names(names, n);
	return env->ops->remove_dir(env, path);
}

int db_refuse_read_only(lsm_db *db)
{
	return lsm_err(-EROFS, "%s: opened read-only", db->dir);
}

/* ---- writes ---- */

static int open_new_wal_locked(lsm_db *db)
{
	struct wal_writer *w;
	char path[4096];
	uint64_t number = vset_new_file_number(db->vs);
	int rc;
	file_path(path, sizeof(path), db->dir, number, "log");
	rc = walw_open_reserved(db->env, path, DB_WAL_RESERVE, &w);
	if (!rc) {
		/* A synced write to the new WAL must not be lost with the
		 * file's directory entry. */
		rc = db->env->ops->sync_dir(db->env, db->dir);
		if (rc) {
			walw_close(w);
			db->env->ops->remove_file(db->env, path);
		}
	}
	if (rc)
		return rc;
	if (db->wal && db->wal_error) {
		/* The old WAL may end in the failed, unacknowledged group.
		 * Say where its good part ends, first thing in the new one,
		 * so that recovery stops there and can still tell a damaged
		 * older WAL from this one. */
		uint8_t m[BATCH_HEADER + 1 + 20], *q = m + BATCH_HEADER;
		memset(m, 0, BATCH_HEADER);
		*q++ = WAL_MARKER_ABANDONED;
		q = put_varint64(q, db->wal_number);
		q = put_varint64(q, db->wal_good_size);
		rc = walw_add(w, m, (size_t)(q - m));
		if (!rc)
			rc = walw_flush(w);
		if (rc) {
			walw_close(w);
			db->env->ops->remove_file(db->env, path);
			return rc;
		}
	}
	if (db->wal) {
		/* A later synced write in the new WAL promises that this
		 * one's writes are durable too: sync it before moving on,
		 * cutting off its reserved zeros (recovery accepts a zero
		 * tail only in the newest WAL).
		 * After a failed append (wal_error) the writer refuses, but
		 * its acknowledged records reached the file before the
		 * failure: sync the file itself (the marker in the new WAL
		 * says where the good part ends). */
		if (db->blob) {
			/* Its values must be durable before a later synced
			 * write in the new WAL promises they are. */
			rc = db_blob_close_locked(db);
			if (rc) {
				walw_close(w);
				db->env->ops->remove_file(db->env, path);
				return rc;
			}
		}
		{
			rc = db->wal_error ? walw_sync_file(db->wal)
					   : walw_trim(db->wal);
			if (rc) {
				walw_close(w);
				db->env->ops->remove_file(db->env, path);
				db->wal_error = rc;
				return rc;
			}
		}
		walw_close(db->wal);
	}
	db->wal = w;
	db->wal_good_size = walw_size(w);
	db->imm[db->n_imm].mem = db->mem;
	db->imm[db->n_imm].wal_number = db->wal_number;
	db->imm[db->n_imm].blob = db->mem_blob;
	db->mem_blob = NULL;
	db->n_imm++;
	db->imm_created++;
	db->wal_number = number;
	db->mem = NULL;
	return 0;
}

/* Turns the memtable into an immutable one behind a new WAL. */
int db_switch_memtable_locked(lsm_db *db)
{
	struct memtable *m = db_mem_new(db);
	int rc;
	if (!m)
		return -ENOMEM;
	rc = open_new_wal_locked(db);
	if (rc) {
		mem_unref(m);
		return rc;
	}
	db->mem = m;
	db->wal_error = 0;
	if (db_blob_meta_locked(db))
		db_log(db, "out of memory naming a blob file (retried at the "
			   "first large value)");
	db_install_sv_locked(db);
	bg_schedule_locked(db);
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t now_us(void)
{
	return now_ns() / 1000;
}

static void stall_wait_locked(lsm_db *db)
{
	uint64_t t0 = now_us();
	struct timespec dl;
	STAT_ADD(db, stall_count, 1);
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_nsec += 100 * 1000 * 1000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&db->bg_cv, &db->mu, &dl);
	STAT_ADD(db, stall_micros, now_us() - t0);
}

/* A soft (out of space) background error is retried every 100 ms: space
 * may have been freed. */
static bool retry_soft_error_locked(lsm_db *db)
{
	uint64_t t = now_us();
	if (db->bg_error != -ENOSPC || t < db->bg_error_retry_us)
		return false;
	db->bg_error = 0;
	db->bg_error_retry_us = t + 100000;
	bg_schedule_locked(db);
	return true;
}

static int make_room_locked(lsm_db *db, bool force)
{
	bool allow_delay = !force, retried = false;
	for (;;) {
		struct version *v = db->vs->current;
		if (db->shutting_down)
			return LSM_E_CLOSED;
		if (db->bg_error) {
			/* Out of space is retried once per write: space may
			 * have been freed since. */
			if (retried || !retry_soft_error_locked(db))
				return db->bg_error;
			retried = true;
		}
		if (db->wal_error) {
			/* Invariant 4: never append after a failed append. */
			int rc = db_switch_memtable_locked(db);
			if (rc)
				return rc;
			continue;
		}
		if (allow_delay &&
		    (compact_stall_files(v, &db->pick,
					 db->env->ops->now_micros(db->env)) >=
			     (size_t)db->opts.level0_slowdown_trigger ||
		     db->pending_compaction_bytes >
			     db->opts.soft_pending_compaction_bytes)) {
			/* Spread the wait over many writes instead of one
			 * long stop later. */
			uint64_t t0 = now_us();
			pthread_mutex_unlock(&db->mu);
			usleep(1000);
			pthread_mutex_lock(&db->mu);
			STAT_ADD(db, slowdown_count, 1);
			STAT_ADD(db, stall_micros, now_us() - t0);
			allow_delay = false;
			continue;
		}
		/* Range tombstones in a memtable are indexed (O(log n)
		 * reads); DB_MAX_MEM_TOMBS bounds the rest of their cost. */
		if (!force &&
		    mem_usage(db->mem) <= db->opts.write_buffer_size &&
		    mem_num_tombs(db->mem) < DB_MAX_MEM_TOMBS &&
		    (!db->blob ||
		     blobw_size(db->blob) < db->opts.blob_file_size))
			return 0;
		if (force && mem_is_empty(db->mem))
			return 0;
		if (db->n_imm >= db->opts.max_immutable_memtables ||
		    db->n_imm >= DB_MAX_IMM - 1 ||
		    compact_stall_files(v, &db->pick,
					db->env->ops->now_micros(db->env)) >=
			    (size_t)db->opts.level0_stop_trigger ||
		    db->pending_compaction_bytes >
			    db->opts.hard_pending_compaction_bytes) {
			bg_schedule_locked(db);
			stall_wait_locked(db);
			continue;
		}
		return db_switch_memtable_locked(db);
	}
}

/* Largest group the leader gathers, in bytes of batch representation. */
#define GROUP_MAX (1u << 20)

/* A sync leader waits at most this share of a WAL sync's time (and never
 * more than GATHER_MAX_NS) for writers to join its group. */
#define GATHER_SHARE 4
#define GATHER_MAX_NS 200000u

/* A queued synced writer spins at most this long before it sleeps. */
#define SPIN_MAX_NS 300000u

static void futex_wait(_Atomic uint32_t *word, uint32_t val)
{
	/* EAGAIN (the word moved) and EINTR just return: every caller
	 * re-checks its condition. */
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

/* Spins, yielding the CPU, while *p == val and until end_ns (checked
 * every 8 rounds); true when *p moved. For waits of a fraction of a sync,
 * which a sleep and a wake-up would cost as much as. */
static bool spin_while(_Atomic int *p, int val, uint64_t end_ns)
{
	for (unsigned i = 1;; i++) {
		if (atomic_load(p) != val)
			return true;
		if (i % 8 == 0 && now_ns() >= end_ns)
			return false;
		sched_yield();
	}
}

static void futex_wake(_Atomic uint32_t *word, int n)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

/* Writers queued from the head (the leader) up to the first that is not a
 * write (lsm_flush holding its place ends every group before it). */
static int queued_writers_locked(lsm_db *db, bool *blocked)
{
	int n = 0;
	*blocked = false;
	for (struct writer *p = db->wq_head; p; p = p->next) {
		if (!p->batch) {
			*blocked = true;
			break;
		}
		n++;
	}
	return n;
}

/*
 * Group commit for synced writes. With k threads each writing synced
 * batches back to back, a group's writers return to their callers while
 * the next leader already syncs whoever queued during the previous sync:
 * the groups settle at about k/2 writers per sync. A sync costs the same
 * however many writers share it, so the leader of a sync group waits a
 * little (a quarter of a sync's time at most) until as many writers are
 * queued as were active around the previous sync group: those of that
 * group, who are on their way back, and those queued behind it. A lone
 * writer never waits (it was the only one active), and a wait that times
 * out lowers the next group's expectation, so the wait adapts when
 * threads stop writing.
 */
static void gather_sync_group_locked(lsm_db *db, struct writer *w)
{
	bool blocked;
	int want = db->sync_writers;
	uint64_t budget = db->sync_ns / GATHER_SHARE, t0, deadline;

	if (want <= 1 || budget == 0 || db->gatherer)
		return;
	if (queued_writers_locked(db, &blocked) >= want || blocked)
		return;
	if (budget > GATHER_MAX_NS)
		budget = GATHER_MAX_NS;
	t0 = now_ns();
	deadline = t0 + budget;
	db->gatherer = w;
	db->gather_want = want;
	STAT_ADD(db, sync_gathers, 1);
	while (!db->shutting_down &&
	       queued_writers_locked(db, &blocked) < want && !blocked) {
		int g = atomic_load(&db->gather_word);
		if (now_ns() >= deadline)
			break;
		pthread_mutex_unlock(&db->mu);
		spin_while(&db->gather_word, g, deadline);
		pthread_mutex_lock(&db->mu);
	}
	db->gatherer = NULL;
	STAT_ADD(db, sync_gather_micros, (now_ns() - t0) / 1000);
}

/* Called when a writer joins the queue: wakes a gathering leader once its
 * group is complete (or a flush ends it). */
void db_writer_queued_locked(lsm_db *db)
{
	bool blocked;
	if (db->gatherer &&
	    (queued_writers_locked(db, &blocked) >= db->gather_want ||
	     blocked)) {
		atomic_fetch_add(&db->gather_word, 1);
	}
}

/* Sleeps until a leader sets w's state (mu not held). It first spins for
 * up to spin_ns, yielding the CPU, and sleeps only if the state has not
 * moved by then; a leader makes a wake-up call only for sleepers
 * (db_writers_wake). */
void db_writer_sleep(lsm_db *db, struct writer *w, uint64_t spin_ns)
{
	if (spin_ns &&
	    spin_while(&w->state, WRITER_WAITING, now_ns() + spin_ns))
		return;
	atomic_fetch_add(&db->wq_sleepers, 1);
	for (;;) {
		/* Read the word before the state: a waker sets the state,
		 * then bumps the word, so either the state is seen here or
		 * the wait returns at once. */
		uint32_t g = atomic_load(&db->wq_word);
		if (atomic_load(&w->state) != WRITER_WAITING)
			break;
		futex_wait(&db->wq_word, g);
	}
	atomic_fetch_sub(&db->wq_sleepers, 1);
}

/* Wakes every sleeping writer: call after setting states. A writer that
 * counted itself a sleeper after the states were set sees its state
 * before it sleeps (both sides are sequentially consistent). */
void db_writers_wake(lsm_db *db)
{
	if (atomic_load(&db->wq_sleepers) == 0)
		return;
	atomic_fetch_add(&db->wq_word, 1);
	futex_wake(&db->wq_word, INT_MAX);
}

static int write_batch(lsm_db *db, struct lsm_batch *b, bool sync)
{
	struct writer w, *last, *p, *next;
	struct lsm_batch *group;
	uint64_t seq, sync_ns = 0;
	uint32_t count;
	int rc, n_group;
	bool wake;

	w.batch = b;
	w.sync = sync;
	w.status = 0;
	w.next = NULL;
	atomic_init(&w.state, WRITER_WAITING);

	pthread_mutex_lock(&db->mu);
	if (db->wq_tail)
		db->wq_tail->next = &w;
	else
		db->wq_head = &w;
	db->wq_tail = &w;
	db_writer_queued_locked(db);
	if (db->wq_head != &w) {
		/* A synced writer waits about a sync: spin through that
		 * much (at most SPIN_MAX_NS) rather than pay for a sleep
		 * and a wake-up. */
		uint64_t spin = sync ? 2 * db->sync_ns : 0;
		if (spin > SPIN_MAX_NS)
			spin = SPIN_MAX_NS;
		pthread_mutex_unlock(&db->mu);
		db_writer_sleep(db, &w, spin);
		if (atomic_load(&w.state) == WRITER_DONE)
			return w.status;
		pthread_mutex_lock(&db->mu); /* at the head: lead */
	}

	/* Leader. */
	rc = make_room_locked(db, false);
	if (rc == 0 && sync)
		gather_sync_group_locked(db, &w);
	last = &w;
	if (rc == 0) {
		size_t size = b->len, limit = GROUP_MAX;
		bool gsync = sync;
		if (size <= (128u << 10))
			limit = size + (128u << 10);
		group = b;
		for (p = w.next; p; p = p->next) {
			/* A writer without a batch is lsm_flush() holding its
			 * place in the queue: the group ends before it. */
			if (!p->batch ||
			    size + p->batch->len - BATCH_HEADER > limit)
				break;
			if (group == b) {
				lsm_batch_clear(&db->group);
				rc = batch_append(&db->group, b);
				if (rc)
					break;
				group = &db->group;
			}
			rc = batch_append(group, p->batch);
			if (rc)
				break;
			size += p->batch->len - BATCH_HEADER;
			gsync = gsync || p->sync;
			last = p;
		}
		/* Large values go to the memtable's blob file. */
		bool sep = rc == 0 && db->opts.blob_threshold &&
			   group->max_value >= db->opts.blob_threshold;
		if (sep && !db->blob)
			rc = db_blob_open_locked(db);
		if (rc == 0) {
			struct memtable *mem = db->mem;
			struct wal_writer *wal = db->wal;
			struct blob_writer *bw = sep ? db->blob : NULL;
			/* A sync group makes every earlier write durable,
			 * the values earlier groups put in the blob file too.
			 */
			struct blob_writer *bsync =
				gsync && db->blob_unsynced ? db->blob : bw;
			count = batch_get_count(group->rep);
			seq = atomic_load_explicit(&db->last_seq,
						   memory_order_relaxed) +
			      1;
			batch_set_seq(group->rep, seq);
			pthread_mutex_unlock(&db->mu);

			if (bw) {
				/* The values reach the OS (and the disk, for
				 * a sync group) before the WAL record that
				 * refers to them. */
				rc = db_blob_separate(db, bw, group, &db->sep);
				if (rc == 0) {
					batch_set_seq(db->sep.rep, seq);
					group = &db->sep;
					db->blob_unsynced = true;
				}
			}
			if (rc == 0 && bsync)
				rc = blobw_flush(bsync);
			if (rc == 0)
				rc = walw_add(wal, group->rep, group->len);
			/* A sync group's record stays in the WAL's buffer:
			 * the sync then writes it to the disk directly
			 * (env_posix.c, direct syncs) or flushes it first. */
			if (rc == 0 && !gsync)
				rc = walw_flush(wal);
			if (rc == 0 && gsync) {
				uint64_t t0 = now_ns();
				/* The blob file and the WAL sync at once: if
				 * only the WAL's record survives a crash,
				 * recovery stops at it (db_blob.c), and this
				 * group has not returned yet. */
				if (bsync) {
					int wal_rc;
					rc = blobw_sync_with(
						bsync, walw_file(wal), &wal_rc);
					if (rc == 0)
						rc = wal_rc;
					if (rc == 0)
						db->blob_unsynced = false;
				} else {
					rc = walw_sync(wal);
				}
				sync_ns = now_ns() - t0;
				STAT_ADD(db, wal_syncs, 1);
				STAT_ADD(db, wal_sync_micros, sync_ns / 1000);
			}
			if (rc == 0) {
				rc = batch_iterate(group->rep, group->len,
						   apply_to_mem, mem, "write",
						   0);
				/* Only ENOMEM can fail here, after the WAL
				 * has the group: the memtable then misses
				 * part of it. Poison writes: reopening
				 * replays the WAL. */
				if (rc) {
					pthread_mutex_lock(&db->mu);
					if (!db->bg_error)
						db->bg_error = rc;
					pthread_mutex_unlock(&db->mu);
				}
			}
			STAT_ADD(db, wal_bytes, group->len);
			STAT_ADD(db, write_groups, 1);

			pthread_mutex_lock(&db->mu);
			if (sync_ns)
				db->sync_ns =
					db->sync_ns
						? (db->sync_ns * 7 + sync_ns) /
							  8
						: sync_ns;
			if (rc == 0) {
				db->wal_good_size = walw_size(wal);
				atomic_store_explicit(&db->last_seq,
						      seq + count - 1,
						      memory_order_release);
				STAT_ADD(db, user_bytes_written,
					 group->user_bytes);
			} else if (!db->wal_error) {
				db->wal_error = rc;
				db_log(db, "WAL append failed: %s",
				       lsm_strerror(rc));
			}
			if (group == &db->group)
				lsm_batch_clear(&db->group);
			if (group == &db->sep) {
				lsm_batch_clear(&db->sep);
				if (db->group.len > BATCH_HEADER)
					lsm_batch_clear(&db->group);
			}
		}
	}

	/* Take the group out of the queue; its writers and the next leader
	 * learn it once mu is released (struct writer). */
	for (n_group = 0;; n_group++) {
		p = db->wq_head;
		db->wq_head = p->next;
		if (!db->wq_head)
			db->wq_tail = NULL;
		STAT_ADD(db, user_writes, 1);
		if (p == last)
			break;
	}
	if (sync_ns) {
		bool blocked;
		db->sync_writers =
			n_group + 1 + queued_writers_locked(db, &blocked);
	}
	next = db->wq_head;
	wake = n_group > 0 || next;
	pthread_mutex_unlock(&db->mu);
	for (p = w.next; n_group > 0; n_group--) {
		struct writer *q = p->next; /* p may be gone once done */
		p->status = rc;
		atomic_store(&p->state, WRITER_DONE);
		p = q;
	}
	if (next)
		atomic_store(&next->state, WRITER_LEAD);
	if (wake)
		db_writers_wake(db);
	return rc;
}

int lsm_write(lsm_db *db, lsm_batch *b, int flags)
{
	if (db && db->opts.read_only)
		return db_refuse_read_only(db);
	if (!db || !b)
		return -EINVAL;
	if (flags & ~LSM_SYNC)
		return lsm_err(-EINVAL, "lsm_write: unknown flags 0x%x", flags);
	if (batch_get_count(b->rep) == 0 && !(flags & LSM_SYNC))
		return 0;
	/* An empty synced batch still goes through the queue: its group's
	 * fsync covers every write before it (lsm_sync). */
	return write_batch(db, b, (flags & LSM_SYNC) != 0);
}

int lsm_sync(lsm_db *db)
{
	struct lsm_batch b;
	int rc;
	if (!db)
		return -EINVAL;
	if (db->opts.read_only)
		return 0; /* nothing was written, nothing to make durable */
	rc = batch_init(&b);
	if (rc)
		return rc;
	rc = write_batch(db, &b, true);
	batch_release(&b);
	return rc;
}

/* Single-operation writes build a small batch on the stack's heap. */
static int write_one(lsm_db *db, unsigned kind, const void *k, size_t kl,
		     const void *v, size_t vl, int flags)
{
	struct lsm_batch b;
	int rc = batch_init(&b);
	if (rc)
		return rc;
	if (kind == IKEY_PUT)
		rc = lsm_batch_put(&b, k, kl, v, vl);
	else if (kind == IKEY_DELETE)
		rc = lsm_batch_delete(&b, k, kl);
	else
		rc = lsm_batch_delete_range(&b, k, kl, v, vl);
	if (rc == 0)
		rc = lsm_write(db, &b, flags);
	batch_release(&b);
	return rc;
}

int lsm_put(lsm_db *db, const void *key, size_t key_len, const void *val,
	    size_t val_len, int flags)
{
	return write_one(db, IKEY_PUT, key, key_len, val, val_len, flags);
}

int lsm_delete(lsm_db *db, const void *key, size_t key_len, int flags)
{
	return write_one(db, IKEY_DELETE, key, key_len, NULL, 0, flags);
}

int lsm_delete_range(lsm_db *db, const void *start, size_t start_len,
		     const void *end, size_t end_len, int flags)
{
	return write_one(db, IKEY_RANGE_DELETE, start, start_len, end, end_len,
			 flags);
}

/* ---- reads ---- */

struct get_result {
	bool found;
	unsigned kind;
	uint64_t seq;
	/* where to put the value */
	bool copy_malloc;
	void *buf;
	size_t cap;
	void *val;
	size_t val_len;
	int err;
	/* kind BLOB: the reference, resolved after the lookup */
	uint8_t ref[BLOB_REF_MAX];
	size_t ref_len;
};

static int get_cb(void *ctx, struct slice ikey, struct slice value)
{
	struct get_result *g = ctx;
	g->found = true;
	g->kind = ikey_kind(ikey);
	g->seq = ikey_seq(ikey);
	if (g->kind == IKEY_BLOB) {
		if (value.len > sizeof(g->ref))
			return LSM_CORRUPT("blob reference of %zu bytes",
					   value.len);
		memcpy(g->ref, value.p, value.len);
		g->ref_len = value.len;
		return 0;
	}
	if (g->kind != IKEY_PUT)
		return 0;
	g->val_len = value.len;
	if (g->copy_malloc) {
		g->val = malloc(value.len ? value.len : 1);
		if (!g->val)
			return -ENOMEM;
		if (value.len)
			memcpy(g->val, value.p, value.len);
	} else if (g->buf && value.len) {
		memcpy(g->buf, value.p,
		       value.len < g->cap ? value.len : g->cap);
	}
	return 0;
}

/* Result of looking in one table: 1 = decided (found a version), 0 =
 * keep looking, < 0 = error. *tmax grows with the table's tombstones. */
static int get_from_file(lsm_db *db, struct file_meta *f, struct slice ukey,
			 struct slice lookup, uint64_t key_hash,
			 uint64_t read_seq, uint64_t *tmax,
			 struct get_result *g)
{
	struct cache_handle *h;
	struct table *t;
	bool bloom_neg = false;
	int rc = tcache_find(db->table_cache, &db->tcopts, f->number, &h);
	if (rc)
		return rc;
	t = tcache_table(h);
	uint64_t c = table_cover(t, ukey, read_seq);
	if (c > *tmax)
		*tmax = c;
	rc = sstr_get_hashed(t->r, lookup, key_hash, get_cb, g, &bloom_neg);
	STAT_ADD(db, bloom_checks, 1);
	if (bloom_neg)
		STAT_ADD(db, bloom_useful, 1);
	cache_release(db->table_cache, h);
	if (rc < 0)
		return rc;
	return g->found ? 1 : 0;
}

static int db_get(lsm_db *db, const lsm_snapshot *snap, struct slice ukey,
		  struct get_result *g)
{
	struct superversion *sv = db_sv_get(db);
	uint64_t read_seq = snap ? snap->seq
				 : atomic_load_explicit(&db->last_seq,
							memory_order_acquire);
	uint64_t tmax = 0, key_hash;
	uint8_t stackbuf[256];
	uint8_t *lk = stackbuf;
	struct slice lookup;
	int rc = 0;

	STAT_ADD(db, gets, 1);
	if (ukey.len + IKEY_TRAILER > sizeof(stackbuf)) {
		lk = malloc(ukey.len + IKEY_TRAILER);
		if (!lk) {
			db_sv_put(sv);
			return -ENOMEM;
		}
	}
	if (ukey.len)
		memcpy(lk, ukey.p, ukey.len);
	ikey_put_trailer(lk + ukey.len, read_seq, IKEY_KIND_SEEK);
	lookup = slice_make(lk, ukey.len + IKEY_TRAILER);

	/* One hash of the key for every filter probed: memtables' and
	 * files' (the same function, util/hash.h). */
	key_hash = sstr_key_hash(ukey);
	/* Memtables, newest first. */
	rc = 0;
	for (int i = -1; i < sv->n_imm && rc == 0; i++) {
		struct memtable *m = i < 0 ? sv->mem : sv->imm[i];
		uint64_t c = mem_max_covering_tomb(m, ukey, read_seq);
		if (c > tmax)
			tmax = c;
		rc = mem_get_hashed(m, ukey, key_hash, read_seq, get_cb, g);
	}
	/* L0 newest first, then one file per level. */
	for (int l = 0; rc == 0 && l < LSM_MAX_LEVELS; l++) {
		struct version *v = sv->v;
		if (l == 0) {
			for (size_t i = 0; i < v->n_files[0] && rc == 0; i++) {
				struct file_meta *f = v->files[0][i];
				if (f->smallest_seq > read_seq)
					continue; /* all of it is newer */
				if (!fm_overlaps(f, &ukey, &ukey))
					continue;
				if (f->largest_seq < tmax)
					break; /* a tombstone hides this file's
						  versions, and the older
						  files' (newest first) */
				rc = get_from_file(db, f, ukey, lookup,
						   key_hash, read_seq, &tmax,
						   g);
			}
			continue;
		}
		size_t i = version_find_file(v, l, lookup);
		/* A file older than a tombstone covering the key holds no
		 * visible version of it. */
		if (i < v->n_files[l] && v->files[l][i]->largest_seq >= tmax &&
		    fm_overlaps(v->files[l][i], &ukey, &ukey))
			rc = get_from_file(db, v->files[l][i], ukey, lookup,
					   key_hash, read_seq, &tmax, g);
	}
	if (lk != stackbuf)
		free(lk);
	if (rc >= 0 && g->found && g->kind == IKEY_BLOB && tmax <= g->seq) {
		/* Still holding the superversion: it pins the blob file. */
		void *val;
		size_t len;
		rc = db_blob_read(db, slice_make(g->ref, g->ref_len),
				  g->copy_malloc ? NULL : g->buf,
				  g->copy_malloc ? 0 : g->cap, &val, &len);
		db_sv_put(sv);
		if (rc)
			return rc;
		if (g->copy_malloc)
			g->val = val;
		else if (val != g->buf)
			free(val);
		g->val_len = len;
		return 0;
	}
	db_sv_put(sv);
	if (rc < 0)
		return rc;
	if (g->found && g->kind == IKEY_PUT && g->copy_malloc && !g->val &&
	    tmax <= g->seq)
		return -ENOMEM; /* get_cb could not copy the value */
	if (!g->found || g->kind != IKEY_PUT || tmax > g->seq) {
		if (g->copy_malloc)
			free(g->val);
		g->val = NULL;
		return LSM_E_NOTFOUND;
	}
	return 0;
}

int lsm_get(lsm_db *db, const lsm_snapshot *snap, const void *key,
	    size_t key_len, void **val, size_t *val_len)
{
	struct get_result g;
	int rc;
	if (!db || !val || !val_len)
		return -EINVAL;
	memset(&g, 0, sizeof(g));
	g.copy_malloc = true;
	rc = db_get(db, snap, slice_make(key, key_len), &g);
	if (rc)
		return rc;
	*val = g.val;
	*val_len = g.val_len;
	return 0;
}

int lsm_get_into(lsm_db *db, const lsm_snapshot *snap, const void *key,
		 size_t key_len, void *buf, size_t cap, size_t *val_len)
{
	struct get_result g;
	int rc;
	if (!db || !val_len || (cap && !buf))
		return -EINVAL;
	memset(&g, 0, sizeof(g));
	g.buf = buf;
	g.cap = cap;
	rc = db_get(db, snap, slice_make(key, key_len), &g);
	if (rc)
		return rc;
	*val_len = g.val_len;
	return 0;
}

/* ---- snapshots ---- */

int lsm_snapshot_acquire(lsm_db *db, lsm_snapshot **out)
{
	lsm_snapshot *s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_lock(&db->mu);
	s->seq = atomic_load(&db->last_seq);
	/* Sequence numbers only grow, so appending keeps the list sorted. */
	s->prev = db->snaps.prev;
	s->next = &db->snaps;
	db->snaps.prev->next = s;
	db->snaps.prev = s;
	pthread_mutex_unlock(&db->mu);
	*out = s;
	return 0;
}

void lsm_snapshot_release(lsm_db *db, lsm_snapshot *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&db->mu);
	s->prev->next = s->next;
	s->next->prev = s->prev;
	pthread_mutex_unlock(&db->mu);
	free(s);
}

uint64_t lsm_snapshot_seq(const lsm_snapshot *s)
{
	return s->seq;
}

int lsm_iter_new(lsm_db *db, const lsm_iter_options *o, lsm_iter **out)
{
	lsm_iter_options def;
	if (!db || !out)
		return -EINVAL;
	if (!o) {
		lsm_iter_options_init(&def);
		o = &def;
	}
	return db_iter_new(db, o, out);
}

int lsm_flush(lsm_db *db)
{
	if (db->opts.read_only)
		return db_refuse_read_only(db);
	return db_flush_wait(db);
}

int lsm_compact_range(lsm_db *db, const void *start, size_t start_len,
		      const void *end, size_t end_len)
{
	struct slice lo = slice_make(start, start_len);
	struct slice hi = slice_make(end, end_len);
	int rc;
	if (db->opts.read_only)
		return db_refuse_read_only(db);
	rc = db_flush_wait(db);
	if (rc)
		return rc;
	return db_compact_range(db, start ? &lo : NULL, end ? &hi : NULL);
}
