/*
 * test_golden.c - today's code against the committed format-version-1
 * store tests/golden/store-v1 (made once by tests/golden/make_golden.c
 * from the operations of tests/golden/golden_ops.h).
 *
 * What and why: the engine must keep reading stores written by older
 * builds. A change to any on-disk format that breaks version 1 makes this
 * test fail, whereas round-trip tests (which write and read with the same
 * code) would not notice. Two layers are checked:
 *  1. The whole engine: a COPY of the store is opened with lsm_open and
 *     every key the generator wrote (plus keys it never wrote) reads back
 *     as the model of golden_ops.h says, in gets and in forward and
 *     backward scans, also after compacting everything (the engine can
 *     rewrite version-1 data).
 *  2. Each file through the low-level readers: CURRENT's bytes, the
 *     MANIFEST's edits (counters, files, key ranges), each SST's footer
 *     (magic, version, features), properties, data-block compression,
 *     tombstones and entries (each entry must be exactly what the
 *     operation with its sequence number wrote), and the WAL's records and
 *     batches (exactly phase C of golden_ops.h).
 * Times recorded in the files differ per generation and are not checked.
 * The numbers below (file numbers, counts, offsets) are facts of the
 * committed files; they change only with a new golden store.
 *
 * The directory comes from LSM_GOLDEN_DIR (set by meson to the source
 * tree's tests/golden); the golden files themselves are never opened for
 * writing.
 *
 * Thread-safety: single-threaded test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch.h"
#include "env/env.h"
#include "lsm.h"
#include "sst/block.h"
#include "sst/sst.h"
#include "sst/sst_format.h"
#include "util/coding.h"
#include "util/ikey.h"
#include "util/status.h"
#include "version/version.h"
#include "wal/wal.h"

#include "../golden/golden_ops.h"

/* Facts of the committed store-v1. */
#define G_MANIFEST "MANIFEST-000006"
#define G_SST_LZ4 4
#define G_SST_ZSTD 8
#define G_WAL 7
#define G_N_OPS 86
#define G_LAST_SEQ_FLUSHED 80

/* ---- helpers ---- */

static const char *golden_dir(void)
{
	const char *d = getenv("LSM_GOLDEN_DIR");
	return d && *d ? d : "tests/golden";
}

static void store_path(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "%s/store-v1/%s", golden_dir(), name);
}

static void numbered_path(char *buf, size_t cap, uint64_t n, const char *sfx)
{
	char name[64];
	snprintf(name, sizeof(name), "%06llu.%s", (unsigned long long)n, sfx);
	store_path(buf, cap, name);
}

static void drop_log(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
}

/* Copies the regular files of src into a new directory dst. */
static void copy_dir(const char *src, const char *dst)
{
	DIR *d = opendir(src);
	struct dirent *de;
	char from[4096], to[4096];
	assert_non_null(d);
	assert_int_equal(mkdir(dst, 0755), 0);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		int n1 = snprintf(from, sizeof(from), "%s/%s", src, de->d_name);
		int n2 = snprintf(to, sizeof(to), "%s/%s", dst, de->d_name);
		assert_true(n1 > 0 && (size_t)n1 < sizeof(from));
		assert_true(n2 > 0 && (size_t)n2 < sizeof(to));
		FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
		assert_non_null(in);
		assert_non_null(out);
		char buf[4096];
		size_t n;
		while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
			assert_int_equal(fwrite(buf, 1, n, out), n);
		fclose(in);
		assert_int_equal(fclose(out), 0);
	}
	closedir(d);
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[4096];
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		int n = snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (n > 0 && (size_t)n < sizeof(p))
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

/* ---- the model: the state golden_ops.h leaves ---- */

struct mkey {
	uint8_t key[16];
	size_t key_len;
	const uint8_t *val;
	size_t val_len;
	bool is_live;
};

