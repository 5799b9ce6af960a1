/*
 * pick_tiered.c - the size-tiered and time-window strategies: which
 * files to merge next, which files a TTL expires, and the figures
 * (sorted runs, stall count, pending bytes) that depend on the strategy.
 *
 * Both strategies keep the shape every reader assumes (version.h): L0
 * files may overlap and are ordered newest first, each level >= 1 is one
 * disjoint sorted run, and a lower-numbered level never holds data older
 * than a higher one for the same key. Flushed L0 files have disjoint
 * sequence ranges in flush order, and every merge here takes a set of
 * age-adjacent runs, so every L0 file keeps a sequence range disjoint
 * from the others: the L0 order by largest_seq stays the age order.
 *
 * Size-tiered. The sorted runs, newest first, are the L0 files and then
 * the non-empty levels 1..6. Once level0_trigger L0 files wait (or there
 * are count_limit() runs):
 *  a. space bound: if the point entries a merge of every run would drop
 *     (older versions of keys, deletes and what they hide: entries
 *     against the distinct keys of the files' sketches, util/sketch.h)
 *     are more than max_size_amp_percent of those it would keep, all
 *     runs merge into the last level. A store that only grows never
 *     pays for such a merge. Files without a sketch (written before
 *     sketches were kept) fall back to the runs above the last one
 *     against the last one's bytes;
 *  b. size classes: from the newest free run, a run joins while it is at
 *     most (100 + size_ratio_percent)% of the average of the runs before
 *     it, up to max_merge_width runs; min_merge_width runs or more merge.
 *     Runs of one class merge together into a run about min_merge_width
 *     times larger, which waits for as many of its own size: each byte
 *     is rewritten about once per factor of min_merge_width the store
 *     grows by (log base min_merge_width of store / flush times), never
 *     pairwise into every larger run. A class holds at most
 *     min_merge_width - 1 runs at rest;
 *  c. from count_limit() runs on, the cheapest age-adjacent set (fewest
 *     bytes) of enough runs to bring the count back below that merges
 *     (at least min_merge_width runs).
 * Writers slow for the longest class of L0 files (compact_stall_files),
 * not for all of them: runs at rest owe nothing.
 * A merge is written to the level of its oldest run; when its oldest run
 * is the oldest L0 file it goes to the deepest empty level above the
 * first non-empty one (L0 itself if L1 holds data); when older L0 files
 * stay outside it, to L0. L0 outputs are one file (one run); level
 * outputs are cut at target_file_size.
 *
 * Time-window. L0 files are grouped by window (time_hi / window_us) into
 * segments of consecutive files; the window holding now is open. A
 * closed segment of two or more files merges into one L0 file (oldest
 * segment first); in the open segment, from level0_trigger files on,
 * rules b and c apply among its files, with level0_trigger as the merge
 * width. Levels >= 1 (left by another
 * strategy) are never compacted, only expired.
 *
 * TTL. A file whose time_hi is older than now - ttl goes (whole, no
 * rewrite) when every older file overlapping its keys (deeper levels,
 * older L0 files) goes too: a delete never expires before what it hides.
 *
 * Invariants:
 *  1. A merge's runs are age-adjacent and none is being compacted;
 *     levels strictly between its newest and its output level are in it
 *     or empty.
 *  2. A merge into L0 whose set leaves older L0 files outside keeps
 *     every delete (keep_deletes): those files may hold what it hides.
 *  3. Two running merges never share a run, and a newer one never
 *     writes below an older one: a merge that does not hold the oldest
 *     L0 file writes to L0.
 *
 * Thread-safety: called with the db mutex held (being_compacted).
 */
#include "compact/compact.h"
#include "compact/compact_int.h"

#include "util/ikey.h"
#include "util/sketch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A sorted run: one L0 file (idx into files[0]) or a whole level. */
struct run {
	int level;
	size_t idx;
	uint64_t size;
	bool busy;
};

/* Most runs: L0 files plus six levels. */
static size_t collect_runs(const struct version *v, const struct pick_opts *o,
			   struct run *r)
{
	size_t n = 0;
	for (size_t i = 0; i < v->n_files[0]; i++) {
		struct file_meta *f = v->files[0][i];
		r[n++] = (struct run){0, i, f->size, f->being_compacted};
	}
	for (int l = 1; l < o->num_levels; l++) {
		bool busy = false;
		if (!v->n_files[l])
			continue;
		for (size_t i = 0; i < v->n_files[l]; i++)
			busy |= v->files[l][i]->being_compacted;
		r[n++] = (struct run){l, 0, v->level_bytes[l], busy};
	}
	return n;
}

