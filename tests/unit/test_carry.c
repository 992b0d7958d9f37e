/* Unit tests for carried runs (snapshot/carry.c): runs join when they touch,
 * the merge puts them at their places in walk order with their bytes
 * (path, target, xattrs), leaves the run's outputs out, remaps devices of
 * carried entries only, gives the same manifest as copying each entry, a
 * vanished subtree is cut out of the runs, a record taken out of the runs
 * lands at its place (the merge is unchanged by it), and the streamed write is the
 * merged manifest's file byte for byte (refusing an unhashed file in a full
 * manifest, failing cleanly on a full disk). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "carry.h"
#include "manifest.h"

static ls_manifest *new_manifest(void)
{
	ls_manifest *m = NULL;
	assert_int_equal(ls_manifest_create(&m, LS_MODE_REDO, LS_XATTRS_ALL, false, NULL, 0, NULL), 0);
	return m;
}

static void add(ls_manifest *m, const char *path, uint32_t mode, uint64_t dev, uint64_t ino, const char *link,
		const void *xattrs, size_t xattr_len)
{
	struct ls_rec r;
	memset(&r, 0, sizeof(r));
	r.mode = mode;
	r.dev = dev;
	r.ino = ino;
	r.nlink = 1;
	assert_int_equal(ls_manifest_append(m, &r, path, strlen(path), link, link ? strlen(link) : 0, xattrs,
					    xattr_len, NULL),
			 0);
}

/* The base: a/ a/x a/y b/ b/l (symlink) b/z c (with an xattr). */
static ls_manifest *base_tree(void)
{
	static const unsigned char xa[] = { 5, 0, 1, 0, 0, 0, 'u', 's', 'e', 'r', '.', 'v' };
	ls_manifest *b = new_manifest();
	add(b, "a", S_IFDIR | 0755, 7, 1, NULL, NULL, 0);
	add(b, "a/x", S_IFREG | 0644, 9, 2, NULL, NULL, 0);
	add(b, "a/y", S_IFREG | 0644, 9, 3, NULL, NULL, 0);
	add(b, "b", S_IFDIR | 0755, 7, 4, NULL, NULL, 0);
	add(b, "b/l", S_IFLNK | 0777, 9, 5, "../a/x", NULL, 0);
	add(b, "b/z", S_IFREG | 0600, 9, 6, NULL, NULL, 0);
	add(b, "c", S_IFREG | 0644, 9, 7, NULL, xa, sizeof(xa));
	return b;
}

static void assert_same_entry(const ls_manifest *a, size_t i, const ls_manifest *b, size_t j)
{
	const struct ls_rec *x = &a->recs[i], *y = &b->recs[j];
	assert_int_equal(x->path_len, y->path_len);
	assert_memory_equal(ls_rec_path(a, x), ls_rec_path(b, y), x->path_len);
	assert_string_equal(ls_rec_link(a, x), ls_rec_link(b, y));
	assert_int_equal(x->xattr_len, y->xattr_len);
	if (x->xattr_len)
		assert_memory_equal(ls_rec_xattrs(a, x), ls_rec_xattrs(b, y), x->xattr_len);
	assert_int_equal(x->mode, y->mode);
	assert_int_equal(x->ino, y->ino);
	assert_int_equal(x->dev, y->dev);
}

static void test_add_joins_touching_runs(void **state)
{
	(void)state;
	struct ls_carry c = { 0 };
	assert_int_equal(ls_carry_add(&c, 0, 0, 3), 0);
	assert_int_equal(ls_carry_add(&c, 0, 3, 5), 0);   /* touches: joined */
	assert_int_equal(ls_carry_add(&c, 0, 6, 7), 0);   /* a gap in base: another run */
	assert_int_equal(ls_carry_add(&c, 2, 7, 8), 0);   /* another place: another run */
	assert_int_equal(ls_carry_add(&c, 2, 8, 8), 0);   /* empty: nothing */
	assert_int_equal(c.n, 3);
	assert_int_equal(c.entries, 7);
	assert_int_equal(c.runs[0].from, 0);
	assert_int_equal(c.runs[0].to, 5);
	assert_int_equal(c.runs[1].from, 6);
	assert_int_equal(c.runs[2].at, 2);
	ls_carry_free(&c);
	assert_int_equal(c.n, 0);
	assert_null(c.runs);
}

