/*
 * db_int.h - the database handle, shared by db.c, db_iter.c, db_bg.c and
 * options.c. Nothing outside lsm/'s top level includes it.
 *
 * Lock order: db->mu, then db->sv_mu. Neither is held during file I/O
 * except the small manifest and WAL-creation writes done under mu.
 */
#ifndef LSM_DB_INT_H
#define LSM_DB_INT_H

#include "batch.h"
#include "cache/cache.h"
#include "compact/compact.h"
#include "env/env.h"
#include "lsm.h"
#include "mem/memtable.h"
#include "stats.h"
#include "version/table_cache.h"
#include "version/version.h"
#include "wal/wal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define DB_MAX_IMM 16
/* WALs keep their file size reserved this far ahead of the records, so
 * that a synced write changes no file size (wal/wal.h). */
#define DB_WAL_RESERVE (4ull << 20)
/* A memtable holding this many range tombstones is switched out: reads
 * find them through an index (mem/memtable.h), so this only bounds the
 * cost of one insert that crosses many fragments and of unbounded
 * iterators. */
#define DB_MAX_MEM_TOMBS 65536

struct blob_writer;

/*
 * What a reader needs: the memtables and the version, referenced
 * together. Replaced (never changed) whenever one of them changes; a
 * reader takes a reference under sv_mu and then reads without locks.
 */
struct superversion {
	_Atomic int refs;
	struct memtable *mem;
	struct memtable *imm[DB_MAX_IMM]; /* newest first */
	int n_imm;
	struct version *v;
	/* The blob files of the memtables (not yet in v), pinned. */
	struct blob_meta *blobs[DB_MAX_IMM + 1];
	int n_blobs;
};

/* A thread waiting in lsm_write(); lives on that thread's stack. */
/*
 * A writer in the queue (db->wq_head..wq_tail, under mu). Writers that are
 * not at the head sleep on one futex word for the whole queue
 * (db->wq_word) until their state leaves WRITER_WAITING: WRITER_DONE when
 * a leader wrote their batch (status set first), WRITER_LEAD when they
 * reached the head. A leader sets its group's states after releasing mu
 * and wakes every sleeper with one system call, so a woken writer never
 * waits for the mutex its waker holds, and waking a group costs one
 * wake-up instead of one per writer (each costs an inter-processor
 * interrupt, several microseconds on a virtual machine). A synced writer
 * first spins (yielding the CPU) for about two syncs' time before it
 * sleeps, and the leader skips the system call when nobody sleeps
 * (db->wq_sleepers): with k threads writing synced batches, the whole
 * group is back the moment its sync ends. Once a writer's state is set,
 * nobody touches its struct again: it may return at once.
 */
enum { WRITER_WAITING, WRITER_DONE, WRITER_LEAD };

struct writer {
	struct lsm_batch *batch;
	bool sync;
	_Atomic int state;
	int status; /* set before state becomes WRITER_DONE */
	struct writer *next;
};

struct lsm_snapshot {
	uint64_t seq;
	struct lsm_snapshot *prev, *next; /* db->snaps, ascending seq (mu) */
};

struct imm_slot {
	struct memtable *mem;
	uint64_t wal_number;    /* the WAL holding its writes */
	struct blob_meta *blob; /* its blob file, or NULL (one reference) */
};

struct lsm_db {
	char *dir;
	lsm_options opts;
	lsm_env *env;
	struct env_lock *lock;
	FILE *log_file;
	struct pick_opts pick;

	struct cache *block_cache; /* thread-safe */
	struct cache *table_cache; /* thread-safe */
	struct tcache_opts tcopts;

	pthread_mutex_t mu;
	pthread_cond_t bg_cv;   /* background progress (mu) */
	pthread_cond_t work_cv; /* work for background threads (mu) */

