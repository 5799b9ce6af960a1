/*
 * sst_reader.c - reads SST files: open, point lookups, iterators.
 *
 * sstr_open() reads the footer and then the meta blocks (index, filter,
 * range deletions, properties), which the reader keeps for its lifetime.
 * Data blocks are read on demand; with a block cache they are shared
 * through it under the key (file_number, block offset), the cached value
 * being the parsed, uncompressed block (struct data_block: parse and bytes
 * in one allocation). Without a cache (or when an iterator is told not to
 * fill it) the iterator owns its current block.
 *
 * Invariants:
 *  1. Every block handle is checked to lie inside the file before the
 *     footer (data handles: before the first meta block) before it is read.
 *  2. Meta blocks are always checksum-verified; data blocks when
 *     verify_checksums is set, once, when read from the file (a cache hit
 *     is not verified again: the cache holds only blocks that passed). A
 *     block is parsed (block_parse) before it is used or cached, so cached
 *     blocks are known to be well-formed.
 *  3. Every error names the file and the offset of the block at fault.
 *  4. The SST iterator is positioned on an entry only if its data block
 *     iterator is; empty or exhausted blocks are skipped in the direction
 *     of travel. An error is sticky: the iterator stays invalid.
 *  5. Reading cost: a compressed data block is read into a stack buffer
 *     or the iterator's readahead window and uncompressed straight into
 *     its data_block, so a cache miss costs one allocation. An iterator
 *     that reads blocks back to back (a scan, a compaction input) switches
 *     to readahead: one read fills a window of up to RA_MAX bytes of the
 *     data region and the next blocks come out of it, checked exactly as
 *     if read alone. Point lookups (sstr_get) use no SST iterator, only two
 *     block iterators with their keys on the stack.
 *
 * Thread safety: after sstr_open() returns, the reader is immutable except
 * for the atomic bytes_read counter, so any number of threads may call
 * sstr_get() and use their own iterators concurrently. rfile reads and the
 * cache are thread-safe. sstr_close() requires that no call is in flight
 * and every iterator has been freed.
 */
#include "sst/sst.h"

#include "cache/cache.h"
#include "env/env.h"
#include "sst/block.h"
#include "sst/bloom.h"
#include "sst/compress.h"
#include "sst/keycmp.h"
#include "sst/sst_format.h"
#include "sst/sst_int.h"
#include "util/coding.h"
#include "util/ikey.h"
#include "util/status.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct sst_reader {
	char *path;
	struct env_rfile *f;
	uint64_t file_number;
	struct cache *cache; /* may be NULL; not owned */
	bool verify;
	uint64_t file_size;
	uint64_t data_end; /* first byte after the data blocks */
	uint8_t *index_buf;
	uint64_t index_off;
	struct block index;
	uint8_t *filter_buf;
	struct bloom filter;
	bool has_filter;
	uint8_t *tomb_keys; /* one buffer holding every tombstone's keys */
	struct range_tomb *tombs;
	size_t n_tombs;
	struct sst_props props;
	_Atomic uint64_t bytes_read;
};

/*
 * A data block in memory: its parse and its uncompressed bytes in one
 * allocation, so that loading a block costs one malloc and dropping it
 * one free. The block cache holds these (deleter: free).
 */
struct data_block {
	struct block b;
	size_t len;
	uint8_t data[];
};

/* A data block in use: either a cache handle or a block we own. */
struct blk_ref {
	struct cache_handle *h;
	struct data_block *owned;
	struct block b;
};

static void data_block_delete(void *value, void *ctx)
{
	(void)ctx;
	free(value);
}

/*
 * Readahead of an iterator (invariant 5). Blocks are read one pread each
 * until the iterator has read RA_TRIGGER blocks in a row, each starting
 * where the previous one ended; from then on one pread fills the window
 * with the next `size` bytes of the data region (doubling from RA_MIN to
 * RA_MAX), and the following blocks come out of the window. Any jump
 * resets it. Point lookups never read ahead.
 */
#define RA_TRIGGER 2
#define RA_MIN (16u << 10)
#define RA_MAX (256u << 10)

struct readahead {
	uint8_t *buf;
	size_t cap;
	uint64_t off; /* the window holds file bytes [off, off + len) */
	size_t len;
	uint64_t next_off; /* where a sequential read would start */
	unsigned n_seq;    /* sequential block loads so far */
	size_t size;       /* bytes of the next window */
};

/* Stored blocks up to this size are read into a buffer on the stack when
 * they are compressed, since only their uncompressed form is kept. */
#define SST_READ_STACK 8192

