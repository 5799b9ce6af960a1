/*
 * version.c - file metadata and immutable versions of the level structure.
 *
 * Invariants:
 *  1. A version never changes after vset_apply() installs it.
 *  2. In levels >= 1 files are sorted by smallest key and their internal
 *     key ranges do not overlap: file i's largest < file i+1's smallest,
 *     except that both may be the same boundary sentinel (k, SEQ_MAX,
 *     SENTINEL), which covers no key.
 *  3. In L0, files are ordered newest first (by largest_seq), so a reader
 *     that stops at the first hit sees the newest version.
 *  4. Each file listed by a version holds one reference from it.
 *
 * Thread-safety: versions are read-only; reference counts are atomic.
 */
#include "version/version.h"

#include "table_cache.h"
#include "util/ikey.h"
#include "util/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void file_path(char *buf, size_t cap, const char *dir, uint64_t number,
	       const char *suffix)
{
	if (strcmp(suffix, "MANIFEST") == 0)
		snprintf(buf, cap, "%s/MANIFEST-%06llu", dir,
			 (unsigned long long)number);
	else
		snprintf(buf, cap, "%s/%06llu.%s", dir,
			 (unsigned long long)number, suffix);
}

struct file_meta *file_meta_new(uint64_t number, uint64_t size,
				struct slice smallest, struct slice largest)
{
	struct file_meta *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->smallest = malloc(smallest.len ? smallest.len : 1);
	f->largest = malloc(largest.len ? largest.len : 1);
	if (!f->smallest || !f->largest) {
		free(f->smallest);
		free(f->largest);
		free(f);
		return NULL;
	}
	memcpy(f->smallest, smallest.p, smallest.len);
	memcpy(f->largest, largest.p, largest.len);
	f->smallest_len = smallest.len;
	f->largest_len = largest.len;
	f->number = number;
	f->size = size;
	atomic_init(&f->refs, 1);
	atomic_init(&f->obsolete, false);
	return f;
}

void file_meta_ref(struct file_meta *f)
{
	atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
}

void file_meta_unref(struct file_meta *f)
{
	if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (atomic_load_explicit(&f->obsolete, memory_order_acquire) &&
	    f->vset) {
		struct vset *vs = f->vset;
		char path[4096];
		if (vs->cfg.table_cache)
			tcache_evict(vs->cfg.table_cache, f->number);
		file_path(path, sizeof(path), vs->dir, f->number, "sst");
		/* A failure leaves an orphan that the next open removes. */
		vs->cfg.env->ops->remove_file(vs->cfg.env, path);
	}
	free(f->smallest);
	free(f->largest);
	free(f->sketch);
	free(f);
}

bool fm_overlaps(const struct file_meta *f, const struct slice *lo,
		 const struct slice *hi)
{
	struct slice s = fm_smallest(f), l = fm_largest(f);
	if (hi && slice_cmp(ikey_user(s), *hi) > 0)
		return false;
	if (lo) {
		int c = slice_cmp(ikey_user(l), *lo);
		if (c < 0)
			return false;
		if (c == 0 && ikey_kind(l) == IKEY_SENTINEL)
			return false; /* exclusive end at lo */
	}
	return true;
}

void version_ref(struct version *v)
{
	atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
}

