/*
 * main.c - the lsmfs daemon: arguments, store open (or creation), mount,
 * daemonizing, signals, the multi-threaded FUSE loop, clean unmount.
 *
 * Why: everything that can fail (arguments, the store, the mount point,
 * the mount itself) is checked before the parent process exits, so the
 * shell sees exit status 1 and a clear message, and nothing stays
 * mounted. Daemonizing forks before the store is opened (the engine
 * starts threads, which fork() would lose); the child reports success or
 * failure to the waiting parent through a pipe.
 *
 * States: parse -> check mount point -> [fork; parent waits] -> open
 * store (create superblock and root if new; sweep orphans) -> start the
 * space reserve (space.c) -> session new
 * -> mount -> control socket (ctl.c) -> report ok -> loop -> stop the
 * control socket -> unmount -> lsm_sync -> lsm_close.
 *
 * Invariants:
 *  1. The store path given to the kernel (fsname) is absolute.
 *  2. A new store is created in one synced batch: superblock + root.
 *  3. SIGTERM/SIGINT/SIGHUP and fusermount3 -u end the loop; the space
 *     reclaim thread is stopped, the store synced and closed and the
 *     exit status is 0.
 *
 * Thread safety: main thread only, apart from fs_log (any thread).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "fs.h"
#include "snap.h"

void fs_log(struct lsmfs *fs, int prio, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One message, one line: names from users (files, snapshots) may
	 * hold newlines or terminal escapes. */
	for (char *p = line; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (fs && fs->use_syslog)
		syslog(prio, "%s", line);
	else
		fprintf(stderr, "lsmfs: %s\n", line);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct lsmfs *fs = userdata;
	const struct lsmfs_opts *o = fs->opts;

	if (o->writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE)) {
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
		fs->writeback = true;
	} else
		conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	if (o->readdirplus && (conn->capable & FUSE_CAP_READDIRPLUS))
		conn->want |= FUSE_CAP_READDIRPLUS;
	else
		conn->want &= ~(unsigned)(FUSE_CAP_READDIRPLUS |
					  FUSE_CAP_READDIRPLUS_AUTO);
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	/* No lock ops: the kernel keeps flock/POSIX locks locally. */
	conn->want &= ~(unsigned)(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS |
				  FUSE_CAP_ATOMIC_O_TRUNC);
	conn->max_write = o->max_write;
}

static void op_destroy(void *userdata)
{
	struct lsmfs *fs = userdata;
	int rc = lsm_sync(fs->db);

	if (rc)
		fs_log(fs, LOG_ERR, "sync at unmount: %s", lsm_strerror(rc));
}

/* 1: directory has entries other than . and ..; 0: empty; -errno. */
static int dir_state(const char *path, bool *has_current)
{
	struct dirent *d;
	DIR *dir = opendir(path);
	int n = 0;

	if (!dir)
		return -errno;
	if (has_current)
		*has_current = false;
	while ((d = readdir(dir))) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		if (has_current && !strcmp(d->d_name, "CURRENT"))
			*has_current = true;
		n++;
	}
	closedir(dir);
	return n > 0;
}

static int init_store(struct lsmfs *fs)
{
	struct lsmfs_inode root;
	lsm_batch *b = lsm_batch_new();
	int rc;

	if (!b)
		return -ENOMEM;
	memset(&fs->sb, 0, sizeof(fs->sb));
	fs->sb.version = SB_VERSION;
	if (getrandom(fs->sb.uuid, sizeof(fs->sb.uuid), 0) !=
	    (ssize_t)sizeof(fs->sb.uuid))
		memset(fs->sb.uuid, 0x5a, sizeof(fs->sb.uuid));
	fs->sb.next_ino = INO_CHUNK;
	fs->sb.block_size = FS_BLOCK_SIZE;
	inode_now(&fs->sb.created);
	memset(&root, 0, sizeof(root));
	root.mode = S_IFDIR | 0755;
	root.uid = getuid();
	root.gid = getgid();
	root.nlink = 2;
	root.parent = ROOT_INO;
	root.atime = root.mtime = root.ctime = fs->sb.created;
	rc = fs_batch_put_super(fs, b, fs->sb.next_ino);
	if (!rc)
		rc = fs_batch_put_inode(b, ROOT_INO, &root, NULL, 0);
	if (!rc)
		rc = lsm_write(fs->db, b, LSM_SYNC);
	lsm_batch_free(b);
	return rc;
}

