/*
 * sst_reader.c - reads SST files: open, point lookups, iterators.
 *
 * sstr_open() reads the footer and then the meta blocks (index, filter,
 * range deletions, properties), which the reader keeps for its lifetime.
 * Data blocks are read on demand; with a block cache they are shared
 * through it under the key (file_number, block offset), the cached value
 * being the parsed, uncompressed block. Without a cache (or when an
 * iterator is told not to fill it) the iterator owns its current block.
 *
 * Invariants:
 *  1. Every block handle is checked to lie inside the file before the
 *     footer (data handles: before the first meta block) before it is read.
 *  2. Meta blocks are always checksum-verified; data blocks when
 *     verify_checksums is set. A block is parsed (block_parse) before it is
 *     used or cached, so cached blocks are known to be well-formed.
 *  3. Every error names the file and the offset of the block at fault.
 *  4. The SST iterator is positioned on an entry only if its data block
 *     iterator is; empty or exhausted blocks are skipped in the direction
 *     of travel. An error is sticky: the iterator stays invalid.
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

/* A data block in use: either a cache handle or a buffer we own. */
struct blk_ref {
	struct cache_handle *h;
	uint8_t *owned;
	struct block b;
};

struct cached_block {
	uint8_t *buf;
	struct block b;
};

static void cached_block_delete(void *value, void *ctx)
{
	struct cached_block *cb = value;
	(void)ctx;
	free(cb->buf);
	free(cb);
}

/* Reads the block at [off, off + size) plus trailer, checks it lies below
 * limit, verifies its checksum if asked, uncompresses it. *out is malloc'd
 * (the caller frees it), *out_len its useful length. */
static int read_block(struct sst_reader *r, uint64_t off, uint64_t size,
		      uint64_t limit, bool verify, uint8_t **out,
		      size_t *out_len)
{
	if (off > limit || size > limit - off ||
	    SST_BLOCK_TRAILER > limit - off - size || size > UINT32_MAX)
		return LSM_CORRUPT("file %s offset %llu: block handle (size "
				   "%llu) outside its region (end %llu)",
				   r->path, (unsigned long long)off,
				   (unsigned long long)size,
				   (unsigned long long)limit);
	size_t n = (size_t)size + SST_BLOCK_TRAILER, got = 0;
	uint8_t *buf = malloc(n);
	if (!buf)
		return -ENOMEM;
	int rc = rfile_read(r->f, off, n, buf, &got);
	atomic_fetch_add_explicit(&r->bytes_read, got, memory_order_relaxed);
	if (!rc && got != n)
		rc = LSM_CORRUPT("file %s offset %llu: block truncated (%zu "
				 "of %zu bytes)",
				 r->path, (unsigned long long)off, got, n);
	if (rc)
		goto out_free;
	uint8_t type = buf[size];
	if (verify && get_fixed32(buf + size + 1) !=
			      sst_block_checksum(buf, (size_t)size, type)) {
		rc = LSM_CORRUPT("file %s offset %llu: block checksum "
				 "mismatch",
				 r->path, (unsigned long long)off);
		goto out_free;
	}
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

static int load_block(struct sst_reader *r, uint64_t off, uint64_t size,
		      bool fill_cache, struct blk_ref *ref)
{
	if (r->cache) {
		struct cache_handle *h =
			cache_lookup(r->cache, r->file_number, off);
		if (h) {
			ref->h = h;
			ref->owned = NULL;
			ref->b = ((struct cached_block *)cache_value(h))->b;
			return 0;
		}
	}
	uint8_t *buf;
	size_t len;
	struct block b;
	int rc = read_block(r, off, size, r->data_end, r->verify, &buf, &len);
	if (rc)
		return rc;
	rc = block_parse(buf, len, r->path, off, &b);
	if (rc) {
		free(buf);
		return rc;
	}
	ref->h = NULL;
	ref->owned = buf;
	ref->b = b;
	if (r->cache && fill_cache) {
		struct cached_block *cb = malloc(sizeof(*cb));
		if (!cb)
			return 0; /* serve it uncached */
		cb->buf = buf;
		cb->b = b;
		struct cache_handle *h =
			cache_insert(r->cache, r->file_number, off, cb, len,
				     cached_block_delete, NULL);
		if (!h) {
			free(cb);
			return 0;
		}
		ref->h = h;
		ref->owned = NULL;
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
	rc = load_block(it->r, off, size, it->fill_cache, &it->ref);
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

static void sit_next(struct ikv_iter *base)
{
	struct sst_iter *it = (struct sst_iter *)base;
	if (!sit_valid(base))
		return;
	block_iter_next(&it->data);
	skip_forward(it);
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

int sstr_get(struct sst_reader *r, struct slice lookup_ikey,
	     int (*fn)(void *ctx, struct slice ikey, struct slice value),
	     void *ctx, bool *bloom_negative)
{
	if (!sstr_may_contain(r, ikey_user(lookup_ikey))) {
		if (bloom_negative)
			*bloom_negative = true;
		return 0;
	}
	if (bloom_negative)
		*bloom_negative = false;
	struct sst_iter it;
	int rc = 0;
	sit_init(&it, r, true);
	sit_seek(&it.base, lookup_ikey);
	if (sit_valid(&it.base)) {
		struct slice k = sit_key(&it.base);
		if (slice_eq(ikey_user(k), ikey_user(lookup_ikey))) {
			rc = fn(ctx, k, sit_value(&it.base));
			rc = rc < 0 ? rc : 1;
		}
	} else {
		rc = it.status;
	}
	sit_release(&it);
	return rc;
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

	rc = read_block(r, ho[2], hs[2], limit, true, &r->index_buf, &len);
	if (rc)
		goto out_close;
	r->index_off = ho[2];
	if ((rc = block_parse(r->index_buf, len, path, ho[2], &r->index)))
		goto out_close;
	if (hs[0]) {
		rc = read_block(r, ho[0], hs[0], limit, true, &r->filter_buf,
				&len);
		if (!rc)
			rc = bloom_parse(r->filter_buf, len, path, ho[0],
					 &r->filter);
		if (rc)
			goto out_close;
		r->has_filter = true;
	}
	if (hs[1]) {
		rc = read_block(r, ho[1], hs[1], limit, true, &buf, &len);
		if (!rc)
			rc = parse_tombs(r, buf, len, ho[1]);
		free(buf);
		buf = NULL;
		if (rc)
			goto out_close;
	}
	rc = read_block(r, ho[3], hs[3], limit, true, &buf, &len);
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
