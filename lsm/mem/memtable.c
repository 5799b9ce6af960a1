/*
 * memtable.c - the memtable: skiplists in an arena, one writer, lock-free
 * readers.
 *
 * Why a skiplist: it keeps entries sorted for flush and iteration, inserts
 * in O(log n) without rebalancing, and can be read while it is written
 * with nothing but ordered pointer stores, so reads never wait for the
 * writer.
 *
 * A node is one arena allocation:
 *     next[height-1] .. next[1] | struct mem_node = next[0], ikey_len,
 *     height | [ikey][varint32 value_len][value]
 * A node pointer points at next[0] and the higher levels' pointers lie
 * before it, so the key is at a fixed offset from the pointer that led
 * to the node: a comparison need not load the height to find it. The
 * header holds ikey_len, so that a comparison decodes no varint. A
 * comparison reads the first 16 bytes of the user key in place as two
 * big-endian numbers, which settle most comparisons without memcmp.
 * Sixteen, not eight: keys often share their first 8 bytes (the
 * filesystem's block keys are 'B' + inode + block number, its directory
 * entries 'D' + inode + name; zero-padded decimal keys), and then an
 * 8-byte prefix settles nothing. Nodes keep no copy of those bytes in the
 * header: a copy would make every node 16 bytes larger, about a tenth of
 * a node with 100-byte values, and a memtable of a given write buffer
 * size would hold that much less and flush that much more often (more L0
 * files, more L0 compactions, more write amplification).
 *
 * Each memtable has three lists: point entries (PUT/DELETE), range
 * tombstones (key = start ikey with kind RANGE_DELETE, value = exclusive
 * end user key) and the fragment index over those tombstones.
 *
 * Range tombstones for point reads. The tombstone list is what flush and
 * iterators read, but answering "which tombstones cover k?" from it means
 * scanning every tombstone that starts before k. So the writer also keeps
 * a third skiplist, the fragment index. Its nodes are boundaries, the user
 * keys where some tombstone starts or ends (after the header: user key |
 * trailer 0 | padding to a multiple of 8 | cover pointer). Boundary b owns the
 * span [b, next boundary) and points to its cover: the seqs of the tombstones
 * covering that span, as an immutable linked list, newest first. A point lookup
 * is one skiplist search for the last boundary <= k and a search of its cover
 * for the first seq <= read_seq, which jump pointers make O(log c) for c cells:
 * exact at every snapshot. Adding [s, e) at seq q: make sure
 * boundaries exist at s and at e (a new boundary starts with a copy of
 * the cover pointer of the boundary before it, so a split changes no
 * answer), then give each span from s to e a new cover: one cell holding
 * q in front of the old list, which it shares. That q is newer than every
 * indexed seq is what makes one cell enough; in the db it always is (one
 * writer applies batches in seq order, recovery replays in order). A
 * tombstone added with an older seq goes on a "late" list instead, which
 * lookups scan (the old linear cost, for a case the db never produces),
 * so that no insert ever copies lists. A tombstone crossing f spans costs
 * f cells of 32 bytes; the arena's usage counts them, so overlap-heavy
 * patterns fill the write buffer sooner instead of growing unchecked.
 *
 * Rejected alternatives: an interval index keyed by start with the
 * largest end so far answers "is k covered at all?" but, with arbitrary
 * overlaps, not "by which newest seq <= read_seq" without visiting many
 * tombstones; balanced trees need rotations that lock-free readers cannot
 * follow; rebuilding a sorted fragment array per insert is O(n) per write.
 *
 * Invariants:
 *  1. At every level each list is sorted strictly ascending in ikey_cmp
 *     order; (user key, trailer) pairs are unique (caller's promise; the
 *     writer's own guarantee for fragment boundaries).
 *  2. A node is linked bottom-up with release stores after all of its bytes
 *     and its own next pointers are written; readers follow next pointers
 *     with acquire loads, so any node a reader can reach is complete.
 *  3. Nodes are never unlinked or moved: a pointer to a node, and slices
 *     into it, stay valid until the memtable is freed.
 *  4. max_height only grows. A reader that sees a new height before the
 *     head's pointers at that level are set finds NULL there and simply
 *     descends, so a relaxed load is enough.
 *  5. The writer's search cache (splice) holds, for each level, a node of
 *     that level ordered before the last inserted key (or the head). Since
 *     nodes are only added, it stays a valid starting point for any later
 *     key greater than the last inserted one.
 *  6. Covers are immutable once published: a list of cells sorted by seq
 *     strictly descending, each jump pointer leading to a later cell of
 *     the same list. Changing a boundary's cover means writing one cell
 *     in front of the current list, then one release store of the
 *     boundary's cover pointer: it only ever moves to a superset.
 *  7. Every seq in the cover of boundary b belongs to a tombstone that
 *     covers all of [b, next(b)) as it is now, and every indexed tombstone
 *     that covers a key of that span is in b's cover. Keys before the
 *     first boundary are uncovered, and the last boundary's cover is
 *     empty (every tombstone ends at a boundary after the spans it
 *     covers). Empty and inverted tombstones (start >= end) cover nothing
 *     and stay out of the index.
 *  8. For one tombstone the writer links every new boundary before it
 *     changes any cover. A reader loads a boundary's cover (acquire) and
 *     only then re-reads the boundary's next pointer: if it saw a cover
 *     holding a tombstone that ends inside [b, k], it also sees that
 *     tombstone's end boundary and moves on to it. Without this re-read a
 *     reader that found b just before [b, c) was added could take that
 *     tombstone as covering some k >= c.
 *  9. mem_add() publishes nothing before every allocation it needs has
 *     succeeded, except fragment boundaries, which by 7 change no answer:
 *     on -ENOMEM readers see the memtable as it was.
 * 10. Each non-empty tombstone is in exactly one of the fragment index
 *     (seq >= frag_max_seq when added, which then becomes seq) and the
 *     late list (an older seq). So every cover seq is <= frag_max_seq.
 * 11. Point-key filter (memtables made by mem_new_filtered): a blocked
 *     bloom filter over the user keys of point entries, 512-bit blocks,
 *     4 bits per key in the key's block (one cache line per probe). The
 *     writer sets a key's bits before it links the key's node (relaxed
 *     stores sequenced before the link's release stores), so a reader
 *     that can reach the node, or that reads at a sequence number
 *     published after the insert, sees the bits: mem_get() skips the
 *     skiplist when a bit is clear, and a clear bit is never wrong. Most
 *     gets of a store that has flushed are for keys in its files, not in
 *     the memtable: for them the search was a chain of cache misses.
 *
 * Thread safety: mem_add() needs external serialization (one writer; it
 * alone touches the arena, rng and splice). Everything else may run in any
 * number of threads concurrently with the writer, never waiting for it.
 * Reads of a tombstone being added see it on some spans and not on others
 * until mem_add() returns; the db never reads at a sequence number it has
 * not finished writing. The refcount and the counters are atomic.
 */
