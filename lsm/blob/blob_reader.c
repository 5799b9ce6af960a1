/*
 * blob_reader.c - reads values out of blob files, and scans whole files.
 *
 * The reader serves point reads named by references: one positional read
 * of exactly the value's bytes, checked against the checksum the
 * reference carries. It never bounds a read by the size seen at open,
 * because the file of the active memtable keeps growing while it is read.
 *
 * The scanner walks a file from the end of its header, record by record,
 * through a buffer refilled 1 MiB at a time. Each record's header checksum
 * is verified before its value length is believed, and its value checksum
 * before fn sees it. A value too big for the buffer is checksummed in
 * pieces (blob_scan) or made contiguous in a grown buffer
 * (blob_scan_values). The first record that fails ends the scan: the rest
 * of the file is a clean end if it is all zeros (preallocated space),
 * otherwise a torn or damaged tail, which the scan reports (1) and leaves
 * to its caller to judge.
 *
 * Invariants:
 *  1. The scan buffer holds file bytes [buf_off, buf_off + buf_len) and
 *     buf_off <= pos (the record being parsed).
 *  2. The scan reads no byte at or past the size the file had when the
 *     scan opened it.
 *  3. fn is called only for records whose header checksum and value
 *     checksum both match, in file order, with offsets that are exact.
 *
 * Thread safety: a blob_reader is immutable after open; blobr_read may run
 * in any number of threads at once (rfile_read is positional). A scan uses
 * only its own state.
 */
#include "blob/blob_int.h"
#include "util/coding.h"
#include "util/hash.h"
#include "util/status.h"

#include <stdlib.h>
#include <string.h>

#define BLOB_SCAN_CHUNK ((size_t)1 << 20)

struct blob_reader {
	struct env_rfile *f;
	char *path;
	uint64_t number;
};

/* Opens path and checks its header. */
static int open_checked(lsm_env *env, const char *path, uint64_t number,
			struct env_rfile **out)
{
	uint8_t hdr[BLOB_HEADER_LEN];
	struct env_rfile *f;
	size_t n = 0;
	int rc = env_new_rfile(env, path, &f);
	if (rc < 0)
		return rc;
	rc = rfile_read(f, 0, sizeof(hdr), hdr, &n);
	if (rc == 0)
		rc = blob_header_check(hdr, n, path, number);
	if (rc < 0) {
		rfile_close(f);
		return rc;
	}
	*out = f;
	return 0;
}

