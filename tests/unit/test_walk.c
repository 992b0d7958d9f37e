/* Unit tests for the walker (snapshot/walk.c): the stat cache's racy rule,
 * hash reuse through ls_scan, walk order and xattr blobs, and the descriptor
 * table grown before its threads start (ls_fd_table_reserve, ioq.c). */
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
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "ioq.h"
#include "ls_fds.h"
#include "ls_skip.h"
#include "walk.h"
#include "xattr.h"

#define NS 1000000000LL

/* ---- ls_stat_cache_hit ------------------------------------------------------ */

/* A hashed base record stamped at second 1000 (plus some nanoseconds). */
static struct ls_rec base_rec(void)
{
	struct ls_rec r;
	memset(&r, 0, sizeof(r));
	r.size = 4096;
	r.mtime_ns = 1000 * NS + 5;
	r.ctime_ns = 1000 * NS + 999999999;
	r.dev = makedev(254, 1);
	r.ino = 123456;
	r.rdev = 0;
	r.mode = S_IFREG | 0644 | LS_REC_HASHED;
	r.uid = 1000;
	r.gid = 1000;
	r.nlink = 1;
	memset(r.hash, 0xab, sizeof(r.hash));
	return r;
}

/* The file as a new walk sees it: same metadata, no hash yet. */
static struct ls_rec cur_rec(void)
{
	struct ls_rec r = base_rec();
	r.mode &= ~LS_REC_FLAGS_MASK;
	memset(r.hash, 0, sizeof(r.hash));
	return r;
}

static void test_cache_hit_fields(void **state)
{
	const int64_t start = 2000 * NS;
	struct ls_rec b = base_rec(), c = cur_rec();
	assert_true(ls_stat_cache_hit(&b, &c, start));

	/* No recorded hash: nothing to reuse. */
	b.mode &= ~LS_REC_HASHED;
	assert_false(ls_stat_cache_hit(&b, &c, start));
	b = base_rec();

	/* st_dev is not part of the key: overlay mounts renumber devices. */
	c.dev++;
	assert_true(ls_stat_cache_hit(&b, &c, start));
	/* Each compared field, changed alone, is a miss. */
	c = cur_rec();
	c.ino++;
	assert_false(ls_stat_cache_hit(&b, &c, start));
	c = cur_rec();
	c.size--;
	assert_false(ls_stat_cache_hit(&b, &c, start));
	c = cur_rec();
	c.mtime_ns++;  /* one nanosecond */
	assert_false(ls_stat_cache_hit(&b, &c, start));
	c = cur_rec();
	c.mtime_ns -= NS;  /* a restored older timestamp */
	assert_false(ls_stat_cache_hit(&b, &c, start));
	c = cur_rec();
	c.ctime_ns--;
	assert_false(ls_stat_cache_hit(&b, &c, start));
	c = cur_rec();
	c.mode = S_IFREG | 0755;
	assert_false(ls_stat_cache_hit(&b, &c, start));
	c = cur_rec();
	c.mode = S_IFREG | 04644;
	assert_false(ls_stat_cache_hit(&b, &c, start));
	c = cur_rec();
	c.mode = S_IFLNK | 0644;  /* same permission bits, another type */
	assert_false(ls_stat_cache_hit(&b, &c, start));

	/* The record flags are not part of the mode compared. */
	c = cur_rec();
	c.mode |= LS_REC_HASHED;
	assert_true(ls_stat_cache_hit(&b, &c, start));
	b.mode |= LS_REC_MOUNTPOINT;
	c = cur_rec();
	assert_true(ls_stat_cache_hit(&b, &c, start));
}

static bool hit_at(int64_t mtime_ns, int64_t ctime_ns, int64_t racy_from_ns)
{
	struct ls_rec b = base_rec(), c = cur_rec();
	b.mtime_ns = c.mtime_ns = mtime_ns;
	b.ctime_ns = c.ctime_ns = ctime_ns;
	return ls_stat_cache_hit(&b, &c, racy_from_ns);
}