/* True if the store holds no key at all. */
static int store_is_empty(struct lsmfs *fs, bool *empty)
{
	lsm_iter_options io;
	lsm_iter *it;
	int rc;

	lsm_iter_options_init(&io);
	rc = lsm_iter_new(fs->db, &io, &it);
	if (rc)
		return rc;
	lsm_iter_first(it);
	*empty = !lsm_iter_valid(it);
	rc = lsm_iter_status(it);
	lsm_iter_free(it);
	return rc;
}

/* Highest inode number with a record (0 if none). */
static int max_ino(struct lsmfs *fs, uint64_t *out)
{
	uint8_t lo[1] = {KEY_INODE}, hi[1] = {KEY_INODE + 1};
	lsm_iter *it;
	int rc;

	rc = fs_iter_range(fs, NULL, lo, 1, hi, 1, &it);
	if (rc)
		return rc;
	lsm_iter_last(it);
	*out = 0;
	if (lsm_iter_valid(it)) {
		size_t klen;
		const uint8_t *k = lsm_iter_key(it, &klen);

		if (klen == 9)
			*out = key_get_be64(k + 1);
	}
	rc = lsm_iter_status(it);
	lsm_iter_free(it);
	return rc;
}

static int open_fail(const char *store, int rc)
{
	switch (rc) {
	case LSM_E_BUSY:
		fprintf(stderr, "lsmfs: %s: in use by another lsmfs\n", store);
		break;
	case LSM_E_CORRUPT:
		fprintf(stderr, "lsmfs: %s: store is corrupt: %s\n", store,
			lsm_errdetail());
		break;
	case LSM_E_NOSTORE:
		fprintf(stderr, "lsmfs: %s: not an lsmfs store\n", store);
		break;
	case LSM_E_FORMAT:
		fprintf(stderr,
			"lsmfs: %s: store format not supported by this "
			"lsmfs: %s\n",
			store, lsm_errdetail());
		break;
	default:
		fprintf(stderr, "lsmfs: %s: cannot open store: %s%s%s\n", store,
			lsm_strerror(rc), *lsm_errdetail() ? ": " : "",
			lsm_errdetail());
		break;
	}
	return -1;
}

static int store_open(struct lsmfs *fs, const struct lsmfs_opts *o)
{
	uint8_t key[1], sbuf[SB_LEN + 1];
	bool create = false, has_current, empty;
	lsm_options lo;
	struct stat st;
	uint64_t top;
	size_t len;
	int rc;

	if (stat(o->store, &st) != 0) {
		if (errno != ENOENT || mkdir(o->store, 0700) != 0) {
			fprintf(stderr, "lsmfs: %s: %s\n", o->store,
				strerror(errno));
			return -1;
		}
		create = true;
	} else if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "lsmfs: %s: not a directory\n", o->store);
		return -1;
	} else {
		rc = dir_state(o->store, &has_current);
		if (rc < 0) {
			fprintf(stderr, "lsmfs: %s: %s\n", o->store,
				strerror(-rc));
			return -1;
		}
		if (rc == 1 && !has_current) {
			fprintf(stderr, "lsmfs: %s: not an lsmfs store\n",
				o->store);
			return -1;
		}
		create = rc == 0;
	}
	lsm_options_init(&lo);
	lo.create_if_missing = create;
	/* Full data blocks go to blob files: written once, never moved by
	 * compaction (metadata rows stay in the tree). */
	lo.blob_threshold = FS_BLOCK_SIZE;
	rc = lsm_open(o->store, &lo, &fs->db);
	if (rc)
		return open_fail(o->store, rc);
	rc = lsm_get_into(fs->db, NULL, key, key_super(key), sbuf, sizeof(sbuf),
			  &len);
	if (rc == LSM_E_NOTFOUND) {
		rc = store_is_empty(fs, &empty);
		if (rc)
			goto out_fail;
		if (!empty) {
			fprintf(stderr,
				"lsmfs: %s: not an lsmfs store (an lsm store "
				"without an lsmfs superblock)\n",
				o->store);
			goto out_close;
		}
		rc = init_store(fs);
		if (rc)
			goto out_fail;
		fs_log(fs, LOG_INFO, "created a new filesystem in %s",
		       o->store);
	} else if (rc) {
		goto out_fail;
	} else {
		rc = sb_decode(sbuf, len > sizeof(sbuf) ? sizeof(sbuf) : len,
			       &fs->sb);
		if (rc == LSM_E_FORMAT) {
			fprintf(stderr,
				"lsmfs: %s: unsupported lsmfs format: "
				"%s\n",
				o->store, inode_errdetail());
			goto out_close;
		}
		if (rc) {
			fprintf(stderr, "lsmfs: %s: store is corrupt: %s\n",
				o->store, inode_errdetail());
			goto out_close;
		}
	}
	rc = max_ino(fs, &top);
	if (rc)
		goto out_fail;
	fs->next_ino = fs->sb.next_ino > top + 1 ? fs->sb.next_ino : top + 1;
	fs->chunk_end = fs->next_ino; /* the first create takes a chunk */
	fs->persisted_end = fs->sb.next_ino;
	{
		uint64_t n = 0;

		rc = orphan_sweep(fs, &n);
		if (rc)
			goto out_fail;
		if (n)
			fs_log(fs, LOG_INFO, "removed %llu orphan inode(s)",
			       (unsigned long long)n);
	}
	return 0;
