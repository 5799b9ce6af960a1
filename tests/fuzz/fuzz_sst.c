/*
 * fuzz_sst.c - libFuzzer target: the SST reader (sst/sst_reader.c) on
 * arbitrary file contents: footer, meta blocks (index, filter, range
 * tombstones, properties), data blocks, compression.
 *
 * The input becomes a file opened with sstr_open, once with a block cache
 * and checksum verification and once without either: with verification
 * off, damaged data blocks reach the block decoders and the decompressors
 * (as they do in a store opened with paranoid_checks = false). On an open
 * file: a forward and a backward scan, seeks, and point gets of the keys
 * seen. Invariants checked:
 *  1. scans make progress (bounded by the file size) and hand out keys of
 *     at least 8 bytes;
 *  2. forward and backward scans that both end without error agree on
 *     the number of entries;
 *  3. sstr_get answers 1, 0 or an error; a hit calls back exactly once.
 *
 * Thread-safety: one input at a time.
 */
#include "fuzz.h"

#include "cache/cache.h"
#include "env/env.h"
#include "sst/sst.h"
#include "util/ikey.h"

#include <string.h>

static int on_get(void *ctx, struct slice ikey, struct slice value)
{
	(void)ikey;
	(void)value;
	(*(int *)ctx)++;
	return 0;
}

static void probe(struct sst_reader *r, struct slice user)
{
	uint8_t k[80];
	int hits = 0;
	bool neg = false;
	if (user.len > sizeof(k) - IKEY_TRAILER)
		user.len = sizeof(k) - IKEY_TRAILER;
	if (user.len)
		memcpy(k, user.p, user.len);
	ikey_put_trailer(k + user.len, IKEY_SEQ_MAX, IKEY_KIND_SEEK);
	int rc = sstr_get(r, slice_make(k, user.len + IKEY_TRAILER), on_get,
			  &hits, &neg);
	if (rc == 1 && hits != 1)
		fuzz_fail("sstr_get hit without exactly one callback");
	if (rc == 0 && hits != 0)
		fuzz_fail("sstr_get miss with a callback");
	(void)sstr_may_contain(r, user);
}

static void exercise(struct sst_reader *r, size_t size, bool fill_cache)
{
	struct ikv_iter *it = sstr_iter_new(r, fill_cache);
	uint64_t n_fwd = 0, n_bwd = 0, limit = size / 4 + 1;
	uint8_t keys[3][64];
	size_t key_lens[3] = {0, 0, 0}, n_keys = 0;

	if (!it)
		return;
	for (iter_first(it); iter_valid(it); iter_next(it)) {
		struct slice k = iter_key(it);
		if (k.len < IKEY_TRAILER)
			fuzz_fail("short internal key handed out");
		if (n_keys < 3 && k.len - IKEY_TRAILER <= sizeof(keys[0])) {
			if (k.len > IKEY_TRAILER)
				memcpy(keys[n_keys], k.p, k.len - IKEY_TRAILER);
			key_lens[n_keys++] = k.len - IKEY_TRAILER;
		}
		if (++n_fwd > limit)
			fuzz_fail("forward scan does not progress");
	}
	int fwd_status = iter_status(it);
	for (iter_last(it); iter_valid(it); iter_prev(it))
		if (++n_bwd > limit)
			fuzz_fail("backward scan does not progress");
	if (fwd_status == 0 && iter_status(it) == 0 && n_fwd != n_bwd)
		fuzz_fail("forward and backward scans disagree");
	for (size_t i = 0; i < n_keys; i++) {
		uint8_t t[80];
		if (key_lens[i])
			memcpy(t, keys[i], key_lens[i]);
		ikey_put_trailer(t + key_lens[i], 1, IKEY_PUT);
		iter_seek(it, slice_make(t, key_lens[i] + IKEY_TRAILER));
		iter_seek_for_prev(it,
				   slice_make(t, key_lens[i] + IKEY_TRAILER));
		probe(r, slice_make(keys[i], key_lens[i]));
	}
	it->ops->free(it);
	probe(r, slice_make("key010", 6));
	probe(r, slice_make("", 0));
	const struct range_tomb *t = NULL;
	(void)sstr_range_tombs(r, &t);
	(void)sstr_approx_offset(r, slice_make("key010\0\0\0\0\0\0\0\0", 14));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[256];
	struct sst_reader *r = NULL;

	fuzz_temp_file("sst", data, size, path, sizeof(path));
	struct cache *c = cache_new(1 << 16, 0);
	if (c && sstr_open(env_posix(), path, 7, c, true, &r) == 0) {
		exercise(r, size, true);
		sstr_close(r);
	}
	cache_free(c);
	r = NULL;
	if (sstr_open(env_posix(), path, 7, NULL, false, &r) == 0) {
		exercise(r, size, false);
		sstr_close(r);
	}
	unlink(path);
	return 0;
}
