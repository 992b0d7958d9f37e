#include "manifest.h"
#include "error.h"
#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the manifest format is little-endian and mapped in place"
#endif

#define HEADER_FIXED 64
#define TRAILER 8

struct header {
	char magic[8];
	uint32_t version;
	uint32_t header_len;
	uint8_t mode, xattrs, flags, reserved0[5];
	int64_t start_sec;
	uint32_t start_nsec;
	uint32_t n_excludes;
	uint64_t n_entries;
	uint64_t pool_len;
	uint32_t options_len;
	uint32_t reserved1;
};
_Static_assert(sizeof(struct header) == HEADER_FIXED, "header layout");

#define FLAG_ONE_FS 1u

static size_t pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

int ls_path_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	for (size_t i = 0; i < n; i++) {
		unsigned char ca = (unsigned char)a[i], cb = (unsigned char)b[i];
		if (ca != cb) {
			/* '/' sorts before every other byte: a directory's subtree
			 * comes right after it, before its siblings "a-b", "a.b". */
			if (ca == '/')
				return -1;
			if (cb == '/')
				return 1;
			return ca < cb ? -1 : 1;
		}
	}
	return alen < blen ? -1 : alen > blen;
}

size_t ls_manifest_lower_bound(const ls_manifest *m, const char *path, size_t len)
{
	size_t lo = 0, hi = m->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct ls_rec *r = &m->recs[mid];
		if (ls_path_cmp(ls_rec_path(m, r), r->path_len, path, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

ssize_t ls_manifest_find(const ls_manifest *m, const char *path, size_t len)
{
	size_t i = ls_manifest_lower_bound(m, path, len);
	if (i < m->n && m->recs[i].path_len == len && memcmp(ls_rec_path(m, &m->recs[i]), path, len) == 0)
		return (ssize_t)i;
	return -1;
}

ssize_t ls_normalize_relpath(char *p)
{
	char *out = p;
	const char *s = p;
	while (*s) {
		while (*s == '/')
			s++;
		if (!*s)
			break;
		const char *e = strchrnul(s, '/');
		size_t n = (size_t)(e - s);
		if (n == 1 && s[0] == '.') {
			s = e;
			continue;
		}
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return -1;
		if (out != p)
			*out++ = '/';
		memmove(out, s, n);
		out += n;
		s = e;
	}
	*out = '\0';
	return out - p;
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
		if (ls_normalize_relpath(c) < 0) {
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
		m->options = malloc(total);
		if (!m->options) {
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

const char *ls_manifest_exclude(const ls_manifest *m, size_t i)
{
	const char *p = m->options;
	while (i-- > 0)
		p += strlen(p) + 1;
	return p;
}

int ls_grow(void **buf, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t ncap = *cap ? *cap : 1024;
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
	if (path_len == 0 || path_len > UINT16_MAX || link_len > UINT16_MAX || xattr_len > UINT32_MAX)
		return ls_fail(err, ENAMETOOLONG, "%.*s: name too long", (int)(path_len > 200 ? 200 : path_len), path);
	size_t aux = path_len + 1 + link_len + 1 + xattr_len;
	if (ls_grow((void **)&m->recs, &m->cap, m->n + 1, sizeof(*m->recs)) ||
	    ls_grow((void **)&m->pool, &m->pool_cap, m->pool_len + aux, 1))
		return ls_fail(err, ENOMEM, "manifest: out of memory");
	struct ls_rec *d = &m->recs[m->n++];
	*d = *r;
	d->aux_off = m->pool_len;
	d->path_len = (uint16_t)path_len;
	d->link_len = (uint16_t)link_len;
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

int ls_manifest_append_from(ls_manifest *m, const ls_manifest *src, size_t i, struct ls_error *err)
{
	const struct ls_rec *r = &src->recs[i];
	return ls_manifest_append(m, r, ls_rec_path(src, r), r->path_len, ls_rec_link(src, r),
				  r->link_len, ls_rec_xattrs(src, r), r->xattr_len, err);
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
	}
	free(m);
}

size_t ls_manifest_count(const ls_manifest *m)
{
	return m->n;
}

enum ls_mode ls_manifest_mode(const ls_manifest *m)
{
	return m->mode;
}

/* ---- writing ------------------------------------------------------------ */

struct hashed_writer {
	int fd;
	XXH3_state_t *st;
};

static int hw_write(struct hashed_writer *w, const void *buf, size_t len)
{
	if (len == 0)
		return 0;
	XXH3_64bits_update(w->st, buf, len);
	return ls_write_all(w->fd, buf, len);
}

int ls_manifest_write_fd(const ls_manifest *m, int fd, struct ls_error *err)
{
	struct header h;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, LS_MANIFEST_MAGIC, 8);
	h.version = LS_MANIFEST_VERSION;
	h.header_len = (uint32_t)(HEADER_FIXED + pad8(m->options_len));
	h.mode = (uint8_t)m->mode;
	h.xattrs = (uint8_t)m->xattrs;
	h.flags = m->one_file_system ? FLAG_ONE_FS : 0;
	h.start_sec = m->start_sec;
	h.start_nsec = m->start_nsec;
	h.n_excludes = (uint32_t)m->n_excludes;
	h.n_entries = m->n;
	h.pool_len = m->pool_len;
	h.options_len = (uint32_t)m->options_len;

	XXH3_state_t *st = XXH3_createState();
	if (!st)
		return ls_fail(err, ENOMEM, "manifest: out of memory");
	XXH3_64bits_reset(st);
	struct hashed_writer w = { fd, st };
	static const char zeros[8];
	int rc = hw_write(&w, &h, sizeof(h));
	if (!rc)
		rc = hw_write(&w, m->options, m->options_len);
	if (!rc)
		rc = hw_write(&w, zeros, pad8(m->options_len) - m->options_len);
	if (!rc)
		rc = hw_write(&w, m->recs, m->n * sizeof(*m->recs));
	if (!rc)
		rc = hw_write(&w, m->pool, m->pool_len);
	if (!rc) {
		uint64_t sum = XXH3_64bits_digest(st);
		rc = ls_write_all(fd, &sum, sizeof(sum));
	}
	XXH3_freeState(st);
	if (rc)
		return ls_fail_errno(err, -rc, "manifest: write");
	return 0;
}

int ls_manifest_save(const ls_manifest *m, const char *path, bool do_fsync, struct ls_error *err)
{
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
		if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		s = e + 1;
	}
	return true;
}

static bool xattrs_valid(const unsigned char *x, size_t len)
{
	const char *prev = NULL;
	size_t prev_len = 0;
	while (len > 0) {
		if (len < LS_XATTR_HDR)
			return false;
		uint16_t nl;
		uint32_t vl;
		memcpy(&nl, x, 2);
		memcpy(&vl, x + 2, 4);
		if (nl == 0 || (size_t)nl + vl > len - LS_XATTR_HDR)
			return false;
		const char *name = (const char *)x + LS_XATTR_HDR;
		if (memchr(name, '\0', nl))
			return false;
		if (prev) {
			size_t n = prev_len < nl ? prev_len : nl;
			int c = memcmp(prev, name, n);
			if (c > 0 || (c == 0 && prev_len >= nl))
				return false;
		}
		prev = name;
		prev_len = nl;
		x += LS_XATTR_HDR + nl + vl;
		len -= LS_XATTR_HDR + nl + vl;
	}
	return true;
}

/* The parent of every entry must be an earlier directory entry: the diff and
 * the layer writer rely on it.  `chain` holds the current ancestor stack. */
static int check_structure(const ls_manifest *m, const char *name, struct ls_error *err)
{
	size_t *chain = NULL, depth = 0, cap = 0;
	int rc = 0;
	for (size_t i = 0; i < m->n && rc == 0; i++) {
		const struct ls_rec *r = &m->recs[i];
		if (r->aux_off > m->pool_len ||
		    m->pool_len - r->aux_off < (uint64_t)r->path_len + 1 + r->link_len + 1 + r->xattr_len) {
			rc = ls_fail(err, EINVAL, "%s: corrupt manifest (entry %zu out of bounds)", name, i);
			break;
		}
		const char *p = ls_rec_path(m, r);
		const char *l = ls_rec_link(m, r);
		if (!is_normal_path(p, r->path_len) || p[r->path_len] != '\0' || l[r->link_len] != '\0' ||
		    memchr(l, '\0', r->link_len) || !is_valid_type(r->mode) ||
		    (r->mode & LS_REC_FLAGS_MASK & ~(LS_REC_HASHED | LS_REC_MOUNTPOINT)) ||
		    !xattrs_valid(ls_rec_xattrs(m, r), r->xattr_len)) {
			rc = ls_fail(err, EINVAL, "%s: corrupt manifest (entry %zu)", name, i);
			break;
		}
		if (i > 0) {
			const struct ls_rec *q = &m->recs[i - 1];
			if (ls_path_cmp(ls_rec_path(m, q), q->path_len, p, r->path_len) >= 0) {
				rc = ls_fail(err, EINVAL, "%s: corrupt manifest (entries out of order at %zu)", name, i);
				break;
			}
		}
		while (depth > 0) {
			const struct ls_rec *a = &m->recs[chain[depth - 1]];
			if (ls_path_is_under(p, r->path_len, ls_rec_path(m, a), a->path_len))
				break;
			depth--;
		}
		const char *slash = memrchr(p, '/', r->path_len);
		size_t parent_len = slash ? (size_t)(slash - p) : 0;
		size_t have = depth ? m->recs[chain[depth - 1]].path_len : 0;
		if (parent_len != have) {
			rc = ls_fail(err, EINVAL, "%s: corrupt manifest (entry %zu has no parent)", name, i);
			break;
		}
		if (S_ISDIR(r->mode)) {
			if (depth == cap) {
				size_t ncap = cap ? cap * 2 : 64;
				size_t *n = realloc(chain, ncap * sizeof(*n));
				if (!n) {
					rc = ls_fail(err, ENOMEM, "%s: out of memory", name);
					break;
				}
				chain = n;
				cap = ncap;
			}
			chain[depth++] = i;
		}
	}
	free(chain);
	return rc;
}

int ls_manifest_parse(const void *buf, size_t len, const char *name, ls_manifest **out,
		      struct ls_error *err)
{
	*out = NULL;
	struct header h;
	if (len < 8 || memcmp(buf, LS_MANIFEST_MAGIC, 8) != 0)
		return ls_fail(err, EINVAL, "%s: not a layersnap manifest", name);
	if (len < HEADER_FIXED + TRAILER)
		return ls_fail(err, EINVAL, "%s: truncated manifest", name);
	memcpy(&h, buf, sizeof(h));
	if (h.version != LS_MANIFEST_VERSION)
		return ls_fail(err, EINVAL, "%s: manifest format version %u, this layersnap reads version %u",
			       name, h.version, LS_MANIFEST_VERSION);
	/* Sizes are checked before the checksum so that a truncation is named as such. */
	uint64_t need = h.header_len;
	bool overflow = h.n_entries > (UINT64_MAX / 2) / sizeof(struct ls_rec) || h.pool_len > UINT64_MAX / 4;
	if (!overflow)
		need += h.n_entries * sizeof(struct ls_rec) + h.pool_len + TRAILER;
	if (overflow || h.header_len < HEADER_FIXED || need > len) {
		uint64_t sum;
		memcpy(&sum, (const char *)buf + len - TRAILER, TRAILER);
		if (!overflow && h.header_len >= HEADER_FIXED && sum == XXH3_64bits(buf, len - TRAILER))
			return ls_fail(err, EINVAL, "%s: corrupt manifest", name);
		return ls_fail(err, EINVAL, "%s: truncated or corrupt manifest", name);
	}
	if (need < len)
		return ls_fail(err, EINVAL, "%s: corrupt manifest (trailing bytes)", name);
	uint64_t sum;
	memcpy(&sum, (const char *)buf + len - TRAILER, TRAILER);
	if (sum != XXH3_64bits(buf, len - TRAILER))
		return ls_fail(err, EINVAL, "%s: manifest checksum mismatch (corrupt file)", name);
	if (h.mode > LS_MODE_FULL || h.xattrs > LS_XATTRS_NONE || (h.flags & ~FLAG_ONE_FS) ||
	    h.header_len != HEADER_FIXED + pad8(h.options_len) || h.header_len % 8)
		return ls_fail(err, EINVAL, "%s: corrupt manifest header", name);

	const char *opts = (const char *)buf + HEADER_FIXED;
	size_t count = 0;
	for (size_t i = 0; i < h.options_len; i++)
		if (opts[i] == '\0')
			count++;
	if (count != h.n_excludes || (h.options_len && opts[h.options_len - 1] != '\0'))
		return ls_fail(err, EINVAL, "%s: corrupt manifest options", name);

	ls_manifest *m = calloc(1, sizeof(*m));
	if (!m)
		return ls_fail(err, ENOMEM, "%s: out of memory", name);
	m->mode = (enum ls_mode)h.mode;
	m->xattrs = (enum ls_xattrs)h.xattrs;
	m->one_file_system = h.flags & FLAG_ONE_FS;
	m->start_sec = h.start_sec;
	m->start_nsec = h.start_nsec;
	m->options = (char *)opts;
	m->options_len = h.options_len;
	m->n_excludes = h.n_excludes;
	m->recs = (struct ls_rec *)((char *)buf + h.header_len);
	m->n = m->cap = h.n_entries;
	m->pool = (char *)buf + h.header_len + h.n_entries * sizeof(struct ls_rec);
	m->pool_len = m->pool_cap = h.pool_len;
	m->map = (void *)buf;
	m->map_len = 0; /* borrowed */
	int rc = check_structure(m, name, err);
	if (rc) {
		ls_manifest_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

int ls_manifest_load(const char *path, ls_manifest **out, struct ls_error *err)
{
	*out = NULL;
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