out_fail:
	open_fail(o->store, rc);
out_close:
	lsm_close(fs->db);
	fs->db = NULL;
	return -1;
}

static int check_mountpoint(const struct lsmfs_opts *o)
{
	struct stat st;
	int rc;

	if (stat(o->mountpoint, &st) != 0) {
		fprintf(stderr, "lsmfs: mount point %s: %s\n", o->mountpoint,
			strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "lsmfs: mount point %s: not a directory\n",
			o->mountpoint);
		return -1;
	}
	rc = dir_state(o->mountpoint, NULL);
	if (rc < 0) {
		fprintf(stderr, "lsmfs: mount point %s: %s\n", o->mountpoint,
			strerror(-rc));
		return -1;
	}
	if (rc == 1 && !o->nonempty) {
		fprintf(stderr,
			"lsmfs: mount point %s is not empty (use -o "
			"nonempty to mount over it)\n",
			o->mountpoint);
		return -1;
	}
	return 0;
}

/* Forks; the parent waits for the child's verdict and exits with it. */
static int daemon_fork(int *report_fd)
{
	int p[2];
	pid_t pid;
	char c = 1;

	if (pipe(p) != 0) {
		perror("lsmfs: pipe");
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		perror("lsmfs: fork");
		return -1;
	}
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			c = 1; /* the child died before reporting */
		_exit(c);
	}
	close(p[0]);
	setsid();
	*report_fd = p[1];
	return 0;
}

static void daemon_report(struct lsmfs *fs, int fd, char status)
{
	int nul;

	if (fd < 0)
		return;
	if (status == 0) {
		nul = open("/dev/null", O_RDWR);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
			dup2(nul, 2);
			if (nul > 2)
				close(nul);
		}
		openlog("lsmfs", LOG_PID, LOG_DAEMON);
		fs->use_syslog = true;
	}
	if (write(fd, &status, 1) != 1)
		status = 1;
	close(fd);
}

