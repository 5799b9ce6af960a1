/*
 * sst_writer.c - writes one SST file front to back.
 *
 * Entries arrive sorted; data blocks are cut when their uncompressed size
 * reaches block_size, compressed if that saves >= 1/8, and appended with a
 * trailer (type, checksum). Each data block gets an index entry whose key
 * is a short separator between its last key and the next block's first
 * key, so the index entry can only be written once the next key is known
 * (`has_pending_index`). finish() appends filter, range-deletion, index and
 * properties blocks (all uncompressed) and the 64-byte footer
 * (lsm/FORMAT.md, "SST files").
 *
 * Invariants:
 *  1. Point keys are strictly increasing in ikey_cmp order; range
 *     tombstones likewise among themselves. Violations are -EINVAL and do
 *     not poison the writer.
 *  2. Index key i is >= the last key of block i and < the first key of
 *     block i+1 (separator), or >= the last key of the file (successor).
 *  3. The bloom filter holds one hash per distinct user key of the point
 *     entries (consecutive equal user keys are hashed once).
 *  4. The first I/O or allocation error is kept in `status`; every later
 *     call returns it (the file is then useless; the caller deletes it).
 *
 * Thread safety: a writer is used by one thread at a time.
 */
#include "sst/sst.h"

#include "env/env.h"
#include "sst/block.h"
#include "sst/bloom.h"
#include "sst/compress.h"
#include "sst/sst_format.h"
#include "sst/sst_int.h"
#include "util/coding.h"
#include "util/ikey.h"
#include "util/sketch.h"
#include "util/status.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct sst_writer {
	lsm_env *env;
	char *path;
	struct env_wfile *f;
	struct sst_writer_opts o;
	struct block_builder data, index, rdel;
	uint64_t offset; /* bytes appended so far */
	int status;      /* first fatal error (invariant 4) */
	bool has_pending_index;
	uint64_t pending_off, pending_size;
	uint8_t *last; /* last point key added */
	size_t last_len, last_cap;
	uint8_t *sep; /* separator scratch */
	size_t sep_cap;
	uint64_t *hashes;
	size_t n_hashes, hashes_cap;
	uint8_t *cbuf; /* compression scratch */
	size_t cbuf_cap;
	bool has_seq;
	struct sst_props p; /* accumulating; smallest/rd_* owned here */
};

void sst_writer_opts_init(struct sst_writer_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->block_size = 4096;
	o->restart_interval = 16;
	o->bloom_bits_per_key = 10;
	o->compression = LSM_COMPRESS_NONE;
	o->zstd_level = 3;
}

void sst_props_release(struct sst_props *p)
{
	free(p->smallest);
	free(p->largest);
	free(p->rd_smallest);
	free(p->rd_largest);
	free(p->sketch);
	p->smallest = p->largest = p->rd_smallest = p->rd_largest = NULL;
	p->sketch = NULL;
	p->smallest_len = p->largest_len = 0;
	p->rd_smallest_len = p->rd_largest_len = 0;
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 64;
	while (n < need)
		n *= 2;
	uint8_t *p = realloc(*buf, n);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = n;
	return 0;
}

static int dup_bytes(uint8_t **dst, size_t *dst_len, struct slice s)
{
	uint8_t *p = malloc(s.len ? s.len : 1);
	if (!p)
		return -ENOMEM;
	if (s.len)
		memcpy(p, s.p, s.len);
	free(*dst);
	*dst = p;
	*dst_len = s.len;
	return 0;
}

static int fail(struct sst_writer *w, int err)
{
	if (!w->status)
		w->status = err;
	return w->status;
}

