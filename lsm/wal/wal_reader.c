/*
 * wal_reader.c - reads the records of a log file back, in order.
 *
 * The file is read in chunks into one growing buffer (WALs reach ~128 MiB;
 * loading them whole would double recovery's peak memory). The record at
 * `pos` is made contiguous in the buffer, checked, and handed out as a
 * slice into the buffer.
 *
 * Torn tail vs corruption (the rule of lsm/FORMAT.md "Record log"): a
 * record is a torn tail, where reading ends without error, if
 *  - its header runs past the end of the file;
 *  - its header fails its own check and the file ends within two headers'
 *    length of it (a header cut by a crash, maybe followed by a few bytes
 *    of garbage), or everything after the header's 13 bytes is zero (a
 *    torn write into a preallocated or zero-filled tail);
 *  - its header is sound but its payload runs past the end of the file;
 *  - its payload fails the checksum and it is the last thing in the file
 *    (fewer than WAL_HEADER_LEN bytes follow it) or only zeros follow.
 * Anything else that fails a check is corruption: LSM_E_CORRUPT naming the
 * file and the record's offset. Because the length is checked on its own,
 * a damaged length in the middle of a log is corruption, never mistaken
 * for the end of the log. The sizes come from the file's size at open:
 * the log must not grow while it is read.
 *
 * Invariants:
 *  1. buf holds the file bytes [buf_off, buf_off + buf_len); buf_off <= pos.
 *  2. Once `is_done` or `err` is set, walr_next() keeps returning 0 or err.
 *  3. A returned slice points into buf and stays valid until the next call
 *     (which may move or grow buf).
 *
 * Thread safety: none; one thread at a time per reader.
 */
#include "util/coding.h"
#include "util/hash.h"
#include "util/status.h"
#include "wal/wal.h"
#include "wal/wal_format.h"

#include <stdlib.h>
#include <string.h>

#define WAL_READ_CHUNK ((size_t)256 * 1024)

struct wal_reader {
	struct env_rfile *f;
	char *path;
	uint64_t file_size;
	uint8_t *buf;
	size_t buf_cap;
	size_t buf_len;
	uint64_t buf_off; /* file offset of buf[0] */
	uint64_t pos;     /* offset of the next record */
	int err;          /* sticky error, or 0 */
	bool is_done;
	bool is_torn;
	uint64_t torn_off;
};

int walr_open(lsm_env *env, const char *path, struct wal_reader **out)
{
	struct wal_reader *r = calloc(1, sizeof(*r));
	int rc;
	if (!r || !(r->path = strdup(path))) {
		free(r);
		return lsm_err(-ENOMEM, "open log %s: out of memory", path);
	}
	rc = env_new_rfile(env, path, &r->f);
	if (rc < 0) {
		free(r->path);
		free(r);
		return rc;
	}
	r->file_size = rfile_size(r->f);
	*out = r;
	return 0;
}

void walr_close(struct wal_reader *r)
{
	if (!r)
		return;
	rfile_close(r->f);
	free(r->buf);
	free(r->path);
	free(r);
}

/* Makes file bytes [pos, pos + n) contiguous in the buffer; the caller
 * guarantees pos + n <= file_size. */
static int ensure(struct wal_reader *r, uint64_t pos, size_t n)
{
	size_t have, want, n_read = 0;
	int rc;

	if (pos + n <= r->buf_off + r->buf_len)
		return 0;
	/* Drop what lies before pos. */
	if (pos < r->buf_off + r->buf_len) {
		size_t skip = (size_t)(pos - r->buf_off);
		memmove(r->buf, r->buf + skip, r->buf_len - skip);
		r->buf_len -= skip;
	} else {
		r->buf_len = 0;
	}
	r->buf_off = pos;
	if (n > r->buf_cap || r->buf_cap < WAL_READ_CHUNK) {
		size_t cap = r->buf_cap ? r->buf_cap : WAL_READ_CHUNK;
		uint8_t *nb;
		while (cap < n)
			cap *= 2;
		nb = realloc(r->buf, cap);
		if (!nb)
			return lsm_err(-ENOMEM,
				       "read log %s: out of memory for a %zu "
				       "byte record",
				       r->path, n);
		r->buf = nb;
		r->buf_cap = cap;
	}
	have = r->buf_len;
	want = r->buf_cap - have;
	if (want > r->file_size - (r->buf_off + have))
		want = (size_t)(r->file_size - (r->buf_off + have));
	rc = rfile_read(r->f, r->buf_off + have, want, r->buf + have, &n_read);
	if (rc < 0)
		return rc;
	r->buf_len += n_read;
	if (r->buf_len < n)
		return lsm_err(-EIO, "read log %s at offset %llu: file shrank",
			       r->path, (unsigned long long)pos);
	return 0;
}

