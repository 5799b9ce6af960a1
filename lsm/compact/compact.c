/*
 * compact.c - merging an input stream into new SST files.
 *
 * Used by compactions (input = merge of the input files) and by flushes
 * (input = one memtable). For each user key, versions arrive newest
 * first. Snapshots cut the sequence space into stripes: stripe i holds
 * sequence numbers in (snap[i-1], snap[i]], and the last stripe everything
 * newer than the newest snapshot. A reader at any snapshot sees at most
 * the newest version of each stripe, so:
 *
 *  1. Of the versions of a key in one stripe only the newest is kept.
 *  2. A version covered by a range tombstone of the same stripe (newer
 *     than the version, not newer than the stripe's top) is dropped.
 *  3. A point delete in stripe 0 (visible to every reader) is dropped
 *     when no level below the output can hold the key: it hides nothing.
 *  4. A range tombstone in stripe 0 is dropped when no level below the
 *     output overlaps its range.
 *
 * Output files are cut only between two different user keys, when the
 * current file reaches the target size (carried on to the next boundary of
 * a grandparent file, see should_cut) or overlaps too much of the level
 * below the output (which would make its own compaction expensive).
 * Range tombstones are clipped to each output file's share of the key
 * space [lower, upper), where lower/upper are the cut keys, so that files
 * of one level never overlap; a file whose tombstones end at the cut key
 * records as largest key the sentinel (cut, SEQ_MAX, SENTINEL), which
 * sorts before every real version of the cut key.
 *
 * Thread-safety: runs without locks; reads only immutable inputs.
 */
#include "compact/compact.h"

#include "iter/rangedel.h"
#include "util/ikey.h"
#include "util/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kbuf {
	uint8_t *p;
	size_t len, cap;
};

static int kbuf_set(struct kbuf *b, const uint8_t *p, size_t len)
{
	if (len > b->cap) {
		size_t ncap = len < 64 ? 64 : len * 2;
		uint8_t *np = realloc(b->p, ncap);
		if (!np)
			return -ENOMEM;
		b->p = np;
		b->cap = ncap;
	}
	if (len)
		memcpy(b->p, p, len);
	b->len = len;
	return 0;
}

static struct slice kbuf_slice(const struct kbuf *b)
{
	return slice_make(b->p, b->len);
}

/* Builds the internal key (ukey, seq, kind) in b; ukey must not point
 * into b. */
static int kbuf_ikey(struct kbuf *b, struct slice ukey, uint64_t seq,
		     unsigned kind)
{
	size_t n = ukey.len + IKEY_TRAILER;
	if (n > b->cap) {
		uint8_t *np = realloc(b->p, n * 2);
		if (!np)
			return -ENOMEM;
		b->p = np;
		b->cap = n * 2;
	}
	if (ukey.len)
		memcpy(b->p, ukey.p, ukey.len);
	ikey_put_trailer(b->p + ukey.len, seq, kind);
	b->len = n;
	return 0;
}

struct out_state {
	const struct compact_out_opts *o;
	struct compact_result *res;
	struct sst_writer *w;
	uint64_t number;
	char path[4096];
	struct kbuf first, last; /* point ikeys of the open file */
	bool has_points;
	struct kbuf lower; /* cut key opening this file (user key) */
	bool has_lower;
	uint64_t smallest_seq, largest_seq;
	/* kept tombstones, sorted by (start asc, seq desc) */
	const struct tomb_in *tombs;
	size_t n_tombs;
	uint64_t gp_overlap;
	size_t gp_index, gp_slot;
	bool seen_key;
	/* bottommost checks: per level below the output, a cursor */
	size_t below_pos[LSM_MAX_LEVELS];
};

static int result_push(struct compact_result *r, struct file_meta *f)
{
	if (r->n_files == r->cap) {
		size_t ncap = r->cap ? r->cap * 2 : 8;
		struct file_meta **a = realloc(r->files, ncap * sizeof(*a));
		if (!a)
			return -ENOMEM;
		r->files = a;
		r->cap = ncap;
	}
	r->files[r->n_files++] = f;
	return 0;
}

void compact_result_release(struct compact_result *res)
{
	for (size_t i = 0; i < res->n_files; i++)
		file_meta_unref(res->files[i]);
	free(res->files);
	memset(res, 0, sizeof(*res));
}

static int open_output(struct out_state *s)
{
	s->number = s->o->new_file_number(s->o->ctx);
	snprintf(s->path, sizeof(s->path), "%s/%06llu.sst", s->o->dir,
		 (unsigned long long)s->number);
	s->has_points = false;
	s->smallest_seq = UINT64_MAX;
	s->largest_seq = 0;
	return sstw_open(s->o->env, s->path, &s->o->wopts, &s->w);
}

