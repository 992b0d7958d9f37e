/* Unit tests for snapshot/content.c: the read-ahead of the layer writer
 * (order, skipped entries, the byte ring wrapping, large files handed over
 * open, vanished and replaced files, stopping while the reader waits,
 * directories fstat'ed). */
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "content.h"
#include "walk.h"
#include "xattr.h"

static char root[64];

#define N_FILES 600           /* more than LS_READAHEAD_FILES */
#define BIG     (LS_READAHEAD_WHOLE + 4096)

/* The size of file i: a mix that fills and wraps the ring several times,
 * with empty files and some too large to be read whole. */
static size_t size_of(int i)
{
	if (i % 97 == 5)
		return BIG;
	if (i % 13 == 0)
		return 0;
	return (size_t)(i % 7) * 150000 + (size_t)i;
}

static unsigned char byte_of(int i, size_t k)
{
	return (unsigned char)(i * 31 + k * 7);
}

static void write_file(int i)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/d/f%04d", root, i);
	size_t n = size_of(i);
	unsigned char *b = malloc(n + 1);
	assert_non_null(b);
	for (size_t k = 0; k < n; k++)
		b[k] = byte_of(i, k);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, n), (ssize_t)n);
	close(fd);
	free(b);
}

static int setup(void **state)
{
	strcpy(root, "/tmp/test_content.XXXXXX");
	if (!mkdtemp(root))
		return -1;
	char p[128];
	snprintf(p, sizeof(p), "%s/d", root);
	if (mkdir(p, 0755) != 0)
		return -1;
	for (int i = 0; i < N_FILES; i++)
		write_file(i);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

static ls_manifest *scan_root(void)
{
	struct ls_walk_options o = LS_WALK_OPTIONS_INIT;
	o.mode = LS_MODE_REDO;
	o.io = LS_IO_SYNC;
	struct ls_error err = { 0 };
	ls_manifest *m = NULL;
	if (ls_scan(root, &o, NULL, &m, &err) != 0)
		fail_msg("ls_scan: %s", err.msg);
	return m;
}

/* Manifest index of d/fNNNN. */
static size_t index_of(const ls_manifest *m, int i)
{
	char rel[32];
	snprintf(rel, sizeof(rel), "d/f%04d", i);
	ssize_t k = ls_manifest_find(m, rel, strlen(rel));
	assert_true(k >= 0);
	return (size_t)k;
}

/* The manifest indices of d/f0000 .. d/fN, in order (malloc'ed). */
static size_t *all_indices(const ls_manifest *m)
{
	size_t *idx = malloc(N_FILES * sizeof(*idx));
	assert_non_null(idx);
	for (int i = 0; i < N_FILES; i++)
		idx[i] = index_of(m, i);
	return idx;
}

static void check_read(const struct ls_read *r, int i, bool hash)
{
	assert_int_equal(r->err, 0);
	size_t n = size_of(i);
	assert_int_equal((size_t)r->before.st_size, n);
	if (n > LS_READAHEAD_WHOLE) {
		/* Handed over open at its start, nothing read. */
		assert_true(r->fd >= 0);
		assert_int_equal(lseek(r->fd, 0, SEEK_CUR), 0);
		return;
	}
	assert_int_equal(r->fd, -1);
	assert_true(n == 0 || r->data != NULL);
	for (size_t k = 0; k < n; k++)
		if (r->data[k] != byte_of(i, k))
			fail_msg("f%04d: byte %zu differs", i, k);
	/* Hashed when asked, and for the second read of a file written in the
	 * last second (these were, by setup). */
	if (hash)
		assert_true(r->hashed);
	if (r->hashed) {
		XXH128_canonical_t c;
		XXH128_canonicalFromHash(&c, XXH3_128bits(r->data, n));
		assert_memory_equal(r->hash, c.digest, 16);
	}
}

static int rootfd_open(void)
{
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

/* The read of index i fails with err (and is released). */
static void expect_failed(struct ls_readahead *ra, size_t i, int err)
{
	struct ls_read *r = ls_readahead_get(ra, i);
	assert_non_null(r);
	assert_int_equal(r->err, err);
	ls_readahead_release(ra, r);
}

/* Every listed file, asked for in order, some skipped: each comes back whole
 * (or open, when large) with its own bytes, whatever was skipped before. */
static void test_order_and_skips(void **state)
{
	ls_manifest *m = scan_root();
	int rootfd = rootfd_open();
	size_t *idx = all_indices(m);
	for (int pass = 0; pass < 2; pass++) {
		bool hash = pass == 1;
		struct ls_readahead *ra = NULL;
		assert_int_equal(ls_readahead_start(&ra, rootfd, m, idx, N_FILES, hash, LS_XATTRS_NONE), 0);
		for (int i = 0; i < N_FILES; i++) {
			if (i % 5 == 3)
				continue;  /* not asked for: dropped when a later one is */
			struct ls_read *r = ls_readahead_get(ra, idx[i]);
			assert_non_null(r);
			assert_int_equal(r->index, idx[i]);
			check_read(r, i, hash);
			ls_readahead_release(ra, r);
		}
		ls_readahead_free(ra);
	}
	/* An index that was not listed: NULL, without waiting for the end. */
	struct ls_readahead *ra = NULL;
	assert_int_equal(ls_readahead_start(&ra, rootfd, m, idx + 1, 3, false, LS_XATTRS_NONE), 0);
	assert_null(ls_readahead_get(ra, idx[0]));
	struct ls_read *r = ls_readahead_get(ra, idx[1]);
	assert_non_null(r);
	check_read(r, 1, false);
	ls_readahead_release(ra, r);
	ls_readahead_free(ra);
	free(idx);
	close(rootfd);
	ls_manifest_free(m);
}

/* Freed while the reader waits for room (nothing asked for): it stops, and
 * nothing leaks (ASan) or hangs. */
static void test_stop_while_full(void **state)
{
	ls_manifest *m = scan_root();
	int rootfd = rootfd_open();
	size_t *idx = all_indices(m);
	struct ls_readahead *ra = NULL;
	assert_int_equal(ls_readahead_start(&ra, rootfd, m, idx, N_FILES, false, LS_XATTRS_NONE), 0);
	struct ls_read *r = ls_readahead_get(ra, idx[0]);
	assert_non_null(r);
	struct timespec pause = { 0, 20 * 1000 * 1000 };
	nanosleep(&pause, NULL);  /* the reader fills the ring meanwhile */
	ls_readahead_free(ra);    /* with r still held */
	free(idx);
	close(rootfd);
	ls_manifest_free(m);
}

/* Files that vanished or were replaced after the walk come back as -ENOENT,
 * never as bytes of another inode; the file after them reads as usual. */
static void test_vanished_and_replaced(void **state)
{
	ls_manifest *m = scan_root();
	int rootfd = rootfd_open();
	size_t idx[3] = { index_of(m, 1), index_of(m, 2), index_of(m, 3) };
	char p[128], q[128];
	snprintf(p, sizeof(p), "%s/d/f0001", root);
	assert_int_equal(unlink(p), 0);
	snprintf(p, sizeof(p), "%s/d/f0002", root);
	snprintf(q, sizeof(q), "%s/d/new", root);
	int fd = open(q, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(rename(q, p), 0);  /* a new inode under the name */
	struct ls_readahead *ra = NULL;
	assert_int_equal(ls_readahead_start(&ra, rootfd, m, idx, 3, true, LS_XATTRS_NONE), 0);
	expect_failed(ra, idx[0], -ENOENT);
	expect_failed(ra, idx[1], -ENOENT);
	struct ls_read *r = ls_readahead_get(ra, idx[2]);
	assert_non_null(r);
	check_read(r, 3, true);
	ls_readahead_release(ra, r);
	ls_readahead_free(ra);
	close(rootfd);
	ls_manifest_free(m);
	write_file(1);
	write_file(2);
}

/* A directory listed among the files is fstat'ed from the reader's chain:
 * its stat now (a file created in it since the walk moved its mtime), no
 * data; one replaced by another directory, or by a file, is -ENOENT or
 * -ENOTDIR; the files around it read as usual. */
static void test_directories(void **state)
{
	char p[128], q[128];
	snprintf(p, sizeof(p), "%s/d/sub", root);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/d/sub2", root);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/d/sub3", root);
	assert_int_equal(mkdir(p, 0755), 0);
	ls_manifest *m = scan_root();
	int rootfd = rootfd_open();
	ssize_t d = ls_manifest_find(m, "d", 1), sub = ls_manifest_find(m, "d/sub", 5),
		sub2 = ls_manifest_find(m, "d/sub2", 6), sub3 = ls_manifest_find(m, "d/sub3", 6);
	assert_true(d >= 0 && sub >= 0 && sub2 >= 0 && sub3 >= 0);
	/* walk order: d, d/f0000 .. d/f0599, d/sub, d/sub2, d/sub3 */
	size_t idx[6] = { (size_t)d, index_of(m, 0), index_of(m, N_FILES - 1), (size_t)sub, (size_t)sub2,
			  (size_t)sub3 };
	struct timespec pause = { 0, 20 * 1000 * 1000 };
	nanosleep(&pause, NULL);
	snprintf(p, sizeof(p), "%s/d/sub/new", root);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
	snprintf(p, sizeof(p), "%s/d/sub2", root);
	snprintf(q, sizeof(q), "%s/d/other", root);
	assert_int_equal(mkdir(q, 0755), 0);
	assert_int_equal(rename(q, p), 0);  /* another directory under the name */
	snprintf(p, sizeof(p), "%s/d/sub3", root);
	assert_int_equal(rmdir(p), 0);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);  /* a file now */
	assert_true(fd >= 0);
	close(fd);

	struct ls_readahead *ra = NULL;
	assert_int_equal(ls_readahead_start(&ra, rootfd, m, idx, 6, true, LS_XATTRS_NONE), 0);
	struct ls_read *r = ls_readahead_get(ra, idx[0]);
	assert_non_null(r);
	assert_int_equal(r->err, 0);
	assert_true(S_ISDIR(r->before.st_mode));
	assert_int_equal((uint64_t)r->before.st_ino, m->recs[d].ino);
	assert_null(r->data);
	assert_int_equal(r->fd, -1);
	ls_readahead_release(ra, r);
	for (int k = 1; k <= 2; k++) {
		r = ls_readahead_get(ra, idx[k]);
		assert_non_null(r);
		check_read(r, k == 1 ? 0 : N_FILES - 1, true);
		ls_readahead_release(ra, r);
	}
	r = ls_readahead_get(ra, idx[3]);
	assert_non_null(r);
	assert_int_equal(r->err, 0);
	int64_t then = m->recs[sub].mtime_ns;
	int64_t now = (int64_t)r->before.st_mtim.tv_sec * 1000000000 + r->before.st_mtim.tv_nsec;
	assert_true(now > then);  /* as it is now, not as the walk saw it */
	ls_readahead_release(ra, r);
	expect_failed(ra, idx[4], -ENOENT);
	expect_failed(ra, idx[5], -ENOTDIR);
	ls_readahead_free(ra);
	close(rootfd);
	ls_manifest_free(m);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/d/sub' '%s/d/sub2' '%s/d/sub3'", root, root, root);
	assert_int_equal(system(cmd), 0);
}

/* Rewrites file i with n bytes of value v. */
static void rewrite_file(int i, size_t n, unsigned char v)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/d/f%04d", root, i);
	unsigned char *b = malloc(n + 1);
	assert_non_null(b);
	memset(b, v, n);
	int fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, n), (ssize_t)n);
	close(fd);
	free(b);
}

