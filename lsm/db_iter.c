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
 * Forward scan cost: the stream is always a merge from
 * iter_new_merge_steps() (iter/merge.h), stepped by iter_merge_step(), one
 * direct call that also returns the next key. Each level child steps
 * through li_step(), each L0 file through sstr_iter_step() and each
 * memtable through mem_iter_step(), which move the child and return its
 * key and value in one call; the level iterator
 * keeps its current entry in fields, so its valid/key/value cost no nested
 * call. The entry shown is remembered as cur_ik, so neither lsm_iter_key()
 * nor the next step asks the stream for it again, and its user key is
 * copied as whole words (buf_set_ukey) for skipping older versions.
 *
 * Thread-safety: one thread at a time per iterator; any number of
 * iterators at once. The superversion reference keeps every memtable and
 * file alive, and table handles pin open readers.
 */
#include "db_int.h"

#include "db_blob.h"

#include "iter/merge.h"
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
	/* The entry under the cursor, copied from cur after every move so
	 * that valid/key/value, asked once per step by the merge and the
	 * user iterator, are field reads: is_valid == li_valid() of the
	 * design, key/value as cur's (valid until cur moves). */
	bool is_valid;
	struct slice key, value;
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
	return ((const struct level_iter *)it)->is_valid;
}

/* Refreshes the cached entry after a move (see struct level_iter). */
static void li_sync(struct level_iter *li)
{
	li->is_valid = li->status == 0 && li->cur && iter_valid(li->cur);
	if (li->is_valid) {
		li->key = iter_key(li->cur);
		li->value = iter_value(li->cur);
	}
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
	li_sync(li);
}

static void li_last(struct ikv_iter *it)
{
	struct level_iter *li = (struct level_iter *)it;
	size_t n = li->v->n_files[li->level];
	li->status = 0;
	if (n && li_open(li, n - 1))
		iter_last(li->cur);
	li_skip_backward(li);
	li_sync(li);
}

static void li_seek(struct ikv_iter *it, struct slice t)
{
	struct level_iter *li = (struct level_iter *)it;
	li->status = 0;
	if (li_open(li, version_find_file(li->v, li->level, t)))
		iter_seek(li->cur, t);
	li_skip_forward(li);
	li_sync(li);
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
	li_sync(li);
}

/* The files of a level are SST iterators: a step inside one is a single
 * direct call that also fetches the new entry (sstr_iter_step). */
static void li_next(struct ikv_iter *it)
{
	struct level_iter *li = (struct level_iter *)it;
	if (sstr_iter_step(li->cur, &li->key, &li->value))
		return;
	li_skip_forward(li);
	li_sync(li);
}

/* The level's step function for the merge (iter/merge.h). */
static bool li_step(struct ikv_iter *it, struct slice *key, struct slice *value)
{
	struct level_iter *li = (struct level_iter *)it;
	if (sstr_iter_step(li->cur, key, value)) {
		li->key = *key;
		li->value = *value;
		return true;
	}
	li_skip_forward(li);
	li_sync(li);
	if (!li->is_valid)
		return false;
	*key = li->key;
	*value = li->value;
	return true;
}

static void li_prev(struct ikv_iter *it)
{
	struct level_iter *li = (struct level_iter *)it;
	iter_prev(li->cur);
	li_skip_backward(li);
	li_sync(li);
}

static struct slice li_key(const struct ikv_iter *it)
{
	return ((const struct level_iter *)it)->key;
}

