/*
 * lsm-dump - prints what is inside the files of an lsm store.
 *
 * What and why: when a store misbehaves, the first question is what its
 * files really hold. lsm-dump decodes each on-disk format (lsm/FORMAT.md)
 * with the engine's own low-level readers (sstr_*, walr_*, edit_decode,
 * batch_iterate, block_*), so what it prints is exactly what the engine
 * would read, and it prints it in a stable, greppable text form:
 *   - SST: footer, properties, index (block handles and the compression of
 *     every data block), filter parameters, range tombstones, entries;
 *   - WAL: every record (offset, length) and the batch or marker in it,
 *     then how the log ends (clean end, torn tail);
 *   - MANIFEST: every version edit with all of its fields (blob files
 *     and blob garbage included);
 *   - blob file: its header, every record (offsets, key, value length,
 *     checksum ok/BAD), then how the file ends (clean, torn, corrupt);
 *   - CURRENT: the manifest it names;
 *   - a store directory: a summary (levels and files from the manifest,
 *     live blob files with their linked and garbage figures, WALs, files
 *     the manifest names that are missing).
 * Entries of kind BLOB (in SSTs and WALs) print their reference decoded:
 * blob file, value offset, length and checksum.
 *
 * Invariants:
 *  1. Nothing is ever written: files are opened read-only through the
 *     POSIX env and lsm_open() is never called (it would take the lock,
 *     write a manifest and maybe flush).
 *  2. A damaged file never crashes the tool: the readers check every
 *     length and checksum, and whatever they refuse ends the dump with one
 *     line on stderr naming the file and offset and exit status 1. A torn
 *     log tail is not damage (recovery ignores it): it is printed on
 *     stdout and the exit status stays 0. The same holds for blob files:
 *     a torn last record is printed and is not an error; a record whose
 *     checksum fails, or bytes that are no record, are damage.
 *  3. Bad usage prints the usage text on stderr and exits with status 2.
 *
 * Thread-safety: single-threaded program.
 */
#include "batch.h"
#include "blob/blob.h"
#include "env/env.h"
#include "sst/block.h"
#include "sst/bloom.h"
#include "sst/compress.h"
#include "sst/sst.h"
#include "sst/sst_format.h"
#include "util/coding.h"
#include "util/hash.h"
#include "util/ikey.h"
#include "util/sketch.h"
#include "util/status.h"
#include "version/version.h"
#include "wal/wal.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define VALUE_SHOW_MAX 64 /* value bytes shown unless --full */

enum kind {
	KIND_NONE,
	KIND_SST,
	KIND_WAL,
	KIND_MANIFEST,
	KIND_CURRENT,
	KIND_BLOB
};

struct dump_opts {
	enum kind kind;
	bool is_keys_only;
	bool is_hex;
	bool is_full;
	/* Entries (SST, WAL), records (blob file) or edits (MANIFEST) to
	 * print; 0 = all. */
	uint64_t limit;
};

static void usage(FILE *f)
{
	fputs("usage: lsm-dump [options] FILE|STOREDIR\n"
	      "  FILE kind from its name: *.sst, *.log, *.blob, MANIFEST-*,\n"
	      "  CURRENT; a directory prints a summary of the store in it.\n"
	      "options:\n"
	      "  --kind sst|wal|manifest|current|blob  force the kind of FILE\n"
	      "  --keys-only   do not print values\n"
	      "  --limit N     print at most N entries (MANIFEST: edits; blob\n"
	      "                file: records)\n"
	      "  --hex         print keys and values as hex\n"
	      "  --full        do not truncate values to 64 bytes\n"
	      "  --help        this text\n"
	      "exit status: 0 ok (a torn log or blob file tail is ok), 1 "
	      "damaged or "
	      "unreadable file, 2 bad usage\n",
	      f);
}

/* The one error line of invariant 2; lsm_errdetail() names the file and
 * offset when the engine's readers detected the problem. */
static int fail(int rc, const char *path)
{
	const char *d = lsm_errdetail();
	fflush(stdout);
	if (d && *d)
		fprintf(stderr, "lsm-dump: %s (%s)\n", d, lsm_strerror(rc));
	else
		fprintf(stderr, "lsm-dump: %s: %s\n", path, lsm_strerror(rc));
	return 1;
}

/* ---- printing bytes and keys ---- */

/* Prints s as "escaped text" or hex; if max > 0 and s is longer, only the
 * first max bytes and the full length. */
static void put_bytes(struct slice s, const struct dump_opts *o, size_t max)
{
	size_t n = s.len;
	if (max && n > max)
		n = max;
	if (o->is_hex) {
		for (size_t i = 0; i < n; i++)
			printf("%02x", s.p[i]);
		if (n == 0)
			fputs("''", stdout);
	} else {
		putchar('"');
		for (size_t i = 0; i < n; i++) {
			uint8_t c = s.p[i];
			if (c == '"' || c == '\\')
				printf("\\%c", c);
			else if (c >= 0x20 && c < 0x7f)
				putchar(c);
			else
				printf("\\x%02x", c);
		}
		putchar('"');
	}
	if (n < s.len)
		printf("...(%zu bytes)", s.len);
}

static const char *kind_name(unsigned kind)
{
	switch (kind) {
	case IKEY_DELETE:
		return "DEL";
	case IKEY_PUT:
		return "PUT";
	case IKEY_RANGE_DELETE:
		return "RANGE_DEL";
	case IKEY_BLOB:
		return "BLOB";
	case IKEY_SENTINEL:
		return "SENTINEL";
	default:
		return "?";
	}
}

static void put_seq(uint64_t seq)
{
	if (seq == IKEY_SEQ_MAX)
		fputs("@max", stdout);
	else
		printf("@%" PRIu64, seq);
}

/* An internal key: "user" @seq KIND; a malformed one as raw hex. */
static void put_ikey(struct slice ik, const struct dump_opts *o)
{
	if (ik.len < IKEY_TRAILER) {
		struct dump_opts hex = *o;
		hex.is_hex = true;
		fputs("<bad internal key ", stdout);
		put_bytes(ik, &hex, 0);
		putchar('>');
		return;
	}
	put_bytes(ikey_user(ik), o, 0);
	putchar(' ');
	put_seq(ikey_seq(ik));
	unsigned k = ikey_kind(ik);
	if (ikey_valid(ik))
		printf(" %s", kind_name(k));
	else
		printf(" kind%u", k);
}

static void put_value(struct slice v, const struct dump_opts *o)
{
	fputs(" -> ", stdout);
	put_bytes(v, o, o->is_full ? 0 : VALUE_SHOW_MAX);
}

/* The value of a BLOB entry: " -> blob 000012 offset 45 len 16384
 * checksum 0x1234abcd". A reference that does not decode is printed as
 * hex and returned as LSM_E_CORRUPT (the caller decides how it ends). */
static int put_blob_ref(struct slice v)
{
	struct blob_ref ref;
	int rc = blob_ref_decode(v, &ref);
	if (rc) {
		struct dump_opts hex = {KIND_NONE, false, true, false, 0};
		fputs(" -> <bad blob reference ", stdout);
		put_bytes(v, &hex, 0);
		putchar('>');
		return rc;
	}
	printf(" -> blob %06" PRIu64 " offset %" PRIu64 " len %" PRIu32
	       " checksum 0x%08" PRIx32,
	       ref.number, ref.offset, ref.len, ref.checksum);
	return 0;
}

static const char *compression_name(uint64_t c)
{
	switch (c) {
	case SST_BLOCK_RAW:
		return "none";
	case SST_BLOCK_LZ4:
		return "lz4";
	case SST_BLOCK_ZSTD:
		return "zstd";
	default:
		return "unknown";
	}
}

/* ---- SST ---- */

struct sst_file {
	const char *path;
	struct env_rfile *f;
	uint64_t size;
};

