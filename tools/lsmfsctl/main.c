/*
 * main.c - lsmfsctl: command-line dispatch, and the commands that are one
 * control-socket call each (snapshot create/list/delete, stats, compact).
 *
 * Why a separate tool: the daemon holds the store's lock, so everything
 * done to a mounted store goes through its control socket (client.c,
 * fs/CTL.md); `check` and the test aids work on an unmounted store
 * directly (check.c); backup, verify and restore are backup.c's.
 *
 * Invariants:
 *  1. Exit status: 0 success, 1 the command ran and found problems
 *     (check, verify), 2 any error, usage errors included.
 *  2. Every error is one line on stderr, prefixed "lsmfsctl: ".
 *  3. `snapshot create` syncs the mount first (syncfs), so data still in
 *     the kernel's writeback cache is in the snapshot.
 *
 * Thread safety: single-threaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "lsm.h"
#include "lsmfsctl.h"

#ifndef LSMFSCTL_VERSION
#define LSMFSCTL_VERSION "0.1.0"
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lsmfsctl COMMAND [ARGS]\n"
		"\n"
		"Mounted filesystems (through the daemon's control socket):\n"
		"  snapshot create MOUNT NAME   take a named snapshot "
		"(visible as MOUNT/.snapshots/NAME)\n"
		"  snapshot list MOUNT          list snapshots: name, "
		"creation time, space it alone holds\n"
		"  snapshot delete MOUNT NAME   delete a snapshot\n"
		"  stats MOUNT [--format text|prometheus]\n"
		"                               engine and filesystem "
		"statistics\n"
		"  compact MOUNT                compact the whole store\n"
		"  backup MOUNT NAME DEST       back snapshot NAME up into "
		"DEST\n"
		"  backup list DEST             list the backups in DEST\n"
		"  backup prune DEST --keep N   keep the N newest backups\n"
		"  verify DEST [NAME]           check backup checksums\n"
		"  restore DEST NAME NEWSTORE   make a store from a backup\n"
		"\n"
		"Unmounted stores:\n"
		"  check STORE                  offline consistency check\n"
		"\n"
		"  -h, --help                   this text\n"
		"  -V, --version                print the version\n"
		"\n"
		"Exit status: 0 success, 1 problems found (check, verify), "
		"2 error.\n");
}

static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("lsmfsctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs(" (see lsmfsctl --help)\n", stderr);
	va_end(ap);
	return 2;
}

/* Bytes in binary units: "512 B", "1.5 KiB", "3.2 GiB". */
static void human_bytes(uint64_t n, char *out, size_t cap)
{
	static const char *const units[] = {"KiB", "MiB", "GiB",
					    "TiB", "PiB", "EiB"};
	double v = (double)n;
	int u = -1;

	if (n < 1024) {
		snprintf(out, cap, "%" PRIu64 " B", n);
		return;
	}
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(out, cap, "%.1f %s", v, units[u]);
}

/* The next line of *p (NUL-terminated in place), or NULL at the end. */
static char *next_line(char **p)
{
	char *line = *p, *eol;

	if (!line || !*line)
		return NULL;
	eol = strchr(line, '\n');
	if (eol) {
		*eol = '\0';
		*p = eol + 1;
	} else {
		*p = line + strlen(line);
	}
	return line;
}

/* ---- snapshot ---- */