int main(int argc, char **argv)
{
	struct fuse_args fargs = FUSE_ARGS_INIT(argc, argv);
	struct fuse_lowlevel_ops ops;
	struct fuse_loop_config *cfg;
	struct fuse_session *se;
	struct lsmfs_opts opts;
	struct lsmfs fs;
	int report_fd = -1, rc, status = 1;

	memset(&fs, 0, sizeof(fs));
	status = 1;
	if (opts_parse(argc, argv, &opts, &fargs) != 0)
		goto out_args;
	if (opts.show_help) {
		opts_usage(argv[0]);
		printf("\nFUSE options:\n");
		fuse_lowlevel_help();
		status = 0;
		goto out_args;
	}
	if (opts.show_version) {
		printf("lsmfs %s (lsm %s, libfuse %s)\n", LSMFS_VERSION,
		       LSM_VERSION_STRING, fuse_pkgversion());
		status = 0;
		goto out_args;
	}
	if (check_mountpoint(&opts) != 0)
		goto out_args;
	if (!opts.foreground && daemon_fork(&report_fd) != 0)
		goto out_args;
	fs.opts = &opts;
	pthread_mutex_init(&fs.alloc_mu, NULL);
	pthread_mutex_init(&fs.dir_handles_mu, NULL);
	fs.itab = itable_new();
	if (!fs.itab) {
		fprintf(stderr, "lsmfs: out of memory\n");
		goto out_report;
	}
	if (store_open(&fs, &opts) != 0)
		goto out_report;
	rc = space_init(&fs);
	if (rc) {
		fprintf(stderr, "lsmfs: cannot start: %s\n", strerror(-rc));
		goto out_close;
	}
	rc = snap_init(&fs);
	if (rc) {
		fprintf(stderr, "lsmfs: %s: cannot load the snapshots: %s\n",
			opts.store, strerror(-rc));
		goto out_close;
	}
	memset(&ops, 0, sizeof(ops));
	ops.init = op_init;
	ops.destroy = op_destroy;
	ops_attr_register(&ops);
	ops_dir_register(&ops);
	ops_file_register(&ops);
	ops_xattr_register(&ops);
	se = fuse_session_new(&fargs, &ops, sizeof(ops), &fs);
	if (!se) {
		fprintf(stderr, "lsmfs: bad FUSE options (see --help)\n");
		goto out_close;
	}
	fs.se = se;
	if (fuse_set_signal_handlers(se) != 0) {
		fprintf(stderr, "lsmfs: cannot install signal handlers\n");
		goto out_destroy;
	}
	if (fuse_session_mount(se, opts.mountpoint) != 0) {
		fprintf(stderr, "lsmfs: cannot mount on %s\n", opts.mountpoint);
		goto out_signals;
	}
	if (chdir("/") != 0)
		fs_log(&fs, LOG_WARNING, "chdir /: %s", strerror(errno));
	if (ctl_start(&fs) != 0) {
		fprintf(stderr, "lsmfs: cannot start the control socket\n");
		fuse_session_unmount(se);
		goto out_signals;
	}
	daemon_report(&fs, report_fd, 0);
	report_fd = -1;
	fs_log(&fs, LOG_INFO, "mounted %s on %s (reserve %llu bytes)",
	       opts.store, opts.mountpoint,
	       (unsigned long long)fs.space.reserve);
	cfg = fuse_loop_cfg_create();
	if (!cfg) {
		rc = -ENOMEM;
	} else {
		fuse_loop_cfg_set_max_threads(cfg, 16);
		rc = fuse_session_loop_mt(se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	/* rc > 0 is the signal that ended the loop: a clean exit. */
	status = rc < 0 ? 1 : 0;
	if (rc < 0)
		fs_log(&fs, LOG_ERR, "session loop: %s", strerror(-rc));
	ctl_stop(&fs);
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_destroy:
	fs.se = NULL;
	fuse_session_destroy(se);
out_close:
	dir_handles_release(&fs);
	space_release(&fs);
	snap_release(&fs);
	rc = lsm_sync(fs.db);
	if (rc)
		fs_log(&fs, LOG_ERR, "sync: %s", lsm_strerror(rc));
	rc = lsm_close(fs.db);
	if (rc) {
		fs_log(&fs, LOG_ERR, "close: %s", lsm_strerror(rc));
		status = 1;
	}
	if (status == 0)
		fs_log(&fs, LOG_INFO, "unmounted %s", opts.mountpoint);
out_report:
	daemon_report(&fs, report_fd, (char)status);
	itable_free(fs.itab);
	pthread_mutex_destroy(&fs.alloc_mu);
	pthread_mutex_destroy(&fs.dir_handles_mu);
out_args:
	opts_free(&opts);
	fuse_opt_free_args(&fargs);
	return status;
}
