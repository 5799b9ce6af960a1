/*
 * db_iter.c - the user-facing iterator.
 *
 * Internally an lsm_iter merges every source of one superversion: the
 * memtables, each L0 file, and one concatenating iterator per deeper
 * level (files of a level are disjoint and sorted, so a level needs only
 * the file under the cursor open). On top of that stream of internal keys
 * it shows, for each user key, the newest version visible at its sequence
 * number, hiding deletions, entries covered by a range tombstone newer
 * than them, and keys outside [lower, upper).
 *
 * Direction: moving forward, the merged stream sits on the entry shown.
 * Moving backward, the stream sits just before every entry of the key
 * shown, and the key and value are copies (the newest visible version is
 * the last one met when walking backward).
 *
 * Thread-safety: one thread at a time per iterator; any number of
 * iterators at once. The superversion reference keeps every memtable and
 * file alive, and table handles pin open readers.
 */
#include "db_int.h"

#include "db_blob.h"

#include "iter/rangedel.h"
#include "sst/keycmp.h"
#include "util/ikey.h"
#include "util/status.h"

#include <stdlib.h>

/* ---- one level's files, opened one at a time ---- */

struct level_iter {
	struct ikv_iter base;
	lsm_db *db;
	const struct version *v;
	int level;
	size_t idx; /* file under the cursor; n_files when none */
	struct cache_handle *h;
	struct ikv_iter *cur;
	bool fill_cache;
	int status;
};

static void li_close_file(struct level_iter *li)
{
	iter_free(li->cur);
	li->cur = NULL;
	if (li->h)
		cache_release(li->db->table_cache, li->h);
	li->h = NULL;
}

/* Opens file i (or closes all when i is out of range). */
static bool li_open(struct level_iter *li, size_t i)
{
	if (li->cur && li->idx == i)
		return true;
	li_close_file(li);
	li->idx = i;
	if (i >= li->v->n_files[li->level])
		return false;
	int rc = tcache_find(li->db->table_cache, &li->db->tcopts,
			     li->v->files[li->level][i]->number, &li->h);
	if (rc) {
		li->status = rc;
		return false;
	}
	li->cur = sstr_iter_new(tcache_table(li->h)->r, li->fill_cache);
	if (!li->cur) {
		li->status = -ENOMEM;
		li_close_file(li);
		return false;
	}
	return true;
}

static bool li_valid(const struct ikv_iter *it)
{
	const struct level_iter *li = (const struct level_iter *)it;
	return li->status == 0 && li->cur && iter_valid(li->cur);
}

static bool li_check(struct level_iter *li)
{
	if (li->cur && iter_status(li->cur) && !li->status)
		li->status = iter_status(li->cur);
	return li->status == 0;
}

/* Moves forward over files whose iterator is exhausted. A valid file
 * iterator has status 0 (iter.h contract 4), so the status is looked at
 * only when the file is exhausted: one indirect call less per entry. */
static void li_skip_forward(struct level_iter *li)
{
	while (li->cur && !iter_valid(li->cur)) {
		if (!li_check(li) || !li_open(li, li->idx + 1))
			return;
		iter_first(li->cur);
	}
}

static void li_skip_backward(struct level_iter *li)
{
	while (li_check(li) && li->cur && !iter_valid(li->cur)) {
		if (li->idx == 0) {
			li_close_file(li);
			return;
		}
		if (!li_open(li, li->idx - 1))
			return;
		iter_last(li->cur);
	}
}

static void li_first(struct ikv_iter *it)
{
	struct level_iter *li = (struct level_iter *)it;
	li->status = 0;
	if (li_open(li, 0))
		iter_first(li->cur);
	li_skip_forward(li);
}

static void li_last(struct ikv_iter *it)
{
	struct level_iter *li = (struct level_iter *)it;
	size_t n = li->v->n_files[li->level];
	li->status = 0;
	if (n && li_open(li, n - 1))
		iter_last(li->cur);
	li_skip_backward(li);
}

