/* The public API (layersnap.h): NULL or invalid arguments get an error code
 * and a message, never a crash; versioned structs; a manifest iterates in
 * walk order; the write callback streams the same layer as an fd; apply's
 * on_entry lists each entry once it is in place. */
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

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>

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
	struct ls_walk_options wo = LS_WALK_OPTIONS_INIT;
	ls_manifest *m = (ls_manifest *)0x1;
	assert_refused(ls_scan(NULL, &wo, NULL, &m, &err), &err, EINVAL);
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
	struct ls_entry e = LS_ENTRY_INIT;
	assert_int_equal(ls_manifest_entry(NULL, 0, &e), -EINVAL);
	ls_manifest_free(NULL);

	assert_refused((int)ls_compare(NULL, NULL, LS_MODE_FULL, false, NULL, NULL, &err), &err, EINVAL);
	struct ls_compare_options co = LS_COMPARE_OPTIONS_INIT;
	assert_refused((int)ls_compare_opts(NULL, NULL, &co, NULL, NULL, &err), &err, EINVAL);
	assert_refused(ls_check_base(NULL, LS_MODE_FULL, &wo, &err), &err, EINVAL);

	struct ls_diff_options dopts = LS_DIFF_OPTIONS_INIT;
	struct ls_diff_result res = LS_DIFF_RESULT_INIT;
	assert_refused(ls_diff(NULL, &dopts, NULL, 1, &res, NULL, &err), &err, EINVAL);
	assert_refused(ls_diff(NULL, NULL, NULL, 1, NULL, NULL, &err), &err, EINVAL);
	assert_refused(ls_diff("/", &dopts, NULL, -1, &res, NULL, &err), &err, EBADF);

	struct ls_apply_stats st = LS_APPLY_STATS_INIT;
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
	struct ls_error err = { 0 };
	ls_manifest *m = NULL;
	/* NULL options: the defaults, a full scan. */
	assert_int_equal(ls_scan(root, NULL, NULL, &m, &err), 0);
	assert_int_equal(ls_manifest_mode(m), LS_MODE_FULL);
	static const char *const paths[] = { "a", "a/b", "l" };
	assert_int_equal(ls_manifest_count(m), 3);
	struct ls_entry e = LS_ENTRY_INIT;
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

/* A tree with a few files, one of 3 MiB (several tar chunks). */
static void make_tree(char *root)
{
	assert_non_null(mkdtemp(root));
	char p[160];
	for (int i = 0; i < 20; i++) {
		snprintf(p, sizeof(p), "%s/f%02d", root, i);
		FILE *f = fopen(p, "w");
		assert_non_null(f);
		for (int k = 0; k < 1000 * i; k++)
			fprintf(f, "line %d of file %d\n", k, i);
		fclose(f);
	}
	snprintf(p, sizeof(p), "%s/big", root);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	unsigned x = 1;
	for (int k = 0; k < 3 << 20; k++) {
		x = x * 1103515245u + 12345u;
		fputc((int)(x >> 24) & 0x0f, f);
	}
	fclose(f);
}

static void remove_tree(const char *root)
{
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
}

/* struct_size: unset is refused, a newer caller's unknown fields must be
 * zero, and results never write past the caller's struct. */