/* Reads the stored block [off, off+size) and its trailer, checks the
 * checksum and uncompresses it into a malloc'd buffer. The caller has
 * checked (through sstr_open) that the handle lies inside the file. */
static int read_meta_block(struct sst_file *sf, uint64_t off, uint64_t size,
			   uint8_t **out, size_t *out_len)
{
	size_t n = (size_t)size + SST_BLOCK_TRAILER, got = 0;
	uint8_t *buf = malloc(n);
	int rc;
	if (!buf)
		return -ENOMEM;
	rc = rfile_read(sf->f, off, n, buf, &got);
	if (!rc && got != n)
		rc = LSM_CORRUPT("file %s offset %" PRIu64 ": block truncated",
				 sf->path, off);
	if (rc)
		goto out_free;
	uint8_t type = buf[size];
	XXH3_state_t st;
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, buf, (size_t)size);
	XXH3_64bits_update(&st, &type, 1);
	if ((uint32_t)XXH3_64bits_digest(&st) != get_fixed32(buf + size + 1)) {
		rc = LSM_CORRUPT("file %s offset %" PRIu64
				 ": block checksum mismatch",
				 sf->path, off);
		goto out_free;
	}
	if (type == SST_BLOCK_RAW) {
		*out = buf;
		*out_len = (size_t)size;
		return 0;
	}
	rc = sst_uncompress(type, slice_make(buf, (size_t)size), sf->path, off,
			    out, out_len);
out_free:
	free(buf);
	return rc;
}

static void print_footer(const uint8_t *ft, uint64_t at)
{
	static const char *const names[4] = {"filter", "range-del", "index",
					     "properties"};
	printf("footer @%" PRIu64 ":\n", at);
	for (int i = 0; i < 4; i++)
		printf("  %-10s offset %" PRIu64 " size %u\n", names[i],
		       get_fixed64(ft + SST_HANDLE_SIZE * i),
		       get_fixed32(ft + SST_HANDLE_SIZE * i + 8));
	printf("  version %u features 0x%x magic 0x%016" PRIx64 "%s\n",
	       get_fixed32(ft + 48), get_fixed32(ft + 52), get_fixed64(ft + 56),
	       get_fixed64(ft + 56) == SST_MAGIC ? " (LSMSST)" : " (bad)");
}

static void print_props(const struct sst_props *p, const struct dump_opts *o)
{
	puts("properties:");
	printf("  format.version %" PRIu64 "\n", p->format_version);
	printf("  compression %" PRIu64 " (%s)\n", p->compression,
	       compression_name(p->compression));
	printf("  num.entries %" PRIu64 "\n", p->num_entries);
	printf("  num.deletions %" PRIu64 "\n", p->num_deletions);
	printf("  num.range.deletions %" PRIu64 "\n", p->num_range_deletions);
	printf("  raw.key.bytes %" PRIu64 "\n", p->raw_key_bytes);
	printf("  raw.value.bytes %" PRIu64 "\n", p->raw_value_bytes);
	printf("  data.bytes %" PRIu64 "\n", p->data_bytes);
	printf("  index.bytes %" PRIu64 "\n", p->index_bytes);
	printf("  filter.bytes %" PRIu64 "\n", p->filter_bytes);
	printf("  smallest.seq %" PRIu64 "\n", p->smallest_seq);
	printf("  largest.seq %" PRIu64 "\n", p->largest_seq);
	printf("  time.lo %" PRIu64 "\n", p->time_lo);
	printf("  time.hi %" PRIu64 "\n", p->time_hi);
	fputs("  smallest.key ", stdout);
	if (p->smallest)
		put_ikey(slice_make(p->smallest, p->smallest_len), o);
	else
		fputs("(none)", stdout);
	fputs("\n  largest.key ", stdout);
	if (p->largest)
		put_ikey(slice_make(p->largest, p->largest_len), o);
	else
		fputs("(none)", stdout);
	fputs("\n  rd.smallest ", stdout);
	if (p->rd_smallest)
		put_ikey(slice_make(p->rd_smallest, p->rd_smallest_len), o);
	else
		fputs("(none)", stdout);
	fputs("\n  rd.largest ", stdout);
	if (p->rd_largest)
		put_bytes(slice_make(p->rd_largest, p->rd_largest_len), o, 0);
	else
		fputs("(none)", stdout);
	printf("\n  file.size %" PRIu64 "\n", p->file_size);
}

/* Index: one line per data block, with the block's stored type. */
static int print_index(struct sst_file *sf, uint64_t off, uint64_t size,
		       const struct dump_opts *o)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	struct block b;
	struct block_iter it;
	uint64_t n_blocks = 0;
	int rc = read_meta_block(sf, off, size, &buf, &len);
	if (rc)
		return rc;
	if ((rc = block_parse(buf, len, sf->path, off, &b)))
		goto out_free;
	puts("index:");
	block_iter_init(&it, &b, BLOCK_ORDER_IKEY, sf->path, off);
	for (block_iter_first(&it); block_iter_valid(&it);
	     block_iter_next(&it)) {
		struct slice v = block_iter_value(&it);
		uint64_t boff = 0, bsize = 0;
		const uint8_t *p = get_varint64(v.p, v.p + v.len, &boff);
		if (p)
			p = get_varint64(p, v.p + v.len, &bsize);
		if (!p || p != v.p + v.len) {
			rc = LSM_CORRUPT("file %s offset %" PRIu64
					 ": bad block handle in index",
					 sf->path, off);
			break;
		}
		uint8_t type = 0xff;
		size_t got = 0;
		if (boff <= sf->size && bsize <= sf->size - boff &&
		    sf->size - boff - bsize >= 1)
			rc = rfile_read(sf->f, boff + bsize, 1, &type, &got);
		if (rc)
			break;
		printf("  block %" PRIu64 ": offset %" PRIu64 " size %" PRIu64
		       " %s, keys <= ",
		       n_blocks++, boff, bsize,
		       got == 1 ? compression_name(type) : "unreadable");
		put_ikey(block_iter_key(&it), o);
		putchar('\n');
	}
	if (!rc)
		rc = block_iter_status(&it);
	if (!rc)
		printf("  %" PRIu64 " data blocks\n", n_blocks);
	block_iter_release(&it);
out_free:
	free(buf);
	return rc;
}

static int print_filter(struct sst_file *sf, uint64_t off, uint64_t size,
			const struct sst_props *p)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	struct bloom bl;
	if (size == 0) {
		puts("filter: none");
		return 0;
	}
	int rc = read_meta_block(sf, off, size, &buf, &len);
	if (!rc)
		rc = bloom_parse(buf, len, sf->path, off, &bl);
	if (!rc) {
		printf("filter: bloom, %u lines of %u bytes, %u probes",
		       bl.n_lines, SST_BLOOM_LINE, bl.k);
		if (p->num_entries)
			printf(", %.1f bits per point entry",
			       (double)bl.n_lines * SST_BLOOM_LINE * 8 /
				       (double)p->num_entries);
		putchar('\n');
	}
	free(buf);
	return rc;
}

