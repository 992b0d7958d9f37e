/* Progress reports of ls_scan and ls_diff (walk and layer phases, on the
 * calling thread, in order) and cancelling from the callback. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layersnap.h"

static char root[64];
#define N_FILES 300
#define FILE_SIZE (64 * 1024)

static int setup(void **state)
{
	strcpy(root, "/tmp/test_progress.XXXXXX");
	if (!mkdtemp(root))
		return -1;
	char *buf = calloc(1, FILE_SIZE);
	if (!buf)
		return -1;
	for (int i = 0; i < N_FILES; i++) {
		char p[128];
		snprintf(p, sizeof(p), "%s/f%03d", root, i);
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, buf, FILE_SIZE) != FILE_SIZE)
			return -1;
		close(fd);
	}
	free(buf);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

struct rec {
	struct ls_progress calls[256];
	int n;
	pthread_t thread;
	int cancel_at;     /* call number that returns 1, or -1 */
};

static int on_progress(void *ctx, const struct ls_progress *p)
{
	struct rec *r = ctx;
	assert_true(pthread_equal(pthread_self(), r->thread));  /* the calling thread */
	if (r->n < 256)
		r->calls[r->n] = *p;
	return r->n++ == r->cancel_at;
}

static int run_diff(struct rec *r, struct ls_diff_result *res, struct ls_error *err)
{
	struct ls_walk_options wo = LS_WALK_OPTIONS_INIT;
	struct ls_diff_options o = LS_DIFF_OPTIONS_INIT;
	o.walk = &wo;
	wo.mode = LS_MODE_FULL;
	wo.jobs = 2;
	wo.progress = on_progress;
	wo.log_ctx = r;
	r->thread = pthread_self();
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	int rc = ls_diff(root, &o, NULL, fd, res, NULL, err);
	close(fd);
	return rc;
}

/* walk: a start and a done; layer: a start, reports as the bytes go, and a
 * done with every byte read. */
static void test_phases(void **state)
{
	struct rec r = { .cancel_at = -1 };
	struct ls_diff_result res = LS_DIFF_RESULT_INIT;
	struct ls_error err = { 0 };
	assert_int_equal(run_diff(&r, &res, &err), 0);
	assert_true(r.n >= 5 && r.n < 256);
	const struct ls_progress *c = r.calls;
	assert_int_equal(c[0].phase, LS_PHASE_WALK);
	assert_false(c[0].done);
	int k = 1;
	while (k < r.n && c[k].phase == LS_PHASE_WALK && !c[k].done)
		k++;
	assert_int_equal(c[k].phase, LS_PHASE_WALK);
	assert_true(c[k].done);
	assert_int_equal(c[k].entries, N_FILES);
	k++;
	assert_int_equal(c[k].phase, LS_PHASE_LAYER);
	assert_false(c[k].done);
	assert_int_equal(c[k].bytes_read, 0);
	uint64_t total = (uint64_t)N_FILES * FILE_SIZE;
	assert_int_equal(c[k].bytes_total, total);
	int middle = 0;
	for (k++; k < r.n - 1; k++) {
		assert_int_equal(c[k].phase, LS_PHASE_LAYER);
		assert_false(c[k].done);
		assert_true(c[k].bytes_read >= c[k - 1].bytes_read);
		assert_true(c[k].bytes_written >= c[k].bytes_read);
		middle++;
	}
	assert_true(middle >= 4);  /* every 4 MiB of 19 MiB */
	const struct ls_progress *last = &c[r.n - 1];
	assert_int_equal(last->phase, LS_PHASE_LAYER);
	assert_true(last->done);
	assert_int_equal(last->bytes_read, total);
	assert_int_equal(last->entries, res.entries);
	assert_int_equal(last->bytes_written, res.bytes);
}

/* A non-zero return at any call cancels: -ECANCELED, "cancelled". */
static void test_cancel(void **state)
{
	for (int at = 0; at < 6; at++) {
		struct rec r = { .cancel_at = at };
		struct ls_diff_result res = LS_DIFF_RESULT_INIT;
		struct ls_error err = { 0 };
		assert_int_equal(run_diff(&r, &res, &err), -ECANCELED);
		assert_string_equal(err.msg, "cancelled");
		assert_int_equal(r.n, at + 1);  /* no call after the cancelling one */
	}
	/* a scan too */
	struct ls_walk_options o = LS_WALK_OPTIONS_INIT;
	struct rec r = { .cancel_at = 1, .thread = pthread_self() };
	o.progress = on_progress;
	o.log_ctx = &r;
	ls_manifest *m = NULL;
	struct ls_error err = { 0 };
	assert_int_equal(ls_scan(root, &o, NULL, &m, &err), -ECANCELED);
	assert_null(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_phases),
		cmocka_unit_test(test_cancel),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
