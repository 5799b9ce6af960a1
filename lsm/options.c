/*
 * options.c - option defaults and validation.
 *
 * Defaults are written once, here, and documented beside each field in
 * lsm.h. Validation names the offending field in lsm_errdetail() so that
 * a user who set a wrong value learns which one.
 */
#include "db_int.h"

#include "util/status.h"

void lsm_options_init(lsm_options *o)
{
	memset(o, 0, sizeof(*o));
	o->create_if_missing = true;
	o->error_if_exists = false;
	o->read_only = false;
	o->paranoid_checks = true;
	o->write_buffer_size = 64u << 20;
	o->max_immutable_memtables = 2;
	o->block_size = 4096;
	o->block_restart_interval = 16;
	o->bloom_bits_per_key = 10;
	for (int i = 0; i < LSM_MAX_LEVELS; i++)
		o->compression[i] = LSM_COMPRESS_LZ4;
	o->zstd_level = 3;
	o->block_cache_bytes = 8u << 20;
	o->max_open_files = 1000;
	o->background_threads = 2;
	o->level0_compaction_trigger = 4;
	o->level0_slowdown_trigger = 20;
	o->level0_stop_trigger = 36;
	o->max_bytes_for_level_base = 256ull << 20;
	o->level_size_multiplier = 10;
	o->target_file_size = 64ull << 20;
	o->soft_pending_compaction_bytes = 64ull << 30;
	o->hard_pending_compaction_bytes = 256ull << 30;
	o->compaction_style = LSM_COMPACTION_LEVELED;
	o->min_merge_width = 8;
	o->max_merge_width = UINT32_MAX;
	o->size_ratio_percent = 100;
	o->max_size_amplification_percent = 200;
	o->window_seconds = 3600;
	o->ttl_seconds = 0;
	o->blob_threshold = 16u << 10;
	o->blob_file_size = 256ull << 20;
	o->blob_gc_percent = 50;
	o->env = NULL;
	o->log_fn = NULL;
	o->log_ctx = NULL;
}

void lsm_iter_options_init(lsm_iter_options *o)
{
	memset(o, 0, sizeof(*o));
	o->fill_cache = true;
}

/* Ten years: windows are compared in microseconds, far from overflow. */
#define MAX_WINDOW_SECONDS (10ull * 366 * 24 * 3600)

#define BAD(field, ...) lsm_err(-EINVAL, "option " field ": " __VA_ARGS__)