/* The rule on synthetic timestamps: both must lie before the base scan's
 * start less the window, at both edges of it, for each granularity. */
static void test_cache_racy(void **state)
{
	const int64_t start = 2000 * NS + 500000000;  /* the base scan began at 2000.5 s */
	const int64_t tick = 4000000;                 /* a 4 ms coarse clock */
	const int64_t grains[] = { 1, NS };           /* ext4 & co., anything else */
	for (size_t g = 0; g < sizeof(grains) / sizeof(grains[0]); g++) {
		int64_t window = ls_racy_window_ns(grains[g], tick);
		assert_int_equal(window, grains[g] + LS_RACY_TICKS * tick);
		int64_t from = start - window;
		/* Just before the window: safe. */
		assert_true(hit_at(from - 1, from - 1, from));
		assert_true(hit_at(5, from - 1, from));
		/* At its edge or inside it, in either timestamp: racy. */
		assert_false(hit_at(from, from - 1, from));
		assert_false(hit_at(from - 1, from, from));
		assert_false(hit_at(start - 1, 5, from));
		/* At or after the start: racy. */
		assert_false(hit_at(start, start, from));
		assert_false(hit_at(5, start + NS, from));
	}
	/* Nanosecond file systems: a file written 8 ms and a bit before the
	 * scan is safe; one written within the last two ticks is not. */
	int64_t from_ns = start - ls_racy_window_ns(1, tick);
	assert_true(hit_at(start - 9000000, start - 9000000, from_ns));
	assert_false(hit_at(start - 7000000, start - 9000000, from_ns));
	/* Whole-second file systems: a whole second more. */
	int64_t from_s = start - ls_racy_window_ns(NS, tick);
	assert_false(hit_at(start - 9000000, start - 9000000, from_s));
	assert_true(hit_at(start - NS - 9000000, start - NS - 9000000, from_s));
	/* Before 1970 it is the same arithmetic. */
	assert_true(hit_at(-NS - 1, -NS - 1, -NS));
	assert_false(hit_at(-NS, -2 * NS, -NS));
}

/* The granularity by file system type: nanoseconds on the ones known to
 * keep them, a second on anything else. */
static void test_fs_granularity(void **state)
{
	int fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ls_fs_granularity_ns(fd), NS);  /* procfs */
	close(fd);
	fd = open("/dev/shm", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		assert_int_equal(ls_fs_granularity_ns(fd), 1);  /* tmpfs */
		close(fd);
	}
	assert_int_equal(ls_fs_granularity_ns(-1), NS);  /* unknown: the safe side */
}

/* ---- through ls_scan -------------------------------------------------------- */

static char root[64];

static void write_str(const char *rel, const char *s)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	close(fd);
}

static void make_dir(const char *rel)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	assert_int_equal(mkdir(p, 0755), 0);
}

static void set_mtime(const char *rel, int64_t sec, long nsec)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	struct timespec ts[2] = { { sec, nsec }, { sec, nsec } };
	assert_int_equal(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static int rm_rf(const char *p)
{
	char cmd[320];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p);
	return system(cmd);
}

static int setup_tree(void **state)
{
	strcpy(root, "/tmp/test_walk.XXXXXX");
	if (!mkdtemp(root))
		return -1;
	make_dir("a");
	write_str("a/x", "ax");
	write_str("a-b", "");
	write_str("a.b", "");
	write_str("a0", "zero");
	write_str("one", "one\n");
	write_str("two", "two\n");
	make_dir("sub");
	write_str("sub/three", "three\n");
	set_mtime("one", 1500000000, 123456789);
	return 0;
}

static int teardown_tree(void **state)
{
	rm_rf(root);
	return 0;
}

static void xxh128_of(const char *s, uint8_t out[16])
{
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits(s, strlen(s)));
	memcpy(out, c.digest, 16);
}

static const struct ls_rec *rec_of(const ls_manifest *m, const char *path)
{
	ssize_t i = ls_manifest_find(m, path, strlen(path));
	if (i < 0)
		fail_msg("%s is not in the manifest", path);
	return &m->recs[i];
}

