/*
 * compact.h - choosing compactions (leveled, size-tiered and time-window
 * strategies) and writing their output; flushes write through the same
 * output path.
 *
 * compact_pick() (leveled), compact_pick_tiered() and
 * compact_pick_window() look at a version and decide what to merge next
 * (compact_pick_style() calls the one of o->style);
 * compact_write() merges an input stream into new SST files, dropping
 * what no reader can see any more. The database (db.c) runs both, holds
 * the mutex around picking and installing, and none while writing.
 */
#ifndef LSM_COMPACT_COMPACT_H
#define LSM_COMPACT_COMPACT_H

#include "iter/iter.h"
#include "sst/sst.h"
#include "version/version.h"

#include <stdbool.h>
#include <stdint.h>

struct pick_opts {
	int num_levels;
	int level0_trigger;
	int level0_size_percent; /* 0: L0 compacts by file count only */
	uint64_t base_bytes;
	int multiplier;
	uint64_t target_file_size;
	lsm_compaction_style style;
	/* size-tiered (lsm_options fields of the same names) */
	uint32_t min_merge_width, max_merge_width;
	uint32_t size_ratio_percent, max_size_amp_percent;
	/* time-window, in microseconds; ttl_us 0 = never */
	uint64_t window_us, ttl_us;
};

/* Why a compaction runs (for statistics). */
enum compact_kind {
	COMPACT_LEVELED = 0,
	COMPACT_MANUAL,      /* lsm_compact_range */
	COMPACT_TIERED,      /* runs of similar size, or too many runs */
	COMPACT_TIERED_FULL, /* space-amplification bound: all runs */
	COMPACT_WINDOW,      /* files of one time window */
	COMPACT_BLOB_GC,     /* the key range of a blob file full of garbage */
};

/*
 * A chosen compaction: input files per level (levels level..out_level
 * may hold inputs; automatic compactions use `level` and out_level only),
 * the grandparent files used to bound each output's future cost, and a
 * reference on the version it was chosen from. Input files are marked
 * being_compacted while it lives.
 */
struct compaction {
	int level, out_level;
	struct file_meta **inputs[LSM_MAX_LEVELS];
	size_t n_inputs[LSM_MAX_LEVELS];
	struct file_meta **grandparents;
	size_t n_grandparents;
	struct version *v;
	bool trivial_move; /* inputs move to out_level unchanged */
	double score;
	enum compact_kind kind;
	/* One output file whatever its size: an L0 output must stay one
	 * sorted run per file (tiered and time-window L0 merges). */
	bool single_output;
	/* Older versions of the inputs' keys may sit in files outside the
	 * compaction at or above out_level (older L0 files): nothing may be
	 * dropped as bottommost. */
	bool keep_deletes;
};

/* Level targets and scores. targets[l] is 0 for levels that should be
 * empty (above the dynamic base level). Returns the base level. */
int compact_targets(const struct version *v, const struct pick_opts *o,
		    uint64_t targets[LSM_MAX_LEVELS]);
/* Bytes compaction would have to rewrite to bring every level back under
 * its target (an estimate, used to slow writers). */
uint64_t compact_pending_bytes(const struct version *v,
			       const struct pick_opts *o);
/* Picks the most urgent compaction whose files are free. Call with the
 * db mutex held; marks the inputs being_compacted. *out = NULL if there
 * is nothing to do. */
int compact_pick(struct version *v, const struct pick_opts *o,
		 struct compaction **out);
/* Size-tiered picking (pick_tiered.c): merges age-adjacent sorted runs
 * (each L0 file, each non-empty level) of similar size once there are
 * level0_trigger runs, or all of them when space amplification passes
 * its bound. Same contract as compact_pick(). */
int compact_pick_tiered(struct version *v, const struct pick_opts *o,
			struct compaction **out);
