/*
 * compact.h - choosing compactions (leveled strategy) and writing their
 * output; flushes write through the same output path.
 *
 * compact_pick() looks at a version and decides what to merge next;
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
	uint64_t base_bytes;
	int multiplier;
	uint64_t target_file_size;
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
