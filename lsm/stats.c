/*
 * stats.c - properties: the statistics as text and as numbers.
 *
 * Derived figures:
 *  - write amplification = (flush + compaction + blob file bytes
 *    written) / user bytes, and the same with WAL bytes added ("-wal");
 *  - blob garbage: bytes of blob values no reference needs any more, of
 *    the bytes the tree ever referenced in the live blob files;
 *  - space amplification = point entries of all SSTs / the live ones:
 *    neither deletes nor older versions of a key, estimated from the
 *    files' distinct-key sketches (compact_live_share; at most 1000).
 *    Entries stand for bytes: a store whose small and large values are
 *    overwritten at different rates is weighed by entry, not by byte. A store
 *    with files written before sketches were kept uses the bytes of the
 *    last non-empty level instead (which holds the newest version of
 *    nearly every key once leveled compaction has caught up);
 *  - read amplification = sorted runs a point read may probe (L0 files
 *    plus non-empty levels), a gauge of the current tree;
 * each also as an integer times 1000 for lsm_property_u64().
 *
 * Thread-safety: counters are atomics; level figures are read from a
 * superversion reference.
 */
#include "db_int.h"

#include "util/status.h"

#include <stdarg.h>
#include <stdlib.h>

struct tbuf {
	char *p;
	size_t len, cap;
	int err;
};

