/*
 * env_common.c - helpers built on the env ops table.
 *
 * These go through env->ops only, never through POSIX calls, so that they
 * behave identically on the POSIX env and on the fault-injecting env (a
 * test can fail the rename inside env_write_file_atomic, or cut power
 * between its steps).
 *
 * Invariants:
 *  1. env_write_file_atomic() never leaves a partially written `name`: the
 *     bytes go to `name.tmp`, are synced, and only then renamed over
 *     `name`; the directory is synced last so the rename is durable.
 *  2. On failure it removes `name.tmp` (best effort) and leaves `name` as
 *     it was.
 *
 * Thread safety: stateless; as thread-safe as the env underneath.
 */
#include "env/env.h"
#include "util/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void env_free_names(char **names, size_t n_names)
{
	if (!names)
		return;
	for (size_t i = 0; i < n_names; i++)
		free(names[i]);
	free(names);
}

int env_read_file(lsm_env *env, const char *path, uint8_t **buf, size_t *len)
{
	struct env_rfile *f;
	uint64_t size;
	uint8_t *b;
	size_t n = 0;
	int rc = env_new_rfile(env, path, &f);
	if (rc < 0)
		return rc;
	size = rfile_size(f);
	if (size > SIZE_MAX - 1) {
		rc = lsm_err(-EFBIG, "read %s: file too large", path);
		goto out_close;
	}
	b = malloc((size_t)size + 1); /* +1: never malloc(0) */
	if (!b) {
		rc = lsm_err(-ENOMEM, "read %s: out of memory", path);
		goto out_close;
	}
	rc = rfile_read(f, 0, (size_t)size, b, &n);
	if (rc < 0) {
		free(b);
		goto out_close;
	}
	/* A file that shrank since open yields what is there now. */
	*buf = b;
	*len = n;
out_close:
	rfile_close(f);
	return rc;
}

static char *path_join(const char *dir, const char *name, const char *suffix)
{
	size_t n = strlen(dir) + strlen(name) + strlen(suffix) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s%s", dir, name, suffix);
	return p;
}

int env_write_file_atomic(lsm_env *env, const char *dir, const char *name,
			  const void *buf, size_t len)
{
	struct env_wfile *f;
	char *tmp = path_join(dir, name, ".tmp");
	char *dst = path_join(dir, name, "");
	int rc;

	if (!tmp || !dst) {
		rc = lsm_err(-ENOMEM, "write %s/%s: out of memory", dir, name);
		goto out_free;
	}
	rc = env_new_wfile(env, tmp, &f);
	if (rc < 0)
		goto out_free;
	rc = wfile_append(f, buf, len);
	if (rc == 0)
		rc = wfile_sync(f);
	if (rc < 0) {
		wfile_close(f);
		goto out_remove;
	}
	rc = wfile_close(f);
	if (rc < 0)
		goto out_remove;
	rc = env->ops->rename_file(env, tmp, dst);
	if (rc < 0)
		goto out_remove;
	rc = env->ops->sync_dir(env, dir);
	goto out_free;

out_remove:
	/* Keep the first error's detail message, not the cleanup's. */
	{
		char saved[512];
		snprintf(saved, sizeof(saved), "%s", lsm_errdetail());
		env->ops->remove_file(env, tmp);
		lsm_err(rc, "%s", saved);
	}
out_free:
	free(tmp);
	free(dst);
	return rc;
}
