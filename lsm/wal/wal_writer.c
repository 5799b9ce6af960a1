/*
 * wal_writer.c - appends checksummed records to a log file.
 *
 * Each record is written as two appends (the 9-byte header, then the
 * payload straight from the caller's buffer); the env buffers small appends,
 * so this costs no extra system call and never copies the payload twice.
 * The checksum is computed with XXH3's streaming interface over the length
 * field, the type byte and the payload, which equals XXH3-64 over those
 * bytes laid out contiguously (the spec's definition).
 *
 * Invariants:
 *  1. The file is always a sequence of whole records, except after an I/O
 *     error, when its tail is unknown.
 *  2. After the first error `err` is set and every later call returns it:
 *     appending after a partial record would put good records behind a bad
 *     one, which a reader treats as corruption instead of a torn tail.
 *  3. A writer opened with walw_open_reserved keeps the file's size
 *     (zeros) ahead of its records, in steps of `chunk`, so that syncing
 *     an append needs no size change; readers take the zeros for the end
 *     of the log. walw_trim cuts them off, durably, before the log is
 *     left for a newer one.
 *
 * Thread safety: none; the caller serializes calls on one writer.
 */
#include "util/coding.h"
#include "util/hash.h"
#include "util/status.h"
#include "wal/wal.h"
#include "wal/wal_format.h"

#include <stdlib.h>
#include <string.h>

struct wal_writer {
	struct env_wfile *f;
	char *path;
	int err;           /* first error, or 0 */
	uint64_t chunk;    /* reserve ahead in steps of this; 0: never */
	uint64_t reserved; /* file size reserved so far */
};

int walw_open(lsm_env *env, const char *path, struct wal_writer **out)
{
	struct wal_writer *w = calloc(1, sizeof(*w));
	int rc;
	if (!w || !(w->path = strdup(path))) {
		free(w);
		return lsm_err(-ENOMEM, "open log %s: out of memory", path);
	}
	rc = env_new_wfile(env, path, &w->f);
	if (rc < 0) {
		free(w->path);
		free(w);
		return rc;
	}
	*out = w;
	return 0;
}

int walw_open_reserved(lsm_env *env, const char *path, uint64_t chunk,
		       struct wal_writer **out)
{
	int rc = walw_open(env, path, out);
	if (rc == 0)
		(*out)->chunk = chunk;
	return rc;
}

/* invariant 3: keeps the file's size ahead of the records, so a sync of
 * an append has no size to update. A failed reservation only stops
 * further ones. */
static void reserve_ahead(struct wal_writer *w, uint64_t need)
{
	uint64_t want;
	if (!w->chunk || need <= w->reserved)
		return;
	want = (need / w->chunk + 1) * w->chunk;
	if (wfile_reserve(w->f, want) == 0)
		w->reserved = want;
	else
		w->chunk = 0;
}

int walw_trim(struct wal_writer *w)
{
	int rc;
	if (w->err)
		return w->err;
	if (!w->reserved)
		return walw_sync(w);
	rc = wfile_trim(w->f);
	if (rc < 0) {
		w->err = rc;
		return rc;
	}
	w->reserved = 0;
	w->chunk = 0;
	return 0;
}

/* Checksum of a record: XXH3-64 (low 32 bits) over header bytes 4..12
 * and the payload. */
static uint32_t record_checksum(const uint8_t *hdr, const void *p, size_t len)
{
	XXH3_state_t st;
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, hdr + 4, WAL_HEADER_LEN - 4);
	if (len)
		XXH3_64bits_update(&st, p, len);
	return (uint32_t)XXH3_64bits_digest(&st);
}

int walw_add(struct wal_writer *w, const void *p, size_t len)
{
	uint8_t hdr[WAL_HEADER_LEN];
	int rc;

	if (w->err)
		return w->err;
	if (len > WAL_MAX_PAYLOAD)
		return lsm_err(-EINVAL,
			       "log %s: record of %zu bytes exceeds the 1 GiB "
			       "limit",
			       w->path, len);
	/* [u32 checksum][u32 length][u8 type][u32 header check]:
	 * lsm/FORMAT.md "Record log" */
	put_fixed32(hdr + 4, (uint32_t)len);
	hdr[8] = WAL_TYPE_FULL;
	put_fixed32(hdr + WAL_HCHECK_OFF, lsm_checksum32(hdr + 4, 5));
	put_fixed32(hdr, record_checksum(hdr, p, len));
	reserve_ahead(w, wfile_size(w->f) + sizeof(hdr) + len);
	rc = wfile_append(w->f, hdr, sizeof(hdr));
	if (rc == 0 && len)
		rc = wfile_append(w->f, p, len);
	if (rc < 0)
		w->err = rc;
	return rc;
}

int walw_flush(struct wal_writer *w)
{
	int rc;
	if (w->err)
		return w->err;
	rc = wfile_flush(w->f);
	if (rc < 0)
		w->err = rc;
	return rc;
}

int walw_sync(struct wal_writer *w)
{
	int rc;
	if (w->err)
		return w->err;
	rc = wfile_sync(w->f);
	if (rc < 0)
		w->err = rc;
	return rc;
}

int walw_sync_file(struct wal_writer *w)
{
	return wfile_sync(w->f);
}

struct env_wfile *walw_file(struct wal_writer *w)
{
	return w->f;
}

uint64_t walw_size(const struct wal_writer *w)
{
	return wfile_size(w->f);
}

int walw_close(struct wal_writer *w)
{
	int rc = wfile_close(w->f);
	if (w->err)
		rc = w->err;
	free(w->path);
	free(w);
	return rc;
}