/* Walked: a (dir) and a/y, new a/w; carried: a/x before a/y, b's subtree
 * and c at the end. */
static void test_merge_places_runs_in_walk_order(void **state)
{
	(void)state;
	ls_manifest *b = base_tree();
	ls_manifest *m = new_manifest();
	struct ls_carry c = { 0 };
	add(m, "a", S_IFDIR | 0700, 7, 1, NULL, NULL, 0);
	add(m, "a/w", S_IFREG | 0644, 9, 20, NULL, NULL, 0);
	assert_int_equal(ls_carry_add(&c, 2, 1, 2), 0);     /* a/x after a/w */
	add(m, "a/y", S_IFREG | 0600, 9, 3, NULL, NULL, 0);
	assert_int_equal(ls_carry_add(&c, 3, 3, 7), 0);     /* b, b/l, b/z, c after the last */
	assert_int_equal(ls_carry_merge(m, &c, b, NULL, 0, NULL), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(m->n, 8);
	static const char *const want[] = { "a", "a/w", "a/x", "a/y", "b", "b/l", "b/z", "c" };
	for (size_t i = 0; i < m->n; i++) {
		assert_int_equal(m->recs[i].path_len, strlen(want[i]));
		assert_memory_equal(ls_rec_path(m, &m->recs[i]), want[i], strlen(want[i]));
	}
	assert_int_equal(m->recs[0].mode, S_IFDIR | 0700);  /* the walk's own entry */
	assert_same_entry(m, 2, b, 1);
	assert_same_entry(m, 5, b, 4);                     /* the link target came along */
	assert_same_entry(m, 7, b, 6);                     /* and the xattrs */
	for (size_t i = 1; i < m->n; i++)
		assert_true(ls_path_cmp(ls_rec_path(m, &m->recs[i - 1]), m->recs[i - 1].path_len,
					ls_rec_path(m, &m->recs[i]), m->recs[i].path_len) < 0);
	ls_manifest_free(m);
	ls_manifest_free(b);
}

/* The same manifest as copying every carried entry with append_from. */
static void test_merge_equals_copies(void **state)
{
	(void)state;
	ls_manifest *b = base_tree();
	ls_manifest *runs = new_manifest(), *copies = new_manifest();
	struct ls_carry c = { 0 };
	assert_int_equal(ls_carry_add(&c, 0, 0, 4), 0);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(ls_manifest_append_from(copies, b, i, NULL), 0);
	add(runs, "b/l", S_IFLNK | 0777, 9, 55, "elsewhere", NULL, 0);
	add(copies, "b/l", S_IFLNK | 0777, 9, 55, "elsewhere", NULL, 0);
	assert_int_equal(ls_carry_add(&c, 1, 5, 7), 0);
	for (size_t i = 5; i < 7; i++)
		assert_int_equal(ls_manifest_append_from(copies, b, i, NULL), 0);
	assert_int_equal(ls_carry_merge(runs, &c, b, NULL, 0, NULL), 0);
	assert_int_equal(runs->n, copies->n);
	for (size_t i = 0; i < runs->n; i++)
		assert_same_entry(runs, i, copies, i);
	ls_manifest_free(runs);
	ls_manifest_free(copies);
	ls_manifest_free(b);
}

static void test_merge_skips_outputs_and_remaps(void **state)
{
	(void)state;
	ls_manifest *b = base_tree();
	ls_manifest *m = new_manifest();
	struct ls_carry c = { 0 };
	add(m, "0new", S_IFREG | 0644, 9, 30, NULL, NULL, 0);  /* walked: not remapped */
	assert_int_equal(ls_carry_add(&c, 1, 0, 7), 0);
	c.remap_dirs = true;
	c.dir_from = 7;
	c.dir_to = 70;
	c.remap_others = true;
	c.other_from = 9;
	c.other_to = 90;
	const char *const skip[] = { "b/z", "a/y" };
	assert_int_equal(ls_carry_merge(m, &c, b, skip, 2, NULL), 0);
	assert_int_equal(m->n, 6);
	assert_int_equal(m->recs[0].dev, 9);
	for (size_t i = 1; i < m->n; i++) {
		const struct ls_rec *r = &m->recs[i];
		assert_int_equal(r->dev, S_ISDIR(r->mode) ? 70 : 90);
		assert_false(r->path_len == 3 && (memcmp(ls_rec_path(m, r), "b/z", 3) == 0 ||
						  memcmp(ls_rec_path(m, r), "a/y", 3) == 0));
	}
	ls_manifest_free(m);
	ls_manifest_free(b);
}

static void test_merge_without_runs_changes_nothing(void **state)
{
	(void)state;
	ls_manifest *b = base_tree();
	ls_manifest *m = new_manifest();
	add(m, "a", S_IFDIR | 0755, 7, 1, NULL, NULL, 0);
	struct ls_rec *before = m->recs;
	struct ls_carry c = { 0 };
	assert_int_equal(ls_carry_merge(m, &c, b, NULL, 0, NULL), 0);
	assert_ptr_equal(m->recs, before);
	assert_int_equal(m->n, 1);
	ls_manifest_free(m);
	ls_manifest_free(b);
}

/* A subtree vanished after the walk: its records leave the runs, a run
 * holding more on both sides splits, runs elsewhere stay. */
static void test_cut_takes_a_subtree_out(void **state)
{
	(void)state;
	ls_manifest *b = base_tree();
	struct ls_carry c = { 0 };
	assert_int_equal(ls_carry_add(&c, 1, 0, 7), 0);   /* everything, placed at 1 */
	size_t dropped;
	/* b's subtree is [4, 6): b/l and b/z */
	assert_int_equal(ls_carry_cut(&c, 1, 1, 4, 6, b, &dropped), 0);
	assert_int_equal(dropped, 2);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.entries, 5);
	assert_int_equal(c.runs[0].from, 0);
	assert_int_equal(c.runs[0].to, 4);
	assert_int_equal(c.runs[1].from, 6);
	assert_int_equal(c.runs[1].to, 7);
	assert_int_equal(c.runs[1].at, 1);
	/* placed elsewhere: untouched */
	assert_int_equal(ls_carry_cut(&c, 2, 5, 0, 7, b, &dropped), 0);
	assert_int_equal(dropped, 0);
	assert_int_equal(c.entries, 5);
	/* a whole run taken out, and a run's head */
	assert_int_equal(ls_carry_cut(&c, 0, 1, 6, 7, b, &dropped), 0);
	assert_int_equal(dropped, 1);
	assert_int_equal(c.n, 1);
	assert_int_equal(ls_carry_cut(&c, 0, 1, 0, 2, b, &dropped), 0);
	assert_int_equal(dropped, 2);
	assert_int_equal(c.runs[0].from, 2);
	assert_int_equal(c.runs[0].to, 4);
	assert_int_equal(c.entries, 2);
	ls_carry_free(&c);
	ls_manifest_free(b);
}