/* Files rewritten after the walk (longer, shorter, the same size with other
 * bytes, and one to be read whole that grew past LS_READAHEAD_WHOLE): each
 * comes back as it is now, its bytes and `before` agreeing, not as the
 * walk recorded it. */
static void test_changed_since_walk(void **state)
{
	ls_manifest *m = scan_root();
	int rootfd = rootfd_open();
	static const int files[] = { 1, 2, 3, 4 };
	const size_t sizes[] = { size_of(1) + 5000, size_of(2) / 2, size_of(3), LS_READAHEAD_WHOLE + 1 };
	size_t idx[4];
	for (int k = 0; k < 4; k++) {
		idx[k] = index_of(m, files[k]);
		assert_true(m->recs[idx[k]].size <= LS_READAHEAD_WHOLE);
		rewrite_file(files[k], sizes[k], (unsigned char)(0xa0 + k));
	}
	struct ls_readahead *ra = NULL;
	assert_int_equal(ls_readahead_start(&ra, rootfd, m, idx, 4, true, LS_XATTRS_NONE), 0);
	for (int k = 0; k < 4; k++) {
		struct ls_read *r = ls_readahead_get(ra, idx[k]);
		assert_non_null(r);
		assert_int_equal(r->err, 0);
		assert_int_equal((size_t)r->before.st_size, sizes[k]);
		if (sizes[k] > LS_READAHEAD_WHOLE) {
			assert_true(r->fd >= 0);  /* grown too large: handed over open */
		} else {
			assert_int_equal(r->fd, -1);
			for (size_t b = 0; b < sizes[k]; b++)
				if (r->data[b] != 0xa0 + k)
					fail_msg("f%04d: byte %zu is not the new one", files[k], b);
		}
		ls_readahead_release(ra, r);
	}
	ls_readahead_free(ra);
	close(rootfd);
	ls_manifest_free(m);
	for (int k = 0; k < 4; k++)
		write_file(files[k]);
}

