#include "manifest.h"
#include "error.h"
#include "output.h"
#include "path.h"
#include "sized.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include "xxh.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the manifest format is little-endian and mapped in place"
#endif

/* The on-disk layout is documented in manifest.h. */
struct header {
	char magic[8];
	uint32_t version;
	uint32_t header_len;
	uint8_t mode, xattrs;
	uint16_t flags;
	uint32_t start_nsec;
	int64_t start_sec;
};

struct option_head {
	uint32_t n_excludes, excludes_len;
	uint32_t n_patterns, patterns_len;
};

struct trailer {
	uint64_t n_entries;
	uint64_t pool_len;
	uint64_t checksum;
};

#define HEADER_FIXED sizeof(struct header)
#define OPTIONS_OFF  HEADER_FIXED
#define OPTIONS_HEAD sizeof(struct option_head)
#define TRAILER      sizeof(struct trailer)
_Static_assert(sizeof(struct header) == 32 && offsetof(struct header, start_sec) == 24, "header layout");
_Static_assert(sizeof(struct option_head) == 16, "option block layout");
_Static_assert(sizeof(struct trailer) == 24, "trailer layout");

/* The smallest file: the fixed header, an empty option block and a trailer. */
#define MIN_LEN (HEADER_FIXED + OPTIONS_HEAD + TRAILER)

static size_t pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* ---- on-disk codes -------------------------------------------------------- */

/* Explicit codes, so that reordering the C enums never changes the format.
 * 0 means "no such value". */
static uint8_t mode_to_code(enum ls_mode mode)
{
	switch (mode) {
	case LS_MODE_TIME: return LS_CODE_MODE_TIME;
	case LS_MODE_REDO: return LS_CODE_MODE_REDO;
	case LS_MODE_FULL: return LS_CODE_MODE_FULL;
	}
	return 0;
}

static bool mode_from_code(uint8_t code, enum ls_mode *out)
{
	switch (code) {
	case LS_CODE_MODE_TIME: *out = LS_MODE_TIME; return true;
	case LS_CODE_MODE_REDO: *out = LS_MODE_REDO; return true;
	case LS_CODE_MODE_FULL: *out = LS_MODE_FULL; return true;
	}
	return false;
}

static uint8_t xattrs_to_code(enum ls_xattrs x)
{
	switch (x) {
	case LS_XATTRS_CAPABILITY: return LS_CODE_XATTRS_CAPABILITY;
	case LS_XATTRS_ALL: return LS_CODE_XATTRS_ALL;
	case LS_XATTRS_NONE: return LS_CODE_XATTRS_NONE;
	}
	return 0;
}

static bool xattrs_from_code(uint8_t code, enum ls_xattrs *out)
{
	switch (code) {
	case LS_CODE_XATTRS_CAPABILITY: *out = LS_XATTRS_CAPABILITY; return true;
	case LS_CODE_XATTRS_ALL: *out = LS_XATTRS_ALL; return true;
	case LS_CODE_XATTRS_NONE: *out = LS_XATTRS_NONE; return true;
	}
	return false;
}

/* The length of the longest common prefix of a and b, both at least n
 * bytes long (at most n): sixteen bytes at a time where SSE2 compares them
 * (every x86-64), then eight, the first differing byte of a word found from
 * its lowest set bit (the format is little-endian). */
static size_t common_prefix(const char *a, const char *b, size_t n)
{
	size_t i = 0;
#ifdef __SSE2__
	for (; i + 16 <= n; i += 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)(a + i));
		__m128i y = _mm_loadu_si128((const __m128i *)(const void *)(b + i));
		unsigned differ = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, y)) ^ 0xffffu;
		if (differ)
			return i + (size_t)__builtin_ctz(differ);
	}
#endif
	for (uint64_t x, y; i + sizeof(x) <= n; i += sizeof(x)) {
		memcpy(&x, a + i, sizeof(x));
		memcpy(&y, b + i, sizeof(y));
		if (x != y)
			return i + (size_t)__builtin_ctzll(x ^ y) / 8;
	}
	while (i < n && a[i] == b[i])
		i++;
	return i;
}

/* Walk order of a (alen bytes) and b (blen), whose common prefix within the
 * shorter one's length is l bytes long: <0, 0 or >0.  '/' sorts before
 * every other byte: a directory's subtree comes right after it, before its
 * siblings "a-b", "a.b". */
static int cmp_after_prefix(const char *a, size_t alen, const char *b, size_t blen, size_t l)
{
	if (l == (alen < blen ? alen : blen))
		return alen < blen ? -1 : alen > blen;
	unsigned char ca = (unsigned char)a[l], cb = (unsigned char)b[l];
	if (ca == '/')
		return -1;
	if (cb == '/')
		return 1;
	return ca < cb ? -1 : 1;
}

int ls_path_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	return cmp_after_prefix(a, alen, b, blen, common_prefix(a, b, alen < blen ? alen : blen));
}

size_t ls_manifest_lower_bound(const ls_manifest *m, const char *path, size_t len)
{
	return ls_manifest_lower_bound_in(m, 0, m->n, path, len);
}

/* Whether record r sorts before path in walk order, given that the two share
 * their first skip bytes; *shared becomes the length of their common prefix. */
static bool rec_before(const ls_manifest *m, const struct ls_rec *r, size_t skip, const char *path, size_t len,
		       size_t *shared)
{
	const char *rp = ls_rec_path(m, r);
	size_t n = r->path_len < len ? r->path_len : len;
	*shared = skip + common_prefix(rp + skip, path + skip, n - skip);
	return cmp_after_prefix(rp, r->path_len, path, len, *shared) < 0;
}

size_t ls_manifest_lower_bound_in(const ls_manifest *m, size_t lo, size_t hi, const char *path, size_t len)
{
	/* What the records either side of the range share with path, every
	 * record between shares too: those bytes are compared no more (a
	 * directory's entries share long prefixes). */
	size_t shared_lo = 0, shared_hi = 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2, shared;
		if (rec_before(m, &m->recs[mid], shared_lo < shared_hi ? shared_lo : shared_hi, path, len, &shared)) {
			lo = mid + 1;
			shared_lo = shared;
		} else {
			hi = mid;
			shared_hi = shared;
		}
	}
	return lo;
}

size_t ls_manifest_lower_bound_from(const ls_manifest *m, size_t lo, size_t hi, const char *path, size_t len)
{
	/* Probes lo, lo + 1, lo + 3, lo + 7...: the first one not before path
	 * bounds the bisection. */
	for (size_t step = 1; lo < hi; step *= 2) {
		size_t probe = lo + step - 1, shared;
		if (probe >= hi || probe < lo)
			break;
		if (!rec_before(m, &m->recs[probe], 0, path, len, &shared)) {
			hi = probe;
			break;
		}
		lo = probe + 1;
	}
	return ls_manifest_lower_bound_in(m, lo, hi, path, len);
}

