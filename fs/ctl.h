/*
 * ctl.h - the control socket (fs/CTL.md): protocol constants and the
 * argument encoding shared by the daemon (fs/ctl.c) and lsmfsctl
 * (tools/lsmfsctl/client.c), and the daemon's start/stop calls.
 *
 * The encoding helpers are static inline because the two programs share
 * no library: this header is the one definition both compile.
 */
#ifndef LSMFS_CTL_H
#define LSMFS_CTL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

/* First word of every request. */
#define CTL_PROTO "lsmfsctl/1"
/* The socket and the checkpoint directory, inside STORE. */
#define CTL_SOCK_NAME "ctl.sock"
#define CTL_CKPT_DIR "checkpoints"
#define CTL_CKPT_PREFIX "ckpt-"
/* Longest request line, its newline included. */
#define CTL_LINE_MAX 65536
/* A client has this long to send its request line (and to take the
 * reply off the socket). */
#define CTL_IDLE_MS 10000

/* True for a byte an argument may carry unencoded. */
/* Sends all of p on a stream socket (no SIGPIPE): 0 or -errno. */
static inline int ctl_send_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static inline int ctl_is_plain(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != '%';
}

/* Length of the encoding of s[0..len) (without a terminator). */
static inline size_t ctl_encoded_len(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += ctl_is_plain((unsigned char)s[i]) ? 1 : 3;
	return n;
}

/* Percent-encodes s[0..len) into out (ctl_encoded_len + 1 bytes): every
 * byte outside 0x21..0x7e, and '%', becomes %XX (uppercase hex). */
static inline void ctl_encode(const char *s, size_t len, char *out)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (ctl_is_plain(c)) {
			*out++ = (char)c;
		} else {
			*out++ = '%';
			*out++ = hex[c >> 4];
			*out++ = hex[c & 15];
		}
	}
	*out = '\0';
}

static inline int ctl_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes the NUL-terminated token s in place. -EINVAL for a '%' not
 * followed by two hex digits, a raw byte outside 0x21..0x7e, or an
 * encoded NUL (arguments are C strings on both sides). */
static inline int ctl_decode(char *s)
{
	char *out = s;

	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		int hi, lo;

		if (c != '%') {
			if (c < 0x21 || c > 0x7e)
				return -EINVAL;
			*out++ = (char)c;
			continue;
		}
		hi = ctl_hexval((unsigned char)p[1]);
		lo = hi < 0 ? -1 : ctl_hexval((unsigned char)p[2]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
			return -EINVAL;
		*out++ = (char)(hi << 4 | lo);
		p += 2;
	}
	*out = '\0';
	return 0;
}

/*
 * The address of STORE/ctl.sock. sun_path holds 108 bytes; a longer path
 * is reached through the store directory's descriptor (dir_fd, an
 * O_PATH handle the caller opened and keeps open across bind/connect)
 * as /proc/self/fd/N/ctl.sock. 0, or -ENAMETOOLONG when neither fits.
 */
static inline int ctl_sock_addr(const char *store, int dir_fd,
				struct sockaddr_un *sa, socklen_t *sa_len)
{
	size_t n = strlen(store) + 1 + strlen(CTL_SOCK_NAME);
	int w;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (n < sizeof(sa->sun_path)) {
		memcpy(sa->sun_path, store, strlen(store));
		sa->sun_path[strlen(store)] = '/';
		memcpy(sa->sun_path + strlen(store) + 1, CTL_SOCK_NAME,
		       strlen(CTL_SOCK_NAME));
	} else {
		if (dir_fd < 0)
			return -ENAMETOOLONG;
		w = snprintf(sa->sun_path, sizeof(sa->sun_path),
			     "/proc/self/fd/%d/%s", dir_fd, CTL_SOCK_NAME);
		if (w < 0 || (size_t)w >= sizeof(sa->sun_path))
			return -ENAMETOOLONG;
		n = (size_t)w;
	}
	*sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

/* Daemon side (ctl.c). */
struct lsmfs;
/* Removes leftover checkpoints, creates STORE/ctl.sock (mode 0600,
 * replacing a stale one) and starts the control thread. Call once the
 * store is open and the filesystem mounted. 0, or -1 after logging one
 * line. */
int ctl_start(struct lsmfs *fs);
/* Stops the thread (finishing the request in progress), removes the
 * socket. Call before the store is closed; safe if ctl_start failed or
 * was never called. */
void ctl_stop(struct lsmfs *fs);

#endif /* LSMFS_CTL_H */
