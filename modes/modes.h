/*
 * Snapshot modes: which fields a mode records and compares (DESIGN.md table).
 * Every mode detects added and deleted paths and type changes; each mode's
 * file (time.c, redo.c, full.c) only says which other fields count.
 */
#ifndef LS_MODES_H
#define LS_MODES_H

#include "layersnap.h"
#include "manifest.h"

enum ls_field {
	LS_F_MTIME = 1u << 0,     /* mtime in ns */
	LS_F_SIZE = 1u << 1,
	LS_F_PERM = 1u << 2,      /* permission, suid, sgid, sticky */
	LS_F_OWNER = 1u << 3,     /* uid, gid */
	LS_F_TARGET = 1u << 4,    /* symlink target, device numbers */
	LS_F_HASH = 1u << 5,      /* XXH3-128 of a regular file's content */
	LS_F_XATTRS = 1u << 6,    /* recorded xattrs (per --xattrs) */
};

struct ls_mode_ops {
	enum ls_mode mode;
	const char *name;
	unsigned int fields;      /* fields recorded and compared */
};

extern const struct ls_mode_ops ls_mode_time;
extern const struct ls_mode_ops ls_mode_redo;
extern const struct ls_mode_ops ls_mode_full;

/** The table for a mode (never NULL for a valid mode). */
const struct ls_mode_ops *ls_mode_ops_of(enum ls_mode mode);

/* How mtimes are compared: in nanoseconds, in whole seconds, or as a layer
 * written with a source date epoch keeps them (whole seconds, a later one
 * counting as the epoch: layer.c's clamp). */
struct ls_mtime_rule {
	bool seconds;
	bool have_epoch;          /* implies seconds */
	int64_t epoch;            /* seconds since 1970 */
};

/** Which of ops->fields differ between a (in ma) and b (in mb); the type is
 *  not looked at (callers check it first).  Mtimes are compared as mt says
 *  (NULL: in nanoseconds), both sides the same way.  A hash counts as
 *  differing when either side has none.  Returns the set of differing
 *  LS_F_* bits. */
unsigned int ls_mode_diff_fields_rule(const struct ls_mode_ops *ops, const ls_manifest *ma,
				      const struct ls_rec *a, const ls_manifest *mb, const struct ls_rec *b,
				      const struct ls_mtime_rule *mt);

/** ls_mode_diff_fields_rule() with mtimes in whole seconds (mtime_seconds)
 *  or in nanoseconds. */
unsigned int ls_mode_diff_fields(const struct ls_mode_ops *ops, const ls_manifest *ma,
				 const struct ls_rec *a, const ls_manifest *mb, const struct ls_rec *b,
				 bool mtime_seconds);

#endif
