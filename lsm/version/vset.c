/*
 * vset.c - the version set: current version, file numbers, MANIFEST and
 * CURRENT.
 *
 * The MANIFEST is a record log (wal/wal.h format) of version edits. The
 * first record of every manifest is a full snapshot of the state (format,
 * counters, every live file); later records are deltas. CURRENT holds
 * "MANIFEST-<number>\n" and is replaced atomically (write temp, sync,
 * rename, sync directory) only after the new manifest is synced.
 *
 * Invariants:
 *  1. An edit is installed in memory only after it is synced in the
 *     manifest, so memory never runs ahead of what recovery will see.
 *  2. If a manifest append fails, the manifest may end in a partial
 *     record; no further record is appended to it: the next edit starts a
 *     new manifest (a fresh snapshot) and switches CURRENT.
 *  3. A torn record at the end of a manifest is an edit that was never
 *     acknowledged; recovery ignores it.
 *  4. A blob file stays in the version while some reference the tree
 *     received (linked) is not yet garbage; the edit whose garbage makes
 *     linked == garbage drops it (no separate deletion record), so
 *     replaying the manifest reaches the same set.
 *
 * Thread-safety: everything here runs with the database mutex held (or
 * single-threaded at open and close).
 */
#include "version/version.h"

#include "util/ikey.h"
#include "util/status.h"
#include "wal/wal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Roll to a fresh manifest when the current one passes this size. */
#define MANIFEST_ROLL_BYTES (64ull << 20)

static int cmp_l0(const void *a, const void *b)
{
	const struct file_meta *x = *(struct file_meta *const *)a;
	const struct file_meta *y = *(struct file_meta *const *)b;
	if (x->largest_seq != y->largest_seq)
		return x->largest_seq > y->largest_seq ? -1 : 1;
	return x->number > y->number ? -1 : x->number < y->number;
}

static int cmp_by_key(const void *a, const void *b)
{
	const struct file_meta *x = *(struct file_meta *const *)a;
	const struct file_meta *y = *(struct file_meta *const *)b;
	int c = ikey_cmp(fm_smallest(x), fm_smallest(y));
	if (c)
		return c;
	return x->number < y->number ? -1 : x->number > y->number;
}

/* Sorts the levels of v and checks invariant 2 of version.c. */
static int version_finish(struct version *v, const char *what)
{
	for (int l = 0; l < LSM_MAX_LEVELS; l++) {
		size_t n = v->n_files[l];
		v->level_bytes[l] = 0;
		for (size_t i = 0; i < n; i++)
			v->level_bytes[l] += v->files[l][i]->size;
		if (n < 2)
			continue;
		qsort(v->files[l], n, sizeof(v->files[l][0]),
		      l == 0 ? cmp_l0 : cmp_by_key);
		if (l == 0)
			continue;
		for (size_t i = 0; i + 1 < n; i++) {
			struct slice a = fm_largest(v->files[l][i]);
			struct slice b = fm_smallest(v->files[l][i + 1]);
			int c = ikey_cmp(a, b);
			if (c < 0 || (c == 0 && ikey_kind(a) == IKEY_SENTINEL))
				continue;
			return LSM_CORRUPT(
				"%s: files %llu and %llu overlap in "
				"level %d",
				what,
				(unsigned long long)v->files[l][i]->number,
				(unsigned long long)v->files[l][i + 1]->number,
				l);
		}
	}
	return 0;
}

static struct version *version_alloc(struct vset *vs)
{
	struct version *v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	atomic_init(&v->refs, 1);
	v->vset = vs;
	return v;
}

static int level_push(struct version *v, int level, struct file_meta *f,
		      size_t *cap)
{
	if (v->n_files[level] == cap[level]) {
		size_t ncap = cap[level] ? cap[level] * 2 : 16;
		struct file_meta **a =
			realloc(v->files[level], ncap * sizeof(*a));
		if (!a)
			return -ENOMEM;
		v->files[level] = a;
		cap[level] = ncap;
	}
	file_meta_ref(f);
	v->files[level][v->n_files[level]++] = f;
	return 0;
}

