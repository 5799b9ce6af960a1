/*
 * main.c - lsm-bench: db_bench-style benchmark of lsm against RocksDB and
 * LevelDB (argument parsing, the driver, the report).
 *
 * What a run is. For each run 1..K and, inside it, each engine in turn
 * (engines interleaved, so slow drift of the machine hits all alike):
 *   DB "seq":    fillseq                                  (fresh DB)
 *   DB "random": fillrandom, overwrite, readrandom, readrandom4, readseq,
 *                readmissing, deleterandom                (fresh DB, in order)
 *   DB "sync":   fillsync                                 (fresh DB)
 *   DB "sync4":  fillsync4                                (fresh DB)
 * Each DB directory is created empty before and removed after its group.
 * If a benchmark of the "random" group is selected but fillrandom is not,
 * fillrandom still runs first, unreported, so reads see the same DB. The
 * report gives, per workload and engine, the median ops/s over the runs,
 * p50/p99 latency from the histogram of every op of every run, the median
 * write amplification and DB size at the end of the workload, and for lsm
 * its ops/s ratio to each peer and to the faster peer.
 *
 * Invariants:
 *  1. Every engine sees the same keys in the same order: the random
 *     streams are seeded from (seed, run, workload, thread), never from the
 *     engine.
 *  2. The "present" bitmap mirrors exactly which keys of the "random" DB
 *     hold a value (fillrandom/overwrite set bits, deleterandom clears
 *     them; only single-threaded workloads write it). Every get and the
 *     scan are checked against it, so a fast but wrong engine fails
 *     instead of winning.
 *  3. Ops/s = total ops of all threads / wall time from the moment all
 *     threads are released to the moment the last one finishes.
 *  4. Write amplification is read right after the last op of a write
 *     workload, counting all user bytes written to that DB since it was
 *     opened (key + value per put, key per delete). Background work still
 *     running is not waited for.
 *
 * Thread safety: the driver is single-threaded; worker threads share only
 * read-only data (config, values, bitmap during reads) and the engine's
 * handle, which is thread-safe. Each worker owns its histogram, counters
 * and error buffer; the driver reads them after pthread_join.
 */
#include "engine.h"
#include "gen.h"
#include "hist.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define BENCH_VERSION "0.1.0"
#define MAX_ENGINES 3
#define NO_VALUE UINT64_MAX

/* ---- workloads ---------------------------------------------------- */

enum bench_id {
	B_FILLSEQ,
	B_FILLRANDOM,
	B_OVERWRITE,
	B_READRANDOM,
	B_READRANDOM4,
	B_READSEQ,
	B_READMISSING,
	B_DELETERANDOM,
	B_FILLSYNC,
	B_FILLSYNC4,
	N_BENCH
};

enum op_kind {
	OP_PUT_SEQ,     /* keys first..first+n-1 in order */
	OP_PUT_RANDOM,  /* uniform random keys in [0, num) */
	OP_GET_RANDOM,  /* uniform random keys in [0, num) */
	OP_GET_MISSING, /* random key number + '.' suffix */
	OP_SCAN,        /* one full iteration */
	OP_DEL_RANDOM,  /* uniform random keys in [0, num) */
};

enum db_group { G_SEQ, G_RANDOM, G_SYNC, G_SYNC4, N_GROUPS };

struct bench_def {
	const char *name;
	enum op_kind op;
	enum db_group group;
	bool sync;     /* every write synced */
	bool multi;    /* --threads threads, else 1 */
	bool is_write; /* report W-amp and size */
};

static const struct bench_def benches[N_BENCH] = {
	[B_FILLSEQ] = {"fillseq", OP_PUT_SEQ, G_SEQ, false, false, true},
	[B_FILLRANDOM] = {"fillrandom", OP_PUT_RANDOM, G_RANDOM, false, false,
			  true},
	[B_OVERWRITE] = {"overwrite", OP_PUT_RANDOM, G_RANDOM, false, false,
			 true},
	[B_READRANDOM] = {"readrandom", OP_GET_RANDOM, G_RANDOM, false, false,
			  false},
	[B_READRANDOM4] = {"readrandom4", OP_GET_RANDOM, G_RANDOM, false, true,
			   false},
	[B_READSEQ] = {"readseq", OP_SCAN, G_RANDOM, false, false, false},
	[B_READMISSING] = {"readmissing", OP_GET_MISSING, G_RANDOM, false,
			   false, false},
	[B_DELETERANDOM] = {"deleterandom", OP_DEL_RANDOM, G_RANDOM, false,
			    false, true},
	[B_FILLSYNC] = {"fillsync", OP_PUT_RANDOM, G_SYNC, true, false, true},
	[B_FILLSYNC4] = {"fillsync4", OP_PUT_RANDOM, G_SYNC4, true, true, true},
};

static const char *const group_names[N_GROUPS] = {"seq", "random", "sync",
						  "sync4"};

/* ---- settings ------------------------------------------------------- */

enum out_format { FMT_TEXT, FMT_MARKDOWN };

struct settings {
	const struct bench_engine *engines[MAX_ENGINES];
	int n_engines;
	bool enabled[N_BENCH];
	uint64_t num;
	uint64_t reads;
	uint64_t sync_ops;
	int threads;
	size_t value_size;
	size_t key_size;
	int runs;
	char db_dir[PATH_MAX];
	struct bench_config cfg;
	uint64_t seed;
	enum out_format format;
	bool large;
	bool show_progress;
};

static const struct bench_engine *const all_engines[] = {
#ifdef HAVE_LSM
	&bench_engine_lsm,
#endif
#ifdef HAVE_ROCKSDB
	&bench_engine_rocksdb,
#endif
#ifdef HAVE_LEVELDB
	&bench_engine_leveldb,
#endif
	NULL,
};

static const char *const known_engine_names[] = {"lsm", "rocksdb", "leveldb"};

/* ---- results -------------------------------------------------------- */

struct run_result {
	bool ran;
	bool failed;
	uint64_t ops;
	double secs;
	double ops_per_sec;
	uint64_t wamp_x1000;     /* NO_VALUE if unknown or not a write */
	uint64_t wamp_wal_x1000; /* the same with WAL bytes, if known */
	uint64_t size_bytes;     /* NO_VALUE if not measured */
	/* --large: W-amp once the engine's background work finished, and
	 * the seconds that took after the last put; NO_VALUE if unknown. */
	uint64_t wamp_settled_x1000;
	double settle_secs;
	/* Growth of the process's peak resident memory during the
	 * workload over its resident memory before the DB was opened;
	 * NO_VALUE if /proc does not tell. */
	uint64_t peak_rss;
	uint64_t found; /* gets that found a value */
};

struct engine_results {
	struct run_result *runs[N_BENCH]; /* [runs] each */
	struct hist hist[N_BENCH];        /* every op of every run */
	char *levels;                     /* --large: last run's levels */
	char error[512];                  /* first failure, if any */
	bool wamp_warned;                 /* said once why W-amp is "-" */
};

/* ---- small helpers ---------------------------------------------------- */

int bench_fail(struct bench_err *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A "VmRSS:" or "VmHWM:" line of /proc/self/status in bytes, or
 * NO_VALUE. */
static uint64_t proc_status_bytes(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t n = strlen(field);
	uint64_t v = NO_VALUE;

	if (!f)
		return NO_VALUE;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long kb;

		if (strncmp(line, field, n) == 0 &&
		    sscanf(line + n, "%llu", &kb) == 1) {
			v = (uint64_t)kb * 1024;
			break;
		}
	}
	fclose(f);
	return v;
}

