/*
 * make_corpus.c - writes the seed corpora of the fuzz targets
 * (tests/fuzz/corpus/<target>/) from the golden store and a few files
 * made here with the engine's writers (blob files: only files made here).
 *
 * What and why: a fuzzer finds far more when it starts from valid inputs
 * (it can then mutate its way into every decoder branch) plus a few known
 * damaged ones (torn tails, bad lengths, flipped bytes, unknown fields).
 * The corpus is committed; this program is built but not run by the tests
 * (command in tests/fuzz/README.md). Everything it writes is
 * deterministic except the SST time properties of the golden files.
 *
 * Invariants:
 *  1. Every seed is small (< 4 KiB) so that replay stays fast.
 *  2. Only the output directory is written; the golden store is read.
 *
 * Thread-safety: single-threaded program.
 */
#include "batch.h"
#include "blob/blob.h"
#include "env/env.h"
#include "sst/block.h"
#include "sst/compress.h"
#include "sst/sst.h"
#include "sst/sst_format.h"
#include "util/coding.h"
#include "util/hash.h"
#include "util/ikey.h"
#include "util/sketch.h"
#include "version/version.h"
#include "wal/wal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *out_root;

static void die(const char *what, int rc)
{
	fprintf(stderr, "make_corpus: %s: %s (%s)\n", what, lsm_strerror(rc),
		lsm_errdetail());
	exit(1);
}

static void put_seed(const char *target, const char *name, const void *p,
		     size_t len)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", out_root, target);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", out_root, target, name);
	FILE *f = fopen(path, "wb");
	if (!f || (len && fwrite(p, 1, len, f) != len) || fclose(f) != 0)
		die(path, -EIO);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	uint8_t *buf = NULL;
	int rc = env_read_file(env_posix(), path, &buf, len);
	if (rc)
		die(path, rc);
	return buf;
}

/* Record payloads of a log file, each as a seed of `target`. */
static void log_payloads(const char *path, const char *target,
			 const char *prefix)
{
	struct wal_reader *r = NULL;
	struct slice rec;
	uint64_t off = 0;
	int rc, i = 0;
	if ((rc = walr_open(env_posix(), path, &r)))
		die(path, rc);
	while ((rc = walr_next(r, &rec, &off)) == 1) {
		char name[64];
		snprintf(name, sizeof(name), "%s-rec%d", prefix, i++);
		put_seed(target, name, rec.p, rec.len);
		if (i == 1) {
			/* The same record cut short. */
			snprintf(name, sizeof(name), "%s-rec0-cut", prefix);
			put_seed(target, name, rec.p, rec.len / 2);
		}
	}
	walr_close(r);
	if (rc < 0)
		die(path, rc);
}

static void wal_seeds(const char *store)
{
	char path[4096];
	size_t len = 0;
	snprintf(path, sizeof(path), "%s/000007.log", store);
	uint8_t *b = slurp(path, &len);
	uint8_t *c = malloc(len + 32);
	put_seed("fuzz_wal", "golden.log", b, len);
	put_seed("fuzz_wal", "torn-payload.log", b, 150);
	put_seed("fuzz_wal", "torn-header.log", b, 137);
	memcpy(c, b, len);
	memset(c + len, 0, 32);
	put_seed("fuzz_wal", "zero-tail.log", c, len + 32);
	memcpy(c, b, len);
	c[60] ^= 0x10; /* payload of the second record */
	put_seed("fuzz_wal", "bad-payload.log", c, len);
	memcpy(c, b, len);
	c[58] ^= 0x01; /* length of the second record */
	put_seed("fuzz_wal", "bad-length.log", c, len);
	put_seed("fuzz_wal", "empty.log", "", 0);
	free(c);
	free(b);
	snprintf(path, sizeof(path), "%s/MANIFEST-000006", store);
	b = slurp(path, &len);
	put_seed("fuzz_wal", "golden-manifest", b, len);
	free(b);
}

