/*
 * test_corrupt.c - damaged stores and bad open requests against the whole
 * engine.
 *
 * What and why: the engine must never crash on, or return wrong data
 * from, a damaged store: it either refuses to open it with a corruption
 * code whose detail names the damaged file, or opens it and returns
 * exactly the right data (a damaged WAL tail may lose the records after
 * the damage, never more). This test builds one store with SSTs on several
 * levels plus a live WAL, keeps a pristine copy, and for every file kind
 * (CURRENT, MANIFEST, SST, WAL) opens many damaged copies: bytes flipped at
 * several offsets, truncations at several lengths, the file removed, and
 * CURRENT rewritten with junk or a missing manifest name.
 *
 * Outcomes accepted for one damaged copy:
 *  1. lsm_open fails with LSM_E_CORRUPT, LSM_E_FORMAT or LSM_E_NOSTORE,
 *     leaves *out NULL, and lsm_errdetail() names the damaged file (or, for
 *     CURRENT, the manifest it names; naming another store file is
 *     accepted with a printed note, naming none is not).
 *  2. lsm_open succeeds; every get and a full scan either return exactly
 *     the model's data, or fail with LSM_E_CORRUPT or LSM_E_FORMAT (damage
 *     found lazily in an SST). For WAL damage the data may equal the state
 * after any prefix of the WAL's records; for every other file it must be the
 *     full state.
 * Never: a crash, a key or value that was never written, a missing key
 * without an error.
 *
 * Every damaged copy is tried even after a bad outcome; each bad one is
 * printed ("BAD DAMAGE CASE") and the test fails at the end of its file
 * kind. A store that lost CURRENT must not be re-created empty over its
 * old files by create_if_missing.
 *
 * Also: opening a directory that holds no store without create_if_missing
 * (LSM_E_NOSTORE), opening a store twice (LSM_E_BUSY), error_if_exists
 * (LSM_E_EXISTS), and a path that is a regular file (an error).
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
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lsm.h"
#include "testutil.h"

#define N_KEYS 3000
#define KEY_LEN 7
#define MAX_VALUE 1024
#define N_WAL_OPS 300

/* ---- whole files ---- */

static uint8_t *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	if (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	buf[n] = 0;
	*len = (size_t)n;
	return buf;
}

static void write_all(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	if (len > 0)
		assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void copy_dir(const char *src, const char *dst)
{
	DIR *d = opendir(src);
	struct dirent *e;
	char a[1024], b[1024];
	assert_non_null(d);
	assert_int_equal(mkdir(dst, 0755), 0);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		size_t len;
		snprintf(a, sizeof(a), "%s/%s", src, e->d_name);
		snprintf(b, sizeof(b), "%s/%s", dst, e->d_name);
		uint8_t *buf = read_all(a, &len);
		assert_non_null(buf);
		write_all(b, buf, len);
		free(buf);
	}
	closedir(d);
}

/* ---- keys, values, model ---- */

static void key_of(unsigned r, char out[KEY_LEN + 1])
{
	snprintf(out, KEY_LEN + 1, "c%06u", r);
}

static int rank_of(const void *k, size_t len)
{
	const char *s = k;
	if (len != KEY_LEN || s[0] != 'c')
		return -1;
	unsigned r = 0;
	for (size_t i = 1; i < KEY_LEN; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		r = r * 10 + (unsigned)(s[i] - '0');
	}
	return r < N_KEYS ? (int)r : -1;
}

static void fill_value(uint8_t *buf, size_t len, uint32_t rank, uint64_t g)
{
	uint64_t s = g * 0x2545f4914f6cdd1dull + rank;
	for (int b = 0; b < 4; b++)
		buf[b] = (uint8_t)(rank >> (8 * b));
	for (int b = 0; b < 8; b++)
		buf[4 + b] = (uint8_t)(g >> (8 * b));
	for (size_t i = 12; i < len;) {
		uint64_t r = rnd(&s);
		for (int b = 0; b < 8 && i < len; b++, i++)
			buf[i] = (uint8_t)(r >> (8 * b));
	}
}

struct mslot {
	uint64_t gen; /* 0: absent */
	uint32_t vlen;
	uint32_t pad;
};

static bool value_is(const uint8_t *v, size_t len, uint32_t rank,
		     const struct mslot *m)
{
	uint8_t exp[MAX_VALUE];
	if (m->gen == 0 || len != m->vlen || len > MAX_VALUE)
		return false;
	fill_value(exp, len, rank, m->gen);
	return memcmp(exp, v, len) == 0;
}

struct walop {
	bool is_put;
	uint32_t r, vlen;
	uint64_t gen;
};

/* The pristine store and what it holds. */
struct golden {
	char base[512]; /* temp dir holding everything */
	char pristine[600];
	struct mslot before_wal[N_KEYS]; /* state covered by SSTs */
	struct walop wal[N_WAL_OPS];     /* one write each, in order */
	struct mslot states[N_WAL_OPS + 1][N_KEYS]; /* after k WAL writes */
};

