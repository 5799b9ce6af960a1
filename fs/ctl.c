/*
 * ctl.c - the control socket: STORE/ctl.sock, through which lsmfsctl
 * creates, lists and deletes snapshots, reads statistics, compacts and
 * takes checkpoints of the mounted store (protocol: fs/CTL.md).
 *
 * Why a socket in the store: the daemon holds the engine's lock, so every
 * management action on a mounted store must go through it; the mount's
 * source field is the store path, so a client finds the socket from the
 * mount point alone. The store directory is the natural place for a
 * per-store endpoint with owner-only permissions.
 *
 * One thread accepts connections and serves them one at a time: read one
 * request line, check, dispatch, write the reply, close. A request that
 * takes long (compact, snapshot-list space, checkpoint) delays the next
 * client; a client that sends nothing is dropped after CTL_IDLE_MS.
 *
 * Invariants:
 *  1. Only root and the daemon's uid (SO_PEERCRED) get past the first
 *     check; others get "error 1" (EPERM) without their line being read.
 *  2. Every connection gets at most one reply, then is closed. Bad input
 *     (oversized or unterminated line, bad encoding, unknown verb, wrong
 *     arity, another protocol version) gets an error reply, never a
 *     crash; a reply may be lost when the client is gone (ignored).
 *  3. The request is read against one deadline of CTL_IDLE_MS in total,
 *     so a client trickling bytes cannot hold the thread longer either.
 *  4. Checkpoints live only in STORE/checkpoints/ckpt-*; the daemon
 *     removes every entry of that directory at start, and
 *     checkpoint-release removes only a direct child named ckpt-*. The
 *     engine's own files in STORE are never touched.
 *  5. A checkpoint reply names a snapshot the checkpoint holds: the
 *     snapshot's id is the same before and after lsm_checkpoint (ids are
 *     never reused), so it existed throughout.
 *
 * Threads: ctl_start/ctl_stop run on the main thread. The control thread
 * owns struct ctl_server's fields after ctl_start (counters included); it
 * calls the engine and snap_create/snap_delete holding no fs lock, takes
 * space.mu and alloc_mu (leaf locks) only to read counters. ctl_stop
 * wakes it through a pipe and joins it; the request in progress (which
 * may be a long compaction) finishes first.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "fs.h"
#include "snap.h"

#define CTL_MAX_TOKENS 8
/* Nested directories rm_tree descends (a checkpoint is flat). */
#define CTL_RM_DEPTH_MAX 4
/* Bytes of an unread rest drained before close (so that the client
 * reads our reply, not a reset). */
#define CTL_DRAIN_MAX (4u << 20)
#define CTL_MSG_MAX 512

struct ctl_server {
	struct lsmfs *fs;
	int listen_fd;
	int store_fd; /* O_PATH handle of STORE (long socket paths) */
	int ckpt_fd;  /* STORE/checkpoints, opened O_DIRECTORY */
	int wake_fd[2];
	bool has_thread;
	pthread_t thread;
	char *ckpt_dir; /* absolute STORE/checkpoints */
	char *line;     /* CTL_LINE_MAX + 1 bytes */
	/* Control thread only. */
	uint64_t n_ckpts; /* checkpoints made, for unique names */
	uint64_t n_requests;
	uint64_t n_errors;
	uint64_t n_refused; /* peers refused by SO_PEERCRED */
};

/* A growing reply body. */
struct rbuf {
	char *p;
	size_t len;
	size_t cap;
	bool is_oom;
};

