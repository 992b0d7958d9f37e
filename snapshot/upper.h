/*
 * An overlay upper directory, read for what a diff of the merged view must
 * look at (diff --upper): the upper directory holds exactly the entries a
 * build step created or changed, deletions as whiteouts (character devices
 * 0/0) and directories whose old contents were replaced marked opaque
 * (PREFIX.overlay.opaque = "y", PREFIX "trusted." or with userxattr
 * "user.").  Only the markers are read here: every statx, xattr and content
 * of the diff goes through the merged view.
 */
#ifndef LS_UPPER_H
#define LS_UPPER_H

#include "layersnap.h"

/** What the upper directory names, relative to it (= to ROOT), each list in
 *  no particular order: `listed` to compare whole (files, symlinks,
 *  devices, whiteouts, opaque directories), `dirs` to statx and compare,
 *  their other contents carried over from the base. */
struct ls_upper {
	char **listed;
	size_t n_listed, cap_listed;
	char **dirs;
	size_t n_dirs, cap_dirs;
};

/** Checks that root is an overlay mount point whose upperdir is upper (per
 *  /proc/self/mountinfo) and sets *userxattr from its options.  Returns 0,
 *  or -EINVAL with err saying why not. */
int ls_upper_check_mount(const char *root, const char *upper, bool *userxattr, struct ls_error *err);

/** Which names the markers have. */
enum ls_upper_xattrs {
	LS_UPPER_TRUSTED,       /**< trusted.overlay.* (a mount without userxattr) */
	LS_UPPER_USER,          /**< user.overlay.* (userxattr) */
	LS_UPPER_EITHER,        /**< a copied upper directory: either */
};

/** Reads upper into u (zeroed by the caller; ls_upper_free() also on
 *  failure).  Refuses, naming the path and the fallback (a diff without
 *  --upper): a redirect xattr (a lower directory renamed under
 *  redirect_dir), an opaque value other than "y", an opaque marker on a
 *  non-directory.  Returns 0 or a negative code. */
int ls_upper_read(const char *upper, enum ls_upper_xattrs which, struct ls_upper *u, struct ls_error *err);

void ls_upper_free(struct ls_upper *u);

#endif
