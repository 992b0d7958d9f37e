/*
 * layersnap: filesystem snapshots, change detection and deterministic OCI layers.
 *
 * Library conventions: every function that can fail returns 0 on success or a
 * negative errno-style code, and fills the caller's struct ls_error with a
 * one-line message "what: why".  The library never prints, never exits and
 * keeps no global mutable state; a handle is used by one thread at a time.
 * A NULL where an argument is required, or an invalid one, is -EINVAL (-EBADF
 * for a file descriptor), never a crash; err itself may be NULL.
 *
 * This header is the whole public API: liblayersnap.so exports exactly the
 * functions declared here (each marked LS_API), and nothing else.  Link with
 * `pkg-config --cflags --libs layersnap` (`--static` adds what linking
 * liblayersnap.a needs).
 */
#ifndef LAYERSNAP_H
#define LAYERSNAP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/*
 * The version of this header and of the library built with it, the one
 * place it is written: the Makefile reads these three lines (the shared
 * library's file name liblayersnap.so.MAJOR.MINOR.PATCH, its SONAME
 * liblayersnap.so.MAJOR, the pkg-config Version) and `layersnap --version`
 * prints LAYERSNAP_VERSION.
 */
#define LAYERSNAP_VERSION_MAJOR 0
#define LAYERSNAP_VERSION_MINOR 1
#define LAYERSNAP_VERSION_PATCH 0

#define LS_STRINGIFY_(x) #x
#define LS_STRINGIFY(x) LS_STRINGIFY_(x)
/** "MAJOR.MINOR.PATCH", e.g. "0.1.0". */
#define LAYERSNAP_VERSION LS_STRINGIFY(LAYERSNAP_VERSION_MAJOR) "." \
	LS_STRINGIFY(LAYERSNAP_VERSION_MINOR) "." LS_STRINGIFY(LAYERSNAP_VERSION_PATCH)

/*
 * LS_API marks the exported functions.  The library's objects are compiled
 * with -fvisibility=hidden, so a function without it stays internal to the
 * library (the static library still links every function, hidden or not).
 */
#ifndef LS_API
#  if defined(__GNUC__) && __GNUC__ >= 4
#    define LS_API __attribute__((visibility("default")))
#  else
#    define LS_API
#  endif
#endif

/* The LS_*_INIT initialisers of the versioned structs (below): a designated
 * initialiser in C; in C++, where one that leaves fields out draws
 * -Wmissing-field-initializers, a value-initialised copy. */
#ifdef __cplusplus
extern "C++" {
template <typename T> inline T ls_sized_init_()
{
	T t = T();
	t.struct_size = sizeof(T);
	return t;
}
}
#  define LS_SIZED_INIT_(type) ls_sized_init_<type>()
#else
#  define LS_SIZED_INIT_(type) { .struct_size = sizeof(type) }
#endif

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Versioned structs.  Every options and result struct below starts with
 * `size_t struct_size`, which the caller sets to the sizeof of the struct as
 * its header declares it; the LS_*_INIT initialisers do that and nothing else.
 * Later versions of the library only append fields, so a program built
 * against an older header keeps working: the library reads (options) or
 * fills (results) only the caller's `struct_size` bytes, and fields an older caller
 * lacks take their zero value, which is always the default.  A size below
 * the first version's is -EINVAL; a size beyond what the library knows is
 * accepted when the bytes it does not know are zero, and -E2BIG otherwise
 * (a newer caller asks for something this library cannot do).  Structs the
 * library hands to callbacks (struct ls_progress) carry the library's size.
 */

/** Error report filled by every fallible call; fixed, not versioned. */
struct ls_error {
	int code;        /**< positive errno-style code of the failure */
	char msg[1024];  /**< "what: why", no trailing newline */
};

/** Snapshot modes (DESIGN.md "Snapshot modes"). */
enum ls_mode { LS_MODE_FULL = 0, LS_MODE_REDO = 1, LS_MODE_TIME = 2 };

/** Which io engine the walker uses. */
enum ls_io { LS_IO_AUTO = 0, LS_IO_URING = 1, LS_IO_SYNC = 2 };

/** Which extended attributes are recorded and written to layers. */
enum ls_xattrs { LS_XATTRS_CAPABILITY = 0, LS_XATTRS_ALL = 1, LS_XATTRS_NONE = 2 };