/* Checks that [off, off + size) plus trailer lies below limit. */
static int check_handle(const struct sst_reader *r, uint64_t off, uint64_t size,
			uint64_t limit)
{
	if (off > limit || size > limit - off ||
	    SST_BLOCK_TRAILER > limit - off - size || size > UINT32_MAX)
		return LSM_CORRUPT("file %s offset %llu: block handle (size "
				   "%llu) outside its region (end %llu)",
				   r->path, (unsigned long long)off,
				   (unsigned long long)size,
				   (unsigned long long)limit);
	return 0;
}

/* Reads exactly n bytes at off into dst; a short read is corruption. */
static int read_exact(struct sst_reader *r, uint64_t off, size_t n,
		      uint8_t *dst)
{
	size_t got = 0;
	int rc = rfile_read(r->f, off, n, dst, &got);
	atomic_fetch_add_explicit(&r->bytes_read, got, memory_order_relaxed);
	if (!rc && got != n)
		rc = LSM_CORRUPT("file %s offset %llu: block truncated (%zu "
				 "of %zu bytes)",
				 r->path, (unsigned long long)off, got, n);
	return rc;
}

/* Checks the trailer checksum of the stored block p[0..size + trailer). */
static int verify_block(const struct sst_reader *r, uint64_t off,
			const uint8_t *p, size_t size)
{
	if (get_fixed32(p + size + 1) != sst_stored_block_checksum(p, size))
		return LSM_CORRUPT("file %s offset %llu: block checksum "
				   "mismatch",
				   r->path, (unsigned long long)off);
	return 0;
}

/* The uncompressed form of the stored block p[0..size + trailer) as a new
 * data_block, parsed (invariant 2). */
static int make_data_block(const struct sst_reader *r, uint64_t off,
			   const uint8_t *p, size_t size,
			   struct data_block **out)
{
	uint8_t type = p[size];
	struct data_block *d;
	size_t len;
	int rc;
	if (type == SST_BLOCK_RAW) {
		len = size;
		d = malloc(sizeof(*d) + (len ? len : 1));
		if (!d)
			return -ENOMEM;
		if (len)
			memcpy(d->data, p, len);
	} else {
		struct slice stream;
		if (type != SST_BLOCK_LZ4 && type != SST_BLOCK_ZSTD)
			return LSM_CORRUPT("file %s offset %llu: unknown "
					   "block type %u",
					   r->path, (unsigned long long)off,
					   type);
		rc = sst_uncompressed_len(type, slice_make(p, size), r->path,
					  off, &len, &stream);
		if (rc)
			return rc;
		d = malloc(sizeof(*d) + (len ? len : 1));
		if (!d)
			return -ENOMEM;
		rc = sst_uncompress_to(type, stream, r->path, off, d->data,
				       len);
		if (rc)
			goto out_free;
	}
	d->len = len;
	if ((rc = block_parse(d->data, len, r->path, off, &d->b)))
		goto out_free;
	*out = d;
	return 0;

out_free:
	free(d);
	return rc;
}

/* Serves [off, off + n) from the readahead window, refilling it if the
 * iterator reads sequentially. NULL: read the block on its own. A block
 * that starts in the window but ends past it keeps its first bytes: they
 * move to the front and only the rest is read, so a scan reads each byte
 * of the data region once. */
static const uint8_t *ra_get(struct sst_reader *r, struct readahead *ra,
			     uint64_t off, size_t n, int *rc)
{
	bool in_window = ra->len && off >= ra->off && off - ra->off < ra->len;
	size_t at = in_window ? (size_t)(off - ra->off) : 0;
	if (in_window && n <= ra->len - at)
		return ra->buf + at;
	ra->n_seq = off == ra->next_off ? ra->n_seq + 1 : 0;
	if (ra->n_seq < RA_TRIGGER) {
		ra->size = RA_MIN;
		return NULL;
	}
	/* check_handle() put [off, off + n) below data_end */
	size_t want = ra->size > n ? ra->size : n;
	if (want > r->data_end - off)
		want = (size_t)(r->data_end - off);
	size_t keep = in_window ? ra->len - at : 0; /* < n <= want */
	if (want > ra->cap) {
		/* grows with the window (RA_MIN doubling to RA_MAX), so a
		 * short scan holds no more than it reads */
		size_t cap = want;
		uint8_t *b = malloc(cap);
		if (!b)
			return NULL; /* read the block alone */
		if (keep)
			memcpy(b, ra->buf + at, keep);
		free(ra->buf);
		ra->buf = b;
		ra->cap = cap;
	} else if (keep) {
		memmove(ra->buf, ra->buf + at, keep);
	}
	ra->off = off;
	ra->len = 0;
	if ((*rc = read_exact(r, off + keep, want - keep, ra->buf + keep)))
		return NULL;
	ra->len = want;
	if (ra->size < RA_MAX)
		ra->size *= 2;
	return ra->buf;
}

