/*
 * Atomic output files (DESIGN.md "Command line"): a regular or absent target is
 * written to a temporary file in its directory and renamed into place on
 * commit; any other target (device, pipe, "-") is written in place.
 */
#ifndef LS_OUTPUT_H
#define LS_OUTPUT_H

#include "layersnap.h"

#include <sys/types.h>

struct ls_output {
	int fd;              /**< write here */
	bool atomic;         /**< true: temporary file renamed on commit */
	bool locked;         /**< a PATH.lock file is held */
	char *path;          /**< target path (NULL for stdout) */
	char *tmp_path;      /**< temporary file, when atomic */
	char *lock_path;     /**< PATH.lock, when locked */
	dev_t dev;           /**< identity of the temporary file (for walk exclusion) */
	ino_t ino;
};

/** Opens PATH for writing ("-" means stdout).  With lock, PATH.lock is created
 *  with O_EXCL first and an existing lock fails at once (EEXIST).  Returns 0 or
 *  a negative code; on failure nothing is left behind. */
int ls_output_open(struct ls_output *out, const char *path, bool lock, struct ls_error *err);

/** Makes the output visible: fsync (when do_fsync), rename over the target,
 *  fsync the directory (when do_fsync), drop the lock.  For stdout and other
 *  in-place targets, checks that every byte was flushed.  Returns 0 or a
 *  negative code; on failure the previous target is untouched. */
int ls_output_commit(struct ls_output *out, bool do_fsync, struct ls_error *err);

/** Abandons the output: removes the temporary file and the lock.  Safe to
 *  call after a commit (does nothing) and on a zeroed struct with fd -1. */
void ls_output_abort(struct ls_output *out);

/** Writes all of buf to fd, retrying on EINTR and short writes. */
int ls_write_all(int fd, const void *buf, size_t len);

#endif