static bool edit_deletes(const struct version_edit *e, int level,
			 uint64_t number)
{
	for (size_t i = 0; i < e->n_deleted; i++)
		if (e->deleted[i].level == level &&
		    e->deleted[i].number == number)
			return true;
	return false;
}

static const struct edit_blob *garbage_of(const struct version_edit *e,
					  uint64_t number)
{
	for (size_t i = 0; i < e->n_blob_garbage; i++)
		if (e->blob_garbage[i].number == number)
			return &e->blob_garbage[i];
	return NULL;
}

static int cmp_blob(const void *a, const void *b)
{
	const struct blob_meta *x = *(struct blob_meta *const *)a;
	const struct blob_meta *y = *(struct blob_meta *const *)b;
	return x->number < y->number ? -1 : x->number > y->number;
}

/* Does blob file b stay once e's garbage is counted (invariant 4)? */
static int blob_stays(const struct blob_meta *b, const struct edit_blob *g,
		      const char *what, bool *stays)
{
	uint64_t count = b->garbage_count + (g ? g->count : 0);
	uint64_t bytes = b->garbage_bytes + (g ? g->bytes : 0);
	if (count > b->linked_count || bytes > b->linked_bytes)
		return LSM_CORRUPT("%s: blob file %llu: more garbage (%llu "
				   "references, %llu bytes) than references "
				   "(%llu, %llu bytes)",
				   what, (unsigned long long)b->number,
				   (unsigned long long)count,
				   (unsigned long long)bytes,
				   (unsigned long long)b->linked_count,
				   (unsigned long long)b->linked_bytes);
	*stays = count < b->linked_count;
	return 0;
}

/* The blob files of base + e, into v. */
static int blobs_build(struct vset *vs, const struct version *base,
		       const struct version_edit *e, const char *what,
		       struct version *v)
{
	size_t cap = (base ? base->n_blobs : 0) + e->n_blobs_added;
	int rc = 0;
	v->blobs = calloc(cap ? cap : 1, sizeof(*v->blobs));
	if (!v->blobs)
		return -ENOMEM;
	for (size_t i = 0; i < e->n_blob_garbage; i++) {
		uint64_t n = e->blob_garbage[i].number;
		bool known = base && version_find_blob(base, n);
		for (size_t j = 0; j < e->n_blobs_added && !known; j++)
			known = e->blobs_added[j].number == n;
		if (!known)
			return LSM_CORRUPT("%s: garbage recorded for blob file "
					   "%llu, which the store does not "
					   "hold",
					   what, (unsigned long long)n);
	}
	for (size_t i = 0; base && i < base->n_blobs && !rc; i++) {
		struct blob_meta *b = base->blobs[i];
		bool stays = false;
		rc = blob_stays(b, garbage_of(e, b->number), what, &stays);
		if (!rc && stays) {
			blob_meta_ref(b);
			v->blobs[v->n_blobs++] = b;
		}
	}
	for (size_t i = 0; i < e->n_blobs_added && !rc; i++) {
		struct blob_meta *b = e->blobs_added[i].b;
		bool stays = false;
		if (base && version_find_blob(base, b->number))
			return LSM_CORRUPT("%s: blob file %llu added twice",
					   what, (unsigned long long)b->number);
		b->vset = vs;
		rc = blob_stays(b, garbage_of(e, b->number), what, &stays);
		if (!rc && stays) {
			blob_meta_ref(b);
			v->blobs[v->n_blobs++] = b;
		}
	}
	if (!rc && v->n_blobs > 1)
		qsort(v->blobs, v->n_blobs, sizeof(v->blobs[0]), cmp_blob);
	return rc;
}

/* Counts e's garbage into the blob files of base and e (sign +1), or
 * takes it back out (-1); with mark, files that leave are obsolete. */
