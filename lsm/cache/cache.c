/*
 * cache.c - sharded LRU cache with refcounted handles.
 *
 * The key space is split into 2^shard_bits shards by the high bits of a
 * 64-bit mix of (k1, k2); each shard has its own mutex, chained hash table
 * (low bits of the same mix pick the bucket; doubled when entries exceed
 * buckets) and LRU list, so there is no global lock. A handle is the entry
 * itself: callers get a pointer to it and hand it back to cache_release().
 *
 * An entry is in one of three states:
 *   cached, unreferenced: in the table and on the shard's LRU list;
 *   cached, referenced:   in the table, off the LRU list (not evictable);
 *   detached, referenced: erased or replaced, only handles reach it.
 * It is freed (deleter called) when it is neither in the table nor
 * referenced.
 *
 * Invariants (per shard, under its mutex):
 *  1. An entry is on the LRU list iff is_cached && refs == 0.
 *  2. usage == sum of charge over entries with is_cached.
 *  3. After every operation that releases the lock, usage > capacity only
 *     if the LRU list is empty (all cached entries are referenced).
 *  4. Each value's deleter runs exactly once, after the entry has left
 *     both the table and every handle. Deleters run with no lock held
 *     (they are collected on a local list first).
 *  5. Capacity 0 disables caching: an insert returns a detached entry.
 *
 * Thread safety: every function may be called from any thread.
 * cache_value() takes no lock (value is immutable while referenced).
 * Hit and miss counters are relaxed atomics per shard, summed on read.
 */
#include "cache/cache.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_MAX_SHARD_BITS 16
#define CACHE_MIN_BUCKETS 16

struct cache_handle {
	uint64_t k1, k2;
	uint64_t hash;
	void *value;
	size_t charge;
	void (*deleter)(void *value, void *ctx);
	void *ctx;
	struct cache_handle *chain;               /* next in the bucket */
	struct cache_handle *lru_prev, *lru_next; /* ring through shard->lru */
	uint32_t refs;                            /* handles out; shard mutex */
	bool is_cached; /* in the table; shard mutex */
};

struct cache_shard {
	pthread_mutex_t mu;
	/* All below protected by mu, except the counters (atomic). */
	struct cache_handle **buckets;
	size_t n_buckets; /* power of two */
	size_t n_entries; /* cached entries */
	size_t usage;
	size_t capacity;
	/* LRU ring sentinel: lru.lru_next is the oldest, lru.lru_prev the
	 * newest unreferenced entry. */
	struct cache_handle lru;
	_Atomic uint64_t hits;
	_Atomic uint64_t misses;
} __attribute__((aligned(64)));

struct cache {
	size_t capacity;
	unsigned shard_bits;
	size_t n_shards;
	struct cache_shard *shards;
};

