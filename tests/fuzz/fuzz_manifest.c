/*
 * Fuzz target: the manifest reader (ls_manifest_parse) and what runs on a
 * manifest it accepted.
 *
 * The input is a manifest file.  Its XXH3-64 checksum (the last 8 bytes of
 * the 24-byte trailer of format 2, over every byte before it) is recomputed
 * first, so that mutated inputs get past it; when the trailer's sizes do not
 * add up, a second copy with them repaired (the entry count clamped to what
 * fits, the pool's length the rest) is tried as well.  For each copy:
 *  - parse: 0, or a negative code with a one-line message;
 *  - accepted: written back with ls_manifest_write_fd, it gives the same
 *    bytes (the reader checked everything the writer derives);
 *  - every record is found again by its path (the order is walk order);
 *  - dumped as mtree and as JSON (to a memory stream): both succeed, the
 *    mtree spec has one line per entry plus two;
 *  - compared with itself in each mode its records serve (full only for a
 *    full manifest), with and without --mtime-seconds: no change (the
 *    reader refuses a full manifest with an unhashed regular file, whose
 *    unknown content would be modified against itself); against an empty
 *    manifest: every entry deleted, then added.
 */
#include "fuzz.h"
#include "manifest.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define TRAILER 24
#define MIN_LEN (32 + 16 + TRAILER)
#define REC 96

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static void fix_checksum(uint8_t *buf, size_t len)
{
	if (len >= MIN_LEN)
		put64(buf + len - 8, XXH3_64bits(buf, len - 8));
}

/* Makes the trailer's sizes fit the file; true when it changed them. */
static bool fix_sizes(uint8_t *buf, size_t len)
{
	if (len < MIN_LEN)
		return false;
	uint32_t hl;
	memcpy(&hl, buf + 12, 4);
	size_t body = len - TRAILER;
	if (hl < 48 || hl % 8 || hl > body)
		return false;
	uint64_t n = get64(buf + body), pool = get64(buf + body + 8);
	uint64_t max_n = (body - hl) / REC;
	uint64_t nn = n <= max_n ? n : max_n;
	uint64_t np = body - hl - nn * REC;
	if (nn == n && np == pool)
		return false;
	put64(buf + body, nn);
	put64(buf + body + 8, np);
	return true;
}

struct count {
	long calls;
	enum ls_change want;
	const ls_manifest *self;  /* compared with itself: no change expected */
};

static int count_change(void *ctx, enum ls_change change, const char *path, size_t len)
{
	struct count *c = ctx;
	if (c->self) {
		FUZZ_CHECK(false, "compare with itself: %c of %.*s", change, (int)len, path);
	} else {
		FUZZ_CHECK(c->want && change == c->want, "unexpected change %c of %.*s", change, (int)len, path);
	}
	c->calls++;
	return 0;
}

static void check_write_back(const ls_manifest *m, const uint8_t *buf, size_t len)
{
	int fd = memfd_create("manifest", MFD_CLOEXEC);
	if (fd < 0)
		FUZZ_DIE("memfd_create: %s", strerror(errno));
	struct ls_error err = { 0 };
	int rc = ls_manifest_write_fd(m, fd, &err);
	FUZZ_CHECK(rc == 0, "write back: %s", err.msg);
	off_t end = lseek(fd, 0, SEEK_END);
	FUZZ_CHECK(end == (off_t)len, "written back: %lld bytes, read %zu", (long long)end, len);
	uint8_t *back = malloc(len);
	if (!back)
		FUZZ_DIE("out of memory");
	FUZZ_CHECK(pread(fd, back, len, 0) == (ssize_t)len, "pread");
	FUZZ_CHECK(memcmp(back, buf, len) == 0, "written back, the bytes differ");
	free(back);
	close(fd);
}

