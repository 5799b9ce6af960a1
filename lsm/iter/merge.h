/*
 * merge.h - the merging iterator's direct interface, for the database
 * iterator's forward scan.
 *
 * iter_new_merge() (iter.h) gives a merge reached only through the table
 * of functions: a forward step of the user iterator then costs three
 * indirect calls on the merge (next, valid, key) and three more from the
 * merge on the child that moved. The interface here removes most of them:
 * the owner of the merge steps it with one direct call that returns the
 * new key, and a child may come with a step function that moves it and
 * returns its new key and value in one call (cached by the merge, so that
 * the merge's key() and value() read fields).
 *
 * Everything else (seeks, prev, direction switches, errors) behaves as
 * iter_new_merge()'s merge: this is the same iterator.
 */
#ifndef LSM_ITER_MERGE_H
#define LSM_ITER_MERGE_H

#include "iter/iter.h"

#include <stdbool.h>
#include <stddef.h>

/*
 * A child's forward step: iter_next(it), then iter_valid(it) and, when
 * valid, iter_key(it) into *key and iter_value(it) into *value (written
 * only then; valid as iter_key()'s are, iter.h contract 1). Called only on
 * a valid child.
 */
typedef bool (*iter_step_fn)(struct ikv_iter *it, struct slice *key,
			     struct slice *value);

/*
 * The merge of n children, always a merge (also for n <= 1, unlike
 * iter_new_merge()), so that iter_merge_step() applies. steps is NULL or
 * holds n entries, each a step function for that child or NULL (the child
 * is then moved through its table). Takes ownership of the children (the
 * arrays are copied). NULL on ENOMEM, with the children freed.
 */
struct ikv_iter *iter_new_merge_steps(struct ikv_iter **children,
				      const iter_step_fn *steps, size_t n);

/*
 * For m from iter_new_merge_steps(): iter_next(m), then iter_valid(m)
 * and, when valid, iter_key(m) into *key (written only then). m must be
 * valid.
 */
bool iter_merge_step(struct ikv_iter *m, struct slice *key);

#endif