unsigned compact_sorted_runs(const struct version *v)
{
	unsigned n = (unsigned)v->n_files[0];
	for (int l = 1; l < LSM_MAX_LEVELS; l++)
		n += v->n_files[l] != 0;
	return n;
}

/* Builds the compaction of runs r[s..e] (age-adjacent, free). */
static int make_merge(struct version *v, const struct pick_opts *o,
		      const struct run *r, size_t s, size_t e,
		      enum compact_kind kind, struct compaction **out)
{
	const struct run *last = &r[e];
	size_t n0 = v->n_files[0];
	int out_level;
	bool single = false, keep = false;
	struct compaction *c;

	if (last->level >= 1) {
		out_level = last->level;
	} else if (last->idx + 1 < n0) {
		out_level = 0; /* older L0 files stay: invariants 2, 3 */
		single = true;
		keep = true;
	} else {
		int first = o->num_levels; /* first non-empty level >= 1 */
		for (int l = 1; l < o->num_levels; l++)
			if (v->n_files[l]) {
				first = l;
				break;
			}
		out_level = first - 1;
		single = out_level == 0;
	}
	c = compaction_new(v, r[s].level, out_level);
	if (!c)
		return -ENOMEM;
	c->kind = kind;
	c->single_output = single;
	c->keep_deletes = keep;
	for (size_t k = s; k <= e; k++) {
		int l = r[k].level;
		size_t cnt = l == 0 ? 1 : v->n_files[l];
		struct file_meta **a = realloc(
			c->inputs[l], (c->n_inputs[l] + cnt) * sizeof(*a));
		if (!a) {
			compaction_abandon(c);
			return -ENOMEM;
		}
		c->inputs[l] = a;
		if (l == 0)
			a[c->n_inputs[0]] = v->files[0][r[k].idx];
		else
			memcpy(a, v->files[l], cnt * sizeof(*a));
		c->n_inputs[l] += cnt;
	}
	for (int l = 0; l < LSM_MAX_LEVELS; l++)
		for (size_t i = 0; i < c->n_inputs[l]; i++)
			c->inputs[l][i]->being_compacted = true;
	*out = c;
	return 0;
}

/* Does a run of `size` bytes join a size class of `cnt` runs holding
 * `sum`? While it is at most (100 + size_ratio_percent)% of their
 * average (rule b). */
static bool joins(const struct pick_opts *o, uint64_t size, uint64_t sum,
		  size_t cnt)
{
	return (double)size * 100.0 * (double)cnt <=
	       (double)sum * (100.0 + o->size_ratio_percent);
}

/* Rule b over runs r[lo..hi): the first age-adjacent free set of runs of
 * one size class. Returns true and [*s, *e] when found. */
static bool pick_ratio(const struct pick_opts *o, const struct run *r,
		       size_t lo, size_t hi, size_t *s, size_t *e)
{
	for (size_t i = lo; i < hi; i++) {
		uint64_t sum;
		size_t k;
		if (r[i].busy)
			continue;
		sum = r[i].size;
		for (k = i + 1; k < hi; k++) {
			if (r[k].busy || k - i >= o->max_merge_width ||
			    !joins(o, r[k].size, sum, k - i))
				break;
			sum += r[k].size;
		}
		if (k - i >= o->min_merge_width) {
			*s = i;
			*e = k - 1;
			return true;
		}
	}
	return false;
}

/* Rule c over runs r[lo..hi): of the free age-adjacent sets of `want`
 * runs, the one with the fewest bytes (the cheapest way to remove
 * want - 1 runs; the newest on a tie). */
static bool pick_count(const struct pick_opts *o, const struct run *r,
		       size_t lo, size_t hi, size_t want, size_t *s, size_t *e)
{
	uint64_t best = UINT64_MAX;
	if (want < o->min_merge_width)
		want = o->min_merge_width;
	if (want > o->max_merge_width)
		want = o->max_merge_width;
	for (size_t i = lo; i + want <= hi; i++) {
		bool busy = false;
		uint64_t sum = 0;
		for (size_t k = i; k < i + want; k++) {
			busy |= r[k].busy;
			sum += r[k].size;
		}
		if (!busy && sum < best) {
			best = sum;
			*s = i;
			*e = i + want - 1;
		}
	}
	return best != UINT64_MAX;
}

/* Rule c applies from this many runs on: level0_trigger L0 files on top
 * of a run in every level, so that new runs are merged level0_trigger
 * at a time rather than one by one into a larger run. Size-tiered keeps
 * up to min_merge_width - 1 runs of each size class at rest, so it
 * allows two more runs per class for each step of the width above 2. */