ssize_t ls_manifest_find_in(const ls_manifest *m, size_t lo, size_t hi, size_t *cursor, const char *path,
			    size_t len)
{
	size_t from = *cursor, shared, i;
	if (from == lo)
		i = ls_manifest_lower_bound_from(m, lo, hi, path, len);
	else if (from > lo && from <= hi && rec_before(m, &m->recs[from - 1], 0, path, len, &shared))
		i = ls_manifest_lower_bound_from(m, from, hi, path, len);
	else
		i = ls_manifest_lower_bound_in(m, lo, hi, path, len);  /* no cursor before path */
	bool found = i < hi && m->recs[i].path_len == len && memcmp(ls_rec_path(m, &m->recs[i]), path, len) == 0;
	/* past the record found: the next file of a directory is probed first */
	*cursor = found ? i + 1 : i;
	return found ? (ssize_t)i : -1;
}

ssize_t ls_manifest_find(const ls_manifest *m, const char *path, size_t len)
{
	if (!m || (!path && len))
		return -1;
	size_t i = ls_manifest_lower_bound(m, path, len);
	if (i < m->n && m->recs[i].path_len == len && memcmp(ls_rec_path(m, &m->recs[i]), path, len) == 0)
		return (ssize_t)i;
	return -1;
}

static int cmp_strptr(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	return ls_path_cmp(x, strlen(x), y, strlen(y));
}

