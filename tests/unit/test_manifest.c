/* Unit tests for the binary manifest (snapshot/manifest.c): round trip,
 * corruption and truncation detection, other format versions, walk order,
 * path normalisation, look-ups, the base-settings check and compare's
 * source-date-epoch clamp. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create, memmem */
#endif
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>
#include <xxhash.h>

#include "manifest.h"
#include "path.h"

/* Offsets of format 2 (manifest.h): the fixed 32-byte header, the option
 * block after it, and the 24-byte trailer, counted from the end. */
#define OFF_VERSION    8
#define OFF_HEADER_LEN 12
#define OFF_MODE       16
#define OFF_XATTRS     17
#define OFF_FLAGS      18
#define OFF_NSEC       20
#define OFF_SEC        24
#define OFF_N_EXCL     32
#define OFF_EXCL_LEN   36
#define OFF_N_PAT      40
#define OFF_PAT_LEN    44
#define OFF_OPTIONS    48
#define TRAILER_LEN    24
#define END_N_ENTRIES  24
#define END_POOL_LEN   16

/* ---- helpers -------------------------------------------------------------- */

struct buf {
	unsigned char *p;
	size_t n;
};

static int new_memfd(void)
{
	int fd = memfd_create("manifest-test", MFD_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static struct buf read_fd_all(int fd)
{
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	struct buf b = { malloc((size_t)st.st_size + 1), (size_t)st.st_size };
	assert_non_null(b.p);
	assert_int_equal(pread(fd, b.p, b.n, 0), (ssize_t)b.n);
	return b;
}

static struct buf serialise(const ls_manifest *m)
{
	struct ls_error err = { 0 };
	int fd = new_memfd();
	assert_int_equal(ls_manifest_write_fd(m, fd, &err), 0);
	struct buf b = read_fd_all(fd);
	close(fd);
	return b;
}

/* An exact-size heap copy of the first n bytes, so that ASan catches any read
 * past the end. */
static unsigned char *dup_prefix(const struct buf *b, size_t n)
{
	unsigned char *p = malloc(n ? n : 1);
	assert_non_null(p);
	memcpy(p, b->p, n);
	return p;
}

static void put_u32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put_u64(unsigned char *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint32_t get_u32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

/* Recomputes the trailing XXH3-64 after a deliberate patch. */
static void fix_checksum(unsigned char *p, size_t n)
{
	uint64_t sum = XXH3_64bits(p, n - 8);
	memcpy(p + n - 8, &sum, 8);
}

/* Parses p (n bytes) and expects a refusal whose message contains `want`
 * (when not NULL). */
static void expect_refused(const unsigned char *p, size_t n, const char *want)
{
	struct ls_error err = { 0 };
	ls_manifest *m = (ls_manifest *)(uintptr_t)1;
	int rc = ls_manifest_parse(p, n, "mem", &m, &err);
	if (rc >= 0)
		fail_msg("a corrupt manifest (%zu bytes) was accepted", n);
	assert_null(m);
	assert_true(err.msg[0] != '\0');
	assert_true(err.code > 0);
	assert_int_equal(rc, -err.code);
	if (want && !strstr(err.msg, want))
		fail_msg("message '%s' lacks '%s'", err.msg, want);
}

/* A patched copy of b: `patch` edits it, the checksum is fixed, and the
 * parser must refuse it mentioning `want`. */
static void refuse_patched(const struct buf *b, void (*patch)(unsigned char *, size_t), const char *want)
{
	unsigned char *p = dup_prefix(b, b->n);
	patch(p, b->n);
	fix_checksum(p, b->n);
	expect_refused(p, b->n, want);
	free(p);
}

static char tmpdir[64];

static int setup_tmpdir(void **state)
{
	strcpy(tmpdir, "/tmp/test_manifest.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int teardown_tmpdir(void **state)
{
	DIR *d = opendir(tmpdir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			char p[sizeof(tmpdir) + sizeof(e->d_name) + 1];
			snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(tmpdir);
	return 0;
}

static void write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

/* ---- the sample manifest -------------------------------------------------- */

struct sample {
	const char *path;
	uint32_t mode;          /* with LS_REC_* flags */
	const char *link;
	const void *xattrs;
	size_t xattr_len;
	uint64_t size;
	int64_t mtime_ns;
	uint64_t rdev;
	uint32_t uid, nlink;
};

/* Xattr blobs in the documented encoding: u16 name_len, u32 value_len, name,
 * value; sorted by name. */
#define XA(nl, vl) (char)(nl), 0, (char)(vl), 0, 0, 0
static const char xattrs_dir[] = {
	XA(6, 1), 'u', 's', 'e', 'r', '.', 'a', '1',
	XA(6, 0), 'u', 's', 'e', 'r', '.', 'b',
	XA(7, 3), 'u', 's', 'e', 'r', '.', 'b', 'b', 'x', '\0', 'y',
};
static const char xattrs_cap[] = {
	XA(19, 8), 's', 'e', 'c', 'u', 'r', 'i', 't', 'y', '.', 'c', 'a', 'p', 'a', 'b', 'i', 'l', 'i', 't', 'y',
	1, 0, 0, 2, 0, 0x20, 0, 0,
};

#define DIR_(p) { p, S_IFDIR | 0755, NULL, NULL, 0, 4096, 1600000000123456789, 0, 0, 2 }
static const struct sample samples[] = {
	DIR_("bin"),
	{ "bin/sh", S_IFLNK | 0777, "dash", NULL, 0, 4, 1600000000000000000, 0, 0, 1 },
	{ "bin/sh-loop", S_IFLNK | 0777, "../bin/sh-loop", NULL, 0, 14, 1, 0, 0, 1 },
	DIR_("dev"),
	{ "dev/fifo", S_IFIFO | 0600, NULL, NULL, 0, 0, 0, 0, 0, 1 },
	{ "dev/loop0", S_IFBLK | 0660, NULL, NULL, 0, 0, 5, 0, 6, 1 },
	{ "dev/null", S_IFCHR | 0666, NULL, NULL, 0, 0, 7, 0, 0, 1 },
	{ "dev/sock", S_IFSOCK | 0755, NULL, NULL, 0, 0, 8, 0, 0, 1 },
	{ "etc", S_IFDIR | 01777, NULL, xattrs_dir, sizeof(xattrs_dir), 4096, -1500000000, 0, 0, 3 },
	DIR_("etc/a"),
	{ "etc/a/deep", S_IFREG | 04755 | LS_REC_HASHED, NULL, xattrs_cap, sizeof(xattrs_cap), 1ull << 40,
	  -1, 0, 4294967294u, 1 },
	{ "etc/a b", S_IFREG | 0644 | LS_REC_HASHED, NULL, NULL, 0, 3, 9, 0, 0, 1 },
	{ "etc/a-b", S_IFREG | 0644 | LS_REC_HASHED, NULL, NULL, 0, 0, 10, 0, 0, 2 },
	{ "etc/new\nline", S_IFREG | 0644 | LS_REC_HASHED, NULL, NULL, 0, 1, 11, 0, 0, 1 },
	{ "etc/\xc3\xa9", S_IFREG | 0644 | LS_REC_HASHED, NULL, NULL, 0, 1, 12, 0, 0, 1 },
	{ "etc/\xff\xfe", S_IFREG | 0644 | LS_REC_HASHED, NULL, NULL, 0, 1, 13, 0, 0, 2 },
	{ "mnt", S_IFDIR | 0755 | LS_REC_MOUNTPOINT, NULL, NULL, 0, 80, 14, 0, 0, 3 },
	DIR_("usr"),
	DIR_("usr/lib"),
	DIR_("usr/lib/x"),
	{ "usr/lib/x/y", S_IFLNK | 0777, "/", NULL, 0, 1, 15, 0, 0, 1 },
	DIR_("var"),
};
#define N_SAMPLES (sizeof(samples) / sizeof(samples[0]))

static void sample_rec(size_t i, struct ls_rec *r)
{
	const struct sample *s = &samples[i];
	memset(r, 0, sizeof(*r));
	r->size = s->size;
	r->mtime_ns = s->mtime_ns;
	r->ctime_ns = s->mtime_ns + 1000000007;
	r->dev = makedev(254, 1) + i;
	r->ino = 1000000000000ull + i;
	r->rdev = S_ISCHR(s->mode) ? makedev(1, 3) : S_ISBLK(s->mode) ? makedev(7, 0) : 0;
	r->mode = s->mode;
	r->uid = s->uid;
	r->gid = s->uid ? s->uid - 1 : (uint32_t)i;
	r->nlink = s->nlink;
	if (s->mode & LS_REC_HASHED)
		for (int k = 0; k < 16; k++)
			r->hash[k] = (uint8_t)(i * 16 + (size_t)k + 1);
	/* aux fields are the library's to fill: garbage must not matter */
	r->aux_off = 0xdeadbeef;
	r->path_len = 7;
	r->xattr_len = 11;
}

static const char *const sample_excludes[] = { "/tmp//x/", "a/b", "./c", "a/b", "a-b", "a/b/c" };
/* normalised, deduplicated, in walk order */
static const char *const sample_excludes_norm[] = { "a/b", "a/b/c", "a-b", "c", "tmp/x" };
/* kept as given: not sorted, duplicates kept (the last match wins) */
static const char *const sample_patterns[] = { "*.o", "!keep.o", "*.o", "build/", "\xff[a-z]" };
#define N_PATTERNS (sizeof(sample_patterns) / sizeof(sample_patterns[0]))

static ls_manifest *build_sample(void)
{
	struct ls_error err = { 0 };
	ls_manifest *m = NULL;
	assert_int_equal(ls_manifest_create(&m, LS_MODE_FULL, LS_XATTRS_ALL, true, sample_excludes,
					    sizeof(sample_excludes) / sizeof(sample_excludes[0]), &err), 0);
	assert_non_null(m);
	m->start_sec = 1700000000;
	m->start_nsec = 123456789;
	assert_int_equal(ls_manifest_set_patterns(m, sample_patterns, N_PATTERNS, &err), 0);
	for (size_t i = 0; i < N_SAMPLES; i++) {
		const struct sample *s = &samples[i];
		struct ls_rec r;
		sample_rec(i, &r);
		assert_int_equal(ls_manifest_append(m, &r, s->path, strlen(s->path), s->link,
						    s->link ? strlen(s->link) : 0, s->xattrs, s->xattr_len, &err), 0);
	}
	return m;
}

/* Checks m against the sample, field by field. */
static void check_sample(const ls_manifest *m)
{
	assert_int_equal(ls_manifest_mode(m), LS_MODE_FULL);
	assert_int_equal(m->xattrs, LS_XATTRS_ALL);
	assert_true(m->one_file_system);
	assert_int_equal(m->start_sec, 1700000000);
	assert_int_equal(m->start_nsec, 123456789);
	size_t ne = sizeof(sample_excludes_norm) / sizeof(sample_excludes_norm[0]);
	assert_int_equal(m->n_excludes, ne);
	for (size_t i = 0; i < ne; i++)
		assert_string_equal(ls_manifest_exclude(m, i), sample_excludes_norm[i]);
	assert_int_equal(m->n_patterns, N_PATTERNS);
	for (size_t i = 0; i < N_PATTERNS; i++)
		assert_string_equal(ls_manifest_pattern(m, i), sample_patterns[i]);
	assert_int_equal(ls_manifest_count(m), N_SAMPLES);
	for (size_t i = 0; i < N_SAMPLES; i++) {
		const struct sample *s = &samples[i];
		const struct ls_rec *r = &m->recs[i];
		struct ls_rec want;
		sample_rec(i, &want);
		assert_int_equal(r->size, want.size);
		assert_int_equal(r->mtime_ns, want.mtime_ns);
		assert_int_equal(r->ctime_ns, want.ctime_ns);
		assert_int_equal(r->dev, want.dev);
		assert_int_equal(r->ino, want.ino);
		assert_int_equal(r->rdev, want.rdev);
		assert_int_equal(r->mode, want.mode);
		assert_int_equal(r->uid, want.uid);
		assert_int_equal(r->gid, want.gid);
		assert_int_equal(r->nlink, want.nlink);
		assert_memory_equal(r->hash, want.hash, 16);
		assert_int_equal(r->path_len, strlen(s->path));
		assert_memory_equal(ls_rec_path(m, r), s->path, r->path_len);
		assert_int_equal(ls_rec_path(m, r)[r->path_len], '\0');
		size_t ll = s->link ? strlen(s->link) : 0;
		assert_int_equal(ls_rec_link_len(m, r), ll);
		if (ll)
			assert_memory_equal(ls_rec_link(m, r), s->link, ll);
		assert_int_equal(ls_rec_link(m, r)[ll], '\0');
		assert_int_equal(r->xattr_len, s->xattr_len);
		if (s->xattr_len)
			assert_memory_equal(ls_rec_xattrs(m, r), s->xattrs, s->xattr_len);
	}
}

static struct buf sample_bytes(void)
{
	ls_manifest *m = build_sample();
	struct buf b = serialise(m);
	ls_manifest_free(m);
	return b;
}

/* ---- round trip ----------------------------------------------------------- */

static void test_round_trip_memory(void **state)
{
	ls_manifest *m = build_sample();
	check_sample(m);
	struct buf b = serialise(m);
	/* header + options + records + pool + trailer, 8-aligned records */
	assert_memory_equal(b.p, LS_MANIFEST_MAGIC, 8);
	assert_int_equal(get_u32(b.p + OFF_VERSION), 2);
	assert_int_equal(LS_MANIFEST_VERSION, 2);
	uint32_t hl = get_u32(b.p + OFF_HEADER_LEN);
	assert_int_equal(hl % 8, 0);
	assert_int_equal(b.n, hl + N_SAMPLES * sizeof(struct ls_rec) + m->pool_len + TRAILER_LEN);
	/* explicit codes, not the enums' values */
	assert_int_equal(b.p[OFF_MODE], 'f');
	assert_int_equal(b.p[OFF_XATTRS], 'a');
	assert_int_equal(get_u32(b.p + OFF_FLAGS) & 0xffff, 1);
	assert_int_equal(get_u32(b.p + OFF_NSEC), 123456789);
	assert_int_equal(get_u64(b.p + OFF_SEC), 1700000000);
	/* the option block: excludes in walk order, then patterns as given */
	assert_int_equal(get_u32(b.p + OFF_N_EXCL), 5);
	assert_int_equal(get_u32(b.p + OFF_N_PAT), N_PATTERNS);
	uint32_t el = get_u32(b.p + OFF_EXCL_LEN), pl = get_u32(b.p + OFF_PAT_LEN);
	assert_memory_equal(b.p + OFF_OPTIONS, "a/b\0a/b/c\0a-b\0c\0tmp/x\0", el);
	assert_memory_equal(b.p + OFF_OPTIONS + el, "*.o\0!keep.o\0*.o\0build/\0\xff[a-z]\0", pl);
	assert_int_equal(hl, (OFF_OPTIONS + el + pl + 7) / 8 * 8);
	/* the trailer: counts, then the XXH3-64 of everything before it */
	assert_int_equal(get_u64(b.p + b.n - END_N_ENTRIES), N_SAMPLES);
	assert_int_equal(get_u64(b.p + b.n - END_POOL_LEN), m->pool_len);
	assert_int_equal(get_u64(b.p + b.n - 8), XXH3_64bits(b.p, b.n - 8));

	struct ls_error err = { 0 };
	ls_manifest *p = NULL;
	assert_int_equal(ls_manifest_parse(b.p, b.n, "mem", &p, &err), 0);
	check_sample(p);
	/* Written again, the parsed manifest gives the same bytes. */
	struct buf b2 = serialise(p);
	assert_int_equal(b2.n, b.n);
	assert_memory_equal(b2.p, b.p, b.n);
	/* A parsed manifest is read-only. */
	struct ls_rec r;
	sample_rec(0, &r);
	assert_int_equal(ls_manifest_append(p, &r, "zzz", 3, NULL, 0, NULL, 0, &err), -EINVAL);
	ls_manifest_free(p);
	ls_manifest_free(m);
	free(b.p);
	free(b2.p);
}

static void test_round_trip_file(void **state)
{
	ls_manifest *m = build_sample();
	char path[128], lock[140];
	snprintf(path, sizeof(path), "%s/m", tmpdir);
	snprintf(lock, sizeof(lock), "%s/m.lock", tmpdir);
	struct ls_error err = { 0 };
	assert_int_equal(ls_manifest_save(m, path, false, &err), 0);
	assert_int_equal(ls_manifest_save(m, path, true, &err), 0);  /* replaces it */
	/* Nothing but the manifest is left behind: no lock, no temporary. */
	DIR *d = opendir(tmpdir);
	assert_non_null(d);
	struct dirent *e;
	int n = 0;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			assert_string_equal(e->d_name, "m");
			n++;
		}
	closedir(d);
	assert_int_equal(n, 1);

	ls_manifest *l = NULL;
	assert_int_equal(ls_manifest_load(path, &l, &err), 0);
	check_sample(l);
	ls_manifest_free(l);

	/* A lock held by another writer (an OFD lock on its own open file):
	 * refused at once, the lock and the manifest kept.  Whether a stale lock
	 * file alone blocks is output.c's business, not tested here. */
	int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	assert_true(lfd >= 0);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	assert_int_equal(fcntl(lfd, F_OFD_SETLK, &fl), 0);
	assert_true(ls_manifest_save(m, path, false, &err) < 0);
	assert_non_null(strstr(err.msg, "lock"));
	assert_int_equal(access(lock, F_OK), 0);
	assert_int_equal(ls_manifest_load(path, &l, &err), 0);
	check_sample(l);
	ls_manifest_free(l);
	close(lfd);
	unlink(lock);
	ls_manifest_free(m);
}

static void test_empty_manifest(void **state)
{
	struct ls_error err = { 0 };
	ls_manifest *m = NULL;
	assert_int_equal(ls_manifest_create(&m, LS_MODE_TIME, LS_XATTRS_NONE, false, NULL, 0, &err), 0);
	struct buf b = serialise(m);
	assert_int_equal(b.n, OFF_OPTIONS + TRAILER_LEN);
	assert_int_equal(b.p[OFF_MODE], 't');
	assert_int_equal(b.p[OFF_XATTRS], 'n');
	ls_manifest *p = NULL;
	assert_int_equal(ls_manifest_parse(b.p, b.n, "mem", &p, &err), 0);
	assert_int_equal(ls_manifest_count(p), 0);
	assert_int_equal(ls_manifest_mode(p), LS_MODE_TIME);
	assert_int_equal(p->xattrs, LS_XATTRS_NONE);
	assert_false(p->one_file_system);
	assert_int_equal(p->n_excludes, 0);
	assert_int_equal(p->n_patterns, 0);
	assert_int_equal(ls_manifest_lower_bound(p, "a", 1), 0);
	assert_int_equal(ls_manifest_find(p, "a", 1), -1);
	for (size_t n = 0; n < b.n; n++) {
		unsigned char *q = dup_prefix(&b, n);
		expect_refused(q, n, NULL);
		free(q);
	}
	ls_manifest_free(p);
	ls_manifest_free(m);
	free(b.p);
}

static void test_append_from(void **state)
{
	ls_manifest *src = build_sample();
	struct ls_error err = { 0 };
	ls_manifest *dst = NULL;
	assert_int_equal(ls_manifest_create(&dst, LS_MODE_FULL, LS_XATTRS_ALL, true, sample_excludes,
					    sizeof(sample_excludes) / sizeof(sample_excludes[0]), &err), 0);
	dst->start_sec = src->start_sec;
	dst->start_nsec = src->start_nsec;
	assert_int_equal(ls_manifest_set_patterns(dst, sample_patterns, N_PATTERNS, &err), 0);
	for (size_t i = 0; i < N_SAMPLES; i++)
		assert_int_equal(ls_manifest_append_from(dst, src, i, &err), 0);
	check_sample(dst);
	ls_manifest_free(dst);
	ls_manifest_free(src);
}

/* ---- corruption ------------------------------------------------------------ */

static void test_truncation_every_offset(void **state)
{
	struct buf b = sample_bytes();
	for (size_t n = 0; n < b.n; n++) {
		unsigned char *p = dup_prefix(&b, n);
		expect_refused(p, n, NULL);
		free(p);
	}
	/* The same through a file, shortened one byte at a time. */
	char path[128];
	snprintf(path, sizeof(path), "%s/trunc", tmpdir);
	write_file(path, b.p, b.n);
	for (size_t n = b.n; n-- > 0;) {
		assert_int_equal(truncate(path, (off_t)n), 0);
		struct ls_error err = { 0 };
		ls_manifest *m = (ls_manifest *)(uintptr_t)1;
		int rc = ls_manifest_load(path, &m, &err);
		if (rc >= 0)
			fail_msg("a manifest truncated to %zu of %zu bytes was loaded", n, b.n);
		assert_null(m);
		assert_non_null(strstr(err.msg, path));
		/* a shortened manifest says so (or, under 8 bytes, that it is none) */
		if (n >= 8 && !strstr(err.msg, "truncated"))
			fail_msg("at %zu: '%s' does not say truncated", n, err.msg);
	}
	unlink(path);
	free(b.p);
}

static void test_bit_flip_every_byte(void **state)
{
	struct buf b = sample_bytes();
	unsigned char *p = dup_prefix(&b, b.n);
	for (size_t i = 0; i < b.n; i++) {
		for (int bit = 0; bit < 8; bit++) {
			p[i] ^= (unsigned char)(1u << bit);
			expect_refused(p, b.n, NULL);
			p[i] ^= (unsigned char)(1u << bit);
		}
	}
	assert_memory_equal(p, b.p, b.n);
	free(p);

	/* And through ls_manifest_load, one bit per byte. */
	char path[128];
	snprintf(path, sizeof(path), "%s/flip", tmpdir);
	for (size_t i = 0; i < b.n; i++) {
		b.p[i] ^= (unsigned char)(1u << (i % 8));
		write_file(path, b.p, b.n);
		b.p[i] ^= (unsigned char)(1u << (i % 8));
		struct ls_error err = { 0 };
		ls_manifest *m = NULL;
		if (ls_manifest_load(path, &m, &err) >= 0)
			fail_msg("a manifest with byte %zu flipped was loaded", i);
		assert_true(err.msg[0] != '\0');
	}
	unlink(path);
	free(b.p);
}

static void test_not_a_manifest(void **state)
{
	static const char text[] = "#mtree\n. type=dir\n./a type=file size=0\n"
				   "padding padding padding padding padding padding padding\n";
	expect_refused((const unsigned char *)text, sizeof(text) - 1, "not a layersnap manifest");
	unsigned char zeros[4096] = { 0 };
	expect_refused(zeros, sizeof(zeros), "not a layersnap manifest");
	expect_refused(zeros, 0, NULL);

	char path[128];
	struct ls_error err = { 0 };
	ls_manifest *m = NULL;
	snprintf(path, sizeof(path), "%s/empty", tmpdir);
	write_file(path, "", 0);
	assert_true(ls_manifest_load(path, &m, &err) < 0);
	assert_non_null(strstr(err.msg, "empty"));
	snprintf(path, sizeof(path), "%s/text", tmpdir);
	write_file(path, text, sizeof(text) - 1);
	assert_true(ls_manifest_load(path, &m, &err) < 0);
	assert_non_null(strstr(err.msg, "not a layersnap manifest"));
	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	assert_int_equal(ls_manifest_load(path, &m, &err), -ENOENT);
	assert_non_null(strstr(err.msg, path));
	assert_true(ls_manifest_load(tmpdir, &m, &err) < 0);  /* a directory */
	assert_null(m);
}

static void patch_version1(unsigned char *p, size_t n) { put_u32(p + OFF_VERSION, 1); }
static void patch_version3(unsigned char *p, size_t n) { put_u32(p + OFF_VERSION, 3); }
static void patch_version0(unsigned char *p, size_t n) { put_u32(p + OFF_VERSION, 0); }
static void patch_version_big(unsigned char *p, size_t n) { put_u32(p + OFF_VERSION, 0x01000001); }

/* An empty format-1 manifest as layersnap 0.1 wrote it: a 64-byte header
 * (version, header_len, mode and xattrs as enum values, flags, start time,
 * counts) and a trailing XXH3-64. */
static struct buf v1_manifest(void)
{
	struct buf b = { calloc(1, 72), 72 };
	assert_non_null(b.p);
	memcpy(b.p, LS_MANIFEST_MAGIC, 8);
	put_u32(b.p + 8, 1);
	put_u32(b.p + 12, 64);
	b.p[16] = 2;  /* LS_MODE_FULL */
	put_u64(b.p + 24, 1700000000);
	fix_checksum(b.p, b.n);
	return b;
}

static void test_other_version(void **state)
{
	struct buf b = sample_bytes();
	refuse_patched(&b, patch_version1, "format 1 is from an older layersnap: re-scan the tree");
	refuse_patched(&b, patch_version0, "format 0 is from an older layersnap");
	refuse_patched(&b, patch_version3, "format 3 is newer than this layersnap supports");
	refuse_patched(&b, patch_version_big, "format 16777217 is newer");
	free(b.p);

	/* A real format-1 file, whole or cut after its version: one line that
	 * says what to do. */
	struct buf v1 = v1_manifest();
	for (size_t n = 12; n <= v1.n; n++) {
		struct ls_error err = { 0 };
		ls_manifest *m = (ls_manifest *)(uintptr_t)1;
		assert_int_equal(ls_manifest_parse(v1.p, n, "old.m", &m, &err), -EINVAL);
		assert_null(m);
		assert_string_equal(err.msg, "old.m: manifest format 1 is from an older layersnap: re-scan the tree");
	}
	char path[128];
	snprintf(path, sizeof(path), "%s/v1", tmpdir);
	write_file(path, v1.p, v1.n);
	struct ls_error err = { 0 };
	ls_manifest *m = NULL;
	assert_int_equal(ls_manifest_load(path, &m, &err), -EINVAL);
	assert_null(m);
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, "re-scan"));
	assert_null(strchr(err.msg, '\n'));
	unlink(path);
	free(v1.p);
}

/* Structural corruption with a valid checksum. */
static size_t recs_off(const unsigned char *p)
{
	return get_u32(p + OFF_HEADER_LEN);
}

static struct ls_rec *rec_at(unsigned char *p, size_t i)
{
	return (struct ls_rec *)(void *)(p + recs_off(p) + i * sizeof(struct ls_rec));
}

static size_t sample_index(const char *path)
{
	for (size_t i = 0; i < N_SAMPLES; i++)
		if (strcmp(samples[i].path, path) == 0)
			return i;
	fail_msg("no sample %s", path);
	return 0;
}

static void swap_recs(unsigned char *p, size_t a, size_t b)
{
	struct ls_rec t = *rec_at(p, a);
	*rec_at(p, a) = *rec_at(p, b);
	*rec_at(p, b) = t;
}

static void patch_swap_files(unsigned char *p, size_t n)
{
	swap_recs(p, sample_index("etc/a b"), sample_index("etc/a-b"));
}
static void patch_swap_dir_child(unsigned char *p, size_t n)
{
	swap_recs(p, sample_index("usr/lib"), sample_index("usr/lib/x"));
}
static void patch_duplicate(unsigned char *p, size_t n)
{
	size_t i = sample_index("etc/a-b");
	*rec_at(p, i) = *rec_at(p, i - 1);
}
static void patch_parent_not_dir(unsigned char *p, size_t n)
{
	/* "etc/a" becomes a (hashed) file: "etc/a/deep" then has no parent */
	struct ls_rec *r = rec_at(p, sample_index("etc/a"));
	r->mode = (r->mode & ~(uint32_t)S_IFMT) | S_IFREG | LS_REC_HASHED;
}
static void patch_bad_type(unsigned char *p, size_t n)
{
	rec_at(p, 1)->mode &= ~(uint32_t)S_IFMT;
}
static void patch_unknown_flag(unsigned char *p, size_t n)
{
	rec_at(p, 1)->mode |= 1u << 30;
}
static void patch_aux_off(unsigned char *p, size_t n)
{
	rec_at(p, N_SAMPLES - 1)->aux_off = (uint64_t)1 << 40;
}
static void patch_path_len(unsigned char *p, size_t n)
{
	rec_at(p, N_SAMPLES - 1)->path_len = 1000;
}
static void patch_link_unterminated(unsigned char *p, size_t n)
{
	/* the last byte of the pool ends the last entry's (empty) target */
	assert_int_equal(p[n - TRAILER_LEN - 1], '\0');
	p[n - TRAILER_LEN - 1] = 'x';
}
static void patch_xattr_len(unsigned char *p, size_t n)
{
	rec_at(p, N_SAMPLES - 1)->xattr_len = UINT32_MAX;
}
static void patch_path_shorter(unsigned char *p, size_t n)
{
	/* "bin" read as "bi": the NUL after it is then a path byte */
	rec_at(p, 0)->path_len = 2;
}
/* the C enum's value of full mode is not a code */
static void patch_mode(unsigned char *p, size_t n) { p[OFF_MODE] = 2; }
static void patch_mode_letter(unsigned char *p, size_t n) { p[OFF_MODE] = 'F'; }
static void patch_xattrs_policy(unsigned char *p, size_t n) { p[OFF_XATTRS] = 1; }
static void patch_flags(unsigned char *p, size_t n) { p[OFF_FLAGS] |= 2; }
static void patch_flags_high(unsigned char *p, size_t n) { p[OFF_FLAGS + 1] |= 0x80; }
static void patch_nsec(unsigned char *p, size_t n) { put_u32(p + OFF_NSEC, 1000000000); }
static void patch_header_len(unsigned char *p, size_t n) { put_u32(p + OFF_HEADER_LEN, get_u32(p + OFF_HEADER_LEN) + 8); }
static void patch_header_len_small(unsigned char *p, size_t n) { put_u32(p + OFF_HEADER_LEN, 8); }
static void patch_header_len_odd(unsigned char *p, size_t n) { put_u32(p + OFF_HEADER_LEN, get_u32(p + OFF_HEADER_LEN) - 4); }
static void patch_n_entries(unsigned char *p, size_t n) { put_u64(p + n - END_N_ENTRIES, (uint64_t)-1); }
static void patch_n_entries_wrap(unsigned char *p, size_t n)
{
	/* n_entries * 96 wraps around to a small number */
	put_u64(p + n - END_N_ENTRIES, get_u64(p + n - END_N_ENTRIES) + ((uint64_t)1 << 59));
}
static void patch_pool_len(unsigned char *p, size_t n) { put_u64(p + n - END_POOL_LEN, get_u64(p + n - END_POOL_LEN) + 1); }
static void patch_trailer_shift(unsigned char *p, size_t n)
{
	/* sizes that add up, but the first pool bytes are read as a record */
	put_u64(p + n - END_N_ENTRIES, get_u64(p + n - END_N_ENTRIES) + 1);
	put_u64(p + n - END_POOL_LEN, get_u64(p + n - END_POOL_LEN) - sizeof(struct ls_rec));
}
static void patch_n_excludes(unsigned char *p, size_t n) { put_u32(p + OFF_N_EXCL, get_u32(p + OFF_N_EXCL) + 1); }
static void patch_n_patterns(unsigned char *p, size_t n) { put_u32(p + OFF_N_PAT, get_u32(p + OFF_N_PAT) - 1); }
static void patch_options_nul(unsigned char *p, size_t n)
{
	/* the excludes' last NUL becomes a byte: a name without its end */
	p[OFF_OPTIONS + get_u32(p + OFF_EXCL_LEN) - 1] = 'x';
}
static void patch_patterns_nul(unsigned char *p, size_t n)
{
	p[OFF_OPTIONS + get_u32(p + OFF_EXCL_LEN) + get_u32(p + OFF_PAT_LEN) - 1] = 'x';
}
static void patch_empty_exclude(unsigned char *p, size_t n)
{
	/* "a/b" -> "\0/b": an empty exclude and one more string */
	p[OFF_OPTIONS] = '\0';
	put_u32(p + OFF_N_EXCL, get_u32(p + OFF_N_EXCL) + 1);
}
static void patch_lists_shift(unsigned char *p, size_t n)
{
	/* the block's total stays, the boundary moves */
	put_u32(p + OFF_EXCL_LEN, get_u32(p + OFF_EXCL_LEN) + 1);
	put_u32(p + OFF_PAT_LEN, get_u32(p + OFF_PAT_LEN) - 1);
}
static void patch_options_padding(unsigned char *p, size_t n)
{
	size_t end = OFF_OPTIONS + get_u32(p + OFF_EXCL_LEN) + get_u32(p + OFF_PAT_LEN);
	assert_true(end < get_u32(p + OFF_HEADER_LEN));  /* the sample has padding */
	p[end] = 1;
}

static void test_corrupt_structure(void **state)
{
	struct buf b = sample_bytes();
	refuse_patched(&b, patch_swap_files, "out of order");
	refuse_patched(&b, patch_swap_dir_child, NULL);
	refuse_patched(&b, patch_duplicate, "out of order");
	refuse_patched(&b, patch_parent_not_dir, "no parent");
	refuse_patched(&b, patch_bad_type, "corrupt");
	refuse_patched(&b, patch_unknown_flag, "corrupt");
	refuse_patched(&b, patch_aux_off, "out of bounds");
	refuse_patched(&b, patch_path_len, "out of bounds");
	refuse_patched(&b, patch_link_unterminated, "out of bounds");
	refuse_patched(&b, patch_xattr_len, "out of bounds");
	refuse_patched(&b, patch_path_shorter, "corrupt");
	refuse_patched(&b, patch_mode, "unknown snapshot mode code 2");
	refuse_patched(&b, patch_mode_letter, "unknown snapshot mode code 70");
	refuse_patched(&b, patch_xattrs_policy, "unknown xattrs policy code 1");
	refuse_patched(&b, patch_flags, "header");
	refuse_patched(&b, patch_flags_high, "header");
	refuse_patched(&b, patch_nsec, "header");
	refuse_patched(&b, patch_header_len, "trailer");
	refuse_patched(&b, patch_header_len_small, "trailer");
	refuse_patched(&b, patch_header_len_odd, "trailer");
	refuse_patched(&b, patch_n_entries, "trailer");
	refuse_patched(&b, patch_n_entries_wrap, "trailer");
	refuse_patched(&b, patch_pool_len, "trailer");
	refuse_patched(&b, patch_trailer_shift, "corrupt");
	refuse_patched(&b, patch_n_excludes, "options");
	refuse_patched(&b, patch_n_patterns, "options");
	refuse_patched(&b, patch_options_nul, "options");
	refuse_patched(&b, patch_patterns_nul, "options");
	refuse_patched(&b, patch_empty_exclude, "options");
	refuse_patched(&b, patch_lists_shift, "options");
	refuse_patched(&b, patch_options_padding, "padding");

	/* Trailing bytes after a valid manifest. */
	unsigned char *p = malloc(b.n + 8);
	assert_non_null(p);
	memcpy(p, b.p, b.n);
	memcpy(p + b.n, p + b.n - 8, 8);
	fix_checksum(p, b.n + 8);
	expect_refused(p, b.n + 8, NULL);
	/* The trailer alone cut off, and one that lost a pool byte but was
	 * written as if it had not: both refused. */
	expect_refused(p, b.n - TRAILER_LEN, "truncated");
	memcpy(p, b.p, b.n);
	memmove(p + b.n - TRAILER_LEN - 1, p + b.n - TRAILER_LEN, TRAILER_LEN);
	put_u64(p + b.n - 1 - END_POOL_LEN, get_u64(p + b.n - 1 - END_POOL_LEN) - 1);
	fix_checksum(p, b.n - 1);
	expect_refused(p, b.n - 1, "out of bounds");
	free(p);
	free(b.p);
}

/* Manifests built out of order or with bad entries: the writer writes what
 * it is given (with a correct checksum); the reader must refuse it. */
/* A redo manifest in memory of these paths, in the order given, with these
 * modes (NULL: regular files); a symlink's target is "t", and the last entry
 * holds xattrs. */
static ls_manifest *build_redo(const char *const *paths, const uint32_t *modes, size_t n, const void *xattrs,
			       size_t xattr_len)
{
	struct ls_error err = { 0 };
	ls_manifest *m = NULL;
	assert_int_equal(ls_manifest_create(&m, LS_MODE_REDO, LS_XATTRS_ALL, false, NULL, 0, &err), 0);
	for (size_t i = 0; i < n; i++) {
		struct ls_rec r;
		memset(&r, 0, sizeof(r));
		r.mode = modes ? modes[i] : S_IFREG | 0644;
		bool last = i + 1 == n;
		assert_int_equal(ls_manifest_append(m, &r, paths[i], strlen(paths[i]),
						    S_ISLNK(r.mode) ? "t" : NULL, S_ISLNK(r.mode) ? 1 : 0,
						    last ? xattrs : NULL, last ? xattr_len : 0, &err), 0);
	}
	return m;
}

static void refuse_built(const char *const *paths, const uint32_t *modes, size_t n, const char *want,
			 const void *xattrs, size_t xattr_len)
{
	ls_manifest *m = build_redo(paths, modes, n, xattrs, xattr_len);
	struct buf b = serialise(m);
	expect_refused(b.p, b.n, want);
	free(b.p);
	ls_manifest_free(m);
}

/* A manifest holding a file at path (len bytes, a NUL or a stray '/' among
 * them), below directory dir (or at the top), and then the file after when
 * not NULL: the reader must refuse it. */
static void refuse_nul_path(const char *dir, const char *path, size_t len, const char *after)
{
	struct ls_error err = { 0 };
	ls_manifest *m = NULL;
	assert_int_equal(ls_manifest_create(&m, LS_MODE_REDO, LS_XATTRS_ALL, false, NULL, 0, &err), 0);
	struct ls_rec r;
	memset(&r, 0, sizeof(r));
	if (dir) {
		r.mode = S_IFDIR | 0755;
		assert_int_equal(ls_manifest_append(m, &r, dir, strlen(dir), NULL, 0, NULL, 0, &err), 0);
	}
	r.mode = S_IFREG | 0644;
	assert_int_equal(ls_manifest_append(m, &r, path, len, NULL, 0, NULL, 0, &err), 0);
	if (after)
		assert_int_equal(ls_manifest_append(m, &r, after, strlen(after), NULL, 0, NULL, 0, &err), 0);
	struct buf b = serialise(m);
	expect_refused(b.p, b.n, "corrupt");
	free(b.p);
	ls_manifest_free(m);
}

static void test_corrupt_built(void **state)
{
	const uint32_t D = S_IFDIR | 0755, F = S_IFREG | 0644;
	{
		const char *p[] = { "b", "a" };
		const uint32_t mo[] = { F, F };
		refuse_built(p, mo, 2, "out of order", NULL, 0);
	}
	{
		const char *p[] = { "a-b", "a", "a/x" };  /* "a/x" sorts before "a-b" */
		const uint32_t mo[] = { F, D, F };
		refuse_built(p, mo, 3, "out of order", NULL, 0);
	}
	{
		const char *p[] = { "a", "a0", "a/x" };
		const uint32_t mo[] = { D, F, F };
		refuse_built(p, mo, 3, "out of order", NULL, 0);
	}
	{
		const char *p[] = { "x/y" };
		const uint32_t mo[] = { F };
		refuse_built(p, mo, 1, "no parent", NULL, 0);
	}
	{
		const char *p[] = { "a", "a/b/c" };  /* "a/b" missing */
		const uint32_t mo[] = { D, F };
		refuse_built(p, mo, 2, "no parent", NULL, 0);
	}
	{
		const char *p[] = { "a", "a/b", "a/b/c" };  /* parent is a file */
		const uint32_t mo[] = { D, F, F };
		refuse_built(p, mo, 3, "no parent", NULL, 0);
	}
	{
		const char *p[] = { "a", "a/b", "a/c", "a/c/d", "e/f" };  /* e missing after a pop */
		const uint32_t mo[] = { D, D, D, F, F };
		refuse_built(p, mo, 5, "no parent", NULL, 0);
	}
	{
		/* the same, where the paths differ past their first eight bytes */
		const char *p[] = { "package-name-b", "package-name", "package-name/x" };
		const uint32_t mo[] = { F, D, F };
		refuse_built(p, mo, 3, "out of order", NULL, 0);
	}
	{
		const char *p[] = { "package-name", "package-name0", "package-name/x" };
		const uint32_t mo[] = { D, F, F };
		refuse_built(p, mo, 3, "out of order", NULL, 0);
	}
	{
		/* a file of a longer name between a directory and its subtree */
		const char *p[] = { "package-name", "package-name/lib", "package-name/lib/index.js",
				    "package-name/lib2", "package-name/lib/x" };
		const uint32_t mo[] = { D, D, F, F, F };
		refuse_built(p, mo, 5, "out of order", NULL, 0);
	}
	{
		/* the parent is the entry before, not a directory; a sibling
		 * sharing all but the last byte of the name */
		const char *p[] = { "package-name", "package-name/lib", "package-name/lib/index.js/x" };
		const uint32_t mo[] = { D, D, F };
		refuse_built(p, mo, 3, "no parent", NULL, 0);
		const char *q[] = { "package-name", "package-namf/lib" };
		const uint32_t mq[] = { D, F };
		refuse_built(q, mq, 2, "no parent", NULL, 0);
	}
	static const char *const bad_paths[] = { "/a", "a/", ".", "..", "a//b", "./a", "../a", "a/./b", "a/../b",
						 "/package-name", "package-name/", "package-name//b" };
	for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
		const char *p[] = { bad_paths[i] };
		const uint32_t mo[] = { F };
		refuse_built(p, mo, 1, "corrupt", NULL, 0);
	}
	/* A NUL inside a path; a NUL or a '/' at each byte of names of every
	 * length to 24 below a directory, the last record (the check reads the
	 * last bytes of a name one by one) or one before another (a word at a
	 * time). */
	refuse_nul_path(NULL, "a\0b", 3, NULL);
	for (size_t len = 1; len <= 24; len++) {
		for (size_t at = 0; at < len; at++) {
			char path[32] = "dir/";
			memset(path + 4, 'x', len);
			path[4 + len] = '\0';
			for (int last = 0; last < 2; last++) {
				path[4 + at] = '\0';
				refuse_nul_path("dir", path, 4 + len, last ? NULL : "dir/zzzzzzzzzzzzzzzzzzzz");
				path[4 + at] = '/';
				refuse_nul_path("dir", path, 4 + len, last ? NULL : "dir/zzzzzzzzzzzzzzzzzzzz");
				path[4 + at] = 'x';
			}
		}
	}
	/* Bad xattr blobs: unsorted, duplicate, empty name, NUL in the name,
	 * value running past the end, a partial header. */
	static const char unsorted[] = { XA(6, 0), 'u', 's', 'e', 'r', '.', 'b', XA(6, 0), 'u', 's', 'e', 'r', '.', 'a' };
	static const char dup[] = { XA(6, 0), 'u', 's', 'e', 'r', '.', 'a', XA(6, 0), 'u', 's', 'e', 'r', '.', 'a' };
	static const char longer_first[] = { XA(7, 0), 'u', 's', 'e', 'r', '.', 'a', 'a', XA(6, 0), 'u', 's', 'e', 'r', '.', 'a' };
	static const char empty_name[] = { XA(0, 1), 'x' };
	static const char nul_name[] = { XA(3, 0), 'a', '\0', 'b' };
	static const char long_value[] = { XA(1, 9), 'a', '1' };
	static const char partial[] = { XA(1, 0), 'a', 1, 0 };
	const struct { const char *x; size_t n; } bad_x[] = {
		{ unsorted, sizeof(unsorted) }, { dup, sizeof(dup) }, { longer_first, sizeof(longer_first) },
		{ empty_name, sizeof(empty_name) }, { nul_name, sizeof(nul_name) },
		{ long_value, sizeof(long_value) }, { partial, sizeof(partial) },
	};
	for (size_t i = 0; i < sizeof(bad_x) / sizeof(bad_x[0]); i++) {
		const char *p[] = { "f" };
		const uint32_t mo[] = { F };
		refuse_built(p, mo, 1, "corrupt", bad_x[i].x, bad_x[i].n);
	}
}

/* ---- inconsistent manifests ------------------------------------------------ */

/* Well-formed manifests that no scan writes: the reader refuses each with a
 * one-line message naming the entry (or the option) and what is wrong. */

static void patch_unhashed(unsigned char *p, size_t n)
{
	rec_at(p, sample_index("etc/a-b"))->mode &= ~LS_REC_HASHED;
}
static void patch_hashed_dir(unsigned char *p, size_t n)
{
	rec_at(p, sample_index("bin"))->mode |= LS_REC_HASHED;
}
static void patch_mountpoint_file(unsigned char *p, size_t n)
{
	rec_at(p, sample_index("etc/a-b"))->mode |= LS_REC_MOUNTPOINT;
}
static void patch_mountpoint_parent(unsigned char *p, size_t n)
{
	rec_at(p, sample_index("usr"))->mode |= LS_REC_MOUNTPOINT;
}
static void patch_link_on_file(unsigned char *p, size_t n)
{
	/* the symlink "bin/sh" (target "dash") read as a hashed file */
	struct ls_rec *r = rec_at(p, sample_index("bin/sh"));
	r->mode = (r->mode & ~(uint32_t)S_IFMT) | S_IFREG | LS_REC_HASHED;
}
static void patch_policy_none(unsigned char *p, size_t n) { p[OFF_XATTRS] = LS_CODE_XATTRS_NONE; }
static void patch_policy_capability(unsigned char *p, size_t n) { p[OFF_XATTRS] = LS_CODE_XATTRS_CAPABILITY; }
static void patch_excludes_swapped(unsigned char *p, size_t n)
{
	/* "a/b\0a/b/c\0" -> "a/b/c\0a/b\0": the same bytes, out of order */
	assert_memory_equal(p + OFF_OPTIONS, "a/b\0a/b/c\0", 10);
	memcpy(p + OFF_OPTIONS, "a/b/c\0a/b\0", 10);
}
static void patch_exclude_rooted(unsigned char *p, size_t n)
{
	/* "a/b" -> "/ab": a leading '/' the writer strips */
	memcpy(p + OFF_OPTIONS, "/ab", 3);
}

static void test_inconsistent_patched(void **state)
{
	struct buf b = sample_bytes();
	char want[256];
	snprintf(want, sizeof(want), "mem: corrupt manifest (entry %zu, etc/a-b: a regular file without a content "
		 "hash in a full-mode manifest)", sample_index("etc/a-b"));
	refuse_patched(&b, patch_unhashed, want);
	refuse_patched(&b, patch_hashed_dir, "bin: a content hash on an entry that is not a regular file");
	refuse_patched(&b, patch_mountpoint_file, "etc/a-b: a mount point that is not a directory");
	refuse_patched(&b, patch_mountpoint_parent, "usr/lib: below a mount point, which is not descended");
	refuse_patched(&b, patch_link_on_file, "bin/sh: a symlink target on an entry that is not a symlink");
	refuse_patched(&b, patch_policy_none, "etc: xattrs in a manifest recorded with --xattrs none");
	refuse_patched(&b, patch_policy_capability,
		       "etc: xattrs other than a regular file's security.capability in a manifest recorded with "
		       "--xattrs capability");
	refuse_patched(&b, patch_excludes_swapped,
		       "mem: corrupt manifest options (exclude 1, a/b: excludes not sorted in walk order and unique)");
	refuse_patched(&b, patch_exclude_rooted,
		       "mem: corrupt manifest options (exclude 0, /ab: not a normalised relative path)");
	free(b.p);
}

/* One entry of a built manifest. */
struct bent {
	const char *path;
	uint32_t mode;       /* with LS_REC_* flags */
	const char *link;
	const void *xattrs;
	size_t xattr_len;
};

/* The writer's bytes for entries e[0..n) (it writes what it is given) and,
 * when excl is not NULL, an option block holding the excl_len bytes of excl
 * as they are: neither normalised nor sorted. */
static struct buf built(enum ls_mode mode, enum ls_xattrs policy, const char *excl, size_t excl_len,
			const struct bent *e, size_t n)
{
	struct ls_error err = { 0 };
	ls_manifest *m = NULL;
	assert_int_equal(ls_manifest_create(&m, mode, policy, false, NULL, 0, &err), 0);
	if (excl) {
		assert_true(excl_len > 0 && excl[excl_len - 1] == '\0');
		m->options = malloc(excl_len);
		assert_non_null(m->options);
		memcpy(m->options, excl, excl_len);
		m->options_len = excl_len;
		for (size_t i = 0; i < excl_len; i++)
			m->n_excludes += excl[i] == '\0';
	}
	for (size_t i = 0; i < n; i++) {
		struct ls_rec r;
		memset(&r, 0, sizeof(r));
		r.mode = e[i].mode;
		r.nlink = 1;
		if (r.mode & LS_REC_HASHED)
			memset(r.hash, 0x5a, sizeof(r.hash));
		assert_int_equal(ls_manifest_append(m, &r, e[i].path, strlen(e[i].path), e[i].link,
						    e[i].link ? strlen(e[i].link) : 0, e[i].xattrs, e[i].xattr_len,
						    &err), 0);
	}
	struct buf b = serialise(m);
	ls_manifest_free(m);
	return b;
}

#define N_BENTS(...) (sizeof((const struct bent[]){ __VA_ARGS__ }) / sizeof(struct bent))
/* built() of the entries given, without excludes or (BUILT_X) with the
 * excludes of the string literal array excl */
#define BUILT(mode, policy, ...) built(mode, policy, NULL, 0, (const struct bent[]){ __VA_ARGS__ }, N_BENTS(__VA_ARGS__))
#define BUILT_X(mode, policy, excl, ...) \
	built(mode, policy, excl, sizeof(excl), (const struct bent[]){ __VA_ARGS__ }, N_BENTS(__VA_ARGS__))

/* Refuses b with exactly the message want (NULL: any), then frees it. */
static void refuse_exactly(struct buf b, const char *want)
{
	struct ls_error err = { 0 };
	ls_manifest *m = (ls_manifest *)(uintptr_t)1;
	int rc = ls_manifest_parse(b.p, b.n, "mem", &m, &err);
	if (rc >= 0)
		fail_msg("an inconsistent manifest was accepted (wanted: %s)", want);
	assert_int_equal(rc, -EINVAL);
	assert_int_equal(err.code, EINVAL);
	assert_null(m);
	assert_null(strchr(err.msg, '\n'));
	if (want && strcmp(err.msg, want) != 0)
		fail_msg("message '%s', wanted '%s'", err.msg, want);
	free(b.p);
}

static void accept_built(struct buf b)
{
	struct ls_error err = { 0 };
	ls_manifest *m = NULL;
	if (ls_manifest_parse(b.p, b.n, "mem", &m, &err) != 0)
		fail_msg("refused: %s", err.msg);
	ls_manifest_free(m);
	free(b.p);
}

static void test_inconsistent_built(void **state)
{
	const uint32_t D = S_IFDIR | 0755, F = S_IFREG | 0644, H = F | LS_REC_HASHED, L = S_IFLNK | 0777;
	const uint32_t MNT = D | LS_REC_MOUNTPOINT;

	/* (a) full mode hashes every regular file it records; redo and time
	 * hash none (a hash spliced from a full base may stay) */
	refuse_exactly(BUILT(LS_MODE_FULL, LS_XATTRS_CAPABILITY, { "d", D, NULL, NULL, 0 },
			     { "d/f", F, NULL, NULL, 0 }),
		       "mem: corrupt manifest (entry 1, d/f: a regular file without a content hash in a full-mode "
		       "manifest)");
	accept_built(BUILT(LS_MODE_FULL, LS_XATTRS_CAPABILITY, { "d", D, NULL, NULL, 0 },
			   { "d/f", H, NULL, NULL, 0 }, { "p", S_IFIFO | 0644, NULL, NULL, 0 }));
	static const enum ls_mode hashless[] = { LS_MODE_TIME, LS_MODE_REDO };
	for (size_t k = 0; k < 2; k++)
		accept_built(BUILT(hashless[k], LS_XATTRS_CAPABILITY, { "f", F, NULL, NULL, 0 },
				   { "g", H, NULL, NULL, 0 }));

	/* flags on the wrong type */
	refuse_exactly(BUILT(LS_MODE_REDO, LS_XATTRS_ALL, { "l", L | LS_REC_HASHED, "t", NULL, 0 }),
		       "mem: corrupt manifest (entry 0, l: a content hash on an entry that is not a regular file)");
	refuse_exactly(BUILT(LS_MODE_FULL, LS_XATTRS_ALL, { "d", D | LS_REC_HASHED, NULL, NULL, 0 }),
		       "mem: corrupt manifest (entry 0, d: a content hash on an entry that is not a regular file)");
	refuse_exactly(BUILT(LS_MODE_FULL, LS_XATTRS_ALL, { "f", H | LS_REC_MOUNTPOINT, NULL, NULL, 0 }),
		       "mem: corrupt manifest (entry 0, f: a mount point that is not a directory)");

	/* a mount point is not descended: nothing below it, its siblings fine */
	refuse_exactly(BUILT(LS_MODE_REDO, LS_XATTRS_ALL, { "mnt", MNT, NULL, NULL, 0 },
			     { "mnt/d", D, NULL, NULL, 0 }),
		       "mem: corrupt manifest (entry 1, mnt/d: below a mount point, which is not descended)");
	accept_built(BUILT(LS_MODE_REDO, LS_XATTRS_ALL, { "a", D, NULL, NULL, 0 },
			   { "a/mnt", MNT, NULL, NULL, 0 }, { "a/mnt-x", F, NULL, NULL, 0 },
			   { "a/z", F, NULL, NULL, 0 }, { "mnt", MNT, NULL, NULL, 0 }, { "mnt.x", D, NULL, NULL, 0 },
			   { "mnt.x/f", F, NULL, NULL, 0 }));

	/* a target only on a symlink (which may have none: time mode reads
	 * them too, but a file system may give an empty one) */
	refuse_exactly(BUILT(LS_MODE_TIME, LS_XATTRS_ALL, { "f", F, "t", NULL, 0 }),
		       "mem: corrupt manifest (entry 0, f: a symlink target on an entry that is not a symlink)");
	refuse_exactly(BUILT(LS_MODE_TIME, LS_XATTRS_ALL, { "d", D, "t", NULL, 0 }), NULL);
	accept_built(BUILT(LS_MODE_TIME, LS_XATTRS_ALL, { "l", L, "t", NULL, 0 }, { "m", L, NULL, NULL, 0 }));

	/* xattrs as the policy reads them */
	static const char user_a[] = { XA(6, 1), 'u', 's', 'e', 'r', '.', 'a', '1' };
	static const char cap_and_user[] = {
		XA(19, 1), 's', 'e', 'c', 'u', 'r', 'i', 't', 'y', '.', 'c', 'a', 'p', 'a', 'b', 'i', 'l', 'i', 't', 'y', 1,
		XA(6, 1), 'u', 's', 'e', 'r', '.', 'a', '1',
	};
	refuse_exactly(BUILT(LS_MODE_FULL, LS_XATTRS_NONE, { "f", H, NULL, xattrs_cap, sizeof(xattrs_cap) }),
		       "mem: corrupt manifest (entry 0, f: xattrs in a manifest recorded with --xattrs none)");
	refuse_exactly(BUILT(LS_MODE_FULL, LS_XATTRS_CAPABILITY, { "f", H, NULL, user_a, sizeof(user_a) }),
		       "mem: corrupt manifest (entry 0, f: xattrs other than a regular file's security.capability "
		       "in a manifest recorded with --xattrs capability)");
	refuse_exactly(BUILT(LS_MODE_FULL, LS_XATTRS_CAPABILITY,
			     { "f", H, NULL, cap_and_user, sizeof(cap_and_user) }), NULL);
	refuse_exactly(BUILT(LS_MODE_FULL, LS_XATTRS_CAPABILITY,
			     { "d", D, NULL, xattrs_cap, sizeof(xattrs_cap) }), NULL);
	accept_built(BUILT(LS_MODE_FULL, LS_XATTRS_CAPABILITY, { "d", D, NULL, NULL, 0 },
			   { "d/f", H, NULL, xattrs_cap, sizeof(xattrs_cap) }));
	accept_built(BUILT(LS_MODE_FULL, LS_XATTRS_ALL, { "d", D, NULL, user_a, sizeof(user_a) },
			   { "d/f", H, NULL, cap_and_user, sizeof(cap_and_user) }, { "l", L, "t", user_a, sizeof(user_a) }));
	accept_built(BUILT(LS_MODE_FULL, LS_XATTRS_NONE, { "f", H, NULL, NULL, 0 }));

	/* (b) excludes: normalised, in walk order, unique */
	static const char ok_excl[] = "a/b\0a/b/c\0a-b\0c";  /* walk order: '/' first */
	accept_built(BUILT_X(LS_MODE_REDO, LS_XATTRS_ALL, ok_excl, { "a", D, NULL, NULL, 0 },
			   { "a/b c", F, NULL, NULL, 0 }, { "a/b-c", F, NULL, NULL, 0 }, { "a/bb", F, NULL, NULL, 0 },
			   { "a.b", F, NULL, NULL, 0 }, { "b", F, NULL, NULL, 0 }, { "cc", F, NULL, NULL, 0 }));
	static const char unsorted[] = "b\0a";
	refuse_exactly(BUILT_X(LS_MODE_REDO, LS_XATTRS_ALL, unsorted, { "f", F, NULL, NULL, 0 }),
		       "mem: corrupt manifest options (exclude 1, a: excludes not sorted in walk order and unique)");
	static const char dup[] = "a\0a";
	refuse_exactly(BUILT_X(LS_MODE_REDO, LS_XATTRS_ALL, dup, { "f", F, NULL, NULL, 0 }),
		       "mem: corrupt manifest options (exclude 1, a: excludes not sorted in walk order and unique)");
	static const char bytewise[] = "a-b\0a/b";  /* strcmp's order, not the walk's */
	refuse_exactly(BUILT_X(LS_MODE_REDO, LS_XATTRS_ALL, bytewise, { "f", F, NULL, NULL, 0 }),
		       "mem: corrupt manifest options (exclude 1, a/b: excludes not sorted in walk order and unique)");
	static const char *const not_normal[] = { "/a", "a/", "a//b", "./a", "a/./b", ".", "..", "a/..", "../a" };
	for (size_t i = 0; i < sizeof(not_normal) / sizeof(not_normal[0]); i++) {
		char block[16], want[128];
		size_t len = strlen(not_normal[i]) + 1;
		memcpy(block, not_normal[i], len);
		snprintf(want, sizeof(want), "mem: corrupt manifest options (exclude 0, %s: not a normalised relative path)",
			 not_normal[i]);
		const struct bent f = { "f", F, NULL, NULL, 0 };
		refuse_exactly(built(LS_MODE_REDO, LS_XATTRS_ALL, block, len, &f, 1), want);
	}
	/* patterns keep their given order and duplicates: not checked */
	{
		struct ls_error err = { 0 };
		ls_manifest *m = NULL;
		assert_int_equal(ls_manifest_create(&m, LS_MODE_REDO, LS_XATTRS_ALL, false, NULL, 0, &err), 0);
		const char *pats[] = { "z", "a", "z", "/x//" };
		assert_int_equal(ls_manifest_set_patterns(m, pats, 4, &err), 0);
		struct buf b = serialise(m);
		ls_manifest_free(m);
		accept_built(b);
	}

	/* an excluded path is never recorded */
	static const char excl_ab[] = "a/b";
	refuse_exactly(BUILT_X(LS_MODE_REDO, LS_XATTRS_ALL, excl_ab, { "a", D, NULL, NULL, 0 },
			     { "a/b", D, NULL, NULL, 0 }),
		       "mem: corrupt manifest (entry 1, a/b: an excluded path)");
	static const char excl_two[] = "a/x\0c";  /* the cursor passes a/x first */
	refuse_exactly(BUILT_X(LS_MODE_REDO, LS_XATTRS_ALL, excl_two, { "a", D, NULL, NULL, 0 },
			     { "a/b", F, NULL, NULL, 0 }, { "a/y", F, NULL, NULL, 0 }, { "b", F, NULL, NULL, 0 },
			     { "c", F, NULL, NULL, 0 }),
		       "mem: corrupt manifest (entry 4, c: an excluded path)");
}

/* ---- walk order, normalisation, look-ups ------------------------------------ */

static int cmp(const char *a, const char *b)
{
	int c = ls_path_cmp(a, strlen(a), b, strlen(b));
	return c < 0 ? -1 : c > 0;
}

static int qsort_cmp(const void *a, const void *b)
{
	return cmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_path_cmp(void **state)
{
	/* depth first, siblings by bytes: '/' below every other byte */
	static const char *const order[] = {
		"\x01", "a", "a/\x01", "a/b", "a/b/c", "a/b c", "a/x", "a\tb", "a\nb", "a b", "a-b", "a.b",
		"a0", "aa", "b", "\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac", "\xff", "\xff\xfe",
	};
	size_t n = sizeof(order) / sizeof(order[0]);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(cmp(order[i], order[i]), 0);
		for (size_t k = i + 1; k < n; k++) {
			if (cmp(order[i], order[k]) != -1 || cmp(order[k], order[i]) != 1)
				fail_msg("'%s' should sort before '%s'", order[i], order[k]);
		}
	}
	/* sorting a shuffled copy gives the order back */
	const char *shuffled[sizeof(order) / sizeof(order[0])];
	for (size_t i = 0; i < n; i++)
		shuffled[i] = order[(i * 7 + 3) % n];
	qsort(shuffled, n, sizeof(shuffled[0]), qsort_cmp);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(shuffled[i], order[i]);
	/* lengths are honoured: no reading past them */
	assert_int_equal(ls_path_cmp("abc", 2, "abd", 2), 0);
	assert_true(ls_path_cmp("ab", 2, "abc", 3) < 0);
	assert_true(ls_path_cmp("abc", 3, "ab", 2) > 0);
	assert_int_equal(ls_path_cmp("", 0, "", 0), 0);
	assert_true(ls_path_cmp("", 0, "a", 1) < 0);
}

/* The rule one byte at a time, as the walk order is defined. */
static int byte_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	for (size_t i = 0; i < alen && i < blen; i++) {
		unsigned char ca = (unsigned char)a[i], cb = (unsigned char)b[i];
		if (ca != cb)
			return ca == '/' ? -1 : cb == '/' ? 1 : ca < cb ? -1 : 1;
	}
	return alen < blen ? -1 : alen > blen;
}

/* ls_path_cmp skips equal prefixes a word at a time: the same answers as
 * the byte rule for long shared prefixes that differ at every offset of a
 * word and past it, by '/' or by any byte (NUL and 0xff too), and for
 * one path a prefix of the other. */
static void test_path_cmp_words(void **state)
{
	static const unsigned char bytes[] = { 0, 1, '-', '.', '/', '0', 'a', 'z', 0x7f, 0x80, 0xff };
	char a[48], b[48];
	unsigned seed = 12345;
	for (size_t len = 0; len <= 40; len++) {
		for (size_t at = 0; at <= len; at++) {
			for (size_t x = 0; x < sizeof(bytes); x++) {
				for (size_t k = 0; k < len; k++) {
					seed = seed * 1103515245u + 12345u;
					a[k] = b[k] = (char)bytes[(seed >> 16) % sizeof(bytes)];
				}
				if (at < len)
					b[at] = (char)bytes[x];
				for (size_t blen = at; blen <= len; blen += (len - at) / 2 + 1) {
					int want = byte_cmp(a, len, b, blen), got = ls_path_cmp(a, len, b, blen);
					if ((want > 0) != (got > 0) || (want < 0) != (got < 0))
						fail_msg("len %zu, differing at %zu, b %zu long: %d, want %d", len, at, blen,
							 got, want);
					got = ls_path_cmp(b, blen, a, len);
					if ((want > 0) != (got < 0) || (want < 0) != (got > 0))
						fail_msg("swapped: len %zu, differing at %zu, b %zu long", len, at, blen);
				}
			}
		}
	}
}

static void norm_ok(const char *in, const char *want)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", in);
	ssize_t n = ls_path_normalize(buf, LS_NORM_ROOTED);
	if (n < 0)
		fail_msg("'%s' refused", in);
	assert_int_equal((size_t)n, strlen(want));
	assert_string_equal(buf, want);
}

