/*
 * fuzz_blob.c - libFuzzer target: blob files (lsm/blob/) on arbitrary
 * bytes: the reference codec, the file header check, the scanners and the
 * point reader.
 *
 * The input is used twice. First as a blob reference: blob_ref_decode on
 * every prefix of up to BLOB_REF_MAX bytes, and an encode/decode round
 * trip of a reference whose fields are taken from the input. Then as a
 * whole blob file: it is written to <tmp>/NNNNNN.blob, NNNNNN being the
 * number its header names (bytes 16..24, or 0 for shorter inputs), so
 * that the number check passes and the scan goes on to the records; it
 * is then scanned with blob_scan and blob_scan_values, opened with
 * blobr_open, every value the scans reported is read back with
 * blobr_read, and finally the file is renamed to the next number and
 * scanned again. A file whose magic is right but whose header checksum
 * is not is run a second time with the checksum made good (mutations
 * would otherwise never get past it to the version, flags and reserved
 * word). The expected answer to the header is computed here from
 * FORMAT.md ("Blob files"), independently of blob.c.
 *
 * Invariants checked:
 *  1. blob_ref_decode accepts at most one prefix of any input (the
 *     encoding is canonical, so prefix-free); what it accepts re-encodes
 *     to exactly the bytes decoded; a refusal is LSM_E_CORRUPT and leaves
 *     *r untouched. Any reference encodes to 7..29 bytes that decode to
 *     it, and neither a strict prefix, nor one more byte, nor an overlong
 *     first varint decodes.
 *  2. The scanners return 0, 1 or a negative code; a header that is short,
 *     bad or from another file makes them (and blobr_open) return exactly
 *     the LSM_E_CORRUPT / LSM_E_FORMAT the format prescribes; with a good
 *     header they return 0 or 1 (or -ENOMEM: the file is local and does
 *     not change, so no other error is legitimate). *valid_len is written
 *     on 0 and 1 only.
 *  3. On 0 or 1: records come in file order, back to back from offset 32:
 *     each one's header checksum covers exactly the bytes from its start
 *     to its value, its key and value checksum are the file bytes before
 *     its value, its value lies inside the file and matches ref->checksum;
 *     valid_len is the end of the last record (32 if none), at most the
 *     file size; the return is 0 exactly when only zero bytes follow
 *     valid_len.
 *  4. blob_scan and blob_scan_values agree on the return, valid_len and
 *     every record; the values handed out are the file's bytes. A
 *     callback's nonzero return stops the scan and is returned as is.
 *  5. blobr_read of every reported reference succeeds and returns the
 *     file's bytes; with a wrong checksum or a value past the end of the
 *     file it is LSM_E_CORRUPT, with another file's number -EINVAL.
 *  6. Reported references survive an encode/decode round trip.
 *
 * Thread-safety: one input at a time.
 */
#include "fuzz.h"

#include "blob/blob.h"
#include "env/env.h"
#include "util/coding.h"
#include "util/hash.h"

#include <stdio.h>
#include <string.h>

#define STOP_CODE (-12345)
#define NO_LEN 0xdeadbeefcafef00dull

/* ---- references ---- */

static bool ref_equal(const struct blob_ref *a, const struct blob_ref *b)
{
	return a->number == b->number && a->offset == b->offset &&
	       a->len == b->len && a->checksum == b->checksum;
}

/* Decodes in; on success it must re-encode to exactly in. Returns 1 if
 * accepted, 0 if refused. */
static int check_decode(const uint8_t *p, size_t len)
{
	static const struct blob_ref sentinel = {0x1111, 0x2222, 0x3333,
						 0x4444};
	struct blob_ref r = sentinel;
	uint8_t enc[BLOB_REF_MAX];
	int rc = blob_ref_decode(slice_make(p, len), &r);
	if (rc != 0) {
		if (rc != LSM_E_CORRUPT)
			fuzz_fail("blob_ref_decode: refusal is not "
				  "LSM_E_CORRUPT");
		if (!ref_equal(&r, &sentinel))
			fuzz_fail("blob_ref_decode wrote *r on failure");
		return 0;
	}
	size_t n = blob_ref_encode(enc, &r);
	if (n != len || memcmp(enc, p, len) != 0)
		fuzz_fail("accepted reference does not re-encode to its "
			  "bytes");
	return 1;
}

