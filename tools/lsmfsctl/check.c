/*
 * check.c - `lsmfsctl check STORE`: an offline consistency check of an
 * unmounted lsmfs store, and the test aids debug-put / debug-del.
 *
 * Why offline: the daemon holds the engine's lock and caches records, so
 * a check of a mounted store would race it; the lock makes lsm_open fail
 * with LSM_E_BUSY, reported as "store is in use (mounted?)".
 *
 * What it checks (fs/FORMAT.md; records decoded with fs/keys.c and
 * fs/inode.c, the daemon's own code):
 *  - the superblock decodes and its next_ino is above every inode;
 *  - every record decodes; keys have the lengths of their kind; no key
 *    has an unknown prefix;
 *  - every dirent names a valid name, lives in an existing directory and
 *    points to an existing inode of the dirent's type (never the root);
 *  - every inode but the root is reachable from the root; a directory
 *    has exactly one entry and its ".." is that entry's directory;
 *  - link counts: a directory's nlink is 2 + its subdirectories, another
 *    inode's nlink is the number of entries naming it;
 *  - an inode with nlink 0 has an orphan key (O) and no entry; an orphan
 *    key has an inode with nlink 0 (orphans are listed, not problems:
 *    the next mount deletes them);
 *  - B and X keys belong to an existing inode (B: a regular file, with
 *    no byte at or past its size; X: an inode flagged as owning xattrs);
 *  - every value can be read: large values (data blocks) live in the
 *    engine's blob files and are read, and checksummed, through them; a
 *    value that cannot be read is a problem of its key, and the walk
 *    goes on after that key.
 *
 * How: pass 1 loads every inode record (I keys) into a sorted array;
 * pass 2 walks all other keys in order, recording the dirents as
 * (parent, child) edges, already sorted by parent; then a breadth-first
 * walk from the root over the edges finds the reachable inodes. Memory:
 * about 80 bytes per inode and 16 per dirent; data blocks are not kept.
 *
 * Invariants: the store is never written by `check` (debug-put/del
 * exist to damage stores for tests); every problem is one line on
 * stdout starting "problem: ". Exit 0 clean, 1 problems, 2 not checked.
 *
 * Thread safety: single-threaded.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctl.h"
#include "inode.h"
#include "keys.h"
#include "lsm.h"
#include "lsmfsctl.h"

/* Problems printed before the rest are only counted. */
#define CHECK_SHOW_MAX 1000

struct ck_inode {
	uint64_t ino;
	uint32_t mode;
	uint32_t flags;
	uint64_t nlink;
	uint64_t size;
	uint64_t parent;       /* the record's ".." (directories) */
	uint64_t n_entries;    /* dirents naming it */
	uint64_t n_subdirs;    /* dirents in it naming a directory */
	uint64_t entry_parent; /* directory of the first dirent naming it */
	bool is_bad;           /* the record does not decode */
	bool is_orphan;        /* has an O key */
	bool is_reachable;
};

struct ck_edge {
	uint64_t parent;
	uint64_t child;
};

struct check {
	const char *store;
	lsm_db *db;
	struct ck_inode *inodes; /* sorted by ino */
	size_t n_inodes, inodes_cap;
	struct ck_edge *edges; /* sorted by parent */
	size_t n_edges, edges_cap;
	struct lsmfs_super sb;
	bool has_sb;
	uint64_t n_problems;
	uint64_t n_dirs, n_dirents, n_blocks, n_xattrs, n_orphans;
	/* The last ino a B or X key problem was reported for: one line per
	 * inode, not per key. */
	uint64_t last_b_ino, last_x_ino;
};