int sstw_open(lsm_env *env, const char *path, const struct sst_writer_opts *o,
	      struct sst_writer **out)
{
	if (o->compression != LSM_COMPRESS_NONE &&
	    o->compression != LSM_COMPRESS_LZ4 &&
	    o->compression != LSM_COMPRESS_ZSTD)
		return lsm_err(-EINVAL, "sst %s: unknown compression %d", path,
			       (int)o->compression);
	if (o->bloom_bits_per_key < 0)
		return lsm_err(-EINVAL, "sst %s: negative bloom bits", path);
	struct sst_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->path = strdup(path);
	w->p.sketch = calloc(1, SKETCH_REGS);
	if (!w->path || !w->p.sketch) {
		free(w->p.sketch);
		free(w->path);
		free(w);
		return -ENOMEM;
	}
	int rc = env_new_wfile(env, path, &w->f);
	if (rc) {
		free(w->p.sketch);
		free(w->path);
		free(w);
		return rc;
	}
	w->env = env;
	w->o = *o;
	if (w->o.block_size == 0)
		w->o.block_size = 4096;
	block_builder_init(&w->data, o->restart_interval);
	block_builder_init(&w->index, 1);
	block_builder_init(&w->rdel, 1);
	w->p.time_lo = o->time_lo;
	w->p.time_hi = o->time_hi;
	w->p.compression = (uint64_t)o->compression;
	w->p.format_version = SST_FORMAT_VERSION;
	*out = w;
	return 0;
}

static int append(struct sst_writer *w, const void *p, size_t len)
{
	int rc = wfile_append(w->f, p, len);
	if (rc)
		return fail(w, rc);
	w->offset += len;
	return 0;
}

/* Appends a block (compressed with `type` if worthwhile) and its trailer;
 * returns its handle (size excludes the trailer). */
static int write_block(struct sst_writer *w, struct slice raw, int type,
		       uint64_t *off, uint64_t *size)
{
	struct slice stored = raw;
	uint8_t t = SST_BLOCK_RAW;
	if (type != SST_BLOCK_RAW) {
		size_t n;
		int rc = sst_compress(type, w->o.zstd_level, raw, &w->cbuf,
				      &w->cbuf_cap, &n);
		if (rc < 0)
			return fail(w, rc);
		if (rc == 1) {
			stored = slice_make(w->cbuf, n);
			t = (uint8_t)type;
		}
	}
	if (stored.len > UINT32_MAX)
		return fail(
			w, lsm_err(-EFBIG, "sst %s: block too large", w->path));
	uint8_t trailer[SST_BLOCK_TRAILER];
	trailer[0] = t;
	put_fixed32(trailer + 1, sst_block_checksum(stored.p, stored.len, t));
	uint64_t start = w->offset;
	int rc = append(w, stored.p, stored.len);
	if (!rc)
		rc = append(w, trailer, sizeof(trailer));
	if (rc)
		return rc;
	*off = start;
	*size = stored.len;
	return 0;
}

static int add_index_entry(struct sst_writer *w, struct slice key)
{
	uint8_t v[20];
	uint8_t *e = put_varint64(v, w->pending_off);
	e = put_varint64(e, w->pending_size);
	int rc = block_builder_add(&w->index, key,
				   slice_make(v, (size_t)(e - v)));
	if (rc)
		return fail(w, rc);
	w->has_pending_index = false;
	return 0;
}

/* A short internal key k with a <= k < b (a < b), into w->sep. */
static struct slice separator(struct sst_writer *w, struct slice a,
			      struct slice b)
{
	struct slice ua = ikey_user(a), ub = ikey_user(b);
	size_t n = ua.len < ub.len ? ua.len : ub.len, i = 0;
	while (i < n && ua.p[i] == ub.p[i])
		i++;
	/* shorten to ua[0..i] + (ua[i] + 1) if that still sorts below ub */
	if (i < n && ua.p[i] < 0xff && ua.p[i] + 1 < ub.p[i] &&
	    i + 1 < ua.len && !grow(&w->sep, &w->sep_cap, i + 1 + 8)) {
		memcpy(w->sep, ua.p, i);
		w->sep[i] = (uint8_t)(ua.p[i] + 1);
		ikey_put_trailer(w->sep + i + 1, IKEY_SEQ_MAX,
				 IKEY_RANGE_DELETE);
		return slice_make(w->sep, i + 1 + 8);
	}
	return a;
}

/* A short internal key >= every key with a's user key prefix... i.e. >= a. */
static struct slice successor(struct sst_writer *w, struct slice a)
{
	struct slice ua = ikey_user(a);
	for (size_t i = 0; i < ua.len; i++) {
		if (ua.p[i] == 0xff)
			continue;
		if (i + 1 >= ua.len || grow(&w->sep, &w->sep_cap, i + 1 + 8))
			break;
		memcpy(w->sep, ua.p, i);
		w->sep[i] = (uint8_t)(ua.p[i] + 1);
		ikey_put_trailer(w->sep + i + 1, IKEY_SEQ_MAX,
				 IKEY_RANGE_DELETE);
		return slice_make(w->sep, i + 1 + 8);
	}
	return a;
}