struct model {
	struct golden_op ops[GOLDEN_MAX_OPS];
	size_t n_ops;
	struct mkey keys[GOLDEN_MAX_OPS + 8];
	size_t n_keys;
};

static int cmp_bytes(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	return slice_cmp(slice_make(a, al), slice_make(b, bl));
}

static struct mkey *model_key(struct model *m, const uint8_t *k, size_t kl)
{
	for (size_t i = 0; i < m->n_keys; i++)
		if (!cmp_bytes(m->keys[i].key, m->keys[i].key_len, k, kl))
			return &m->keys[i];
	struct mkey *e = &m->keys[m->n_keys++];
	memcpy(e->key, k, kl);
	e->key_len = kl;
	e->is_live = false;
	return e;
}

static int cmp_mkey(const void *a, const void *b)
{
	const struct mkey *x = a, *y = b;
	return cmp_bytes(x->key, x->key_len, y->key, y->key_len);
}

/* Applies every op in order; keys sorted afterwards. Keys that were never
 * written are added too (they must read as absent). */
static void model_build(struct model *m)
{
	static const char *const absent[] = {"key", "key0", "key9999",
					     "a",   "zzz",  "key-empty0"};
	memset(m, 0, sizeof(*m));
	m->n_ops = golden_ops(m->ops);
	assert_int_equal(m->n_ops, G_N_OPS);
	for (size_t i = 0; i < m->n_ops; i++) {
		const struct golden_op *op = &m->ops[i];
		if (op->kind == G_RANGE_DEL) {
			for (size_t j = 0; j < m->n_keys; j++) {
				struct mkey *e = &m->keys[j];
				if (cmp_bytes(e->key, e->key_len, op->key,
					      op->key_len) >= 0 &&
				    cmp_bytes(e->key, e->key_len, op->val,
					      op->val_len) < 0)
					e->is_live = false;
			}
			continue;
		}
		struct mkey *e = model_key(m, op->key, op->key_len);
		e->is_live = op->kind == G_PUT;
		e->val = op->val;
		e->val_len = op->val_len;
	}
	for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
		model_key(m, (const uint8_t *)absent[i], strlen(absent[i]));
	qsort(m->keys, m->n_keys, sizeof(m->keys[0]), cmp_mkey);
}

static size_t model_n_live(const struct model *m)
{
	size_t n = 0;
	for (size_t i = 0; i < m->n_keys; i++)
		n += m->keys[i].is_live;
	return n;
}

/* The entry (ikey, value) must be exactly what op seq-1 wrote. */
static void check_entry_is_op(const struct model *m, struct slice ik,
			      struct slice val)
{
	assert_true(ikey_valid(ik));
	uint64_t seq = ikey_seq(ik);
	assert_true(seq >= 1 && seq <= m->n_ops);
	const struct golden_op *op = &m->ops[seq - 1];
	assert_int_equal(ikey_kind(ik), op->kind);
	assert_true(slice_eq(ikey_user(ik), slice_make(op->key, op->key_len)));
	if (op->kind == G_PUT)
		assert_true(slice_eq(val, slice_make(op->val, op->val_len)));
	else if (op->kind == G_DEL)
		assert_int_equal(val.len, 0);
}

/* ---- layer 1: the whole engine on a copy ---- */

