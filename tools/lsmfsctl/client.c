/*
 * client.c - the client side of the control socket (fs/CTL.md): find the
 * store behind an lsmfs mount point, connect to STORE/ctl.sock, send one
 * request, read the reply.
 *
 * Why from the mount point: that is what users know. The kernel's mount
 * table (/proc/self/mounts) gives, for a mount of type fuse.lsmfs, the
 * store path as its source (the daemon passes fsname=<absolute store>).
 *
 * Invariants:
 *  1. Each call is one connection (the daemon closes after its reply);
 *     ctl_open connects once to report a missing daemon early and the
 *     first call reuses that connection.
 *  2. Every failure prints exactly one line, prefixed "lsmfsctl: ".
 *  3. Arguments are percent-encoded with ctl_encode (fs/ctl.h), the same
 *     definition the daemon decodes with.
 *
 * Thread safety: a ctl_conn belongs to one thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "lsmfsctl.h"

struct ctl_conn {
	char *mount; /* as the user gave it */
	char *store; /* source of the mount: the store directory */
	int fd;      /* connection made by ctl_open, or -1 */
};

/* Undoes the \ooo escapes of /proc/self/mounts in place. */
static void unescape_mounts(char *s)
{
	char *out = s;

	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' &&
		    p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
			*out++ = (char)((p[1] - '0') << 6 | (p[2] - '0') << 3 |
					(p[3] - '0'));
			p += 3;
		} else {
			*out++ = *p;
		}
	}
	*out = '\0';
}

/* The canonical absolute path of mount. A mount point we may not stat
 * (another user's FUSE mount, or one whose daemon died: EACCES,
 * ENOTCONN) is resolved through its parent. NULL after printing. */
static char *abs_mount(const char *mount)
{
	char buf[PATH_MAX], *dir, *base, *slash, *res;
	int err;

	if (realpath(mount, buf))
		return strdup(buf);
	err = errno;
	if (err != EACCES && err != ENOTCONN && err != EIO) {
		fprintf(stderr, "lsmfsctl: %s: %s\n", mount, strerror(err));
		return NULL;
	}
	dir = strdup(mount);
	if (!dir)
		goto out_nomem;
	while (strlen(dir) > 1 && dir[strlen(dir) - 1] == '/')
		dir[strlen(dir) - 1] = '\0';
	slash = strrchr(dir, '/');
	base = slash ? slash + 1 : dir;
	if (slash)
		*slash = '\0';
	if (!realpath(slash ? (*dir ? dir : "/") : ".", buf)) {
		fprintf(stderr, "lsmfsctl: %s: %s\n", mount, strerror(err));
		free(dir);
		return NULL;
	}
	res = malloc(strlen(buf) + strlen(base) + 2);
	if (res)
		sprintf(res, "%s/%s", strcmp(buf, "/") ? buf : "", base);
	free(dir);
	if (res)
		return res;
out_nomem:
	fprintf(stderr, "lsmfsctl: out of memory\n");
	return NULL;
}

/* True if path is dir or lies below it. */
static int is_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (!strcmp(dir, "/"))
		return 1;
	return !strncmp(path, dir, n) && (path[n] == '/' || !path[n]);
}

/*
 * Finds the store of the lsmfs mounted at mount. 0 and *store
 * (malloc'd), or -1 after printing why not.
 */
