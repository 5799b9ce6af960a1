/*
 * edit.c - version edits and their MANIFEST encoding.
 *
 * A MANIFEST record (lsm/FORMAT.md "MANIFEST") is a sequence of tagged
 * fields: varint tag, then the field. Tags are written to disk and never
 * renumbered. A reader refuses unknown tags with LSM_E_FORMAT: a newer
 * lsm may have recorded something this one cannot honour.
 *
 * Invariants:
 *  1. Every field is bounds-checked on decode; a bad record is reported
 *     as corruption naming the manifest and the record's offset.
 *  2. An edit owns one reference to each added file_meta and blob_meta.
 */
#include "version/version.h"

#include "util/coding.h"
#include "util/ikey.h"
#include "util/sketch.h"
#include "util/status.h"

#include <stdlib.h>
#include <string.h>

enum edit_tag {
	TAG_FORMAT = 1,
	TAG_LOG_NUMBER = 2,
	TAG_NEXT_FILE = 3,
	TAG_LAST_SEQ = 4,
	TAG_DELETED_FILE = 5,
	TAG_NEW_FILE = 6,
	TAG_SNAPSHOT = 7,        /* id, seq, created_ns, name */
	TAG_SNAPSHOT_DELETE = 8, /* id */
	TAG_NEXT_SNAPSHOT_ID = 9,
	TAG_COMPACTION_STYLE = 10, /* lsm_compaction_style */
	TAG_BLOB_FILE = 11,    /* number, size, linked count and bytes, keys */
	TAG_BLOB_GARBAGE = 12, /* number, count, bytes */
	TAG_FILE_SKETCH = 13,  /* number, sketch of a file added before it */
};

/* The highest lsm_compaction_style this code knows. */
#define MAX_STYLE 2

void edit_init(struct version_edit *e)
{
	memset(e, 0, sizeof(*e));
}

void edit_release(struct version_edit *e)
{
	for (size_t i = 0; i < e->n_added; i++)
		file_meta_unref(e->added[i].f);
	free(e->added);
	free(e->deleted);
	for (size_t i = 0; i < e->n_snaps_added; i++)
		free(e->snaps_added[i].name);
	free(e->snaps_added);
	free(e->snaps_deleted);
	for (size_t i = 0; i < e->n_blobs_added; i++)
		blob_meta_unref(e->blobs_added[i].b);
	free(e->blobs_added);
	free(e->blob_garbage);
	edit_init(e);
}

static int grow(struct edit_file **arr, size_t n, size_t *cap)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 8;
	struct edit_file *a = realloc(*arr, ncap * sizeof(*a));
	if (!a)
		return -ENOMEM;
	*arr = a;
	*cap = ncap;
	return 0;
}

int edit_add_file(struct version_edit *e, int level, struct file_meta *f)
{
	int rc = grow(&e->added, e->n_added, &e->added_cap);
	if (rc)
		return rc;
	e->added[e->n_added].level = level;
	e->added[e->n_added].f = f;
	e->added[e->n_added].number = f->number;
	e->n_added++;
	return 0;
}

int edit_delete_file(struct version_edit *e, int level, uint64_t number)
{
	int rc = grow(&e->deleted, e->n_deleted, &e->deleted_cap);
	if (rc)
		return rc;
	e->deleted[e->n_deleted].level = level;
	e->deleted[e->n_deleted].f = NULL;
	e->deleted[e->n_deleted].number = number;
	e->n_deleted++;
	return 0;
}

int edit_add_blob(struct version_edit *e, struct blob_meta *b)
{
	struct edit_blob *a =
		realloc(e->blobs_added, (e->n_blobs_added + 1) * sizeof(*a));
	if (!a)
		return -ENOMEM;
	e->blobs_added = a;
	a[e->n_blobs_added++] = (struct edit_blob){
		b, b->number, b->linked_count, b->linked_bytes};
	return 0;
}

