/*
 * arena.h - bump allocator for data that dies all at once (a memtable).
 *
 * Single writer: only one thread allocates at a time (the memtable's
 * writer). The memory-usage counter is atomic so that other threads can
 * read it without a lock. Nothing is freed until arena_release().
 */
#ifndef LSM_UTIL_ARENA_H
#define LSM_UTIL_ARENA_H

#include <stdatomic.h>
#include <stddef.h>

struct arena_block;

struct arena {
	char *cur;                  /* next free byte in the current block */
	size_t left;                /* bytes left in the current block */
	struct arena_block *blocks; /* every block, newest first */
	size_t next_block;          /* size of the next block */
	_Atomic size_t usage;       /* bytes of all blocks, with overhead */
};

void arena_init(struct arena *a);
void arena_release(struct arena *a);
/* Returns 8-byte aligned memory, or NULL when out of memory. */
void *arena_alloc(struct arena *a, size_t n);
size_t arena_usage(const struct arena *a);

#endif