static size_t count_limit(const struct pick_opts *o)
{
	size_t lim = (size_t)o->level0_trigger + (size_t)o->num_levels - 1;
	if (o->style == LSM_COMPACTION_TIERED)
		lim += 2 * ((size_t)o->min_merge_width - 2);
	return lim;
}

/* The point entries of a set of files: their sketches' union, how many
 * entries and deletes they hold, and whether a file had no sketch. */
struct tally {
	uint8_t u[SKETCH_REGS];
	uint64_t n, del;
	bool unknown;
};

static void tally_add(struct tally *t, const struct file_meta *f)
{
	if (!f->sketch) {
		t->unknown = true;
		return;
	}
	sketch_union(t->u, f->sketch);
	t->n += f->num_entries;
	t->del += f->num_deletions;
}

/* Every file of v into *all, and those of run *last (if not NULL) into
 * *lr as well. */
static void tally_version(const struct version *v, const struct run *last,
			  struct tally *all, struct tally *lr)
{
	for (int l = 0; l < LSM_MAX_LEVELS; l++)
		for (size_t i = 0; i < v->n_files[l]; i++) {
			tally_add(all, v->files[l][i]);
			if (last && l == last->level &&
			    (l != 0 || i == last->idx))
				tally_add(lr, v->files[l][i]);
		}
}

/* Entries that repeat a key another entry of the set holds. */
static double tally_dups(const struct tally *t)
{
	double d = (double)t->n - sketch_estimate(t->u);
	return d > 0 ? d : 0;
}

/* Rule a's measure: the point entries a merge of every run into the last
 * one would drop (older versions of a key, and the deletes above the last
 * run with what they hide) as a percentage of those it would keep. What
 * the last run holds twice (versions a snapshot keeps) stays after the
 * merge too, so it is not counted. Returns -1 when a file has no
 * sketch. */
static double garbage_percent(const struct version *v, const struct run *last)
{
	struct tally all = {0}, lr = {0};
	double dup, garbage;

	tally_version(v, last, &all, &lr);
	if (all.unknown)
		return -1;
	dup = tally_dups(&all) - tally_dups(&lr);
	garbage = (dup > 0 ? dup : 0) + (double)(all.del - lr.del);
	if (garbage >= (double)all.n)
		return 1e9;
	return garbage * 100.0 / ((double)all.n - garbage);
}

double compact_live_share(const struct version *v)
{
	struct tally all = {0};
	double live;
	tally_version(v, NULL, &all, NULL);
	if (all.unknown)
		return -1;
	if (!all.n)
		return 1;
	live = (double)all.n - tally_dups(&all) - (double)all.del;
	return live > 0 ? live / (double)all.n : 0;
}

/* Rule a: must every run merge into the last one? By estimated garbage
 * when every file has a sketch; otherwise (files written before sketches
 * were kept) by the runs above the last one against its size, which
 * counts new keys as garbage too. */
static bool over_space_bound(const struct version *v, const struct pick_opts *o,
			     const struct run *r, size_t n)
{
	double pct = garbage_percent(v, &r[n - 1]);
	uint64_t newer = 0;
	if (pct >= 0)
		return pct > (double)o->max_size_amp_percent;
	for (size_t i = 0; i + 1 < n; i++)
		newer += r[i].size;
	return (double)newer * 100.0 >
	       (double)o->max_size_amp_percent * (double)r[n - 1].size;
}

/* Does the picker look at n runs at all? Once level0_trigger L0 files
 * wait, or count_limit() runs. What it does not look at is not owed
 * (compact_pending_bytes_other): writers stopped for work no merge will
 * start would wait for ever. */
static bool tiered_due(const struct version *v, const struct pick_opts *o,
		       size_t n)
{
	return n >= 2 && (v->n_files[0] >= (size_t)o->level0_trigger ||
			  n >= count_limit(o));
}

int compact_pick_tiered(struct version *v, const struct pick_opts *o,
			struct compaction **out)
{
	size_t n = v->n_files[0] + LSM_MAX_LEVELS, s, e;
	struct run *r = malloc(n * sizeof(*r));
	int rc = 0;

	*out = NULL;
	if (!r)
		return -ENOMEM;
	n = collect_runs(v, o, r);
	if (!tiered_due(v, o, n))
		goto out;
	{ /* a. the space bound */
		bool busy = false;
		for (size_t i = 0; i < n; i++)
			busy |= r[i].busy;
		if (!busy && over_space_bound(v, o, r, n)) {
			rc = make_merge(v, o, r, 0, n - 1, COMPACT_TIERED_FULL,
					out);
			goto out;
		}
	}
	if (pick_ratio(o, r, 0, n, &s, &e) ||
	    (n >= count_limit(o) &&
	     pick_count(o, r, 0, n, n - count_limit(o) + 2, &s, &e)))
		rc = make_merge(v, o, r, s, e, COMPACT_TIERED, out);
out:
	free(r);
	return rc;
}

