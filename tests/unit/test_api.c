/* The public API (layersnap.h) given NULL or invalid arguments: an error
 * code and a message, never a crash. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "layersnap.h"

static void assert_refused(int rc, const struct ls_error *err, int code)
{
	assert_int_equal(rc, -code);
	assert_int_equal(err->code, code);
	assert_true(err->msg[0] != '\0');
	assert_null(strchr(err->msg, '\n'));
}

static void test_null_arguments(void **state)
{
	struct ls_error err = { 0 };
	struct ls_walk_options wo = { 0 };
	ls_manifest *m = (ls_manifest *)0x1;
	assert_refused(ls_scan(NULL, &wo, NULL, &m, &err), &err, EINVAL);
	assert_refused(ls_scan("/", NULL, NULL, &m, &err), &err, EINVAL);
	assert_refused(ls_scan("/", &wo, NULL, NULL, &err), &err, EINVAL);
	assert_int_equal(ls_scan(NULL, NULL, NULL, NULL, NULL), -EINVAL);  /* err may be NULL */

	assert_refused(ls_manifest_load(NULL, &m, &err), &err, EINVAL);
	assert_null(m);
	assert_refused(ls_manifest_load("/nonexistent", NULL, &err), &err, EINVAL);
	assert_refused(ls_manifest_save(NULL, "/tmp/x", false, &err), &err, EINVAL);
	assert_refused(ls_manifest_dump_mtree(NULL, stdout, &err), &err, EINVAL);
	assert_refused(ls_manifest_dump_json(NULL, stdout, &err), &err, EINVAL);
	assert_int_equal(ls_manifest_count(NULL), 0);
	assert_int_equal(ls_manifest_find(NULL, "a", 1), -1);
	ls_manifest_free(NULL);

	assert_refused((int)ls_compare(NULL, NULL, LS_MODE_FULL, false, NULL, NULL, &err), &err, EINVAL);
	assert_refused(ls_check_base(NULL, LS_MODE_FULL, &wo, &err), &err, EINVAL);

	struct ls_diff_options dopts = { 0 };
	struct ls_diff_result res;
	assert_refused(ls_diff(NULL, &dopts, NULL, 1, &res, NULL, &err), &err, EINVAL);
	assert_refused(ls_diff("/", NULL, NULL, 1, &res, NULL, &err), &err, EINVAL);
	assert_refused(ls_diff("/", &dopts, NULL, 1, NULL, NULL, &err), &err, EINVAL);
	assert_refused(ls_diff("/", &dopts, NULL, -1, &res, NULL, &err), &err, EBADF);

	struct ls_apply_stats st;
	assert_refused(ls_apply(0, NULL, NULL, &st, &err), &err, EINVAL);
	assert_refused(ls_apply(-1, "/tmp", NULL, &st, &err), &err, EBADF);

	enum ls_mode mode;
	assert_int_equal(ls_mode_parse(NULL, &mode), -EINVAL);
	assert_int_equal(ls_mode_parse("full", NULL), -EINVAL);
	assert_int_equal(ls_mode_parse("bogus", &mode), -EINVAL);
	assert_string_equal(ls_mode_name(LS_MODE_REDO), "redo");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_null_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
