/*
 * ls_diff: walk, one merge-join against the base, and the layer.
 *
 * The plan is a few flat arrays over the new manifest (what each entry is,
 * whether it goes in the layer, its parent) plus a list of whiteouts keyed by
 * the directory they belong to; the writer then makes one pass in walk order.
 */
#include "carry.h"
#include "content.h"
#include "diff.h"
#include "error.h"
#include "ioq.h"
#include "layer.h"
#include "manifest.h"
#include "modes.h"
#include "path.h"
#include "sized.h"
#include "upper.h"
#include "walk.h"
#include "xattr.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum status { ST_SAME = 0, ST_ADDED, ST_MODIFIED, ST_TYPE };

/* Entry flags in the plan. */
#define IN_LAYER  1u  /* changed, or brought along by a hard link */
#define ANCESTOR  2u  /* written because something below it is */
#define OPAQUE    4u  /* gets .wh..wh..opq instead of per-child whiteouts */
#define HAS_WH    8u  /* has whiteouts to write */
#define GONE     16u  /* vanished after the walk: absent from layer and manifest */
#define KEPT     32u  /* unreadable (--ignore-errors): not in the layer, the base's entry kept */
#define AHEAD    64u  /* listed for the read-ahead */

struct whiteout {
	ssize_t parent;       /* index in cur of the directory, -1 for ROOT */
	size_t base_index;    /* the deleted (or replaced) entry in base */
};

struct plan {
	const ls_manifest *base;
	const char *const *skip;  /* the run's own outputs: absent on both sides */
	size_t n_skip;
	ls_manifest *cur;             /* what the walk recorded, */
	struct ls_carry *carry;       /* and the runs of base it carried over, or NULL */
	uint8_t *status;
	uint8_t *flags;
	ssize_t *parent;
	size_t *base_of;      /* the base record at the same path, SIZE_MAX if none */
	ssize_t *link_first;  /* hard links: index of the group's first member in the layer, or -1;
			       * for a first member that vanished, the member that took its place */
	struct whiteout *wh;
	size_t n_wh, cap_wh;
	uint64_t added, modified, deleted;
	/* The layer reads xattrs (under cur's policy) as it writes entries:
	 * the mode does not record them, or the walk left them out. */
	bool xattrs_now;
};

static void plan_free(struct plan *p)
{
	free(p->status);
	free(p->flags);
	free(p->parent);
	free(p->base_of);
	free(p->link_first);
	free(p->wh);
}

static int add_whiteout(struct plan *p, ssize_t parent, size_t bi)
{
	if (ls_grow((void **)&p->wh, &p->cap_wh, p->n_wh + 1, sizeof(*p->wh)))
		return -ENOMEM;
	p->wh[p->n_wh].parent = parent;
	p->wh[p->n_wh].base_index = bi;
	p->n_wh++;
	return 0;
}

/* parent[i] for every entry, from the ancestor chain of a linear pass. */
static int compute_parents(struct plan *p)
{
	const ls_manifest *m = p->cur;
	size_t *chain = malloc((m->n + 1) * sizeof(*chain));
	if (!chain)
		return -ENOMEM;
	size_t depth = 0;
	for (size_t i = 0; i < m->n; i++) {
		const struct ls_rec *r = &m->recs[i];
		const char *path = ls_rec_path(m, r);
		while (depth > 0) {
			const struct ls_rec *a = &m->recs[chain[depth - 1]];
			if (ls_path_is_under(path, r->path_len, ls_rec_path(m, a), a->path_len))
				break;
			depth--;
		}
		p->parent[i] = depth ? (ssize_t)chain[depth - 1] : -1;
		if (S_ISDIR(r->mode))
			chain[depth++] = i;
	}
	free(chain);
	return 0;
}

/* Index in cur of the directory holding base path `path`, -1 for ROOT. */
static ssize_t cur_parent_of(const struct plan *p, const char *path, size_t len)
{
	const char *slash = memrchr(path, '/', len);
	if (!slash)
		return -1;
	return ls_manifest_find(p->cur, path, (size_t)(slash - path));
}

static bool is_skipped(const struct plan *p, const char *path, size_t len)
{
	for (size_t k = 0; k < p->n_skip; k++) {
		size_t sl = strlen(p->skip[k]);
		if (sl == len && memcmp(p->skip[k], path, len) == 0)
			return true;
	}
	return false;
}

/* The merge-join: statuses for cur, whiteouts for base. */
static int join(struct plan *p, const struct ls_mode_ops *ops)
{
	const ls_manifest *b = p->base, *c = p->cur;
	size_t i = 0, j = 0, nb = b ? b->n : 0;
	const struct ls_carry_run *runs = p->carry ? p->carry->runs : NULL;
	size_t k = 0, n_runs = p->carry ? p->carry->n : 0;
	/* A whited-out base directory covers its whole subtree. */
	const char *gone = NULL;
	size_t gone_len = 0;
	while (i < nb || j < c->n) {
		const struct ls_rec *rb = i < nb ? &b->recs[i] : NULL;
		const struct ls_rec *rc = j < c->n ? &c->recs[j] : NULL;
		/* A carried run comes next on the new side: it is the base's
		 * records [from, to), the same by construction, skipped in one
		 * step once the base entries before it are matched. */
		const struct ls_carry_run *run = k < n_runs && runs[k].at <= j ? &runs[k] : NULL;
		if (run && i == run->from) {
			i = run->to;
			k++;
			continue;
		}
		if (run) {
			if (i > run->from)
				return -EIO;  /* runs out of walk order: a walker bug */
			rc = &b->recs[run->from];
		}
		/* A layer cannot carry sockets: for the diff they do not exist
		 * (dropping them from both sides keeps the walk order). */
		if (rb && S_ISSOCK(rb->mode)) {
			i++;
			continue;
		}
		if (!run && rc && S_ISSOCK(rc->mode)) {
			j++;
			continue;
		}
		if (rb && gone && ls_path_is_under(ls_rec_path(b, rb), rb->path_len, gone, gone_len)) {
			p->deleted++;
			i++;
			continue;
		}
		if (rb && p->n_skip && is_skipped(p, ls_rec_path(b, rb), rb->path_len)) {
			i++;  /* an output of this run: never whited out */
			continue;
		}
		const ls_manifest *rcm = run ? b : c;
		int cmp = !rb ? 1 : !rc ? -1 : ls_path_cmp(ls_rec_path(b, rb), rb->path_len, ls_rec_path(rcm, rc), rc->path_len);
		if (run && cmp >= 0)
			return -EIO;  /* i < run->from, so base[i] sorts before base[from] */
		if (cmp > 0) {
			p->status[j++] = ST_ADDED;
			p->added++;
			continue;
		}
		if (cmp < 0 || (rb->mode & S_IFMT) != (rc->mode & S_IFMT)) {
			const char *bp = ls_rec_path(b, rb);
			int r = add_whiteout(p, cur_parent_of(p, bp, rb->path_len), i);
			if (r)
				return r;
			if (S_ISDIR(rb->mode)) {
				gone = bp;
				gone_len = rb->path_len;
			}
			if (cmp < 0) {
				p->deleted++;
			} else {
				p->base_of[j] = i;
				p->status[j++] = ST_TYPE;
				p->modified++;
			}
			i++;
			continue;
		}
		if (ls_mode_diff_fields(ops, b, rb, c, rc, false)) {
			p->status[j] = ST_MODIFIED;
			p->modified++;
		}
		p->base_of[j] = i;
		i++;
		j++;
	}
	return 0;
}

