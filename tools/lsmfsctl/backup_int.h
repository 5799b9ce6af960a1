/*
 * backup_int.h - internals shared by the backup files of lsmfsctl
 * (backup.c, backup_restore.c, backup_dir.c, backup_record.c,
 * backup_io.c). The on-disk format is docs/BACKUP-FORMAT.md.
 */
#ifndef LSMFSCTL_BACKUP_INT_H
#define LSMFSCTL_BACKUP_INT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

/* Status codes beside negative errnos: a damaged record or file, and a
 * format this lsmfsctl does not know. */
#define BK_E_CORRUPT (-EBADMSG)
#define BK_E_FORMAT (-EPROTONOSUPPORT)

/* The files of a store that a backup keeps in DEST by (store identity,
 * file number), each immutable once in a checkpoint: SSTs and blob files
 * (the engine numbers both from one counter). */
enum bk_kind { BK_KIND_SST, BK_KIND_BLOB, BK_N_KINDS };

/* ---- backup_io.c: errors, progress, signals, file helpers ---------- */

/* The first failure of a command: its status and one line saying what
 * went wrong and where. Later failures do not overwrite it. */
struct bk_err {
	int rc;
	bool is_reported; /* the line was already printed (by ctl_*) */
	char msg[1024];
};

/* Records the failure (if none is recorded yet) and returns rc. */
int bk_fail(struct bk_err *e, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Records a failure whose line another module already printed. */
int bk_fail_reported(struct bk_err *e, int rc);
/* Prints "lsmfsctl: MSG" for the recorded failure, unless printed. */
void bk_report(const struct bk_err *e);

/* SIGINT/SIGTERM/SIGHUP set a flag the copy loops poll, so a long
 * command stops cleanly (and still releases its checkpoint). */
void bk_catch_signals(void);
bool bk_interrupted(void);

/* One updating stderr line (bytes, files, rate, ETA), only when stderr is
 * a terminal; redrawn at most 4 times a second. */
struct bk_prog {
	bool is_tty;
	const char *what;
	uint64_t total_bytes; /* 0: unknown, no ETA */
	uint64_t done_bytes;
	uint64_t total_files;
	uint64_t done_files;
	struct timespec start, last;
	bool drawn;
};

void bprog_init(struct bk_prog *p, const char *what, uint64_t total_bytes,
		uint64_t total_files);
void bprog_add(struct bk_prog *p, uint64_t bytes);
void bprog_file_done(struct bk_prog *p);
/* Clears the line. */
void bprog_end(struct bk_prog *p);

/* Size of the copy/read buffer the helpers below take. */
#define BK_BUF_SIZE (1u << 20)
/* bfile_copy starts write-back every this many bytes (a multiple of
 * BK_BUF_SIZE). */
#define BK_WRITEBACK_STEP (8u << 20)

/* XXH3-64 and length of everything readable from fd (from offset 0).
 * buf holds BK_BUF_SIZE bytes. name is for messages. */
int bfile_hash_fd(int fd, const char *name, uint8_t *buf, struct bk_prog *p,
		  uint64_t *size, uint64_t *xxh, struct bk_err *e);
/* Same for dirfd/name (a missing file is -ENOENT, recorded). */
int bfile_hash(int dirfd, const char *name, uint8_t *buf, struct bk_prog *p,
	       uint64_t *size, uint64_t *xxh, struct bk_err *e);
/* Copies src_dirfd/src_name to dst_dirfd/dst_name through a temporary
 * name: write, fsync, drop from the page cache, rename, fsync dst_dirfd.
 * *xxh and *size describe the bytes read (and written). */
int bfile_copy(int src_dirfd, const char *src_name, int dst_dirfd,
	       const char *dst_name, mode_t mode, uint8_t *buf,
	       struct bk_prog *p, uint64_t *size, uint64_t *xxh,
	       struct bk_err *e);
/* Writes len bytes as dirfd/name through a temporary name (write, fsync,
 * rename, fsync dirfd). Refuses to replace an existing file when
 * no_replace. */
int bfile_write_atomic(int dirfd, const char *name, const void *data,
		       size_t len, mode_t mode, bool no_replace,
		       struct bk_err *e);
/* Reads a whole file of at most max bytes into a malloc'd buffer. */
int bfile_read_all(int dirfd, const char *name, size_t max, uint8_t **out,
		   size_t *len, struct bk_err *e);
int bfile_fsync_dir(int dirfd, const char *name, struct bk_err *e);
/* Removes dirfd/name and everything under it (a store being built).
 * Best effort; returns the first error; a missing name is 0. */
int bfile_remove_tree(int dirfd, const char *name);
/* True for NNNNNN.sst (6+ digits); sets *number. */
bool bfile_is_sst_name(const char *name, uint64_t *number);
/* True for NNNNNN.sst or NNNNNN.blob (6+ digits); sets *kind, *number. */
bool bfile_is_store_file_name(const char *name, enum bk_kind *kind,
			      uint64_t *number);
/* "sst" / "blob": the file name suffix; "SST" / "blob file": for
 * messages. */
const char *bk_kind_suffix(enum bk_kind kind);
const char *bk_kind_name(enum bk_kind kind);
/* True when name is a temporary name (contains ".tmp-"). */
bool bfile_is_tmp_name(const char *name);
/* Writes s percent-encoded (bytes outside 0x21..0x7e and '%') to f. */
void bk_print_name(FILE *f, const char *s);
/* "12.3 MiB" into buf. */
const char *bk_human(uint64_t bytes, char *buf, size_t cap);
int64_t bk_now_ns(void);

/* ---- backup_record.c: the record file ------------------------------ */

#define BK_IDENTITY_LEN 32
#define BK_NAME_MAX 255
#define BK_META_MAX 64
#define BK_RECORD_MAX (1u << 30)

/* One SST or blob file a record names. */
struct bk_sst {
	uint64_t number;
	uint64_t size;
	uint64_t xxh;
};

struct bk_meta {
	char name[BK_NAME_MAX + 1];
	uint64_t size;
	uint64_t xxh;
	const uint8_t *data; /* borrowed: into the record's buf, or the
			      * caller's buffer when encoding */
};

/* One backup record. Decoded records own ssts, blobs, metas and buf (the
 * file's bytes, which metas[i].data point into); brec_release frees
 * them. */
struct bk_record {
	uint64_t number;
	int64_t backup_ns;
	uint64_t snap_id;
	uint64_t snap_seq;
	int64_t snap_ns;
	char identity[BK_IDENTITY_LEN + 1];
	char name[BK_NAME_MAX + 1];
	struct bk_sst *ssts; /* ascending numbers */
	size_t n_ssts;
	struct bk_sst *blobs; /* blob files, ascending numbers */
	size_t n_blobs;
	struct bk_meta *metas;
	size_t n_metas;
	uint8_t *buf;
	size_t buf_len; /* = the record file's size */
};

/* Encodes r (ssts and blobs each sorted ascending, unique) into a
 * malloc'd buffer. */
int brec_encode(const struct bk_record *r, uint8_t **out, size_t *out_len,
		struct bk_err *e);
/* Decodes p[0..len) into *r; r->metas point into p (the caller sets
 * r->buf = p to hand the buffer over). file names the record in the
 * message: "FILE: offset X: what". BK_E_CORRUPT or BK_E_FORMAT. */
int brec_decode(const uint8_t *p, size_t len, const char *file,
		struct bk_record *r, struct bk_err *e);
void brec_release(struct bk_record *r);
bool brec_valid_identity(const char *s, size_t len);
bool brec_valid_meta_name(const char *s, size_t len);
/* The files of one kind r names, ascending numbers. */
static inline const struct bk_sst *brec_files(const struct bk_record *r,
					      enum bk_kind kind, size_t *n)
{
	*n = kind == BK_KIND_BLOB ? r->n_blobs : r->n_ssts;
	return kind == BK_KIND_BLOB ? r->blobs : r->ssts;
}
const struct bk_sst *brec_find(const struct bk_record *r, enum bk_kind kind,
			       uint64_t number);

/* ---- backup_dir.c: DEST --------------------------------------------- */

#define BK_MARKER "LSMFS-BACKUP"
#define BK_RECORDS "records"
#define BK_SST "sst"

/* A record file that could not be read or decoded. */
struct bk_damaged {
	char file[64];  /* "records/NNNNNNNN.rec" */
	char why[1024]; /* "records/NNNNNNNN.rec: what is wrong" */
};

/* An opened backup directory. Holds the flock on LOCK until closed. */
struct bdir {
	const char *path; /* as given; borrowed */
	int fd;           /* DEST, O_DIRECTORY */
	int lock_fd;
	struct bk_record *recs; /* readable records, ascending number */
	size_t n_recs;
	struct bk_damaged *damaged;
	size_t n_damaged;
	uint64_t max_number; /* highest record number present, damaged too */
};

/* Opens DEST (creating it when create and it is missing), checks the
 * marker, takes the lock (exclusive or shared; a held lock is an error)
 * and reads every record. */
int bdir_open(struct bdir *d, const char *path, bool create, bool exclusive,
	      struct bk_err *e);
void bdir_close(struct bdir *d);
const struct bk_record *bdir_find(const struct bdir *d, const char *name);
/* "sst/IDENTITY/NNNNNN.sst" (or .blob) and "records/NNNNNNNN.rec". */
void bdir_file_path(char *buf, size_t cap, const char *identity,
		    enum bk_kind kind, uint64_t number);
void bdir_record_path(char *buf, size_t cap, uint64_t number);
/* Deletes leftover temporary files (caller holds the exclusive lock). */
void bdir_remove_tmp(struct bdir *d);

/* A multiset of file keys (store identity, kind, file number): which
 * files records use, which were checked. Open addressing; grows. */
struct bset;
struct bset *bset_new(void);
void bset_free(struct bset *s);
/* Adds one use of the key; the new count (>= 1), or -ENOMEM. */
int bset_add(struct bset *s, const char *identity, enum bk_kind kind,
	     uint64_t number);
uint32_t bset_count(const struct bset *s, const char *identity,
		    enum bk_kind kind, uint64_t number);

/* ---- backup.c ------------------------------------------------------ */

/* Checks every SST and blob file r names (present, size, XXH3; its meta
 * files were checked when the record decoded) and reports each problem on
 * stderr
 * ("lsmfsctl: verify: PATH: what (backup NAME)"). Keys in `checked` are
 * skipped and every key checked is added (NULL: check all). Adds the
 * problems to *n_problems and the bytes read to *n_bytes. 0, or an
 * error that stopped the check (e set). */
int bk_verify_record(struct bdir *d, const struct bk_record *r, uint8_t *buf,
		     struct bk_prog *p, struct bset *checked,
		     uint64_t *n_problems, uint64_t *n_bytes, struct bk_err *e);

int bk_restore(int argc, char **argv);

#endif /* LSMFSCTL_BACKUP_INT_H */