void version_unref(struct version *v)
{
	if (!v ||
	    atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (int l = 0; l < LSM_MAX_LEVELS; l++) {
		for (size_t i = 0; i < v->n_files[l]; i++)
			file_meta_unref(v->files[l][i]);
		free(v->files[l]);
	}
	for (size_t i = 0; i < v->n_blobs; i++)
		blob_meta_unref(v->blobs[i]);
	free(v->blobs);
	free(v);
}

struct blob_meta *blob_meta_new(uint64_t number, uint64_t size)
{
	struct blob_meta *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->number = number;
	b->size = size;
	b->has_file = true;
	atomic_init(&b->refs, 1);
	atomic_init(&b->obsolete, false);
	return b;
}

void blob_meta_ref(struct blob_meta *b)
{
	atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void blob_meta_unref(struct blob_meta *b)
{
	if (!b ||
	    atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (atomic_load_explicit(&b->obsolete, memory_order_acquire) &&
	    b->vset && b->has_file) {
		struct vset *vs = b->vset;
		char path[4096];
		if (vs->cfg.table_cache)
			bcache_evict(vs->cfg.table_cache, b->number);
		file_path(path, sizeof(path), vs->dir, b->number, "blob");
		/* A failure leaves an orphan that the next open removes. */
		vs->cfg.env->ops->remove_file(vs->cfg.env, path);
	}
	free(b->smallest);
	free(b->largest);
	free(b);
}

static int set_key(uint8_t **p, size_t *len, struct slice key)
{
	uint8_t *n = malloc(key.len ? key.len : 1);
	if (!n)
		return -ENOMEM;
	if (key.len)
		memcpy(n, key.p, key.len);
	free(*p);
	*p = n;
	*len = key.len;
	return 0;
}

int blob_meta_extend(struct blob_meta *b, struct slice key)
{
	int rc = 0;
	if (!b->has_keys ||
	    slice_cmp(key, slice_make(b->smallest, b->smallest_len)) < 0)
		rc = set_key(&b->smallest, &b->smallest_len, key);
	if (!rc && (!b->has_keys ||
		    slice_cmp(key, slice_make(b->largest, b->largest_len)) > 0))
		rc = set_key(&b->largest, &b->largest_len, key);
	if (!rc)
		b->has_keys = true;
	return rc;
}

struct blob_meta *version_find_blob(const struct version *v, uint64_t number)
{
	size_t lo = 0, hi = v->n_blobs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->blobs[mid]->number < number)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < v->n_blobs && v->blobs[lo]->number == number ? v->blobs[lo]
								 : NULL;
}

/* User-key span of a file, with the sentinel rule for its end. */
static void span_extend(const struct file_meta *f, struct slice *lo,
			struct slice *hi, bool *have)
{
	struct slice s = ikey_user(fm_smallest(f));
	struct slice l = ikey_user(fm_largest(f));
	if (!*have) {
		*lo = s;
		*hi = l;
		*have = true;
		return;
	}
	if (slice_cmp(s, *lo) < 0)
		*lo = s;
	if (slice_cmp(l, *hi) > 0)
		*hi = l;
}

int version_overlapping(const struct version *v, int level,
			const struct slice *lo, const struct slice *hi,
			struct file_meta ***out, size_t *n)
{
	size_t nf = v->n_files[level], cnt = 0;
	struct file_meta **fs = v->files[level];
	struct file_meta **res = malloc((nf ? nf : 1) * sizeof(*res));
	if (!res)
		return -ENOMEM;
	if (level == 0) {
		/* Grow the range until it stops changing: an L0 file that
		 * overlaps an included one must come along, or an older
		 * version could end up below a newer one. */
		struct slice clo, chi;
		bool have_lo = lo != NULL, have_hi = hi != NULL;
		bool *in = calloc(nf ? nf : 1, sizeof(bool));
		bool changed = true;
		if (!in) {
			free(res);
			return -ENOMEM;
		}
		if (lo)
			clo = *lo;
		if (hi)
			chi = *hi;
		while (changed) {
			changed = false;
			for (size_t i = 0; i < nf; i++) {
				if (in[i] ||
				    !fm_overlaps(fs[i], have_lo ? &clo : NULL,
						 have_hi ? &chi : NULL))
					continue;
				in[i] = true;
				changed = true;
				struct slice s = ikey_user(fm_smallest(fs[i]));
				struct slice l = ikey_user(fm_largest(fs[i]));
				if (have_lo && slice_cmp(s, clo) < 0)
					clo = s;
				if (have_hi && slice_cmp(l, chi) > 0)
					chi = l;
			}
		}
		for (size_t i = 0; i < nf; i++)
			if (in[i])
				res[cnt++] = fs[i];
		free(in);
	} else {
		for (size_t i = 0; i < nf; i++)
			if (fm_overlaps(fs[i], lo, hi))
				res[cnt++] = fs[i];
	}
	*out = res;
	*n = cnt;
	return 0;
}

size_t version_find_file(const struct version *v, int level, struct slice ikey)
{
	size_t lo = 0, hi = v->n_files[level];
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ikey_cmp(fm_largest(v->files[level][mid]), ikey) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void version_files_span(struct file_meta **fs, size_t n, struct slice *lo,
			struct slice *hi)
{
	bool have = false;
	for (size_t i = 0; i < n; i++)
		span_extend(fs[i], lo, hi, &have);
}
