/*
 * merge.c - the merging iterator: n sorted children as one sorted stream.
 *
 * The children are kept in a binary heap ordered by their current keys: a
 * min-heap while moving forward, a max-heap while moving backward; the
 * merge's current entry is the heap's root. Each heap slot caches its
 * child's key (valid until that child moves, and only the root child moves
 * between rebuilds), so sifting does no indirect calls; keys are compared
 * with the inlined ikey_cmp_fast() (sst/keycmp.h), the same order as
 * ikey_cmp().
 *
 * Direction switch: when next() follows prev() (or the reverse), the
 * children other than the current one may sit anywhere on the wrong side
 * of the current key k (or be exhausted). Each of them is repositioned
 * relative to k (seek(k) for forward, seek_for_prev(k) for backward,
 * stepping once more if it lands on k itself), the current child steps,
 * and the heap is rebuilt in the new order.
 *
 * Invariants:
 *  1. heap[0..n_heap) holds exactly the valid children, each with its
 *     current key cached; it is a min-heap by (key, child index) when
 *     dir == MERGE_FWD and a max-heap when dir == MERGE_BWD.
 *  2. When dir == MERGE_FWD, every valid child's key is > the merge's
 *     current key except the root's (symmetric for MERGE_BWD).
 *  3. err holds the first error status seen from a child since the last
 *     first/last/seek/seek_for_prev; while err != 0 the merge is invalid.
 *     Keys never tie across children (unique sequence numbers); the child
 *     index breaks ties anyway so that backward order is the exact
 *     reverse of forward order.
 *
 * Thread safety: one thread at a time (iter.h contract 5). The merge owns
 * its children and frees them.
 */
#include "iter/iter.h"

#include "sst/keycmp.h"
#include "util/ikey.h"

#include <errno.h>
#include <stdlib.h>

enum merge_dir { MERGE_FWD, MERGE_BWD };

struct merge_slot {
	struct slice key; /* the child's current key */
	struct ikv_iter *it;
	size_t idx; /* position in children[]: tie-break */
};

struct merge_iter {
	struct ikv_iter base;
	struct ikv_iter **children;
	size_t n_children;
	struct merge_slot *heap; /* n_children slots */
	size_t n_heap;
	enum merge_dir dir;
	int err;
};

static inline struct merge_iter *to_merge(struct ikv_iter *it)
{
	return (struct merge_iter *)it;
}

static inline const struct merge_iter *to_cmerge(const struct ikv_iter *it)
{
	return (const struct merge_iter *)it;
}

/* True if slot a belongs nearer the root than slot b. */
static inline bool merge_before(const struct merge_iter *m,
				const struct merge_slot *a,
				const struct merge_slot *b)
{
	int r = ikey_cmp_fast(a->key, b->key);
	if (r == 0)
		r = a->idx < b->idx ? -1 : 1;
	return m->dir == MERGE_FWD ? r < 0 : r > 0;
}

static void heap_sift_down(struct merge_iter *m, size_t i)
{
	struct merge_slot *h = m->heap;
	size_t n = m->n_heap;
	struct merge_slot x = h[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && merge_before(m, &h[c + 1], &h[c]))
			c++;
		if (!merge_before(m, &h[c], &x))
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = x;
}

/* Notes a child that is no longer valid: an error, or just exhausted. */
static void merge_note_invalid(struct merge_iter *m, struct ikv_iter *child)
{
	int st = iter_status(child);
	if (st != 0 && m->err == 0)
		m->err = st;
}

/* Rebuilds the heap from all children's current positions (invariant 1). */
static void merge_rebuild(struct merge_iter *m, enum merge_dir dir)
{
	m->dir = dir;
	m->n_heap = 0;
	for (size_t i = 0; i < m->n_children; i++) {
		struct ikv_iter *c = m->children[i];
		if (iter_valid(c)) {
			struct merge_slot *s = &m->heap[m->n_heap++];
			s->key = iter_key(c);
			s->it = c;
			s->idx = i;
		} else {
			merge_note_invalid(m, c);
		}
	}
	for (size_t i = m->n_heap / 2; i-- > 0;)
		heap_sift_down(m, i);
}

/* The root child has moved: refresh its key or drop it from the heap. */
static void merge_fix_root(struct merge_iter *m)
{
	struct merge_slot *root = &m->heap[0];
	if (iter_valid(root->it)) {
		root->key = iter_key(root->it);
	} else {
		merge_note_invalid(m, root->it);
		m->heap[0] = m->heap[--m->n_heap];
		if (m->n_heap == 0)
			return;
	}
	heap_sift_down(m, 0);
}

static bool merge_valid(const struct ikv_iter *it)
{
	const struct merge_iter *m = to_cmerge(it);
	return m->err == 0 && m->n_heap > 0;
}