static void assert_hash(const ls_manifest *m, const char *path, const char *content)
{
	const struct ls_rec *r = rec_of(m, path);
	assert_true(r->mode & LS_REC_HASHED);
	uint8_t want[16];
	xxh128_of(content, want);
	assert_memory_equal(r->hash, want, 16);
}

static ls_manifest *scan(enum ls_mode mode, enum ls_io io, bool rehash, const ls_manifest *base)
{
	struct ls_walk_options o = LS_WALK_OPTIONS_INIT;
	o.mode = mode;
	o.io = io;
	o.jobs = 2;
	o.rehash = rehash;
	struct ls_error err = { 0 };
	ls_manifest *m = NULL;
	int rc = ls_scan(root, &o, base, &m, &err);
	if (rc != 0)
		fail_msg("ls_scan: %s", err.msg);
	return m;
}

static void test_walk_order(void **state)
{
	static const char *const want[] = { "a", "a/x", "a-b", "a.b", "a0", "one", "sub", "sub/three", "two" };
	for (int io = LS_IO_AUTO; io <= LS_IO_SYNC; io++) {
		if (io == LS_IO_URING) {
			struct ls_walk_options o = LS_WALK_OPTIONS_INIT;
			o.io = LS_IO_URING;
			struct ls_error err = { 0 };
			ls_manifest *m = NULL;
			if (ls_scan(root, &o, NULL, &m, &err) != 0) {
				ls_skip_part("uring", "io_uring cannot be set up (%s): --io uring walk order", err.msg);
				continue;
			}
			ls_manifest_free(m);
		}
		ls_manifest *m = scan(LS_MODE_FULL, (enum ls_io)io, false, NULL);
		assert_int_equal(ls_manifest_count(m), sizeof(want) / sizeof(want[0]));
		for (size_t i = 0; i < ls_manifest_count(m); i++)
			assert_string_equal(ls_rec_path(m, &m->recs[i]), want[i]);
		assert_true(S_ISDIR(rec_of(m, "a")->mode));
		assert_false(rec_of(m, "a")->mode & LS_REC_HASHED);
		assert_hash(m, "one", "one\n");
		assert_hash(m, "sub/three", "three\n");
		assert_hash(m, "a-b", "");
		assert_int_equal(rec_of(m, "one")->mtime_ns, 1500000000LL * NS + 123456789);
		ls_manifest_free(m);
	}
}

/* The stat cache observed from outside: a hit copies the base's hash without
 * reading the file, so a base whose recorded hash was replaced by a marker
 * shows whether the file was read. */