static void corrupt_options(lsm_options *o)
{
	lsm_options_init(o);
	/* explicit flushes shape the store; 1 MiB keeps the WAL phase in
	 * one memtable */
	o->write_buffer_size = 1 << 20;
	o->target_file_size = 32 << 10;
	o->max_bytes_for_level_base = 64 << 10;
	o->level0_compaction_trigger = 4;
	o->block_size = 1024;
	o->create_if_missing = false;
}

static void put_rank(lsm_db *db, struct mslot *m, uint32_t r, uint32_t vlen,
		     uint64_t gen)
{
	uint8_t v[MAX_VALUE];
	char k[KEY_LEN + 1];
	key_of(r, k);
	fill_value(v, vlen, r, gen);
	assert_int_equal(lsm_put(db, k, KEY_LEN, v, vlen, 0), 0);
	m[r].gen = gen;
	m[r].vlen = vlen;
}

static void build_golden(struct golden *g)
{
	lsm_options o;
	lsm_db *db = NULL;
	uint64_t rs = 12345, gen = 1;
	struct mslot *m = g->before_wal;
	memset(m, 0, sizeof(g->before_wal));
	make_base_dir(g->base, sizeof(g->base), "corrupt");
	snprintf(g->pristine, sizeof(g->pristine), "%s/pristine", g->base);
	corrupt_options(&o);
	o.create_if_missing = true;
	assert_int_equal(lsm_open(g->pristine, &o, &db), 0);
	/* everything, flushed and pushed to the bottom */
	for (uint32_t r = 0; r < N_KEYS; r++)
		put_rank(db, m, r, 12 + (uint32_t)rnd_below(&rs, 300), gen++);
	assert_int_equal(lsm_flush(db), 0);
	assert_int_equal(lsm_compact_range(db, NULL, 0, NULL, 0), 0);
	/* overwrite a third, delete some, one range: another level */
	for (uint32_t r = 0; r < N_KEYS; r += 3)
		put_rank(db, m, r, 12 + (uint32_t)rnd_below(&rs, 500), gen++);
	for (uint32_t r = 1; r < N_KEYS; r += 17) {
		char k[KEY_LEN + 1];
		key_of(r, k);
		assert_int_equal(lsm_delete(db, k, KEY_LEN, 0), 0);
		m[r].gen = 0;
		m[r].vlen = 0;
	}
	{
		char a[KEY_LEN + 1], z[KEY_LEN + 1];
		key_of(1000, a);
		key_of(1100, z);
		assert_int_equal(
			lsm_delete_range(db, a, KEY_LEN, z, KEY_LEN, 0), 0);
		for (uint32_t r = 1000; r < 1100; r++) {
			m[r].gen = 0;
			m[r].vlen = 0;
		}
	}
	assert_int_equal(lsm_flush(db), 0);
	char a[KEY_LEN + 1], z[KEY_LEN + 1];
	key_of(0, a);
	key_of(N_KEYS / 2, z);
	assert_int_equal(lsm_compact_range(db, a, KEY_LEN, z, KEY_LEN), 0);
	/* a few L0 files */
	for (int f = 0; f < 2; f++) {
		for (int i = 0; i < 200; i++) {
			uint32_t r = (uint32_t)rnd_below(&rs, N_KEYS);
			put_rank(db, m, r, 12 + (uint32_t)rnd_below(&rs, 200),
				 gen++);
		}
		assert_int_equal(lsm_flush(db), 0);
	}
	/* the live WAL: single writes whose prefixes we remember */
	memcpy(g->states[0], m, sizeof(g->before_wal));
	for (int i = 0; i < N_WAL_OPS; i++) {
		struct walop *w = &g->wal[i];
		memcpy(g->states[i + 1], g->states[i], sizeof(g->states[i]));
		w->r = (uint32_t)rnd_below(&rs, N_KEYS);
		w->is_put = rnd_below(&rs, 5) != 0;
		if (w->is_put) {
			w->vlen = 12 + (uint32_t)rnd_below(&rs, 60);
			w->gen = gen++;
			put_rank(db, g->states[i + 1], w->r, w->vlen, w->gen);
		} else {
			char k[KEY_LEN + 1];
			key_of(w->r, k);
			assert_int_equal(lsm_delete(db, k, KEY_LEN, 0), 0);
			g->states[i + 1][w->r].gen = 0;
			g->states[i + 1][w->r].vlen = 0;
		}
	}
	char *levels = NULL;
	if (lsm_property(db, "lsm.levels", &levels) == 0) {
		print_message("golden store:\n%s\n", levels);
		lsm_free(levels);
	}
	assert_int_equal(lsm_close(db), 0);
}

/* ---- checking one damaged copy ---- */

struct verdict {
	int n_bad;
	int n_open_refused, n_exact, n_prefix, n_lazy_errors, n_total;
};

