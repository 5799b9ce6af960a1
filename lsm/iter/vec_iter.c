/*
 * vec_iter.c - iterator over borrowed sorted arrays (see vec_iter.h).
 *
 * Invariants:
 *  1. pos in [0, n] (n means invalid); keys[] is sorted by ikey_cmp, so
 *     seeks are binary searches.
 *  2. Nothing is copied: keys, vals and their bytes belong to the caller.
 *
 * Thread safety: one thread at a time (iter.h contract 5).
 */
#include "iter/vec_iter.h"

#include "util/ikey.h"

#include <errno.h>
#include <stdlib.h>

struct vec_iter {
	struct ikv_iter base;
	const struct slice *keys;
	const struct slice *vals;
	size_t n;
	size_t pos;
};

static inline struct vec_iter *to_vec(struct ikv_iter *it)
{
	return (struct vec_iter *)it;
}

static inline const struct vec_iter *to_cvec(const struct ikv_iter *it)
{
	return (const struct vec_iter *)it;
}

/* Index of the first key >= t (n if none). */
static size_t vec_lower_bound(const struct vec_iter *v, struct slice t)
{
	size_t lo = 0, hi = v->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ikey_cmp(v->keys[mid], t) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool vec_valid(const struct ikv_iter *it)
{
	return to_cvec(it)->pos < to_cvec(it)->n;
}

static void vec_first(struct ikv_iter *it)
{
	to_vec(it)->pos = 0;
}

static void vec_last(struct ikv_iter *it)
{
	struct vec_iter *v = to_vec(it);
	v->pos = v->n ? v->n - 1 : 0;
}

static void vec_seek(struct ikv_iter *it, struct slice t)
{
	struct vec_iter *v = to_vec(it);
	v->pos = vec_lower_bound(v, t);
}

static void vec_seek_for_prev(struct ikv_iter *it, struct slice t)
{
	struct vec_iter *v = to_vec(it);
	size_t i = vec_lower_bound(v, t);
	if (i < v->n && ikey_cmp(v->keys[i], t) == 0)
		v->pos = i;
	else
		v->pos = i ? i - 1 : v->n;
}

static void vec_next(struct ikv_iter *it)
{
	to_vec(it)->pos++;
}

static void vec_prev(struct ikv_iter *it)
{
	struct vec_iter *v = to_vec(it);
	v->pos = v->pos ? v->pos - 1 : v->n;
}

static struct slice vec_key(const struct ikv_iter *it)
{
	const struct vec_iter *v = to_cvec(it);
	return v->keys[v->pos];
}

static struct slice vec_value(const struct ikv_iter *it)
{
	const struct vec_iter *v = to_cvec(it);
	return v->vals ? v->vals[v->pos] : slice_make(NULL, 0);
}

static int vec_status(const struct ikv_iter *it)
{
	return 0;
}

static void vec_free(struct ikv_iter *it)
{
	free(it);
}

static const struct ikv_iter_ops vec_ops = {
	.valid = vec_valid,
	.first = vec_first,
	.last = vec_last,
	.seek = vec_seek,
	.seek_for_prev = vec_seek_for_prev,
	.next = vec_next,
	.prev = vec_prev,
	.key = vec_key,
	.value = vec_value,
	.status = vec_status,
	.free = vec_free,
};

struct ikv_iter *iter_new_vec(const struct slice *keys,
			      const struct slice *vals, size_t n)
{
	struct vec_iter *v = malloc(sizeof(*v));
	if (!v)
		return iter_new_empty(-ENOMEM);
	v->base.ops = &vec_ops;
	v->keys = keys;
	v->vals = vals;
	v->n = n;
	v->pos = n;
	return &v->base;
}