static void norm_bad(const char *in)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", in);
	if (ls_path_normalize(buf, LS_NORM_ROOTED) != -EXDEV)
		fail_msg("'%s' accepted", in);
}

static void test_normalize(void **state)
{
	norm_ok("a", "a");
	norm_ok("a/b", "a/b");
	norm_ok("/a//b/", "a/b");
	norm_ok("///a", "a");
	norm_ok("a/", "a");
	norm_ok("./a/./b/.", "a/b");
	norm_ok("a/.b/..c/c../...", "a/.b/..c/c../...");
	norm_ok("a b/\tc", "a b/\tc");
	norm_ok("", "");
	norm_ok("/", "");
	norm_ok(".", "");
	norm_ok("./", "");
	norm_ok("/././/", "");
	norm_bad("..");
	norm_bad("../a");
	norm_bad("a/..");
	norm_bad("a/../b");
	norm_bad("/..");
	norm_bad("a/./../b");
	norm_bad("a//..//");
}

static void test_create_excludes(void **state)
{
	struct ls_error err = { 0 };
	ls_manifest *m = (ls_manifest *)(uintptr_t)1;
	const char *dotdot[] = { "a", "x/../y" };
	assert_int_equal(ls_manifest_create(&m, LS_MODE_FULL, LS_XATTRS_CAPABILITY, false, dotdot, 2, &err), -EINVAL);
	assert_null(m);
	assert_non_null(strstr(err.msg, "x/../y"));
	assert_non_null(strstr(err.msg, ".."));
	const char *root[] = { "//./" };
	assert_int_equal(ls_manifest_create(&m, LS_MODE_FULL, LS_XATTRS_CAPABILITY, false, root, 1, &err), -EINVAL);
	assert_null(m);
	assert_non_null(strstr(err.msg, "root"));
	const char *same[] = { "/a", "a/", "a" };
	assert_int_equal(ls_manifest_create(&m, LS_MODE_FULL, LS_XATTRS_CAPABILITY, false, same, 3, &err), 0);
	assert_int_equal(m->n_excludes, 1);
	assert_string_equal(ls_manifest_exclude(m, 0), "a");
	ls_manifest_free(m);
	ls_manifest_free(NULL);
}

