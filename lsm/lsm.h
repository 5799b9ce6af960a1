/*
 * lsm.h - the one public interface of the lsm storage engine.
 *
 * lsm is an embedded, ordered key-value store built as a log-structured
 * merge tree: writes go to a write-ahead log and an in-memory table, which
 * background threads flush to immutable sorted files (SSTs) and compact
 * into levels. Keys and values are arbitrary byte strings, ordered by
 * unsigned bytewise comparison (memcmp, shorter first on a tie).
 *
 * Conventions
 *  - Every function that can fail returns an int status: 0 on success, a
 *    negative errno (-EIO, -ENOSPC, -ENOMEM, -EINVAL, ...) or one of the
 *    LSM_E_* codes below. lsm_strerror() explains any of them, and
 *    lsm_errdetail() gives the detailed message (file name, offset, option
 *    name) of the most recent failure returned to the calling thread.
 *  - Handles are opaque. Out-parameters are written only on success; a
 *    failed constructor leaves *out == NULL.
 *  - Memory the engine returns to the caller (lsm_get values, property
 *    text) is owned by the caller and released with lsm_free().
 *  - Pointers returned by an iterator stay valid until the iterator moves
 *    or is freed.
 *  - All functions on one lsm_db may be called from any number of threads
 *    at once, except where noted. An lsm_iter and an lsm_batch belong to one
 *    thread at a time.
 *  - Two databases opened in one process share nothing.
 */
#ifndef LSM_H
#define LSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LSM_API __attribute__((visibility("default")))

#define LSM_VERSION_STRING "0.1.0"

/* Engine-specific status codes, in a range no errno uses. */
enum {
	LSM_E_NOTFOUND = -1000, /* the key has no live value */
	LSM_E_CORRUPT = -1001,  /* on-disk data failed a check */
	LSM_E_FORMAT = -1002,   /* unknown format version or feature */
	LSM_E_BUSY = -1003,     /* the store is locked by another opener */
	LSM_E_CLOSED = -1004,   /* the database is shutting down */
	LSM_E_NOSTORE = -1005,  /* the directory holds no store */
	LSM_E_EXISTS = -1006,   /* a store exists and error_if_exists is set */
};

/* Maximum number of levels, and of per-level settings in lsm_options. */
#define LSM_MAX_LEVELS 7

typedef enum lsm_compression {
	LSM_COMPRESS_NONE = 0,
	LSM_COMPRESS_LZ4 = 1,
	LSM_COMPRESS_ZSTD = 2,
} lsm_compression;

/* How background compaction shapes the tree (lsm/README.md
 * "Compaction strategies"). Recorded in the manifest; opening a store with
 * another style switches it over. */
typedef enum lsm_compaction_style {
	LSM_COMPACTION_LEVELED = 0,     /* levels of growing size (default) */
	LSM_COMPACTION_TIERED = 1,      /* merge sorted runs of similar size */
	LSM_COMPACTION_TIME_WINDOW = 2, /* group by write time; TTL drops */
} lsm_compaction_style;

/* Opaque handles. */
typedef struct lsm_db lsm_db;
typedef struct lsm_batch lsm_batch;
typedef struct lsm_iter lsm_iter;
typedef struct lsm_snapshot lsm_snapshot;
/* The file-I/O seam; NULL in lsm_options means the POSIX implementation.
 * Only tests construct other environments. */
typedef struct lsm_env lsm_env;

/*
 * Options for lsm_open(). Always start from lsm_options_init(), which fills
 * in the defaults documented beside each field, then change what you need.
 * lsm_open() rejects an out-of-range value with -EINVAL and an
 * lsm_errdetail() naming the field.
 */
