/*
 * keys.c - builds the keys of the lsmfs schema (fs/FORMAT.md).
 *
 * Why: every record of the filesystem lives in one ordered key space, so
 * the encoding decides what a prefix scan returns: all dirents of one
 * directory, all blocks of one file in offset order, all xattrs of one
 * inode. Range deletions of a file's blocks or xattrs use the key of the
 * same prefix with ino + 1 as their exclusive end.
 *
 * Invariants:
 *  1. Integers in keys are big-endian, so bytewise order = numeric order.
 *  2. A key is its prefix byte, then the inode number (8 bytes), then a
 *     block index (8 bytes) or a name (no terminator; its length is the
 *     rest of the key).
 *  3. Builders never write more than KEY_MAX_LEN bytes.
 *
 * Thread safety: pure functions.
 */
#include "keys.h"

#include <string.h>

void key_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

uint64_t key_get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

size_t key_super(uint8_t *buf)
{
	buf[0] = KEY_SUPER;
	return 1;
}

size_t key_ino(uint8_t *buf, char prefix, uint64_t ino)
{
	buf[0] = (uint8_t)prefix;
	key_put_be64(buf + 1, ino);
	return 9;
}

size_t key_dirent(uint8_t *buf, uint64_t parent, const char *name,
		  size_t name_len)
{
	if (name_len > KEY_NAME_MAX)
		name_len = KEY_NAME_MAX;
	key_ino(buf, KEY_DIRENT, parent);
	memcpy(buf + 9, name, name_len);
	return 9 + name_len;
}

size_t key_block(uint8_t *buf, uint64_t ino, uint64_t idx)
{
	key_ino(buf, KEY_BLOCK, ino);
	key_put_be64(buf + 9, idx);
	return 17;
}

size_t key_xattr(uint8_t *buf, uint64_t ino, const char *name, size_t name_len)
{
	if (name_len > KEY_NAME_MAX)
		name_len = KEY_NAME_MAX;
	key_ino(buf, KEY_XATTR, ino);
	memcpy(buf + 9, name, name_len);
	return 9 + name_len;
}
