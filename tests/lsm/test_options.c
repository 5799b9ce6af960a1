/*
 * test_options.c - lsm_open() option validation.
 *
 * What and why: lsm.h promises that lsm_open() rejects every out-of-range
 * option with -EINVAL and an lsm_errdetail() naming the field, before it
 * touches the directory. A bad value that slipped through would surface
 * much later as a hang (write_buffer_size 0), a crash (block_size 0) or a
 * silently useless store, so each invalid value is tried alone on top of
 * valid defaults.
 *
 * Invariants checked:
 *  1. Each invalid value alone gives -EINVAL, *out stays NULL, the detail
 *     names the field, and no store is created.
 *  2. The defaults from lsm_options_init() are the documented ones and
 *     open fine; NULL options mean the defaults.
 *  3. Boundary values that are valid (background_threads 1 and 64,
 *     max_open_files 16, equal L0 triggers) open fine.
 *
 * Thread-safety: single-threaded test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lsm.h"

static int rm_cb(const char *p, const struct stat *sb, int flag,
		 struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(p);
	return 0;
}

struct octx {
	char base[512];
	char path[600];
};

static int setup(void **state)
{
	struct octx *c = calloc(1, sizeof(*c));
	const char *base = getenv("LSM_TEST_DIR");
	if (c == NULL)
		return -1;
	if (base == NULL || base[0] == '\0')
		base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(c->base, sizeof(c->base), "%s/lsm-options-XXXXXX", base);
	if (mkdtemp(c->base) == NULL) {
		free(c);
		return -1;
	}
	snprintf(c->path, sizeof(c->path), "%s/db", c->base);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct octx *c = *state;
	nftw(c->base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(c);
	return 0;
}

/* Opens with `o`, expecting -EINVAL naming `field`. */
static void expect_invalid(struct octx *c, const lsm_options *o,
			   const char *field, const char *desc)
{
	lsm_db *db = NULL;
	struct stat st;
	int rc = lsm_open(c->path, o, &db);
	if (rc == 0)
		lsm_close(db);
	if (rc != -EINVAL) {
		print_error("%s: lsm_open returned %d (%s), expected -EINVAL\n",
			    desc, rc, lsm_strerror(rc));
		fail();
	}
	if (db != NULL) {
		print_error("%s: failed open left *out set\n", desc);
		fail();
	}
	if (strstr(lsm_errdetail(), field) == NULL) {
		print_error("%s: detail '%s' does not name %s\n", desc,
			    lsm_errdetail(), field);
		fail();
	}
	/* rejected before touching the directory */
	if (stat(c->path, &st) == 0) {
		print_error("%s: rejected open created %s\n", desc, c->path);
		fail();
	}
}