#include "mem/memtable.h"

#include "util/arena.h"
#include "util/coding.h"
#include "util/hash.h"
#include "util/ikey.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MEM_MAX_HEIGHT 12
#define MEM_BRANCH_BITS 2 /* branching factor 4 */

typedef _Atomic(struct mem_node *) mem_link;

struct mem_node {
	mem_link next0;    /* level 0; level i is at node_link(n, i) */
	uint32_t ikey_len; /* >= IKEY_TRAILER, except on the head */
	uint8_t height;    /* 1..MEM_MAX_HEIGHT */
};

/*
 * A cover cell: one tombstone seq in a boundary's cover (invariant 6).
 * Written once by the writer before the cover that first reaches it is
 * published, then only read: plain fields suffice.
 */
struct cover_cell {
	uint64_t seq;
	uint64_t depth;                /* cells from here to the end */
	const struct cover_cell *next; /* older seqs, or NULL */
	const struct cover_cell *jump; /* an older cell, or NULL: see
					* cover_push() */
};

typedef _Atomic(const struct cover_cell *) cover_ptr;

/* A tombstone added out of seq order (invariant 10); immutable. */
struct late_tomb {
	const struct mem_node *tomb; /* its node in the tombstone list */
	const struct late_tomb *next;
};

/* Fragment boundaries carry trailer 0: one node per user key. */
#define FRAG_TRAILER 0

struct mem_list {
	struct mem_node *head;  /* height MEM_MAX_HEIGHT, no key */
	_Atomic int max_height; /* levels in use, >= 1 (invariant 4) */
	/* Writer-only search cache (invariant 5). */
	struct mem_node *last; /* last inserted node, or NULL */
	struct mem_node *splice[MEM_MAX_HEIGHT];
};

/*
 * Who holds references: the creator, each iterator, and whatever the db
 * publishes it in. The arena, rng and lists' splices belong to the writer.
 */
struct memtable {
	_Atomic uint32_t refs;
	uint64_t rng; /* xorshift64 state, writer only */
	struct arena arena;
	struct mem_list points;
	struct mem_list tombs;
	struct mem_list frags; /* fragment index: boundaries (invariant 7) */
	uint64_t frag_max_seq; /* writer only: newest seq in frags */
	_Atomic(const struct late_tomb *) late; /* newest first */
	_Atomic uint64_t n_entries;             /* relaxed counters */
	_Atomic uint64_t n_tombs;
	/* point-key filter (invariant 11): n_blocks blocks of 8 words, or
	 * NULL; written by the writer only */
	_Atomic uint64_t *filter;
	uint64_t filter_blocks;
};

/* ---- the point-key filter (invariant 11) ---- */

#define FILTER_BLOCK_WORDS 8 /* 512 bits: one cache line */
#define FILTER_PROBES 4

static _Atomic uint64_t *filter_block(const struct memtable *m, uint64_t h)
{
	/* the high half picks the block (multiply-shift: no division) */
	uint64_t b = ((h >> 32) * m->filter_blocks) >> 32;
	return m->filter + b * FILTER_BLOCK_WORDS;
}

static void filter_add(struct memtable *m, struct slice user_key)
{
	uint64_t h = lsm_hash64(user_key.p, user_key.len);
	_Atomic uint64_t *blk = filter_block(m, h);
	uint32_t a = (uint32_t)h, d = (a >> 17) | (a << 15);
	for (int i = 0; i < FILTER_PROBES; i++, a += d) {
		_Atomic uint64_t *w = &blk[(a & 511) >> 6];
		uint64_t bit = UINT64_C(1) << (a & 63);
		/* one writer: load and store, no read-modify-write */
		atomic_store_explicit(
			w, atomic_load_explicit(w, memory_order_relaxed) | bit,
			memory_order_relaxed);
	}
}