static void tb_printf(struct tbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void tb_printf(struct tbuf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		size_t room = b->cap - b->len;
		int n;
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->err = -EINVAL;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t ncap = (b->cap ? b->cap * 2 : 1024) + (size_t)n;
		char *np = realloc(b->p, ncap);
		if (!np) {
			b->err = -ENOMEM;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
}

struct derived {
	uint64_t sst_bytes, last_level_bytes, wal_bytes_live;
	uint64_t files[LSM_MAX_LEVELS], bytes[LSM_MAX_LEVELS];
	uint64_t written[LSM_MAX_LEVELS], read[LSM_MAX_LEVELS];
	uint64_t runs[LSM_MAX_LEVELS], user;
	uint64_t wamp_x1000, wamp_wal_x1000, samp_x1000;
	uint64_t mem_bytes, imm_count;
	uint64_t read_amp;
	uint64_t blob_files, blob_bytes, blob_linked_bytes, blob_garbage_bytes;
	uint64_t blob_garbage_x1000;
};

/* The figures of the db now. Space amplification reads every file's
 * sketch, so only a caller that shows it asks for it (`space`). */
static void derive(lsm_db *db, struct derived *d, bool space)
{
	struct superversion *sv = db_sv_get(db);
	uint64_t user = STAT_GET(db, user_bytes_written);
	uint64_t w = STAT_GET(db, flush_bytes) +
		     STAT_GET(db, compaction_bytes_written) +
		     STAT_GET(db, blob_bytes_written) +
		     STAT_GET(db, blob_gc_bytes);
	double live = -1;
	memset(d, 0, sizeof(*d));
	d->user = user;
	for (int l = 0; l < LSM_MAX_LEVELS; l++) {
		d->files[l] = sv->v->n_files[l];
		d->written[l] = STAT_GET(db, level_written[l]);
		d->read[l] = STAT_GET(db, level_read[l]);
		d->runs[l] = STAT_GET(db, level_runs[l]);
		d->bytes[l] = sv->v->level_bytes[l];
		d->sst_bytes += d->bytes[l];
		if (d->bytes[l])
			d->last_level_bytes = d->bytes[l];
	}
	d->mem_bytes = mem_usage(sv->mem);
	for (int i = 0; i < sv->n_imm; i++)
		d->mem_bytes += mem_usage(sv->imm[i]);
	d->imm_count = (uint64_t)sv->n_imm;
	d->read_amp = compact_sorted_runs(sv->v);
	if (space)
		live = compact_live_share(sv->v);
	db_sv_put(sv);
	pthread_mutex_lock(&db->mu); /* blob counters change under it */
	for (size_t i = 0; db->vs && i < db->vs->current->n_blobs; i++) {
		const struct blob_meta *bm = db->vs->current->blobs[i];
		d->blob_files++;
		d->blob_bytes += bm->size;
		d->blob_linked_bytes += bm->linked_bytes;
		d->blob_garbage_bytes += bm->garbage_bytes;
	}
	pthread_mutex_unlock(&db->mu);
	d->blob_garbage_x1000 =
		d->blob_linked_bytes
			? d->blob_garbage_bytes * 1000 / d->blob_linked_bytes
			: 0;
	d->wamp_x1000 = user ? w * 1000 / user : 0;
	d->wamp_wal_x1000 =
		user ? (w + STAT_GET(db, wal_bytes)) * 1000 / user : 0;
	if (!space)
		d->samp_x1000 = 0;
	else if (live >= 0)
		d->samp_x1000 =
			d->sst_bytes ? (uint64_t)(1000.0 /
						  (live > 0.001 ? live : 0.001))
				     : 0;
	else
		d->samp_x1000 =
			d->last_level_bytes
				? d->sst_bytes * 1000 / d->last_level_bytes
				: 0;
}

/* The level table: shape now, and what flushes (L0) and compactions
 * have written into each level so far. "w-amp" is that level's share of
 * write_amplification (written / user bytes); the shares add up to it,
 * less blob writes. */
static void levels_text(struct tbuf *b, const struct derived *d)
{
	tb_printf(b, "level  files        bytes    runs   read_bytes  "
		     "written_bytes  w-amp\n");
	for (int l = 0; l < LSM_MAX_LEVELS; l++) {
		uint64_t share = d->user ? d->written[l] * 1000 / d->user : 0;
		tb_printf(b,
			  "L%d  %8llu  %11llu  %6llu  %11llu  %13llu  "
			  "%llu.%03llu\n",
			  l, (unsigned long long)d->files[l],
			  (unsigned long long)d->bytes[l],
			  (unsigned long long)d->runs[l],
			  (unsigned long long)d->read[l],
			  (unsigned long long)d->written[l],
			  (unsigned long long)(share / 1000),
			  (unsigned long long)(share % 1000));
	}
}

static const char *style_name(lsm_compaction_style s)
{
	switch (s) {
	case LSM_COMPACTION_TIERED:
		return "tiered";
	case LSM_COMPACTION_TIME_WINDOW:
		return "time-window";
	default:
		return "leveled";
	}
}

static void stats_text(lsm_db *db, struct tbuf *b)
{
	struct derived d;
	derive(db, &d, true);
#define X(name, doc)                                \
	tb_printf(b, "%-26s %14llu  # %s\n", #name, \
		  (unsigned long long)STAT_GET(db, name), doc);
	LSM_STATS(X)
#undef X
	tb_printf(b, "%-26s %14llu  # %s\n", "block_cache_hits",
		  (unsigned long long)cache_hits(db->block_cache),
		  "data blocks found in the block cache");
	tb_printf(b, "%-26s %14llu  # %s\n", "block_cache_misses",
		  (unsigned long long)cache_misses(db->block_cache),
		  "data blocks read from files");
	tb_printf(b, "%-26s %14zu  # %s\n", "block_cache_bytes",
		  cache_usage(db->block_cache), "bytes held by the cache");
	tb_printf(b, "%-26s %14llu  # %s\n", "memtable_bytes",
		  (unsigned long long)d.mem_bytes,
		  "memory of active and immutable memtables");
	tb_printf(b, "%-26s %14llu  # %s\n", "sst_bytes",
		  (unsigned long long)d.sst_bytes, "bytes of all SST files");
	pthread_mutex_lock(&db->mu);
	tb_printf(b, "%-26s %14llu  # %s\n", "pending_compaction_bytes",
		  (unsigned long long)db->pending_compaction_bytes,
		  "estimated bytes compaction must still rewrite");
	pthread_mutex_unlock(&db->mu);
	tb_printf(b, "%-26s %10llu.%03llu  # %s\n", "write_amplification",
		  (unsigned long long)(d.wamp_x1000 / 1000),
		  (unsigned long long)(d.wamp_x1000 % 1000),
		  "(flush + compaction + blob writes) / user bytes");
	tb_printf(b, "%-26s %10llu.%03llu  # %s\n", "write_amplification_wal",
		  (unsigned long long)(d.wamp_wal_x1000 / 1000),
		  (unsigned long long)(d.wamp_wal_x1000 % 1000),
		  "the same with WAL bytes");
	tb_printf(b, "%-26s %10llu.%03llu  # %s\n", "space_amplification",
		  (unsigned long long)(d.samp_x1000 / 1000),
		  (unsigned long long)(d.samp_x1000 % 1000),
		  "SST entries / estimated live entries");
	tb_printf(b, "%-26s %14llu  # %s\n", "blob_files",
		  (unsigned long long)d.blob_files, "live blob files");
	tb_printf(b, "%-26s %14llu  # %s\n", "blob_file_bytes",
		  (unsigned long long)d.blob_bytes, "bytes of live blob files");
	tb_printf(b, "%-26s %14llu  # %s\n", "blob_garbage_bytes",
		  (unsigned long long)d.blob_garbage_bytes,
		  "bytes in them no reference needs any more");
	tb_printf(b, "%-26s %10llu.%03llu  # %s\n", "blob_garbage_ratio",
		  (unsigned long long)(d.blob_garbage_x1000 / 1000),
		  (unsigned long long)(d.blob_garbage_x1000 % 1000),
		  "garbage / bytes referenced, over live blob files");
	tb_printf(b, "%-26s %14llu  # %s\n", "read_amplification",
		  (unsigned long long)d.read_amp,
		  "sorted runs a point read may probe (L0 files + levels)");
	tb_printf(b, "%-26s %14s  # %s\n", "compaction_style",
		  style_name(db->opts.compaction_style),
		  "strategy this handle compacts with");
	levels_text(b, &d);
}

int lsm_property(lsm_db *db, const char *name, char **out)
{
	struct tbuf b = {0};
	if (!db || !name || !out)
		return -EINVAL;
	if (strcmp(name, "lsm.stats") == 0) {
		stats_text(db, &b);
	} else if (strcmp(name, "lsm.identity") == 0) {
		tb_printf(&b, "%s", db->identity);
	} else if (strcmp(name, "lsm.levels") == 0) {
		struct derived d;
		derive(db, &d, false);
		levels_text(&b, &d);
	} else {
		uint64_t v;
		int rc = lsm_property_u64(db, name, &v);
		if (rc)
			return rc;
		tb_printf(&b, "%llu", (unsigned long long)v);
	}
	if (b.err) {
		free(b.p);
		return b.err;
	}
	*out = b.p;
	return 0;
}

/* "lsm.some-name" matches the statistic some_name. */
static bool name_is(const char *prop, const char *stat)
{
	if (strncmp(prop, "lsm.", 4) != 0)
		return false;
	prop += 4;
	for (; *prop && *stat; prop++, stat++)
		if (*prop != (*stat == '_' ? '-' : *stat))
			return false;
	return !*prop && !*stat;
}

int lsm_property_u64(lsm_db *db, const char *name, uint64_t *out)
{
	struct derived d;
	if (!db || !name || !out)
		return -EINVAL;
#define X(n, doc)                       \
	if (name_is(name, #n)) {        \
		*out = STAT_GET(db, n); \
		return 0;               \
	}
	LSM_STATS(X)
#undef X
	derive(db, &d, strcmp(name, "lsm.space-amplification-x1000") == 0);
	if (strncmp(name, "lsm.num-files-at-level", 22) == 0 ||
	    strncmp(name, "lsm.bytes-at-level", 18) == 0) {
		const char *digits = name + (name[4] == 'n' ? 22 : 18);
		char *end;
		unsigned long l = strtoul(digits, &end, 10);
		if (end == digits || *end || l >= LSM_MAX_LEVELS)
			return lsm_err(-EINVAL, "unknown property %s", name);
		*out = name[4] == 'n' ? d.files[l] : d.bytes[l];
		return 0;
	}
	if (strcmp(name, "lsm.background-work") == 0) {
		pthread_mutex_lock(&db->mu);
		*out = bg_work_locked(db);
		pthread_mutex_unlock(&db->mu);
		return 0;
	}
	if (strcmp(name, "lsm.write-amplification-x1000") == 0)
		*out = d.wamp_x1000;
	else if (strcmp(name, "lsm.write-amplification-wal-x1000") == 0)
		*out = d.wamp_wal_x1000;
	else if (strcmp(name, "lsm.space-amplification-x1000") == 0)
		*out = d.samp_x1000;
	else if (strcmp(name, "lsm.read-amplification") == 0)
		*out = d.read_amp;
	else if (strcmp(name, "lsm.compaction-style") == 0)
		*out = (uint64_t)db->opts.compaction_style;
	else if (strcmp(name, "lsm.sst-bytes") == 0)
		*out = d.sst_bytes;
	else if (strcmp(name, "lsm.blob-files") == 0)
		*out = d.blob_files;
	else if (strcmp(name, "lsm.blob-file-bytes") == 0)
		*out = d.blob_bytes;
	else if (strcmp(name, "lsm.blob-garbage-bytes") == 0)
		*out = d.blob_garbage_bytes;
	else if (strcmp(name, "lsm.memtable-bytes") == 0)
		*out = d.mem_bytes;
	else if (strcmp(name, "lsm.block-cache-hits") == 0)
		*out = cache_hits(db->block_cache);
	else if (strcmp(name, "lsm.block-cache-misses") == 0)
		*out = cache_misses(db->block_cache);
	else
		return lsm_err(-EINVAL, "unknown property %s", name);
	return 0;
}