/** Layer compression. */
enum ls_compress { LS_COMPRESS_NONE = 0, LS_COMPRESS_GZIP = 1, LS_COMPRESS_ZSTD = 2 };

/** Callback for warnings and verbose notes; may be NULL. */
typedef void ls_log_fn(void *ctx, int verbose, const char *msg);

/** The phases of a run, as progress reports them. */
enum ls_phase {
	LS_PHASE_WALK = 0,   /**< scan, diff, compare with ROOT: the tree is walked (and hashed) */
	LS_PHASE_LAYER = 1,  /**< diff: the layer is written */
};

/** Where a run is, for ls_progress_fn. */
struct ls_progress {
	size_t struct_size;      /**< sizeof(struct ls_progress) of the library */
	enum ls_phase phase;
	bool done;               /**< the phase is complete: its last call */
	uint64_t entries;        /**< walk: entries recorded; layer: entries written */
	uint64_t bytes_read;     /**< layer: file contents read so far */
	uint64_t bytes_total;    /**< layer: the file contents it reads in all */
	uint64_t bytes_written;  /**< layer: tar bytes out so far (before compression) */
};

/**
 * Progress callback.  Called on the calling thread, one call at a time:
 * when a phase starts, every 4096 entries of a walk, every 4 MiB or 256
 * entries of a layer, and once when a phase is done.  May be NULL.
 *
 * @return
 *         0 to go on; anything else cancels the run, which then fails with
 *         -ECANCELED ("cancelled") and leaves its outputs to the caller to
 *         discard (the CLI commits nothing).
 */
typedef int ls_progress_fn(void *ctx, const struct ls_progress *p);

/**
 * Kaniko's ignore list.  When on, /proc, /sys, /dev and /run below ROOT, and
 * every mount point below ROOT that /proc/self/mountinfo lists, are recorded
 * as directories (a mount point that is not one is left out) but not
 * descended into, and the base's entries there are kept as they were: they
 * neither white anything out nor become a setting of the manifest.  The
 * walk's log (verbose) names each one and why.
 */
enum ls_default_excludes {
	LS_DEFAULT_EXCLUDES_AUTO = 0,  /**< on when ROOT is "/" */
	LS_DEFAULT_EXCLUDES_ON = 1,
	LS_DEFAULT_EXCLUDES_OFF = 2,
};

/** Options shared by scan, diff and compare.  Every field's zero value is
 *  its default: full mode, --io auto, capability xattrs, one job per CPU,
 *  no excludes; a NULL pointer to the struct means all defaults. */
struct ls_walk_options {
	size_t struct_size;         /**< sizeof(struct ls_walk_options) */
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
	/** gitignore-style patterns (--exclude-pattern; gitignore(5): `*`,
	 *  `**`, `?`, `[...]`, anchoring '/', a trailing '/' for directories,
	 *  `!` to re-include), in order, the last match deciding; matched in
	 *  the walk, so an excluded directory is never entered.  Recorded in
	 *  the manifest: a base recorded with others is refused.  Each is one
	 *  gitignore line: an empty one or a comment is -EINVAL. */
	const char *const *exclude_patterns;
	size_t n_exclude_patterns;
	/** Kaniko's ignore list (see enum ls_default_excludes). */
	enum ls_default_excludes default_excludes;
};

#define LS_WALK_OPTIONS_INIT LS_SIZED_INIT_(struct ls_walk_options)

/* ---- manifests ---------------------------------------------------------- */

/** A manifest: the entries of a tree in walk order, with the settings it was
 *  recorded with.  Opaque; made by ls_manifest_load(), ls_scan() or ls_diff(),
 *  freed with ls_manifest_free(). */
typedef struct ls_manifest ls_manifest;

/**
 * Load and verify a manifest file (magic, version, checksum, structure).
 *
 * @param path
 *         The file to read.  It is mapped, not copied: it must not be
 *         truncated while the manifest is in use.
 * @param[out] out
 *         Receives the manifest, owned by the caller (ls_manifest_free());
 *         NULL on failure.
 * @param[out] err
 *         Filled on failure.
 * @return
 *         0, or a negative errno-style code (-EINVAL for a file that is not
 *         a manifest of this format version).
 */
LS_API int ls_manifest_load(const char *path, ls_manifest **out, struct ls_error *err);