static int snapshot_create(const char *mount, const char *name)
{
	const char *args[1] = {name};
	struct ctl_conn *c;
	char *body;
	int fd, rc = 2;

	/* ctl_open checks MOUNT and that its daemon answers; the request
	 * itself goes on a new connection after the sync below, which may
	 * take longer than the daemon waits for a request line. */
	if (ctl_open(mount, &c) != 0)
		return 2;
	ctl_disconnect(c);
	/* invariant 3. ENOENT/ESTALE: the kernel's writeback of a file that
	 * was deleted meanwhile failed, which leaves nothing out of the
	 * snapshot (the file is not in it). */
	fd = open(mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (syncfs(fd) != 0 && errno != ENOENT && errno != ESTALE)) {
		fprintf(stderr,
			"lsmfsctl: %s: cannot sync before the "
			"snapshot: %s\n",
			mount, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out_close;
	}
	close(fd);
	if (ctl_call(c, "snapshot-create", args, 1, &body, NULL) != 0)
		goto out_close;
	free(body);
	printf("%s\n", name);
	rc = 0;
out_close:
	ctl_close(c);
	return rc;
}

/* A name fit for a terminal: as is when printable, else encoded. */
static const char *shown_name(const char *raw, const char *encoded)
{
	for (const char *p = raw; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return encoded;
	return raw;
}

struct snap_row {
	char *name;    /* decoded */
	char *encoded; /* as the daemon sent it */
	char created[40];
	char space[32];
};

static int snapshot_list(const char *mount)
{
	const char *args[1] = {"space"};
	struct snap_row *rows = NULL;
	size_t n = 0, cap = 0, width = 4;
	struct ctl_conn *c;
	char *body, *p, *line;
	int rc = 2;

	if (ctl_open(mount, &c) != 0)
		return 2;
	if (ctl_call(c, "snapshot-list", args, 1, &body, NULL) != 0) {
		ctl_close(c);
		return 2;
	}
	ctl_close(c);
	p = body;
	while ((line = next_line(&p))) {
		unsigned long long id, seq, excl;
		long long created;
		char enc[3 * LSM_SNAPSHOT_NAME_MAX + 1];
		struct snap_row *r;
		struct tm tm;
		time_t t;

		if (sscanf(line, "%llu %llu %lld %llu %765s", &id, &seq,
			   &created, &excl, enc) != 5) {
			fprintf(stderr,
				"lsmfsctl: %s: unreadable snapshot "
				"list from the daemon\n",
				mount);
			goto out_free;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct snap_row *q = realloc(rows, ncap * sizeof(*q));

			if (!q)
				goto out_nomem;
			rows = q;
			cap = ncap;
		}
		r = &rows[n];
		memset(r, 0, sizeof(*r));
		r->encoded = strdup(enc);
		r->name = strdup(enc);
		n++;
		if (!r->encoded || !r->name)
			goto out_nomem;
		if (ctl_decode(r->name) != 0) {
			fprintf(stderr,
				"lsmfsctl: %s: bad snapshot name from "
				"the daemon\n",
				mount);
			goto out_free;
		}
		t = (time_t)(created / 1000000000);
		if (!localtime_r(&t, &tm) ||
		    !strftime(r->created, sizeof(r->created),
			      "%Y-%m-%dT%H:%M:%S%z", &tm))
			snprintf(r->created, sizeof(r->created), "?");
		human_bytes(excl, r->space, sizeof(r->space));
		if (strlen(shown_name(r->name, r->encoded)) > width)
			width = strlen(shown_name(r->name, r->encoded));
	}
	printf("%-*s  %-24s  %s\n", (int)width, "NAME", "CREATED", "SPACE");
	for (size_t i = 0; i < n; i++)
		printf("%-*s  %-24s  %s\n", (int)width,
		       shown_name(rows[i].name, rows[i].encoded),
		       rows[i].created, rows[i].space);
	rc = 0;
	goto out_free;
out_nomem:
	fprintf(stderr, "lsmfsctl: out of memory\n");
out_free:
	for (size_t i = 0; i < n; i++) {
		free(rows[i].name);
		free(rows[i].encoded);
	}
	free(rows);
	free(body);
	return rc;
}

static int snapshot_delete(const char *mount, const char *name)
{
	const char *args[1] = {name};
	struct ctl_conn *c;
	char *body;
	int rc = 2;

	if (ctl_open(mount, &c) != 0)
		return 2;
	if (ctl_call(c, "snapshot-delete", args, 1, &body, NULL) == 0) {
		free(body);
		rc = 0;
	}
	ctl_close(c);
	return rc;
}

static int cmd_snapshot(int argc, char **argv)
{
	/* The protocol cannot carry an empty word: refuse it here, as the
	 * daemon would. */
	if (argc == 4 && !*argv[3]) {
		fprintf(stderr, "lsmfsctl: bad snapshot name \"\": empty\n");
		return 2;
	}
	if (argc < 2)
		return usage_error("snapshot needs create, list or delete");
	if (!strcmp(argv[1], "create")) {
		if (argc != 4)
			return usage_error("usage: lsmfsctl snapshot create "
					   "MOUNT NAME");
		return snapshot_create(argv[2], argv[3]);
	}
	if (!strcmp(argv[1], "list")) {
		if (argc != 3)
			return usage_error("usage: lsmfsctl snapshot list "
					   "MOUNT");
		return snapshot_list(argv[2]);
	}
	if (!strcmp(argv[1], "delete")) {
		if (argc != 4)
			return usage_error("usage: lsmfsctl snapshot delete "
					   "MOUNT NAME");
		return snapshot_delete(argv[2], argv[3]);
	}
	return usage_error("unknown snapshot command \"%s\"", argv[1]);
}

/* ---- stats ---- */

enum metric_kind { M_COUNTER, M_GAUGE, M_UNTYPED };

struct metric_doc {
	const char *name; /* as the daemon names it */
	enum metric_kind kind;
	const char *help;
};

/* What lsmfsctl knows of the daemon's statistics (fs/CTL.md); a name not
 * listed is shown as "untyped". */
static const struct metric_doc metric_docs[] = {
	{"lsm_user_bytes_written", M_COUNTER,
	 "Bytes of keys and values written by users."},
	{"lsm_user_writes", M_COUNTER, "Write batches applied."},
	{"lsm_write_groups", M_COUNTER,
	 "WAL appends, one per group of batches."},
	{"lsm_wal_bytes", M_COUNTER, "Bytes appended to write-ahead logs."},
	{"lsm_wal_syncs", M_COUNTER, "Write-ahead log fsyncs."},
	{"lsm_flushes", M_COUNTER, "Memtables flushed to level 0."},
	{"lsm_flush_bytes", M_COUNTER, "Bytes written by flushes."},
	{"lsm_compactions", M_COUNTER, "Compactions that rewrote files."},
	{"lsm_trivial_moves", M_COUNTER,
	 "Compactions that moved a file without rewriting it."},
	{"lsm_compaction_bytes_read", M_COUNTER, "Bytes read by compactions."},
	{"lsm_compaction_bytes_written", M_COUNTER,
	 "Bytes written by compactions."},
	{"lsm_gets", M_COUNTER, "Point reads."},
	{"lsm_bloom_checks", M_COUNTER, "Bloom filter probes."},
	{"lsm_bloom_useful", M_COUNTER,
	 "Bloom filter probes that avoided a block read."},
	{"lsm_stall_count", M_COUNTER,
	 "Writes that waited for a flush or compaction."},
	{"lsm_stall_micros", M_COUNTER, "Microseconds writers spent waiting."},
	{"lsm_slowdown_count", M_COUNTER,
	 "Writes delayed by the slowdown threshold."},
	{"lsm_bg_errors", M_COUNTER, "Background errors."},
	{"lsm_block_cache_hits", M_COUNTER,
	 "Data blocks found in the block cache."},
	{"lsm_block_cache_misses", M_COUNTER, "Data blocks read from files."},
	{"lsm_block_cache_bytes", M_GAUGE, "Bytes held by the block cache."},
	{"lsm_memtable_bytes", M_GAUGE,
	 "Memory of the active and immutable memtables."},
	{"lsm_sst_bytes", M_GAUGE, "Bytes of all SST files."},
	{"lsm_pending_compaction_bytes", M_GAUGE,
	 "Estimated bytes compaction still has to rewrite."},
	{"lsm_write_amplification_x1000", M_GAUGE,
	 "Flush and compaction bytes written per user byte."},
	{"lsm_write_amplification_wal_x1000", M_GAUGE,
	 "The same, WAL bytes included."},
	{"lsm_space_amplification_x1000", M_GAUGE,
	 "SST bytes per byte of the last non-empty level."},
	{"lsmfs_snapshots", M_GAUGE, "Named snapshots of the filesystem."},
	{"lsmfs_next_ino", M_GAUGE, "Next inode number to hand out."},
	{"lsmfs_space_reserve_bytes", M_GAUGE,
	 "Free space of the store's disk kept for deletions."},
	{"lsmfs_space_avail_bytes", M_GAUGE,
	 "Available space of the store's disk, as last measured."},
	{"lsmfs_space_refused", M_COUNTER,
	 "Operations refused with ENOSPC by the reserve."},
	{"lsmfs_space_reclaims", M_COUNTER,
	 "Space reclaims (flush and compaction) after deletions."},
	{"lsmfs_ctl_requests", M_COUNTER, "Control socket requests."},
	{"lsmfs_ctl_errors", M_COUNTER,
	 "Control socket requests answered with an error."},
	{"lsmfs_ctl_refused", M_COUNTER,
	 "Control socket clients refused for their uid."},
};

static const struct metric_doc *metric_doc(const char *name)
{
	for (size_t i = 0; i < sizeof(metric_docs) / sizeof(metric_docs[0]);
	     i++)
		if (!strcmp(metric_docs[i].name, name))
			return &metric_docs[i];
	return NULL;
}

static int has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

/* A valid Prometheus metric name (the daemon's names always are). */
static int is_metric_name(const char *s)
{
	if (!*s || (*s >= '0' && *s <= '9'))
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == ':'))
			return 0;
	return 1;
}