static struct slice li_value(const struct ikv_iter *it)
{
	return ((const struct level_iter *)it)->value;
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

/*
 * buf_set() for the user key of an internal key, on the forward path
 * once per entry: the copy is whole 8-byte words, no library call. The
 * trailer that follows a user key inside its internal key makes reading
 * up to 7 bytes past the user key safe; the buffer grows to the rounded
 * length first.
 */
static inline int buf_set_ukey(struct buf *b, struct slice uk)
{
	size_t n_words = (uk.len + 7) / 8;
	if (n_words * 8 > b->cap && buf_set(b, slice_make(uk.p, n_words * 8)))
		return -ENOMEM;
	if (n_words == 2) { /* short keys: no loop */
		memcpy(b->p, uk.p, 8);
		memcpy(b->p + 8, uk.p + 8, 8);
	} else {
		for (size_t i = 0; i < n_words; i++)
			memcpy(b->p + 8 * i, uk.p + 8 * i, 8);
	}
	b->len = uk.len;
	return 0;
}

/*
 * Is uk the user key saved in b? For skipping older versions of a key on
 * the forward path, once per entry: lengths, then whole words. uk's
 * trailer makes its word reads safe, b's are checked against its
 * capacity, and the bytes past the length in the last word are masked.
 */
static inline bool ukey_is_saved(struct slice uk, const struct buf *b)
{
	size_t n = uk.len, i = 0;
	if (n != b->len)
		return false;
	if (((n + 7) & ~(size_t)7) > b->cap)
		return memcmp(uk.p, b->p, n) == 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t x, y;
		memcpy(&x, uk.p + i, 8);
		memcpy(&y, b->p + i, 8);
		if (x != y)
			return false;
	}
	if (i == n)
		return true;
	uint64_t d = keycmp_load_be64(uk.p + i) ^ keycmp_load_be64(b->p + i);
	return (d >> (8 * (8 - (n - i)))) == 0;
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
	/* Forward and valid: the internal key of the entry shown, as the
	 * stream gave it (valid until the stream moves), so that the key and
	 * the next step need not ask the stream again. */
	struct slice cur_ik;
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

/* Forward: from the stream's position (is_valid, at ik), the first
 * visible entry; with skipping, entries of user key it->key are passed
 * over. The stream steps with iter_merge_step(): one direct call per
 * entry that also yields the next key. */
static inline __attribute__((always_inline)) void
find_next_at(lsm_iter *it, bool skipping, bool is_valid, struct slice ik)
{
	struct ikv_iter *in = it->in;
	for (; is_valid; is_valid = iter_merge_step(in, &ik)) {
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
		/* Skipping, every visible entry ahead has a user key >= the
		 * saved one: forward steps only pass entries of it->key, and
		 * after a reverse walk the only entries between the stream
		 * and it->key's are invisible ones (find_prev stops at the
		 * first visible smaller key), which the seq test above drops.
		 * So equal is the whole test. */
		if (skipping && ukey_is_saved(uk, &it->key))
			continue;
		if ((kind == IKEY_PUT || kind == IKEY_BLOB) &&
		    !covered(it, uk, seq)) {
			it->valid = true;
			it->reverse = false;
			it->blob_state = kind == IKEY_BLOB;
			it->cur_ik = ik;
			return;
		}
		/* deleted: hide every older version of this key */
		if (buf_set_ukey(&it->key, uk)) {
			set_error(it, -ENOMEM);
			return;
		}
		skipping = true;
	}
	it->valid = false;
	if (iter_status(in))
		it->status = iter_status(in);
}

/* find_next_at() from wherever the stream was positioned. */
static void find_next(lsm_iter *it, bool skipping)
{
	struct slice ik = {NULL, 0};
	bool is_valid = iter_valid(it->in);
	if (is_valid)
		ik = iter_key(it->in);
	find_next_at(it, skipping, is_valid, ik);
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
		struct slice ik;
		bool is_valid;
		if (buf_set_ukey(&it->key, ikey_user(it->cur_ik))) {
			set_error(it, -ENOMEM);
			return;
		}
		is_valid = iter_merge_step(it->in, &ik);
		find_next_at(it, true, is_valid, ik);
		return;
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
		it->reverse ? buf_slice(&it->key) : ikey_user(it->cur_ik);
	if (len)
		*len = k.len;
	return k.p;
}

/* lsm_iter_value() of an entry shown that is a blob reference v. */
static const void *blob_value(lsm_iter *it, struct slice v, size_t *len)
{
	if (it->blob_state == 1) {
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
	if (len)
		*len = it->blob_len;
	return it->blob_val;
}

const void *lsm_iter_value(const lsm_iter *cit, size_t *len)
{
	lsm_iter *it = (lsm_iter *)cit; /* resolving a blob caches it */
	struct slice v =
		it->reverse ? buf_slice(&it->value) : iter_value(it->in);
	if (it->valid && it->blob_state)
		return blob_value(it, v, len);
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
	iter_step_fn *steps = NULL;
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

	size_t max_kids =
		(size_t)(1 + it->sv->n_imm) + v->n_files[0] + LSM_MAX_LEVELS;
	kids = calloc(max_kids, sizeof(*kids));
	steps = calloc(max_kids, sizeof(*steps));
	it->handles =
		calloc(v->n_files[0] ? v->n_files[0] : 1, sizeof(*it->handles));
	if (!kids || !steps || !it->handles) {
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
		steps[n] = mem_iter_step;
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
		steps[n] = sstr_iter_step;
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
		steps[n] = li_step;
		n++;
	}
	if (it->tombs) {
		rc = tomb_set_build(it->tombs, it->seq);
		if (rc)
			goto fail;
	}
	/* Always a merge, even of one child: the forward scan steps it
	 * with iter_merge_step(). */
	it->in = iter_new_merge_steps(kids, steps, n);
	free(kids);
	free(steps);
	if (!it->in) {
		rc = -ENOMEM;
		goto fail_nokids;
	}
	*out = it;
	return 0;

fail:
	for (size_t i = 0; kids && i < n; i++)
		iter_free(kids[i]);
	free(kids);
	free(steps);
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
