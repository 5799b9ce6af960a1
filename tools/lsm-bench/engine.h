/*
 * engine.h - the small vtable lsm-bench drives every engine through.
 *
 * One adapter per engine (engine_lsm.c, engine_rocksdb.c,
 * engine_leveldb.c) fills a struct bench_engine. The driver knows nothing
 * else about the engines: every engine gets the same struct bench_config
 * and each adapter maps it onto its own options, saying in describe() what
 * it could not match exactly (e.g. LevelDB has no lz4).
 *
 * Errors: every fallible call returns 0 or -1 and on -1 writes a one-line
 * message into the caller's struct bench_err (one per thread).
 *
 * Thread safety: open/close/describe/wamp/levels/size are called from the
 * driver thread only; put/get/del may be called from many threads at once
 * on one open database; scan from one thread.
 */
#ifndef LSM_BENCH_ENGINE_H
#define LSM_BENCH_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum bench_compression {
	BENCH_COMPRESS_NONE,
	BENCH_COMPRESS_LZ4,
	BENCH_COMPRESS_ZSTD,
};

/* Settings shared by every engine (see --help for the defaults). */
struct bench_config {
	size_t write_buffer_size;
	size_t cache_size;
	int bloom_bits;
	enum bench_compression compression;
	uint64_t target_file_size;         /* 64 MiB */
	uint64_t max_bytes_for_level_base; /* 256 MiB */
	int background_jobs;               /* 2 */
	/* lsm only: 0 leveled, 1 tiered, 2 time-window (lsm_compaction_style);
	 * the other engines always run their leveled default. */
	int lsm_compaction;
	/* lsm only: values of at least this many bytes go to blob files
	 * (0: none); -1 keeps lsm's default. */
	int64_t lsm_blob_threshold;
	/* lsm only: level0_size_percent (0: L0 compacts by file count;
	 * -1: the engine's default). */
	int lsm_l0_size_percent;
	/* lsm only, size-tiered: min_merge_width and
	 * max_size_amplification_percent; 0 keeps lsm's default. */
	uint32_t lsm_min_merge_width;
	uint32_t lsm_size_amp_percent;
};

struct bench_err {
	char msg[512];
};

/* Formats into e->msg and returns -1 (so adapters can `return
 * bench_fail(...)`). Defined in main.c. */
int bench_fail(struct bench_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

struct bench_db; /* per adapter */

/* Called once per entry by scan(), in iteration order; the driver times
 * the gaps and checks the entries. The pointers are valid during the call
 * only. */
typedef void (*bench_scan_fn)(void *ctx, const void *key, size_t key_len,
			      const void *val, size_t val_len);

struct bench_engine {
	const char *name;
	/* Engine version and the settings it really uses, one line. */
	void (*describe)(const struct bench_config *cfg, char *buf, size_t cap);
	/* Creates a fresh store in dir (which does not exist yet). */
	int (*open)(const struct bench_config *cfg, const char *dir,
		    struct bench_db **out, struct bench_err *e);
	/* Always frees db; -1 if the engine reported an error. */
	int (*close)(struct bench_db *db, struct bench_err *e);
	int (*put)(struct bench_db *db, const void *key, size_t key_len,
		   const void *val, size_t val_len, bool sync,
		   struct bench_err *e);
	/* *found and *val_len (the value's length, if found) on success. */
	int (*get)(struct bench_db *db, const void *key, size_t key_len,
		   bool *found, size_t *val_len, struct bench_err *e);
	int (*del)(struct bench_db *db, const void *key, size_t key_len,
		   bool sync, struct bench_err *e);
	/* Iterates every live entry in key order, calling fn for each. */
	int (*scan)(struct bench_db *db, bench_scan_fn fn, void *ctx,
		    struct bench_err *e);
	/* Write amplification x1000 since open: bytes written to tables
	 * (flush + compaction) over user_bytes (key + value bytes the
	 * benchmark wrote). -1 if the engine cannot tell. */
	int (*wamp_x1000)(struct bench_db *db, uint64_t user_bytes,
			  uint64_t *out, struct bench_err *e);
	/* The same with the WAL's bytes counted; NULL if not known. */
	int (*wamp_wal_x1000)(struct bench_db *db, uint64_t *out,
			      struct bench_err *e);
	/* Waits until the engine's flushes and compactions are done (none
	 * running or due); NULL if the engine cannot tell. */
	int (*settle)(struct bench_db *db, struct bench_err *e);
	/* Per-level file counts and sizes as malloc'd text (free()). */
	int (*levels)(struct bench_db *db, char **out, struct bench_err *e);
};

#ifdef HAVE_LSM
extern const struct bench_engine bench_engine_lsm;
#endif
#ifdef HAVE_ROCKSDB
extern const struct bench_engine bench_engine_rocksdb;
#endif
#ifdef HAVE_LEVELDB
extern const struct bench_engine bench_engine_leveldb;
#endif

#endif /* LSM_BENCH_ENGINE_H */
