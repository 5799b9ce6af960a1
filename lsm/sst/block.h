/*
 * block.h - the key/value block shared by data, index, range-deletion and
 * properties blocks of an SST: a builder and a bounds-checked iterator.
 * Layout: lsm/FORMAT.md, "SST blocks".
 */
#ifndef LSM_SST_BLOCK_H
#define LSM_SST_BLOCK_H

#include "util/slice.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Builds one block in memory. Keys must be added in increasing order of
 * whatever comparator the reader will use (the builder does not check). */
struct block_builder {
	uint8_t *buf; /* entries, then (after finish) restarts + count */
	size_t len, cap;
	uint32_t *restarts;
	size_t n_restarts, restarts_cap;
	int interval;  /* entries per restart point, >= 1 */
	int counter;   /* entries since the last restart */
	uint8_t *last; /* previous key */
	size_t last_len, last_cap;
	size_t n_entries;
	bool is_finished;
};

void block_builder_init(struct block_builder *b, int restart_interval);
void block_builder_release(struct block_builder *b);
/* Empties the builder for the next block (keeps its buffers). */
void block_builder_reset(struct block_builder *b);
/* 0 or -ENOMEM (the builder is then unchanged). */
int block_builder_add(struct block_builder *b, struct slice key,
		      struct slice value);
/* Size of the finished block if finished now. */
size_t block_builder_size(const struct block_builder *b);
static inline bool block_builder_empty(const struct block_builder *b)
{
	return b->n_entries == 0;
}
/* The previous key added (valid until the next add/reset). */
static inline struct slice block_builder_last_key(const struct block_builder *b)
{
	return slice_make(b->last, b->last_len);
}
/* Appends the restart array; *out points into the builder until the next
 * reset/release. 0 or -ENOMEM. */
int block_builder_finish(struct block_builder *b, struct slice *out);

/* A parsed (uncompressed) block; points into memory owned by the caller. */
struct block {
	const uint8_t *p;
	size_t data_len;         /* bytes of entries */
	const uint8_t *restarts; /* n_restarts u32 LE offsets */
	uint32_t n_restarts;
};

/* Checks the restart array of p[0..len); path/off name the block in
 * errors. 0 or LSM_E_CORRUPT. */
int block_parse(const uint8_t *p, size_t len, const char *path, uint64_t off,
		struct block *out);

enum block_order {
	BLOCK_ORDER_IKEY,  /* keys are internal keys, ikey_cmp() */
	BLOCK_ORDER_BYTES, /* keys are plain bytes, slice_cmp() */
};

/* Iterates one block. Positioning functions follow iter/iter.h; any
 * malformed entry makes the iterator invalid with status LSM_E_CORRUPT.
 * The block memory must outlive the iterator's use of it. */
struct block_iter {
	struct block b;
	enum block_order order;
	const char *path; /* for error messages; borrowed */
	uint64_t blk_off;
	size_t cur;  /* offset of the current entry */
	size_t next; /* offset just after it */
	uint8_t *key;
	size_t key_len, key_cap;
	struct slice val;
	int status;
	bool is_valid;
	bool is_key_borrowed; /* key is the caller's buffer, not malloc'd */
};

void block_iter_init(struct block_iter *it, const struct block *b,
		     enum block_order order, const char *path,
		     uint64_t blk_off);
/* Re-targets an initialised iterator at another block (keeps buffers). */
void block_iter_reset(struct block_iter *it, const struct block *b,
		      uint64_t blk_off);
void block_iter_release(struct block_iter *it);
/* Right after init: keys up to cap bytes are assembled in buf (e.g. on
 * the caller's stack, which must outlive the iterator's use) instead of a
 * malloc'd buffer; a longer key moves to the heap. Saves the allocation
 * of short-lived iterators such as those of a point lookup. */
void block_iter_use_buffer(struct block_iter *it, uint8_t *buf, size_t cap);
void block_iter_first(struct block_iter *it);
void block_iter_last(struct block_iter *it);
void block_iter_seek(struct block_iter *it, struct slice target);
void block_iter_seek_for_prev(struct block_iter *it, struct slice target);
/* block_iter_next() below: the out-of-line path, for every entry the
 * inline one does not take (long varints, a key that needs a bigger
 * buffer, the end of the block, every malformed entry). */
void block_iter_next_slow(struct block_iter *it);
void block_iter_prev(struct block_iter *it);
static inline bool block_iter_valid(const struct block_iter *it)
{
	return it->is_valid;
}
static inline struct slice block_iter_key(const struct block_iter *it)
{
	return slice_make(it->key, it->key_len);
}
static inline struct slice block_iter_value(const struct block_iter *it)
{
	return it->val;
}
static inline int block_iter_status(const struct block_iter *it)
{
	return it->status;
}

/*
 * Steps to the next entry. Inline, as a scan calls it once per entry: an
 * entry whose header is three one-byte varints, that lies inside the
 * entries, whose shared prefix the current key has, whose key is long
 * enough for the block's order and fits the key buffer as whole words
 * (block.c, invariant 6) is decoded here; any other goes to
 * block_iter_next_slow(), which repeats every check and reports errors.
 */
static inline void block_iter_next(struct block_iter *it)
{
	if (!it->is_valid)
		return;
	size_t off = it->next, data_len = it->b.data_len;
	if (data_len - off >= 3) { /* off <= data_len always */
		const uint8_t *p = it->b.p + off;
		size_t shared = p[0], unshared = p[1], vlen = p[2];
		size_t left = data_len - off - 3;
		size_t klen = shared + unshared;
		size_t n_copy = (unshared + 7) & ~(size_t)7;
		if (((shared | unshared | vlen) & 0x80) == 0 &&
		    unshared + vlen <= left && shared <= it->key_len &&
		    (klen >= 8 || it->order != BLOCK_ORDER_IKEY) &&
		    shared + n_copy <= it->key_cap) {
			p += 3;
			for (size_t i = 0; i < n_copy; i += 8)
				memcpy(it->key + shared + i, p + i, 8);
			it->key_len = klen;
			it->val = slice_make(p + unshared, vlen);
			it->cur = off;
			it->next = off + 3 + unshared + vlen;
			return;
		}
	}
	block_iter_next_slow(it);
}

#endif