static void blobs_commit(const struct version *base,
			 const struct version_edit *e, int sign, bool mark)
{
	for (size_t i = 0; i < e->n_blob_garbage; i++) {
		const struct edit_blob *g = &e->blob_garbage[i];
		struct blob_meta *b =
			base ? version_find_blob(base, g->number) : NULL;
		for (size_t j = 0; j < e->n_blobs_added && !b; j++)
			if (e->blobs_added[j].number == g->number)
				b = e->blobs_added[j].b;
		if (!b)
			continue; /* blobs_build refused the edit */
		b->garbage_count += (uint64_t)sign * g->count;
		b->garbage_bytes += (uint64_t)sign * g->bytes;
		if (mark && b->garbage_count >= b->linked_count)
			atomic_store_explicit(&b->obsolete, true,
					      memory_order_release);
	}
	for (size_t j = 0; mark && j < e->n_blobs_added; j++) {
		struct blob_meta *b = e->blobs_added[j].b;
		atomic_store_explicit(&b->obsolete,
				      b->garbage_count >= b->linked_count,
				      memory_order_release);
	}
}

/* base (may be NULL) + e -> *out. Files of e get f->vset = vs. */
static int version_build(struct vset *vs, const struct version *base,
			 const struct version_edit *e, const char *what,
			 struct version **out)
{
	size_t cap[LSM_MAX_LEVELS] = {0};
	struct version *v = version_alloc(vs);
	int rc = 0;
	if (!v)
		return -ENOMEM;
	for (int l = 0; base && l < LSM_MAX_LEVELS && !rc; l++)
		for (size_t i = 0; i < base->n_files[l] && !rc; i++) {
			struct file_meta *f = base->files[l][i];
			if (!edit_deletes(e, l, f->number))
				rc = level_push(v, l, f, cap);
		}
	for (size_t i = 0; i < e->n_added && !rc; i++) {
		if (e->added[i].level >= vs->cfg.num_levels) {
			rc = LSM_CORRUPT("%s: file %llu in level %d, beyond "
					 "the %d levels of this store",
					 what,
					 (unsigned long long)e->added[i].number,
					 e->added[i].level, vs->cfg.num_levels);
			break;
		}
		e->added[i].f->vset = vs;
		rc = level_push(v, e->added[i].level, e->added[i].f, cap);
	}
	if (!rc)
		rc = blobs_build(vs, base, e, what, v);
	if (!rc)
		rc = version_finish(v, what);
	if (rc) {
		version_unref(v);
		return rc;
	}
	*out = v;
	return 0;
}

static void vset_install(struct vset *vs, struct version *v)
{
	struct version *old = vs->current;
	vs->current = v;
	version_unref(old);
}

struct version *vset_current_ref(struct vset *vs)
{
	version_ref(vs->current);
	return vs->current;
}

uint64_t vset_new_file_number(struct vset *vs)
{
	return vs->next_file++;
}

/* The whole state of vs with version v, as one edit (the first record of
 * every manifest). */
static int full_edit(const struct vset *vs, const struct version *v,
		     uint64_t log_number, uint64_t max_snap_seq,
		     struct version_edit *e)
{
	int rc = 0;
	edit_init(e);
	e->has_format = true;
	e->format = LSM_STORE_FORMAT;
	e->has_log_number = true;
	e->log_number = log_number;
	e->has_next_file = true;
	e->next_file = vs->next_file;
	e->has_last_seq = true;
	e->last_seq = vs->last_seq;
	e->has_next_snap_id = true;
	e->next_snap_id = vs->next_snap_id;
	/* Leveled (0) is what a manifest without the tag means; older
	 * readers can still open such a store. */
	e->has_style = vs->style != 0;
	e->style = vs->style;
	for (int l = 0; v && l < LSM_MAX_LEVELS && !rc; l++)
		for (size_t i = 0; i < v->n_files[l] && !rc; i++) {
			struct file_meta *f = v->files[l][i];
			file_meta_ref(f);
			rc = edit_add_file(e, l, f);
			if (rc)
				file_meta_unref(f);
		}
	for (size_t i = 0; v && i < v->n_blobs && !rc; i++) {
		struct blob_meta *b = v->blobs[i];
		blob_meta_ref(b);
		rc = edit_add_blob(e, b);
		if (rc)
			blob_meta_unref(b);
		else if (b->garbage_count)
			rc = edit_add_blob_garbage(e, b->number,
						   b->garbage_count,
						   b->garbage_bytes);
	}
	for (size_t i = 0; i < vs->n_snaps && !rc; i++)
		if (vs->snaps[i].seq <= max_snap_seq)
			rc = edit_add_snap(e, &vs->snaps[i]);
	if (rc)
		edit_release(e);
	return rc;
}

