/* Unit tests for the deterministic layer writer (snapshot/layer.c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create, memmem, pipe2 */
#endif
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>
#include <zstd.h>

#include "layer.h"
#include "ls_skip.h"

struct blob {
	unsigned char *p;
	size_t n;
};

static void blob_append(struct blob *b, const void *p, size_t n)
{
	b->p = realloc(b->p, b->n + n + 1);
	assert_non_null(b->p);
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static int new_memfd(void)
{
	int fd = memfd_create("layer-test", MFD_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

/* A memfd holding data, positioned at offset 0. */
static int content_fd(const void *data, size_t n)
{
	int fd = new_memfd();
	const char *p = data;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		assert_true(w > 0);
		p += w;
		n -= (size_t)w;
	}
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static struct blob read_fd_all(int fd)
{
	struct blob b = { NULL, 0 };
	unsigned char buf[65536];
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		assert_true(n >= 0);
		if (n == 0)
			break;
		blob_append(&b, buf, (size_t)n);
	}
	return b;
}

static void sha256_of(const void *p, size_t n, char out[72])
{
	unsigned char md[32];
	unsigned int len = 0;
	assert_int_equal(EVP_Digest(p, n, md, &len, EVP_sha256(), NULL), 1);
	assert_int_equal(len, 32);
	strcpy(out, "sha256:");
	for (int i = 0; i < 32; i++)
		sprintf(out + 7 + 2 * i, "%02x", md[i]);
}

static bool contains(const struct blob *b, const char *s)
{
	return memmem(b->p, b->n, s, strlen(s)) != NULL;
}

static size_t offset_of(const struct blob *b, const char *s)
{
	const unsigned char *q = memmem(b->p, b->n, s, strlen(s));
	assert_non_null(q);
	return (size_t)(q - b->p);
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* ---- the sample layer ---------------------------------------------------- */

static const char file_data[] = "hello, layer\n";
static const struct ls_xattr sample_xattrs[] = {
	{ "security.capability", "\x01\x00\x00\x02\x00\x20\x00\x00", 8 },
	{ "user.a", "1", 1 },
	{ "user.b", "22", 2 },
};

#define LONG_NAME "d/" \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

/* Adds one of every kind of entry; returns the XXH3 of the file's content as
 * the writer fed it. */
static XXH128_hash_t add_sample(struct ls_layer *l)
{
	struct ls_error err = { 0 };
	XXH3_state_t *st = XXH3_createState();
	assert_non_null(st);
	XXH3_128bits_reset(st);

	struct ls_layer_entry d = { .path = "d", .mode = S_IFDIR | 0755, .uid = 1000,
				    .gid = 1001, .mtime_sec = 5000 };
	assert_int_equal(ls_layer_add(l, &d, -1, NULL, &err), 0);
	assert_int_equal(ls_layer_add_whiteout(l, "d/gone", &err), 0);
	assert_int_equal(ls_layer_add_opaque(l, "d", &err), 0);

	int fd = content_fd(file_data, strlen(file_data));
	struct ls_layer_entry f = { .path = "d/f", .mode = S_IFREG | 04755, .uid = 1, .gid = 2,
				    .mtime_sec = 100, .size = strlen(file_data),
				    .xattrs = sample_xattrs, .n_xattrs = 3 };
	assert_int_equal(ls_layer_add(l, &f, fd, st, &err), 0);
	close(fd);

	struct ls_layer_entry h = { .path = "d/h", .mode = S_IFREG | 04755, .uid = 1, .gid = 2,
				    .mtime_sec = 100, .size = strlen(file_data),
				    .hardlink = "d/f" };
	assert_int_equal(ls_layer_add(l, &h, -1, NULL, &err), 0);
	struct ls_layer_entry s = { .path = "d/l", .mode = S_IFLNK | 0777, .mtime_sec = 7,
				    .link_target = "../target" };
	assert_int_equal(ls_layer_add(l, &s, -1, NULL, &err), 0);
	struct ls_layer_entry p = { .path = "d/p", .mode = S_IFIFO | 0600, .mtime_sec = 8 };
	assert_int_equal(ls_layer_add(l, &p, -1, NULL, &err), 0);
	struct ls_layer_entry c = { .path = "d/c", .mode = S_IFCHR | 0666, .mtime_sec = 9,
				    .rdev = makedev(1, 3) };
	assert_int_equal(ls_layer_add(l, &c, -1, NULL, &err), 0);
	struct ls_layer_entry b = { .path = "d/b", .mode = S_IFBLK | 0660, .gid = 6,
				    .mtime_sec = 10, .rdev = makedev(259, 1048575) };
	assert_int_equal(ls_layer_add(l, &b, -1, NULL, &err), 0);
	struct ls_layer_entry u = { .path = "u", .mode = S_IFREG | 0640, .uid = 3000000,
				    .gid = 3000001, .mtime_sec = 11 };
	assert_int_equal(ls_layer_add(l, &u, -1, NULL, &err), 0);
	struct ls_layer_entry lg = { .path = LONG_NAME, .mode = S_IFREG | 0644, .mtime_sec = 12 };
	assert_int_equal(ls_layer_add(l, &lg, -1, NULL, &err), 0);
	assert_int_equal(ls_layer_add_whiteout(l, "top", &err), 0);
	assert_int_equal(ls_layer_add_opaque(l, "", &err), 0);

	XXH128_hash_t hv = XXH3_128bits_digest(st);
	XXH3_freeState(st);
	return hv;
}
#define SAMPLE_ENTRIES 13

static void write_layer_fd(int fd, enum ls_compress comp, bool epoch,
				  struct ls_layer_result *res, XXH128_hash_t *hv)
{
	struct ls_error err = { 0 };
	struct ls_layer_options o = { .compress = comp, .have_epoch = epoch,
				      .source_date_epoch = 4000 };
	struct ls_layer *l = NULL;
	assert_int_equal(ls_layer_open(&l, fd, &o, &err), 0);
	XXH128_hash_t h = add_sample(l);
	if (hv)
		*hv = h;
	int r = ls_layer_finish(l, res, &err);
	if (r)
		fail_msg("finish: %s", err.msg);
	ls_layer_free(l);
}

static struct blob write_sample(enum ls_compress comp, bool epoch, struct ls_layer_result *res,
				XXH128_hash_t *hv)
{
	int fd = new_memfd();
	write_layer_fd(fd, comp, epoch, res, hv);
	struct blob b = read_fd_all(fd);
	close(fd);
	return b;
}

/* ---- read-back ----------------------------------------------------------- */

struct expect {
	const char *path;
	unsigned type;
	unsigned perm;
	int64_t uid, gid, mtime;
	const char *symlink, *hardlink;
	unsigned dev_major, dev_minor;
	int64_t size;
};

static void check_sample_entries(const struct blob *tar, bool epoch)
{
	const struct expect ex[SAMPLE_ENTRIES] = {
		{ "d/", AE_IFDIR, 0755, 1000, 1001, epoch ? 4000 : 5000, NULL, NULL, 0, 0, 0 },
		{ "d/.wh.gone", AE_IFREG, 0, 0, 0, 0, NULL, NULL, 0, 0, 0 },
		{ "d/.wh..wh..opq", AE_IFREG, 0, 0, 0, 0, NULL, NULL, 0, 0, 0 },
		{ "d/f", AE_IFREG, 04755, 1, 2, 100, NULL, NULL, 0, 0, (int64_t)strlen(file_data) },
		{ "d/h", AE_IFREG, 04755, 1, 2, 100, NULL, "d/f", 0, 0, 0 },
		{ "d/l", AE_IFLNK, 0777, 0, 0, 7, "../target", NULL, 0, 0, 0 },
		{ "d/p", AE_IFIFO, 0600, 0, 0, 8, NULL, NULL, 0, 0, 0 },
		{ "d/c", AE_IFCHR, 0666, 0, 0, 9, NULL, NULL, 1, 3, 0 },
		{ "d/b", AE_IFBLK, 0660, 0, 6, 10, NULL, NULL, 259, 1048575, 0 },
		{ "u", AE_IFREG, 0640, 3000000, 3000001, 11, NULL, NULL, 0, 0, 0 },
		{ LONG_NAME, AE_IFREG, 0644, 0, 0, 12, NULL, NULL, 0, 0, 0 },
		{ ".wh.top", AE_IFREG, 0, 0, 0, 0, NULL, NULL, 0, 0, 0 },
		{ ".wh..wh..opq", AE_IFREG, 0, 0, 0, 0, NULL, NULL, 0, 0, 0 },
	};
	struct archive *a = archive_read_new();
	assert_non_null(a);
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_memory(a, tar->p, tar->n), ARCHIVE_OK);
	struct archive_entry *ae;
	size_t i = 0;
	int r;
	while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
		assert_true(i < SAMPLE_ENTRIES);
		const struct expect *x = &ex[i];
		assert_string_equal(archive_entry_pathname(ae), x->path);
		if (x->hardlink) {
			assert_non_null(archive_entry_hardlink(ae));
			assert_string_equal(archive_entry_hardlink(ae), x->hardlink);
		} else {
			assert_null(archive_entry_hardlink(ae));
			assert_int_equal(archive_entry_filetype(ae), x->type);
		}
		assert_int_equal(archive_entry_perm(ae), x->perm);
		assert_int_equal(archive_entry_uid(ae), x->uid);
		assert_int_equal(archive_entry_gid(ae), x->gid);
		assert_int_equal(archive_entry_mtime(ae), x->mtime);
		assert_int_equal(archive_entry_mtime_nsec(ae), 0);
		assert_false(archive_entry_atime_is_set(ae));
		assert_false(archive_entry_ctime_is_set(ae));
		assert_false(archive_entry_birthtime_is_set(ae));
		const char *un = archive_entry_uname(ae), *gn = archive_entry_gname(ae);
		assert_true(un == NULL || un[0] == '\0');
		assert_true(gn == NULL || gn[0] == '\0');
		assert_int_equal(archive_entry_size(ae), x->size);
		if (x->symlink)
			assert_string_equal(archive_entry_symlink(ae), x->symlink);
		if (x->type == AE_IFCHR || x->type == AE_IFBLK) {
			assert_int_equal(archive_entry_rdevmajor(ae), x->dev_major);
			assert_int_equal(archive_entry_rdevminor(ae), x->dev_minor);
		}
		if (strcmp(x->path, "d/f") == 0) {
			char buf[64] = { 0 };
			assert_int_equal(archive_read_data(a, buf, sizeof(buf)), strlen(file_data));
			assert_string_equal(buf, file_data);
			/* libarchive lists xattrs in the reverse of the order
			 * read (test_raw_pax checks the bytes) */
			assert_int_equal(archive_entry_xattr_reset(ae), 3);
			for (int k = 2; k >= 0; k--) {
				const char *name;
				const void *val;
				size_t len;
				assert_int_equal(archive_entry_xattr_next(ae, &name, &val, &len),
						 ARCHIVE_OK);
				assert_string_equal(name, sample_xattrs[k].name);
				assert_int_equal(len, sample_xattrs[k].value_len);
				assert_memory_equal(val, sample_xattrs[k].value, len);
			}
		} else {
			assert_int_equal(archive_entry_xattr_count(ae), 0);
		}
		i++;
	}
	assert_int_equal(r, ARCHIVE_EOF);
	assert_int_equal(i, SAMPLE_ENTRIES);
	archive_read_free(a);
}

/* ---- tests --------------------------------------------------------------- */

static void test_entries(void **state)
{
	(void)state;
	for (int epoch = 0; epoch < 2; epoch++) {
		struct ls_layer_result res;
		struct blob b = write_sample(LS_COMPRESS_NONE, epoch, &res, NULL);
		check_sample_entries(&b, epoch);
		assert_int_equal(res.entries, SAMPLE_ENTRIES);
		assert_int_equal(res.bytes, b.n);
		assert_int_equal(res.size, b.n);
		assert_string_equal(res.media_type, "application/vnd.oci.image.layer.v1.tar");
		/* the first header is the directory, ustar name "d/" */
		assert_memory_equal(b.p, "d/\0", 3);
		assert_memory_equal(b.p + 257, "ustar\0" "00", 8);
		free(b.p);
	}
}

static void test_raw_pax(void **state)
{
	(void)state;
	struct blob b = write_sample(LS_COMPRESS_NONE, true, NULL, NULL);
	size_t cap = offset_of(&b, "SCHILY.xattr.security.capability=");
	size_t ua = offset_of(&b, "SCHILY.xattr.user.a=1\n");
	size_t ub = offset_of(&b, "SCHILY.xattr.user.b=22\n");
	assert_true(cap < ua && ua < ub);
	assert_false(contains(&b, "LIBARCHIVE"));
	assert_false(contains(&b, "atime="));
	assert_false(contains(&b, "ctime="));
	assert_false(contains(&b, "mtime="));  /* whole seconds fit in ustar */
	assert_false(contains(&b, "uname="));
	assert_false(contains(&b, "gname="));
	assert_true(contains(&b, " uid=3000000\n"));
	assert_true(contains(&b, " gid=3000001\n"));
	assert_true(contains(&b, " path=" LONG_NAME "\n"));
	/* ustar uname/gname fields (offsets 265 and 297) of the first header */
	assert_true(all_zero(b.p + 265, 64));
	free(b.p);
}

static void check_end(const struct blob *b)
{
	assert_true(b->n >= 1024);
	assert_int_equal(b->n % 512, 0);
	assert_true(all_zero(b->p + b->n - 1024, 1024));
	/* the block before the end blocks is not all zero: no padding */
	assert_false(all_zero(b->p + b->n - 1536, 512));
}

static void test_end_file(void **state)
{
	(void)state;
	struct blob b = write_sample(LS_COMPRESS_NONE, false, NULL, NULL);
	check_end(&b);
	free(b.p);

	/* one small file: header, one data block, two zero blocks */
	int out = new_memfd();
	struct ls_error err = { 0 };
	struct ls_layer_options o = { 0 };
	struct ls_layer *l = NULL;
	assert_int_equal(ls_layer_open(&l, out, &o, &err), 0);
	int fd = content_fd("x", 1);
	struct ls_layer_entry f = { .path = "x", .mode = S_IFREG | 0644, .size = 1 };
	assert_int_equal(ls_layer_add(l, &f, fd, NULL, &err), 0);
	close(fd);
	struct ls_layer_result res;
	assert_int_equal(ls_layer_finish(l, &res, &err), 0);
	ls_layer_free(l);
	b = read_fd_all(out);
	close(out);
	assert_int_equal(b.n, 2048);
	assert_int_equal(res.bytes, 2048);
	check_end(&b);
	free(b.p);

	/* an empty layer is exactly the two zero blocks */
	out = new_memfd();
	assert_int_equal(ls_layer_open(&l, out, &o, &err), 0);
	assert_int_equal(ls_layer_finish(l, &res, &err), 0);
	ls_layer_free(l);
	b = read_fd_all(out);
	close(out);
	assert_int_equal(b.n, 1024);
	assert_true(all_zero(b.p, 1024));
	assert_int_equal(res.entries, 0);
	assert_int_equal(res.bytes, 1024);
	free(b.p);
}

struct pipe_reader {
	int fd;
	struct blob b;
};

static void *pipe_reader_main(void *arg)
{
	struct pipe_reader *pr = arg;
	unsigned char buf[65536];
	for (;;) {
		ssize_t n = read(pr->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		blob_append(&pr->b, buf, (size_t)n);
	}
	return NULL;
}

static struct blob write_sample_pipe(enum ls_compress comp, struct ls_layer_result *res)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	struct pipe_reader pr = { p[0], { NULL, 0 } };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, pipe_reader_main, &pr), 0);
	write_layer_fd(p[1], comp, false, res, NULL);
	close(p[1]);
	assert_int_equal(pthread_join(t, NULL), 0);
	close(p[0]);
	return pr.b;
}

