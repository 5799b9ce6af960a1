/*
 * engine_lsm.c - lsm-bench adapter for our own engine, through lsm.h only.
 *
 * Settings: lsm_options_init() defaults, then the shared bench settings:
 * write_buffer_size, block_cache_bytes, bloom_bits_per_key, the chosen
 * compression on every level, background_threads, target_file_size and
 * max_bytes_for_level_base. Level-0 triggers and paranoid_checks stay at
 * their defaults (4/20/36, checksums verified), like RocksDB's. A fresh
 * store is demanded (error_if_exists).
 *
 * Gets use lsm_get_into() with a per-call stack buffer, so no allocation
 * per read; a value longer than the buffer is still reported with its
 * full length.
 *
 * Write amplification is the engine's own statistic
 * "lsm.write-amplification-x1000" (its definition is the engine's; the
 * peers' adapters compute table bytes written by flush + compaction over
 * user bytes, which the engine's statistic is meant to match); levels come
 * from the "lsm.levels" text property. If the property fails, the report
 * prints "-".
 *
 * Invariants:
 *  1. The struct bench_db wraps exactly one open lsm_db and is freed by
 *     close() whatever lsm_close() returns.
 *  2. Every failure message includes lsm_strerror() and lsm_errdetail(),
 *     read on the thread that saw the failure (the detail is per thread).
 *
 * Thread safety: lsm_db is thread-safe (lsm.h); an iterator is used by one
 * thread.
 */
#include "engine.h"

#include "lsm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct bench_db {
	lsm_db *db;
};

static int lsmb_fail(struct bench_err *e, const char *what, int rc)
{
	const char *detail = lsm_errdetail();

	return bench_fail(e, "lsm %s: %s%s%s", what, lsm_strerror(rc),
			  detail && *detail ? ": " : "", detail ? detail : "");
}

static lsm_compression lsmb_compression(enum bench_compression c)
{
	switch (c) {
	case BENCH_COMPRESS_LZ4:
		return LSM_COMPRESS_LZ4;
	case BENCH_COMPRESS_ZSTD:
		return LSM_COMPRESS_ZSTD;
	case BENCH_COMPRESS_NONE:
		break;
	}
	return LSM_COMPRESS_NONE;
}

static void lsmb_describe(const struct bench_config *cfg, char *buf, size_t cap)
{
	static const char *const names[] = {"none", "lz4", "zstd"};
	static const char *const styles[] = {"leveled", "size-tiered",
					     "time-window"};
	char l0[64] = "", tiered[96] = "";
	lsm_options def;
	int l0_pct;

	lsm_options_init(&def);
	l0_pct = cfg->lsm_l0_size_percent >= 0 ? cfg->lsm_l0_size_percent
					       : def.level0_size_percent;
	if (cfg->lsm_compaction == LSM_COMPACTION_LEVELED && l0_pct)
		snprintf(l0, sizeof(l0),
			 " (L0 waits for %d%% of the base level)", l0_pct);
	else if (cfg->lsm_compaction == LSM_COMPACTION_LEVELED)
		snprintf(l0, sizeof(l0), " (L0 by file count alone)");
	if (cfg->lsm_compaction == LSM_COMPACTION_TIERED)
		snprintf(tiered, sizeof(tiered),
			 " (min merge width %u, space bound %u%%)",
			 cfg->lsm_min_merge_width ? cfg->lsm_min_merge_width
						  : def.min_merge_width,
			 cfg->lsm_size_amp_percent
				 ? cfg->lsm_size_amp_percent
				 : def.max_size_amplification_percent);

	snprintf(buf, cap,
		 "lsm %s: %s compaction%s, %s compression on all levels, "
		 "bloom filters, %d background threads, level0 triggers "
		 "default%s, checksums verified on read",
		 LSM_VERSION_STRING, styles[cfg->lsm_compaction], tiered,
		 names[cfg->compression], cfg->background_jobs, l0);
}

static int lsmb_open(const struct bench_config *cfg, const char *dir,
		     struct bench_db **out, struct bench_err *e)
{
	struct bench_db *d;
	lsm_options o;
	int rc;

	d = calloc(1, sizeof(*d));
	if (!d)
		return bench_fail(e, "lsm open: out of memory");
	lsm_options_init(&o);
	o.create_if_missing = true;
	o.error_if_exists = true;
	o.write_buffer_size = cfg->write_buffer_size;
	o.block_cache_bytes = cfg->cache_size;
	o.bloom_bits_per_key = cfg->bloom_bits;
	for (int i = 0; i < LSM_MAX_LEVELS; i++)
		o.compression[i] = lsmb_compression(cfg->compression);
	o.background_threads = cfg->background_jobs;
	o.target_file_size = cfg->target_file_size;
	o.max_bytes_for_level_base = cfg->max_bytes_for_level_base;
	o.compaction_style = (lsm_compaction_style)cfg->lsm_compaction;
	if (cfg->lsm_l0_size_percent >= 0)
		o.level0_size_percent = cfg->lsm_l0_size_percent;
	if (cfg->lsm_min_merge_width)
		o.min_merge_width = cfg->lsm_min_merge_width;
	if (cfg->lsm_size_amp_percent)
		o.max_size_amplification_percent = cfg->lsm_size_amp_percent;
	if (cfg->lsm_blob_threshold >= 0)
		o.blob_threshold = (size_t)cfg->lsm_blob_threshold;