/*
 * Reads, checks and uncompresses the data block at (off, size); ra (may be
 * NULL) is the reading iterator's readahead. Compressed blocks are read
 * into the readahead window or a stack buffer and uncompressed straight
 * into their data_block; raw blocks of files stored uncompressed are read
 * straight into theirs.
 */
static int read_data_block(struct sst_reader *r, uint64_t off, uint64_t size,
			   struct readahead *ra, struct data_block **out)
{
	uint8_t stack[SST_READ_STACK];
	struct data_block *direct = NULL;
	const uint8_t *p = NULL;
	int rc = check_handle(r, off, size, r->data_end);
	if (rc)
		return rc;
	size_t n = (size_t)size + SST_BLOCK_TRAILER;
	if (ra) {
		p = ra_get(r, ra, off, n, &rc);
		ra->next_off = off + n;
		if (rc)
			return rc;
	}
	if (!p && n <= sizeof(stack) &&
	    r->props.compression != LSM_COMPRESS_NONE) {
		if ((rc = read_exact(r, off, n, stack)))
			return rc;
		p = stack;
	} else if (!p) {
		direct = malloc(sizeof(*direct) + n);
		if (!direct)
			return -ENOMEM;
		if ((rc = read_exact(r, off, n, direct->data)))
			goto out_free;
		p = direct->data;
	}
	if (r->verify && (rc = verify_block(r, off, p, (size_t)size)))
		goto out_free;
	if (direct && p[size] == SST_BLOCK_RAW) {
		/* use the buffer as it is; the trailer stays unused */
		direct->len = (size_t)size;
		rc = block_parse(direct->data, direct->len, r->path, off,
				 &direct->b);
		if (rc)
			goto out_free;
		*out = direct;
		return 0;
	}
	rc = make_data_block(r, off, p, (size_t)size, out);
out_free:
	free(direct);
	return rc;
}

/* Reads the meta block at [off, off + size) plus trailer, checks it lies
 * below limit, verifies its checksum, uncompresses it. *out is malloc'd
 * (the caller frees it), *out_len its useful length. */
static int read_block(struct sst_reader *r, uint64_t off, uint64_t size,
		      uint64_t limit, uint8_t **out, size_t *out_len)
{
	int rc = check_handle(r, off, size, limit);
	if (rc)
		return rc;
	size_t n = (size_t)size + SST_BLOCK_TRAILER;
	uint8_t *buf = malloc(n);
	if (!buf)
		return -ENOMEM;
	if ((rc = read_exact(r, off, n, buf)) ||
	    (rc = verify_block(r, off, buf, (size_t)size)))
		goto out_free;
	uint8_t type = buf[size];
	if (type == SST_BLOCK_RAW) {
		*out = buf;
		*out_len = (size_t)size;
		return 0;
	}
	if (type != SST_BLOCK_LZ4 && type != SST_BLOCK_ZSTD) {
		rc = LSM_CORRUPT("file %s offset %llu: unknown block type %u",
				 r->path, (unsigned long long)off, type);
		goto out_free;
	}
	rc = sst_uncompress(type, slice_make(buf, (size_t)size), r->path, off,
			    out, out_len);
out_free:
	free(buf);
	return rc;
}

static int decode_handle(const struct sst_reader *r, struct slice v,
			 uint64_t at, uint64_t *off, uint64_t *size)
{
	const uint8_t *end = v.p + v.len;
	const uint8_t *p = get_varint64(v.p, end, off);
	if (p)
		p = get_varint64(p, end, size);
	if (!p || p != end)
		return LSM_CORRUPT("file %s offset %llu: bad block handle in "
				   "index",
				   r->path, (unsigned long long)at);
	return 0;
}

static uint64_t index_offset(const struct sst_reader *r)
{
	return r->index_off;
}

/* Loads a data block: from the cache, else from the file (then into the
 * cache if fill_cache). ra: the iterator's readahead, NULL for gets. */
static int load_block(struct sst_reader *r, uint64_t off, uint64_t size,
		      bool fill_cache, struct readahead *ra,
		      struct blk_ref *ref)
{
	if (r->cache) {
		struct cache_handle *h =
			cache_lookup(r->cache, r->file_number, off);
		if (h) {
			if (ra)
				ra->next_off = off + size + SST_BLOCK_TRAILER;
			ref->h = h;
			ref->owned = NULL;
			ref->b = ((struct data_block *)cache_value(h))->b;
			return 0;
		}
	}
	struct data_block *d;
	int rc = read_data_block(r, off, size, ra, &d);
	if (rc)
		return rc;
	ref->h = NULL;
	ref->owned = d;
	ref->b = d->b;
	if (r->cache && fill_cache) {
		struct cache_handle *h =
			cache_insert(r->cache, r->file_number, off, d, d->len,
				     data_block_delete, NULL);
		if (h) {
			ref->h = h;
			ref->owned = NULL;
		} /* else serve it uncached */
	}
	return 0;
}