static int find_store(const char *mount, char **store)
{
	char *path, *line = NULL, *src = NULL, *type = NULL;
	char *inner_type = NULL, *inner_at = NULL;
	size_t cap = 0;
	FILE *f;
	int rc = -1;

	path = abs_mount(mount);
	if (!path)
		return -1;
	f = fopen("/proc/self/mounts", "re");
	if (!f) {
		fprintf(stderr, "lsmfsctl: /proc/self/mounts: %s\n",
			strerror(errno));
		goto out_free;
	}
	while (getline(&line, &cap, f) > 0) {
		char *fields[3], *save = NULL, *p = line;
		int n = 0;

		while (n < 3 && (fields[n] = strtok_r(p, " \n", &save))) {
			p = NULL;
			n++;
		}
		if (n < 3)
			continue;
		unescape_mounts(fields[0]);
		unescape_mounts(fields[1]);
		/* The last entry for a path is the top of its stack. */
		if (!strcmp(fields[1], path)) {
			free(src);
			free(type);
			src = strdup(fields[0]);
			type = strdup(fields[2]);
		} else if (is_under(path, fields[1]) &&
			   (!inner_at ||
			    strlen(fields[1]) >= strlen(inner_at))) {
			free(inner_at);
			free(inner_type);
			inner_at = strdup(fields[1]);
			inner_type = strdup(fields[2]);
		}
	}
	fclose(f);
	if (!type) {
		if (inner_type && !strcmp(inner_type, "fuse.lsmfs"))
			fprintf(stderr,
				"lsmfsctl: %s: not a mount point (it is "
				"inside the lsmfs mount %s)\n",
				mount, inner_at);
		else
			fprintf(stderr, "lsmfsctl: %s: not a mount point\n",
				mount);
	} else if (strcmp(type, "fuse.lsmfs") != 0) {
		fprintf(stderr, "lsmfsctl: %s: not an lsmfs mount (type %s)\n",
			mount, type);
	} else if (!src || src[0] != '/') {
		fprintf(stderr,
			"lsmfsctl: %s: the mount's source \"%s\" is not a "
			"store path\n",
			mount, src ? src : "");
	} else {
		*store = src;
		src = NULL;
		rc = 0;
	}
out_free:
	free(line);
	free(src);
	free(type);
	free(inner_at);
	free(inner_type);
	free(path);
	return rc;
}

/* Connects to STORE/ctl.sock: 0 and *out, or -1 after printing. */
static int ctl_connect(const struct ctl_conn *c, int *out)
{
	struct sockaddr_un sa;
	socklen_t sa_len;
	int dir_fd, fd, err;

	/* Held open only for a path too long for sun_path. */
	dir_fd = open(c->store, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (ctl_sock_addr(c->store, dir_fd, &sa, &sa_len) != 0) {
		fprintf(stderr, "lsmfsctl: %s: %s\n", c->store,
			strerror(dir_fd < 0 ? errno : ENAMETOOLONG));
		if (dir_fd >= 0)
			close(dir_fd);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "lsmfsctl: socket: %s\n", strerror(errno));
		goto out_close_dir;
	}
	if (connect(fd, (struct sockaddr *)&sa, sa_len) != 0) {
		err = errno;
		if (err == ENOENT)
			fprintf(stderr,
				"lsmfsctl: %s: daemon is not running (no "
				"%s/%s)\n",
				c->mount, c->store, CTL_SOCK_NAME);
		else if (err == ECONNREFUSED)
			fprintf(stderr,
				"lsmfsctl: %s: daemon is not running (%s/%s "
				"refuses connections)\n",
				c->mount, c->store, CTL_SOCK_NAME);
		else if (err == EACCES || err == EPERM)
			fprintf(stderr,
				"lsmfsctl: %s/%s: permission denied (only "
				"root and the user who mounted %s may "
				"control it)\n",
				c->store, CTL_SOCK_NAME, c->mount);
		else
			fprintf(stderr, "lsmfsctl: %s/%s: %s\n", c->store,
				CTL_SOCK_NAME, strerror(err));
		close(fd);
		goto out_close_dir;
	}
	if (dir_fd >= 0)
		close(dir_fd);
	*out = fd;
	return 0;
out_close_dir:
	if (dir_fd >= 0)
		close(dir_fd);
	return -1;
}

int ctl_open(const char *mount, struct ctl_conn **out)
{
	struct ctl_conn *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (!c || !(c->mount = strdup(mount))) {
		fprintf(stderr, "lsmfsctl: out of memory\n");
		free(c);
		return -1;
	}
	c->fd = -1;
	if (find_store(mount, &c->store) != 0 || ctl_connect(c, &c->fd) != 0) {
		ctl_close(c);
		return -1;
	}
	*out = c;
	return 0;
}

