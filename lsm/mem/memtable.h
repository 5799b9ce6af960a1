/*
 * memtable.h - recent writes in memory: two lock-free-read skiplists (point
 * entries and range tombstones) over one arena.
 *
 * Threads: ONE writer at a time calls mem_add() (the caller serializes
 * writers); any number of threads call every other function concurrently
 * with it and with each other, without a lock.
 *
 * References: struct memtable is refcounted. Whoever can find a memtable
 * holds a reference (the db's active/immutable slots, each iterator, a
 * flush job). Nothing is removed from a memtable; all of its memory dies at
 * the last mem_unref().
 */
#ifndef LSM_MEM_MEMTABLE_H
#define LSM_MEM_MEMTABLE_H

#include "iter/iter.h"
#include "util/slice.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct memtable;

/* Returns a memtable with refcount 1, or NULL when out of memory. */
struct memtable *mem_new(void);
/* The same with a point-key filter of about filter_bytes (at least one
 * 64-byte block): mem_get() of a key never added costs a cache line
 * instead of a skiplist search (memtable.c invariant 11). Counted in
 * mem_usage(). */
struct memtable *mem_new_filtered(size_t filter_bytes);
/* false: no point entry for user_key was ever added (filtered memtables;
 * an unfiltered one always says true). */
bool mem_may_contain(const struct memtable *m, struct slice user_key);
void mem_ref(struct memtable *m);
/* Drops one reference; frees the memtable and its arena at 0. */
void mem_unref(struct memtable *m);

/*
 * Adds one entry. kind is IKEY_PUT, IKEY_BLOB or IKEY_DELETE (point
 * entries) or IKEY_RANGE_DELETE (key = start user key, value = exclusive end
 * user key), kept in a second skiplist and indexed for mem_max_covering_tomb();
 * a tombstone with start >= end is kept but covers nothing. (key, seq) pairs
 * must be unique per list and seq <= IKEY_SEQ_MAX. The bytes are copied.
 * Returns 0, -ENOMEM (then nothing was added), or -EINVAL (unknown kind,
 * seq too large, key or value longer than 4 GiB - 9). Single writer.
 */
int mem_add(struct memtable *m, uint64_t seq, unsigned kind, struct slice key,
	    struct slice value);

/*
 * Finds the newest point entry for user_key with seq <= read_seq. Returns 1
 * after calling fn(ctx, ikey, value) (both valid during the call only; the
 * caller reads PUT/DELETE from the ikey's trailer), or 0 if there is none.
 * fn's return value is ignored.
 */
int mem_get(struct memtable *m, struct slice user_key, uint64_t read_seq,
	    int (*fn)(void *ctx, struct slice ikey, struct slice value),
	    void *ctx);
/* mem_get() with key_hash = lsm_hash64(user_key) (util/hash.h; the same
 * hash SST bloom filters use), computed once by a caller that probes
 * several memtables and files. */
int mem_get_hashed(struct memtable *m, struct slice user_key, uint64_t key_hash,
		   uint64_t read_seq,
		   int (*fn)(void *ctx, struct slice ikey, struct slice value),
		   void *ctx);

/*
 * Largest seq <= read_seq of a range tombstone covering user_key
 * (start <= user_key < end), or 0 if none. Exact at every read_seq (for
 * snapshots). O(log n) for n tombstones, plus a scan of those added out of
 * seq order (never, in the db).
 */
uint64_t mem_max_covering_tomb(struct memtable *m, struct slice user_key,
			       uint64_t read_seq);

/*
 * The tombstones visible at read_seq (seq <= read_seq) that meet
 * [*lower, *upper) (a NULL bound is open), as pieces for an iterator's
 * tombstone set: calls fn(ctx, start, end, seq) for pieces [start, end)
 * such that, for every user key in the bounds, the largest seq of the
 * pieces covering it is mem_max_covering_tomb(m, key, read_seq). Pieces
 * may overlap and reach past the bounds; the slices point into m and stay
 * valid while the caller holds a reference. Stops at and returns fn's
 * first nonzero return, else 0. O(log n) plus the fragments within the
 * bounds (plus any tombstones added out of seq order: none in the db).
 */
int mem_tomb_spans(struct memtable *m, const struct slice *lower,
		   const struct slice *upper, uint64_t read_seq,
		   int (*fn)(void *ctx, struct slice start, struct slice end,
			     uint64_t seq),
		   void *ctx);

/*
 * Iterators over the point entries (key = internal key, in ikey_cmp order)
 * and over the range tombstones (key = start ikey with kind
 * IKEY_RANGE_DELETE, value = end user key). Each holds a reference on m.
 * Keys and values stay valid as long as the iterator (the memtable never
 * moves its bytes), which is longer than iter.h promises. prev() and
 * seek_for_prev() search from the head: O(log n) each. Seek targets are
 * internal keys; a target shorter than the trailer is taken as a bare user
 * key sorting before every version of it. NULL when out of memory.
 */
struct ikv_iter *mem_iter_new(struct memtable *m);
struct ikv_iter *mem_tomb_iter_new(struct memtable *m);
/*
 * A forward step of an iterator from mem_iter_new() or mem_tomb_iter_new()
 * in one direct call (the merge's step function, iter/merge.h):
 * iter_next(it), then, when still valid, its key into *key and value into
 * *value (written only then). it must be valid.
 */
bool mem_iter_step(struct ikv_iter *it, struct slice *key, struct slice *value);

/* Bytes of arena memory held (lock-free, approximate while writing). */
size_t mem_usage(const struct memtable *m);
uint64_t mem_num_entries(const struct memtable *m); /* point entries */
uint64_t mem_num_tombs(const struct memtable *m);   /* range tombstones */
bool mem_is_empty(const struct memtable *m);

#endif