int blobr_open(lsm_env *env, const char *dir, uint64_t number,
	       struct blob_reader **out)
{
	struct blob_reader *r = calloc(1, sizeof(*r));
	int rc;
	if (!r || !(r->path = blob_path_dup(dir, number))) {
		free(r);
		return lsm_err(-ENOMEM, "open blob file %06llu: out of memory",
			       (unsigned long long)number);
	}
	r->number = number;
	rc = open_checked(env, r->path, number, &r->f);
	if (rc < 0) {
		free(r->path);
		free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void blobr_close(struct blob_reader *r)
{
	if (!r)
		return;
	rfile_close(r->f);
	free(r->path);
	free(r);
}

uint64_t blobr_number(const struct blob_reader *r)
{
	return r->number;
}

int blobr_read(struct blob_reader *r, const struct blob_ref *ref, void *buf)
{
	static const uint8_t empty[1];
	unsigned long long off = (unsigned long long)ref->offset;
	size_t n = 0;
	int rc;

	if (ref->number != r->number)
		return lsm_err(-EINVAL,
			       "file %s: asked for a value of blob file "
			       "%06llu",
			       r->path, (unsigned long long)ref->number);
	if (ref->len > BLOB_MAX_VALUE)
		return LSM_CORRUPT("file %s offset %llu: reference to a "
				   "%u-byte value (limit %u)",
				   r->path, off, ref->len, BLOB_MAX_VALUE);
	if (ref->offset < BLOB_HEADER_LEN + BLOB_REC_MIN_OVERHEAD ||
	    ref->offset > (uint64_t)INT64_MAX - ref->len)
		return LSM_CORRUPT("file %s offset %llu: reference to a value "
				   "outside the file's records",
				   r->path, off);
	if (ref->len) {
		rc = rfile_read(r->f, ref->offset, ref->len, buf, &n);
		if (rc < 0)
			return rc;
		if (n < ref->len)
			return LSM_CORRUPT("file %s offset %llu: value of %u "
					   "bytes cut short, file ends after "
					   "%zu",
					   r->path, off, ref->len, n);
	}
	if (lsm_checksum32(ref->len ? buf : empty, ref->len) != ref->checksum)
		return LSM_CORRUPT("file %s offset %llu: value checksum "
				   "mismatch (%u bytes)",
				   r->path, off, ref->len);
	return 0;
}

/* ---- scanning ---- */

struct scan {
	struct env_rfile *f;
	const char *path;
	uint64_t number;
	uint64_t file_size; /* at open: invariant 2 */
	uint8_t *buf;
	size_t buf_cap;
	size_t buf_len;
	uint64_t buf_off; /* file offset of buf[0] */
	uint8_t *piece;   /* for values checksummed in pieces */
};

/* Makes file bytes [pos, pos + n) contiguous in the buffer (invariant 1);
 * the caller guarantees pos >= buf_off and pos + n <= file_size. Reads
 * ahead up to the buffer's capacity. */
static int ensure(struct scan *s, uint64_t pos, size_t n)
{
	size_t have, want, target, n_read = 0;
	int rc;

	if (pos + n <= s->buf_off + s->buf_len)
		return 0;
	if (pos < s->buf_off + s->buf_len) {
		size_t skip = (size_t)(pos - s->buf_off);
		memmove(s->buf, s->buf + skip, s->buf_len - skip);
		s->buf_len -= skip;
	} else {
		s->buf_len = 0;
	}
	s->buf_off = pos;
	/* Read ahead a chunk, or exactly the record if it is bigger. */
	target = n > BLOB_SCAN_CHUNK ? n : BLOB_SCAN_CHUNK;
	if (target > s->buf_cap) {
		size_t cap = target;
		uint8_t *nb = realloc(s->buf, cap);
		if (!nb)
			return lsm_err(-ENOMEM,
				       "scan blob file %s: out of memory for "
				       "a %zu-byte record",
				       s->path, n);
		s->buf = nb;
		s->buf_cap = cap;
	}
	have = s->buf_len;
	want = target > have ? target - have : 0;
	if (want > s->file_size - (s->buf_off + have))
		want = (size_t)(s->file_size - (s->buf_off + have));
	rc = rfile_read(s->f, s->buf_off + have, want, s->buf + have, &n_read);
	if (rc < 0)
		return rc;
	s->buf_len += n_read;
	if (s->buf_len < n)
		return lsm_err(-EIO,
			       "scan blob file %s at offset %llu: file shrank",
			       s->path, (unsigned long long)pos);
	return 0;
}

/* 1 if every byte of [pos, file_size) is zero, 0 if not, <0 on error. */
static int zero_to_eof(struct scan *s, uint64_t pos)
{
	while (pos < s->file_size) {
		uint64_t left = s->file_size - pos;
		size_t n =
			left < BLOB_SCAN_CHUNK ? (size_t)left : BLOB_SCAN_CHUNK;
		const uint8_t *p;
		int rc = ensure(s, pos, n);
		if (rc < 0)
			return rc;
		p = s->buf + (pos - s->buf_off);
		for (size_t i = 0; i < n; i++)
			if (p[i] != 0)
				return 0;
		pos += n;
	}
	return 1;
}

/* Checksum of the value_len bytes at off when they do not fit the buffer:
 * the part already buffered, then the rest read in pieces. */
static int value_sum_pieces(struct scan *s, uint64_t off, size_t value_len,
			    uint32_t *sum)
{
	XXH3_state_t st;
	uint64_t end = off + value_len;
	size_t n_read;
	int rc;

	XXH3_64bits_reset(&st);
	if (off < s->buf_off + s->buf_len) {
		size_t in_buf = (size_t)(s->buf_off + s->buf_len - off);
		if (in_buf > value_len)
			in_buf = value_len;
		XXH3_64bits_update(&st, s->buf + (off - s->buf_off), in_buf);
		off += in_buf;
	}
	if (off < end && !s->piece && !(s->piece = malloc(BLOB_SCAN_CHUNK)))
		return lsm_err(-ENOMEM, "scan blob file %s: out of memory",
			       s->path);
	while (off < end) {
		size_t n = end - off < BLOB_SCAN_CHUNK ? (size_t)(end - off)
						       : BLOB_SCAN_CHUNK;
		n_read = 0;
		rc = rfile_read(s->f, off, n, s->piece, &n_read);
		if (rc < 0)
			return rc;
		if (n_read < n)
			return lsm_err(-EIO,
				       "scan blob file %s at offset %llu: "
				       "file shrank",
				       s->path, (unsigned long long)off);
		XXH3_64bits_update(&st, s->piece, n);
		off += n;
	}
	*sum = (uint32_t)XXH3_64bits_digest(&st);
	return 0;
}

/*
 * Checks the record at pos. Returns 1 with the record's parts if it is
 * whole and sound, 0 if it is not (torn, garbage, damaged), <0 on error.
 * With want_value the value is made contiguous in the buffer.
 */
static int next_record(struct scan *s, uint64_t pos, bool want_value,
		       struct slice *key, struct slice *value,
		       struct blob_ref *ref, uint64_t *rec_end)
{
	uint64_t avail = s->file_size - pos, head_end, total;
	uint32_t key_len, value_len, vsum;
	const uint8_t *p, *q;
	size_t n;
	int rc;

	if (avail < BLOB_REC_MIN_OVERHEAD)
		return 0;
	n = avail < BLOB_REC_MAX_HEAD ? (size_t)avail : BLOB_REC_MAX_HEAD;
	rc = ensure(s, pos, n);
	if (rc < 0)
		return rc;
	p = s->buf + (pos - s->buf_off);
	q = get_varint32(p + 4, p + n, &key_len);
	if (q)
		q = get_varint32(q, p + n, &value_len);
	if (!q || key_len > BLOB_MAX_KEY || value_len > BLOB_MAX_VALUE)
		return 0;
	/* Header, key and value checksum: cheap to verify before the value
	 * length is trusted. */
	head_end = (uint64_t)(q - p) + key_len + 4;
	if (avail < head_end)
		return 0;
	total = head_end + value_len;
	if (avail < total)
		return 0;
	rc = ensure(s, pos, (size_t)head_end);
	if (rc < 0)
		return rc;
	p = s->buf + (pos - s->buf_off);
	if (lsm_checksum32(p + 4, (size_t)head_end - 4) != get_fixed32(p))
		return 0;
	vsum = get_fixed32(p + head_end - 4);
	if (want_value || total <= BLOB_SCAN_CHUNK) {
		/* Contiguous; may move the buffer, so p is taken again. */
		rc = ensure(s, pos, (size_t)total);
		if (rc < 0)
			return rc;
		p = s->buf + (pos - s->buf_off);
		*key = slice_make(p + head_end - 4 - key_len, key_len);
		*value = slice_make(p + head_end, value_len);
		if (lsm_checksum32(value_len ? value->p : p, value_len) != vsum)
			return 0;
	} else {
		uint32_t sum = 0;
		*key = slice_make(p + head_end - 4 - key_len, key_len);
		*value = slice_make(NULL, 0);
		rc = value_sum_pieces(s, pos + head_end, value_len, &sum);
		if (rc < 0)
			return rc;
		if (sum != vsum)
			return 0;
	}
	ref->number = s->number;
	ref->offset = pos + head_end;
	ref->len = value_len;
	ref->checksum = vsum;
	*rec_end = pos + total;
	return 1;
}

static int scan_file(lsm_env *env, const char *dir, uint64_t number,
		     blob_scan_fn fn, blob_scan_values_fn vfn, void *ctx,
		     uint64_t *valid_len)
{
	struct scan s = {0};
	uint64_t pos = BLOB_HEADER_LEN;
	char *path = blob_path_dup(dir, number);
	int rc;

	if (!path)
		return lsm_err(-ENOMEM, "scan blob file %06llu: out of memory",
			       (unsigned long long)number);
	s.path = path;
	s.number = number;
	rc = open_checked(env, path, number, &s.f);
	if (rc < 0)
		goto out_free_path;
	s.file_size = rfile_size(s.f);
	if (s.file_size < BLOB_HEADER_LEN) { /* shrank since the check */
		rc = LSM_CORRUPT("file %s offset 0: shorter than the blob "
				 "file header",
				 path);
		goto out_close;
	}
	s.buf_off = pos;
	for (;;) {
		struct slice key, value;
		struct blob_ref ref;
		uint64_t rec_end;

		if (pos == s.file_size) {
			rc = 0;
			break;
		}
		rc = next_record(&s, pos, vfn != NULL, &key, &value, &ref,
				 &rec_end);
		if (rc < 0)
			goto out_close;
		if (rc == 0) {
			rc = zero_to_eof(&s, pos);
			if (rc < 0)
				goto out_close;
			rc = rc ? 0 : 1;
			break;
		}
		rc = vfn ? vfn(ctx, key, value, &ref) : fn(ctx, key, &ref);
		if (rc != 0)
			goto out_close;
		pos = rec_end;
	}
	*valid_len = pos;

out_close:
	rfile_close(s.f);
	free(s.buf);
	free(s.piece);
out_free_path:
	free(path);
	return rc;
}

int blob_scan(lsm_env *env, const char *dir, uint64_t number, blob_scan_fn fn,
	      void *ctx, uint64_t *valid_len)
{
	return scan_file(env, dir, number, fn, NULL, ctx, valid_len);
}

int blob_scan_values(lsm_env *env, const char *dir, uint64_t number,
		     blob_scan_values_fn fn, void *ctx, uint64_t *valid_len)
{
	return scan_file(env, dir, number, NULL, fn, ctx, valid_len);
}