/* Resets the process's peak resident memory (VmHWM) to its current
 * resident memory (Linux: "5" to /proc/self/clear_refs). */
static bool reset_peak_rss(void)
{
	FILE *f = fopen("/proc/self/clear_refs", "w");
	bool ok;

	if (!f)
		return false;
	ok = fputs("5", f) >= 0;
	return fclose(f) == 0 && ok;
}

static void __attribute__((noreturn, format(printf, 1, 2)))
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("lsm-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see --help)\n", stderr);
	exit(2);
}

static uint64_t parse_count(const char *opt, const char *s, uint64_t min,
			    uint64_t max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	if (*s < '0' || *s > '9')
		usage_error("%s: expected an integer, got '%s'", opt, s);
	v = strtoull(s, &end, 10);
	if (errno || *end)
		usage_error("%s: expected an integer, got '%s'", opt, s);
	if (v < min || v > max)
		usage_error("%s: %llu is out of range [%" PRIu64 ", %" PRIu64
			    "]",
			    opt, v, min, max);
	return v;
}

/* "64M", "8m", "1G", "65536", "64KiB": binary multiples. */
static uint64_t parse_size(const char *opt, const char *s, uint64_t min,
			   uint64_t max)
{
	unsigned long long v;
	uint64_t mult = 1;
	char *end;

	errno = 0;
	if (*s < '0' || *s > '9')
		usage_error("%s: expected a size like 64M, got '%s'", opt, s);
	v = strtoull(s, &end, 10);
	switch (*end) {
	case 'k':
	case 'K':
		mult = 1ull << 10;
		break;
	case 'm':
	case 'M':
		mult = 1ull << 20;
		break;
	case 'g':
	case 'G':
		mult = 1ull << 30;
		break;
	case '\0':
		break;
	default:
		usage_error("%s: expected a size like 64M, got '%s'", opt, s);
	}
	if (*end) {
		end++;
		if (strcmp(end, "") != 0 && strcmp(end, "B") != 0 &&
		    strcmp(end, "iB") != 0)
			usage_error("%s: expected a size like 64M, got '%s'",
				    opt, s);
	}
	if (errno || v > UINT64_MAX / mult)
		usage_error("%s: '%s' is too large", opt, s);
	v *= mult;
	if (v < min || v > max)
		usage_error("%s: %llu bytes is out of range [%" PRIu64
			    ", %" PRIu64 "]",
			    opt, v, min, max);
	return v;
}

static const struct bench_engine *find_engine(const char *name)
{
	for (int i = 0; all_engines[i]; i++)
		if (strcmp(all_engines[i]->name, name) == 0)
			return all_engines[i];
	return NULL;
}

static void parse_engines(struct settings *s, const char *list)
{
	char buf[256], *save = NULL;

	if (strlen(list) >= sizeof(buf))
		usage_error("--engines: list too long");
	strcpy(buf, list);
	s->n_engines = 0;
	for (char *n = strtok_r(buf, ",", &save); n;
	     n = strtok_r(NULL, ",", &save)) {
		const struct bench_engine *e = find_engine(n);
		bool known = false, dup = false;

		for (size_t i = 0; i < 3; i++)
			known |= strcmp(n, known_engine_names[i]) == 0;
		if (!known)
			usage_error("--engines: unknown engine '%s' (known: "
				    "lsm, rocksdb, leveldb)",
				    n);
		if (!e)
			usage_error("--engines: engine '%s' was not built into "
				    "this lsm-bench (not found at build time)",
				    n);
		for (int i = 0; i < s->n_engines; i++)
			dup |= s->engines[i] == e;
		if (!dup)
			s->engines[s->n_engines++] = e;
	}
	if (s->n_engines == 0)
		usage_error("--engines: empty list");
}

static void parse_benchmarks(struct settings *s, const char *list)
{
	char buf[512], *save = NULL;
	int n_sel = 0;

	if (strlen(list) >= sizeof(buf))
		usage_error("--benchmarks: list too long");
	strcpy(buf, list);
	memset(s->enabled, 0, sizeof(s->enabled));
	for (char *n = strtok_r(buf, ",", &save); n;
	     n = strtok_r(NULL, ",", &save)) {
		int b;

		for (b = 0; b < N_BENCH; b++)
			if (strcmp(benches[b].name, n) == 0)
				break;
		if (b == N_BENCH)
			usage_error("--benchmarks: unknown benchmark '%s'", n);
		s->enabled[b] = true;
		n_sel++;
	}
	if (n_sel == 0)
		usage_error("--benchmarks: empty list");
}

static void print_help(void)
{
	printf("Usage: lsm-bench [OPTION]...\n"
	       "Benchmark the lsm engine against RocksDB and LevelDB with "
	       "db_bench-style workloads.\n"
	       "\n"
	       "Options (defaults in brackets):\n"
	       "  --engines=LIST         engines to run, of "
	       "lsm,rocksdb,leveldb "
	       "[every one built in]\n"
	       "  --benchmarks=LIST      workloads to run (below) [all ten]\n"
	       "  --num=N                key space and op count N [1000000; "
	       "20000000 with --large]\n"
	       "  --reads=R              gets per read workload [N]\n"
	       "  --threads=T            threads of readrandom4 and fillsync4 "
	       "[4]\n"
	       "  --value-size=B         value bytes, ~50%% compressible "
	       "[100]\n"
	       "  --key-size=B           key bytes: the key number as "
	       "zero-padded decimal [16]\n"
	       "  --runs=K               repeat everything K times, report "
	       "medians [5; 1 with --large]\n"
	       "  --db-dir=DIR           where the DBs live "
	       "[/tmp/lsm-bench.PID, removed at exit]\n"
	       "  --compression=C        lz4, zstd or none [lz4] (LevelDB: "
	       "snappy instead of lz4/zstd)\n"
	       "  --compaction=STYLE     lsm only: leveled, tiered or time "
	       "[leveled]\n"
	       "  --blob-threshold=S     lsm only: values of S bytes or more "
	       "go to blob files,\n"
	       "                         0 = keep every value in the tree "
	       "[16K, lsm's default]\n"
	       "  --l0-size-percent=N    lsm only: level0_size_percent, L0 "
	       "waits for N%% of the\n"
	       "                         base level before compacting into it, "
	       "0 = by file count\n"
	       "                         alone [lsm's default: 0]\n"
	       "  --min-merge-width=N    lsm only, tiered: fewest runs merged "
	       "at once, 2..19 [8]\n"
	       "  --size-amp-percent=N   lsm only, tiered: space bound, "
	       "1..100000 [200]\n"
	       "  --write-buffer-size=S  memtable size [64M]\n"
	       "  --cache-size=S         block cache [8M]\n"
	       "  --bloom-bits=B         bloom filter bits per key, 0 = none "
	       "[10]\n"
	       "  --sync-ops=S           total puts of fillsync and of "
	       "fillsync4 [20000]\n"
	       "  --seed=S               random seed [301]\n"
	       "  --format=F             text or markdown [text]\n"
	       "  --large                fillrandom only, then W-amp, space "
	       "and levels,\n"
	       "                         and W-amp again once each engine's "
	       "compactions are done\n"
	       "  --help                 this text\n"
	       "\n"
	       "Workloads, run in this order whatever the order of "
	       "--benchmarks:\n"
	       "  fillseq       N puts of keys 0..N-1 in ascending order into "
	       "a fresh DB (1 thread).\n"
	       "  fillrandom    N puts of keys drawn uniformly from [0, N) "
	       "into a fresh DB (1 thread);\n"
	       "                ~63%% of the key space ends up present. The "
	       "next five use this DB.\n"
	       "  overwrite     N more puts of uniform random keys in [0, N) "
	       "(1 thread).\n"
	       "  readrandom    R gets of uniform random keys in [0, N) (1 "
	       "thread); ~86%% exist after\n"
	       "                fillrandom+overwrite; every answer is checked "
	       "against what was written.\n"
	       "  readrandom4   the same with T threads doing R gets in "
	       "total.\n"
	       "  readseq       one iterator over the whole DB, first to "
	       "last; an op is one entry.\n"
	       "  readmissing   R gets of keys that never exist: a random key "
	       "number plus a '.'\n"
	       "                suffix, so each sorts right after a real "
	       "key.\n"
	       "  deleterandom  N deletes of uniform random keys in [0, N), "
	       "present or not (1 thread).\n"
	       "  fillsync      S puts of uniform random keys into a fresh "
	       "DB, each synced (1 thread).\n"
	       "  fillsync4     the same with T threads doing S puts in total, "
	       "into another fresh DB.\n"
	       "If a read/overwrite/delete workload is selected without "
	       "fillrandom, fillrandom still\n"
	       "runs first (unreported). Each run interleaves the engines "
	       "(run 1: every engine, run 2: ...).\n"
	       "Reported per workload and engine: median ops/s over runs "
	       "(ops/s = all threads' ops /\n"
	       "wall time), p50/p99 latency of single ops over all runs, "
	       "write amplification (table bytes\n"
	       "written by flush + compaction / user key+value bytes "
	       "written to that DB so far) and the\n"
	       "DB directory's disk usage at the end of write workloads, and "
	       "for lsm the ratio of its\n"
	       "ops/s to each peer's. Exit status: 0 ok, 1 an engine failed, "
	       "2 bad arguments.\n");
}

