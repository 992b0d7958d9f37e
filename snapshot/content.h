/*
 * Reading the contents of recorded regular files for a layer (DESIGN.md "A
 * live tree"), and reading them ahead of the layer writer.
 *
 * The writer takes the entries in walk order and, for each regular file,
 * must open the very inode the walk recorded, stat it, copy its bytes and
 * stat it again: the two stats bracket the bytes, and a file stamped in the
 * last second is read twice (ls_stamped_recently).  On a warm tree those
 * syscalls are most of a full layer's time.  The read-ahead does them on a
 * thread of its own for the files that come next, so that they overlap the
 * tar framing and the stream's hashing, compression and writing.
 *
 * Memory is bounded: at most LS_READAHEAD_FILES files and LS_READAHEAD_BYTES
 * bytes are held ahead; a file larger than LS_READAHEAD_WHOLE comes back open
 * and checked, with nothing read, for the caller to copy as it streams.
 */
#ifndef LS_CONTENT_H
#define LS_CONTENT_H

#include "manifest.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#define LS_READAHEAD_FILES 256
#define LS_READAHEAD_BYTES (4u * 1024 * 1024)
#define LS_READAHEAD_WHOLE (1024u * 1024)

/** Whether st is the inode record r names: device, inode and file type. */
bool ls_same_inode(const struct ls_rec *r, const struct stat *st);

/** Whether a file's bytes may differ between two fstats of it, a then b:
 *  every write moves mtime and ctime.  A ctime that moved along with the
 *  link count is an unlink, a rename over it or a new link: its bytes
 *  stayed. */
bool ls_changed_since(const struct stat *a, const struct stat *b);

/** Opens the regular file at record r, name in dirfd, for its contents: the
 *  inode the walk recorded and nothing else (ls_open_noatime's flags), and
 *  fstats it into *st.  Returns the fd, -ENOENT when the name is gone or now
 *  holds another inode, or another -errno. */
int ls_content_open(int dirfd, const char *name, const struct ls_rec *r, struct stat *st);

/** One file as the read-ahead found it.  Owned by the read-ahead; valid
 *  until ls_readahead_release. */
struct ls_read {
	size_t index;               /**< the manifest index asked for */
	int err;                    /**< 0; -ENOENT (and the other "vanished"
				         codes of ls_content_open's dirfd walk),
				         -EAGAIN when it changed while being read,
				         or another -errno */
	int fd;                     /**< >= 0: larger than LS_READAHEAD_WHOLE,
				         opened and checked, nothing read; the
				         caller may take it (set it to -1) */
	struct stat before;         /**< the fstat right after the open (a
				         directory: its only one) */
	const unsigned char *data;  /**< fd < 0: the before.st_size bytes */
	bool hashed;                /**< hash holds their XXH3-128 (canonical) */
	uint8_t hash[16];
	/** A regular file's xattrs under the policy given to
	 *  ls_readahead_start, read from the open file: a blob as
	 *  ls_xattrs_read makes (NULL and 0: none).  false when they were not
	 *  read (no policy, no open file, or the read failed): the caller
	 *  reads them by name. */
	bool xattrs_read;
	void *xattrs;
	size_t xattr_len;
};

struct ls_readahead;

/** Starts reading ahead the regular files of manifest m at indices idx[0..n)
 *  (ascending; the caller keeps idx and m alive, and appends nothing to m,
 *  until ls_readahead_free), each opened beneath rootfd through a directory
 *  chain of its own.  A directory among them is fstat'ed only (its fd from
 *  that chain), into `before`; -ENOENT when it is not the recorded inode.
 *  hash: also compute each whole file's XXH3-128 (a file stamped in the
 *  last second is hashed and confirmed by a second read either way).
 *  xattrs: also read each regular file's xattrs under this policy, from the
 *  file it opened (LS_XATTRS_NONE: none read).  Returns 0 or -ENOMEM / a
 *  pthread error as a negative code; the caller then reads synchronously. */
int ls_readahead_start(struct ls_readahead **out, int rootfd, const ls_manifest *m, const size_t *idx,
		       size_t n, bool hash, enum ls_xattrs xattrs);

/** The file at manifest index i, waiting for it to be read; files listed
 *  before i that were not asked for are dropped.  NULL when i was not
 *  listed.  Indices must be asked for in ascending order, one at a time
 *  (release before the next). */
struct ls_read *ls_readahead_get(struct ls_readahead *ra, size_t i);

/** Frees what ls_readahead_get returned (closing its fd unless taken). */
void ls_readahead_release(struct ls_readahead *ra, struct ls_read *r);

/** Stops the thread and frees everything; NULL is allowed. */
void ls_readahead_free(struct ls_readahead *ra);

#endif
