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
 * Runner-up: a scan often steps the child that was already the
 * smallest (the biggest level holds most keys), so after the root child
 * moves its new key is compared with the root's smaller child alone, the
 * heap's second entry; only when it is no longer first does the heap sift
 * (starting by swapping root and runner-up, the comparison already made).
 * Which of heap[1] and heap[2] is the runner-up is remembered until the
 * heap changes below the root: one key comparison per step in that case.
 *
 * Direct stepping (merge.h): a merge made by iter_new_merge_steps() may
 * have a step function per child; a forward step of such a child goes
 * through it and also caches the child's value, which value() then
 * returns without asking the child. iter_merge_step() is next() plus
 * key() in one direct call for the merge's owner.
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
 *  4. second is 0 (unknown) or the slot, 1 or 2 (< n_heap), that comes
 *     first of heap[1] and heap[2] in the heap's order; it is reset to 0
 *     whenever a slot other than the root changes.
 *  5. For a child i with a step function (steps[i] != NULL) that is in
 *     the heap, values[i] is its current value (refreshed whenever its
 *     cached key is).
 *
 * Thread safety: one thread at a time (iter.h contract 5). The merge owns
 * its children and frees them.
 */
#include "iter/merge.h"

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
	iter_step_fn *steps;  /* NULL, or one per child (may be NULL) */
	struct slice *values; /* with steps: invariant 5 */
	size_t n_children;
	struct merge_slot *heap; /* n_children slots */
	size_t n_heap;
	size_t second; /* invariant 4 */
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

/* merge_before() for a forward heap, where a step knows the direction. */
static inline bool merge_before_fwd(const struct merge_slot *a,
				    const struct merge_slot *b)
{
	int r = ikey_cmp_fast(a->key, b->key);
	return r < 0 || (r == 0 && a->idx < b->idx);
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
	m->second = 0;
	for (size_t i = 0; i < m->n_children; i++) {
		struct ikv_iter *c = m->children[i];
		if (iter_valid(c)) {
			struct merge_slot *s = &m->heap[m->n_heap++];
			s->key = iter_key(c);
			s->it = c;
			s->idx = i;
			if (m->steps && m->steps[i])
				m->values[i] = iter_value(c);
		} else {
			merge_note_invalid(m, c);
		}
	}
	for (size_t i = m->n_heap / 2; i-- > 0;)
		heap_sift_down(m, i);
}

/* Which of heap[1], heap[2] comes first (n_heap >= 2). */
static inline size_t merge_runner_up(const struct merge_iter *m)
{
	if (m->n_heap == 2 || merge_before(m, &m->heap[1], &m->heap[2]))
		return 1;
	return 2;
}

/* The root's child is exhausted or failed: drop it from the heap. */
static void merge_drop_root(struct merge_iter *m)
{
	struct merge_slot *h = m->heap;
	merge_note_invalid(m, h[0].it);
	h[0] = h[--m->n_heap];
	m->second = 0;
	if (m->n_heap > 1)
		heap_sift_down(m, 0);
}

/* The root's child has moved past the runner-up s: the runner-up is the
 * new root and the old root goes down from s (invariant 1 holds above
 * it). */
static void merge_demote_root(struct merge_iter *m, size_t s)
{
	struct merge_slot *h = m->heap;
	struct merge_slot x = h[0];
	h[0] = h[s];
	h[s] = x;
	if (2 * s + 1 < m->n_heap)
		heap_sift_down(m, s);
	m->second = 0;
}

/* The root child has moved (valid: it is still valid and its slot holds
 * its new key): put it back in order or drop it from the heap. Inlined
 * into every step: the common case is one comparison. */
static inline __attribute__((always_inline)) void
merge_place_root(struct merge_iter *m, bool valid)
{
	struct merge_slot *h = m->heap;
	if (!valid) {
		merge_drop_root(m);
		return;
	}
	if (m->n_heap == 1)
		return;
	size_t s = m->second ? m->second : merge_runner_up(m);
	bool stays = m->dir == MERGE_FWD ? merge_before_fwd(&h[0], &h[s])
					 : merge_before(m, &h[0], &h[s]);
	if (stays)
		m->second = s; /* nothing below the root moved */
	else
		merge_demote_root(m, s);
}

/* The root child has moved through its table: refresh its slot. Inlined
 * too: children without a step function (memtables) take this path on
 * every step. */
static inline __attribute__((always_inline)) void
merge_fix_root(struct merge_iter *m)
{
	struct merge_slot *root = &m->heap[0];
	bool valid = iter_valid(root->it);
	if (valid) {
		root->key = iter_key(root->it);
		if (m->steps && m->steps[root->idx])
			m->values[root->idx] = iter_value(root->it);
	}
	merge_place_root(m, valid);
}

/* Forward step of the root child (dir == MERGE_FWD), by its step
 * function when it has one. */
static inline __attribute__((always_inline)) void
merge_step_root(struct merge_iter *m)
{
	struct merge_slot *root = &m->heap[0];
	iter_step_fn step = m->steps ? m->steps[root->idx] : NULL;
	if (step) {
		bool valid = step(root->it, &root->key, &m->values[root->idx]);
		merge_place_root(m, valid);
		return;
	}
	iter_next(root->it);
	merge_fix_root(m);
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
	merge_step_root(m);
}

bool iter_merge_step(struct ikv_iter *it, struct slice *key)
{
	struct merge_iter *m = to_merge(it);
	if (m->dir == MERGE_FWD && m->err == 0 && m->n_heap > 0)
		merge_step_root(m);
	else
		merge_next(it);
	if (m->err || m->n_heap == 0)
		return false;
	*key = m->heap[0].key;
	return true;
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
	const struct merge_iter *m = to_cmerge(it);
	size_t i = m->heap[0].idx;
	if (m->steps && m->steps[i])
		return m->values[i];
	return iter_value(m->heap[0].it);
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
	free(m->steps);
	free(m->values);
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

struct ikv_iter *iter_new_merge_steps(struct ikv_iter **children,
				      const iter_step_fn *steps, size_t n)
{
	size_t n_alloc = n ? n : 1;
	struct merge_iter *m = calloc(1, sizeof(*m));
	if (!m)
		goto out_nomem;
	m->children = malloc(n_alloc * sizeof(*m->children));
	m->heap = malloc(n_alloc * sizeof(*m->heap));
	if (!m->children || !m->heap)
		goto out_free_merge;
	if (steps) {
		m->steps = malloc(n_alloc * sizeof(*m->steps));
		m->values = calloc(n_alloc, sizeof(*m->values));
		if (!m->steps || !m->values)
			goto out_free_merge;
	}
	for (size_t i = 0; i < n; i++) {
		m->children[i] = children[i];
		if (steps)
			m->steps[i] = steps[i];
	}
	m->base.ops = &merge_ops;
	m->n_children = n;
	m->n_heap = 0; /* unpositioned: invalid until first/seek */
	m->second = 0;
	m->dir = MERGE_FWD;
	m->err = 0;
	return &m->base;

out_free_merge:
	free(m->children);
	free(m->steps);
	free(m->values);
	free(m->heap);
	free(m);
out_nomem:
	for (size_t i = 0; i < n; i++)
		iter_free(children[i]);
	return NULL;
}

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
	struct ikv_iter *m = iter_new_merge_steps(children, NULL, n);
	return m ? m : iter_new_empty(-ENOMEM);
}