static void li_seek(struct ikv_iter *it, struct slice t)
{
	struct level_iter *li = (struct level_iter *)it;
	li->status = 0;
	if (li_open(li, version_find_file(li->v, li->level, t)))
		iter_seek(li->cur, t);
	li_skip_forward(li);
}

static void li_seek_for_prev(struct ikv_iter *it, struct slice t)
{
	struct level_iter *li = (struct level_iter *)it;
	size_t i = version_find_file(li->v, li->level, t);
	size_t n = li->v->n_files[li->level];
	li->status = 0;
	if (i >= n) {
		li_last(it);
		return;
	}
	if (li_open(li, i))
		iter_seek_for_prev(li->cur, t);
	li_skip_backward(li);
}

static void li_next(struct ikv_iter *it)
{
	struct level_iter *li = (struct level_iter *)it;
	iter_next(li->cur);
	li_skip_forward(li);
}

static void li_prev(struct ikv_iter *it)
{
	struct level_iter *li = (struct level_iter *)it;
	iter_prev(li->cur);
	li_skip_backward(li);
}

static struct slice li_key(const struct ikv_iter *it)
{
	return iter_key(((const struct level_iter *)it)->cur);
}

static struct slice li_value(const struct ikv_iter *it)
{
	return iter_value(((const struct level_iter *)it)->cur);
}

static int li_status(const struct ikv_iter *it)
{
	const struct level_iter *li = (const struct level_iter *)it;
	if (li->status)
		return li->status;
	return li->cur ? iter_status(li->cur) : 0;
}

static void li_free(struct ikv_iter *it)
{
	struct level_iter *li = (struct level_iter *)it;
	li_close_file(li);
	free(li);
}

static const struct ikv_iter_ops level_iter_ops = {
	li_valid, li_first, li_last,  li_seek,   li_seek_for_prev, li_next,
	li_prev,  li_key,   li_value, li_status, li_free,
};

static struct ikv_iter *level_iter_new(lsm_db *db, const struct version *v,
				       int level, bool fill_cache)
{
	struct level_iter *li = calloc(1, sizeof(*li));
	if (!li)
		return NULL;
	li->base.ops = &level_iter_ops;
	li->db = db;
	li->v = v;
	li->level = level;
	li->idx = SIZE_MAX;
	li->fill_cache = fill_cache;
	return &li->base;
}

/* ---- the user iterator ---- */

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static int buf_set(struct buf *b, struct slice s)
{
	if (s.len > b->cap) {
		size_t ncap = s.len < 64 ? 64 : s.len * 2;
		uint8_t *np = realloc(b->p, ncap);
		if (!np)
			return -ENOMEM;
		b->p = np;
		b->cap = ncap;
	}
	if (s.len)
		memcpy(b->p, s.p, s.len);
	b->len = s.len;
	return 0;
}

static struct slice buf_slice(const struct buf *b)
{
	return slice_make(b->p, b->len);
}

struct lsm_iter {
	lsm_db *db;
	struct superversion *sv;
	struct ikv_iter *in;
	struct tomb_set *tombs;        /* NULL: no tombstone in view */
	struct cache_handle **handles; /* pinned L0 tables */
	size_t n_handles;
	uint64_t seq;
	struct buf lower, upper;
	bool has_lower, has_upper;
	bool reverse; /* direction of the last move */
	bool valid;
	int status;
	struct buf key, value; /* reverse: the entry shown; forward: scratch */
	struct buf target;     /* seek keys */
	/* The entry shown is a blob reference: 1 unresolved, 2 resolved
	 * into blob_val; 0 a plain value. */
	int blob_state;
	void *blob_val;
	size_t blob_len;
};

static bool has_value(struct slice ik)
{
	return ikey_kind(ik) == IKEY_PUT || ikey_kind(ik) == IKEY_BLOB;
}