static int cmp_walk_order(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	return ls_path_cmp(x, strlen(x), y, strlen(y));
}

/* The searches that skip shared prefixes and gallop from a cursor, against a
 * linear scan, on a tree whose names share long prefixes and sort around '/'
 * ("pkg-1" < "pkg-1/lib" < "pkg-1-b" < "pkg-1.x"). */
static void test_lookup_cursors(void **state)
{
	enum { PKGS = 40 };
	char *paths[PKGS * 12];
	size_t n = 0;
	for (int k = 0; k < PKGS; k++) {
		static const char *const tails[] = { "", "/lib", "/lib/index.js", "/lib/index.js.map", "/lib/util",
						     "/lib/util/a.js", "/lib/util-b.js", "/package.json", "-b", ".x" };
		for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
			char buf[128];
			snprintf(buf, sizeof(buf), "node_modules/package-number-%d%s", k, tails[t]);
			paths[n++] = strdup(buf);
		}
	}
	paths[n++] = strdup("node_modules");
	qsort(paths, n, sizeof(paths[0]), cmp_walk_order);
	ls_manifest *m = build_redo((const char *const *)paths, NULL, n, NULL, 0);
	uint64_t seed = 7;
	for (size_t q = 0; q < n * 4; q++) {
		/* the path itself, one more byte, a child, one byte less */
		char key[160];
		const char *base = paths[q / 4];
		size_t bl = strlen(base);
		switch (q % 4) {
		case 0: snprintf(key, sizeof(key), "%s", base); break;
		case 1: snprintf(key, sizeof(key), "%s0", base); break;
		case 2: snprintf(key, sizeof(key), "%s/zz", base); break;
		default: snprintf(key, sizeof(key), "%.*s", (int)(bl - 1), base); break;
		}
		size_t len = strlen(key), want = 0;
		while (want < n && ls_path_cmp(paths[want], strlen(paths[want]), key, len) < 0)
			want++;
		bool present = want < n && strcmp(paths[want], key) == 0;
		assert_int_equal(ls_manifest_lower_bound(m, key, len), want);
		assert_int_equal(ls_manifest_find(m, key, len), present ? (ssize_t)want : -1);
		for (int t = 0; t < 8; t++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			size_t lo = (size_t)(seed >> 33) % (want + 1);
			size_t hi = want + (size_t)(seed >> 13) % (n - want + 1);
			assert_int_equal(ls_manifest_lower_bound_in(m, lo, hi, key, len), want < hi ? want : hi);
			assert_int_equal(ls_manifest_lower_bound_from(m, lo, hi, key, len), want < hi ? want : hi);
			/* A range that holds the answer, any cursor: the range's
			 * start, before the answer, after it, past the end. */
			size_t in_hi = present && hi == want ? want + 1 : hi;
			size_t cursor = t == 7 ? SIZE_MAX : t == 6 ? lo : (size_t)(seed >> 21) % (n + 2);
			assert_int_equal(ls_manifest_find_in(m, lo, in_hi, &cursor, key, len), present ? (ssize_t)want : -1);
			assert_int_equal(cursor, present ? want + 1 : want);
		}
	}
	ls_manifest_free(m);
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
}

