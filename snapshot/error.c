#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail_va(struct ls_error *err, int code, bool with_errno, const char *fmt, va_list ap)
{
	if (code <= 0)
		code = code < 0 ? -code : 5 /* EIO */;
	if (err) {
		err->code = code;
		int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		if (with_errno && n >= 0 && (size_t)n < sizeof(err->msg))
			snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, ": %s", strerror(code));
	}
	return -code;
}

int ls_fail(struct ls_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = fail_va(err, code, false, fmt, ap);
	va_end(ap);
	return r;
}

int ls_fail_errno(struct ls_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = fail_va(err, code, true, fmt, ap);
	va_end(ap);
	return r;
}

void ls_log(ls_log_fn *log, void *ctx, int verbose, const char *fmt, ...)
{
	if (!log)
		return;
	char msg[1200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log(ctx, verbose, msg);
}