int edit_add_blob_garbage(struct version_edit *e, uint64_t number,
			  uint64_t count, uint64_t bytes)
{
	struct edit_blob *a;
	for (size_t i = 0; i < e->n_blob_garbage; i++)
		if (e->blob_garbage[i].number == number) {
			e->blob_garbage[i].count += count;
			e->blob_garbage[i].bytes += bytes;
			return 0;
		}
	a = realloc(e->blob_garbage, (e->n_blob_garbage + 1) * sizeof(*a));
	if (!a)
		return -ENOMEM;
	e->blob_garbage = a;
	a[e->n_blob_garbage++] = (struct edit_blob){NULL, number, count, bytes};
	return 0;
}

int edit_add_snap(struct version_edit *e, const struct named_snap *s)
{
	struct named_snap *a =
		realloc(e->snaps_added, (e->n_snaps_added + 1) * sizeof(*a));
	if (!a)
		return -ENOMEM;
	e->snaps_added = a;
	a[e->n_snaps_added] = *s;
	a[e->n_snaps_added].name = strdup(s->name);
	if (!a[e->n_snaps_added].name)
		return -ENOMEM;
	e->n_snaps_added++;
	return 0;
}

int edit_delete_snap(struct version_edit *e, uint64_t id)
{
	uint64_t *a = realloc(e->snaps_deleted,
			      (e->n_snaps_deleted + 1) * sizeof(*a));
	if (!a)
		return -ENOMEM;
	e->snaps_deleted = a;
	a[e->n_snaps_deleted++] = id;
	return 0;
}

/* A growable output buffer. */
struct obuf {
	uint8_t *p;
	size_t len, cap;
	int err;
};

static void ob_reserve(struct obuf *b, size_t n)
{
	if (b->err || b->len + n <= b->cap)
		return;
	size_t ncap = b->cap ? b->cap : 256;
	while (ncap < b->len + n)
		ncap *= 2;
	uint8_t *np = realloc(b->p, ncap);
	if (!np) {
		b->err = -ENOMEM;
		return;
	}
	b->p = np;
	b->cap = ncap;
}

static void ob_varint(struct obuf *b, uint64_t v)
{
	ob_reserve(b, 10);
	if (!b->err)
		b->len = (size_t)(put_varint64(b->p + b->len, v) - b->p);
}

static void ob_bytes(struct obuf *b, const uint8_t *p, size_t n)
{
	ob_varint(b, n);
	ob_reserve(b, n);
	if (!b->err && n) {
		memcpy(b->p + b->len, p, n);
		b->len += n;
	}
}

/*
 * New-file field layout (after TAG_NEW_FILE):
 *   level, number, size, smallest (len+bytes), largest (len+bytes),
 *   smallest_seq, largest_seq, num_entries, num_deletions,
 *   num_range_dels, time_lo, time_hi      -- all varints
 * and, when the file has a sketch, TAG_FILE_SKETCH: number, sketch
 * (len+bytes), later in the same record.
 */