static void check_lookups(const ls_manifest *m)
{
	for (size_t i = 0; i < N_SAMPLES; i++) {
		const char *p = samples[i].path;
		assert_int_equal(ls_manifest_find(m, p, strlen(p)), (ssize_t)i);
		assert_int_equal(ls_manifest_lower_bound(m, p, strlen(p)), i);
		/* ranged: the answer when it lies in [lo, hi), else the nearer end */
		assert_int_equal(ls_manifest_lower_bound_in(m, i, N_SAMPLES, p, strlen(p)), i);
		assert_int_equal(ls_manifest_lower_bound_in(m, 0, i + 1, p, strlen(p)), i);
		if (i + 1 < N_SAMPLES)
			assert_int_equal(ls_manifest_lower_bound_in(m, i + 1, N_SAMPLES, p, strlen(p)), i + 1);
		if (i > 0)
			assert_int_equal(ls_manifest_lower_bound_in(m, 0, i, p, strlen(p)), i);
		assert_int_equal(ls_manifest_lower_bound_in(m, i, i, p, strlen(p)), i);
	}
	/* absent paths: where they would go */
	assert_int_equal(ls_manifest_find(m, "a", 1), -1);
	assert_int_equal(ls_manifest_lower_bound(m, "a", 1), 0);
	assert_int_equal(ls_manifest_lower_bound(m, "zzz", 3), N_SAMPLES);
	assert_int_equal(ls_manifest_find(m, "zzz", 3), -1);
	/* "etc/a/" sorts after "etc/a" and before "etc/a/deep": the subtree */
	assert_int_equal(ls_manifest_lower_bound(m, "etc/a/", 6), sample_index("etc/a/deep"));
	assert_int_equal(ls_manifest_find(m, "etc/a/", 6), -1);
	/* "etc/a/zz" is after etc/a's subtree, before "etc/a b" */
	assert_int_equal(ls_manifest_lower_bound(m, "etc/a/zz", 8), sample_index("etc/a b"));
	assert_int_equal(ls_manifest_lower_bound(m, "etc/a.", 6), sample_index("etc/new\nline"));
	/* a prefix of an entry is not that entry */
	assert_int_equal(ls_manifest_find(m, "bin/s", 5), -1);
	assert_int_equal(ls_manifest_find(m, "bin/sh", 5), -1);  /* length counts */
	assert_int_equal(ls_manifest_find(m, "bin/sh-loopx", 11), (ssize_t)sample_index("bin/sh-loop"));
	assert_int_equal(ls_manifest_find(m, "etc/\xff\xfe", 6), (ssize_t)sample_index("etc/\xff\xfe"));
}