static void batch_seeds(const char *store)
{
	char path[4096];
	uint8_t m[32], *p = m;
	snprintf(path, sizeof(path), "%s/000007.log", store);
	log_payloads(path, "fuzz_batch", "golden");
	/* A WAL marker: seq 0, count 0, "abandoned" WAL 5 at 1234 bytes. */
	memset(m, 0, BATCH_HEADER);
	p = m + BATCH_HEADER;
	*p++ = WAL_MARKER_ABANDONED;
	p = put_varint64(p, 5);
	p = put_varint64(p, 1234);
	put_seed("fuzz_batch", "marker", m, (size_t)(p - m));
	/* An empty batch and one whose count overstates its entries. */
	memset(m, 0, BATCH_HEADER);
	batch_set_seq(m, 5);
	put_seed("fuzz_batch", "empty-batch", m, BATCH_HEADER);
	put_fixed32(m + 8, 1000000);
	put_seed("fuzz_batch", "huge-count", m, BATCH_HEADER);
}

static void manifest_seeds(const char *store)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/MANIFEST-000006", store);
	log_payloads(path, "fuzz_manifest", "golden");

	/* An edit with deletions and a file bounded by sentinels, with a
	 * distinct-key sketch (tag 13). */
	struct version_edit e;
	uint8_t sm[16], lg[16], *buf = NULL;
	size_t len = 0;
	int rc;
	edit_init(&e);
	e.has_log_number = e.has_next_file = e.has_last_seq = true;
	e.log_number = 12;
	e.next_file = 20;
	e.last_seq = 999;
	memcpy(sm, "abc", 3);
	ikey_put_trailer(sm + 3, IKEY_SEQ_MAX, IKEY_SENTINEL);
	memcpy(lg, "xyz", 3);
	ikey_put_trailer(lg + 3, 17, IKEY_PUT);
	struct file_meta *f =
		file_meta_new(15, 4096, slice_make(sm, 11), slice_make(lg, 11));
	if (!f)
		die("file_meta_new", -ENOMEM);
	f->smallest_seq = 3;
	f->largest_seq = 17;
	f->num_entries = 9;
	f->sketch = calloc(1, SKETCH_REGS);
	if (!f->sketch)
		die("sketch", -ENOMEM);
	for (uint64_t k = 1; k <= 9; k++)
		sketch_add(f->sketch, lsm_hash64(&k, sizeof(k)));
	if ((rc = edit_add_file(&e, 3, f)) ||
	    (rc = edit_delete_file(&e, 1, 4)) ||
	    (rc = edit_delete_file(&e, 6, 8)) ||
	    (rc = edit_encode(&e, &buf, &len)))
		die("edit", rc);
	put_seed("fuzz_manifest", "deletes-and-sentinel", buf, len);
	uint8_t *ext = malloc(len + 2);
	memcpy(ext, buf, len);
	ext[len] = 99; /* a field from a newer lsm */
	ext[len + 1] = 1;
	put_seed("fuzz_manifest", "unknown-tag", ext, len + 2);
	free(ext);
	free(buf);
	edit_release(&e);
}

/* The raw bytes of the block at a handle (trailer stripped, data blocks
 * uncompressed). */
static uint8_t *block_at(const uint8_t *file, uint64_t off, uint64_t size,
			 size_t *len)
{
	uint8_t type = file[off + size];
	uint8_t *out = NULL;
	if (type == SST_BLOCK_RAW) {
		out = malloc(size ? size : 1);
		memcpy(out, file + off, size);
		*len = size;
		return out;
	}
	int rc = sst_uncompress(type, slice_make(file + off, size), "golden",
				off, &out, len);
	if (rc)
		die("uncompress", rc);
	return out;
}