int ls_manifest_create(ls_manifest **out, enum ls_mode mode, enum ls_xattrs xattrs,
		       bool one_file_system, const char *const *excludes, size_t n_excludes,
		       struct ls_error *err)
{
	*out = NULL;
	ls_manifest *m = calloc(1, sizeof(*m));
	char **norm = n_excludes ? calloc(n_excludes, sizeof(*norm)) : NULL;
	if (!m || (n_excludes && !norm)) {
		free(m);
		free(norm);
		return ls_fail(err, ENOMEM, "manifest: out of memory");
	}
	m->mode = mode;
	m->xattrs = xattrs;
	m->one_file_system = one_file_system;
	int rc = 0;
	size_t kept = 0, total = 0;
	for (size_t i = 0; i < n_excludes; i++) {
		char *c = strdup(excludes[i]);
		if (!c) {
			rc = ls_fail(err, ENOMEM, "manifest: out of memory");
			break;
		}
		if (ls_path_normalize(c, LS_NORM_ROOTED) < 0) {
			rc = ls_fail(err, EINVAL, "--exclude %s: '..' is not allowed", excludes[i]);
			free(c);
			break;
		}
		if (!*c) {
			rc = ls_fail(err, EINVAL, "--exclude %s: cannot exclude the root", excludes[i]);
			free(c);
			break;
		}
		norm[kept++] = c;
	}
	if (rc == 0 && kept) {
		qsort(norm, kept, sizeof(*norm), cmp_strptr);
		size_t uniq = 0;
		for (size_t i = 0; i < kept; i++) {
			if (uniq && strcmp(norm[uniq - 1], norm[i]) == 0) {
				free(norm[i]);
				continue;
			}
			norm[uniq++] = norm[i];
			total += strlen(norm[i]) + 1;
		}
		kept = uniq;
		if (total > UINT32_MAX) {
			rc = ls_fail(err, E2BIG, "--exclude: too many paths for the manifest");
		} else if (!(m->options = malloc(total))) {
			rc = ls_fail(err, ENOMEM, "manifest: out of memory");
		} else {
			char *p = m->options;
			for (size_t i = 0; i < kept; i++) {
				size_t l = strlen(norm[i]) + 1;
				memcpy(p, norm[i], l);
				p += l;
			}
			m->options_len = total;
			m->n_excludes = kept;
		}
	}
	for (size_t i = 0; i < kept; i++)
		free(norm[i]);
	free(norm);
	if (rc) {
		ls_manifest_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

/* The i-th of a block of NUL-terminated strings. */
static const char *nth_string(const char *p, size_t i)
{
	while (i-- > 0)
		p += strlen(p) + 1;
	return p;
}

const char *ls_manifest_exclude(const ls_manifest *m, size_t i)
{
	return nth_string(m->options, i);
}

const char *ls_manifest_pattern(const ls_manifest *m, size_t i)
{
	return nth_string(m->patterns, i);
}

int ls_manifest_set_patterns(ls_manifest *m, const char *const *patterns, size_t n,
			     struct ls_error *err)
{
	if (m->map)
		return ls_fail(err, EINVAL, "manifest: read-only");
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(patterns[i]);
		/* an empty pattern matches nothing (a blank gitignore line): the
		 * caller drops it, the format has no room for it */
		if (l == 0)
			return ls_fail(err, EINVAL, "--exclude-pattern: empty pattern");
		total += l + 1;
		if (total > UINT32_MAX)
			return ls_fail(err, E2BIG, "--exclude-pattern: too many patterns for the manifest");
	}
	char *buf = NULL;
	if (total) {
		buf = malloc(total);
		if (!buf)
			return ls_fail(err, ENOMEM, "manifest: out of memory");
		char *p = buf;
		for (size_t i = 0; i < n; i++) {
			size_t l = strlen(patterns[i]) + 1;
			memcpy(p, patterns[i], l);
			p += l;
		}
	}
	free(m->patterns);
	m->patterns = buf;
	m->patterns_len = total;
	m->n_patterns = n;
	return 0;
}

/* Whether record e of m lies beneath directory path p. */
static bool rec_under(const ls_manifest *m, size_t e, const char *p, size_t len)
{
	return ls_path_is_under(ls_rec_path(m, &m->recs[e]), m->recs[e].path_len, p, len);
}

size_t ls_manifest_subtree_end(const ls_manifest *m, size_t i)
{
	const struct ls_rec *r = &m->recs[i];
	if (!S_ISDIR(r->mode))
		return i + 1;
	/* The subtree is contiguous: "beneath p" holds for a run of records
	 * right after i and for none after it.  Galloping, then bisecting,
	 * costs the logarithm of the subtree's size: callers that carry a
	 * tree over subtree by subtree pass the whole base once in all. */
	const char *p = ls_rec_path(m, r);
	size_t len = r->path_len;
	size_t lo = i + 1, step = 1; /* everything before lo is beneath p */
	while (lo < m->n && rec_under(m, lo, p, len)) {
		size_t probe = lo + step;
		if (probe >= m->n || !rec_under(m, probe, p, len)) {
			size_t hi = probe < m->n ? probe : m->n; /* first not beneath, or n */
			lo++;
			while (lo < hi) {
				size_t mid = lo + (hi - lo) / 2;
				if (rec_under(m, mid, p, len))
					lo = mid + 1;
				else
					hi = mid;
			}
			return lo;
		}
		lo = probe + 1;
		step *= 2;
	}
	return lo;
}

int ls_grow(void **buf, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	/* From 16: a directory job's children (300 bytes each) grow here
	 * too, and most directories hold a few. */
	size_t ncap = *cap ? *cap : 16;
	while (ncap < need)
		ncap *= 2;
	void *n = realloc(*buf, ncap * elem);
	if (!n)
		return -ENOMEM;
	*buf = n;
	*cap = ncap;
	return 0;
}

int ls_manifest_append(ls_manifest *m, const struct ls_rec *r, const char *path, size_t path_len,
		       const char *link, size_t link_len, const void *xattrs, size_t xattr_len,
		       struct ls_error *err)
{
	if (m->map)
		return ls_fail(err, EINVAL, "manifest: read-only");
	int shown = (int)(path_len > 200 ? 200 : path_len);
	if (path_len == 0)
		return ls_fail(err, EINVAL, "manifest: empty path");
	if (path_len > UINT32_MAX)
		return ls_fail(err, ENAMETOOLONG, "%.*s...: path too long for the manifest (%zu bytes)",
			       shown, path, path_len);
	/* the target's length is found with strlen when read back */
	if (link_len && memchr(link, '\0', link_len))
		return ls_fail(err, EINVAL, "%.*s: symlink target contains a NUL byte", shown, path);
	if (xattr_len > UINT32_MAX)
		return ls_fail(err, E2BIG, "%.*s: xattrs too large for the manifest (%zu bytes)",
			       shown, path, xattr_len);
	size_t aux = path_len + 1 + link_len + 1 + xattr_len;
	if (ls_grow((void **)&m->recs, &m->cap, m->n + 1, sizeof(*m->recs)) ||
	    ls_grow((void **)&m->pool, &m->pool_cap, m->pool_len + aux, 1))
		return ls_fail(err, ENOMEM, "manifest: out of memory");
	struct ls_rec *d = &m->recs[m->n++];
	*d = *r;
	d->aux_off = m->pool_len;
	d->path_len = (uint32_t)path_len;
	d->xattr_len = (uint32_t)xattr_len;
	char *p = m->pool + m->pool_len;
	memcpy(p, path, path_len);
	p[path_len] = '\0';
	p += path_len + 1;
	if (link_len)
		memcpy(p, link, link_len);
	p[link_len] = '\0';
	p += link_len + 1;
	if (xattr_len)
		memcpy(p, xattrs, xattr_len);
	m->pool_len += aux;
	return 0;
}

int ls_manifest_set_from(ls_manifest *m, size_t i, const ls_manifest *src, size_t j, struct ls_error *err)
{
	/* Appended, then moved into place; its old pool bytes stay unused. */
	int rc = ls_manifest_append_from(m, src, j, err);
	if (rc == 0)
		m->recs[i] = m->recs[--m->n];
	return rc;
}

int ls_manifest_set_xattrs(ls_manifest *m, size_t i, const void *xattrs, size_t len, struct ls_error *err)
{
	struct ls_rec r = m->recs[i];
	/* The path and target are copied first: the pool moves as it grows. */
	size_t link_len = ls_rec_link_len(m, &r);
	char *path = strndup(ls_rec_path(m, &r), r.path_len);
	char *link = strndup(ls_rec_link(m, &r), link_len);
	int rc = path && link ? ls_manifest_append(m, &r, path, r.path_len, link, link_len, xattrs, len, err)
			      : ls_fail(err, ENOMEM, "manifest: out of memory");
	if (rc == 0)
		m->recs[i] = m->recs[--m->n];
	free(path);
	free(link);
	return rc;
}

void ls_manifest_pop(ls_manifest *m)
{
	m->n--;
	m->pool_len = m->recs[m->n].aux_off;
}

int ls_manifest_append_from(ls_manifest *m, const ls_manifest *src, size_t i, struct ls_error *err)
{
	const struct ls_rec *r = &src->recs[i];
	const char *link = ls_rec_link(src, r);
	size_t link_len = strlen(link);
	return ls_manifest_append(m, r, ls_rec_path(src, r), r->path_len, link, link_len,
				  (const unsigned char *)link + link_len + 1, r->xattr_len, err);
}

void ls_manifest_free(ls_manifest *m)
{
	if (!m)
		return;
	if (m->map) {
		if (m->map_len)
			munmap(m->map, m->map_len);
	} else {
		free(m->recs);
		free(m->pool);
		free(m->options);
		free(m->patterns);
	}
	free(m);
}

int ls_manifest_entry(const ls_manifest *m, size_t i, struct ls_entry *out)
{
	if (!m || !out || ls_sized_check_out(out, LS_SIZE_TO(struct ls_entry, n_xattrs), "entry", NULL))
		return -EINVAL;
	if (i >= m->n)
		return -ERANGE;
	const struct ls_rec *r = &m->recs[i];
	size_t n_xattrs = 0;
	struct ls_xattr_it it = ls_xattr_iter(ls_rec_xattrs(m, r), r->xattr_len);
	struct ls_xattr_view v;
	while (ls_xattr_next(&it, &v) > 0)
		n_xattrs++;
	struct ls_entry e = {
		.struct_size = sizeof(e), .path = ls_rec_path(m, r), .path_len = r->path_len, .mode = r->mode & LS_REC_MODE_MASK,
		.uid = r->uid, .gid = r->gid, .nlink = r->nlink, .size = r->size,
		.mtime_ns = r->mtime_ns, .ctime_ns = r->ctime_ns, .dev = r->dev, .ino = r->ino, .rdev = r->rdev,
		.link_target = ls_rec_link(m, r), .hashed = (r->mode & LS_REC_HASHED) != 0,
		.mount_point = (r->mode & LS_REC_MOUNTPOINT) != 0, .n_xattrs = n_xattrs,
	};
	memcpy(e.hash, r->hash, sizeof(e.hash));
	ls_sized_out(out, &e, sizeof(e));
	return 0;
}

size_t ls_manifest_count(const ls_manifest *m)
{
	return m ? m->n : 0;
}

enum ls_mode ls_manifest_mode(const ls_manifest *m)
{
	return m ? m->mode : LS_MODE_FULL;
}

/* ---- writing ------------------------------------------------------------ */

/* Bytes gathered before a write: records and pool pieces come in small. */
#define WRITER_BUF (256u * 1024)

static int writer_flush(struct ls_manifest_writer *w)
{
	if (w->len == 0)
		return 0;
	XXH3_64bits_update(w->st, w->buf, w->len);
	int rc = ls_write_all(w->fd, w->buf, w->len);
	w->len = 0;
	return rc;
}

int ls_manifest_writer_put(struct ls_manifest_writer *w, const void *p, size_t len)
{
	if (len == 0)
		return 0;  /* p may be NULL then */
	if (len > WRITER_BUF - w->len) {
		int rc = writer_flush(w);
		if (rc)
			return rc;
		if (len >= WRITER_BUF) {
			XXH3_64bits_update(w->st, p, len);
			return ls_write_all(w->fd, p, len);
		}
	}
	memcpy(w->buf + w->len, p, len);
	w->len += len;
	return 0;
}

void ls_manifest_writer_free(struct ls_manifest_writer *w)
{
	if (w->st)
		XXH3_freeState(w->st);
	free(w->buf);
	memset(w, 0, sizeof(*w));
	w->fd = -1;
}

int ls_manifest_writer_begin(struct ls_manifest_writer *w, const ls_manifest *m, int fd, struct ls_error *err)
{
	memset(w, 0, sizeof(*w));
	w->fd = fd;
	struct header h;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, LS_MANIFEST_MAGIC, 8);
	h.version = LS_MANIFEST_VERSION;
	size_t opts_len = OPTIONS_HEAD + m->options_len + m->patterns_len;
	if (opts_len > UINT32_MAX - HEADER_FIXED - 8)
		return ls_fail(err, E2BIG, "manifest: option block too large");
	h.header_len = (uint32_t)pad8(HEADER_FIXED + opts_len);
	h.mode = mode_to_code(m->mode);
	h.xattrs = xattrs_to_code(m->xattrs);
	if (!h.mode || !h.xattrs)
		return ls_fail(err, EINVAL, "manifest: invalid mode or xattrs policy");
	h.flags = m->one_file_system ? LS_CODE_FLAG_ONE_FS : 0;
	h.start_nsec = m->start_nsec;
	h.start_sec = m->start_sec;
	struct option_head oh = {
		.n_excludes = (uint32_t)m->n_excludes,
		.excludes_len = (uint32_t)m->options_len,
		.n_patterns = (uint32_t)m->n_patterns,
		.patterns_len = (uint32_t)m->patterns_len,
	};
	w->st = XXH3_createState();
	w->buf = malloc(WRITER_BUF);
	if (!w->st || !w->buf) {
		ls_manifest_writer_free(w);
		return ls_fail(err, ENOMEM, "manifest: out of memory");
	}
	XXH3_64bits_reset(w->st);
	static const char zeros[8];
	/* In file order; only the trailer depends on what comes after. */
	int rc = ls_manifest_writer_put(w, &h, sizeof(h));
	if (!rc)
		rc = ls_manifest_writer_put(w, &oh, sizeof(oh));
	if (!rc)
		rc = ls_manifest_writer_put(w, m->options, m->options_len);
	if (!rc)
		rc = ls_manifest_writer_put(w, m->patterns, m->patterns_len);
	if (!rc)
		rc = ls_manifest_writer_put(w, zeros, h.header_len - HEADER_FIXED - opts_len);
	if (rc) {
		ls_manifest_writer_free(w);
		return ls_fail_errno(err, -rc, "manifest: write");
	}
	return 0;
}