static void test_versioned_structs(void **state)
{
	char root[] = "/tmp/test_api.XXXXXX";
	make_tree(root);
	struct ls_error err = { 0 };
	ls_manifest *m = NULL;

	struct ls_walk_options unset = { .mode = LS_MODE_REDO };
	assert_refused(ls_scan(root, &unset, NULL, &m, &err), &err, EINVAL);
	assert_non_null(strstr(err.msg, "struct_size"));
	assert_null(m);

	/* A caller built against a newer header, one field longer. */
	struct {
		struct ls_walk_options o;
		uint64_t newer;
	} big = { .o = { .mode = LS_MODE_REDO } };
	big.o.struct_size = sizeof(big);
	assert_int_equal(ls_scan(root, &big.o, NULL, &m, &err), 0);
	assert_int_equal(ls_manifest_mode(m), LS_MODE_REDO);
	big.newer = 1;
	ls_manifest *m2 = NULL;
	assert_refused(ls_scan(root, &big.o, NULL, &m2, &err), &err, E2BIG);
	assert_null(m2);
	/* A newer field can sit in this version's tail padding: also refused. */
	size_t end = offsetof(struct ls_walk_options, default_excludes) + sizeof(enum ls_default_excludes);
	if (end < sizeof(struct ls_walk_options)) {
		struct ls_walk_options pad = LS_WALK_OPTIONS_INIT;
		((unsigned char *)&pad)[end] = 1;
		assert_refused(ls_scan(root, &pad, NULL, &m2, &err), &err, E2BIG);
	}
	/* Counted arrays must be there, without NULL elements. */
	struct ls_walk_options arr = LS_WALK_OPTIONS_INIT;
	arr.n_excludes = 2;
	assert_refused(ls_scan(root, &arr, NULL, &m2, &err), &err, EINVAL);
	const char *holes[] = { "a", NULL };
	arr.excludes = holes;
	assert_refused(ls_scan(root, &arr, NULL, &m2, &err), &err, EINVAL);
	assert_non_null(strstr(err.msg, "excludes[1]"));

	/* Results: the library fills what it knows and zeroes a newer tail. */
	struct {
		struct ls_entry e;
		uint64_t newer;
	} be;
	memset(&be, 0xa5, sizeof(be));
	be.e.struct_size = sizeof(be);
	assert_int_equal(ls_manifest_entry(m, 0, &be.e), 0);
	assert_int_equal(be.e.struct_size, sizeof(be));
	assert_int_equal(be.newer, 0);
	assert_string_equal(be.e.path, "big");
	struct ls_entry small = { .struct_size = 8 };
	assert_int_equal(ls_manifest_entry(m, 0, &small), -EINVAL);

	/* Compare options likewise; NULL is the defaults. */
	struct ls_compare_options co = { .mode = LS_MODE_REDO };
	assert_refused((int)ls_compare_opts(m, m, &co, NULL, NULL, &err), &err, EINVAL);
	assert_non_null(strstr(err.msg, "compare: options"));
	struct {
		struct ls_compare_options o;
		uint64_t newer;
	} bco = { .o = { .mode = LS_MODE_REDO, .have_epoch = true } };
	bco.o.struct_size = sizeof(bco);
	assert_int_equal(ls_compare_opts(m, m, &bco.o, NULL, NULL, &err), 0);
	bco.newer = 1;
	assert_refused((int)ls_compare_opts(m, m, &bco.o, NULL, NULL, &err), &err, E2BIG);
	/* m is a redo manifest: full mode counts its unhashed files */
	assert_int_equal(ls_compare_opts(m, m, NULL, NULL, NULL, &err),
			 ls_compare(m, m, LS_MODE_FULL, false, NULL, NULL, &err));
	assert_true(ls_compare_opts(m, m, NULL, NULL, NULL, &err) > 0);

	struct ls_diff_result res = { .struct_size = 0 };
	struct ls_diff_options d = LS_DIFF_OPTIONS_INIT;
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_refused(ls_diff(root, &d, NULL, fd, &res, NULL, &err), &err, EINVAL);
	struct ls_walk_options w = { .struct_size = 3 };
	d.walk = &w;
	res.struct_size = sizeof(res);
	assert_refused(ls_diff(root, &d, NULL, fd, &res, NULL, &err), &err, EINVAL);
	assert_non_null(strstr(err.msg, "walk options"));
	/* NULL walk options and a NULL result: the defaults, nothing reported. */
	d.walk = NULL;
	assert_int_equal(ls_diff(root, &d, NULL, fd, NULL, NULL, &err), 0);
	struct ls_apply_stats st = { .struct_size = 1 };
	assert_refused(ls_apply(fd, root, NULL, &st, &err), &err, EINVAL);
	close(fd);
	ls_manifest_free(m);
	remove_tree(root);
}

struct sink {
	pthread_t caller;
	unsigned char *buf;
	size_t len, cap;
	int calls, off_thread;
	int fail_at;                /* call number that returns -ENOSPC, or -1 */
	int changes, progress;
};

static int sink_write(void *ctx, const void *buf, size_t len)
{
	struct sink *s = ctx;
	if (!pthread_equal(pthread_self(), s->caller))
		s->off_thread++;
	if (s->calls++ == s->fail_at)
		return -ENOSPC;
	if (s->len + len > s->cap) {
		s->cap = (s->len + len) * 2;
		s->buf = realloc(s->buf, s->cap);
		assert_non_null(s->buf);
	}
	memcpy(s->buf + s->len, buf, len);
	s->len += len;
	return 0;
}