typedef struct lsm_options {
	bool create_if_missing; /* default true: create an empty store */
	bool error_if_exists;   /* default false: fail if a store exists */
	/* default false. True: open an existing store without changing a
	 * byte of it (no new WAL or manifest, WALs replayed into memory
	 * only, no LOG lines, no background work). Writes, flushes,
	 * compactions, named-snapshot changes and checkpoints fail with
	 * -EROFS. The store is still locked against other openers. */
	bool read_only;
	bool paranoid_checks; /* default true: verify every block read */

	size_t write_buffer_size;    /* 64 MiB; memtable size before flush */
	int max_immutable_memtables; /* 2; full memtables awaiting flush
				      * before writers wait */

	size_t block_size;          /* 4096; uncompressed data block size */
	int block_restart_interval; /* 16; keys between restart points */
	int bloom_bits_per_key;     /* 10; 0 disables bloom filters */
	/* per level; default lz4 everywhere */
	lsm_compression compression[LSM_MAX_LEVELS];
	int zstd_level; /* 3 */

	size_t block_cache_bytes; /* 8 MiB; 0 disables the block cache */
	int max_open_files;       /* 1000; bounds the table cache (>= 16) */

	int background_threads; /* 2; flush and compaction threads (1..64) */

	/* L0 files that start a compaction (4), slow every write (20) and
	 * stop writes (36). Writers count, under size-tiered, the longest
	 * size class of L0 files; under time-window, the open window's. */
	int level0_compaction_trigger;
	int level0_slowdown_trigger;
	int level0_stop_trigger;
	/* Leveled: 0 (default) compacts L0 into the base level at
	 * level0_compaction_trigger files. N > 0: at the trigger L0 also
	 * waits until its bytes reach N% of the base level's, or it holds
	 * twice the trigger. Fewer, larger L0 compactions rewrite the base
	 * level less often (lower write amplification) but leave more L0
	 * files for reads to probe. 0..1000. */
	int level0_size_percent;
	uint64_t max_bytes_for_level_base; /* 256 MiB: L1's target size */
	int level_size_multiplier;         /* 10 */
	uint64_t target_file_size;         /* 64 MiB per compaction output */
	/* Writes slow when the bytes compaction still has to rewrite pass the
	 * soft limit (default 64 GiB) and stop at the hard one (256 GiB). */
	uint64_t soft_pending_compaction_bytes;
	uint64_t hard_pending_compaction_bytes;

	lsm_compaction_style compaction_style; /* LSM_COMPACTION_LEVELED */
	/* Size-tiered: sorted runs (each L0 file, each non-empty level) of
	 * similar size are merged, level0_compaction_trigger runs start it.
	 * min_merge_width is the fanout: runs of one size class wait until
	 * that many can merge into one run as many times larger, so a byte
	 * is rewritten about once each time the store grows that many times
	 * over; a class keeps up to min_merge_width - 1 runs for reads to
	 * probe. */
	/* 8: fewest runs merged at once (>= 2; under size-tiered, below
	 * level0_slowdown_trigger) */
	uint32_t min_merge_width;
	uint32_t max_merge_width;    /* UINT32_MAX: most runs merged at once */
	uint32_t size_ratio_percent; /* 100: a run joins a merge when it is at
				      * most this much larger than the
				      * average of the runs before it
				      * (0..10000) */
	/* 200: merge everything into the last run once the entries that
	 * merge would drop (older versions of keys, deletes and what they
	 * hide; estimated from distinct-key sketches of the files) are more
	 * than this percentage of the entries it would keep (space
	 * amplification bound; 1..100000; the estimate is good to about 5%
	 * of the keys, so a bound under about 20% may fire on its noise). */
	uint32_t max_size_amplification_percent;
	/* Time-window: files are grouped into windows of their write time;
	 * a closed window is merged into one file. */
	uint64_t window_seconds; /* 3600 (1 .. 10 years) */
	/* 0: keep data forever. Else every file whose newest write is older
	 * than this is deleted whole, whatever its keys and whatever
	 * snapshot still sees it (>= window_seconds). */
	uint64_t ttl_seconds;

	/* Key-value separation: a value of at least blob_threshold bytes
	 * (0: never) is written once, to an append-only blob file, and the
	 * tree holds a small reference to it; it skips the WAL and is not
	 * rewritten by compactions. */
	size_t blob_threshold; /* 16 KiB (0, or 64 .. 256 MiB) */
	/* A blob file is closed (with the memtable that references it) at
	 * this size: 256 MiB (1 MiB .. 64 GiB). */
	uint64_t blob_file_size;
	/* Compaction moves the live values out of a blob file once this
	 * percentage of its bytes is garbage, so that the file can go:
	 * 50 (1..100). */
	uint32_t blob_gc_percent;

	lsm_env *env; /* NULL: POSIX file I/O */

	/* Informational log. NULL: append to the store's LOG file. */
	void (*log_fn)(void *log_ctx, const char *line);
	void *log_ctx;
} lsm_options;

