/*
 * table_cache.h - open SST readers, shared and bounded.
 *
 * Readers are kept in an LRU cache keyed by file number with a charge of
 * one, so the capacity is the number of open files (max_open_files less a
 * margin for WALs and the manifest). A handle pins one reader; release it
 * when done. Each entry also holds the file's range tombstones fragmented
 * once, so that point reads can test coverage by binary search.
 *
 * Thread-safe: any number of threads may look up and release at once.
 */
#ifndef LSM_VERSION_TABLE_CACHE_H
#define LSM_VERSION_TABLE_CACHE_H

#include "cache/cache.h"
#include "env/env.h"
#include "iter/rangedel.h"
#include "sst/sst.h"

struct table {
	struct sst_reader *r;
	const struct range_tomb *rt; /* the file's tombstones, by start */
	size_t n_rt;
	struct tomb_set *frag; /* rt fragmented at SEQ_MAX; NULL if none */
	uint64_t max_tomb_seq;
};

struct tcache_opts {
	lsm_env *env;
	const char *dir;
	struct cache *block_cache;
	bool verify_checksums;
};

int tcache_find(struct cache *tc, const struct tcache_opts *o, uint64_t number,
		struct cache_handle **out);
static inline struct table *tcache_table(struct cache_handle *h)
{
	return (struct table *)cache_value(h);
}
void tcache_evict(struct cache *tc, uint64_t number);

/* Blob file readers share the cache (and its bound on open files) under
 * the key (number, 1). */
struct blob_reader;
int bcache_find(struct cache *tc, const struct tcache_opts *o, uint64_t number,
		struct cache_handle **out);
static inline struct blob_reader *bcache_reader(struct cache_handle *h)
{
	return (struct blob_reader *)cache_value(h);
}
void bcache_evict(struct cache *tc, uint64_t number);
/* Largest seq <= read_seq of a tombstone in t covering ukey, or 0. */
uint64_t table_cover(const struct table *t, struct slice ukey,
		     uint64_t read_seq);

#endif