static int sink_change(void *ctx, enum ls_change ch, const char *path, size_t len)
{
	struct sink *s = ctx;
	if (!pthread_equal(pthread_self(), s->caller))
		s->off_thread++;
	s->changes++;
	return 0;
}

static int sink_progress(void *ctx, const struct ls_progress *p)
{
	struct sink *s = ctx;
	if (!pthread_equal(pthread_self(), s->caller))
		s->off_thread++;
	assert_true(p->struct_size >= sizeof(*p));
	s->progress++;
	return 0;
}

static unsigned char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	size_t cap = 1 << 20, n = 0;
	unsigned char *b = malloc(cap);
	size_t got;
	while ((got = fread(b + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap)
			b = realloc(b, cap *= 2);
	}
	fclose(f);
	*len = n;
	return b;
}

/* The write callback gets the very bytes an fd gets, for every compression,
 * on the calling thread like the other callbacks; its failure fails the run. */
static void test_write_callback(void **state)
{
	char root[] = "/tmp/test_api.XXXXXX";
	make_tree(root);
	char layer[] = "/tmp/test_api_layer.XXXXXX";
	int fd = mkstemp(layer);
	assert_true(fd >= 0);
	static const enum ls_compress kinds[] = { LS_COMPRESS_NONE, LS_COMPRESS_GZIP, LS_COMPRESS_ZSTD };
	for (size_t k = 0; k < 3; k++) {
		struct sink s = { .caller = pthread_self(), .fail_at = -1 };
		struct ls_walk_options w = LS_WALK_OPTIONS_INIT;
		w.jobs = 2;
		w.progress = sink_progress;
		w.log_ctx = &s;
		struct ls_diff_options d = LS_DIFF_OPTIONS_INIT;
		d.walk = &w;
		d.compress = kinds[k];
		struct ls_error err = { 0 };
		struct ls_diff_result by_fd = LS_DIFF_RESULT_INIT, by_cb = LS_DIFF_RESULT_INIT;
		assert_int_equal(ftruncate(fd, 0), 0);
		assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
		assert_int_equal(ls_diff(root, &d, NULL, fd, &by_fd, NULL, &err), 0);
		d.write = sink_write;
		d.write_ctx = &s;
		assert_refused(ls_diff(root, &d, NULL, fd, &by_cb, NULL, &err), &err, EINVAL);
		d.on_change = sink_change;
		d.change_ctx = &s;
		s.progress = 0;
		assert_int_equal(ls_diff(root, &d, NULL, -1, &by_cb, NULL, &err), 0);
		size_t flen;
		unsigned char *fbytes = read_file(layer, &flen);
		assert_int_equal(s.len, flen);
		assert_int_equal(by_cb.size, flen);
		assert_memory_equal(s.buf, fbytes, flen);
		assert_string_equal(by_cb.digest, by_fd.digest);
		assert_string_equal(by_cb.diff_id, by_fd.diff_id);
		assert_int_equal(s.off_thread, 0);
		assert_int_equal(s.changes, 21);
		assert_true(s.progress > 0);
		assert_true(s.calls > 1);
		free(fbytes);

		/* A failing sink: its code, and no result. */
		struct sink f = { .caller = pthread_self(), .fail_at = 1 };
		d.write_ctx = &f;
		d.on_change = NULL;
		w.progress = NULL;
		struct ls_diff_result none = LS_DIFF_RESULT_INIT;
		assert_refused(ls_diff(root, &d, NULL, -1, &none, NULL, &err), &err, ENOSPC);
		assert_non_null(strstr(err.msg, "write"));
		assert_int_equal(none.size, 0);
		free(f.buf);
		free(s.buf);
	}
	close(fd);
	unlink(layer);
	remove_tree(root);
}

struct steps {
	char seen[128];
	const char *stop_at;
};

static int on_step(void *ctx, const char *step)
{
	struct steps *st = ctx;
	size_t l = strlen(st->seen);
	snprintf(st->seen + l, sizeof(st->seen) - l, "%s%s", l ? " " : "", step);
	return st->stop_at && strcmp(step, st->stop_at) == 0;
}

static bool file_holds(const char *path, const char *want)
{
	char buf[64] = "";
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strcmp(buf, want) == 0;
}