LSM_API void lsm_options_init(lsm_options *opts);

/* Opens (or creates) the store in directory `path`. The directory is
 * locked for as long as the database stays open: a second opener, in this
 * process or another, gets LSM_E_BUSY. */
LSM_API int lsm_open(const char *path, const lsm_options *opts, lsm_db **out);

/* Waits for running background work, flushes nothing that is not already
 * in the WAL (the WAL makes it durable), and frees the handle. Returns the
 * first background error, if one poisoned the handle. */
LSM_API int lsm_close(lsm_db *db);

/* Removes every file of a closed store and the directory itself. */
LSM_API int lsm_destroy(const char *path, const lsm_options *opts);

/* Write flags. */
#define LSM_SYNC 0x1 /* durable (WAL fsynced) before the call returns */

LSM_API int lsm_put(lsm_db *db, const void *key, size_t key_len,
		    const void *val, size_t val_len, int flags);
LSM_API int lsm_delete(lsm_db *db, const void *key, size_t key_len, int flags);
/* Deletes every key k with start <= k < end; O(1) to write. */
LSM_API int lsm_delete_range(lsm_db *db, const void *start, size_t start_len,
			     const void *end, size_t end_len, int flags);

/*
 * Atomic write batches: all of a batch or none of it becomes visible and
 * durable. Operations apply in the order they were added.
 */
LSM_API lsm_batch *lsm_batch_new(void);
LSM_API void lsm_batch_free(lsm_batch *b);
LSM_API void lsm_batch_clear(lsm_batch *b);
LSM_API int lsm_batch_put(lsm_batch *b, const void *key, size_t key_len,
			  const void *val, size_t val_len);
LSM_API int lsm_batch_delete(lsm_batch *b, const void *key, size_t key_len);
LSM_API int lsm_batch_delete_range(lsm_batch *b, const void *start,
				   size_t start_len, const void *end,
				   size_t end_len);
LSM_API uint32_t lsm_batch_count(const lsm_batch *b);
/* Applies b; b is unchanged and may be reused. */
LSM_API int lsm_write(lsm_db *db, lsm_batch *b, int flags);
/* Makes every write acknowledged so far durable (one WAL fsync, shared
 * with concurrent synced writers). */
LSM_API int lsm_sync(lsm_db *db);

/*
 * Point reads. `snap` may be NULL to read the latest state.
 * lsm_get: on success *val is a malloc'd copy (release with lsm_free) and
 * *val_len its length; LSM_E_NOTFOUND if the key has no value.
 * lsm_get_into: copies at most `cap` bytes into buf and stores the full
 * length in *val_len (which may exceed cap).
 */
LSM_API int lsm_get(lsm_db *db, const lsm_snapshot *snap, const void *key,
		    size_t key_len, void **val, size_t *val_len);
LSM_API int lsm_get_into(lsm_db *db, const lsm_snapshot *snap, const void *key,
			 size_t key_len, void *buf, size_t cap,
			 size_t *val_len);

/* Snapshots: a consistent, frozen view. Cheap; release every one. */
LSM_API int lsm_snapshot_acquire(lsm_db *db, lsm_snapshot **out);
LSM_API void lsm_snapshot_release(lsm_db *db, lsm_snapshot *snap);
LSM_API uint64_t lsm_snapshot_seq(const lsm_snapshot *snap);

/*
 * Named snapshots: persistent, recorded in the manifest. They survive
 * close, crashes and power cuts, and compaction keeps every version one
 * of them can see until it is deleted. A name is 1..LSM_SNAPSHOT_NAME_MAX
 * bytes without NUL; ids are unique within a store and never reused.
 */
#define LSM_SNAPSHOT_NAME_MAX 255

typedef struct lsm_snapshot_info {
	char name[LSM_SNAPSHOT_NAME_MAX + 1];
	uint64_t id;              /* 1, 2, ... in creation order */
	uint64_t seq;             /* the sequence number it sees */
	int64_t created_ns;       /* CLOCK_REALTIME at creation */
	uint64_t exclusive_bytes; /* with LSM_SNAPSHOT_SPACE, else 0 */
} lsm_snapshot_info;

/* Records a snapshot of everything acknowledged so far, after making it
 * durable (one WAL sync). LSM_E_EXISTS: the name is taken; -EINVAL: a bad
 * name. Fills *info when not NULL. O(1): nothing is copied. */