/* A file stamped just now is read twice; the two agree on a quiet file. */
static void test_recent_file_confirmed(void **state)
{
	write_file(4);  /* ctime now */
	ls_manifest *m = scan_root();
	int rootfd = rootfd_open();
	size_t idx[1] = { index_of(m, 4) };
	struct ls_readahead *ra = NULL;
	assert_int_equal(ls_readahead_start(&ra, rootfd, m, idx, 1, false, LS_XATTRS_NONE), 0);
	struct ls_read *r = ls_readahead_get(ra, idx[0]);
	assert_non_null(r);
	assert_int_equal(r->err, 0);
	assert_true(r->hashed);  /* hashed for the second read, though not asked */
	ls_readahead_release(ra, r);
	ls_readahead_free(ra);
	close(rootfd);
	ls_manifest_free(m);
}

static void set_xattr(int i, const char *name, const char *value)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/d/f%04d", root, i);
	if (lsetxattr(p, name, value, strlen(value), 0) != 0)
		fail_msg("setxattr %s %s: %s", p, name, strerror(errno));
}

/*
 * Asked for, each regular file's xattrs come with it, read from the file the
 * read-ahead opened, under the policy given: the blob ls_xattrs_read makes
 * by name, for files read whole and for one handed over open; not asked
 * for, none are read.
 */