/* Time-window picking: merges the L0 files of a closed window into one
 * file, and keeps the open window's file count under level0_trigger.
 * now_us is the env's clock. Same contract as compact_pick(). */
int compact_pick_window(struct version *v, const struct pick_opts *o,
			uint64_t now_us, struct compaction **out);
/* The picker of o->style. */
int compact_pick_style(struct version *v, const struct pick_opts *o,
		       uint64_t now_us, struct compaction **out);
/* Files whose newest entry is older than o->ttl_us before now_us and
 * that can go without uncovering older data (every older file
 * overlapping them goes too), none being compacted. *levels[i] is the
 * level of (*files)[i]; both malloc'd, NULL when *n == 0. Mutex held. */
int compact_ttl_expired(const struct version *v, const struct pick_opts *o,
			uint64_t now_us, struct file_meta ***files,
			int **levels, size_t *n);
/* L0 files that count towards the write slowdown and stop triggers:
 * all of them, except under time-window: those of the open window. */
size_t compact_stall_files(const struct version *v, const struct pick_opts *o,
			   uint64_t now_us);
/* The share of the point entries that are live: neither a delete nor an
 * older version of a key that another entry holds, estimated from the
 * files' distinct-key sketches (util/sketch.h). 1 for an empty store; -1
 * when a file has no sketch (written before sketches were kept). */
double compact_live_share(const struct version *v);
/* Sorted runs a point read may probe: L0 files plus non-empty levels. */
unsigned compact_sorted_runs(const struct version *v);

/* Every file overlapping [lo, hi] (NULL: open) in every level, merged
 * into the last level. -EAGAIN if some file involved is being compacted
 * (wait and retry); *out = NULL if the range holds no file. */
int compact_pick_range(struct version *v, const struct pick_opts *o,
		       const struct slice *lo, const struct slice *hi,
		       struct compaction **out);
/* Clears being_compacted on the inputs (mutex held) and frees c. */
void compaction_free(struct compaction *c);
uint64_t compaction_input_bytes(const struct compaction *c);

/* A range tombstone as compaction input: slices valid during the call. */
struct tomb_in {
	struct slice start, end;
	uint64_t seq;
};

/*
 * Entries of kind IKEY_BLOB hold references into blob files, which the
 * database tracks: it is told of every such entry the output drops and of
 * every one it keeps, and may give a kept entry a new value (a reference
 * to where it moved the blob). The new value must stay valid until the
 * next call. NULL: the entries pass like any other.
 */
struct compact_blob_hooks {
	void *ctx;
	int (*dropped)(void *ctx, struct slice value);
	int (*kept)(void *ctx, struct slice user_key, struct slice value,
		    struct slice *new_value);
};

struct compact_out_opts {
	lsm_env *env;
	const char *dir;
	struct sst_writer_opts wopts;
	uint64_t target_file_size;        /* 0: one output file */
	uint64_t max_grandparent_overlap; /* bytes; 0: no limit */
	struct file_meta **grandparents;
	size_t n_grandparents;
	/* Live snapshot sequence numbers, ascending. */
	const uint64_t *snapshots;
	size_t n_snapshots;
	/* Files below the output level, to decide whether a tombstone can go
	 * (v == NULL: never bottommost, as for a flush). */
	const struct version *v;
	int out_level;
	uint64_t (*new_file_number)(void *ctx);
	void *ctx;
	const struct compact_blob_hooks *blob;
};

struct compact_result {
	struct file_meta **files; /* new files, one reference each */
	size_t n_files, cap;
	uint64_t bytes_written;
	uint64_t entries_in, entries_dropped;
};

/* Merges `input` (point entries in ikey order) and the tombstones into
 * new SSTs. On failure the files it made are deleted and res is empty. */
int compact_write(const struct compact_out_opts *o, struct ikv_iter *input,
		  const struct tomb_in *tombs, size_t n_tombs,
		  struct compact_result *res);
void compact_result_release(struct compact_result *res);

#endif