LSM_API int lsm_snapshot_create(lsm_db *db, const char *name,
				lsm_snapshot_info *info);
/* Forgets a named snapshot (LSM_E_NOTFOUND if there is none); compaction
 * then reclaims what only it kept. Handles opened on it stay valid. */
LSM_API int lsm_snapshot_delete(lsm_db *db, const char *name);
/* Every named snapshot, oldest first, in a malloc'd array (lsm_free).
 * With LSM_SNAPSHOT_SPACE, exclusive_bytes is the size of the keys and
 * values (uncompressed) that this snapshot alone still sees: what
 * deleting it would free. That costs a scan of the whole store. */
#define LSM_SNAPSHOT_SPACE 0x1
LSM_API int lsm_snapshot_list(lsm_db *db, int flags, lsm_snapshot_info **out,
			      size_t *n);
/* A read handle on the named snapshot (release with
 * lsm_snapshot_release). LSM_E_NOTFOUND if there is none. */
LSM_API int lsm_snapshot_open(lsm_db *db, const char *name, lsm_snapshot **out);

/*
 * Checkpoints: lsm_checkpoint() makes `dir` (which must not exist) a
 * consistent, openable copy of the store: the memtable is flushed, every
 * live SST is hard-linked (copied when dir is on another filesystem), and
 * a fresh MANIFEST records the files, counters and named snapshots. The
 * copy holds every write acknowledged before the call. Cost: O(number of
 * files), not of bytes, when linking.
 */
LSM_API int lsm_checkpoint(lsm_db *db, const char *dir);

/*
 * Iterators see one consistent view: the snapshot, or the state when the
 * iterator was created. Optional bounds restrict it to
 * lower <= key < upper (either may be NULL). Bounds are copied.
 */
typedef struct lsm_iter_options {
	const lsm_snapshot *snapshot; /* NULL: now */
	const void *lower;
	size_t lower_len;
	const void *upper;
	size_t upper_len;
	bool fill_cache; /* true: blocks read go into the block cache */
} lsm_iter_options;

LSM_API void lsm_iter_options_init(lsm_iter_options *o);
LSM_API int lsm_iter_new(lsm_db *db, const lsm_iter_options *o, lsm_iter **out);
LSM_API void lsm_iter_free(lsm_iter *it);
LSM_API bool lsm_iter_valid(const lsm_iter *it);
LSM_API void lsm_iter_first(lsm_iter *it);
LSM_API void lsm_iter_last(lsm_iter *it);
/* first key >= key */
LSM_API void lsm_iter_seek(lsm_iter *it, const void *key, size_t key_len);
/* last key <= key */
LSM_API void lsm_iter_seek_for_prev(lsm_iter *it, const void *key,
				    size_t key_len);
LSM_API void lsm_iter_next(lsm_iter *it);
LSM_API void lsm_iter_prev(lsm_iter *it);
LSM_API const void *lsm_iter_key(const lsm_iter *it, size_t *len);
LSM_API const void *lsm_iter_value(const lsm_iter *it, size_t *len);
/* 0, or the error that made the iterator invalid. */
LSM_API int lsm_iter_status(const lsm_iter *it);

/* Makes the current memtable an SST and waits until it is written. */
LSM_API int lsm_flush(lsm_db *db);
/* Compacts every file overlapping [start, end] (NULL: unbounded) down to
 * the last level, and waits. */
LSM_API int lsm_compact_range(lsm_db *db, const void *start, size_t start_len,
			      const void *end, size_t end_len);

/*
 * Properties. Text: "lsm.stats" (every statistic), "lsm.levels" (files
 * and bytes per level, and what flushes and compactions wrote into each).
 * Numbers: any statistic by name, e.g. "lsm.write-amplification-x1000",
 * "lsm.num-files-at-level0"; "lsm.background-work" is 0 once no flush or
 * compaction is running or due.
 */
LSM_API int lsm_property(lsm_db *db, const char *name, char **out);
LSM_API int lsm_property_u64(lsm_db *db, const char *name, uint64_t *out);

LSM_API const char *lsm_strerror(int status);
/* Detailed message for the last failure returned to this thread, or "". */
LSM_API const char *lsm_errdetail(void);
LSM_API void lsm_free(void *p);

#ifdef __cplusplus
}
#endif
#endif /* LSM_H */