int edit_encode(const struct version_edit *e, uint8_t **buf, size_t *len)
{
	struct obuf b = {0};
	if (e->has_format) {
		ob_varint(&b, TAG_FORMAT);
		ob_varint(&b, e->format);
	}
	if (e->has_log_number) {
		ob_varint(&b, TAG_LOG_NUMBER);
		ob_varint(&b, e->log_number);
	}
	if (e->has_next_file) {
		ob_varint(&b, TAG_NEXT_FILE);
		ob_varint(&b, e->next_file);
	}
	if (e->has_last_seq) {
		ob_varint(&b, TAG_LAST_SEQ);
		ob_varint(&b, e->last_seq);
	}
	for (size_t i = 0; i < e->n_deleted; i++) {
		ob_varint(&b, TAG_DELETED_FILE);
		ob_varint(&b, (uint64_t)e->deleted[i].level);
		ob_varint(&b, e->deleted[i].number);
	}
	for (size_t i = 0; i < e->n_added; i++) {
		const struct file_meta *f = e->added[i].f;
		ob_varint(&b, TAG_NEW_FILE);
		ob_varint(&b, (uint64_t)e->added[i].level);
		ob_varint(&b, f->number);
		ob_varint(&b, f->size);
		ob_bytes(&b, f->smallest, f->smallest_len);
		ob_bytes(&b, f->largest, f->largest_len);
		ob_varint(&b, f->smallest_seq);
		ob_varint(&b, f->largest_seq);
		ob_varint(&b, f->num_entries);
		ob_varint(&b, f->num_deletions);
		ob_varint(&b, f->num_range_dels);
		ob_varint(&b, f->time_lo);
		ob_varint(&b, f->time_hi);
		if (f->sketch) {
			ob_varint(&b, TAG_FILE_SKETCH);
			ob_varint(&b, f->number);
			ob_bytes(&b, f->sketch, SKETCH_REGS);
		}
	}
	for (size_t i = 0; i < e->n_blobs_added; i++) {
		const struct blob_meta *bm = e->blobs_added[i].b;
		ob_varint(&b, TAG_BLOB_FILE);
		ob_varint(&b, bm->number);
		ob_varint(&b, bm->size);
		ob_varint(&b, e->blobs_added[i].count);
		ob_varint(&b, e->blobs_added[i].bytes);
		ob_bytes(&b, bm->smallest, bm->has_keys ? bm->smallest_len : 0);
		ob_bytes(&b, bm->largest, bm->has_keys ? bm->largest_len : 0);
	}
	for (size_t i = 0; i < e->n_blob_garbage; i++) {
		ob_varint(&b, TAG_BLOB_GARBAGE);
		ob_varint(&b, e->blob_garbage[i].number);
		ob_varint(&b, e->blob_garbage[i].count);
		ob_varint(&b, e->blob_garbage[i].bytes);
	}
	if (e->has_style) {
		ob_varint(&b, TAG_COMPACTION_STYLE);
		ob_varint(&b, e->style);
	}
	if (e->has_next_snap_id) {
		ob_varint(&b, TAG_NEXT_SNAPSHOT_ID);
		ob_varint(&b, e->next_snap_id);
	}
	for (size_t i = 0; i < e->n_snaps_deleted; i++) {
		ob_varint(&b, TAG_SNAPSHOT_DELETE);
		ob_varint(&b, e->snaps_deleted[i]);
	}
	for (size_t i = 0; i < e->n_snaps_added; i++) {
		const struct named_snap *ns = &e->snaps_added[i];
		ob_varint(&b, TAG_SNAPSHOT);
		ob_varint(&b, ns->id);
		ob_varint(&b, ns->seq);
		ob_varint(&b, (uint64_t)ns->created_ns);
		ob_bytes(&b, (const uint8_t *)ns->name, strlen(ns->name));
	}
	if (b.err) {
		free(b.p);
		return b.err;
	}
	*buf = b.p;
	*len = b.len;
	return 0;
}

struct dec {
	const uint8_t *p, *end, *start;
	const char *path;
	uint64_t off;
};

static int dec_varint(struct dec *d, uint64_t *v, const char *what)
{
	const uint8_t *q = get_varint64(d->p, d->end, v);
	if (!q)
		return LSM_CORRUPT("%s: record at offset %llu: bad %s at byte "
				   "%zu",
				   d->path, (unsigned long long)d->off, what,
				   (size_t)(d->p - d->start));
	d->p = q;
	return 0;
}

static int dec_bytes(struct dec *d, struct slice *s, const char *what)
{
	uint64_t n = 0;
	int rc = dec_varint(d, &n, what);
	if (rc)
		return rc;
	if (n > (uint64_t)(d->end - d->p))
		return LSM_CORRUPT("%s: record at offset %llu: %s runs past "
				   "the record",
				   d->path, (unsigned long long)d->off, what);
	*s = slice_make(d->p, (size_t)n);
	d->p += n;
	return 0;
}

static int dec_level(struct dec *d, int *level)
{
	uint64_t v = 0;
	int rc = dec_varint(d, &v, "level");
	if (rc)
		return rc;
	if (v >= LSM_MAX_LEVELS)
		return LSM_CORRUPT("%s: record at offset %llu: level %llu out "
				   "of range",
				   d->path, (unsigned long long)d->off,
				   (unsigned long long)v);
	*level = (int)v;
	return 0;
}

