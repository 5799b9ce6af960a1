/*
 * slice.h - borrowed byte ranges.
 *
 * A slice never owns its bytes; whoever hands one out says how long the
 * bytes stay valid. Comparison is unsigned bytewise, shorter first on a tie,
 * which is the order of every key in the engine.
 */
#ifndef LSM_UTIL_SLICE_H
#define LSM_UTIL_SLICE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct slice {
	const uint8_t *p;
	size_t len;
};

static inline struct slice slice_make(const void *p, size_t len)
{
	struct slice s = {(const uint8_t *)p, len};
	return s;
}

static inline int slice_cmp(struct slice a, struct slice b)
{
	size_t n = a.len < b.len ? a.len : b.len;
	int r = n ? memcmp(a.p, b.p, n) : 0;
	if (r != 0)
		return r;
	return a.len < b.len ? -1 : a.len > b.len ? 1 : 0;
}

static inline int slice_eq(struct slice a, struct slice b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

#endif