static void problem(struct check *ck, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void problem(struct check *ck, const char *fmt, ...)
{
	va_list ap;

	if (++ck->n_problems > CHECK_SHOW_MAX)
		return;
	va_start(ap, fmt);
	fputs("problem: ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
}

/* Bytes as hex, cut after 40 bytes, for keys shown in problems. */
static const char *hex(const void *p, size_t len, char *out, size_t cap)
{
	const uint8_t *b = p;
	size_t n = len > 40 ? 40 : len, o = 0;

	for (size_t i = 0; i < n && o + 3 < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, "%02x", b[i]);
	if (n < len && o + 4 < cap)
		snprintf(out + o, cap - o, "...");
	return out;
}

/* A name fit for one line: printable bytes as is, others as \xNN. */
static const char *shown(const uint8_t *p, size_t len, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 5 < cap; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
			out[o++] = (char)p[i];
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x",
					      p[i]);
	}
	out[o] = '\0';
	return out;
}

static const char *type_name(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return "file";
	case S_IFDIR:
		return "directory";
	case S_IFLNK:
		return "symlink";
	case S_IFCHR:
		return "character device";
	case S_IFBLK:
		return "block device";
	case S_IFIFO:
		return "fifo";
	case S_IFSOCK:
		return "socket";
	default:
		return "unknown type";
	}
}

static struct ck_inode *find_inode(struct check *ck, uint64_t ino)
{
	size_t lo = 0, hi = ck->n_inodes;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ck->inodes[mid].ino < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < ck->n_inodes && ck->inodes[lo].ino == ino)
		return &ck->inodes[lo];
	return NULL;
}

static int iter_range(struct check *ck, char lo_c, char hi_c, lsm_iter **out)
{
	uint8_t lo = (uint8_t)lo_c, hi = (uint8_t)hi_c;
	lsm_iter_options o;

	/* lo_c 0 and hi_c 0: the whole key space. */
	lsm_iter_options_init(&o);
	o.lower = lo_c ? &lo : NULL;
	o.lower_len = lo_c ? 1 : 0;
	o.upper = hi_c ? &hi : NULL;
	o.upper_len = hi_c ? 1 : 0;
	o.fill_cache = false;
	return lsm_iter_new(ck->db, &o, out);
}

/* "inode 5 block 3", "inode 5" or "key 42..." for problem lines. */
static const char *key_name(const uint8_t *k, size_t klen, char *out,
			    size_t cap)
{
	char kh[96];

	if (klen == 17 && k[0] == KEY_BLOCK)
		snprintf(out, cap, "inode %" PRIu64 " block %" PRIu64,
			 key_get_be64(k + 1), key_get_be64(k + 9));
	else if (klen == 9 && k[0] == KEY_INODE)
		snprintf(out, cap, "inode %" PRIu64, key_get_be64(k + 1));
	else
		snprintf(out, cap, "key %s", hex(k, klen, kh, sizeof(kh)));
	return out;
}

/*
 * The value of the entry *it shows (key k). A value kept in a blob file
 * is read here, and that read can fail (a checksum mismatch, a short or
 * missing file), which leaves the iterator invalid. Such a failure is a
 * problem of that key, not the end of the check: it is reported, *it is
 * replaced by a new iterator over [lo_c, hi_c) placed just past k, and 0
 * is returned (the caller goes on without lsm_iter_next). 1: *v and *vlen
 * hold the value. < 0: an error that stops the check.
 */
static int entry_value(struct check *ck, lsm_iter **it, char lo_c, char hi_c,
		       const uint8_t *k, size_t klen, const uint8_t **v,
		       size_t *vlen)
{
	const uint8_t *val = lsm_iter_value(*it, vlen);
	uint8_t *past;
	char kn[112];
	int rc;

	if (lsm_iter_valid(*it)) {
		*v = val;
		return 1;
	}
	rc = lsm_iter_status(*it);
	if (rc != LSM_E_CORRUPT && rc != LSM_E_FORMAT && rc != -EIO &&
	    rc != -ENOENT)
		return rc ? rc : -EIO;
	problem(ck, "%s: value unreadable: %s%s%s",
		key_name(k, klen, kn, sizeof(kn)), lsm_strerror(rc),
		*lsm_errdetail() ? ": " : "", lsm_errdetail());
	/* k || 0x00 is the smallest key after k. */
	past = malloc(klen + 1);
	if (!past)
		return -ENOMEM;
	memcpy(past, k, klen);
	past[klen] = 0;
	lsm_iter_free(*it);
	*it = NULL;
	rc = iter_range(ck, lo_c, hi_c, it);
	if (!rc)
		lsm_iter_seek(*it, past, klen + 1);
	free(past);
	return rc;
}