/**
 * Write a manifest atomically: to a temporary file beside path, renamed over
 * it only once complete, under the lock path.lock (a second writer of the
 * same path fails at once).
 *
 * @param m
 *         The manifest; not modified.
 * @param path
 *         The file to write; through a symlink, its target is written.
 * @param do_fsync
 *         Fsync the data before the rename and the directory after it.
 * @param[out] err
 *         Filled on failure.
 * @return
 *         0, or a negative errno-style code; the previous file at path is
 *         then untouched.
 */
LS_API int ls_manifest_save(const ls_manifest *m, const char *path, bool do_fsync, struct ls_error *err);

/**
 * Free a manifest.
 *
 * @param m
 *         The manifest, or NULL (nothing is done).
 */
LS_API void ls_manifest_free(ls_manifest *m);

/**
 * @return
 *         The number of entries in m (ROOT itself is not an entry); 0 for
 *         NULL.
 */
LS_API size_t ls_manifest_count(const ls_manifest *m);

/**
 * @return
 *         The mode m was recorded in; LS_MODE_FULL for NULL.
 */
LS_API enum ls_mode ls_manifest_mode(const ls_manifest *m);

/**
 * Find an entry by its path.
 *
 * @param m
 *         The manifest.
 * @param path
 *         The entry's path relative to ROOT as recorded: no leading "/" or
 *         "./", no trailing "/"; need not be NUL-terminated.
 * @param len
 *         The length of path in bytes.
 * @return
 *         The entry's index in walk order (0 <= index < ls_manifest_count()),
 *         or -1 when m has no entry with exactly this path (or m is NULL).
 */
LS_API ssize_t ls_manifest_find(const ls_manifest *m, const char *path, size_t len);

/** One manifest entry as ls_manifest_entry() gives it.  Its strings point
 *  into the manifest and live as long as it does.  Fields a mode does not
 *  record are what the walk saw all the same; hashed says whether hash is a
 *  content hash (full mode, regular files). */
struct ls_entry {
	size_t struct_size;         /**< set by the caller: sizeof(struct ls_entry) */
	const char *path;           /**< relative to ROOT, NUL-terminated */
	size_t path_len;
	uint32_t mode;              /**< st_mode: file type and permission bits */
	uint32_t uid, gid, nlink;
	uint64_t size;
	int64_t mtime_ns, ctime_ns; /**< nanoseconds since 1970 */
	uint64_t dev, ino, rdev;
	const char *link_target;    /**< symlinks: the target; "" otherwise */
	bool hashed;
	uint8_t hash[16];           /**< XXH3-128, canonical (big-endian) bytes */
	bool mount_point;           /**< a directory not descended (--one-file-system) */
	size_t n_xattrs;            /**< extended attributes recorded for it */
};

#define LS_ENTRY_INIT LS_SIZED_INIT_(struct ls_entry)

/**
 * Entry i of a manifest, in walk order: with ls_manifest_count() the way to
 * iterate a manifest, with ls_manifest_find() to look a path up.
 *
 * @param m
 *         The manifest.
 * @param i
 *         0 <= i < ls_manifest_count(m).
 * @param[out] out
 *         Filled in; out->struct_size must be set (LS_ENTRY_INIT).
 * @return
 *         0, -EINVAL for a NULL argument or an unset struct_size, -ERANGE for i out
 *         of range.
 */
LS_API int ls_manifest_entry(const ls_manifest *m, size_t i, struct ls_entry *out);

/**
 * Render a manifest as a BSD mtree spec that mtree-netbsd's `mtree -f SPEC
 * -p ROOT` accepts (ls_manifest_dump_mtree()) or as JSON, one object per
 * entry (ls_manifest_dump_json()).
 *
 * @param m
 *         The manifest.
 * @param out
 *         Where to write; flushed, not closed.
 * @param[out] err
 *         Filled on failure.
 * @return
 *         0, or a negative errno-style code when writing to out failed.
 */
LS_API int ls_manifest_dump_mtree(const ls_manifest *m, FILE *out, struct ls_error *err);
LS_API int ls_manifest_dump_json(const ls_manifest *m, FILE *out, struct ls_error *err);

/* ---- scan --------------------------------------------------------------- */