struct link_key {
	uint64_t dev, ino;
	size_t index;
};

static int cmp_link_key(const void *x, const void *y)
{
	const struct link_key *a = x, *b = y;
	if (a->dev != b->dev)
		return a->dev < b->dev ? -1 : 1;
	if (a->ino != b->ino)
		return a->ino < b->ino ? -1 : 1;
	return (a->index > b->index) - (a->index < b->index);
}

/* A hard-linked inode in the layer brings all of its paths, the first in
 * walk order carrying the content. */
static int link_groups(struct plan *p)
{
	const ls_manifest *c = p->cur;
	size_t n = 0;
	for (size_t i = 0; i < c->n; i++)
		if (!S_ISDIR(c->recs[i].mode) && c->recs[i].nlink > 1)
			n++;
	for (size_t i = 0; i < c->n; i++)
		p->link_first[i] = -1;
	if (n < 2)
		return 0;
	struct link_key *keys = malloc(n * sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	n = 0;
	for (size_t i = 0; i < c->n; i++) {
		const struct ls_rec *r = &c->recs[i];
		if (!S_ISDIR(r->mode) && r->nlink > 1)
			keys[n++] = (struct link_key){ r->dev, r->ino, i };
	}
	qsort(keys, n, sizeof(*keys), cmp_link_key);
	for (size_t g = 0; g < n;) {
		size_t e = g + 1;
		while (e < n && keys[e].dev == keys[g].dev && keys[e].ino == keys[g].ino)
			e++;
		bool any = false;
		for (size_t k = g; k < e; k++)
			if (p->status[keys[k].index] != ST_SAME)
				any = true;
		if (any && e - g > 1) {
			for (size_t k = g; k < e; k++) {
				p->flags[keys[k].index] |= IN_LAYER;
				if (k > g)
					p->link_first[keys[k].index] = (ssize_t)keys[g].index;
			}
		}
		g = e;
	}
	free(keys);
	return 0;
}

static void mark_ancestors(struct plan *p, ssize_t d)
{
	while (d >= 0 && !(p->flags[d] & ANCESTOR)) {
		p->flags[d] |= ANCESTOR;
		d = p->parent[d];
	}
}

static int cmp_wh(const void *x, const void *y)
{
	const struct whiteout *a = x, *b = y;
	if (a->parent != b->parent)
		return a->parent < b->parent ? -1 : 1;
	return (a->base_index > b->base_index) - (a->base_index < b->base_index);
}

/* --opaque: a directory none of whose old children survive gets one opaque
 * whiteout.  Its old children were all deleted or replaced, so every current
 * child is already in the layer. */
static void choose_opaque(struct plan *p)
{
	for (size_t k = 0; k < p->n_wh;) {
		size_t e = k;
		while (e < p->n_wh && p->wh[e].parent == p->wh[k].parent)
			e++;
		ssize_t d = p->wh[k].parent;
		/* Old direct children of d in base: count them. */
		const ls_manifest *b = p->base;
		const char *dp = d >= 0 ? ls_rec_path(p->cur, &p->cur->recs[d]) : "";
		size_t dl = d >= 0 ? p->cur->recs[d].path_len : 0;
		size_t first = d >= 0 ? ls_manifest_lower_bound(b, dp, dl) + 1 : 0;
		size_t old_children = 0;
		for (size_t i = first; i < b->n; i++) {
			const struct ls_rec *r = &b->recs[i];
			const char *rp = ls_rec_path(b, r);
			if (d >= 0 && !ls_path_is_under(rp, r->path_len, dp, dl))
				break;
			const char *rest = d >= 0 ? rp + dl + 1 : rp;
			size_t rest_len = d >= 0 ? r->path_len - dl - 1 : r->path_len;
			if (!memchr(rest, '/', rest_len))
				old_children++;
		}
		if (old_children == e - k && d >= 0)
			p->flags[d] |= OPAQUE;
		k = e;
	}
}

static int make_plan(struct plan *p, enum ls_mode mode, bool opaque, struct ls_error *err)
{
	size_t n = p->cur->n;
	p->status = calloc(n + 1, 1);
	p->flags = calloc(n + 1, 1);
	p->parent = malloc((n + 1) * sizeof(*p->parent));
	p->base_of = malloc((n + 1) * sizeof(*p->base_of));
	p->link_first = malloc((n + 1) * sizeof(*p->link_first));
	if (!p->status || !p->flags || !p->parent || !p->base_of || !p->link_first)
		return ls_fail(err, ENOMEM, "diff: out of memory");
	for (size_t i = 0; i < n; i++)
		p->base_of[i] = SIZE_MAX;
	if (compute_parents(p))
		return ls_fail(err, ENOMEM, "diff: out of memory");
	int rc = join(p, ls_mode_ops_of(mode));
	if (rc)
		return ls_fail(err, -rc, rc == -ENOMEM ? "diff: out of memory" : "diff: carried runs out of walk order");
	for (size_t i = 0; i < n; i++)
		if (p->status[i] != ST_SAME)
			p->flags[i] |= IN_LAYER;
	if (link_groups(p))
		return ls_fail(err, ENOMEM, "diff: out of memory");
	for (size_t i = 0; i < n; i++)
		if (p->flags[i] & IN_LAYER)
			mark_ancestors(p, p->parent[i]);
	if (p->n_wh)  /* qsort(NULL, 0, ...) is undefined */
		qsort(p->wh, p->n_wh, sizeof(*p->wh), cmp_wh);
	for (size_t k = 0; k < p->n_wh; k++) {
		if (p->wh[k].parent >= 0) {
			p->flags[p->wh[k].parent] |= HAS_WH;
			mark_ancestors(p, p->wh[k].parent);
		}
	}
	if (opaque && p->base)
		choose_opaque(p);
	return 0;
}

/* ---- writing ------------------------------------------------------------- */

struct writer {
	const struct ls_walk_options *o;
	const char *root;
	int rootfd;
	struct ls_dirchain *dirs;  /* the open directories above the entry being written */
	struct plan *p;
	struct ls_layer *layer;
	XXH3_state_t *xxh;
	struct ls_xattr *xattrs;
	size_t xattr_cap;
	XXH3_state_t *xxh2;         /* for a second read */
	char *buf;                  /* REREAD_BUF bytes, for a second read */
	bool want_hash;             /* a new manifest is made: hash what is read */
	uint64_t entries_out;       /* progress: entries written, */
	uint64_t bytes_read;        /* file contents copied, */
	uint64_t bytes_total;       /* of these in all */
	uint64_t reported;          /* bytes_read at the last report */
	ls_change_fn *on_change;    /* the caller's change list, or NULL */
	void *change_ctx;
	struct ls_readahead *ra;    /* regular files read on another thread, or NULL */
	size_t *ra_idx;             /* the entries it reads */
};

#define REREAD_BUF (256 * 1024)

/* Decodes a manifest xattr blob into w->xattrs. */
static int decode_xattrs(struct writer *w, const void *blob, size_t len, size_t *n_out)
{
	size_t n = 0;
	struct ls_xattr_it it = ls_xattr_iter(blob, len);
	struct ls_xattr_view v;
	int rc;
	while ((rc = ls_xattr_next(&it, &v)) > 0) {
		if (ls_grow((void **)&w->xattrs, &w->xattr_cap, n + 1, sizeof(*w->xattrs)))
			rc = -ENOMEM;
		/* Names are NUL-free in the blob but not NUL-terminated: copy. */
		char *name = rc > 0 ? strndup(v.name, v.name_len) : NULL;
		if (!name) {
			rc = -ENOMEM;
			break;
		}
		w->xattrs[n].name = name;
		w->xattrs[n].value = v.value;
		w->xattrs[n].value_len = v.value_len;
		n++;
	}
	*n_out = n;
	return rc;
}

static void free_xattr_names(struct writer *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free((char *)w->xattrs[i].name);
}

/* What write_entry found of an entry. */
enum { WRITTEN = 0, VANISHED = 1, UNREADABLE = 2 };

static bool is_vanished(int rc)
{
	/* Gone, or its name (or a parent's) now holds something else. */
	return rc == -ENOENT || rc == -ENOTDIR || rc == -ELOOP || rc == -ENXIO;
}

/* Reads fd again from the start: true when its bytes hash to want. */
static int reread_matches(struct writer *w, int fd, const uint8_t want[16], bool *same)
{
	if (!w->buf && !(w->buf = malloc(REREAD_BUF)))
		return -ENOMEM;
	if (!w->xxh2 && !(w->xxh2 = XXH3_createState()))
		return -ENOMEM;
	if (lseek(fd, 0, SEEK_SET) != 0)
		return -errno;
	uint8_t got[16];
	int rc = ls_hash_fd(fd, w->buf, REREAD_BUF, w->xxh2, got);
	*same = rc == 0 && memcmp(got, want, 16) == 0;
	return rc;
}

/* True when st no longer has the size, mtime and ctime recorded in r. */
static bool rec_differs(const struct ls_rec *r, const struct stat *st)
{
	struct ls_rec now = *r;
	ls_rec_take_stat(&now, st);
	return now.size != r->size || now.mtime_ns != r->mtime_ns || now.ctime_ns != r->ctime_ns;
}

/* The parent directory of entry path (from the writer's chain) and the
 * entry's last component. */
static int parent_of(struct writer *w, const char *path, size_t len, const char **name)
{
	const char *slash = memrchr(path, '/', len);
	*name = slash ? slash + 1 : path;
	return ls_dirchain_get(w->dirs, path, slash ? (size_t)(slash - path) : 0);
}

/* Whether the layer reads xattrs now: the mode does not record them. */
static bool xattrs_read_now(const ls_manifest *c)
{
	return !(ls_mode_ops_of(c->mode)->fields & LS_F_XATTRS) && c->xattrs != LS_XATTRS_NONE;
}

/* Writes entry i.  Returns WRITTEN, VANISHED (nothing written: the caller
 * accounts for it) or a negative code. */
static int write_entry(struct writer *w, size_t i, struct ls_error *err)
{
	struct plan *p = w->p;
	ls_manifest *c = p->cur;
	struct ls_rec *r = &c->recs[i];
	const char *path = ls_rec_path(c, r);
	if (S_ISSOCK(r->mode))
		return WRITTEN; /* sockets cannot be carried by a layer */
	const bool xattrs_now = p->xattrs_now;
	/* The parent directory is opened (the writer's chain) only for what is
	 * done by name here: what the read-ahead opened and stat'ed needs none. */
	const char *name = NULL;  /* set with dirfd */
	int dirfd = -ENOENT;
	/* A directory must still be the one the walk recorded; its header
	 * takes its metadata as it is now. */
	if (S_ISDIR(r->mode)) {
		struct stat st;
		int e = 0;
		struct ls_read *d = w->ra && (p->flags[i] & AHEAD) ? ls_readahead_get(w->ra, i) : NULL;
		if (d) {
			e = d->err;
			st = d->before;
			ls_readahead_release(w->ra, d);
		} else {
			dirfd = parent_of(w, path, r->path_len, &name);
			e = dirfd < 0 ? dirfd : fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ? -errno : 0;
		}
		if (e)
			return is_vanished(e) ? VANISHED : ls_fail_errno(err, -e, "%s/%s", w->root, path);
		if (!ls_same_inode(r, &st))
			return VANISHED;
		ls_rec_take_stat(r, &st);
	}

	/* A hard link names the first member of its group written; when that
	 * one was not written, the next member takes its place (and when that
	 * one was not either, the one after). */
	ssize_t first = p->link_first[i];
	if (first >= 0 && (p->flags[first] & (GONE | KEPT))) {
		ssize_t stand_in = p->link_first[first];
		if (stand_in < 0 || (p->flags[stand_in] & (GONE | KEPT))) {
			p->link_first[first] = (ssize_t)i;
			stand_in = -1;
		}
		first = stand_in;
	}
	bool read_content = S_ISREG(r->mode) && first < 0;
	int fd = -1;
	struct stat before;
	void *blob = NULL;
	size_t blob_len = 0, n_x = 0;
	/* Read ahead: whole (data), or opened and checked (fd), or failed. */
	struct ls_read *ahead = read_content && w->ra && (p->flags[i] & AHEAD) ? ls_readahead_get(w->ra, i) : NULL;
	int rc = 0;
	/* The read-ahead read them from the file it opened. */
	const bool xattrs_by_name = xattrs_now && !(ahead && ahead->xattrs_read);
	if (!S_ISDIR(r->mode) && ((read_content && !ahead) || first >= 0 || xattrs_by_name)) {
		dirfd = parent_of(w, path, r->path_len, &name);
		if (dirfd < 0 && !is_vanished(dirfd)) {
			rc = ls_fail_errno(err, -dirfd, "%s/%s", w->root, path);
			goto out;
		}
	}
	if (dirfd < 0 && ((read_content && !ahead) || first >= 0)) {
		rc = VANISHED;
		goto out;
	}
	if (ahead) {
		fd = ahead->err ? ahead->err : ahead->fd;
		ahead->fd = -1;
		before = ahead->before;
	} else if (read_content) {
		fd = ls_content_open(dirfd, name, r, &before);
	}
	if (read_content && (ahead ? ahead->err : fd) < 0) {
		int e = ahead ? ahead->err : fd;
		fd = -1;
		if (e == -EAGAIN)
			rc = ls_fail(err, EAGAIN, "%s/%s: changed while being read", w->root, path);
		else if (is_vanished(e))
			rc = VANISHED;
		else if ((e == -EACCES || e == -EPERM) && w->o->ignore_errors)
			rc = UNREADABLE;
		else
			rc = ls_fail_errno(err, -e, "%s/%s", w->root, path);
		goto out;
	}
	if (read_content) {
		ls_rec_take_stat(r, &before);
	} else if (first >= 0) {
		struct stat st;
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !ls_same_inode(r, &st)) {
			rc = VANISHED;
			goto out;
		}
	}
	bool whole = ahead && fd < 0;

	struct ls_layer_entry e = {
		.path = path, .mode = r->mode & LS_REC_MODE_MASK, .uid = r->uid, .gid = r->gid,
		.mtime_sec = ls_ns_to_sec(r->mtime_ns), .size = S_ISREG(r->mode) ? r->size : 0,
		.rdev = r->rdev, .link_target = S_ISLNK(r->mode) ? ls_rec_link(c, r) : NULL,
	};
	if (first >= 0) {
		e.hardlink = ls_rec_path(c, &c->recs[first]);
		e.size = 0;
	}
	/* xattrs: recorded in full mode, read now otherwise. */
	const unsigned char *xb = ls_rec_xattrs(c, r);
	size_t xl = r->xattr_len;
	if (xattrs_now && !xattrs_by_name) {
		xb = ahead->xattrs;
		xl = ahead->xattr_len;
	} else if (xattrs_now && dirfd >= 0) {
		rc = ls_xattrs_read(dirfd, name, r->mode, c->xattrs, &blob, &blob_len);
		if (rc && rc != -ENOENT) {
			rc = ls_fail_errno(err, -rc, "%s/%s: reading xattrs", w->root, path);
			goto out;
		}
		rc = 0;
		xb = blob;
		xl = blob_len;
	}
	if (xl && decode_xattrs(w, xb, xl, &n_x)) {
		rc = ls_fail(err, ENOMEM, "diff: out of memory");
		goto out;
	}
	e.xattrs = w->xattrs;
	e.n_xattrs = n_x;

	if (whole) {
		/* The reader checked the two stats and, for a file stamped just
		 * now, a second read. */
		rc = ls_layer_add_data(w->layer, &e, ahead->data, err);
		if (rc == 0)
			w->bytes_read += e.size;
		if (rc == 0 && ahead->hashed) {
			memcpy(r->hash, ahead->hash, 16);
			r->mode |= LS_REC_HASHED;
		}
		goto out;
	}
	if (read_content)
		XXH3_128bits_reset(w->xxh);
	rc = ls_layer_add(w->layer, &e, fd, read_content ? w->xxh : NULL, err);
	if (rc == 0 && read_content)
		w->bytes_read += e.size;
	if (read_content) {
		/* The same size and timestamps after the bytes as before them
		 * mean the bytes are one state of the file. */
		struct stat after;
		bool same = fstat(fd, &after) == 0 && !ls_changed_since(&before, &after);
		if (same && rc == 0) {
			XXH128_canonical_t h;
			XXH128_canonicalFromHash(&h, XXH3_128bits_digest(w->xxh));
			memcpy(r->hash, h.digest, 16);
			r->mode |= LS_REC_HASHED;
			if (ls_stamped_recently((int64_t)before.st_ctim.tv_sec * 1000000000 + before.st_ctim.tv_nsec)) {
				int rr = reread_matches(w, fd, r->hash, &same);
				if (rr) {
					rc = ls_fail_errno(err, -rr, "%s/%s", w->root, path);
					goto out;
				}
			}
		}
		/* Also when the layer found the file short: the cause. */
		if (!same)
			rc = ls_fail(err, EAGAIN, "%s/%s: changed while being read", w->root, path);
	} else if (rc == 0 && first >= 0 && S_ISREG(r->mode) && (c->recs[first].mode & LS_REC_HASHED)) {
		/* The group's bytes as written.  When they were not hashed (no
		 * new manifest asked for), the member keeps what the walk
		 * hashed of the same inode, so its status does not depend on
		 * whether a manifest is written. */
		memcpy(r->hash, c->recs[first].hash, 16);
		r->mode |= LS_REC_HASHED;
	}
out:
	if (fd >= 0)
		close(fd);
	if (ahead)
		ls_readahead_release(w->ra, ahead);
	free_xattr_names(w, n_x);
	free(blob);
	return rc;
}