/* Adds an inode to the table (zeroed but for its number). */
static int add_inode(struct check *ck, uint64_t ino, struct ck_inode **out)
{
	struct ck_inode *ci;

	if (ck->n_inodes == ck->inodes_cap) {
		size_t cap = ck->inodes_cap ? ck->inodes_cap * 2 : 1024;
		struct ck_inode *a = realloc(ck->inodes, cap * sizeof(*a));

		if (!a)
			return -ENOMEM;
		ck->inodes = a;
		ck->inodes_cap = cap;
	}
	ci = &ck->inodes[ck->n_inodes++];
	memset(ci, 0, sizeof(*ci));
	ci->ino = ino;
	*out = ci;
	return 0;
}

/* Pass 1: every I key. */
static int load_inodes(struct check *ck)
{
	lsm_iter *it;
	int rc;

	rc = iter_range(ck, KEY_INODE, KEY_INODE + 1, &it);
	if (rc)
		return rc;
	lsm_iter_first(it);
	while (lsm_iter_valid(it)) {
		size_t klen, vlen = 0, tlen;
		const uint8_t *k = lsm_iter_key(it, &klen);
		const uint8_t *v = NULL, *target;
		uint64_t ino = klen == 9 ? key_get_be64(k + 1) : 0;
		struct lsmfs_inode in;
		struct ck_inode *ci;
		char kh[96];

		if (klen != 9) {
			problem(ck, "inode key %s has %zu bytes, not 9",
				hex(k, klen, kh, sizeof(kh)), klen);
			lsm_iter_next(it);
			continue;
		}
		rc = entry_value(ck, &it, KEY_INODE, KEY_INODE + 1, k, klen, &v,
				 &vlen);
		if (rc < 0)
			break;
		if (rc == 0) {
			/* Reported, and the iterator is past it. The inode
			 * exists: no more lines about entries naming it. */
			rc = add_inode(ck, ino, &ci);
			if (rc)
				break;
			ci->is_bad = true;
			continue;
		}
		rc = add_inode(ck, ino, &ci);
		if (rc)
			break;
		if (inode_decode(v, vlen, ci->ino, &in, &target, &tlen) != 0) {
			problem(ck, "inode %" PRIu64 ": %s", ci->ino,
				inode_errdetail());
			ci->is_bad = true;
			lsm_iter_next(it);
			continue;
		}
		ci->mode = in.mode;
		ci->flags = in.flags;
		ci->nlink = in.nlink;
		ci->size = in.size;
		ci->parent = in.parent;
		if (S_ISDIR(in.mode))
			ck->n_dirs++;
		if (S_ISLNK(in.mode) && (tlen == 0 || tlen != in.size))
			problem(ck,
				"symlink %" PRIu64 ": target of %zu bytes, "
				"size %" PRIu64,
				ci->ino, tlen, in.size);
		if ((in.mode & S_IFMT) != S_IFREG &&
		    (in.mode & S_IFMT) != S_IFDIR &&
		    (in.mode & S_IFMT) != S_IFLNK &&
		    (in.mode & S_IFMT) != S_IFCHR &&
		    (in.mode & S_IFMT) != S_IFBLK &&
		    (in.mode & S_IFMT) != S_IFIFO &&
		    (in.mode & S_IFMT) != S_IFSOCK)
			problem(ck, "inode %" PRIu64 ": unknown file type %#o",
				ci->ino, in.mode & S_IFMT);
		lsm_iter_next(it);
	}
	if (!rc && it)
		rc = lsm_iter_status(it);
	lsm_iter_free(it);
	return rc;
}

