/*
 * env_fault.h - a fault-injecting env for tests.
 *
 * env_fault_new() wraps another env (normally env_posix()) and forwards
 * every call to it, while it can:
 *  - fail the n-th mutating operation (once, or from then on),
 *  - limit the bytes written through it (-ENOSPC),
 *  - simulate a power cut: drop everything that was not made durable.
 *
 * Mutating operations (counted by env_fault_op_count()): new_wfile,
 * wfile_append, wfile_flush, wfile_sync, rename_file, remove_file,
 * remove_dir, link_file, sync_dir, make_dir.
 *
 * Durability model used by env_fault_power_cut():
 *  - file contents: the bytes up to the last successful wfile_sync survive;
 *    in torn mode a random prefix of the flushed-but-unsynced tail survives
 *    too, possibly followed by 1..8 bytes of garbage;
 *  - names: a file created through this env survives only if the directory
 *    holding it was synced (sync_dir) after it was created; a rename becomes
 *    durable when the destination's directory is synced: before that, a cut
 *    moves the file back to its old durable name (or deletes it if it had
 *    none) and restores the durable contents of a file it replaced;
 *  - remove_file, remove_dir, link_file and make_dir are durable at once;
 *    files not written through this env are never changed by a cut.
 * Directory names are compared as strings: use the same spelling for a
 * file's directory in paths and in sync_dir() (no "//" or "./").
 * The cut truncates the real files with truncate(2), so the base env must
 * work on real paths.
 *
 * Thread safety: every call is serialized by one mutex per fault env
 * (including the forwarded I/O of write files). Close every file handle
 * before env_fault_free().
 */
#ifndef LSM_ENV_ENV_FAULT_H
#define LSM_ENV_ENV_FAULT_H

#include "env/env.h"

#include <stdbool.h>
#include <stdint.h>

/* NULL if out of memory. `base` must outlive the fault env. */
lsm_env *env_fault_new(lsm_env *base);
void env_fault_free(lsm_env *e);

/* The n-th (1-based, counted from now) mutating operation fails with err
 * (a negative status) and does nothing; if sticky, every later mutating
 * operation fails too. n == 0 cancels a pending failure. */
void env_fault_fail_nth(lsm_env *e, uint64_t n, int err, bool sticky);

/* Total bytes appended to files written through this env may not exceed
 * `bytes`: an append that would pass it fails with -ENOSPC and writes
 * nothing. Removing (or truncating, or renaming over) such a file frees its
 * bytes. 0 = no limit. */
void env_fault_set_space_limit(lsm_env *e, uint64_t bytes);

/* Power cut (see the durability model above). Afterwards every file handle
 * opened before the cut fails all calls with -EIO (closing still frees it);
 * such handles stay dead even after env_fault_reset(). Until that reset,
 * every mutating operation fails with -EIO too: threads still running
 * must not write what a real crash would have stopped. */
void env_fault_power_cut(lsm_env *e, uint64_t torn_seed);

/* Clears all failure modes: pending/sticky failures, the space limit and
 * the power-off state of a cut. */
void env_fault_reset(lsm_env *e);

/* Mutating operations attempted so far (including failed ones). */
uint64_t env_fault_op_count(lsm_env *e);

#endif
