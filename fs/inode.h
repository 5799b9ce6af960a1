/*
 * inode.h - inode and superblock records (fs/FORMAT.md): explicit
 * encode/decode, attribute conversion.
 */
#ifndef LSMFS_INODE_H
#define LSMFS_INODE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#define INODE_VERSION 1
#define INODE_FIXED_LEN 85
#define INODE_TARGET_MAX 4095
#define INODE_MAX_LEN (INODE_FIXED_LEN + INODE_TARGET_MAX)

#define SB_MAGIC "LSMFSSB1"
#define SB_VERSION 1
#define SB_LEN 52
#define FS_BLOCK_SIZE 4096
/* Inode numbers are handed out in chunks; the superblock records the
 * chunk end. */
#define INO_CHUNK 1024
#define ROOT_INO 1
/* Inode flags (stored). */
#define INODE_F_XATTRS 0x1 /* may own xattrs ("X" keys) */
/* Up to this many blocks are deleted one by one, beyond it with one range
 * deletion (range tombstones cost every later read until compacted). */
#define DROP_POINT_MAX_BLOCKS 16

/* A decoded inode record (the symlink target is kept apart). */
struct lsmfs_inode {
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint32_t flags;
	uint64_t nlink;
	uint64_t size;
	uint64_t rdev;
	uint64_t parent; /* directories: the parent's ino; others 0 */
	struct timespec atime;
	struct timespec mtime;
	struct timespec ctime;
};

struct lsmfs_super {
	uint32_t version;
	uint8_t uuid[16];
	uint64_t next_ino; /* end of the last handed-out chunk */
	uint32_t block_size;
	struct timespec created;
};

/* Encodes into buf (INODE_MAX_LEN bytes); returns the length. */
size_t inode_encode(const struct lsmfs_inode *in, const char *target,
		    size_t target_len, uint8_t *buf);
/* Decodes; the target (symlinks) points into p. LSM_E_CORRUPT (with a
 * detail naming the inode) or LSM_E_FORMAT on bad input. */
int inode_decode(const uint8_t *p, size_t len, uint64_t ino,
		 struct lsmfs_inode *out, const uint8_t **target,
		 size_t *target_len);
void inode_to_stat(const struct lsmfs_inode *in, uint64_t ino, struct stat *st);
void inode_now(struct timespec *ts);

/* Superblock: encode into SB_LEN bytes; decode reports a bad magic as
 * LSM_E_CORRUPT and an unknown version as LSM_E_FORMAT. */
void sb_encode(const struct lsmfs_super *sb, uint8_t *buf);
int sb_decode(const uint8_t *p, size_t len, struct lsmfs_super *out);

/* The one place engine status codes become errno values (positive). */
int fs_errno(int status);

/* Detail of the last decode failure on this thread ("" if none). */
const char *inode_errdetail(void);

#endif /* LSMFS_INODE_H */