static uint64_t window_of(const struct file_meta *f, const struct pick_opts *o)
{
	return f->time_hi / o->window_us;
}

/* The L0 segment starting at i: files [i, *end) of one window. */
static size_t segment_end(const struct version *v, const struct pick_opts *o,
			  size_t i)
{
	size_t j = i + 1;
	uint64_t w = window_of(v->files[0][i], o);
	while (j < v->n_files[0] && window_of(v->files[0][j], o) == w)
		j++;
	return j;
}

int compact_pick_window(struct version *v, const struct pick_opts *o,
			uint64_t now_us, struct compaction **out)
{
	size_t n0 = v->n_files[0], s, e, best_s = SIZE_MAX, best_e = 0;
	uint64_t cur = now_us / o->window_us;
	struct run *r;
	int rc = 0;

	*out = NULL;
	if (n0 < 2)
		return 0;
	r = malloc((n0 + LSM_MAX_LEVELS) * sizeof(*r));
	if (!r)
		return -ENOMEM;
	collect_runs(v, o, r);
	/* Closed windows first, oldest first: they never change again. */
	for (size_t i = 0; i < n0;) {
		size_t j = segment_end(v, o, i);
		bool busy = false;
		for (size_t k = i; k < j; k++)
			busy |= r[k].busy;
		if (window_of(v->files[0][i], o) < cur && j - i >= 2 && !busy) {
			best_s = i;
			best_e = j - 1;
		}
		i = j;
	}
	if (best_s != SIZE_MAX) {
		rc = make_merge(v, o, r, best_s, best_e, COMPACT_WINDOW, out);
		goto out;
	}
	/* The open window: the newest segment, if it is not closed. Its
	 * files merge level0_trigger at a time: it is merged again when it
	 * closes, so a wider fanout would only leave more files to read. */
	if (window_of(v->files[0][0], o) >= cur) {
		size_t j = segment_end(v, o, 0);
		struct pick_opts wo = *o;
		wo.min_merge_width =
			o->level0_trigger > 2 ? (uint32_t)o->level0_trigger : 2;
		if (wo.max_merge_width < wo.min_merge_width)
			wo.max_merge_width = wo.min_merge_width;
		if (j >= (size_t)o->level0_trigger &&
		    (pick_ratio(&wo, r, 0, j, &s, &e) ||
		     (j >= count_limit(&wo) &&
		      pick_count(&wo, r, 0, j, j - count_limit(&wo) + 2, &s,
				 &e))))
			rc = make_merge(v, o, r, s, e, COMPACT_WINDOW, out);
	}
out:
	if (!rc && *out) {
		/* Window merges stay in L0 whatever lies below. */
		struct compaction *c = *out;
		if (c->out_level != 0) {
			c->out_level = 0;
			c->single_output = true;
			c->keep_deletes = false; /* it holds the oldest L0 */
		}
	}
	free(r);
	return rc;
}

int compact_pick_style(struct version *v, const struct pick_opts *o,
		       uint64_t now_us, struct compaction **out)
{
	switch (o->style) {
	case LSM_COMPACTION_TIERED:
		return compact_pick_tiered(v, o, out);
	case LSM_COMPACTION_TIME_WINDOW:
		return compact_pick_window(v, o, now_us, out);
	default:
		return compact_pick(v, o, out);
	}
}

/* Is the file at (level, idx) older than the file at (l2, i2)? Levels
 * below are older; in L0 a higher index is older. */
static bool older_than(int l2, size_t i2, int level, size_t idx)
{
	return l2 > level || (l2 == 0 && level == 0 && i2 > idx);
}