static void test_end_pipe(void **state)
{
	(void)state;
	for (int c = LS_COMPRESS_NONE; c <= LS_COMPRESS_ZSTD; c++) {
		struct ls_layer_result r1, r2;
		struct blob f = write_sample((enum ls_compress)c, false, &r1, NULL);
		struct blob p = write_sample_pipe((enum ls_compress)c, &r2);
		assert_int_equal(f.n, p.n);
		assert_memory_equal(f.p, p.p, f.n);
		assert_string_equal(r1.digest, r2.digest);
		assert_string_equal(r1.diff_id, r2.diff_id);
		if (c == LS_COMPRESS_NONE)
			check_end(&p);
		free(f.p);
		free(p.p);
	}
}

static void test_reproducible(void **state)
{
	(void)state;
	for (int c = LS_COMPRESS_NONE; c <= LS_COMPRESS_ZSTD; c++) {
		struct ls_layer_result r1, r2;
		struct blob a = write_sample((enum ls_compress)c, true, &r1, NULL);
		struct blob b = write_sample((enum ls_compress)c, true, &r2, NULL);
		assert_int_equal(a.n, b.n);
		assert_memory_equal(a.p, b.p, a.n);
		assert_string_equal(r1.digest, r2.digest);
		free(a.p);
		free(b.p);
	}
}

