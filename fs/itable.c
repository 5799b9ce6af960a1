/*
 * itable.c - the inode table.
 *
 * Why: FUSE names inodes by number and expects the filesystem to keep
 * whatever it needs about an inode until the kernel forgets it; an
 * unlinked file must keep working until its last close. The table holds,
 * per live inode, the kernel's lookup count, the open count, a lock that
 * serializes changes, and the decoded inode record so getattr and writes
 * do not decode it again.
 *
 * Entries are keyed by FUSE node id (itable.h): a snapshot's inodes have
 * entries of their own, loaded at that snapshot, so the cached live
 * records never leak into snapshot reads.
 *
 * Structure: 64 shards by node id hash, each a chained hash table that
 * doubles when its load passes 1; a shard mutex protects its chains and
 * the nlookup/nref counts of its entries.
 *
 * Invariants:
 *  1. An entry is in the table iff nref > 0 or nlookup > 0; it is freed
 *     when both reach 0 (under the shard lock, so no one can find it).
 *  2. is_loaded implies `in`/`target` equal the stored record (for a
 *     snapshot node: the record at that snapshot): every writer changes
 *     the record under e->mu and stores the result here only after
 *     lsm_write succeeded; snapshot nodes are never written.
 *  3. Locks: a shard lock is never held while taking e->mu or calling
 *     the engine. Several e->mu are taken in ascending ino order only.
 *
 * Thread safety: all functions may be called from any loop thread.
 */
#include "itable.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"

#define N_SHARDS 64

struct shard {
	pthread_mutex_t mu;
	struct inode_ent **buckets;
	size_t n_buckets; /* power of two */
	size_t count;
};

struct itable {
	struct shard shards[N_SHARDS];
};

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

static struct shard *shard_of(struct itable *t, uint64_t ino)
{
	return &t->shards[mix(ino) % N_SHARDS];
}

struct itable *itable_new(void)
{
	struct itable *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	for (int i = 0; i < N_SHARDS; i++) {
		struct shard *s = &t->shards[i];

		pthread_mutex_init(&s->mu, NULL);
		s->n_buckets = 64;
		s->buckets = calloc(s->n_buckets, sizeof(*s->buckets));
		if (!s->buckets) {
			itable_free(t);
			return NULL;
		}
	}
	return t;
}

static void ent_free(struct inode_ent *e)
{
	pthread_mutex_destroy(&e->mu);
	free(e->target);
	free(e);
}

void itable_free(struct itable *t)
{
	if (!t)
		return;
	for (int i = 0; i < N_SHARDS; i++) {
		struct shard *s = &t->shards[i];

		for (size_t b = 0; s->buckets && b < s->n_buckets; b++) {
			struct inode_ent *e = s->buckets[b], *nx;

			for (; e; e = nx) {
				nx = e->next;
				ent_free(e);
			}
		}
		free(s->buckets);
		pthread_mutex_destroy(&s->mu);
	}
	free(t);
}

static size_t bucket_of(const struct shard *s, uint64_t ino)
{
	return (size_t)((mix(ino) / N_SHARDS) & (s->n_buckets - 1));
}

static void grow_locked(struct shard *s)
{
	size_t n = s->n_buckets * 2;
	struct inode_ent **nb = calloc(n, sizeof(*nb));

	if (!nb)
		return; /* longer chains, still correct */
	for (size_t b = 0; b < s->n_buckets; b++) {
		struct inode_ent *e = s->buckets[b], *nx;

		for (; e; e = nx) {
			size_t i = (size_t)((mix(e->ino) / N_SHARDS) & (n - 1));

			nx = e->next;
			e->next = nb[i];
			nb[i] = e;
		}
	}
	free(s->buckets);
	s->buckets = nb;
	s->n_buckets = n;
}

struct inode_ent *itable_get(struct itable *t, uint64_t ino)
{
	struct shard *s = shard_of(t, ino);
	struct inode_ent *e;
	size_t b;

	pthread_mutex_lock(&s->mu);
	b = bucket_of(s, ino);
	for (e = s->buckets[b]; e; e = e->next) {
		if (e->ino == ino) {
			e->nref++;
			pthread_mutex_unlock(&s->mu);
			return e;
		}
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		pthread_mutex_unlock(&s->mu);
		return NULL;
	}
	e->ino = ino;
	e->nref = 1;
	pthread_mutex_init(&e->mu, NULL);
	e->next = s->buckets[b];
	s->buckets[b] = e;
	if (++s->count > s->n_buckets)
		grow_locked(s);
	pthread_mutex_unlock(&s->mu);
	return e;
}

