/*
 * keys.h - the lsmfs key schema (fs/FORMAT.md): one-letter prefixes
 * followed by big-endian integers so that keys sort numerically.
 */
#ifndef LSMFS_KEYS_H
#define LSMFS_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define KEY_SUPER 'S'
#define KEY_INODE 'I'
#define KEY_DIRENT 'D'
#define KEY_BLOCK 'B'
#define KEY_XATTR 'X'
#define KEY_ORPHAN 'O'

/* Longest name stored in a dirent or xattr key. */
#define KEY_NAME_MAX 255
/* Room for the longest key: prefix + u64 + name. */
#define KEY_MAX_LEN (1 + 8 + KEY_NAME_MAX)

void key_put_be64(uint8_t *p, uint64_t v);
uint64_t key_get_be64(const uint8_t *p);

/* Each builder writes into buf (at least KEY_MAX_LEN bytes) and returns
 * the key length. */
size_t key_super(uint8_t *buf);
/* prefix + ino: the inode key, the orphan key, and the lower bound of an
 * ino's dirents, blocks or xattrs (pass the prefix). */
size_t key_ino(uint8_t *buf, char prefix, uint64_t ino);
size_t key_dirent(uint8_t *buf, uint64_t parent, const char *name,
		  size_t name_len);
size_t key_block(uint8_t *buf, uint64_t ino, uint64_t idx);
size_t key_xattr(uint8_t *buf, uint64_t ino, const char *name, size_t name_len);

#endif /* LSMFS_KEYS_H */