static int flush_data(struct sst_writer *w)
{
	struct slice raw;
	int rc = block_builder_finish(&w->data, &raw);
	if (rc)
		return fail(w, rc);
	rc = write_block(w, raw, (int)w->o.compression, &w->pending_off,
			 &w->pending_size);
	if (rc)
		return rc;
	w->p.data_bytes += w->pending_size + SST_BLOCK_TRAILER;
	w->has_pending_index = true;
	block_builder_reset(&w->data);
	return 0;
}

static void note_seq(struct sst_writer *w, uint64_t seq)
{
	if (!w->has_seq || seq < w->p.smallest_seq)
		w->p.smallest_seq = seq;
	if (!w->has_seq || seq > w->p.largest_seq)
		w->p.largest_seq = seq;
	w->has_seq = true;
}

/* Keeps a distinct user key's hash for the bloom filter. */
static int push_hash(struct sst_writer *w, uint64_t hash)
{
	if (w->n_hashes == w->hashes_cap) {
		size_t nc = w->hashes_cap ? w->hashes_cap * 2 : 1024;
		uint64_t *h = realloc(w->hashes, nc * sizeof(*h));
		if (!h)
			return -ENOMEM;
		w->hashes = h;
		w->hashes_cap = nc;
	}
	w->hashes[w->n_hashes++] = hash;
	return 0;
}

int sstw_add(struct sst_writer *w, struct slice ikey, struct slice value)
{
	if (w->status)
		return w->status;
	if (ikey.len < IKEY_TRAILER ||
	    (ikey_kind(ikey) != IKEY_PUT && ikey_kind(ikey) != IKEY_DELETE &&
	     ikey_kind(ikey) != IKEY_BLOB))
		return lsm_err(-EINVAL, "sst %s: not a point internal key",
			       w->path);
	struct slice last = slice_make(w->last, w->last_len);
	bool is_first = w->p.num_entries == 0;
	if (!is_first && ikey_cmp(last, ikey) >= 0)
		return lsm_err(-EINVAL, "sst %s: keys out of order", w->path);
	if (w->has_pending_index &&
	    add_index_entry(w, separator(w, last, ikey)))
		return w->status;
	if (is_first || !slice_eq(ikey_user(last), ikey_user(ikey))) {
		uint64_t hash = bloom_hash(ikey_user(ikey));
		sketch_add(w->p.sketch, hash);
		if (w->o.bloom_bits_per_key > 0 && push_hash(w, hash))
			return fail(w, -ENOMEM);
	}
	int rc = block_builder_add(&w->data, ikey, value);
	if (rc || grow(&w->last, &w->last_cap, ikey.len))
		return fail(w, -ENOMEM);
	if (is_first && dup_bytes(&w->p.smallest, &w->p.smallest_len, ikey))
		return fail(w, -ENOMEM);
	memcpy(w->last, ikey.p, ikey.len);
	w->last_len = ikey.len;
	w->p.num_entries++;
	if (ikey_kind(ikey) == IKEY_DELETE)
		w->p.num_deletions++;
	w->p.raw_key_bytes += ikey.len;
	w->p.raw_value_bytes += value.len;
	note_seq(w, ikey_seq(ikey));
	if (block_builder_size(&w->data) >= w->o.block_size)
		return flush_data(w);
	return 0;
}