/**
 * Walk ROOT and record a manifest.
 *
 * @param root
 *         The directory to record.
 * @param opts
 *         The walk's options (read during the call only), or NULL for the
 *         defaults.
 * @param base
 *         A previous manifest of the tree, or NULL.  In full mode, files it
 *         proves unchanged keep its hashes without being read (the stat
 *         cache); with opts->ignore_errors, what cannot be read keeps its
 *         base entries.  A base in another mode than full is not used by a
 *         full scan; one recorded with other settings is refused (see
 *         ls_check_base()).  Not modified; the result does not borrow it.
 * @param[out] out
 *         Receives the new manifest, owned by the caller (ls_manifest_free()).
 * @param[out] err
 *         Filled on failure, naming the path.
 * @return
 *         0, or a negative errno-style code.
 */
LS_API int ls_scan(const char *root, const struct ls_walk_options *opts, const ls_manifest *base,
		   ls_manifest **out, struct ls_error *err);

/* ---- compare ------------------------------------------------------------ */

/** One change between two manifests. */
enum ls_change { LS_ADDED = 'A', LS_MODIFIED = 'M', LS_DELETED = 'D', LS_TYPE = 'T' };

/** Called for every change in manifest order, with the path (path_len bytes,
 *  NUL-terminated, valid during the call only); a non-zero return stops the
 *  comparison (see ls_compare()). */
typedef int ls_change_fn(void *ctx, enum ls_change change, const char *path, size_t path_len);

/**
 * Compare two manifests: one merge-join in walk order.  ls_compare_opts()
 * with only mode and mtime_seconds set.
 *
 * @param old_m
 *         The earlier manifest.
 * @param new_m
 *         The later manifest.
 * @param mode
 *         Which fields count as a change (DESIGN.md "Snapshot modes").
 * @param mtime_seconds
 *         Compare mtimes in whole seconds.
 * @param fn
 *         Called for each change, or NULL to count them only.
 * @param ctx
 *         Passed to fn.
 * @param[out] err
 *         Filled when fn stops the comparison with a positive return.
 * @return
 *         The number of changes (>= 0); fn's return when it returned a
 *         negative value (err is then fn's to fill); -EIO ("compare:
 *         stopped") when it returned a positive one.
 */
LS_API long ls_compare(const ls_manifest *old_m, const ls_manifest *new_m, enum ls_mode mode,
		       bool mtime_seconds, ls_change_fn *fn, void *ctx, struct ls_error *err);

/** How ls_compare_opts() compares.  Every field's zero value is its
 *  default: full mode, mtimes in nanoseconds; a NULL pointer to the struct
 *  means all defaults. */
struct ls_compare_options {
	size_t struct_size;         /**< sizeof(struct ls_compare_options) */
	enum ls_mode mode;          /**< which fields count as a change */
	bool mtime_seconds;         /**< compare mtimes in whole seconds */
	/** Compare mtimes as a layer written with this source_date_epoch
	 *  (struct ls_diff_options) keeps them: in whole seconds, one later
	 *  than source_date_epoch counting as source_date_epoch, on both
	 *  sides.  For a tree unpacked from a reproducible image against the
	 *  manifest it was built from. */
	bool have_epoch;
	int64_t source_date_epoch;  /**< seconds since 1970 */
};

#define LS_COMPARE_OPTIONS_INIT LS_SIZED_INIT_(struct ls_compare_options)

/**
 * Compare two manifests as ls_compare() does, with options.
 *
 * @param old_m
 *         The earlier manifest.
 * @param new_m
 *         The later manifest.
 * @param opts
 *         The options (read during the call only), or NULL for the
 *         defaults.
 * @param fn
 *         Called for each change, or NULL to count them only.
 * @param ctx
 *         Passed to fn.
 * @param[out] err
 *         Filled on failure.
 * @return
 *         As ls_compare(); also -EINVAL or -E2BIG for opts' struct_size
 *         ("Versioned structs").
 */
LS_API long ls_compare_opts(const ls_manifest *old_m, const ls_manifest *new_m,
			    const struct ls_compare_options *opts, ls_change_fn *fn, void *ctx,
			    struct ls_error *err);

/**
 * Check that a base can serve a scan, diff or comparison (DESIGN.md): full
 * mode needs a full base, and the base must have been recorded with the same
 * excludes, exclude patterns (in the same order), xattrs policy and
 * one-file-system setting as opts.
 *
 * @param base
 *         The base manifest.
 * @param mode
 *         The mode of the comparison.
 * @param opts
 *         The options of the run, or NULL for the defaults.
 * @param[out] err
 *         Filled on failure, saying which setting differs.
 * @return
 *         0, or -EINVAL (or -ENOMEM).
 */