void ctl_disconnect(struct ctl_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

const char *ctl_store(const struct ctl_conn *c)
{
	return c->store;
}

void ctl_close(struct ctl_conn *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->mount);
	free(c->store);
	free(c);
}

/* Reads until EOF into *buf (NUL-terminated). A reset after data counts
 * as the end (the daemon closed with our bytes unread). */
static int read_all(int fd, char **buf, size_t *len)
{
	size_t n = 0, cap = 4096;
	char *p = malloc(cap);

	if (!p)
		return -ENOMEM;
	for (;;) {
		ssize_t got;

		if (cap - n < 4096) {
			char *q = realloc(p, cap * 2);

			if (!q) {
				free(p);
				return -ENOMEM;
			}
			p = q;
			cap *= 2;
		}
		got = recv(fd, p + n, cap - n - 1, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ECONNRESET && n > 0)
				break;
			free(p);
			return -errno;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	p[n] = '\0';
	*buf = p;
	*len = n;
	return 0;
}

int ctl_call(struct ctl_conn *c, const char *verb, const char *const *args,
	     size_t n_args, char **body, size_t *body_len)
{
	char *req, *reply = NULL, *eol;
	size_t len, reply_len = 0;
	int fd, rc;

	len = strlen(CTL_PROTO) + 1 + strlen(verb) + 1;
	for (size_t i = 0; i < n_args; i++)
		len += 1 + ctl_encoded_len(args[i], strlen(args[i]));
	if (len > CTL_LINE_MAX) {
		fprintf(stderr,
			"lsmfsctl: arguments too long for one request (%zu "
			"bytes encoded, at most %d)\n",
			len, CTL_LINE_MAX);
		return -1;
	}
	req = malloc(len + 1);
	if (!req) {
		fprintf(stderr, "lsmfsctl: out of memory\n");
		return -1;
	}
	len = (size_t)sprintf(req, "%s %s", CTL_PROTO, verb);
	for (size_t i = 0; i < n_args; i++) {
		req[len++] = ' ';
		ctl_encode(args[i], strlen(args[i]), req + len);
		len += strlen(req + len);
	}
	req[len++] = '\n';

	if (c->fd >= 0) {
		fd = c->fd; /* invariant 1 */
		c->fd = -1;
	} else if (ctl_connect(c, &fd) != 0) {
		free(req);
		return -1;
	}
	rc = ctl_send_all(fd, req, len);
	free(req);
	/* A daemon that refuses us (uid) replies and closes without reading:
	 * our send may fail, its reply is still there to read. */
	if (!rc || rc == -EPIPE || rc == -ECONNRESET) {
		int rc2;

		shutdown(fd, SHUT_WR);
		rc2 = read_all(fd, &reply, &reply_len);
		if (rc2) {
			rc = rc2;
		} else if (rc && reply_len) {
			rc = 0;
		} else if (rc) {
			free(reply);
			reply = NULL;
		}
	}
	close(fd);
	if (rc) {
		fprintf(stderr, "lsmfsctl: %s: talking to the daemon: %s\n",
			c->mount, strerror(-rc));
		return -1;
	}
	eol = memchr(reply, '\n', reply_len);
	if (eol && !strncmp(reply, "ok\n", 3)) {
		len = reply_len - 3;
		memmove(reply, reply + 3, len + 1);
		*body = reply;
		if (body_len)
			*body_len = len;
		return 0;
	}
	if (eol && !strncmp(reply, "error ", 6)) {
		char *msg = strchr(reply + 6, ' ');

		*eol = '\0';
		fprintf(stderr, "lsmfsctl: %s\n", msg ? msg + 1 : reply);
	} else if (!reply_len) {
		fprintf(stderr,
			"lsmfsctl: %s: the daemon closed the connection "
			"without a reply\n",
			c->mount);
	} else {
		fprintf(stderr,
			"lsmfsctl: %s: unreadable reply from the "
			"daemon\n",
			c->mount);
	}
	free(reply);
	return -1;
}