/* Writes manifest `number` in dir holding e, synced. *wout gets the open
 * writer when not NULL (else it is closed). */
static int write_manifest_file(struct vset *vs, const char *dir,
			       uint64_t number, const struct version_edit *e,
			       struct wal_writer **wout)
{
	struct wal_writer *w = NULL;
	char path[4096];
	uint8_t *buf = NULL;
	size_t len;
	int rc = edit_encode(e, &buf, &len);
	if (rc)
		return rc;
	file_path(path, sizeof(path), dir, number, "MANIFEST");
	rc = walw_open(vs->cfg.env, path, &w);
	if (!rc) {
		rc = walw_add(w, buf, len);
		if (!rc)
			rc = walw_sync(w);
		if (rc || !wout) {
			int rc2 = walw_close(w);
			if (!rc)
				rc = rc2;
		}
		if (rc)
			vs->cfg.env->ops->remove_file(vs->cfg.env, path);
		else if (wout)
			*wout = w;
	}
	free(buf);
	return rc;
}

static int write_current_in(struct vset *vs, const char *dir,
			    uint64_t manifest_number)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "MANIFEST-%06llu\n",
			 (unsigned long long)manifest_number);
	return env_write_file_atomic(vs->cfg.env, dir, "CURRENT", buf,
				     (size_t)n);
}

int vset_write_snapshot(struct vset *vs)
{
	struct version_edit e;
	struct wal_writer *w = NULL;
	uint64_t number = vset_new_file_number(vs);
	uint64_t old_number = vs->manifest_number;
	char path[4096];
	int rc;

	rc = full_edit(vs, vs->current, vs->log_number, UINT64_MAX, &e);
	if (rc)
		return rc;
	rc = write_manifest_file(vs, vs->dir, number, &e, &w);
	edit_release(&e);
	if (rc)
		return rc;
	rc = write_current_in(vs, vs->dir, number);
	if (rc) {
		/* CURRENT may name the new manifest already (the rename
		 * happened, the directory sync failed): keep it. The next
		 * open removes whichever manifest CURRENT does not name. */
		walw_close(w);
		return rc;
	}
	if (vs->manifest)
		walw_close(vs->manifest);
	vs->manifest = w;
	vs->manifest_number = number;
	vs->manifest_bytes = walw_size(w);
	if (old_number) {
		file_path(path, sizeof(path), vs->dir, old_number, "MANIFEST");
		vs->cfg.env->ops->remove_file(vs->cfg.env, path);
	}
	return 0;
}

int vset_write_manifest_to(struct vset *vs, const struct version *v,
			   const char *dir, uint64_t manifest_number,
			   uint64_t log_number, uint64_t max_snap_seq)
{
	struct version_edit e;
	int rc = full_edit(vs, v, log_number, max_snap_seq, &e);
	if (rc)
		return rc;
	rc = write_manifest_file(vs, dir, manifest_number, &e, NULL);
	edit_release(&e);
	if (!rc)
		rc = write_current_in(vs, dir, manifest_number);
	return rc;
}

