/*
 * Extended attributes: reading an entry's attributes beneath a directory fd,
 * and the blob they are kept in (manifest records, layer entries).
 *
 * Blob encoding, per attribute: u16 name length, u32 value length (both
 * little-endian), the name (no NUL), the value; sorted by name, no duplicates.
 */
#ifndef LS_XATTR_H
#define LS_XATTR_H

#include "layersnap.h"

#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>

#define LS_XATTR_HDR 6

/** Reads the xattrs of the entry `name` (one component) in directory dirfd,
 *  never following a symlink, under policy (capability: security.capability
 *  of regular files; all; none) into a blob: *blob is malloc'ed (the caller
 *  frees it), *len its length; NULL and 0 when there are none.  Uses
 *  getxattrat/listxattrat (Linux 6.13) and, where they are missing, the same
 *  calls through /proc/self/fd/DIRFD/NAME, which resolves nothing but name.
 *  name "": the file open at dirfd itself (not an O_PATH fd), by
 *  fgetxattr/flistxattr, with no lookup.  mode is the entry's st_mode.  Returns 0 or -errno (-ENOENT: the entry is
 *  gone). */
int ls_xattrs_read(int dirfd, const char *name, uint32_t mode, enum ls_xattrs policy, void **blob,
		   size_t *len);

/** One attribute `attr` of the entry `name` in dirfd (not following a
 *  symlink; "": of the file open at dirfd) into val[0..size), by the same
 *  calls as ls_xattrs_read.  Returns the value's length, -ENODATA when the entry has no such attribute (also
 *  where the file system has none: -ENOTSUP is returned as -ENODATA),
 *  -ERANGE when the value is longer than size, or -errno. */
ssize_t ls_xattr_get(int dirfd, const char *name, const char *attr, void *val, size_t size);

/** The attribute names of the entry `name` in dirfd (not following a
 *  symlink; "": of the file open at dirfd), each NUL-terminated, into *buf
 *  (*cap bytes, malloc'ed and grown here as needed; the caller frees it), by the same calls as
 *  ls_xattrs_read: one call when they fit.  Returns their total length (0:
 *  none, also where the file system has none) or -errno. */
ssize_t ls_xattr_list(int dirfd, const char *name, char **buf, size_t *cap);

/** A position in a blob. */
struct ls_xattr_it {
	const unsigned char *p, *end;
};

/** One attribute of a blob; name is not NUL-terminated. */
struct ls_xattr_view {
	const char *name;
	size_t name_len;
	const void *value;
	size_t value_len;
};

static inline struct ls_xattr_it ls_xattr_iter(const void *blob, size_t len)
{
	struct ls_xattr_it it = { blob, blob ? (const unsigned char *)blob + len : NULL };
	return it;
}

/** Steps to the next attribute.  Returns 1 and fills *v, 0 at the end, or
 *  -EINVAL when the blob is malformed (a header or a name/value running past
 *  the end, an empty name). */
int ls_xattr_next(struct ls_xattr_it *it, struct ls_xattr_view *v);

#endif