/* Encodes r, decodes it back, and checks that near misses are refused. */
static void check_roundtrip(const struct blob_ref *r)
{
	uint8_t enc[BLOB_REF_MAX + 2];
	struct blob_ref back;
	size_t n = blob_ref_encode(enc, r);
	if (n < 7 || n > BLOB_REF_MAX)
		fuzz_fail("encoded reference of impossible length");
	if (blob_ref_decode(slice_make(enc, n), &back) != 0 ||
	    !ref_equal(&back, r))
		fuzz_fail("reference does not survive encode/decode");
	for (size_t i = 0; i < n; i++)
		if (blob_ref_decode(slice_make(enc, i), &back) == 0)
			fuzz_fail("a strict prefix of a reference decodes");
	enc[n] = 0;
	if (blob_ref_decode(slice_make(enc, n + 1), &back) == 0)
		fuzz_fail("a reference with a trailing byte decodes");
	/* The number's varint made one byte longer: not canonical. */
	size_t vl = varint_len(r->number);
	if (vl < 10) {
		memmove(enc + vl + 1, enc + vl, n - vl);
		enc[vl - 1] |= 0x80;
		enc[vl] = 0;
		if (blob_ref_decode(slice_make(enc, n + 1), &back) == 0)
			fuzz_fail("an overlong varint in a reference decodes");
	}
}

static void fuzz_refs(const uint8_t *data, size_t size)
{
	int accepted = 0;
	size_t max = size < BLOB_REF_MAX ? size : BLOB_REF_MAX;
	for (size_t len = 1; len <= max; len++)
		accepted += check_decode(data, len);
	if (accepted > 1)
		fuzz_fail("two prefixes of one input decode as references");
	(void)check_decode(data, 0);

	uint8_t f[24] = {0};
	if (size)
		memcpy(f, data, size < sizeof(f) ? size : sizeof(f));
	struct blob_ref r = {get_fixed64(f), get_fixed64(f + 8),
			     get_fixed32(f + 16), get_fixed32(f + 20)};
	check_roundtrip(&r);
}

/* ---- the file ---- */

/* What a reader must answer to this header, opened as file `number`:
 * lsm/FORMAT.md "Blob files", checks in the order the spec gives. */
static int expected_header(const uint8_t *p, size_t size, uint64_t number)
{
	if (size < BLOB_HEADER_LEN ||
	    memcmp(p, BLOB_MAGIC, BLOB_MAGIC_LEN) != 0 ||
	    get_fixed32(p + BLOB_HDR_CHECK_OFF) !=
		    lsm_checksum32(p, BLOB_HDR_CHECK_OFF))
		return LSM_E_CORRUPT;
	if (get_fixed32(p + BLOB_HDR_VERSION_OFF) != BLOB_VERSION ||
	    get_fixed32(p + BLOB_HDR_FLAGS_OFF) != 0 ||
	    get_fixed32(p + BLOB_HDR_RESERVED_OFF) != 0)
		return LSM_E_FORMAT;
	if (get_fixed64(p + BLOB_HDR_NUMBER_OFF) != number)
		return LSM_E_CORRUPT;
	return 0;
}

struct rec {
	struct blob_ref ref;
	size_t key_len;
};

struct walk {
	const uint8_t *data;
	size_t size;
	uint64_t number;
	uint64_t next; /* where the next record must start */
	struct rec *recs;
	size_t n, cap;
	size_t stop_at; /* return STOP_CODE on this record (1-based) */
};

static int on_record(struct walk *w, struct slice key, const struct blob_ref *r)
{
	const uint8_t *d = w->data;
	uint64_t start = w->next, off = r->offset;

	if (r->number != w->number)
		fuzz_fail("record reported with another file's number");
	/* [u32 check][2..10 bytes of varints][key][u32 value check] */
	if (off < start || off - start < 4 + 2 + key.len + 4 ||
	    off - start > 4 + 10 + key.len + 4)
		fuzz_fail("record does not start where the previous ended");
	if (off > w->size || r->len > w->size - off)
		fuzz_fail("record's value outside the file");
	if (lsm_checksum32(d + start + 4, (size_t)(off - start - 4)) !=
	    get_fixed32(d + start))
		fuzz_fail("record header checksum does not cover its head");
	if (key.len && memcmp(key.p, d + off - 4 - key.len, key.len) != 0)
		fuzz_fail("key is not the file's bytes before the value");
	if (get_fixed32(d + off - 4) != r->checksum ||
	    lsm_checksum32(d + off, r->len) != r->checksum)
		fuzz_fail("reported value does not match its checksum");
	w->next = off + r->len;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		struct rec *nr = realloc(w->recs, cap * sizeof(*nr));
		if (!nr)
			fuzz_fail("out of memory");
		w->recs = nr;
		w->cap = cap;
	}
	w->recs[w->n].ref = *r;
	w->recs[w->n].key_len = key.len;
	if (++w->n == w->stop_at)
		return STOP_CODE;
	return 0;
}

