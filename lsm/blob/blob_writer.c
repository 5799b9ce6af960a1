/*
 * blob_writer.c - appends records to a new blob file.
 *
 * A record is handed to the env as up to four appends (checksum and
 * varints, key, value checksum, value) straight from the caller's buffers:
 * the env's write buffer joins the small ones, and a large value is never
 * copied into a record-sized buffer. The header checksum is computed with
 * XXH3's streaming interface over the varints, the key and the value
 * checksum, which equals lsm_checksum32 over those bytes laid out
 * contiguously (the spec's definition).
 *
 * Invariants:
 *  1. `size` is the number of bytes appended (header included) and the
 *     offset where the next record starts, as long as `err` is 0.
 *  2. After the first failed append, flush or sync, `err` holds that error
 *     and every later add/flush/sync/close returns it: a record appended
 *     after a partial one would sit behind a hole, and readers stop at the
 *     first bad record.
 *  3. A reference handed out by blobw_add names bytes that are in the
 *     file (or the env's write buffer) and are never rewritten.
 *  4. The file's space is reserved (allocated, zeros) ahead of the records
 *     in BLOB_RESERVE_STEP steps, as the WALs' is: appends then go through
 *     the env's mapping of reserved space, and a sync changes no file size
 *     (a plain data flush). A synced close cuts the zeros off; readers
 *     take a zero tail as a clean end in any case.
 *
 * Thread safety: none; the caller serializes calls on one writer.
 */
#include "blob/blob_int.h"
#include "util/coding.h"
#include "util/hash.h"
#include "util/status.h"

#include <stdlib.h>
#include <string.h>

struct blob_writer {
	struct env_wfile *f;
	char *path;
	uint64_t number;
	uint64_t size;     /* bytes appended, header included */
	uint64_t n_recs;   /* records appended */
	uint64_t reserved; /* file size reserved so far */
	int err;           /* first error, or 0 */
};

int blobw_open(lsm_env *env, const char *dir, uint64_t number,
	       struct blob_writer **out)
{
	uint8_t hdr[BLOB_HEADER_LEN];
	struct blob_writer *w = calloc(1, sizeof(*w));
	int rc;

	if (!w || !(w->path = blob_path_dup(dir, number))) {
		free(w);
		return lsm_err(-ENOMEM, "open blob file %06llu: out of memory",
			       (unsigned long long)number);
	}
	w->number = number;
	rc = env_new_wfile(env, w->path, &w->f);
	if (rc < 0)
		goto out_free;
	blob_header_encode(hdr, number);
	rc = wfile_append(w->f, hdr, sizeof(hdr));
	if (rc < 0)
		goto out_close;
	w->size = BLOB_HEADER_LEN;
	*out = w;
	return 0;

out_close:
	wfile_close(w->f);
out_free:
	free(w->path);
	free(w);
	return rc;
}

static int poison(struct blob_writer *w, int rc)
{
	if (!w->err)
		w->err = rc;
	return w->err;
}

int blobw_add(struct blob_writer *w, struct slice key, struct slice value,
	      struct blob_ref *ref)
{
	uint8_t head[BLOB_REC_MAX_HEAD], vsum[4], *p;
	uint32_t value_sum;
	uint64_t value_off;
	size_t head_len;
	XXH3_state_t st;
	int rc;

	if (w->err)
		return w->err;
	if (key.len > BLOB_MAX_KEY || value.len > BLOB_MAX_VALUE)
		return lsm_err(-EINVAL,
			       "blob file %s: record with a %zu-byte key and "
			       "a %zu-byte value exceeds the limits (%u, %u)",
			       w->path, key.len, value.len, BLOB_MAX_KEY,
			       BLOB_MAX_VALUE);
	/* [u32 header check][varint32 key_len][varint32 value_len][key]
	 * [u32 value check][value]: lsm/FORMAT.md "Blob files" */
	p = put_varint32(head + 4, (uint32_t)key.len);
	p = put_varint32(p, (uint32_t)value.len);
	head_len = (size_t)(p - head);
	value_sum = lsm_checksum32(value.len ? value.p : vsum, value.len);
	put_fixed32(vsum, value_sum);
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, head + 4, head_len - 4);
	if (key.len)
		XXH3_64bits_update(&st, key.p, key.len);
	XXH3_64bits_update(&st, vsum, sizeof(vsum));
	put_fixed32(head, (uint32_t)XXH3_64bits_digest(&st));

	uint64_t need = w->size + head_len + key.len + sizeof(vsum) + value.len;
	if (need > w->reserved) {
		uint64_t want = (need + BLOB_RESERVE_STEP - 1) /
				BLOB_RESERVE_STEP * BLOB_RESERVE_STEP;
		/* Without it the appends are plain writes: no error. */
		if (wfile_reserve(w->f, want) == 0)
			w->reserved = want;
	}
	rc = wfile_append(w->f, head, head_len);
	if (rc == 0 && key.len)
		rc = wfile_append(w->f, key.p, key.len);
	if (rc == 0)
		rc = wfile_append(w->f, vsum, sizeof(vsum));
	if (rc == 0 && value.len)
		rc = wfile_append(w->f, value.p, value.len);
	if (rc < 0)
		return poison(w, rc);
	value_off = w->size + head_len + key.len + sizeof(vsum);
	w->size = value_off + value.len;
	w->n_recs++;
	ref->number = w->number;
	ref->offset = value_off;
	ref->len = (uint32_t)value.len;
	ref->checksum = value_sum;
	return 0;
}

int blobw_flush(struct blob_writer *w)
{
	int rc;
	if (w->err)
		return w->err;
	rc = wfile_flush(w->f);
	return rc < 0 ? poison(w, rc) : 0;
}

int blobw_sync(struct blob_writer *w)
{
	int rc;
	if (w->err)
		return w->err;
	rc = wfile_sync(w->f);
	return rc < 0 ? poison(w, rc) : 0;
}

int blobw_sync_with(struct blob_writer *w, struct env_wfile *other,
		    int *other_rc)
{
	int rc;
	*other_rc = 0;
	if (w->err)
		return w->err;
	rc = wfile_sync_pair(w->f, other, other_rc);
	return rc < 0 ? poison(w, rc) : 0;
}

uint64_t blobw_size(const struct blob_writer *w)
{
	return w->size;
}

uint64_t blobw_count(const struct blob_writer *w)
{
	return w->n_recs;
}

uint64_t blobw_number(const struct blob_writer *w)
{
	return w->number;
}

int blobw_close(struct blob_writer *w, bool sync)
{
	int rc = w->err, crc;
	if (rc == 0 && sync)
		rc = w->reserved ? wfile_trim(w->f) : wfile_sync(w->f);
	crc = wfile_close(w->f);
	if (rc == 0)
		rc = crc;
	free(w->path);
	free(w);
	return rc;
}
