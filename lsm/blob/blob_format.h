/*
 * blob_format.h - on-disk constants of blob files (NNNNNN.blob).
 *
 * Spec: lsm/FORMAT.md, "Blob files". A blob file is a 32-byte header
 *   [8 magic "LSMBLOB1"][u32 version][u32 flags][u64 number][u32 reserved]
 *   [u32 checksum of bytes 0..28)]
 * followed by records, back to back:
 *   [u32 header checksum][varint32 key_len][varint32 value_len][key]
 *   [u32 value checksum][value]
 * Integers are little-endian; checksums are lsm_checksum32 (low 32 bits of
 * XXH3-64). A reference to a value, stored in the tree as the value of a
 * BLOB entry, is
 *   [varint64 number][varint64 value offset][varint32 value len][u32 crc]
 * These values are written to disk: never renumber them.
 */
#ifndef LSM_BLOB_BLOB_FORMAT_H
#define LSM_BLOB_BLOB_FORMAT_H

#include <stdint.h>

#define BLOB_MAGIC "LSMBLOB1"
#define BLOB_MAGIC_LEN 8u
#define BLOB_VERSION 1u
#define BLOB_HEADER_LEN 32u
/* Field offsets inside the file header. */
#define BLOB_HDR_VERSION_OFF 8u
#define BLOB_HDR_FLAGS_OFF 12u
#define BLOB_HDR_NUMBER_OFF 16u
#define BLOB_HDR_RESERVED_OFF 24u
#define BLOB_HDR_CHECK_OFF 28u

/* Limits of one record; bigger lengths in a file are corruption. */
#define BLOB_MAX_KEY ((uint32_t)1 << 20)   /* 1 MiB */
#define BLOB_MAX_VALUE ((uint32_t)1 << 28) /* 256 MiB */

/* A record's fixed overhead around key and value: header checksum, value
 * checksum; plus 1..5 bytes per varint. */
#define BLOB_REC_MIN_OVERHEAD (4u + 1u + 1u + 4u)
#define BLOB_REC_MAX_HEAD (4u + 5u + 5u) /* checksum + both varints */

/* Largest encoded reference: 10 + 10 + 5 + 4 bytes. */
#define BLOB_REF_MAX 29u

/* Writers reserve file space ahead in steps of this (blob_writer.c). */
#define BLOB_RESERVE_STEP ((uint64_t)4 << 20)

#endif