static void test_find(void **state)
{
	ls_manifest *m = build_sample();
	check_lookups(m);
	struct buf b = serialise(m);
	struct ls_error err = { 0 };
	ls_manifest *p = NULL;
	assert_int_equal(ls_manifest_parse(b.p, b.n, "mem", &p, &err), 0);
	check_lookups(p);
	ls_manifest_free(p);
	ls_manifest_free(m);
	free(b.p);
}

/* Appends one record: mode, device, nlink. */
static void add_rec(ls_manifest *m, const char *path, mode_t mode, uint64_t dev, uint32_t nlink)
{
	struct ls_error err = { 0 };
	struct ls_rec r = { .mode = mode, .dev = dev, .nlink = nlink };
	assert_int_equal(ls_manifest_append(m, &r, path, strlen(path), NULL, 0, NULL, 0, &err), 0);
}

/* ls_manifest_facts of a built manifest (a pass) and of the same loaded
 * (kept from its check) agree, and say what the records hold. */
static void check_facts(ls_manifest *m, const struct ls_manifest_facts *want)
{
	struct ls_manifest_facts built, loaded;
	ls_manifest_facts(m, &built);
	struct buf b = serialise(m);
	struct ls_error err = { 0 };
	ls_manifest *p = NULL;
	assert_int_equal(ls_manifest_parse(b.p, b.n, "mem", &p, &err), 0);
	ls_manifest_facts(p, &loaded);
	ls_manifest_free(p);
	free(b.p);
	for (int k = 0; k < 2; k++) {
		const struct ls_manifest_facts *f = k ? &loaded : &built;
		assert_int_equal(f->whiteout_names, want->whiteout_names);
		assert_int_equal(f->hard_links, want->hard_links);
		assert_int_equal(f->any_dir, want->any_dir);
		assert_int_equal(f->any_other, want->any_other);
		assert_int_equal(f->dir_devs_differ, want->dir_devs_differ);
		assert_int_equal(f->other_devs_differ, want->other_devs_differ);
		if (want->any_dir)
			assert_int_equal(f->dir_dev, want->dir_dev);
		if (want->any_other)
			assert_int_equal(f->other_dev, want->other_dev);
	}
}

