/*
 * The walker: records ROOT into a manifest in walk order (depth first,
 * children sorted by name bytes), never following symlinks.
 *
 * Directories are read with getdents64 into a 64 KiB buffer and their
 * children statx'ed either on the task pool (plain syscalls on worker threads)
 * or through io_uring, per --io (see ioq.h).  In full mode, regular files are
 * hashed unless the stat cache against `base` proves the recorded hash still
 * good; with defer_changed, files whose metadata already differ from base
 * (or that are new) are left unhashed (no LS_REC_HASHED) for the caller, who
 * reads them anyway to write the layer.
 */
#ifndef LS_WALK_H
#define LS_WALK_H

#include "manifest.h"

struct ls_walk_params {
	const struct ls_walk_options *opts;
	const ls_manifest *base;          /* stat cache and --ignore-errors carry-over; may be NULL */
	bool defer_changed;
	const char *const *skip_paths;    /* relative paths never recorded (outputs inside ROOT) */
	size_t n_skip;
};

/** Walks root.  Returns 0 and *out (a new manifest whose settings are taken
 *  from opts), or a negative code with err naming the path. */
int ls_walk(const char *root, const struct ls_walk_params *params, ls_manifest **out,
	    struct ls_error *err);

/** True when the stat cache may serve rec's hash for a file now described by
 *  cur: same dev, ino, size, mtime, ctime and mode, and not racy against a
 *  scan that started at base_start_sec. */
bool ls_stat_cache_hit(const struct ls_rec *rec, const struct ls_rec *cur, int64_t base_start_sec);

/** Reads the xattrs of ROOT-relative abs_path under policy into a blob in
 *  the manifest encoding (malloc'ed into *blob, length *len; NULL/0 when
 *  none).  Returns 0 or -errno. */
int ls_read_xattrs(const char *abs_path, uint32_t mode, enum ls_xattrs policy, void **blob,
		   size_t *len);

#endif