	rc = lsm_open(dir, &o, &d->db);
	if (rc) {
		free(d);
		return lsmb_fail(e, "open", rc);
	}
	*out = d;
	return 0;
}

static int lsmb_close(struct bench_db *d, struct bench_err *e)
{
	int rc = lsm_close(d->db);

	free(d);
	return rc ? lsmb_fail(e, "close", rc) : 0;
}

static int lsmb_put(struct bench_db *d, const void *key, size_t key_len,
		    const void *val, size_t val_len, bool sync,
		    struct bench_err *e)
{
	int rc =
		lsm_put(d->db, key, key_len, val, val_len, sync ? LSM_SYNC : 0);

	return rc ? lsmb_fail(e, "put", rc) : 0;
}

static int lsmb_get(struct bench_db *d, const void *key, size_t key_len,
		    bool *found, size_t *val_len, struct bench_err *e)
{
	char buf[4096];
	size_t len = 0;
	int rc;

	rc = lsm_get_into(d->db, NULL, key, key_len, buf, sizeof(buf), &len);
	if (rc == LSM_E_NOTFOUND) {
		*found = false;
		*val_len = 0;
		return 0;
	}
	if (rc)
		return lsmb_fail(e, "get", rc);
	*found = true;
	*val_len = len;
	return 0;
}

static int lsmb_del(struct bench_db *d, const void *key, size_t key_len,
		    bool sync, struct bench_err *e)
{
	int rc = lsm_delete(d->db, key, key_len, sync ? LSM_SYNC : 0);

	return rc ? lsmb_fail(e, "delete", rc) : 0;
}

static int lsmb_scan(struct bench_db *d, bench_scan_fn fn, void *ctx,
		     struct bench_err *e)
{
	lsm_iter_options io;
	lsm_iter *it;
	int rc;

	lsm_iter_options_init(&io);
	rc = lsm_iter_new(d->db, &io, &it);
	if (rc)
		return lsmb_fail(e, "iterator", rc);
	for (lsm_iter_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
		const void *k, *v;
		size_t kl, vl;

		k = lsm_iter_key(it, &kl);
		v = lsm_iter_value(it, &vl);
		fn(ctx, k, kl, v, vl);
	}
	rc = lsm_iter_status(it);
	lsm_iter_free(it);
	return rc ? lsmb_fail(e, "iterator", rc) : 0;
}

static int lsmb_wamp_x1000(struct bench_db *d, uint64_t user_bytes,
			   uint64_t *out, struct bench_err *e)
{
	uint64_t v;
	int rc;

	(void)user_bytes; /* the engine counts its own user bytes */
	rc = lsm_property_u64(d->db, "lsm.write-amplification-x1000", &v);
	if (rc)
		return lsmb_fail(e, "property lsm.write-amplification-x1000",
				 rc);
	*out = v;
	return 0;
}

static int lsmb_wamp_wal_x1000(struct bench_db *d, uint64_t *out,
			       struct bench_err *e)
{
	int rc = lsm_property_u64(d->db, "lsm.write-amplification-wal-x1000",
				  out);
	return rc ? lsmb_fail(e, "property lsm.write-amplification-wal-x1000",
			      rc)
		  : 0;
}

/* Settled once "lsm.background-work" reads 0 twice, 100 ms apart (a
 * compaction may be picked just after the previous one ends). */
static int lsmb_settle(struct bench_db *d, struct bench_err *e)
{
	const struct timespec tick = {0, 100 * 1000 * 1000};
	int idle = 0;

	while (idle < 2) {
		uint64_t v;
		int rc = lsm_property_u64(d->db, "lsm.background-work", &v);
		if (rc)
			return lsmb_fail(e, "property lsm.background-work", rc);
		idle = v ? 0 : idle + 1;
		nanosleep(&tick, NULL);
	}
	return 0;
}

static int lsmb_levels(struct bench_db *d, char **out, struct bench_err *e)
{
	char *s, *copy;
	int rc;

	rc = lsm_property(d->db, "lsm.levels", &s);
	if (rc)
		return lsmb_fail(e, "property lsm.levels", rc);
	copy = strdup(s);
	lsm_free(s);
	if (!copy)
		return bench_fail(e, "lsm: out of memory");
	*out = copy;
	return 0;
}

const struct bench_engine bench_engine_lsm = {
	.name = "lsm",
	.describe = lsmb_describe,
	.open = lsmb_open,
	.close = lsmb_close,
	.put = lsmb_put,
	.get = lsmb_get,
	.del = lsmb_del,
	.scan = lsmb_scan,
	.wamp_x1000 = lsmb_wamp_x1000,
	.wamp_wal_x1000 = lsmb_wamp_wal_x1000,
	.settle = lsmb_settle,
	.levels = lsmb_levels,
};
