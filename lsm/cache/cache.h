/*
 * cache.h - a sharded LRU cache of refcounted values (the block cache).
 *
 * Keys are two 64-bit words (e.g. a table's cache id and a block offset).
 * A value enters with a charge (its cost against the capacity) and a
 * deleter; the cache calls the deleter exactly once, when the value has left
 * the cache (evicted, erased, replaced or at cache_free) and no handle
 * references it any more.
 *
 * Handles: cache_insert() and cache_lookup() return a referenced handle; the
 * value stays alive until cache_release() of that handle, whatever happens
 * to the entry meanwhile. All functions are thread-safe; a handle may be
 * released by any thread.
 */
#ifndef LSM_CACHE_CACHE_H
#define LSM_CACHE_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct cache;
struct cache_handle;

/* 2^shard_bits shards (callers usually pass 4; clamped to 0..16). The
 * capacity is split evenly among shards. Capacity 0: nothing stays cached,
 * an inserted value is deleted when its handle is released. NULL on ENOMEM. */
struct cache *cache_new(size_t capacity, int shard_bits);
/* Deletes every cached value. All handles must have been released. */
void cache_free(struct cache *c);

/*
 * Inserts (k1, k2) -> value and returns a referenced handle, or NULL on
 * ENOMEM (then the caller still owns value). An existing entry with the
 * same key leaves the cache; its value is deleted when its last handle is
 * released. deleter(value, ctx) may be NULL. It runs without any cache lock
 * held, so it may call into the cache.
 */
struct cache_handle *cache_insert(struct cache *c, uint64_t k1, uint64_t k2,
				  void *value, size_t charge,
				  void (*deleter)(void *value, void *ctx),
				  void *ctx);
/* A referenced handle for (k1, k2), or NULL if not cached. */
struct cache_handle *cache_lookup(struct cache *c, uint64_t k1, uint64_t k2);
/* The handle's value: valid until the handle is released. */
void *cache_value(const struct cache_handle *h);
void cache_release(struct cache *c, struct cache_handle *h);
/* Removes (k1, k2) from the cache; a referenced value lives on until its
 * last handle is released. No-op if absent. */
void cache_erase(struct cache *c, uint64_t k1, uint64_t k2);

uint64_t cache_hits(const struct cache *c);
uint64_t cache_misses(const struct cache *c);
/* Total charge of the entries in the cache (referenced or not; erased or
 * replaced values still referenced by handles are no longer counted). */
size_t cache_usage(const struct cache *c);
size_t cache_capacity(const struct cache *c);

#endif