struct stat_line {
	char name[128];
	unsigned long long value;
	unsigned level; /* lsm_level<N>_files/_bytes */
	int level_kind; /* 0 none, 1 files, 2 bytes */
};

static int parse_stats(char *body, struct stat_line **out, size_t *n_out)
{
	struct stat_line *a = NULL;
	size_t n = 0, cap = 0;
	char *p = body, *line;

	while ((line = next_line(&p))) {
		struct stat_line sl;
		char tail[16];

		memset(&sl, 0, sizeof(sl));
		if (sscanf(line, "%127s %llu", sl.name, &sl.value) != 2 ||
		    !is_metric_name(sl.name))
			continue; /* skip what we cannot read */
		if (sscanf(sl.name, "lsm_level%u_%15s", &sl.level, tail) == 2) {
			if (!strcmp(tail, "files"))
				sl.level_kind = 1;
			else if (!strcmp(tail, "bytes"))
				sl.level_kind = 2;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct stat_line *q = realloc(a, ncap * sizeof(*q));

			if (!q) {
				free(a);
				return -ENOMEM;
			}
			a = q;
			cap = ncap;
		}
		a[n++] = sl;
	}
	*out = a;
	*n_out = n;
	return 0;
}

static void stats_text(const struct stat_line *a, size_t n)
{
	const char *section = "";
	bool has_levels = false;

	for (size_t i = 0; i < n; i++) {
		if (a[i].level_kind) {
			has_levels = true;
			continue; /* the table below */
		}
		const char *name = a[i].name;
		const char *sec =
			!strncmp(name, "lsmfs_", 6) ? "filesystem" : "engine";
		const char *shortname = strchr(name, '_');
		char human[32];

		shortname = shortname ? shortname + 1 : name;
		if (strcmp(sec, section)) {
			printf("%s%s:\n", *section ? "\n" : "", sec);
			section = sec;
		}
		if (has_suffix(name, "_x1000")) {
			int len = (int)(strlen(shortname) - 6);

			printf("  %-*.*s%*s %llu.%03llu\n", len, len, shortname,
			       32 - len, "", a[i].value / 1000,
			       a[i].value % 1000);
		} else if (has_suffix(name, "_bytes") && a[i].value >= 1024) {
			human_bytes(a[i].value, human, sizeof(human));
			printf("  %-32s %llu (%s)\n", shortname, a[i].value,
			       human);
		} else {
			printf("  %-32s %llu\n", shortname, a[i].value);
		}
	}
	if (!has_levels)
		return;
	printf("\nengine levels:  files        bytes\n");
	for (size_t i = 0; i < n; i++) {
		if (a[i].level_kind != 1)
			continue;
		for (size_t j = 0; j < n; j++)
			if (a[j].level_kind == 2 && a[j].level == a[i].level) {
				printf("  L%-6u %12llu %12llu\n", a[i].level,
				       a[i].value, a[j].value);
				break;
			}
	}
}

