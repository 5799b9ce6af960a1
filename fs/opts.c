/*
 * opts.c - the command line and mount options of lsmfs.
 *
 * Why: lsmfs is started by hand (`lsmfs STORE MOUNTPOINT -o ...`) and by
 * mount.fuse3 from /etc/fstab, which passes the generic mount options
 * (rw, dev, suid, noatime, ...) along with ours. Our options are parsed
 * here and removed; everything else goes to fuse_session_new(), which
 * knows the generic ones and rejects what nobody knows.
 *
 * Invariants:
 *  1. Every performance option defaults on and has an off switch; the
 *     defaults are set before parsing (opts_parse).
 *  2. The kernel always gets default_permissions (it checks modes and
 *     owners), subtype=lsmfs and fsname=<absolute store path> (escaped).
 *
 * Thread safety: used by main() only, before the session starts.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

enum {
	K_HELP,
	K_VERSION,
	K_FOREGROUND,
	K_DEBUG,
	K_DISCARD,
	K_RESERVE,
};

#define O(t, field, v)                                   \
	{                                                \
		t, offsetof(struct lsmfs_opts, field), v \
	}

static const struct fuse_opt opt_spec[] = {
	O("writeback_cache", writeback_cache, 1),
	O("no_writeback_cache", writeback_cache, 0),
	O("readdirplus", readdirplus, 1),
	O("no_readdirplus", readdirplus, 0),
	O("keep_cache", keep_cache, 1),
	O("no_keep_cache", keep_cache, 0),
	O("allow_other", allow_other, 1),
	O("nonempty", nonempty, 1),
	O("max_write=%u", max_write, 0),
	O("entry_timeout=%lf", entry_timeout, 0),
	O("attr_timeout=%lf", attr_timeout, 0),
	O("negative_timeout=%lf", negative_timeout, 0),
	FUSE_OPT_KEY("reserve=", K_RESERVE),
	FUSE_OPT_KEY("allow_other", FUSE_OPT_KEY_KEEP),
	FUSE_OPT_KEY("-h", K_HELP),
	FUSE_OPT_KEY("--help", K_HELP),
	FUSE_OPT_KEY("-V", K_VERSION),
	FUSE_OPT_KEY("--version", K_VERSION),
	FUSE_OPT_KEY("-f", K_FOREGROUND),
	FUSE_OPT_KEY("-d", K_DEBUG),
	FUSE_OPT_KEY("debug", K_DEBUG),
	/* fstab words mount.fuse3 may pass along: meaningless here */
	FUSE_OPT_KEY("defaults", K_DISCARD),
	FUSE_OPT_KEY("auto", K_DISCARD),
	FUSE_OPT_KEY("noauto", K_DISCARD),
	FUSE_OPT_KEY("nofail", K_DISCARD),
	FUSE_OPT_KEY("_netdev", K_DISCARD),
	FUSE_OPT_KEY("user", K_DISCARD),
	FUSE_OPT_KEY("users", K_DISCARD),
	FUSE_OPT_KEY("nouser", K_DISCARD),
	FUSE_OPT_END,
};

/* "BYTES" with an optional binary suffix K, M, G or T (case ignored):
 * 0 and *out set, or -1. */
static int parse_bytes(const char *s, uint64_t *out)
{
	uint64_t v = 0, mult = 1;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	switch (*p) {
	case '\0':
		break;
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
	case 't':
	case 'T':
		mult = 1ull << 40;
		break;
	default:
		return -1;
	}
	if (*p && p[1])
		return -1;
	if (v > UINT64_MAX / mult)
		return -1;
	*out = v * mult;
	return 0;
}

static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	/* data is the options struct itself: opt_spec offsets point in it */
	struct lsmfs_opts *o = data;

	(void)outargs;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (!o->store) {
			o->store = strdup(arg);
		} else if (!o->mountpoint) {
			o->mountpoint = strdup(arg);
		} else {
			fprintf(stderr, "lsmfs: unexpected argument '%s'\n",
				arg);
			o->n_bad_args++;
		}
		return 0;
	case K_HELP:
		o->show_help = 1;
		return 0;
	case K_VERSION:
		o->show_version = 1;
		return 0;
	case K_FOREGROUND:
		o->foreground = 1;
		return 0;
	case K_DEBUG:
		o->debug = 1;
		o->foreground = 1;
		return 1; /* libfuse prints requests too */
	case K_DISCARD:
		return 0;
	case K_RESERVE:
		if (parse_bytes(arg + strlen("reserve="), &o->reserve) != 0) {
			fprintf(stderr,
				"lsmfs: bad reserve '%s': need a byte count "
				"with an optional K, M, G or T suffix (e.g. "
				"reserve=64M)\n",
				arg + strlen("reserve="));
			o->n_bad_args++;
			return 0;
		}
		o->has_reserve = 1;
		return 0;
	default:
		return 1; /* generic mount options: for fuse_session_new */
	}
}