static void test_digests_none(void **state)
{
	(void)state;
	struct ls_layer_result res;
	struct blob b = write_sample(LS_COMPRESS_NONE, false, &res, NULL);
	char want[72];
	sha256_of(b.p, b.n, want);
	assert_string_equal(res.diff_id, want);
	assert_string_equal(res.digest, want);
	assert_int_equal(strlen(res.digest), 71);
	free(b.p);
}

/* Inflates every member of a multi-member gzip stream (15 + 32: gzip or
 * zlib header detected, as readers do); *members counts them. */
static struct blob gunzip_members(const struct blob *gz, size_t *members)
{
	struct blob out = { NULL, 0 };
	z_stream z = { 0 };
	assert_int_equal(inflateInit2(&z, 15 + 32), Z_OK);
	z.next_in = gz->p;
	z.avail_in = (uInt)gz->n;
	unsigned char buf[65536];
	size_t n = 0;
	while (z.avail_in > 0) {
		/* every member: no flags or name, MTIME 0, XFL 0, OS Unix */
		const unsigned char *h = gz->p + (gz->n - z.avail_in);
		assert_true(z.avail_in >= 18);
		assert_memory_equal(h, "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10);
		int r;
		do {
			z.next_out = buf;
			z.avail_out = sizeof(buf);
			r = inflate(&z, Z_NO_FLUSH);
			if (r != Z_OK && r != Z_STREAM_END)
				fail_msg("inflate: %d %s", r, z.msg ? z.msg : "");
			if (r == Z_OK && z.avail_in == 0 && z.avail_out != 0)
				fail_msg("truncated gzip member");
			blob_append(&out, buf, sizeof(buf) - z.avail_out);
		} while (r != Z_STREAM_END);
		n++;
		assert_int_equal(inflateReset(&z), Z_OK);
	}
	inflateEnd(&z);
	if (members)
		*members = n;
	return out;
}

static struct blob gunzip(const struct blob *gz)
{
	return gunzip_members(gz, NULL);
}

static struct blob unzstd(const struct blob *zs)
{
	struct blob out = { NULL, 0 };
	ZSTD_DCtx *d = ZSTD_createDCtx();
	assert_non_null(d);
	ZSTD_inBuffer in = { zs->p, zs->n, 0 };
	unsigned char buf[65536];
	size_t r = 1;
	while (in.pos < in.size || r != 0) {
		ZSTD_outBuffer o = { buf, sizeof(buf), 0 };
		r = ZSTD_decompressStream(d, &o, &in);
		assert_false(ZSTD_isError(r));
		blob_append(&out, buf, o.pos);
		if (in.pos == in.size && o.pos == 0 && r != 0)
			fail_msg("truncated zstd frame");
	}
	ZSTD_freeDCtx(d);
	return out;
}

static void test_gzip(void **state)
{
	(void)state;
	struct ls_layer_result rn, rg;
	struct blob tar = write_sample(LS_COMPRESS_NONE, false, &rn, NULL);
	struct blob gz = write_sample(LS_COMPRESS_GZIP, false, &rg, NULL);
	assert_true(gz.n > 18);
	assert_int_equal(gz.p[0], 0x1f);
	assert_int_equal(gz.p[1], 0x8b);
	assert_int_equal(gz.p[3], 0);              /* no FNAME, no FEXTRA */
	assert_true(all_zero(gz.p + 4, 4));        /* MTIME */
	assert_int_equal(gz.p[9], 3);              /* OS: Unix, fixed */
	struct blob un = gunzip(&gz);
	assert_int_equal(un.n, tar.n);
	assert_memory_equal(un.p, tar.p, tar.n);
	char want[72];
	sha256_of(un.p, un.n, want);
	assert_string_equal(rg.diff_id, want);
	assert_string_equal(rg.diff_id, rn.diff_id);
	sha256_of(gz.p, gz.n, want);
	assert_string_equal(rg.digest, want);
	assert_int_equal(rg.size, gz.n);
	assert_int_equal(rg.bytes, tar.n);
	assert_string_equal(rg.media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
	free(tar.p);
	free(gz.p);
	free(un.p);
}

static void test_zstd(void **state)
{
	(void)state;
	struct ls_layer_result rn, rz;
	struct blob tar = write_sample(LS_COMPRESS_NONE, false, &rn, NULL);
	struct blob zs = write_sample(LS_COMPRESS_ZSTD, false, &rz, NULL);
	assert_true(zs.n > 8);
	assert_memory_equal(zs.p, "\x28\xb5\x2f\xfd", 4);
	assert_true(zs.p[4] & 0x04);               /* content checksum flag */
	struct blob un = unzstd(&zs);
	assert_int_equal(un.n, tar.n);
	assert_memory_equal(un.p, tar.p, tar.n);
	char want[72];
	sha256_of(un.p, un.n, want);
	assert_string_equal(rz.diff_id, want);
	sha256_of(zs.p, zs.n, want);
	assert_string_equal(rz.digest, want);
	assert_int_equal(rz.size, zs.n);
	assert_string_equal(rz.media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
	free(tar.p);
	free(zs.p);
	free(un.p);
}

/* Several MiB of content through every codec: the chunk loops, the staging
 * blocks and the output buffer all wrap several times. */
static void test_big_content(void **state)
{
	(void)state;
	size_t n = 3 * 1024 * 1024 + 517;
	unsigned char *data = malloc(n);
	assert_non_null(data);
	uint32_t x = 12345;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		data[i] = (unsigned char)(i < n / 2 ? x >> 24 : (i & 7)); /* half noise, half runs */
	}
	XXH128_hash_t want = XXH3_128bits(data, n);
	struct blob ref = { NULL, 0 };
	for (int c = LS_COMPRESS_NONE; c <= LS_COMPRESS_ZSTD; c++) {
		int out = new_memfd();
		struct ls_error err = { 0 };
		struct ls_layer_options o = { .compress = (enum ls_compress)c, .level = c ? 1 : 0 };
		struct ls_layer *l = NULL;
		assert_int_equal(ls_layer_open(&l, out, &o, &err), 0);
		int fd = content_fd(data, n);
		XXH3_state_t *st = XXH3_createState();
		XXH3_128bits_reset(st);
		struct ls_layer_entry f = { .path = "big", .mode = S_IFREG | 0644, .size = n };
		assert_int_equal(ls_layer_add(l, &f, fd, st, &err), 0);
		assert_true(XXH128_isEqual(XXH3_128bits_digest(st), want));
		XXH3_freeState(st);
		close(fd);
		struct ls_layer_result res;
		assert_int_equal(ls_layer_finish(l, &res, &err), 0);
		ls_layer_free(l);
		struct blob b = read_fd_all(out);
		close(out);
		assert_int_equal(res.size, b.n);
		char d[72];
		sha256_of(b.p, b.n, d);
		assert_string_equal(res.digest, d);
		struct blob t = c == LS_COMPRESS_NONE ? b
				: c == LS_COMPRESS_GZIP ? gunzip(&b) : unzstd(&b);
		assert_int_equal(res.bytes, t.n);
		sha256_of(t.p, t.n, d);
		assert_string_equal(res.diff_id, d);
		assert_int_equal(t.n, 512 + ((n + 511) / 512) * 512 + 1024);
		assert_memory_equal(t.p + 512, data, n);
		if (c == LS_COMPRESS_NONE) {
			ref = b;
		} else {
			assert_memory_equal(t.p, ref.p, ref.n);
			free(t.p);
			free(b.p);
		}
	}
	free(ref.p);
	free(data);
}

/* ---- threads: the same bytes for any count -------------------------------- */

/* A layer of about 12 MiB: small text files around a 5 MiB compressible
 * file and 4 MiB of noise, so that gzip writes a dozen members and libzstd
 * cuts two jobs.  Every file's content comes from one memfd, in order. */
#define MIX_SMALL 300
#define MIX_FILES (MIX_SMALL + 2)

struct mixed {
	int fd;
	size_t sizes[MIX_FILES];
};

static uint32_t prng(uint32_t *x)
{
	*x = *x * 1103515245u + 12345u;
	return *x >> 8;
}

static void mixed_init(struct mixed *m)
{
	static const char *const words[] = { "module", "export", "function", "return",
					     "const", "require", "undefined", "length",
					     "prototype", "=>", "{", "}", ";\n", "(", ")" };
	uint32_t x = 99;
	size_t total = 0;
	for (size_t i = 0; i < MIX_FILES; i++) {
		m->sizes[i] = i == MIX_SMALL / 2 ? (5u << 20) + 123
			    : i == MIX_SMALL / 2 + 1 ? (4u << 20) + 7
			    : prng(&x) % 16000;
		total += m->sizes[i];
	}
	unsigned char *data = malloc(total);
	assert_non_null(data);
	size_t off = 0;
	for (size_t i = 0; i < MIX_FILES; i++) {
		size_t end = off + m->sizes[i];
		if (i == MIX_SMALL / 2 + 1) {
			while (off < end)
				data[off++] = (unsigned char)prng(&x);
			continue;
		}
		while (off < end) {
			const char *w = words[prng(&x) % (sizeof(words) / sizeof(words[0]))];
			for (; *w && off < end; w++)
				data[off++] = (unsigned char)*w;
			if (off < end)
				data[off++] = ' ';
		}
	}
	m->fd = content_fd(data, total);
	free(data);
}

/* The layer of the first n files of m. */
static struct blob write_mixed_n(const struct mixed *m, size_t n, enum ls_compress c, int level,
				 int threads, struct ls_layer_result *res)
{
	int out = new_memfd();
	struct ls_error err = { 0 };
	struct ls_layer_options o = { .compress = c, .level = level, .threads = threads };
	struct ls_layer *l = NULL;
	if (ls_layer_open(&l, out, &o, &err))
		fail_msg("open: %s", err.msg);
	assert_int_equal(lseek(m->fd, 0, SEEK_SET), 0);
	char path[64];
	for (size_t i = 0; i < n; i++) {
		if (i % 50 == 0) {
			snprintf(path, sizeof(path), "d%zu", i / 50);
			struct ls_layer_entry d = { .path = path, .mode = S_IFDIR | 0755,
						    .mtime_sec = 1000 };
			assert_int_equal(ls_layer_add(l, &d, -1, NULL, &err), 0);
		}
		snprintf(path, sizeof(path), "d%zu/f%zu.js", i / 50, i);
		struct ls_layer_entry f = { .path = path, .mode = S_IFREG | 0644,
					    .mtime_sec = 1000 + (int64_t)i, .size = m->sizes[i] };
		if (ls_layer_add(l, &f, m->fd, NULL, &err))
			fail_msg("add %s: %s", path, err.msg);
	}
	assert_int_equal(ls_layer_add_whiteout(l, "d0/gone", &err), 0);
	if (ls_layer_finish(l, res, &err))
		fail_msg("finish: %s", err.msg);
	ls_layer_free(l);
	struct blob b = read_fd_all(out);
	close(out);
	return b;
}

static struct blob write_mixed(const struct mixed *m, enum ls_compress c, int level, int threads,
			       struct ls_layer_result *res)
{
	return write_mixed_n(m, MIX_FILES, c, level, threads, res);
}

/* Digests, sizes and media type of a compressed blob against its tar. */
static void check_result(const struct ls_layer_result *r, const struct blob *blob,
			 const struct blob *tar, const struct ls_layer_result *plain)
{
	char want[72];
	sha256_of(blob->p, blob->n, want);
	assert_string_equal(r->digest, want);
	assert_string_equal(r->diff_id, plain->diff_id);
	assert_int_equal(r->size, blob->n);
	assert_int_equal(r->bytes, tar->n);
}

/* The sample layer (far below one chunk or job) with 1 and 8 threads: the
 * same bytes; returns them. */
static struct blob sample_threads(enum ls_compress c)
{
	struct blob b[2];
	for (int i = 0; i < 2; i++) {
		int fd = new_memfd();
		struct ls_error err = { 0 };
		struct ls_layer_options o = { .compress = c, .threads = i ? 8 : 1 };
		struct ls_layer *l = NULL;
		assert_int_equal(ls_layer_open(&l, fd, &o, &err), 0);
		add_sample(l);
		assert_int_equal(ls_layer_finish(l, NULL, &err), 0);
		ls_layer_free(l);
		b[i] = read_fd_all(fd);
		close(fd);
	}
	assert_int_equal(b[0].n, b[1].n);
	assert_memory_equal(b[0].p, b[1].p, b[0].n);
	free(b[1].p);
	return b[0];
}

static void test_gzip_threads(void **state)
{
	(void)state;
	struct mixed m;
	mixed_init(&m);
	struct ls_layer_result rn;
	struct blob tar = write_mixed(&m, LS_COMPRESS_NONE, 0, 0, &rn);
	assert_true(tar.n > (9u << 20));
	static const int levels[] = { 1, 6, 9 };
	static const int threads[] = { 1, 2, 3, 8 };
	struct blob first = { NULL, 0 };
	for (size_t li = 0; li < sizeof(levels) / sizeof(levels[0]); li++) {
		/* the slow level: the small files only (2 members), two counts */
		bool slow = levels[li] == 9;
		size_t nf = slow ? MIX_SMALL / 2 : MIX_FILES;
		size_t nt = slow ? 2 : sizeof(threads) / sizeof(threads[0]);
		struct ls_layer_result rt;
		struct blob t = slow ? write_mixed_n(&m, nf, LS_COMPRESS_NONE, 0, 0, &rt) : tar;
		if (!slow)
			rt = rn;
		struct blob ref = { NULL, 0 };
		for (size_t ti = 0; ti < nt; ti++) {
			int nth = threads[slow ? 2 * ti + 1 : ti];
			struct ls_layer_result r;
			struct blob b = write_mixed_n(&m, nf, LS_COMPRESS_GZIP, levels[li], nth, &r);
			check_result(&r, &b, &t, &rt);
			if (!ref.p) {
				size_t members = 0;
				struct blob un = gunzip_members(&b, &members);
				assert_int_equal(un.n, t.n);
				assert_memory_equal(un.p, t.p, t.n);
				/* one member per MiB of tar */
				assert_int_equal(members, (t.n + (1u << 20) - 1) >> 20);
				free(un.p);
				ref = b;
				continue;
			}
			if (b.n != ref.n || memcmp(b.p, ref.p, b.n) != 0)
				fail_msg("gzip level %d: %d threads give other bytes", levels[li], nth);
			free(b.p);
		}
		if (slow) {
			assert_true(t.n > (1u << 20));
			free(t.p);
			free(ref.p);
		} else if (!first.p) {
			first = ref;
		} else {
			/* the level matters */
			assert_true(ref.n != first.n || memcmp(ref.p, first.p, ref.n) != 0);
			free(ref.p);
		}
	}
	free(first.p);

	/* a layer smaller than one chunk: a single member, as before */
	struct blob a = sample_threads(LS_COMPRESS_GZIP);
	size_t members = 0;
	struct blob un = gunzip_members(&a, &members);
	assert_int_equal(members, 1);
	free(un.p);
	free(a.p);
	free(tar.p);
	close(m.fd);
}

static void test_zstd_threads(void **state)
{
	(void)state;
	struct mixed m;
	mixed_init(&m);
	struct ls_layer_result rn;
	struct blob tar = write_mixed(&m, LS_COMPRESS_NONE, 0, 0, &rn);
	static const int levels[] = { 1, 3, 9 };
	static const int threads[] = { 1, 2, 3, 8 };
	for (size_t li = 0; li < sizeof(levels) / sizeof(levels[0]); li++) {
		struct blob ref = { NULL, 0 };
		for (size_t ti = 0; ti < sizeof(threads) / sizeof(threads[0]); ti++) {
			struct ls_layer_result r;
			struct blob b = write_mixed(&m, LS_COMPRESS_ZSTD, levels[li], threads[ti], &r);
			check_result(&r, &b, &tar, &rn);
			if (!ref.p) {
				/* one frame, with a content checksum */
				assert_memory_equal(b.p, "\x28\xb5\x2f\xfd", 4);
				assert_true(b.p[4] & 0x04);
				assert_int_equal(ZSTD_findFrameCompressedSize(b.p, b.n), b.n);
				struct blob un = unzstd(&b);
				assert_int_equal(un.n, tar.n);
				assert_memory_equal(un.p, tar.p, tar.n);
				free(un.p);
				ref = b;
				continue;
			}
			if (b.n != ref.n || memcmp(b.p, ref.p, b.n) != 0)
				fail_msg("zstd level %d: %d threads give other bytes", levels[li],
					 threads[ti]);
			free(b.p);
		}
		free(ref.p);
	}
	struct blob a = sample_threads(LS_COMPRESS_ZSTD);
	struct blob un = unzstd(&a);
	free(un.p);
	free(a.p);
	free(tar.p);
	close(m.fd);
}

/* A full disk, a file size limit: one-line errors from add or finish, for
 * every codec and thread count, and nothing hangs.  lim, when given, is in
 * force only while the layer is written. */
static void check_sink_error(const struct mixed *m, int out, enum ls_compress c, int threads,
			     const struct rlimit *lim, int code)
{
	struct rlimit old;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	struct ls_error err = { 0 };
	struct ls_layer_options o = { .compress = c, .threads = threads };
	struct ls_layer *l = NULL;
	assert_int_equal(ls_layer_open(&l, out, &o, &err), 0);
	assert_int_equal(lseek(m->fd, 0, SEEK_SET), 0);
	if (lim)
		assert_int_equal(setrlimit(RLIMIT_FSIZE, lim), 0);
	int r = 0;
	for (size_t i = 0; i < MIX_FILES && r == 0; i++) {
		char path[32];
		snprintf(path, sizeof(path), "f%zu", i);
		struct ls_layer_entry f = { .path = path, .mode = S_IFREG | 0644,
					    .size = m->sizes[i] };
		r = ls_layer_add(l, &f, m->fd, NULL, &err);
	}
	if (r == 0)
		r = ls_layer_finish(l, NULL, &err);
	if (lim)
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(r, -code);
	char want[128];
	snprintf(want, sizeof(want), "layer: write: %s", strerror(code));
	if (strcmp(err.msg, want) != 0)
		fail_msg("unexpected message: %s", err.msg);
	struct ls_error later = { 0 };
	assert_true(ls_layer_finish(l, NULL, &later) < 0);
	ls_layer_free(l);
}

static void test_sink_errors(void **state)
{
	(void)state;
	struct mixed m;
	mixed_init(&m);
	int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
	if (full >= 0) {
		for (int c = LS_COMPRESS_NONE; c <= LS_COMPRESS_ZSTD; c++) {
			check_sink_error(&m, full, (enum ls_compress)c, 1, NULL, ENOSPC);
			check_sink_error(&m, full, (enum ls_compress)c, 8, NULL, ENOSPC);
		}
		close(full);
	} else {
		ls_skip_part("devfull", "no /dev/full (%s): ENOSPC from the layer sink", strerror(errno));
	}

	/* EFBIG: writes past RLIMIT_FSIZE, with SIGXFSZ ignored */
	struct rlimit cur;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &cur), 0);
	struct rlimit lim = { 1u << 20, cur.rlim_max };
	struct sigaction ign = { .sa_handler = SIG_IGN }, prev;
	assert_int_equal(sigaction(SIGXFSZ, &ign, &prev), 0);
	for (int c = LS_COMPRESS_NONE; c <= LS_COMPRESS_ZSTD; c++) {
		int out = new_memfd();
		check_sink_error(&m, out, (enum ls_compress)c, 2, &lim, EFBIG);
		close(out);
	}
	assert_int_equal(sigaction(SIGXFSZ, &prev, NULL), 0);
	close(m.fd);
}