static void parse_args(struct settings *s, int argc, char **argv)
{
	bool num_set = false, reads_set = false, runs_set = false,
	     bench_set = false;

	memset(s, 0, sizeof(*s));
	for (int i = 0; all_engines[i] && i < MAX_ENGINES; i++)
		s->engines[s->n_engines++] = all_engines[i];
	for (int b = 0; b < N_BENCH; b++)
		s->enabled[b] = true;
	s->num = 1000000;
	s->sync_ops = 20000;
	s->threads = 4;
	s->value_size = 100;
	s->key_size = 16;
	s->runs = 5;
	s->seed = 301;
	s->format = FMT_TEXT;
	s->cfg.write_buffer_size = 64u << 20;
	s->cfg.lsm_blob_threshold = -1;
	s->cfg.lsm_l0_size_percent = -1;
	s->cfg.cache_size = 8u << 20;
	s->cfg.bloom_bits = 10;
	s->cfg.compression = BENCH_COMPRESS_LZ4;
	s->cfg.target_file_size = 64u << 20;
	s->cfg.max_bytes_for_level_base = 256u << 20;
	s->cfg.background_jobs = 2;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq = strchr(a, '=');
		char name[64];
		const char *v;
		size_t n;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			print_help();
			exit(0);
		}
		if (strcmp(a, "--large") == 0) {
			s->large = true;
			continue;
		}
		if (strncmp(a, "--", 2) != 0 || !eq)
			usage_error("unknown argument '%s' (options are "
				    "--name=value)",
				    a);
		n = (size_t)(eq - a);
		if (n >= sizeof(name))
			usage_error("unknown option '%s'", a);
		memcpy(name, a, n);
		name[n] = '\0';
		v = eq + 1;
		if (strcmp(name, "--engines") == 0) {
			parse_engines(s, v);
		} else if (strcmp(name, "--benchmarks") == 0) {
			parse_benchmarks(s, v);
			bench_set = true;
		} else if (strcmp(name, "--num") == 0) {
			s->num = parse_count(name, v, 1, 1ull << 40);
			num_set = true;
		} else if (strcmp(name, "--reads") == 0) {
			s->reads = parse_count(name, v, 1, 1ull << 40);
			reads_set = true;
		} else if (strcmp(name, "--threads") == 0) {
			s->threads = (int)parse_count(name, v, 1, 256);
		} else if (strcmp(name, "--value-size") == 0) {
			s->value_size = parse_count(name, v, 1, 1u << 20);
		} else if (strcmp(name, "--key-size") == 0) {
			s->key_size = parse_count(name, v, 1, 1024);
		} else if (strcmp(name, "--runs") == 0) {
			s->runs = (int)parse_count(name, v, 1, 1000);
			runs_set = true;
		} else if (strcmp(name, "--db-dir") == 0) {
			if (!*v || strlen(v) >= sizeof(s->db_dir) - 64)
				usage_error("--db-dir: bad directory '%s'", v);
			strcpy(s->db_dir, v);
		} else if (strcmp(name, "--compression") == 0) {
			if (strcmp(v, "lz4") == 0)
				s->cfg.compression = BENCH_COMPRESS_LZ4;
			else if (strcmp(v, "zstd") == 0)
				s->cfg.compression = BENCH_COMPRESS_ZSTD;
			else if (strcmp(v, "none") == 0)
				s->cfg.compression = BENCH_COMPRESS_NONE;
			else
				usage_error("--compression: expected lz4, "
					    "zstd or none, got '%s'",
					    v);
		} else if (strcmp(name, "--compaction") == 0) {
			if (strcmp(v, "leveled") == 0)
				s->cfg.lsm_compaction = 0;
			else if (strcmp(v, "tiered") == 0)
				s->cfg.lsm_compaction = 1;
			else if (strcmp(v, "time") == 0)
				s->cfg.lsm_compaction = 2;
			else
				usage_error("--compaction: expected leveled, "
					    "tiered or time, got '%s'",
					    v);
		} else if (strcmp(name, "--blob-threshold") == 0) {
			uint64_t t = parse_size(name, v, 0, 256u << 20);
			if (t != 0 && t < 64)
				usage_error("--blob-threshold: 0 (off) or at "
					    "least 64, got '%s'",
					    v);
			s->cfg.lsm_blob_threshold = (int64_t)t;
		} else if (strcmp(name, "--l0-size-percent") == 0) {
			s->cfg.lsm_l0_size_percent =
				(int)parse_count(name, v, 0, 1000);
		} else if (strcmp(name, "--min-merge-width") == 0) {
			s->cfg.lsm_min_merge_width =
				(uint32_t)parse_count(name, v, 2, 19);
		} else if (strcmp(name, "--size-amp-percent") == 0) {
			s->cfg.lsm_size_amp_percent =
				(uint32_t)parse_count(name, v, 1, 100000);
		} else if (strcmp(name, "--write-buffer-size") == 0) {
			s->cfg.write_buffer_size =
				parse_size(name, v, 64u << 10, 1ull << 36);
		} else if (strcmp(name, "--cache-size") == 0) {
			s->cfg.cache_size = parse_size(name, v, 0, 1ull << 40);
		} else if (strcmp(name, "--bloom-bits") == 0) {
			s->cfg.bloom_bits = (int)parse_count(name, v, 0, 64);
		} else if (strcmp(name, "--sync-ops") == 0) {
			s->sync_ops = parse_count(name, v, 1, 1ull << 32);
		} else if (strcmp(name, "--seed") == 0) {
			s->seed = parse_count(name, v, 0, UINT64_MAX);
		} else if (strcmp(name, "--format") == 0) {
			if (strcmp(v, "text") == 0)
				s->format = FMT_TEXT;
			else if (strcmp(v, "markdown") == 0)
				s->format = FMT_MARKDOWN;
			else
				usage_error("--format: expected text or "
					    "markdown, got '%s'",
					    v);
		} else {
			usage_error("unknown option '%s'", name);
		}
	}

	if (s->n_engines == 0)
		usage_error("no engine was built into this lsm-bench");
	if (s->large) {
		if (bench_set &&
		    (!s->enabled[B_FILLRANDOM] || s->enabled[B_FILLSEQ] ||
		     s->enabled[B_OVERWRITE] || s->enabled[B_READRANDOM] ||
		     s->enabled[B_READRANDOM4] || s->enabled[B_READSEQ] ||
		     s->enabled[B_READMISSING] || s->enabled[B_DELETERANDOM] ||
		     s->enabled[B_FILLSYNC] || s->enabled[B_FILLSYNC4]))
			usage_error("--large runs fillrandom only");
		memset(s->enabled, 0, sizeof(s->enabled));
		s->enabled[B_FILLRANDOM] = true;
		if (!num_set)
			s->num = 20000000;
		if (!runs_set)
			s->runs = 1;
	}
	if (!reads_set)
		s->reads = s->num;
	if (s->num - 1 > gen_key_max(s->key_size))
		usage_error("--key-size=%zu cannot hold key numbers up to "
			    "%" PRIu64,
			    s->key_size, s->num - 1);
	if (!s->db_dir[0]) {
		snprintf(s->db_dir, sizeof(s->db_dir), "/tmp/lsm-bench.%ld",
			 (long)getpid());
	}
	s->show_progress = isatty(STDERR_FILENO);
}