int sstw_add_range_del(struct sst_writer *w, struct slice start_ikey,
		       struct slice end_ukey)
{
	if (w->status)
		return w->status;
	if (start_ikey.len < IKEY_TRAILER ||
	    ikey_kind(start_ikey) != IKEY_RANGE_DELETE)
		return lsm_err(-EINVAL, "sst %s: not a range-delete key",
			       w->path);
	if (slice_cmp(end_ukey, ikey_user(start_ikey)) <= 0)
		return lsm_err(-EINVAL, "sst %s: empty range tombstone",
			       w->path);
	if (!block_builder_empty(&w->rdel) &&
	    ikey_cmp(block_builder_last_key(&w->rdel), start_ikey) >= 0)
		return lsm_err(-EINVAL,
			       "sst %s: range tombstones out of "
			       "order",
			       w->path);
	int rc = block_builder_add(&w->rdel, start_ikey, end_ukey);
	if (rc)
		return fail(w, rc);
	if (w->p.num_range_deletions == 0 &&
	    dup_bytes(&w->p.rd_smallest, &w->p.rd_smallest_len, start_ikey))
		return fail(w, -ENOMEM);
	if (!w->p.rd_largest ||
	    slice_cmp(end_ukey,
		      slice_make(w->p.rd_largest, w->p.rd_largest_len)) > 0) {
		if (dup_bytes(&w->p.rd_largest, &w->p.rd_largest_len, end_ukey))
			return fail(w, -ENOMEM);
	}
	w->p.num_range_deletions++;
	note_seq(w, ikey_seq(start_ikey));
	return 0;
}

uint64_t sstw_estimated_size(const struct sst_writer *w)
{
	return w->offset + block_builder_size(&w->data) +
	       block_builder_size(&w->index);
}

uint64_t sstw_num_entries(const struct sst_writer *w)
{
	return w->p.num_entries + w->p.num_range_deletions;
}

struct prop {
	const char *name;
	uint8_t num[10];
	struct slice val;
};

static int prop_cmp(const void *a, const void *b)
{
	return strcmp(((const struct prop *)a)->name,
		      ((const struct prop *)b)->name);
}

static void prop_num(struct prop *p, size_t *n, const char *name, uint64_t v)
{
	p[*n].name = name;
	uint8_t *e = put_varint64(p[*n].num, v);
	p[*n].val = slice_make(p[*n].num, (size_t)(e - p[*n].num));
	(*n)++;
}

static void prop_bytes(struct prop *p, size_t *n, const char *name,
		       const uint8_t *b, size_t len)
{
	if (!b)
		return;
	p[*n].name = name;
	p[*n].val = slice_make(b, len);
	(*n)++;
}

/* Writes the properties block (sorted names, lsm/FORMAT.md). */
static int write_props(struct sst_writer *w, uint64_t *off, uint64_t *size)
{
	struct prop pr[24];
	size_t n = 0;
	const struct sst_props *s = &w->p;
	prop_num(pr, &n, SST_PROP_COMPRESSION, s->compression);
	prop_num(pr, &n, SST_PROP_DATA_BYTES, s->data_bytes);
	prop_num(pr, &n, SST_PROP_FILTER_BYTES, s->filter_bytes);
	prop_num(pr, &n, SST_PROP_FORMAT_VERSION, s->format_version);
	prop_num(pr, &n, SST_PROP_INDEX_BYTES, s->index_bytes);
	prop_bytes(pr, &n, SST_PROP_LARGEST_KEY, s->largest, s->largest_len);
	prop_num(pr, &n, SST_PROP_LARGEST_SEQ, s->largest_seq);
	prop_num(pr, &n, SST_PROP_NUM_DELETIONS, s->num_deletions);
	prop_num(pr, &n, SST_PROP_NUM_ENTRIES, s->num_entries);
	prop_num(pr, &n, SST_PROP_NUM_RANGE_DELS, s->num_range_deletions);
	prop_num(pr, &n, SST_PROP_RAW_KEY_BYTES, s->raw_key_bytes);
	prop_num(pr, &n, SST_PROP_RAW_VALUE_BYTES, s->raw_value_bytes);
	prop_bytes(pr, &n, SST_PROP_RD_LARGEST, s->rd_largest,
		   s->rd_largest_len);
	prop_bytes(pr, &n, SST_PROP_RD_SMALLEST, s->rd_smallest,
		   s->rd_smallest_len);
	prop_bytes(pr, &n, SST_PROP_SMALLEST_KEY, s->smallest, s->smallest_len);
	prop_num(pr, &n, SST_PROP_SMALLEST_SEQ, s->smallest_seq);
	prop_num(pr, &n, SST_PROP_TIME_HI, s->time_hi);
	prop_num(pr, &n, SST_PROP_TIME_LO, s->time_lo);
	qsort(pr, n, sizeof(pr[0]), prop_cmp);

	struct block_builder b;
	struct slice raw;
	int rc = 0;
	block_builder_init(&b, 1);
	for (size_t i = 0; i < n && !rc; i++)
		rc = block_builder_add(
			&b, slice_make(pr[i].name, strlen(pr[i].name)),
			pr[i].val);
	if (!rc)
		rc = block_builder_finish(&b, &raw);
	if (rc)
		rc = fail(w, rc);
	else
		rc = write_block(w, raw, SST_BLOCK_RAW, off, size);
	block_builder_release(&b);
	return rc;
}