LS_API int ls_check_base(const ls_manifest *base, enum ls_mode mode, const struct ls_walk_options *opts,
			 struct ls_error *err);

/* ---- diff --------------------------------------------------------------- */

/**
 * A layer sink: receives the blob's bytes in order.  Called on the thread
 * that called ls_diff(), one call at a time, interleaved with the other
 * callbacks in walk order; it must take all len bytes before returning.
 *
 * @return
 *         0, or a negative errno-style code, which fails the run with that
 *         code ("layer: write: ...").
 */
typedef int ls_write_fn(void *ctx, const void *buf, size_t len);

struct ls_diff_options {
	size_t struct_size;         /**< sizeof(struct ls_diff_options) */
	/** The walk's options, or NULL for the defaults; read during the call
	 *  only.  Its own struct_size must be set as well. */
	const struct ls_walk_options *walk;
	enum ls_compress compress;
	int level;                  /**< compression level; 0 = library default */
	bool have_epoch;            /**< clamp mtimes to source_date_epoch */
	int64_t source_date_epoch;
	bool opaque;                /**< .wh..wh..opq for directories emptied of old children */
	/** Called for each path the layer adds (A), modifies (M), deletes (D)
	 *  or changes the type of (T) as it is written: the changes ls_compare
	 *  of the base and the new manifest gives, in layer order (a
	 *  directory's deletions before its other entries), on the calling
	 *  thread.  May be NULL; a non-zero return cancels (-ECANCELED). */
	ls_change_fn *on_change;
	void *change_ctx;
	/** The layer sink instead of a file descriptor (ls_diff()'s layer_fd
	 *  is then -1): to stream the blob into an upload or another process
	 *  without a pipe.  NULL: the layer goes to layer_fd. */
	ls_write_fn *write;
	void *write_ctx;
	/** Snapshots of known paths (Kaniko's COPY fast path; needs a base):
	 *  only these paths (relative to ROOT, each a file or a whole subtree)
	 *  are walked and compared, and the directories on the way to them
	 *  statx'ed and compared like any entry; everything else in the base
	 *  is carried over unchanged, never whited out.  A listed path that is
	 *  gone is whited out; a listed file with other hard links brings their
	 *  base entries along, statx'ed again.  The layer is the one a full
	 *  diff gives whenever the paths cover every change.  A path that
	 *  normalises to ROOT asks for a full diff. */
	const char *const *only_paths;
	size_t n_only_paths;
	/** diff --upper (builders on overlayfs; needs a base): ROOT is the
	 *  merged mount a build step ran in and this its upper directory,
	 *  which holds exactly what the step created or changed.  Only what it
	 *  names is looked at, through ROOT (whiteouts are deletions, opaque
	 *  directories replace their base subtree); the rest of the base is
	 *  carried over.  The layer is the one a diff without it writes.
	 *  ROOT must be an overlay mount whose upperdir this is (read from
	 *  /proc/self/mountinfo), unless upper_unchecked; a redirected or
	 *  xattr-whiteout directory is refused (-EINVAL).  Not with
	 *  only_paths. */
	const char *upper_dir;
	bool upper_unchecked;
};

#define LS_DIFF_OPTIONS_INIT LS_SIZED_INIT_(struct ls_diff_options)

struct ls_diff_result {
	size_t struct_size;         /**< set by the caller: sizeof(struct ls_diff_result) */
	enum ls_mode mode;
	uint64_t added, modified, deleted;
	uint64_t entries;           /**< tar entries written, ancestors and whiteouts included */
	uint64_t bytes;             /**< uncompressed tar size */
	uint64_t size;              /**< blob size */
	char diff_id[72];           /**< "sha256:<hex>" */
	char digest[72];            /**< "sha256:<hex>" */
	const char *media_type;     /**< a static string */
	double elapsed_ms;
	/** ls_diff_files() with files->oci: the image manifest's digest
	 *  ("sha256:<hex>"); "" otherwise. */
	char image_digest[72];
};

#define LS_DIFF_RESULT_INIT LS_SIZED_INIT_(struct ls_diff_result)