static void release_block(struct sst_reader *r, struct blk_ref *ref)
{
	if (ref->h)
		cache_release(r->cache, ref->h);
	free(ref->owned);
	ref->h = NULL;
	ref->owned = NULL;
}

/* ---- iterator ---- */

struct sst_iter {
	struct ikv_iter base;
	struct sst_reader *r;
	bool fill_cache;
	struct block_iter idx;
	struct block_iter data;
	struct blk_ref ref;
	bool has_block;
	uint64_t blk_off;
	struct readahead ra;
	int status;
};

static void it_fail(struct sst_iter *it, int rc)
{
	if (!it->status)
		it->status = rc;
}

/* Loads the block the index iterator points at (or drops the current one
 * if the index is exhausted). Returns false when no block is loaded. */
static bool load_current(struct sst_iter *it)
{
	if (!block_iter_valid(&it->idx)) {
		if (block_iter_status(&it->idx))
			it_fail(it, block_iter_status(&it->idx));
		return false;
	}
	uint64_t off, size;
	int rc = decode_handle(it->r, block_iter_value(&it->idx),
			       index_offset(it->r), &off, &size);
	if (rc) {
		it_fail(it, rc);
		return false;
	}
	if (it->has_block && it->blk_off == off)
		return true;
	if (it->has_block) {
		release_block(it->r, &it->ref);
		it->has_block = false;
	}
	rc = load_block(it->r, off, size, it->fill_cache, &it->ra, &it->ref);
	if (rc) {
		it_fail(it, rc);
		return false;
	}
	it->has_block = true;
	it->blk_off = off;
	block_iter_reset(&it->data, &it->ref.b, off);
	return true;
}

static bool data_error(struct sst_iter *it)
{
	int rc = block_iter_status(&it->data);
	if (rc)
		it_fail(it, rc);
	return it->status != 0;
}

static void skip_forward(struct sst_iter *it)
{
	while (!it->status && !block_iter_valid(&it->data)) {
		if (data_error(it))
			return;
		block_iter_next(&it->idx);
		if (!load_current(it))
			return;
		block_iter_first(&it->data);
	}
	data_error(it);
}

static void skip_backward(struct sst_iter *it)
{
	while (!it->status && !block_iter_valid(&it->data)) {
		if (data_error(it))
			return;
		block_iter_prev(&it->idx);
		if (!load_current(it))
			return;
		block_iter_last(&it->data);
	}
	data_error(it);
}

static bool sit_valid(const struct ikv_iter *base)
{
	const struct sst_iter *it = (const struct sst_iter *)base;
	return !it->status && it->has_block && block_iter_valid(&it->data);
}

/* Invalidates the data iterator so a failed positioning is not valid. */
static void drop_pos(struct sst_iter *it)
{
	it->data.is_valid = false;
}

static void sit_first(struct ikv_iter *base)
{
	struct sst_iter *it = (struct sst_iter *)base;
	drop_pos(it);
	if (it->status)
		return;
	block_iter_first(&it->idx);
	if (!load_current(it))
		return;
	block_iter_first(&it->data);
	skip_forward(it);
}

static void sit_last(struct ikv_iter *base)
{
	struct sst_iter *it = (struct sst_iter *)base;
	drop_pos(it);
	if (it->status)
		return;
	block_iter_last(&it->idx);
	if (!load_current(it))
		return;
	block_iter_last(&it->data);
	skip_backward(it);
}

static void sit_seek(struct ikv_iter *base, struct slice target)
{
	struct sst_iter *it = (struct sst_iter *)base;
	drop_pos(it);
	if (it->status)
		return;
	block_iter_seek(&it->idx, target);
	if (!load_current(it))
		return;
	block_iter_seek(&it->data, target);
	skip_forward(it);
}

static void sit_prev(struct ikv_iter *base)
{
	struct sst_iter *it = (struct sst_iter *)base;
	if (!sit_valid(base))
		return;
	block_iter_prev(&it->data);
	skip_backward(it);
}

/* A valid data block iterator has status 0 and so does the SST iterator
 * (invariant 4), so a step that stays inside the block needs no check. */
static void sit_next(struct ikv_iter *base)
{
	struct sst_iter *it = (struct sst_iter *)base;
	if (!sit_valid(base))
		return;
	block_iter_next(&it->data);
	if (!block_iter_valid(&it->data))
		skip_forward(it);
}

