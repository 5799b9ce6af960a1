/*
 * testutil.h - helpers shared by the whole-engine tests (model, crash,
 * corruption): a seeded random generator, scratch directories, and the
 * LSM_TEST_SCALE divisor that tools/test sets for sanitizer builds, and
 * LSM_TEST_STRATEGY=leveled|tiered|time, the compaction style every
 * options struct of the including test starts with (see below).
 *
 * Header-only (static inline) so each test binary stays one source file.
 * Include after cmocka.h: make_base_dir() asserts.
 */
#ifndef LSM_TESTS_TESTUTIL_H
#define LSM_TESTS_TESTUTIL_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* splitmix64: a fast, well-mixed, reproducible sequence from a seed. */
static inline uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t rnd(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ull;
	return mix64(*s);
}

static inline uint64_t rnd_below(uint64_t *s, uint64_t n)
{
	return rnd(s) % n;
}

static inline int testutil_rm_cb(const char *p, const struct stat *sb, int flag,
				 struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(p);
	return 0;
}

static inline void rm_rf(const char *path)
{
	nftw(path, testutil_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory lsm-TAG-XXXXXX under LSM_TEST_DIR, else /dev/shm
 * (tmpfs: these tests are about logic, not disks), else TMPDIR or /tmp. */
static inline void make_base_dir(char *buf, size_t cap, const char *tag)
{
	const char *base = getenv("LSM_TEST_DIR");
	struct stat st;
	if (base == NULL || base[0] == '\0') {
		if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
		    access("/dev/shm", W_OK) == 0)
			base = "/dev/shm";
		else
			base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	}
	snprintf(buf, cap, "%s/lsm-%s-XXXXXX", base, tag);
	assert_non_null(mkdtemp(buf));
}

/* make_base_dir() + "/db": the store lives in a subdirectory the engine
 * creates. */
static inline void make_test_dir(char *buf, size_t cap, const char *tag)
{
	make_base_dir(buf, cap, tag);
	strncat(buf, "/db", cap - strlen(buf) - 1);
}

/* Removes what make_test_dir() made (path ends in "/db"). */
static inline void remove_test_dir(char *path)
{
	char *slash = strrchr(path, '/');
	if (slash != NULL)
		*slash = '\0';
	rm_rf(path);
}

/* LSM_TEST_SCALE divides the work of the randomized tests (>= 1);
 * LSM_TEST_SCALE_EXTRA (>= 1) multiplies the divisor, for the extra runs
 * of the same tests under other compaction strategies (meson.build), so
 * that they stay short whatever LSM_TEST_SCALE the build uses. */
static inline unsigned test_scale(void)
{
	const char *s = getenv("LSM_TEST_SCALE");
	const char *x = getenv("LSM_TEST_SCALE_EXTRA");
	long v = s ? strtol(s, NULL, 10) : 1;
	long e = x ? strtol(x, NULL, 10) : 1;
	if (v < 1)
		v = 1;
	if (e < 1)
		e = 1;
	return (unsigned)(v * e);
}

/*
 * LSM_TEST_STRATEGY picks the compaction style for the whole-engine tests
 * (meson runs test_model, test_crash and test_corrupt once per style):
 * "leveled" (or unset), "tiered" (size-tiered, width 2, the tests' small
 * runs merge often) or "time" (time-window, 1-second windows so windows
 * close during a run; no TTL, which would delete data the model keeps).
 * Every lsm_options_init() in a test that includes this header goes
 * through test_options_init(), so each options struct the test builds
 * starts with that style and the test's own settings follow.
 */
#include "lsm.h"

static inline void test_apply_strategy(lsm_options *o)
{
	const char *s = getenv("LSM_TEST_STRATEGY");
	if (s == NULL || s[0] == '\0' || strcmp(s, "leveled") == 0) {
		o->compaction_style = LSM_COMPACTION_LEVELED;
	} else if (strcmp(s, "tiered") == 0) {
		o->compaction_style = LSM_COMPACTION_TIERED;
		o->min_merge_width = 2;
	} else if (strcmp(s, "time") == 0) {
		o->compaction_style = LSM_COMPACTION_TIME_WINDOW;
		o->window_seconds = 1;
	} else {
		fprintf(stderr,
			"LSM_TEST_STRATEGY=%s: not leveled, tiered or "
			"time\n",
			s);
		abort();
	}
}

/*
 * LSM_TEST_BLOB=N (64 or more) stores every value of at least N bytes in
 * blob files, and closes blob files at 1 MiB, so that the tests' values
 * exercise key-value separation; unset: the default threshold (16 KiB),
 * which the tests' small values never reach.
 */
static inline void test_apply_blob(lsm_options *o)
{
	const char *s = getenv("LSM_TEST_BLOB");
	if (s == NULL || s[0] == '\0')
		return;
	o->blob_threshold = (size_t)strtoull(s, NULL, 10);
	o->blob_file_size = 1u << 20;
}

static inline void test_options_init(lsm_options *o)
{
	lsm_options_init(o);
	test_apply_strategy(o);
	test_apply_blob(o);
}
#define lsm_options_init(o) test_options_init(o)

#endif