/* Reports one bad outcome; the caller then abandons this case. All cases
 * run, so the report lists every bad one; the test fails at the end. */
static void bad(struct verdict *vd, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void bad(struct verdict *vd, const char *what, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	print_error("BAD DAMAGE CASE '%s': %s\n", what, msg);
	vd->n_bad++;
}

/*
 * Opens `dir` and checks the outcome. `file` is the damaged file's name,
 * `alt_name` another acceptable name for the error detail (may be NULL),
 * and wal_damage says whether WAL prefixes are acceptable.
 */
static void check_damaged(const struct golden *g, const char *dir,
			  const char *what, const char *file,
			  const char *alt_name, bool wal_damage,
			  struct verdict *vd)
{
	lsm_options o;
	lsm_db *db = NULL;
	lsm_iter *it = NULL;
	corrupt_options(&o);
	vd->n_total++;
	int rc = lsm_open(dir, &o, &db);
	if (rc != 0) {
		const char *det = lsm_errdetail();
		if (db != NULL) {
			bad(vd, what, "failed open left *out set");
			return;
		}
		if (rc != LSM_E_CORRUPT && rc != LSM_E_FORMAT &&
		    rc != LSM_E_NOSTORE) {
			bad(vd, what,
			    "open failed with %d (%s), expected "
			    "CORRUPT/FORMAT/NOSTORE; detail: %s",
			    rc, lsm_strerror(rc), det);
			goto out;
		}
		if (strstr(det, file) == NULL &&
		    (alt_name == NULL || strstr(det, alt_name) == NULL)) {
			/* Another store file named is a safe, if indirect,
			 * answer (e.g. a damaged manifest tail read as torn
			 * leads to "listed SST missing"); no file is not. */
			if (strstr(det, ".sst") == NULL &&
			    strstr(det, ".log") == NULL &&
			    strstr(det, "MANIFEST") == NULL &&
			    strstr(det, "CURRENT") == NULL) {
				bad(vd, what,
				    "error detail names no file: '%s'", det);
				goto out;
			}
			print_message(
				"note '%s': refused, detail names another "
				"file: %s\n",
				what, det);
		}
		vd->n_open_refused++;
		return;
	}
	assert_non_null(db);

	/* full scan; state seen in `got` */
	static struct mslot got[N_KEYS];
	static bool seen[N_KEYS];
	memset(got, 0, sizeof(got));
	memset(seen, 0, sizeof(seen));
	int scan_rc = lsm_iter_new(db, NULL, &it);
	int last = -1;
	bool lazy = false;
	if (scan_rc == 0) {
		for (lsm_iter_first(it); lsm_iter_valid(it);
		     lsm_iter_next(it)) {
			size_t kl, vl;
			const void *k = lsm_iter_key(it, &kl);
			const uint8_t *v = lsm_iter_value(it, &vl);
			int r = rank_of(k, kl);
			if (r < 0) {
				bad(vd, what,
				    "scan returned a key never written "
				    "(len %zu)",
				    kl);
				goto out;
			}
			if (r <= last) {
				bad(vd, what, "scan out of order");
				goto out;
			}
			if (vl < 12 || vl > MAX_VALUE) {
				bad(vd, what,
				    "scan: value of c%06d has bad "
				    "length %zu",
				    r, vl);
				goto out;
			}
			uint64_t gen = 0;
			for (int b = 0; b < 8; b++)
				gen |= (uint64_t)v[4 + b] << (8 * b);
			got[r].gen = gen;
			got[r].vlen = (uint32_t)vl;
			struct mslot tmp = got[r];
			if (!value_is(v, vl, (uint32_t)r, &tmp)) {
				bad(vd, what, "scan: garbage value for c%06d",
				    r);
				goto out;
			}
			seen[r] = true;
			last = r;
		}
		scan_rc = lsm_iter_status(it);
		lsm_iter_free(it);
		it = NULL;
	}
	if (scan_rc != 0) {
		if (scan_rc != LSM_E_CORRUPT && scan_rc != LSM_E_FORMAT) {
			bad(vd, what,
			    "scan failed with %d (%s), expected "
			    "CORRUPT",
			    scan_rc, lsm_strerror(scan_rc));
			goto out;
		}
		lazy = true;
	}
	/* which state? */
	int k_match = -1;
	if (!lazy) {
		int lo = wal_damage ? 0 : N_WAL_OPS;
		for (int k = N_WAL_OPS; k >= lo; k--)
			if (memcmp(g->states[k], got, sizeof(got)) == 0) {
				k_match = k;
				break;
			}
		if (k_match < 0) {
			int diff = -1;
			for (int r = 0; r < N_KEYS && diff < 0; r++)
				if (memcmp(&g->states[N_WAL_OPS][r], &got[r],
					   sizeof(got[r])) != 0)
					diff = r;
			{
				bad(vd, what,
				    "store opened but holds wrong data: first "
				    "difference at c%06d (got gen %llu, "
				    "expected %llu)",
				    diff, (unsigned long long)got[diff].gen,
				    (unsigned long long)g
					    ->states[N_WAL_OPS][diff]
					    .gen);
				goto out;
			}
		}
	} else {
		/* the prefix of the scan before the error must be right */
		const struct mslot *full = g->states[N_WAL_OPS];
		for (int r = 0; r <= last; r++)
			if (memcmp(&full[r], &got[r], sizeof(got[r])) != 0 &&
			    !wal_damage) {
				bad(vd, what,
				    "scan before the corruption error "
				    "returned wrong data at c%06d",
				    r);
				goto out;
			}
	}
	/* every point read */
	const struct mslot *exp = g->states[k_match >= 0 ? k_match : N_WAL_OPS];
	for (uint32_t r = 0; r < N_KEYS; r++) {
		char k[KEY_LEN + 1];
		void *v = NULL;
		size_t vl = 0;
		key_of(r, k);
		rc = lsm_get(db, NULL, k, KEY_LEN, &v, &vl);
		if (rc == LSM_E_CORRUPT || rc == LSM_E_FORMAT) {
			lazy = true;
			continue;
		}
		if (lazy && wal_damage && k_match < 0) {
			/* prefix unknown: only well-formedness */
			if (rc == 0)
				lsm_free(v);
			continue;
		}
		if (exp[r].gen == 0) {
			if (rc == 0)
				lsm_free(v);
			if (rc != LSM_E_NOTFOUND) {
				bad(vd, what,
				    "get c%06u: expected NOTFOUND, got "
				    "%d",
				    r, rc);
				goto out;
			}
			continue;
		}
		if (rc != 0) {
			bad(vd, what,
			    "get c%06u: expected a value, got %d (%s)", r, rc,
			    lsm_strerror(rc));
			goto out;
		}
		bool ok = value_is(v, vl, r, &exp[r]);
		lsm_free(v);
		if (!ok) {
			bad(vd, what, "get c%06u: wrong value", r);
			goto out;
		}
	}
	if (lazy)
		vd->n_lazy_errors++;
	else if (k_match == N_WAL_OPS)
		vd->n_exact++;
	else
		vd->n_prefix++;
out:
	if (it != NULL)
		lsm_iter_free(it);
	if (db != NULL)
		lsm_close(db); /* may report the corruption again */
}

/* ---- damage ---- */

enum damage { FLIP, TRUNCATE, REMOVE };

struct files {
	char current_target[256]; /* manifest named by CURRENT */
	char wal[256];            /* the largest WAL */
	char wals[8][256];        /* every WAL */
	int n_wals;
	char sst[3][256];
	int n_sst;
};

static void find_files(const char *dir, struct files *f)
{
	char p[1024];
	size_t len;
	memset(f, 0, sizeof(*f));
	snprintf(p, sizeof(p), "%s/CURRENT", dir);
	uint8_t *cur = read_all(p, &len);
	assert_non_null(cur);
	assert_true(len > 1 && cur[len - 1] == '\n');
	cur[len - 1] = '\0';
	snprintf(f->current_target, sizeof(f->current_target), "%.255s",
		 (char *)cur);
	free(cur);

	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t wal_size = 0;
	struct {
		char name[256];
		uint64_t size;
	} ssts[256];
	int n = 0;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		size_t nl = strlen(e->d_name);
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (stat(p, &st) != 0)
			continue;
		if (nl > 4 && strcmp(e->d_name + nl - 4, ".log") == 0 &&
		    f->n_wals < 8)
			snprintf(f->wals[f->n_wals++], 256, "%.255s",
				 e->d_name);
		if (nl > 4 && strcmp(e->d_name + nl - 4, ".log") == 0 &&
		    (uint64_t)st.st_size >= wal_size) {
			wal_size = (uint64_t)st.st_size;
			snprintf(f->wal, sizeof(f->wal), "%.255s", e->d_name);
		}
		if (nl > 4 && strcmp(e->d_name + nl - 4, ".sst") == 0 &&
		    n < 256) {
			snprintf(ssts[n].name, sizeof(ssts[n].name), "%.255s",
				 e->d_name);
			ssts[n].size = (uint64_t)st.st_size;
			n++;
		}
	}
	closedir(d);
	assert_true(n > 0);
	assert_true(f->wal[0] != '\0');
	/* smallest, largest and one in the middle by name */
	int lo = 0, hi = 0;
	for (int i = 1; i < n; i++) {
		if (ssts[i].size < ssts[lo].size)
			lo = i;
		if (ssts[i].size > ssts[hi].size)
			hi = i;
	}
	snprintf(f->sst[f->n_sst++], 256, "%.255s", ssts[lo].name);
	if (hi != lo)
		snprintf(f->sst[f->n_sst++], 256, "%.255s", ssts[hi].name);
	int mid = n / 2;
	if (mid != lo && mid != hi)
		snprintf(f->sst[f->n_sst++], 256, "%.255s", ssts[mid].name);
	print_message("files: CURRENT -> %s, %d WAL(s), largest %s (%llu "
		      "bytes), %d SSTs\n",
		      f->current_target, f->n_wals, f->wal,
		      (unsigned long long)wal_size, n);
}