bool sstr_iter_step(struct ikv_iter *base, struct slice *key,
		    struct slice *value)
{
	struct sst_iter *it = (struct sst_iter *)base;
	if (!sit_valid(base))
		return false;
	block_iter_next(&it->data);
	if (!block_iter_valid(&it->data)) {
		skip_forward(it);
		if (!sit_valid(base))
			return false;
	}
	*key = block_iter_key(&it->data);
	*value = block_iter_value(&it->data);
	return true;
}

static void sit_seek_for_prev(struct ikv_iter *base, struct slice target)
{
	struct sst_iter *it = (struct sst_iter *)base;
	sit_seek(base, target);
	if (it->status)
		return;
	if (!sit_valid(base))
		sit_last(base);
	else if (ikey_cmp(block_iter_key(&it->data), target) > 0)
		sit_prev(base);
}

static struct slice sit_key(const struct ikv_iter *base)
{
	return block_iter_key(&((const struct sst_iter *)base)->data);
}

static struct slice sit_value(const struct ikv_iter *base)
{
	return block_iter_value(&((const struct sst_iter *)base)->data);
}

static int sit_status(const struct ikv_iter *base)
{
	return ((const struct sst_iter *)base)->status;
}

static void sit_release(struct sst_iter *it)
{
	if (it->has_block)
		release_block(it->r, &it->ref);
	it->has_block = false;
	free(it->ra.buf);
	it->ra.buf = NULL;
	it->ra.cap = it->ra.len = 0;
	block_iter_release(&it->idx);
	block_iter_release(&it->data);
}

static void sit_free(struct ikv_iter *base)
{
	struct sst_iter *it = (struct sst_iter *)base;
	sit_release(it);
	free(it);
}

static const struct ikv_iter_ops sst_iter_ops = {
	.valid = sit_valid,
	.first = sit_first,
	.last = sit_last,
	.seek = sit_seek,
	.seek_for_prev = sit_seek_for_prev,
	.next = sit_next,
	.prev = sit_prev,
	.key = sit_key,
	.value = sit_value,
	.status = sit_status,
	.free = sit_free,
};

static void sit_init(struct sst_iter *it, struct sst_reader *r, bool fill_cache)
{
	static const struct block empty = {NULL, 0, NULL, 0};
	memset(it, 0, sizeof(*it));
	it->base.ops = &sst_iter_ops;
	it->r = r;
	it->fill_cache = fill_cache;
	it->ra.next_off = UINT64_MAX;
	block_iter_init(&it->idx, &r->index, BLOCK_ORDER_IKEY, r->path,
			index_offset(r));
	block_iter_init(&it->data, &empty, BLOCK_ORDER_IKEY, r->path, 0);
}

struct ikv_iter *sstr_iter_new(struct sst_reader *r, bool fill_cache)
{
	struct sst_iter *it = malloc(sizeof(*it));
	if (!it)
		return NULL;
	sit_init(it, r, fill_cache);
	return &it->base;
}

/*
 * A point lookup walks the index and at most a few data blocks with two
 * block iterators whose keys live on the stack, not with a whole SST
 * iterator: no allocation besides the block read on a cache miss, and no
 * readahead state.
 */
static int get_in_blocks(struct sst_reader *r, struct slice lookup_ikey,
			 int (*fn)(void *ctx, struct slice ikey,
				   struct slice value),
			 void *ctx)
{
	uint8_t ikey_buf[128], dkey_buf[256];
	struct block_iter idx, data;
	static const struct block empty = {NULL, 0, NULL, 0};
	int rc = 0;

	block_iter_init(&idx, &r->index, BLOCK_ORDER_IKEY, r->path,
			r->index_off);
	block_iter_use_buffer(&idx, ikey_buf, sizeof(ikey_buf));
	block_iter_init(&data, &empty, BLOCK_ORDER_IKEY, r->path, 0);
	block_iter_use_buffer(&data, dkey_buf, sizeof(dkey_buf));
	/* The first entry >= lookup is in the first block whose index key
	 * is >= lookup, or (if that block ends below it) at the start of a
	 * later block (sit_seek's skip_forward does the same). */
	bool first = true;
	for (block_iter_seek(&idx, lookup_ikey); block_iter_valid(&idx);
	     block_iter_next(&idx)) {
		uint64_t off, size;
		struct blk_ref ref;
		rc = decode_handle(r, block_iter_value(&idx), r->index_off,
				   &off, &size);
		if (rc)
			break;
		rc = load_block(r, off, size, true, NULL, &ref);
		if (rc)
			break;
		block_iter_reset(&data, &ref.b, off);
		if (first)
			block_iter_seek(&data, lookup_ikey);
		else
			block_iter_first(&data);
		first = false;
		if (block_iter_valid(&data)) {
			struct slice k = block_iter_key(&data);
			if (slice_eq(ikey_user(k), ikey_user(lookup_ikey))) {
				rc = fn(ctx, k, block_iter_value(&data));
				rc = rc < 0 ? rc : 1;
			}
		} else {
			rc = block_iter_status(&data);
		}
		bool done = rc != 0 || block_iter_valid(&data);
		release_block(r, &ref);
		if (done)
			break;
	}
	if (!rc)
		rc = block_iter_status(&idx);
	block_iter_release(&idx);
	block_iter_release(&data);
	return rc;
}