static void test_scan_reuses_hashes(void **state)
{
	ls_manifest *base = scan(LS_MODE_FULL, LS_IO_SYNC, false, NULL);
	assert_hash(base, "one", "one\n");
	struct ls_rec *one = &base->recs[ls_manifest_find(base, "one", 3)];
	static const uint8_t marker[16] = { 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	memcpy(one->hash, marker, 16);
	/* As if the base scan had started well after every stamp in the tree. */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	base->start_sec = now.tv_sec + 100;

	for (int io = LS_IO_AUTO; io <= LS_IO_SYNC; io++) {
		struct ls_walk_options o = LS_WALK_OPTIONS_INIT;
		o.mode = LS_MODE_FULL;
		o.io = (enum ls_io)io;
		struct ls_error err = { 0 };
		ls_manifest *m = NULL;
		if (ls_scan(root, &o, base, &m, &err) != 0) {
			assert_int_equal(io, LS_IO_URING);  /* only a missing ring may fail */
			ls_skip_part("uring", "io_uring cannot be set up (%s): --io uring stat cache", err.msg);
			continue;
		}
		assert_memory_equal(rec_of(m, "one")->hash, marker, 16);  /* hit */
		assert_true(rec_of(m, "one")->mode & LS_REC_HASHED);
		assert_hash(m, "two", "two\n");
		ls_manifest_free(m);
	}

	/* --rehash: read anyway. */
	ls_manifest *m = scan(LS_MODE_FULL, LS_IO_SYNC, true, base);
	assert_hash(m, "one", "one\n");
	ls_manifest_free(m);

	/* Racy against the base: the file's ctime is the scan's start, or just
	 * inside the window before it. */
	int64_t saved = base->start_sec;
	uint32_t saved_nsec = base->start_nsec;
	int64_t ct = one->ctime_ns;
	const int64_t starts[] = { ct, ct + 1000000 /* 1 ms later */ };
	for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
		base->start_sec = starts[i] / NS;
		base->start_nsec = (uint32_t)(starts[i] % NS);
		m = scan(LS_MODE_FULL, LS_IO_SYNC, false, base);
		assert_hash(m, "one", "one\n");
		ls_manifest_free(m);
	}
	/* Two seconds later, beyond any file system's window: not racy. */
	base->start_sec = ct / NS + 2;
	m = scan(LS_MODE_FULL, LS_IO_SYNC, false, base);
	assert_memory_equal(rec_of(m, "one")->hash, marker, 16);
	ls_manifest_free(m);
	base->start_sec = saved;
	base->start_nsec = saved_nsec;

	/* A base recorded in redo mode has no hashes to give. */
	base->mode = LS_MODE_REDO;
	m = scan(LS_MODE_FULL, LS_IO_SYNC, false, base);
	assert_hash(m, "one", "one\n");
	ls_manifest_free(m);
	base->mode = LS_MODE_FULL;

	/* redo and time record no hashes, base or not. */
	m = scan(LS_MODE_REDO, LS_IO_SYNC, false, base);
	assert_false(rec_of(m, "one")->mode & LS_REC_HASHED);
	assert_false(rec_of(m, "two")->mode & LS_REC_HASHED);
	ls_manifest_free(m);
	m = scan(LS_MODE_TIME, LS_IO_AUTO, false, base);
	assert_false(rec_of(m, "one")->mode & LS_REC_HASHED);
	ls_manifest_free(m);

	/* Same size, restored mtime: ctime moved, so the edit is seen.  (On a
	 * kernel with coarse timestamps, wait for ctime to actually move.) */
	char path[256];
	snprintf(path, sizeof(path), "%s/one", root);
	for (int tries = 0;; tries++) {
		write_str("one", "ONE\n");
		set_mtime("one", 1500000000, 123456789);
		struct statx st;
		assert_int_equal(statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_CTIME, &st), 0);
		if ((int64_t)st.stx_ctime.tv_sec * NS + st.stx_ctime.tv_nsec != one->ctime_ns)
			break;
		assert_true(tries < 1000);
		struct timespec ms = { 0, 1000000 };
		nanosleep(&ms, NULL);
	}
	m = scan(LS_MODE_FULL, LS_IO_SYNC, false, base);
	assert_int_equal(rec_of(m, "one")->mtime_ns, one->mtime_ns);
	assert_int_equal(rec_of(m, "one")->size, one->size);
	assert_hash(m, "one", "ONE\n");
	ls_manifest_free(m);
	write_str("one", "one\n");
	set_mtime("one", 1500000000, 123456789);
	ls_manifest_free(base);
}

/* ---- ls_xattrs_read ------------------------------------------------------------ */