static void rb_printf(struct rbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void rb_printf(struct rbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->is_oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->is_oom = true;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap * 2 + (size_t)n + 256;
		char *p = realloc(b->p, cap);

		if (!p) {
			b->is_oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

/* A failed verb: a positive errno and a one-line message. */
struct ctl_err {
	int err;
	char msg[CTL_MSG_MAX];
};

static int fail(struct ctl_err *e, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct ctl_err *e, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	e->err = err;
	return -1;
}

/* An engine status as an error: errno by fs_errno, the engine's words. */
static int fail_engine(struct ctl_err *e, int rc, const char *what)
{
	const char *detail = lsm_errdetail();

	return fail(e, fs_errno(rc), "%s: %s%s%s", what, lsm_strerror(rc),
		    *detail ? ": " : "", detail);
}

/* name percent-encoded, cut to fit a message. */
static void show_name(const char *name, char *out, size_t cap)
{
	size_t len = strlen(name);

	if (len > 160)
		len = 160;
	if (cap < ctl_encoded_len(name, len) + 4) {
		snprintf(out, cap, "?");
		return;
	}
	ctl_encode(name, len, out);
	if (strlen(name) > len)
		strcat(out, "...");
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- checkpoint directory ---- */

/* Removes name (a file or a directory tree) under dirfd without following
 * symlinks. 0 or -errno (the first failure; it goes on). */
static int rm_tree(int dirfd, const char *name, int depth)
{
	struct dirent *de;
	DIR *d;
	int fd, rc = 0;

	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	if (depth >= CTL_RM_DEPTH_MAX)
		return -ELOOP;
	fd = openat(dirfd, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while ((de = readdir(d))) {
		int r;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		r = rm_tree(fd, de->d_name, depth + 1);
		if (r && !rc)
			rc = r;
	}
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && !rc)
		rc = -errno;
	return rc;
}

/* Creates STORE/checkpoints if needed and empties it (invariant 4). */
static int ckpt_dir_init(struct ctl_server *s)
{
	struct lsmfs *fs = s->fs;
	struct dirent *de;
	int fd, rc = 0, n = 0;
	DIR *d;

	if (mkdirat(s->store_fd, CTL_CKPT_DIR, 0700) != 0 && errno != EEXIST)
		goto out_errno;
	s->ckpt_fd = openat(s->store_fd, CTL_CKPT_DIR,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s->ckpt_fd < 0)
		goto out_errno;
	fd = dup(s->ckpt_fd);
	if (fd < 0)
		goto out_errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		goto out_errno;
	}
	while ((de = readdir(d))) {
		int r;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		r = rm_tree(s->ckpt_fd, de->d_name, 0);
		if (r) {
			fs_log(fs, LOG_WARNING, "%s/%s: cannot remove: %s",
			       s->ckpt_dir, de->d_name, strerror(-r));
			if (!rc)
				rc = r;
		} else {
			n++;
		}
	}
	closedir(d);
	if (n)
		fs_log(fs, LOG_INFO, "removed %d leftover checkpoint(s)", n);
	/* A leftover we cannot remove costs space, not correctness. */
	return 0;
out_errno:
	rc = -errno;
	fs_log(fs, LOG_ERR, "%s: %s", s->ckpt_dir, strerror(-rc));
	return rc;
}

/* ---- snapshots ---- */

static int snap_fail(struct ctl_err *e, int rc, const char *name)
{
	char shown[256];
	int err;

	show_name(name, shown, sizeof(shown));
	switch (-rc) {
	case EEXIST:
		return fail(e, EEXIST, "snapshot \"%s\" exists", shown);
	case ENOENT:
		return fail(e, ENOENT, "no snapshot \"%s\"", shown);
	case EINVAL:
		return fail(e, EINVAL,
			    "bad snapshot name \"%s\": empty, \".\", \"..\" "
			    "or containing '/'",
			    shown);
	case ENAMETOOLONG:
		return fail(e, ENAMETOOLONG,
			    "snapshot name longer than %d bytes", FS_NAME_MAX);
	default:
		/* snap.c returns -errno; an engine code would not be one. */
		err = rc < 0 && rc > LSM_E_NOTFOUND ? -rc : fs_errno(rc);
		return fail(e, err, "snapshot \"%s\": %s", shown,
			    strerror(err));
	}
}

/* The snapshot called name: 0 and *out, or -ENOENT. */
static int snap_find(struct lsmfs *fs, const char *name, lsm_snapshot_info *out,
		     struct ctl_err *e)
{
	lsm_snapshot_info *a;
	size_t n;
	int rc;

	rc = lsm_snapshot_list(fs->db, 0, &a, &n);
	if (rc) {
		fail_engine(e, rc, "listing snapshots");
		return rc;
	}
	rc = -ENOENT;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(a[i].name, name)) {
			*out = a[i];
			rc = 0;
			break;
		}
	lsm_free(a);
	if (rc)
		snap_fail(e, rc, name);
	return rc;
}

static int verb_snapshot_create(struct ctl_server *s, char **args,
				size_t n_args, struct rbuf *body,
				struct ctl_err *e)
{
	lsm_snapshot_info info;
	int rc;

	(void)n_args;
	rc = snap_create(s->fs, args[0], &info, true);
	if (rc)
		return snap_fail(e, rc, args[0]);
	fs_log(s->fs, LOG_INFO, "snapshot %s created (id %" PRIu64 ")",
	       info.name, info.id);
	rb_printf(body, "%" PRIu64 " %" PRIu64 " %" PRId64 "\n", info.id,
		  info.seq, info.created_ns);
	return 0;
}

static int verb_snapshot_delete(struct ctl_server *s, char **args,
				size_t n_args, struct rbuf *body,
				struct ctl_err *e)
{
	int rc;

	(void)n_args;
	(void)body;
	rc = snap_delete(s->fs, args[0], true);
	if (rc)
		return snap_fail(e, rc, args[0]);
	fs_log(s->fs, LOG_INFO, "snapshot %s deleted", args[0]);
	return 0;
}

static int verb_snapshot_list(struct ctl_server *s, char **args, size_t n_args,
			      struct rbuf *body, struct ctl_err *e)
{
	lsm_snapshot_info *a;
	int flags = 0, rc;
	size_t n;

	if (n_args == 1) {
		if (strcmp(args[0], "space") != 0)
			return fail(e, EINVAL,
				    "snapshot-list takes no argument or "
				    "\"space\"");
		flags = LSM_SNAPSHOT_SPACE;
	}
	rc = lsm_snapshot_list(s->fs->db, flags, &a, &n);
	if (rc)
		return fail_engine(e, rc, "listing snapshots");
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(a[i].name);
		char enc[3 * LSM_SNAPSHOT_NAME_MAX + 1];

		ctl_encode(a[i].name, len, enc);
		rb_printf(body,
			  "%" PRIu64 " %" PRIu64 " %" PRId64 " %" PRIu64
			  " %s\n",
			  a[i].id, a[i].seq, a[i].created_ns,
			  a[i].exclusive_bytes, enc);
	}
	lsm_free(a);
	return 0;
}

/* ---- stats ---- */

/*
 * Rewrites the engine's "lsm.stats" text as NAME VALUE lines: "name
 * value  # doc" -> lsm_name value; a decimal "x.yyy" -> lsm_name_x1000
 * with the value times 1000; the level table "Ln files bytes" ->
 * lsm_level<n>_files, lsm_level<n>_bytes. Other lines are skipped.
 */
static void stats_engine(const char *text, struct rbuf *body)
{
	const char *p = text;

	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		char line[512], name[128], val[64];
		unsigned lvl;
		unsigned long long a, b;

		if (len < sizeof(line)) {
			memcpy(line, p, len);
			line[len] = '\0';
			if (sscanf(line, "L%u %llu %llu", &lvl, &a, &b) == 3) {
				rb_printf(body, "lsm_level%u_files %llu\n", lvl,
					  a);
				rb_printf(body, "lsm_level%u_bytes %llu\n", lvl,
					  b);
			} else if (strstr(line, "  # ") &&
				   sscanf(line, "%127s %63s", name, val) == 2) {
				char *dot = strchr(val, '.'), *end;

				if (dot) {
					*dot = '\0';
					a = strtoull(val, &end, 10);
					b = strtoull(dot + 1, NULL, 10);
					if (!*end && strlen(dot + 1) == 3)
						rb_printf(body,
							  "lsm_%s_x1000 %llu\n",
							  name, a * 1000 + b);
				} else {
					a = strtoull(val, &end, 10);
					if (!*end)
						rb_printf(body, "lsm_%s %llu\n",
							  name, a);
				}
			}
		}
		p += len;
		if (*p == '\n')
			p++;
	}
}

