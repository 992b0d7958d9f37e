#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Formats into out (size bytes); a message too long for it keeps its head
 * and its tail around "...", so the reason at the end (and a long path's
 * last components) always shows. */
static void format_fit(char *out, size_t size, const char *fmt, va_list ap, const char *reason)
{
	char *full = NULL;
	int n = vasprintf(&full, fmt, ap);
	if (n < 0) {
		snprintf(out, size, "%s", reason ? reason : "(message lost: out of memory)");
		return;
	}
	/* One line whatever a path holds: control bytes as \ooo. */
	size_t ctl = 0;
	for (int i = 0; i < n; i++)
		ctl += (unsigned char)full[i] < 0x20 || full[i] == 0x7f;
	if (ctl) {
		char *esc = malloc((size_t)n + 3 * ctl + 1);
		if (esc) {
			size_t o = 0;
			for (int i = 0; i < n; i++) {
				unsigned char c = (unsigned char)full[i];
				if (c < 0x20 || c == 0x7f)
					o += (size_t)sprintf(esc + o, "\\%03o", c);
				else
					esc[o++] = (char)c;
			}
			esc[o] = '\0';
			free(full);
			full = esc;
			n = (int)o;
		}
	}
	size_t len = (size_t)n, rlen = reason ? strlen(reason) + 2 : 0;
	if (len + rlen < size) {
		snprintf(out, size, "%s%s%s", full, reason ? ": " : "", reason ? reason : "");
	} else {
		/* head ... tail, then the reason */
		size_t room = size - 1 - rlen - 3;
		size_t head = room / 3, tail = room - head;
		snprintf(out, size, "%.*s...%s%s%s", (int)head, full, full + len - tail, reason ? ": " : "",
			 reason ? reason : "");
	}
	free(full);
}

static int fail_va(struct ls_error *err, int code, bool with_errno, const char *fmt, va_list ap)
{
	if (code <= 0)
		code = code < 0 ? -code : 5 /* EIO */;
	if (err) {
		err->code = code;
		format_fit(err->msg, sizeof(err->msg), fmt, ap, with_errno ? strerror(code) : NULL);
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
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	format_fit(msg, sizeof(msg), fmt, ap, NULL);
	va_end(ap);
	log(ctx, verbose, msg);
}