static void check_db_matches_model(lsm_db *db, const struct model *m)
{
	for (size_t i = 0; i < m->n_keys; i++) {
		const struct mkey *e = &m->keys[i];
		void *v = NULL;
		size_t vl = 0;
		int rc = lsm_get(db, NULL, e->key, e->key_len, &v, &vl);
		if (e->is_live) {
			assert_int_equal(rc, 0);
			assert_int_equal(vl, e->val_len);
			assert_true(vl == 0 || memcmp(v, e->val, vl) == 0);
			lsm_free(v);
		} else {
			assert_int_equal(rc, LSM_E_NOTFOUND);
		}
	}

	lsm_iter_options io;
	lsm_iter *it = NULL;
	lsm_iter_options_init(&io);
	assert_int_equal(lsm_iter_new(db, &io, &it), 0);
	size_t j = 0, n = 0;
	for (lsm_iter_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
		size_t kl, vl;
		const void *k = lsm_iter_key(it, &kl);
		const void *v = lsm_iter_value(it, &vl);
		while (j < m->n_keys && !m->keys[j].is_live)
			j++;
		assert_true(j < m->n_keys);
		assert_int_equal(
			cmp_bytes(k, kl, m->keys[j].key, m->keys[j].key_len),
			0);
		assert_int_equal(vl, m->keys[j].val_len);
		assert_true(vl == 0 || memcmp(v, m->keys[j].val, vl) == 0);
		j++;
		n++;
	}
	assert_int_equal(lsm_iter_status(it), 0);
	assert_int_equal(n, model_n_live(m));
	n = 0;
	for (lsm_iter_last(it); lsm_iter_valid(it); lsm_iter_prev(it))
		n++;
	assert_int_equal(lsm_iter_status(it), 0);
	assert_int_equal(n, model_n_live(m));
	lsm_iter_free(it);
}

static void test_golden_open_reads_every_key(void **state)
{
	(void)state;
	struct model *m = malloc(sizeof(*m));
	char src[4096], dst[256];
	lsm_options o;
	lsm_db *db = NULL;

	assert_non_null(m);
	model_build(m);
	/* Sanity of the model itself: what phase C left. */
	assert_int_equal(model_n_live(m), 44);

	snprintf(src, sizeof(src), "%s/store-v1", golden_dir());
	snprintf(dst, sizeof(dst), "/tmp/test_golden_%d", (int)getpid());
	remove_dir(dst);
	copy_dir(src, dst);
	lsm_options_init(&o);
	o.create_if_missing = false;
	o.log_fn = drop_log;
	assert_int_equal(lsm_open(dst, &o, &db), 0);
	check_db_matches_model(db, m);

	/* The engine can rewrite version-1 data and still read it. */
	assert_int_equal(lsm_compact_range(db, NULL, 0, NULL, 0), 0);
	check_db_matches_model(db, m);
	assert_int_equal(lsm_close(db), 0);

	/* And reopen what it rewrote. */
	assert_int_equal(lsm_open(dst, &o, &db), 0);
	check_db_matches_model(db, m);
	assert_int_equal(lsm_close(db), 0);
	remove_dir(dst);
	free(m);
}

/* ---- layer 2: each file through the low-level readers ---- */

static void test_golden_current(void **state)
{
	(void)state;
	char path[4096];
	uint8_t *buf = NULL;
	size_t len = 0;
	store_path(path, sizeof(path), "CURRENT");
	assert_int_equal(env_read_file(env_posix(), path, &buf, &len), 0);
	assert_int_equal(len, strlen(G_MANIFEST "\n"));
	assert_memory_equal(buf, G_MANIFEST "\n", len);
	free(buf);
}

struct golden_file {
	int level;
	uint64_t number, size;
	uint8_t smallest[32], largest[32];
	size_t smallest_len, largest_len;
	uint64_t smallest_seq, largest_seq, n_entries, n_dels, n_rdels;
};

