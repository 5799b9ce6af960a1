/*
 * engine_rocksdb.c - lsm-bench adapter for RocksDB (through its C API).
 *
 * Settings, matching the other engines: memtable write_buffer_size, block
 * based tables with an LRU block cache of cache_size and a full bloom
 * filter of bloom_bits per key, the chosen compression on every level
 * (bottommost included: it inherits `compression`), WAL on, 2 background
 * jobs (RocksDB grows its thread pools to match at open), target file size
 * and max_bytes_for_level_base from the config, level-0 triggers left at
 * their defaults. Reads use RocksDB's default ReadOptions (checksums
 * verified, blocks cached) and rocksdb_get_pinned(), so a get does not
 * copy the value.
 *
 * Write amplification: the RocksDB 7.8 C API exposes only text
 * properties, and "rocksdb.stats" prints Write(GB) with one decimal (useless
 * below tens of GB) and its own W-Amp relative to flushed (compressed)
 * bytes, not user bytes. But the same "Sum" row also prints Wr(MB/s) =
 * bytes_written / MiB / seconds and Comp(sec) = those seconds, so their
 * product recovers flush + compaction bytes written to about 1%. We divide
 * that by the user bytes the benchmark wrote; the definition is then the
 * same as for the other engines. If the product looks wrong next to
 * Write(GB) (when Write(GB) is large enough to mean something), Write(GB)
 * wins. (The LOG's table_file_creation events would be exact but the LOG
 * is flushed only every few seconds, so it is stale while the DB is open.)
 *
 * Invariants:
 *  1. A struct bench_db owns every RocksDB object it points to and frees
 *     them all in close(), whether or not open() completed.
 *  2. Errors returned by RocksDB (malloc'd strings) are copied into the
 *     caller's bench_err and freed at once.
 *
 * Thread safety: RocksDB's DB handle is thread-safe; the option objects are
 * created in open() and only read afterwards.
 */
#include "engine.h"

#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef ROCKSDB_VERSION_STR
#define ROCKSDB_VERSION_STR "?"
#endif

struct bench_db {
	rocksdb_t *db;
	rocksdb_options_t *opts;
	rocksdb_block_based_table_options_t *table_opts;
	rocksdb_cache_t *cache;
	rocksdb_readoptions_t *ropts;
	rocksdb_writeoptions_t *wopts;
	rocksdb_writeoptions_t *wopts_sync;
};

static int rdb_fail(struct bench_err *e, const char *what, char *err)
{
	bench_fail(e, "rocksdb %s: %s", what, err ? err : "unknown error");
	free(err);
	return -1;
}

static int rdb_compression(enum bench_compression c)
{
	switch (c) {
	case BENCH_COMPRESS_LZ4:
		return rocksdb_lz4_compression;
	case BENCH_COMPRESS_ZSTD:
		return rocksdb_zstd_compression;
	case BENCH_COMPRESS_NONE:
		break;
	}
	return rocksdb_no_compression;
}

static void rdb_describe(const struct bench_config *cfg, char *buf, size_t cap)
{
	static const char *const names[] = {"none", "lz4", "zstd"};

	snprintf(buf, cap,
		 "RocksDB %s: %s compression on all levels, full bloom "
		 "filters, max_background_jobs %d, level0 triggers default "
		 "(4/20/36), checksums verified on read",
		 ROCKSDB_VERSION_STR, names[cfg->compression],
		 cfg->background_jobs);
}

static void rdb_free(struct bench_db *d)
{
	if (d->db)
		rocksdb_close(d->db);
	if (d->opts)
		rocksdb_options_destroy(d->opts);
	/* The table factory keeps its own reference to the cache and the
	 * filter policy, so both may go after the options. */
	if (d->table_opts)
		rocksdb_block_based_options_destroy(d->table_opts);
	if (d->cache)
		rocksdb_cache_destroy(d->cache);
	if (d->ropts)
		rocksdb_readoptions_destroy(d->ropts);
	if (d->wopts)
		rocksdb_writeoptions_destroy(d->wopts);
	if (d->wopts_sync)
		rocksdb_writeoptions_destroy(d->wopts_sync);
	free(d);
}

static int rdb_open(const struct bench_config *cfg, const char *dir,
		    struct bench_db **out, struct bench_err *e)
{
	struct bench_db *d;
	char *err = NULL;