/* Damages one copy of the pristine store and checks it. */
static void damage_case(const struct golden *g, const char *file,
			enum damage how, size_t arg, uint8_t xor_mask, bool wal,
			const char *alt_name, struct verdict *vd)
{
	char dir[700], p[1024], what[512];
	size_t len;
	snprintf(dir, sizeof(dir), "%s/case", g->base);
	rm_rf(dir);
	copy_dir(g->pristine, dir);
	snprintf(p, sizeof(p), "%s/%s", dir, file);
	uint8_t *buf = read_all(p, &len);
	assert_non_null(buf);
	switch (how) {
	case FLIP:
		if (arg >= len) {
			free(buf);
			return;
		}
		buf[arg] ^= xor_mask;
		write_all(p, buf, len);
		snprintf(what, sizeof(what), "%s: byte %zu of %zu xor 0x%02x",
			 file, arg, len, xor_mask);
		break;
	case TRUNCATE:
		if (arg >= len) {
			free(buf);
			return;
		}
		assert_int_equal(truncate(p, (off_t)arg), 0);
		snprintf(what, sizeof(what), "%s: truncated to %zu of %zu",
			 file, arg, len);
		break;
	case REMOVE:
		assert_int_equal(unlink(p), 0);
		snprintf(what, sizeof(what), "%s: removed", file);
		/* without CURRENT the directory holds no store: NOSTORE
		 * naming the directory is a fine answer */
		if (strcmp(file, "CURRENT") == 0)
			alt_name = "";
		break;
	}
	free(buf);
	check_damaged(g, dir, what, file, alt_name, wal, vd);
	rm_rf(dir);
}