/* ---- directories -------------------------------------------------------
 */

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0 && errno != ENOENT)
		fprintf(stderr, "lsm-bench: cannot remove %s: %s\n", path,
			strerror(errno));
	return 0;
}

static void rm_rf(const char *path)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return;
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Disk usage of a directory tree in bytes, like du -s --block-size=1;
 * NO_VALUE if it cannot be read. */
static uint64_t dir_usage(const char *path)
{
	struct dirent *de;
	struct stat st;
	uint64_t total;
	DIR *d;

	if (lstat(path, &st) != 0)
		return NO_VALUE;
	total = (uint64_t)st.st_blocks * 512;
	if (!S_ISDIR(st.st_mode))
		return total;
	d = opendir(path);
	if (!d)
		return NO_VALUE;
	while ((de = readdir(d)) != NULL) {
		char child[PATH_MAX];
		uint64_t sub;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if ((size_t)snprintf(child, sizeof(child), "%s/%s", path,
				     de->d_name) >= sizeof(child))
			continue;
		sub = dir_usage(child);
		/* A file may vanish under a running compaction. */
		if (sub != NO_VALUE)
			total += sub;
	}
	closedir(d);
	return total;
}

/* ---- workers ----------------------------------------------------------
 */

struct shared {
	const struct settings *s;
	const struct bench_engine *eng;
	struct bench_db *db;
	const struct gen_values *values;
	uint8_t *present; /* bitmap over [0, num), NULL if not tracked */
	pthread_barrier_t start;
	const char *label; /* for progress */
};

struct worker {
	struct shared *sh;
	enum bench_id bench;
	int tid;
	uint64_t n_ops;
	uint64_t first; /* OP_PUT_SEQ: first key number */
	uint64_t seed;
	pthread_t thread;
	struct hist hist;
	uint64_t done;
	uint64_t found;
	uint64_t wrong; /* answers that disagree with what was written */
	uint64_t user_bytes;
	int failed;
	struct bench_err err;
	/* OP_SCAN state */
	uint64_t last_ns;
	char prev_key[1100];
	size_t prev_len;
};

static bool bit_get(const uint8_t *b, uint64_t i)
{
	return (b[i >> 3] >> (i & 7)) & 1;
}

static void bit_set(uint8_t *b, uint64_t i, bool v)
{
	if (v)
		b[i >> 3] |= (uint8_t)(1u << (i & 7));
	else
		b[i >> 3] &= (uint8_t) ~(1u << (i & 7));
}

static void progress(struct worker *w)
{
	struct shared *sh = w->sh;

	if (w->tid != 0 || !sh->s->show_progress)
		return;
	if (w->n_ops)
		fprintf(stderr, "\r\033[K%s %s: %3d%%", sh->label,
			benches[w->bench].name,
			(int)(100.0 * (double)w->done / (double)w->n_ops));
	else
		fprintf(stderr, "\r\033[K%s %s: %" PRIu64 " entries", sh->label,
			benches[w->bench].name, w->done);
}

static void scan_entry(void *ctx, const void *key, size_t key_len,
		       const void *val, size_t val_len)
{
	struct worker *w = ctx;
	const struct settings *s = w->sh->s;
	uint64_t t = now_ns();
	size_t cmp_len;

	(void)val;
	hist_add(&w->hist, t - w->last_ns);
	cmp_len = key_len < w->prev_len ? key_len : w->prev_len;
	if (key_len != s->key_size || val_len != s->value_size ||
	    (w->done > 0 && (memcmp(w->prev_key, key, cmp_len) > 0 ||
			     (memcmp(w->prev_key, key, cmp_len) == 0 &&
			      w->prev_len >= key_len))))
		w->wrong++;
	if (key_len <= sizeof(w->prev_key)) {
		memcpy(w->prev_key, key, key_len);
		w->prev_len = key_len;
	}
	w->done++;
	if ((w->done & 0xffff) == 0)
		progress(w);
	w->last_ns = now_ns();
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	const struct settings *s = sh->s;
	const struct bench_def *def = &benches[w->bench];
	const struct bench_engine *eng = sh->eng;
	struct gen_rng rng;
	char key[1100];
	uint64_t vslot;

	gen_rng_seed(&rng, w->seed);
	vslot = gen_rng_next(&rng);
	pthread_barrier_wait(&sh->start);

	if (def->op == OP_SCAN) {
		w->last_ns = now_ns();
		if (eng->scan(sh->db, scan_entry, w, &w->err))
			w->failed = 1;
		return NULL;
	}
	for (uint64_t i = 0; i < w->n_ops; i++) {
		uint64_t k, t0, t1;
		size_t klen = s->key_size, vlen = 0;
		bool found = false;
		int rc = 0;

		k = def->op == OP_PUT_SEQ ? w->first + i
					  : gen_rng_below(&rng, s->num);
		if (def->op == OP_GET_MISSING) {
			gen_missing_key(key, s->key_size, k);
			klen++;
		} else {
			gen_key(key, s->key_size, k);
		}
		t0 = now_ns();
		switch (def->op) {
		case OP_PUT_SEQ:
		case OP_PUT_RANDOM:
			rc = eng->put(sh->db, key, klen,
				      gen_value(sh->values, vslot++),
				      s->value_size, def->sync, &w->err);
			break;
		case OP_GET_RANDOM:
		case OP_GET_MISSING:
			rc = eng->get(sh->db, key, klen, &found, &vlen,
				      &w->err);
			break;
		case OP_DEL_RANDOM:
			rc = eng->del(sh->db, key, klen, def->sync, &w->err);
			break;
		case OP_SCAN:
			break;
		}
		t1 = now_ns();
		if (rc) {
			w->failed = 1;
			break;
		}
		hist_add(&w->hist, t1 - t0);
		switch (def->op) {
		case OP_PUT_SEQ:
		case OP_PUT_RANDOM:
			w->user_bytes += klen + s->value_size;
			if (sh->present)
				bit_set(sh->present, k, true);
			break;
		case OP_DEL_RANDOM:
			w->user_bytes += klen;
			if (sh->present)
				bit_set(sh->present, k, false);
			break;
		case OP_GET_RANDOM:
			if (sh->present && found != bit_get(sh->present, k))
				w->wrong++;
			/* fall through */
		case OP_GET_MISSING:
			if (found) {
				w->found++;
				if (vlen != s->value_size ||
				    def->op == OP_GET_MISSING)
					w->wrong++;
			}
			break;
		case OP_SCAN:
			break;
		}
		w->done++;
		if ((w->done & 0xffff) == 0)
			progress(w);
	}
	return NULL;
}