int options_validate(const lsm_options *o)
{
	if (o->write_buffer_size < (64u << 10) ||
	    o->write_buffer_size > (4ull << 30))
		return BAD("write_buffer_size", "%zu is outside 64 KiB..4 GiB",
			   o->write_buffer_size);
	if (o->max_immutable_memtables < 1 || o->max_immutable_memtables > 16)
		return BAD("max_immutable_memtables", "%d is outside 1..16",
			   o->max_immutable_memtables);
	if (o->block_size < 256 || o->block_size > (4u << 20))
		return BAD("block_size", "%zu is outside 256..4 MiB",
			   o->block_size);
	if (o->block_restart_interval < 1 || o->block_restart_interval > 1024)
		return BAD("block_restart_interval", "%d is outside 1..1024",
			   o->block_restart_interval);
	if (o->bloom_bits_per_key < 0 || o->bloom_bits_per_key > 64)
		return BAD("bloom_bits_per_key", "%d is outside 0..64",
			   o->bloom_bits_per_key);
	for (int i = 0; i < LSM_MAX_LEVELS; i++)
		if ((unsigned)o->compression[i] > LSM_COMPRESS_ZSTD)
			return BAD("compression", "level %d: unknown kind %d",
				   i, (int)o->compression[i]);
	if (o->zstd_level < 1 || o->zstd_level > 22)
		return BAD("zstd_level", "%d is outside 1..22", o->zstd_level);
	if (o->max_open_files < 16)
		return BAD("max_open_files", "%d is below 16",
			   o->max_open_files);
	if (o->background_threads < 1 || o->background_threads > 64)
		return BAD("background_threads", "%d is outside 1..64",
			   o->background_threads);
	if (o->level0_compaction_trigger < 1)
		return BAD("level0_compaction_trigger", "%d is below 1",
			   o->level0_compaction_trigger);
	if (o->level0_size_percent < 0 || o->level0_size_percent > 1000)
		return BAD("level0_size_percent", "%d is not in 0..1000",
			   o->level0_size_percent);
	if (o->level0_slowdown_trigger < o->level0_compaction_trigger)
		return BAD("level0_slowdown_trigger",
			   "%d is below level0_compaction_trigger (%d)",
			   o->level0_slowdown_trigger,
			   o->level0_compaction_trigger);
	if (o->level0_stop_trigger < o->level0_slowdown_trigger)
		return BAD("level0_stop_trigger",
			   "%d is below level0_slowdown_trigger (%d)",
			   o->level0_stop_trigger, o->level0_slowdown_trigger);
	if (o->max_bytes_for_level_base < (64u << 10))
		return BAD("max_bytes_for_level_base", "%llu is below 64 KiB",
			   (unsigned long long)o->max_bytes_for_level_base);
	if (o->level_size_multiplier < 2 || o->level_size_multiplier > 100)
		return BAD("level_size_multiplier", "%d is outside 2..100",
			   o->level_size_multiplier);
	if (o->target_file_size < (16u << 10) ||
	    o->target_file_size > (4ull << 30))
		return BAD("target_file_size", "%llu is outside 16 KiB..4 GiB",
			   (unsigned long long)o->target_file_size);
	if (o->hard_pending_compaction_bytes < o->soft_pending_compaction_bytes)
		return BAD("hard_pending_compaction_bytes",
			   "below soft_pending_compaction_bytes");
	if ((unsigned)o->compaction_style > LSM_COMPACTION_TIME_WINDOW)
		return BAD("compaction_style", "unknown style %d",
			   (int)o->compaction_style);
	if (o->min_merge_width < 2)
		return BAD("min_merge_width", "%u is below 2",
			   o->min_merge_width);
	/* A size class waits for min_merge_width runs; writers slow at
	 * level0_slowdown_trigger runs of one class. */
	if (o->compaction_style == LSM_COMPACTION_TIERED &&
	    o->min_merge_width >= (uint32_t)o->level0_slowdown_trigger)
		return BAD("min_merge_width",
			   "%u is not below level0_slowdown_trigger (%d): "
			   "writers would slow before a merge could start",
			   o->min_merge_width, o->level0_slowdown_trigger);
	if (o->max_merge_width < o->min_merge_width)
		return BAD("max_merge_width",
			   "%u is below min_merge_width (%u)",
			   o->max_merge_width, o->min_merge_width);
	if (o->size_ratio_percent > 10000)
		return BAD("size_ratio_percent", "%u is above 10000",
			   o->size_ratio_percent);
	if (o->max_size_amplification_percent < 1 ||
	    o->max_size_amplification_percent > 100000)
		return BAD("max_size_amplification_percent",
			   "%u is outside 1..100000",
			   o->max_size_amplification_percent);
	if (o->window_seconds < 1 || o->window_seconds > MAX_WINDOW_SECONDS)
		return BAD("window_seconds", "%llu is outside 1..%llu",
			   (unsigned long long)o->window_seconds,
			   (unsigned long long)MAX_WINDOW_SECONDS);
	if (o->blob_threshold != 0 &&
	    (o->blob_threshold < 64 || o->blob_threshold > (256u << 20)))
		return BAD("blob_threshold",
			   "%zu is neither 0 nor in 64..256 MiB",
			   o->blob_threshold);
	if (o->blob_file_size < (1u << 20) || o->blob_file_size > (64ull << 30))
		return BAD("blob_file_size", "%llu is outside 1 MiB..64 GiB",
			   (unsigned long long)o->blob_file_size);
	if (o->blob_gc_percent < 1 || o->blob_gc_percent > 100)
		return BAD("blob_gc_percent", "%u is outside 1..100",
			   o->blob_gc_percent);
	if (o->ttl_seconds != 0 && (o->ttl_seconds < o->window_seconds ||
				    o->ttl_seconds > MAX_WINDOW_SECONDS * 10))
		return BAD("ttl_seconds",
			   "%llu is neither 0 nor in window_seconds (%llu).."
			   "100 years",
			   (unsigned long long)o->ttl_seconds,
			   (unsigned long long)o->window_seconds);
	return 0;
}
