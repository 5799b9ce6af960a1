/*
 * engine_leveldb.c - lsm-bench adapter for LevelDB (through its C API).
 *
 * Settings, matching the other engines as far as LevelDB allows:
 * write_buffer_size, an LRU block cache of cache_size, a bloom filter of
 * bloom_bits per key, max_file_size = target_file_size, WAL on. LevelDB
 * offers only snappy or no compression: lz4 and zstd are replaced by
 * snappy, and describe() says so in the output header. LevelDB has one
 * background compaction thread and fixed level sizes (10 MiB for L1, x10
 * per level), which cannot be changed. Reads verify checksums
 * (verify_checksums = true, LevelDB's default is false) because the other
 * two engines verify them too.
 *
 * Write amplification: "leveldb.stats" lists, per level, Write(MB) (bytes
 * written by flushes into level 0 and by compactions into each level,
 * rounded to whole MiB). Their sum over the user bytes the benchmark wrote
 * is the same definition as for the other engines; the rounding costs at
 * most 0.5 MiB per level.
 *
 * Invariants:
 *  1. A struct bench_db owns every LevelDB object it points to; the filter
 *     policy and cache, which LevelDB's options only borrow, are freed
 *     after the database is closed.
 *  2. Errors returned by LevelDB (malloc'd strings) are copied into the
 *     caller's bench_err and freed at once.
 *
 * Thread safety: LevelDB's DB handle is thread-safe; option objects are
 * created in open() and only read afterwards.
 */
#include "engine.h"

#include <leveldb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct bench_db {
	leveldb_t *db;
	leveldb_options_t *opts;
	leveldb_filterpolicy_t *filter;
	leveldb_cache_t *cache;
	leveldb_readoptions_t *ropts;
	leveldb_writeoptions_t *wopts;
	leveldb_writeoptions_t *wopts_sync;
};

static int ldb_fail(struct bench_err *e, const char *what, char *err)
{
	bench_fail(e, "leveldb %s: %s", what, err ? err : "unknown error");
	leveldb_free(err);
	return -1;
}

static void ldb_describe(const struct bench_config *cfg, char *buf, size_t cap)
{
	const char *comp = "no compression";

	if (cfg->compression == BENCH_COMPRESS_LZ4)
		comp = "snappy compression (LevelDB has no lz4; snappy is "
		       "the closest it offers)";
	else if (cfg->compression == BENCH_COMPRESS_ZSTD)
		comp = "snappy compression (this LevelDB has no zstd)";
	snprintf(buf, cap,
		 "LevelDB %d.%d: %s, bloom filters, 1 background thread "
		 "(fixed), L1 10 MiB (fixed), checksums verified on read",
		 leveldb_major_version(), leveldb_minor_version(), comp);
}

static void ldb_free(struct bench_db *d)
{
	if (d->db)
		leveldb_close(d->db);
	if (d->opts)
		leveldb_options_destroy(d->opts);
	if (d->filter)
		leveldb_filterpolicy_destroy(d->filter);
	if (d->cache)
		leveldb_cache_destroy(d->cache);
	if (d->ropts)
		leveldb_readoptions_destroy(d->ropts);
	if (d->wopts)
		leveldb_writeoptions_destroy(d->wopts);
	if (d->wopts_sync)
		leveldb_writeoptions_destroy(d->wopts_sync);
	free(d);
}

static int ldb_open(const struct bench_config *cfg, const char *dir,
		    struct bench_db **out, struct bench_err *e)
{
	struct bench_db *d;
	char *err = NULL;

	d = calloc(1, sizeof(*d));
	if (!d)
		return bench_fail(e, "leveldb open: out of memory");
	d->opts = leveldb_options_create();
	d->cache = leveldb_cache_create_lru(cfg->cache_size);
	d->ropts = leveldb_readoptions_create();
	d->wopts = leveldb_writeoptions_create();
	d->wopts_sync = leveldb_writeoptions_create();

	leveldb_options_set_create_if_missing(d->opts, 1);
	leveldb_options_set_error_if_exists(d->opts, 1);
	leveldb_options_set_write_buffer_size(d->opts, cfg->write_buffer_size);
	leveldb_options_set_cache(d->opts, d->cache);
	if (cfg->bloom_bits > 0) {
		d->filter = leveldb_filterpolicy_create_bloom(cfg->bloom_bits);
		leveldb_options_set_filter_policy(d->opts, d->filter);
	}
	leveldb_options_set_max_file_size(d->opts, cfg->target_file_size);
	leveldb_options_set_compression(d->opts,
					cfg->compression == BENCH_COMPRESS_NONE
						? leveldb_no_compression
						: leveldb_snappy_compression);
	leveldb_readoptions_set_verify_checksums(d->ropts, 1);
	leveldb_writeoptions_set_sync(d->wopts, 0);
	leveldb_writeoptions_set_sync(d->wopts_sync, 1);

	d->db = leveldb_open(d->opts, dir, &err);
	if (err) {
		d->db = NULL;
		ldb_free(d);
		return ldb_fail(e, "open", err);
	}
	*out = d;
	return 0;
}

static int ldb_close(struct bench_db *d, struct bench_err *e)
{
	(void)e; /* closing cannot fail through the C API */
	ldb_free(d);
	return 0;
}