static void check_super(struct check *ck, const uint8_t *k, size_t klen,
			const uint8_t *v, size_t vlen)
{
	char kh[96];

	if (klen != 1) {
		problem(ck, "unknown key %s (S prefix, %zu bytes)",
			hex(k, klen, kh, sizeof(kh)), klen);
		return;
	}
	if (sb_decode(v, vlen, &ck->sb) != 0) {
		problem(ck, "%s", inode_errdetail());
		return;
	}
	ck->has_sb = true;
}

static int add_edge(struct check *ck, uint64_t parent, uint64_t child)
{
	if (ck->n_edges == ck->edges_cap) {
		size_t cap = ck->edges_cap ? ck->edges_cap * 2 : 1024;
		struct ck_edge *a = realloc(ck->edges, cap * sizeof(*a));

		if (!a)
			return -ENOMEM;
		ck->edges = a;
		ck->edges_cap = cap;
	}
	ck->edges[ck->n_edges].parent = parent;
	ck->edges[ck->n_edges].child = child;
	ck->n_edges++;
	return 0;
}

static int check_dirent(struct check *ck, const uint8_t *k, size_t klen,
			const uint8_t *v, size_t vlen)
{
	const uint8_t *name = k + 9;
	size_t name_len = klen - 9;
	struct ck_inode *p, *c;
	uint64_t parent, child;
	char kh[96], nm[4 * KEY_NAME_MAX + 1];

	ck->n_dirents++;
	if (klen < 10 || klen > 9 + KEY_NAME_MAX) {
		problem(ck, "dirent key %s has %zu bytes",
			hex(k, klen, kh, sizeof(kh)), klen);
		return 0;
	}
	parent = key_get_be64(k + 1);
	shown(name, name_len, nm, sizeof(nm));
	if (memchr(name, '/', name_len) || memchr(name, 0, name_len) ||
	    (name_len == 1 && name[0] == '.') ||
	    (name_len == 2 && name[0] == '.' && name[1] == '.'))
		problem(ck,
			"entry \"%s\" in directory %" PRIu64
			": not a valid name",
			nm, parent);
	if (vlen != 9) {
		problem(ck,
			"entry \"%s\" in directory %" PRIu64
			": value of %zu bytes, not 9",
			nm, parent, vlen);
		return 0;
	}
	child = key_get_be64(v);
	p = find_inode(ck, parent);
	if (!p)
		problem(ck,
			"entry \"%s\" is in directory %" PRIu64
			", which does not exist",
			nm, parent);
	else if (!p->is_bad && !S_ISDIR(p->mode))
		problem(ck,
			"entry \"%s\" is in inode %" PRIu64
			", a %s, not a directory",
			nm, parent, type_name(p->mode));
	c = find_inode(ck, child);
	if (child == ROOT_INO) {
		problem(ck,
			"entry \"%s\" in directory %" PRIu64
			" names the root directory",
			nm, parent);
		return 0;
	}
	if (!c) {
		problem(ck,
			"entry \"%s\" in directory %" PRIu64
			" points to inode %" PRIu64 ", which does not "
			"exist",
			nm, parent, child);
		return 0;
	}
	if (!c->is_bad && v[8] != ((c->mode & S_IFMT) >> 12))
		problem(ck,
			"entry \"%s\" in directory %" PRIu64
			" has type %u but inode %" PRIu64 " is a %s",
			nm, parent, v[8], child, type_name(c->mode));
	if (c->n_entries++ == 0)
		c->entry_parent = parent;
	if (p && !c->is_bad && S_ISDIR(c->mode))
		p->n_subdirs++;
	return add_edge(ck, parent, child);
}