static int dump_sst(const char *path, const struct dump_opts *o)
{
	struct sst_file sf = {path, NULL, 0};
	struct sst_reader *r = NULL;
	struct ikv_iter *it = NULL;
	uint8_t ft[SST_FOOTER_SIZE];
	size_t got = 0;
	lsm_env *env = env_posix();
	int rc = env_new_rfile(env, path, &sf.f);
	if (rc)
		return fail(rc, path);
	sf.size = rfile_size(sf.f);
	printf("sst %s: %" PRIu64 " bytes\n", path, sf.size);
	if (sf.size < SST_FOOTER_SIZE) {
		rc = LSM_CORRUPT("file %s offset 0: not an SST (%" PRIu64
				 " bytes)",
				 path, sf.size);
		goto out;
	}
	uint64_t at = sf.size - SST_FOOTER_SIZE;
	rc = rfile_read(sf.f, at, sizeof(ft), ft, &got);
	if (!rc && got != sizeof(ft))
		rc = LSM_CORRUPT("file %s offset %" PRIu64 ": short footer",
				 path, at);
	if (rc)
		goto out;
	print_footer(ft, at);
	/* The engine's reader checks footer, meta blocks and their cross
	 * references; only then are the handles trusted below. */
	if ((rc = sstr_open(env, path, 0, NULL, true, &r)))
		goto out;
	const struct sst_props *p = sstr_props(r);
	print_props(p, o);
	rc = print_index(&sf, get_fixed64(ft + 2 * SST_HANDLE_SIZE),
			 get_fixed32(ft + 2 * SST_HANDLE_SIZE + 8), o);
	if (!rc)
		rc = print_filter(&sf, get_fixed64(ft), get_fixed32(ft + 8), p);
	if (rc)
		goto out;

	const struct range_tomb *t = NULL;
	size_t n_t = sstr_range_tombs(r, &t);
	printf("range tombstones: %zu\n", n_t);
	for (size_t i = 0; i < n_t; i++) {
		fputs("  [", stdout);
		put_bytes(t[i].start, o, 0);
		fputs(", ", stdout);
		put_bytes(t[i].end, o, 0);
		fputs(") ", stdout);
		put_seq(t[i].seq);
		putchar('\n');
	}

	it = sstr_iter_new(r, false);
	if (!it) {
		rc = -ENOMEM;
		goto out;
	}
	puts("entries:");
	uint64_t n = 0, n_bad_refs = 0, first_bad = 0;
	bool is_limited = false;
	for (iter_first(it); iter_valid(it); iter_next(it)) {
		if (o->limit && n == o->limit) {
			printf("  ... (--limit %" PRIu64 " reached)\n",
			       o->limit);
			is_limited = true;
			break;
		}
		struct slice k = iter_key(it);
		fputs("  ", stdout);
		put_ikey(k, o);
		if (!o->is_keys_only && ikey_valid(k) &&
		    ikey_kind(k) == IKEY_PUT)
			put_value(iter_value(it), o);
		/* References are printed with --keys-only too: they say
		 * where the value is, not what it is. */
		if (ikey_valid(k) && ikey_kind(k) == IKEY_BLOB &&
		    put_blob_ref(iter_value(it)) && n_bad_refs++ == 0)
			first_bad = n;
		putchar('\n');
		n++;
	}
	rc = iter_status(it);
	if (!rc && !is_limited)
		printf("  %" PRIu64 " entries\n", n);
	if (!rc && n_bad_refs)
		rc = LSM_CORRUPT("file %s: entry %" PRIu64
				 ": bad blob reference"
				 " (%" PRIu64 " in all)",
				 path, first_bad, n_bad_refs);
out:
	if (it)
		it->ops->free(it);
	sstr_close(r);
	if (sf.f)
		rfile_close(sf.f);
	return rc ? fail(rc, path) : 0;
}

/* ---- WAL ---- */

static bool is_marker(struct slice rec)
{
	return rec.len >= BATCH_HEADER && batch_get_seq(rec.p) == 0 &&
	       batch_get_count(rec.p) == 0;
}

static int print_marker(struct slice rec, const char *path, uint64_t off)
{
	const uint8_t *p = rec.p + BATCH_HEADER, *end = rec.p + rec.len;
	uint64_t prev = 0, len = 0;
	if (p < end && *p == WAL_MARKER_ABANDONED) {
		p = get_varint64(p + 1, end, &prev);
		if (p)
			p = get_varint64(p, end, &len);
		if (p == end) {
			printf("  marker: abandoned WAL %06" PRIu64
			       ", valid prefix %" PRIu64 " bytes\n",
			       prev, len);
			return 0;
		}
	}
	return LSM_CORRUPT("%s: record at offset %" PRIu64
			   ": malformed WAL marker",
			   path, off);
}

struct wal_print {
	const struct dump_opts *o;
	uint64_t n_entries;
	bool is_limited;
	const char *path;
	uint64_t off; /* of the record being printed */
};

enum { STOP_AT_LIMIT = 1 };

static int print_batch_entry(void *ctx, uint64_t seq, unsigned kind,
			     struct slice key, struct slice value)
{
	struct wal_print *wp = ctx;
	const struct dump_opts *o = wp->o;
	if (o->limit && wp->n_entries == o->limit) {
		wp->is_limited = true;
		return STOP_AT_LIMIT;
	}
	wp->n_entries++;
	printf("  @%" PRIu64 " %s ", seq, kind_name(kind));
	if (kind == IKEY_RANGE_DELETE) {
		putchar('[');
		put_bytes(key, o, 0);
		fputs(", ", stdout);
		put_bytes(value, o, 0);
		putchar(')');
	} else {
		put_bytes(key, o, 0);
		if (kind == IKEY_PUT && !o->is_keys_only)
			put_value(value, o);
		if (kind == IKEY_BLOB && put_blob_ref(value)) {
			putchar('\n');
			return LSM_CORRUPT("%s: record at offset %" PRIu64
					   ": entry @%" PRIu64
					   ": bad blob reference",
					   wp->path, wp->off, seq);
		}
	}
	putchar('\n');
	return 0;
}

/* Prints how a log ended; reading stopped with status rc (0 or < 0). */
static void print_log_end(struct wal_reader *r, uint64_t n_records)
{
	uint64_t torn = 0;
	if (walr_torn(r, &torn))
		printf("torn tail at offset %" PRIu64
		       " (ignored by recovery) after %" PRIu64 " records\n",
		       torn, n_records);
	else
		printf("clean end after %" PRIu64 " records\n", n_records);
}

static int dump_wal(const char *path, const struct dump_opts *o)
{
	struct wal_reader *r = NULL;
	struct wal_print wp = {o, 0, false, path, 0};
	struct slice rec;
	uint64_t off = 0, n_rec = 0;
	int rc = walr_open(env_posix(), path, &r);
	if (rc)
		return fail(rc, path);
	printf("wal %s\n", path);
	while ((rc = walr_next(r, &rec, &off)) == 1) {
		n_rec++;
		printf("record @%" PRIu64 " len %zu: ", off, rec.len);
		if (is_marker(rec)) {
			puts("marker");
			if ((rc = print_marker(rec, path, off)))
				break;
			continue;
		}
		if (rec.len >= BATCH_HEADER)
			printf("batch seq %" PRIu64 " count %u\n",
			       batch_get_seq(rec.p), batch_get_count(rec.p));
		else
			putchar('\n');
		wp.off = off;
		rc = batch_iterate(rec.p, rec.len, print_batch_entry, &wp, path,
				   off);
		if (rc == STOP_AT_LIMIT || wp.is_limited) {
			printf("... (--limit %" PRIu64 " reached)\n", o->limit);
			rc = 0;
			goto out;
		}
		if (rc)
			break;
	}
	if (rc == 0)
		print_log_end(r, n_rec);
out:
	walr_close(r);
	return rc ? fail(rc, path) : 0;
}

/* ---- MANIFEST ---- */

static void print_file_meta(int level, const struct file_meta *f,
			    const struct dump_opts *o)
{
	printf("L%d %06" PRIu64 ".sst %" PRIu64 " bytes [", level, f->number,
	       f->size);
	put_ikey(fm_smallest(f), o);
	fputs(" .. ", stdout);
	put_ikey(fm_largest(f), o);
	printf("] seq %" PRIu64 "..%" PRIu64 " entries %" PRIu64
	       " deletions %" PRIu64 " range-dels %" PRIu64 " time %" PRIu64
	       "..%" PRIu64,
	       f->smallest_seq, f->largest_seq, f->num_entries,
	       f->num_deletions, f->num_range_dels, f->time_lo, f->time_hi);
	if (f->sketch)
		printf(" distinct-keys ~%.0f", sketch_estimate(f->sketch));
}