static void append_tree(ls_manifest *m, char *path, size_t len, unsigned width, unsigned depth);

/* An empty redo manifest without excludes. */
static ls_manifest *empty_redo(void)
{
	struct ls_error err = { 0 };
	ls_manifest *m = NULL;
	assert_int_equal(ls_manifest_create(&m, LS_MODE_REDO, LS_XATTRS_NONE, false, NULL, 0, &err), 0);
	return m;
}

/* A redo manifest of append_tree(width, depth). */
static ls_manifest *tree_manifest(unsigned width, unsigned depth)
{
	ls_manifest *m = empty_redo();
	char path[4096] = "";
	append_tree(m, path, 0, width, depth);
	return m;
}

/* Parses p (n bytes) with the records' check split at `split`: the result
 * code, the message, and the facts when it passed. */
struct split_result {
	int rc;
	struct ls_error err;
	struct ls_manifest_facts facts;
};

static struct split_result parse_split(const unsigned char *p, size_t n, size_t split)
{
	struct split_result r;
	memset(&r, 0, sizeof(r));
	ls_manifest *m = NULL;
	r.rc = ls_manifest_parse_split(p, n, "mem", split, &m, &r.err);
	if (m) {
		ls_manifest_facts(m, &r.facts);
		ls_manifest_free(m);
	}
	return r;
}