int sstr_get(struct sst_reader *r, struct slice lookup_ikey,
	     int (*fn)(void *ctx, struct slice ikey, struct slice value),
	     void *ctx, bool *bloom_negative)
{
	return sstr_get_hashed(r, lookup_ikey,
			       bloom_hash(ikey_user(lookup_ikey)), fn, ctx,
			       bloom_negative);
}

int sstr_get_hashed(struct sst_reader *r, struct slice lookup_ikey,
		    uint64_t key_hash,
		    int (*fn)(void *ctx, struct slice ikey, struct slice value),
		    void *ctx, bool *bloom_negative)
{
	if (!sstr_may_contain_hash(r, key_hash)) {
		if (bloom_negative)
			*bloom_negative = true;
		return 0;
	}
	if (bloom_negative)
		*bloom_negative = false;
	return get_in_blocks(r, lookup_ikey, fn, ctx);
}

uint64_t sstr_key_hash(struct slice user_key)
{
	return bloom_hash(user_key);
}

bool sstr_may_contain_hash(const struct sst_reader *r, uint64_t key_hash)
{
	if (!r->has_filter)
		return true;
	return bloom_may_contain(&r->filter, key_hash);
}

uint64_t sstr_approx_offset(struct sst_reader *r, struct slice ikey)
{
	struct block_iter bi;
	uint64_t off = r->data_end, size;
	block_iter_init(&bi, &r->index, BLOCK_ORDER_IKEY, r->path, 0);
	block_iter_seek(&bi, ikey);
	if (block_iter_valid(&bi) &&
	    decode_handle(r, block_iter_value(&bi), 0, &off, &size))
		off = r->data_end;
	block_iter_release(&bi);
	return off;
}

bool sstr_may_contain(const struct sst_reader *r, struct slice user_key)
{
	if (!r->has_filter)
		return true;
	return bloom_may_contain(&r->filter, bloom_hash(user_key));
}

const struct sst_props *sstr_props(const struct sst_reader *r)
{
	return &r->props;
}

const char *sstr_path(const struct sst_reader *r)
{
	return r->path;
}

size_t sstr_range_tombs(const struct sst_reader *r,
			const struct range_tomb **out)
{
	*out = r->tombs;
	return r->n_tombs;
}

uint64_t sstr_bytes_read(const struct sst_reader *r)
{
	return atomic_load_explicit(&r->bytes_read, memory_order_relaxed);
}

/* ---- open / close ---- */

struct num_prop {
	const char *name;
	size_t field; /* offsetof in struct sst_props (uint64_t) */
};

static const struct num_prop num_props[] = {
	{SST_PROP_COMPRESSION, offsetof(struct sst_props, compression)},
	{SST_PROP_DATA_BYTES, offsetof(struct sst_props, data_bytes)},
	{SST_PROP_FILTER_BYTES, offsetof(struct sst_props, filter_bytes)},
	{SST_PROP_FORMAT_VERSION, offsetof(struct sst_props, format_version)},
	{SST_PROP_INDEX_BYTES, offsetof(struct sst_props, index_bytes)},
	{SST_PROP_LARGEST_SEQ, offsetof(struct sst_props, largest_seq)},
	{SST_PROP_NUM_DELETIONS, offsetof(struct sst_props, num_deletions)},
	{SST_PROP_NUM_ENTRIES, offsetof(struct sst_props, num_entries)},
	{SST_PROP_NUM_RANGE_DELS,
	 offsetof(struct sst_props, num_range_deletions)},
	{SST_PROP_RAW_KEY_BYTES, offsetof(struct sst_props, raw_key_bytes)},
	{SST_PROP_RAW_VALUE_BYTES, offsetof(struct sst_props, raw_value_bytes)},
	{SST_PROP_SMALLEST_SEQ, offsetof(struct sst_props, smallest_seq)},
	{SST_PROP_TIME_HI, offsetof(struct sst_props, time_hi)},
	{SST_PROP_TIME_LO, offsetof(struct sst_props, time_lo)},
};

static int set_bytes(uint8_t **dst, size_t *dst_len, struct slice v)
{
	uint8_t *p = malloc(v.len ? v.len : 1);
	if (!p)
		return -ENOMEM;
	if (v.len)
		memcpy(p, v.p, v.len);
	free(*dst);
	*dst = p;
	*dst_len = v.len;
	return 0;
}

