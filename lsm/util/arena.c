/*
 * arena.c - bump allocation in blocks that grow from 4 KiB to 64 KiB, so
 * that a small memtable's usage tracks its contents closely; large
 * requests get their own block so that a big value does not waste the
 * rest of a block.
 *
 * Invariants:
 *  1. Every pointer returned is 8-byte aligned.
 *  2. usage == sum over blocks of (payload size + header).
 */
#include "util/arena.h"

#include <stdint.h>
#include <stdlib.h>

#define ARENA_BLOCK 65536
#define ARENA_FIRST_BLOCK 4096

struct arena_block {
	struct arena_block *next;
	size_t size;
	_Alignas(16) char data[];
};

void arena_init(struct arena *a)
{
	a->cur = NULL;
	a->left = 0;
	a->blocks = NULL;
	a->next_block = ARENA_FIRST_BLOCK;
	atomic_init(&a->usage, 0);
}

void arena_release(struct arena *a)
{
	struct arena_block *b = a->blocks;
	while (b) {
		struct arena_block *next = b->next;
		free(b);
		b = next;
	}
	arena_init(a);
}

static struct arena_block *arena_new_block(struct arena *a, size_t size)
{
	struct arena_block *b = malloc(sizeof(*b) + size);
	if (!b)
		return NULL;
	b->size = size;
	b->next = a->blocks;
	a->blocks = b;
	atomic_fetch_add_explicit(&a->usage, sizeof(*b) + size,
				  memory_order_relaxed);
	return b;
}

void *arena_alloc(struct arena *a, size_t n)
{
	size_t pad = (8 - ((uintptr_t)a->cur & 7)) & 7;
	struct arena_block *b;
	if (n == 0)
		n = 1;
	if (a->cur && n + pad <= a->left) {
		char *p = a->cur + pad;
		a->cur = p + n;
		a->left -= n + pad;
		return p;
	}
	if (n > a->next_block / 4) {
		/* Oversized: own block, keep the current one for small ones.
		 * It was pushed in front of the list, which is fine: the list
		 * only serves release. */
		b = arena_new_block(a, n);
		return b ? b->data : NULL;
	}
	b = arena_new_block(a, a->next_block);
	if (!b)
		return NULL;
	a->cur = b->data + n;
	a->left = a->next_block - n;
	if (a->next_block < ARENA_BLOCK)
		a->next_block *= 2;
	return b->data;
}

size_t arena_usage(const struct arena *a)
{
	return atomic_load_explicit(&a->usage, memory_order_relaxed);
}