static void test_golden_manifest(void **state)
{
	(void)state;
	char path[4096];
	struct wal_reader *r = NULL;
	struct slice rec;
	uint64_t off = 0, n_rec = 0;
	struct golden_file files[4];
	size_t n_files = 0;
	uint64_t log_number = 0, next_file = 0, last_seq = 0;
	int rc;

	store_path(path, sizeof(path), G_MANIFEST);
	assert_int_equal(walr_open(env_posix(), path, &r), 0);
	while ((rc = walr_next(r, &rec, &off)) == 1) {
		struct version_edit e;
		assert_int_equal(edit_decode(&e, rec.p, rec.len, path, off), 0);
		/* The first edit is the whole state, format included. */
		assert_int_equal(e.has_format, n_rec == 0);
		if (e.has_format)
			assert_int_equal(e.format, 1);
		assert_true(e.has_log_number && e.has_next_file &&
			    e.has_last_seq);
		log_number = e.log_number;
		next_file = e.next_file;
		last_seq = e.last_seq;
		assert_int_equal(e.n_deleted, 0);
		assert_int_equal(e.n_added, 1);
		const struct file_meta *f = e.added[0].f;
		struct golden_file *g = &files[n_files++];
		g->level = e.added[0].level;
		g->number = f->number;
		g->size = f->size;
		assert_true(f->smallest_len <= sizeof(g->smallest));
		assert_true(f->largest_len <= sizeof(g->largest));
		memcpy(g->smallest, f->smallest, f->smallest_len);
		g->smallest_len = f->smallest_len;
		memcpy(g->largest, f->largest, f->largest_len);
		g->largest_len = f->largest_len;
		g->smallest_seq = f->smallest_seq;
		g->largest_seq = f->largest_seq;
		g->n_entries = f->num_entries;
		g->n_dels = f->num_deletions;
		g->n_rdels = f->num_range_dels;
		edit_release(&e);
		n_rec++;
	}
	assert_int_equal(rc, 0);
	assert_false(walr_torn(r, NULL));
	walr_close(r);

	assert_int_equal(n_rec, 2);
	assert_int_equal(log_number, G_WAL);
	assert_int_equal(next_file, 9);
	assert_int_equal(last_seq, G_LAST_SEQ_FLUSHED);
	assert_int_equal(n_files, 2);

	/* lz4 SST: phase A. */
	assert_int_equal(files[0].level, 0);
	assert_int_equal(files[0].number, G_SST_LZ4);
	assert_int_equal(files[0].smallest_seq, 1);
	assert_int_equal(files[0].largest_seq, 48);
	assert_int_equal(files[0].n_entries, 39);
	assert_int_equal(files[0].n_dels, 4);
	assert_int_equal(files[0].n_rdels, 1);
	struct slice s0 = slice_make(files[0].smallest, files[0].smallest_len);
	struct slice l0 = slice_make(files[0].largest, files[0].largest_len);
	assert_true(slice_eq(ikey_user(s0), slice_make("\x00\x01"
						       "bin\xff",
						       6)));
	assert_int_equal(ikey_seq(s0), 47);
	assert_int_equal(ikey_kind(s0), IKEY_PUT);
	assert_true(slice_eq(ikey_user(l0), slice_make("key100", 6)));
	assert_int_equal(ikey_seq(l0), 44);
	assert_int_equal(ikey_kind(l0), IKEY_DELETE);

	/* zstd SST: phase B; its smallest key is the start of a range
	 * tombstone, an exclusive sentinel boundary. */
	assert_int_equal(files[1].level, 0);
	assert_int_equal(files[1].number, G_SST_ZSTD);
	assert_int_equal(files[1].smallest_seq, 49);
	assert_int_equal(files[1].largest_seq, 80);
	assert_int_equal(files[1].n_entries, 30);
	assert_int_equal(files[1].n_dels, 1);
	assert_int_equal(files[1].n_rdels, 1);
	struct slice s1 = slice_make(files[1].smallest, files[1].smallest_len);
	struct slice l1 = slice_make(files[1].largest, files[1].largest_len);
	assert_true(slice_eq(ikey_user(s1), slice_make("key000", 6)));
	assert_int_equal(ikey_seq(s1), IKEY_SEQ_MAX);
	assert_int_equal(ikey_kind(s1), IKEY_SENTINEL);
	assert_true(slice_eq(ikey_user(l1), slice_make("key219", 6)));
	assert_int_equal(ikey_seq(l1), 80);
	assert_int_equal(ikey_kind(l1), IKEY_PUT);

	/* Sizes agree with the files on disk. */
	for (size_t i = 0; i < n_files; i++) {
		uint64_t size = 0;
		numbered_path(path, sizeof(path), files[i].number, "sst");
		assert_int_equal(
			env_posix()->ops->file_size(env_posix(), path, &size),
			0);
		assert_int_equal(size, files[i].size);
	}
}