static int on_scan(void *ctx, struct slice key, const struct blob_ref *ref)
{
	return on_record(ctx, key, ref);
}

static int on_scan_value(void *ctx, struct slice key, struct slice value,
			 const struct blob_ref *ref)
{
	struct walk *w = ctx;
	if (ref->offset > w->size || ref->len > w->size - ref->offset)
		fuzz_fail("record's value outside the file");
	if (value.len != ref->len ||
	    (value.len &&
	     memcmp(value.p, w->data + ref->offset, value.len) != 0))
		fuzz_fail("blob_scan_values handed out other bytes");
	return on_record(w, key, ref);
}

static void walk_init(struct walk *w, const uint8_t *data, size_t size,
		      uint64_t number, size_t stop_at)
{
	memset(w, 0, sizeof(*w));
	w->data = data;
	w->size = size;
	w->number = number;
	w->next = BLOB_HEADER_LEN;
	w->stop_at = stop_at;
}

/* The only error a good file may meet: nobody changes it while it is read
 * and it lies on a local file system, so an I/O error (-EIO "file shrank")
 * would be the scanner reading past what it was given. */
static bool is_oom(int rc)
{
	return rc == -ENOMEM;
}

/* Runs one scan and checks invariants 2 and 3; returns its status and
 * fills *valid_len (NO_LEN if not written). */
static int scan(const char *dir, struct walk *w, bool values, int expect_hdr,
		uint64_t *valid_len)
{
	*valid_len = NO_LEN;
	int rc = values ? blob_scan_values(env_posix(), dir, w->number,
					   on_scan_value, w, valid_len)
			: blob_scan(env_posix(), dir, w->number, on_scan, w,
				    valid_len);
	if (rc < 0) {
		if (*valid_len != NO_LEN)
			fuzz_fail("valid_len written on an error");
		if (expect_hdr != 0 && rc != expect_hdr)
			fuzz_fail("bad header not reported as the format "
				  "prescribes");
		if (expect_hdr == 0 && rc != STOP_CODE && !is_oom(rc))
			fuzz_fail("good header, yet an error");
		return rc;
	}
	if (rc > 1)
		fuzz_fail("scan returned a positive code other than 1");
	if (expect_hdr != 0)
		fuzz_fail("scan accepted a bad header");
	if (*valid_len != w->next)
		fuzz_fail("valid_len is not the end of the last record");
	if (*valid_len < BLOB_HEADER_LEN || *valid_len > w->size)
		fuzz_fail("valid_len outside [32, file size]");
	bool zero_tail = true;
	for (size_t i = (size_t)*valid_len; i < w->size && zero_tail; i++)
		zero_tail = w->data[i] == 0;
	if ((rc == 0) != zero_tail)
		fuzz_fail("clean end vs torn tail misreported");
	return rc;
}

static void check_reads(const char *dir, const struct walk *w, int expect_hdr)
{
	struct blob_reader *r = NULL;
	int rc = blobr_open(env_posix(), dir, w->number, &r);
	if (rc != expect_hdr && !(expect_hdr == 0 && is_oom(rc)))
		fuzz_fail("blobr_open disagrees with the header");
	if (rc != 0)
		return;
	if (blobr_number(r) != w->number)
		fuzz_fail("blobr_number is not the file's");
	for (size_t i = 0; i < w->n; i++) {
		struct blob_ref ref = w->recs[i].ref;
		uint8_t *buf = malloc(ref.len ? ref.len : 1);
		if (!buf)
			fuzz_fail("out of memory");
		if (blobr_read(r, &ref, buf) != 0 ||
		    (ref.len && memcmp(buf, w->data + ref.offset, ref.len)))
			fuzz_fail("blobr_read of a reported value failed");
		ref.checksum ^= 1;
		if (blobr_read(r, &ref, buf) != LSM_E_CORRUPT)
			fuzz_fail("blobr_read accepted a wrong checksum");
		ref.checksum ^= 1;
		ref.number++;
		if (blobr_read(r, &ref, buf) != -EINVAL)
			fuzz_fail("blobr_read served another file's value");
		free(buf);
		check_roundtrip(&w->recs[i].ref);
	}
	/* One byte past the end of the file. */
	struct blob_ref past = {w->number, w->size, 1, 0};
	uint8_t one;
	if (blobr_read(r, &past, &one) != LSM_E_CORRUPT)
		fuzz_fail("blobr_read past the end is not LSM_E_CORRUPT");
	blobr_close(r);
}

