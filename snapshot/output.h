/*
 * Atomic output files (DESIGN.md "Command line"): a regular or absent target is
 * written to a temporary file in its directory and renamed into place on
 * commit; any other target (device, pipe, "-") is written in place.
 *
 * The temporary is an O_TMPFILE (nameless: a killed run leaves nothing), given
 * the name `.NAME.layersnap-tmp.XXXXXX` only at commit, just before it is
 * renamed over NAME.  Where O_TMPFILE is missing, that named file is written
 * directly.  Its writer holds an OFD write lock on it for as long as it
 * exists, so the temporaries of dead runs can be told from live ones and are
 * removed by the next run that writes NAME.  The optional PATH.lock is an OFD
 * lock too: it dies with its process, and a lock file left behind by a killed
 * run does not block the next one.
 */
#ifndef LS_OUTPUT_H
#define LS_OUTPUT_H

#include "layersnap.h"

#include <sys/types.h>

struct ls_output {
	int fd;              /**< write here */
	bool atomic;         /**< true: temporary file renamed on commit */
	bool locked;         /**< the OFD lock on lock_path is held */
	bool tmp_named;      /**< tmp_path exists on disk: the named fallback, or
				  an O_TMPFILE between its link and rename at commit */
	char *path;          /**< target path, a symlink as its last component
				  followed (NULL for stdout) */
	char *tmp_path;      /**< when atomic: the temporary's name beside path.
				  With O_TMPFILE, the name it is meant to get at
				  commit (a collision may pick another then). */
	char *lock_path;     /**< path + ".lock", when locked */
	dev_t dev;           /**< identity of the temporary file (for walk exclusion) */
	ino_t ino;
	size_t n_stale;      /**< stale temporaries of dead runs removed at open */
	int dir_fd;          /**< private: the target's directory, when path is set */
	int lock_fd;         /**< private: holds the lock, when locked */
};

/** Options for ls_output_open_opts.  Zero-initialised means the defaults. */
struct ls_output_options {
	bool lock;           /**< hold an OFD lock on PATH.lock until commit/abort */
	bool no_tmpfile;     /**< never use O_TMPFILE: write the named temporary
				  directly (the fallback, forced for its tests) */
};

/** Opens PATH for writing ("-" means stdout).  A symlink as PATH's last
 *  component is followed (also when dangling): its target is locked and
 *  replaced, the link stays.  With opts->lock, an OFD write lock is taken on
 *  PATH.lock (created when absent) and held until commit or abort; when
 *  another live process holds it, fails at once with EBUSY and the message
 *  "PATH.lock: another layersnap run is writing PATH".  For an atomic output,
 *  removes the stale temporaries `.NAME.layersnap-tmp.*` beside it that no
 *  live writer holds (out->n_stale counts them).  opts may be NULL.  Returns
 *  0 or a negative code; on failure nothing is left behind. */
int ls_output_open_opts(struct ls_output *out, const char *path, const struct ls_output_options *opts,
			struct ls_error *err);

/** ls_output_open_opts with only opts.lock set to lock. */
int ls_output_open(struct ls_output *out, const char *path, bool lock, struct ls_error *err);

/** Makes the output visible: fsync (when do_fsync), link the temporary as
 *  tmp_path and rename it over the target, fsync the directory (when
 *  do_fsync), drop the lock.  For stdout and other in-place targets, checks
 *  that every byte was flushed.  Returns 0 or a negative code; on failure the
 *  previous target is untouched. */
int ls_output_commit(struct ls_output *out, bool do_fsync, struct ls_error *err);

/** ls_output_commit() of an atomic output under name, a file name in the
 *  target's directory, instead of the target; never replacing: when name
 *  exists already, it is kept (*kept true) and the temporary removed.  For
 *  content-addressed files (an OCI layout's blobs), whose name says their
 *  bytes.  kept may be NULL. */
int ls_output_commit_as(struct ls_output *out, const char *name, bool *kept, bool do_fsync, struct ls_error *err);

/** Abandons the output: removes the temporary file (if named) and the lock
 *  file, and releases the lock.  Safe to call after a commit (does nothing)
 *  and on a zeroed struct with fd -1. */
void ls_output_abort(struct ls_output *out);

/** True when the directory entry name[0..len) has the form of an output
 *  temporary, `.X.layersnap-tmp.SUFFIX`: a leading dot and ".layersnap-tmp."
 *  after it (the glob `.*.layersnap-tmp.*`).  Walks leave such names out: a
 *  run's temporary, live or left by a killed run, is never part of a tree. */
bool ls_output_is_temp_name(const char *name, size_t len);

/** Writes all of buf to fd, retrying on EINTR and short writes. */
int ls_write_all(int fd, const void *buf, size_t len);

#endif