struct sst_expect {
	uint64_t number;
	lsm_compression compression;
	uint64_t n_entries, n_dels, n_data_blocks;
	uint64_t smallest_seq, largest_seq;
	const char *smallest_user;
	size_t smallest_user_len;
	uint64_t smallest_key_seq;
	const char *largest_user;
	uint64_t largest_key_seq;
	const char *tomb_start, *tomb_end;
	uint64_t tomb_seq;
};

/* Counts the data blocks through the raw index block and checks each
 * one's stored type; returns how many there are. */
static uint64_t check_data_blocks(const char *path, const uint8_t *footer,
				  lsm_compression want)
{
	struct env_rfile *f = NULL;
	uint64_t off = get_fixed64(footer + 2 * SST_HANDLE_SIZE);
	size_t size = get_fixed32(footer + 2 * SST_HANDLE_SIZE + 8), got = 0;
	uint8_t *buf = malloc(size + SST_BLOCK_TRAILER);
	struct block b;
	struct block_iter it;
	uint64_t n = 0;

	assert_non_null(buf);
	assert_int_equal(env_new_rfile(env_posix(), path, &f), 0);
	assert_int_equal(
		rfile_read(f, off, size + SST_BLOCK_TRAILER, buf, &got), 0);
	assert_int_equal(got, size + SST_BLOCK_TRAILER);
	/* Meta blocks are written raw. */
	assert_int_equal(buf[size], SST_BLOCK_RAW);
	assert_int_equal(block_parse(buf, size, path, off, &b), 0);
	block_iter_init(&it, &b, BLOCK_ORDER_IKEY, path, off);
	for (block_iter_first(&it); block_iter_valid(&it);
	     block_iter_next(&it)) {
		struct slice v = block_iter_value(&it);
		uint64_t boff = 0, bsize = 0;
		const uint8_t *p = get_varint64(v.p, v.p + v.len, &boff);
		assert_non_null(p);
		p = get_varint64(p, v.p + v.len, &bsize);
		assert_ptr_equal(p, v.p + v.len);
		uint8_t type = 0xff;
		assert_int_equal(rfile_read(f, boff + bsize, 1, &type, &got),
				 0);
		assert_int_equal(got, 1);
		assert_int_equal(type, (uint8_t)want);
		n++;
	}
	assert_int_equal(block_iter_status(&it), 0);
	block_iter_release(&it);
	rfile_close(f);
	free(buf);
	return n;
}

struct get_hit {
	const struct model *m;
	int n;
};

static int on_get(void *ctx, struct slice ik, struct slice val)
{
	struct get_hit *h = ctx;
	check_entry_is_op(h->m, ik, val);
	h->n++;
	return 0;
}