/* ls_scan_files and ls_diff_files: steps in commit order, a stop at any step
 * leaves what was not yet committed as it was, and the outputs inside ROOT
 * stay out of the manifest. */
static void test_files(void **state)
{
	char root[] = "/tmp/test_api.XXXXXX";
	make_tree(root);
	char layer[200], desc[200], man[200];
	snprintf(layer, sizeof(layer), "%s/out.tar", root);
	snprintf(desc, sizeof(desc), "%s/out.json", root);
	snprintf(man, sizeof(man), "%s/out.lsm", root);
	const char *const outputs[] = { layer, desc, man };
	struct ls_error err = { 0 };
	struct steps st = { "", NULL };
	struct ls_files f = LS_FILES_INIT;
	f.manifest = man;
	f.on_step = on_step;
	f.step_ctx = &st;
	size_t n = 0;
	assert_int_equal(ls_scan_files(root, NULL, NULL, &f, &n, &err), 0);
	assert_string_equal(st.seen, "manifest");
	assert_int_equal(n, 21);  /* the tree, not the manifest itself */

	f.layer = layer;
	f.descriptor = desc;
	static const char *const steps[] = { "layer", "descriptor", "manifest" };
	for (size_t k = 0; k < 3; k++) {
		for (size_t i = 0; i < 3; i++) {
			FILE *o = fopen(outputs[i], "w");
			assert_non_null(o);
			fputs("previous", o);
			fclose(o);
		}
		struct steps s2 = { "", steps[k] };
		f.step_ctx = &s2;
		struct ls_diff_result res = LS_DIFF_RESULT_INIT;
		assert_refused(ls_diff_files(root, NULL, NULL, &f, &res, &err), &err, ECANCELED);
		char want[64];
		snprintf(want, sizeof(want), "cancelled at %s", steps[k]);
		assert_string_equal(err.msg, want);
		assert_int_equal(res.entries, 0);
		for (size_t i = 0; i < 3; i++)
			assert_int_equal(file_holds(outputs[i], "previous"), i >= k);
	}
	/* A layer smaller than a MiB never reaches "write". */
	struct steps s3 = { "", NULL };
	f.step_ctx = &s3;
	struct ls_diff_result res = LS_DIFF_RESULT_INIT;
	assert_int_equal(ls_diff_files(root, NULL, NULL, &f, &res, &err), 0);
	assert_string_equal(s3.seen, "write layer descriptor manifest");
	ls_manifest *m = NULL;
	assert_int_equal(ls_manifest_load(man, &m, &err), 0);
	assert_int_equal(ls_manifest_count(m), 21);
	assert_int_equal(ls_manifest_find(m, "out.tar", 7), -1);
	ls_manifest_free(m);

	struct ls_diff_options d = LS_DIFF_OPTIONS_INIT;
	d.write = sink_write;
	assert_refused(ls_diff_files(root, &d, NULL, &f, &res, &err), &err, EINVAL);
	f.layer = NULL;
	assert_refused(ls_diff_files(root, NULL, NULL, &f, &res, &err), &err, EINVAL);
	assert_refused(ls_diff_files(root, NULL, NULL, NULL, &res, &err), &err, EINVAL);
	remove_tree(root);
}

/* ls_files.base: the base loaded by ls_diff_files (beside the outputs' set-up
 * and an upper directory's listing) gives the layer and the manifest a loaded
 * base gives; a base file that cannot be loaded or does not fit the options
 * is refused with the command line's messages; a failure before the base is
 * needed leaves nothing running (ASan: nothing leaked); a loaded base and a
 * base file together, and a base file for a scan, are refused. */
