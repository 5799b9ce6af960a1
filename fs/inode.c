/*
 * inode.c - inode and superblock records, and the engine-to-errno map.
 *
 * Why: the inode record is the one place a file's attributes live; it is
 * rewritten in the same batch as every change to the file, so its encoding
 * must be explicit and versioned (fs/FORMAT.md), never a memcpy of a
 * struct.
 *
 * Layout of an inode value (little-endian integers):
 *   u8 version (1) | u32 mode | u32 uid | u32 gid | u32 flags |
 *   u64 nlink | u64 size | u64 rdev | u64 parent |
 *   atime, mtime, ctime: each s64 seconds + u32 nanoseconds |
 *   symlink target (rest of the value; symlinks only)
 * Superblock value: 8-byte magic "LSMFSSB1" | u32 version | 16-byte uuid |
 *   u64 next_ino | u32 block size | s64 seconds + u32 ns creation time.
 *
 * Invariants:
 *  1. Decoders check every length and the version; a bad record is an
 *     LSM_E_CORRUPT/LSM_E_FORMAT status with a detail, never a crash.
 *  2. Out-parameters are written on success only.
 *  3. A symlink target is at most INODE_TARGET_MAX bytes.
 *
 * Thread safety: pure functions; the error detail is thread-local.
 */
#include "inode.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lsm.h"

static _Thread_local char decode_detail[256];

const char *inode_errdetail(void)
{
	return decode_detail;
}