static void test_xattrs(void **state)
{
	(void)state;
	set_xattr(3, "user.b", "two");
	set_xattr(3, "user.a", "one");
	set_xattr(5, "user.big", "x"); /* f0005 is too large to be read whole */
	ls_manifest *m = scan_root();
	int rootfd = rootfd_open();
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/d", root);
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dirfd >= 0);
	const int files[] = { 3, 4, 5 };
	size_t idx[3];
	for (int k = 0; k < 3; k++)
		idx[k] = index_of(m, files[k]);
	static const enum ls_xattrs policies[] = { LS_XATTRS_NONE, LS_XATTRS_ALL, LS_XATTRS_CAPABILITY };
	for (int p = 0; p < 3; p++) {
		struct ls_readahead *ra = NULL;
		assert_int_equal(ls_readahead_start(&ra, rootfd, m, idx, 3, false, policies[p]), 0);
		for (int k = 0; k < 3; k++) {
			struct ls_read *r = ls_readahead_get(ra, idx[k]);
			assert_non_null(r);
			check_read(r, files[k], false);
			char name[16];
			snprintf(name, sizeof(name), "f%04d", files[k]);
			void *want = NULL;
			size_t want_len = 0;
			assert_int_equal(ls_xattrs_read(dirfd, name, S_IFREG, policies[p], &want, &want_len), 0);
			/* by name, only the policy's: all for f0003 and f0005, none for f0004 */
			assert_int_equal(want_len > 0, policies[p] == LS_XATTRS_ALL && files[k] != 4);
			assert_int_equal(r->xattrs_read, policies[p] != LS_XATTRS_NONE);
			if (r->xattrs_read) {
				assert_int_equal(r->xattr_len, want_len);
				if (want_len)
					assert_memory_equal(r->xattrs, want, want_len);
			} else {
				assert_null(r->xattrs);
			}
			free(want);
			ls_readahead_release(ra, r);
		}
		ls_readahead_free(ra);
	}
	close(dirfd);
	close(rootfd);
	ls_manifest_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xattrs),
		cmocka_unit_test(test_order_and_skips),
		cmocka_unit_test(test_stop_while_full),
		cmocka_unit_test(test_vanished_and_replaced),
		cmocka_unit_test(test_changed_since_walk),
		cmocka_unit_test(test_recent_file_confirmed),
		cmocka_unit_test(test_directories),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