/**
 * Walk ROOT, compare it with a base and write a layer of what changed.
 *
 * @param root
 *         The directory to record.
 * @param opts
 *         The options, or NULL for the defaults (a full-mode walk, an
 *         uncompressed layer to layer_fd).
 * @param base
 *         The base manifest (refused as by ls_check_base() when it does not
 *         fit), or NULL for a full layer of the tree.  Not modified.
 * @param layer_fd
 *         Where the layer (the compressed blob, per opts->compress) is
 *         written, sequentially; not closed.  -1 when opts->write is the
 *         sink (exactly one of the two must be given).
 * @param[out] res
 *         NULL, or filled with the counts and digests on success and zeroed
 *         otherwise; res->struct_size must be set (LS_DIFF_RESULT_INIT).
 * @param[out] new_manifest
 *         NULL, or receives the manifest of the tree as written, owned by
 *         the caller (ls_manifest_free()); in full mode every regular file in
 *         it is hashed.  NULL on failure.
 * @param[out] err
 *         Filled on failure, naming the path.
 * @return
 *         0, or a negative errno-style code; what was written to layer_fd
 *         is then not a valid layer.
 */
LS_API int ls_diff(const char *root, const struct ls_diff_options *opts, const ls_manifest *base,
		   int layer_fd, struct ls_diff_result *res, ls_manifest **new_manifest,
		   struct ls_error *err);

/* ---- files: outputs written the way the command line writes them -------- */

/**
 * What a run would leave on disk if a signal ended it now: the named
 * temporaries of its outputs (only where O_TMPFILE is missing) and their
 * lock files.  The caller owns it, in static storage, and its SIGINT,
 * SIGTERM and SIGHUP handler unlinks slot[i].path for each slot[i].set
 * before re-raising.  ls_scan_files() and ls_diff_files() keep it current,
 * changing it only with those three signals blocked on the calling thread,
 * so that the handler never sees a half-written name nor one already handed
 * over (a renamed temporary; a lock file another run may have created
 * since).  The number of slots is fixed for this SONAME: a version that
 * needs more adds them in a second struct, so the slots here never move.
 */
#define LS_CLEANUP_SLOTS 18
struct ls_cleanup_slot {
	volatile sig_atomic_t set;
	char path[4096];
};
struct ls_cleanup {
	struct ls_cleanup_slot slot[LS_CLEANUP_SLOTS];
};

/**
 * Called at each step of ls_scan_files() and ls_diff_files(), on the calling
 * thread: "layer", "descriptor" and "manifest" just before that output is
 * committed; "write" once the layer's first MiB is in its temporary.  With
 * ls_files.oci: "blob" just before the layer's blob is committed into the
 * image layout, "index" just before its index.json is replaced.
 *
 * @return
 *         0 to go on; anything else fails the run with -ECANCELED
 *         ("cancelled at STEP"), the outputs not yet committed discarded.
 */
typedef int ls_step_fn(void *ctx, const char *step);

/**
 * An OCI image layout for ls_diff_files() to add the layer to (`diff
 * --oci-layout DIR[:TAG]`).  The blob (compressed as ls_diff_options says)
 * goes into DIR/blobs/sha256, named by its digest (a blob already there is
 * kept); the layout's oci-layout and index.json are created when absent;
 * the image tagged tag is created, or extended by one step: the config's
 * rootfs.diff_ids and history (created from ls_diff_options'
 * source_date_epoch when have_epoch is set, else the current time), the
 * manifest's layers, and the index.json entry with the annotation
 * org.opencontainers.image.ref.name.  An empty diff without keep_empty adds
 * a history entry with empty_layer and no blob.  Every document is
 * canonical JSON (sorted keys, no whitespace), written to a temporary and
 * renamed; index.json, under its lock (DIR/index.json.lock, taken before
 * the layout is read: a second writer fails with -EBUSY), is replaced last
 * of the image, so a failed run leaves the previous image as it was.
 * Every field's zero value is its default.
 */
struct ls_oci_options {
	size_t struct_size;         /**< sizeof(struct ls_oci_options) */
	const char *layout;         /**< the layout directory, required (its parent must exist) */
	const char *tag;            /**< the image's tag; NULL: "latest" */
	const char *history;        /**< NULL, or the history entry's created_by */
	bool keep_empty;            /**< an empty diff is a layer too */
	/** "OS/ARCH[/VARIANT]" for the config and the index entry; NULL: the
	 *  image's, or the machine's for a new image. */
	const char *platform;
	/** NULL, or a file holding a JSON object of the config's `config`
	 *  fields (User, WorkingDir, Env, Cmd, Entrypoint, Labels,
	 *  ExposedPorts, Volumes, StopSignal, ...) to merge over the image's:
	 *  a value replaces the image's, Env entries replace the same
	 *  variable's, Labels, ExposedPorts and Volumes merge key by key, null
	 *  removes. */
	const char *config_file;
	/** NULL, or the layout of an image to start from instead of the one
	 *  tagged tag (or an empty one): its config and layers, whose blobs
	 *  are copied into layout when it is another one. */
	const char *base_layout;
	const char *base_tag;       /**< the base image's tag; NULL: "latest" */
};