static bool is_name(struct slice k, const char *name)
{
	return slice_eq(k, slice_make(name, strlen(name)));
}

/* Decodes the properties block; unknown names are skipped (a newer writer
 * may add some). */
static int parse_props(struct sst_reader *r, const uint8_t *p, size_t len,
		       uint64_t off)
{
	struct block b;
	struct block_iter bi;
	int rc = block_parse(p, len, r->path, off, &b);
	if (rc)
		return rc;
	block_iter_init(&bi, &b, BLOCK_ORDER_BYTES, r->path, off);
	for (block_iter_first(&bi); block_iter_valid(&bi) && !rc;
	     block_iter_next(&bi)) {
		struct slice k = block_iter_key(&bi), v = block_iter_value(&bi);
		struct sst_props *s = &r->props;
		bool bad_key = false;
		if (is_name(k, SST_PROP_SMALLEST_KEY)) {
			rc = set_bytes(&s->smallest, &s->smallest_len, v);
			bad_key = v.len < IKEY_TRAILER;
		} else if (is_name(k, SST_PROP_LARGEST_KEY)) {
			rc = set_bytes(&s->largest, &s->largest_len, v);
			bad_key = v.len < IKEY_TRAILER;
		} else if (is_name(k, SST_PROP_RD_SMALLEST)) {
			rc = set_bytes(&s->rd_smallest, &s->rd_smallest_len, v);
			bad_key = v.len < IKEY_TRAILER;
		} else if (is_name(k, SST_PROP_RD_LARGEST)) {
			rc = set_bytes(&s->rd_largest, &s->rd_largest_len, v);
		} else {
			for (size_t i = 0;
			     i < sizeof(num_props) / sizeof(num_props[0]);
			     i++) {
				if (!is_name(k, num_props[i].name))
					continue;
				uint64_t x;
				const uint8_t *e =
					get_varint64(v.p, v.p + v.len, &x);
				if (!e || e != v.p + v.len) {
					bad_key = true;
					break;
				}
				memcpy((char *)s + num_props[i].field, &x,
				       sizeof(x));
				break;
			}
		}
		if (!rc && bad_key)
			rc = LSM_CORRUPT("file %s offset %llu: bad value of "
					 "property %.*s",
					 r->path, (unsigned long long)off,
					 (int)k.len, (const char *)k.p);
	}
	if (!rc)
		rc = block_iter_status(&bi);
	block_iter_release(&bi);
	return rc;
}

/* Copies the range tombstones out of their block into r->tombs. */
static int parse_tombs(struct sst_reader *r, const uint8_t *p, size_t len,
		       uint64_t off)
{
	struct block b;
	struct block_iter bi;
	size_t n = 0, bytes = 0;
	int rc = block_parse(p, len, r->path, off, &b);
	if (rc)
		return rc;
	block_iter_init(&bi, &b, BLOCK_ORDER_IKEY, r->path, off);
	for (block_iter_first(&bi); block_iter_valid(&bi);
	     block_iter_next(&bi)) {
		struct slice k = block_iter_key(&bi);
		if (ikey_kind(k) != IKEY_RANGE_DELETE) {
			rc = LSM_CORRUPT("file %s offset %llu: entry of kind "
					 "%u in range-deletion block",
					 r->path, (unsigned long long)off,
					 ikey_kind(k));
			goto out;
		}
		n++;
		bytes += k.len - IKEY_TRAILER + block_iter_value(&bi).len;
	}
	if ((rc = block_iter_status(&bi)))
		goto out;
	r->tombs = calloc(n ? n : 1, sizeof(*r->tombs));
	r->tomb_keys = malloc(bytes ? bytes : 1);
	if (!r->tombs || !r->tomb_keys) {
		rc = -ENOMEM;
		goto out;
	}
	uint8_t *dst = r->tomb_keys;
	for (block_iter_first(&bi); block_iter_valid(&bi) && r->n_tombs < n;
	     block_iter_next(&bi)) {
		struct slice k = block_iter_key(&bi), v = block_iter_value(&bi);
		struct range_tomb *t = &r->tombs[r->n_tombs++];
		struct slice u = ikey_user(k);
		memcpy(dst, u.p, u.len);
		t->start = slice_make(dst, u.len);
		dst += u.len;
		if (v.len)
			memcpy(dst, v.p, v.len);
		t->end = slice_make(dst, v.len);
		dst += v.len;
		t->seq = ikey_seq(k);
	}
	rc = block_iter_status(&bi);
out:
	block_iter_release(&bi);
	return rc;
}

static void get_handle(const uint8_t *p, uint64_t *off, uint64_t *size)
{
	*off = get_fixed64(p);
	*size = get_fixed32(p + 8);
}