static int verb_stats(struct ctl_server *s, char **args, size_t n_args,
		      struct rbuf *body, struct ctl_err *e)
{
	struct lsmfs *fs = s->fs;
	struct lsmfs_space *sp = &fs->space;
	lsm_snapshot_info *a;
	uint64_t reserve, avail, refused, reclaims, next_ino;
	char *text;
	size_t n;
	int rc;

	(void)args;
	(void)n_args;
	rc = lsm_property(fs->db, "lsm.stats", &text);
	if (rc)
		return fail_engine(e, rc, "engine statistics");
	stats_engine(text, body);
	lsm_free(text);
	rc = lsm_snapshot_list(fs->db, 0, &a, &n);
	if (rc)
		return fail_engine(e, rc, "listing snapshots");
	lsm_free(a);

	pthread_mutex_lock(&sp->mu);
	reserve = sp->reserve;
	avail = sp->avail > sp->added ? sp->avail - sp->added : 0;
	refused = sp->n_refused;
	reclaims = sp->n_reclaims;
	pthread_mutex_unlock(&sp->mu);
	pthread_mutex_lock(&fs->alloc_mu);
	next_ino = fs->next_ino;
	pthread_mutex_unlock(&fs->alloc_mu);

	rb_printf(body, "lsmfs_snapshots %zu\n", n);
	rb_printf(body, "lsmfs_next_ino %" PRIu64 "\n", next_ino);
	rb_printf(body, "lsmfs_space_reserve_bytes %" PRIu64 "\n", reserve);
	rb_printf(body, "lsmfs_space_avail_bytes %" PRIu64 "\n", avail);
	rb_printf(body, "lsmfs_space_refused %" PRIu64 "\n", refused);
	rb_printf(body, "lsmfs_space_reclaims %" PRIu64 "\n", reclaims);
	rb_printf(body, "lsmfs_ctl_requests %" PRIu64 "\n", s->n_requests);
	rb_printf(body, "lsmfs_ctl_errors %" PRIu64 "\n", s->n_errors);
	rb_printf(body, "lsmfs_ctl_refused %" PRIu64 "\n", s->n_refused);
	return 0;
}

