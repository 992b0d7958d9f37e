/* The public API (layersnap.h): NULL or invalid arguments get an error code
 * and a message, never a crash; a manifest iterates in walk order. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
	struct ls_entry e;
	assert_int_equal(ls_manifest_entry(NULL, 0, &e), -EINVAL);
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

/* Iterating a manifest: ls_manifest_count and ls_manifest_entry in walk
 * order, with what each entry recorded. */
static void test_iterate(void **state)
{
	char root[] = "/tmp/test_api.XXXXXX";
	assert_non_null(mkdtemp(root));
	char p[128];
	snprintf(p, sizeof(p), "%s/a", root);
	assert_int_equal(mkdir(p, 0750), 0);
	snprintf(p, sizeof(p), "%s/a/b", root);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs("hello\n", f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/l", root);
	assert_int_equal(symlink("a/b", p), 0);
	struct ls_walk_options wo = { .mode = LS_MODE_FULL };
	struct ls_error err = { 0 };
	ls_manifest *m = NULL;
	assert_int_equal(ls_scan(root, &wo, NULL, &m, &err), 0);
	static const char *const paths[] = { "a", "a/b", "l" };
	assert_int_equal(ls_manifest_count(m), 3);
	struct ls_entry e;
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(ls_manifest_entry(m, i, &e), 0);
		assert_string_equal(e.path, paths[i]);
		assert_int_equal(e.path_len, strlen(paths[i]));
	}
	assert_int_equal(ls_manifest_entry(m, 0, &e), 0);
	assert_true(S_ISDIR(e.mode));
	assert_int_equal(e.mode & 07777, 0750);
	assert_false(e.hashed);
	assert_int_equal(ls_manifest_entry(m, 1, &e), 0);
	assert_true(S_ISREG(e.mode));
	assert_int_equal(e.size, 6);
	assert_true(e.hashed);
	assert_string_equal(e.link_target, "");
	assert_int_equal(ls_manifest_entry(m, 2, &e), 0);
	assert_true(S_ISLNK(e.mode));
	assert_string_equal(e.link_target, "a/b");
	assert_int_equal(ls_manifest_entry(m, 3, &e), -ERANGE);
	assert_int_equal(ls_manifest_entry(m, 0, NULL), -EINVAL);
	ls_manifest_free(m);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_null_arguments),
		cmocka_unit_test(test_iterate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
