/*
 * pick.c - the leveled strategy: which files to compact next.
 *
 * Level targets are dynamic: the last level's actual size fixes the
 * targets of the levels above it, each `multiplier` times smaller, down to
 * the base level (where L0 compacts to), whose target is never below
 * max_bytes_for_level_base. The base level is at least one level above
 * the last: a small store has L0 compact into the level above the last,
 * and that level's overflow moves down into the (at first empty, so
 * cheap) last level. Were the last level the base while small, the data
 * it gathered would be rewritten again by every later merge from above.
 * As the store grows the last level holds most of the data (space
 * amplification near 1 + 1/multiplier).
 *
 * Scores: L0 = files / trigger (see l0_score for level0_size_percent);
 * levels base..last-1 = bytes / target;
 * levels above base that still hold data (the base moved) get a score
 * above 1 so they drain. The highest score >= 1 whose files are free
 * wins. Within a level the file with the least overlap with the next
 * level per byte is chosen: it costs the least rewriting.
 *
 * Invariants:
 *  1. No file is in two running compactions (being_compacted).
 *  2. Outputs of a compaction never overlap a file of the output level
 *     outside the compaction: the output level's inputs are every file
 *     overlapping the inputs' span.
 *
 * Thread-safety: called with the db mutex held (being_compacted).
 */
#include "compact/compact.h"
#include "compact/compact_int.h"

#include "util/ikey.h"

#include <errno.h>

#include <stdlib.h>
#include <string.h>

int compact_targets(const struct version *v, const struct pick_opts *o,
		    uint64_t targets[LSM_MAX_LEVELS])
{
	int last = o->num_levels - 1, base = last;
	uint64_t t = v->level_bytes[last];
	memset(targets, 0, sizeof(uint64_t) * LSM_MAX_LEVELS);
	if (last <= 1) {
		targets[1] = UINT64_MAX;
		return 1;
	}
	/* Walk up from the last level; the base level's target never drops
	 * below max_bytes_for_level_base. A base level much smaller than
	 * the level under it would make every byte moving down rewrite many
	 * bytes there (write amplification); much larger than what L0 brings
	 * would make every L0 compaction rewrite it. */
	do {
		t /= (uint64_t)o->multiplier;
		if (t < o->base_bytes)
			t = o->base_bytes;
		base--;
	} while (base > 1 && t > o->base_bytes);
	for (int l = base; l < last; l++) {
		targets[l] = t < 1 ? 1 : t;
		t *= (uint64_t)o->multiplier;
	}
	targets[last] = UINT64_MAX;
	return base;
}

/*
 * L0's score. By file count: files / level0_trigger. With
 * level0_size_percent, L0 at the trigger also waits until its bytes reach
 * that percent of the base level's bytes, or until it holds twice the
 * trigger: an L0 compaction rewrites the whole base level (keys are spread
 * over it), so merging more L0 bytes at a time rewrites the base level
 * less often per byte flushed, at the cost of more L0 files for reads.
 */
static double l0_score(const struct version *v, const struct pick_opts *o,
		       int base)
{
	double sf = (double)v->n_files[0] / o->level0_trigger;
	double sb, cap;
	if (!o->level0_size_percent || sf < 1.0 || !v->level_bytes[base])
		return sf;
	sb = (double)v->level_bytes[0] * 100.0 /
	     ((double)o->level0_size_percent * (double)v->level_bytes[base]);
	cap = (double)v->n_files[0] / (2.0 * o->level0_trigger);
	if (sb < cap)
		sb = cap;
	return sb < sf ? sb : sf;
}

static double level_score(const struct version *v, const struct pick_opts *o,
			  const uint64_t *targets, int base, int l)
{
	if (l == 0)
		return l0_score(v, o, base);
	if (l >= o->num_levels - 1 || v->n_files[l] == 0)
		return 0;
	if (l < base)
		return 1.0 + (double)v->level_bytes[l] / (double)o->base_bytes;
	return (double)v->level_bytes[l] / (double)targets[l];
}

uint64_t compact_pending_bytes(const struct version *v,
			       const struct pick_opts *o)
{
	uint64_t targets[LSM_MAX_LEVELS], pending = 0;
	int base, last = o->num_levels - 1;
	if (o->style != LSM_COMPACTION_LEVELED)
		return compact_pending_bytes_other(v, o);
	base = compact_targets(v, o, targets);
	if (l0_score(v, o, base) >= 1.0)
		pending += v->level_bytes[0] + v->level_bytes[base];
	for (int l = 1; l < last; l++) {
		uint64_t t = l < base ? 0 : targets[l];
		if (v->level_bytes[l] > t)
			pending += (v->level_bytes[l] - t) *
				   (uint64_t)(o->multiplier + 1);
	}
	return pending;
}

static bool any_busy(struct file_meta **fs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fs[i]->being_compacted)
			return true;
	return false;
}