const struct named_snap *vset_find_snap(const struct vset *vs, const char *name)
{
	for (size_t i = 0; i < vs->n_snaps; i++)
		if (strcmp(vs->snaps[i].name, name) == 0)
			return &vs->snaps[i];
	return NULL;
}

/* The named-snapshot list vs would have after e, in *out (names copied;
 * *out NULL when e changes none). vs is not changed. */
static int snaps_build(const struct vset *vs, const struct version_edit *e,
		       const char *what, struct named_snap **out, size_t *nout)
{
	size_t n = 0, cap = vs->n_snaps + e->n_snaps_added;
	struct named_snap *a;
	int rc = 0;

	*out = NULL;
	*nout = 0;
	if (!e->n_snaps_added && !e->n_snaps_deleted)
		return 0;
	a = calloc(cap ? cap : 1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	for (size_t i = 0; i < vs->n_snaps && !rc; i++) {
		bool gone = false;
		for (size_t j = 0; j < e->n_snaps_deleted; j++)
			gone |= e->snaps_deleted[j] == vs->snaps[i].id;
		if (gone)
			continue;
		a[n] = vs->snaps[i];
		a[n].name = strdup(vs->snaps[i].name);
		rc = a[n++].name ? 0 : -ENOMEM;
	}
	for (size_t i = 0; i < e->n_snaps_added && !rc; i++) {
		const struct named_snap *ns = &e->snaps_added[i];
		for (size_t j = 0; j < n && !rc; j++)
			if (a[j].id == ns->id ||
			    strcmp(a[j].name, ns->name) == 0)
				rc = LSM_CORRUPT("%s: snapshot %llu (%s) "
						 "recorded twice",
						 what,
						 (unsigned long long)ns->id,
						 ns->name);
		if (rc)
			break;
		a[n] = *ns;
		a[n].name = strdup(ns->name);
		rc = a[n++].name ? 0 : -ENOMEM;
	}
	if (rc) {
		for (size_t i = 0; i < n; i++)
			free(a[i].name);
		free(a);
		return rc;
	}
	*out = a;
	*nout = n;
	return 0;
}

/* Installs what snaps_build made, and e's snapshot-id counter. */
static void snaps_commit(struct vset *vs, const struct version_edit *e,
			 struct named_snap *a, size_t n)
{
	if (e->has_next_snap_id && e->next_snap_id > vs->next_snap_id)
		vs->next_snap_id = e->next_snap_id;
	for (size_t i = 0; i < e->n_snaps_added; i++)
		if (e->snaps_added[i].id >= vs->next_snap_id)
			vs->next_snap_id = e->snaps_added[i].id + 1;
	if (!e->n_snaps_added && !e->n_snaps_deleted)
		return;
	for (size_t i = 0; i < vs->n_snaps; i++)
		free(vs->snaps[i].name);
	free(vs->snaps);
	vs->snaps = a;
	vs->n_snaps = n;
}

static struct vset *vset_alloc(const struct vset_config *cfg)
{
	struct vset *vs = calloc(1, sizeof(*vs));
	if (!vs)
		return NULL;
	vs->cfg = *cfg;
	vs->dir = strdup(cfg->dir);
	vs->cfg.dir = vs->dir;
	vs->current = version_alloc(vs);
	if (!vs->dir || !vs->current) {
		free(vs->dir);
		free(vs->current);
		free(vs);
		return NULL;
	}
	return vs;
}

void vset_free(struct vset *vs)
{
	if (!vs)
		return;
	if (vs->manifest)
		walw_close(vs->manifest);
	version_unref(vs->current);
	for (size_t i = 0; i < vs->n_snaps; i++)
		free(vs->snaps[i].name);
	free(vs->snaps);
	free(vs->dir);
	free(vs);
}

int vset_create(const struct vset_config *cfg, struct vset **out)
{
	struct vset *vs = vset_alloc(cfg);
	int rc;
	if (!vs)
		return -ENOMEM;
	vs->next_file = 1;
	vs->next_snap_id = 1;
	rc = vset_write_snapshot(vs);
	if (rc) {
		vset_free(vs);
		return rc;
	}
	*out = vs;
	return 0;
}

static int parse_current(const char *dir, const uint8_t *buf, size_t len,
			 uint64_t *number)
{
	uint64_t n = 0;
	size_t i;
	if (len < 10 || len > 40 || memcmp(buf, "MANIFEST-", 9) != 0 ||
	    buf[len - 1] != '\n')
		goto bad;
	for (i = 9; i < len - 1; i++) {
		if (buf[i] < '0' || buf[i] > '9' || n > UINT64_MAX / 10 - 10)
			goto bad;
		n = n * 10 + (uint64_t)(buf[i] - '0');
	}
	if (i == 9)
		goto bad;
	*number = n;
	return 0;
bad:
	return LSM_CORRUPT("%s/CURRENT: does not name a manifest (%zu bytes)",
			   dir, len);
}

int vset_recover(const struct vset_config *cfg, struct vset **out)
{
	struct vset *vs;
	struct wal_reader *r = NULL;
	uint8_t *cur = NULL;
	size_t cur_len;
	char path[4096];
	bool have_log = false, have_next = false, have_seq = false;
	bool have_format = false;
	struct slice rec;
	uint64_t off, number = 0;
	int rc;

	snprintf(path, sizeof(path), "%s/CURRENT", cfg->dir);
	rc = env_read_file(cfg->env, path, &cur, &cur_len);
	if (rc == -ENOENT)
		return lsm_err(LSM_E_NOSTORE, "%s: no CURRENT file", cfg->dir);
	if (rc)
		return rc;
	rc = parse_current(cfg->dir, cur, cur_len, &number);
	free(cur);
	if (rc)
		return rc;

	vs = vset_alloc(cfg);
	if (!vs)
		return -ENOMEM;
	file_path(path, sizeof(path), vs->dir, number, "MANIFEST");
	rc = walr_open(cfg->env, path, &r);
	if (rc == -ENOENT)
		rc = LSM_CORRUPT("%s: CURRENT names a missing manifest", path);
	if (rc)
		goto out_free;
	while ((rc = walr_next(r, &rec, &off)) == 1) {
		struct version_edit e;
		struct version *v;
		rc = edit_decode(&e, rec.p, rec.len, path, off);
		if (rc)
			goto out_close;
		if (e.has_format)
			have_format = true;
		if (e.has_log_number) {
			vs->log_number = e.log_number;
			have_log = true;
		}
		if (e.has_next_file) {
			vs->next_file = e.next_file;
			have_next = true;
		}
		if (e.has_last_seq) {
			vs->last_seq = e.last_seq;
			have_seq = true;
		}
		if (e.has_style)
			vs->style = e.style;
		struct named_snap *sn = NULL;
		size_t n_sn = 0;
		rc = version_build(vs, vs->current, &e, path, &v);
		if (!rc) {
			rc = snaps_build(vs, &e, path, &sn, &n_sn);
			if (rc)
				version_unref(v);
		}
		if (!rc) {
			snaps_commit(vs, &e, sn, n_sn);
			blobs_commit(vs->current, &e, 1, false);
		}
		edit_release(&e);
		if (rc)
			goto out_close;
		vset_install(vs, v);
	}
	if (rc < 0)
		goto out_close;
	if (!have_format || !have_log || !have_next || !have_seq) {
		rc = LSM_CORRUPT("%s: manifest lacks its %s record", path,
				 !have_format ? "format" : "counter");
		goto out_close;
	}
	if (number >= vs->next_file)
		vs->next_file = number + 1;
	if (!vs->next_snap_id)
		vs->next_snap_id = 1;
	vs->manifest_number = number;
	walr_close(r);
	*out = vs;
	return 0;

out_close:
	walr_close(r);
out_free:
	vset_free(vs);
	return rc;
}

/* Frees a list snaps_build made. */
static void snaps_free(struct named_snap *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(a[i].name);
	free(a);
}

int vset_apply(struct vset *vs, struct version_edit *e)
{
	struct version *v;
	struct named_snap *sn = NULL;
	size_t n_sn = 0;
	uint8_t *buf = NULL;
	size_t len;
	char what[64];
	int rc;

	uint64_t old_log = vs->log_number;
	e->has_next_file = true;
	e->next_file = vs->next_file;
	e->has_last_seq = true;
	e->last_seq = vs->last_seq;
	snprintf(what, sizeof(what), "edit of MANIFEST-%06llu",
		 (unsigned long long)vs->manifest_number);
	rc = version_build(vs, vs->current, e, what, &v);
	if (rc)
		return rc;
	rc = snaps_build(vs, e, what, &sn, &n_sn);
	if (rc)
		goto fail;
	if (e->n_added || e->n_blobs_added) {
		/* New SSTs' and blob files' directory entries must be durable
		 * before the manifest names them. */
		rc = vs->cfg.env->ops->sync_dir(vs->cfg.env, vs->dir);
		if (rc)
			goto fail;
	}
	if (!vs->manifest) {
		/* invariant 2: the last append failed; start afresh with
		 * the new state, which includes e. */
		struct version *old = vs->current;
		struct named_snap *old_sn = vs->snaps;
		size_t old_n = vs->n_snaps;
		uint64_t old_next = vs->next_snap_id;
		uint32_t old_style = vs->style;
		if (e->has_log_number)
			vs->log_number = e->log_number;
		if (e->has_style)
			vs->style = e->style;
		if (e->n_snaps_added || e->n_snaps_deleted) {
			vs->snaps = sn;
			vs->n_snaps = n_sn;
		}
		for (size_t i = 0; i < e->n_snaps_added; i++)
			if (e->snaps_added[i].id >= vs->next_snap_id)
				vs->next_snap_id = e->snaps_added[i].id + 1;
		vs->current = v;
		blobs_commit(old, e, 1, false);
		rc = vset_write_snapshot(vs);
		blobs_commit(old, e, -1, false);
		vs->current = old;
		vs->snaps = old_sn;
		vs->n_snaps = old_n;
		vs->next_snap_id = old_next;
		vs->log_number = old_log;
		vs->style = old_style;
		if (rc)
			goto fail;
	} else {
		rc = edit_encode(e, &buf, &len);
		if (!rc)
			rc = walw_add(vs->manifest, buf, len);
		if (!rc)
			rc = walw_sync(vs->manifest);
		free(buf);
		if (rc) {
			walw_close(vs->manifest);
			vs->manifest = NULL;
			goto fail;
		}
		vs->manifest_bytes = walw_size(vs->manifest);
	}
	if (e->has_log_number)
		vs->log_number = e->log_number;
	if (e->has_style)
		vs->style = e->style;
	snaps_commit(vs, e, sn, n_sn);
	for (size_t i = 0; i < e->n_deleted; i++) {
		int l = e->deleted[i].level;
		for (size_t j = 0; j < vs->current->n_files[l]; j++) {
			struct file_meta *f = vs->current->files[l][j];
			if (f->number == e->deleted[i].number)
				atomic_store_explicit(&f->obsolete, true,
						      memory_order_release);
		}
	}
	/* A file moved between levels is both deleted and added: it stays. */
	for (size_t i = 0; i < e->n_added; i++)
		atomic_store_explicit(&e->added[i].f->obsolete, false,
				      memory_order_release);
	blobs_commit(vs->current, e, 1, true);
	vset_install(vs, v);
	if (vs->manifest_bytes > MANIFEST_ROLL_BYTES)
		vset_write_snapshot(vs); /* failure: keep appending */
	return 0;

fail:
	snaps_free(sn, n_sn);
	version_unref(v);
	return rc;
}