/*
 * Runs one workload on an open DB with its threads, fills *r and merges
 * the latencies into *h. *user_bytes accumulates what was written. Returns
 * 0, or -1 with e set.
 */
static int run_workload(struct shared *sh, enum bench_id b, int run,
			struct run_result *r, struct hist *h,
			uint64_t *user_bytes, struct bench_err *e)
{
	const struct settings *s = sh->s;
	const struct bench_def *def = &benches[b];
	int n_threads = def->multi ? s->threads : 1;
	uint64_t total, t0, t1, wrong = 0, first_key = 0;
	struct worker *w;
	int rc = 0, n_started = 0;

	switch (def->op) {
	case OP_PUT_SEQ:
	case OP_PUT_RANDOM:
	case OP_DEL_RANDOM:
		total = def->sync ? s->sync_ops : s->num;
		break;
	case OP_GET_RANDOM:
	case OP_GET_MISSING:
		total = s->reads;
		break;
	default:
		total = 0; /* a scan goes as far as the DB */
		break;
	}
	w = calloc((size_t)n_threads, sizeof(*w));
	if (!w)
		return bench_fail(e, "out of memory");
	if (pthread_barrier_init(&sh->start, NULL, (unsigned)n_threads + 1)) {
		free(w);
		return bench_fail(e, "pthread_barrier_init failed");
	}
	for (int t = 0; t < n_threads; t++) {
		uint64_t share = total / (uint64_t)n_threads +
				 ((uint64_t)t < total % (uint64_t)n_threads);

		w[t].sh = sh;
		w[t].bench = b;
		w[t].tid = t;
		w[t].n_ops = share;
		w[t].first = first_key;
		first_key += share;
		/* Invariant 1: engine-independent streams. */
		w[t].seed = s->seed * 0x100000001b3ull +
			    (uint64_t)run * 1000003 + (uint64_t)b * 1009 +
			    (uint64_t)t;
		hist_init(&w[t].hist);
	}
	for (int t = 0; t < n_threads; t++) {
		if (pthread_create(&w[t].thread, NULL, worker_main, &w[t]))
			break;
		n_started++;
	}
	if (n_started < n_threads) {
		/* Cannot release the barrier with fewer parties: this is
		 * fatal for the process, which is the honest outcome. */
		fprintf(stderr, "lsm-bench: cannot create threads\n");
		exit(1);
	}
	pthread_barrier_wait(&sh->start);
	t0 = now_ns();
	for (int t = 0; t < n_threads; t++)
		pthread_join(w[t].thread, NULL);
	t1 = now_ns();
	pthread_barrier_destroy(&sh->start);
	if (s->show_progress)
		fputs("\r\033[K", stderr);

	memset(r, 0, sizeof(*r));
	r->ran = true;
	r->wamp_x1000 = NO_VALUE;
	r->wamp_wal_x1000 = NO_VALUE;
	r->wamp_settled_x1000 = NO_VALUE;
	r->peak_rss = NO_VALUE;
	r->size_bytes = NO_VALUE;
	for (int t = 0; t < n_threads; t++) {
		hist_merge(h, &w[t].hist);
		r->ops += w[t].done;
		r->found += w[t].found;
		wrong += w[t].wrong;
		*user_bytes += w[t].user_bytes;
		if (w[t].failed && !rc) {
			*e = w[t].err;
			rc = -1;
		}
	}
	r->secs = (double)(t1 - t0) / 1e9;
	r->ops_per_sec = r->secs > 0 ? (double)r->ops / r->secs : 0;
	if (!rc && def->op == OP_SCAN && sh->present) {
		uint64_t expect = 0;

		for (uint64_t k = 0; k < s->num; k++)
			expect += bit_get(sh->present, k);
		if (expect != r->ops)
			wrong += 1;
	}
	if (!rc && wrong)
		rc = bench_fail(e,
				"wrong results: %" PRIu64
				" answers disagree with what was written",
				wrong);
	free(w);
	r->failed = rc != 0;
	return rc;
}

/* ---- the driver ------------------------------------------------------
 */

static bool group_wanted(const struct settings *s, enum db_group g)
{
	for (int b = 0; b < N_BENCH; b++)
		if (s->enabled[b] && benches[b].group == g)
			return true;
	return false;
}

