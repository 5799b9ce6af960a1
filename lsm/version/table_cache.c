/*
 * table_cache.c - see table_cache.h.
 *
 * Two threads that miss on the same file at once both open it; the second
 * insert replaces the first entry, whose reader closes when its last
 * handle is released. That costs an extra open in a rare race and keeps
 * the cache lock out of file I/O.
 */
#include "version/table_cache.h"

#include "util/ikey.h"

#include <errno.h>

#include "blob/blob.h"

#include <stdio.h>
#include <stdlib.h>

static void table_free(void *value, void *ctx)
{
	struct table *t = value;
	(void)ctx;
	tomb_set_free(t->frag);
	sstr_close(t->r);
	free(t);
}

int tcache_find(struct cache *tc, const struct tcache_opts *o, uint64_t number,
		struct cache_handle **out)
{
	struct cache_handle *h = cache_lookup(tc, number, 0);
	struct table *t;
	char path[4096];
	int rc;

	if (h) {
		*out = h;
		return 0;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/%06llu.sst", o->dir,
		 (unsigned long long)number);
	rc = sstr_open(o->env, path, number, o->block_cache,
		       o->verify_checksums, &t->r);
	if (rc)
		goto out_free;
	t->n_rt = sstr_range_tombs(t->r, &t->rt);
	if (t->n_rt) {
		rc = -ENOMEM;
		t->frag = tomb_set_new();
		if (!t->frag)
			goto out_close;
		for (size_t i = 0; i < t->n_rt; i++) {
			rc = tomb_set_add(t->frag, t->rt[i].start, t->rt[i].end,
					  t->rt[i].seq);
			if (rc)
				goto out_close;
			if (t->rt[i].seq > t->max_tomb_seq)
				t->max_tomb_seq = t->rt[i].seq;
		}
		rc = tomb_set_build(t->frag, IKEY_SEQ_MAX);
		if (rc)
			goto out_close;
	}
	h = cache_insert(tc, number, 0, t, 1, table_free, NULL);
	if (!h) {
		rc = -ENOMEM;
		goto out_close;
	}
	*out = h;
	return 0;

out_close:
	tomb_set_free(t->frag);
	sstr_close(t->r);
out_free:
	free(t);
	return rc;
}

void tcache_evict(struct cache *tc, uint64_t number)
{
	cache_erase(tc, number, 0);
}

static void blob_reader_free(void *value, void *ctx)
{
	(void)ctx;
	blobr_close(value);
}

int bcache_find(struct cache *tc, const struct tcache_opts *o, uint64_t number,
		struct cache_handle **out)
{
	struct cache_handle *h = cache_lookup(tc, number, 1);
	struct blob_reader *r;
	int rc;
	if (h) {
		*out = h;
		return 0;
	}
	rc = blobr_open(o->env, o->dir, number, &r);
	if (rc)
		return rc;
	h = cache_insert(tc, number, 1, r, 1, blob_reader_free, NULL);
	if (!h) {
		blobr_close(r);
		return -ENOMEM;
	}
	*out = h;
	return 0;
}

void bcache_evict(struct cache *tc, uint64_t number)
{
	cache_erase(tc, number, 1);
}

uint64_t table_cover(const struct table *t, struct slice ukey,
		     uint64_t read_seq)
{
	uint64_t best = 0;
	if (!t->n_rt)
		return 0;
	if (t->max_tomb_seq <= read_seq)
		return tomb_set_cover(t->frag, ukey);
	/* A read below some tombstone's seq (an old snapshot): the
	 * fragments keep only the maximum, so look at each tombstone. */
	for (size_t i = 0; i < t->n_rt; i++) {
		const struct range_tomb *r = &t->rt[i];
		if (slice_cmp(r->start, ukey) > 0)
			break;
		if (r->seq <= read_seq && r->seq > best &&
		    slice_cmp(ukey, r->end) < 0)
			best = r->seq;
	}
	return best;
}