static int dec_new_file(struct dec *d, struct version_edit *e)
{
	int level = 0, rc;
	uint64_t number = 0, size = 0, v[7] = {0};
	struct slice sm, lg;
	static const char *const names[7] = {
		"smallest_seq",   "largest_seq", "num_entries", "num_deletions",
		"num_range_dels", "time_lo",     "time_hi"};

	if ((rc = dec_level(d, &level)) ||
	    (rc = dec_varint(d, &number, "file number")) ||
	    (rc = dec_varint(d, &size, "file size")) ||
	    (rc = dec_bytes(d, &sm, "smallest key")) ||
	    (rc = dec_bytes(d, &lg, "largest key")))
		return rc;
	for (int i = 0; i < 7; i++)
		if ((rc = dec_varint(d, &v[i], names[i])))
			return rc;
	if (!ikey_valid(sm) || !ikey_valid(lg) || ikey_cmp(sm, lg) > 0)
		return LSM_CORRUPT("%s: record at offset %llu: file %llu has "
				   "an invalid key range",
				   d->path, (unsigned long long)d->off,
				   (unsigned long long)number);
	struct file_meta *f = file_meta_new(number, size, sm, lg);
	if (!f)
		return -ENOMEM;
	f->smallest_seq = v[0];
	f->largest_seq = v[1];
	f->num_entries = v[2];
	f->num_deletions = v[3];
	f->num_range_dels = v[4];
	f->time_lo = v[5];
	f->time_hi = v[6];
	rc = edit_add_file(e, level, f);
	if (rc)
		file_meta_unref(f);
	return rc;
}

/* A sketch belongs to a file the same record added before it. */
static int dec_sketch(struct dec *d, struct version_edit *e)
{
	uint64_t number = 0;
	struct slice sk;
	struct file_meta *f = NULL;
	int rc;

	if ((rc = dec_varint(d, &number, "sketch file number")) ||
	    (rc = dec_bytes(d, &sk, "sketch")))
		return rc;
	for (size_t i = e->n_added; i-- > 0;)
		if (e->added[i].f && e->added[i].f->number == number) {
			f = e->added[i].f;
			break;
		}
	if (!f || f->sketch || !sketch_valid(sk.p, sk.len))
		return LSM_CORRUPT("%s: record at offset %llu: %s sketch for "
				   "file %llu",
				   d->path, (unsigned long long)d->off,
				   !f          ? "a stray"
				   : f->sketch ? "a second"
					       : "an invalid",
				   (unsigned long long)number);
	f->sketch = malloc(SKETCH_REGS);
	if (!f->sketch)
		return -ENOMEM;
	memcpy(f->sketch, sk.p, SKETCH_REGS);
	return 0;
}

static int dec_blob(struct dec *d, struct version_edit *e, bool garbage)
{
	uint64_t number = 0, size = 0, count = 0, bytes = 0;
	struct slice sm = {NULL, 0}, lg = {NULL, 0};
	int rc;
	if ((rc = dec_varint(d, &number, "blob file number")) ||
	    (!garbage && (rc = dec_varint(d, &size, "blob file size"))) ||
	    (rc = dec_varint(d, &count, "blob count")) ||
	    (rc = dec_varint(d, &bytes, "blob bytes")) ||
	    (!garbage && (rc = dec_bytes(d, &sm, "blob smallest key"))) ||
	    (!garbage && (rc = dec_bytes(d, &lg, "blob largest key"))))
		return rc;
	if (number == 0 || (!garbage && bytes > size) ||
	    (!garbage && count && slice_cmp(sm, lg) > 0))
		return LSM_CORRUPT("%s: record at offset %llu: blob file %llu "
				   "has impossible counts",
				   d->path, (unsigned long long)d->off,
				   (unsigned long long)number);
	if (garbage)
		return edit_add_blob_garbage(e, number, count, bytes);
	struct blob_meta *b = blob_meta_new(number, size);
	if (!b)
		return -ENOMEM;
	b->linked_count = count;
	b->linked_bytes = bytes;
	rc = count ? blob_meta_extend(b, sm) : 0;
	if (!rc && count)
		rc = blob_meta_extend(b, lg);
	if (!rc)
		rc = edit_add_blob(e, b);
	if (rc)
		blob_meta_unref(b);
	return rc;
}