/* ---- compact, checkpoints ---- */

static int verb_compact(struct ctl_server *s, char **args, size_t n_args,
			struct rbuf *body, struct ctl_err *e)
{
	int rc;

	(void)args;
	(void)n_args;
	(void)body;
	fs_log(s->fs, LOG_INFO, "full compaction requested");
	/* The memtable first, so that the compaction covers everything. */
	rc = lsm_flush(s->fs->db);
	if (rc)
		return fail_engine(e, rc, "flush");
	rc = lsm_compact_range(s->fs->db, NULL, 0, NULL, 0);
	if (rc)
		return fail_engine(e, rc, "compaction");
	return 0;
}

static int verb_checkpoint(struct ctl_server *s, char **args, size_t n_args,
			   struct rbuf *body, struct ctl_err *e)
{
	struct lsmfs *fs = s->fs;
	lsm_snapshot_info before, after;
	char base[96], *path, *ident = NULL;
	int rc;

	(void)n_args;
	if (snap_find(fs, args[0], &before, e))
		return -1;
	snprintf(base, sizeof(base), CTL_CKPT_PREFIX "%ld-%" PRIu64 "-%lld",
		 (long)getpid(), ++s->n_ckpts, (long long)time(NULL));
	path = malloc(strlen(s->ckpt_dir) + strlen(base) + 2);
	if (!path)
		return fail(e, ENOMEM, "out of memory");
	sprintf(path, "%s/%s", s->ckpt_dir, base);
	rc = lsm_checkpoint(fs->db, path);
	if (rc) {
		fail_engine(e, rc, "checkpoint");
		goto out_remove;
	}
	/* invariant 5 */
	if (snap_find(fs, args[0], &after, e))
		goto out_remove;
	if (after.id != before.id) {
		snap_fail(e, -ENOENT, args[0]);
		goto out_remove;
	}
	rc = lsm_property(fs->db, "lsm.identity", &ident);
	if (rc) {
		fail_engine(e, rc, "store identity");
		goto out_remove;
	}
	rb_printf(body, "%s\n%" PRIu64 " %" PRIu64 " %" PRId64 "\n%s\n", path,
		  before.id, before.seq, before.created_ns, ident);
	lsm_free(ident);
	fs_log(fs, LOG_INFO, "checkpoint %s of snapshot %s", base, before.name);
	free(path);
	return 0;
out_remove:
	rc = rm_tree(s->ckpt_fd, base, 0);
	if (rc)
		fs_log(fs, LOG_WARNING, "%s: cannot remove: %s", path,
		       strerror(-rc));
	free(path);
	return -1;
}

