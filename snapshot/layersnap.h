/*
 * layersnap: filesystem snapshots, change detection and deterministic OCI layers.
 *
 * Library conventions: every function that can fail returns 0 on success or a
 * negative errno-style code, and fills the caller's struct ls_error with a
 * one-line message "what: why".  The library never prints, never exits and
 * keeps no global mutable state; a handle is used by one thread at a time.
 */
#ifndef LAYERSNAP_H
#define LAYERSNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define LAYERSNAP_VERSION "0.1.0"

/** Error report filled by every fallible call. */
struct ls_error {
	int code;        /**< positive errno-style code of the failure */
	char msg[1024];  /**< "what: why", no trailing newline */
};

/** Snapshot modes (DESIGN.md "Snapshot modes"). */
enum ls_mode { LS_MODE_TIME = 0, LS_MODE_REDO = 1, LS_MODE_FULL = 2 };

/** Which io engine the walker uses. */
enum ls_io { LS_IO_AUTO = 0, LS_IO_URING = 1, LS_IO_SYNC = 2 };

/** Which extended attributes are recorded and written to layers. */
enum ls_xattrs { LS_XATTRS_CAPABILITY = 0, LS_XATTRS_ALL = 1, LS_XATTRS_NONE = 2 };

/** Layer compression. */
enum ls_compress { LS_COMPRESS_NONE = 0, LS_COMPRESS_GZIP = 1, LS_COMPRESS_ZSTD = 2 };

/** Callback for warnings and verbose notes; may be NULL. */
typedef void ls_log_fn(void *ctx, int verbose, const char *msg);

/** Progress callback: entries recorded so far; called from the calling
 *  thread every few thousand entries and once at the end.  May be NULL. */
typedef void ls_progress_fn(void *ctx, uint64_t entries, bool done);

/** Options shared by scan, diff and compare. Zero-initialised means defaults
 *  except mode, which callers set (the CLI defaults to full). */
struct ls_walk_options {
	enum ls_mode mode;
	enum ls_io io;
	enum ls_xattrs xattrs;
	int jobs;                   /**< worker threads; 0 = number of CPUs */
	bool one_file_system;
	bool ignore_errors;         /**< unreadable dirs: warn and carry base entries over */
	bool rehash;                /**< full mode: ignore the stat cache */
	const char *const *excludes; /**< paths relative to ROOT, normalised by the caller or not */
	size_t n_excludes;
	const char *const *skip_paths; /**< never walked nor recorded, not part of the manifest's
					    settings: the run's own outputs inside ROOT */
	size_t n_skip;
	ls_log_fn *log;
	void *log_ctx;
	ls_progress_fn *progress;   /**< uses log_ctx */
};

/* ---- manifests ---------------------------------------------------------- */

typedef struct ls_manifest ls_manifest;

/** Loads and verifies a manifest file (magic, version, checksum, structure).
 *  Returns 0 and *out, or a negative code with err filled. */
int ls_manifest_load(const char *path, ls_manifest **out, struct ls_error *err);

/** Writes a manifest atomically (temporary file + rename, under PATH.lock).
 *  With do_fsync, the data and the directory are fsynced before/after rename. */
int ls_manifest_save(const ls_manifest *m, const char *path, bool do_fsync, struct ls_error *err);

/** Frees a manifest; NULL is allowed. */
void ls_manifest_free(ls_manifest *m);

/** Number of entries (ROOT itself is not an entry). */
size_t ls_manifest_count(const ls_manifest *m);

/** Mode the manifest was recorded in. */
enum ls_mode ls_manifest_mode(const ls_manifest *m);

/** Renders a manifest as an mtree spec (mtree-netbsd compatible) or JSON. */
int ls_manifest_dump_mtree(const ls_manifest *m, FILE *out, struct ls_error *err);
int ls_manifest_dump_json(const ls_manifest *m, FILE *out, struct ls_error *err);

/* ---- scan --------------------------------------------------------------- */