static void check_block(struct check *ck, const uint8_t *k, size_t klen,
			size_t vlen)
{
	struct ck_inode *ci;
	uint64_t ino, idx;
	char kh[96];

	if (klen != 17) {
		problem(ck, "block key %s has %zu bytes, not 17",
			hex(k, klen, kh, sizeof(kh)), klen);
		return;
	}
	ino = key_get_be64(k + 1);
	idx = key_get_be64(k + 9);
	if (ino == ck->last_b_ino)
		return; /* one line per inode */
	ci = find_inode(ck, ino);
	if (!ci) {
		ck->last_b_ino = ino;
		problem(ck,
			"data blocks of inode %" PRIu64
			", which does not exist",
			ino);
		return;
	}
	if (ci->is_bad)
		return;
	if (!S_ISREG(ci->mode)) {
		ck->last_b_ino = ino;
		problem(ck, "inode %" PRIu64 " (a %s) has data blocks", ino,
			type_name(ci->mode));
		return;
	}
	if (vlen > FS_BLOCK_SIZE || idx >= UINT64_MAX / FS_BLOCK_SIZE ||
	    idx * FS_BLOCK_SIZE + vlen > ci->size) {
		ck->last_b_ino = ino;
		problem(ck,
			"inode %" PRIu64 ": block %" PRIu64 " (%zu bytes) "
			"holds data at or past the size %" PRIu64,
			ino, idx, vlen, ci->size);
	}
}

static void check_xattr(struct check *ck, const uint8_t *k, size_t klen,
			size_t vlen)
{
	struct ck_inode *ci;
	uint64_t ino;
	char kh[96];

	ck->n_xattrs++;
	if (klen < 10 || klen > 9 + KEY_NAME_MAX) {
		problem(ck, "xattr key %s has %zu bytes",
			hex(k, klen, kh, sizeof(kh)), klen);
		return;
	}
	ino = key_get_be64(k + 1);
	if (vlen > 65536)
		problem(ck, "inode %" PRIu64 ": xattr value of %zu bytes", ino,
			vlen);
	if (ino == ck->last_x_ino)
		return;
	ci = find_inode(ck, ino);
	if (!ci) {
		ck->last_x_ino = ino;
		problem(ck, "xattrs of inode %" PRIu64 ", which does not exist",
			ino);
	} else if (!ci->is_bad && !(ci->flags & INODE_F_XATTRS)) {
		ck->last_x_ino = ino;
		problem(ck,
			"inode %" PRIu64 " has xattrs but not the flag "
			"that says so",
			ino);
	}
}

static void check_orphan(struct check *ck, const uint8_t *k, size_t klen,
			 size_t vlen)
{
	struct ck_inode *ci;
	uint64_t ino;
	char kh[96];

	if (klen != 9) {
		problem(ck, "orphan key %s has %zu bytes, not 9",
			hex(k, klen, kh, sizeof(kh)), klen);
		return;
	}
	ino = key_get_be64(k + 1);
	if (vlen)
		problem(ck,
			"orphan key of inode %" PRIu64
			" has a value (%zu bytes)",
			ino, vlen);
	ci = find_inode(ck, ino);
	if (!ci) {
		problem(ck,
			"orphan key of inode %" PRIu64 ", which does not exist",
			ino);
		return;
	}
	ci->is_orphan = true;
	ck->n_orphans++;
	if (ci->is_bad)
		return;
	if (ci->nlink)
		problem(ck,
			"orphan key of inode %" PRIu64 ", which has %" PRIu64
			" link(s)",
			ino, ci->nlink);
	else
		printf("orphan: inode %" PRIu64 " (%s, %" PRIu64
		       " bytes), unlinked while open; the next mount "
		       "deletes it\n",
		       ino, type_name(ci->mode), ci->size);
}