#define INVALID(c, field, value)                                       \
	do {                                                           \
		lsm_options o_;                                        \
		lsm_options_init(&o_);                                 \
		o_.field = (value);                                    \
		expect_invalid((c), &o_, #field, #field " = " #value); \
	} while (0)

static void test_defaults_documented(void **state)
{
	(void)state;
	lsm_options o;
	memset(&o, 0x5a, sizeof(o));
	lsm_options_init(&o);
	assert_true(o.create_if_missing);
	assert_false(o.error_if_exists);
	assert_true(o.paranoid_checks);
	assert_int_equal(o.write_buffer_size, 64u << 20);
	assert_int_equal(o.max_immutable_memtables, 2);
	assert_int_equal(o.block_size, 4096);
	assert_int_equal(o.block_restart_interval, 16);
	assert_int_equal(o.bloom_bits_per_key, 10);
	for (int i = 0; i < LSM_MAX_LEVELS; i++)
		assert_int_equal(o.compression[i], LSM_COMPRESS_LZ4);
	assert_int_equal(o.zstd_level, 3);
	assert_int_equal(o.block_cache_bytes, 8u << 20);
	assert_int_equal(o.max_open_files, 1000);
	assert_int_equal(o.background_threads, 2);
	assert_int_equal(o.level0_compaction_trigger, 4);
	assert_int_equal(o.level0_slowdown_trigger, 20);
	assert_int_equal(o.level0_stop_trigger, 36);
	assert_int_equal(o.level0_size_percent, 0);
	assert_true(o.max_bytes_for_level_base == 256ull << 20);
	assert_int_equal(o.level_size_multiplier, 10);
	assert_true(o.target_file_size == 64ull << 20);
	assert_true(o.soft_pending_compaction_bytes == 64ull << 30);
	assert_true(o.hard_pending_compaction_bytes == 256ull << 30);
	assert_null(o.env);
	assert_null(o.log_fn);
	assert_null(o.log_ctx);
}

static void test_defaults_open(void **state)
{
	struct octx *c = *state;
	lsm_options o;
	lsm_db *db = NULL;
	lsm_options_init(&o);
	assert_int_equal(lsm_open(c->path, &o, &db), 0);
	assert_non_null(db);
	assert_int_equal(lsm_put(db, "k", 1, "v", 1, LSM_SYNC), 0);
	assert_int_equal(lsm_close(db), 0);
	assert_int_equal(lsm_destroy(c->path, &o), 0);
}

static void test_null_opts_means_defaults(void **state)
{
	struct octx *c = *state;
	lsm_db *db = NULL;
	void *v = NULL;
	size_t vl = 0;
	assert_int_equal(lsm_open(c->path, NULL, &db), 0);
	assert_non_null(db);
	assert_int_equal(lsm_put(db, "key", 3, "value", 5, 0), 0);
	assert_int_equal(lsm_close(db), 0);
	/* create_if_missing was true by default; the data survived */
	assert_int_equal(lsm_open(c->path, NULL, &db), 0);
	assert_int_equal(lsm_get(db, NULL, "key", 3, &v, &vl), 0);
	assert_int_equal(vl, 5);
	assert_memory_equal(v, "value", 5);
	lsm_free(v);
	assert_int_equal(lsm_close(db), 0);
	assert_int_equal(lsm_destroy(c->path, NULL), 0);
}

static void test_null_path(void **state)
{
	(void)state;
	lsm_options o;
	lsm_db *db = NULL;
	lsm_options_init(&o);
	assert_int_equal(lsm_open(NULL, &o, &db), -EINVAL);
	assert_null(db);
	assert_true(strstr(lsm_errdetail(), "path") != NULL);
	db = NULL;
	assert_int_equal(lsm_open(NULL, NULL, &db), -EINVAL);
	assert_null(db);
}

static void test_invalid_sizes(void **state)
{
	struct octx *c = *state;
	INVALID(c, write_buffer_size, 0);
	INVALID(c, write_buffer_size, 1);
	INVALID(c, block_size, 0);
	INVALID(c, block_size, (size_t)1 << 40);
	INVALID(c, block_size, SIZE_MAX);
	INVALID(c, target_file_size, 0);
}

static void test_invalid_bloom_and_compression(void **state)
{
	struct octx *c = *state;
	INVALID(c, bloom_bits_per_key, -1);
	INVALID(c, bloom_bits_per_key, -100);
	static const struct {
		int level;
		int value;
	} bad[] = {{0, 3}, {LSM_MAX_LEVELS - 1, 99}, {3, -1}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		lsm_options o;
		char desc[64];
		lsm_options_init(&o);
		o.compression[bad[i].level] = (lsm_compression)bad[i].value;
		snprintf(desc, sizeof(desc), "compression[%d] = %d",
			 bad[i].level, bad[i].value);
		expect_invalid(c, &o, "compression", desc);
	}
}

static void test_invalid_files_and_threads(void **state)
{
	struct octx *c = *state;
	INVALID(c, max_open_files, 15);
	INVALID(c, max_open_files, 0);
	INVALID(c, max_open_files, -1);
	INVALID(c, background_threads, 0);
	INVALID(c, background_threads, -3);
	INVALID(c, background_threads, 65);
	INVALID(c, background_threads, 1000);
}

static void test_invalid_level_shape(void **state)
{
	struct octx *c = *state;
	INVALID(c, level_size_multiplier, 1);
	INVALID(c, level_size_multiplier, 0);
	INVALID(c, level_size_multiplier, -10);
	{
		/* slowdown below the compaction trigger */
		lsm_options o;
		lsm_options_init(&o);
		o.level0_compaction_trigger = 8;
		o.level0_slowdown_trigger = 4;
		expect_invalid(c, &o, "level0_slowdown_trigger",
			       "slowdown 4 < compaction trigger 8");
	}
	{
		/* stop below slowdown */
		lsm_options o;
		lsm_options_init(&o);
		o.level0_slowdown_trigger = 20;
		o.level0_stop_trigger = 10;
		expect_invalid(c, &o, "level0_stop_trigger",
			       "stop 10 < slowdown 20");
	}
	{
		lsm_options o;
		lsm_options_init(&o);
		o.level0_size_percent = -1;
		expect_invalid(c, &o, "level0_size_percent", "size percent -1");
		o.level0_size_percent = 1001;
		expect_invalid(c, &o, "level0_size_percent",
			       "size percent 1001");
	}
	{
		lsm_options o;
		lsm_options_init(&o);
		o.level0_compaction_trigger = 0;
		o.level0_slowdown_trigger = 0;
		o.level0_stop_trigger = 0;
		expect_invalid(c, &o, "level0_compaction_trigger",
			       "compaction trigger 0");
	}
}

/* Values at the edge of the valid ranges are accepted. */
static void test_valid_boundaries_open(void **state)
{
	struct octx *c = *state;
	lsm_options o;
	lsm_db *db = NULL;

	lsm_options_init(&o);
	o.background_threads = 1;
	o.max_open_files = 16;
	o.bloom_bits_per_key = 0;
	o.level0_compaction_trigger = 4;
	o.level0_slowdown_trigger = 4;
	o.level0_stop_trigger = 4;
	o.level_size_multiplier = 2;
	o.level0_size_percent = 1000;
	o.compression[0] = LSM_COMPRESS_NONE;
	o.compression[1] = LSM_COMPRESS_ZSTD;
	assert_int_equal(lsm_open(c->path, &o, &db), 0);
	assert_int_equal(lsm_put(db, "a", 1, "b", 1, 0), 0);
	assert_int_equal(lsm_close(db), 0);
	assert_int_equal(lsm_destroy(c->path, &o), 0);

	lsm_options_init(&o);
	o.background_threads = 64;
	o.block_cache_bytes = 0;
	assert_int_equal(lsm_open(c->path, &o, &db), 0);
	assert_int_equal(lsm_close(db), 0);
	assert_int_equal(lsm_destroy(c->path, &o), 0);
}

/* lsm.h: "a failed constructor leaves *out == NULL" - even when the
 * caller did not clear it first. */
static void test_failed_open_clears_out(void **state)
{
	struct octx *c = *state;
	lsm_options o;
	lsm_db *db = (lsm_db *)(uintptr_t)0x1;
	lsm_options_init(&o);
	o.write_buffer_size = 0;
	assert_int_equal(lsm_open(c->path, &o, &db), -EINVAL);
	assert_null(db);
	lsm_options_init(&o);
	o.create_if_missing = false;
	db = (lsm_db *)(uintptr_t)0x1;
	assert_int_equal(lsm_open(c->path, &o, &db), LSM_E_NOSTORE);
	assert_null(db);
}

int main(void)
{
	/* LSM_TEST_FILTER=pattern runs only the matching tests */
	if (getenv("LSM_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("LSM_TEST_FILTER"));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_documented),
		cmocka_unit_test(test_defaults_open),
		cmocka_unit_test(test_null_opts_means_defaults),
		cmocka_unit_test(test_null_path),
		cmocka_unit_test(test_invalid_sizes),
		cmocka_unit_test(test_invalid_bloom_and_compression),
		cmocka_unit_test(test_invalid_files_and_threads),
		cmocka_unit_test(test_invalid_level_shape),
		cmocka_unit_test(test_valid_boundaries_open),
		cmocka_unit_test(test_failed_open_clears_out),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
