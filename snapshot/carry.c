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

static bool is_skipped(const ls_manifest *b, const struct ls_rec *r, const char *const *skip,
		       const size_t *skip_len, size_t n_skip)
{
	for (size_t k = 0; k < n_skip; k++)
		if (skip_len[k] == r->path_len && memcmp(skip[k], ls_rec_path(b, r), r->path_len) == 0)
			return true;
	return false;
}

struct merge {
	struct ls_rec *recs;
	char *pool;
	size_t n, pool_len;
};

static void put(struct merge *o, const ls_manifest *src, const struct ls_rec *r, size_t aux)
{
	struct ls_rec *d = &o->recs[o->n++];
	*d = *r;
	d->aux_off = o->pool_len;
	memcpy(o->pool + o->pool_len, src->pool + r->aux_off, aux);
	o->pool_len += aux;
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
	size_t *skip_len = n_skip ? malloc(n_skip * sizeof(*skip_len)) : NULL;
	if (!o.recs || !o.pool || (n_skip && !skip_len)) {
		free(o.recs);
		free(o.pool);
		free(skip_len);
		return ls_fail(err, ENOMEM, "manifest: out of memory");
	}
	for (size_t k = 0; k < n_skip; k++)
		skip_len[k] = strlen(skip[k]);
	size_t k = 0;
	for (size_t i = 0; i <= m->n; i++) {
		for (; k < c->n && c->runs[k].at <= i; k++) {
			for (size_t b = c->runs[k].from; b < c->runs[k].to; b++) {
				const struct ls_rec *r = &base->recs[b];
				if (n_skip && is_skipped(base, r, skip, skip_len, n_skip))
					continue;
				put(&o, base, r, aux_size(base, r));
				struct ls_rec *d = &o.recs[o.n - 1];
				if (S_ISDIR(d->mode) ? c->remap_dirs && d->dev == c->dir_from
						     : c->remap_others && d->dev == c->other_from)
					d->dev = S_ISDIR(d->mode) ? c->dir_to : c->other_to;
			}
		}
		if (i < m->n)
			put(&o, m, &m->recs[i], aux_size(m, &m->recs[i]));
	}
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
