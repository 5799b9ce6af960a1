/*
 * vec_iter.h - an iterator over sorted arrays of internal keys and values.
 *
 * For tests and for small in-memory sorted data. The iterator borrows the
 * arrays and the bytes they point to: they must outlive it unchanged.
 */
#ifndef LSM_ITER_VEC_ITER_H
#define LSM_ITER_VEC_ITER_H

#include "iter/iter.h"

/* keys[0..n) sorted by ikey_cmp, each at least IKEY_TRAILER bytes; vals
 * may be NULL (every value empty). Returns iter_new_empty(-ENOMEM) if it
 * cannot allocate, so the result is never NULL. */
struct ikv_iter *iter_new_vec(const struct slice *keys,
			      const struct slice *vals, size_t n);

#endif