static void block_seeds(const char *store)
{
	char path[4096], name[64];
	size_t flen = 0, len = 0;
	snprintf(path, sizeof(path), "%s/000004.sst", store);
	uint8_t *file = slurp(path, &flen);
	const uint8_t *ft = file + flen - SST_FOOTER_SIZE;
	static const char *const meta[4] = {"filter", "rangedel", "index",
					    "props"};
	for (int i = 1; i < 4; i++) {
		uint64_t off = get_fixed64(ft + SST_HANDLE_SIZE * i);
		uint64_t size = get_fixed32(ft + SST_HANDLE_SIZE * i + 8);
		uint8_t *b = block_at(file, off, size, &len);
		put_seed("fuzz_block", meta[i], b, len);
		if (i == 2) {
			/* The first two data blocks, uncompressed. */
			struct block blk;
			struct block_iter it;
			int n = 0;
			if (block_parse(b, len, path, off, &blk))
				die("index", LSM_E_CORRUPT);
			block_iter_init(&it, &blk, BLOCK_ORDER_IKEY, path, off);
			for (block_iter_first(&it);
			     block_iter_valid(&it) && n < 2;
			     block_iter_next(&it), n++) {
				struct slice v = block_iter_value(&it);
				uint64_t bo = 0, bs = 0;
				const uint8_t *q =
					get_varint64(v.p, v.p + v.len, &bo);
				get_varint64(q, v.p + v.len, &bs);
				size_t dl = 0;
				uint8_t *d = block_at(file, bo, bs, &dl);
				snprintf(name, sizeof(name), "data%d", n);
				put_seed("fuzz_block", name, d, dl);
				if (n == 0) {
					d[dl / 3] ^= 0x40;
					put_seed("fuzz_block", "data0-damaged",
						 d, dl);
				}
				free(d);
			}
			block_iter_release(&it);
		}
		free(b);
	}
	free(file);

	/* A block made here: restart interval 4, long shared prefixes. */
	struct block_builder bb;
	struct slice out;
	block_builder_init(&bb, 4);
	for (int i = 0; i < 30; i++) {
		uint8_t k[32];
		int kl = snprintf((char *)k, sizeof(k), "prefix/shared/%04d",
				  i * 3);
		ikey_put_trailer(k + kl, (uint64_t)(100 - i), IKEY_PUT);
		if (block_builder_add(&bb, slice_make(k, (size_t)kl + 8),
				      slice_make("v", (size_t)(i % 2))))
			die("block", -ENOMEM);
	}
	if (block_builder_finish(&bb, &out))
		die("block", -ENOMEM);
	put_seed("fuzz_block", "restart4", out.p, out.len);
	block_builder_release(&bb);
	static const uint8_t empty_block[8] = {0, 0, 0, 0, 1, 0, 0, 0};
	put_seed("fuzz_block", "empty", empty_block, sizeof(empty_block));
}

static void sst_seeds(const char *store)
{
	char path[4096];
	size_t len = 0;
	static const char *const golden[2] = {"000004.sst", "000008.sst"};
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", store, golden[i]);
		uint8_t *b = slurp(path, &len);
		put_seed("fuzz_sst", i ? "golden-zstd.sst" : "golden-lz4.sst",
			 b, len);
		if (i == 0) {
			b[30] ^= 0x08; /* inside the first data block */
			put_seed("fuzz_sst", "damaged-data.sst", b, len);
			put_seed("fuzz_sst", "truncated.sst", b, len - 10);
		}
		free(b);
	}

	/* Uncompressed, no filter, restart interval 4, small blocks. */
	struct sst_writer_opts o;
	struct sst_writer *w = NULL;
	int rc;
	sst_writer_opts_init(&o);
	o.block_size = 128;
	o.restart_interval = 4;
	o.bloom_bits_per_key = 0;
	o.compression = LSM_COMPRESS_NONE;
	o.time_lo = o.time_hi = 1000000;
	snprintf(path, sizeof(path), "/tmp/make_corpus_%d.sst", (int)getpid());
	if ((rc = sstw_open(env_posix(), path, &o, &w)))
		die("sstw_open", rc);
	for (int i = 0; i < 24 && !rc; i++) {
		uint8_t k[32];
		int kl = snprintf((char *)k, sizeof(k), "k%03d", i);
		ikey_put_trailer(k + kl, (uint64_t)(i + 1),
				 i % 5 == 4 ? IKEY_DELETE : IKEY_PUT);
		rc = sstw_add(w, slice_make(k, (size_t)kl + 8),
			      i % 5 == 4 ? slice_make("", 0)
					 : slice_make("value-value", 11));
	}
	uint8_t rs[16];
	memcpy(rs, "k005", 4);
	ikey_put_trailer(rs + 4, 30, IKEY_RANGE_DELETE);
	if (!rc)
		rc = sstw_add_range_del(w, slice_make(rs, 12),
					slice_make("k010", 4));
	if (rc || (rc = sstw_finish(w, NULL)))
		die("sst", rc);
	uint8_t *b = slurp(path, &len);
	put_seed("fuzz_sst", "raw-nofilter.sst", b, len);
	free(b);
	remove(path);
}