static void print_snap(const char *prefix, const struct named_snap *ns)
{
	printf("%ssnapshot %" PRIu64 " seq %" PRIu64 " created %" PRId64
	       ".%09" PRId64 " name \"",
	       prefix, ns->id, ns->seq, ns->created_ns / 1000000000,
	       ns->created_ns % 1000000000);
	for (const char *c = ns->name; *c; c++)
		if (*c >= 0x20 && *c < 0x7f && *c != '"' && *c != '\\')
			putchar(*c);
		else
			printf("\\x%02x", (unsigned char)*c);
	puts("\"");
}

static void print_edit(const struct version_edit *e, const struct dump_opts *o)
{
	if (e->has_format)
		printf("  format %u\n", e->format);
	if (e->has_log_number)
		printf("  log number %" PRIu64 "\n", e->log_number);
	if (e->has_next_file)
		printf("  next file %" PRIu64 "\n", e->next_file);
	if (e->has_last_seq)
		printf("  last seq %" PRIu64 "\n", e->last_seq);
	for (size_t i = 0; i < e->n_deleted; i++)
		printf("  deleted L%d %06" PRIu64 ".sst\n", e->deleted[i].level,
		       e->deleted[i].number);
	for (size_t i = 0; i < e->n_added; i++) {
		fputs("  new ", stdout);
		print_file_meta(e->added[i].level, e->added[i].f, o);
		putchar('\n');
	}
	/* Tags 11 and 12 (lsm/FORMAT.md "MANIFEST"). */
	for (size_t i = 0; i < e->n_blobs_added; i++)
		printf("  blob file %06" PRIu64 " size %" PRIu64
		       " linked %" PRIu64 "/%" PRIu64 "\n",
		       e->blobs_added[i].number, e->blobs_added[i].b->size,
		       e->blobs_added[i].count, e->blobs_added[i].bytes);
	for (size_t i = 0; i < e->n_blob_garbage; i++)
		printf("  blob garbage %06" PRIu64 " count %" PRIu64
		       " bytes %" PRIu64 "\n",
		       e->blob_garbage[i].number, e->blob_garbage[i].count,
		       e->blob_garbage[i].bytes);
	if (e->has_style)
		printf("  compaction style %u (%s)\n", e->style,
		       e->style == LSM_COMPACTION_LEVELED       ? "leveled"
		       : e->style == LSM_COMPACTION_TIERED      ? "tiered"
		       : e->style == LSM_COMPACTION_TIME_WINDOW ? "time-window"
								: "unknown");
	if (e->has_next_snap_id)
		printf("  next snapshot id %" PRIu64 "\n", e->next_snap_id);
	for (size_t i = 0; i < e->n_snaps_deleted; i++)
		printf("  deleted snapshot %" PRIu64 "\n", e->snaps_deleted[i]);
	for (size_t i = 0; i < e->n_snaps_added; i++)
		print_snap("  new ", &e->snaps_added[i]);
}

static int dump_manifest(const char *path, const struct dump_opts *o)
{
	struct wal_reader *r = NULL;
	struct slice rec;
	uint64_t off = 0, n = 0;
	int rc = walr_open(env_posix(), path, &r);
	if (rc)
		return fail(rc, path);
	printf("manifest %s\n", path);
	while ((rc = walr_next(r, &rec, &off)) == 1) {
		struct version_edit e;
		if (o->limit && n == o->limit) {
			printf("... (--limit %" PRIu64 " reached)\n", o->limit);
			rc = 0;
			goto out;
		}
		if ((rc = edit_decode(&e, rec.p, rec.len, path, off)))
			break;
		printf("edit %" PRIu64 " @%" PRIu64 " len %zu:\n", n++, off,
		       rec.len);
		print_edit(&e, o);
		edit_release(&e);
	}
	if (rc == 0)
		print_log_end(r, n);
out:
	walr_close(r);
	return rc ? fail(rc, path) : 0;
}

/* ---- CURRENT ---- */

/* Reads CURRENT and checks it holds "MANIFEST-<digits>\n"; *name is
 * malloc'd, without the newline. */
static int read_current(const char *path, char **name)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = env_read_file(env_posix(), path, &buf, &len);
	if (rc)
		return rc;
	size_t pre = strlen("MANIFEST-"), i;
	bool is_ok = len > pre + 1 && len < 64 && buf[len - 1] == '\n' &&
		     memcmp(buf, "MANIFEST-", pre) == 0;
	for (i = pre; is_ok && i < len - 1; i++)
		is_ok = isdigit(buf[i]);
	if (!is_ok) {
		free(buf);
		return LSM_CORRUPT("file %s offset 0: does not hold "
				   "\"MANIFEST-<number>\\n\" (%zu bytes)",
				   path, len);
	}
	buf[len - 1] = '\0';
	*name = (char *)buf;
	return 0;
}

static int dump_current(const char *path)
{
	char *name = NULL;
	int rc = read_current(path, &name);
	if (rc)
		return fail(rc, path);
	printf("current %s: %s\n", path, name);
	free(name);
	return 0;
}

/* ---- store directory summary ---- */

struct live_file {
	int level;
	struct file_meta *f; /* one reference */
};

/* A blob file of the replayed manifest (tags 11 and 12). */
struct live_blob {
	uint64_t number, size;
	uint64_t linked_count, linked_bytes;
	uint64_t garbage_count, garbage_bytes;
};

struct store_state {
	struct version_edit sum; /* counters only; no files */
	struct live_file *files;
	size_t n_files, files_cap;
	uint64_t n_edits;
	struct version_edit snaps; /* live named snapshots, as "added" */
	struct live_blob *blobs;   /* ascending number */
	size_t n_blobs, blobs_cap;
	/* Blob records the engine would refuse (garbage for a file not
	 * listed, a file added twice, garbage above the linked counts). */
	uint64_t n_blob_anomalies;
	char blob_anomaly[160]; /* the first one */
	/* Blob files the WALs' BLOB entries refer to (unsorted, unique). */
	uint64_t *wal_blobs;
	size_t n_wal_blobs, wal_blobs_cap;
};

static void state_release(struct store_state *s)
{
	for (size_t i = 0; i < s->n_files; i++)
		file_meta_unref(s->files[i].f);
	free(s->files);
	free(s->blobs);
	free(s->wal_blobs);
	edit_release(&s->snaps);
}

static struct live_blob *find_blob(struct store_state *s, uint64_t number)
{
	for (size_t i = 0; i < s->n_blobs; i++)
		if (s->blobs[i].number == number)
			return &s->blobs[i];
	return NULL;
}

static void blob_anomaly(struct store_state *s, const char *what,
			 uint64_t number)
{
	if (s->n_blob_anomalies++ == 0)
		snprintf(s->blob_anomaly, sizeof(s->blob_anomaly),
			 "edit %" PRIu64 ": %s %06" PRIu64, s->n_edits, what,
			 number);
}

/* Tags 11 and 12 of one edit, as recovery applies them: files added,
 * garbage added, then every file whose garbage reached its linked count
 * leaves. */
static int state_apply_blobs(struct store_state *s,
			     const struct version_edit *e)
{
	for (size_t a = 0; a < e->n_blobs_added; a++) {
		const struct edit_blob *eb = &e->blobs_added[a];
		struct live_blob *b = find_blob(s, eb->number);
		if (b) {
			blob_anomaly(s, "blob file added twice:", eb->number);
			continue;
		}
		if (s->n_blobs == s->blobs_cap) {
			size_t cap = s->blobs_cap ? s->blobs_cap * 2 : 16;
			struct live_blob *nb =
				realloc(s->blobs, cap * sizeof(*nb));
			if (!nb)
				return -ENOMEM;
			s->blobs = nb;
			s->blobs_cap = cap;
		}
		size_t i = s->n_blobs++;
		while (i > 0 && s->blobs[i - 1].number > eb->number) {
			s->blobs[i] = s->blobs[i - 1];
			i--;
		}
		s->blobs[i] = (struct live_blob){
			eb->number, eb->b->size, eb->count, eb->bytes, 0, 0};
	}
	for (size_t g = 0; g < e->n_blob_garbage; g++) {
		const struct edit_blob *eg = &e->blob_garbage[g];
		struct live_blob *b = find_blob(s, eg->number);
		if (!b) {
			blob_anomaly(s, "garbage for unlisted blob file",
				     eg->number);
			continue;
		}
		b->garbage_count += eg->count;
		b->garbage_bytes += eg->bytes;
		if (b->garbage_count > b->linked_count ||
		    b->garbage_bytes > b->linked_bytes)
			blob_anomaly(s, "garbage above the linked counts of",
				     eg->number);
	}
	size_t kept = 0;
	for (size_t i = 0; i < s->n_blobs; i++)
		if (s->blobs[i].garbage_count < s->blobs[i].linked_count)
			s->blobs[kept++] = s->blobs[i];
	s->n_blobs = kept;
	return 0;
}

