/* ls_scan: a walk that hashes everything it cannot take from the stat cache. */
#include "error.h"
#include "walk.h"

int ls_scan(const char *root, const struct ls_walk_options *opts, const ls_manifest *base,
	    ls_manifest **out, struct ls_error *err)
{
	struct ls_walk_params p = { .opts = opts, .base = base, .skip_paths = opts->skip_paths,
				    .n_skip = opts->n_skip };
	return ls_walk(root, &p, out, err);
}
