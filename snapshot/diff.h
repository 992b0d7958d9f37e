/*
 * ls_diff with its new manifest handed over in parts, for ls_diff_files,
 * which writes it as a stream: the walk's records and the base runs carried
 * between them are never copied into one manifest in memory (the carried
 * runs are most of the tree under --only and --upper, and every unchanged
 * file in a walk diff), so a diff's peak memory is the mapped base plus what
 * the walk recorded, with or without a manifest out.
 */
#ifndef LS_DIFF_H
#define LS_DIFF_H

#include "carry.h"
#include "layersnap.h"
#include "manifest.h"

/** A diff's new manifest before it is put together (see carry.h). */
struct ls_diff_manifest {
	ls_manifest *walked;        /* what the walk recorded, owned; in full mode hashed */
	struct ls_carry carried;    /* base runs carried between its records, owned */
	const ls_manifest *base;    /* the diff's base, borrowed */
	const char *const *skip;    /* the run's own outputs, borrowed from the walk options */
	size_t n_skip;
};

/** A base manifest that is still loading when ls_diff_parts starts, which
 *  takes it once it has listed an upper directory (the two overlap). */
struct ls_diff_base {
	struct ls_manifest_loading *loading;  /* started by the caller; NULL once taken */
	const char *path;                     /* its path, for messages */
	ls_manifest *m;                       /* the base once taken: the caller frees it */
};

/** ls_diff(), with the new manifest, when nm is not NULL, left in parts in
 *  *nm (zeroed first; ls_diff_manifest_free() on every path).  nm borrows
 *  base and opts' skip paths: both must outlive it.  pending: NULL, or (with
 *  base NULL) the base still loading; whatever ls_diff_parts returns,
 *  pending->loading is then either taken or left for the caller to finish,
 *  and a load that failed is told as "--base" and the load's message. */
int ls_diff_parts(const char *root, const struct ls_diff_options *opts, const ls_manifest *base,
		  struct ls_diff_base *pending, int layer_fd, struct ls_diff_result *res, struct ls_diff_manifest *nm,
		  struct ls_error *err);

/** Writes the manifest *nm stands for to fd as a stream (ls_carry_write_fd).
 *  Returns 0 or negative. */
int ls_diff_manifest_write_fd(const struct ls_diff_manifest *nm, int fd, struct ls_error *err);

/** Frees what *nm owns and zeroes it. */
void ls_diff_manifest_free(struct ls_diff_manifest *nm);

#endif