/* Absolute form of path, which may not exist yet (its parent must). */
static char *abs_path(const char *path)
{
	char buf[PATH_MAX], *slash, *dir, *res = NULL;
	const char *base;

	if (realpath(path, buf))
		return strdup(buf);
	dir = strdup(path);
	if (!dir)
		return NULL;
	while (strlen(dir) > 1 && dir[strlen(dir) - 1] == '/')
		dir[strlen(dir) - 1] = '\0';
	slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		base = slash + 1;
		if (!realpath(*dir ? dir : "/", buf))
			goto out;
	} else {
		base = dir;
		if (!realpath(".", buf))
			goto out;
	}
	res = malloc(strlen(buf) + strlen(base) + 2);
	if (res)
		sprintf(res, "%s/%s", strcmp(buf, "/") ? buf : "", base);
out:
	free(dir);
	return res;
}

int opts_parse(int argc, char **argv, struct lsmfs_opts *opts,
	       struct fuse_args *fargs)
{
	char *mo = NULL, *fsname = NULL, *abs;

	(void)argc;
	(void)argv;
	memset(opts, 0, sizeof(*opts));
	opts->writeback_cache = 1;
	opts->readdirplus = 1;
	opts->keep_cache = 1;
	opts->max_write = 1u << 20;
	opts->entry_timeout = 3600;
	opts->attr_timeout = 3600;
	opts->negative_timeout = 3600;
	if (fuse_opt_parse(fargs, opts, opt_spec, opt_proc) == -1 ||
	    opts->n_bad_args)
		return -1;
	if (opts->show_help || opts->show_version)
		return 0;
	if (!opts->store || !opts->mountpoint) {
		fprintf(stderr, "lsmfs: need STORE and MOUNTPOINT (see "
				"--help)\n");
		return -1;
	}
	if (opts->max_write < 4096 || opts->max_write > (1u << 20)) {
		fprintf(stderr,
			"lsmfs: max_write must be 4096..1048576, not %u\n",
			opts->max_write);
		return -1;
	}
	if (opts->entry_timeout < 0 || opts->attr_timeout < 0 ||
	    opts->negative_timeout < 0) {
		fprintf(stderr, "lsmfs: timeouts cannot be negative\n");
		return -1;
	}
	abs = abs_path(opts->store);
	if (!abs) {
		fprintf(stderr, "lsmfs: %s: %s\n", opts->store,
			strerror(errno ? errno : ENOENT));
		return -1;
	}
	free(opts->store);
	opts->store = abs;
	fsname = malloc(strlen(abs) + 8);
	if (!fsname)
		return -1;
	sprintf(fsname, "fsname=%s", abs);
	if (fuse_opt_add_opt(&mo, "default_permissions") ||
	    fuse_opt_add_opt(&mo, "subtype=lsmfs") ||
	    fuse_opt_add_opt_escaped(&mo, fsname) ||
	    fuse_opt_add_arg(fargs, "-o") || fuse_opt_add_arg(fargs, mo)) {
		free(fsname);
		free(mo);
		return -1;
	}
	free(fsname);
	free(mo);
	return 0;
}

void opts_usage(const char *prog)
{
	printf("usage: %s STORE MOUNTPOINT [-f] [-d] [-o opt,...]\n"
	       "\n"
	       "Mounts the lsmfs filesystem kept in the directory STORE "
	       "(created\n"
	       "with a new store when missing or empty) on MOUNTPOINT.\n"
	       "\n"
	       "  -f                    stay in the foreground, log to stderr\n"
	       "  -d, -o debug          foreground, print every request\n"
	       "  -h, --help            this help\n"
	       "  -V, --version         print versions\n"
	       "\n"
	       "lsmfs options (defaults in brackets):\n"
	       "  -o no_writeback_cache   kernel write-through [writeback on]\n"
	       "  -o max_write=N          largest write request [1048576]\n"
	       "  -o entry_timeout=S      name cache seconds [3600]\n"
	       "  -o attr_timeout=S       attribute cache seconds [3600]\n"
	       "  -o negative_timeout=S   cache of missing names [3600]\n"
	       "  -o no_keep_cache        drop page cache at open [keep]\n"
	       "  -o no_readdirplus       plain readdir [readdirplus on]\n"
	       "  -o allow_other          let other users in [off]\n"
	       "  -o nonempty             mount over a non-empty directory\n"
	       "  -o reserve=BYTES        free space of the store's disk kept\n"
	       "                          for deletes and compaction; adds\n"
	       "                          fail with ENOSPC below it (K, M, G,\n"
	       "                          T suffixes) [max(64M, 2%% of disk)]\n"
	       "Generic mount options (ro, noatime, nodev, ...) are passed to "
	       "FUSE.\n",
	       prog);
}

void opts_free(struct lsmfs_opts *opts)
{
	free(opts->store);
	free(opts->mountpoint);
}
