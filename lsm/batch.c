/*
 * batch.c - write batches (format in batch.h).
 *
 * A batch is built by one thread, then handed to lsm_write(), which only
 * reads it. Group commit appends several batches into the leader's
 * scratch batch, so the WAL sees one record per group.
 */
#include "batch.h"

#include "util/coding.h"
#include "util/ikey.h"
#include "util/status.h"

#include <stdlib.h>
#include <string.h>

int batch_init(struct lsm_batch *b)
{
	b->cap = 256;
	b->rep = malloc(b->cap);
	if (!b->rep)
		return -ENOMEM;
	memset(b->rep, 0, BATCH_HEADER);
	b->len = BATCH_HEADER;
	b->user_bytes = 0;
	b->max_value = 0;
	return 0;
}

void batch_release(struct lsm_batch *b)
{
	free(b->rep);
	b->rep = NULL;
	b->len = b->cap = 0;
}

lsm_batch *lsm_batch_new(void)
{
	lsm_batch *b = malloc(sizeof(*b));
	if (!b)
		return NULL;
	if (batch_init(b)) {
		free(b);
		return NULL;
	}
	return b;
}

void lsm_batch_free(lsm_batch *b)
{
	if (!b)
		return;
	batch_release(b);
	free(b);
}

void lsm_batch_clear(lsm_batch *b)
{
	memset(b->rep, 0, BATCH_HEADER);
	b->len = BATCH_HEADER;
	b->user_bytes = 0;
	b->max_value = 0;
}

uint32_t batch_get_count(const uint8_t *rep)
{
	return get_fixed32(rep + 8);
}

void batch_set_seq(uint8_t *rep, uint64_t seq)
{
	put_fixed64(rep, seq);
}

uint64_t batch_get_seq(const uint8_t *rep)
{
	return get_fixed64(rep);
}

uint32_t lsm_batch_count(const lsm_batch *b)
{
	return batch_get_count(b->rep);
}

static int reserve(struct lsm_batch *b, size_t n)
{
	if (b->len + n <= b->cap)
		return 0;
	size_t ncap = b->cap * 2;
	while (ncap < b->len + n)
		ncap *= 2;
	uint8_t *p = realloc(b->rep, ncap);
	if (!p)
		return -ENOMEM;
	b->rep = p;
	b->cap = ncap;
	return 0;
}

/* Keys and values are limited so that a batch entry always fits the
 * 32-bit lengths of the formats below it. */
#define MAX_KEY (64u << 10)
#define MAX_VALUE (256u << 20)

static int add(struct lsm_batch *b, unsigned kind, const void *k, size_t kl,
	       const void *v, size_t vl, bool has_v)
{
	uint32_t count = batch_get_count(b->rep);
	if (kl > MAX_KEY)
		return lsm_err(-EINVAL, "key of %zu bytes exceeds %u", kl,
			       MAX_KEY);
	if (vl > MAX_VALUE)
		return lsm_err(-EINVAL, "value of %zu bytes exceeds %u", vl,
			       MAX_VALUE);
	if (count == UINT32_MAX)
		return lsm_err(-EINVAL, "batch holds too many entries");
	int rc = reserve(b, 1 + 10 + kl + 10 + vl);
	if (rc)
		return rc;
	uint8_t *p = b->rep + b->len;
	*p++ = (uint8_t)kind;
	p = put_varint32(p, (uint32_t)kl);
	if (kl)
		memcpy(p, k, kl);
	p += kl;
	if (has_v) {
		p = put_varint32(p, (uint32_t)vl);
		if (vl)
			memcpy(p, v, vl);
		p += vl;
	}
	b->len = (size_t)(p - b->rep);
	put_fixed32(b->rep + 8, count + 1);
	b->user_bytes += kl + vl;
	if (kind == IKEY_PUT && vl > b->max_value)
		b->max_value = (uint32_t)vl;
	return 0;
}

int batch_add_entry(struct lsm_batch *b, unsigned kind, struct slice key,
		    struct slice value)
{
	size_t user_bytes = b->user_bytes;
	int rc = add(b, kind, key.p, key.len, value.p, value.len,
		     kind != IKEY_DELETE);
	b->user_bytes = user_bytes;
	return rc;
}

int lsm_batch_put(lsm_batch *b, const void *key, size_t key_len,
		  const void *val, size_t val_len)
{
	return add(b, IKEY_PUT, key, key_len, val, val_len, true);
}

int lsm_batch_delete(lsm_batch *b, const void *key, size_t key_len)
{
	return add(b, IKEY_DELETE, key, key_len, NULL, 0, false);
}

int lsm_batch_delete_range(lsm_batch *b, const void *start, size_t start_len,
			   const void *end, size_t end_len)
{
	if (slice_cmp(slice_make(start, start_len), slice_make(end, end_len)) >=
	    0)
		return 0; /* an empty range deletes nothing */
	return add(b, IKEY_RANGE_DELETE, start, start_len, end, end_len, true);
}

int batch_append(struct lsm_batch *dst, const struct lsm_batch *src)
{
	size_t n = src->len - BATCH_HEADER;
	int rc = reserve(dst, n);
	if (rc)
		return rc;
	memcpy(dst->rep + dst->len, src->rep + BATCH_HEADER, n);
	dst->len += n;
	put_fixed32(dst->rep + 8,
		    batch_get_count(dst->rep) + batch_get_count(src->rep));
	dst->user_bytes += src->user_bytes;
	if (src->max_value > dst->max_value)
		dst->max_value = src->max_value;
	return 0;
}

int batch_iterate(const uint8_t *rep, size_t len, batch_fn fn, void *ctx,
		  const char *what, uint64_t off)
{
	const uint8_t *p, *end;
	uint64_t seq;
	uint32_t count, i;

	if (len < BATCH_HEADER)
		return LSM_CORRUPT("%s: record at offset %llu: batch of %zu "
				   "bytes is too short",
				   what, (unsigned long long)off, len);
	p = rep + BATCH_HEADER;
	end = rep + len;
	seq = batch_get_seq(rep);
	count = batch_get_count(rep);
	for (i = 0; i < count; i++) {
		uint32_t kl, vl = 0;
		unsigned kind;
		struct slice k, v = {NULL, 0};
		if (p >= end)
			goto bad;
		kind = *p++;
		if (kind > IKEY_BLOB)
			goto bad;
		p = get_varint32(p, end, &kl);
		if (!p || kl > (size_t)(end - p))
			goto bad;
		k = slice_make(p, kl);
		p += kl;
		if (kind != IKEY_DELETE) {
			p = get_varint32(p, end, &vl);
			if (!p || vl > (size_t)(end - p))
				goto bad;
			v = slice_make(p, vl);
			p += vl;
		}
		int rc = fn(ctx, seq + i, kind, k, v);
		if (rc)
			return rc;
	}
	if (p != end)
		goto bad;
	return 0;
bad:
	return LSM_CORRUPT("%s: record at offset %llu: batch entry %u of %u is "
			   "malformed",
			   what, (unsigned long long)off, i, count);
}