int ls_manifest_writer_end(struct ls_manifest_writer *w, uint64_t n_entries, uint64_t pool_len,
			   struct ls_error *err)
{
	struct trailer t = { .n_entries = n_entries, .pool_len = pool_len };
	int rc = ls_manifest_writer_put(w, &t, offsetof(struct trailer, checksum));
	if (!rc)
		rc = writer_flush(w);
	if (!rc) {
		t.checksum = XXH3_64bits_digest(w->st);
		rc = ls_write_all(w->fd, &t.checksum, sizeof(t.checksum));
	}
	ls_manifest_writer_free(w);
	return rc ? ls_fail_errno(err, -rc, "manifest: write") : 0;
}

int ls_manifest_write_fd(const ls_manifest *m, int fd, struct ls_error *err)
{
	struct ls_manifest_writer w;
	int rc = ls_manifest_writer_begin(&w, m, fd, err);
	if (rc)
		return rc;
	if ((rc = ls_manifest_writer_put(&w, m->recs, m->n * sizeof(*m->recs))) ||
	    (rc = ls_manifest_writer_put(&w, m->pool, m->pool_len))) {
		ls_manifest_writer_free(&w);
		return ls_fail_errno(err, -rc, "manifest: write");
	}
	return ls_manifest_writer_end(&w, m->n, m->pool_len, err);
}

int ls_manifest_save(const ls_manifest *m, const char *path, bool do_fsync, struct ls_error *err)
{
	if (!m || !path)
		return ls_fail(err, EINVAL, "manifest: save: no manifest or path");
	struct ls_output out;
	int rc = ls_output_open(&out, path, true, err);
	if (rc)
		return rc;
	rc = ls_manifest_write_fd(m, out.fd, err);
	if (rc == 0)
		rc = ls_output_commit(&out, do_fsync, err);
	ls_output_abort(&out);
	return rc;
}

/* ---- reading ------------------------------------------------------------ */

static bool is_valid_type(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFIFO:
	case S_IFCHR: case S_IFBLK: case S_IFSOCK:
		return true;
	}
	return false;
}

/* Whether a path component is empty, "." or "..". */
static bool is_empty_or_dots(const char *n, size_t len)
{
	return len == 0 || (len == 1 && n[0] == '.') || (len == 2 && n[0] == '.' && n[1] == '.');
}

static bool is_normal_path(const char *p, size_t len)
{
	if (len == 0 || p[0] == '/' || p[len - 1] == '/' || memchr(p, '\0', len))
		return false;
	const char *s = p, *end = p + len;
	while (s < end) {
		const char *e = memchr(s, '/', (size_t)(end - s));
		if (!e)
			e = end;
		size_t n = (size_t)(e - s);
		if (is_empty_or_dots(s, n))
			return false;
		s = e + 1;
	}
	return true;
}

