/* Unit tests for snapshot/mountinfo.c: lines of /proc/self/mountinfo as the
 * kernel writes them (optional tags, escaped paths and options, the
 * trailing newline), short lines, and a read of this process's own table. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mountinfo.h"

static void parse(const char *text, struct ls_mountinfo *m, char *buf, size_t len)
{
	assert_true(strlen(text) < len);
	strcpy(buf, text);
	assert_int_equal(ls_mountinfo_parse(buf, m), 0);
}

static void test_fields(void **state)
{
	(void)state;
	char buf[512];
	struct ls_mountinfo m;
	/* no optional tags */
	parse("22 27 0:21 / /proc rw,relatime - proc proc rw\n", &m, buf, sizeof(buf));
	assert_string_equal(m.mount_point, "/proc");
	assert_string_equal(m.fstype, "proc");
	assert_string_equal(m.super_options, "rw");
	/* two tags; the super options stay escaped (a comma in a path is
	 * \054 there, and options are split on commas first) */
	parse("61 27 0:52 / /var/tmp/a\\040b rw,relatime shared:30 master:1 - overlay overlay "
	      "rw,lowerdir=/l,upperdir=/u\\054x,workdir=/w,userxattr\n", &m, buf, sizeof(buf));
	assert_string_equal(m.mount_point, "/var/tmp/a b");
	assert_string_equal(m.fstype, "overlay");
	assert_string_equal(m.super_options, "rw,lowerdir=/l,upperdir=/u\\054x,workdir=/w,userxattr");
	/* every escape the kernel writes: space, tab, newline, backslash */
	parse("1 2 0:1 / /a\\040\\011\\012\\134z rw - tmpfs tmpfs rw", &m, buf, sizeof(buf));
	assert_string_equal(m.mount_point, "/a \t\n\\z");
	/* a backslash not followed by three octal digits is kept */
	parse("1 2 0:1 / /a\\8x\\04 rw - tmpfs tmpfs rw", &m, buf, sizeof(buf));
	assert_string_equal(m.mount_point, "/a\\8x\\04");
}

static void test_short_lines(void **state)
{
	(void)state;
	char buf[128];
	struct ls_mountinfo m;
	strcpy(buf, "22 27 0:21 /\n");
	assert_int_equal(ls_mountinfo_parse(buf, &m), -EINVAL);
	strcpy(buf, "");
	assert_int_equal(ls_mountinfo_parse(buf, &m), -EINVAL);
	/* a mount point but no " - " part, or one cut short: no type */
	parse("22 27 0:21 / /x rw,relatime", &m, buf, sizeof(buf));
	assert_string_equal(m.mount_point, "/x");
	assert_null(m.fstype);
	assert_null(m.super_options);
	parse("22 27 0:21 / /x rw - ext4 /dev/vda", &m, buf, sizeof(buf));
	assert_null(m.fstype);
	assert_null(m.super_options);
}

struct seen {
	bool root;
	int lines, stop_at;
};

static int see(const struct ls_mountinfo *m, void *ctx)
{
	struct seen *s = ctx;
	if (strcmp(m->mount_point, "/") == 0)
		s->root = true;
	return ++s->lines == s->stop_at ? 7 : 0;
}

static void test_each(void **state)
{
	(void)state;
	struct seen s = { 0 };
	assert_int_equal(ls_mountinfo_each(see, &s), 0);
	assert_true(s.root);
	assert_true(s.lines > 0);
	/* fn's non-zero return stops the read and is returned */
	struct seen t = { .stop_at = 1 };
	assert_int_equal(ls_mountinfo_each(see, &t), 7);
	assert_int_equal(t.lines, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_short_lines),
		cmocka_unit_test(test_each),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
