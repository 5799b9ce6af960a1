/*
 * block.c - prefix-compressed key/value blocks: builder and iterator.
 *
 * A block is a run of entries
 *     [varint shared][varint unshared][varint value_len][key suffix][value]
 * where each key shares `shared` leading bytes with the previous key,
 * followed by u32 LE restart offsets and a u32 LE restart count
 * (lsm/FORMAT.md, "SST blocks"). At a restart point the key is stored whole
 * (shared = 0), so a reader can binary-search the restart keys and then scan
 * at most one restart interval.
 *
 * Invariants:
 *  1. The builder emits a restart at entry 0 and after every `interval`
 *     entries; a finished block always has at least one restart.
 *  2. block_parse() accepts only restart offsets that start at 0, ascend
 *     strictly and lie below data_len; every entry
 *     decode checks its varints, `shared <= previous key length` and that
 *     key and value lie inside the entry region. Nothing in a block can make
 *     the iterator read outside it.
 *  3. The iterator's key buffer always holds the full key of the current
 *     entry; `next` is the offset of the following entry, so prev() can
 *     rescan from the restart before `cur` until it reaches `cur`.
 *  4. In BLOCK_ORDER_IKEY mode every key is checked to be >= 8 bytes before
 *     it is compared, so the key comparison (ikey_cmp_fast(), the inlined
 *     form of ikey_cmp()) never underflows.
 *  5. Reading speed: an entry header of three one-byte varints (keys and
 *     values under 128 bytes) is decoded without the general varint loop,
 *     and next() decodes such an entry inline (block.h) when it needs no
 *     buffer growth, leaving the rest to parse_next() here with the same
 *     checks in the same order; the iterator does not track its restart region
 * per entry (prev() finds it by binary search over the restart array); seek()
 * does not compare again the restart key its binary search already found below
 *     the target. None of this changes what is accepted as well-formed.
 *  6. A parsed block's entries are followed by its restart array, at least
 *     8 bytes (one restart and the count), and the iterator's key buffer is
 *     grown to the key's shared prefix plus its suffix rounded up to whole
 *     8-byte words. So the suffix is copied as whole words, no library
 *     call: the last word may read up to 7 bytes past the suffix, still
 *     inside the block, and write as far, still inside the buffer.
 *
 * Thread safety: a builder or an iterator is used by one thread at a time;
 * any number of iterators may read the same block memory concurrently.
 */
#include "sst/block.h"

#include "sst/keycmp.h"

#include "util/coding.h"
#include "util/ikey.h"
#include "util/status.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 256;
	while (n < need)
		n *= 2;
	uint8_t *p = realloc(*buf, n);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = n;
	return 0;
}

void block_builder_init(struct block_builder *b, int restart_interval)
{
	memset(b, 0, sizeof(*b));
	b->interval = restart_interval < 1 ? 1 : restart_interval;
}

void block_builder_release(struct block_builder *b)
{
	free(b->buf);
	free(b->restarts);
	free(b->last);
	memset(b, 0, sizeof(*b));
}

void block_builder_reset(struct block_builder *b)
{
	b->len = 0;
	b->n_restarts = 0;
	b->counter = 0;
	b->last_len = 0;
	b->n_entries = 0;
	b->is_finished = false;
}

int block_builder_add(struct block_builder *b, struct slice key,
		      struct slice value)
{
	size_t shared = 0;
	bool restart = b->n_entries == 0 || b->counter >= b->interval;