static void test_files_base(void **state)
{
	char root[] = "/tmp/test_api.XXXXXX";
	make_tree(root);
	char base[200], l1[200], l2[200], m1[200], m2[200];
	snprintf(base, sizeof(base), "%s.base", root);
	snprintf(l1, sizeof(l1), "%s.1.tar", root);
	snprintf(l2, sizeof(l2), "%s.2.tar", root);
	snprintf(m1, sizeof(m1), "%s.1.lsm", root);
	snprintf(m2, sizeof(m2), "%s.2.lsm", root);
	struct ls_error err = { 0 };
	struct ls_files f = LS_FILES_INIT;
	f.manifest = base;
	assert_int_equal(ls_scan_files(root, NULL, NULL, &f, NULL, &err), 0);
	char p[200];
	snprintf(p, sizeof(p), "%s/f03", root);
	FILE *o = fopen(p, "a");
	assert_non_null(o);
	fputs("more\n", o);
	fclose(o);
	snprintf(p, sizeof(p), "%s/f05", root);
	assert_int_equal(unlink(p), 0);

	ls_manifest *b = NULL;
	assert_int_equal(ls_manifest_load(base, &b, &err), 0);
	struct ls_diff_result r1 = LS_DIFF_RESULT_INIT, r2 = LS_DIFF_RESULT_INIT;
	struct ls_files f1 = LS_FILES_INIT, f2 = LS_FILES_INIT;
	f1.layer = l1;
	f1.manifest = m1;
	f2.layer = l2;
	f2.manifest = m2;
	f2.base = base;
	assert_int_equal(ls_diff_files(root, NULL, b, &f1, &r1, &err), 0);
	assert_int_equal(ls_diff_files(root, NULL, NULL, &f2, &r2, &err), 0);
	assert_string_equal(r1.diff_id, r2.diff_id);
	assert_true(r1.modified >= 1);
	assert_int_equal(r1.deleted, 1);
	assert_int_equal(r2.modified, r1.modified);
	assert_int_equal(r2.deleted, 1);
	char cmd[1100];
	snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", l1, l2);
	assert_int_equal(system(cmd), 0);
	ls_manifest *n1 = NULL, *n2 = NULL;
	assert_int_equal(ls_manifest_load(m1, &n1, &err), 0);
	assert_int_equal(ls_manifest_load(m2, &n2, &err), 0);
	assert_int_equal(ls_manifest_count(n1), ls_manifest_count(n2));
	assert_int_equal(ls_manifest_count(n1), 20);  /* the tree's 21 entries, f05 gone */
	ls_manifest_free(n1);
	ls_manifest_free(n2);

	/* Both, or a base file for a scan. */
	struct ls_diff_result res = LS_DIFF_RESULT_INIT;
	assert_refused(ls_diff_files(root, NULL, b, &f2, &res, &err), &err, EINVAL);
	struct ls_files fs = LS_FILES_INIT;
	fs.manifest = m1;
	fs.base = base;
	assert_refused(ls_scan_files(root, NULL, NULL, &fs, NULL, &err), &err, EINVAL);

	/* Not there, not a manifest, not fitting the options. */
	char missing[220];
	snprintf(missing, sizeof(missing), "%s.missing", root);
	f2.base = missing;
	assert_refused(ls_diff_files(root, NULL, NULL, &f2, &res, &err), &err, ENOENT);
	char want[300];
	snprintf(want, sizeof(want), "--base %s: ", missing);
	assert_memory_equal(err.msg, want, strlen(want));
	f2.base = l1;  /* a tar */
	assert_refused(ls_diff_files(root, NULL, NULL, &f2, &res, &err), &err, EINVAL);
	snprintf(want, sizeof(want), "--base %s: not a layersnap manifest", l1);
	assert_string_equal(err.msg, want);
	struct ls_walk_options w = LS_WALK_OPTIONS_INIT;
	w.mode = LS_MODE_TIME;
	w.n_excludes = 1;
	const char *ex[] = { "f01" };
	w.excludes = ex;
	struct ls_diff_options d = LS_DIFF_OPTIONS_INIT;
	d.walk = &w;
	f2.base = base;
	assert_refused(ls_diff_files(root, &d, NULL, &f2, &res, &err), &err, EINVAL);
	snprintf(want, sizeof(want), "%s: base manifest was recorded with other --exclude paths", base);
	assert_string_equal(err.msg, want);

	/* A failure before the base is taken: the load is finished and freed. */
	f2.layer = NULL;
	assert_refused(ls_diff_files(root, NULL, NULL, &f2, &res, &err), &err, EINVAL);
	ls_manifest_free(b);
	snprintf(cmd, sizeof(cmd), "rm -f '%s' '%s' '%s' '%s' '%s'", base, l1, l2, m1, m2);
	assert_int_equal(system(cmd), 0);
	remove_tree(root);
}

/* One tar entry for write_tar: type 'd', 'f' (data), 'l' (symlink to
 * data) or 'h' (hard link to data). */
struct tar_ent {
	char type;
	const char *path, *data;
};

