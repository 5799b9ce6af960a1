/*
 * wal_format.h - on-disk constants of the record log (WAL and MANIFEST).
 *
 * Spec: lsm/FORMAT.md, "Record log". A log file is a sequence of records
 *   [u32 checksum][u32 length][u8 type][u32 header check][payload]
 * (integers little-endian). checksum = low 32 bits of XXH3-64 over bytes
 * 4.. of the record (length, type, header check, payload); header check =
 * low 32 bits of XXH3-64 over bytes 4..8 (length and type), so that a
 * damaged length is told apart from a record cut short by a crash. These
 * values are written to disk: never renumber them.
 */
#ifndef LSM_WAL_WAL_FORMAT_H
#define LSM_WAL_WAL_FORMAT_H

#define WAL_HEADER_LEN 13u
#define WAL_HCHECK_OFF 9u /* header check: over bytes 4..8 */
#define WAL_TYPE_FULL 1u  /* a whole record; every other type is reserved */
#define WAL_MAX_PAYLOAD ((uint32_t)1 << 30) /* 1 GiB */

#endif
