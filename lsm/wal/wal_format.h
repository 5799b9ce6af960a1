/*
 * wal_format.h - on-disk constants of the record log (WAL and MANIFEST).
 *
 * Spec: lsm/FORMAT.md, "Record log". A log file is a sequence of records
 *   [u32 checksum LE][u32 length LE][u8 type][payload: length bytes]
 * checksum = low 32 bits of XXH3-64 over bytes 4.. of the record (length
 * field, type byte, payload). These values are written to disk: never
 * renumber them.
 */
#ifndef LSM_WAL_WAL_FORMAT_H
#define LSM_WAL_WAL_FORMAT_H

#define WAL_HEADER_LEN 9u
#define WAL_TYPE_FULL 1u /* a whole record; every other type is reserved */
#define WAL_MAX_PAYLOAD ((uint32_t)1 << 30) /* 1 GiB */

#endif
