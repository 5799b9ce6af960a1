/*
 * blob.c - what the writer, the reader and the scanner of blob files share:
 * file names, the 32-byte file header and the reference codec.
 *
 * Invariants:
 *  1. A header is accepted only if its magic, checksum, version, flags,
 *     reserved word and file number are all as written by
 *     blob_header_encode(); the checksum is checked before the version
 *     and flags are believed, so a damaged header reads as corruption,
 *     not as an unknown format.
 *  2. blob_ref_decode accepts exactly the byte strings blob_ref_encode
 *     produces (canonical varints, nothing after the checksum), so a
 *     reference decodes and re-encodes to the same bytes.
 *
 * Thread safety: pure functions; no state.
 */
#include "blob/blob_int.h"
#include "util/coding.h"
#include "util/hash.h"
#include "util/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t blob_file_path(char *buf, size_t cap, const char *dir, uint64_t number)
{
	int n = snprintf(buf, cap, "%s/%06llu.blob", dir,
			 (unsigned long long)number);
	return n < 0 ? 0 : (size_t)n;
}

char *blob_path_dup(const char *dir, uint64_t number)
{
	size_t n = blob_file_path(NULL, 0, dir, number);
	char *p = malloc(n + 1);
	if (p)
		blob_file_path(p, n + 1, dir, number);
	return p;
}

/* [8 magic][u32 version][u32 flags][u64 number][u32 reserved][u32 check]:
 * lsm/FORMAT.md "Blob files" */
void blob_header_encode(uint8_t *p, uint64_t number)
{
	memcpy(p, BLOB_MAGIC, BLOB_MAGIC_LEN);
	put_fixed32(p + BLOB_HDR_VERSION_OFF, BLOB_VERSION);
	put_fixed32(p + BLOB_HDR_FLAGS_OFF, 0);
	put_fixed64(p + BLOB_HDR_NUMBER_OFF, number);
	put_fixed32(p + BLOB_HDR_RESERVED_OFF, 0);
	put_fixed32(p + BLOB_HDR_CHECK_OFF,
		    lsm_checksum32(p, BLOB_HDR_CHECK_OFF));
}

int blob_header_check(const uint8_t *p, size_t len, const char *path,
		      uint64_t number)
{
	uint32_t version, flags, reserved;
	uint64_t found;

	if (len < BLOB_HEADER_LEN)
		return LSM_CORRUPT("file %s offset 0: %zu bytes, shorter than "
				   "the %u-byte blob file header",
				   path, len, BLOB_HEADER_LEN);
	if (memcmp(p, BLOB_MAGIC, BLOB_MAGIC_LEN) != 0)
		return LSM_CORRUPT("file %s offset 0: bad blob file magic",
				   path);
	if (get_fixed32(p + BLOB_HDR_CHECK_OFF) !=
	    lsm_checksum32(p, BLOB_HDR_CHECK_OFF))
		return LSM_CORRUPT("file %s offset %u: blob file header "
				   "checksum mismatch",
				   path, BLOB_HDR_CHECK_OFF);
	version = get_fixed32(p + BLOB_HDR_VERSION_OFF);
	if (version != BLOB_VERSION)
		return lsm_err(LSM_E_FORMAT,
			       "file %s offset %u: blob file format version "
			       "%u is not supported (this build reads %u)",
			       path, BLOB_HDR_VERSION_OFF, version,
			       BLOB_VERSION);
	flags = get_fixed32(p + BLOB_HDR_FLAGS_OFF);
	if (flags != 0)
		return lsm_err(LSM_E_FORMAT,
			       "file %s offset %u: unknown blob file feature "
			       "flags 0x%x",
			       path, BLOB_HDR_FLAGS_OFF, flags);
	reserved = get_fixed32(p + BLOB_HDR_RESERVED_OFF);
	if (reserved != 0)
		return lsm_err(LSM_E_FORMAT,
			       "file %s offset %u: reserved blob header word "
			       "is 0x%x, not 0",
			       path, BLOB_HDR_RESERVED_OFF, reserved);
	found = get_fixed64(p + BLOB_HDR_NUMBER_OFF);
	if (found != number)
		return LSM_CORRUPT("file %s offset %u: header names blob file "
				   "%06llu, not %06llu",
				   path, BLOB_HDR_NUMBER_OFF,
				   (unsigned long long)found,
				   (unsigned long long)number);
	return 0;
}

/* [varint64 number][varint64 offset][varint32 len][u32 checksum]:
 * lsm/FORMAT.md "Blob files" */
size_t blob_ref_encode(uint8_t *dst, const struct blob_ref *r)
{
	uint8_t *p = put_varint64(dst, r->number);
	p = put_varint64(p, r->offset);
	p = put_varint32(p, r->len);
	put_fixed32(p, r->checksum);
	return (size_t)(p + 4 - dst);
}

int blob_ref_decode(struct slice in, struct blob_ref *r)
{
	const uint8_t *p = in.p, *end = in.p + in.len, *q;
	struct blob_ref ref;

	if (in.len == 0 || in.len > BLOB_REF_MAX)
		return LSM_CORRUPT("blob reference of %zu bytes (expected "
				   "7..%u)",
				   in.len, BLOB_REF_MAX);
	q = get_varint64(p, end, &ref.number);
	if (!q || (size_t)(q - p) != varint_len(ref.number))
		goto bad_varint;
	p = q;
	q = get_varint64(p, end, &ref.offset);
	if (!q || (size_t)(q - p) != varint_len(ref.offset))
		goto bad_varint;
	p = q;
	q = get_varint32(p, end, &ref.len);
	if (!q || (size_t)(q - p) != varint_len(ref.len))
		goto bad_varint;
	p = q;
	if (end - p != 4)
		return LSM_CORRUPT("blob reference: %td bytes after the "
				   "length where the 4-byte checksum belongs",
				   end - p);
	ref.checksum = get_fixed32(p);
	*r = ref;
	return 0;

bad_varint:
	return LSM_CORRUPT("blob reference: truncated, overlong or "
			   "out-of-range varint at byte %td",
			   p - in.p);
}
