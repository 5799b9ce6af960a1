/*
 * rangedel.c - fragmenting overlapping range tombstones (see rangedel.h).
 *
 * Build: take the tombstones visible at read_seq, collect their starts and
 * ends, sort them and drop duplicates; these boundaries cut the key space
 * into elementary intervals [b_i, b_i+1). A sweep over the boundaries,
 * with the tombstones sorted by start and a max-heap (by seq) of those
 * already started, gives each interval the largest seq covering it:
 * before reading the heap's top at b_i, tops whose end <= b_i are popped
 * (lazy deletion: a finished tombstone below the top is harmless until it
 * surfaces). Adjacent intervals with equal seq merge; uncovered intervals
 * are dropped. O(n log n) for n visible tombstones.
 *
 * Invariants (after a successful build):
 *  1. frags[0..n_frags) are sorted, non-empty and disjoint: frags[i].end
 *     <= frags[i+1].start.
 *  2. Two adjacent fragments (end == next start) have different seqs,
 *     and every fragment's seq is > 0: a tombstone with seq 0 would be
 *     indistinguishable from "not covered", so build ignores it.
 *  3. Fragment slices point into tombstone copies owned by the set; they
 *     are never freed before tomb_set_free().
 *
 * Thread safety: see rangedel.h.
 */
#include "iter/rangedel.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct tomb {
	struct slice start, end; /* bytes in one malloc'd block at start.p */
	uint64_t seq;
};

struct tomb_frag {
	struct slice start, end;
	uint64_t seq;
};

struct tomb_set {
	struct tomb *tombs;
	size_t n_tombs, tombs_cap;
	struct tomb_frag *frags;
	size_t n_frags;
};

struct tomb_set *tomb_set_new(void)
{
	return calloc(1, sizeof(struct tomb_set));
}

void tomb_set_free(struct tomb_set *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_tombs; i++)
		free((void *)s->tombs[i].start.p);
	free(s->tombs);
	free(s->frags);
	free(s);
}

int tomb_set_add(struct tomb_set *s, struct slice start, struct slice end,
		 uint64_t seq)
{
	if (slice_cmp(start, end) >= 0)
		return 0;
	if (s->n_tombs == s->tombs_cap) {
		size_t cap = s->tombs_cap ? s->tombs_cap * 2 : 16;
		struct tomb *nt = realloc(s->tombs, cap * sizeof(*nt));
		if (!nt)
			return -ENOMEM;
		s->tombs = nt;
		s->tombs_cap = cap;
	}
	/* +1: never malloc(0), and start.p stays unique and non-NULL. */
	uint8_t *buf = malloc(start.len + end.len + 1);
	if (!buf)
		return -ENOMEM;
	if (start.len)
		memcpy(buf, start.p, start.len);
	if (end.len)
		memcpy(buf + start.len, end.p, end.len);
	struct tomb *t = &s->tombs[s->n_tombs++];
	t->start = slice_make(buf, start.len);
	t->end = slice_make(buf + start.len, end.len);
	t->seq = seq;
	return 0;
}

static int cmp_slice_ptr(const void *a, const void *b)
{
	return slice_cmp(*(const struct slice *)a, *(const struct slice *)b);
}

static int cmp_tomb_start(const void *a, const void *b)
{
	return slice_cmp(((const struct tomb *)a)->start,
			 ((const struct tomb *)b)->start);
}

/* Max-heap of tombstones by seq, for the sweep. */
struct tomb_heap {
	const struct tomb **v;
	size_t n;
};

static void theap_push(struct tomb_heap *h, const struct tomb *t)
{
	size_t i = h->n++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (h->v[p]->seq >= t->seq)
			break;
		h->v[i] = h->v[p];
		i = p;
	}
	h->v[i] = t;
}

static void theap_pop(struct tomb_heap *h)
{
	const struct tomb *x = h->v[--h->n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->v[c + 1]->seq > h->v[c]->seq)
			c++;
		if (h->v[c]->seq <= x->seq)
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = x;
}