static void damage_file(const struct golden *g, const char *file, bool wal,
			const char *alt_name, uint64_t *rs, struct verdict *vd)
{
	char p[1024];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", g->pristine, file);
	assert_int_equal(stat(p, &st), 0);
	size_t len = (size_t)st.st_size;
	size_t offs[24];
	int n = 0;
	size_t fixed[] = {0,           1,        4,        8,
			  9,           len / 4,  len / 3,  len / 2,
			  2 * len / 3, len - 1,  len - 2,  len - 8,
			  len - 9,     len - 17, len - 40, len - 64};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (fixed[i] < len)
			offs[n++] = fixed[i];
	for (int i = 0; i < 6 && len > 0; i++)
		offs[n++] = (size_t)rnd_below(rs, len);
	for (int i = 0; i < n; i++) {
		uint8_t mask = (uint8_t)(1u << rnd_below(rs, 8));
		if (i % 3 == 0)
			mask = 0xff;
		damage_case(g, file, FLIP, offs[i], mask, wal, alt_name, vd);
	}
	size_t cuts[] = {0, 1, 7, len / 2, len - 1, len - 5, len - 48};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		if (cuts[i] < len)
			damage_case(g, file, TRUNCATE, cuts[i], 0, wal,
				    alt_name, vd);
	damage_case(g, file, REMOVE, 0, 0, wal, alt_name, vd);
}

static void current_case(const struct golden *g, const char *content,
			 size_t len, const char *what, const char *manifest,
			 struct verdict *vd)
{
	char dir[700], p[1024];
	snprintf(dir, sizeof(dir), "%s/case", g->base);
	rm_rf(dir);
	copy_dir(g->pristine, dir);
	snprintf(p, sizeof(p), "%s/CURRENT", dir);
	write_all(p, content, len);
	check_damaged(g, dir, what, "CURRENT", manifest, false, vd);
	rm_rf(dir);
}

static void report(const char *kind, const struct verdict *vd)
{
	print_message("%-9s %3d cases: %3d refused at open, %3d exact, %3d "
		      "WAL prefix, %3d lazily reported corruption, %3d BAD\n",
		      kind, vd->n_total, vd->n_open_refused, vd->n_exact,
		      vd->n_prefix, vd->n_lazy_errors, vd->n_bad);
}

static int group_setup(void **state)
{
	struct golden *g = calloc(1, sizeof(*g));
	if (g == NULL)
		return -1;
	build_golden(g);
	*state = g;
	return 0;
}

static int group_teardown(void **state)
{
	struct golden *g = *state;
	/* LSM_TEST_KEEP=1 keeps the pristine store for debugging */
	if (getenv("LSM_TEST_KEEP") != NULL)
		print_message("kept %s\n", g->pristine);
	else
		rm_rf(g->base);
	free(g);
	return 0;
}