static void put_handle(uint8_t *p, uint64_t off, uint64_t size)
{
	put_fixed64(p, off);
	put_fixed32(p + 8, (uint32_t)size);
}

static int write_meta(struct sst_writer *w)
{
	uint64_t f_off = 0, f_size = 0, r_off = 0, r_size = 0;
	uint64_t i_off, i_size, p_off, p_size;
	struct slice raw;
	int rc;

	if (!block_builder_empty(&w->data) && (rc = flush_data(w)))
		return rc;
	if (w->has_pending_index &&
	    (rc = add_index_entry(
		     w, successor(w, slice_make(w->last, w->last_len)))))
		return rc;
	if (w->o.bloom_bits_per_key > 0 && w->n_hashes > 0) {
		size_t len =
			bloom_filter_size(w->n_hashes, w->o.bloom_bits_per_key);
		uint8_t *fb = malloc(len);
		if (!fb)
			return fail(w, -ENOMEM);
		bloom_build(w->hashes, w->n_hashes, w->o.bloom_bits_per_key,
			    fb);
		rc = write_block(w, slice_make(fb, len), SST_BLOCK_RAW, &f_off,
				 &f_size);
		free(fb);
		if (rc)
			return rc;
		w->p.filter_bytes = f_size + SST_BLOCK_TRAILER;
	}
	if (!block_builder_empty(&w->rdel)) {
		if ((rc = block_builder_finish(&w->rdel, &raw)))
			return fail(w, rc);
		if ((rc = write_block(w, raw, SST_BLOCK_RAW, &r_off, &r_size)))
			return rc;
	}
	if ((rc = block_builder_finish(&w->index, &raw)))
		return fail(w, rc);
	if ((rc = write_block(w, raw, SST_BLOCK_RAW, &i_off, &i_size)))
		return rc;
	w->p.index_bytes = i_size + SST_BLOCK_TRAILER;
	if (w->p.num_entries && dup_bytes(&w->p.largest, &w->p.largest_len,
					  slice_make(w->last, w->last_len)))
		return fail(w, -ENOMEM);
	if ((rc = write_props(w, &p_off, &p_size)))
		return rc;

	/* footer: 4 handles, version, features, magic (sst_format.h) */
	uint8_t ft[SST_FOOTER_SIZE];
	put_handle(ft, f_off, f_size);
	put_handle(ft + 12, r_off, r_size);
	put_handle(ft + 24, i_off, i_size);
	put_handle(ft + 36, p_off, p_size);
	put_fixed32(ft + 48, SST_FORMAT_VERSION);
	put_fixed32(ft + 52, SST_FEATURES_KNOWN);
	put_fixed64(ft + 56, SST_MAGIC);
	if ((rc = append(w, ft, sizeof(ft))))
		return rc;
	if ((rc = wfile_sync(w->f)))
		return fail(w, rc);
	w->p.file_size = w->offset;
	return 0;
}

static void writer_free(struct sst_writer *w)
{
	block_builder_release(&w->data);
	block_builder_release(&w->index);
	block_builder_release(&w->rdel);
	sst_props_release(&w->p);
	free(w->last);
	free(w->sep);
	free(w->hashes);
	free(w->cbuf);
	free(w->path);
	free(w);
}

int sstw_finish(struct sst_writer *w, struct sst_props *props)
{
	int rc = w->status ? w->status : write_meta(w);
	int crc = wfile_close(w->f);
	if (!rc && crc)
		rc = crc;
	if (!rc && props) {
		*props = w->p;
		/* ownership of the key copies moves to the caller */
		w->p.smallest = w->p.largest = NULL;
		w->p.rd_smallest = w->p.rd_largest = NULL;
		w->p.sketch = NULL;
	}
	writer_free(w);
	return rc;
}

void sstw_abandon(struct sst_writer *w)
{
	if (!w)
		return;
	wfile_close(w->f);
	writer_free(w);
}