void sstr_close(struct sst_reader *r)
{
	if (!r)
		return;
	if (r->f)
		rfile_close(r->f);
	free(r->index_buf);
	free(r->filter_buf);
	free(r->tombs);
	free(r->tomb_keys);
	sst_props_release(&r->props);
	free(r->path);
	free(r);
}

int sstr_open(lsm_env *env, const char *path, uint64_t file_number,
	      struct cache *block_cache, bool verify_checksums,
	      struct sst_reader **out)
{
	uint8_t ft[SST_FOOTER_SIZE];
	uint8_t *buf = NULL;
	size_t len, got = 0;
	uint64_t ho[4], hs[4]; /* filter, range-del, index, properties */
	int rc;

	struct sst_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->path = strdup(path);
	if (!r->path) {
		rc = -ENOMEM;
		goto out_close;
	}
	r->file_number = file_number;
	r->cache = block_cache;
	r->verify = verify_checksums;
	if ((rc = env_new_rfile(env, path, &r->f)))
		goto out_close;
	r->file_size = rfile_size(r->f);
	if (r->file_size < SST_FOOTER_SIZE) {
		rc = LSM_CORRUPT("file %s offset 0: not an SST (%llu bytes)",
				 path, (unsigned long long)r->file_size);
		goto out_close;
	}
	uint64_t limit = r->file_size - SST_FOOTER_SIZE;
	rc = rfile_read(r->f, limit, sizeof(ft), ft, &got);
	if (!rc && got != sizeof(ft))
		rc = LSM_CORRUPT("file %s offset %llu: short footer", path,
				 (unsigned long long)limit);
	if (rc)
		goto out_close;
	r->bytes_read = got;
	if (get_fixed64(ft + 56) != SST_MAGIC) {
		rc = LSM_CORRUPT("file %s offset %llu: not an SST (bad magic)",
				 path, (unsigned long long)limit);
		goto out_close;
	}
	uint32_t version = get_fixed32(ft + 48);
	uint32_t features = get_fixed32(ft + 52);
	if (version != SST_FORMAT_VERSION || (features & ~SST_FEATURES_KNOWN)) {
		rc = lsm_err(LSM_E_FORMAT,
			     "file %s: SST format version %u features 0x%x "
			     "not supported (this build reads version %u)",
			     path, version, features, SST_FORMAT_VERSION);
		goto out_close;
	}
	for (int i = 0; i < 4; i++)
		get_handle(ft + SST_HANDLE_SIZE * i, &ho[i], &hs[i]);
	if (hs[2] == 0 || hs[3] == 0) {
		rc = LSM_CORRUPT("file %s offset %llu: footer lacks index or "
				 "properties block",
				 path, (unsigned long long)limit);
		goto out_close;
	}
	r->data_end = ho[2];
	for (int i = 0; i < 4; i++)
		if (hs[i] && ho[i] < r->data_end)
			r->data_end = ho[i];

	rc = read_block(r, ho[2], hs[2], limit, &r->index_buf, &len);
	if (rc)
		goto out_close;
	r->index_off = ho[2];
	if ((rc = block_parse(r->index_buf, len, path, ho[2], &r->index)))
		goto out_close;
	if (hs[0]) {
		rc = read_block(r, ho[0], hs[0], limit, &r->filter_buf, &len);
		if (!rc)
			rc = bloom_parse(r->filter_buf, len, path, ho[0],
					 &r->filter);
		if (rc)
			goto out_close;
		r->has_filter = true;
	}
	if (hs[1]) {
		rc = read_block(r, ho[1], hs[1], limit, &buf, &len);
		if (!rc)
			rc = parse_tombs(r, buf, len, ho[1]);
		free(buf);
		buf = NULL;
		if (rc)
			goto out_close;
	}
	rc = read_block(r, ho[3], hs[3], limit, &buf, &len);
	if (!rc)
		rc = parse_props(r, buf, len, ho[3]);
	free(buf);
	if (rc)
		goto out_close;
	/* The footer has no checksum of its own: cross-check it against the
	 * (checksummed) properties, so that a damaged size cannot silently
	 * drop the filter or the range tombstones. */
	const struct sst_props *pp = &r->props;
	if (pp->index_bytes != hs[2] + SST_BLOCK_TRAILER ||
	    pp->filter_bytes != (hs[0] ? hs[0] + SST_BLOCK_TRAILER : 0) ||
	    pp->num_range_deletions != r->n_tombs ||
	    pp->data_bytes != r->data_end) {
		rc = LSM_CORRUPT("file %s offset %llu: footer disagrees with "
				 "properties block",
				 path, (unsigned long long)limit);
		goto out_close;
	}
	r->props.file_size = r->file_size;
	*out = r;
	return 0;

out_close:
	sstr_close(r);
	return rc;
}
