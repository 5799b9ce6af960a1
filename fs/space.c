/*
 * space.c - the free-space reserve: operations that add data fail with
 * ENOSPC before the store's disk is full, so that deletions (which are
 * writes: tombstones) and the flushes and compactions that reclaim space
 * (which write new files before removing old ones) always find room.
 *
 * Why: an LSM store cannot free space without first using some. If the
 * disk filled up completely, unlink would fail too and the filesystem
 * would be stuck full. So the daemon keeps `reserve` bytes of the store's
 * filesystem (statvfs f_bavail) for itself: adds are refused below it,
 * removals never are, and statfs reports the space minus the reserve.
 *
 * Space only comes back once the engine rewrites the data a deletion
 * hides: the memtable and its WAL hold it until a flush, SSTs until a
 * compaction. When an add was refused and something was deleted since,
 * a reclaim thread flushes the memtable and compacts the block keys of
 * the deleted inodes down to the last level. The next statvfs sees the
 * freed space.
 *
 * Invariants:
 *  1. An add is admitted only if the estimated free space (f_bavail at the
 *     last statvfs minus the bytes admitted since) stays >= reserve after
 *     it. statvfs is re-read when the cached value is older than
 *     SPACE_RECHECK_NS or SPACE_RECHECK_BYTES were admitted since, so a
 *     stream of small writes costs one statvfs per 100 ms at most.
 *  2. Removals (unlink, rmdir, truncate down, punch hole, removexattr)
 *     never consult the reserve.
 *  3. A reclaim runs only when an add was refused AND something was
 *     deleted since the last reclaim; both flags are cleared when it
 *     starts, so a full disk with nothing to delete costs no work.
 *  4. If statvfs fails, nothing is refused (the engine still reports a
 *     real ENOSPC, which fs_errno maps).
 *
 * Thread safety: any loop thread. space.mu is a leaf lock (taken last,
 * never held while calling the engine or taking another lock), so
 * space_admit and space_freed may be called with inode locks held. The
 * reclaim thread calls the engine without holding any fs lock.
 */
#include <errno.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "fs.h"

#define MIB (1024ull * 1024ull)
/* Default reserve: max(64 MiB, 2% of the store's filesystem). */
#define SPACE_RESERVE_MIN (64 * MIB)
#define SPACE_RESERVE_PERCENT 2
#define SPACE_RECHECK_NS 100000000ull /* 100 ms */
#define SPACE_RECHECK_BYTES (8 * MIB)
/* Added to every admitted op: keys, inode record, WAL framing. */
#define SPACE_OP_OVERHEAD 512

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t sv_bytes(const struct statvfs *sv, fsblkcnt_t n)
{
	uint64_t unit = sv->f_frsize ? sv->f_frsize : sv->f_bsize;

	return (uint64_t)n * unit;
}

/* Re-reads statvfs into the cache (mu held). -errno on failure. */
static int refresh_locked(struct lsmfs *fs, uint64_t now)
{
	struct lsmfs_space *sp = &fs->space;
	struct statvfs sv;

	if (statvfs(fs->opts->store, &sv) != 0)
		return -errno;
	sp->avail = sv_bytes(&sv, sv.f_bavail);
	sp->added = 0;
	sp->checked_ns = now ? now : 1;
	return 0;
}

static void *reclaim_main(void *arg)
{
	struct lsmfs *fs = arg;
	struct lsmfs_space *sp = &fs->space;
	uint8_t lo[KEY_MAX_LEN], hi[KEY_MAX_LEN];
	size_t lo_len, hi_len;
	int rc;

	pthread_mutex_lock(&sp->mu);
	for (;;) {
		while (!sp->is_stopping && !(sp->is_starved && sp->has_freed))
			pthread_cond_wait(&sp->cv, &sp->mu);
		if (sp->is_stopping)
			break;
		sp->is_starved = false;
		sp->has_freed = false;
		lo_len = key_ino(lo, KEY_BLOCK, sp->freed_lo);
		hi_len = key_ino(hi, KEY_BLOCK,
				 sp->freed_hi == UINT64_MAX ? sp->freed_hi
							    : sp->freed_hi + 1);
		sp->freed_lo = UINT64_MAX;
		sp->freed_hi = 0;
		pthread_mutex_unlock(&sp->mu);

		/* The memtable and its WAL hold what was just deleted; the
		 * flush drops it and retires the WAL. Older data sits in SSTs
		 * that only a compaction rewrites. */
		rc = lsm_flush(fs->db);
		if (!rc)
			rc = lsm_compact_range(fs->db, lo, lo_len, hi, hi_len);
		if (rc)
			fs_log(fs, LOG_WARNING,
			       "reclaiming space after deletions: %s",
			       lsm_strerror(rc));

		pthread_mutex_lock(&sp->mu);
		sp->n_reclaims++;
		sp->checked_ns = 0; /* the next admit re-reads statvfs */
	}
	pthread_mutex_unlock(&sp->mu);
	return NULL;
}