/* Freeing a layer in the middle of a file joins every thread and writes
 * nothing more. */
static void test_free_unfinished(void **state)
{
	(void)state;
	struct mixed m;
	mixed_init(&m);
	for (int c = LS_COMPRESS_NONE; c <= LS_COMPRESS_ZSTD; c++) {
		for (int threads = 1; threads <= 8; threads *= 8) {
			int out = new_memfd();
			struct ls_error err = { 0 };
			struct ls_layer_options o = { .compress = (enum ls_compress)c,
						      .threads = threads };
			struct ls_layer *l = NULL;
			assert_int_equal(ls_layer_open(&l, out, &o, &err), 0);
			assert_int_equal(lseek(m.fd, 0, SEEK_SET), 0);
			for (size_t i = 0; i < MIX_SMALL / 2 + 2; i++) {
				char path[32];
				snprintf(path, sizeof(path), "f%zu", i);
				struct ls_layer_entry f = { .path = path, .mode = S_IFREG | 0644,
							    .size = m.sizes[i] };
				assert_int_equal(ls_layer_add(l, &f, m.fd, NULL, &err), 0);
			}
			ls_layer_free(l);
			/* what was written stays a prefix: no end blocks appended */
			struct blob b = read_fd_all(out);
			close(out);
			if (c == LS_COMPRESS_NONE && b.n >= 1024)
				assert_false(all_zero(b.p + b.n - 1024, 1024));
			free(b.p);
		}
	}
	close(m.fd);
}

