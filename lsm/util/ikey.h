/*
 * ikey.h - internal keys: how user keys carry their version.
 *
 * An internal key is the user key followed by an 8-byte little-endian
 * trailer (seq << 8 | kind). Internal keys sort by user key ascending, then
 * by trailer descending, so the newest version of a key comes first and a
 * seek to (key, seq) lands on the newest version visible at seq.
 *
 * Kinds are written to disk (lsm/FORMAT.md) and never renumbered.
 * IKEY_BLOB entries are PUTs whose value lives in a blob file; the tree
 * holds the reference. IKEY_KIND_SEEK is the largest kind: (key, seq, SEEK)
 * sorts before every real entry of key with that seq. IKEY_SEQ_MAX with kind
 * SENTINEL marks an exclusive boundary: (k, SEQ_MAX, SENTINEL) sorts before
 * every real version of k; file ranges use it where a range tombstone ends at
 * k.
 */
#ifndef LSM_UTIL_IKEY_H
#define LSM_UTIL_IKEY_H

#include "util/coding.h"
#include "util/slice.h"

#include <stdbool.h>
#include <stdint.h>

enum ikey_kind {
	IKEY_DELETE = 0,
	IKEY_PUT = 1,
	IKEY_RANGE_DELETE = 2, /* key = start, value = exclusive end */
	IKEY_BLOB = 3,         /* value = reference into a blob file (blob.h) */
	IKEY_KIND_SEEK = 3,    /* largest kind: for seek keys */
	IKEY_SENTINEL = 0xff,  /* file-boundary marker, never stored */
};

#define IKEY_TRAILER 8
#define IKEY_SEQ_MAX ((UINT64_C(1) << 56) - 1)

static inline uint64_t ikey_pack(uint64_t seq, unsigned kind)
{
	return seq << 8 | kind;
}

/* Appends the trailer after the user key in dst (dst has room). */
static inline void ikey_put_trailer(uint8_t *dst, uint64_t seq, unsigned kind)
{
	put_fixed64(dst, ikey_pack(seq, kind));
}

static inline struct slice ikey_user(struct slice ik)
{
	return slice_make(ik.p, ik.len - IKEY_TRAILER);
}

static inline uint64_t ikey_trailer(struct slice ik)
{
	return get_fixed64(ik.p + ik.len - IKEY_TRAILER);
}

static inline uint64_t ikey_seq(struct slice ik)
{
	return ikey_trailer(ik) >> 8;
}

static inline unsigned ikey_kind(struct slice ik)
{
	return (unsigned)(ikey_trailer(ik) & 0xff);
}

static inline bool ikey_valid(struct slice ik)
{
	if (ik.len < IKEY_TRAILER)
		return false;
	unsigned k = ikey_kind(ik);
	return k <= IKEY_BLOB || k == IKEY_SENTINEL;
}

/* The engine's one ordering of internal keys. */
static inline int ikey_cmp(struct slice a, struct slice b)
{
	int r = slice_cmp(ikey_user(a), ikey_user(b));
	if (r)
		return r;
	uint64_t ta = ikey_trailer(a), tb = ikey_trailer(b);
	return ta > tb ? -1 : ta < tb ? 1 : 0;
}

#endif