static void check_dumps(const ls_manifest *m)
{
	struct ls_error err = { 0 };
	char *text = NULL;
	size_t text_len = 0;
	FILE *f = open_memstream(&text, &text_len);
	if (!f)
		FUZZ_DIE("open_memstream: %s", strerror(errno));
	FUZZ_CHECK(ls_manifest_dump_mtree(m, f, &err) == 0, "dump mtree: %s", err.msg);
	fclose(f);
	size_t lines = 0;
	for (size_t i = 0; i < text_len; i++)
		lines += text[i] == '\n';
	FUZZ_CHECK(lines == m->n + 2, "mtree: %zu lines for %zu entries", lines, m->n);
	FUZZ_CHECK(strlen(text) == text_len, "mtree: a NUL byte in the spec");
	free(text);

	text = NULL;
	f = open_memstream(&text, &text_len);
	if (!f)
		FUZZ_DIE("open_memstream: %s", strerror(errno));
	FUZZ_CHECK(ls_manifest_dump_json(m, f, &err) == 0, "dump json: %s", err.msg);
	fclose(f);
	FUZZ_CHECK(strlen(text) == text_len, "json: a NUL byte in the output");
	free(text);
}

static void check_compare(const ls_manifest *m)
{
	static const enum ls_mode modes[] = { LS_MODE_TIME, LS_MODE_REDO, LS_MODE_FULL };
	struct ls_error err = { 0 };
	for (size_t i = 0; i < 3; i++) {
		/* a full comparison needs full manifests (the CLI checks it):
		 * redo and time manifests have no hashes to compare */
		if (modes[i] == LS_MODE_FULL && m->mode != LS_MODE_FULL)
			continue;
		for (int secs = 0; secs < 2; secs++) {
			struct count c = { 0, 0, m };
			long n = ls_compare(m, m, modes[i], secs, count_change, &c, &err);
			FUZZ_CHECK(n == 0 && c.calls == 0, "compare with itself: %ld changes (%s)", n, err.msg);
		}
	}
	ls_manifest *empty = NULL;
	if (ls_manifest_create(&empty, m->mode, m->xattrs, m->one_file_system, NULL, 0, &err))
		FUZZ_DIE("%s", err.msg);
	struct count del = { 0, LS_DELETED, NULL }, add = { 0, LS_ADDED, NULL };
	long n = ls_compare(m, empty, m->mode, false, count_change, &del, &err);
	FUZZ_CHECK(n == (long)m->n && del.calls == n, "compare with empty: %ld of %zu", n, m->n);
	n = ls_compare(empty, m, m->mode, false, count_change, &add, &err);
	FUZZ_CHECK(n == (long)m->n && add.calls == n, "compare from empty: %ld of %zu", n, m->n);
	ls_manifest_free(empty);
}

static void check_one(const uint8_t *buf, size_t len)
{
	ls_manifest *m = NULL;
	struct ls_error err = { 0 };
	int rc = ls_manifest_parse(buf, len, "fuzz.lsm", &m, &err);
	if (rc) {
		FUZZ_CHECK_ERROR(rc, err);
		FUZZ_CHECK(m == NULL, "a failed parse returned a manifest");
		return;
	}
	FUZZ_CHECK(m != NULL, "parse returned 0 and no manifest");
	check_write_back(m, buf, len);
	for (size_t i = 0; i < m->n; i++) {
		const struct ls_rec *r = &m->recs[i];
		ssize_t at = ls_manifest_find(m, ls_rec_path(m, r), r->path_len);
		FUZZ_CHECK(at == (ssize_t)i, "entry %zu found at %zd", i, at);
		FUZZ_CHECK(ls_rec_link_len(m, r) + r->path_len + 2 + r->xattr_len <= m->pool_len - r->aux_off,
			   "entry %zu: its bytes run past the pool", i);
	}
	for (size_t i = 0; i < m->n_excludes; i++)
		(void)strlen(ls_manifest_exclude(m, i));
	for (size_t i = 0; i < m->n_patterns; i++)
		(void)strlen(ls_manifest_pattern(m, i));
	check_dumps(m);
	check_compare(m);
	ls_manifest_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > (64u << 20))
		return 0;
	/* malloc'ed: 16-byte aligned, as the records need (a manifest is used
	 * in place, from an mmap); exactly size bytes, for the sanitizers */
	uint8_t *buf = calloc(1, size ? size : 1);
	if (!buf)
		FUZZ_DIE("out of memory");
	memcpy(buf, data, size);
	fix_checksum(buf, size);
	check_one(buf, size);
	if (fix_sizes(buf, size)) {
		fix_checksum(buf, size);
		check_one(buf, size);
	}
	free(buf);
	return 0;
}