int compact_ttl_expired(const struct version *v, const struct pick_opts *o,
			uint64_t now_us, struct file_meta ***files,
			int **levels, size_t *n)
{
	size_t total = 0, cnt = 0, pos = 0;
	bool any = false;
	bool *drop;
	int rc = 0;

	*files = NULL;
	*levels = NULL;
	*n = 0;
	if (!o->ttl_us || now_us < o->ttl_us)
		return 0;
	for (int l = 0; l < LSM_MAX_LEVELS; l++)
		for (size_t i = 0; i < v->n_files[l]; i++) {
			any |= v->files[l][i]->time_hi < now_us - o->ttl_us;
			total++;
		}
	if (!any)
		return 0;
	drop = calloc(total, sizeof(*drop));
	if (!drop)
		return -ENOMEM;
	/* Oldest first (deepest level, then L0 from its oldest file), so
	 * that every older file is decided before the files above it. */
	for (int l = LSM_MAX_LEVELS - 1; l >= 0; l--) {
		size_t base = 0;
		for (int k = 0; k < l; k++)
			base += v->n_files[k];
		for (size_t ii = v->n_files[l]; ii-- > 0;) {
			struct file_meta *f = v->files[l][ii];
			struct slice lo = ikey_user(fm_smallest(f));
			struct slice hi = ikey_user(fm_largest(f));
			bool ok = f->time_hi < now_us - o->ttl_us &&
				  !f->being_compacted;
			size_t b2 = 0;
			for (int l2 = 0; ok && l2 < LSM_MAX_LEVELS; l2++) {
				for (size_t i2 = 0; ok && i2 < v->n_files[l2];
				     i2++)
					if (older_than(l2, i2, l, ii) &&
					    !drop[b2 + i2] &&
					    fm_overlaps(v->files[l2][i2], &lo,
							&hi))
						ok = false;
				b2 += v->n_files[l2];
			}
			drop[base + ii] = ok;
			cnt += ok;
		}
	}
	if (cnt) {
		*files = malloc(cnt * sizeof(**files));
		*levels = malloc(cnt * sizeof(**levels));
		if (!*files || !*levels) {
			free(*files);
			free(*levels);
			*files = NULL;
			*levels = NULL;
			rc = -ENOMEM;
			goto out;
		}
		for (int l = 0, b = 0; l < LSM_MAX_LEVELS; l++) {
			for (size_t i = 0; i < v->n_files[l]; i++)
				if (drop[(size_t)b + i]) {
					(*files)[pos] = v->files[l][i];
					(*levels)[pos++] = l;
				}
			b += (int)v->n_files[l];
		}
		*n = cnt;
	}
out:
	free(drop);
	return rc;
}

size_t compact_stall_files(const struct version *v, const struct pick_opts *o,
			   uint64_t now_us)
{
	size_t n0 = v->n_files[0];
	if (o->style == LSM_COMPACTION_TIERED && n0) {
		/* A size class at rest holds fewer than min_merge_width
		 * runs; one that compaction lags behind grows. The longest
		 * class of L0 files counts, not all of them. */
		size_t most = 0;
		for (size_t i = 0, k; i < n0; i = k) {
			uint64_t sum = v->files[0][i]->size;
			for (k = i + 1; k < n0 && joins(o, v->files[0][k]->size,
							sum, k - i);
			     k++)
				sum += v->files[0][k]->size;
			if (k - i > most)
				most = k - i;
		}
		return most;
	}
	if (o->style != LSM_COMPACTION_TIME_WINDOW || n0 == 0)
		return n0;
	if (window_of(v->files[0][0], o) < now_us / o->window_us)
		return 0;
	return segment_end(v, o, 0);
}

uint64_t compact_pending_bytes_other(const struct version *v,
				     const struct pick_opts *o)
{
	uint64_t pending = 0;
	if (o->style == LSM_COMPACTION_TIERED) {
		/* What rule a or b would merge now: every run past the space
		 * bound, else the classes of min_merge_width runs or more;
		 * nothing while the picker does not look (tiered_due). Out
		 * of memory, nothing either: this only throttles writers. */
		struct run *r =
			malloc((v->n_files[0] + LSM_MAX_LEVELS) * sizeof(*r));
		size_t n;
		if (!r)
			return 0;
		n = collect_runs(v, o, r);
		if (!tiered_due(v, o, n))
			n = 0;
		for (size_t i = 0, k; i < n; i = k) {
			uint64_t sum = r[i].size;
			for (k = i + 1;
			     k < n && joins(o, r[k].size, sum, k - i); k++)
				sum += r[k].size;
			if (k - i >= o->min_merge_width)
				pending += sum;
		}
		if (n && over_space_bound(v, o, r, n)) {
			pending = 0;
			for (size_t i = 0; i < n; i++)
				pending += r[i].size;
		}
		free(r);
		return pending;
	}
	/* Time-window: closed segments of several files are rewritten. */
	for (size_t i = 0; i < v->n_files[0];) {
		size_t j = segment_end(v, o, i);
		if (j - i >= 2)
			for (size_t k = i; k < j; k++)
				pending += v->files[0][k]->size;
		i = j;
	}
	return pending;
}
