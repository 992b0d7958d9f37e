/*
 * Relative paths beneath a root: joining, normalising, opening, showing.
 *
 * Paths here are relative to a root directory fd, "" meaning the root itself,
 * with no leading or trailing '/'.  Nothing in this module follows a symlink
 * or a magic link, and nothing has a PATH_MAX limit: a path longer than the
 * kernel takes in one call is opened a piece at a time, each piece beneath
 * the directory the previous one opened (as bfs opens from the nearest open
 * directory).
 */
#ifndef LS_PATH_H
#define LS_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>

/** A growable byte buffer for building paths.  Zero-initialise; free buf. */
struct ls_pathbuf {
	char *buf;
	size_t len, cap;
};

/** Sets pb to "DIR/NAME", or "NAME" when dlen is 0 (NUL-terminated, length in
 *  pb->len).  dir may point into pb->buf itself.  Returns 0 or -ENOMEM. */
int ls_path_join(struct ls_pathbuf *pb, const char *dir, size_t dlen, const char *name, size_t nlen);

/** Returns a new malloc'ed "DIR/NAME" (or "NAME" when dir is ""), or NULL. */
char *ls_path_join_new(const char *dir, const char *name);

/** How ls_path_normalize treats a leading '/'. */
enum ls_norm {
	LS_NORM_ROOTED,    /**< a leading '/' means the root: stripped (excludes) */
	LS_NORM_STRICT,    /**< a leading '/' escapes the root: refused (layer entries) */
};

/** Normalises a relative path in place: drops empty and "." components and a
 *  leading "./" and trailing '/'.  Returns the new length (0 = the root), or
 *  -EXDEV for a ".." component (or, with LS_NORM_STRICT, a leading '/'). */
ssize_t ls_path_normalize(char *p, enum ls_norm how);

/** The prefix that marks a whiteout in an OCI layer (".wh.NAME", and the
 *  opaque marker ".wh..wh..opq"): no entry of a tree may have it. */
#define LS_WHITEOUT_PREFIX ".wh."

/** Whether a name (len bytes, one path component) starts with it. */
static inline bool ls_is_whiteout_name(const char *name, size_t len)
{
	return len >= sizeof(LS_WHITEOUT_PREFIX) - 1 &&
	       memcmp(name, LS_WHITEOUT_PREFIX, sizeof(LS_WHITEOUT_PREFIX) - 1) == 0;
}

/** Room for ls_read_dirents: hundreds of entries per call. */
#define LS_DIRENT_BUF (64 * 1024)

/** Reads the next entries of directory dfd with getdents64 into buf (len
 *  bytes), straight from the fd: no DIR stream, so no fstat and fcntl per
 *  directory as fdopendir does.  The entries are struct dirent64 records,
 *  each d_reclen long, "." and ".." among them.  Returns the bytes filled,
 *  0 at the end of the directory, or -errno. */
ssize_t ls_read_dirents(int dfd, void *buf, size_t len);

/** Opens path (NUL-terminated, relative, normalised; "" = dirfd itself) beneath
 *  dirfd with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 *  RESOLVE_NO_MAGICLINKS) and flags (O_CLOEXEC is added; O_CREAT is not
 *  allowed).  A symlink anywhere on the way fails with -ELOOP, an escape with
 *  -EXDEV; kernels without openat2 get an equivalent walk of O_NOFOLLOW
 *  opens.  Returns an fd (the caller closes it) or -errno. */
int ls_open_beneath(int dirfd, const char *path, int flags);

/** The open directories from a root down to the directory last asked for, so
 *  that entries visited in walk order are each reached by opening only what
 *  changed since the previous one, every component with O_NOFOLLOW beneath
 *  the one before.  At most LS_DIRCHAIN_FDS directories stay open; deeper
 *  ones are reopened from the deepest that is. */
struct ls_dirchain;

#define LS_DIRCHAIN_FDS 64

/** Starts a chain at rootfd (borrowed: the caller keeps it open and closes
 *  it after ls_dirchain_free).  Returns 0 or -ENOMEM. */
int ls_dirchain_create(struct ls_dirchain **out, int rootfd);

/** An O_PATH fd of directory dir (len bytes, relative, normalised; 0 = the
 *  root), owned by the chain and valid until the next call.  Returns the fd
 *  or -errno: -ENOENT, -ENOTDIR or -ELOOP when a component is gone or is no
 *  longer a directory (a symlink is never followed). */
int ls_dirchain_get(struct ls_dirchain *c, const char *dir, size_t len);

/** Closes every directory the chain opened and frees it; NULL is allowed. */
void ls_dirchain_free(struct ls_dirchain *c);

#endif