/* A strong 64-bit mix of the two key words (murmur3 finaliser). */
static inline uint64_t cache_mix(uint64_t k1, uint64_t k2)
{
	uint64_t h = k1 * UINT64_C(0x9e3779b97f4a7c15) ^
		     (k2 + UINT64_C(0x632be59bd9b4e019));
	h ^= h >> 33;
	h *= UINT64_C(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= UINT64_C(0xc4ceb9fe1a85ec53);
	h ^= h >> 33;
	return h;
}

static inline struct cache_shard *cache_shard_of(const struct cache *c,
						 uint64_t hash)
{
	size_t i = c->shard_bits ? (size_t)(hash >> (64 - c->shard_bits)) : 0;
	return &c->shards[i];
}

static void lru_remove(struct cache_handle *e)
{
	e->lru_next->lru_prev = e->lru_prev;
	e->lru_prev->lru_next = e->lru_next;
	e->lru_next = e->lru_prev = NULL;
}

static void lru_append(struct cache_shard *s, struct cache_handle *e)
{
	e->lru_next = &s->lru;
	e->lru_prev = s->lru.lru_prev;
	e->lru_prev->lru_next = e;
	s->lru.lru_prev = e;
}

static struct cache_handle **table_slot(struct cache_shard *s, uint64_t hash,
					uint64_t k1, uint64_t k2)
{
	struct cache_handle **pp = &s->buckets[hash & (s->n_buckets - 1)];
	while (*pp && ((*pp)->k1 != k1 || (*pp)->k2 != k2))
		pp = &(*pp)->chain;
	return pp;
}

/* Doubles the bucket array; on ENOMEM keeps the old one (longer chains). */
static void table_grow(struct cache_shard *s)
{
	size_t n = s->n_buckets * 2;
	struct cache_handle **nb = calloc(n, sizeof(*nb));
	if (!nb)
		return;
	for (size_t i = 0; i < s->n_buckets; i++) {
		struct cache_handle *e = s->buckets[i];
		while (e) {
			struct cache_handle *next = e->chain;
			struct cache_handle **b = &nb[e->hash & (n - 1)];
			e->chain = *b;
			*b = e;
			e = next;
		}
	}
	free(s->buckets);
	s->buckets = nb;
	s->n_buckets = n;
}

/*
 * Takes a cached entry out of the table (the slot pp points at it). If no
 * handle references it, it is pushed on *dead for deletion after unlock.
 */
static void detach_locked(struct cache_shard *s, struct cache_handle **pp,
			  struct cache_handle **dead)
{
	struct cache_handle *e = *pp;
	assert(e->is_cached);
	*pp = e->chain;
	e->chain = NULL;
	e->is_cached = false;
	s->n_entries--;
	s->usage -= e->charge;
	if (e->refs == 0) {
		lru_remove(e);
		e->chain = *dead;
		*dead = e;
	}
}

/* Evicts least-recently-used unreferenced entries while over capacity. */
static void evict_locked(struct cache_shard *s, struct cache_handle **dead)
{
	while (s->usage > s->capacity && s->lru.lru_next != &s->lru) {
		struct cache_handle *old = s->lru.lru_next;
		struct cache_handle **pp =
			table_slot(s, old->hash, old->k1, old->k2);
		assert(*pp == old);
		detach_locked(s, pp, dead);
	}
}

static void free_entries(struct cache_handle *dead)
{
	while (dead) {
		struct cache_handle *next = dead->chain;
		if (dead->deleter)
			dead->deleter(dead->value, dead->ctx);
		free(dead);
		dead = next;
	}
}

struct cache *cache_new(size_t capacity, int shard_bits)
{
	if (shard_bits < 0)
		shard_bits = 0;
	if (shard_bits > CACHE_MAX_SHARD_BITS)
		shard_bits = CACHE_MAX_SHARD_BITS;
	struct cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->capacity = capacity;
	c->shard_bits = (unsigned)shard_bits;
	c->n_shards = (size_t)1 << shard_bits;
	c->shards = aligned_alloc(64, c->n_shards * sizeof(*c->shards));
	if (!c->shards)
		goto out_free_cache;
	/* Round up so that the shards together hold at least capacity. */
	size_t per_shard =
		capacity / c->n_shards + (capacity % c->n_shards ? 1 : 0);
	size_t i;
	for (i = 0; i < c->n_shards; i++) {
		struct cache_shard *s = &c->shards[i];
		memset(s, 0, sizeof(*s));
		s->capacity = per_shard;
		s->lru.lru_next = s->lru.lru_prev = &s->lru;
		atomic_init(&s->hits, 0);
		atomic_init(&s->misses, 0);
		s->n_buckets = CACHE_MIN_BUCKETS;
		s->buckets = calloc(s->n_buckets, sizeof(*s->buckets));
		if (!s->buckets)
			goto out_free_shards;
		if (pthread_mutex_init(&s->mu, NULL) != 0) {
			free(s->buckets);
			goto out_free_shards;
		}
	}
	return c;

out_free_shards:
	while (i-- > 0) {
		pthread_mutex_destroy(&c->shards[i].mu);
		free(c->shards[i].buckets);
	}
	free(c->shards);
out_free_cache:
	free(c);
	return NULL;
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_shards; i++) {
		struct cache_shard *s = &c->shards[i];
		struct cache_handle *dead = NULL;
		for (size_t b = 0; b < s->n_buckets; b++) {
			while (s->buckets[b]) {
				/* A referenced entry here is a caller bug. */
				assert(s->buckets[b]->refs == 0);
				detach_locked(s, &s->buckets[b], &dead);
			}
		}
		free_entries(dead);
		free(s->buckets);
		pthread_mutex_destroy(&s->mu);
	}
	free(c->shards);
	free(c);
}