static void same_as_one_go(const unsigned char *p, size_t n, size_t n_recs, const char *what)
{
	struct split_result one = parse_split(p, n, 0);
	size_t splits[] = { 1, 2, n_recs / 4, n_recs / 2, n_recs - n_recs * 3 / 8, n_recs - 2, n_recs - 1,
			    LS_CHECK_SPLIT_AUTO };
	for (size_t k = 0; k < sizeof(splits) / sizeof(splits[0]); k++) {
		struct split_result two = parse_split(p, n, splits[k]);
		if (two.rc != one.rc || strcmp(two.err.msg, one.err.msg) != 0 ||
		    (one.rc == 0 && memcmp(&two.facts, &one.facts, sizeof(one.facts)) != 0))
			fail_msg("%s, split at %zu: %d '%s', in one go %d '%s'", what, splits[k], two.rc, two.err.msg,
				 one.rc, one.err.msg);
	}
}

/* The records' check split between two threads at any index gives what the
 * check in one go gives: the verdict, the first error's message and the
 * facts, on a tree of nested directories with hard links, devices and a
 * .wh. name, whole and corrupted (records swapped, a directory turned
 * into a file, random bytes of the records and the pool changed), the
 * checksum made good each time so that the records are checked. */
static void test_split_check(void **state)
{
	ls_manifest *m = tree_manifest(9, 4);
	for (size_t i = 0; i < m->n; i += 37) {
		m->recs[i].dev = 1 + (i / 37) % 2 * S_ISDIR(m->recs[i].mode);
		if (!S_ISDIR(m->recs[i].mode))
			m->recs[i].nlink = 2;
	}
	add_rec(m, "zz.wh.x", S_IFREG | 0644, 1, 1);
	add_rec(m, "zzz", S_IFDIR | 0755, 1, 2);
	add_rec(m, "zzz/.wh.y", S_IFREG | 0644, 1, 1);
	size_t n_recs = m->n;
	assert_true(n_recs > 500);
	struct buf b = serialise(m);
	same_as_one_go(b.p, b.n, n_recs, "whole");

	/* The second thread's check starts from the ancestors of its first
	 * record: each of them made a file, or swapped with its neighbour. */
	unsigned char *p = malloc(b.n);
	assert_non_null(p);
	size_t starts[] = { n_recs / 4, n_recs / 2, n_recs - n_recs * 3 / 8, n_recs - 1 };
	for (size_t k = 0; k < sizeof(starts) / sizeof(starts[0]); k++) {
		const char *sp = ls_rec_path(m, &m->recs[starts[k]]);
		size_t sl = m->recs[starts[k]].path_len, n_anc = 0;
		for (size_t q = 0; q < sl; q++) {
			if (sp[q] != '/')
				continue;
			ssize_t a = ls_manifest_find(m, sp, q);
			assert_true(a >= 0);
			for (int kind = 0; kind < 2; kind++) {
				memcpy(p, b.p, b.n);
				if (kind == 0) {
					struct ls_rec *r = rec_at(p, (size_t)a);
					r->mode = (r->mode & ~(uint32_t)S_IFMT) | S_IFREG;
				} else {
					swap_recs(p, (size_t)a, (size_t)a + 1);
				}
				fix_checksum(p, b.n);
				char what[64];
				snprintf(what, sizeof(what), "%s ancestor %zu of %zu", kind ? "swapped" : "file", (size_t)a,
					 starts[k]);
				same_as_one_go(p, b.n, n_recs, what);
				struct split_result one = parse_split(p, b.n, 0), two = parse_split(p, b.n, starts[k]);
				assert_int_not_equal(one.rc, 0);
				assert_int_equal(two.rc, one.rc);
				assert_string_equal(two.err.msg, one.err.msg);
			}
			n_anc++;
		}
		assert_true(n_anc > 0 || k == 0);
	}
	ls_manifest_free(m);
	unsigned seed = 7;
	for (int round = 0; round < 400; round++) {
		memcpy(p, b.p, b.n);
		seed = seed * 1103515245u + 12345u;
		size_t at = (seed >> 8) % n_recs;
		char what[64];
		switch (round % 4) {
		case 0:  /* neighbours swapped */
			swap_recs(p, at, at + 1 < n_recs ? at + 1 : at - 1);
			snprintf(what, sizeof(what), "swap at %zu", at);
			break;
		case 1: {  /* a directory (or anything) made a file */
			struct ls_rec *r = rec_at(p, at);
			r->mode = (r->mode & ~(uint32_t)S_IFMT) | S_IFREG;
			snprintf(what, sizeof(what), "file at %zu", at);
			break;
		}
		default: {  /* bytes of the records or the pool */
			for (int k = 0; k < 1 + round % 3; k++) {
				seed = seed * 1103515245u + 12345u;
				size_t off = recs_off(b.p) + (seed >> 4) % (b.n - 8 - recs_off(b.p));
				seed = seed * 1103515245u + 12345u;
				p[off] ^= (unsigned char)(1u << ((seed >> 16) % 8));
			}
			snprintf(what, sizeof(what), "bytes, round %d", round);
			break;
		}
		}
		fix_checksum(p, b.n);
		same_as_one_go(p, b.n, n_recs, what);
	}
	free(p);
	free(b.p);
}

static void test_facts(void **state)
{
	for (int shape = 0; shape < 5; shape++) {
		ls_manifest *m = empty_redo();
		struct ls_manifest_facts want = { 0 };
		switch (shape) {
		case 0:  /* empty */
			break;
		case 1:  /* one device per kind, a name that only looks like a whiteout */
			add_rec(m, "a", S_IFDIR | 0755, 7, 2);
			add_rec(m, "a/x.wh.y", S_IFREG | 0644, 9, 1);
			add_rec(m, "b", S_IFDIR | 0755, 7, 2);
			want = (struct ls_manifest_facts){ .any_dir = true, .any_other = true, .dir_dev = 7, .other_dev = 9 };
			break;
		case 2:  /* a whiteout name deep down, a hard link, directories only on dev 3 */
			add_rec(m, "a", S_IFDIR | 0755, 3, 2);
			add_rec(m, "a/.wh.b", S_IFREG | 0644, 4, 2);
			add_rec(m, "z", S_IFREG | 0644, 4, 1);
			want = (struct ls_manifest_facts){ .whiteout_names = true, .hard_links = true, .any_dir = true,
							   .any_other = true, .dir_dev = 3, .other_dev = 4 };
			break;
		case 3:  /* directories on two devices; a directory's nlink is no hard link */
			add_rec(m, "a", S_IFDIR | 0755, 3, 5);
			add_rec(m, "b", S_IFDIR | 0755, 8, 2);
			want = (struct ls_manifest_facts){ .any_dir = true, .dir_dev = 3, .dir_devs_differ = true };
			break;
		case 4:  /* others on two devices, the second one last */
			add_rec(m, "a", S_IFREG | 0644, 1, 1);
			add_rec(m, "b", S_IFIFO | 0644, 1, 1);
			add_rec(m, "c", S_IFREG | 0644, 2, 1);
			want = (struct ls_manifest_facts){ .any_other = true, .other_dev = 1, .other_devs_differ = true };
			break;
		}
		check_facts(m, &want);
		ls_manifest_free(m);
	}
}

/* Appends a directory at path with `width` children, of which every third
 * is a directory again, down to depth levels: subtrees of many sizes. */
static void append_tree(ls_manifest *m, char *path, size_t len, unsigned width, unsigned depth)
{
	struct ls_error err = { 0 };
	for (unsigned i = 0; i < width; i++) {
		int n = snprintf(path + len, 4096 - len, "%s%04u%c", len ? "/" : "", i, depth && i % 3 == 0 ? 'd' : 'f');
		struct ls_rec r = { .mode = (depth && i % 3 == 0) ? S_IFDIR | 0755 : S_IFREG | 0644, .nlink = 1 };
		assert_int_equal(ls_manifest_append(m, &r, path, len + (size_t)n, NULL, 0, NULL, 0, &err), 0);
		if (depth && i % 3 == 0)
			append_tree(m, path, len + (size_t)n, width / 2 + i, depth - 1);
	}
	path[len] = '\0';
}

/* ls_manifest_subtree_end gallops and bisects: the same answers as a plain
 * scan, for every record of a tree with subtrees of every size. */
static void test_subtree_end(void **state)
{
	ls_manifest *m = tree_manifest(12, 4);
	assert_true(m->n > 1000);
	size_t dirs = 0;
	for (size_t i = 0; i < m->n; i++) {
		const struct ls_rec *r = &m->recs[i];
		size_t e = i + 1;
		if (S_ISDIR(r->mode)) {
			dirs++;
			while (e < m->n && ls_path_is_under(ls_rec_path(m, &m->recs[e]), m->recs[e].path_len,
							     ls_rec_path(m, r), r->path_len))
				e++;
		}
		assert_int_equal(ls_manifest_subtree_end(m, i), e);
	}
	assert_true(dirs > 100);
	ls_manifest_free(m);
}

static void test_append_limits(void **state)
{
	struct ls_error err = { 0 };
	ls_manifest *m = NULL;
	assert_int_equal(ls_manifest_create(&m, LS_MODE_FULL, LS_XATTRS_NONE, false, NULL, 0, &err), 0);
	struct ls_rec r;
	memset(&r, 0, sizeof(r));
	r.mode = S_IFREG | 0644;
	assert_int_equal(ls_manifest_append(m, &r, "", 0, NULL, 0, NULL, 0, &err), -EINVAL);
	/* the lengths are checked before any byte is read */
	char name[256];
	memset(name, 'a', sizeof(name));
	assert_int_equal(ls_manifest_append(m, &r, name, (size_t)UINT32_MAX + 1, NULL, 0, NULL, 0, &err),
			 -ENAMETOOLONG);
	assert_non_null(strstr(err.msg, "too long"));
	assert_int_equal(ls_manifest_append(m, &r, "f", 1, NULL, 0, name, (size_t)UINT32_MAX + 1, &err), -E2BIG);
	/* a target is read back up to its first NUL: one inside it is refused */
	r.mode = S_IFLNK | 0777;
	assert_int_equal(ls_manifest_append(m, &r, "l", 1, "t\0t", 3, NULL, 0, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "NUL"));
	assert_int_equal(ls_manifest_count(m), 0);
	assert_int_equal(m->pool_len, 0);
	ls_manifest_free(m);
}

/* Paths and targets past 16 bits (and past 8 KiB) round-trip: a directory
 * with a 70,000-byte path, a file below it, a symlink with a 70,000-byte
 * target and xattrs after it. */