/* Pass 2: every key but the inodes, in key order. */
static int walk_keys(struct check *ck)
{
	uint8_t skip = KEY_INODE + 1;
	lsm_iter *it;
	int rc;

	rc = iter_range(ck, 0, 0, &it);
	if (rc)
		return rc;
	lsm_iter_first(it);
	while (!rc && lsm_iter_valid(it)) {
		size_t klen, vlen = 0;
		const uint8_t *k = lsm_iter_key(it, &klen);
		const uint8_t *v = NULL;
		char kh[96];

		if (klen && k[0] == KEY_INODE) {
			lsm_iter_seek(it, &skip, 1); /* pass 1 did them */
			continue;
		}
		if (klen && k[0] == KEY_BLOCK)
			ck->n_blocks++; /* also when unreadable */
		rc = entry_value(ck, &it, 0, 0, k, klen, &v, &vlen);
		if (rc <= 0)
			continue; /* reported (0) or fatal (< 0) */
		rc = 0;
		switch (klen ? k[0] : 0) {
		case KEY_SUPER:
			check_super(ck, k, klen, v, vlen);
			break;
		case KEY_DIRENT:
			rc = check_dirent(ck, k, klen, v, vlen);
			break;
		case KEY_BLOCK:
			check_block(ck, k, klen, vlen);
			break;
		case KEY_XATTR:
			check_xattr(ck, k, klen, vlen);
			break;
		case KEY_ORPHAN:
			check_orphan(ck, k, klen, vlen);
			break;
		default:
			problem(ck, "unknown key %s",
				hex(k, klen, kh, sizeof(kh)));
			break;
		}
		lsm_iter_next(it);
	}
	if (!rc && it)
		rc = lsm_iter_status(it);
	lsm_iter_free(it);
	return rc;
}

/* Marks every inode reachable from the root over the dirent edges. */
static int mark_reachable(struct check *ck)
{
	struct ck_inode *root = find_inode(ck, ROOT_INO);
	size_t *queue, head = 0, tail = 0;

	if (!root)
		return 0;
	queue = malloc((ck->n_inodes ? ck->n_inodes : 1) * sizeof(*queue));
	if (!queue)
		return -ENOMEM;
	root->is_reachable = true;
	queue[tail++] = (size_t)(root - ck->inodes);
	while (head < tail) {
		uint64_t dir = ck->inodes[queue[head++]].ino;
		size_t lo = 0, hi = ck->n_edges;

		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (ck->edges[mid].parent < dir)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < ck->n_edges && ck->edges[lo].parent == dir; lo++) {
			struct ck_inode *c =
				find_inode(ck, ck->edges[lo].child);

			if (!c || c->is_reachable)
				continue;
			c->is_reachable = true;
			if (!c->is_bad && S_ISDIR(c->mode))
				queue[tail++] = (size_t)(c - ck->inodes);
		}
	}
	free(queue);
	return 0;
}