int space_init(struct lsmfs *fs)
{
	struct lsmfs_space *sp = &fs->space;
	struct statvfs sv;
	uint64_t total, pct;
	int rc;

	memset(sp, 0, sizeof(*sp));
	sp->freed_lo = UINT64_MAX;
	if (fs->opts->has_reserve) {
		sp->reserve = fs->opts->reserve;
	} else {
		sp->reserve = SPACE_RESERVE_MIN;
		if (statvfs(fs->opts->store, &sv) == 0) {
			total = sv_bytes(&sv, sv.f_blocks);
			pct = total / 100 * SPACE_RESERVE_PERCENT;
			if (pct > sp->reserve)
				sp->reserve = pct;
		}
	}
	rc = pthread_mutex_init(&sp->mu, NULL);
	if (rc)
		return -rc;
	rc = pthread_cond_init(&sp->cv, NULL);
	if (rc)
		goto out_mutex;
	rc = pthread_create(&sp->thread, NULL, reclaim_main, fs);
	if (rc)
		goto out_cond;
	sp->has_thread = true;
	return 0;
out_cond:
	pthread_cond_destroy(&sp->cv);
out_mutex:
	pthread_mutex_destroy(&sp->mu);
	return -rc;
}

void space_release(struct lsmfs *fs)
{
	struct lsmfs_space *sp = &fs->space;

	if (!sp->has_thread)
		return;
	pthread_mutex_lock(&sp->mu);
	sp->is_stopping = true;
	pthread_cond_broadcast(&sp->cv);
	pthread_mutex_unlock(&sp->mu);
	pthread_join(sp->thread, NULL);
	sp->has_thread = false;
	pthread_cond_destroy(&sp->cv);
	pthread_mutex_destroy(&sp->mu);
}

int space_admit(struct lsmfs *fs, uint64_t bytes)
{
	struct lsmfs_space *sp = &fs->space;
	uint64_t now = now_ns(), need, est;
	int rc = 0;

	if (sp->reserve == 0)
		return 0;
	need = bytes + SPACE_OP_OVERHEAD;
	pthread_mutex_lock(&sp->mu);
	if (sp->checked_ns == 0 || now - sp->checked_ns >= SPACE_RECHECK_NS ||
	    sp->added >= SPACE_RECHECK_BYTES) {
		if (refresh_locked(fs, now) != 0) {
			sp->checked_ns = 0;
			goto out_unlock; /* invariant 4 */
		}
	}
	est = sp->avail > sp->added ? sp->avail - sp->added : 0;
	if (est < sp->reserve || est - sp->reserve < need) {
		rc = -ENOSPC;
		sp->n_refused++;
		if (!sp->is_starved) {
			sp->is_starved = true;
			if (sp->has_freed)
				pthread_cond_signal(&sp->cv);
		}
		goto out_unlock;
	}
	sp->added += need;
out_unlock:
	pthread_mutex_unlock(&sp->mu);
	return rc;
}

void space_freed(struct lsmfs *fs, uint64_t ino)
{
	struct lsmfs_space *sp = &fs->space;

	pthread_mutex_lock(&sp->mu);
	if (ino < sp->freed_lo)
		sp->freed_lo = ino;
	if (ino > sp->freed_hi)
		sp->freed_hi = ino;
	sp->has_freed = true;
	if (sp->is_starved)
		pthread_cond_signal(&sp->cv);
	pthread_mutex_unlock(&sp->mu);
}

void space_statfs(struct lsmfs *fs, const struct statvfs *sv, uint64_t *bfree,
		  uint64_t *bavail)
{
	struct lsmfs_space *sp = &fs->space;
	uint64_t f = sv_bytes(sv, sv->f_bfree), a = sv_bytes(sv, sv->f_bavail);

	pthread_mutex_lock(&sp->mu);
	sp->avail = a; /* a fresh statvfs: refresh the cache too */
	sp->added = 0;
	sp->checked_ns = now_ns();
	if (!sp->checked_ns)
		sp->checked_ns = 1;
	pthread_mutex_unlock(&sp->mu);
	*bfree = f > sp->reserve ? f - sp->reserve : 0;
	*bavail = a > sp->reserve ? a - sp->reserve : 0;
}