	d = calloc(1, sizeof(*d));
	if (!d)
		return bench_fail(e, "rocksdb open: out of memory");
	d->opts = rocksdb_options_create();
	d->table_opts = rocksdb_block_based_options_create();
	d->cache = rocksdb_cache_create_lru(cfg->cache_size);
	d->ropts = rocksdb_readoptions_create();
	d->wopts = rocksdb_writeoptions_create();
	d->wopts_sync = rocksdb_writeoptions_create();

	rocksdb_block_based_options_set_block_cache(d->table_opts, d->cache);
	if (cfg->bloom_bits > 0)
		rocksdb_block_based_options_set_filter_policy(
			d->table_opts,
			rocksdb_filterpolicy_create_bloom(cfg->bloom_bits));
	rocksdb_options_set_block_based_table_factory(d->opts, d->table_opts);

	rocksdb_options_set_create_if_missing(d->opts, 1);
	rocksdb_options_set_error_if_exists(d->opts, 1);
	rocksdb_options_set_write_buffer_size(d->opts, cfg->write_buffer_size);
	rocksdb_options_set_compression(d->opts,
					rdb_compression(cfg->compression));
	rocksdb_options_set_max_background_jobs(d->opts, cfg->background_jobs);
	rocksdb_options_set_target_file_size_base(d->opts,
						  cfg->target_file_size);
	rocksdb_options_set_max_bytes_for_level_base(
		d->opts, cfg->max_bytes_for_level_base);

	rocksdb_writeoptions_set_sync(d->wopts, 0);
	rocksdb_writeoptions_set_sync(d->wopts_sync, 1);

	d->db = rocksdb_open(d->opts, dir, &err);
	if (err) {
		d->db = NULL;
		rdb_free(d);
		return rdb_fail(e, "open", err);
	}
	*out = d;
	return 0;
}

static int rdb_close(struct bench_db *d, struct bench_err *e)
{
	(void)e; /* closing cannot fail through the C API */
	rdb_free(d);
	return 0;
}

static int rdb_put(struct bench_db *d, const void *key, size_t key_len,
		   const void *val, size_t val_len, bool sync,
		   struct bench_err *e)
{
	char *err = NULL;

	rocksdb_put(d->db, sync ? d->wopts_sync : d->wopts, key, key_len, val,
		    val_len, &err);
	return err ? rdb_fail(e, "put", err) : 0;
}

static int rdb_get(struct bench_db *d, const void *key, size_t key_len,
		   bool *found, size_t *val_len, struct bench_err *e)
{
	rocksdb_pinnableslice_t *ps;
	char *err = NULL;
	size_t len = 0;

	ps = rocksdb_get_pinned(d->db, d->ropts, key, key_len, &err);
	if (err)
		return rdb_fail(e, "get", err);
	if (ps) {
		rocksdb_pinnableslice_value(ps, &len);
		rocksdb_pinnableslice_destroy(ps);
	}
	*found = ps != NULL;
	*val_len = len;
	return 0;
}

static int rdb_del(struct bench_db *d, const void *key, size_t key_len,
		   bool sync, struct bench_err *e)
{
	char *err = NULL;

	rocksdb_delete(d->db, sync ? d->wopts_sync : d->wopts, key, key_len,
		       &err);
	return err ? rdb_fail(e, "delete", err) : 0;
}

static int rdb_scan(struct bench_db *d, bench_scan_fn fn, void *ctx,
		    struct bench_err *e)
{
	rocksdb_iterator_t *it;
	char *err = NULL;

	it = rocksdb_create_iterator(d->db, d->ropts);
	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		const void *k, *v;
		size_t kl, vl;

		k = rocksdb_iter_key(it, &kl);
		v = rocksdb_iter_value(it, &vl);
		fn(ctx, k, kl, v, vl);
	}
	rocksdb_iter_get_error(it, &err);
	rocksdb_iter_destroy(it);
	return err ? rdb_fail(e, "iterator", err) : 0;
}

/* Splits s into whitespace-separated tokens (in place); returns the count,
 * at most max. */
static int rdb_tokens(char *s, char **tok, int max)
{
	char *save = NULL;
	int n = 0;

	for (char *p = strtok_r(s, " \t", &save); p && n < max;
	     p = strtok_r(NULL, " \t", &save))
		tok[n++] = p;
	return n;
}

/*
 * Finds, in the first "** Compaction Stats" table of rocksdb.stats, the
 * "Sum" row's value under each of the named columns. The Size column
 * prints as two tokens ("12.59 MB") under a one-token header, so columns
 * are matched counting from the end of the line, where every value is one
 * token.
 */
