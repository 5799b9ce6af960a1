/*
 * rangedel.h - range tombstones cut into non-overlapping fragments.
 *
 * Range tombstones [start, end) over user keys, each with a sequence
 * number, arrive from many sources (memtables, SSTs) and may overlap. For
 * one read sequence number, tomb_set_build() turns those visible at it into
 * a sorted list of disjoint fragments, each carrying the largest sequence
 * number among the tombstones that cover it, so that "is key k deleted by
 * a range at seq s?" is one binary search: s < tomb_set_cover(set, k).
 *
 * Lifetime: the set copies what it is given. Slices returned by
 * tomb_set_find() stay valid until tomb_set_free(). Queries reflect the
 * last tomb_set_build() (none before the first build).
 *
 * Thread safety: add/build need exclusive access; after a build, any
 * number of threads may query concurrently.
 */
#ifndef LSM_ITER_RANGEDEL_H
#define LSM_ITER_RANGEDEL_H

#include "util/slice.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tomb_set;

/* NULL on ENOMEM. */
struct tomb_set *tomb_set_new(void);
/* Copies the bytes; an empty range (start >= end) is ignored. 0 or
 * -ENOMEM. */
int tomb_set_add(struct tomb_set *s, struct slice start, struct slice end,
		 uint64_t seq);
/* Fragments the tombstones with seq <= read_seq. 0 or -ENOMEM (then the
 * set answers as if it held no fragments until a build succeeds). */
int tomb_set_build(struct tomb_set *s, uint64_t read_seq);
/* Largest seq of the fragment covering user_key, 0 if none. */
uint64_t tomb_set_cover(const struct tomb_set *s, struct slice user_key);
/* The fragment containing user_key, or else the first one after it: for
 * skipping whole deleted spans. False if there is none. */
bool tomb_set_find(const struct tomb_set *s, struct slice user_key,
		   struct slice *start, struct slice *end, uint64_t *seq);
/* Number of fragments from the last build. */
size_t tomb_set_count(const struct tomb_set *s);
void tomb_set_free(struct tomb_set *s);

#endif