static void check_sst(const struct sst_expect *x)
{
	char path[4096];
	uint8_t footer[SST_FOOTER_SIZE];
	struct model *m = malloc(sizeof(*m));
	struct sst_reader *r = NULL;
	FILE *fp;
	long fsize;

	assert_non_null(m);
	model_build(m);
	numbered_path(path, sizeof(path), x->number, "sst");

	/* Footer bytes. */
	fp = fopen(path, "rb");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	fsize = ftell(fp);
	assert_true(fsize > SST_FOOTER_SIZE);
	assert_int_equal(fseek(fp, fsize - SST_FOOTER_SIZE, SEEK_SET), 0);
	assert_int_equal(fread(footer, 1, sizeof(footer), fp), sizeof(footer));
	fclose(fp);
	assert_true(get_fixed64(footer + 56) == UINT64_C(0x4c534d5353540001));
	assert_int_equal(get_fixed32(footer + 48), 1);
	assert_int_equal(get_fixed32(footer + 52), 0);
	assert_int_not_equal(get_fixed32(footer + 8), 0);  /* a filter */
	assert_int_not_equal(get_fixed32(footer + 20), 0); /* range dels */

	assert_int_equal(check_data_blocks(path, footer, x->compression),
			 x->n_data_blocks);

	/* Properties. */
	assert_int_equal(
		sstr_open(env_posix(), path, x->number, NULL, true, &r), 0);
	const struct sst_props *p = sstr_props(r);
	assert_int_equal(p->format_version, 1);
	assert_int_equal(p->compression, x->compression);
	assert_int_equal(p->num_entries, x->n_entries);
	assert_int_equal(p->num_deletions, x->n_dels);
	assert_int_equal(p->num_range_deletions, 1);
	assert_int_equal(p->smallest_seq, x->smallest_seq);
	assert_int_equal(p->largest_seq, x->largest_seq);
	assert_int_equal(p->file_size, (uint64_t)fsize);
	struct slice sm = slice_make(p->smallest, p->smallest_len);
	struct slice lg = slice_make(p->largest, p->largest_len);
	assert_true(slice_eq(ikey_user(sm), slice_make(x->smallest_user,
						       x->smallest_user_len)));
	assert_int_equal(ikey_seq(sm), x->smallest_key_seq);
	assert_true(
		slice_eq(ikey_user(lg),
			 slice_make(x->largest_user, strlen(x->largest_user))));
	assert_int_equal(ikey_seq(lg), x->largest_key_seq);

	/* Range tombstones. */
	const struct range_tomb *t = NULL;
	assert_int_equal(sstr_range_tombs(r, &t), 1);
	assert_true(slice_eq(t[0].start,
			     slice_make(x->tomb_start, strlen(x->tomb_start))));
	assert_true(slice_eq(t[0].end,
			     slice_make(x->tomb_end, strlen(x->tomb_end))));
	assert_int_equal(t[0].seq, x->tomb_seq);
	assert_int_equal(m->ops[t[0].seq - 1].kind, G_RANGE_DEL);

	/* Entries, forward then backward: each is exactly its op. */
	struct ikv_iter *it = sstr_iter_new(r, false);
	assert_non_null(it);
	uint64_t n = 0, n_dels = 0;
	uint8_t prev[64];
	size_t prev_len = 0;
	for (iter_first(it); iter_valid(it); iter_next(it)) {
		struct slice k = iter_key(it);
		check_entry_is_op(m, k, iter_value(it));
		assert_true(ikey_seq(k) >= x->smallest_seq &&
			    ikey_seq(k) <= x->largest_seq);
		if (n)
			assert_true(ikey_cmp(slice_make(prev, prev_len), k) <
				    0);
		assert_true(k.len <= sizeof(prev));
		memcpy(prev, k.p, k.len);
		prev_len = k.len;
		n_dels += ikey_kind(k) == IKEY_DELETE;
		n++;
	}
	assert_int_equal(iter_status(it), 0);
	assert_int_equal(n, x->n_entries);
	assert_int_equal(n_dels, x->n_dels);
	n = 0;
	for (iter_last(it); iter_valid(it); iter_prev(it))
		n++;
	assert_int_equal(iter_status(it), 0);
	assert_int_equal(n, x->n_entries);
	it->ops->free(it);

	/* Point lookups of the smallest and largest keys. */
	struct get_hit h = {m, 0};
	uint8_t look[64];
	memcpy(look, x->largest_user, strlen(x->largest_user));
	ikey_put_trailer(look + strlen(x->largest_user), IKEY_SEQ_MAX,
			 IKEY_KIND_SEEK);
	assert_int_equal(sstr_get(r,
				  slice_make(look, strlen(x->largest_user) +
							   IKEY_TRAILER),
				  on_get, &h, NULL),
			 1);
	assert_int_equal(h.n, 1);
	sstr_close(r);
	free(m);
}