static int dec_snapshot(struct dec *d, struct version_edit *e)
{
	struct named_snap ns = {0};
	uint64_t created = 0;
	struct slice name = {0};
	char buf[LSM_SNAPSHOT_NAME_MAX + 1];
	int rc;

	if ((rc = dec_varint(d, &ns.id, "snapshot id")) ||
	    (rc = dec_varint(d, &ns.seq, "snapshot sequence")) ||
	    (rc = dec_varint(d, &created, "snapshot time")) ||
	    (rc = dec_bytes(d, &name, "snapshot name")))
		return rc;
	if (name.len == 0 || name.len > LSM_SNAPSHOT_NAME_MAX ||
	    memchr(name.p, 0, name.len) || ns.id == 0)
		return LSM_CORRUPT("%s: record at offset %llu: snapshot %llu "
				   "has a bad name or id",
				   d->path, (unsigned long long)d->off,
				   (unsigned long long)ns.id);
	memcpy(buf, name.p, name.len);
	buf[name.len] = 0;
	ns.name = buf;
	ns.created_ns = (int64_t)created;
	return edit_add_snap(e, &ns);
}

int edit_decode(struct version_edit *e, const uint8_t *p, size_t len,
		const char *path, uint64_t off)
{
	struct dec d;
	int rc = 0;

	edit_init(e);
	if (len == 0)
		return 0; /* an empty edit (and p may be NULL) */
	d = (struct dec){p, p + len, p, path, off};
	while (d.p < d.end && rc == 0) {
		uint64_t tag = 0, v = 0;
		int level = 0;
		if ((rc = dec_varint(&d, &tag, "tag")))
			break;
		switch (tag) {
		case TAG_FORMAT:
			rc = dec_varint(&d, &v, "format");
			if (rc)
				break;
			if (v != LSM_STORE_FORMAT) {
				rc = lsm_err(LSM_E_FORMAT,
					     "%s: store format %llu; this lsm "
					     "reads format %d",
					     path, (unsigned long long)v,
					     LSM_STORE_FORMAT);
				break;
			}
			e->has_format = true;
			e->format = (uint32_t)v;
			break;
		case TAG_LOG_NUMBER:
			rc = dec_varint(&d, &e->log_number, "log number");
			e->has_log_number = true;
			break;
		case TAG_NEXT_FILE:
			rc = dec_varint(&d, &e->next_file, "next file");
			e->has_next_file = true;
			break;
		case TAG_LAST_SEQ:
			rc = dec_varint(&d, &e->last_seq, "last sequence");
			e->has_last_seq = true;
			break;
		case TAG_DELETED_FILE:
			rc = dec_level(&d, &level);
			if (!rc)
				rc = dec_varint(&d, &v, "deleted file");
			if (!rc)
				rc = edit_delete_file(e, level, v);
			break;
		case TAG_NEW_FILE:
			rc = dec_new_file(&d, e);
			break;
		case TAG_FILE_SKETCH:
			rc = dec_sketch(&d, e);
			break;
		case TAG_SNAPSHOT:
			rc = dec_snapshot(&d, e);
			break;
		case TAG_BLOB_FILE:
		case TAG_BLOB_GARBAGE:
			rc = dec_blob(&d, e, tag == TAG_BLOB_GARBAGE);
			break;
		case TAG_SNAPSHOT_DELETE:
			rc = dec_varint(&d, &v, "deleted snapshot");
			if (!rc)
				rc = edit_delete_snap(e, v);
			break;
		case TAG_NEXT_SNAPSHOT_ID:
			rc = dec_varint(&d, &e->next_snap_id,
					"next snapshot id");
			e->has_next_snap_id = true;
			break;
		case TAG_COMPACTION_STYLE:
			rc = dec_varint(&d, &v, "compaction style");
			if (rc)
				break;
			if (v > MAX_STYLE) {
				rc = lsm_err(
					LSM_E_FORMAT,
					"%s: record at offset %llu: unknown "
					"compaction style %llu (written by "
					"a newer lsm?)",
					path, (unsigned long long)off,
					(unsigned long long)v);
				break;
			}
			e->has_style = true;
			e->style = (uint32_t)v;
			break;
		default:
			rc = lsm_err(LSM_E_FORMAT,
				     "%s: record at offset %llu: unknown field "
				     "%llu (written by a newer lsm?)",
				     path, (unsigned long long)off,
				     (unsigned long long)tag);
		}
	}
	if (rc)
		edit_release(e);
	return rc;
}
