/*
 * fs.h - the lsmfs daemon context and the prototypes shared by its
 * modules (see fs/README.md for the module list and lock order).
 */
#ifndef LSMFS_FS_H
#define LSMFS_FS_H

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

#include "inode.h"
#include "itable.h"
#include "keys.h"
#include "lsm.h"

#define LSMFS_VERSION "0.1.0"
#define FS_NAME_MAX 255
#define FS_XATTR_SIZE_MAX 65536

/* Mount options (opts.c). Booleans default on unless noted. */
struct lsmfs_opts {
	char *store;      /* absolute path of the store directory */
	char *mountpoint; /* as given */
	int foreground;   /* -f; default off */
	int debug;        /* -d; default off */
	int show_help;
	int show_version;
	int n_bad_args; /* extra arguments seen while parsing */
	int writeback_cache;
	int readdirplus;
	int keep_cache;
	int allow_other; /* default off */
	int nonempty;    /* default off: refuse a non-empty mount point */
	unsigned max_write;
	double entry_timeout;
	double attr_timeout;
	double negative_timeout;
	int has_reserve;  /* -o reserve= given; else the default */
	uint64_t reserve; /* bytes of the store's fs kept free (space.c) */
};

/* The free-space reserve (space.c). reserve is fixed after space_init;
 * mu, a leaf lock, protects the rest. */
struct lsmfs_space {
	uint64_t reserve; /* bytes adds may not use; 0 disables */
	pthread_mutex_t mu;
	pthread_cond_t cv;   /* wakes the reclaim thread */
	uint64_t avail;      /* f_bavail in bytes at the last statvfs */
	uint64_t added;      /* bytes admitted since that statvfs */
	uint64_t checked_ns; /* CLOCK_MONOTONIC of it; 0: re-read now */
	bool is_starved;     /* an add was refused since the last reclaim */
	bool has_freed;      /* something was deleted since then */
	uint64_t freed_lo;   /* lowest and highest ino deleted since then */
	uint64_t freed_hi;
	uint64_t n_refused;
	uint64_t n_reclaims;
	bool is_stopping;
	bool has_thread;
	pthread_t thread;
};

/* The daemon context: one per mounted store (no global state). */
struct lsmfs {
	lsm_db *db;
	struct itable *itab;
	const struct lsmfs_opts *opts;
	bool writeback; /* the kernel keeps a writeback cache (times too) */
	bool use_syslog;

	pthread_mutex_t alloc_mu; /* protects the three fields below */
	uint64_t next_ino;        /* next inode number to hand out */
	uint64_t chunk_end;       /* end of the chunk next_ino is in */
	uint64_t persisted_end;   /* chunk end the stored superblock has */
	struct lsmfs_super sb;    /* as loaded; next_ino kept above */

	struct lsmfs_space space;

	/* The control socket (ctl.c): set by ctl_start, cleared by ctl_stop,
	 * both on the main thread. */
	struct ctl_server *ctl;

	/* Named snapshots served under /.snapshots (snap.c). */
	struct snap_table *snaps;
	/* The FUSE session, for kernel cache notifications: set before the
	 * loop starts, cleared before it is destroyed. */
	struct fuse_session *se;

	/* Open directory handles (ops_dir.c), freed at unmount if the
	 * kernel did not release them. */
	pthread_mutex_t dir_handles_mu;
	struct dir_handle *dir_handles;
};

/* opts.c */
/* Parses argv into opts and the arguments left for fuse_session_new().
 * Returns 0, or -1 after printing a message. */
int opts_parse(int argc, char **argv, struct lsmfs_opts *opts,
	       struct fuse_args *fargs);
void opts_usage(const char *prog);
void opts_free(struct lsmfs_opts *opts);

