#include "carry.h"
#include "error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int ls_carry_add(struct ls_carry *c, size_t at, size_t from, size_t to)
{
	if (from >= to)
		return 0;
	struct ls_carry_run *last = c->n ? &c->runs[c->n - 1] : NULL;
	if (last && last->at == at && last->to == from) {
		last->to = to;
	} else {
		if (ls_grow((void **)&c->runs, &c->cap, c->n + 1, sizeof(*c->runs)))
			return -ENOMEM;
		c->runs[c->n++] = (struct ls_carry_run){ .at = at, .from = from, .to = to };
	}
	c->entries += to - from;
	return 0;
}

int ls_carry_cut(struct ls_carry *c, size_t at_from, size_t at_to, size_t lo, size_t hi, const ls_manifest *base,
		 size_t *dropped)
{
	*dropped = 0;
	/* Room for one split first, so that a failure changes nothing. */
	if (ls_grow((void **)&c->runs, &c->cap, c->n + 1, sizeof(*c->runs)))
		return -ENOMEM;
	for (size_t k = 0; k < c->n; k++) {
		struct ls_carry_run *r = &c->runs[k];
		if (r->at < at_from || r->at > at_to || r->to <= lo || r->from >= hi)
			continue;
		size_t cut_from = r->from > lo ? r->from : lo, cut_to = r->to < hi ? r->to : hi;
		for (size_t b = cut_from; b < cut_to; b++)
			*dropped += !S_ISSOCK(base->recs[b].mode);
		c->entries -= cut_to - cut_from;
		struct ls_carry_run left = { r->at, r->from, cut_from }, right = { r->at, cut_to, r->to };
		if (left.from < left.to && right.from < right.to) {
			/* Only the run holding the whole subtree and more on both
			 * sides splits: the room made above. */
			memmove(r + 2, r + 1, (c->n - k - 1) * sizeof(*r));
			r[0] = left;
			r[1] = right;
			c->n++;
			k++;
		} else if (left.from < left.to) {
			*r = left;
		} else if (right.from < right.to) {
			*r = right;
		} else {
			memmove(r, r + 1, (c->n - k - 1) * sizeof(*r));
			c->n--;
			k--;
		}
	}
	return 0;
}

void ls_carry_free(struct ls_carry *c)
{
	free(c->runs);
	memset(c, 0, sizeof(*c));
}

/* Pool bytes of a record: path NUL link NUL xattrs. */
static size_t aux_size(const ls_manifest *m, const struct ls_rec *r)
{
	return (size_t)r->path_len + 1 + ls_rec_link_len(m, r) + 1 + r->xattr_len;
}

/* skip_len: the lengths of skip[], or NULL to take them here (one record). */
static bool is_skipped(const ls_manifest *b, const struct ls_rec *r, const char *const *skip,
		       const size_t *skip_len, size_t n_skip)
{
	for (size_t k = 0; k < n_skip; k++)
		if ((skip_len ? skip_len[k] : strlen(skip[k])) == r->path_len &&
		    memcmp(skip[k], ls_rec_path(b, r), r->path_len) == 0)
			return true;
	return false;
}

/* The lengths of skip[0..n): NULL when n is 0; *ok false when out of memory. */
static size_t *skip_lengths(const char *const *skip, size_t n_skip, bool *ok)
{
	size_t *len = n_skip ? malloc(n_skip * sizeof(*len)) : NULL;
	*ok = !n_skip || len;
	for (size_t k = 0; len && k < n_skip; k++)
		len[k] = strlen(skip[k]);
	return len;
}

/* The device a carried record goes in with (see struct ls_carry). */
static uint64_t carried_dev(const struct ls_carry *c, const struct ls_rec *r)
{
	if (S_ISDIR(r->mode))
		return c->remap_dirs && r->dev == c->dir_from ? c->dir_to : r->dev;
	return c->remap_others && r->dev == c->other_from ? c->other_to : r->dev;
}

/* Called for each record of the merged manifest in walk order: r of src
 * (m or the base), to go in with device dev.  Non-zero stops the pass. */
typedef int merged_fn(void *ctx, const ls_manifest *src, const struct ls_rec *r, uint64_t dev);