/* Runs every selected workload of one DB group on a fresh DB. */
static int run_group(const struct settings *s, const struct bench_engine *eng,
		     struct engine_results *er, enum db_group g, int run,
		     const struct gen_values *values)
{
	struct shared sh;
	struct bench_err e = {{0}}, close_err = {{0}};
	struct bench_db *db = NULL;
	char dir[PATH_MAX + 64], label[128];
	uint64_t user_bytes = 0, rss0;
	uint8_t *present = NULL;
	int rc = 0;

	snprintf(dir, sizeof(dir), "%s/%s.%s", s->db_dir, eng->name,
		 group_names[g]);
	snprintf(label, sizeof(label), "run %d/%d %s", run + 1, s->runs,
		 eng->name);
	rm_rf(dir);
	if (g == G_RANDOM) {
		present = calloc((size_t)(s->num / 8 + 1), 1);
		if (!present) {
			rc = bench_fail(&e, "out of memory for the key bitmap");
			goto out_report;
		}
	}
	/* Memory: the peak is taken from here, before open, with the key
	 * bitmap already touched, so it is what the engine added. */
	if (present)
		memset(present, 0, (size_t)(s->num / 8 + 1));
	rss0 = reset_peak_rss() ? proc_status_bytes("VmRSS:") : NO_VALUE;
	if (eng->open(&s->cfg, dir, &db, &e)) {
		rc = -1;
		goto out_report;
	}
	memset(&sh, 0, sizeof(sh));
	sh.s = s;
	sh.eng = eng;
	sh.db = db;
	sh.values = values;
	sh.present = present;
	sh.label = label;

	for (int b = 0; b < N_BENCH && !rc; b++) {
		struct run_result scratch, *r;
		struct hist scratch_hist, *h;
		bool wanted = s->enabled[b];

		if (benches[b].group != g)
			continue;
		/* fillrandom builds the DB the rest of the group reads. */
		if (!wanted && b != B_FILLRANDOM)
			continue;
		r = wanted ? &er->runs[b][run] : &scratch;
		h = wanted ? &er->hist[b] : &scratch_hist;
		hist_init(&scratch_hist);
		rc = run_workload(&sh, (enum bench_id)b, run, r, h, &user_bytes,
				  &e);
		if (!rc && rss0 != NO_VALUE) {
			uint64_t hwm = proc_status_bytes("VmHWM:");
			if (hwm != NO_VALUE)
				r->peak_rss = hwm > rss0 ? hwm - rss0 : 0;
		}
		if (rc) {
			char msg[600];

			snprintf(msg, sizeof(msg), "%s: %s", benches[b].name,
				 e.msg);
			memcpy(e.msg, msg, sizeof(e.msg) - 1);
			e.msg[sizeof(e.msg) - 1] = '\0';
			break;
		}
		if (benches[b].is_write) {
			struct bench_err we;
			uint64_t v;

			if (eng->wamp_wal_x1000 &&
			    eng->wamp_wal_x1000(db, &v, &we) == 0)
				r->wamp_wal_x1000 = v;
			if (eng->wamp_x1000(db, user_bytes, &v, &we) == 0) {
				r->wamp_x1000 = v;
			} else if (!er->wamp_warned) {
				fprintf(stderr,
					"lsm-bench: %s: no write amplification "
					"(%s)\n",
					eng->name, we.msg);
				er->wamp_warned = true;
			}
			r->size_bytes = dir_usage(dir);
		}
		if (s->large && b == B_FILLRANDOM && eng->settle &&
		    r->wamp_x1000 != NO_VALUE) {
			/* The figure at the last put leaves out the work an
			 * engine still owes (files waiting in L0 or over a
			 * level's target); compare the engines settled too. */
			struct bench_err se;
			uint64_t t0 = now_ns(), v;

			if (eng->settle(db, &se) == 0 &&
			    eng->wamp_x1000(db, user_bytes, &v, &se) == 0) {
				r->wamp_settled_x1000 = v;
				r->settle_secs = (double)(now_ns() - t0) / 1e9;
			} else {
				fprintf(stderr,
					"lsm-bench: %s: no settled write "
					"amplification (%s)\n",
					eng->name, se.msg);
			}
		}
		if (s->large && b == B_FILLRANDOM && eng->levels) {
			struct bench_err le;
			char *text = NULL;

			free(er->levels);
			er->levels = NULL;
			if (eng->levels(db, &text, &le) == 0)
				er->levels = text;
			else
				er->levels = strdup(le.msg);
		}
	}
	if (eng->close(db, &close_err) && !rc) {
		e = close_err;
		rc = -1;
	}
out_report:
	if (rc) {
		fprintf(stderr, "lsm-bench: %s, run %d: %s\n", eng->name,
			run + 1, e.msg);
		if (!er->error[0])
			snprintf(er->error, sizeof(er->error), "%s", e.msg);
	}
	rm_rf(dir);
	free(present);
	return rc;
}

/* ---- the report ---------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median over the runs that succeeded; NAN-free: returns -1 if none. */
static double median_of(const struct run_result *rr, int n, int field)
{
	double v[1000];
	int k = 0;

	for (int i = 0; i < n; i++) {
		if (!rr[i].ran || rr[i].failed)
			continue;
		if (field == 0)
			v[k++] = rr[i].ops_per_sec;
		else if (field == 1 && rr[i].wamp_x1000 != NO_VALUE)
			v[k++] = (double)rr[i].wamp_x1000 / 1000.0;
		else if (field == 2 && rr[i].size_bytes != NO_VALUE)
			v[k++] = (double)rr[i].size_bytes;
		else if (field == 3 && rr[i].wamp_wal_x1000 != NO_VALUE)
			v[k++] = (double)rr[i].wamp_wal_x1000 / 1000.0;
		else if (field == 4 && rr[i].wamp_settled_x1000 != NO_VALUE)
			v[k++] = (double)rr[i].wamp_settled_x1000 / 1000.0;
		else if (field == 5 && rr[i].wamp_settled_x1000 != NO_VALUE)
			v[k++] = rr[i].settle_secs;
		else if (field == 6 && rr[i].peak_rss != NO_VALUE)
			v[k++] = (double)rr[i].peak_rss;
	}
	if (k == 0)
		return -1;
	qsort(v, (size_t)k, sizeof(v[0]), cmp_double);
	return k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

static void read_cpu_model(char *buf, size_t cap)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];

	snprintf(buf, cap, "unknown CPU");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) != 0 || !colon)
			continue;
		colon++;
		while (*colon == ' ' || *colon == '\t')
			colon++;
		colon[strcspn(colon, "\n")] = '\0';
		snprintf(buf, cap, "%s", colon);
		break;
	}
	fclose(f);
}

static const char *fs_name(const char *path)
{
	struct statfs st;

	if (statfs(path, &st) != 0)
		return "unknown";
	switch ((unsigned long)st.f_type) {
	case 0xef53:
		return "ext4";
	case 0x58465342:
		return "xfs";
	case 0x9123683e:
		return "btrfs";
	case 0x01021994:
		return "tmpfs (fsync is free: fillsync numbers mean little)";
	case 0x794c7630:
		return "overlayfs";
	case 0x2fc12fc1:
		return "zfs";
	default:
		return "other";
	}
}

static void describe_workload(const struct settings *s, enum bench_id b,
			      char *buf, size_t cap)
{
	unsigned long long n = s->num, r = s->reads, sy = s->sync_ops;
	int t = s->threads;

	switch (b) {
	case B_FILLSEQ:
		snprintf(buf, cap,
			 "%llu puts, keys 0..%llu ascending, fresh DB", n,
			 n - 1);
		break;
	case B_FILLRANDOM:
		snprintf(buf, cap,
			 "%llu puts, uniform random keys in [0, %llu), fresh "
			 "DB",
			 n, n);
		break;
	case B_OVERWRITE:
		snprintf(buf, cap,
			 "%llu puts, uniform random keys, over the "
			 "fillrandom DB",
			 n);
		break;
	case B_READRANDOM:
		snprintf(buf, cap,
			 "%llu gets, uniform random keys in [0, %llu), 1 "
			 "thread",
			 r, n);
		break;
	case B_READRANDOM4:
		snprintf(buf, cap,
			 "%llu gets in total by %d threads, uniform random "
			 "keys",
			 r, t);
		break;
	case B_READSEQ:
		snprintf(buf, cap, "one full forward scan, op = one entry");
		break;
	case B_READMISSING:
		snprintf(buf, cap,
			 "%llu gets of absent keys (key number + '.')", r);
		break;
	case B_DELETERANDOM:
		snprintf(buf, cap, "%llu deletes, uniform random keys", n);
		break;
	case B_FILLSYNC:
		snprintf(buf, cap,
			 "%llu synced puts, uniform random keys, fresh DB, 1 "
			 "thread",
			 sy);
		break;
	case B_FILLSYNC4:
		snprintf(buf, cap,
			 "%llu synced puts in total by %d threads, uniform "
			 "random keys, fresh DB",
			 sy, t);
		break;
	case N_BENCH:
		buf[0] = '\0';
		break;
	}
}

