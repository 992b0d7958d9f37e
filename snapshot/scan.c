/* ls_scan: a walk that hashes everything it cannot take from the stat cache. */
#include "error.h"
#include "sized.h"
#include "walk.h"

#include <errno.h>

int ls_scan(const char *root, const struct ls_walk_options *opts, const ls_manifest *base,
	    ls_manifest **out, struct ls_error *err)
{
	if (!root || !out)
		return ls_fail(err, EINVAL, "scan: no root or output");
	*out = NULL;
	struct ls_walk_options o;
	int rc = ls_walk_options_in(&o, opts, "scan: options", err);
	if (rc)
		return rc;
	opts = &o;
	/* A base without hashes has none to give a full scan, and its entries,
	 * spliced in for what cannot be read (--ignore-errors), would be
	 * unhashed files in a full manifest: the scan goes without it.  A base
	 * recorded with other settings would carry what this scan must not
	 * record (xattrs into "none", excluded paths): refused. */
	if (base && opts->mode == LS_MODE_FULL && base->mode != LS_MODE_FULL)
		base = NULL;
	if (base) {
		rc = ls_check_base(base, opts->mode, opts, err);
		if (rc)
			return rc;
	}
	struct ls_walk_params p = { .opts = opts, .base = base, .skip_paths = opts->skip_paths,
				    .n_skip = opts->n_skip };
	return ls_walk(root, &p, out, err);
}