static void test_read_xattrs(void **state)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/two", root);
	if (lsetxattr(p, "user.b", "22", 2, 0) != 0 || lsetxattr(p, "user.a", "1", 1, 0) != 0 ||
	    lsetxattr(p, "user.c", "", 0, 0) != 0) {
		ls_skip_part("xattr", "no user xattrs on %s (%s)", root, strerror(errno));
		skip();
	}
	int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	void *blob = NULL;
	size_t len = 99;
	assert_int_equal(ls_xattrs_read(dfd, "two", S_IFREG | 0644, LS_XATTRS_NONE, &blob, &len), 0);
	assert_null(blob);
	assert_int_equal(len, 0);
	assert_int_equal(ls_xattrs_read(dfd, "two", S_IFREG | 0644, LS_XATTRS_CAPABILITY, &blob, &len), 0);
	assert_null(blob);
	assert_int_equal(len, 0);

	/* all: sorted by name, u16 name_len, u32 value_len, name, value */
	static const char want[] = {
		6, 0, 1, 0, 0, 0, 'u', 's', 'e', 'r', '.', 'a', '1',
		6, 0, 2, 0, 0, 0, 'u', 's', 'e', 'r', '.', 'b', '2', '2',
		6, 0, 0, 0, 0, 0, 'u', 's', 'e', 'r', '.', 'c',
	};
	assert_int_equal(ls_xattrs_read(dfd, "two", S_IFREG | 0644, LS_XATTRS_ALL, &blob, &len), 0);
	/* The file system may add its own (security.selinux, ...): find ours. */
	assert_non_null(blob);
	assert_non_null(memmem(blob, len, want, sizeof(want)));
	free(blob);

	/* Through a symlink: the link's own attributes (none), never the target's. */
	assert_int_equal(symlinkat("two", dfd, "two-link"), 0);
	assert_int_equal(ls_xattrs_read(dfd, "two-link", S_IFLNK | 0777, LS_XATTRS_ALL, &blob, &len), 0);
	assert_true(!blob || !memmem(blob, len, want, sizeof(want)));
	free(blob);
	unlinkat(dfd, "two-link", 0);
	/* Gone: -ENOENT, for the caller to treat as vanished. */
	assert_int_equal(ls_xattrs_read(dfd, "absent", S_IFREG | 0644, LS_XATTRS_ALL, &blob, &len), -ENOENT);

	/* A file capability (root only): recorded under capability and all. */
	struct vfs_cap_data cap;
	memset(&cap, 0, sizeof(cap));
	cap.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
	cap.data[0].permitted = 1u << 10;  /* CAP_NET_BIND_SERVICE */
	if (lsetxattr(p, "security.capability", &cap, XATTR_CAPS_SZ_2, 0) == 0) {
		assert_int_equal(ls_xattrs_read(dfd, "two", S_IFREG | 0644, LS_XATTRS_CAPABILITY, &blob, &len), 0);
		assert_int_equal(len, 6 + 19 + XATTR_CAPS_SZ_2);
		assert_memory_equal((char *)blob + 6, "security.capability", 19);
		assert_memory_equal((char *)blob + 6 + 19, &cap, XATTR_CAPS_SZ_2);
		free(blob);
		/* not for a directory: capabilities only mean something on files */
		assert_int_equal(ls_xattrs_read(dfd, "two", S_IFDIR | 0755, LS_XATTRS_CAPABILITY, &blob, &len), 0);
		assert_int_equal(len, 0);
		/* the scan records it in full mode */
		ls_manifest *m = scan(LS_MODE_FULL, LS_IO_SYNC, false, NULL);
		const struct ls_rec *r = rec_of(m, "two");
		assert_int_equal(r->xattr_len, 6 + 19 + XATTR_CAPS_SZ_2);
		ls_manifest_free(m);
		lremovexattr(p, "security.capability");
	} else {
		ls_skip_part(geteuid() ? "root" : "xattr", "cannot set security.capability (%s): capability checks",
			     strerror(errno));
	}
	lremovexattr(p, "user.a");
	lremovexattr(p, "user.b");
	lremovexattr(p, "user.c");
	close(dfd);
}


/* A base recorded with other settings is refused (its entries would carry
 * what this scan must not record); a full scan takes no hashes from a base
 * that has none and goes on without it. */
static void test_scan_checks_base(void **state)
{
	struct ls_walk_options o = LS_WALK_OPTIONS_INIT;
	o.mode = LS_MODE_FULL;
	o.io = LS_IO_SYNC;
	o.xattrs = LS_XATTRS_ALL;
	struct ls_error err = { 0 };
	ls_manifest *base = NULL, *m = NULL;
	assert_int_equal(ls_scan(root, &o, NULL, &base, &err), 0);
	o.xattrs = LS_XATTRS_NONE;
	assert_int_equal(ls_scan(root, &o, base, &m, &err), -EINVAL);
	assert_null(m);
	assert_non_null(strstr(err.msg, "--xattrs all"));
	o.xattrs = LS_XATTRS_ALL;
	o.one_file_system = true;
	assert_int_equal(ls_scan(root, &o, base, &m, &err), -EINVAL);
	o.one_file_system = false;
	base->mode = LS_MODE_REDO;
	assert_int_equal(ls_scan(root, &o, base, &m, &err), 0);
	assert_hash(m, "one", "one\n");
	ls_manifest_free(m);
	ls_manifest_free(base);
}

