/*
 * status.c - lsm_strerror() and the per-thread detail message.
 *
 * The detail buffer is thread-local, like errno: each thread sees the
 * message of its own last failure, so two databases used from different
 * threads never mix their messages. It is the only thread-local state in
 * the engine; nothing is shared between databases.
 */
#include "util/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char errdetail[512];

int lsm_err(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errdetail, sizeof(errdetail), fmt, ap);
	va_end(ap);
	return code;
}

int lsm_corrupt_at(const char *src_file, int src_line, const char *fmt, ...)
{
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(errdetail, sizeof(errdetail), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(errdetail))
		snprintf(errdetail + n, sizeof(errdetail) - (size_t)n,
			 " (detected at %s:%d)", src_file, src_line);
	return LSM_E_CORRUPT;
}

void lsm_err_clear(void)
{
	errdetail[0] = '\0';
}

const char *lsm_errdetail(void)
{
	return errdetail;
}

const char *lsm_strerror(int status)
{
	switch (status) {
	case 0:
		return "success";
	case LSM_E_NOTFOUND:
		return "key not found";
	case LSM_E_CORRUPT:
		return "store is corrupt";
	case LSM_E_FORMAT:
		return "unsupported store format";
	case LSM_E_BUSY:
		return "store is in use by another process or handle";
	case LSM_E_CLOSED:
		return "database is closing";
	case LSM_E_NOSTORE:
		return "directory holds no lsm store";
	case LSM_E_EXISTS:
		return "store already exists";
	default:
		if (status < 0 && status > -4096)
			return strerror(-status);
		return "unknown status";
	}
}

void lsm_free(void *p)
{
	free(p);
}