static void test_hash_and_offset(void **state)
{
	(void)state;
	const char data[] = "0123456789abcdefghij";
	int out = new_memfd();
	struct ls_error err = { 0 };
	struct ls_layer_options o = { 0 };
	struct ls_layer *l = NULL;
	assert_int_equal(ls_layer_open(&l, out, &o, &err), 0);
	int fd = content_fd(data, 20);
	assert_int_equal(lseek(fd, 5, SEEK_SET), 5);  /* copies from the current offset */
	XXH3_state_t *st = XXH3_createState();
	XXH3_128bits_reset(st);
	struct ls_layer_entry f = { .path = "f", .mode = S_IFREG | 0644, .size = 10 };
	assert_int_equal(ls_layer_add(l, &f, fd, st, &err), 0);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 15);  /* nothing read beyond size */
	assert_true(XXH128_isEqual(XXH3_128bits_digest(st), XXH3_128bits(data + 5, 10)));
	XXH3_freeState(st);
	close(fd);
	assert_int_equal(ls_layer_finish(l, NULL, &err), 0);
	ls_layer_free(l);
	struct blob b = read_fd_all(out);
	close(out);
	assert_int_equal(b.n, 2048);
	assert_memory_equal(b.p + 512, data + 5, 10);
	assert_true(all_zero(b.p + 522, 502));
	free(b.p);

	XXH128_hash_t hv;
	b = write_sample(LS_COMPRESS_NONE, false, NULL, &hv);
	assert_true(XXH128_isEqual(hv, XXH3_128bits(file_data, strlen(file_data))));
	free(b.p);
}

static void test_early_eof(void **state)
{
	(void)state;
	for (int c = LS_COMPRESS_NONE; c <= LS_COMPRESS_ZSTD; c++) {
		int out = new_memfd();
		struct ls_error err = { 0 };
		struct ls_layer_options o = { .compress = (enum ls_compress)c };
		struct ls_layer *l = NULL;
		assert_int_equal(ls_layer_open(&l, out, &o, &err), 0);
		int fd = content_fd("short", 5);
		struct ls_layer_entry f = { .path = "d/short", .mode = S_IFREG | 0644, .size = 100 };
		int r = ls_layer_add(l, &f, fd, NULL, &err);
		assert_true(r < 0);
		assert_int_equal(-r, err.code);
		assert_string_equal(err.msg, "d/short: changed while being read");
		close(fd);
		/* the stream is inconsistent: nothing more is accepted */
		assert_true(ls_layer_add_whiteout(l, "x", &err) < 0);
		assert_true(ls_layer_finish(l, NULL, &err) < 0);
		ls_layer_free(l);
		/* an abandoned layer does not emit end blocks while being freed */
		struct blob b = read_fd_all(out);
		close(out);
		assert_int_equal(b.n, 0);
		free(b.p);
	}
}

