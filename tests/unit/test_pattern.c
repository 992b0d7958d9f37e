/* Exclude patterns (pattern.h): the glob at the edges of each rule, and
 * gitignore's lines: anchoring, directories only, re-inclusion, the last
 * match deciding.  tests/e2e/patterns.sh checks the same rules against
 * `git check-ignore` on a tree. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "pattern.h"

static const struct {
	const char *glob, *text;
	bool match;
} globs[] = {
	{ "abc", "abc", true }, { "abc", "abd", false }, { "abc", "ab", false }, { "ab", "abc", false },
	{ "*", "", true }, { "*", "abc", true }, { "*", "a/b", false }, { "a*", "a", true },
	{ "a*c", "abbbc", true }, { "a*c", "abbbd", false }, { "*.log", "x.log", true }, { "*.log", "d/x.log", false },
	{ "?", "a", true }, { "?", "", false }, { "?", "/", false }, { "a?c", "abc", true }, { "a?c", "ac", false },
	{ "[abc]", "b", true }, { "[abc]", "d", false }, { "[!abc]", "d", true }, { "[^abc]", "a", false },
	{ "[a-c]x", "bx", true }, { "[a-c]x", "dx", false }, { "[]]", "]", true }, { "[]a]", "a", true },
	{ "[a-]", "-", true }, { "[!]]", "a", true }, { "[!]]", "]", false }, { "[[:digit:]]", "7", true },
	{ "[[:digit:]]", "a", false }, { "[[:alpha:][:digit:]]", "x", true }, { "[/]", "/", false },
	{ "[abc", "a", false }, { "\\*", "*", true }, { "\\*", "a", false }, { "a\\", "a", false },
	{ "**", "a/b/c", true }, { "**/c", "c", true }, { "**/c", "a/b/c", true }, { "**/c", "a/bc", false },
	{ "a/**", "a/b", true }, { "a/**", "a/b/c", true }, { "a/**", "a", false }, { "a/**/b", "a/b", true },
	{ "a/**/b", "a/x/y/b", true }, { "a/**/b", "a/xb", false }, { "a**b", "axb", true },
	{ "a**b", "a/b", false }, { "a/*/c", "a/b/c", true }, { "a/*/c", "a/b/d/c", false },
	{ "a/*", "a/b/c", false }, { "*/b", "a/b", true }, { "*a*b", "xaxb", true },
};

static void test_glob(void **state)
{
	for (size_t i = 0; i < sizeof(globs) / sizeof(globs[0]); i++)
		if (ls_glob_match(globs[i].glob, globs[i].text) != globs[i].match)
			fail_msg("'%s' against '%s': expected %s", globs[i].glob, globs[i].text,
				 globs[i].match ? "a match" : "no match");
}

static bool excluded(const char *const *pats, size_t n, const char *path, bool is_dir)
{
	struct ls_patterns *p = NULL;
	struct ls_error err = { 0 };
	assert_int_equal(ls_patterns_compile(pats, n, &p, &err), 0);
	bool r = ls_patterns_exclude(p, path, strlen(path), is_dir);
	ls_patterns_free(p);
	return r;
}

#define EXCL(path, is_dir, ...) \
	excluded((const char *const[]){ __VA_ARGS__ }, sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(char *), \
		 path, is_dir)

static void test_lines(void **state)
{
	/* No slash: the name at any depth. */
	assert_true(EXCL("x.log", false, "*.log"));
	assert_true(EXCL("a/b/x.log", false, "*.log"));
	assert_true(EXCL("a/test", true, "test"));
	/* A slash anchors at ROOT; a leading one is dropped. */
	assert_true(EXCL("a/test", true, "a/test"));
	assert_false(EXCL("b/a/test", true, "a/test"));
	assert_true(EXCL("test", true, "/test"));
	assert_false(EXCL("a/test", true, "/test"));
	assert_true(EXCL("app/node_modules/x/test", true, "app/node_modules/*/test"));
	assert_false(EXCL("app/node_modules/x/y/test", true, "app/node_modules/*/test"));
	assert_true(EXCL("app/node_modules/x/y/test", true, "app/node_modules/**/test"));
	/* A trailing slash: directories only, and no anchoring by itself. */
	assert_true(EXCL("a/b/build", true, "build/"));
	assert_false(EXCL("a/b/build", false, "build/"));
	/* The last match decides; '!' re-includes. */
	assert_false(EXCL("keep.log", false, "*.log", "!keep.log"));
	assert_true(EXCL("keep.log", false, "!keep.log", "*.log"));
	assert_true(EXCL("drop.log", false, "*.log", "!keep.log"));
	/* Escapes and spaces. */
	assert_true(EXCL("!x", false, "\\!x"));
	assert_true(EXCL("#x", false, "\\#x"));
	assert_true(EXCL("a", false, "a   "));
	assert_true(EXCL("a ", false, "a\\ "));
	assert_false(EXCL("a", false, "a\\ "));
}

static void test_refused(void **state)
{
	static const char *const bad[] = { "", "   ", "# a comment", "!", "/", "!/" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ls_patterns *p = (struct ls_patterns *)0x1;
		struct ls_error err = { 0 };
		assert_int_equal(ls_patterns_compile(&bad[i], 1, &p, &err), -EINVAL);
		assert_null(p);
		assert_non_null(strstr(err.msg, "empty or a comment"));
	}
	struct ls_patterns *p = (struct ls_patterns *)0x1;
	assert_int_equal(ls_patterns_compile(NULL, 0, &p, NULL), 0);
	assert_null(p);
	assert_false(ls_patterns_exclude(NULL, "a", 1, false));
}

/* Which pattern decided something, for -v's "matched nothing". */
static void test_used(void **state)
{
	static const char *const pats[] = { "*.log", "!keep.log", "never" };
	struct ls_patterns *p = NULL;
	assert_int_equal(ls_patterns_compile(pats, 3, &p, NULL), 0);
	assert_int_equal(ls_patterns_count(p), 3);
	assert_false(ls_patterns_exclude(p, "keep.log", 8, false));
	assert_false(ls_patterns_used(p, 0));
	assert_true(ls_patterns_used(p, 1));
	assert_true(ls_patterns_exclude(p, "x.log", 5, false));
	assert_true(ls_patterns_used(p, 0));
	assert_false(ls_patterns_used(p, 2));
	assert_string_equal(ls_patterns_text(p, 2), "never");
	ls_patterns_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_glob),
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_used),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