static void test_pristine_opens_exact(void **state)
{
	struct golden *g = *state;
	struct verdict vd = {0};
	char dir[700];
	snprintf(dir, sizeof(dir), "%s/case", g->base);
	rm_rf(dir);
	copy_dir(g->pristine, dir);
	check_damaged(g, dir, "no damage", "-", NULL, false, &vd);
	assert_int_equal(vd.n_exact, 1);
	rm_rf(dir);
}

static void test_damaged_current(void **state)
{
	struct golden *g = *state;
	struct files f;
	struct verdict vd = {0};
	uint64_t rs = 1;
	char buf[600];
	find_files(g->pristine, &f);
	const char *m = f.current_target;
	current_case(g, "garbage\n", 8, "CURRENT: junk", m, &vd);
	current_case(g, "", 0, "CURRENT: empty", m, &vd);
	current_case(g, "\n", 1, "CURRENT: just a newline", m, &vd);
	current_case(g, "MANIFEST-999999\n", 16, "CURRENT: missing manifest",
		     "MANIFEST-999999", &vd);
	current_case(g, "../../etc/passwd\n", 17, "CURRENT: path escape", m,
		     &vd);
	current_case(g, "\xff\xfe\x00\x01\n", 5, "CURRENT: binary", m, &vd);
	memset(buf, 'M', sizeof(buf));
	buf[sizeof(buf) - 1] = '\n';
	current_case(g, buf, sizeof(buf), "CURRENT: 600-byte line", m, &vd);
	snprintf(buf, sizeof(buf), "%s", m);
	buf[strlen(m) - 1] ^= 1; /* names a neighbour number */
	strcat(buf, "\n");
	current_case(g, buf, strlen(buf), "CURRENT: other manifest number", m,
		     &vd);
	/* flips / truncation / removal of CURRENT itself */
	damage_file(g, "CURRENT", false, m, &rs, &vd);
	report("CURRENT", &vd);
	assert_int_equal(vd.n_bad, 0);
}

static void test_damaged_manifest(void **state)
{
	struct golden *g = *state;
	struct files f;
	struct verdict vd = {0};
	uint64_t rs = 2;
	find_files(g->pristine, &f);
	damage_file(g, f.current_target, false, NULL, &rs, &vd);
	report("MANIFEST", &vd);
	assert_int_equal(vd.n_bad, 0);
}

static void test_damaged_sst(void **state)
{
	struct golden *g = *state;
	struct files f;
	struct verdict vd = {0};
	uint64_t rs = 3;
	find_files(g->pristine, &f);
	for (int i = 0; i < f.n_sst; i++)
		damage_file(g, f.sst[i], false, NULL, &rs, &vd);
	report("SST", &vd);
	assert_int_equal(vd.n_bad, 0);
}

static void test_damaged_wal(void **state)
{
	struct golden *g = *state;
	struct files f;
	struct verdict vd = {0};
	uint64_t rs = 4;
	find_files(g->pristine, &f);
	for (int i = 0; i < f.n_wals; i++)
		damage_file(g, f.wals[i], true, NULL, &rs, &vd);
	report("WAL", &vd);
	assert_int_equal(vd.n_bad, 0);
}

/* A store that lost CURRENT, opened with the default create_if_missing:
 * the engine must not create a fresh store over the old files (and then
 * delete them as leftovers); it must refuse, or find the data. */