static bool covered(const lsm_iter *it, struct slice uk, uint64_t seq)
{
	return it->tombs && tomb_set_cover(it->tombs, uk) > seq;
}

static bool below_lower(const lsm_iter *it, struct slice uk)
{
	return it->has_lower && slice_cmp(uk, buf_slice(&it->lower)) < 0;
}

static bool at_or_above_upper(const lsm_iter *it, struct slice uk)
{
	return it->has_upper && slice_cmp(uk, buf_slice(&it->upper)) >= 0;
}

static void set_error(lsm_iter *it, int rc)
{
	it->status = rc;
	it->valid = false;
}

/* Forward: from the stream's position, the first visible entry; with
 * skipping, entries of user key it->key are passed over. */
static void find_next(lsm_iter *it, bool skipping)
{
	struct ikv_iter *in = it->in;
	for (; iter_valid(in); iter_next(in)) {
		struct slice ik = iter_key(in);
		struct slice uk = ikey_user(ik);
		uint64_t trailer = ikey_trailer(ik);
		uint64_t seq = trailer >> 8;
		unsigned kind = (unsigned)(trailer & 0xff);
		if (seq > it->seq)
			continue;
		if (at_or_above_upper(it, uk))
			break;
		if (below_lower(it, uk))
			continue;
		if (skipping &&
		    bytes_cmp_fast(uk.p, uk.len, it->key.p, it->key.len) <= 0)
			continue;
		if ((kind == IKEY_PUT || kind == IKEY_BLOB) &&
		    !covered(it, uk, seq)) {
			it->valid = true;
			it->reverse = false;
			it->blob_state = kind == IKEY_BLOB;
			return;
		}
		/* deleted: hide every older version of this key */
		if (buf_set(&it->key, uk)) {
			set_error(it, -ENOMEM);
			return;
		}
		skipping = true;
	}
	it->valid = false;
	if (iter_status(in))
		it->status = iter_status(in);
}

/* Backward: the stream is at or after the last entry of the key to show
 * (or invalid at the front); find the previous visible user key. */
static void find_prev(lsm_iter *it)
{
	struct ikv_iter *in = it->in;
	bool have = false;
	while (iter_valid(in)) {
		struct slice ik = iter_key(in);
		struct slice uk = ikey_user(ik);
		uint64_t seq = ikey_seq(ik);
		if (seq <= it->seq && !at_or_above_upper(it, uk)) {
			if (have && slice_cmp(uk, buf_slice(&it->key)) < 0)
				break; /* passed every version of it->key */
			if (below_lower(it, uk))
				break;
			if (has_value(ik) && !covered(it, uk, seq)) {
				if (buf_set(&it->key, uk) ||
				    buf_set(&it->value, iter_value(in))) {
					set_error(it, -ENOMEM);
					return;
				}
				it->blob_state = ikey_kind(ik) == IKEY_BLOB;
				have = true;
			} else {
				have = false;
			}
		}
		iter_prev(in);
	}
	if (iter_status(in)) {
		set_error(it, iter_status(in));
		return;
	}
	it->valid = have;
	it->reverse = true;
}

/* Builds (uk, seq, kind) in it->target. */
static struct slice make_target(lsm_iter *it, struct slice uk, uint64_t seq,
				unsigned kind)
{
	size_t n = uk.len + IKEY_TRAILER;
	if (n > it->target.cap) {
		uint8_t *np = realloc(it->target.p, n * 2);
		if (!np)
			return slice_make(NULL, 0);
		it->target.p = np;
		it->target.cap = n * 2;
	}
	if (uk.len)
		memcpy(it->target.p, uk.p, uk.len);
	ikey_put_trailer(it->target.p + uk.len, seq, kind);
	it->target.len = n;
	return buf_slice(&it->target);
}