/* The one order of a merge, for ls_carry_merge and ls_carry_write_fd alike:
 * each run before the record of m at its `at`, the base's records that are
 * the run's outputs left out. */
static int each_merged(const ls_manifest *m, const struct ls_carry *c, const ls_manifest *base,
		       const char *const *skip, const size_t *skip_len, size_t n_skip, merged_fn *fn, void *ctx)
{
	size_t k = 0;
	for (size_t i = 0; i <= m->n; i++) {
		for (; k < c->n && c->runs[k].at <= i; k++) {
			for (size_t b = c->runs[k].from; b < c->runs[k].to; b++) {
				const struct ls_rec *r = &base->recs[b];
				if (n_skip && is_skipped(base, r, skip, skip_len, n_skip))
					continue;
				int rc = fn(ctx, base, r, carried_dev(c, r));
				if (rc)
					return rc;
			}
		}
		int rc = i < m->n ? fn(ctx, m, &m->recs[i], m->recs[i].dev) : 0;
		if (rc)
			return rc;
	}
	return 0;
}

struct merge {
	struct ls_rec *recs;
	char *pool;
	size_t n, pool_len;
};

static int put(void *ctx, const ls_manifest *src, const struct ls_rec *r, uint64_t dev)
{
	struct merge *o = ctx;
	size_t aux = aux_size(src, r);
	struct ls_rec *d = &o->recs[o->n++];
	*d = *r;
	d->dev = dev;
	d->aux_off = o->pool_len;
	memcpy(o->pool + o->pool_len, src->pool + r->aux_off, aux);
	o->pool_len += aux;
	return 0;
}

int ls_carry_merge(ls_manifest *m, struct ls_carry *c, const ls_manifest *base, const char *const *skip,
		   size_t n_skip, struct ls_error *err)
{
	if (!c->n)
		return 0;
	if (m->map)
		return ls_fail(err, EINVAL, "manifest: read-only");
	/* Sizes first, so that the copy is one pass into arrays of their
	 * final size. */
	size_t n = m->n + c->entries, pool = 0;
	for (size_t i = 0; i < m->n; i++)
		pool += aux_size(m, &m->recs[i]);
	for (size_t k = 0; k < c->n; k++)
		for (size_t b = c->runs[k].from; b < c->runs[k].to; b++)
			pool += aux_size(base, &base->recs[b]);
	struct merge o = { .recs = malloc((n ? n : 1) * sizeof(*o.recs)), .pool = malloc(pool ? pool : 1) };
	bool ok;
	size_t *skip_len = skip_lengths(skip, n_skip, &ok);
	if (!o.recs || !o.pool || !ok) {
		free(o.recs);
		free(o.pool);
		free(skip_len);
		return ls_fail(err, ENOMEM, "manifest: out of memory");
	}
	each_merged(m, c, base, skip, skip_len, n_skip, put, &o);
	free(skip_len);
	free(m->recs);
	free(m->pool);
	m->recs = o.recs;
	m->n = o.n;
	m->cap = n ? n : 1;
	m->pool = o.pool;
	m->pool_len = o.pool_len;
	m->pool_cap = pool ? pool : 1;
	ls_carry_free(c);
	return 0;
}