/* The bytes a write into a fresh memfd left there (*len of them). */
static char *written(int fd, size_t *len)
{
	off_t end = lseek(fd, 0, SEEK_END);
	assert_true(end >= 0);
	char *buf = malloc((size_t)end + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)end, 0), end);
	*len = (size_t)end;
	close(fd);
	return buf;
}

/* One case of the streamed write: walked records and runs over base_tree(). */
struct write_case {
	ls_manifest *m, *b;
	struct ls_carry c;
	const char *const *skip;
	size_t n_skip;
};

static void build_case(struct write_case *k, int shape)
{
	static const unsigned char xa[] = { 6, 0, 3, 0, 0, 0, 'u', 's', 'e', 'r', '.', 'w', 'v', 'a', 'l' };
	static const char *const skip[] = { "b/z", "a/y" };
	memset(k, 0, sizeof(*k));
	k->b = base_tree();
	k->m = new_manifest();
	switch (shape) {
	case 0:  /* runs between walked records and after the last */
		add(k->m, "a", S_IFDIR | 0700, 7, 1, NULL, NULL, 0);
		add(k->m, "a/w", S_IFREG | 0644, 9, 20, NULL, xa, sizeof(xa));
		assert_int_equal(ls_carry_add(&k->c, 2, 1, 2), 0);
		add(k->m, "a/y", S_IFREG | 0600, 9, 3, NULL, NULL, 0);
		assert_int_equal(ls_carry_add(&k->c, 3, 3, 7), 0);
		break;
	case 1:  /* outputs skipped, devices remapped */
		add(k->m, "0new", S_IFREG | 0644, 9, 30, NULL, NULL, 0);
		assert_int_equal(ls_carry_add(&k->c, 1, 0, 7), 0);
		k->c.remap_dirs = k->c.remap_others = true;
		k->c.dir_from = 7;
		k->c.dir_to = 70;
		k->c.other_from = 9;
		k->c.other_to = 90;
		k->skip = skip;
		k->n_skip = 2;
		break;
	case 2:  /* no runs at all */
		add(k->m, "a", S_IFDIR | 0755, 7, 1, NULL, NULL, 0);
		add(k->m, "a/l", S_IFLNK | 0777, 9, 2, "target", NULL, 0);
		break;
	case 3:  /* a built base whose pool is not in record order: b/l's bytes
		  * moved to the end, so a run's pieces are not one piece */
		assert_int_equal(ls_manifest_set_xattrs(k->b, 4, xa, sizeof(xa), NULL), 0);
		assert_int_equal(ls_carry_add(&k->c, 0, 0, 7), 0);
		break;
	case 4:  /* nothing walked, nothing carried */
		break;
	case 5:  /* two runs placed before the same walked record */
		assert_int_equal(ls_carry_add(&k->c, 0, 0, 2), 0);  /* a, a/x */
		assert_int_equal(ls_carry_add(&k->c, 0, 3, 5), 0);  /* b, b/l */
		add(k->m, "b/zz", S_IFREG | 0644, 9, 40, NULL, NULL, 0);
		assert_int_equal(ls_carry_add(&k->c, 1, 6, 7), 0);  /* c */
		break;
	}
}