/* Takes back what the plan counted for entry i, which is now absent: true
 * when the base has an entry at its path that the layer must still delete. */
static bool forget_status(struct plan *p, size_t i)
{
	switch (p->status[i]) {
	case ST_ADDED:
		p->added--;
		return false;
	case ST_TYPE:
		/* The directory's whiteouts already removed the base's entry. */
		p->modified--;
		p->deleted++;
		return false;
	case ST_MODIFIED:
		p->modified--;
		break;
	default:
		break;
	}
	p->deleted++;
	return true;
}

/* An entry the plan saw unchanged but the writer wrote (an ancestor of a
 * change, a hard link brought along) whose header took metadata that moved
 * since the walk (a directory whose entry was deleted meanwhile): now a
 * modification, as the new manifest will show it. */
static bool changed_on_the_way(struct writer *w, size_t i)
{
	const struct plan *p = w->p;
	if (!p->base)
		return false;
	size_t bi = p->base_of[i];
	if (bi == SIZE_MAX || !ls_mode_diff_fields(ls_mode_ops_of(p->cur->mode), p->base, &p->base->recs[bi], p->cur,
						    &p->cur->recs[i], false))
		return false;
	w->p->modified++;
	return true;
}

/* One change to the caller's list; a non-zero return cancels. */
static int tell(struct writer *w, enum ls_change ch, const ls_manifest *m, const struct ls_rec *r,
		struct ls_error *err)
{
	if (w->on_change && w->on_change(w->change_ctx, ch, ls_rec_path(m, r), r->path_len) != 0)
		return ls_fail(err, ECANCELED, "cancelled");
	return 0;
}

