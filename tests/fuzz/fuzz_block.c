/*
 * fuzz_block.c - libFuzzer target: the SST block parser and iterator
 * (sst/block.h: block_parse + struct block_iter) on arbitrary bytes, read
 * both as an internal-key block (data, index, range-del) and as a
 * plain-bytes block (properties).
 *
 * Invariants checked on what the iterator accepts:
 *  1. scans make progress: at most one entry per 3 bytes of block (key
 *     order is not checked: the iterator does not promise to notice an
 *     unsorted block, only never to read outside it);
 *  2. a backward scan visits as many entries as the forward scan when
 *     neither hit an error;
 *  3. in internal-key mode every key handed out is >= 8 bytes;
 *  4. seek / seek_for_prev to any target end valid or invalid, no crash.
 *
 * Thread-safety: one input at a time.
 */
#include "fuzz.h"

#include "sst/block.h"
#include "util/coding.h"
#include "util/ikey.h"

#include <string.h>

static void seek_both(struct block_iter *it, struct slice t)
{
	block_iter_seek(it, t);
	if (block_iter_valid(it))
		block_iter_next(it);
	block_iter_seek_for_prev(it, t);
	if (block_iter_valid(it))
		block_iter_prev(it);
}

static void run(const uint8_t *data, size_t size, enum block_order order)
{
	struct block b;
	struct block_iter it;
	uint64_t n_fwd = 0, n_bwd = 0;
	size_t limit = size / 3 + 1;
	uint8_t first[64], t[64];
	size_t first_len = 0;

	if (block_parse(data, size, "fuzz-block", 0, &b) != 0)
		return;
	block_iter_init(&it, &b, order, "fuzz-block", 0);
	for (block_iter_first(&it); block_iter_valid(&it);
	     block_iter_next(&it)) {
		struct slice k = block_iter_key(&it);
		if (order == BLOCK_ORDER_IKEY && k.len < IKEY_TRAILER)
			fuzz_fail("short internal key handed out");
		if (n_fwd == 0 && k.len <= sizeof(first)) {
			if (k.len)
				memcpy(first, k.p, k.len);
			first_len = k.len;
		}
		if (++n_fwd > limit)
			fuzz_fail("forward scan does not progress");
	}
	int fwd_status = block_iter_status(&it);
	for (block_iter_last(&it); block_iter_valid(&it); block_iter_prev(&it))
		if (++n_bwd > limit)
			fuzz_fail("backward scan does not progress");
	if (fwd_status == 0 && block_iter_status(&it) == 0 && n_fwd != n_bwd)
		fuzz_fail("forward and backward scans disagree");

	/* Seek targets: the first key, variations of it, and fixed keys. */
	if (first_len >= IKEY_TRAILER || order == BLOCK_ORDER_BYTES) {
		seek_both(&it, slice_make(first, first_len));
		if (first_len) {
			memcpy(t, first, first_len);
			t[first_len - 1] ^= 0x01;
		}
		seek_both(&it, slice_make(t, first_len));
	}
	static const char *const users[] = {"", "a", "key010", "key5",
					    "\xff\xff"};
	for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
		size_t ul = strlen(users[i]);
		if (ul)
			memcpy(t, users[i], ul);
		if (order == BLOCK_ORDER_IKEY) {
			ikey_put_trailer(t + ul, i * 7, IKEY_KIND_SEEK);
			ul += IKEY_TRAILER;
		}
		seek_both(&it, slice_make(t, ul));
	}
	block_iter_release(&it);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	run(data, size, BLOCK_ORDER_IKEY);
	run(data, size, BLOCK_ORDER_BYTES);
	return 0;
}