static uint64_t sum_size(struct file_meta **fs, size_t n)
{
	uint64_t s = 0;
	for (size_t i = 0; i < n; i++)
		s += fs[i]->size;
	return s;
}

/* Are the files (sorted by key, or any order for L0) pairwise disjoint? */
static bool disjoint(struct file_meta **fs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++) {
			struct slice lo = ikey_user(fm_smallest(fs[j]));
			struct slice hi = ikey_user(fm_largest(fs[j]));
			if (fm_overlaps(fs[i], &lo, &hi))
				return false;
		}
	return true;
}

struct compaction *compaction_new(struct version *v, int level, int out_level)
{
	struct compaction *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->level = level;
	c->out_level = out_level;
	c->kind = COMPACT_LEVELED;
	c->v = v;
	version_ref(v);
	return c;
}

void compaction_free(struct compaction *c)
{
	if (!c)
		return;
	for (int l = 0; l < LSM_MAX_LEVELS; l++) {
		for (size_t i = 0; i < c->n_inputs[l]; i++)
			c->inputs[l][i]->being_compacted = false;
		free(c->inputs[l]);
	}
	free(c->grandparents);
	version_unref(c->v);
	free(c);
}

uint64_t compaction_input_bytes(const struct compaction *c)
{
	uint64_t s = 0;
	for (int l = 0; l < LSM_MAX_LEVELS; l++)
		s += sum_size(c->inputs[l], c->n_inputs[l]);
	return s;
}

/* Fills the output level's inputs and the grandparents from the span of
 * the level inputs; marks everything being_compacted. -EAGAIN if an
 * output-level file is busy. */
static int finish_pick(struct compaction *c, const struct pick_opts *o)
{
	struct slice lo, hi;
	int rc;
	version_files_span(c->inputs[c->level], c->n_inputs[c->level], &lo,
			   &hi);
	if (c->out_level != c->level) {
		rc = version_overlapping(c->v, c->out_level, &lo, &hi,
					 &c->inputs[c->out_level],
					 &c->n_inputs[c->out_level]);
		if (rc)
			return rc;
		if (any_busy(c->inputs[c->out_level],
			     c->n_inputs[c->out_level]))
			return -EAGAIN;
		if (c->n_inputs[c->out_level])
			version_files_span(c->inputs[c->out_level],
					   c->n_inputs[c->out_level], &lo, &hi);
	}
	if (c->out_level + 1 < o->num_levels) {
		struct slice l2 = lo, h2 = hi;
		if (c->n_inputs[c->out_level]) {
			/* span of everything */
			struct slice a, b;
			version_files_span(c->inputs[c->level],
					   c->n_inputs[c->level], &a, &b);
			if (slice_cmp(a, l2) < 0)
				l2 = a;
			if (slice_cmp(b, h2) > 0)
				h2 = b;
		}
		rc = version_overlapping(c->v, c->out_level + 1, &l2, &h2,
					 &c->grandparents, &c->n_grandparents);
		if (rc)
			return rc;
	}
	c->trivial_move =
		c->level != c->out_level && c->n_inputs[c->out_level] == 0 &&
		disjoint(c->inputs[c->level], c->n_inputs[c->level]) &&
		sum_size(c->grandparents, c->n_grandparents) <=
			10 * o->target_file_size;
	for (int l = 0; l < LSM_MAX_LEVELS; l++)
		for (size_t i = 0; i < c->n_inputs[l]; i++)
			c->inputs[l][i]->being_compacted = true;
	return 0;
}

/* Drops a half-built compaction without touching being_compacted. */
void compaction_abandon(struct compaction *c)
{
	for (int l = 0; l < LSM_MAX_LEVELS; l++) {
		free(c->inputs[l]);
		c->inputs[l] = NULL;
		c->n_inputs[l] = 0;
	}
	compaction_free(c);
}

static int pick_l0(struct version *v, const struct pick_opts *o, int base,
		   struct compaction **out)
{
	size_t n = v->n_files[0];
	struct compaction *c;
	int rc;
	if (n == 0 || any_busy(v->files[0], n))
		return -EAGAIN;
	c = compaction_new(v, 0, base);
	if (!c)
		return -ENOMEM;
	c->inputs[0] = malloc(n * sizeof(struct file_meta *));
	if (!c->inputs[0]) {
		compaction_abandon(c);
		return -ENOMEM;
	}
	memcpy(c->inputs[0], v->files[0], n * sizeof(struct file_meta *));
	c->n_inputs[0] = n;
	rc = finish_pick(c, o);
	if (rc) {
		compaction_abandon(c);
		return rc;
	}
	*out = c;
	return 0;
}

static int pick_level(struct version *v, const struct pick_opts *o, int level,
		      struct compaction **out)
{
	size_t n = v->n_files[level], best = SIZE_MAX;
	double best_ratio = 0;
	int out_level = level + 1;
	struct compaction *c;
	int rc;