/* 1 if every byte of [pos, file_size) is zero, 0 if not, <0 on error. */
static int zero_to_eof(struct wal_reader *r, uint64_t pos)
{
	while (pos < r->file_size) {
		uint64_t left = r->file_size - pos;
		size_t n =
			left < WAL_READ_CHUNK ? (size_t)left : WAL_READ_CHUNK;
		int rc = ensure(r, pos, n);
		if (rc < 0)
			return rc;
		const uint8_t *p = r->buf + (pos - r->buf_off);
		for (size_t i = 0; i < n; i++)
			if (p[i] != 0)
				return 0;
		pos += n;
	}
	return 1;
}

static int stop_torn(struct wal_reader *r, uint64_t off)
{
	r->is_done = true;
	r->is_torn = true;
	r->torn_off = off;
	return 0;
}

int walr_next(struct wal_reader *r, struct slice *rec, uint64_t *off)
{
	uint64_t pos = r->pos, rec_end;
	const uint8_t *hdr;
	const char *what;
	uint32_t len;
	bool header_bad = false;
	int rc;

	if (r->err)
		return r->err;
	if (r->is_done)
		return 0;
	if (pos == r->file_size) {
		r->is_done = true;
		return 0;
	}
	if (r->file_size - pos < WAL_HEADER_LEN)
		return stop_torn(r, pos); /* header cut short */
	rc = ensure(r, pos, WAL_HEADER_LEN);
	if (rc < 0)
		goto out_err;
	hdr = r->buf + (pos - r->buf_off);
	len = get_fixed32(hdr + 4);
	if (lsm_checksum32(hdr + 4, 5) != get_fixed32(hdr + WAL_HCHECK_OFF)) {
		if (r->file_size - pos < 2 * WAL_HEADER_LEN)
			return stop_torn(r, pos);
		header_bad = true; /* only the zero-tail test applies */
		what = "record header check mismatch";
		goto bad_record;
	}
	rec_end = pos + WAL_HEADER_LEN + len;
	if (len > WAL_MAX_PAYLOAD) {
		header_bad = true;
		what = "record length exceeds 1 GiB";
		goto bad_record;
	}
	if (hdr[8] != WAL_TYPE_FULL) {
		header_bad = true;
		what = "unknown record type";
		goto bad_record;
	}
	if (rec_end > r->file_size)
		return stop_torn(r, pos); /* payload cut short */
	rc = ensure(r, pos, WAL_HEADER_LEN + (size_t)len);
	if (rc < 0)
		goto out_err;
	hdr = r->buf + (pos - r->buf_off);
	if (lsm_checksum32(hdr + 4, WAL_HEADER_LEN - 4 + len) !=
	    get_fixed32(hdr)) {
		what = "record checksum mismatch";
		goto bad_record;
	}
	r->pos = rec_end;
	*rec = slice_make(hdr + WAL_HEADER_LEN, len);
	*off = pos;
	return 1;

bad_record:
	/* Fewer bytes than a header after it: nothing complete follows, so
	 * this is still the last record (a torn write ending in garbage). */
	if (!header_bad && r->file_size - rec_end < WAL_HEADER_LEN)
		return stop_torn(r, pos);
	/* A torn write into a zero-filled or reserved tail leaves a prefix
	 * of the record and then zeros: a bad header followed by zeros only,
	 * or a sound header whose record is followed by zeros only. */
	rc = zero_to_eof(r, header_bad ? pos + WAL_HEADER_LEN : rec_end);
	if (rc < 0)
		goto out_err;
	if (rc == 1)
		return stop_torn(r, pos);
	rc = LSM_CORRUPT("file %s offset %llu: %s (record length %u, "
			 "file size %llu)",
			 r->path, (unsigned long long)pos, what, len,
			 (unsigned long long)r->file_size);
out_err:
	r->err = rc;
	return rc;
}

bool walr_torn(const struct wal_reader *r, uint64_t *torn_off)
{
	if (r->is_torn && torn_off)
		*torn_off = r->torn_off;
	return r->is_torn;
}