/** Walks ROOT and records a manifest in opts->mode.  With a base manifest in
 *  full mode, unchanged files keep the base's hashes (stat cache).
 *  Returns 0 and *out, or a negative code. */
int ls_scan(const char *root, const struct ls_walk_options *opts, const ls_manifest *base,
	    ls_manifest **out, struct ls_error *err);

/* ---- compare ------------------------------------------------------------ */

/** One change between two manifests. */
enum ls_change { LS_ADDED = 'A', LS_MODIFIED = 'M', LS_DELETED = 'D', LS_TYPE = 'T' };

/** Called for every change in manifest order; a non-zero return stops the
 *  comparison and is returned by ls_compare. */
typedef int ls_change_fn(void *ctx, enum ls_change change, const char *path, size_t path_len);

/** Compares two manifests in `mode`: merge-join in walk order.  With
 *  mtime_seconds, mtimes are compared in whole seconds.  Returns the number
 *  of changes (>= 0) or a negative code. */
long ls_compare(const ls_manifest *old_m, const ls_manifest *new_m, enum ls_mode mode,
		bool mtime_seconds, ls_change_fn *fn, void *ctx, struct ls_error *err);

/** Checks that a base recorded with base's settings can serve a comparison in
 *  `mode` with `opts` (DESIGN.md: full needs a full base; same excludes,
 *  xattrs policy and one-file-system).  Returns 0 or -EINVAL with err filled. */
int ls_check_base(const ls_manifest *base, enum ls_mode mode, const struct ls_walk_options *opts,
		  struct ls_error *err);

/* ---- diff --------------------------------------------------------------- */

struct ls_diff_options {
	struct ls_walk_options walk;
	enum ls_compress compress;
	int level;                  /**< compression level; 0 = library default */
	bool have_epoch;            /**< clamp mtimes to source_date_epoch */
	int64_t source_date_epoch;
	bool opaque;                /**< .wh..wh..opq for directories emptied of old children */
};

struct ls_diff_result {
	enum ls_mode mode;
	uint64_t added, modified, deleted;
	uint64_t entries;           /**< tar entries written, ancestors and whiteouts included */
	uint64_t bytes;             /**< uncompressed tar size */
	uint64_t size;              /**< blob size */
	char diff_id[72];           /**< "sha256:<hex>" */
	char digest[72];            /**< "sha256:<hex>" */
	const char *media_type;
	double elapsed_ms;
};

/** Walks ROOT, compares with base (NULL: full layer) and writes the layer to
 *  layer_fd.  On success, *new_manifest (if not NULL) receives the new
 *  manifest with every regular file hashed in full mode. */
int ls_diff(const char *root, const struct ls_diff_options *opts, const ls_manifest *base,
	    int layer_fd, struct ls_diff_result *res, ls_manifest **new_manifest,
	    struct ls_error *err);

/* ---- apply -------------------------------------------------------------- */

struct ls_apply_options {
	ls_log_fn *log;
	void *log_ctx;
	bool keep_setid;            /**< not root: keep setuid/setgid bits (dropped by default) */
	bool no_tmpfile;            /**< never use O_TMPFILE: write each file to its named
					 temporary (the fallback, forced for its tests) */
};

struct ls_apply_stats {
	uint64_t entries, whiteouts, skipped;
};

/** Extracts an OCI layer (tar, tar+gzip or tar+zstd, detected from the bytes)
 *  read from layer_fd onto the directory ROOT, never touching anything
 *  outside it.  The whole stream is verified (gzip trailers, zstd checksums,
 *  the tar's end-of-archive blocks); each file is written to a temporary and
 *  linked into place once complete.  Returns 0 or a negative code naming the
 *  refused entry; entries before it stay applied. */
int ls_apply(int layer_fd, const char *root, const struct ls_apply_options *opts,
	     struct ls_apply_stats *stats, struct ls_error *err);

/* ---- names -------------------------------------------------------------- */

const char *ls_mode_name(enum ls_mode mode);
int ls_mode_parse(const char *s, enum ls_mode *out);

#endif