#define LS_OCI_OPTIONS_INIT LS_SIZED_INIT_(struct ls_oci_options)

/** The files of ls_scan_files() and ls_diff_files(). */
struct ls_files {
	size_t struct_size;         /**< sizeof(struct ls_files) */
	const char *layer;          /**< diff: the layer blob, required unless oci is set
					 (then an extra copy, or NULL); "-" is stdout */
	const char *descriptor;     /**< diff: NULL, or the OCI descriptor as JSON ("-": stdout) */
	const char *manifest;       /**< the new manifest: required by scan, NULL for none */
	bool fsync;                 /**< fsync each file before its rename and its directory after */
	bool no_tmpfile;            /**< never use O_TMPFILE (the fallback, forced for its tests) */
	struct ls_cleanup *cleanup; /**< NULL, or kept current for a signal handler */
	/** NULL, or called at each step.  With it set, the layer goes through
	 *  a write callback on the calling thread (for "write"): slower, meant
	 *  for tests. */
	ls_step_fn *on_step;
	void *step_ctx;
	/** diff: NULL, or the OCI image layout the layer goes into (read
	 *  during the call only).  Commit order: blob, layer, config, image
	 *  manifest, index.json, descriptor, manifest. */
	const struct ls_oci_options *oci;
	/** diff only: NULL, or the base manifest's path, loaded here (instead of
	 *  passing ls_diff_files a loaded base, which must then be NULL) while
	 *  the outputs are set up and an upper directory is listed; a load
	 *  that fails is told as "--base " and ls_manifest_load()'s message, one
	 *  ls_check_base() refuses as "PATH: " and its message. */
	const char *base;
};

#define LS_FILES_INIT LS_SIZED_INIT_(struct ls_files)

/**
 * ls_scan() into a manifest file, or ls_diff() into a layer file and
 * optionally a descriptor and a manifest, as `layersnap scan` and `diff` do
 * (DESIGN.md "Command line").  Each regular or absent target is written to a
 * temporary beside it and renamed into place once everything is written; the
 * manifest's lock (MANIFEST.lock) is taken before any work, so a second run
 * writing the same manifest fails at once with -EBUSY.  Commit order: layer,
 * descriptor, manifest, so that a failure at any point leaves the manifest
 * chain no further than the layers on disk; with files->oci (struct
 * ls_oci_options), blob, layer, config, image manifest, index.json,
 * descriptor, manifest, so that it goes no further than the image.  Outputs
 * that lie inside ROOT (with their temporaries and lock files, and a whole
 * OCI layout) are left out of the walk and of the manifest, besides
 * opts->skip_paths.  Stale temporaries of killed runs
 * beside a target are removed (counted under the walk's log, verbose).
 *
 * @param root
 *         The directory to record.
 * @param opts
 *         As for ls_scan() / ls_diff(); ls_diff_files() refuses opts->write
 *         (the layer goes to files->layer).
 * @param base
 *         As for ls_scan() / ls_diff().
 * @param files
 *         The files to write.
 * @param[out] entries
 *         ls_scan_files(): NULL, or receives the number of entries recorded.
 * @param[out] res
 *         ls_diff_files(): as for ls_diff().
 * @param[out] err
 *         Filled on failure, naming the file or path.
 * @return
 *         0, or a negative errno-style code; the outputs not committed are
 *         then removed and their previous files untouched.
 */
LS_API int ls_scan_files(const char *root, const struct ls_walk_options *opts, const ls_manifest *base,
			 const struct ls_files *files, size_t *entries, struct ls_error *err);
LS_API int ls_diff_files(const char *root, const struct ls_diff_options *opts, const ls_manifest *base,
			 const struct ls_files *files, struct ls_diff_result *res, struct ls_error *err);

/* ---- apply -------------------------------------------------------------- */

/**
 * What ls_apply() calls wrote, for the manifest of the tree they made (a
 * builder unpacking a base image: `apply LAYER... ROOT --manifest-out M`):
 * each regular file put in place, with its stat then and the XXH3-128 of the
 * bytes as they were written.  Opaque; one per tree, passed to every
 * ls_apply() of it through ls_apply_options.record.
 */