static bool xattrs_valid(const unsigned char *x, size_t len)
{
	struct ls_xattr_it it = ls_xattr_iter(x, len);
	struct ls_xattr_view v, prev = { 0 };
	int rc;
	while ((rc = ls_xattr_next(&it, &v)) > 0) {
		if (memchr(v.name, '\0', v.name_len))
			return false;
		if (prev.name) {
			size_t n = prev.name_len < v.name_len ? prev.name_len : v.name_len;
			int c = memcmp(prev.name, v.name, n);
			if (c > 0 || (c == 0 && prev.name_len >= v.name_len))
				return false;  /* sorted by name, no duplicates */
		}
		prev = v;
	}
	return rc == 0;
}

/* What the recording policy lets a record hold: nothing under "none", only a
 * regular file's security.capability under "capability" (ls_xattrs_read). */
static bool xattrs_allowed(enum ls_xattrs policy, uint32_t mode, const unsigned char *x, size_t len)
{
	if (len == 0 || policy == LS_XATTRS_ALL)
		return true;
	if (policy == LS_XATTRS_NONE || !S_ISREG(mode))
		return false;
	static const char cap[] = "security.capability";
	struct ls_xattr_it it = ls_xattr_iter(x, len);
	struct ls_xattr_view v;
	while (ls_xattr_next(&it, &v) > 0)
		if (v.name_len != sizeof(cap) - 1 || memcmp(v.name, cap, v.name_len) != 0)
			return false;
	return true;
}

/* At most this many bytes of a path go into a message. */
#define SHOWN(len) ((int)((len) > 256 ? 256 : (len)))

/* What the writer guarantees of one record beyond its bounds and form, each
 * check O(1) (but for a capability blob's names): NULL, or why the record
 * could not have been written. */
static const char *rec_inconsistency(const ls_manifest *m, const struct ls_rec *r, bool has_link,
				     const unsigned char *xattrs)
{
	bool reg = S_ISREG(r->mode);
	/* full mode hashes every regular file it records (or fails the run):
	 * a file without a hash would be "modified" against itself forever */
	if (m->mode == LS_MODE_FULL && reg && !(r->mode & LS_REC_HASHED))
		return "a regular file without a content hash in a full-mode manifest";
	if ((r->mode & LS_REC_HASHED) && !reg)
		return "a content hash on an entry that is not a regular file";
	if ((r->mode & LS_REC_MOUNTPOINT) && !S_ISDIR(r->mode))
		return "a mount point that is not a directory";
	/* the walk reads a target for a symlink and nothing else */
	if (!S_ISLNK(r->mode) && has_link)
		return "a symlink target on an entry that is not a symlink";
	if (!xattrs_allowed(m->xattrs, r->mode, xattrs, r->xattr_len))
		return m->xattrs == LS_XATTRS_NONE ? "xattrs in a manifest recorded with --xattrs none"
						   : "xattrs other than a regular file's security.capability in a "
						     "manifest recorded with --xattrs capability";
	return NULL;
}

/* Adds record r, whose last component is name (len bytes), to f. */
static void facts_add(struct ls_manifest_facts *f, const struct ls_rec *r, const char *name, size_t len)
{
	bool dir = S_ISDIR(r->mode);
	bool *any = dir ? &f->any_dir : &f->any_other, *differ = dir ? &f->dir_devs_differ : &f->other_devs_differ;
	uint64_t *dev = dir ? &f->dir_dev : &f->other_dev;
	if (!*any) {
		*any = true;
		*dev = r->dev;
	} else if (r->dev != *dev) {
		*differ = true;
	}
	if (!dir && r->nlink > 1)
		f->hard_links = true;
	if (ls_is_whiteout_name(name, len))
		f->whiteout_names = true;
}

void ls_manifest_facts(const ls_manifest *m, struct ls_manifest_facts *out)
{
	if (m->map) {
		*out = m->facts;
		return;
	}
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < m->n; i++) {
		const struct ls_rec *r = &m->recs[i];
		const char *p = ls_rec_path(m, r);
		const char *slash = memrchr(p, '/', r->path_len);
		const char *nm = slash ? slash + 1 : p;
		facts_add(out, r, nm, r->path_len - (size_t)(nm - p));
	}
}

/* Whether r's path bytes lie within the pool (what may be read of it before
 * r itself is checked). */
static bool path_in_pool(const ls_manifest *m, const struct ls_rec *r)
{
	return r->aux_off <= m->pool_len && r->path_len < m->pool_len - r->aux_off;
}

/* One directory of the ancestor stack of the record check. */
struct ancestor {
	size_t index;
	uint32_t path_len;      /* its record's, here at hand */
	bool mountpoint;
};

/* Pushes record i, a directory, onto the ancestor stack; 0 or -ENOMEM. */
static int push_ancestor(const ls_manifest *m, size_t i, struct ancestor **chain, size_t *depth, size_t *cap)
{
	if (ls_grow((void **)chain, cap, *depth + 1, sizeof(**chain)))
		return -ENOMEM;
	(*chain)[(*depth)++] = (struct ancestor){ .index = i, .path_len = m->recs[i].path_len,
						  .mountpoint = (m->recs[i].mode & LS_REC_MOUNTPOINT) != 0 };
	return 0;
}

/* The ancestor stack a check of records [0, from) leaves for record from,
 * when those records pass: the directories among them that are ancestors of
 * from, found by bisection (they are in walk order then).  Stops at the
 * first ancestor not there, as that check would find no parent; returns 0
 * or -ENOMEM. */
static int seed_chain(const ls_manifest *m, size_t from, struct ancestor **chain, size_t *depth, size_t *cap)
{
	const struct ls_rec *r = &m->recs[from];
	if (!path_in_pool(m, r))
		return 0;  /* the check of from says so */
	const char *p = ls_rec_path(m, r);
	size_t lo = 0;
	for (size_t q = 0; q < r->path_len; q++) {
		if (p[q] != '/')
			continue;
		/* Every record the bisection reads must be readable: one that
		 * is not fails the check of [0, from), whose error comes first. */
		size_t hi = from;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			const struct ls_rec *x = &m->recs[mid];
			if (!path_in_pool(m, x))
				return 0;
			if (ls_path_cmp(ls_rec_path(m, x), x->path_len, p, q) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		const struct ls_rec *a = lo < from ? &m->recs[lo] : NULL;
		if (!a || !path_in_pool(m, a) || a->path_len != q || memcmp(ls_rec_path(m, a), p, q) != 0 ||
		    !S_ISDIR(a->mode))
			return 0;
		if (push_ancestor(m, lo, chain, depth, cap))
			return -ENOMEM;
	}
	return 0;
}

/* Whether name (len bytes, the last component of a path whose parent was
 * found) holds a '/' or a NUL: eight bytes at a time (a word has a zero
 * byte exactly when (w - 0x01..) & ~w & 0x80.. is not 0), the last ones
 * too when a word's worth can be read there (before readable_end). */
static bool name_has_slash_or_nul(const char *name, size_t len, const char *readable_end)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull, slashes = ones * '/';
	size_t k = 0;
	for (uint64_t w, v; k + sizeof(w) <= len; k += sizeof(w)) {
		memcpy(&w, name + k, sizeof(w));
		v = w ^ slashes;
		if (((w - ones) & ~w & highs) | ((v - ones) & ~v & highs))
			return true;
	}
	size_t left = len - k;
	if (left && (size_t)(readable_end - (name + k)) >= sizeof(uint64_t)) {
		/* the bytes past the name become 0x01: neither '/' nor NUL */
		uint64_t w, v, keep = (1ull << (8 * left)) - 1;
		memcpy(&w, name + k, sizeof(w));
		w = (w & keep) | (ones & ~keep);
		v = w ^ slashes;
		return (((w - ones) & ~w & highs) | ((v - ones) & ~v & highs)) != 0;
	}
	for (; k < len; k++)
		if (name[k] == '/' || name[k] == '\0')
			return true;
	return false;
}