/* ---- a directory examined in ranges on several threads ----------------------- */

#define BIG_KIDS 1300  /* five ranges and a partial one */

static ls_manifest *scan_jobs(int jobs, const ls_manifest *base)
{
	struct ls_walk_options o = LS_WALK_OPTIONS_INIT;
	o.mode = LS_MODE_FULL;
	o.io = LS_IO_SYNC;
	o.xattrs = LS_XATTRS_ALL;
	o.jobs = jobs;
	struct ls_error err = { 0 };
	ls_manifest *m = NULL;
	if (ls_scan(root, &o, base, &m, &err) != 0)
		fail_msg("ls_scan: %s", err.msg);
	return m;
}

/* Same records, with their strings (each range keeps link targets and xattrs
 * in its own arena until they are merged into the directory's). */
static void assert_same_manifest(const ls_manifest *a, const ls_manifest *b)
{
	assert_int_equal(ls_manifest_count(a), ls_manifest_count(b));
	for (size_t i = 0; i < ls_manifest_count(a); i++) {
		const struct ls_rec *x = &a->recs[i], *y = &b->recs[i];
		assert_string_equal(ls_rec_path(a, x), ls_rec_path(b, y));
		assert_string_equal(ls_rec_link(a, x), ls_rec_link(b, y));
		assert_int_equal(x->mode, y->mode);
		assert_int_equal(x->size, y->size);
		assert_int_equal(x->xattr_len, y->xattr_len);
		assert_memory_equal(ls_rec_xattrs(a, x), ls_rec_xattrs(b, y), x->xattr_len);
		assert_memory_equal(x->hash, y->hash, 16);
	}
}

static void test_big_directory(void **state)
{
	make_dir("big");
	bool xattrs = true;
	char rel[64], val[64];
	for (int i = 0; i < BIG_KIDS; i++) {
		snprintf(rel, sizeof(rel), "big/k%04d", i);
		snprintf(val, sizeof(val), "value-%d", i);
		char p[256];
		snprintf(p, sizeof(p), "%s/%s", root, rel);
		switch (i % 4) {
		case 0:
			snprintf(val, sizeof(val), "target-%d-%0*d", i, i % 37, 0);
			assert_int_equal(symlink(val, p), 0);
			break;
		case 1:
			write_str(rel, val);
			if (lsetxattr(p, "user.n", val, strlen(val), 0) != 0)
				xattrs = false;
			break;
		case 2:
			make_dir(rel);
			snprintf(rel, sizeof(rel), "big/k%04d/f", i);
			write_str(rel, val);
			break;
		default:
			write_str(rel, val);
		}
	}
	if (!xattrs)
		ls_skip_part("xattr", "no user xattrs on %s: ranges without xattrs", root);
	/* Past the racy window, so that the scan with a base takes hashes and
	 * xattrs from the stat cache, into the ranges' arenas. */
	struct timespec pause = { 0, 50 * 1000 * 1000 };
	nanosleep(&pause, NULL);

	ls_manifest *one = scan_jobs(1, NULL);
	ls_manifest *four = scan_jobs(4, NULL);
	assert_same_manifest(one, four);
	for (int i = 0; i < 8; i++) {
		snprintf(rel, sizeof(rel), "big/k%04d", i);
		const struct ls_rec *r = rec_of(four, rel);
		snprintf(val, sizeof(val), "value-%d", i);
		if (i % 4 == 0) {
			snprintf(val, sizeof(val), "target-%d-%0*d", i, i % 37, 0);
			assert_string_equal(ls_rec_link(four, r), val);
		} else if (i % 4 == 1) {
			assert_hash(four, rel, val);
			if (xattrs) {
				assert_non_null(memmem(ls_rec_xattrs(four, r), r->xattr_len, val, strlen(val)));
			}
		} else if (i % 4 == 3) {
			assert_hash(four, rel, val);
		}
	}
	/* As if the base scan had started well after every stamp in the tree:
	 * every file is a stat cache hit, whose hash and xattrs come from the
	 * base.  A marker in a late range's record shows the hit. */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	four->start_sec = now.tv_sec + 100;
	ls_manifest *cached = scan_jobs(4, four);
	assert_same_manifest(four, cached);
	ls_manifest_free(cached);
	static const uint8_t marker[16] = { 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	struct ls_rec *late = &four->recs[ls_manifest_find(four, "big/k1201", 9)];
	memcpy(late->hash, marker, 16);
	cached = scan_jobs(4, four);
	assert_memory_equal(rec_of(cached, "big/k1201")->hash, marker, 16);
	if (xattrs)
		assert_non_null(memmem(ls_rec_xattrs(cached, rec_of(cached, "big/k1201")),
				       rec_of(cached, "big/k1201")->xattr_len, "value-1201", 10));
	ls_manifest_free(cached);
	ls_manifest_free(one);
	ls_manifest_free(four);
	char p[256];
	snprintf(p, sizeof(p), "%s/big", root);
	rm_rf(p);
}

static int cmp_bytes(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);  /* unsigned bytes, as memcmp */
}