static void test_invalid(void **state)
{
	(void)state;
	struct ls_error err = { 0 };
	struct ls_layer *l = NULL;
	struct ls_layer_options bad_gz = { .compress = LS_COMPRESS_GZIP, .level = 10 };
	assert_int_equal(ls_layer_open(&l, 1, &bad_gz, &err), -EINVAL);
	assert_null(l);
	bad_gz.level = -1;
	assert_int_equal(ls_layer_open(&l, 1, &bad_gz, &err), -EINVAL);
	struct ls_layer_options bad_zs = { .compress = LS_COMPRESS_ZSTD, .level = 99 };
	assert_int_equal(ls_layer_open(&l, 1, &bad_zs, &err), -EINVAL);
	struct ls_layer_options bad_c = { .compress = (enum ls_compress)7 };
	assert_int_equal(ls_layer_open(&l, 1, &bad_c, &err), -EINVAL);
	ls_layer_free(NULL);

	int out = new_memfd();
	struct ls_layer_options o = { 0 };
	assert_int_equal(ls_layer_open(&l, out, &o, &err), 0);
	struct ls_layer_entry s = { .path = "sock", .mode = S_IFSOCK | 0755 };
	assert_int_equal(ls_layer_add(l, &s, -1, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "sock"));
	struct ls_layer_entry e = { .path = "", .mode = S_IFREG | 0644 };
	assert_int_equal(ls_layer_add(l, &e, -1, NULL, &err), -EINVAL);
	struct ls_layer_entry hd = { .path = "d", .mode = S_IFDIR | 0755, .hardlink = "x" };
	assert_int_equal(ls_layer_add(l, &hd, -1, NULL, &err), -EINVAL);
	struct ls_layer_entry ab = { .path = "/etc", .mode = S_IFDIR | 0755 };
	assert_int_equal(ls_layer_add(l, &ab, -1, NULL, &err), -EINVAL);
	struct ls_layer_entry sl = { .path = "etc/", .mode = S_IFDIR | 0755 };
	assert_int_equal(ls_layer_add(l, &sl, -1, NULL, &err), -EINVAL);
	struct ls_layer_entry nt = { .path = "l", .mode = S_IFLNK | 0777 };
	assert_int_equal(ls_layer_add(l, &nt, -1, NULL, &err), -EINVAL);
	assert_int_equal(ls_layer_add_opaque(l, "d/", &err), -EINVAL);
	assert_int_equal(ls_layer_add_whiteout(l, "d/", &err), -EINVAL);
	assert_int_equal(ls_layer_add_whiteout(l, "", &err), -EINVAL);
	/* refused entries leave the stream intact */
	struct ls_layer_result res;
	assert_int_equal(ls_layer_finish(l, &res, &err), 0);
	assert_int_equal(res.entries, 0);
	assert_int_equal(res.bytes, 1024);
	assert_true(ls_layer_add_whiteout(l, "x", &err) < 0);  /* after finish */
	assert_true(ls_layer_finish(l, &res, &err) < 0);
	ls_layer_free(l);
	close(out);
}

static void test_write_error(void **state)
{
	(void)state;
	struct ls_error err = { 0 };
	struct ls_layer_options o = { 0 };
	struct ls_layer *l = NULL;

	/* failure at the final flush */
	int ro = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(ro >= 0);
	assert_int_equal(ls_layer_open(&l, ro, &o, &err), 0);
	assert_int_equal(ls_layer_add_whiteout(l, "x", &err), 0);
	assert_int_equal(ls_layer_finish(l, NULL, &err), -EBADF);
	assert_non_null(strstr(err.msg, "layer: write: "));
	ls_layer_free(l);

	/* failure in the middle of a file */
	for (int c = LS_COMPRESS_NONE; c <= LS_COMPRESS_ZSTD; c++) {
		o.compress = (enum ls_compress)c;
		assert_int_equal(ls_layer_open(&l, ro, &o, &err), 0);
		size_t n = 4u << 20;
		unsigned char *data = malloc(n);
		assert_non_null(data);
		uint32_t x = 7;  /* incompressible, so every codec must write */
		for (size_t i = 0; i < n; i++) {
			x = x * 1103515245u + 12345u;
			data[i] = (unsigned char)(x >> 24);
		}
		int fd = content_fd(data, n);
		free(data);
		struct ls_layer_entry f = { .path = "big", .mode = S_IFREG | 0644, .size = n };
		/* The output is written by the stream thread: its failure shows
		 * in this call or, at the latest, in finish. */
		int r = ls_layer_add(l, &f, fd, NULL, &err);
		struct ls_error later = { 0 };
		if (r == 0)
			r = ls_layer_finish(l, NULL, &err);
		else
			assert_true(ls_layer_finish(l, NULL, &later) < 0);
		assert_int_equal(r, -EBADF);
		if (!strstr(err.msg, "layer: write: "))
			fail_msg("unexpected message: %s", err.msg);
		close(fd);
		ls_layer_free(l);
	}
	close(ro);
}

/* Non-ASCII names: the same bytes in every locale, raw bytes on read-back. */
static const char *const names[] = {
	"caf\xc3\xa9",            /* valid UTF-8, NFC */
	"cafe\xcc\x81",           /* valid UTF-8, NFD: must not be normalised */
	"\xf0\x9f\x98\x80",       /* 4-byte UTF-8 */
	"bad\xff\xfe",            /* invalid bytes */
	"trunc\xe2\x82",          /* truncated sequence */
	"sur\xed\xa0\x80",        /* encoded surrogate */
	"over\xc0\xaf",           /* overlong */
	"ascii",
};
#define N_NAMES (sizeof(names) / sizeof(names[0]))

static struct blob write_names(void)
{
	int out = new_memfd();
	struct ls_error err = { 0 };
	struct ls_layer_options o = { 0 };
	struct ls_layer *l = NULL;
	assert_int_equal(ls_layer_open(&l, out, &o, &err), 0);
	for (size_t i = 0; i < N_NAMES; i++) {
		struct ls_layer_entry f = { .path = names[i], .mode = S_IFREG | 0644 };
		if (ls_layer_add(l, &f, -1, NULL, &err))
			fail_msg("add: %s", err.msg);
	}
	struct ls_layer_entry s = { .path = "ln\xc3\xa9", .mode = S_IFLNK | 0777,
				    .link_target = "t\xff\xc3\xa9" };
	assert_int_equal(ls_layer_add(l, &s, -1, NULL, &err), 0);
	struct ls_layer_entry h = { .path = "hl", .mode = S_IFREG | 0644, .hardlink = "bad\xff\xfe" };
	assert_int_equal(ls_layer_add(l, &h, -1, NULL, &err), 0);
	assert_int_equal(ls_layer_add_whiteout(l, "d\xff/x\xc3\xa9", &err), 0);
	assert_int_equal(ls_layer_finish(l, NULL, &err), 0);
	ls_layer_free(l);
	struct blob b = read_fd_all(out);
	close(out);
	return b;
}

static void test_locale(void **state)
{
	(void)state;
	assert_non_null(setlocale(LC_ALL, "C"));
	struct blob c = write_names();
	if (setlocale(LC_ALL, "C.UTF-8")) {
		struct blob u = write_names();
		assert_int_equal(c.n, u.n);
		assert_memory_equal(c.p, u.p, c.n);
		free(u.p);
	} else {
		ls_skip_part("locale", "no C.UTF-8 locale: layer bytes compared in the C locale only");
	}
	/* every non-ASCII name is stored as raw bytes, flagged BINARY */
	assert_true(contains(&c, " hdrcharset=BINARY\n"));
	assert_true(contains(&c, " path=cafe\xcc\x81\n"));

	/* libarchive gives the exact bytes back in either locale */
	for (int loc = 0; loc < 2; loc++) {
		if (!setlocale(LC_ALL, loc ? "C.UTF-8" : "C"))
			continue;
		struct archive *a = archive_read_new();
		archive_read_support_format_tar(a);
		assert_int_equal(archive_read_open_memory(a, c.p, c.n), ARCHIVE_OK);
		struct archive_entry *ae;
		for (size_t i = 0; i < N_NAMES + 3; i++) {
			assert_int_equal(archive_read_next_header(a, &ae), ARCHIVE_OK);
			const char *p = archive_entry_pathname(ae);
			if (i < N_NAMES)
				assert_string_equal(p, names[i]);
			else if (i == N_NAMES) {
				assert_string_equal(p, "ln\xc3\xa9");
				assert_string_equal(archive_entry_symlink(ae), "t\xff\xc3\xa9");
			} else if (i == N_NAMES + 1) {
				assert_string_equal(p, "hl");
				assert_string_equal(archive_entry_hardlink(ae), "bad\xff\xfe");
			} else {
				assert_string_equal(p, "d\xff/.wh.x\xc3\xa9");
			}
		}
		assert_int_equal(archive_read_next_header(a, &ae), ARCHIVE_EOF);
		archive_read_free(a);
	}
	assert_non_null(setlocale(LC_ALL, "C"));
	free(c.p);
}

