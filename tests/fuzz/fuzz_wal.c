/*
 * fuzz_wal.c - libFuzzer target: the record-log reader (wal/wal_reader.c)
 * on arbitrary file contents.
 *
 * The input becomes a file that walr_open/walr_next read to the end. A
 * log reader must end in one of three ways: clean end, torn tail, or an
 * error; never a crash. Invariants checked on what it accepts:
 *  1. records come back in increasing offsets, each inside the file
 *     (offset + 13 + length <= size) and not overlapping the previous one;
 *  2. after the end (0) or an error, walr_next keeps answering the same;
 *  3. a torn tail's offset lies after the last record and inside the file.
 * Each accepted record is also handed to batch_iterate, as recovery does.
 *
 * Thread-safety: one input at a time.
 */
#include "fuzz.h"

#include "batch.h"
#include "env/env.h"
#include "wal/wal.h"
#include "wal/wal_format.h"

static int count_entry(void *ctx, uint64_t seq, unsigned kind, struct slice key,
		       struct slice value)
{
	(void)seq;
	(void)kind;
	(void)key;
	(void)value;
	(*(uint64_t *)ctx)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[256];
	struct wal_reader *r = NULL;
	struct slice rec;
	uint64_t off = 0, next_min = 0, n_entries = 0;
	int rc;

	fuzz_temp_file("wal", data, size, path, sizeof(path));
	if (walr_open(env_posix(), path, &r) == 0) {
		while ((rc = walr_next(r, &rec, &off)) == 1) {
			if (off < next_min ||
			    off + WAL_HEADER_LEN + rec.len > size)
				fuzz_fail("record outside the file or "
					  "overlapping the previous one");
			next_min = off + WAL_HEADER_LEN + rec.len;
			(void)batch_iterate(rec.p, rec.len, count_entry,
					    &n_entries, path, off);
		}
		if (walr_next(r, &rec, &off) != rc)
			fuzz_fail("walr_next changed its final answer");
		uint64_t torn = 0;
		if (walr_torn(r, &torn)) {
			if (rc != 0)
				fuzz_fail("torn tail reported with an error");
			if (torn < next_min || torn > size)
				fuzz_fail("torn offset out of place");
		}
		walr_close(r);
	}
	unlink(path);
	return 0;
}
