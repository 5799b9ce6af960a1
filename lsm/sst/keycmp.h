/*
 * keycmp.h - an inlined internal-key comparison for the read paths.
 *
 * ikey_cmp() (util/ikey.h) is the engine's one ordering; it compares user
 * keys with a library memcmp call. Block seeks, the merging iterator and
 * the user iterator compare keys several times per entry, mostly short
 * keys, where the call and memcmp's length dispatch cost more than the
 * comparison itself. ikey_cmp_fast() is the same order computed inline:
 * user keys 8 bytes at a time as big-endian words (unsigned word order is
 * bytewise order), then the tail bytewise, then length, then the trailer
 * descending. Only the sign of the result is meaningful, as for ikey_cmp().
 *
 * Both arguments must be valid internal keys (len >= IKEY_TRAILER).
 */
#ifndef LSM_SST_KEYCMP_H
#define LSM_SST_KEYCMP_H

#include "util/coding.h"
#include "util/ikey.h"
#include "util/slice.h"

#include <stdint.h>
#include <string.h>

static inline uint64_t keycmp_load_be64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

/* Bytewise comparison of a[0..an) and b[0..bn), shorter first on a tie:
 * the sign of slice_cmp(). */
static inline int bytes_cmp_fast(const uint8_t *a, size_t an, const uint8_t *b,
				 size_t bn)
{
	size_t n = an < bn ? an : bn;
	while (n >= 8) {
		uint64_t x = keycmp_load_be64(a), y = keycmp_load_be64(b);
		if (x != y)
			return x < y ? -1 : 1;
		a += 8;
		b += 8;
		n -= 8;
	}
	for (; n; n--, a++, b++)
		if (*a != *b)
			return *a < *b ? -1 : 1;
	return an < bn ? -1 : an > bn ? 1 : 0;
}

static inline int ikey_cmp_fast(struct slice a, struct slice b)
{
	size_t al = a.len - IKEY_TRAILER, bl = b.len - IKEY_TRAILER;
	int r = bytes_cmp_fast(a.p, al, b.p, bl);
	if (r)
		return r;
	uint64_t ta = get_fixed64(a.p + al), tb = get_fixed64(b.p + bl);
	return ta > tb ? -1 : ta < tb ? 1 : 0;
}

#endif
