/*
 * status.h - status codes and the detail message behind them.
 *
 * Status is an int (see lsm.h). When a failure deserves more than its code
 * (which file, which offset, which option), the code that detects it calls
 * lsm_err() or LSM_CORRUPT(), which store a message in a per-thread buffer
 * that lsm_errdetail() returns, and hand back the code so that the caller
 * can `return LSM_CORRUPT(...)`. Corruption always goes through
 * lsm_corrupt_at(): one place to put a breakpoint.
 */
#ifndef LSM_UTIL_STATUS_H
#define LSM_UTIL_STATUS_H

#include "lsm.h"

#include <errno.h>

int lsm_err(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int lsm_corrupt_at(const char *src_file, int src_line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Clears the per-thread detail message. */
void lsm_err_clear(void);

#define LSM_CORRUPT(...) lsm_corrupt_at(__FILE__, __LINE__, __VA_ARGS__)

#endif
