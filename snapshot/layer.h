/*
 * Deterministic OCI layer writer (DESIGN.md "The layer").
 *
 * Entries are written as libarchive's pax_restricted writer writes them (a
 * plain ustar header built here when the entry needs no extension) into a sink
 * that, in one pass, hashes the uncompressed stream (diff_id), compresses it
 * with libdeflate (gzip: concatenated members of fixed-size chunks) or
 * libzstd (with worker threads and a fixed job size) called directly, hashes
 * the compressed blob (digest), counts it and writes it to the output fd.
 * Compression runs on several threads, and writing to an fd on a thread of
 * its own beside the hashing; the bytes never depend on how many.
 * The caller decides what goes in the layer and in which order; this module
 * only makes each entry byte-for-byte reproducible.
 */
#ifndef LS_LAYER_H
#define LS_LAYER_H

#include "layersnap.h"

#include <pthread.h>
#include <stdbool.h>
#include "xxh.h"

struct ls_layer;

struct ls_layer_options {
	enum ls_compress compress;
	/** 0 = default (gzip 6, zstd 3).  gzip: 1 (fastest) to 9 (smallest),
	 *  libdeflate's levels, each a little smaller and much faster than
	 *  zlib's of the same number.  zstd: libzstd's levels. */
	int level;
	bool have_epoch;            /**< clamp mtimes to source_date_epoch */
	int64_t source_date_epoch;
	int threads;                /**< compressor threads, at most 32; 0 = one per
				         online CPU; never changes the bytes */
	/** The sink instead of an fd (ls_layer_open's fd is then -1).  Called
	 *  on the thread that calls ls_layer_add and the rest, during those
	 *  calls: the stream side (hashing, writing) then runs on that thread
	 *  instead of one of its own. */
	ls_write_fn *write;
	void *write_ctx;
};

/** One extended attribute; a layer entry's list is sorted by name. */
struct ls_xattr {
	const char *name;
	const void *value;
	size_t value_len;
};

/** One tar entry.  Paths are relative to ROOT, without a leading "./" or "/"
 *  and without a trailing "/" (the writer adds it for directories). */
struct ls_layer_entry {
	const char *path;
	uint32_t mode;              /**< st_mode: type and permission bits */
	uint32_t uid, gid;
	int64_t mtime_sec;          /**< whole seconds; clamped by the writer */
	uint64_t size;              /**< regular files: bytes to copy from content_fd */
	uint64_t rdev;              /**< devices: makedev(major, minor) */
	const char *link_target;    /**< symlinks: the target */
	const char *hardlink;       /**< non-NULL: write a hard-link entry naming this path */
	const struct ls_xattr *xattrs;
	size_t n_xattrs;
};

/** Totals and digests of a finished layer. */
struct ls_layer_result {
	uint64_t entries;           /**< tar entries written (whiteouts included) */
	uint64_t bytes;             /**< uncompressed tar bytes */
	uint64_t size;              /**< blob bytes written to the fd */
	char diff_id[72];           /**< "sha256:" + 64 hex digits */
	char digest[72];
	const char *media_type;     /**< application/vnd.oci.image.layer.v1.tar[+gzip|+zstd] */
};

/** Starts libcrypto's one-time set-up of SHA-256 on a thread of its own
 *  (OpenSSL 3 builds its provider tables at the first digest: ~1.2 ms, as
 *  much as a small layer's whole writing), to overlap it with other work.
 *  Returns true when the thread runs: pass *t to ls_layer_warm_join before
 *  returning; false when it could not be started, and ls_layer_open then
 *  does the set-up itself.  Nothing else about a layer depends on it. */
bool ls_layer_warm_start(pthread_t *t);

/** Waits for the thread of ls_layer_warm_start. */
void ls_layer_warm_join(pthread_t t);

/** Starts a layer written to fd (a file, a pipe or stdout), or with fd -1
 *  to opts->write.  Returns 0 and *out, or a negative code with err filled. */
int ls_layer_open(struct ls_layer **out, int fd, const struct ls_layer_options *opts,
		  struct ls_error *err);

/** Adds one entry.  For a regular file that is not a hard link, content_fd
 *  must be readable and exactly e->size bytes are copied from its current
 *  offset; a file that ends early is an error ("changed while being read").
 *  When hash is not NULL, every content byte is also fed to it (XXH3-128
 *  state reset by the caller), so a file is read once for tar and hash.
 *  content_fd is not closed.  Returns 0 or a negative code.  The output is
 *  hashed, compressed and written by other threads: a failure there is
 *  returned by a later call, ls_layer_finish at the latest. */
int ls_layer_add(struct ls_layer *l, const struct ls_layer_entry *e, int content_fd,
		 XXH3_state_t *hash, struct ls_error *err);

/** Like ls_layer_add, with the e->size content bytes from memory (data,
 *  NULL when e->size is 0) instead of an fd. */
int ls_layer_add_data(struct ls_layer *l, const struct ls_layer_entry *e, const void *data,
		      struct ls_error *err);

/** Adds the whiteout ".wh.NAME" for path (= "DIR/NAME" or "NAME"): an empty
 *  regular file, mode 0, uid/gid 0, mtime 0. */
int ls_layer_add_whiteout(struct ls_layer *l, const char *path, struct ls_error *err);

/** Adds the opaque whiteout "DIR/.wh..wh..opq" ("" = ROOT) for directory dir. */
int ls_layer_add_opaque(struct ls_layer *l, const char *dir, struct ls_error *err);

/** Uncompressed tar bytes written so far. */
uint64_t ls_layer_tar_bytes(const struct ls_layer *l);

/** Writes the end of the archive (two zero blocks, no padding), flushes the
 *  compressor and fills res.  Does not close the fd. */
int ls_layer_finish(struct ls_layer *l, struct ls_layer_result *res, struct ls_error *err);

/** Frees the writer (finished or not); NULL is allowed. */
void ls_layer_free(struct ls_layer *l);

#endif