	/* Protected by mu. */
	struct vset *vs;
	struct memtable *mem;
	struct imm_slot imm[DB_MAX_IMM]; /* oldest first */
	int n_imm;
	struct wal_writer *wal; /* written by the write leader only */
	uint64_t wal_number;
	int wal_error; /* the WAL failed: writes need a new WAL first */
	uint64_t wal_good_size; /* WAL bytes up to the last good group */
	int bg_error;           /* poisons writes; soft if -ENOSPC */
	uint64_t bg_error_retry_us;
	bool flush_running;
	int n_compactions;
	int manual_waiting; /* callers of compact_range waiting for files */
	bool shutting_down;
	struct writer *wq_head, *wq_tail;
	struct writer *gatherer;  /* a sync leader waiting for writers */
	int gather_want;          /* ... until this many are queued */
	_Atomic uint32_t wq_word; /* futex: queued writers sleep on it */
	_Atomic int wq_sleepers;  /* ... how many do (not spinning) */
	_Atomic int gather_word;  /* bumped for the gatherer (spins) */
	int sync_writers;         /* writers seen around the last sync group */
	uint64_t sync_ns;         /* moving average of a WAL sync's time */
	struct lsm_batch group;   /* the leader's scratch batch */
	struct lsm_batch sep;     /* the group with large values separated */
	struct blob_writer *blob; /* the memtable's blob file (leader) */
	bool blob_unsynced;       /* it holds values not yet synced (leader) */
	struct blob_meta *mem_blob;   /* its metadata (one reference) */
	struct blob_meta **rec_blobs; /* recovery: blob files of the WALs */
	size_t n_rec_blobs;
	struct lsm_snapshot snaps; /* list head */
	uint64_t pending_compaction_bytes;
	uint64_t imm_created; /* memtables made immutable, ever */
	uint64_t imm_flushed; /* of those, flushed to L0 */

	pthread_mutex_t sv_mu;
	struct superversion *sv; /* sv_mu */

	/* Last sequence number visible to readers. */
	_Atomic uint64_t last_seq;

	pthread_t *threads;
	int n_threads;

	struct lsm_stats stats;
	char identity[33]; /* IDENTITY: 32 hex digits */
};

/* options.c */
int options_validate(const lsm_options *o);

/* db.c */
struct superversion *db_sv_get(lsm_db *db);
void db_writer_queued_locked(lsm_db *db);
void db_writer_sleep(lsm_db *db, struct writer *w, uint64_t spin_ns);
void db_writers_wake(lsm_db *db);
void db_sv_put(struct superversion *sv);
/* -EROFS with a detail naming the store: a change to a read-only open. */
int db_refuse_read_only(lsm_db *db);
void db_log(lsm_db *db, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
uint64_t db_new_file_number(void *db);

/* db_bg.c: flushes and compactions */
int bg_start(lsm_db *db);
void bg_stop(lsm_db *db);
void bg_schedule_locked(lsm_db *db);
/* Flushes and compactions running or due now (what the background
 * threads would start if free); 0 once the store has settled. mu held. */
uint64_t bg_work_locked(lsm_db *db);
void db_install_sv_locked(lsm_db *db);
int db_flush_wait(lsm_db *db);
/* db.c: a new memtable for this db (with its point-key filter). */
struct memtable *db_mem_new(lsm_db *db);
/* db.c: makes the memtable immutable behind a new WAL (mu held). */
int db_switch_memtable_locked(lsm_db *db);
/* Records opts.compaction_style in the manifest when it differs from
 * the store's (open, before the threads start). */
int db_record_style(lsm_db *db);
int db_compact_range(lsm_db *db, const struct slice *lo,
		     const struct slice *hi);
/* Writes a memtable to an L0 file during recovery (no threads yet). */
int db_write_level0(lsm_db *db, struct memtable *m, struct version_edit *e);
/* db_snap.c: every snapshot sequence (in-memory handles and named
 * snapshots), ascending, for flushes and compactions. 0 or -ENOMEM. */
int db_snapshot_seqs_locked(lsm_db *db, uint64_t **seqs, size_t *n);
/* Reads IDENTITY, creating it in a store without one. */
int db_load_identity(lsm_db *db);
/* Removes the WAL of a memtable whose flush the manifest recorded. */
void db_delete_wal_locked(lsm_db *db, uint64_t number);

/* db_iter.c */
int db_iter_new(lsm_db *db, const lsm_iter_options *o, lsm_iter **out);
/* bytes[i]: size of the keys and values only the named snapshot at
 * seqs[i] (ascending) sees, among those views and the live state. */
int db_snapshot_space(lsm_db *db, const uint64_t *seqs, size_t n,
		      uint64_t *bytes);

#endif