/* The deletion of everything below base entry bi, when it is a directory
 * (sockets are in no layer nor change list). */
static int tell_deleted_below(struct writer *w, size_t bi, struct ls_error *err)
{
	const ls_manifest *b = w->p->base;
	const struct ls_rec *d = &b->recs[bi];
	int rc = 0;
	for (size_t i = bi + 1; rc == 0 && S_ISDIR(d->mode) && i < b->n; i++) {
		const struct ls_rec *r = &b->recs[i];
		if (!ls_path_is_under(ls_rec_path(b, r), r->path_len, ls_rec_path(b, d), d->path_len))
			break;
		if (!S_ISSOCK(r->mode))
			rc = tell(w, LS_DELETED, b, r, err);
	}
	return rc;
}

/* The deletion of base entry bi (unless its path now holds another type:
 * the new entry tells that, as T) and of its subtree. */
static int tell_deleted(struct writer *w, size_t bi, struct ls_error *err)
{
	if (!w->on_change)
		return 0;
	const ls_manifest *b = w->p->base;
	const struct ls_rec *d = &b->recs[bi];
	int rc = 0;
	if (ls_manifest_find(w->p->cur, ls_rec_path(b, d), d->path_len) < 0)
		rc = tell(w, LS_DELETED, b, d, err);
	return rc ? rc : tell_deleted_below(w, bi, err);
}