/* main.c */
void fs_log(struct lsmfs *fs, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* space.c */
struct statvfs;
/* Computes the reserve and starts the reclaim thread (after the store is
 * open). Returns 0 or -errno. */
int space_init(struct lsmfs *fs);
/* Stops the reclaim thread (before the store is closed). */
void space_release(struct lsmfs *fs);
/* An op is about to add about `bytes` to the store: 0, or -ENOSPC when
 * that would eat into the reserve. Never blocks on the engine. */
int space_admit(struct lsmfs *fs, uint64_t bytes);
/* A committed op deleted data of inode ino (unlink, truncate down...). */
void space_freed(struct lsmfs *fs, uint64_t ino);
/* The free and available byte counts of sv minus the reserve (>= 0). */
void space_statfs(struct lsmfs *fs, const struct statvfs *sv, uint64_t *bfree,
		  uint64_t *bavail);

/*
 * Shared helpers (ops_attr.c).
 */
/* Hands out a new inode number. When the chunk advances, *sb_end is the
 * chunk end to record in the superblock in the same batch (else 0).
 * -ENOSPC once the numbers reach NODE_INO_LIMIT (44 bits; the node ids
 * above belong to snapshots). */
int fs_ino_alloc(struct lsmfs *fs, uint64_t *ino, uint64_t *sb_end);
/* After a batch carrying sb_end committed. */
void fs_ino_persisted(struct lsmfs *fs, uint64_t sb_end);
/* Adds the superblock with chunk end sb_end to b. */
int fs_batch_put_super(struct lsmfs *fs, lsm_batch *b, uint64_t sb_end);
/* An iterator over lo <= key < hi (at snap, or now if NULL). */
int fs_iter_range(struct lsmfs *fs, const lsm_snapshot *snap, const void *lo,
		  size_t lo_len, const void *hi, size_t hi_len, lsm_iter **out);
int fs_batch_put_inode(lsm_batch *b, uint64_t ino, const struct lsmfs_inode *in,
		       const char *target, size_t target_len);
/* Deletes the inode record, its blocks, xattrs and orphan key. With in
 * NULL (unknown record) uses range deletions for blocks and xattrs. */
int fs_batch_drop_inode(lsm_batch *b, uint64_t ino,
			const struct lsmfs_inode *in);
/* Deletes blocks [first, end_idx) of ino: point deletes when few, else one
 * range deletion (end_idx UINT64_MAX: every block from first on). */
int fs_batch_drop_blocks(lsm_batch *b, uint64_t ino, uint64_t first,
			 uint64_t end_idx);
/* Reads blocks [off, off + size) of ino into buf (holes as zeros), as of
 * snap (NULL: now); the caller clamps to the file size. */
int fs_read_data(struct lsmfs *fs, const lsm_snapshot *snap, uint64_t ino,
		 uint64_t off, size_t size, char *buf);
void fs_fill_entry(struct lsmfs *fs, uint64_t ino, const struct lsmfs_inode *in,
		   struct fuse_entry_param *ep);
/* Registers the ops of one module. */
void ops_attr_register(struct fuse_lowlevel_ops *ops);
void ops_dir_register(struct fuse_lowlevel_ops *ops);
void ops_file_register(struct fuse_lowlevel_ops *ops);
void ops_xattr_register(struct fuse_lowlevel_ops *ops);

/* ops_dir.c: shared with create. */
/* Creates name in parent (one batch: inode, dirent, parent times, maybe
 * the superblock). On success fills *ep, counts a kernel lookup and, when
 * is_open, counts an open handle and returns the child with a reference
 * in *child (else *child is NULL). */
int dir_make_node(struct lsmfs *fs, fuse_req_t req, uint64_t parent,
		  const char *name, mode_t mode, dev_t rdev, const char *target,
		  bool is_open, struct fuse_entry_param *ep,
		  struct inode_ent **child);
/* Looks name up in node parent of view v (snap.h); on success counts a
 * kernel lookup, fills *ep and returns the child with a reference. */
struct fs_view;
/* After the session ended: frees the directory handles the kernel never
 * released (their snapshots, open counts and references). */
void dir_handles_release(struct lsmfs *fs);
int dir_lookup_entry(struct lsmfs *fs, const struct fs_view *v, uint64_t parent,
		     const char *name, struct fuse_entry_param *ep,
		     struct inode_ent **child);
/* Adds one readdir(plus) entry for node of view v to buf (room bytes
 * left); returns its size, or 0 with *full set when it does not fit.
 * readdirplus counts a kernel lookup of the node. */
size_t dir_add_entry(fuse_req_t req, struct lsmfs *fs, const struct fs_view *v,
		     bool plus, char *buf, size_t room, const char *name,
		     uint64_t node, uint8_t dtype, off_t next, bool *full);

/* ops_file.c: data helpers shared with setattr. */
/* Adds to b the changes that cut the data of ino to new_size. */
int file_truncate_batch(struct lsmfs *fs, lsm_batch *b, uint64_t ino,
			uint64_t old_size, uint64_t new_size);

/* orphan.c */
/* The last link of e's inode is gone (e->mu held, e->in updated with
 * nlink 0): keep it as an orphan while open, else delete it. Adds to b. */
int orphan_unlinked_locked(struct lsmfs *fs, lsm_batch *b, struct inode_ent *e,
			   const struct lsmfs_inode *in);
/* After a committed unlink: the cache reflects the deletion. */
void orphan_unlinked_done_locked(struct inode_ent *e,
				 const struct lsmfs_inode *in);
/* An open handle of e closed (e->mu held); deletes an orphan at the
 * last close. */
int orphan_release_locked(struct lsmfs *fs, struct inode_ent *e);
/* Mount-time sweep of orphans left by a crash; *n_swept counts them. */
int orphan_sweep(struct lsmfs *fs, uint64_t *n_swept);

#endif /* LSMFS_FS_H */
