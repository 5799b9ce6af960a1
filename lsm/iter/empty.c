/*
 * empty.c - the iterator over nothing, optionally carrying an error.
 *
 * Used where a source has no entries (an empty level) or could not be
 * opened (its status is reported through the iterator, so callers that
 * stack iterators need no separate error path).
 *
 * Invariants:
 *  1. valid() is always false; status() is the status given at creation.
 *  2. If the iterator itself cannot be allocated, a shared immutable
 *     instance reporting -ENOMEM is returned; its free() does nothing.
 *
 * Thread safety: immutable after creation; any thread may use it.
 */
#include "iter/iter.h"

#include <errno.h>
#include <stdlib.h>

struct empty_iter {
	struct ikv_iter base;
	int status;
};

static bool empty_valid(const struct ikv_iter *it)
{
	return false;
}

static void empty_move(struct ikv_iter *it)
{
}

static void empty_seek(struct ikv_iter *it, struct slice t)
{
}

static struct slice empty_slice(const struct ikv_iter *it)
{
	return slice_make(NULL, 0);
}

static int empty_status(const struct ikv_iter *it)
{
	return ((const struct empty_iter *)it)->status;
}

static void empty_free(struct ikv_iter *it)
{
	free(it);
}

static void empty_free_static(struct ikv_iter *it)
{
}

static const struct ikv_iter_ops empty_ops = {
	.valid = empty_valid,
	.first = empty_move,
	.last = empty_move,
	.seek = empty_seek,
	.seek_for_prev = empty_seek,
	.next = empty_move,
	.prev = empty_move,
	.key = empty_slice,
	.value = empty_slice,
	.status = empty_status,
	.free = empty_free,
};

static const struct ikv_iter_ops empty_static_ops = {
	.valid = empty_valid,
	.first = empty_move,
	.last = empty_move,
	.seek = empty_seek,
	.seek_for_prev = empty_seek,
	.next = empty_move,
	.prev = empty_move,
	.key = empty_slice,
	.value = empty_slice,
	.status = empty_status,
	.free = empty_free_static,
};

/* Never written: every op above only reads it. */
static const struct empty_iter enomem_iter = {{&empty_static_ops}, -ENOMEM};

struct ikv_iter *iter_new_empty(int status)
{
	struct empty_iter *e = malloc(sizeof(*e));
	if (!e)
		return (struct ikv_iter *)&enomem_iter.base;
	e->base.ops = &empty_ops;
	e->status = status;
	return &e->base;
}