	if (!restart) {
		size_t n = key.len < b->last_len ? key.len : b->last_len;
		while (shared < n && key.p[shared] == b->last[shared])
			shared++;
	}
	size_t unshared = key.len - shared;
	size_t need = b->len + 15 + unshared + value.len;
	if (grow(&b->buf, &b->cap, need) ||
	    grow(&b->last, &b->last_cap, key.len))
		return -ENOMEM;
	if (restart && b->n_restarts == b->restarts_cap) {
		size_t nc = b->restarts_cap ? b->restarts_cap * 2 : 16;
		uint32_t *r = realloc(b->restarts, nc * sizeof(*r));
		if (!r)
			return -ENOMEM;
		b->restarts = r;
		b->restarts_cap = nc;
	}
	if (restart) {
		b->restarts[b->n_restarts++] = (uint32_t)b->len;
		b->counter = 0;
	}
	uint8_t *p = b->buf + b->len;
	p = put_varint32(p, (uint32_t)shared);
	p = put_varint32(p, (uint32_t)unshared);
	p = put_varint32(p, (uint32_t)value.len);
	if (unshared)
		memcpy(p, key.p + shared, unshared);
	p += unshared;
	if (value.len)
		memcpy(p, value.p, value.len);
	p += value.len;
	b->len = (size_t)(p - b->buf);
	if (unshared)
		memcpy(b->last + shared, key.p + shared, unshared);
	b->last_len = key.len;
	b->counter++;
	b->n_entries++;
	return 0;
}

size_t block_builder_size(const struct block_builder *b)
{
	if (b->is_finished)
		return b->len;
	size_t nr = b->n_restarts ? b->n_restarts : 1;
	return b->len + 4 * nr + 4;
}

int block_builder_finish(struct block_builder *b, struct slice *out)
{
	if (!b->is_finished) {
		if (grow(&b->buf, &b->cap, block_builder_size(b)))
			return -ENOMEM;
		if (b->n_restarts == 0) {
			/* an empty block still has one restart (invariant 1) */
			put_fixed32(b->buf + b->len, 0);
			b->len += 4;
			put_fixed32(b->buf + b->len, 1);
			b->len += 4;
		} else {
			for (size_t i = 0; i < b->n_restarts; i++) {
				put_fixed32(b->buf + b->len, b->restarts[i]);
				b->len += 4;
			}
			put_fixed32(b->buf + b->len, (uint32_t)b->n_restarts);
			b->len += 4;
		}
		b->is_finished = true;
	}
	*out = slice_make(b->buf, b->len);
	return 0;
}

int block_parse(const uint8_t *p, size_t len, const char *path, uint64_t off,
		struct block *out)
{
	if (len < 4)
		return LSM_CORRUPT("file %s offset %llu: block of %zu bytes "
				   "too short",
				   path, (unsigned long long)off, len);
	uint32_t n = get_fixed32(p + len - 4);
	if (n == 0 || n > (len - 4) / 4)
		return LSM_CORRUPT("file %s offset %llu: bad restart count %u "
				   "in block of %zu bytes",
				   path, (unsigned long long)off, n, len);
	size_t data_len = len - 4 - (size_t)n * 4;
	const uint8_t *r = p + data_len;
	/* lsm/FORMAT.md: the first restart is 0, the others ascend strictly
	 * and each starts an entry, so lies before the end of the data. */
	for (uint32_t i = 0, prev = 0; i < n; i++) {
		uint32_t ro = get_fixed32(r + 4 * (size_t)i);
		bool bad = i == 0 ? ro != 0 : ro <= prev || ro >= data_len;
		prev = ro;
		if (bad)
			return LSM_CORRUPT("file %s offset %llu: restart %u "
					   "at %u outside block data (%zu)",
					   path, (unsigned long long)off, i, ro,
					   data_len);
	}
	out->p = p;
	out->data_len = data_len;
	out->restarts = r;
	out->n_restarts = n;
	return 0;
}

static inline size_t restart_off(const struct block_iter *it, uint32_t i)
{
	return get_fixed32(it->b.restarts + 4 * (size_t)i);
}

static int bad_entry(struct block_iter *it, size_t at, const char *what)
{
	it->is_valid = false;
	it->status = LSM_CORRUPT("file %s offset %llu: %s at byte %zu of block",
				 it->path, (unsigned long long)it->blk_off,
				 what, at);
	return it->status;
}