/* Entry i vanished after the walk: it is absent from the layer and the
 * manifest.  The base's entry at its path gets a whiteout right here, unless
 * the directory's whiteouts already removed it (a type change). */
static int drop_vanished(struct writer *w, size_t i, struct ls_error *err)
{
	struct plan *p = w->p;
	p->flags[i] |= GONE;
	const struct ls_rec *r = &p->cur->recs[i];
	bool was_type = p->status[i] == ST_TYPE;
	if (!forget_status(p, i)) {
		/* A type change whose new entry vanished: the directory's
		 * whiteouts removed the old one, which is then deleted. */
		ssize_t old = was_type && w->on_change ? ls_manifest_find(p->base, ls_rec_path(p->cur, r), r->path_len) : -1;
		return old >= 0 ? tell(w, LS_DELETED, p->base, &p->base->recs[old], err) : 0;
	}
	int rc = ls_layer_add_whiteout(w->layer, ls_rec_path(p->cur, r), err);
	ssize_t bi = rc == 0 && w->on_change ? ls_manifest_find(p->base, ls_rec_path(p->cur, r), r->path_len) : -1;
	if (bi >= 0) {
		/* Gone from the new manifest too (compacted away): tell_deleted's
		 * check that the path holds another type does not apply. */
		rc = tell(w, LS_DELETED, p->base, &p->base->recs[bi], err);
		if (rc == 0)
			rc = tell_deleted_below(w, (size_t)bi, err);
	}
	return rc;
}

/* Directory entry i vanished after the walk (or its name now holds another
 * inode): it and its whole subtree, which follows it in walk order, are
 * absent, with one whiteout when the base has it; the whiteouts planned
 * inside it are moot.  *k is the next planned whiteout, *end the index
 * after the subtree. */
static int drop_vanished_dir(struct writer *w, size_t i, size_t *k, size_t *end, struct ls_error *err)
{
	struct plan *p = w->p;
	const ls_manifest *c = p->cur;
	const struct ls_rec *d = &c->recs[i];
	const char *dp = ls_rec_path(c, d);
	size_t e = i + 1;
	for (; e < c->n; e++) {
		const struct ls_rec *r = &c->recs[e];
		if (!ls_path_is_under(ls_rec_path(c, r), r->path_len, dp, d->path_len))
			break;
		p->flags[e] |= GONE;
		forget_status(p, e);  /* deleted, as the join counts a deleted subtree */
	}
	*end = e;
	/* Carried entries inside it go too: the base's subtree, out of the
	 * runs placed among the walked entries below it. */
	ssize_t bd = p->carry ? ls_manifest_find(p->base, dp, d->path_len) : -1;
	if (bd >= 0 && S_ISDIR(p->base->recs[bd].mode)) {
		size_t dropped;
		if (ls_carry_cut(p->carry, i + 1, e, (size_t)bd + 1, ls_manifest_subtree_end(p->base, (size_t)bd),
				 p->base, &dropped))
			return ls_fail(err, ENOMEM, "diff: out of memory");
		p->deleted += dropped;
	}
	while (*k < p->n_wh && p->wh[*k].parent >= 0 && (size_t)p->wh[*k].parent < e)
		(*k)++;
	return drop_vanished(w, i, err);
}

/* Entry i could not be read (--ignore-errors): it stays out of the layer and
 * the manifest keeps the base's entry for it, as a walk keeps the base's
 * entries of what it cannot read; a new file is left out. */