static int verb_checkpoint_release(struct ctl_server *s, char **args,
				   size_t n_args, struct rbuf *body,
				   struct ctl_err *e)
{
	const char *path = args[0], *base;
	size_t dlen = strlen(s->ckpt_dir);
	char shown[256];
	struct stat st;
	int rc;

	(void)n_args;
	(void)body;
	show_name(path, shown, sizeof(shown));
	base = path + dlen + 1;
	if (strncmp(path, s->ckpt_dir, dlen) != 0 || path[dlen] != '/' ||
	    strncmp(base, CTL_CKPT_PREFIX, strlen(CTL_CKPT_PREFIX)) != 0 ||
	    !base[strlen(CTL_CKPT_PREFIX)] || strchr(base, '/'))
		return fail(e, EINVAL, "%s: not a checkpoint of this store",
			    shown);
	if (fstatat(s->ckpt_fd, base, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return fail(e, errno, "%s: %s", shown, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return fail(e, EINVAL, "%s: not a checkpoint of this store",
			    shown);
	rc = rm_tree(s->ckpt_fd, base, 0);
	if (rc)
		return fail(e, -rc, "%s: cannot remove: %s", shown,
			    strerror(-rc));
	return 0;
}

/* ---- requests ---- */

struct verb {
	const char *name;
	size_t min_args, max_args;
	int (*fn)(struct ctl_server *s, char **args, size_t n_args,
		  struct rbuf *body, struct ctl_err *e);
};

static const struct verb verbs[] = {
	{"snapshot-create", 1, 1, verb_snapshot_create},
	{"snapshot-delete", 1, 1, verb_snapshot_delete},
	{"snapshot-list", 0, 1, verb_snapshot_list},
	{"stats", 0, 0, verb_stats},
	{"compact", 0, 0, verb_compact},
	{"checkpoint", 1, 1, verb_checkpoint},
	{"checkpoint-release", 1, 1, verb_checkpoint_release},
};

/* Parses and runs the request in line (NUL-terminated, no newline). */
static int handle_line(struct ctl_server *s, char *line, struct rbuf *body,
		       struct ctl_err *e)
{
	char *tok[CTL_MAX_TOKENS + 1];
	const struct verb *v = NULL;
	size_t n = 0;
	char *p = line;

	for (;;) {
		char *sp = strchr(p, ' ');

		if (n == CTL_MAX_TOKENS)
			return fail(e, EINVAL, "bad request: too many words");
		tok[n++] = p;
		if (!sp)
			break;
		*sp = '\0';
		p = sp + 1;
	}
	if (strcmp(tok[0], CTL_PROTO) != 0)
		return fail(e, EOPNOTSUPP,
			    "unsupported protocol version (this daemon "
			    "speaks " CTL_PROTO ")");
	for (size_t i = 1; i < n; i++) {
		if (!*tok[i])
			return fail(e, EINVAL,
				    "bad request: empty word (words are "
				    "separated by one space)");
		if (ctl_decode(tok[i]) != 0)
			return fail(e, EINVAL,
				    "bad request: word %zu is not "
				    "percent-encoded (bytes 0x21..0x7e "
				    "but '%%', %%XX for others, no %%00)",
				    i + 1);
	}
	if (n < 2)
		return fail(e, EINVAL, "bad request: no verb");
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(verbs[i].name, tok[1]))
			v = &verbs[i];
	if (!v) {
		char shown[256];

		show_name(tok[1], shown, sizeof(shown));
		return fail(e, EINVAL, "unknown verb \"%s\"", shown);
	}
	if (n - 2 < v->min_args || n - 2 > v->max_args)
		return fail(e, EINVAL, "%s takes %zu%s argument(s), not %zu",
			    v->name, v->min_args,
			    v->max_args > v->min_args ? " or 1" : "", n - 2);
	return v->fn(s, tok + 2, n - 2, body, e);
}

/*
 * Reads one line into s->line against a single deadline (invariant 3).
 * 0 and *len (the newline replaced by NUL), or -ETIMEDOUT, -EMSGSIZE,
 * -ENODATA (EOF before a newline), -ECANCELED (the daemon is stopping),
 * -errno.
 */
static int read_line(struct ctl_server *s, int fd, size_t *len_out)
{
	int64_t deadline = now_ms() + CTL_IDLE_MS;
	size_t len = 0;

	for (;;) {
		struct pollfd pfd[2] = {
			{.fd = fd, .events = POLLIN},
			{.fd = s->wake_fd[0], .events = POLLIN}};
		int64_t left = deadline - now_ms();
		ssize_t got;
		char *nl;
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(pfd, 2, (int)left);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		if (pfd[1].revents)
			return -ECANCELED;
		got = recv(fd, s->line + len, CTL_LINE_MAX - len, MSG_DONTWAIT);
		if (got < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (got == 0) {
			*len_out = len; /* bytes received before the close */
			return -ENODATA;
		}
		nl = memchr(s->line + len, '\n', (size_t)got);
		len += (size_t)got;
		if (nl) {
			*nl = '\0';
			*len_out = (size_t)(nl - s->line);
			return 0;
		}
		if (len >= CTL_LINE_MAX)
			return -EMSGSIZE;
	}
}

/* Writes everything or gives up (the client left, or stopped reading
 * for CTL_IDLE_MS: SO_SNDTIMEO). */
static void send_all(int fd, const char *p, size_t len)
{
	(void)ctl_send_all(fd, p, len); /* the client left: nothing to do */
}

static void send_error(int fd, const struct ctl_err *e)
{
	char line[CTL_MSG_MAX + 32];
	int n;

	n = snprintf(line, sizeof(line), "error %d %s", e->err, e->msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	/* One line, printable (invariant 2). */
	for (int i = 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = ' ';
	line[n++] = '\n';
	send_all(fd, line, (size_t)n);
}

/* Half-closes, drains what the client still sends (bounded), closes. */
static void conn_close(int fd)
{
	char buf[4096];
	size_t total = 0;

	shutdown(fd, SHUT_WR);
	while (total < CTL_DRAIN_MAX) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n <= 0)
			break;
		total += (size_t)n;
	}
	close(fd);
}

static void serve(struct ctl_server *s, int fd)
{
	struct timeval tv = {.tv_sec = CTL_IDLE_MS / 1000};
	struct rbuf body = {0};
	struct ctl_err e = {0};
	struct ucred cr;
	socklen_t cr_len = sizeof(cr);
	size_t len = 0;
	int rc;

	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cr_len) != 0) {
		fail(&e, EPERM, "permission denied: peer unknown (%s)",
		     strerror(errno));
		goto out_refuse;
	}
	if (cr.uid != 0 && cr.uid != getuid()) {
		fail(&e, EPERM,
		     "permission denied: uid %u may not control this "
		     "filesystem (only root and uid %u)",
		     (unsigned)cr.uid, (unsigned)getuid());
		goto out_refuse;
	}
	rc = read_line(s, fd, &len);
	if (rc == -ENODATA && len == 0) {
		/* Closed without a byte: a client checking that the daemon
		 * is there (lsmfsctl does before a backup), not a request. */
		conn_close(fd);
		return;
	}
	s->n_requests++;
	switch (rc) {
	case 0:
		if (strlen(s->line) != len)
			rc = fail(&e, EINVAL, "bad request: a NUL byte");
		else
			rc = handle_line(s, s->line, &body, &e);
		break;
	case -ETIMEDOUT:
		rc = fail(&e, ETIMEDOUT, "no request line within %d s",
			  CTL_IDLE_MS / 1000);
		break;
	case -EMSGSIZE:
		rc = fail(&e, EMSGSIZE, "request line longer than %d bytes",
			  CTL_LINE_MAX);
		break;
	case -ENODATA:
		rc = fail(&e, EINVAL,
			  "bad request: connection closed before the end "
			  "of the line");
		break;
	case -ECANCELED:
		rc = fail(&e, ESHUTDOWN, "the daemon is shutting down");
		break;
	default:
		rc = fail(&e, -rc, "reading the request: %s", strerror(-rc));
		break;
	}
	if (!rc && body.is_oom)
		rc = fail(&e, ENOMEM, "out of memory");
	if (rc) {
		s->n_errors++;
		send_error(fd, &e);
	} else {
		send_all(fd, "ok\n", 3);
		send_all(fd, body.p ? body.p : "", body.len);
	}
	free(body.p);
	conn_close(fd);
	return;
out_refuse:
	s->n_refused++;
	send_error(fd, &e);
	conn_close(fd);
}

static void *ctl_main(void *arg)
{
	struct ctl_server *s = arg;

	for (;;) {
		struct pollfd pfd[2] = {
			{.fd = s->listen_fd, .events = POLLIN},
			{.fd = s->wake_fd[0], .events = POLLIN}};
		int fd;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fs_log(s->fs, LOG_ERR, "control socket: poll: %s",
			       strerror(errno));
			break;
		}
		if (pfd[1].revents)
			break;
		if (!pfd[0].revents)
			continue;
		fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EINTR && errno != EAGAIN &&
			    errno != ECONNABORTED)
				fs_log(s->fs, LOG_WARNING,
				       "control socket: accept: %s",
				       strerror(errno));
			if (errno == EMFILE || errno == ENFILE)
				poll(NULL, 0, 100); /* let fds come back */
			continue;
		}
		serve(s, fd);
	}
	return NULL;
}

