/*
 * blob.h - blob files: large values kept outside the tree (key-value
 * separation).
 *
 * A value of at least the configured threshold is appended once to a blob
 * file `<dir>/NNNNNN.blob`; the tree stores a small reference (struct
 * blob_ref, encoded with blob_ref_encode) in its place. This module owns
 * the file format (lsm/FORMAT.md "Blob files", constants in blob_format.h),
 * the writer, the reader, the scanner and the reference codec; the database
 * decides what goes where (db_blob.c).
 *
 * Thread safety: a blob_writer is used by one thread at a time; a
 * blob_reader may be shared by any number of threads (positional reads);
 * blob_scan has no shared state.
 */
#ifndef LSM_BLOB_BLOB_H
#define LSM_BLOB_BLOB_H

#include "blob/blob_format.h"
#include "env/env.h"
#include "util/slice.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a value lives: file number, absolute offset of its first byte,
 * length, and lsm_checksum32 of its bytes. */
struct blob_ref {
	uint64_t number, offset;
	uint32_t len, checksum;
};

/* Writes "<dir>/<number>.blob" (number on 6+ digits) into buf like
 * snprintf; returns the length the full path needs (excluding the NUL). */
size_t blob_file_path(char *buf, size_t cap, const char *dir, uint64_t number);

/* ---- references ---- */

/* Encodes r into dst (room for BLOB_REF_MAX bytes); returns its length. */
size_t blob_ref_encode(uint8_t *dst, const struct blob_ref *r);
/* Strict: the input must be exactly one canonical encoding (no trailing
 * bytes, no overlong varints, values in range); else LSM_E_CORRUPT naming
 * "blob reference". *r is written on success only. */
int blob_ref_decode(struct slice in, struct blob_ref *r);

/* ---- writer (one thread at a time) ---- */

struct blob_writer;

/* Creates (or truncates) <dir>/<number>.blob and appends its header
 * (buffered). Does not sync the directory. */
int blobw_open(lsm_env *env, const char *dir, uint64_t number,
	       struct blob_writer **out);
/* Appends one record and fills *ref (ref->offset = the value's first
 * byte). Keys over BLOB_MAX_KEY or values over BLOB_MAX_VALUE: -EINVAL,
 * nothing written, writer not poisoned. The bytes may stay in the env's
 * write buffer until blobw_flush(). */
int blobw_add(struct blob_writer *w, struct slice key, struct slice value,
	      struct blob_ref *ref);
/* Hands buffered bytes to the OS: a reader's pread sees them after this. */
int blobw_flush(struct blob_writer *w);
/* Flush + fdatasync. */
int blobw_sync(struct blob_writer *w);
/* blobw_sync, with `other` (a file of the same env) synced at the same
 * time (wfile_sync_pair): returns w's result and sets *other_rc to
 * other's; only w's own failure poisons w. A poisoned w syncs neither. */
int blobw_sync_with(struct blob_writer *w, struct env_wfile *other,
		    int *other_rc);
/* Bytes appended so far, header included. */
uint64_t blobw_size(const struct blob_writer *w);
/* Records appended so far. */
uint64_t blobw_count(const struct blob_writer *w);
uint64_t blobw_number(const struct blob_writer *w);
/* Syncs first if `sync` (and the writer is healthy), then closes. Frees w
 * even on error; returns the first error (also a poisoning one). */
int blobw_close(struct blob_writer *w, bool sync);
/* After a failed append, flush or sync the writer is poisoned: every later
 * add/flush/sync (and close) returns that first error, so nothing is ever
 * written behind a hole. */

/* ---- reader (thread-safe) ---- */

struct blob_reader;

/* Opens <dir>/<number>.blob and checks its header: a file shorter than
 * the header, bad magic, bad header checksum or a number other than
 * `number` -> LSM_E_CORRUPT; unknown version, flags or reserved bits ->
 * LSM_E_FORMAT. */
int blobr_open(lsm_env *env, const char *dir, uint64_t number,
	       struct blob_reader **out);
void blobr_close(struct blob_reader *r);
uint64_t blobr_number(const struct blob_reader *r);
/* Reads the ref->len bytes of the value named by ref into buf and checks
 * them against ref->checksum. A short read, a mismatch or a reference that
 * cannot be valid -> LSM_E_CORRUPT "file PATH offset OFF: ...". The file
 * may have grown since open (the active file): reads are not bounded by
 * its size at open. -EINVAL if ref->number is not this file's. */
int blobr_read(struct blob_reader *r, const struct blob_ref *ref, void *buf);

/* ---- scanning (recovery, GC, check, dump) ---- */

/* key (and value) are valid during the call only. A nonzero return stops
 * the scan, which returns it (use negative codes: 1 means torn tail). */
typedef int (*blob_scan_fn)(void *ctx, struct slice key,
			    const struct blob_ref *ref);
typedef int (*blob_scan_values_fn)(void *ctx, struct slice key,
				   struct slice value,
				   const struct blob_ref *ref);

/*
 * Reads the whole file record by record in 1 MiB chunks and calls fn for
 * each record whose header and value check out, in file order. It stops at
 * the first record that does not; *valid_len = the offset just past the
 * last good record (BLOB_HEADER_LEN if none). Returns:
 *   0  the file ends exactly at *valid_len, or only zero bytes follow it
 *      (preallocation);
 *   1  other bytes follow that do not form a good record (a torn or
 *      garbage tail, or a damaged record);
 *  <0  I/O error, a bad file header (LSM_E_CORRUPT / LSM_E_FORMAT, as in
 *      blobr_open), out of memory, or fn's nonzero return.
 * *valid_len is written when the return is 0 or 1.
 */
int blob_scan(lsm_env *env, const char *dir, uint64_t number, blob_scan_fn fn,
	      void *ctx, uint64_t *valid_len);
/* The same, also handing each value to fn (values up to BLOB_MAX_VALUE
 * are held in memory whole). */
int blob_scan_values(lsm_env *env, const char *dir, uint64_t number,
		     blob_scan_values_fn fn, void *ctx, uint64_t *valid_len);

#endif