static void do_seek(lsm_iter *it, struct slice uk)
{
	struct slice t;
	if (it->has_lower && slice_cmp(uk, buf_slice(&it->lower)) < 0)
		uk = buf_slice(&it->lower);
	t = make_target(it, uk, it->seq, IKEY_KIND_SEEK);
	if (!t.p) {
		set_error(it, -ENOMEM);
		return;
	}
	iter_seek(it->in, t);
	find_next(it, false);
}

/* Last visible key <= uk (or < upper). */
static void do_seek_for_prev(lsm_iter *it, struct slice uk)
{
	struct slice t;
	if (it->has_upper && slice_cmp(uk, buf_slice(&it->upper)) >= 0)
		/* (upper, SEQ_MAX, SENTINEL) precedes every version of
		 * upper, so the last entry <= it is below upper. */
		t = make_target(it, buf_slice(&it->upper), IKEY_SEQ_MAX,
				IKEY_SENTINEL);
	else
		/* (uk, 0, DELETE) follows every version of uk. */
		t = make_target(it, uk, 0, IKEY_DELETE);
	if (!t.p) {
		set_error(it, -ENOMEM);
		return;
	}
	iter_seek_for_prev(it->in, t);
	find_prev(it);
}

void lsm_iter_first(lsm_iter *it)
{
	it->status = 0;
	if (it->has_lower) {
		do_seek(it, buf_slice(&it->lower));
		return;
	}
	iter_first(it->in);
	find_next(it, false);
}

void lsm_iter_last(lsm_iter *it)
{
	it->status = 0;
	if (it->has_upper) {
		do_seek_for_prev(it, buf_slice(&it->upper));
		return;
	}
	iter_last(it->in);
	find_prev(it);
}

void lsm_iter_seek(lsm_iter *it, const void *key, size_t key_len)
{
	it->status = 0;
	do_seek(it, slice_make(key, key_len));
}

void lsm_iter_seek_for_prev(lsm_iter *it, const void *key, size_t key_len)
{
	it->status = 0;
	do_seek_for_prev(it, slice_make(key, key_len));
}

void lsm_iter_next(lsm_iter *it)
{
	if (!it->valid)
		return;
	if (it->reverse) {
		/* The stream is before every entry of it->key. */
		if (iter_valid(it->in))
			iter_next(it->in);
		else
			iter_first(it->in);
	} else {
		if (buf_set(&it->key, ikey_user(iter_key(it->in)))) {
			set_error(it, -ENOMEM);
			return;
		}
		iter_next(it->in);
	}
	find_next(it, true);
}

void lsm_iter_prev(lsm_iter *it)
{
	if (!it->valid)
		return;
	if (!it->reverse) {
		/* Step back over every entry of the current key. */
		if (buf_set(&it->key, ikey_user(iter_key(it->in)))) {
			set_error(it, -ENOMEM);
			return;
		}
		do {
			iter_prev(it->in);
		} while (iter_valid(it->in) &&
			 slice_cmp(ikey_user(iter_key(it->in)),
				   buf_slice(&it->key)) >= 0);
	} else {
		/* Stream already before it->key's entries. */
	}
	find_prev(it);
}

bool lsm_iter_valid(const lsm_iter *it)
{
	return it->valid;
}

const void *lsm_iter_key(const lsm_iter *it, size_t *len)
{
	struct slice k =
		it->reverse ? buf_slice(&it->key) : ikey_user(iter_key(it->in));
	if (len)
		*len = k.len;
	return k.p;
}

