/*
 * fuzz_batch.c - libFuzzer target: the write-batch decoder (batch_iterate
 * in lsm/batch.c), i.e. the payload of every WAL record, on arbitrary
 * bytes.
 *
 * Invariants checked: entries come with consecutive sequence numbers from
 * the header's first sequence, kinds 0..3, keys and values inside the
 * input; an accepted batch calls back exactly `count` times; a callback
 * error stops the walk and is returned as is.
 *
 * Thread-safety: one input at a time.
 */
#include "fuzz.h"

#include "batch.h"
#include "util/ikey.h"

struct walk {
	const uint8_t *lo, *hi;
	uint64_t next_seq;
	uint32_t n, stop_at;
};

#define STOP_CODE 12345

static int on_entry(void *ctx, uint64_t seq, unsigned kind, struct slice key,
		    struct slice value)
{
	struct walk *w = ctx;
	if (seq != w->next_seq)
		fuzz_fail("sequence numbers not consecutive");
	if (kind > IKEY_BLOB)
		fuzz_fail("unknown kind handed out");
	if ((key.len && (key.p < w->lo || key.p + key.len > w->hi)) ||
	    (value.len && (value.p < w->lo || value.p + value.len > w->hi)))
		fuzz_fail("key or value outside the input");
	if (kind == IKEY_DELETE && value.len)
		fuzz_fail("a delete with a value");
	w->next_seq++;
	if (++w->n == w->stop_at)
		return STOP_CODE;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct walk w = {data, data + size, 0, 0, 0};
	if (size >= BATCH_HEADER)
		w.next_seq = batch_get_seq(data);
	int rc = batch_iterate(data, size, on_entry, &w, "fuzz-batch", 0);
	if (rc == 0 && w.n != batch_get_count(data))
		fuzz_fail("accepted batch with a wrong number of entries");
	/* Again, stopping half-way through. */
	if (rc == 0 && w.n >= 2) {
		struct walk w2 = {data, data + size, batch_get_seq(data), 0,
				  w.n / 2};
		if (batch_iterate(data, size, on_entry, &w2, "fuzz-batch", 0) !=
		    STOP_CODE)
			fuzz_fail("callback status not returned");
	}
	return 0;
}
