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
 *   - MANIFEST: every version edit with all of its fields;
 *   - CURRENT: the manifest it names;
 *   - a store directory: a summary (levels and files from the manifest,
 *     WALs, files the manifest names that are missing).
 *
 * Invariants:
 *  1. Nothing is ever written: files are opened read-only through the
 *     POSIX env and lsm_open() is never called (it would take the lock,
 *     write a manifest and maybe flush).
 *  2. A damaged file never crashes the tool: the readers check every
 *     length and checksum, and whatever they refuse ends the dump with one
 *     line on stderr naming the file and offset and exit status 1. A torn
 *     log tail is not damage (recovery ignores it): it is printed on
 *     stdout and the exit status stays 0.
 *  3. Bad usage prints the usage text on stderr and exits with status 2.
 *
 * Thread-safety: single-threaded program.
 */
#include "batch.h"
#include "env/env.h"
#include "sst/block.h"
#include "sst/bloom.h"
#include "sst/compress.h"
#include "sst/sst.h"
#include "sst/sst_format.h"
#include "util/coding.h"
#include "util/hash.h"
#include "util/ikey.h"
#include "util/status.h"
#include "version/version.h"
#include "wal/wal.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define VALUE_SHOW_MAX 64 /* value bytes shown unless --full */

enum kind { KIND_NONE, KIND_SST, KIND_WAL, KIND_MANIFEST, KIND_CURRENT };

struct dump_opts {
	enum kind kind;
	bool is_keys_only;
	bool is_hex;
	bool is_full;
	uint64_t limit; /* entries (SST, WAL) or edits (MANIFEST); 0 = all */
};

static void usage(FILE *f)
{
	fputs("usage: lsm-dump [options] FILE|STOREDIR\n"
	      "  FILE kind from its name: *.sst, *.log, MANIFEST-*, CURRENT;\n"
	      "  a directory prints a summary of the store in it.\n"
	      "options:\n"
	      "  --kind sst|wal|manifest|current  force the kind of FILE\n"
	      "  --keys-only   do not print values\n"
	      "  --limit N     print at most N entries (MANIFEST: edits)\n"
	      "  --hex         print keys and values as hex\n"
	      "  --full        do not truncate values to 64 bytes\n"
	      "  --help        this text\n"
	      "exit status: 0 ok (a torn log tail is ok), 1 damaged or "
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
	uint64_t n = 0;
	for (iter_first(it); iter_valid(it); iter_next(it)) {
		if (o->limit && n == o->limit) {
			printf("  ... (--limit %" PRIu64 " reached)\n",
			       o->limit);
			break;
		}
		struct slice k = iter_key(it);
		fputs("  ", stdout);
		put_ikey(k, o);
		if (!o->is_keys_only && ikey_valid(k) &&
		    ikey_kind(k) == IKEY_PUT)
			put_value(iter_value(it), o);
		putchar('\n');
		n++;
	}
	rc = iter_status(it);
	if (!rc && !(o->limit && n == o->limit))
		printf("  %" PRIu64 " entries\n", n);
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
	struct wal_print wp = {o, 0, false};
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

struct store_state {
	struct version_edit sum; /* counters only; no files */
	struct live_file *files;
	size_t n_files, files_cap;
	uint64_t n_edits;
	struct version_edit snaps; /* live named snapshots, as "added" */
};

static void state_release(struct store_state *s)
{
	for (size_t i = 0; i < s->n_files; i++)
		file_meta_unref(s->files[i].f);
	free(s->files);
	edit_release(&s->snaps);
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
	uint64_t n_records, n_entries, seq_lo, seq_hi;
};

static int scan_wal_entry(void *ctx, uint64_t seq, unsigned kind,
			  struct slice key, struct slice value)
{
	struct wal_scan *ws = ctx;
	(void)kind;
	(void)key;
	(void)value;
	if (ws->n_entries++ == 0 || seq < ws->seq_lo)
		ws->seq_lo = seq;
	if (seq > ws->seq_hi)
		ws->seq_hi = seq;
	return 0;
}

/* One summary line per WAL; returns 0 or the error that stopped it. */
static int summarize_wal(const char *path, const char *name, uint64_t number,
			 const struct store_state *s)
{
	struct wal_reader *r = NULL;
	struct wal_scan ws = {0, 0, 0, 0};
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
		if ((rc = batch_iterate(rec.p, rec.len, scan_wal_entry, &ws,
					path, off)))
			break;
	}
	printf("  %s %" PRIu64 " bytes, %" PRIu64 " records, %" PRIu64
	       " entries",
	       name, size, ws.n_records, ws.n_entries);
	if (ws.n_entries)
		printf(", seq %" PRIu64 "..%" PRIu64, ws.seq_lo, ws.seq_hi);
	if (rc == 0 && walr_torn(r, &torn))
		printf(", torn tail at offset %" PRIu64, torn);
	if (s->sum.has_log_number && number < s->sum.log_number)
		fputs(" (obsolete: below the log number)", stdout);
	putchar('\n');
	walr_close(r);
	return rc;
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
	case KIND_NONE:
		break;
	}
	usage(stderr);
	return 2;
}