/* Invariant 4 makes ikey_cmp_fast() safe here. */
static inline int keycmp(const struct block_iter *it, struct slice a,
			 struct slice b)
{
	return it->order == BLOCK_ORDER_IKEY
		       ? ikey_cmp_fast(a, b)
		       : bytes_cmp_fast(a.p, a.len, b.p, b.len);
}

/* Decodes the entry header at off (< data_len); on success fills
 * shared/unshared/vlen and returns the position of the key suffix. Keys and
 * values under 128 bytes make all three varints one byte each: that case
 * is decoded without the general loop (invariant 5). */
static inline const uint8_t *decode_header(const struct block_iter *it,
					   size_t off, uint32_t *shared,
					   uint32_t *unshared, uint32_t *vlen)
{
	const uint8_t *end = it->b.p + it->b.data_len;
	const uint8_t *p = it->b.p + off;
	if (end - p >= 3 && ((p[0] | p[1] | p[2]) & 0x80) == 0) {
		*shared = p[0];
		*unshared = p[1];
		*vlen = p[2];
		p += 3;
	} else {
		p = get_varint32(p, end, shared);
		if (p)
			p = get_varint32(p, end, unshared);
		if (p)
			p = get_varint32(p, end, vlen);
		if (!p)
			return NULL;
	}
	size_t left = (size_t)(end - p);
	if (*unshared > left || *vlen > left - *unshared)
		return NULL;
	return p;
}

/* Makes room for a key of need bytes, keeping the current key's bytes. */
static int grow_key(struct block_iter *it, size_t need)
{
	if (it->is_key_borrowed) {
		uint8_t *p = malloc(need);
		if (!p)
			return -ENOMEM;
		if (it->key_len)
			memcpy(p, it->key, it->key_len);
		it->key = p;
		it->key_cap = need;
		it->is_key_borrowed = false;
		return 0;
	}
	return grow(&it->key, &it->key_cap, need);
}

/* Parses the entry at it->next into the current position. */
static inline void parse_next(struct block_iter *it)
{
	size_t off = it->next;
	if (off >= it->b.data_len) {
		it->is_valid = false;
		it->cur = it->b.data_len;
		return;
	}
	uint32_t shared, unshared, vlen;
	const uint8_t *p = decode_header(it, off, &shared, &unshared, &vlen);
	if (!p) {
		bad_entry(it, off, "truncated entry");
		return;
	}
	if (shared > it->key_len) {
		bad_entry(it, off, "shared prefix longer than previous key");
		return;
	}
	size_t klen = (size_t)shared + unshared;
	if (it->order == BLOCK_ORDER_IKEY && klen < 8) {
		bad_entry(it, off, "internal key shorter than 8 bytes");
		return;
	}
	size_t n_copy = ((size_t)unshared + 7) & ~(size_t)7; /* invariant 6 */
	if (shared + n_copy > it->key_cap && grow_key(it, shared + n_copy)) {
		it->is_valid = false;
		it->status = -ENOMEM;
		return;
	}
	for (size_t i = 0; i < n_copy; i += 8)
		memcpy(it->key + shared + i, p + i, 8);
	it->key_len = klen;
	it->val = slice_make(p + unshared, vlen);
	it->cur = off;
	it->next = (size_t)(p + unshared + vlen - it->b.p);
	it->is_valid = true;
}

static void seek_restart(struct block_iter *it, uint32_t idx)
{
	it->key_len = 0;
	it->next = restart_off(it, idx);
	parse_next(it);
}