/* Siblings come in name-bytes order whatever their number (the insertion
 * sort of small directories, the merge passes of large ones) and however
 * long the prefixes they share (the key's first eight bytes, then the rest):
 * names of 1 to 20 bytes from a small alphabet, high bytes included. */
static void test_sibling_order(void **state)
{
	(void)state;
	static const char alphabet[] = "ab.-0\x80\xff";
	static const size_t counts[] = { 2, 15, 16, 17, 33, 300 };
	unsigned seed = 7;
	for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		size_t n = counts[c];
		char dir[64];
		snprintf(dir, sizeof(dir), "order%zu", n);
		make_dir(dir);
		char **names = calloc(n, sizeof(*names));
		assert_non_null(names);
		for (size_t i = 0; i < n;) {
			char name[24];
			size_t len = 1 + rand_r(&seed) % 20;
			/* Shared heads: most names start with one of a few 9-byte prefixes. */
			size_t k = 0;
			if (len > 9 && rand_r(&seed) % 4) {
				memcpy(name, rand_r(&seed) % 2 ? "abababab." : "abababab-", 9);
				k = 9;
			}
			for (; k < len; k++)
				name[k] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
			name[len] = '\0';
			if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
				continue;
			char rel[96];
			snprintf(rel, sizeof(rel), "%s/%s", dir, name);
			bool drawn = false;
			for (size_t d = 0; d < i && !drawn; d++)
				drawn = strcmp(names[d], rel) == 0;
			if (drawn)
				continue;
			write_str(rel, "");
			names[i++] = strdup(rel);
		}
		qsort(names, n, sizeof(*names), cmp_bytes);
		ls_manifest *m = scan(LS_MODE_REDO, LS_IO_SYNC, false, NULL);
		ssize_t at = ls_manifest_find(m, dir, strlen(dir));
		assert_true(at >= 0);
		for (size_t i = 0; i < n; i++)
			assert_string_equal(ls_rec_path(m, &m->recs[(size_t)at + 1 + i]), names[i]);
		ls_manifest_free(m);
		char p[256];
		snprintf(p, sizeof(p), "%s/%s", root, dir);
		rm_rf(p);
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
	}
}

/* ---- the descriptor table ---------------------------------------------------- */