static bool filter_may_contain(const struct memtable *m, uint64_t h)
{
	_Atomic uint64_t *blk = filter_block(m, h);
	uint32_t a = (uint32_t)h, d = (a >> 17) | (a << 15);
	for (int i = 0; i < FILTER_PROBES; i++, a += d) {
		uint64_t bit = UINT64_C(1) << (a & 63);
		if (!(atomic_load_explicit(&blk[(a & 511) >> 6],
					   memory_order_relaxed) &
		      bit))
			return false;
	}
	return true;
}

/* ---- nodes ---- */

/* The link of level `level`: next[0] is in the header, next[i] lies i
 * pointers before it, in the same arena allocation. */
static inline mem_link *node_link(const struct mem_node *n, int level)
{
	return (mem_link *)((char *)&((struct mem_node *)n)->next0 -
			    (size_t)level * sizeof(mem_link));
}

/* The ikey, right after the header (a fragment boundary's too). */
static inline const uint8_t *node_key(const struct mem_node *n)
{
	return (const uint8_t *)(n + 1);
}

static inline struct slice node_ikey(const struct mem_node *n)
{
	return slice_make(node_key(n), n->ikey_len);
}

static struct slice node_value(const struct mem_node *n)
{
	const uint8_t *p = node_key(n) + n->ikey_len;
	uint32_t vlen = 0;
	/* Our own encoding in our own memory, so it ends within the node:
	 * decoded byte by byte, with no end pointer that could lie past the
	 * node's allocation. */
	for (int shift = 0; shift < 35; shift += 7) {
		uint8_t b = *p++;
		vlen |= (uint32_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			break;
	}
	return slice_make(p, vlen);
}

static inline struct mem_node *node_next(const struct mem_node *n, int level)
{
	return atomic_load_explicit(node_link(n, level), memory_order_acquire);
}

/* Bytes from a fragment boundary's ikey to its cover pointer: the ikey
 * rounded up to the pointer's alignment. The header and the links are
 * whole multiples of 8 bytes, and the arena returns 8-byte aligned
 * memory, so the cover pointer is aligned. */
#define FRAG_COVER_OFF(ikey_len) (((size_t)(ikey_len) + 7) & ~(size_t)7)
_Static_assert(sizeof(struct mem_node) % _Alignof(cover_ptr) == 0,
	       "cover pointer alignment");
_Static_assert(sizeof(mem_link) % _Alignof(cover_ptr) == 0,
	       "cover pointer alignment");

static inline cover_ptr *frag_cover(const struct mem_node *n)
{
	return (cover_ptr *)(node_key(n) + FRAG_COVER_OFF(n->ikey_len));
}

/*
 * A search target: a user key and a trailer, so that mem_get() need not
 * build an internal key in a buffer.
 */
struct mem_target {
	const uint8_t *user;
	size_t user_len;
	uint64_t trailer;
	uint64_t prefix, prefix2; /* key_prefix(user) */
};

/*
 * The first 16 bytes of a user key as two big-endian numbers, zero-padded.
 * Unequal prefixes order two keys exactly as slice_cmp() does (a byte that
 * is padding in one key is 0, and the other key's byte there is then
 * nonzero, making the shorter key a prefix of the longer), so most
 * comparisons are two integer compares, without memcmp. Equal prefixes
 * mean equal first min(len, 16) bytes.
 */
static inline void key_prefix(const uint8_t *p, size_t len, uint64_t *a,
			      uint64_t *b)
{
	if (len >= 16) {
		*a = get_be64(p);
		*b = get_be64(p + 8);
		return;
	}
	uint8_t buf[16] = {0};
	if (len)
		memcpy(buf, p, len);
	*a = get_be64(buf);
	*b = get_be64(buf + 8);
}

static struct mem_target target_from_ikey(struct slice ik)
{
	struct mem_target t;
	if (ik.len < IKEY_TRAILER) {
		/* Bare user key: before every version of it. */
		t.user = ik.p;
		t.user_len = ik.len;
		t.trailer = UINT64_MAX;
	} else {
		t.user = ik.p;
		t.user_len = ik.len - IKEY_TRAILER;
		t.trailer = get_fixed64(ik.p + t.user_len);
	}
	key_prefix(t.user, t.user_len, &t.prefix, &t.prefix2);
	return t;
}

/* ikey_cmp(node, target), without building slices or decoding varints. */
static inline int node_cmp(const struct mem_node *n, const struct mem_target *t)
{
	const uint8_t *k = node_key(n);
	size_t ulen = n->ikey_len - IKEY_TRAILER;
	uint64_t a, b;
	key_prefix(k, ulen, &a, &b);
	if (a != t->prefix)
		return a < t->prefix ? -1 : 1;
	if (b != t->prefix2)
		return b < t->prefix2 ? -1 : 1;
	size_t min = ulen < t->user_len ? ulen : t->user_len;
	int r = min > 16 ? memcmp(k + 16, t->user + 16, min - 16) : 0;
	if (r)
		return r;
	if (ulen != t->user_len)
		return ulen < t->user_len ? -1 : 1;
	uint64_t tr = get_fixed64(k + ulen);
	return tr > t->trailer ? -1 : tr < t->trailer ? 1 : 0;
}

/* The search target for a node's own key (not the head). */
static inline struct mem_target node_target(const struct mem_node *n)
{
	struct mem_target t;
	t.user = node_key(n);
	t.user_len = n->ikey_len - IKEY_TRAILER;
	t.trailer = get_fixed64(t.user + t.user_len);
	key_prefix(t.user, t.user_len, &t.prefix, &t.prefix2);
	return t;
}

/* ---- searches (readers and writer) ---- */

static inline int list_height(const struct mem_list *l)
{
	return atomic_load_explicit(&((struct mem_list *)l)->max_height,
				    memory_order_relaxed);
}

/*
 * A search at x on `level` is about to compare next (x's successor there)
 * with its target. Whether next sorts below the target or not, the node
 * compared after it is next's successor on this level or x's on the level
 * below: fetching both now overlaps their cache misses with this one.
 */
static inline void prefetch_after(const struct mem_node *x,
				  const struct mem_node *next, int level)
{
#if defined(__GNUC__)
	if (!next)
		return;
	__builtin_prefetch(atomic_load_explicit(node_link(next, level),
						memory_order_relaxed));
	if (level > 0)
		__builtin_prefetch(atomic_load_explicit(node_link(x, level - 1),
							memory_order_relaxed));
#else
	(void)x;
	(void)next;
	(void)level;
#endif
}

/* First node >= t, or NULL. */
static struct mem_node *list_find_ge(const struct mem_list *l,
				     const struct mem_target *t)
{
	struct mem_node *x = l->head;
	struct mem_node *next = NULL, *bound = NULL;
	for (int level = list_height(l) - 1; level >= 0; level--) {
		for (;;) {
			next = node_next(x, level);
			prefetch_after(x, next, level);
			/* bound already compared >= t on the level above */
			if (!next || next == bound || node_cmp(next, t) >= 0)
				break;
			x = next;
		}
		bound = next;
	}
	return next;
}

/* Last node < t (or <= t when or_equal), or NULL. */
static struct mem_node *list_find_before(const struct mem_list *l,
					 const struct mem_target *t,
					 bool or_equal)
{
	struct mem_node *x = l->head;
	for (int level = list_height(l) - 1; level >= 0; level--) {
		for (;;) {
			struct mem_node *next = node_next(x, level);
			if (!next)
				break;
			int c = node_cmp(next, t);
			if (c > 0 || (c == 0 && !or_equal))
				break;
			x = next;
		}
	}
	return x == l->head ? NULL : x;
}

static struct mem_node *list_find_last(const struct mem_list *l)
{
	struct mem_node *x = l->head;
	for (int level = list_height(l) - 1; level >= 0; level--) {
		struct mem_node *next;
		while ((next = node_next(x, level)) != NULL)
			x = next;
	}
	return x == l->head ? NULL : x;
}

/* ---- lifecycle ---- */

static struct mem_node *node_alloc(struct arena *a, int height, size_t extra)
{
	size_t above = (size_t)(height - 1) * sizeof(mem_link);
	char *p = arena_alloc(a, above + sizeof(struct mem_node) + extra);
	if (!p)
		return NULL;
	struct mem_node *n = (struct mem_node *)(p + above);
	n->height = (uint8_t)height;
	return n;
}

static int list_init(struct mem_list *l, struct arena *a)
{
	l->head = node_alloc(a, MEM_MAX_HEIGHT, 0);
	if (!l->head)
		return -ENOMEM;
	l->head->ikey_len = 0;
	for (int i = 0; i < MEM_MAX_HEIGHT; i++) {
		atomic_init(node_link(l->head, i), NULL);
		l->splice[i] = l->head;
	}
	atomic_init(&l->max_height, 1);
	l->last = NULL;
	return 0;
}

struct memtable *mem_new(void)
{
	struct memtable *m = malloc(sizeof(*m));
	if (!m)
		return NULL;
	atomic_init(&m->refs, 1);
	/* Any fixed nonzero seed: heights only affect speed, and a fixed
	 * seed keeps runs reproducible. */
	m->rng = UINT64_C(0x9e3779b97f4a7c15);
	arena_init(&m->arena);
	atomic_init(&m->n_entries, 0);
	atomic_init(&m->n_tombs, 0);
	m->frag_max_seq = 0;
	atomic_init(&m->late, NULL);
	m->filter = NULL;
	m->filter_blocks = 0;
	if (list_init(&m->points, &m->arena) < 0 ||
	    list_init(&m->tombs, &m->arena) < 0 ||
	    list_init(&m->frags, &m->arena) < 0)
		goto out_free;
	return m;

out_free:
	arena_release(&m->arena);
	free(m);
	return NULL;
}

void mem_ref(struct memtable *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

struct memtable *mem_new_filtered(size_t filter_bytes)
{
	size_t block = FILTER_BLOCK_WORDS * sizeof(uint64_t);
	uint64_t blocks = filter_bytes / block;
	struct memtable *m;
	if (blocks < 1)
		blocks = 1;
	if (blocks > UINT32_MAX)
		blocks = UINT32_MAX;
	m = mem_new();
	if (!m)
		return NULL;
	/* cache-line aligned, zeroed once here (1 MiB per 64 MiB memtable) */
	m->filter = aligned_alloc(block, (size_t)blocks * block);
	if (!m->filter) {
		mem_unref(m);
		return NULL;
	}
	memset((void *)m->filter, 0, (size_t)blocks * block);
	m->filter_blocks = blocks;
	return m;
}

bool mem_may_contain(const struct memtable *m, struct slice user_key)
{
	return !m->filter ||
	       filter_may_contain(m, lsm_hash64(user_key.p, user_key.len));
}

void mem_unref(struct memtable *m)
{
	if (!m)
		return;
	uint32_t old =
		atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel);
	assert(old > 0);
	if (old != 1)
		return;
	arena_release(&m->arena);
	free((void *)m->filter);
	free(m);
}

/* ---- writer ---- */

static int random_height(struct memtable *m)
{
	uint64_t x = m->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	m->rng = x;
	int h = 1;
	/* Use the high bits, which xorshift mixes best. */
	x >>= 32;
	while (h < MEM_MAX_HEIGHT && (x & ((1u << MEM_BRANCH_BITS) - 1)) == 0) {
		h++;
		x >>= MEM_BRANCH_BITS;
	}
	return h;
}

/*
 * Fills prev[level] with the last node < t at every level (the head above
 * the list's height). When t sorts after the last insert, each level
 * starts at the further of the splice node and the node reached on the
 * level above (invariant 5), which makes ascending inserts O(height)
 * comparisons.
 */
static void list_find_prev(struct mem_list *l, const struct mem_target *tp,
			   struct mem_node **prev)
{
	const struct mem_target t = *tp;
	int top = list_height(l);
	bool use_splice = l->last && node_cmp(l->last, &t) < 0;
	struct mem_node *x = l->head, *bound = NULL;
	for (int level = MEM_MAX_HEIGHT - 1; level >= top; level--)
		prev[level] = l->head;
	for (int level = top - 1; level >= 0; level--) {
		if (use_splice) {
			struct mem_node *s = l->splice[level];
			if (s != x && s != l->head) {
				struct mem_target st = node_target(s);
				if (x == l->head || node_cmp(x, &st) < 0)
					x = s;
			}
		}
		struct mem_node *next;
		for (;;) {
			next = atomic_load_explicit(node_link(x, level),
						    memory_order_relaxed);
			prefetch_after(x, next, level);
			/* bound already compared >= t on the level above */
			if (!next || next == bound || node_cmp(next, &t) >= 0)
				break;
			x = next;
		}
		bound = next;
		prev[level] = x;
	}
}

/* Links n after prev[level] at each of its levels (invariant 2). */
static void list_link(struct mem_list *l, struct mem_node *n,
		      struct mem_node **prev)
{
	int height = n->height;
	if (height > list_height(l))
		atomic_store_explicit(&l->max_height, height,
				      memory_order_relaxed);
	for (int i = 0; i < height; i++) {
		/* n is not yet reachable: a relaxed store suffices. */
		atomic_store_explicit(
			node_link(n, i),
			atomic_load_explicit(node_link(prev[i], i),
					     memory_order_relaxed),
			memory_order_relaxed);
		atomic_store_explicit(node_link(prev[i], i), n,
				      memory_order_release);
	}
	memcpy(l->splice, prev, sizeof(l->splice));
	l->last = n;
}

static void list_insert(struct mem_list *l, struct mem_node *n)
{
	struct mem_node *prev[MEM_MAX_HEIGHT];
	struct mem_target t = node_target(n);
	list_find_prev(l, &t, prev);
	list_link(l, n, prev);
}

/* ---- writer: the fragment index ---- */

/*
 * The boundary node at user key b, inserted if missing with a copy of
 * the cover of the boundary before it (invariant 7: the split changes no
 * answer). NULL when out of memory.
 */
static struct mem_node *frag_boundary(struct memtable *m, struct slice b)
{
	struct mem_list *l = &m->frags;
	struct mem_target t = {b.p, b.len, FRAG_TRAILER, 0, 0};
	struct mem_node *prev[MEM_MAX_HEIGHT];
	key_prefix(b.p, b.len, &t.prefix, &t.prefix2);
	list_find_prev(l, &t, prev);
	struct mem_node *n =
		atomic_load_explicit(&prev[0]->next0, memory_order_relaxed);
	if (n && node_cmp(n, &t) == 0)
		return n;