struct clipped {
	struct slice start, end;
	uint64_t seq;
};

static int cmp_clipped(const void *a, const void *b)
{
	const struct clipped *x = a, *y = b;
	int c = slice_cmp(x->start, y->start);
	if (c)
		return c;
	return x->seq > y->seq ? -1 : x->seq < y->seq;
}

/* Finishes the open file; `upper` (NULL: none) is the cut key that opens
 * the next one. */
static int close_output(struct out_state *s, const struct slice *upper)
{
	struct slice lower = kbuf_slice(&s->lower);
	struct clipped *cl = NULL;
	size_t n_cl = 0;
	struct kbuf sm = {0}, lg = {0}, tmp = {0};
	struct sst_props props;
	struct file_meta *f;
	int rc = 0;

	if (s->n_tombs) {
		cl = malloc(s->n_tombs * sizeof(*cl));
		if (!cl) {
			rc = -ENOMEM;
			goto out_abandon;
		}
	}
	for (size_t i = 0; i < s->n_tombs; i++) {
		struct clipped c = {s->tombs[i].start, s->tombs[i].end,
				    s->tombs[i].seq};
		if (s->has_lower && slice_cmp(c.start, lower) < 0)
			c.start = lower;
		if (upper && slice_cmp(c.end, *upper) > 0)
			c.end = *upper;
		if (slice_cmp(c.start, c.end) < 0)
			cl[n_cl++] = c;
	}
	if (!s->has_points && n_cl == 0) {
		sstw_abandon(s->w);
		s->w = NULL;
		s->o->env->ops->remove_file(s->o->env, s->path);
		goto out_free;
	}
	if (n_cl > 1)
		qsort(cl, n_cl, sizeof(*cl), cmp_clipped);
	for (size_t i = 0; i < n_cl && !rc; i++) {
		rc = kbuf_ikey(&tmp, cl[i].start, cl[i].seq, IKEY_RANGE_DELETE);
		if (rc)
			break;
		rc = sstw_add_range_del(s->w, kbuf_slice(&tmp), cl[i].end);
		if (cl[i].seq < s->smallest_seq)
			s->smallest_seq = cl[i].seq;
		if (cl[i].seq > s->largest_seq)
			s->largest_seq = cl[i].seq;
	}
	if (rc)
		goto out_abandon;

	/* The file's key range: points, widened by the tombstones. */
	if (s->has_points) {
		rc = kbuf_set(&sm, s->first.p, s->first.len);
		if (!rc)
			rc = kbuf_set(&lg, s->last.p, s->last.len);
	}
	for (size_t i = 0; i < n_cl && !rc; i++) {
		rc = kbuf_ikey(&tmp, cl[i].start, IKEY_SEQ_MAX, IKEY_SENTINEL);
		if (!rc && (sm.len == 0 ||
			    ikey_cmp(kbuf_slice(&tmp), kbuf_slice(&sm)) < 0))
			rc = kbuf_set(&sm, tmp.p, tmp.len);
		if (!rc)
			rc = kbuf_ikey(&tmp, cl[i].end, IKEY_SEQ_MAX,
				       IKEY_SENTINEL);
		if (!rc && (lg.len == 0 ||
			    ikey_cmp(kbuf_slice(&tmp), kbuf_slice(&lg)) > 0))
			rc = kbuf_set(&lg, tmp.p, tmp.len);
	}
	if (rc)
		goto out_abandon;

	rc = sstw_finish(s->w, &props);
	s->w = NULL;
	if (rc) {
		s->o->env->ops->remove_file(s->o->env, s->path);
		goto out_free;
	}
	f = file_meta_new(s->number, props.file_size, kbuf_slice(&sm),
			  kbuf_slice(&lg));
	if (!f) {
		sst_props_release(&props);
		s->o->env->ops->remove_file(s->o->env, s->path);
		rc = -ENOMEM;
		goto out_free;
	}
	f->smallest_seq = s->smallest_seq == UINT64_MAX ? 0 : s->smallest_seq;
	f->largest_seq = s->largest_seq;
	f->num_entries = props.num_entries;
	f->num_deletions = props.num_deletions;
	f->num_range_dels = props.num_range_deletions;
	f->time_lo = s->o->wopts.time_lo;
	f->time_hi = s->o->wopts.time_hi;
	f->sketch = props.sketch; /* moves to the file */
	props.sketch = NULL;
	s->res->bytes_written += props.file_size;
	sst_props_release(&props);
	rc = result_push(s->res, f);
	if (rc) {
		file_meta_unref(f);
		s->o->env->ops->remove_file(s->o->env, s->path);
	}
	goto out_free;

out_abandon:
	if (s->w) {
		sstw_abandon(s->w);
		s->w = NULL;
		s->o->env->ops->remove_file(s->o->env, s->path);
	}
out_free:
	free(cl);
	free(sm.p);
	free(lg.p);
	free(tmp.p);
	return rc;
}