/* Checks records [from, to), and finds their facts (f) on the way.  The
 * parent of every entry must be an earlier directory entry: the diff and
 * the layer writer rely on it.  `chain` holds the current ancestor stack;
 * from a record past the first, it is the one a check of the records
 * before would leave, when they pass (see check_all). */
static int check_structure(const ls_manifest *m, size_t from, size_t to, struct ls_manifest_facts *f,
			   const char *name, struct ls_error *err)
{
	struct ancestor *chain = NULL;
	size_t depth = 0, cap = 0;
	/* Excluded paths are never recorded (nor, by the parent check, anything
	 * below one).  Both lists are in walk order: one merge-join. */
	const char *ex = m->options;
	size_t ex_left = m->n_excludes, ex_len = ex_left ? strlen(ex) : 0;
	int rc = 0;
	if (from > 0 && from < to && seed_chain(m, from, &chain, &depth, &cap))
		rc = ls_fail(err, ENOMEM, "%s: out of memory", name);
	for (size_t i = from; i < to && rc == 0; i++) {
		const struct ls_rec *r = &m->recs[i];
		/* path NUL link NUL xattrs, within the pool; the link ends at
		 * its first NUL, which must leave room for the xattrs */
		uint64_t room = r->aux_off <= m->pool_len ? m->pool_len - r->aux_off : 0;
		uint64_t fixed = (uint64_t)r->path_len + 1 + 1 + r->xattr_len;
		const char *link_end = NULL;
		if (fixed <= room) {
			const char *l = m->pool + r->aux_off + r->path_len + 1;
			link_end = *l ? memchr(l, '\0', (size_t)(room - fixed) + 1) : l;  /* most have none */
		}
		if (!link_end) {
			rc = ls_fail(err, EINVAL, "%s: corrupt manifest (entry %zu out of bounds)", name, i);
			break;
		}
		const char *p = ls_rec_path(m, r);
		const unsigned char *xattrs = (const unsigned char *)link_end + 1;
		if (p[r->path_len] != '\0' || !is_valid_type(r->mode) ||
		    (r->mode & LS_REC_FLAGS_MASK & ~(LS_REC_HASHED | LS_REC_MOUNTPOINT)) ||
		    (r->xattr_len && !xattrs_valid(xattrs, r->xattr_len))) {
			rc = ls_fail(err, EINVAL, "%s: corrupt manifest (entry %zu)", name, i);
			break;
		}
		/* Past the first record the chain holds the ancestors of the
		 * one before (and that one, a directory): with the prefix the
		 * two share, one pass over it tells their order and which of
		 * those directories are this record's ancestors too. */
		size_t shared = 0;
		bool after_prev = i > from;
		if (i > 0) {
			const struct ls_rec *q = &m->recs[i - 1];
			const char *qp = ls_rec_path(m, q);
			size_t n = q->path_len < r->path_len ? q->path_len : r->path_len;
			shared = common_prefix(qp, p, n);
			if (cmp_after_prefix(qp, q->path_len, p, r->path_len, shared) >= 0) {
				rc = ls_fail(err, EINVAL, "%s: corrupt manifest (entries out of order at %zu)", name, i);
				break;
			}
		}
		while (depth > 0) {
			const struct ancestor *a = &chain[depth - 1];
			if (after_prev ? a->path_len <= shared && a->path_len < r->path_len && p[a->path_len] == '/'
				       : ls_path_is_under(p, r->path_len, ls_rec_path(m, &m->recs[a->index]), a->path_len))
				break;
			depth--;
		}
		size_t have = depth ? chain[depth - 1].path_len : 0;
		/* This record's name: what follows the last ancestor found.  A
		 * '/' in it means the path's parent is not that directory (or,
		 * at the top, a path starting with '/'): which one, by its last '/'. */
		const char *nm = depth ? p + have + 1 : p;
		size_t nm_len = r->path_len - (size_t)(nm - p);
		if (name_has_slash_or_nul(nm, nm_len, m->pool + m->pool_len)) {
			const char *slash = memrchr(p, '/', r->path_len);
			bool no_parent = slash && (size_t)(slash - p) != have;
			rc = ls_fail(err, EINVAL, no_parent ? "%s: corrupt manifest (entry %zu has no parent)"
					  : "%s: corrupt manifest (entry %zu)", name, i);
			break;
		}
		if (is_empty_or_dots(nm, nm_len)) {
			rc = ls_fail(err, EINVAL, "%s: corrupt manifest (entry %zu)", name, i);
			break;
		}
		facts_add(f, r, nm, nm_len);
		const char *why = rec_inconsistency(m, r, link_end != p + r->path_len + 1, xattrs);
		if (!why && depth && chain[depth - 1].mountpoint)
			why = "below a mount point, which is not descended";
		if (why) {
			rc = ls_fail(err, EINVAL, "%s: corrupt manifest (entry %zu, %.*s: %s)", name, i,
				     SHOWN(r->path_len), p, why);
			break;
		}
		while (ex_left && ls_path_cmp(ex, ex_len, p, r->path_len) < 0) {
			ex += ex_len + 1;
			ex_len = --ex_left ? strlen(ex) : 0;
		}
		if (ex_left && ex_len == r->path_len && memcmp(ex, p, ex_len) == 0) {
			rc = ls_fail(err, EINVAL, "%s: corrupt manifest (entry %zu, %.*s: an excluded path)", name, i,
				     SHOWN(r->path_len), p);
			break;
		}
		if (S_ISDIR(r->mode) && push_ancestor(m, i, &chain, &depth, &cap)) {
			rc = ls_fail(err, ENOMEM, "%s: out of memory", name);
			break;
		}
	}
	free(chain);
	return rc;
}

