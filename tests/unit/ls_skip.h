/*
 * Counted skips in the unit tests (tests/run.sh reads them from the output).
 *
 * A test that cannot run some of its checks here calls ls_skip_part(KEYWORD,
 * "what ...") and goes on: it prints one line "LS-SKIP: KEYWORD what", which
 * tests/run.sh counts as a skipped part of the running test.  A test that
 * cannot run at all calls ls_skip_part() and then cmocka's skip(): the test
 * counts once, as skipped, for the reasons of its LS-SKIP lines.  KEYWORD is
 * one of the words listed in tests/e2e/lib.sh (uring, root, setuid, xattr,
 * seccomp, ...); tests/run.sh fails the run when it is in LS_REQUIRE.
 */
#ifndef LS_TEST_SKIP_H
#define LS_TEST_SKIP_H

#include <stdarg.h>
#include <stdio.h>

__attribute__((format(printf, 2, 3)))
static inline void ls_skip_part(const char *keyword, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("LS-SKIP: %s ", keyword);
	vprintf(fmt, ap);
	putchar('\n');
	va_end(ap);
	fflush(stdout);
}

#endif