static int ldb_put(struct bench_db *d, const void *key, size_t key_len,
		   const void *val, size_t val_len, bool sync,
		   struct bench_err *e)
{
	char *err = NULL;

	leveldb_put(d->db, sync ? d->wopts_sync : d->wopts, key, key_len, val,
		    val_len, &err);
	return err ? ldb_fail(e, "put", err) : 0;
}

static int ldb_get(struct bench_db *d, const void *key, size_t key_len,
		   bool *found, size_t *val_len, struct bench_err *e)
{
	char *err = NULL, *v;
	size_t len = 0;

	/* The C API always returns a malloc'd copy. */
	v = leveldb_get(d->db, d->ropts, key, key_len, &len, &err);
	if (err)
		return ldb_fail(e, "get", err);
	*found = v != NULL;
	*val_len = v ? len : 0;
	leveldb_free(v);
	return 0;
}

static int ldb_del(struct bench_db *d, const void *key, size_t key_len,
		   bool sync, struct bench_err *e)
{
	char *err = NULL;

	leveldb_delete(d->db, sync ? d->wopts_sync : d->wopts, key, key_len,
		       &err);
	return err ? ldb_fail(e, "delete", err) : 0;
}

static int ldb_scan(struct bench_db *d, bench_scan_fn fn, void *ctx,
		    struct bench_err *e)
{
	leveldb_iterator_t *it;
	char *err = NULL;

	it = leveldb_create_iterator(d->db, d->ropts);
	for (leveldb_iter_seek_to_first(it); leveldb_iter_valid(it);
	     leveldb_iter_next(it)) {
		const void *k, *v;
		size_t kl, vl;

		k = leveldb_iter_key(it, &kl);
		v = leveldb_iter_value(it, &vl);
		fn(ctx, k, kl, v, vl);
	}
	leveldb_iter_get_error(it, &err);
	leveldb_iter_destroy(it);
	return err ? ldb_fail(e, "iterator", err) : 0;
}

/*
 * leveldb.stats looks like
 *                                Compactions
 *   Level  Files Size(MB) Time(sec) Read(MB) Write(MB)
 *   --------------------------------------------------
 *     0        2        4         0        0         8
 * with one row per level that has files or compaction history.
 */
static int ldb_wamp_x1000(struct bench_db *d, uint64_t user_bytes,
			  uint64_t *out, struct bench_err *e)
{
	char *stats, *line, *save = NULL;
	double written_mb = 0;
	bool in_table = false;

	stats = leveldb_property_value(d->db, "leveldb.stats");
	if (!stats)
		return bench_fail(e, "leveldb: no leveldb.stats property");
	for (line = strtok_r(stats, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		int level, files;
		double size, secs, rd, wr;

		if (strncmp(line, "-----", 5) == 0) {
			in_table = true;
			continue;
		}
		if (!in_table)
			continue;
		if (sscanf(line, "%d %d %lf %lf %lf %lf", &level, &files, &size,
			   &secs, &rd, &wr) != 6)
			break;
		written_mb += wr;
	}
	leveldb_free(stats);
	if (!in_table)
		return bench_fail(e, "leveldb: cannot parse leveldb.stats");
	if (user_bytes == 0)
		return bench_fail(e, "leveldb: no user bytes written");
	*out = (uint64_t)(written_mb * 1048576.0 * 1000.0 / (double)user_bytes +
			  0.5);
	return 0;
}

/* LevelDB tells nothing about pending work; its one background thread
 * compacts while any level is over its target, and every compaction
 * changes "leveldb.stats". Settled once that text stays the same for two
 * seconds (a LevelDB compaction of 2 MiB files takes far less). */
static int ldb_settle(struct bench_db *d, struct bench_err *e)
{
	const struct timespec tick = {0, 500 * 1000 * 1000};
	char *prev = NULL;
	int same = 0;

	while (same < 4) {
		char *s = leveldb_property_value(d->db, "leveldb.stats");

		if (!s) {
			free(prev);
			return bench_fail(e,
					  "leveldb: no leveldb.stats property");
		}
		same = prev && strcmp(prev, s) == 0 ? same + 1 : 0;
		free(prev);
		prev = strdup(s);
		leveldb_free(s);
		if (!prev)
			return bench_fail(e, "leveldb: out of memory");
		nanosleep(&tick, NULL);
	}
	free(prev);
	return 0;
}

static int ldb_levels(struct bench_db *d, char **out, struct bench_err *e)
{
	char *s = leveldb_property_value(d->db, "leveldb.stats");
	char *copy;

	if (!s)
		return bench_fail(e, "leveldb: no leveldb.stats property");
	/* Hand back plain malloc'd memory (the caller uses free()). */
	copy = strdup(s);
	leveldb_free(s);
	if (!copy)
		return bench_fail(e, "leveldb: out of memory");
	*out = copy;
	return 0;
}

const struct bench_engine bench_engine_leveldb = {
	.name = "leveldb",
	.describe = ldb_describe,
	.open = ldb_open,
	.close = ldb_close,
	.put = ldb_put,
	.get = ldb_get,
	.del = ldb_del,
	.scan = ldb_scan,
	.wamp_x1000 = ldb_wamp_x1000,
	.settle = ldb_settle,
	.levels = ldb_levels,
};
