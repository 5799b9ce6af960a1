/*
 * sst_format.h - constants written into SST files (spec: lsm/FORMAT.md,
 * section "SST files"). Never renumber or change any of these: files on
 * disk depend on them.
 */
#ifndef LSM_SST_SST_FORMAT_H
#define LSM_SST_SST_FORMAT_H

#include <stdint.h>

/* Footer: 4 handles (u64 offset + u32 size, LE) in the order filter,
 * range-del, index, properties; then u32 version, u32 feature bits, u64
 * magic. Always the last SST_FOOTER_SIZE bytes of the file. */
#define SST_FOOTER_SIZE 64
#define SST_HANDLE_SIZE 12
#define SST_MAGIC UINT64_C(0x4c534d5353540001) /* "LSMSST\0\1" */
#define SST_FORMAT_VERSION 1
#define SST_FEATURES_KNOWN 0u /* no feature bits defined yet */

/* Block trailer: u8 compression type, u32 LE checksum = low 32 bits of
 * XXH3-64 over the stored block bytes followed by the type byte. */
#define SST_BLOCK_TRAILER 5
enum sst_block_type {
	SST_BLOCK_RAW = 0,
	SST_BLOCK_LZ4 = 1,
	SST_BLOCK_ZSTD = 2,
};

/* A compressed block must save at least 1/8 of the raw size. */
#define SST_MIN_SAVING_SHIFT 3
/* Largest uncompressed block a reader accepts (guards allocations against
 * corrupt length prefixes). */
#define SST_MAX_BLOCK_RAW (UINT32_C(64) << 20)

/* Bloom filter block: n_blocks * 64 bytes of bits, then u32 LE n_blocks,
 * then u32 LE k (number of probes). */
#define SST_BLOOM_LINE 64
#define SST_BLOOM_TRAILER 8
#define SST_BLOOM_MAX_K 30

/* Property names (keys of the properties block, sorted bytewise). Values
 * are varint64 except the *.key and rd.* ones, which are raw bytes. */
#define SST_PROP_COMPRESSION "lsm.compression"
#define SST_PROP_DATA_BYTES "lsm.data.bytes"
#define SST_PROP_FILTER_BYTES "lsm.filter.bytes"
#define SST_PROP_FORMAT_VERSION "lsm.format.version"
#define SST_PROP_INDEX_BYTES "lsm.index.bytes"
#define SST_PROP_LARGEST_KEY "lsm.largest.key"
#define SST_PROP_LARGEST_SEQ "lsm.largest.seq"
#define SST_PROP_NUM_DELETIONS "lsm.num.deletions"
#define SST_PROP_NUM_ENTRIES "lsm.num.entries"
#define SST_PROP_NUM_RANGE_DELS "lsm.num.range.deletions"
#define SST_PROP_RAW_KEY_BYTES "lsm.raw.key.bytes"
#define SST_PROP_RAW_VALUE_BYTES "lsm.raw.value.bytes"
#define SST_PROP_RD_LARGEST "lsm.rd.largest"
#define SST_PROP_RD_SMALLEST "lsm.rd.smallest"
#define SST_PROP_SMALLEST_KEY "lsm.smallest.key"
#define SST_PROP_SMALLEST_SEQ "lsm.smallest.seq"
#define SST_PROP_TIME_HI "lsm.time.hi"
#define SST_PROP_TIME_LO "lsm.time.lo"

#endif