/* Streams the layer from a pipe: keeps the head, counts and hashes all. */
struct big_reader {
	int fd;
	unsigned char head[8192];
	size_t head_len;
	unsigned char tail[1024];
	uint64_t total;
	bool tail_zero;
	EVP_MD_CTX *sha;
};

static void *big_reader_main(void *arg)
{
	struct big_reader *br = arg;
	size_t cap = 1u << 20;
	unsigned char *buf = malloc(cap);
	for (;;) {
		ssize_t n = buf ? read(br->fd, buf, cap) : -1;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		size_t c = sizeof(br->head) - br->head_len;
		if (c > (size_t)n)
			c = (size_t)n;
		memcpy(br->head + br->head_len, buf, c);
		br->head_len += c;
		EVP_DigestUpdate(br->sha, buf, (size_t)n);
		br->total += (uint64_t)n;
		if (n >= 1024)
			br->tail_zero = all_zero(buf + n - 1024, 1024);
		else
			br->tail_zero = br->tail_zero && all_zero(buf, (size_t)n);
	}
	free(buf);
	return NULL;
}

/* A size above the ustar limit (8 GiB - 1) needs a pax "size" record.  It
 * streams 8 GiB, so it only runs with LAYERSNAP_TEST_LARGE=1. */
static void test_large_size(void **state)
{
	(void)state;
	const char *env = getenv("LAYERSNAP_TEST_LARGE");
	if (!env || strcmp(env, "1") != 0) {
		ls_skip_part("large", "LAYERSNAP_TEST_LARGE=1 not set (make soak, .ci/run: LS_LARGE=1)");
		skip();
	}
	const uint64_t size = (8ull << 30) + 1;
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	struct big_reader br = { .fd = p[0], .sha = EVP_MD_CTX_new() };
	assert_non_null(br.sha);
	assert_int_equal(EVP_DigestInit_ex(br.sha, EVP_sha256(), NULL), 1);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, big_reader_main, &br), 0);

	struct ls_error err = { 0 };
	struct ls_layer_options o = { 0 };
	struct ls_layer *l = NULL;
	assert_int_equal(ls_layer_open(&l, p[1], &o, &err), 0);
	int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	assert_true(zero >= 0);
	struct ls_layer_entry f = { .path = "huge", .mode = S_IFREG | 0600, .uid = 3000000,
				    .size = size };
	assert_int_equal(ls_layer_add(l, &f, zero, NULL, &err), 0);
	close(zero);
	struct ls_layer_result res;
	assert_int_equal(ls_layer_finish(l, &res, &err), 0);
	ls_layer_free(l);
	close(p[1]);
	assert_int_equal(pthread_join(t, NULL), 0);
	close(p[0]);

	assert_int_equal(res.bytes, br.total);
	assert_int_equal(br.total, 3 * 512 + ((size + 511) / 512) * 512 + 1024);
	assert_true(br.tail_zero);
	unsigned char md[32];
	unsigned int len = 0;
	assert_int_equal(EVP_DigestFinal_ex(br.sha, md, &len), 1);
	EVP_MD_CTX_free(br.sha);
	char want[72] = "sha256:";
	for (int i = 0; i < 32; i++)
		sprintf(want + 7 + 2 * i, "%02x", md[i]);
	assert_string_equal(res.diff_id, want);

	struct blob head = { br.head, br.head_len };
	assert_true(contains(&head, " size=8589934593\n"));
	struct archive *a = archive_read_new();
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_memory(a, br.head, br.head_len), ARCHIVE_OK);
	struct archive_entry *ae;
	assert_int_equal(archive_read_next_header(a, &ae), ARCHIVE_OK);
	assert_string_equal(archive_entry_pathname(ae), "huge");
	assert_int_equal(archive_entry_size(ae), size);
	assert_int_equal(archive_entry_uid(ae), 3000000);
	archive_read_free(a);
}

/* ---- ustar headers written like libarchive's ------------------------------ */

/* The reference: libarchive's restricted pax writer, configured as the
 * layer's (unbuffered, SCHILY xattrs, names encoded under "C"). */
struct oracle {
	struct archive *a;
	struct archive_entry *ae;
	struct blob out;
	locale_t c;
};

static la_ssize_t oracle_write(struct archive *a, void *ctx, const void *buf, size_t n)
{
	(void)a;
	blob_append(ctx, buf, n);
	return (la_ssize_t)n;
}

static void oracle_open(struct oracle *o)
{
	memset(o, 0, sizeof(*o));
	o->c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	assert_non_null(o->c);
	o->a = archive_write_new();
	o->ae = archive_entry_new();
	assert_non_null(o->a);
	assert_non_null(o->ae);
	assert_int_equal(archive_write_set_format_pax_restricted(o->a), ARCHIVE_OK);
	assert_int_equal(archive_write_set_format_option(o->a, "pax", "xattrheader", "SCHILY"),
			 ARCHIVE_OK);
	assert_int_equal(archive_write_set_bytes_per_block(o->a, 0), ARCHIVE_OK);
	assert_int_equal(archive_write_set_bytes_in_last_block(o->a, 1), ARCHIVE_OK);
	assert_int_equal(archive_write_open2(o->a, &o->out, NULL, oracle_write, NULL, NULL),
			 ARCHIVE_OK);
}

static void oracle_add(struct oracle *o, const struct ls_layer_entry *e, const void *data)
{
	unsigned type = e->mode & S_IFMT;
	char name[1024];
	snprintf(name, sizeof(name), "%s%s", e->path, type == S_IFDIR ? "/" : "");
	bool copy = type == S_IFREG && !e->hardlink;
	struct archive_entry *ae = o->ae;
	archive_entry_clear(ae);
	archive_entry_set_pathname(ae, name);
	archive_entry_set_mode(ae, e->mode);
	archive_entry_set_uid(ae, e->uid);
	archive_entry_set_gid(ae, e->gid);
	archive_entry_set_mtime(ae, e->mtime_sec, 0);
	archive_entry_set_size(ae, copy ? (la_int64_t)e->size : 0);
	if (e->hardlink)
		archive_entry_set_hardlink(ae, e->hardlink);
	else if (type == S_IFLNK)
		archive_entry_set_symlink(ae, e->link_target);
	else if (type == S_IFCHR || type == S_IFBLK) {
		archive_entry_set_rdevmajor(ae, major(e->rdev));
		archive_entry_set_rdevminor(ae, minor(e->rdev));
	}
	for (size_t i = e->n_xattrs; i-- > 0;)
		archive_entry_xattr_add_entry(ae, e->xattrs[i].name, e->xattrs[i].value,
					      e->xattrs[i].value_len);
	locale_t old = uselocale(o->c);
	int r = archive_write_header(o->a, ae);
	uselocale(old);
	assert_true(r == ARCHIVE_OK || r == ARCHIVE_WARN);
	if (copy && e->size)
		assert_int_equal(archive_write_data(o->a, data, e->size), (la_ssize_t)e->size);
	assert_int_equal(archive_write_finish_entry(o->a), ARCHIVE_OK);
}

static struct blob oracle_close(struct oracle *o)
{
	assert_int_equal(archive_write_close(o->a), ARCHIVE_OK);
	archive_write_free(o->a);
	archive_entry_free(o->ae);
	freelocale(o->c);
	return o->out;
}

/* A random relative path: ASCII (control bytes, spaces and backslashes
 * too) with many '/', now and then a high byte. */
static void random_path(uint32_t *x, char *out, size_t max)
{
	static const char chars[] = "ab/c.d-e_f/g/0/ \n\\\x01\x7f~";
	size_t len = 1 + prng(x) % max;
	for (size_t i = 0; i < len; i++)
		out[i] = chars[prng(x) % (sizeof(chars) - 1)];
	if (prng(x) % 16 == 0)
		out[prng(x) % len] = (char)(0x80 | prng(x));
	out[0] = out[0] == '/' ? 'r' : out[0];
	out[len - 1] = out[len - 1] == '/' ? 'z' : out[len - 1];
	out[len] = '\0';
}

/* A path of len bytes whose last '/' is at slash (or none when slash < 0). */
static void path_with_slash(char *out, size_t len, long slash)
{
	memset(out, 'p', len);
	if (slash >= 0)
		out[slash] = '/';
	out[len] = '\0';
}