/* Applies one decoded edit to the replayed state (as recovery does, minus
 * its consistency rules, which the summary reports instead of refusing). */
static int state_apply(struct store_state *s, const struct version_edit *e)
{
	if (e->has_format) {
		s->sum.has_format = true;
		s->sum.format = e->format;
	}
	if (e->has_log_number) {
		s->sum.has_log_number = true;
		s->sum.log_number = e->log_number;
	}
	if (e->has_next_file) {
		s->sum.has_next_file = true;
		s->sum.next_file = e->next_file;
	}
	if (e->has_last_seq) {
		s->sum.has_last_seq = true;
		s->sum.last_seq = e->last_seq;
	}
	for (size_t d = 0; d < e->n_deleted; d++)
		for (size_t i = 0; i < s->n_files; i++)
			if (s->files[i].f->number == e->deleted[d].number &&
			    s->files[i].level == e->deleted[d].level) {
				file_meta_unref(s->files[i].f);
				s->files[i] = s->files[--s->n_files];
				break;
			}
	for (size_t a = 0; a < e->n_added; a++) {
		if (s->n_files == s->files_cap) {
			size_t cap = s->files_cap ? s->files_cap * 2 : 16;
			struct live_file *nf =
				realloc(s->files, cap * sizeof(*nf));
			if (!nf)
				return -ENOMEM;
			s->files = nf;
			s->files_cap = cap;
		}
		file_meta_ref(e->added[a].f);
		s->files[s->n_files].level = e->added[a].level;
		s->files[s->n_files].f = e->added[a].f;
		s->n_files++;
	}
	for (size_t d = 0; d < e->n_snaps_deleted; d++)
		for (size_t i = 0; i < s->snaps.n_snaps_added; i++)
			if (s->snaps.snaps_added[i].id == e->snaps_deleted[d]) {
				free(s->snaps.snaps_added[i].name);
				memmove(&s->snaps.snaps_added[i],
					&s->snaps.snaps_added[i + 1],
					(s->snaps.n_snaps_added - i - 1) *
						sizeof(struct named_snap));
				s->snaps.n_snaps_added--;
				break;
			}
	for (size_t a = 0; a < e->n_snaps_added; a++) {
		int rc = edit_add_snap(&s->snaps, &e->snaps_added[a]);
		if (rc)
			return rc;
	}
	int rc = state_apply_blobs(s, e);
	if (rc)
		return rc;
	s->n_edits++;
	return 0;
}