static int keep_unreadable(struct writer *w, size_t i, struct ls_error *err)
{
	struct plan *p = w->p;
	const struct ls_rec *r = &p->cur->recs[i];
	const char *path = ls_rec_path(p->cur, r);
	ssize_t bi = p->base ? ls_manifest_find(p->base, path, r->path_len) : -1;
	/* After a type change the layer's whiteouts have removed the base's
	 * entry: nothing is left to keep. */
	bool keep = bi >= 0 && p->status[i] != ST_TYPE;
	ls_log(w->o->log, w->o->log_ctx, 0, "%s/%s: %s (skipped%s)", w->root, path, strerror(EACCES),
	       keep ? ", base entry kept" : "");
	if (!keep) {
		p->flags[i] |= GONE;
		if (p->status[i] == ST_ADDED)
			p->added--;
		else {
			p->modified--;
			p->deleted++;
		}
		return 0;
	}
	if (p->status[i] == ST_MODIFIED)
		p->modified--;
	p->flags[i] |= KEPT;
	/* The read-ahead reads the manifest that this appends to (its arrays
	 * may move): the rest is read here. */
	ls_readahead_free(w->ra);
	w->ra = NULL;
	return ls_manifest_set_from(p->cur, i, p->base, (size_t)bi, err);
}

/* The walk's part of the new manifest: what was walked less what vanished,
 * the carried runs' places moved with the records dropped. */
static void compact_walked(struct plan *p)
{
	ls_manifest *c = p->cur;
	struct ls_carry *cr = p->carry;
	size_t o = 0, k = 0;
	for (size_t i = 0; i < c->n; i++) {
		for (; cr && k < cr->n && cr->runs[k].at <= i; k++)
			cr->runs[k].at = o;
		if (!(p->flags[i] & GONE))
			c->recs[o++] = c->recs[i];
	}
	for (; cr && k < cr->n; k++)
		cr->runs[k].at = o;
	c->n = o;
}

static int write_whiteouts(struct writer *w, ssize_t dir, size_t *k, struct ls_error *err)
{
	struct plan *p = w->p;
	bool opaque = dir >= 0 && (p->flags[dir] & OPAQUE);
	if (opaque && *k < p->n_wh && p->wh[*k].parent == dir) {
		int rc = ls_layer_add_opaque(w->layer, ls_rec_path(p->cur, &p->cur->recs[dir]), err);
		if (rc)
			return rc;
	}
	for (; *k < p->n_wh && p->wh[*k].parent == dir; (*k)++) {
		int rc = opaque ? 0 : ls_layer_add_whiteout(w->layer, ls_rec_path(p->base, &p->base->recs[p->wh[*k].base_index]), err);
		if (rc == 0)
			rc = tell_deleted(w, p->wh[*k].base_index, err);
		if (rc)
			return rc;
	}
	return 0;
}

/* Regular files of c, the walk's part of the new manifest, that the walk
 * left unhashed and the layer did not carry (the carried runs come from a
 * full base: hashed). */
static int hash_leftovers(struct writer *w, ls_manifest *c, struct ls_error *err)
{
	int rc = 0;
	for (size_t i = 0; i < c->n && rc == 0; i++) {
		struct ls_rec *r = &c->recs[i];
		if (!S_ISREG(r->mode) || (r->mode & LS_REC_HASHED))
			continue;
		if (!w->buf && !(w->buf = malloc(REREAD_BUF)))
			return ls_fail(err, ENOMEM, "diff: out of memory");
		const char *path = ls_rec_path(c, r), *name;
		struct stat before, after;
		int fd = parent_of(w, path, r->path_len, &name);
		if (fd >= 0)
			fd = ls_content_open(fd, name, r, &before);
		/* The layer is written: a file that is not what the walk saw
		 * can no longer be left out of it. */
		if (is_vanished(fd) || (fd >= 0 && rec_differs(r, &before))) {
			rc = ls_fail(err, EAGAIN, "%s/%s: changed while being read", w->root, path);
		} else if (fd < 0) {
			rc = ls_fail_errno(err, -fd, "%s/%s", w->root, path);
		} else {
			int hr = ls_hash_fd(fd, w->buf, REREAD_BUF, w->xxh, r->hash);
			if (hr)
				rc = ls_fail_errno(err, -hr, "%s/%s", w->root, path);
			else if (fstat(fd, &after) != 0 || ls_changed_since(&before, &after))
				rc = ls_fail(err, EAGAIN, "%s/%s: changed while being read", w->root, path);
			else
				r->mode |= LS_REC_HASHED;
		}
		if (fd >= 0)
			close(fd);
	}
	return rc;
}

/* Whether the read-ahead takes entry i of the plan: a regular file whose
 * bytes go in the layer, or a directory written (changed, or the ancestor of
 * a change), whose stat it takes from the fd its chain opens for the files
 * inside anyway (not when xattrs are read now: by name, from the writer's
 * chain). */
static bool read_ahead(const struct plan *p, size_t i)
{
	const struct ls_rec *r = &p->cur->recs[i];
	if (S_ISREG(r->mode))
		return (p->flags[i] & IN_LAYER) && p->link_first[i] < 0;
	return S_ISDIR(r->mode) && (p->flags[i] & (IN_LAYER | ANCESTOR)) && r->path_len &&
	       !p->xattrs_now;
}

/* Lists the regular files whose bytes go in the layer (hard-link members
 * are read only when they stand in for a vanished first member: here, when
 * it comes to that) and the directories written, and starts reading them
 * ahead.  Without a thread the writer reads them itself. */
static void start_readahead(struct writer *w)
{
	struct plan *p = w->p;
	const ls_manifest *c = p->cur;
	size_t n = 0;
	for (size_t i = 0; i < c->n; i++)
		n += read_ahead(p, i);
	if (!n || !(w->ra_idx = malloc(n * sizeof(*w->ra_idx))))
		return;
	n = 0;
	for (size_t i = 0; i < c->n; i++)
		if (read_ahead(p, i))
			w->ra_idx[n++] = i;
	if (ls_readahead_start(&w->ra, w->rootfd, c, w->ra_idx, n, w->want_hash,
			       p->xattrs_now ? c->xattrs : LS_XATTRS_NONE) != 0)
		return;
	for (size_t k = 0; k < n; k++)
		p->flags[w->ra_idx[k]] |= AHEAD;
}

/* The layer's progress, to the caller's callback (now and then unless
 * done); a non-zero return cancels. */
static int report_layer(struct writer *w, bool done, struct ls_error *err)
{
	if (!w->o->progress)
		return 0;
	if (!done && w->entries_out % 256 != 0 && w->bytes_read - w->reported < 4u << 20)
		return 0;
	w->reported = w->bytes_read;
	struct ls_progress pr = {
		.struct_size = sizeof(pr), .phase = LS_PHASE_LAYER, .done = done, .entries = w->entries_out,
		.bytes_read = w->bytes_read, .bytes_total = w->bytes_total,
		.bytes_written = ls_layer_tar_bytes(w->layer),
	};
	if (w->o->progress(w->o->log_ctx, &pr) != 0)
		return ls_fail(err, ECANCELED, "cancelled");
	return 0;
}