static void test_golden_sst_lz4(void **state)
{
	(void)state;
	const struct sst_expect x = {
		.number = G_SST_LZ4,
		.compression = LSM_COMPRESS_LZ4,
		.n_entries = 39,
		.n_dels = 4,
		.n_data_blocks = 8,
		.smallest_seq = 1,
		.largest_seq = 48,
		.smallest_user = "\x00\x01"
				 "bin\xff",
		.smallest_user_len = 6,
		.smallest_key_seq = 47,
		.largest_user = "key100",
		.largest_key_seq = 44,
		.tomb_start = "key020",
		.tomb_end = "key025",
		.tomb_seq = 45,
	};
	check_sst(&x);
}

static void test_golden_sst_zstd(void **state)
{
	(void)state;
	const struct sst_expect x = {
		.number = G_SST_ZSTD,
		.compression = LSM_COMPRESS_ZSTD,
		.n_entries = 30,
		.n_dels = 1,
		.n_data_blocks = 6,
		.smallest_seq = 49,
		.largest_seq = 80,
		.smallest_user = "key030",
		.smallest_user_len = 6,
		.smallest_key_seq = 49,
		.largest_user = "key219",
		.largest_key_seq = 80,
		.tomb_start = "key000",
		.tomb_end = "key005",
		.tomb_seq = 59,
	};
	check_sst(&x);
}

struct wal_check {
	const struct model *m;
	uint64_t next_seq;
};

static int on_wal_entry(void *ctx, uint64_t seq, unsigned kind,
			struct slice key, struct slice value)
{
	struct wal_check *wc = ctx;
	assert_int_equal(seq, wc->next_seq);
	const struct golden_op *op = &wc->m->ops[seq - 1];
	assert_int_equal(op->phase, 'C');
	assert_int_equal(kind, op->kind);
	assert_true(slice_eq(key, slice_make(op->key, op->key_len)));
	if (kind != G_DEL)
		assert_true(slice_eq(value, slice_make(op->val, op->val_len)));
	wc->next_seq++;
	return 0;
}

static void test_golden_wal(void **state)
{
	(void)state;
	static const uint64_t offsets[4] = {0, 54, 131, 185};
	static const uint32_t counts[4] = {1, 3, 1, 1};
	char path[4096];
	struct model *m = malloc(sizeof(*m));
	struct wal_reader *r = NULL;
	struct slice rec;
	uint64_t off = 0, n = 0;
	int rc;

	assert_non_null(m);
	model_build(m);
	struct wal_check wc = {m, G_LAST_SEQ_FLUSHED + 1};
	numbered_path(path, sizeof(path), G_WAL, "log");
	assert_int_equal(walr_open(env_posix(), path, &r), 0);
	while ((rc = walr_next(r, &rec, &off)) == 1) {
		assert_true(n < 4);
		assert_int_equal(off, offsets[n]);
		assert_true(rec.len >= BATCH_HEADER);
		assert_int_equal(batch_get_seq(rec.p), wc.next_seq);
		assert_int_equal(batch_get_count(rec.p), counts[n]);
		assert_int_equal(batch_iterate(rec.p, rec.len, on_wal_entry,
					       &wc, path, off),
				 0);
		n++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(n, 4);
	assert_false(walr_torn(r, NULL));
	assert_int_equal(wc.next_seq, G_N_OPS + 1);
	walr_close(r);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_current),
		cmocka_unit_test(test_golden_manifest),
		cmocka_unit_test(test_golden_sst_lz4),
		cmocka_unit_test(test_golden_sst_zstd),
		cmocka_unit_test(test_golden_wal),
		cmocka_unit_test(test_golden_open_reads_every_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