/* The per-inode checks once every key was seen. */
static void check_inodes(struct check *ck)
{
	struct ck_inode *root = find_inode(ck, ROOT_INO);
	uint64_t top = ck->n_inodes ? ck->inodes[ck->n_inodes - 1].ino : 0;

	if (!ck->has_sb)
		problem(ck, "no valid superblock (key S)");
	else if (ck->sb.next_ino <= top)
		problem(ck,
			"superblock: next inode %" PRIu64
			" is not above the highest inode %" PRIu64,
			ck->sb.next_ino, top);
	if (!root)
		problem(ck, "the root directory (inode %d) is missing",
			ROOT_INO);
	else if (!root->is_bad && !S_ISDIR(root->mode))
		problem(ck, "the root (inode %d) is a %s, not a directory",
			ROOT_INO, type_name(root->mode));
	for (size_t i = 0; i < ck->n_inodes; i++) {
		struct ck_inode *c = &ck->inodes[i];
		bool is_root = c->ino == ROOT_INO;

		if (c->is_bad)
			continue;
		if (S_ISDIR(c->mode)) {
			if (c->nlink != 2 + c->n_subdirs)
				problem(ck,
					"directory %" PRIu64 ": nlink %" PRIu64
					", expected %" PRIu64 " (2 + %" PRIu64
					" subdirectories)",
					c->ino, c->nlink, 2 + c->n_subdirs,
					c->n_subdirs);
			if (!is_root && c->n_entries > 1)
				problem(ck,
					"directory %" PRIu64 " has %" PRIu64
					" entries naming it",
					c->ino, c->n_entries);
			if (is_root && c->parent != ROOT_INO)
				problem(ck, "the root's \"..\" is %" PRIu64,
					c->parent);
			if (!is_root && c->n_entries &&
			    c->parent != c->entry_parent)
				problem(ck,
					"directory %" PRIu64 ": \"..\" is "
					"%" PRIu64
					" but its entry is in %" PRIu64,
					c->ino, c->parent, c->entry_parent);
		} else if (c->nlink == 0) {
			if (!c->is_orphan)
				problem(ck,
					"inode %" PRIu64 " (%s) has no links "
					"and no orphan key",
					c->ino, type_name(c->mode));
			if (c->n_entries)
				problem(ck,
					"inode %" PRIu64 " has no links but "
					"%" PRIu64 " entries name it",
					c->ino, c->n_entries);
		} else if (c->n_entries && c->nlink != c->n_entries) {
			problem(ck,
				"inode %" PRIu64 " (%s): nlink %" PRIu64
				" but %" PRIu64 " entries name it",
				c->ino, type_name(c->mode), c->nlink,
				c->n_entries);
		}
		if (is_root || c->is_reachable)
			continue;
		if (c->is_orphan && !c->n_entries && !c->nlink)
			continue; /* unlinked while open: listed above */
		if (!c->n_entries)
			problem(ck,
				"inode %" PRIu64 " (%s) is not reachable: no "
				"entry names it",
				c->ino, type_name(c->mode));
		else
			problem(ck,
				"inode %" PRIu64 " (%s) is not reachable from "
				"the root (its directories are detached)",
				c->ino, type_name(c->mode));
	}
}

/* Opens an existing store (read-only: nothing in it changes, not even
 * by recovery): 0, or 2 after printing why not. */
static int open_store(const char *store, bool read_only, lsm_db **db)
{
	lsm_options o;
	struct stat st;
	int rc;

	if (stat(store, &st) != 0) {
		fprintf(stderr, "lsmfsctl: %s: %s\n", store, strerror(errno));
		return 2;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "lsmfsctl: %s: not a directory\n", store);
		return 2;
	}
	lsm_options_init(&o);
	o.create_if_missing = false;
	o.read_only = read_only;
	rc = lsm_open(store, &o, db);
	if (rc == LSM_E_BUSY) {
		fprintf(stderr, "lsmfsctl: %s: store is in use (mounted?)\n",
			store);
		return 2;
	}
	if (rc == LSM_E_NOSTORE) {
		fprintf(stderr, "lsmfsctl: %s: not an lsmfs store\n", store);
		return 2;
	}
	if (rc) {
		fprintf(stderr, "lsmfsctl: %s: cannot open the store: %s%s%s\n",
			store, lsm_strerror(rc), *lsm_errdetail() ? ": " : "",
			lsm_errdetail());
		return 2;
	}
	return 0;
}