	uint32_t ikey_len = (uint32_t)(b.len + IKEY_TRAILER);
	n = node_alloc(&m->arena, random_height(m),
		       FRAG_COVER_OFF(ikey_len) + sizeof(cover_ptr));
	if (!n)
		return NULL;
	n->ikey_len = ikey_len;
	uint8_t *k = (uint8_t *)node_key(n);
	if (b.len)
		memcpy(k, b.p, b.len);
	put_fixed64(k + b.len, FRAG_TRAILER);
	const struct cover_cell *c = NULL;
	if (prev[0] != l->head)
		c = atomic_load_explicit(frag_cover(prev[0]),
					 memory_order_relaxed);
	atomic_init(frag_cover(n), c);
	list_link(l, n, prev);
	return n;
}

static uint64_t cell_depth(const struct cover_cell *c)
{
	return c ? c->depth : 0;
}

/*
 * Fills cell as the new head of cover c. Jump pointers (Myers'
 * random-access stacks, with NULL as a root of depth 0 that jumps to
 * itself): a cell jumps two jumps back when its parent's jump spans as
 * many cells as the jump after it, else to its parent. The jump lengths
 * then form a skew-binary pattern, so cover_visible() reaches any cell in
 * O(log depth) steps: a reader at an old snapshot does not walk every
 * newer tombstone of a span deleted again and again.
 */
static void cover_push(struct cover_cell *cell, uint64_t seq,
		       const struct cover_cell *c)
{
	cell->seq = seq;
	cell->depth = cell_depth(c) + 1;
	cell->next = c;
	const struct cover_cell *j = c ? c->jump : NULL;
	const struct cover_cell *jj = j ? j->jump : NULL;
	if (c &&
	    cell_depth(c) - cell_depth(j) == cell_depth(j) - cell_depth(jj))
		cell->jump = jj;
	else
		cell->jump = c;
}

/*
 * Adds tombstone [start, end) (start < end) at seq, which is >= every seq
 * already indexed, to the fragment index: boundaries first, then one
 * allocation for all new cells, then a new cover for each span from start
 * to end, one release store each (invariants 8 and 9). 0 or -ENOMEM.
 */
static int frag_add(struct memtable *m, struct slice start, struct slice end,
		    uint64_t seq)
{
	struct mem_node *s = frag_boundary(m, start);
	if (!s)
		return -ENOMEM;
	struct mem_node *e = frag_boundary(m, end);
	if (!e)
		return -ENOMEM;

	/* seq is the newest of every cover: it is there already (an equal
	 * seq) or goes in front as one cell. */
	size_t n_cells = 0;
	for (struct mem_node *x = s; x != e;
	     x = atomic_load_explicit(&x->next0, memory_order_relaxed)) {
		const struct cover_cell *c = atomic_load_explicit(
			frag_cover(x), memory_order_relaxed);
		assert(!c || c->seq <= seq);
		n_cells += !c || c->seq != seq;
	}
	if (!n_cells)
		return 0;
	if (n_cells > SIZE_MAX / sizeof(struct cover_cell))
		return -ENOMEM;
	struct cover_cell *cell =
		arena_alloc(&m->arena, n_cells * sizeof(struct cover_cell));
	if (!cell)
		return -ENOMEM;
	for (struct mem_node *x = s; x != e;
	     x = atomic_load_explicit(&x->next0, memory_order_relaxed)) {
		const struct cover_cell *c = atomic_load_explicit(
			frag_cover(x), memory_order_relaxed);
		if (c && c->seq == seq)
			continue;
		cover_push(cell, seq, c);
		atomic_store_explicit(frag_cover(x), cell,
				      memory_order_release);
		cell++;
	}
	return 0;
}

int mem_add(struct memtable *m, uint64_t seq, unsigned kind, struct slice key,
	    struct slice value)
{
	if (kind > IKEY_BLOB || seq > IKEY_SEQ_MAX)
		return -EINVAL;
	if (key.len > UINT32_MAX - IKEY_TRAILER || value.len > UINT32_MAX)
		return -EINVAL;
	/* A tombstone's end becomes a fragment boundary's key. */
	if (kind == IKEY_RANGE_DELETE && value.len > UINT32_MAX - IKEY_TRAILER)
		return -EINVAL;
	uint32_t ikey_len = (uint32_t)(key.len + IKEY_TRAILER);
	size_t entry = ikey_len + varint_len(value.len) + value.len;
	int height = random_height(m);
	struct mem_node *n = node_alloc(&m->arena, height, entry);
	if (!n)
		return -ENOMEM;
	n->ikey_len = ikey_len;
	uint8_t *p = (uint8_t *)node_key(n);
	if (key.len)
		memcpy(p, key.p, key.len);
	p += key.len;
	ikey_put_trailer(p, seq, kind);
	p += IKEY_TRAILER;
	p = put_varint32(p, (uint32_t)value.len);
	if (value.len)
		memcpy(p, value.p, value.len);