/* Could a level below the output hold user key k? Keys arrive in
 * increasing order, so each level's cursor only moves forward. */
static bool below_may_hold(struct out_state *s, struct slice k)
{
	const struct version *v = s->o->v;
	if (!v)
		return true;
	for (int l = s->o->out_level + 1; l < LSM_MAX_LEVELS; l++) {
		size_t *pos = &s->below_pos[l];
		while (*pos < v->n_files[l]) {
			struct file_meta *f = v->files[l][*pos];
			if (fm_overlaps(f, &k, NULL))
				break;
			(*pos)++;
		}
		if (*pos < v->n_files[l] &&
		    fm_overlaps(v->files[l][*pos], &k, &k))
			return true;
	}
	return false;
}

static bool below_overlaps_range(const struct compact_out_opts *o,
				 struct slice start, struct slice end)
{
	if (!o->v)
		return true;
	for (int l = o->out_level + 1; l < LSM_MAX_LEVELS; l++)
		for (size_t i = 0; i < o->v->n_files[l]; i++) {
			struct file_meta *f = o->v->files[l][i];
			/* [start, end) against the file's inclusive span */
			if (slice_cmp(ikey_user(fm_smallest(f)), end) >= 0)
				break;
			if (fm_overlaps(f, &start, NULL))
				return true;
		}
	return false;
}