/* ---- start, stop ---- */

static void server_free(struct ctl_server *s)
{
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	if (s->ckpt_fd >= 0)
		close(s->ckpt_fd);
	if (s->store_fd >= 0)
		close(s->store_fd);
	for (int i = 0; i < 2; i++)
		if (s->wake_fd[i] >= 0)
			close(s->wake_fd[i]);
	free(s->ckpt_dir);
	free(s->line);
	free(s);
}

/* Binds STORE/ctl.sock (mode 0600) and listens. */
static int sock_init(struct ctl_server *s)
{
	const char *store = s->fs->opts->store;
	struct sockaddr_un sa;
	socklen_t sa_len;
	struct stat st;
	int rc;

	rc = ctl_sock_addr(store, s->store_fd, &sa, &sa_len);
	if (rc) {
		fs_log(s->fs, LOG_ERR, "%s/%s: path too long", store,
		       CTL_SOCK_NAME);
		return rc;
	}
	/* A stale socket of an earlier daemon: we hold the store's lock, so
	 * no live daemon owns it. Anything else there is not ours. */
	if (fstatat(s->store_fd, CTL_SOCK_NAME, &st, AT_SYMLINK_NOFOLLOW) ==
	    0) {
		if (!S_ISSOCK(st.st_mode)) {
			fs_log(s->fs, LOG_ERR,
			       "%s/%s exists and is not a socket", store,
			       CTL_SOCK_NAME);
			return -EEXIST;
		}
		if (unlinkat(s->store_fd, CTL_SOCK_NAME, 0) != 0)
			goto out_errno;
	}
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0)
		goto out_errno;
	if (bind(s->listen_fd, (struct sockaddr *)&sa, sa_len) != 0)
		goto out_errno;
	/* Before listen(): until then every connect is refused. */
	if (fchmodat(s->store_fd, CTL_SOCK_NAME, 0600, 0) != 0 ||
	    listen(s->listen_fd, 16) != 0) {
		rc = -errno;
		unlinkat(s->store_fd, CTL_SOCK_NAME, 0);
		errno = -rc;
		goto out_errno;
	}
	return 0;