void itable_ref(struct itable *t, struct inode_ent *e)
{
	struct shard *s = shard_of(t, e->ino);

	pthread_mutex_lock(&s->mu);
	e->nref++;
	pthread_mutex_unlock(&s->mu);
}

/* Unlinks and frees e if nothing holds it (shard lock held). */
static void maybe_free_locked(struct shard *s, struct inode_ent *e)
{
	struct inode_ent **pp;

	if (e->nref || e->nlookup)
		return;
	for (pp = &s->buckets[bucket_of(s, e->ino)]; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			s->count--;
			ent_free(e);
			return;
		}
	}
}

void itable_put(struct itable *t, struct inode_ent *e)
{
	struct shard *s;

	if (!e)
		return;
	s = shard_of(t, e->ino);
	pthread_mutex_lock(&s->mu);
	e->nref--;
	maybe_free_locked(s, e);
	pthread_mutex_unlock(&s->mu);
}

void itable_lookup_add(struct itable *t, struct inode_ent *e)
{
	struct shard *s = shard_of(t, e->ino);

	pthread_mutex_lock(&s->mu);
	e->nlookup++;
	pthread_mutex_unlock(&s->mu);
}

void itable_forget(struct itable *t, uint64_t ino, uint64_t n)
{
	struct shard *s = shard_of(t, ino);
	struct inode_ent *e;

	pthread_mutex_lock(&s->mu);
	for (e = s->buckets[bucket_of(s, ino)]; e; e = e->next) {
		if (e->ino == ino) {
			e->nlookup = n > e->nlookup ? 0 : e->nlookup - n;
			maybe_free_locked(s, e);
			break;
		}
	}
	pthread_mutex_unlock(&s->mu);
}

int ient_load_locked(struct inode_ent *e, lsm_db *db)
{
	if (!node_is_live(e->ino))
		return -EROFS;
	return ient_load_at_locked(e, db, NULL);
}

int ient_load_at_locked(struct inode_ent *e, lsm_db *db,
			const lsm_snapshot *snap)
{
	uint8_t key[KEY_MAX_LEN], buf[INODE_MAX_LEN];
	struct lsmfs_inode in;
	const uint8_t *target;
	size_t klen, len, target_len;
	int rc;

	if (e->is_loaded)
		return 0;
	if (e->ino == NODE_SNAPDIR || (node_sid(e->ino) != 0) != (snap != NULL))
		return -ESTALE; /* not an inode, or read at the wrong view */
	klen = key_ino(key, KEY_INODE, node_ino(e->ino));
	rc = lsm_get_into(db, snap, key, klen, buf, sizeof(buf), &len);
	if (rc == LSM_E_NOTFOUND)
		return -ENOENT;
	if (rc)
		return rc;
	if (len > sizeof(buf))
		return LSM_E_CORRUPT;
	rc = inode_decode(buf, len, node_ino(e->ino), &in, &target,
			  &target_len);
	if (rc)
		return rc;
	return ient_store_locked(e, &in, (const char *)target, target_len);
}

int ient_store_locked(struct inode_ent *e, const struct lsmfs_inode *in,
		      const char *target, size_t target_len)
{
	if (target && target_len) {
		char *t = malloc(target_len + 1);

		if (!t)
			return -ENOMEM;
		memcpy(t, target, target_len);
		t[target_len] = '\0';
		free(e->target);
		e->target = t;
		e->target_len = target_len;
	}
	e->in = *in;
	e->is_loaded = true;
	return 0;
}

void ient_mark_gone_locked(struct inode_ent *e, const struct lsmfs_inode *in)
{
	e->in = *in;
	e->in.nlink = 0;
	e->is_loaded = true;
	e->is_gone = true;
}

void ient_invalidate_locked(struct inode_ent *e)
{
	e->is_loaded = false;
	free(e->target);
	e->target = NULL;
	e->target_len = 0;
	e->no_caps = false;
}

void ient_lockset_init(struct ient_lockset *ls)
{
	ls->n = 0;
}

void ient_lockset_add(struct ient_lockset *ls, struct inode_ent *e)
{
	size_t i;

	if (!e || ls->n == 4)
		return;
	for (i = 0; i < ls->n; i++)
		if (ls->e[i] == e)
			return;
	/* insertion sort by ino */
	for (i = ls->n; i > 0 && ls->e[i - 1]->ino > e->ino; i--)
		ls->e[i] = ls->e[i - 1];
	ls->e[i] = e;
	ls->n++;
}

void ient_lockset_lock(struct ient_lockset *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		pthread_mutex_lock(&ls->e[i]->mu);
}

void ient_lockset_unlock(struct ient_lockset *ls)
{
	for (size_t i = ls->n; i > 0; i--)
		pthread_mutex_unlock(&ls->e[i - 1]->mu);
}