static void prom_header(const char *name, const char *help, const char *type)
{
	printf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void stats_prometheus(const struct stat_line *a, size_t n)
{
	static const char *const type_names[] = {"counter", "gauge", "untyped"};

	for (size_t i = 0; i < n; i++) {
		const struct metric_doc *d = metric_doc(a[i].name);
		enum metric_kind kind = d ? d->kind : M_UNTYPED;
		char name[160], help[192];

		if (a[i].level_kind)
			continue; /* below, as labelled families */
		snprintf(help, sizeof(help), "%s",
			 d ? d->help : "Statistic not documented here.");
		if (has_suffix(a[i].name, "_x1000")) {
			/* Exposed as the real ratio. */
			snprintf(name, sizeof(name), "%.*s",
				 (int)(strlen(a[i].name) - 6), a[i].name);
			prom_header(name, help, type_names[kind]);
			printf("%s %llu.%03llu\n", name, a[i].value / 1000,
			       a[i].value % 1000);
			continue;
		}
		snprintf(name, sizeof(name), "%s%s", a[i].name,
			 kind == M_COUNTER ? "_total" : "");
		prom_header(name, help, type_names[kind]);
		printf("%s %llu\n", name, a[i].value);
	}
	for (int k = 1; k <= 2; k++) {
		bool has_header = false;

		for (size_t i = 0; i < n; i++) {
			if (a[i].level_kind != k)
				continue;
			if (!has_header) {
				prom_header(k == 1 ? "lsm_level_files"
						   : "lsm_level_bytes",
					    k == 1 ? "SST files in each level."
						   : "Bytes of the SST files "
						     "in each level.",
					    "gauge");
				has_header = true;
			}
			printf("%s{level=\"%u\"} %llu\n",
			       k == 1 ? "lsm_level_files" : "lsm_level_bytes",
			       a[i].level, a[i].value);
		}
	}
}

static int cmd_stats(int argc, char **argv)
{
	const char *mount = NULL, *format = "text";
	struct stat_line *lines;
	struct ctl_conn *c;
	size_t n;
	char *body;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--format")) {
			if (++i == argc)
				return usage_error("--format needs text or "
						   "prometheus");
			format = argv[i];
		} else if (!strncmp(argv[i], "--format=", 9)) {
			format = argv[i] + 9;
		} else if (argv[i][0] == '-' || mount) {
			return usage_error("stats: unexpected argument \"%s\"",
					   argv[i]);
		} else {
			mount = argv[i];
		}
	}
	if (!mount)
		return usage_error("usage: lsmfsctl stats MOUNT [--format "
				   "text|prometheus]");
	if (strcmp(format, "text") && strcmp(format, "prometheus"))
		return usage_error("unknown format \"%s\" (text or "
				   "prometheus)",
				   format);
	if (ctl_open(mount, &c) != 0)
		return 2;
	if (ctl_call(c, "stats", NULL, 0, &body, NULL) != 0) {
		ctl_close(c);
		return 2;
	}
	ctl_close(c);
	if (parse_stats(body, &lines, &n) != 0) {
		free(body);
		fprintf(stderr, "lsmfsctl: out of memory\n");
		return 2;
	}
	free(body);
	if (!strcmp(format, "text"))
		stats_text(lines, n);
	else
		stats_prometheus(lines, n);
	free(lines);
	return 0;
}

static int cmd_compact(int argc, char **argv)
{
	struct ctl_conn *c;
	char *body;
	int rc = 2;

	if (argc != 2)
		return usage_error("usage: lsmfsctl compact MOUNT");
	if (ctl_open(argv[1], &c) != 0)
		return 2;
	if (ctl_call(c, "compact", NULL, 0, &body, NULL) == 0) {
		free(body);
		rc = 0;
	}
	ctl_close(c);
	return rc;
}

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
};

static const struct command commands[] = {
	{"snapshot", cmd_snapshot},
	{"stats", cmd_stats},
	{"compact", cmd_compact},
	{"check", cmd_check},
	{"backup", cmd_backup},
	{"verify", cmd_verify},
	{"restore", cmd_restore},
	/* Test aids (fs/CTL.md), not in --help. */
	{"debug-put", cmd_debug},
	{"debug-del", cmd_debug},
};

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("lsmfsctl %s (lsm %s, control protocol %s)\n",
		       LSMFSCTL_VERSION, LSM_VERSION_STRING, CTL_PROTO);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].name, argv[1]))
			return commands[i].fn(argc - 1, argv + 1);
	return usage_error("unknown command \"%s\"", argv[1]);
}