typedef struct ls_apply_record ls_apply_record;

/** A new, empty record (ls_apply_record_free()).  Returns 0 or -ENOMEM. */
LS_API int ls_apply_record_new(ls_apply_record **out, struct ls_error *err);

/** Frees a record; NULL is allowed. */
LS_API void ls_apply_record_free(ls_apply_record *r);

/**
 * The base for the scan that records ROOT after the applies: a full-mode
 * manifest, with opts' settings, of the files the record saw written, their
 * hashes and xattrs, so that ls_scan() or ls_scan_files() of ROOT with it
 * reads only what changed since (what a later layer replaced, a hard link
 * that moved a ctime, a file written in the scan's racy window): the
 * manifest is exactly the one a scan without it records, at the cost of a
 * metadata walk.
 *
 * @param r
 *         The record; sorted in place, still usable.
 * @param root
 *         The tree the applies wrote.
 * @param opts
 *         The options of the scan to come (NULL: defaults).
 * @param[out] out
 *         Receives the base (ls_manifest_free()).
 * @return
 *         0, or a negative errno-style code.
 */
LS_API int ls_apply_record_base(ls_apply_record *r, const char *root, const struct ls_walk_options *opts,
				ls_manifest **out, struct ls_error *err);

struct ls_apply_options {
	size_t struct_size;         /**< sizeof(struct ls_apply_options) */
	ls_log_fn *log;
	void *log_ctx;
	bool keep_setid;            /**< not root: keep setuid/setgid bits (dropped by default) */
	bool no_tmpfile;            /**< never use O_TMPFILE: write each file to its named
					 temporary (the fallback, forced for its tests) */
	/** Called for each entry as it is applied, in layer order, on the
	 *  calling thread (`apply -v`): LS_ADDED with the entry's path for
	 *  one extracted, LS_DELETED with the removed path for a whiteout, and
	 *  with the directory's path and a trailing '/' ("/" for ROOT) for an
	 *  opaque whiteout, which cleared that directory's old contents.  May
	 *  be NULL; a non-zero return stops the run (-ECANCELED). */
	ls_change_fn *on_entry;
	void *entry_ctx;
	/** NULL, or where the files written are noted (see ls_apply_record). */
	ls_apply_record *record;
};

#define LS_APPLY_OPTIONS_INIT LS_SIZED_INIT_(struct ls_apply_options)

struct ls_apply_stats {
	size_t struct_size;         /**< set by the caller: sizeof(struct ls_apply_stats) */
	uint64_t entries, whiteouts, skipped;
};

#define LS_APPLY_STATS_INIT LS_SIZED_INIT_(struct ls_apply_stats)

/**
 * Extract an OCI layer onto a directory, never touching anything outside it.
 * The whole stream is verified (gzip trailers, zstd checksums, the tar's
 * end-of-archive blocks); each file is written to a temporary and linked
 * into place once complete; whiteouts and opaque whiteouts are honoured.
 *
 * @param layer_fd
 *         The layer: tar, tar+gzip or tar+zstd, detected from the bytes;
 *         read sequentially, not closed.
 * @param root
 *         The directory to extract onto.
 * @param opts
 *         The options, or NULL for the defaults.
 * @param[out] stats
 *         NULL, or filled with what was done (also on failure);
 *         stats->struct_size must be set (LS_APPLY_STATS_INIT).
 * @param[out] err
 *         Filled on failure, naming the refused entry.
 * @return
 *         0, or a negative errno-style code; the entries before the refused
 *         one stay applied.
 */
LS_API int ls_apply(int layer_fd, const char *root, const struct ls_apply_options *opts,
		    struct ls_apply_stats *stats, struct ls_error *err);

/* ---- names -------------------------------------------------------------- */

/**
 * @return
 *         The name of a mode ("time", "redo" or "full"), a static string.
 */
LS_API const char *ls_mode_name(enum ls_mode mode);

/**
 * Parse a mode's name.
 *
 * @param s
 *         "time", "redo" or "full".
 * @param[out] out
 *         Receives the mode.
 * @return
 *         0, or -EINVAL for any other string (out untouched).
 */
LS_API int ls_mode_parse(const char *s, enum ls_mode *out);

#ifdef __cplusplus
}
#endif

#endif