/* Counts the NUL-terminated, non-empty strings of a block; false when the
 * block does not end with a NUL or holds an empty string. */
static bool count_strings(const char *p, size_t len, size_t *count)
{
	size_t n = 0;
	if (len && p[len - 1] != '\0')
		return false;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\0') {
			if (i == 0 || p[i - 1] == '\0')
				return false;
			n++;
		}
	}
	*count = n;
	return true;
}

static int parse_options(const char *buf, const struct header *h, ls_manifest *m, const char *name,
			 struct ls_error *err)
{
	struct option_head oh;
	memcpy(&oh, buf + OPTIONS_OFF, sizeof(oh));
	uint64_t used = (uint64_t)HEADER_FIXED + OPTIONS_HEAD + oh.excludes_len + oh.patterns_len;
	if (pad8(used) != h->header_len)
		return ls_fail(err, EINVAL, "%s: corrupt manifest options", name);
	const char *excl = buf + OPTIONS_OFF + OPTIONS_HEAD;
	const char *pat = excl + oh.excludes_len;
	size_t ne, np;
	if (!count_strings(excl, oh.excludes_len, &ne) || ne != oh.n_excludes ||
	    !count_strings(pat, oh.patterns_len, &np) || np != oh.n_patterns)
		return ls_fail(err, EINVAL, "%s: corrupt manifest options", name);
	for (size_t i = used; i < h->header_len; i++)
		if (buf[i])
			return ls_fail(err, EINVAL, "%s: corrupt manifest options (padding)", name);
	/* ls_manifest_create writes the excludes normalised, in walk order and
	 * without duplicates; patterns keep their given order and duplicates
	 * (the last match wins), so only their form is checked (above). */
	const char *prev = NULL;
	size_t prev_len = 0;
	for (size_t i = 0; i < ne; i++) {
		const char *s = prev ? prev + prev_len + 1 : excl;
		size_t len = strlen(s);
		if (!is_normal_path(s, len))
			return ls_fail(err, EINVAL, "%s: corrupt manifest options (exclude %zu, %.*s: not a "
				       "normalised relative path)", name, i, SHOWN(len), s);
		if (prev && ls_path_cmp(prev, prev_len, s, len) >= 0)
			return ls_fail(err, EINVAL, "%s: corrupt manifest options (exclude %zu, %.*s: excludes "
				       "not sorted in walk order and unique)", name, i, SHOWN(len), s);
		prev = s;
		prev_len = len;
	}
	m->options = (char *)excl;
	m->options_len = oh.excludes_len;
	m->n_excludes = ne;
	m->patterns = (char *)pat;
	m->patterns_len = oh.patterns_len;
	m->n_patterns = np;
	return 0;
}

/* The checksum of a large manifest is taken on a thread of its own while
 * the records are checked: the two passes over the file overlap.  With
 * this many records that thread then checks the last 3/8 of them too (the
 * checksum costs about a third of the records' check). */
#define PARALLEL_CHECKSUM_MIN (4u << 20)
#define PARALLEL_CHECK_MIN 32768

static int check_structure(const ls_manifest *m, size_t from, size_t to, struct ls_manifest_facts *f,
			   const char *name, struct ls_error *err);

struct checksum_job {
	const void *buf;
	size_t len;
	uint64_t sum;
	/* records [from, m->n) when from > 0: their verdict and facts */
	const ls_manifest *m;
	const char *name;
	size_t from;
	int rc;
	struct ls_manifest_facts facts;
};

static void *checksum_main(void *arg)
{
	struct checksum_job *j = arg;
	j->sum = XXH3_64bits(j->buf, j->len);
	if (j->from)
		j->rc = check_structure(j->m, j->from, j->m->n, &j->facts, j->name, NULL);
	return NULL;
}

/* f becomes the facts of its records followed by those of g. */
static void facts_merge(struct ls_manifest_facts *f, const struct ls_manifest_facts *g)
{
	f->whiteout_names |= g->whiteout_names;
	f->hard_links |= g->hard_links;
	f->dir_devs_differ |= g->dir_devs_differ || (f->any_dir && g->any_dir && f->dir_dev != g->dir_dev);
	f->other_devs_differ |= g->other_devs_differ || (f->any_other && g->any_other && f->other_dev != g->other_dev);
	if (!f->any_dir)
		f->dir_dev = g->dir_dev;
	if (!f->any_other)
		f->other_dev = g->other_dev;
	f->any_dir |= g->any_dir;
	f->any_other |= g->any_other;
}

static int check_all(ls_manifest *m, const struct header *h, const char *b, uint64_t checksum, size_t len,
		     size_t split, const char *name, struct ls_error *err);

int ls_manifest_parse(const void *buf, size_t len, const char *name, ls_manifest **out,
		      struct ls_error *err)
{
	return ls_manifest_parse_split(buf, len, name, LS_CHECK_SPLIT_AUTO, out, err);
}

int ls_manifest_parse_split(const void *buf, size_t len, const char *name, size_t split, ls_manifest **out,
			    struct ls_error *err)
{
	*out = NULL;
	const char *b = buf;
	if (len < 8 || memcmp(b, LS_MANIFEST_MAGIC, 8) != 0)
		return ls_fail(err, EINVAL, "%s: not a layersnap manifest", name);
	struct header h;
	if (len < offsetof(struct header, header_len))
		return ls_fail(err, EINVAL, "%s: truncated manifest", name);
	/* The version first, and alone: no other field of another version's
	 * layout means anything here. */
	memcpy(&h.version, b + offsetof(struct header, version), sizeof(h.version));
	if (h.version < LS_MANIFEST_VERSION)
		return ls_fail(err, EINVAL, "%s: manifest format %u is from an older layersnap: re-scan the tree",
			       name, h.version);
	if (h.version > LS_MANIFEST_VERSION)
		return ls_fail(err, EINVAL, "%s: manifest format %u is newer than this layersnap supports (%u)",
			       name, h.version, LS_MANIFEST_VERSION);
	if (len < MIN_LEN)
		return ls_fail(err, EINVAL, "%s: truncated manifest", name);
	memcpy(&h, b, sizeof(h));
	struct trailer t;
	memcpy(&t, b + len - TRAILER, TRAILER);

