/*
 * blob_int.h - internals shared by the files of lsm/blob/ only.
 */
#ifndef LSM_BLOB_BLOB_INT_H
#define LSM_BLOB_BLOB_INT_H

#include "blob/blob.h"

/* Fills the BLOB_HEADER_LEN bytes of a file header for `number`. */
void blob_header_encode(uint8_t *p, uint64_t number);
/* Checks the first len bytes of the file at path (len = bytes read, maybe
 * fewer than a header): LSM_E_CORRUPT or LSM_E_FORMAT with a message
 * naming path, or 0. */
int blob_header_check(const uint8_t *p, size_t len, const char *path,
		      uint64_t number);
/* malloc'd "<dir>/NNNNNN.blob", or NULL (out of memory). */
char *blob_path_dup(const char *dir, uint64_t number);

#endif
