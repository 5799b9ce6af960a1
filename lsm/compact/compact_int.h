/*
 * compact_int.h - helpers the pickers of compact/ share (pick.c,
 * pick_tiered.c). Nothing outside compact/ includes it.
 */
#ifndef LSM_COMPACT_COMPACT_INT_H
#define LSM_COMPACT_COMPACT_INT_H

#include "compact/compact.h"

/* A compaction of v (referenced) with no inputs yet. */
struct compaction *compaction_new(struct version *v, int level, int out_level);
/* Frees a compaction whose inputs were never marked being_compacted. */
void compaction_abandon(struct compaction *c);
/* Estimate of compact_pending_bytes() for tiered and time-window. */
uint64_t compact_pending_bytes_other(const struct version *v,
				     const struct pick_opts *o);

#endif
