/*
 * sst.h - sorted string table files: writer and reader.
 * On-disk layout: lsm/FORMAT.md, "SST files"; constants in sst_format.h.
 */
#ifndef LSM_SST_SST_H
#define LSM_SST_SST_H

#include "iter/iter.h"
#include "lsm.h"
#include "util/slice.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache;
struct sst_writer;
struct sst_reader;

struct sst_writer_opts {
	size_t block_size;      /* target uncompressed data block size (4096) */
	int restart_interval;   /* data-block restart interval (16) */
	int bloom_bits_per_key; /* 0: no filter block (10) */
	lsm_compression compression; /* data blocks (none) */
	int zstd_level;              /* (3) */
	uint64_t time_lo, time_hi; /* time range of the entries, microseconds */
};

/* Fills o with the defaults noted above. */
void sst_writer_opts_init(struct sst_writer_opts *o);

struct sst_props {
	uint64_t num_entries;   /* point entries (puts + deletes) */
	uint64_t num_deletions; /* point deletes */
	uint64_t num_range_deletions;
	uint64_t raw_key_bytes,
		raw_value_bytes; /* point entries, uncompressed */
	uint64_t data_bytes;     /* data blocks with trailers (= their end) */
	uint64_t index_bytes, filter_bytes; /* with trailers */
	uint64_t file_size; /* not stored: from the file / writer */
	uint64_t smallest_seq, largest_seq; /* over all entries; 0 if none */
	uint64_t time_lo, time_hi;
	uint64_t compression; /* lsm_compression of data blocks */
	uint64_t format_version;
	/* malloc'd copies owned by the props; free with sst_props_release().
	 * NULL / 0 when the file has no such entries. */
	uint8_t *smallest, *largest; /* point internal keys */
	size_t smallest_len, largest_len;
	uint8_t *rd_smallest; /* smallest range-deletion start internal key */
	uint8_t *rd_largest;  /* largest range-deletion END USER KEY */
	size_t rd_smallest_len, rd_largest_len;
	/* The writer's distinct-key sketch of the point entries
	 * (util/sketch.h, SKETCH_REGS bytes); NULL when read from a file,
	 * which does not store it. */
	uint8_t *sketch;
};

void sst_props_release(struct sst_props *p);

/* --- Writer: one thread at a time. --- */

/* Creates (truncates) path. */
int sstw_open(lsm_env *env, const char *path, const struct sst_writer_opts *o,
	      struct sst_writer **out);
/* Point entries (IKEY_PUT / IKEY_DELETE) in strictly increasing ikey_cmp
 * order; -EINVAL otherwise. The first I/O error poisons the writer. */
int sstw_add(struct sst_writer *w, struct slice ikey, struct slice value);
/* Range tombstone [user(start_ikey), end_ukey) at ikey_seq(start_ikey);
 * start_ikey has kind IKEY_RANGE_DELETE; calls in increasing ikey_cmp
 * order of start_ikey. */
int sstw_add_range_del(struct sst_writer *w, struct slice start_ikey,
		       struct slice end_ukey);
/* Bytes written so far plus the block being built. */
uint64_t sstw_estimated_size(const struct sst_writer *w);
/* Point entries plus range tombstones added so far. */
uint64_t sstw_num_entries(const struct sst_writer *w);
/* Writes all blocks and the footer, syncs, closes and frees w (also on
 * failure). On success *props (if non-NULL) is filled; release it with
 * sst_props_release(). */
int sstw_finish(struct sst_writer *w, struct sst_props *props);
/* Closes and frees w; the caller deletes the file. */
void sstw_abandon(struct sst_writer *w);

/* --- Reader: thread-safe after open. --- */

/* Reads footer, index, filter, properties and range tombstones. Data
 * blocks go through block_cache (may be NULL) keyed (file_number, offset).
 * verify_checksums: also check data-block checksums (meta blocks are always
 * checked). */
int sstr_open(lsm_env *env, const char *path, uint64_t file_number,
	      struct cache *block_cache, bool verify_checksums,
	      struct sst_reader **out);
/* All iterators must have been freed. */
void sstr_close(struct sst_reader *r);
const struct sst_props *sstr_props(const struct sst_reader *r);
const char *sstr_path(const struct sst_reader *r);
/* Bloom check; true if the file has no filter. */
bool sstr_may_contain(const struct sst_reader *r, struct slice user_key);
/* The hash the filters use for user_key: a lookup that consults several
 * files computes it once and passes it to the _hash functions below. */
uint64_t sstr_key_hash(struct slice user_key);
bool sstr_may_contain_hash(const struct sst_reader *r, uint64_t key_hash);
/*
 * Finds the first point entry with ikey >= lookup_ikey; if its user key
 * equals lookup's, calls fn(ctx, ikey, value) (slices valid only during the
 * call) and returns 1, or fn's return value if negative. Returns 0 if there
 * is no such entry or the bloom filter rules the key out
 * (*bloom_negative = true then; false otherwise, if non-NULL), or a
 * negative status on I/O error / corruption.
 */
int sstr_get(struct sst_reader *r, struct slice lookup_ikey,
	     int (*fn)(void *ctx, struct slice ikey, struct slice value),
	     void *ctx, bool *bloom_negative);
/* sstr_get() with key_hash = sstr_key_hash(user key of lookup_ikey). */
int sstr_get_hashed(struct sst_reader *r, struct slice lookup_ikey,
		    uint64_t key_hash,
		    int (*fn)(void *ctx, struct slice ikey, struct slice value),
		    void *ctx, bool *bloom_negative);

struct range_tomb {
	struct slice start; /* start user key */
	struct slice end;   /* exclusive end user key */
	uint64_t seq;
};
/* All range tombstones, sorted by (start, seq desc); owned by r. */
size_t sstr_range_tombs(const struct sst_reader *r,
			const struct range_tomb **out);

/* Iterator over the point entries (iter/iter.h, complete including prev and
 * seek_for_prev). Valid only while r stays open. fill_cache: insert blocks
 * read into the block cache (false for compaction scans). NULL on ENOMEM. */
struct ikv_iter *sstr_iter_new(struct sst_reader *r, bool fill_cache);
/*
 * For an iterator that stacks SST iterators and knows it (a level of the
 * database iterator): iter_next(it), then iter_valid(it) and, when valid,
 * iter_key(it) into *key and iter_value(it) into *value, all in one direct
 * call instead of three through the table. `it` must come from
 * sstr_iter_new() and be valid; *key and *value are written only when the
 * result is true and stay valid as iter_key()'s do (iter.h contract 1).
 */
bool sstr_iter_step(struct ikv_iter *it, struct slice *key,
		    struct slice *value);

/* Approximate file offset where entries >= ikey start. */
uint64_t sstr_approx_offset(struct sst_reader *r, struct slice ikey);
/* Bytes read from the file by this reader (data blocks not served from
 * the cache, plus open). */
uint64_t sstr_bytes_read(const struct sst_reader *r);

#endif