const void *lsm_iter_value(const lsm_iter *cit, size_t *len)
{
	lsm_iter *it = (lsm_iter *)cit; /* resolving a blob caches it */
	struct slice v =
		it->reverse ? buf_slice(&it->value) : iter_value(it->in);
	if (it->valid && it->blob_state == 1) {
		void *val;
		size_t n;
		int rc = db_blob_read(it->db, v, NULL, 0, &val, &n);
		if (rc) {
			/* The entry cannot be shown: stop here. */
			if (!it->status)
				it->status = rc;
			it->valid = false;
			if (len)
				*len = 0;
			return NULL;
		}
		free(it->blob_val);
		it->blob_val = val;
		it->blob_len = n;
		it->blob_state = 2;
	}
	if (it->valid && it->blob_state == 2)
		v = slice_make(it->blob_val, it->blob_len);
	if (len)
		*len = v.len;
	return v.p;
}

int lsm_iter_status(const lsm_iter *it)
{
	return it->status;
}

void lsm_iter_free(lsm_iter *it)
{
	if (!it)
		return;
	iter_free(it->in);
	for (size_t i = 0; i < it->n_handles; i++)
		cache_release(it->db->table_cache, it->handles[i]);
	free(it->handles);
	tomb_set_free(it->tombs);
	db_sv_put(it->sv);
	free(it->lower.p);
	free(it->upper.p);
	free(it->key.p);
	free(it->value.p);
	free(it->target.p);
	free(it->blob_val);
	free(it);
}

/* Does [start, end) meet the iterator's bounds? */
static bool tomb_in_bounds(const lsm_iter *it, struct slice s, struct slice e)
{
	if (it->has_upper && slice_cmp(s, buf_slice(&it->upper)) >= 0)
		return false;
	if (it->has_lower && slice_cmp(e, buf_slice(&it->lower)) <= 0)
		return false;
	return true;
}

static int add_tomb(lsm_iter *it, struct slice s, struct slice e, uint64_t seq)
{
	if (seq > it->seq || !tomb_in_bounds(it, s, e))
		return 0;
	if (!it->tombs) {
		it->tombs = tomb_set_new();
		if (!it->tombs)
			return -ENOMEM;
	}
	return tomb_set_add(it->tombs, s, e, seq);
}

static int add_mem_piece(void *ctx, struct slice s, struct slice e,
			 uint64_t seq)
{
	return add_tomb(ctx, s, e, seq);
}

/* The memtable's tombstones visible to the iterator within its bounds,
 * from the memtable's index: O(log n + pieces), not all of them. */
static int collect_mem_tombs(lsm_iter *it, struct memtable *m)
{
	struct slice lo = buf_slice(&it->lower), hi = buf_slice(&it->upper);
	if (!mem_num_tombs(m))
		return 0;
	return mem_tomb_spans(m, it->has_lower ? &lo : NULL,
			      it->has_upper ? &hi : NULL, it->seq,
			      add_mem_piece, it);
}

static int collect_file_tombs(lsm_iter *it, struct file_meta *f)
{
	struct cache_handle *h;
	struct table *t;
	int rc;
	if (!f->num_range_dels)
		return 0;
	rc = tcache_find(it->db->table_cache, &it->db->tcopts, f->number, &h);
	if (rc)
		return rc;
	t = tcache_table(h);
	if (t->frag && t->max_tomb_seq <= it->seq) {
		/* Every tombstone of the file is visible: take its fragments
		 * that meet the bounds, found by binary search, so that a
		 * bounded iterator costs nothing for the file's other
		 * tombstones. Fragments keep each span's newest seq, which is
		 * all coverage needs. */
		struct slice fs, fe,
			at = it->has_lower ? buf_slice(&it->lower)
					   : slice_make("", 0);
		uint64_t fseq;
		while (!rc && tomb_set_find(t->frag, at, &fs, &fe, &fseq)) {
			if (it->has_upper &&
			    slice_cmp(fs, buf_slice(&it->upper)) >= 0)
				break;
			rc = add_tomb(it, fs, fe, fseq);
			at = fe;
		}
	} else {
		for (size_t i = 0; i < t->n_rt && !rc; i++)
			rc = add_tomb(it, t->rt[i].start, t->rt[i].end,
				      t->rt[i].seq);
	}
	cache_release(it->db->table_cache, h);
	return rc;
}

