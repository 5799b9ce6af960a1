/*
 * wal.h - the record log used by the write-ahead log and the MANIFEST.
 *
 * A writer appends checksummed records to a new file; a reader returns them
 * in order and tells a torn tail (the crash cut the last write short: not
 * an error, recovery just stops there) from corruption in the middle of the
 * file (an error naming the file and offset). Format: wal_format.h and
 * lsm/FORMAT.md.
 *
 * Neither object is thread-safe: the caller serializes all calls on one
 * writer or reader.
 */
#ifndef LSM_WAL_WAL_H
#define LSM_WAL_WAL_H

#include "env/env.h"
#include "util/slice.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wal_writer;
struct wal_reader;

/* Creates (or truncates) `path`. */
int walw_open(lsm_env *env, const char *path, struct wal_writer **out);
/* Like walw_open, but keeps the file's size reserved (zeros) ahead of the
 * records in steps of `chunk` bytes, so that walw_sync of an append
 * changes no file size (cheaper on most file systems). */
int walw_open_reserved(lsm_env *env, const char *path, uint64_t chunk,
		       struct wal_writer **out);
/* Cuts the reserved zeros off and makes everything durable (a writer
 * without reservation just syncs). */
int walw_trim(struct wal_writer *w);
/* Appends one record (payload up to 1 GiB, else -EINVAL). The record may sit
 * in a user-space buffer until walw_flush()/walw_sync(). After the first
 * I/O error every later call returns that error (the log tail is unknown). */
int walw_add(struct wal_writer *w, const void *p, size_t len);
/* Hands every added record to the OS (survives a process crash). */
int walw_flush(struct wal_writer *w);
/* Makes every added record durable (survives a power cut). */
int walw_sync(struct wal_writer *w);
/* fsync of what reached the file, even after an error (for a WAL
 * abandoned after a failed append: its good part must be durable). */
int walw_sync_file(struct wal_writer *w);
/* The log's file, to sync it together with another (blobw_sync_with). */
struct env_wfile *walw_file(struct wal_writer *w);
/* Bytes of the log file so far, headers included. */
uint64_t walw_size(const struct wal_writer *w);
/* Flushes (does not sync), closes and frees w, even on error. */
int walw_close(struct wal_writer *w);

int walr_open(lsm_env *env, const char *path, struct wal_reader **out);
/* 1: the next record's payload is in *rec (valid until the next call on r)
 * and the file offset of its header in *off; 0: clean end of file or a torn
 * tail (see walr_torn()); <0: an I/O error or LSM_E_CORRUPT (lsm_errdetail()
 * names the file and offset). Once it returns 0 or an error it keeps
 * returning the same. */
int walr_next(struct wal_reader *r, struct slice *rec, uint64_t *off);
/* True if reading stopped at a torn tail; *torn_off (if not NULL) is the
 * offset of the first byte not accepted, i.e. where the log should be cut to
 * continue appending. */
bool walr_torn(const struct wal_reader *r, uint64_t *torn_off);
void walr_close(struct wal_reader *r);

#endif