struct cache_handle *cache_insert(struct cache *c, uint64_t k1, uint64_t k2,
				  void *value, size_t charge,
				  void (*deleter)(void *value, void *ctx),
				  void *ctx)
{
	struct cache_handle *e = malloc(sizeof(*e));
	if (!e)
		return NULL;
	e->k1 = k1;
	e->k2 = k2;
	e->hash = cache_mix(k1, k2);
	e->value = value;
	e->charge = charge;
	e->deleter = deleter;
	e->ctx = ctx;
	e->chain = NULL;
	e->lru_prev = e->lru_next = NULL;
	e->refs = 1;
	e->is_cached = false;

	struct cache_shard *s = cache_shard_of(c, e->hash);
	struct cache_handle *dead = NULL;
	pthread_mutex_lock(&s->mu);
	if (s->capacity > 0) {
		struct cache_handle **pp = table_slot(s, e->hash, k1, k2);
		if (*pp)
			detach_locked(s, pp, &dead);
		/* pp still points at the chain's end (or at what followed
		 * the replaced entry): insert at the bucket head instead. */
		struct cache_handle **b =
			&s->buckets[e->hash & (s->n_buckets - 1)];
		e->chain = *b;
		*b = e;
		e->is_cached = true;
		s->n_entries++;
		s->usage += charge;
		evict_locked(s, &dead);
		if (s->n_entries > s->n_buckets)
			table_grow(s);
	}
	pthread_mutex_unlock(&s->mu);
	free_entries(dead);
	return e;
}

struct cache_handle *cache_lookup(struct cache *c, uint64_t k1, uint64_t k2)
{
	uint64_t hash = cache_mix(k1, k2);
	struct cache_shard *s = cache_shard_of(c, hash);
	pthread_mutex_lock(&s->mu);
	struct cache_handle *e = *table_slot(s, hash, k1, k2);
	if (e) {
		if (e->refs++ == 0)
			lru_remove(e);
	}
	pthread_mutex_unlock(&s->mu);
	atomic_fetch_add_explicit(e ? &s->hits : &s->misses, 1,
				  memory_order_relaxed);
	return e;
}

void *cache_value(const struct cache_handle *h)
{
	return h->value;
}

void cache_release(struct cache *c, struct cache_handle *h)
{
	struct cache_shard *s = cache_shard_of(c, h->hash);
	struct cache_handle *dead = NULL;
	pthread_mutex_lock(&s->mu);
	assert(h->refs > 0);
	if (--h->refs == 0) {
		if (h->is_cached) {
			lru_append(s, h);
			evict_locked(s, &dead);
		} else {
			dead = h;
		}
	}
	pthread_mutex_unlock(&s->mu);
	free_entries(dead);
}

void cache_erase(struct cache *c, uint64_t k1, uint64_t k2)
{
	uint64_t hash = cache_mix(k1, k2);
	struct cache_shard *s = cache_shard_of(c, hash);
	struct cache_handle *dead = NULL;
	pthread_mutex_lock(&s->mu);
	struct cache_handle **pp = table_slot(s, hash, k1, k2);
	if (*pp)
		detach_locked(s, pp, &dead);
	pthread_mutex_unlock(&s->mu);
	free_entries(dead);
}

uint64_t cache_hits(const struct cache *c)
{
	uint64_t n = 0;
	for (size_t i = 0; i < c->n_shards; i++)
		n += atomic_load_explicit(&c->shards[i].hits,
					  memory_order_relaxed);
	return n;
}

uint64_t cache_misses(const struct cache *c)
{
	uint64_t n = 0;
	for (size_t i = 0; i < c->n_shards; i++)
		n += atomic_load_explicit(&c->shards[i].misses,
					  memory_order_relaxed);
	return n;
}

size_t cache_usage(const struct cache *c)
{
	size_t n = 0;
	for (size_t i = 0; i < c->n_shards; i++) {
		struct cache_shard *s = &c->shards[i];
		pthread_mutex_lock(&s->mu);
		n += s->usage;
		pthread_mutex_unlock(&s->mu);
	}
	return n;
}

size_t cache_capacity(const struct cache *c)
{
	return c->capacity;
}