static void write_tar(const char *path, const struct tar_ent *ents, size_t n)
{
	struct archive *a = archive_write_new();
	assert_non_null(a);
	assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *ae = archive_entry_new();
		assert_non_null(ae);
		archive_entry_set_pathname(ae, ents[i].path);
		archive_entry_set_mtime(ae, 1600000000, 0);
		size_t len = 0;
		switch (ents[i].type) {
		case 'd':
			archive_entry_set_filetype(ae, AE_IFDIR);
			archive_entry_set_perm(ae, 0755);
			break;
		case 'l':
			archive_entry_set_filetype(ae, AE_IFLNK);
			archive_entry_set_perm(ae, 0777);
			archive_entry_set_symlink(ae, ents[i].data);
			break;
		case 'h':
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_perm(ae, 0644);
			archive_entry_set_hardlink(ae, ents[i].data);
			break;
		default:
			len = ents[i].data ? strlen(ents[i].data) : 0;
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_perm(ae, 0644);
			archive_entry_set_size(ae, (la_int64_t)len);
		}
		assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
		if (len)
			assert_int_equal(archive_write_data(a, ents[i].data, len), (la_ssize_t)len);
		archive_entry_free(ae);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

/* What on_entry saw: "C path\n" per call, and whether each call came on
 * the calling thread with the entry already in place (or gone). */
struct told {
	pthread_t caller;
	int rootfd;
	char text[1024];
	size_t len;
	int calls, stop_at, off_thread, not_in_place;
};

static int tell_entry(void *ctx, enum ls_change ch, const char *path, size_t len)
{
	struct told *t = ctx;
	if (!pthread_equal(pthread_self(), t->caller))
		t->off_thread++;
	assert_int_equal(strlen(path), len);
	int n = snprintf(t->text + t->len, sizeof(t->text) - t->len, "%c %s\n", (char)ch, path);
	assert_true(n > 0 && t->len + (size_t)n < sizeof(t->text));
	t->len += (size_t)n;
	/* A names what is there now; D of a path (not "DIR/") what is not */
	struct stat st;
	bool dir_form = len && path[len - 1] == '/';
	bool there = fstatat(t->rootfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (ch == LS_ADDED ? !there : (!dir_form && there))
		t->not_in_place++;
	return ++t->calls == t->stop_at;
}

static void put_file(const char *root, const char *name)
{
	char p[200];
	snprintf(p, sizeof(p), "%s/%s", root, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs("old\n", f);
	fclose(f);
}

static bool exists(const char *root, const char *name)
{
	char p[200];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", root, name);
	return lstat(p, &st) == 0;
}

static bool holds_at(const char *root, const char *name, const char *want)
{
	char p[200];
	snprintf(p, sizeof(p), "%s/%s", root, name);
	return file_holds(p, want);
}

/* No temporary of a file left in dir: names only from the list. */
static void only_names(const char *root, const char *dir, const char *const *names, size_t n)
{
	char p[200];
	snprintf(p, sizeof(p), "%s/%s", root, dir);
	DIR *d = opendir(p);
	assert_non_null(d);
	size_t seen = 0;
	for (struct dirent *de; (de = readdir(d));) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		bool known = false;
		for (size_t i = 0; i < n; i++)
			known |= !strcmp(de->d_name, names[i]);
		if (!known)
			fail_msg("%s: unexpected %s", p, de->d_name);
		seen++;
	}
	closedir(d);
	assert_int_equal(seen, n);
}

/* ROOT before the layer: a file a whiteout removes, a directory an opaque
 * whiteout empties, a file ROOT's opaque whiteout removes. */
static void prepare_apply_root(char *root)
{
	assert_non_null(mkdtemp(root));
	char p[200];
	snprintf(p, sizeof(p), "%s/opq", root);
	assert_int_equal(mkdir(p, 0755), 0);
	put_file(root, "gone");
	put_file(root, "opq/old");
	put_file(root, "other");
}

static int apply_path(const char *layer, const char *root, struct told *t, struct ls_apply_stats *st,
		      struct ls_error *err)
{
	int fd = open(layer, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	t->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(t->rootfd >= 0);
	struct ls_apply_options o = LS_APPLY_OPTIONS_INIT;
	o.on_entry = tell_entry;
	o.entry_ctx = t;
	int rc = ls_apply(fd, root, &o, st, err);
	close(t->rootfd);
	close(fd);
	return rc;
}

/* on_entry: A per entry extracted, D per whiteout, D "DIR/" per opaque
 * whiteout ("/" for ROOT), in layer order, on the calling thread, each once
 * in place; none for AUFS metadata (skipped) nor a refused entry; a
 * non-zero return stops the run with what came before applied. */
static void test_apply_on_entry(void **state)
{
	static const struct tar_ent ents[] = {
		{ 'd', "a", NULL },
		{ 'f', "a/f", "new\n" },
		{ 'f', ".wh.gone", NULL },
		{ 'd', "opq", NULL },
		{ 'f', "opq/.wh..wh..opq", NULL },
		{ 'f', "opq/new", "n\n" },
		{ 'f', ".wh..wh.plnk/1.2", NULL },   /* AUFS metadata: skipped */
		{ 'l', "l", "a/f" },
		{ 'h', "h", "a/f" },
		{ 'f', ".wh..wh..opq", NULL },       /* ROOT's: removes "other" */
	};
	char layer[] = "/tmp/test_api_layer.XXXXXX";
	int lfd = mkstemp(layer);
	assert_true(lfd >= 0);
	close(lfd);
	write_tar(layer, ents, sizeof(ents) / sizeof(ents[0]));

	char root[] = "/tmp/test_api.XXXXXX";
	prepare_apply_root(root);
	struct told t = { .caller = pthread_self(), .stop_at = -1 };
	struct ls_apply_stats st = LS_APPLY_STATS_INIT;
	struct ls_error err = { 0 };
	assert_int_equal(apply_path(layer, root, &t, &st, &err), 0);
	assert_string_equal(t.text,
			    "A a\n"
			    "A a/f\n"
			    "D gone\n"
			    "A opq\n"
			    "D opq/\n"
			    "A opq/new\n"
			    "A l\n"
			    "A h\n"
			    "D /\n");
	assert_int_equal(t.off_thread, 0);
	assert_int_equal(t.not_in_place, 0);
	assert_int_equal(st.entries, 10);
	assert_int_equal(st.whiteouts, 3);
	assert_int_equal(st.skipped, 1);
	assert_false(exists(root, "gone"));
	assert_false(exists(root, "opq/old"));
	assert_false(exists(root, "other"));
	assert_true(holds_at(root, "h", "new\n"));
	static const char *const top[] = { "a", "opq", "l", "h" };
	only_names(root, "", top, 4);
	remove_tree(root);

	/* Stopped at the 2nd call: a and a/f in place (the callback comes after
	 * the final link), nothing after them applied, no temporary left. */
	char root2[] = "/tmp/test_api.XXXXXX";
	prepare_apply_root(root2);
	struct told t2 = { .caller = pthread_self(), .stop_at = 2 };
	assert_refused(apply_path(layer, root2, &t2, &st, &err), &err, ECANCELED);
	assert_string_equal(err.msg, "cancelled");
	assert_string_equal(t2.text, "A a\nA a/f\n");
	assert_int_equal(t2.not_in_place, 0);
	assert_true(holds_at(root2, "a/f", "new\n"));
	assert_true(exists(root2, "gone"));
	assert_true(exists(root2, "opq/old"));
	static const char *const in_a[] = { "f" };
	only_names(root2, "a", in_a, 1);
	static const char *const top2[] = { "a", "gone", "opq", "other" };
	only_names(root2, "", top2, 4);
	remove_tree(root2);

	/* A refused entry is not reported; those before it were, ROOT's own
	 * entry as "/". */
	static const struct tar_ent bad[] = {
		{ 'd', "./", NULL },
		{ 'f', "ok", "x" },
		{ 'f', "../escape", "y" },
	};
	write_tar(layer, bad, 3);
	char root3[] = "/tmp/test_api.XXXXXX";
	assert_non_null(mkdtemp(root3));
	struct told t3 = { .caller = pthread_self(), .stop_at = -1 };
	assert_refused(apply_path(layer, root3, &t3, &st, &err), &err, EXDEV);
	assert_string_equal(t3.text, "A /\nA ok\n");
	remove_tree(root3);
	unlink(layer);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_null_arguments),
		cmocka_unit_test(test_iterate),
		cmocka_unit_test(test_versioned_structs),
		cmocka_unit_test(test_write_callback),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_files_base),
		cmocka_unit_test(test_apply_on_entry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