int db_iter_new(lsm_db *db, const lsm_iter_options *o, lsm_iter **out)
{
	lsm_iter *it = calloc(1, sizeof(*it));
	struct ikv_iter **kids = NULL;
	struct version *v;
	size_t n = 0;
	int rc = 0;

	if (!it)
		return -ENOMEM;
	it->db = db;
	it->sv = db_sv_get(db);
	v = it->sv->v;
	it->seq = o->snapshot ? o->snapshot->seq
			      : atomic_load_explicit(&db->last_seq,
						     memory_order_acquire);
	if (o->lower) {
		it->has_lower = true;
		rc = buf_set(&it->lower, slice_make(o->lower, o->lower_len));
	}
	if (!rc && o->upper) {
		it->has_upper = true;
		rc = buf_set(&it->upper, slice_make(o->upper, o->upper_len));
	}
	if (rc)
		goto fail;

	kids = calloc((size_t)(1 + it->sv->n_imm) + v->n_files[0] +
			      LSM_MAX_LEVELS,
		      sizeof(*kids));
	it->handles =
		calloc(v->n_files[0] ? v->n_files[0] : 1, sizeof(*it->handles));
	if (!kids || !it->handles) {
		rc = -ENOMEM;
		goto fail;
	}
	for (int i = -1; i < it->sv->n_imm; i++) {
		struct memtable *m = i < 0 ? it->sv->mem : it->sv->imm[i];
		rc = collect_mem_tombs(it, m);
		if (rc)
			goto fail;
		kids[n] = mem_iter_new(m);
		if (!kids[n]) {
			rc = -ENOMEM;
			goto fail;
		}
		n++;
	}
	for (size_t i = 0; i < v->n_files[0]; i++) {
		struct file_meta *f = v->files[0][i];
		struct slice lo = buf_slice(&it->lower), hi;
		if (it->has_lower && !fm_overlaps(f, &lo, NULL))
			continue;
		if (it->has_upper) {
			hi = buf_slice(&it->upper);
			if (slice_cmp(ikey_user(fm_smallest(f)), hi) >= 0)
				continue;
		}
		rc = collect_file_tombs(it, f);
		if (!rc)
			rc = tcache_find(db->table_cache, &db->tcopts,
					 f->number,
					 &it->handles[it->n_handles]);
		if (rc)
			goto fail;
		kids[n] = sstr_iter_new(
			tcache_table(it->handles[it->n_handles++])->r,
			o->fill_cache);
		if (!kids[n]) {
			rc = -ENOMEM;
			goto fail;
		}
		n++;
	}
	for (int l = 1; l < LSM_MAX_LEVELS; l++) {
		if (!v->n_files[l])
			continue;
		for (size_t i = 0; i < v->n_files[l]; i++) {
			struct file_meta *f = v->files[l][i];
			struct slice lo = buf_slice(&it->lower);
			struct slice hi = buf_slice(&it->upper);
			if (!f->num_range_dels)
				continue;
			if (!fm_overlaps(f, it->has_lower ? &lo : NULL,
					 it->has_upper ? &hi : NULL))
				continue;
			rc = collect_file_tombs(it, f);
			if (rc)
				goto fail;
		}
		kids[n] = level_iter_new(db, v, l, o->fill_cache);
		if (!kids[n]) {
			rc = -ENOMEM;
			goto fail;
		}
		n++;
	}
	if (it->tombs) {
		rc = tomb_set_build(it->tombs, it->seq);
		if (rc)
			goto fail;
	}
	it->in = iter_new_merge(kids, n);
	free(kids);
	rc = iter_status(it->in);
	if (rc) {
		iter_free(it->in);
		it->in = NULL;
		goto fail_nokids;
	}
	*out = it;
	return 0;

fail:
	for (size_t i = 0; kids && i < n; i++)
		iter_free(kids[i]);
	free(kids);
fail_nokids:
	it->in = iter_new_empty(0);
	lsm_iter_free(it);
	return rc;
}