static void test_lost_current_not_recreated(void **state)
{
	struct golden *g = *state;
	char dir[700], p[1024];
	lsm_options o;
	lsm_db *db = NULL;
	struct stat st;
	snprintf(dir, sizeof(dir), "%s/case", g->base);
	rm_rf(dir);
	copy_dir(g->pristine, dir);
	snprintf(p, sizeof(p), "%s/CURRENT", dir);
	assert_int_equal(unlink(p), 0);
	corrupt_options(&o);
	o.create_if_missing = true;
	int rc = lsm_open(dir, &o, &db);
	print_message("open without CURRENT, create_if_missing: %d (%s)\n", rc,
		      lsm_errdetail());
	if (rc == 0) {
		char k[KEY_LEN + 1];
		void *v = NULL;
		size_t vl = 0;
		const struct mslot *full = g->states[N_WAL_OPS];
		uint32_t r = 0;
		while (full[r].gen == 0)
			r++;
		key_of(r, k);
		rc = lsm_get(db, NULL, k, KEY_LEN, &v, &vl);
		if (rc == 0)
			lsm_free(v);
		lsm_close(db);
		if (rc != 0)
			print_error("the store was silently re-created empty: "
				    "get %s = %d\n",
				    k, rc);
		assert_int_equal(rc, 0);
	} else {
		assert_true(rc == LSM_E_CORRUPT || rc == LSM_E_NOSTORE);
	}
	/* and the old manifest is still there either way */
	struct files f;
	find_files(g->pristine, &f);
	snprintf(p, sizeof(p), "%s/%s", dir, f.current_target);
	assert_int_equal(stat(p, &st), 0);
	rm_rf(dir);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Bug: damage in the last record of a WAL that is not the newest live WAL
 * was skipped as a "torn tail" and the newer WALs replayed, so
 * acknowledged writes vanished from the middle of the history (k0298 lost,
 * k0299 present). Only the newest WAL may have a torn tail. Needs a store
 * closed with two or more live WALs; small memtables make that likely,
 * and the test skips when it cannot produce one. */
static void test_damaged_older_wal_not_skipped(void **state)
{
	(void)state;
	char base[512], dir[700], cpy[700], p[1600];
	lsm_options o;
	lsm_db *db = NULL;
	char names[16][64];
	static uint8_t big[1000];
	int n_logs = 0, n_tried = 0;
	make_base_dir(base, sizeof(base), "midwal");
	snprintf(dir, sizeof(dir), "%s/db", base);
	snprintf(cpy, sizeof(cpy), "%s/case", base);
	lsm_options_init(&o);
	o.write_buffer_size = 64 << 10;
	o.level0_compaction_trigger = 30;
	o.level0_slowdown_trigger = 30;
	o.level0_stop_trigger = 40;
	/* whether flushes are still pending at close is timing: retry */
	for (int attempt = 0; attempt < 10 && n_logs < 2; attempt++) {
		rm_rf(dir);
		n_logs = 0;
		assert_int_equal(lsm_open(dir, &o, &db), 0);
		/* ~300 KiB: several 64 KiB memtables, the last ones maybe
		 * still unflushed at close */
		for (int i = 0; i < 300; i++) {
			char k[16];
			snprintf(k, sizeof(k), "k%04d", i);
			memset(big, 'a' + i % 26, sizeof(big));
			assert_int_equal(lsm_put(db, k, 5, big, sizeof(big), 0),
					 0);
		}
		assert_int_equal(lsm_close(db), 0);
		DIR *d = opendir(dir);
		struct dirent *e;
		assert_non_null(d);
		while ((e = readdir(d)) != NULL && n_logs < 16) {
			size_t nl = strlen(e->d_name);
			if (nl > 4 && nl < 64 &&
			    strcmp(e->d_name + nl - 4, ".log") == 0)
				memcpy(names[n_logs++], e->d_name, nl + 1);
		}
		closedir(d);
	}
	qsort(names, (size_t)n_logs, sizeof(names[0]), name_cmp);
	print_message("%d live WAL(s) after close\n", n_logs);
	o.create_if_missing = false;
	for (int w = 0; w + 1 < n_logs; w++) {
		/* flip the first byte of an older WAL's record */
		rm_rf(cpy);
		copy_dir(dir, cpy);
		snprintf(p, sizeof(p), "%s/%.63s", cpy, names[w]);
		size_t len;
		uint8_t *buf = read_all(p, &len);
		assert_non_null(buf);
		assert_true(len > 0);
		buf[0] ^= 0xff;
		write_all(p, buf, len);
		free(buf);
		n_tried++;
		int rc = lsm_open(cpy, &o, &db);
		if (rc != 0) {
			assert_true(rc == LSM_E_CORRUPT);
			continue;
		}
		int first_missing = -1, later_present = -1;
		for (int i = 0; i < 300; i++) {
			char k[16];
			void *v = NULL;
			size_t vl = 0;
			snprintf(k, sizeof(k), "k%04d", i);
			int g = lsm_get(db, NULL, k, 5, &v, &vl);
			if (g == 0) {
				lsm_free(v);
				if (first_missing >= 0 && later_present < 0)
					later_present = i;
			} else if (first_missing < 0) {
				first_missing = i;
			}
		}
		lsm_close(db);
		if (first_missing >= 0 && later_present >= 0)
			rm_rf(base); /* about to fail: leave nothing behind */
		if (first_missing >= 0 && later_present >= 0)
			print_error(
				"damaged %s (not the newest WAL): k%04d lost "
				"but later k%04d present\n",
				names[w], first_missing, later_present);
		assert_false(first_missing >= 0 && later_present >= 0);
	}
	rm_rf(base);
	if (n_tried == 0)
		skip();
}

/* ---- bad open requests ---- */

static void test_not_a_store(void **state)
{
	(void)state;
	char base[512], p[700];
	lsm_options o;
	lsm_db *db = NULL;
	make_base_dir(base, sizeof(base), "nostore");
	lsm_options_init(&o);
	o.create_if_missing = false;
	/* an empty directory */
	assert_int_equal(lsm_open(base, &o, &db), LSM_E_NOSTORE);
	assert_null(db);
	/* a directory with unrelated files */
	snprintf(p, sizeof(p), "%s/notes.txt", base);
	write_all(p, "hello\n", 6);
	db = NULL;
	assert_int_equal(lsm_open(base, &o, &db), LSM_E_NOSTORE);
	assert_null(db);
	/* a path that does not exist */
	snprintf(p, sizeof(p), "%s/missing", base);
	int rc = lsm_open(p, &o, &db);
	assert_true(rc == LSM_E_NOSTORE || rc == -ENOENT);
	assert_null(db);
	/* the failed opens created nothing */
	struct stat st;
	assert_int_not_equal(stat(p, &st), 0);
	rm_rf(base);
}

static void test_open_twice_busy(void **state)
{
	(void)state;
	char base[512], p[700];
	lsm_options o;
	lsm_db *db = NULL, *db2 = NULL;
	make_base_dir(base, sizeof(base), "busy");
	snprintf(p, sizeof(p), "%s/db", base);
	lsm_options_init(&o);
	assert_int_equal(lsm_open(p, &o, &db), 0);
	assert_int_equal(lsm_put(db, "a", 1, "1", 1, 0), 0);
	assert_int_equal(lsm_open(p, &o, &db2), LSM_E_BUSY);
	assert_null(db2);
	/* the first handle is unharmed */
	void *v = NULL;
	size_t vl = 0;
	assert_int_equal(lsm_get(db, NULL, "a", 1, &v, &vl), 0);
	assert_int_equal(vl, 1);
	lsm_free(v);
	assert_int_equal(lsm_close(db), 0);
	/* once closed, the store opens again */
	assert_int_equal(lsm_open(p, &o, &db), 0);
	assert_int_equal(lsm_get(db, NULL, "a", 1, &v, &vl), 0);
	lsm_free(v);
	assert_int_equal(lsm_close(db), 0);
	rm_rf(base);
}

static void test_error_if_exists(void **state)
{
	(void)state;
	char base[512], p[700];
	lsm_options o;
	lsm_db *db = NULL;
	make_base_dir(base, sizeof(base), "exists");
	snprintf(p, sizeof(p), "%s/db", base);
	lsm_options_init(&o);
	o.error_if_exists = true;
	/* new: fine */
	assert_int_equal(lsm_open(p, &o, &db), 0);
	assert_int_equal(lsm_put(db, "k", 1, "v", 1, 0), 0);
	assert_int_equal(lsm_close(db), 0);
	db = NULL;
	assert_int_equal(lsm_open(p, &o, &db), LSM_E_EXISTS);
	assert_null(db);
	/* the refusal did not touch the data */
	o.error_if_exists = false;
	assert_int_equal(lsm_open(p, &o, &db), 0);
	void *v = NULL;
	size_t vl = 0;
	assert_int_equal(lsm_get(db, NULL, "k", 1, &v, &vl), 0);
	lsm_free(v);
	assert_int_equal(lsm_close(db), 0);
	/* destroy, then it holds no store */
	assert_int_equal(lsm_destroy(p, &o), 0);
	o.create_if_missing = false;
	int rc = lsm_open(p, &o, &db);
	assert_true(rc == LSM_E_NOSTORE || rc == -ENOENT);
	assert_null(db);
	rm_rf(base);
}

static void test_path_is_regular_file(void **state)
{
	(void)state;
	char base[512], p[700];
	lsm_options o;
	lsm_db *db = NULL;
	make_base_dir(base, sizeof(base), "regfile");
	snprintf(p, sizeof(p), "%s/file", base);
	write_all(p, "not a directory\n", 16);
	lsm_options_init(&o);
	int rc = lsm_open(p, &o, &db);
	assert_true(rc < 0);
	assert_null(db);
	print_message("open of a regular file: %d (%s) %s\n", rc,
		      lsm_strerror(rc), lsm_errdetail());
	/* and it is left alone */
	size_t len;
	uint8_t *buf = read_all(p, &len);
	assert_non_null(buf);
	assert_int_equal(len, 16);
	free(buf);
	rm_rf(base);
}

int main(void)
{
	/* LSM_TEST_FILTER=pattern runs only the matching tests */
	if (getenv("LSM_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("LSM_TEST_FILTER"));
	const struct CMUnitTest damaged[] = {
		cmocka_unit_test(test_pristine_opens_exact),
		cmocka_unit_test(test_damaged_current),
		cmocka_unit_test(test_damaged_manifest),
		cmocka_unit_test(test_damaged_sst),
		cmocka_unit_test(test_damaged_wal),
		cmocka_unit_test(test_lost_current_not_recreated),
	};
	const struct CMUnitTest requests[] = {
		cmocka_unit_test(test_not_a_store),
		cmocka_unit_test(test_open_twice_busy),
		cmocka_unit_test(test_error_if_exists),
		cmocka_unit_test(test_path_is_regular_file),
		cmocka_unit_test(test_damaged_older_wal_not_skipped),
	};
	int failed = cmocka_run_group_tests_name("bad open requests", requests,
						 NULL, NULL);
	failed += cmocka_run_group_tests_name("damaged stores", damaged,
					      group_setup, group_teardown);
	return failed;
}