	/* Sizes from the trailer before the checksum: a truncated file has lost
	 * its trailer, and its last bytes hardly ever add up. */
	uint64_t body = len - TRAILER;
	bool fits = h.header_len >= HEADER_FIXED + OPTIONS_HEAD && h.header_len % 8 == 0 &&
		    h.header_len <= body && t.n_entries <= (body - h.header_len) / sizeof(struct ls_rec) &&
		    t.pool_len == body - h.header_len - t.n_entries * sizeof(struct ls_rec);
	if (!fits)
		return ls_fail(err, EINVAL, "%s: truncated or corrupt manifest (its size does not match its trailer)",
			       name);
	ls_manifest *m = calloc(1, sizeof(*m));
	if (!m)
		return ls_fail(err, ENOMEM, "%s: out of memory", name);
	m->recs = (struct ls_rec *)(void *)(b + h.header_len);
	m->n = m->cap = t.n_entries;
	m->pool = (char *)b + h.header_len + t.n_entries * sizeof(struct ls_rec);
	m->pool_len = m->pool_cap = t.pool_len;
	m->map = (void *)buf;
	m->map_len = 0; /* borrowed */
	int rc = check_all(m, &h, b, t.checksum, len, split, name, err);
	if (rc) {
		ls_manifest_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

/* The checksum (the first error reported: a corrupt file's other faults
 * follow from it), then the header's codes, the options and every record,
 * those of a large manifest on two threads (split: see
 * ls_manifest_parse_split). */
static int check_all(ls_manifest *m, const struct header *hp, const char *b, uint64_t checksum, size_t len,
		     size_t split, const char *name, struct ls_error *err)
{
	struct header h = *hp;
	struct ls_error head_err;
	int head_rc = 0;
	if (!mode_from_code(h.mode, &m->mode))
		head_rc = ls_fail(&head_err, EINVAL, "%s: unknown snapshot mode code %u", name, h.mode);
	else if (!xattrs_from_code(h.xattrs, &m->xattrs))
		head_rc = ls_fail(&head_err, EINVAL, "%s: unknown xattrs policy code %u", name, h.xattrs);
	else if ((h.flags & ~LS_CODE_FLAG_ONE_FS) || h.start_nsec >= 1000000000u)
		head_rc = ls_fail(&head_err, EINVAL, "%s: corrupt manifest header", name);
	else
		head_rc = parse_options(b, &h, m, name, &head_err);
	m->one_file_system = h.flags & LS_CODE_FLAG_ONE_FS;
	m->start_sec = h.start_sec;
	m->start_nsec = h.start_nsec;
	memset(&m->facts, 0, sizeof(m->facts));

	/* A large manifest: the checksum and the check of its last records on
	 * a thread, the first records (more of them) here. */
	struct checksum_job job = { .buf = b, .len = len - sizeof(checksum), .m = m, .name = name };
	pthread_t th;
	bool threaded;
	if (split == LS_CHECK_SPLIT_AUTO) {
		threaded = job.len >= PARALLEL_CHECKSUM_MIN;
		split = threaded && m->n >= PARALLEL_CHECK_MIN ? m->n - m->n * 3 / 8 : 0;
	} else {
		threaded = split > 0 && split < m->n;
	}
	if (threaded && head_rc == 0 && split < m->n)
		job.from = split;
	if (threaded && pthread_create(&th, NULL, checksum_main, &job) != 0) {
		threaded = false;
		job.from = 0;
	}
	if (!threaded) {
		checksum_main(&job);
		if (job.sum != checksum)
			return ls_fail(err, EINVAL, "%s: manifest checksum mismatch (corrupt or truncated file)", name);
	}
	struct ls_error records_err;
	int rc = head_rc;
	if (rc == 0)
		rc = check_structure(m, 0, job.from ? job.from : m->n, &m->facts, name, &records_err);
	if (threaded)
		pthread_join(th, NULL);
	/* The checksum's verdict first (the first error reported: a corrupt
	 * file's other faults follow from it). */
	if (job.sum != checksum)
		return ls_fail(err, EINVAL, "%s: manifest checksum mismatch (corrupt or truncated file)", name);
	if (rc) {
		if (err)
			*err = head_rc ? head_err : records_err;
		return rc;
	}
	if (job.from && job.rc) {
		/* The first records passed, the last did not (a corrupt file
		 * with a good checksum): the error of a check in one go. */
		memset(&m->facts, 0, sizeof(m->facts));
		return check_structure(m, 0, m->n, &m->facts, name, err);
	}
	if (job.from)
		facts_merge(&m->facts, &job.facts);
	return 0;
}

int ls_manifest_load(const char *path, ls_manifest **out, struct ls_error *err)
{
	if (!out)
		return ls_fail(err, EINVAL, "manifest: load: nowhere to put it");
	*out = NULL;
	if (!path)
		return ls_fail(err, EINVAL, "manifest: load: no path");
	/* O_NONBLOCK: a FIFO given as a manifest is refused below, not waited on. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return ls_fail_errno(err, errno, "%s", path);
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return ls_fail_errno(err, e, "%s", path);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return ls_fail(err, EINVAL, "%s: not a regular file", path);
	}
	if (st.st_size < 8) {
		close(fd);
		return ls_fail(err, EINVAL, "%s: %s", path, st.st_size == 0 ? "empty file, not a manifest" : "not a layersnap manifest");
	}
	size_t len = (size_t)st.st_size;
	void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	int e = errno;
	close(fd);
	if (map == MAP_FAILED)
		return ls_fail_errno(err, e, "%s: mmap", path);
	int rc = ls_manifest_parse(map, len, path, out, err);
	if (rc) {
		munmap(map, len);
		return rc;
	}
	(*out)->map_len = len; /* owned from here on */
	return 0;
}

struct ls_manifest_loading {
	const char *path;
	pthread_t thread;
	bool running;
	int rc;
	ls_manifest *m;
	struct ls_error err;
};

static void *load_main(void *arg)
{
	struct ls_manifest_loading *l = arg;
	l->rc = ls_manifest_load(l->path, &l->m, &l->err);
	return NULL;
}

int ls_manifest_load_start(struct ls_manifest_loading **out, const char *path)
{
	struct ls_manifest_loading *l = calloc(1, sizeof(*l));
	*out = l;
	if (!l)
		return -ENOMEM;
	l->path = path;
	l->running = pthread_create(&l->thread, NULL, load_main, l) == 0;
	if (!l->running)
		load_main(l);
	return 0;
}

int ls_manifest_load_finish(struct ls_manifest_loading *l, ls_manifest **out, struct ls_error *err)
{
	if (l->running)
		pthread_join(l->thread, NULL);
	int rc = l->rc;
	*out = l->m;
	if (rc && err)
		*err = l->err;
	free(l);
	return rc;
}
