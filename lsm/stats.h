/*
 * stats.h - every engine statistic, declared once.
 *
 * LSM_STATS expands into the counters of struct lsm_stats, the lines of
 * the "lsm.stats" property and the names lsm_property_u64() accepts
 * ("lsm.<name>" with '_' written as '-'). Counters are relaxed atomics:
 * exact totals, no ordering.
 */
#ifndef LSM_STATS_H
#define LSM_STATS_H

#include "lsm.h"

#include <stdatomic.h>
#include <stdint.h>

#define LSM_STATS(X)                                                        \
	X(user_bytes_written, "bytes of keys and values written by users")  \
	X(user_writes, "write batches applied")                             \
	X(write_groups, "WAL appends (one per group of batches)")           \
	X(wal_bytes, "bytes appended to WALs")                              \
	X(wal_syncs, "WAL fsyncs")                                          \
	X(wal_sync_micros, "time spent in WAL fsyncs")                      \
	X(sync_gathers, "sync groups that waited for more writers")         \
	X(sync_gather_micros, "time sync groups waited for writers")        \
	X(flushes, "memtables flushed to L0")                               \
	X(flush_bytes, "bytes written by flushes")                          \
	X(compactions, "compactions that rewrote files")                    \
	X(trivial_moves, "compactions that moved a file without rewriting") \
	X(compaction_bytes_read, "bytes read by compactions")               \
	X(compaction_bytes_written, "bytes written by compactions")         \
	X(gets, "point reads")                                              \
	X(bloom_checks, "bloom filter probes")                              \
	X(bloom_useful, "bloom probes that avoided a block read")           \
	X(stall_count, "writes that waited for flush or compaction")        \
	X(stall_micros, "time writers spent waiting")                       \
	X(slowdown_count, "writes delayed by the slowdown threshold")       \
	X(bg_errors, "background errors")                                   \
	X(tiered_merges, "size-tiered merges of similar-size runs")         \
	X(tiered_full_merges, "size-tiered merges of all runs (space)")     \
	X(window_merges, "time-window merges of one window's files")        \
	X(ttl_files_dropped, "files deleted whole by the TTL")              \
	X(ttl_bytes_dropped, "bytes of files deleted by the TTL")           \
	X(blob_values_written, "values written to blob files by writes")    \
	X(blob_bytes_written, "bytes appended to blob files by writes")     \
	X(blob_reads, "values read from blob files")                        \
	X(blob_gc_bytes, "bytes of live values moved by compaction")        \
	X(blob_files_dropped, "blob files dropped as all garbage")          \
	X(blob_gc_compactions, "compactions run to empty a blob file")

/* Per output level : what flushes (L0)
 * and compactions wrote into a level and read to do it, and how many
 * compactions wrote there; they break write amplification down by level
 * in the "lsm.stats" level table. */
struct lsm_stats {
#define X(name, doc) _Atomic uint64_t name;
	LSM_STATS(X)
#undef X
	_Atomic uint64_t level_written[LSM_MAX_LEVELS];
	_Atomic uint64_t level_read[LSM_MAX_LEVELS];
	_Atomic uint64_t level_runs[LSM_MAX_LEVELS];
};

#define STAT_ADD(db, name, v) \
	atomic_fetch_add_explicit(&(db)->stats.name, (v), memory_order_relaxed)
#define STAT_GET(db, name) \
	atomic_load_explicit(&(db)->stats.name, memory_order_relaxed)
/* One flush or compaction that wrote `w` bytes into level l, reading r. */
#define STAT_LEVEL(db, l, r, w)                      \
	do {                                         \
		STAT_ADD(db, level_written[l], (w)); \
		STAT_ADD(db, level_read[l], (r));    \
		STAT_ADD(db, level_runs[l], 1);      \
	} while (0)

#endif