/*
 * The writer builds plain ustar headers itself for the entries that need no
 * pax extension, and leaves the rest to libarchive: either way the bytes
 * must be libarchive's.  Both sides of every limit (name split, link length,
 * ids, times, device numbers, non-ASCII), then random entries.  Only a limit
 * the writer takes too far can fail this: one it takes too short sends more
 * entries to libarchive, whose bytes are the same.
 */
static void test_ustar_like_libarchive(void **state)
{
	(void)state;
	enum { PATHS = 48, RANDOM = 600 };
	static char paths[PATHS + RANDOM][400], links[PATHS + RANDOM][160];
	static const uint32_t ids[] = { 0, 1, 0777777, 01000000, 65534, UINT32_MAX };
	static const int64_t times[] = { 0, 1, 1700000000, 0x7ffffffe, 0x7fffffff, -1,
					 INT64_C(1) << 33, INT64_MIN / 2 };
	static const uint64_t sizes[] = { 0, 1, 511, 512, 513, 1500 };
	static const unsigned int devs[] = { 0, 7, 0777777, 01000000 };
	static const uint32_t types[] = { S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO };
	unsigned char data[1500];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 7 + 3);

	struct ls_layer_entry ents[PATHS + RANDOM];
	size_t n = 0;
	/* names: at the 100-byte field, and split into prefix (<= 155) and name
	 * (<= 100) at the first '/' that allows it */
	static const struct {
		size_t len;
		long slash;
	} edges[] = {
		{ 99, -1 },   { 100, -1 },  { 101, -1 },  { 101, 0 },   { 101, 1 },   { 102, 100 },
		{ 150, 49 },  { 150, 50 },  { 150, 48 },  { 200, 99 },  { 200, 155 }, { 256, 155 },
		{ 256, 156 }, { 255, 154 }, { 256, 100 }, { 300, 200 }, { 101, 99 },  { 257, 156 },
	};
	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++, n++) {
		path_with_slash(paths[n], edges[i].len, edges[i].slash);
		paths[n][0] = paths[n][0] == '/' ? 'q' : paths[n][0];
		ents[n] = (struct ls_layer_entry){ .path = paths[n], .mode = S_IFREG | 0644,
						   .size = sizes[i % 6] };
	}
	/* directories: their '/' counts */
	path_with_slash(paths[n], 99, -1);
	ents[n] = (struct ls_layer_entry){ .path = paths[n], .mode = S_IFDIR | 0755 }, n++;
	path_with_slash(paths[n], 100, -1);
	ents[n] = (struct ls_layer_entry){ .path = paths[n], .mode = S_IFDIR | 0755 }, n++;
	path_with_slash(paths[n], 155, 54);
	ents[n] = (struct ls_layer_entry){ .path = paths[n], .mode = S_IFDIR | 0755 }, n++;
	/* link names at 100 and 101 bytes, ASCII or not */
	for (int k = 0; k < 4; k++, n++) {
		snprintf(paths[n], sizeof(paths[n]), "link%d", k);
		path_with_slash(links[n], k & 1 ? 101 : 100, 40);
		if (k & 2)
			links[n][7] = (char)0xe9;
		ents[n] = (struct ls_layer_entry){ .path = paths[n], .mode = S_IFLNK | 0777,
						   .link_target = links[n] };
		if (k == 3) {
			ents[n].mode = S_IFREG | 0644;
			ents[n].hardlink = "hard/link/target";
			ents[n].link_target = NULL;
		} else if (k == 1) {
			ents[n].hardlink = links[n];
			ents[n].link_target = NULL;
		}
	}
	/* a hard link to a device carries no device numbers */
	snprintf(paths[n], sizeof(paths[n]), "devlink");
	ents[n] = (struct ls_layer_entry){ .path = paths[n], .mode = S_IFCHR | 0600,
					   .rdev = makedev(01000000, 3), .hardlink = "dev" }, n++;
	/* a name with a high byte */
	snprintf(paths[n], sizeof(paths[n]), "caf\xc3\xa9");
	ents[n] = (struct ls_layer_entry){ .path = paths[n], .mode = S_IFREG | 0644, .size = 5 }, n++;
	/* xattrs need an extension */
	snprintf(paths[n], sizeof(paths[n]), "cap");
	ents[n] = (struct ls_layer_entry){ .path = paths[n], .mode = S_IFREG | 04755, .size = 3,
					   .xattrs = sample_xattrs, .n_xattrs = 1 }, n++;
	assert_true(n <= PATHS);

	/* random entries: every type, ids, times and devices from the edges */
	uint32_t x = 4242;
	for (size_t i = 0; i < RANDOM; i++, n++) {
		random_path(&x, paths[n], i % 3 == 0 ? 90 : 300);
		uint32_t type = types[prng(&x) % 6];
		struct ls_layer_entry *e = &ents[n];
		*e = (struct ls_layer_entry){
			.path = paths[n],
			.mode = type | (prng(&x) & 07777),
			.uid = prng(&x) % 3 ? ids[prng(&x) % 4] : ids[prng(&x) % 6],
			.gid = prng(&x) % 3 ? ids[prng(&x) % 4] : ids[prng(&x) % 6],
			.mtime_sec = prng(&x) % 4 ? times[prng(&x) % 3] : times[prng(&x) % 8],
		};
		if (type == S_IFREG)
			e->size = sizes[prng(&x) % 6];
		if (type == S_IFCHR || type == S_IFBLK)
			e->rdev = makedev(devs[prng(&x) % 4], devs[prng(&x) % 4]);
		if (type == S_IFLNK) {
			random_path(&x, links[n], 120);
			e->link_target = links[n];
		} else if (type != S_IFDIR && prng(&x) % 8 == 0) {
			random_path(&x, links[n], 120);
			e->hardlink = links[n];
		}
	}

	int out = new_memfd();
	struct ls_error err = { 0 };
	struct ls_layer_options opts = { 0 };
	struct ls_layer *l = NULL;
	struct oracle o;
	oracle_open(&o);
	assert_int_equal(ls_layer_open(&l, out, &opts, &err), 0);
	for (size_t i = 0; i < n; i++) {
		if (ls_layer_add_data(l, &ents[i], data, &err))
			fail_msg("add %s: %s", ents[i].path, err.msg);
		oracle_add(&o, &ents[i], data);
		if (i % 50 == 0) {
			/* whiteouts, and an opaque marker, of the same name */
			assert_int_equal(ls_layer_add_whiteout(l, ents[i].path, &err), 0);
			const char *slash = strrchr(ents[i].path, '/');
			char wh[512];
			snprintf(wh, sizeof(wh), "%.*s.wh.%s",
				 slash ? (int)(slash - ents[i].path + 1) : 0, ents[i].path,
				 slash ? slash + 1 : ents[i].path);
			struct ls_layer_entry m = { .path = wh, .mode = S_IFREG };
			oracle_add(&o, &m, NULL);
			assert_int_equal(ls_layer_add_opaque(l, ents[i].path, &err), 0);
			snprintf(wh, sizeof(wh), "%s/.wh..wh..opq", ents[i].path);
			oracle_add(&o, &m, NULL);
		}
	}
	assert_int_equal(ls_layer_finish(l, NULL, &err), 0);
	ls_layer_free(l);
	struct blob got = read_fd_all(out);
	close(out);
	struct blob want = oracle_close(&o);
	size_t first = 0;
	while (first < got.n && first < want.n && got.p[first] == want.p[first])
		first++;
	if (got.n != want.n || first < got.n)
		fail_msg("tar differs from libarchive's at byte %zu (block %zu): %zu against %zu bytes",
			 first, first / 512, got.n, want.n);
	free(got.p);
	free(want.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_entries),
		cmocka_unit_test(test_raw_pax),
		cmocka_unit_test(test_end_file),
		cmocka_unit_test(test_end_pipe),
		cmocka_unit_test(test_reproducible),
		cmocka_unit_test(test_digests_none),
		cmocka_unit_test(test_gzip),
		cmocka_unit_test(test_zstd),
		cmocka_unit_test(test_big_content),
		cmocka_unit_test(test_gzip_threads),
		cmocka_unit_test(test_zstd_threads),
		cmocka_unit_test(test_sink_errors),
		cmocka_unit_test(test_free_unfinished),
		cmocka_unit_test(test_hash_and_offset),
		cmocka_unit_test(test_early_eof),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_write_error),
		cmocka_unit_test(test_locale),
		cmocka_unit_test(test_ustar_like_libarchive),
		cmocka_unit_test(test_large_size),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