static int rdb_sum_columns(char *stats, const char *const *names, int n,
			   double *vals)
{
	char *header = NULL, *sum = NULL, *line, *save = NULL;
	char *htok[64], *stok[64];
	int nh, ns, found = 0;

	for (line = strtok_r(stats, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		while (*line == ' ')
			line++;
		if (!header && strncmp(line, "Level ", 6) == 0)
			header = line;
		else if (header && strncmp(line, "Sum ", 4) == 0) {
			sum = line;
			break;
		}
	}
	if (!header || !sum)
		return -1;
	nh = rdb_tokens(header, htok, 64);
	ns = rdb_tokens(sum, stok, 64);
	for (int c = 0; c < n; c++) {
		for (int i = 0; i < nh; i++) {
			int j = ns - (nh - i);

			if (strcmp(htok[i], names[c]) != 0 || j < 0)
				continue;
			vals[c] = strtod(stok[j], NULL);
			found++;
			break;
		}
	}
	return found == n ? 0 : -1;
}

static int rdb_wamp_x1000(struct bench_db *d, uint64_t user_bytes,
			  uint64_t *out, struct bench_err *e)
{
	static const char *const cols[] = {"Write(GB)", "Wr(MB/s)",
					   "Comp(sec)"};
	double v[3], bytes, bytes_gb;
	char *stats;
	int rc;

	stats = rocksdb_property_value(d->db, "rocksdb.stats");
	if (!stats)
		return bench_fail(e, "rocksdb: no rocksdb.stats property");
	rc = rdb_sum_columns(stats, cols, 3, v);
	free(stats);
	if (rc)
		return bench_fail(e, "rocksdb: cannot parse rocksdb.stats");
	bytes = v[1] * v[2] * 1048576.0;
	bytes_gb = v[0] * 1073741824.0;
	if (v[0] >= 10 && (bytes < 0.9 * bytes_gb || bytes > 1.1 * bytes_gb))
		bytes = bytes_gb;
	if (user_bytes == 0)
		return bench_fail(e, "rocksdb: no user bytes written");
	*out = (uint64_t)(bytes * 1000.0 / (double)user_bytes + 0.5);
	return 0;
}

/* Settled once no flush or compaction is pending or running, twice in a
 * row, 100 ms apart. */
static int rdb_settle(struct bench_db *d, struct bench_err *e)
{
	static const char *const props[] = {"rocksdb.mem-table-flush-pending",
					    "rocksdb.num-running-flushes",
					    "rocksdb.compaction-pending",
					    "rocksdb.num-running-compactions"};
	const struct timespec tick = {0, 100 * 1000 * 1000};
	int idle = 0;

	while (idle < 2) {
		uint64_t sum = 0;

		for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++) {
			uint64_t v;

			if (rocksdb_property_int(d->db, props[i], &v) != 0)
				return bench_fail(e, "rocksdb: no %s property",
						  props[i]);
			sum += v;
		}
		idle = sum ? 0 : idle + 1;
		nanosleep(&tick, NULL);
	}
	return 0;
}

/* The level shape ("rocksdb.levelstats") followed by the per-level
 * compaction table of "rocksdb.stats" (what each level read and wrote:
 * the same breakdown as lsm's level table). */
static int rdb_levels(struct bench_db *d, char **out, struct bench_err *e)
{
	char *s = rocksdb_property_value(d->db, "rocksdb.levelstats");
	char *st = rocksdb_property_value(d->db, "rocksdb.stats");
	const char *from, *to;
	size_t ns, nt;

	if (!s) {
		free(st);
		return bench_fail(e, "rocksdb: no rocksdb.levelstats property");
	}
	from = st ? strstr(st, "** Compaction Stats") : NULL;
	to = from ? strstr(from, "\n\n") : NULL;
	if (from && to) {
		char *both;

		ns = strlen(s);
		nt = (size_t)(to - from) + 1;
		both = malloc(ns + 1 + nt + 1);
		if (both) {
			memcpy(both, s, ns);
			both[ns] = '\n';
			memcpy(both + ns + 1, from, nt);
			both[ns + 1 + nt] = '\0';
			free(s);
			s = both;
		}
	}
	free(st);
	*out = s;
	return 0;
}

const struct bench_engine bench_engine_rocksdb = {
	.name = "rocksdb",
	.describe = rdb_describe,
	.open = rdb_open,
	.close = rdb_close,
	.put = rdb_put,
	.get = rdb_get,
	.del = rdb_del,
	.scan = rdb_scan,
	.wamp_x1000 = rdb_wamp_x1000,
	.settle = rdb_settle,
	.levels = rdb_levels,
};