/* The file contents a layer will copy, for progress: regular files in it
 * that are not later members of a hard-link group. */
static uint64_t content_total(const struct plan *p)
{
	uint64_t total = 0;
	for (size_t i = 0; i < p->cur->n; i++) {
		const struct ls_rec *r = &p->cur->recs[i];
		if ((p->flags[i] & IN_LAYER) && S_ISREG(r->mode) && p->link_first[i] < 0)
			total += r->size;
	}
	return total;
}

static int write_layer(struct writer *w, struct ls_layer_result *lres, struct ls_error *err)
{
	struct plan *p = w->p;
	ls_manifest *c = p->cur;
	size_t k = 0;
	w->bytes_total = w->o->progress ? content_total(p) : 0;
	int rc = report_layer(w, false, err);
	if (rc == 0)
		rc = write_whiteouts(w, -1, &k, err);
	for (size_t i = 0; i < c->n && rc == 0; i++) {
		if (!(p->flags[i] & (IN_LAYER | ANCESTOR)))
			continue;
		rc = write_entry(w, i, err);
		if (rc == WRITTEN) {
			w->entries_out++;
			static const enum ls_change told[] = { [ST_ADDED] = LS_ADDED, [ST_MODIFIED] = LS_MODIFIED,
							       [ST_TYPE] = LS_TYPE };
			if (p->status[i] == ST_SAME && changed_on_the_way(w, i))
				p->status[i] = ST_MODIFIED;  /* told and counted as such */
			if (p->status[i] != ST_SAME)
				rc = tell(w, told[p->status[i]], c, &c->recs[i], err);
			if (rc == 0)
				rc = report_layer(w, false, err);
			if (rc)
				break;
		}
		if (rc == VANISHED && S_ISDIR(c->recs[i].mode)) {
			size_t end;
			rc = drop_vanished_dir(w, i, &k, &end, err);
			i = end - 1;
		} else if (rc == VANISHED)
			rc = drop_vanished(w, i, err);
		else if (rc == UNREADABLE)
			rc = keep_unreadable(w, i, err);
		else if (rc == 0 && S_ISDIR(c->recs[i].mode) && (p->flags[i] & HAS_WH))
			rc = write_whiteouts(w, (ssize_t)i, &k, err);
	}
	if (rc == 0)
		rc = ls_layer_finish(w->layer, lres, err);
	if (rc == 0)
		rc = report_layer(w, true, err);
	return rc;
}