static int cmp_live(const void *a, const void *b)
{
	const struct live_file *x = a, *y = b;
	if (x->level != y->level)
		return x->level < y->level ? -1 : 1;
	return x->f->number < y->f->number   ? -1
	       : x->f->number > y->f->number ? 1
					     : 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_manifest(const char *path, struct store_state *s,
			   bool *is_torn)
{
	struct wal_reader *r = NULL;
	struct slice rec;
	uint64_t off = 0;
	int rc = walr_open(env_posix(), path, &r);
	if (rc)
		return rc;
	while ((rc = walr_next(r, &rec, &off)) == 1) {
		struct version_edit e;
		if ((rc = edit_decode(&e, rec.p, rec.len, path, off)))
			break;
		rc = state_apply(s, &e);
		edit_release(&e);
		if (rc)
			break;
	}
	*is_torn = walr_torn(r, NULL);
	walr_close(r);
	return rc;
}

/* Number of a file named NNNNNN.<suffix>; false for any other name. */
static bool parse_numbered(const char *name, const char *suffix, uint64_t *n)
{
	size_t len = strlen(name), sl = strlen(suffix), i;
	uint64_t v = 0;
	if (len <= sl + 1 || strcmp(name + len - sl, suffix) != 0 ||
	    name[len - sl - 1] != '.')
		return false;
	for (i = 0; i < len - sl - 1; i++) {
		if (!isdigit((unsigned char)name[i]) || v > UINT64_MAX / 10)
			return false;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	*n = v;
	return true;
}

struct wal_scan {
	uint64_t n_records, n_entries, seq_lo, seq_hi, n_blob_refs;
	struct store_state *s;
	const char *path;
	uint64_t off;
};

/* Remembers that a WAL refers to blob file number. */
static int note_wal_blob(struct store_state *s, uint64_t number)
{
	for (size_t i = 0; i < s->n_wal_blobs; i++)
		if (s->wal_blobs[i] == number)
			return 0;
	if (s->n_wal_blobs == s->wal_blobs_cap) {
		size_t cap = s->wal_blobs_cap ? s->wal_blobs_cap * 2 : 8;
		uint64_t *nb = realloc(s->wal_blobs, cap * sizeof(*nb));
		if (!nb)
			return -ENOMEM;
		s->wal_blobs = nb;
		s->wal_blobs_cap = cap;
	}
	s->wal_blobs[s->n_wal_blobs++] = number;
	return 0;
}

static int scan_wal_entry(void *ctx, uint64_t seq, unsigned kind,
			  struct slice key, struct slice value)
{
	struct wal_scan *ws = ctx;
	(void)key;
	if (ws->n_entries++ == 0 || seq < ws->seq_lo)
		ws->seq_lo = seq;
	if (seq > ws->seq_hi)
		ws->seq_hi = seq;
	if (kind == IKEY_BLOB) {
		struct blob_ref ref;
		if (blob_ref_decode(value, &ref))
			return LSM_CORRUPT("%s: record at offset %" PRIu64
					   ": entry @%" PRIu64
					   ": bad blob reference",
					   ws->path, ws->off, seq);
		ws->n_blob_refs++;
		return note_wal_blob(ws->s, ref.number);
	}
	return 0;
}

/* One summary line per WAL; returns 0 or the error that stopped it. */
static int summarize_wal(const char *path, const char *name, uint64_t number,
			 struct store_state *s)
{
	struct wal_reader *r = NULL;
	struct wal_scan ws = {0, 0, 0, 0, 0, s, path, 0};
	struct slice rec;
	uint64_t off = 0, torn = 0, size = 0;
	int rc = env_posix()->ops->file_size(env_posix(), path, &size);
	if (!rc)
		rc = walr_open(env_posix(), path, &r);
	if (rc)
		return rc;
	while ((rc = walr_next(r, &rec, &off)) == 1) {
		ws.n_records++;
		if (is_marker(rec))
			continue;
		ws.off = off;
		if ((rc = batch_iterate(rec.p, rec.len, scan_wal_entry, &ws,
					path, off)))
			break;
	}
	printf("  %s %" PRIu64 " bytes, %" PRIu64 " records, %" PRIu64
	       " entries",
	       name, size, ws.n_records, ws.n_entries);
	if (ws.n_entries)
		printf(", seq %" PRIu64 "..%" PRIu64, ws.seq_lo, ws.seq_hi);
	if (ws.n_blob_refs)
		printf(", %" PRIu64 " blob values", ws.n_blob_refs);
	if (rc == 0 && walr_torn(r, &torn))
		printf(", torn tail at offset %" PRIu64, torn);
	if (s->sum.has_log_number && number < s->sum.log_number)
		fputs(" (obsolete: below the log number)", stdout);
	putchar('\n');
	walr_close(r);
	return rc;
}

/* The live blob files of the replayed manifest, each checked against
 * the disk; returns the number of missing files. */
static int summarize_blobs(const char *dir, const char *man,
			   struct store_state *s)
{
	uint64_t bytes = 0, lc = 0, lb = 0, gc = 0, gb = 0;
	lsm_env *env = env_posix();
	char path[4096];
	int n_bad = 0;

	if (s->n_blob_anomalies)
		printf("blob records the engine refuses: %" PRIu64
		       " (first: %s)\n",
		       s->n_blob_anomalies, s->blob_anomaly);
	if (s->n_blobs == 0)
		return 0;
	for (size_t i = 0; i < s->n_blobs; i++) {
		bytes += s->blobs[i].size;
		lc += s->blobs[i].linked_count;
		lb += s->blobs[i].linked_bytes;
		gc += s->blobs[i].garbage_count;
		gb += s->blobs[i].garbage_bytes;
	}
	printf("blob files: %zu, %" PRIu64 " bytes; linked %" PRIu64 "/%" PRIu64
	       ", garbage %" PRIu64 "/%" PRIu64 " (values/bytes)\n",
	       s->n_blobs, bytes, lc, lb, gc, gb);
	for (size_t i = 0; i < s->n_blobs; i++) {
		const struct live_blob *b = &s->blobs[i];
		uint64_t size = 0;
		printf("  %06" PRIu64 ".blob %" PRIu64 " bytes linked %" PRIu64
		       "/%" PRIu64 " garbage %" PRIu64 "/%" PRIu64 " (%" PRIu64
		       "%%)",
		       b->number, b->size, b->linked_count, b->linked_bytes,
		       b->garbage_count, b->garbage_bytes,
		       b->linked_bytes
			       ? b->garbage_bytes * 100 / b->linked_bytes
			       : 0);
		blob_file_path(path, sizeof(path), dir, b->number);
		if (env->ops->file_size(env, path, &size)) {
			fputs(" MISSING\n", stdout);
			fflush(stdout);
			fprintf(stderr,
				"lsm-dump: %s: listed in %s but missing\n",
				path, man);
			n_bad++;
			continue;
		}
		/* The manifest records the valid records' bytes; a file
		 * recovered after a crash may hold a torn tail past them. */
		if (size != b->size)
			printf(" SIZE MISMATCH (%" PRIu64 " bytes on disk)",
			       size);
		putchar('\n');
	}
	return n_bad;
}

static int dump_dir(const char *dir, const struct dump_opts *o)
{
	struct store_state s;
	char path[4096], *man = NULL, **names = NULL;
	size_t n_names = 0;
	bool is_torn = false;
	int n_bad = 0, rc;
	lsm_env *env = env_posix();

	memset(&s, 0, sizeof(s));
	snprintf(path, sizeof(path), "%s/CURRENT", dir);
	if ((rc = read_current(path, &man)))
		return fail(rc == -ENOENT ? LSM_E_NOSTORE : rc, path);
	printf("store %s\nCURRENT: %s\n", dir, man);
	snprintf(path, sizeof(path), "%s/%s", dir, man);
	if ((rc = replay_manifest(path, &s, &is_torn))) {
		free(man);
		state_release(&s);
		return fail(rc, path);
	}
	printf("%s: %" PRIu64 " edits%s; format %u, log number %" PRIu64
	       ", next file %" PRIu64 ", last seq %" PRIu64 "\n",
	       man, s.n_edits, is_torn ? " (then a torn tail)" : "",
	       s.sum.format, s.sum.log_number, s.sum.next_file, s.sum.last_seq);
	for (size_t i = 0; i < s.snaps.n_snaps_added; i++)
		print_snap("", &s.snaps.snaps_added[i]);
	qsort(s.files, s.n_files, sizeof(*s.files), cmp_live);
	for (int l = 0; l < LSM_MAX_LEVELS; l++) {
		uint64_t n = 0, bytes = 0;
		for (size_t i = 0; i < s.n_files; i++)
			if (s.files[i].level == l) {
				n++;
				bytes += s.files[i].f->size;
			}
		if (n == 0)
			continue;
		printf("level %d: %" PRIu64 " files, %" PRIu64 " bytes\n", l, n,
		       bytes);
		for (size_t i = 0; i < s.n_files; i++) {
			if (s.files[i].level != l)
				continue;
			fputs("  ", stdout);
			print_file_meta(l, s.files[i].f, o);
			snprintf(path, sizeof(path), "%s/%06" PRIu64 ".sst",
				 dir, s.files[i].f->number);
			uint64_t size = 0;
			if (env->ops->file_size(env, path, &size)) {
				fputs(" MISSING\n", stdout);
				fflush(stdout);
				fprintf(stderr,
					"lsm-dump: %s: listed in %s but "
					"missing\n",
					path, man);
				n_bad++;
				continue;
			}
			if (size != s.files[i].f->size)
				printf(" SIZE MISMATCH (%" PRIu64
				       " bytes on disk)",
				       size);
			putchar('\n');
		}
	}
	n_bad += summarize_blobs(dir, man, &s);
	if ((rc = env->ops->list_dir(env, dir, &names, &n_names))) {
		n_bad++;
		fail(rc, dir);
		goto out;
	}
	qsort(names, n_names, sizeof(*names), cmp_names);
	puts("WALs:");
	for (size_t i = 0; i < n_names; i++) {
		uint64_t num = 0;
		if (!parse_numbered(names[i], "log", &num))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if ((rc = summarize_wal(path, names[i], num, &s))) {
			n_bad++;
			fail(rc, path);
		}
	}
	fputs("other files:", stdout);
	size_t n_other = 0;
	for (size_t i = 0; i < n_names; i++) {
		uint64_t num = 0;
		bool is_listed = false;
		if (parse_numbered(names[i], "log", &num))
			continue;
		if (parse_numbered(names[i], "sst", &num)) {
			for (size_t j = 0; j < s.n_files; j++)
				is_listed |= s.files[j].f->number == num;
			if (is_listed)
				continue;
			printf(" %s(not in the manifest)", names[i]);
			n_other++;
			continue;
		}
		if (parse_numbered(names[i], "blob", &num)) {
			bool is_wal = false;
			if (find_blob(&s, num))
				continue;
			for (size_t j = 0; j < s.n_wal_blobs; j++)
				is_wal |= s.wal_blobs[j] == num;
			/* A WAL's blob file joins the manifest when that
			 * WAL's memtable is flushed. */
			printf(" %s(%s)", names[i],
			       is_wal ? "values of a WAL"
				      : "not in the manifest");
			n_other++;
			continue;
		}
		if (!strcmp(names[i], man) || !strcmp(names[i], "CURRENT"))
			continue;
		printf(" %s", names[i]);
		n_other++;
	}
	puts(n_other ? "" : " (none)");
out:
	env_free_names(names, n_names);
	free(man);
	state_release(&s);
	return n_bad ? 1 : 0;
}

/* ---- blob files ---- */

/*
 * blob_scan() opens "<dir>/<number>.blob". So that a file can be dumped
 * under any name (--kind blob), the scan runs on an env that is the POSIX
 * env except that opening that one path opens the given file instead.
 */
struct redirect_env {
	lsm_env base; /* first: the engine sees a plain lsm_env */
	struct env_ops ops;
	const char *from, *to;
};

static int redirect_new_rfile(lsm_env *env, const char *path,
			      struct env_rfile **out)
{
	const struct redirect_env *r = (const struct redirect_env *)env;
	lsm_env *posix = env_posix();
	if (!strcmp(path, r->from))
		path = r->to;
	return posix->ops->new_rfile(posix, path, out);
}

struct blob_print {
	const struct dump_opts *o;
	uint64_t n_records, value_bytes, n_bad;
	uint64_t next; /* offset of the next record */
	bool is_limited;
};

/* Limit reached: a code blob_scan hands back unchanged (negative, as its
 * callbacks must return). */
#define BLOB_STOP_AT_LIMIT (-ECANCELED)

/* One line per record: where it starts, its key, where its value starts,
 * the value's length and stored checksum, and whether the value matches
 * it. value is NULL when not read (--keys-only). */
static void print_blob_record(const struct blob_print *bp, uint64_t at,
			      struct slice key, uint64_t value_off,
			      uint32_t len, uint32_t sum, bool is_ok,
			      const struct slice *value)
{
	printf("  @%" PRIu64 " key ", at);
	put_bytes(key, bp->o, 0);
	printf(" value @%" PRIu64 " len %" PRIu32 " checksum 0x%08" PRIx32
	       " %s",
	       value_off, len, sum, is_ok ? "ok" : "BAD");
	if (value)
		put_value(*value, bp->o);
	putchar('\n');
}

/* Counts the record; false when --limit stops the dump before it. */
static bool blob_count(struct blob_print *bp)
{
	if (bp->o->limit && bp->n_records == bp->o->limit) {
		printf("  ... (--limit %" PRIu64 " reached)\n", bp->o->limit);
		bp->is_limited = true;
		return false;
	}
	bp->n_records++;
	return true;
}

static int print_blob_value(void *ctx, struct slice key, struct slice value,
			    const struct blob_ref *ref)
{
	struct blob_print *bp = ctx;
	if (!blob_count(bp))
		return BLOB_STOP_AT_LIMIT;
	print_blob_record(bp, bp->next, key, ref->offset, ref->len,
			  ref->checksum, true, &value);
	bp->value_bytes += ref->len;
	bp->next = ref->offset + ref->len;
	return 0;
}

static int print_blob_key(void *ctx, struct slice key,
			  const struct blob_ref *ref)
{
	struct blob_print *bp = ctx;
	if (!blob_count(bp))
		return BLOB_STOP_AT_LIMIT;
	print_blob_record(bp, bp->next, key, ref->offset, ref->len,
			  ref->checksum, true, NULL);
	bp->value_bytes += ref->len;
	bp->next = ref->offset + ref->len;
	return 0;
}

/* Reads exactly n bytes at off (the caller checked they exist). */
static int read_exact(struct env_rfile *f, const char *path, uint64_t off,
		      size_t n, uint8_t *buf)
{
	size_t got = 0;
	int rc = rfile_read(f, off, n, buf, &got);
	if (!rc && got != n)
		rc = LSM_CORRUPT("file %s offset %" PRIu64 ": short read", path,
				 off);
	return rc;
}

/* 1 if [pos, size) holds only zero bytes, 0 if not, or < 0. */
static int all_zero(struct env_rfile *f, const char *path, uint64_t pos,
		    uint64_t size)
{
	uint8_t buf[65536];
	while (pos < size) {
		size_t n = size - pos < sizeof(buf) ? (size_t)(size - pos)
						    : sizeof(buf);
		int rc = read_exact(f, path, pos, n, buf);
		if (rc)
			return rc;
		for (size_t i = 0; i < n; i++)
			if (buf[i])
				return 0;
		pos += n;
	}
	return 1;
}

enum blob_end { END_CLEAN, END_TORN, END_CORRUPT };

struct blob_tail {
	enum blob_end end;
	uint64_t at;    /* where the walk stopped */
	uint64_t zeros; /* zero bytes after a clean end */
	uint64_t first_bad;
	const char *why; /* END_TORN, END_CORRUPT: what is at `at` */
};

/*
 * The engine's scan stops at the first record that does not check out.
 * This walks on from there (pos) for the dump: a record whose head checks
 * out but whose value does not is printed as BAD and the walk continues
 * after it; a head that cannot be complete within the file is a torn
 * tail; a complete head whose checksum fails, or bytes that are no record
 * head, are corruption and end the walk (nothing after them can be
 * located). Lengths are bounded by the format's limits before anything
 * is allocated.
 */
static int walk_blob_tail(struct env_rfile *f, const char *path, uint64_t size,
			  uint64_t pos, struct blob_print *bp,
			  struct blob_tail *t)
{
	uint8_t head[BLOB_REC_MAX_HEAD];
	uint8_t *rec = NULL;
	int rc = 0;

	t->end = END_CLEAN;
	t->zeros = 0;
	for (;;) {
		uint64_t avail = size - pos;
		uint32_t key_len = 0, value_len = 0;
		const uint8_t *q;
		t->at = pos;
		if (avail == 0)
			break;
		rc = all_zero(f, path, pos, size);
		if (rc < 0)
			break;
		if (rc == 1) {
			t->zeros = avail;
			rc = 0;
			break;
		}
		size_t n = avail < BLOB_REC_MAX_HEAD ? (size_t)avail
						     : BLOB_REC_MAX_HEAD;
		if ((rc = read_exact(f, path, pos, n, head)))
			break;
		q = n > 4 ? get_varint32(head + 4, head + n, &key_len) : NULL;
		if (q)
			q = get_varint32(q, head + n, &value_len);
		if (!q) {
			/* Varints cut by the end of the file, or not
			 * varints at all. */
			t->end = avail < BLOB_REC_MAX_HEAD ? END_TORN
							   : END_CORRUPT;
			t->why = t->end == END_TORN ? "a partial record head"
						    : "no record head";
			break;
		}
		if (key_len > BLOB_MAX_KEY || value_len > BLOB_MAX_VALUE) {
			t->end = END_CORRUPT;
			t->why = "no record head (lengths out of range)";
			break;
		}
		uint64_t head_len = (uint64_t)(q - head) + key_len + 4;
		uint64_t total = head_len + value_len;
		if (avail < head_len) {
			t->end = END_TORN;
			t->why = "a partial record head";
			break;
		}
		free(rec);
		rec = malloc((size_t)(avail < total ? head_len : total));
		if (!rec) {
			rc = -ENOMEM;
			break;
		}
		if ((rc = read_exact(f, path, pos, (size_t)head_len, rec)))
			break;
		if (lsm_checksum32(rec + 4, (size_t)head_len - 4) !=
		    get_fixed32(rec)) {
			t->end = END_CORRUPT;
			t->why = "a record head whose checksum does not match";
			break;
		}
		if (avail < total) {
			t->end = END_TORN;
			t->why = "a record whose value is cut short";
			break;
		}
		if ((rc = read_exact(f, path, pos + head_len, value_len,
				     rec + head_len)))
			break;
		uint32_t sum = get_fixed32(rec + head_len - 4);
		bool is_ok = lsm_checksum32(rec + head_len, value_len) == sum;
		if (!blob_count(bp))
			break;
		struct slice value = slice_make(rec + head_len, value_len);
		print_blob_record(
			bp, pos,
			slice_make(rec + head_len - 4 - key_len, key_len),
			pos + head_len, value_len, sum, is_ok,
			bp->o->is_keys_only ? NULL : &value);
		if (!is_ok && bp->n_bad++ == 0)
			t->first_bad = pos;
		bp->value_bytes += value_len;
		pos += total;
	}
	free(rec);
	return rc;
}

static int dump_blob(const char *path, const struct dump_opts *o)
{
	struct blob_print bp = {o, 0, 0, 0, BLOB_HEADER_LEN, false};
	struct blob_tail tail = {END_CLEAN, 0, 0, 0, NULL};
	struct redirect_env renv;
	struct env_rfile *f = NULL;
	uint8_t hdr[BLOB_HEADER_LEN];
	char *dir_buf = NULL, from[4096];
	uint64_t number = 0, size, valid = 0;
	size_t got = 0;
	const char *base = strrchr(path, '/');
	bool is_reported = false;
	int rc = env_new_rfile(env_posix(), path, &f);
	if (rc)
		return fail(rc, path);
	size = rfile_size(f);
	printf("blob %s: %" PRIu64 " bytes\n", path, size);
	if ((rc = rfile_read(f, 0, sizeof(hdr), hdr, &got)))
		goto out;
	base = base ? base + 1 : path;
	if (got == sizeof(hdr)) {
		bool is_sum_ok = lsm_checksum32(hdr, BLOB_HDR_CHECK_OFF) ==
				 get_fixed32(hdr + BLOB_HDR_CHECK_OFF);
		struct dump_opts text = *o;
		text.is_hex = false;
		fputs("header: magic ", stdout);
		put_bytes(slice_make(hdr, BLOB_MAGIC_LEN), &text, 0);
		printf(" version %" PRIu32 " flags 0x%" PRIx32
		       " number %" PRIu64 " reserved 0x%" PRIx32
		       " checksum 0x%08" PRIx32 " (%s)\n",
		       get_fixed32(hdr + BLOB_HDR_VERSION_OFF),
		       get_fixed32(hdr + BLOB_HDR_FLAGS_OFF),
		       get_fixed64(hdr + BLOB_HDR_NUMBER_OFF),
		       get_fixed32(hdr + BLOB_HDR_RESERVED_OFF),
		       get_fixed32(hdr + BLOB_HDR_CHECK_OFF),
		       is_sum_ok ? "ok" : "BAD");
		number = get_fixed64(hdr + BLOB_HDR_NUMBER_OFF);
	} else {
		printf("header: only %zu bytes\n", got);
	}
	/* The name says which file this is; the header must agree (the
	 * scan checks it). Under another name, the header's number. */
	parse_numbered(base, "blob", &number);
	if (!(dir_buf = strdup(path))) {
		rc = -ENOMEM;
		goto out;
	}
	const char *dir = dirname(dir_buf);
	blob_file_path(from, sizeof(from), dir, number);
	renv.ops = *env_posix()->ops;
	renv.ops.new_rfile = redirect_new_rfile;
	renv.base.ops = &renv.ops;
	renv.from = from;
	renv.to = path;

	puts("records:");
	if (o->is_keys_only)
		rc = blob_scan(&renv.base, dir, number, print_blob_key, &bp,
			       &valid);
	else
		rc = blob_scan_values(&renv.base, dir, number, print_blob_value,
				      &bp, &valid);
	if (rc == BLOB_STOP_AT_LIMIT && bp.is_limited) {
		rc = 0;
		goto out;
	}
	if (rc < 0) {
		if (strcmp(from, path) != 0) {
			/* The engine's message names the file it was
			 * asked for, not this one. */
			fflush(stdout);
			fprintf(stderr, "lsm-dump: %s (as %s): %s (%s)\n", path,
				from, lsm_errdetail(), lsm_strerror(rc));
			rc = 0;
			is_reported = true;
		}
		goto out;
	}
	/* The engine keeps [0, valid); say what lies beyond. */
	if ((rc = walk_blob_tail(f, path, size, valid, &bp, &tail)))
		goto out;
	if (bp.is_limited && !bp.n_bad)
		goto out;
	if (bp.n_bad) {
		printf("corrupt: %" PRIu64 " bad record%s (first at offset "
		       "%" PRIu64 "); recovery keeps only the first %" PRIu64
		       " bytes\n",
		       bp.n_bad, bp.n_bad == 1 ? "" : "s", tail.first_bad,
		       valid);
		rc = LSM_CORRUPT("file %s offset %" PRIu64
				 ": record value checksum mismatch",
				 path, tail.first_bad);
	} else if (tail.end == END_CORRUPT) {
		printf("corrupt: %s at offset %" PRIu64 " after %" PRIu64
		       " records\n",
		       tail.why, tail.at, bp.n_records);
		rc = LSM_CORRUPT("file %s offset %" PRIu64 ": %s", path,
				 tail.at, tail.why);
	} else if (tail.end == END_TORN) {
		printf("torn tail at offset %" PRIu64 " (%s, %" PRIu64
		       " bytes; ignored by recovery) after %" PRIu64
		       " records, %" PRIu64 " value bytes\n",
		       tail.at, tail.why, size - tail.at, bp.n_records,
		       bp.value_bytes);
	} else {
		printf("clean end at offset %" PRIu64 " after %" PRIu64
		       " records, %" PRIu64 " value bytes",
		       tail.at, bp.n_records, bp.value_bytes);
		if (tail.zeros)
			printf("; then %" PRIu64 " zero bytes", tail.zeros);
		putchar('\n');
	}
	if (rc && bp.n_bad && tail.end == END_CORRUPT)
		printf("corrupt: also %s at offset %" PRIu64 "\n", tail.why,
		       tail.at);
out:
	free(dir_buf);
	rfile_close(f);
	if (is_reported)
		return 1;
	return rc ? fail(rc, path) : 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"kind", required_argument, NULL, 'k'},
		{"keys-only", no_argument, NULL, 'K'},
		{"limit", required_argument, NULL, 'n'},
		{"hex", no_argument, NULL, 'x'},
		{"full", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct dump_opts o = {KIND_NONE, false, false, false, 0};
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'k':
			if (!strcmp(optarg, "sst"))
				o.kind = KIND_SST;
			else if (!strcmp(optarg, "wal") ||
				 !strcmp(optarg, "log"))
				o.kind = KIND_WAL;
			else if (!strcmp(optarg, "manifest"))
				o.kind = KIND_MANIFEST;
			else if (!strcmp(optarg, "current"))
				o.kind = KIND_CURRENT;
			else if (!strcmp(optarg, "blob"))
				o.kind = KIND_BLOB;
			else {
				fprintf(stderr, "lsm-dump: unknown kind '%s'\n",
					optarg);
				usage(stderr);
				return 2;
			}
			break;
		case 'K':
			o.is_keys_only = true;
			break;
		case 'n': {
			char *end = NULL;
			errno = 0;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (errno || !end || *end || !isdigit(*optarg) ||
			    v == 0) {
				fprintf(stderr,
					"lsm-dump: --limit needs a positive "
					"number, not '%s'\n",
					optarg);
				usage(stderr);
				return 2;
			}
			o.limit = v;
			break;
		}
		case 'x':
			o.is_hex = true;
			break;
		case 'f':
			o.is_full = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	const char *path = argv[optind];
	struct stat st;
	if (stat(path, &st) != 0) {
		fprintf(stderr, "lsm-dump: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (S_ISDIR(st.st_mode)) {
		if (o.kind != KIND_NONE) {
			fprintf(stderr,
				"lsm-dump: --kind applies to a file, "
				"%s is a directory\n",
				path);
			return 2;
		}
		return dump_dir(path, &o);
	}
	if (o.kind == KIND_NONE) {
		const char *base = strrchr(path, '/');
		base = base ? base + 1 : path;
		size_t bl = strlen(base);
		if (bl > 4 && !strcmp(base + bl - 4, ".sst"))
			o.kind = KIND_SST;
		else if (bl > 4 && !strcmp(base + bl - 4, ".log"))
			o.kind = KIND_WAL;
		else if (!strncmp(base, "MANIFEST-", 9))
			o.kind = KIND_MANIFEST;
		else if (!strcmp(base, "CURRENT"))
			o.kind = KIND_CURRENT;
		else if (bl > 5 && !strcmp(base + bl - 5, ".blob"))
			o.kind = KIND_BLOB;
		else {
			fprintf(stderr,
				"lsm-dump: cannot tell the kind of %s from "
				"its name; use --kind\n",
				path);
			usage(stderr);
			return 2;
		}
	}
	switch (o.kind) {
	case KIND_SST:
		return dump_sst(path, &o);
	case KIND_WAL:
		return dump_wal(path, &o);
	case KIND_MANIFEST:
		return dump_manifest(path, &o);
	case KIND_CURRENT:
		return dump_current(path);
	case KIND_BLOB:
		return dump_blob(path, &o);
	case KIND_NONE:
		break;
	}
	usage(stderr);
	return 2;
}