/* The process's descriptor table size (FDSize in /proc/self/status), or -1. */
static long fd_table_size(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	if (!f)
		return -1;
	char line[256];
	long n = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "FDSize: %ld", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* In a child, so that the parent's table stays as it is.  A fork's table
 * holds what the parent has open (from a shell, fd 255: 256 slots), so
 * sizes are checked against the one it starts with; the kernel may round a
 * table up, so only lower bounds are exact.  Exit codes name the failed
 * check (cmocka's asserts do not belong in a child); 20: cannot check. */
static int reserve_checks(void)
{
	long fds = ls_count_fds(), size = fd_table_size();
	if (fds < 0 || size < 64)
		return 10;
	/* Capped at the soft limit: uncapped, the duplicate at 8 * size - 1
	 * would be refused and the table would not grow at all. */
	struct rlimit rl, low;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 11;
	low = rl;
	low.rlim_cur = (rlim_t)(2 * size);
	if ((rl.rlim_max != RLIM_INFINITY && rl.rlim_max < (rlim_t)(4 * size)) ||
	    (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)(4 * size)))
		return 20;
	if (setrlimit(RLIMIT_NOFILE, &low) != 0)
		return 12;
	ls_fd_table_reserve((int)(8 * size));
	long capped = fd_table_size();
	if (capped < 2 * size)
		return 13;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 14;
	/* nothing to do, and nonsense (not taken for "up to the limit"),
	 * change nothing */
	ls_fd_table_reserve(0);
	ls_fd_table_reserve(-7);
	ls_fd_table_reserve((int)size);
	if (fd_table_size() != capped)
		return 15;
	ls_fd_table_reserve((int)(4 * size));
	if (fd_table_size() < 4 * size)
		return 16;
	if (ls_count_fds() != fds)
		return 17;  /* a descriptor left open */
	return 0;
}

static int child_status(int (*checks)(void))
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		_exit(checks());
	assert_true(pid > 0);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* Runs checks in a child: exit 0 passes, 20 is a counted skip (keyword,
 * what), any other code names the failed check. */
static void run_in_child(int (*checks)(void), const char *keyword, const char *what)
{
	int rc = child_status(checks);
	if (rc == 20) {
		ls_skip_part(keyword, "%s", what);
		return;
	}
	assert_int_equal(rc, 0);
}

static void test_fd_table_reserve(void **state)
{
	(void)state;
	run_in_child(reserve_checks, "rlimit", "RLIMIT_NOFILE below 4 times this process's descriptor table: its growth");
}

/* A walk grows the table for its whole budget (some hundred descriptors)
 * before its threads start, though this small tree needs a few.  Returns
 * 20 when the table is too large already to tell. */
static int walk_checks(void)
{
	long fds = ls_count_fds(), size = fd_table_size();
	if (fds < 0 || size < 64)
		return 10;
	if (size >= 512)
		return 20;
	struct ls_walk_options o = LS_WALK_OPTIONS_INIT;
	o.mode = LS_MODE_REDO;
	o.io = LS_IO_SYNC;
	o.jobs = 2;
	struct ls_error err = { 0 };
	ls_manifest *m = NULL;
	if (ls_scan(root, &o, NULL, &m, &err) != 0)
		return 12;
	ls_manifest_free(m);
	if (fd_table_size() <= size)
		return 13;
	if (ls_count_fds() != fds)
		return 14;
	return 0;
}

static void test_walk_reserves_fds(void **state)
{
	(void)state;
	run_in_child(walk_checks, "fdtable", "this process's descriptor table holds 512 or more already: a walk's growth of it");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cache_hit_fields),
		cmocka_unit_test(test_cache_racy),
		cmocka_unit_test(test_fs_granularity),
		cmocka_unit_test(test_walk_order),
		cmocka_unit_test(test_sibling_order),
		cmocka_unit_test(test_scan_reuses_hashes),
		cmocka_unit_test(test_read_xattrs),
		cmocka_unit_test(test_scan_checks_base),
		cmocka_unit_test(test_big_directory),
		cmocka_unit_test(test_fd_table_reserve),
		cmocka_unit_test(test_walk_reserves_fds),
	};
	return cmocka_run_group_tests(tests, setup_tree, teardown_tree);
}