	if (kind == IKEY_RANGE_DELETE) {
		/* n is allocated, so nothing can fail once the tombstone is
		 * published to readers (invariant 9). */
		struct late_tomb *late = NULL;
		if (slice_cmp(key, value) >= 0) {
			/* covers nothing: in the list only */
		} else if (seq >= m->frag_max_seq) {
			int rc = frag_add(m, key, value, seq);
			if (rc)
				return rc;
			m->frag_max_seq = seq;
		} else {
			late = arena_alloc(&m->arena, sizeof(*late));
			if (!late)
				return -ENOMEM;
			late->tomb = n;
			late->next = atomic_load_explicit(&m->late,
							  memory_order_relaxed);
		}
		list_insert(&m->tombs, n);
		if (late)
			atomic_store_explicit(&m->late, late,
					      memory_order_release);
		atomic_fetch_add_explicit(&m->n_tombs, 1, memory_order_relaxed);
	} else {
		if (m->filter)
			filter_add(m, key);
		list_insert(&m->points, n);
		atomic_fetch_add_explicit(&m->n_entries, 1,
					  memory_order_relaxed);
	}
	return 0;
}

/* ---- readers ---- */

int mem_get(struct memtable *m, struct slice user_key, uint64_t read_seq,
	    int (*fn)(void *ctx, struct slice ikey, struct slice value),
	    void *ctx)
{
	uint64_t h = m->filter ? lsm_hash64(user_key.p, user_key.len) : 0;
	return mem_get_hashed(m, user_key, h, read_seq, fn, ctx);
}

int mem_get_hashed(struct memtable *m, struct slice user_key, uint64_t key_hash,
		   uint64_t read_seq,
		   int (*fn)(void *ctx, struct slice ikey, struct slice value),
		   void *ctx)
{
	if (m->filter && !filter_may_contain(m, key_hash))
		return 0;
	if (read_seq > IKEY_SEQ_MAX)
		read_seq = IKEY_SEQ_MAX;
	struct mem_target t = {user_key.p, user_key.len,
			       ikey_pack(read_seq, IKEY_KIND_SEEK), 0, 0};
	key_prefix(user_key.p, user_key.len, &t.prefix, &t.prefix2);
	struct mem_node *n = list_find_ge(&m->points, &t);
	if (!n || n->ikey_len - IKEY_TRAILER != user_key.len ||
	    (user_key.len && memcmp(node_key(n), user_key.p, user_key.len)))
		return 0;
	fn(ctx, node_ikey(n), node_value(n));
	return 1;
}

/* The newest seq <= read_seq in a cover, or 0. */
static uint64_t cover_visible(const struct cover_cell *c, uint64_t read_seq)
{
	/* Seqs fall along next: a jump to a cell still > read_seq passes
	 * over only cells > read_seq. */
	while (c && c->seq > read_seq)
		c = c->jump && c->jump->seq > read_seq ? c->jump : c->next;
	return c ? c->seq : 0;
}

/*
 * Starting from boundary x <= t, the last boundary <= t and its cover,
 * loaded before the re-read of its next pointer (invariant 8). *next gets
 * that pointer: the span's end, NULL for the last span.
 */
static struct mem_node *frag_settle(struct mem_node *x,
				    const struct mem_target *t,
				    const struct cover_cell **cover,
				    struct mem_node **next)
{
	for (;;) {
		*cover = atomic_load_explicit(frag_cover(x),
					      memory_order_acquire);
		*next = node_next(x, 0);
		if (!*next || node_cmp(*next, t) > 0)
			return x;
		x = *next;
	}
}

static struct mem_target frag_target(struct slice user_key)
{
	struct mem_target t = {user_key.p, user_key.len, FRAG_TRAILER, 0, 0};
	key_prefix(user_key.p, user_key.len, &t.prefix, &t.prefix2);
	return t;
}

uint64_t mem_max_covering_tomb(struct memtable *m, struct slice user_key,
			       uint64_t read_seq)
{
	struct mem_target t = frag_target(user_key);
	uint64_t best = 0;
	struct mem_node *x = list_find_before(&m->frags, &t, true);
	if (x) {
		const struct cover_cell *c;
		struct mem_node *next;
		frag_settle(x, &t, &c, &next);
		best = cover_visible(c, read_seq);
	}
	const struct late_tomb *l =
		atomic_load_explicit(&m->late, memory_order_acquire);
	for (; l; l = l->next) {
		struct slice ik = node_ikey(l->tomb);
		uint64_t seq = ikey_seq(ik);
		if (seq <= read_seq && seq > best &&
		    slice_cmp(ikey_user(ik), user_key) <= 0 &&
		    slice_cmp(user_key, node_value(l->tomb)) < 0)
			best = seq;
	}
	return best;
}

int mem_tomb_spans(struct memtable *m, const struct slice *lower,
		   const struct slice *upper, uint64_t read_seq,
		   int (*fn)(void *ctx, struct slice start, struct slice end,
			     uint64_t seq),
		   void *ctx)
{
	struct mem_target lt = {NULL, 0, 0, 0, 0}, ut = lt;
	struct mem_node *x = NULL, *next = NULL;
	const struct cover_cell *c = NULL;
	int rc;

	if (upper)
		ut = frag_target(*upper);
	if (lower) {
		lt = frag_target(*lower);
		x = list_find_before(&m->frags, &lt, true);
	}
	if (x) {
		x = frag_settle(x, &lt, &c, &next);
	} else {
		/* Every span from the first: covers read later hold at
		 * least the tombstones finished before the call. */
		x = node_next(m->frags.head, 0);
		if (x) {
			c = atomic_load_explicit(frag_cover(x),
						 memory_order_acquire);
			next = node_next(x, 0);
		}
	}

	/* Spans in order; a run of adjacent spans with the same visible
	 * seq goes out as one piece. The last span is uncovered. */
	struct slice ps = {NULL, 0}, pe = {NULL, 0};
	uint64_t pv = 0;
	bool open = false; /* the pending piece ends where x starts */
	while (x && next) {
		if (upper && node_cmp(x, &ut) >= 0)
			break;
		uint64_t v = cover_visible(c, read_seq);
		if (v && open && v == pv) {
			pe = ikey_user(node_ikey(next));
		} else if (v) {
			if (pv && (rc = fn(ctx, ps, pe, pv)) != 0)
				return rc;
			ps = ikey_user(node_ikey(x));
			pe = ikey_user(node_ikey(next));
			pv = v;
		}
		open = v != 0;
		x = next;
		c = atomic_load_explicit(frag_cover(x), memory_order_acquire);
		next = node_next(x, 0); /* after the cover (invariant 8) */
	}
	if (pv && (rc = fn(ctx, ps, pe, pv)) != 0)
		return rc;

	const struct late_tomb *l =
		atomic_load_explicit(&m->late, memory_order_acquire);
	for (; l; l = l->next) {
		struct slice ik = node_ikey(l->tomb);
		struct slice s = ikey_user(ik), e = node_value(l->tomb);
		uint64_t seq = ikey_seq(ik);
		if (!seq || seq > read_seq ||
		    (upper && slice_cmp(s, *upper) >= 0) ||
		    (lower && slice_cmp(e, *lower) <= 0))
			continue;
		if ((rc = fn(ctx, s, e, seq)) != 0)
			return rc;
	}
	return 0;
}

size_t mem_usage(const struct memtable *m)
{
	return arena_usage(&m->arena) +
	       (size_t)m->filter_blocks * FILTER_BLOCK_WORDS * sizeof(uint64_t);
}

uint64_t mem_num_entries(const struct memtable *m)
{
	return atomic_load_explicit(&((struct memtable *)m)->n_entries,
				    memory_order_relaxed);
}

uint64_t mem_num_tombs(const struct memtable *m)
{
	return atomic_load_explicit(&((struct memtable *)m)->n_tombs,
				    memory_order_relaxed);
}

bool mem_is_empty(const struct memtable *m)
{
	return mem_num_entries(m) == 0 && mem_num_tombs(m) == 0;
}

/* ---- iterators ---- */

struct mem_iter {
	struct ikv_iter base;
	struct memtable *m;    /* referenced */
	struct mem_list *list; /* &m->points or &m->tombs */
	struct mem_node *node; /* current, or NULL when invalid */
};

static bool mit_valid(const struct ikv_iter *it)
{
	return ((const struct mem_iter *)it)->node != NULL;
}

/*
 * A scan visits nodes in key order, scattered over the arena: arriving at
 * a node, fetch the one after it (header, key and a short value: three
 * lines) while the caller uses this one. A full scan of a memtable-heavy
 * store (lsm-bench readseq at 2M keys) ran 27% faster with it.
 */
static inline void prefetch_next(const struct mem_node *n)
{
#if defined(__GNUC__)
	const struct mem_node *x;
	if (!n)
		return;
	x = atomic_load_explicit(&((struct mem_node *)n)->next0,
				 memory_order_relaxed);
	if (x) {
		/* addresses, not pointers: they may lie past the node */
		uintptr_t a = (uintptr_t)x;
		__builtin_prefetch((const void *)a);
		__builtin_prefetch((const void *)(a + 64));
		__builtin_prefetch((const void *)(a + 128));
	}
#else
	(void)n;
#endif
}

static void mit_first(struct ikv_iter *it)
{
	struct mem_iter *mi = (struct mem_iter *)it;
	mi->node = node_next(mi->list->head, 0);
	prefetch_next(mi->node);
}

static void mit_last(struct ikv_iter *it)
{
	struct mem_iter *mi = (struct mem_iter *)it;
	mi->node = list_find_last(mi->list);
}

static void mit_seek(struct ikv_iter *it, struct slice target)
{
	struct mem_iter *mi = (struct mem_iter *)it;
	struct mem_target t = target_from_ikey(target);
	mi->node = list_find_ge(mi->list, &t);
}

static void mit_seek_for_prev(struct ikv_iter *it, struct slice target)
{
	struct mem_iter *mi = (struct mem_iter *)it;
	struct mem_target t = target_from_ikey(target);
	mi->node = list_find_before(mi->list, &t, true);
}

static void mit_next(struct ikv_iter *it)
{
	struct mem_iter *mi = (struct mem_iter *)it;
	assert(mi->node);
	mi->node = node_next(mi->node, 0);
	prefetch_next(mi->node);
}

bool mem_iter_step(struct ikv_iter *it, struct slice *key, struct slice *value)
{
	struct mem_iter *mi = (struct mem_iter *)it;
	assert(mi->node);
	mi->node = node_next(mi->node, 0);
	if (!mi->node)
		return false;
	prefetch_next(mi->node);
	*key = node_ikey(mi->node);
	*value = node_value(mi->node);
	return true;
}

static void mit_prev(struct ikv_iter *it)
{
	struct mem_iter *mi = (struct mem_iter *)it;
	assert(mi->node);
	struct mem_target t = target_from_ikey(node_ikey(mi->node));
	mi->node = list_find_before(mi->list, &t, false);
}

static struct slice mit_key(const struct ikv_iter *it)
{
	const struct mem_iter *mi = (const struct mem_iter *)it;
	assert(mi->node);
	return node_ikey(mi->node);
}

static struct slice mit_value(const struct ikv_iter *it)
{
	const struct mem_iter *mi = (const struct mem_iter *)it;
	assert(mi->node);
	return node_value(mi->node);
}

static int mit_status(const struct ikv_iter *it)
{
	return 0;
}

static void mit_free(struct ikv_iter *it)
{
	struct mem_iter *mi = (struct mem_iter *)it;
	mem_unref(mi->m);
	free(mi);
}

static const struct ikv_iter_ops mem_iter_ops = {
	.valid = mit_valid,
	.first = mit_first,
	.last = mit_last,
	.seek = mit_seek,
	.seek_for_prev = mit_seek_for_prev,
	.next = mit_next,
	.prev = mit_prev,
	.key = mit_key,
	.value = mit_value,
	.status = mit_status,
	.free = mit_free,
};

static struct ikv_iter *iter_over(struct memtable *m, struct mem_list *l)
{
	struct mem_iter *mi = malloc(sizeof(*mi));
	if (!mi)
		return NULL;
	mi->base.ops = &mem_iter_ops;
	mem_ref(m);
	mi->m = m;
	mi->list = l;
	mi->node = NULL;
	return &mi->base;
}

struct ikv_iter *mem_iter_new(struct memtable *m)
{
	return iter_over(m, &m->points);
}

struct ikv_iter *mem_tomb_iter_new(struct memtable *m)
{
	return iter_over(m, &m->tombs);
}
