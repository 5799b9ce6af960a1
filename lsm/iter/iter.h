/*
 * iter.h - the internal iterator interface every source implements.
 *
 * Memtables, SST data blocks, whole SSTs, levels and the merge of all of
 * them present entries as (internal key, value) pairs in ikey_cmp() order
 * (util/ikey.h) through this one table of functions, so that the database
 * iterator and compaction can stack them.
 *
 * Contract:
 *  1. key() and value() are valid only while valid() is true, and only
 *     until the next call that moves the iterator or frees it.
 *  2. seek(t) positions at the first entry >= t; seek_for_prev(t) at the
 *     last entry <= t; first()/last() at the ends. Any of them may leave
 *     the iterator invalid (no such entry).
 *  3. next()/prev() require valid().
 *  4. An I/O or corruption error makes the iterator invalid and status()
 *     returns it (negative); otherwise status() is 0.
 *  5. One thread uses an iterator at a time. Whatever the iterator reads
 *     (memtable, table reader) is kept alive by references it holds.
 */
#ifndef LSM_ITER_ITER_H
#define LSM_ITER_ITER_H

#include "util/slice.h"

#include <stdbool.h>

struct ikv_iter;

struct ikv_iter_ops {
	bool (*valid)(const struct ikv_iter *it);
	void (*first)(struct ikv_iter *it);
	void (*last)(struct ikv_iter *it);
	void (*seek)(struct ikv_iter *it, struct slice target);
	void (*seek_for_prev)(struct ikv_iter *it, struct slice target);
	void (*next)(struct ikv_iter *it);
	void (*prev)(struct ikv_iter *it);
	struct slice (*key)(const struct ikv_iter *it);
	struct slice (*value)(const struct ikv_iter *it);
	int (*status)(const struct ikv_iter *it);
	void (*free)(struct ikv_iter *it);
};

/* Implementations embed this first. */
struct ikv_iter {
	const struct ikv_iter_ops *ops;
};

static inline bool iter_valid(const struct ikv_iter *it)
{
	return it->ops->valid(it);
}
static inline void iter_first(struct ikv_iter *it)
{
	it->ops->first(it);
}
static inline void iter_last(struct ikv_iter *it)
{
	it->ops->last(it);
}
static inline void iter_seek(struct ikv_iter *it, struct slice t)
{
	it->ops->seek(it, t);
}
static inline void iter_seek_for_prev(struct ikv_iter *it, struct slice t)
{
	it->ops->seek_for_prev(it, t);
}
static inline void iter_next(struct ikv_iter *it)
{
	it->ops->next(it);
}
static inline void iter_prev(struct ikv_iter *it)
{
	it->ops->prev(it);
}
static inline struct slice iter_key(const struct ikv_iter *it)
{
	return it->ops->key(it);
}
static inline struct slice iter_value(const struct ikv_iter *it)
{
	return it->ops->value(it);
}
static inline int iter_status(const struct ikv_iter *it)
{
	return it->ops->status(it);
}
static inline void iter_free(struct ikv_iter *it)
{
	if (it)
		it->ops->free(it);
}

/* An iterator over nothing, or one that only reports `status`. */
struct ikv_iter *iter_new_empty(int status);

/*
 * The merge of n children (takes ownership of them and of the array's
 * contents; the array itself is copied). Equal keys cannot occur across
 * children (sequence numbers are unique), so ties need no rule.
 * Defined in iter/merge.c.
 */
struct ikv_iter *iter_new_merge(struct ikv_iter **children, size_t n);

#endif
