/*
 * fuzz_manifest.c - libFuzzer target: the MANIFEST record decoder
 * (edit_decode in version/edit.c) on arbitrary record payloads.
 *
 * Invariants checked on an accepted record:
 *  1. every added file has valid internal keys, smallest <= largest and a
 *     level below LSM_MAX_LEVELS; every deleted file's level too;
 *  2. round trip: encoding the decoded edit and decoding that again gives
 *     the same encoding (the encoder is canonical; the decoder may accept
 *     non-canonical varints, so the input itself may differ).
 *
 * Thread-safety: one input at a time.
 */
#include "fuzz.h"

#include "util/ikey.h"
#include "version/version.h"

#include <string.h>

static void check_edit(const struct version_edit *e)
{
	for (size_t i = 0; i < e->n_added; i++) {
		const struct file_meta *f = e->added[i].f;
		if (e->added[i].level < 0 ||
		    e->added[i].level >= LSM_MAX_LEVELS)
			fuzz_fail("added file level out of range");
		if (!ikey_valid(fm_smallest(f)) || !ikey_valid(fm_largest(f)) ||
		    ikey_cmp(fm_smallest(f), fm_largest(f)) > 0)
			fuzz_fail("added file with a bad key range");
	}
	for (size_t i = 0; i < e->n_deleted; i++)
		if (e->deleted[i].level < 0 ||
		    e->deleted[i].level >= LSM_MAX_LEVELS)
			fuzz_fail("deleted file level out of range");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct version_edit e, e2;
	uint8_t *enc = NULL, *enc2 = NULL;
	size_t enc_len = 0, enc2_len = 0;

	if (edit_decode(&e, data, size, "fuzz-manifest", 0) != 0)
		return 0;
	check_edit(&e);
	if (edit_encode(&e, &enc, &enc_len) != 0)
		goto out;
	/* An empty edit encodes to (NULL, 0): decoding that must work. */
	if (edit_decode(&e2, enc, enc_len, "fuzz-manifest-2", 0) != 0)
		fuzz_fail("an encoded edit does not decode");
	if (edit_encode(&e2, &enc2, &enc2_len) != 0)
		goto out_e2;
	if (enc_len != enc2_len || (enc_len && memcmp(enc, enc2, enc_len) != 0))
		fuzz_fail("encode(decode(encode(x))) != encode(x)");
	free(enc2);
out_e2:
	edit_release(&e2);
out:
	free(enc);
	edit_release(&e);
	return 0;
}