int tomb_set_build(struct tomb_set *s, uint64_t read_seq)
{
	int rc = -ENOMEM;
	size_t n = 0;
	struct tomb *vis = NULL;
	struct slice *bounds = NULL;
	struct tomb_heap heap = {NULL, 0};
	struct tomb_frag *frags = NULL;
	size_t n_frags = 0;

	free(s->frags);
	s->frags = NULL;
	s->n_frags = 0;
	if (s->n_tombs == 0)
		return 0;

	vis = malloc(s->n_tombs * sizeof(*vis));
	bounds = malloc(2 * s->n_tombs * sizeof(*bounds));
	heap.v = malloc(s->n_tombs * sizeof(*heap.v));
	/* k tombstones make at most 2k - 1 intervals. */
	frags = malloc(2 * s->n_tombs * sizeof(*frags));
	if (!vis || !bounds || !heap.v || !frags)
		goto out_free;

	for (size_t i = 0; i < s->n_tombs; i++) {
		if (s->tombs[i].seq <= read_seq && s->tombs[i].seq > 0) {
			vis[n] = s->tombs[i];
			bounds[2 * n] = vis[n].start;
			bounds[2 * n + 1] = vis[n].end;
			n++;
		}
	}
	qsort(vis, n, sizeof(*vis), cmp_tomb_start);
	qsort(bounds, 2 * n, sizeof(*bounds), cmp_slice_ptr);
	size_t n_bounds = 0;
	for (size_t i = 0; i < 2 * n; i++) {
		if (n_bounds == 0 || !slice_eq(bounds[n_bounds - 1], bounds[i]))
			bounds[n_bounds++] = bounds[i];
	}

	size_t next_tomb = 0;
	for (size_t b = 0; b + 1 < n_bounds; b++) {
		struct slice lo = bounds[b], hi = bounds[b + 1];
		while (next_tomb < n &&
		       slice_cmp(vis[next_tomb].start, lo) <= 0)
			theap_push(&heap, &vis[next_tomb++]);
		while (heap.n && slice_cmp(heap.v[0]->end, lo) <= 0)
			theap_pop(&heap);
		if (heap.n == 0)
			continue;
		uint64_t seq = heap.v[0]->seq;
		struct tomb_frag *prev = n_frags ? &frags[n_frags - 1] : NULL;
		if (prev && prev->seq == seq && slice_eq(prev->end, lo)) {
			prev->end = hi;
		} else {
			struct tomb_frag *f = &frags[n_frags++];
			f->start = lo;
			f->end = hi;
			f->seq = seq;
		}
	}
	s->frags = frags;
	s->n_frags = n_frags;
	frags = NULL;
	rc = 0;

out_free:
	free(frags);
	free(heap.v);
	free(bounds);
	free(vis);
	return rc;
}

/* Index of the last fragment with start <= key, or n_frags if none. */
static size_t frag_floor(const struct tomb_set *s, struct slice key)
{
	size_t lo = 0, hi = s->n_frags;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (slice_cmp(s->frags[mid].start, key) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? lo - 1 : s->n_frags;
}

uint64_t tomb_set_cover(const struct tomb_set *s, struct slice user_key)
{
	size_t i = frag_floor(s, user_key);
	if (i < s->n_frags && slice_cmp(user_key, s->frags[i].end) < 0)
		return s->frags[i].seq;
	return 0;
}

bool tomb_set_find(const struct tomb_set *s, struct slice user_key,
		   struct slice *start, struct slice *end, uint64_t *seq)
{
	size_t i = frag_floor(s, user_key);
	if (i == s->n_frags)
		i = 0; /* key before every fragment: the first one is next */
	else if (slice_cmp(user_key, s->frags[i].end) >= 0)
		i++; /* key in a gap or past the fragment: take the next */
	if (i >= s->n_frags)
		return false;
	*start = s->frags[i].start;
	*end = s->frags[i].end;
	*seq = s->frags[i].seq;
	return true;
}

size_t tomb_set_count(const struct tomb_set *s)
{
	return s->n_frags;
}
