/*
 * compress.c - lz4 and zstd for SST blocks.
 *
 * A compressed block is [varint raw_len][codec stream]. Storing raw_len
 * lets the reader allocate exactly once and check that the codec produced
 * exactly that many bytes.
 *
 * Invariants:
 *  1. A block is stored compressed only if it saves >= 1/8 of its raw size
 *     (SST_MIN_SAVING_SHIFT); otherwise the writer stores it raw, so the
 *     reader pays for decompression only where it buys space.
 *  2. The reader refuses raw_len > SST_MAX_BLOCK_RAW, and for lz4 a raw_len
 *     impossible for the input size, before allocating; the codec must fill
 *     exactly raw_len bytes.
 *
 * Thread safety: stateless; callers own their buffers.
 */
#include "sst/compress.h"

#include "sst/sst_format.h"
#include "util/coding.h"
#include "util/status.h"

#include <errno.h>
#include <lz4.h>
#include <stdbool.h>
#include <stdlib.h>
#include <zstd.h>

int sst_compress(int type, int zstd_level, struct slice raw, uint8_t **buf,
		 size_t *cap, size_t *out_len)
{
	size_t bound;
	if (raw.len > SST_MAX_BLOCK_RAW)
		return 0;
	if (type == SST_BLOCK_LZ4)
		bound = (size_t)LZ4_compressBound((int)raw.len);
	else if (type == SST_BLOCK_ZSTD)
		bound = ZSTD_compressBound(raw.len);
	else
		return 0;
	size_t need = bound + 10;
	if (need > *cap) {
		uint8_t *p = realloc(*buf, need);
		if (!p)
			return -ENOMEM;
		*buf = p;
		*cap = need;
	}
	uint8_t *hdr_end = put_varint64(*buf, raw.len);
	size_t hdr = (size_t)(hdr_end - *buf);
	size_t n;
	if (type == SST_BLOCK_LZ4) {
		int r = LZ4_compress_default((const char *)raw.p,
					     (char *)hdr_end, (int)raw.len,
					     (int)bound);
		if (r <= 0)
			return 0;
		n = (size_t)r;
	} else {
		n = ZSTD_compress(hdr_end, bound, raw.p, raw.len, zstd_level);
		if (ZSTD_isError(n))
			return 0;
	}
	if (hdr + n > raw.len - (raw.len >> SST_MIN_SAVING_SHIFT))
		return 0;
	*out_len = hdr + n;
	return 1;
}

int sst_uncompressed_len(int type, struct slice stored, const char *path,
			 uint64_t off, size_t *raw_len, struct slice *stream)
{
	const uint8_t *end = stored.p + stored.len;
	uint64_t n;
	const uint8_t *p = get_varint64(stored.p, end, &n);
	if (!p)
		return LSM_CORRUPT("file %s offset %llu: bad uncompressed "
				   "length",
				   path, (unsigned long long)off);
	size_t clen = (size_t)(end - p);
	if (n > SST_MAX_BLOCK_RAW ||
	    (type == SST_BLOCK_LZ4 && n > (uint64_t)clen * 255 + 16))
		return LSM_CORRUPT("file %s offset %llu: implausible "
				   "uncompressed length %llu",
				   path, (unsigned long long)off,
				   (unsigned long long)n);
	if (type != SST_BLOCK_LZ4 && type != SST_BLOCK_ZSTD)
		return LSM_CORRUPT("file %s offset %llu: unknown compression "
				   "type %d",
				   path, (unsigned long long)off, type);
	*raw_len = (size_t)n;
	*stream = slice_make(p, clen);
	return 0;
}

int sst_uncompress_to(int type, struct slice stream, const char *path,
		      uint64_t off, uint8_t *dst, size_t raw_len)
{
	bool ok;
	if (type == SST_BLOCK_LZ4) {
		int r = LZ4_decompress_safe((const char *)stream.p, (char *)dst,
					    (int)stream.len, (int)raw_len);
		ok = r >= 0 && (size_t)r == raw_len;
	} else if (type == SST_BLOCK_ZSTD) {
		size_t r = ZSTD_decompress(dst, raw_len, stream.p, stream.len);
		ok = !ZSTD_isError(r) && r == raw_len;
	} else {
		return LSM_CORRUPT("file %s offset %llu: unknown compression "
				   "type %d",
				   path, (unsigned long long)off, type);
	}
	if (!ok)
		return LSM_CORRUPT("file %s offset %llu: %s stream does not "
				   "decode to %zu bytes",
				   path, (unsigned long long)off,
				   type == SST_BLOCK_LZ4 ? "lz4" : "zstd",
				   raw_len);
	return 0;
}

int sst_uncompress(int type, struct slice stored, const char *path,
		   uint64_t off, uint8_t **out, size_t *out_len)
{
	size_t raw_len;
	struct slice stream;
	int rc = sst_uncompressed_len(type, stored, path, off, &raw_len,
				      &stream);
	if (rc)
		return rc;
	uint8_t *dst = malloc(raw_len ? raw_len : 1);
	if (!dst)
		return -ENOMEM;
	rc = sst_uncompress_to(type, stream, path, off, dst, raw_len);
	if (rc) {
		free(dst);
		return rc;
	}
	*out = dst;
	*out_len = raw_len;
	return 0;
}