/* Records [from, to) of c: none may be named .wh.* */
static int check_names(const ls_manifest *c, size_t from, size_t to, const char *root, struct ls_error *err)
{
	for (size_t i = from; i < to; i++) {
		const struct ls_rec *r = &c->recs[i];
		const char *path = ls_rec_path(c, r);
		const char *slash = memrchr(path, '/', r->path_len);
		const char *name = slash ? slash + 1 : path;
		if (ls_is_whiteout_name(name, r->path_len - (size_t)(name - path)))
			return ls_fail(err, EINVAL, "%s/%s: a name starting with .wh. cannot be represented in "
				       "an OCI layer", root, path);
	}
	return 0;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Waits for the pending base and checks it against the walk options, as the
 * command line checks a base it loaded. */
static int take_base(struct ls_diff_base *pending, const struct ls_walk_options *walk, const ls_manifest **base,
		     struct ls_error *err)
{
	struct ls_error e = { 0 };
	int rc = ls_manifest_load_finish(pending->loading, &pending->m, &e);
	pending->loading = NULL;
	if (rc)
		return ls_fail(err, -rc, "--base %s", e.msg);
	if ((rc = ls_check_base(pending->m, walk->mode, walk, &e)))
		return ls_fail(err, -rc, "%s: %s", pending->path, e.msg);
	*base = pending->m;
	return 0;
}

int ls_diff_parts(const char *root, const struct ls_diff_options *opts, const ls_manifest *base,
		  struct ls_diff_base *pending, int layer_fd, struct ls_diff_result *res, struct ls_diff_manifest *nm,
		  struct ls_error *err)
{
	double t0 = now_ms();
	if (nm)
		memset(nm, 0, sizeof(*nm));
	struct ls_diff_result out = { .struct_size = sizeof(out) };
	int rc = ls_sized_check_out(res, LS_SIZE_TO(struct ls_diff_result, elapsed_ms), "diff: result", err);
	if (rc)
		return rc;
	ls_sized_out(res, &out, sizeof(out));
	struct ls_diff_options o;
	struct ls_walk_options walk;
	if ((rc = ls_diff_options_in(&o, opts, "diff: options", err)) ||
	    (rc = ls_walk_options_in(&walk, o.walk, "diff: walk options", err)))
		return rc;
	if (!root)
		return ls_fail(err, EINVAL, "diff: no root");
	if (o.write ? layer_fd != -1 : layer_fd < 0)
		return ls_fail(err, o.write ? EINVAL : EBADF, o.write ? "diff: both a layer fd and a write callback"
			       : "diff: no layer fd");
	if (base) {
		rc = ls_check_base(base, walk.mode, &walk, err);
		if (rc)
			return rc;
	}
	if (pending && (base || !pending->loading))
		return ls_fail(err, EINVAL, "diff: a base and a base loading");
	if ((o.n_only_paths || o.upper_dir) && !base && !pending)
		return ls_fail(err, EINVAL, "diff: --%s needs a base manifest", o.upper_dir ? "upper" : "only");
	if (o.n_only_paths && o.upper_dir)
		return ls_fail(err, EINVAL, "diff: --only and --upper: choose one");
	struct ls_walk_params wp = {
		.opts = &walk, .base = base, .defer_changed = true,
		.skip_paths = walk.skip_paths, .n_skip = walk.n_skip,
		.only = o.only_paths, .n_only = o.n_only_paths,
	};
	struct ls_upper up = { 0 };
	if (o.upper_dir) {
		bool userxattr = false;
		if (!o.upper_unchecked && (rc = ls_upper_check_mount(root, o.upper_dir, &userxattr, err)))
			return rc;
		rc = ls_upper_read(o.upper_dir, o.upper_unchecked ? LS_UPPER_EITHER : userxattr ? LS_UPPER_USER
						 : LS_UPPER_TRUSTED, &up, err);
		if (rc) {
			ls_upper_free(&up);
			return rc;
		}
		wp.only = (const char *const *)up.listed;
		wp.n_only = up.n_listed;
		wp.only_dirs = (const char *const *)up.dirs;
		wp.n_only_dirs = up.n_dirs;
		wp.only_always = true;
		wp.remap_dev = true;
	}
	if (pending && (rc = take_base(pending, &walk, &base, err))) {
		ls_upper_free(&up);
		return rc;
	}
	wp.base = base;
	/* With no base there is nothing to compare xattrs with, and with no
	 * new manifest nothing to record them in: the layer reads them from
	 * the files its read-ahead opens, instead of the walk by name. */
	wp.defer_xattrs = !base && !nm && walk.xattrs != LS_XATTRS_NONE;
	struct ls_carry carried = { 0 };
	wp.carry = base ? &carried : NULL;
	struct plan p = { .base = base, .skip = walk.skip_paths, .n_skip = walk.n_skip, .carry = wp.carry };
	struct writer w = { .o = &walk, .root = root, .rootfd = -1, .p = &p };
	/* libcrypto's set-up for the layer's digests, beside the walk. */
	pthread_t warm;
	bool warming = ls_layer_warm_start(&warm);
	rc = ls_walk(root, &wp, &p.cur, err);
	ls_upper_free(&up);
	if (rc) {
		if (warming)
			ls_layer_warm_join(warm);
		ls_carry_free(&carried);
		return rc;
	}
	/* What is carried is checked too, as a walk would see it (a pass over
	 * the runs only when the base has such a name at all). */
	rc = check_names(p.cur, 0, p.cur->n, root, err);
	struct ls_manifest_facts bf = { 0 };
	if (rc == 0 && carried.n)
		ls_manifest_facts(base, &bf);
	for (size_t k = 0; rc == 0 && bf.whiteout_names && k < carried.n; k++)
		rc = check_names(base, carried.runs[k].from, carried.runs[k].to, root, err);
	p.xattrs_now = wp.defer_xattrs || xattrs_read_now(p.cur);
	if (rc == 0)
		rc = make_plan(&p, walk.mode, o.opaque, err);
	if (rc)
		goto done;

	w.rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w.rootfd < 0) {
		rc = ls_fail_errno(err, errno, "%s", root);
		goto done;
	}
	w.xxh = XXH3_createState();
	if (!w.xxh || ls_dirchain_create(&w.dirs, w.rootfd)) {
		rc = ls_fail(err, ENOMEM, "diff: out of memory");
		goto done;
	}
	struct ls_layer_options lo = {
		.compress = o.compress, .level = o.level,
		.have_epoch = o.have_epoch, .source_date_epoch = o.source_date_epoch,
		.threads = walk.jobs, .write = o.write, .write_ctx = o.write_ctx,
	};
	if (warming)
		ls_layer_warm_join(warm);
	warming = false;
	rc = ls_layer_open(&w.layer, layer_fd, &lo, err);
	if (rc)
		goto done;
	w.want_hash = nm != NULL;
	w.on_change = o.on_change;
	w.change_ctx = o.change_ctx;
	start_readahead(&w);
	struct ls_layer_result lres;
	memset(&lres, 0, sizeof(lres));
	rc = write_layer(&w, &lres, err);
	ls_readahead_free(w.ra);
	w.ra = NULL;
	if (rc == 0 && nm)
		compact_walked(&p);
	if (rc == 0 && nm && walk.mode == LS_MODE_FULL)
		rc = hash_leftovers(&w, p.cur, err);
	if (rc)
		goto done;

	out.mode = walk.mode;
	out.added = p.added;
	out.modified = p.modified;
	out.deleted = p.deleted;
	out.entries = lres.entries;
	out.bytes = lres.bytes;
	out.size = lres.size;
	memcpy(out.diff_id, lres.diff_id, sizeof(out.diff_id));
	memcpy(out.digest, lres.digest, sizeof(out.digest));
	out.media_type = lres.media_type;
	out.elapsed_ms = now_ms() - t0;
	ls_sized_out(res, &out, sizeof(out));
	if (nm) {
		*nm = (struct ls_diff_manifest){ .walked = p.cur, .carried = carried, .base = base,
						 .skip = walk.skip_paths, .n_skip = walk.n_skip };
		p.cur = NULL;
		memset(&carried, 0, sizeof(carried));
	}
done:
	if (warming)
		ls_layer_warm_join(warm);
	ls_readahead_free(w.ra);
	free(w.ra_idx);
	ls_layer_free(w.layer);
	ls_dirchain_free(w.dirs);
	if (w.xxh)
		XXH3_freeState(w.xxh);
	if (w.xxh2)
		XXH3_freeState(w.xxh2);
	free(w.buf);
	free(w.xattrs);
	if (w.rootfd >= 0)
		close(w.rootfd);
	ls_manifest_free(p.cur);
	ls_carry_free(&carried);
	plan_free(&p);
	return rc;
}

int ls_diff_manifest_write_fd(const struct ls_diff_manifest *nm, int fd, struct ls_error *err)
{
	return ls_carry_write_fd(nm->walked, &nm->carried, nm->base, nm->skip, nm->n_skip, fd, err);
}

void ls_diff_manifest_free(struct ls_diff_manifest *nm)
{
	ls_manifest_free(nm->walked);
	ls_carry_free(&nm->carried);
	memset(nm, 0, sizeof(*nm));
}

int ls_diff(const char *root, const struct ls_diff_options *opts, const ls_manifest *base,
	    int layer_fd, struct ls_diff_result *res, ls_manifest **new_manifest,
	    struct ls_error *err)
{
	if (new_manifest)
		*new_manifest = NULL;
	struct ls_diff_manifest nm;
	int rc = ls_diff_parts(root, opts, base, NULL, layer_fd, res, new_manifest ? &nm : NULL, err);
	if (rc || !new_manifest)
		return rc;
	rc = ls_carry_merge(nm.walked, &nm.carried, nm.base, nm.skip, nm.n_skip, err);
	if (rc == 0) {
		*new_manifest = nm.walked;
		nm.walked = NULL;
	} else if (res) {
		struct ls_diff_result none = { .struct_size = sizeof(none) };
		ls_sized_out(res, &none, sizeof(none));
	}
	ls_diff_manifest_free(&nm);
	return rc;
}