static size_t stripe_of(const struct compact_out_opts *o, uint64_t seq)
{
	size_t lo = 0, hi = o->n_snapshots;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (o->snapshots[mid] < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Should the output be cut before internal key ik (the newest version of a
 * new user key)? By size: at the target size. Where the output level has a
 * level below it (grandparents), outputs also line up with the grandparent
 * files, so that a later compaction of an output into that level rewrites
 * whole grandparent files and not a sliver at each end, and so that an
 * output lying in a gap of that level can move down unchanged: an output of
 * half the target size or more is cut where the keys cross the start or end
 * of a grandparent file, and one at the target size is carried on to such a
 * boundary, up to twice the target, while its keys lie inside a grandparent
 * file. Outputs are also cut when they overlap too many grandparent bytes.
 */
static bool should_cut(struct out_state *s, struct slice ik)
{
	const struct compact_out_opts *o = s->o;
	uint64_t size, target = o->target_file_size;
	bool cut = false, inside;
	size_t slot;
	while (s->gp_index < o->n_grandparents &&
	       ikey_cmp(ik, fm_largest(o->grandparents[s->gp_index])) > 0) {
		if (s->seen_key)
			s->gp_overlap += o->grandparents[s->gp_index]->size;
		s->gp_index++;
	}
	/* slot 2i: the gap before grandparent i; 2i+1: inside it (by user
	 * key: the grandparent holds older versions of its first key) */
	inside = s->gp_index < o->n_grandparents &&
		 slice_cmp(ikey_user(ik),
			   ikey_user(fm_smallest(
				   o->grandparents[s->gp_index]))) >= 0;
	slot = 2 * s->gp_index + inside;
	bool crossed = s->seen_key && slot != s->gp_slot;
	s->gp_slot = slot;
	s->seen_key = true;
	if (!s->w || !s->has_points)
		return false;
	size = sstw_estimated_size(s->w);
	if (!target)
		cut = false;
	else if (!o->n_grandparents)
		cut = size >= target;
	else
		cut = (crossed && size >= target / 2) ||
		      (!inside && size >= target) || size >= 2 * target;
	if (o->max_grandparent_overlap &&
	    s->gp_overlap > o->max_grandparent_overlap)
		cut = true;
	if (cut)
		s->gp_overlap = 0;
	return cut;
}

int compact_write(const struct compact_out_opts *o, struct ikv_iter *input,
		  const struct tomb_in *tombs_in, size_t n_tombs_in,
		  struct compact_result *res)
{
	struct out_state s;
	struct tomb_in *tombs = NULL;
	struct tomb_set **stripes = NULL;
	struct kbuf cur = {0};
	size_t n_tombs = 0, n_stripes = o->n_snapshots + 1;
	size_t prev_stripe = SIZE_MAX;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	memset(&s, 0, sizeof(s));
	s.o = o;
	s.res = res;

	/* Rules 2 and 4 need the tombstones: keep those still needed, and
	 * fragment them once per stripe top for coverage tests. */
	if (n_tombs_in) {
		tombs = malloc(n_tombs_in * sizeof(*tombs));
		stripes = calloc(n_stripes, sizeof(*stripes));
		if (!tombs || !stripes) {
			rc = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < n_tombs_in; i++) {
			const struct tomb_in *t = &tombs_in[i];
			if (stripe_of(o, t->seq) == 0 &&
			    !below_overlaps_range(o, t->start, t->end))
				continue; /* rule 4 */
			tombs[n_tombs++] = *t;
		}
		for (size_t st = 0; st < n_stripes; st++) {
			uint64_t top = st < o->n_snapshots ? o->snapshots[st]
							   : IKEY_SEQ_MAX;
			stripes[st] = tomb_set_new();
			if (!stripes[st]) {
				rc = -ENOMEM;
				goto out;
			}
			for (size_t i = 0; i < n_tombs_in && !rc; i++)
				rc = tomb_set_add(
					stripes[st], tombs_in[i].start,
					tombs_in[i].end, tombs_in[i].seq);
			if (!rc)
				rc = tomb_set_build(stripes[st], top);
			if (rc)
				goto out;
		}
	}
	s.tombs = tombs;
	s.n_tombs = n_tombs;

	for (iter_first(input); iter_valid(input); iter_next(input)) {
		struct slice ik = iter_key(input), uk = ikey_user(ik);
		uint64_t seq = ikey_seq(ik);
		unsigned kind = ikey_kind(ik);
		size_t st = stripe_of(o, seq);
		bool drop = false;

		res->entries_in++;
		if (cur.len != uk.len ||
		    (uk.len && memcmp(cur.p, uk.p, uk.len))) {
			/* a new user key: a place where the output may be cut
			 */
			if (should_cut(&s, ik)) {
				rc = close_output(&s, &uk);
				if (rc)
					goto out;
				rc = kbuf_set(&s.lower, uk.p, uk.len);
				if (rc)
					goto out;
				s.has_lower = true;
			}
			rc = kbuf_set(&cur, uk.p, uk.len);
			if (rc)
				goto out;
			prev_stripe = SIZE_MAX;
		}
		if (st == prev_stripe) {
			drop = true; /* rule 1 */
		} else {
			prev_stripe = st;
			if (stripes && tomb_set_cover(stripes[st], uk) > seq)
				drop = true; /* rule 2 */
			else if (kind == IKEY_DELETE && st == 0 &&
				 !below_may_hold(&s, uk))
				drop = true; /* rule 3 */
		}
		struct slice val = iter_value(input);
		if (drop) {
			res->entries_dropped++;
			if (kind == IKEY_BLOB && o->blob) {
				rc = o->blob->dropped(o->blob->ctx, val);
				if (rc)
					goto out;
			}
			continue;
		}
		if (kind == IKEY_BLOB && o->blob) {
			rc = o->blob->kept(o->blob->ctx, uk, val, &val);
			if (rc)
				goto out;
		}
		if (!s.w) {
			rc = open_output(&s);
			if (rc)
				goto out;
		}
		rc = sstw_add(s.w, ik, val);
		if (rc)
			goto out;
		if (!s.has_points)
			rc = kbuf_set(&s.first, ik.p, ik.len);
		if (!rc)
			rc = kbuf_set(&s.last, ik.p, ik.len);
		if (rc)
			goto out;
		s.has_points = true;
		if (seq < s.smallest_seq)
			s.smallest_seq = seq;
		if (seq > s.largest_seq)
			s.largest_seq = seq;
	}
	rc = iter_status(input);
	if (rc)
		goto out;
	if (!s.w && n_tombs) {
		rc = open_output(&s);
		if (rc)
			goto out;
	}
	if (s.w)
		rc = close_output(&s, NULL);

out:
	if (s.w) {
		sstw_abandon(s.w);
		o->env->ops->remove_file(o->env, s.path);
	}
	if (rc) {
		for (size_t i = 0; i < res->n_files; i++) {
			char path[4096];
			snprintf(path, sizeof(path), "%s/%06llu.sst", o->dir,
				 (unsigned long long)res->files[i]->number);
			o->env->ops->remove_file(o->env, path);
		}
		compact_result_release(res);
	}
	for (size_t st = 0; stripes && st < n_stripes; st++)
		tomb_set_free(stripes[st]);
	free(stripes);
	free(tombs);
	free(cur.p);
	free(s.first.p);
	free(s.last.p);
	free(s.lower.p);
	return rc;
}
