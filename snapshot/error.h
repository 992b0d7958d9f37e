/* Error helpers shared by the library modules. */
#ifndef LS_ERROR_H
#define LS_ERROR_H

#include "layersnap.h"

/** Fills err with code and a formatted message; returns -code so callers can
 *  `return ls_fail(err, EINVAL, "...")`.  err may be NULL. */
int ls_fail(struct ls_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/** Like ls_fail, appending ": strerror(code)". */
int ls_fail_errno(struct ls_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/** Formats a message and hands it to log (nothing when log is NULL). */
void ls_log(ls_log_fn *log, void *ctx, int verbose, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