/* The whole key stored at restart idx, pointing into the block. */
static inline int restart_key(struct block_iter *it, uint32_t idx,
			      struct slice *k)
{
	size_t off = restart_off(it, idx);
	uint32_t shared, unshared, vlen;
	const uint8_t *p = NULL;
	if (off < it->b.data_len)
		p = decode_header(it, off, &shared, &unshared, &vlen);
	if (!p)
		return bad_entry(it, off, "truncated restart entry");
	if (shared != 0)
		return bad_entry(it, off, "restart entry with shared prefix");
	if (it->order == BLOCK_ORDER_IKEY && unshared < 8)
		return bad_entry(it, off, "internal key shorter than 8 bytes");
	*k = slice_make(p, unshared);
	return 0;
}

void block_iter_init(struct block_iter *it, const struct block *b,
		     enum block_order order, const char *path, uint64_t blk_off)
{
	memset(it, 0, sizeof(*it));
	it->order = order;
	it->path = path;
	block_iter_reset(it, b, blk_off);
}

void block_iter_reset(struct block_iter *it, const struct block *b,
		      uint64_t blk_off)
{
	it->b = *b;
	it->blk_off = blk_off;
	it->cur = it->next = b->data_len;
	it->key_len = 0;
	it->status = 0;
	it->is_valid = false;
}

void block_iter_use_buffer(struct block_iter *it, uint8_t *buf, size_t cap)
{
	if (!it->is_key_borrowed)
		free(it->key);
	it->key = buf;
	it->key_cap = cap;
	it->key_len = 0;
	it->is_key_borrowed = true;
}

void block_iter_release(struct block_iter *it)
{
	if (!it->is_key_borrowed)
		free(it->key);
	it->is_key_borrowed = false;
	it->key = NULL;
	it->key_cap = it->key_len = 0;
	it->is_valid = false;
}

void block_iter_first(struct block_iter *it)
{
	if (it->status)
		return;
	seek_restart(it, 0);
}

void block_iter_last(struct block_iter *it)
{
	if (it->status)
		return;
	seek_restart(it, it->b.n_restarts - 1);
	while (it->is_valid && it->next < it->b.data_len)
		parse_next(it);
}

void block_iter_next_slow(struct block_iter *it)
{
	if (!it->is_valid)
		return;
	parse_next(it);
}

void block_iter_prev(struct block_iter *it)
{
	if (!it->is_valid)
		return;
	size_t target = it->cur;
	if (target == 0) {
		it->is_valid = false;
		it->cur = it->next = it->b.data_len;
		return;
	}
	/* The last restart before cur (invariant 3): restart 0 is at 0 <
	 * cur, so it exists. */
	uint32_t lo = 0, hi = it->b.n_restarts - 1;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo + 1) / 2;
		if (restart_off(it, mid) < target)
			lo = mid;
		else
			hi = mid - 1;
	}
	seek_restart(it, lo);
	while (it->is_valid && it->next < target)
		parse_next(it);
	if (it->is_valid && it->next != target)
		bad_entry(it, it->cur, "entries overlap restart point");
}

void block_iter_seek(struct block_iter *it, struct slice target)
{
	if (it->status)
		return;
	/* The last restart whose key is < target (or restart 0). */
	uint32_t lo = 0, hi = it->b.n_restarts - 1;
	bool lo_below = false; /* restart lo's key is known to be < target */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo + 1) / 2;
		struct slice k = {NULL, 0};
		if (restart_key(it, mid, &k))
			return;
		if (keycmp(it, k, target) < 0) {
			lo = mid;
			lo_below = true;
		} else {
			hi = mid - 1;
		}
	}
	seek_restart(it, lo);
	if (lo_below && it->is_valid)
		parse_next(it); /* already compared: step over it */
	while (it->is_valid && keycmp(it, block_iter_key(it), target) < 0)
		parse_next(it);
}

void block_iter_seek_for_prev(struct block_iter *it, struct slice target)
{
	block_iter_seek(it, target);
	if (it->status)
		return;
	if (!it->is_valid)
		block_iter_last(it);
	else if (keycmp(it, block_iter_key(it), target) > 0)
		block_iter_prev(it);
}