/*
 * Space held by named snapshots. Views: the snapshots (ascending seqs)
 * and the live state. For each user key, a view sees the newest version
 * at or below its sequence unless a range tombstone visible to it and
 * newer than that version covers the key. A version seen by exactly one
 * view, a snapshot, is that snapshot's alone. Each view's tombstones come
 * from an iterator built at its sequence; the entries are walked once,
 * from the live view's merged stream (which holds every version).
 */
struct space_ver {
	uint64_t seq;
	uint64_t bytes;
};

static void space_account(lsm_iter **views, size_t n_views, struct slice uk,
			  const struct space_ver *vers, size_t n_vers,
			  uint64_t *bytes)
{
	for (size_t v = 0; v < n_vers; v++) {
		size_t seen = 0, by = 0;
		for (size_t j = 0; j < n_views && seen < 2; j++) {
			uint64_t s = views[j]->seq;
			size_t k = 0;
			while (k < n_vers && vers[k].seq > s)
				k++; /* vers are newest first */
			if (k != v || covered(views[j], uk, vers[v].seq))
				continue;
			seen++;
			by = j;
		}
		if (seen == 1 && by + 1 < n_views)
			bytes[by] += vers[v].bytes;
	}
}

int db_snapshot_space(lsm_db *db, const uint64_t *seqs, size_t n,
		      uint64_t *bytes)
{
	size_t n_views = n + 1, n_vers = 0, cap = 16;
	lsm_iter **views = calloc(n_views, sizeof(*views));
	struct space_ver *vers = malloc(cap * sizeof(*vers));
	struct buf cur = {0};
	struct ikv_iter *in;
	bool have = false;
	int rc = 0;

	if (!views || !vers) {
		free(views);
		free(vers);
		return -ENOMEM;
	}
	memset(bytes, 0, n * sizeof(*bytes));
	for (size_t j = 0; j < n_views && !rc; j++) {
		lsm_snapshot s = {0};
		lsm_iter_options o;
		lsm_iter_options_init(&o);
		o.fill_cache = false;
		if (j < n) {
			s.seq = seqs[j];
			o.snapshot = &s;
		}
		rc = db_iter_new(db, &o, &views[j]);
	}
	if (rc)
		goto out;
	in = views[n]->in;
	for (iter_first(in); iter_valid(in); iter_next(in)) {
		struct slice k = iter_key(in), uk = ikey_user(k);
		if (have && slice_cmp(uk, buf_slice(&cur)) != 0) {
			space_account(views, n_views, buf_slice(&cur), vers,
				      n_vers, bytes);
			n_vers = 0;
			have = false;
		}
		if (!have) {
			rc = buf_set(&cur, uk);
			if (rc)
				break;
			have = true;
		}
		if (n_vers == cap) {
			struct space_ver *nv =
				realloc(vers, 2 * cap * sizeof(*vers));
			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			vers = nv;
			cap *= 2;
		}
		vers[n_vers].seq = ikey_seq(k);
		vers[n_vers].bytes = k.len - IKEY_TRAILER + iter_value(in).len;
		if (ikey_kind(k) == IKEY_BLOB) {
			/* a value kept in a blob file: count the value */
			struct blob_ref ref;
			if (blob_ref_decode(iter_value(in), &ref) == 0)
				vers[n_vers].bytes += ref.len;
		}
		n_vers++;
	}
	if (!rc)
		rc = iter_status(in);
	if (!rc && have)
		space_account(views, n_views, buf_slice(&cur), vers, n_vers,
			      bytes);
out:
	for (size_t j = 0; j < n_views; j++)
		if (views[j])
			lsm_iter_free(views[j]);
	free(views);
	free(vers);
	free(cur.p);
	return rc;
}