static void free_case(struct write_case *k)
{
	ls_carry_free(&k->c);
	ls_manifest_free(k->m);
	ls_manifest_free(k->b);
}

static void test_write_equals_merge(void **state)
{
	(void)state;
	for (int shape = 0; shape <= 5; shape++) {
		struct write_case streamed, merged;
		build_case(&streamed, shape);
		build_case(&merged, shape);
		size_t runs = streamed.c.n, entries = streamed.c.entries;
		int fd = memfd_create("streamed", 0);
		assert_true(fd >= 0);
		assert_int_equal(ls_carry_write_fd(streamed.m, &streamed.c, streamed.b, streamed.skip, streamed.n_skip,
						   fd, NULL),
				 0);
		size_t slen, mlen;
		char *sbuf = written(fd, &slen);
		assert_int_equal(ls_carry_merge(merged.m, &merged.c, merged.b, merged.skip, merged.n_skip, NULL), 0);
		fd = memfd_create("merged", 0);
		assert_true(fd >= 0);
		assert_int_equal(ls_manifest_write_fd(merged.m, fd, NULL), 0);
		char *mbuf = written(fd, &mlen);
		assert_int_equal(slen, mlen);
		assert_memory_equal(sbuf, mbuf, slen);
		/* and it loads, with every entry */
		ls_manifest *back = NULL;
		assert_int_equal(ls_manifest_parse(sbuf, slen, "streamed", &back, NULL), 0);
		assert_int_equal(back->n, merged.m->n);
		ls_manifest_free(back);
		assert_int_equal(streamed.c.n, runs);  /* the runs are left as they were */
		assert_int_equal(streamed.c.entries, entries);
		free(sbuf);
		free(mbuf);
		free_case(&streamed);
		free_case(&merged);
	}
}