static void fuzz_file(const uint8_t *data, size_t size)
{
	char tmp[256], dir[300], path[400], path2[400];
	uint64_t number = size >= BLOB_HDR_NUMBER_OFF + 8
				  ? get_fixed64(data + BLOB_HDR_NUMBER_OFF)
				  : 0;
	int expect = expected_header(data, size, number);

	/* fuzz_temp_file's file, moved to <tmp>.d/NNNNNN.blob. */
	fuzz_temp_file("blob", data, size, tmp, sizeof(tmp));
	snprintf(dir, sizeof(dir), "%s.d", tmp);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		fuzz_fail("cannot create the temp dir");
	if (blob_file_path(path, sizeof(path), dir, number) >= sizeof(path))
		fuzz_fail("temp path too long");
	if (rename(tmp, path) != 0)
		fuzz_fail("cannot move the temp file");

	struct walk w1, w2;
	uint64_t len1, len2;
	walk_init(&w1, data, size, number, 0);
	walk_init(&w2, data, size, number, 0);
	int rc1 = scan(dir, &w1, false, expect, &len1);
	int rc2 = scan(dir, &w2, true, expect, &len2);
	if (rc1 != rc2 || len1 != len2 || w1.n != w2.n)
		fuzz_fail("blob_scan and blob_scan_values disagree");
	for (size_t i = 0; i < w1.n; i++)
		if (!ref_equal(&w1.recs[i].ref, &w2.recs[i].ref) ||
		    w1.recs[i].key_len != w2.recs[i].key_len)
			fuzz_fail("blob_scan and blob_scan_values disagree "
				  "on a record");
	if (rc1 >= 0) {
		check_reads(dir, &w1, expect);
		/* Stopping half-way: the callback's code comes back. */
		if (w1.n >= 2) {
			for (int values = 0; values < 2; values++) {
				struct walk ws;
				uint64_t lens;
				walk_init(&ws, data, size, number, w1.n / 2);
				if (scan(dir, &ws, values, expect, &lens) !=
				    STOP_CODE)
					fuzz_fail("callback status not "
						  "returned");
				free(ws.recs);
			}
		}
	} else if (!is_oom(rc1)) {
		check_reads(dir, &w1, expect);
	}
	free(w1.recs);
	free(w2.recs);

	/* The same bytes named as another file: the header must say so. */
	if (blob_file_path(path2, sizeof(path2), dir, number + 1) >=
		    sizeof(path2) ||
	    rename(path, path2) != 0)
		fuzz_fail("cannot rename the temp file");
	struct walk wo;
	uint64_t leno;
	walk_init(&wo, data, size, number + 1, 0);
	(void)scan(dir, &wo, false, expected_header(data, size, number + 1),
		   &leno);
	free(wo.recs);
	unlink(path2);
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_refs(data, size);
	fuzz_file(data, size);
	/* A mutated header almost never keeps its checksum: run the file
	 * again with the checksum made good, so that version, flags and
	 * reserved bits are judged too. */
	if (size >= BLOB_HEADER_LEN &&
	    memcmp(data, BLOB_MAGIC, BLOB_MAGIC_LEN) == 0 &&
	    get_fixed32(data + BLOB_HDR_CHECK_OFF) !=
		    lsm_checksum32(data, BLOB_HDR_CHECK_OFF)) {
		uint8_t *fixed = malloc(size);
		if (!fixed)
			fuzz_fail("out of memory");
		memcpy(fixed, data, size);
		put_fixed32(fixed + BLOB_HDR_CHECK_OFF,
			    lsm_checksum32(fixed, BLOB_HDR_CHECK_OFF));
		fuzz_file(fixed, size);
		free(fixed);
	}
	return 0;
}