static void print_header(const struct settings *s)
{
	bool md = s->format == FMT_MARKDOWN;
	const char *li = md ? "- " : "  ";
	struct utsname u;
	struct sysinfo si;
	char cpu[256], when[64];
	time_t now = time(NULL);
	static const char *const comp[] = {"none", "lz4", "zstd"};

	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
	read_cpu_model(cpu, sizeof(cpu));
	if (uname(&u) != 0)
		memset(&u, 0, sizeof(u));
	if (sysinfo(&si) != 0)
		memset(&si, 0, sizeof(si));

	printf("%slsm-bench %s, %s\n\n", md ? "## " : "", BENCH_VERSION, when);
	printf("%sMachine\n%s", md ? "### " : "", md ? "\n" : "");
	printf("%s%ld CPUs online (%s), %.1f GiB memory, %s %s %s\n", li,
	       sysconf(_SC_NPROCESSORS_ONLN), cpu,
	       (double)si.totalram * si.mem_unit / (1024.0 * 1024 * 1024),
	       u.sysname, u.release, u.machine);
	printf("%sDB directory %s on %s\n\n", li, s->db_dir,
	       fs_name(s->db_dir));

	printf("%sSettings\n%s", md ? "### " : "", md ? "\n" : "");
	printf("%s%" PRIu64 " keys of %zu bytes (zero-padded decimal), values "
	       "of %zu bytes (~50%% compressible); %" PRIu64
	       " reads per read workload; %" PRIu64
	       " synced puts per fillsync workload; %d threads for the '4' "
	       "workloads\n",
	       li, s->num, s->key_size, s->value_size, s->reads, s->sync_ops,
	       s->threads);
	printf("%swrite buffer %zu MiB, block cache %zu MiB, bloom %d "
	       "bits/key, %s, target file %" PRIu64 " MiB, L1 target %" PRIu64
	       " MiB, WAL on, no sync except fillsync*\n",
	       li, s->cfg.write_buffer_size >> 20, s->cfg.cache_size >> 20,
	       s->cfg.bloom_bits, comp[s->cfg.compression],
	       s->cfg.target_file_size >> 20,
	       s->cfg.max_bytes_for_level_base >> 20);
	printf("%s%d run%s, engines interleaved per run; ops/s = median over "
	       "runs; p50/p99 over every op of every run; seed %" PRIu64 "\n",
	       li, s->runs, s->runs == 1 ? "" : "s", s->seed);
	printf("%sW-amp = table bytes written (flush + compaction; lsm: and "
	       "blob files) / user bytes written to that DB so far, read at "
	       "the end of the "
	       "workload; size = du of the DB directory then\n",
	       li);
	for (int i = 0; i < s->n_engines; i++) {
		char d[512];

		s->engines[i]->describe(&s->cfg, d, sizeof(d));
		printf("%s%s\n", li, d);
	}
	printf("\n%sWorkloads (in run order; one DB per group)\n%s",
	       md ? "### " : "", md ? "\n" : "");
	for (int b = 0; b < N_BENCH; b++) {
		char d[256];

		if (!s->enabled[b])
			continue;
		describe_workload(s, (enum bench_id)b, d, sizeof(d));
		printf("%s%-13s %s\n", li, benches[b].name, d);
	}
	if (group_wanted(s, G_RANDOM) && !s->enabled[B_FILLRANDOM])
		printf("%s(fillrandom runs first, unreported, to build the "
		       "DB the selected workloads use)\n",
		       li);
	printf("\n");
}

static void fmt_num(char *buf, size_t cap, double v, const char *fmt)
{
	if (v < 0)
		snprintf(buf, cap, "-");
	else
		snprintf(buf, cap, fmt, v);
}

/* Peak resident memory each engine added (median over runs of each
 * workload's peak; the largest such median), and lsm's budget: its
 * memtables (one active, max_immutable_memtables = 2 full ones waiting)
 * and the block cache, plus 10%. Every engine's DB lives in the same
 * process, and the allocator keeps memory an engine freed, so figures
 * are exact for an engine run alone (--engines=NAME). */
static void print_memory(const struct settings *s,
			 const struct engine_results *res)
{
	bool md = s->format == FMT_MARKDOWN;
	const double mib = 1048576.0;

	printf("%sMemory: peak resident growth over the process before open"
	       "\n\n",
	       md ? "### " : "");
	for (int i = 0; i < s->n_engines; i++) {
		double peak = -1;
		int at = -1;

		for (int b = 0; b < N_BENCH; b++) {
			double m;

			if (!s->enabled[b])
				continue;
			m = median_of(res[i].runs[b], s->runs, 6);
			if (m > peak) {
				peak = m;
				at = b;
			}
		}
		if (peak < 0) {
			printf("%s%s: -\n", md ? "- " : "  ",
			       s->engines[i]->name);
			continue;
		}
		printf("%s%s: %.1f MiB (during %s)", md ? "- " : "  ",
		       s->engines[i]->name, peak / mib, benches[at].name);
		if (strcmp(s->engines[i]->name, "lsm") == 0) {
			double budget = 3.0 * (double)s->cfg.write_buffer_size +
					(double)s->cfg.cache_size;
			printf("; budget 3 x %.0f MiB memtables + %.0f MiB "
			       "cache = %.0f MiB, +10%% = %.0f MiB: %s",
			       (double)s->cfg.write_buffer_size / mib,
			       (double)s->cfg.cache_size / mib, budget / mib,
			       budget * 1.1 / mib,
			       peak <= budget * 1.1 ? "within" : "OVER");
		}
		printf("\n");
	}
	if (s->n_engines > 1)
		printf("%s(engines share one process: exact only with "
		       "--engines=NAME)\n",
		       md ? "\n" : "  ");
	printf("\n");
}