	for (size_t i = 0; i < n; i++) {
		struct file_meta *f = v->files[level][i], **ov;
		size_t nov;
		struct slice lo = ikey_user(fm_smallest(f));
		struct slice hi = ikey_user(fm_largest(f));
		if (f->being_compacted)
			continue;
		if (version_overlapping(v, out_level, &lo, &hi, &ov, &nov))
			return -ENOMEM;
		bool busy = any_busy(ov, nov);
		double ratio = (double)sum_size(ov, nov) /
			       (double)(f->size ? f->size : 1);
		free(ov);
		if (busy)
			continue;
		if (best == SIZE_MAX || ratio < best_ratio) {
			best = i;
			best_ratio = ratio;
		}
	}
	if (best == SIZE_MAX)
		return -EAGAIN;
	c = compaction_new(v, level, out_level);
	if (!c)
		return -ENOMEM;
	c->inputs[level] = malloc(sizeof(struct file_meta *));
	if (!c->inputs[level]) {
		compaction_abandon(c);
		return -ENOMEM;
	}
	c->inputs[level][0] = v->files[level][best];
	c->n_inputs[level] = 1;
	rc = finish_pick(c, o);
	if (rc) {
		compaction_abandon(c);
		return rc;
	}
	*out = c;
	return 0;
}

int compact_pick(struct version *v, const struct pick_opts *o,
		 struct compaction **out)
{
	uint64_t targets[LSM_MAX_LEVELS];
	double scores[LSM_MAX_LEVELS];
	bool tried[LSM_MAX_LEVELS] = {false};
	int base = compact_targets(v, o, targets);
	int last = o->num_levels - 1;

	*out = NULL;
	for (int l = 0; l < last; l++)
		scores[l] = level_score(v, o, targets, base, l);
	for (;;) {
		int best = -1;
		for (int l = 0; l < last; l++)
			if (!tried[l] && scores[l] >= 1.0 &&
			    (best < 0 || scores[l] > scores[best]))
				best = l;
		if (best < 0)
			return 0;
		tried[best] = true;
		/* L0 goes to the base level, unless a level above it still
		 * holds data (the base moved down): newer data must never
		 * land below older data of the same keys. */
		int l0_out = base;
		for (int l = 1; l < base; l++)
			if (v->n_files[l]) {
				l0_out = l;
				break;
			}
		int rc = best == 0 ? pick_l0(v, o, l0_out, out)
				   : pick_level(v, o, best, out);
		if (rc == -EAGAIN)
			continue;
		if (rc)
			return rc;
		(*out)->score = scores[best];
		return 0;
	}
}

int compact_pick_range(struct version *v, const struct pick_opts *o,
		       const struct slice *lo, const struct slice *hi,
		       struct compaction **out)
{
	int last = o->num_levels - 1;
	bool lo_open = !lo, hi_open = !hi, changed;
	struct slice clo = {NULL, 0}, chi = {NULL, 0};
	struct compaction *c = compaction_new(v, 0, last);
	size_t total;
	int rc = 0;

	if (!c)
		return -ENOMEM;
	c->kind = COMPACT_MANUAL;
	if (lo)
		clo = *lo;
	if (hi)
		chi = *hi;
	/* Widen [clo, chi] until the files it overlaps, in every level,
	 * lie inside it (invariant 2 for a many-level merge). */
	do {
		changed = false;
		for (int l = 0; l <= last; l++) {
			struct slice a, b;
			free(c->inputs[l]);
			c->inputs[l] = NULL;
			c->n_inputs[l] = 0;
			rc = version_overlapping(v, l, lo_open ? NULL : &clo,
						 hi_open ? NULL : &chi,
						 &c->inputs[l],
						 &c->n_inputs[l]);
			if (rc) {
				compaction_abandon(c);
				return rc;
			}
			if (!c->n_inputs[l])
				continue;
			version_files_span(c->inputs[l], c->n_inputs[l], &a,
					   &b);
			if (!lo_open && slice_cmp(a, clo) < 0) {
				clo = a;
				changed = true;
			}
			if (!hi_open && slice_cmp(b, chi) > 0) {
				chi = b;
				changed = true;
			}
		}
	} while (changed);
	total = 0;
	for (int l = 0; l <= last; l++) {
		if (any_busy(c->inputs[l], c->n_inputs[l])) {
			compaction_abandon(c);
			return -EAGAIN;
		}
		total += c->n_inputs[l];
	}
	if (total == 0) {
		compaction_abandon(c);
		*out = NULL;
		return rc;
	}
	for (int l = 0; l <= last; l++)
		for (size_t i = 0; i < c->n_inputs[l]; i++)
			c->inputs[l][i]->being_compacted = true;
	*out = c;
	return 0;
}
