/* Merge-join of two manifests in walk order, and base compatibility checks. */
#include "error.h"
#include "manifest.h"
#include "modes.h"
#include "sized.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

static const char *const xattr_policy_names[] = { "capability", "all", "none" };

static bool same_block(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

int ls_check_base(const ls_manifest *base, enum ls_mode mode, const struct ls_walk_options *opts,
		  struct ls_error *err)
{
	if (!base)
		return ls_fail(err, EINVAL, "base: no manifest");
	struct ls_walk_options o;
	int rc = ls_walk_options_in(&o, opts, "base: options", err);
	if (rc)
		return rc;
	opts = &o;
	if (mode == LS_MODE_FULL && base->mode != LS_MODE_FULL)
		return ls_fail(err, EINVAL, "base manifest was recorded in %s mode, which has no content "
			       "hashes: a full comparison needs a full base", ls_mode_name(base->mode));
	if (base->xattrs != opts->xattrs)
		return ls_fail(err, EINVAL, "base manifest was recorded with --xattrs %s, not %s",
			       xattr_policy_names[base->xattrs], xattr_policy_names[opts->xattrs]);
	if (base->one_file_system != opts->one_file_system)
		return ls_fail(err, EINVAL, "base manifest was recorded %s --one-file-system",
			       base->one_file_system ? "with" : "without");
	/* A probe normalises the excludes as a scan would record them. */
	ls_manifest *probe;
	rc = ls_manifest_create(&probe, mode, opts->xattrs, opts->one_file_system, opts->excludes,
				    opts->n_excludes, err);
	if (rc)
		return rc;
	if (opts->n_exclude_patterns &&
	    (rc = ls_manifest_set_patterns(probe, opts->exclude_patterns, opts->n_exclude_patterns, err))) {
		ls_manifest_free(probe);
		return rc;
	}
	bool same_excl = same_block(probe->options, probe->options_len, base->options, base->options_len);
	/* Patterns are kept in their order (the last match wins): a reordered
	 * list is another setting. */
	bool same_pat = same_block(probe->patterns, probe->patterns_len, base->patterns, base->patterns_len);
	ls_manifest_free(probe);
	if (!same_excl)
		return ls_fail(err, EINVAL, "base manifest was recorded with other --exclude paths");
	if (!same_pat)
		return ls_fail(err, EINVAL, "base manifest was recorded with other --exclude-pattern patterns");
	return 0;
}

long ls_compare(const ls_manifest *a, const ls_manifest *b, enum ls_mode mode, bool mtime_seconds,
		ls_change_fn *fn, void *ctx, struct ls_error *err)
{
	struct ls_compare_options o = LS_COMPARE_OPTIONS_INIT;
	o.mode = mode;
	o.mtime_seconds = mtime_seconds;
	return ls_compare_opts(a, b, &o, fn, ctx, err);
}

long ls_compare_opts(const ls_manifest *a, const ls_manifest *b, const struct ls_compare_options *opts,
		     ls_change_fn *fn, void *ctx, struct ls_error *err)
{
	if (!a || !b)
		return ls_fail(err, EINVAL, "compare: no manifest");
	struct ls_compare_options o;
	int rc = ls_sized_in(&o, sizeof(o), LS_SIZE_TO(struct ls_compare_options, source_date_epoch), opts,
			     LS_SIZE_TO(struct ls_compare_options, source_date_epoch),
			     "compare: options", err);
	if (rc)
		return rc;
	const struct ls_mode_ops *ops = ls_mode_ops_of(o.mode);
	const struct ls_mtime_rule mt = { .seconds = o.mtime_seconds, .have_epoch = o.have_epoch,
					  .epoch = o.source_date_epoch };
	size_t i = 0, j = 0;
	long changes = 0;
	while (i < a->n || j < b->n) {
		const struct ls_rec *ra = i < a->n ? &a->recs[i] : NULL;
		const struct ls_rec *rb = j < b->n ? &b->recs[j] : NULL;
		int c = !ra ? 1 : !rb ? -1 : ls_path_cmp(ls_rec_path(a, ra), ra->path_len, ls_rec_path(b, rb), rb->path_len);
		enum ls_change ch = 0;
		const char *path;
		size_t len;
		if (c < 0) {
			ch = LS_DELETED;
			path = ls_rec_path(a, ra);
			len = ra->path_len;
			i++;
		} else if (c > 0) {
			ch = LS_ADDED;
			path = ls_rec_path(b, rb);
			len = rb->path_len;
			j++;
		} else {
			path = ls_rec_path(b, rb);
			len = rb->path_len;
			if ((ra->mode & S_IFMT) != (rb->mode & S_IFMT))
				ch = LS_TYPE;
			else if (ls_mode_diff_fields_rule(ops, a, ra, b, rb, &mt))
				ch = LS_MODIFIED;
			i++;
			j++;
		}
		if (!ch)
			continue;
		changes++;
		if (fn) {
			int frc = fn(ctx, ch, path, len);
			if (frc)
				return frc < 0 ? frc : ls_fail(err, EIO, "compare: stopped");
		}
	}
	return changes;
}
