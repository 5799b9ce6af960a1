/*
 * compress.h - block compression for SST files (lz4, zstd).
 * Layout of a compressed block: lsm/FORMAT.md, "SST blocks".
 */
#ifndef LSM_SST_COMPRESS_H
#define LSM_SST_COMPRESS_H

#include "util/slice.h"

#include <stddef.h>
#include <stdint.h>

/*
 * Compresses raw with `type` (SST_BLOCK_LZ4/ZSTD) into *buf (grown as
 * needed, capacity *cap): varint raw length, then the compressed bytes.
 * Returns 1 and sets *out_len if the result saves at least 1/8 of raw, 0 if
 * the caller should store the block raw, -ENOMEM on allocation failure.
 */
int sst_compress(int type, int zstd_level, struct slice raw, uint8_t **buf,
		 size_t *cap, size_t *out_len);

/*
 * Uncompresses a stored block of `type` into a malloc'd buffer (*out,
 * *out_len). Returns 0, -ENOMEM, or LSM_E_CORRUPT naming path/off when the
 * length prefix, type or compressed stream is bad.
 */
int sst_uncompress(int type, struct slice stored, const char *path,
		   uint64_t off, uint8_t **out, size_t *out_len);

/*
 * The two steps of sst_uncompress() for callers that place the output
 * themselves. sst_uncompressed_len() checks the length prefix and type
 * (the same checks as sst_uncompress) and returns the raw length and the
 * codec stream (pointing into stored); sst_uncompress_to() decodes the
 * stream into dst, which has exactly raw_len bytes, and fails unless the
 * codec produces exactly that many. 0 or LSM_E_CORRUPT naming path/off.
 */
int sst_uncompressed_len(int type, struct slice stored, const char *path,
			 uint64_t off, size_t *raw_len, struct slice *stream);
int sst_uncompress_to(int type, struct slice stream, const char *path,
		      uint64_t off, uint8_t *dst, size_t raw_len);

#endif