out_errno:
	rc = -errno;
	fs_log(s->fs, LOG_ERR, "%s/%s: %s", store, CTL_SOCK_NAME,
	       strerror(-rc));
	return rc;
}

int ctl_start(struct lsmfs *fs)
{
	const char *store = fs->opts->store;
	struct ctl_server *s;
	sigset_t all, old;
	int rc;

	s = calloc(1, sizeof(*s));
	if (!s)
		goto out_nomem;
	s->fs = fs;
	s->listen_fd = s->store_fd = s->ckpt_fd = -1;
	s->wake_fd[0] = s->wake_fd[1] = -1;
	s->line = malloc(CTL_LINE_MAX + 1);
	s->ckpt_dir = malloc(strlen(store) + sizeof(CTL_CKPT_DIR) + 1);
	if (!s->line || !s->ckpt_dir)
		goto out_nomem;
	sprintf(s->ckpt_dir, "%s/%s", store, CTL_CKPT_DIR);
	s->store_fd = open(store, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s->store_fd < 0) {
		fs_log(fs, LOG_ERR, "%s: %s", store, strerror(errno));
		goto out_free;
	}
	if (ckpt_dir_init(s) != 0 || sock_init(s) != 0)
		goto out_free;
	if (pipe2(s->wake_fd, O_CLOEXEC) != 0) {
		fs_log(fs, LOG_ERR, "control socket: pipe: %s",
		       strerror(errno));
		goto out_unlink;
	}
	/* The thread takes no signals: SIGTERM and friends must reach the
	 * FUSE loop (their handlers end it). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&s->thread, NULL, ctl_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		fs_log(fs, LOG_ERR, "control socket: thread: %s", strerror(rc));
		goto out_unlink;
	}
	s->has_thread = true;
	fs->ctl = s;
	return 0;
out_nomem:
	fs_log(fs, LOG_ERR, "control socket: out of memory");
	goto out_free;
out_unlink:
	unlinkat(s->store_fd, CTL_SOCK_NAME, 0);
out_free:
	if (s)
		server_free(s);
	return -1;
}

void ctl_stop(struct lsmfs *fs)
{
	struct ctl_server *s = fs->ctl;
	char c = 1;

	if (!s)
		return;
	if (s->has_thread) {
		if (write(s->wake_fd[1], &c, 1) != 1)
			fs_log(fs, LOG_ERR, "control socket: wake: %s",
			       strerror(errno));
		pthread_join(s->thread, NULL);
	}
	/* The socket first: a client now gets "refused", not a hang. */
	close(s->listen_fd);
	s->listen_fd = -1;
	unlinkat(s->store_fd, CTL_SOCK_NAME, 0);
	server_free(s);
	fs->ctl = NULL;
}