/* A carried regular file without a hash cannot go into a full manifest. */
static void test_write_refuses_unhashed_in_full(void **state)
{
	(void)state;
	ls_manifest *b = base_tree();
	ls_manifest *m = NULL;
	assert_int_equal(ls_manifest_create(&m, LS_MODE_FULL, LS_XATTRS_ALL, false, NULL, 0, NULL), 0);
	struct ls_carry c = { 0 };
	assert_int_equal(ls_carry_add(&c, 0, 0, 2), 0);  /* a, a/x (unhashed) */
	int fd = memfd_create("full", 0);
	assert_true(fd >= 0);
	struct ls_error err = { 0 };
	assert_int_equal(ls_carry_write_fd(m, &c, b, NULL, 0, fd, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "a/x"));
	close(fd);
	ls_carry_free(&c);
	ls_manifest_free(m);
	ls_manifest_free(b);
}

/* A write that fails (a full disk) is an error, with nothing leaked. */
static void test_write_fails_cleanly(void **state)
{
	(void)state;
	int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		skip();
	struct write_case k;
	build_case(&k, 0);
	struct ls_error err = { 0 };
	assert_int_equal(ls_carry_write_fd(k.m, &k.c, k.b, NULL, 0, fd, &err), -ENOSPC);
	assert_non_null(strstr(err.msg, "write"));
	close(fd);
	free_case(&k);
}

/* Taking any carried record out of the runs into the walked manifest
 * changes nothing of the merged manifest: same entries, same order, same
 * devices; the runs lose exactly that record. */
static void test_take_keeps_the_merge(void **state)
{
	(void)state;
	static const int shapes[] = { 0, 1, 3, 5 };
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
		for (size_t b = 0; b < 7; b++) {
			struct write_case whole, taken;
			build_case(&whole, shapes[s]);
			build_case(&taken, shapes[s]);
			bool carried = false;
			for (size_t k = 0; k < taken.c.n; k++)
				carried |= taken.c.runs[k].from <= b && b < taken.c.runs[k].to;
			size_t entries = taken.c.entries, walked = taken.m->n;
			bool skipped = false;
			for (size_t k = 0; k < taken.n_skip; k++)
				skipped |= strlen(taken.skip[k]) == taken.b->recs[b].path_len &&
					   memcmp(taken.skip[k], ls_rec_path(taken.b, &taken.b->recs[b]),
						  taken.b->recs[b].path_len) == 0;
			assert_int_equal(ls_carry_take(taken.m, &taken.c, taken.b, b, taken.skip, taken.n_skip, NULL), 0);
			assert_int_equal(taken.c.entries, entries - carried);
			assert_int_equal(taken.m->n, walked + (carried && !skipped));
			for (size_t k = 0; k < taken.c.n; k++) {
				assert_true(taken.c.runs[k].from < taken.c.runs[k].to);  /* no empty run left */
				assert_false(taken.c.runs[k].from <= b && b < taken.c.runs[k].to);
				if (k)
					assert_true(taken.c.runs[k - 1].at <= taken.c.runs[k].at);
			}
			assert_int_equal(ls_carry_merge(whole.m, &whole.c, whole.b, whole.skip, whole.n_skip, NULL), 0);
			assert_int_equal(ls_carry_merge(taken.m, &taken.c, taken.b, taken.skip, taken.n_skip, NULL), 0);
			assert_int_equal(taken.m->n, whole.m->n);
			for (size_t i = 0; i < whole.m->n; i++)
				assert_same_entry(taken.m, i, whole.m, i);
			free_case(&whole);
			free_case(&taken);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_joins_touching_runs),
		cmocka_unit_test(test_merge_places_runs_in_walk_order),
		cmocka_unit_test(test_merge_equals_copies),
		cmocka_unit_test(test_merge_skips_outputs_and_remaps),
		cmocka_unit_test(test_merge_without_runs_changes_nothing),
		cmocka_unit_test(test_cut_takes_a_subtree_out),
		cmocka_unit_test(test_write_equals_merge),
		cmocka_unit_test(test_write_refuses_unhashed_in_full),
		cmocka_unit_test(test_write_fails_cleanly),
		cmocka_unit_test(test_take_keeps_the_merge),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