static int decode_fail(int status, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int decode_fail(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(decode_detail, sizeof(decode_detail), fmt, ap);
	va_end(ap);
	return status;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint8_t *put_time(uint8_t *p, const struct timespec *ts)
{
	put_le64(p, (uint64_t)(int64_t)ts->tv_sec);
	put_le32(p + 8, (uint32_t)ts->tv_nsec);
	return p + 12;
}

static const uint8_t *get_time(const uint8_t *p, struct timespec *ts)
{
	ts->tv_sec = (time_t)(int64_t)get_le64(p);
	ts->tv_nsec = (long)get_le32(p + 8);
	return p + 12;
}

size_t inode_encode(const struct lsmfs_inode *in, const char *target,
		    size_t target_len, uint8_t *buf)
{
	uint8_t *p = buf;

	*p++ = INODE_VERSION;
	put_le32(p, in->mode);
	put_le32(p + 4, in->uid);
	put_le32(p + 8, in->gid);
	put_le32(p + 12, in->flags);
	p += 16;
	put_le64(p, in->nlink);
	put_le64(p + 8, in->size);
	put_le64(p + 16, in->rdev);
	put_le64(p + 24, in->parent);
	p += 32;
	p = put_time(p, &in->atime);
	p = put_time(p, &in->mtime);
	p = put_time(p, &in->ctime);
	if (target && target_len) {
		if (target_len > INODE_TARGET_MAX)
			target_len = INODE_TARGET_MAX;
		memcpy(p, target, target_len);
		p += target_len;
	}
	return (size_t)(p - buf);
}

int inode_decode(const uint8_t *p, size_t len, uint64_t ino,
		 struct lsmfs_inode *out, const uint8_t **target,
		 size_t *target_len)
{
	struct lsmfs_inode in;
	const uint8_t *q;

	if (len < 1)
		return decode_fail(LSM_E_CORRUPT, "inode %llu: empty record",
				   (unsigned long long)ino);
	if (p[0] != INODE_VERSION)
		return decode_fail(LSM_E_FORMAT,
				   "inode %llu: unknown record version %u",
				   (unsigned long long)ino, p[0]);
	if (len < INODE_FIXED_LEN)
		return decode_fail(LSM_E_CORRUPT,
				   "inode %llu: record of %zu bytes, "
				   "need %d",
				   (unsigned long long)ino, len,
				   INODE_FIXED_LEN);
	if (len > INODE_MAX_LEN)
		return decode_fail(LSM_E_CORRUPT,
				   "inode %llu: record of %zu bytes is "
				   "too long",
				   (unsigned long long)ino, len);
	q = p + 1;
	in.mode = get_le32(q);
	in.uid = get_le32(q + 4);
	in.gid = get_le32(q + 8);
	in.flags = get_le32(q + 12);
	q += 16;
	in.nlink = get_le64(q);
	in.size = get_le64(q + 8);
	in.rdev = get_le64(q + 16);
	in.parent = get_le64(q + 24);
	q += 32;
	q = get_time(q, &in.atime);
	q = get_time(q, &in.mtime);
	q = get_time(q, &in.ctime);
	if (in.atime.tv_nsec >= 1000000000L ||
	    in.mtime.tv_nsec >= 1000000000L || in.ctime.tv_nsec >= 1000000000L)
		return decode_fail(LSM_E_CORRUPT,
				   "inode %llu: nanoseconds out of range",
				   (unsigned long long)ino);
	if (len > INODE_FIXED_LEN && !S_ISLNK(in.mode))
		return decode_fail(LSM_E_CORRUPT,
				   "inode %llu: trailing bytes after a "
				   "non-symlink record",
				   (unsigned long long)ino);
	*target = q;
	*target_len = len - INODE_FIXED_LEN;
	*out = in;
	return 0;
}

void inode_to_stat(const struct lsmfs_inode *in, uint64_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = in->mode;
	st->st_nlink = in->nlink;
	st->st_uid = in->uid;
	st->st_gid = in->gid;
	st->st_rdev = in->rdev;
	st->st_size = (off_t)in->size;
	st->st_blksize = FS_BLOCK_SIZE;
	/* Holes are not counted: the size rounded up to whole blocks. */
	st->st_blocks =
		(blkcnt_t)(((in->size + FS_BLOCK_SIZE - 1) / FS_BLOCK_SIZE) *
			   (FS_BLOCK_SIZE / 512));
	st->st_atim = in->atime;
	st->st_mtim = in->mtime;
	st->st_ctim = in->ctime;
}

void inode_now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

void sb_encode(const struct lsmfs_super *sb, uint8_t *buf)
{
	memcpy(buf, SB_MAGIC, 8);
	put_le32(buf + 8, sb->version);
	memcpy(buf + 12, sb->uuid, 16);
	put_le64(buf + 28, sb->next_ino);
	put_le32(buf + 36, sb->block_size);
	put_time(buf + 40, &sb->created);
}

int sb_decode(const uint8_t *p, size_t len, struct lsmfs_super *out)
{
	struct lsmfs_super sb;

	if (len < 12 || memcmp(p, SB_MAGIC, 8) != 0)
		return decode_fail(LSM_E_CORRUPT,
				   "superblock: bad magic or length %zu", len);
	sb.version = get_le32(p + 8);
	if (sb.version != SB_VERSION)
		return decode_fail(LSM_E_FORMAT,
				   "superblock: format version %u, this "
				   "lsmfs reads version %d",
				   sb.version, SB_VERSION);
	if (len != SB_LEN)
		return decode_fail(LSM_E_CORRUPT,
				   "superblock: %zu bytes, expected %d", len,
				   SB_LEN);
	memcpy(sb.uuid, p + 12, 16);
	sb.next_ino = get_le64(p + 28);
	sb.block_size = get_le32(p + 36);
	get_time(p + 40, &sb.created);
	if (sb.block_size != FS_BLOCK_SIZE)
		return decode_fail(LSM_E_FORMAT,
				   "superblock: block size %u unsupported",
				   sb.block_size);
	if (sb.next_ino <= ROOT_INO)
		return decode_fail(LSM_E_CORRUPT,
				   "superblock: next inode %llu is invalid",
				   (unsigned long long)sb.next_ino);
	*out = sb;
	return 0;
}

int fs_errno(int status)
{
	if (status >= 0)
		return 0;
	switch (status) {
	case LSM_E_NOTFOUND:
		return ENOENT;
	case LSM_E_CORRUPT:
		return EIO;
	case -ENOSPC:
		return ENOSPC;
	case -ENOMEM:
		return ENOMEM;
	default:
		break;
	}
	if (status > -1000 && status < 0 &&
	    (status == -ENOENT || status == -EEXIST || status == -ENOTDIR ||
	     status == -EISDIR || status == -ENOTEMPTY || status == -EINVAL ||
	     status == -ENAMETOOLONG || status == -ERANGE ||
	     status == -ENODATA || status == -E2BIG || status == -ENXIO ||
	     status == -EOPNOTSUPP || status == -EFBIG || status == -EPERM ||
	     status == -EACCES || status == -EROFS || status == -ESTALE ||
	     status == -EOVERFLOW || status == -EBADF || status == -EEXIST))
		return -status;
	return EIO;
}