/* A blob file written with blobw_* into a scratch directory: header only
 * (n_vals 0) or records, one of them with an empty value and one with an
 * empty key. Returns the file's bytes; *ref0 = the first record's ref. */
static uint8_t *blob_file(int n_vals, size_t *len, struct blob_ref *ref0)
{
	char dir[128], path[256];
	struct blob_writer *w = NULL;
	struct blob_ref ref;
	uint8_t val[300];
	int rc;

	snprintf(dir, sizeof(dir), "/tmp/make_corpus_blob_%d", (int)getpid());
	mkdir(dir, 0700);
	if ((rc = blobw_open(env_posix(), dir, 5, &w)))
		die("blobw_open", rc);
	for (size_t i = 0; i < sizeof(val); i++)
		val[i] = (uint8_t)(i * 7 + 1);
	for (int i = 0; i < n_vals && !rc; i++) {
		char k[16];
		int kl = i == 3 ? 0 : snprintf(k, sizeof(k), "key%d", i);
		size_t vl = i == 1 ? 0 : (size_t)(20 + 70 * i);
		rc = blobw_add(w, slice_make(k, (size_t)kl),
			       slice_make(val, vl), &ref);
		if (i == 0 && ref0)
			*ref0 = ref;
	}
	if (rc || (rc = blobw_close(w, false)))
		die("blob file", rc);
	blob_file_path(path, sizeof(path), dir, 5);
	uint8_t *b = slurp(path, len);
	remove(path);
	rmdir(dir);
	return b;
}

static void blob_seeds(void)
{
	struct blob_ref r = {0};
	size_t len = 0;
	uint8_t *b = blob_file(0, &len, NULL);
	put_seed("fuzz_blob", "header-only.blob", b, len);
	/* Version 2 with a good header checksum: an unknown format. */
	put_fixed32(b + BLOB_HDR_VERSION_OFF, 2);
	put_fixed32(b + BLOB_HDR_CHECK_OFF,
		    lsm_checksum32(b, BLOB_HDR_CHECK_OFF));
	put_seed("fuzz_blob", "version2.blob", b, len);
	free(b);

	b = blob_file(5, &len, &r);
	put_seed("fuzz_blob", "records.blob", b, len);
	put_seed("fuzz_blob", "torn-tail.blob", b, len - 50);
	put_seed("fuzz_blob", "torn-last-byte.blob", b, len - 1);
	uint8_t *c = malloc(len + 64);
	memcpy(c, b, len);
	memset(c + len, 0, 64);
	put_seed("fuzz_blob", "zero-tail.blob", c, len + 64);
	memcpy(c, b, len);
	c[r.offset + r.len + 30] ^= 0x20; /* inside the third record */
	put_seed("fuzz_blob", "damaged-record.blob", c, len);
	free(c);
	free(b);

	/* References: a real one, the smallest, the largest, an overlong. */
	uint8_t enc[BLOB_REF_MAX + 1];
	size_t n = blob_ref_encode(enc, &r);
	put_seed("fuzz_blob", "ref-real", enc, n);
	struct blob_ref small = {1, 42, 0, lsm_checksum32("", 0)};
	n = blob_ref_encode(enc, &small);
	put_seed("fuzz_blob", "ref-small", enc, n);
	struct blob_ref big = {UINT64_MAX, UINT64_MAX, BLOB_MAX_VALUE,
			       0xffffffffu};
	n = blob_ref_encode(enc, &big);
	put_seed("fuzz_blob", "ref-max", enc, n);
	n = blob_ref_encode(enc, &small);
	memmove(enc + 2, enc + 1, n - 1);
	enc[0] |= 0x80; /* number 1 as two bytes: not canonical */
	enc[1] = 0;
	put_seed("fuzz_blob", "ref-overlong", enc, n + 1);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr,
			"usage: make_corpus GOLDEN_STORE_DIR OUT_DIR\n");
		return 2;
	}
	out_root = argv[2];
	mkdir(out_root, 0755);
	wal_seeds(argv[1]);
	batch_seeds(argv[1]);
	manifest_seeds(argv[1]);
	block_seeds(argv[1]);
	sst_seeds(argv[1]);
	blob_seeds();
	printf("make_corpus: wrote %s\n", out_root);
	return 0;
}