int cmd_check(int argc, char **argv)
{
	struct check ck;
	int rc, status;

	if (argc != 2) {
		fprintf(stderr, "lsmfsctl: usage: lsmfsctl check STORE\n");
		return 2;
	}
	memset(&ck, 0, sizeof(ck));
	ck.store = argv[1];
	ck.last_b_ino = ck.last_x_ino = UINT64_MAX;
	status = open_store(ck.store, true, &ck.db);
	if (status)
		return status;
	rc = load_inodes(&ck);
	if (!rc)
		rc = walk_keys(&ck);
	if (!rc)
		rc = mark_reachable(&ck);
	if (rc) {
		fprintf(stderr, "lsmfsctl: %s: check stopped: %s%s%s\n",
			ck.store, lsm_strerror(rc),
			*lsm_errdetail() ? ": " : "", lsm_errdetail());
		status = 2;
		goto out_close;
	}
	check_inodes(&ck);
	if (ck.n_problems > CHECK_SHOW_MAX)
		printf("problem: ... and %" PRIu64 " more not shown\n",
		       ck.n_problems - CHECK_SHOW_MAX);
	printf("%s: %zu inodes (%" PRIu64 " directories), %" PRIu64
	       " entries, %" PRIu64 " blocks, %" PRIu64 " xattrs, %" PRIu64
	       " orphans: ",
	       ck.store, ck.n_inodes, ck.n_dirs, ck.n_dirents, ck.n_blocks,
	       ck.n_xattrs, ck.n_orphans);
	if (ck.n_problems)
		printf("%" PRIu64 " problem%s\n", ck.n_problems,
		       ck.n_problems == 1 ? "" : "s");
	else
		printf("no problems\n");
	status = ck.n_problems ? 1 : 0;
out_close:
	rc = lsm_close(ck.db);
	if (rc && status != 2) {
		fprintf(stderr, "lsmfsctl: %s: closing the store: %s\n",
			ck.store, lsm_strerror(rc));
		status = 2;
	}
	free(ck.inodes);
	free(ck.edges);
	return status;
}

/* ---- test aids ---- */

/* Decodes hex (any case, even length) into a malloc'd buffer. */
static int unhex(const char *s, uint8_t **out, size_t *len)
{
	size_t n = strlen(s);
	uint8_t *b;

	if (n % 2)
		return -EINVAL;
	b = malloc(n / 2 + 1);
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = ctl_hexval((unsigned char)s[2 * i]),
		    lo = ctl_hexval((unsigned char)s[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			free(b);
			return -EINVAL;
		}
		b[i] = (uint8_t)(hi << 4 | lo);
	}
	*out = b;
	*len = n / 2;
	return 0;
}

/*
 * debug-put STORE KEYHEX VALHEX / debug-del STORE KEYHEX: writes or
 * deletes one raw key of an unmounted store (synced). Only for tests that
 * damage stores on purpose; not in --help.
 */
int cmd_debug(int argc, char **argv)
{
	bool is_put = !strcmp(argv[0], "debug-put");
	uint8_t *key = NULL, *val = NULL;
	size_t klen, vlen = 0;
	lsm_db *db;
	int rc, status = 2;

	if (argc != (is_put ? 4 : 3)) {
		fprintf(stderr, "lsmfsctl: usage: lsmfsctl %s STORE KEYHEX%s\n",
			argv[0], is_put ? " VALHEX" : "");
		return 2;
	}
	if (unhex(argv[2], &key, &klen) != 0 || !klen ||
	    (is_put && unhex(argv[3], &val, &vlen) != 0)) {
		fprintf(stderr, "lsmfsctl: %s: bad hex argument\n", argv[0]);
		goto out_free;
	}
	if (open_store(argv[1], false, &db) != 0)
		goto out_free;
	rc = is_put ? lsm_put(db, key, klen, val, vlen, LSM_SYNC)
		    : lsm_delete(db, key, klen, LSM_SYNC);
	if (rc)
		fprintf(stderr, "lsmfsctl: %s: %s: %s\n", argv[1], argv[0],
			lsm_strerror(rc));
	else
		status = 0;
	rc = lsm_close(db);
	if (rc && !status) {
		fprintf(stderr, "lsmfsctl: %s: closing the store: %s\n",
			argv[1], lsm_strerror(rc));
		status = 2;
	}
out_free:
	free(key);
	free(val);
	return status;
}