static void print_results(const struct settings *s, struct engine_results *res)
{
	bool md = s->format == FMT_MARKDOWN;
	int lsm_idx = -1;

	for (int i = 0; i < s->n_engines; i++)
		if (strcmp(s->engines[i]->name, "lsm") == 0)
			lsm_idx = i;

	/* Summary: median ops/s per workload and engine. */
	printf("%sSummary: median ops/s\n\n", md ? "### " : "");
	if (md) {
		printf("| workload |");
		for (int i = 0; i < s->n_engines; i++)
			printf(" %s |", s->engines[i]->name);
		if (lsm_idx >= 0 && s->n_engines > 1)
			printf(" lsm / best peer |");
		printf("\n|---|");
		for (int i = 0; i < s->n_engines; i++)
			printf("---:|");
		if (lsm_idx >= 0 && s->n_engines > 1)
			printf("---:|");
		printf("\n");
	} else {
		printf("  %-13s", "workload");
		for (int i = 0; i < s->n_engines; i++)
			printf(" %12s", s->engines[i]->name);
		if (lsm_idx >= 0 && s->n_engines > 1)
			printf(" %16s", "lsm/best peer");
		printf("\n");
	}
	for (int b = 0; b < N_BENCH; b++) {
		double best_peer = -1, lsm_ops = -1;
		char cell[64];

		if (!s->enabled[b])
			continue;
		printf(md ? "| %s |" : "  %-13s", benches[b].name);
		for (int i = 0; i < s->n_engines; i++) {
			double ops = median_of(res[i].runs[b], s->runs, 0);

			if (i == lsm_idx)
				lsm_ops = ops;
			else if (ops > best_peer)
				best_peer = ops;
			fmt_num(cell, sizeof(cell), ops, "%.0f");
			printf(md ? " %s |" : " %12s", cell);
		}
		if (lsm_idx >= 0 && s->n_engines > 1) {
			if (lsm_ops >= 0 && best_peer > 0)
				snprintf(cell, sizeof(cell), "%.2fx",
					 lsm_ops / best_peer);
			else
				snprintf(cell, sizeof(cell), "-");
			printf(md ? " %s |" : " %16s", cell);
		}
		printf("\n");
	}
	printf("\n");

	/* One table per workload. */
	for (int b = 0; b < N_BENCH; b++) {
		char d[256];

		if (!s->enabled[b])
			continue;
		describe_workload(s, (enum bench_id)b, d, sizeof(d));
		printf(md ? "#### %s: %s\n\n" : "%s: %s\n", benches[b].name, d);
		if (md)
			printf("| engine | ops/s | p50 us | p99 us | W-amp | "
			       "size MiB | vs peers |\n"
			       "|---|---:|---:|---:|---:|---:|---|\n");
		else
			printf("  %-8s %12s %9s %9s %7s %9s  %s\n", "engine",
			       "ops/s", "p50 us", "p99 us", "W-amp", "size MiB",
			       "vs peers");
		for (int i = 0; i < s->n_engines; i++) {
			const struct engine_results *er = &res[i];
			double ops = median_of(er->runs[b], s->runs, 0);
			double wamp = median_of(er->runs[b], s->runs, 1);
			double size = median_of(er->runs[b], s->runs, 2);
			char c_ops[32], c_p50[32], c_p99[32], c_w[32], c_sz[32],
				vs[256] = "";
			bool has_hist = er->hist[b].count > 0;

			fmt_num(c_ops, sizeof(c_ops), ops, "%.0f");
			fmt_num(c_p50, sizeof(c_p50),
				has_hist ? hist_quantile_ns(&er->hist[b], 0.5) /
						   1000.0
					 : -1,
				"%.2f");
			fmt_num(c_p99, sizeof(c_p99),
				has_hist
					? hist_quantile_ns(&er->hist[b], 0.99) /
						  1000.0
					: -1,
				"%.2f");
			fmt_num(c_w, sizeof(c_w), wamp, "%.2f");
			fmt_num(c_sz, sizeof(c_sz),
				size >= 0 ? size / 1048576.0 : -1, "%.1f");
			if (i == lsm_idx && ops > 0) {
				double best = -1;
				size_t len = 0;

				for (int j = 0; j < s->n_engines; j++) {
					double po;

					if (j == i)
						continue;
					po = median_of(res[j].runs[b], s->runs,
						       0);
					if (po <= 0)
						continue;
					len += (size_t)snprintf(
						vs + len, sizeof(vs) - len,
						"%s%.2fx %s", len ? ", " : "",
						ops / po, s->engines[j]->name);
					if (po > best)
						best = po;
				}
				if (best > 0 && s->n_engines > 2)
					snprintf(vs + len, sizeof(vs) - len,
						 ", %.2fx best", ops / best);
			}
			if (ops < 0 && er->error[0])
				snprintf(vs, sizeof(vs), "failed: %.200s",
					 er->error);
			if (md)
				printf("| %s | %s | %s | %s | %s | %s | %s "
				       "|\n",
				       s->engines[i]->name, c_ops, c_p50, c_p99,
				       c_w, c_sz, vs);
			else
				printf("  %-8s %12s %9s %9s %7s %9s  %s\n",
				       s->engines[i]->name, c_ops, c_p50, c_p99,
				       c_w, c_sz, vs);
		}
		for (int i = 0; i < s->n_engines; i++) {
			double ww = median_of(res[i].runs[b], s->runs, 3);
			if (ww >= 0)
				printf("%s%s W-amp counting its WAL bytes too: "
				       "%.2f\n",
				       md ? "\n" : "  ", s->engines[i]->name,
				       ww);
		}
		for (int i = 0; i < s->n_engines; i++) {
			double ws = median_of(res[i].runs[b], s->runs, 4);
			double ss = median_of(res[i].runs[b], s->runs, 5);
			if (ws >= 0)
				printf("%s%s W-amp once its flushes and "
				       "compactions finished: %.2f (%.1f s "
				       "after "
				       "the last put)\n",
				       md ? "\n" : "  ", s->engines[i]->name,
				       ws, ss);
		}
		if (benches[b].op == OP_GET_RANDOM) {
			for (int i = 0; i < s->n_engines; i++) {
				const struct run_result *r = &res[i].runs[b][0];

				if (r->ran && !r->failed && r->ops) {
					printf("%s(%.1f%% of the gets found a "
					       "value, checked for every "
					       "engine)\n",
					       md ? "\n" : "  ",
					       100.0 * (double)r->found /
						       (double)r->ops);
					break;
				}
			}
		}
		printf("\n");
	}

	print_memory(s, res);
	if (s->large) {
		printf("%sLevels after fillrandom and its compactions (last "
		       "run)\n\n",
		       md ? "### " : "");
		for (int i = 0; i < s->n_engines; i++) {
			printf(md ? "%s:\n\n```\n%s\n```\n\n" : "%s:\n%s\n\n",
			       s->engines[i]->name,
			       res[i].levels ? res[i].levels : "-");
		}
	}
}

int main(int argc, char **argv)
{
	struct settings s;
	struct engine_results res[MAX_ENGINES];
	struct gen_values values;
	uint64_t t_start;
	bool made_dir = false;
	int status = 0;

	parse_args(&s, argc, argv);
	if (mkdir(s.db_dir, 0755) == 0) {
		made_dir = true;
	} else if (errno != EEXIST) {
		fprintf(stderr, "lsm-bench: cannot create %s: %s\n", s.db_dir,
			strerror(errno));
		return 1;
	}
	if (gen_values_init(&values, s.value_size, s.seed)) {
		fprintf(stderr, "lsm-bench: out of memory\n");
		return 1;
	}
	memset(res, 0, sizeof(res));
	for (int i = 0; i < s.n_engines; i++) {
		for (int b = 0; b < N_BENCH; b++) {
			res[i].runs[b] = calloc((size_t)s.runs,
						sizeof(struct run_result));
			if (!res[i].runs[b]) {
				fprintf(stderr, "lsm-bench: out of memory\n");
				return 1;
			}
			hist_init(&res[i].hist[b]);
		}
	}

	print_header(&s);
	fflush(stdout);
	t_start = now_ns();
	for (int run = 0; run < s.runs; run++) {
		for (int i = 0; i < s.n_engines; i++) {
			for (int g = 0; g < N_GROUPS; g++) {
				if (!group_wanted(&s, (enum db_group)g))
					continue;
				if (run_group(&s, s.engines[i], &res[i],
					      (enum db_group)g, run, &values))
					status = 1;
			}
		}
	}
	if (s.show_progress)
		fprintf(stderr, "lsm-bench: done in %.1f s\n",
			(double)(now_ns() - t_start) / 1e9);

	print_results(&s, res);
	printf("Total benchmark time %.1f s.\n",
	       (double)(now_ns() - t_start) / 1e9);

	for (int i = 0; i < s.n_engines; i++) {
		for (int b = 0; b < N_BENCH; b++)
			free(res[i].runs[b]);
		free(res[i].levels);
	}
	gen_values_release(&values);
	/* Every DB directory was removed, so a directory we made is empty. */
	if (made_dir)
		rmdir(s.db_dir);
	return status;
}