static void test_long_paths(void **state)
{
	const size_t big = 70000;
	char *dir = malloc(big + 3), *target = malloc(big);
	assert_non_null(dir);
	assert_non_null(target);
	memset(dir, 'd', big);
	memcpy(dir + big, "/f", 3);
	for (size_t i = 0; i < big; i++)
		target[i] = i % 100 == 99 ? '/' : (char)('a' + i % 26);
	struct ls_error err = { 0 };
	ls_manifest *m = NULL;
	assert_int_equal(ls_manifest_create(&m, LS_MODE_FULL, LS_XATTRS_ALL, false, NULL, 0, &err), 0);
	struct ls_rec r;
	memset(&r, 0, sizeof(r));
	r.mode = S_IFDIR | 0755;
	assert_int_equal(ls_manifest_append(m, &r, dir, big, NULL, 0, NULL, 0, &err), 0);
	r.mode = S_IFREG | 0644 | LS_REC_HASHED;
	assert_int_equal(ls_manifest_append(m, &r, dir, big + 2, NULL, 0, NULL, 0, &err), 0);
	r.mode = S_IFLNK | 0777;
	assert_int_equal(ls_manifest_append(m, &r, "l", 1, target, big, xattrs_dir, sizeof(xattrs_dir), &err), 0);
	struct buf b = serialise(m);
	ls_manifest *p = NULL;
	assert_int_equal(ls_manifest_parse(b.p, b.n, "mem", &p, &err), 0);
	for (int pass = 0; pass < 2; pass++) {
		const ls_manifest *x = pass ? p : m;
		assert_int_equal(ls_manifest_count(x), 3);
		assert_int_equal(x->recs[0].path_len, big);
		assert_int_equal(x->recs[1].path_len, big + 2);
		assert_memory_equal(ls_rec_path(x, &x->recs[1]), dir, big + 3);
		assert_int_equal(ls_rec_link_len(x, &x->recs[0]), 0);
		assert_int_equal(ls_rec_link_len(x, &x->recs[2]), big);
		assert_memory_equal(ls_rec_link(x, &x->recs[2]), target, big);
		assert_int_equal(x->recs[2].xattr_len, sizeof(xattrs_dir));
		assert_memory_equal(ls_rec_xattrs(x, &x->recs[2]), xattrs_dir, sizeof(xattrs_dir));
		assert_int_equal(ls_manifest_find(x, dir, big + 2), 1);
	}
	/* carried over, written again: the same bytes */
	ls_manifest *c = NULL;
	assert_int_equal(ls_manifest_create(&c, LS_MODE_FULL, LS_XATTRS_ALL, false, NULL, 0, &err), 0);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(ls_manifest_append_from(c, p, i, &err), 0);
	struct buf b2 = serialise(c);
	assert_int_equal(b2.n, b.n);
	assert_memory_equal(b2.p, b.p, b.n);
	ls_manifest_free(c);
	ls_manifest_free(p);
	ls_manifest_free(m);
	free(b.p);
	free(b2.p);
	free(dir);
	free(target);
}

static void test_patterns(void **state)
{
	struct ls_error err = { 0 };
	ls_manifest *m = NULL;
	assert_int_equal(ls_manifest_create(&m, LS_MODE_REDO, LS_XATTRS_CAPABILITY, false, NULL, 0, &err), 0);
	assert_int_equal(m->n_patterns, 0);
	/* stored as given: no sorting, no normalising, no deduplication */
	const char *pats[] = { "z", "/a//b/", "*.log", "!important.log", "*.log", "a b\n" };
	assert_int_equal(ls_manifest_set_patterns(m, pats, 6, &err), 0);
	assert_int_equal(m->n_patterns, 6);
	for (size_t i = 0; i < 6; i++)
		assert_string_equal(ls_manifest_pattern(m, i), pats[i]);
	/* an empty pattern is refused and the list kept */
	const char *empty[] = { "x", "" };
	assert_int_equal(ls_manifest_set_patterns(m, empty, 2, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "empty"));
	assert_int_equal(m->n_patterns, 6);
	struct buf b = serialise(m);
	ls_manifest *p = NULL;
	assert_int_equal(ls_manifest_parse(b.p, b.n, "mem", &p, &err), 0);
	assert_int_equal(p->n_patterns, 6);
	for (size_t i = 0; i < 6; i++)
		assert_string_equal(ls_manifest_pattern(p, i), pats[i]);
	assert_int_equal(p->n_excludes, 0);
	/* a loaded manifest is read-only */
	assert_int_equal(ls_manifest_set_patterns(p, pats, 1, &err), -EINVAL);
	ls_manifest_free(p);
	free(b.p);
	/* replaced, then cleared */
	assert_int_equal(ls_manifest_set_patterns(m, pats + 4, 2, &err), 0);
	assert_int_equal(m->n_patterns, 2);
	assert_string_equal(ls_manifest_pattern(m, 1), "a b\n");
	assert_int_equal(ls_manifest_set_patterns(m, NULL, 0, &err), 0);
	assert_int_equal(m->n_patterns, 0);
	assert_int_equal(m->patterns_len, 0);
	b = serialise(m);
	assert_int_equal(b.n, OFF_OPTIONS + TRAILER_LEN);
	free(b.p);
	ls_manifest_free(m);
}

/* ls_check_base: excludes and patterns are settings of the base. */
static void test_check_base(void **state)
{
	struct ls_error err = { 0 };
	const char *excl[] = { "b", "/a/" };
	struct ls_walk_options o = LS_WALK_OPTIONS_INIT;
	o.mode = LS_MODE_REDO;
	o.excludes = excl;
	o.n_excludes = 2;
	ls_manifest *m = NULL;
	assert_int_equal(ls_manifest_create(&m, LS_MODE_FULL, LS_XATTRS_CAPABILITY, false, excl, 2, &err), 0);
	assert_int_equal(ls_check_base(m, LS_MODE_REDO, &o, &err), 0);
	o.n_excludes = 1;
	assert_int_equal(ls_check_base(m, LS_MODE_REDO, &o, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--exclude"));
	o.n_excludes = 2;
	/* the walk options have no patterns: a base with some is another setting,
	 * through a loaded copy too */
	const char *pats[] = { "*.o" };
	assert_int_equal(ls_manifest_set_patterns(m, pats, 1, &err), 0);
	assert_int_equal(ls_check_base(m, LS_MODE_REDO, &o, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--exclude-pattern"));
	struct buf b = serialise(m);
	ls_manifest *p = NULL;
	assert_int_equal(ls_manifest_parse(b.p, b.n, "mem", &p, &err), 0);
	assert_int_equal(ls_check_base(p, LS_MODE_REDO, &o, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--exclude-pattern"));
	ls_manifest_free(p);
	free(b.p);
	assert_int_equal(ls_manifest_set_patterns(m, NULL, 0, &err), 0);
	assert_int_equal(ls_check_base(m, LS_MODE_REDO, &o, &err), 0);
	ls_manifest_free(m);
}

/* ---- compare: mtimes clamped to a source date epoch ---------------------------- */

#define NS 1000000000LL

/* A manifest of one regular file, "f", stamped mtime_ns. */
static ls_manifest *one_file(enum ls_mode mode, int64_t mtime_ns, uint64_t size)
{
	struct ls_error err = { 0 };
	ls_manifest *m = NULL;
	assert_int_equal(ls_manifest_create(&m, mode, LS_XATTRS_CAPABILITY, false, NULL, 0, &err), 0);
	struct ls_rec r;
	memset(&r, 0, sizeof(r));
	r.mode = S_IFREG | 0644 | (mode == LS_MODE_FULL ? LS_REC_HASHED : 0);
	r.size = size;
	r.mtime_ns = mtime_ns;
	r.nlink = 1;
	memset(r.hash, 0x5a, sizeof(r.hash));
	assert_int_equal(ls_manifest_append(m, &r, "f", 1, NULL, 0, NULL, 0, &err), 0);
	return m;
}

/* The changes ls_compare_opts finds between "f" stamped x and "f" stamped y
 * (each direction: both sides are clamped, so it must not matter). */
static long changes_at(enum ls_mode mode, int64_t x, int64_t y, bool seconds, bool have_epoch, int64_t epoch)
{
	struct ls_error err = { 0 };
	ls_manifest *a = one_file(mode, x, 6), *b = one_file(mode, y, 6);
	struct ls_compare_options o = LS_COMPARE_OPTIONS_INIT;
	o.mode = mode;
	o.mtime_seconds = seconds;
	o.have_epoch = have_epoch;
	o.source_date_epoch = epoch;
	long n = ls_compare_opts(a, b, &o, NULL, NULL, &err);
	assert_int_equal(ls_compare_opts(b, a, &o, NULL, NULL, &err), n);
	if (!have_epoch)  /* the old call agrees */
		assert_int_equal(ls_compare(a, b, mode, seconds, NULL, NULL, &err), n);
	ls_manifest_free(a);
	ls_manifest_free(b);
	return n;
}

/* A tree's mtime (x) against the one a layer with the epoch N gives it: whole
 * seconds, clamped to N.  At N-1, N and N+1, with and without the epoch. */
static void test_compare_epoch(void **state)
{
	const int64_t N = 1700000000;
	static const enum ls_mode modes[] = { LS_MODE_FULL, LS_MODE_REDO, LS_MODE_TIME };
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		enum ls_mode md = modes[i];
		struct { int64_t x, y; long ns, sec, epoch; } cases[] = {
			/* the tree (x) and its clamped counterpart (y) */
			{ (N - 1) * NS + 500000000, (N - 1) * NS, 1, 0, 0 },
			{ (N - 1) * NS, (N - 1) * NS, 0, 0, 0 },
			{ N * NS + 250000000, N * NS, 1, 0, 0 },
			{ N * NS, N * NS, 0, 0, 0 },
			{ (N + 1) * NS, N * NS, 1, 1, 0 },
			{ (N + 1) * NS + 999999999, N * NS, 1, 1, 0 },
			/* later than N on both sides: both count as N */
			{ (N + 1) * NS, (N + 5) * NS + 7, 1, 1, 0 },
			/* at or below N a second still counts, in whole seconds
			 * (rounded down, as the layer does) */
			{ (N - 1) * NS, N * NS, 1, 1, 1 },
			{ N * NS - 1, N * NS, 1, 1, 1 },
			{ (N - 2) * NS, (N - 1) * NS, 1, 1, 1 },
			{ N * NS + 999999999, (N - 1) * NS, 1, 1, 1 },
		};
		for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
			int64_t x = cases[k].x, y = cases[k].y;
			assert_int_equal(changes_at(md, x, y, false, false, 0), cases[k].ns);
			assert_int_equal(changes_at(md, x, y, true, false, 0), cases[k].sec);
			/* the epoch implies whole seconds, with mtime_seconds or not */
			assert_int_equal(changes_at(md, x, y, false, true, N), cases[k].epoch);
			assert_int_equal(changes_at(md, x, y, true, true, N), cases[k].epoch);
		}
		/* before 1970: seconds round down there too, and are not clamped up */
		assert_int_equal(changes_at(md, -1, -NS, false, true, 0), 0);
		assert_int_equal(changes_at(md, -1, 0, false, true, 0), 1);
	}
	/* the epoch is about mtimes only: a size change is still a change */
	struct ls_error err = { 0 };
	ls_manifest *a = one_file(LS_MODE_REDO, (N + 1) * NS, 6), *b = one_file(LS_MODE_REDO, N * NS, 7);
	struct ls_compare_options o = LS_COMPARE_OPTIONS_INIT;
	o.mode = LS_MODE_REDO;
	o.have_epoch = true;
	o.source_date_epoch = N;
	assert_int_equal(ls_compare_opts(a, b, &o, NULL, NULL, &err), 1);
	o.mode = LS_MODE_TIME;
	assert_int_equal(ls_compare_opts(a, b, &o, NULL, NULL, &err), 0);
	ls_manifest_free(a);
	ls_manifest_free(b);
	/* NULL options: full mode, nanoseconds */
	a = one_file(LS_MODE_FULL, (N + 1) * NS, 6);
	b = one_file(LS_MODE_FULL, (N + 1) * NS, 6);
	assert_int_equal(ls_compare_opts(a, b, NULL, NULL, NULL, &err), 0);
	ls_manifest_free(b);
	b = one_file(LS_MODE_FULL, (N + 1) * NS + 1, 6);
	assert_int_equal(ls_compare_opts(a, b, NULL, NULL, NULL, &err), 1);
	ls_manifest_free(a);
	ls_manifest_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_memory),
		cmocka_unit_test(test_round_trip_file),
		cmocka_unit_test(test_empty_manifest),
		cmocka_unit_test(test_append_from),
		cmocka_unit_test(test_truncation_every_offset),
		cmocka_unit_test(test_bit_flip_every_byte),
		cmocka_unit_test(test_not_a_manifest),
		cmocka_unit_test(test_other_version),
		cmocka_unit_test(test_corrupt_structure),
		cmocka_unit_test(test_corrupt_built),
		cmocka_unit_test(test_inconsistent_patched),
		cmocka_unit_test(test_inconsistent_built),
		cmocka_unit_test(test_path_cmp),
		cmocka_unit_test(test_path_cmp_words),
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_create_excludes),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_subtree_end),
		cmocka_unit_test(test_facts),
		cmocka_unit_test(test_split_check),
		cmocka_unit_test(test_append_limits),
		cmocka_unit_test(test_long_paths),
		cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_lookup_cursors),
		cmocka_unit_test(test_check_base),
		cmocka_unit_test(test_compare_epoch),
	};
	return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