int ls_carry_take(ls_manifest *m, struct ls_carry *c, const ls_manifest *base, size_t b, const char *const *skip,
		  size_t n_skip, struct ls_error *err)
{
	/* The runs' `from` never decreases and runs do not overlap: the last
	 * run starting at or before b is the only one that can hold it. */
	size_t lo = 0, hi = c->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->runs[mid].from <= b)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0 || b >= c->runs[lo - 1].to)
		return 0;
	size_t k = lo - 1;
	/* Room for the split first, so that a failure changes nothing. */
	if (ls_grow((void **)&c->runs, &c->cap, c->n + 1, sizeof(*c->runs)))
		return ls_fail(err, ENOMEM, "manifest: out of memory");
	struct ls_carry_run *r = &c->runs[k];
	size_t at = r->at;
	bool skipped = is_skipped(base, &base->recs[b], skip, NULL, n_skip);
	if (!skipped) {
		int rc = ls_manifest_append_from(m, base, b, err);
		if (rc)
			return rc;
		/* Into its place in walk order: before record `at`. */
		struct ls_rec taken = m->recs[m->n - 1];
		taken.dev = carried_dev(c, &taken);
		memmove(&m->recs[at + 1], &m->recs[at], (m->n - 1 - at) * sizeof(*m->recs));
		m->recs[at] = taken;
	}
	/* The run's records before b stay before it, the rest (and every
	 * later run placed here) come after it. */
	size_t shift = skipped ? 0 : 1;
	struct ls_carry_run left = { at, r->from, b }, right = { at + shift, b + 1, r->to };
	memmove(r + 1, r, (c->n - k) * sizeof(*r));
	c->n++;
	r[0] = left;
	r[1] = right;
	for (size_t j = k + 2; j < c->n; j++)
		c->runs[j].at += shift;
	/* Empty halves go. */
	for (size_t j = k + 2; j-- > k;) {
		if (c->runs[j].from < c->runs[j].to)
			continue;
		memmove(&c->runs[j], &c->runs[j + 1], (c->n - j - 1) * sizeof(*c->runs));
		c->n--;
	}
	c->entries--;
	return 0;
}

/* ls_carry_write_fd's two passes: the records with their new pool offsets,
 * then the pool, whose pieces are written as one where they lie end to end
 * in their manifest (a carried run of a written base does). */
struct stream {
	struct ls_manifest_writer w;
	bool full;                     /* a full manifest: every regular file hashed */
	const struct ls_rec *unhashed; /* ...and the carried one that is not */
	const ls_manifest *unhashed_in;
	uint64_t n, pool_len;
	const char *piece;             /* pool bytes not yet put */
	size_t piece_len;
};

static int stream_rec(void *ctx, const ls_manifest *src, const struct ls_rec *r, uint64_t dev)
{
	struct stream *s = ctx;
	if (s->full && S_ISREG(r->mode) && !(r->mode & LS_REC_HASHED)) {
		s->unhashed = r;
		s->unhashed_in = src;
		return -EINVAL;
	}
	struct ls_rec d = *r;
	d.dev = dev;
	d.aux_off = s->pool_len;
	s->pool_len += aux_size(src, r);
	s->n++;
	return ls_manifest_writer_put(&s->w, &d, sizeof(d));
}

static int stream_pool(void *ctx, const ls_manifest *src, const struct ls_rec *r, uint64_t dev)
{
	(void)dev;
	struct stream *s = ctx;
	const char *p = src->pool + r->aux_off;
	size_t len = aux_size(src, r);
	if (s->piece && s->piece + s->piece_len == p) {
		s->piece_len += len;
		return 0;
	}
	int rc = s->piece ? ls_manifest_writer_put(&s->w, s->piece, s->piece_len) : 0;
	s->piece = p;
	s->piece_len = len;
	return rc;
}

int ls_carry_write_fd(const ls_manifest *m, const struct ls_carry *c, const ls_manifest *base,
		      const char *const *skip, size_t n_skip, int fd, struct ls_error *err)
{
	bool ok;
	size_t *skip_len = skip_lengths(skip, n_skip, &ok);
	if (!ok)
		return ls_fail(err, ENOMEM, "manifest: out of memory");
	struct stream s = { .full = m->mode == LS_MODE_FULL };
	int rc = ls_manifest_writer_begin(&s.w, m, fd, err);
	if (rc) {
		free(skip_len);
		return rc;
	}
	rc = each_merged(m, c, base, skip, skip_len, n_skip, stream_rec, &s);
	uint64_t pool_len = s.pool_len;
	if (rc == 0)
		rc = each_merged(m, c, base, skip, skip_len, n_skip, stream_pool, &s);
	if (rc == 0 && s.piece)
		rc = ls_manifest_writer_put(&s.w, s.piece, s.piece_len);
	free(skip_len);
	if (rc) {
		ls_manifest_writer_free(&s.w);
		if (s.unhashed)
			return ls_fail(err, EINVAL, "manifest: %s: a regular file without a content hash in a "
				       "full manifest", ls_rec_path(s.unhashed_in, s.unhashed));
		return ls_fail_errno(err, -rc, "manifest: write");
	}
	return ls_manifest_writer_end(&s.w, s.n, pool_len, err);
}
