/*
 * The walker: records ROOT into a manifest in walk order (depth first,
 * children sorted by name bytes), never following symlinks.
 *
 * Directories are read with getdents64 into a 64 KiB buffer and their
 * children statx'ed either on the task pool (plain syscalls on worker threads)
 * or through io_uring, per --io (see ioq.h).  In full mode, regular files are
 * hashed unless the stat cache against `base` proves the recorded hash still
 * good; with defer_changed, files whose metadata already differ from base
 * (or that are new) are left unhashed (no LS_REC_HASHED) for the caller, who
 * reads them anyway to write the layer.
 */
#ifndef LS_WALK_H
#define LS_WALK_H

#include "manifest.h"

struct ls_carry;

struct ls_walk_params {
	const struct ls_walk_options *opts;
	const ls_manifest *base;          /* stat cache and --ignore-errors carry-over; may be NULL */
	bool defer_changed;
	/* No xattrs read, whatever the mode and policy (the manifest keeps the
	 * policy, its records none): the caller reads them itself. */
	bool defer_xattrs;
	const char *const *skip_paths;    /* relative paths never recorded (outputs inside ROOT) */
	size_t n_skip;
	/* --only (needs base): only these paths (each a file or a whole
	 * subtree) are walked, the directories on the way to them statx'ed;
	 * everything else is the base's, carried over unchanged.  A listed
	 * file's hard links elsewhere are statx'ed again.  The new manifest's
	 * scan start is the base's, so that what was racy in it stays racy. */
	const char *const *only;
	size_t n_only;
	/* With only: directories to statx and compare, not descended (their
	 * other contents the base's): diff --upper's upper directories. */
	const char *const *only_dirs;
	size_t n_only_dirs;
	bool only_always;                 /* the same with no paths at all: nothing changed */
	/* With only: the base was recorded through another mount (overlay
	 * numbers devices per mount): carried entries take the devices the
	 * walk sees now, one for directories and one for the rest; a base
	 * with several of either is refused. */
	bool remap_dev;
	/* Needs base: when set, base entries carried over unchanged (--only,
	 * --upper, --ignore-errors, the ignore list) are recorded here as runs
	 * instead of copied into the new manifest, which then holds only what
	 * was walked; ls_carry_merge puts them together (carry.h).  The
	 * caller frees it, also on failure. */
	struct ls_carry *carry;
};

/** Walks root.  Returns 0 and *out (a new manifest whose settings are taken
 *  from opts), or a negative code with err naming the path. */
int ls_walk(const char *root, const struct ls_walk_params *params, ls_manifest **out,
	    struct ls_error *err);

/** True when the stat cache may serve rec's hash for a file now described by
 *  cur: same ino, size, mtime, ctime and mode (not st_dev: overlay mounts
 *  renumber devices), and both timestamps before racy_from_ns, the base
 *  scan's start less ls_racy_window_ns (see the racy rule in walk.c). */
bool ls_stat_cache_hit(const struct ls_rec *rec, const struct ls_rec *cur, int64_t racy_from_ns);

/** Ticks of the coarse clock in the racy window. */
#define LS_RACY_TICKS 2

/** How far before the base scan's start a timestamp must lie to be safely
 *  before it: the file system's granularity plus LS_RACY_TICKS ticks of the
 *  coarse clock (clock_getres(CLOCK_REALTIME_COARSE)), in nanoseconds. */
int64_t ls_racy_window_ns(int64_t granularity_ns, int64_t tick_ns);

/** The timestamp granularity of fd's file system, which no call reports:
 *  1 ns for ext4, xfs, btrfs, tmpfs and overlayfs (by statfs f_type), one
 *  second for any other. */
int64_t ls_fs_granularity_ns(int fd);

/** A write stamps a file when it starts, then copies its bytes: one that
 *  began before we looked can still be running while we read, with nothing
 *  left to move the timestamps.  Files whose ctime is within this of now are
 *  read twice and must give the same bytes. */
#define LS_WRITE_IN_FLIGHT_NS 1000000000LL

/** True when ctime_ns (CLOCK_REALTIME nanoseconds) is within
 *  LS_WRITE_IN_FLIGHT_NS of now. */
bool ls_stamped_recently(int64_t ctime_ns);

#endif