static void merge_first(struct ikv_iter *it)
{
	struct merge_iter *m = to_merge(it);
	m->err = 0;
	for (size_t i = 0; i < m->n_children; i++)
		iter_first(m->children[i]);
	merge_rebuild(m, MERGE_FWD);
}

static void merge_last(struct ikv_iter *it)
{
	struct merge_iter *m = to_merge(it);
	m->err = 0;
	for (size_t i = 0; i < m->n_children; i++)
		iter_last(m->children[i]);
	merge_rebuild(m, MERGE_BWD);
}

static void merge_seek(struct ikv_iter *it, struct slice t)
{
	struct merge_iter *m = to_merge(it);
	m->err = 0;
	for (size_t i = 0; i < m->n_children; i++)
		iter_seek(m->children[i], t);
	merge_rebuild(m, MERGE_FWD);
}

static void merge_seek_for_prev(struct ikv_iter *it, struct slice t)
{
	struct merge_iter *m = to_merge(it);
	m->err = 0;
	for (size_t i = 0; i < m->n_children; i++)
		iter_seek_for_prev(m->children[i], t);
	merge_rebuild(m, MERGE_BWD);
}

static void merge_next(struct ikv_iter *it)
{
	struct merge_iter *m = to_merge(it);
	if (!merge_valid(it))
		return;
	if (m->dir == MERGE_BWD) {
		struct ikv_iter *cur = m->heap[0].it;
		struct slice k = m->heap[0].key; /* cur does not move yet */
		for (size_t i = 0; i < m->n_children; i++) {
			struct ikv_iter *c = m->children[i];
			if (c == cur)
				continue;
			iter_seek(c, k);
			if (iter_valid(c) && ikey_cmp(iter_key(c), k) == 0)
				iter_next(c);
		}
		iter_next(cur);
		merge_rebuild(m, MERGE_FWD);
		return;
	}
	iter_next(m->heap[0].it);
	merge_fix_root(m);
}

static void merge_prev(struct ikv_iter *it)
{
	struct merge_iter *m = to_merge(it);
	if (!merge_valid(it))
		return;
	if (m->dir == MERGE_FWD) {
		struct ikv_iter *cur = m->heap[0].it;
		struct slice k = m->heap[0].key;
		for (size_t i = 0; i < m->n_children; i++) {
			struct ikv_iter *c = m->children[i];
			if (c == cur)
				continue;
			iter_seek_for_prev(c, k);
			if (iter_valid(c) && ikey_cmp(iter_key(c), k) == 0)
				iter_prev(c);
		}
		iter_prev(cur);
		merge_rebuild(m, MERGE_BWD);
		return;
	}
	iter_prev(m->heap[0].it);
	merge_fix_root(m);
}

static struct slice merge_key(const struct ikv_iter *it)
{
	return to_cmerge(it)->heap[0].key;
}

static struct slice merge_value(const struct ikv_iter *it)
{
	return iter_value(to_cmerge(it)->heap[0].it);
}

static int merge_status(const struct ikv_iter *it)
{
	return to_cmerge(it)->err;
}

static void merge_free(struct ikv_iter *it)
{
	struct merge_iter *m = to_merge(it);
	for (size_t i = 0; i < m->n_children; i++)
		iter_free(m->children[i]);
	free(m->children);
	free(m->heap);
	free(m);
}

static const struct ikv_iter_ops merge_ops = {
	.valid = merge_valid,
	.first = merge_first,
	.last = merge_last,
	.seek = merge_seek,
	.seek_for_prev = merge_seek_for_prev,
	.next = merge_next,
	.prev = merge_prev,
	.key = merge_key,
	.value = merge_value,
	.status = merge_status,
	.free = merge_free,
};

/*
 * Never NULL: with no children it is an empty iterator, with one it is
 * that child itself, and on ENOMEM the children are freed and an empty
 * iterator reporting -ENOMEM is returned.
 */
struct ikv_iter *iter_new_merge(struct ikv_iter **children, size_t n)
{
	if (n == 0)
		return iter_new_empty(0);
	if (n == 1)
		return children[0];
	struct merge_iter *m = calloc(1, sizeof(*m));
	if (!m)
		goto out_nomem;
	m->children = malloc(n * sizeof(*m->children));
	m->heap = malloc(n * sizeof(*m->heap));
	if (!m->children || !m->heap)
		goto out_free_merge;
	for (size_t i = 0; i < n; i++)
		m->children[i] = children[i];
	m->base.ops = &merge_ops;
	m->n_children = n;
	m->n_heap = 0; /* unpositioned: invalid until first/seek */
	m->dir = MERGE_FWD;
	m->err = 0;
	return &m->base;

out_free_merge:
	free(m->children);
	free(m->heap);
	free(m);
out_nomem:
	for (size_t i = 0; i < n; i++)
		iter_free(children[i]);
	return iter_new_empty(-ENOMEM);
}
