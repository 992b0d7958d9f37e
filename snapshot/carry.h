/*
 * Carried runs: base entries that go into a new manifest unchanged, kept as
 * ranges of the base instead of copies.
 *
 * A walk that carries most of the tree over (--only, --upper, and the
 * subtrees --ignore-errors and the ignore list keep) records what it walked
 * in its own manifest and what it carried as runs: base records [from, to)
 * that belong, in walk order, just before the walk's record `at`.  The diff
 * skips a run in one step (it is the base, so nothing in it changed), and the
 * whole manifest is put together only when one is wanted: the cost of what
 * was carried is one sequential copy, not a copy, a sort order check and a
 * comparison per entry.
 */
#ifndef LS_CARRY_H
#define LS_CARRY_H

#include "manifest.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ls_carry_run {
	size_t at;        /* before this record of the walk's manifest (its n: after the last) */
	size_t from, to;  /* base records [from, to), in walk order */
};

struct ls_carry {
	struct ls_carry_run *runs;  /* in walk order: at, and from, never decrease */
	size_t n, cap;
	size_t entries;             /* base records in all runs */
	/* Carried entries were recorded through another mount: their devices
	 * are replaced when the manifest is put together (see remap_devs in
	 * walk.c).  Directories of dir_from take dir_to, other entries of
	 * other_from take other_to. */
	bool remap_dirs, remap_others;
	uint64_t dir_from, dir_to, other_from, other_to;
};

/** Records base records [from, to) as carried before record `at` of the
 *  walk's manifest, joining it to the last run when they touch.  Runs must
 *  come in walk order.  Returns 0 or -ENOMEM (c unchanged). */
int ls_carry_add(struct ls_carry *c, size_t at, size_t from, size_t to);

/** Takes base records [lo, hi) (a subtree that vanished after the walk) out
 *  of the runs placed at `at` in [at_from, at_to], splitting a run that
 *  holds more.  *dropped is the number taken out that are not sockets (what
 *  a diff counts as deleted).  Returns 0 or -ENOMEM (c unchanged). */
int ls_carry_cut(struct ls_carry *c, size_t at_from, size_t at_to, size_t lo, size_t hi, const ls_manifest *base,
		 size_t *dropped);

/** Puts the runs into m (a built manifest, whose records the runs' `at`
 *  indices refer to), in place: afterwards m holds every entry in walk order
 *  with devices remapped, and c has no runs.  Base records whose path is one
 *  of skip[0..n_skip) (the run's own outputs) are left out.  Pointers into m
 *  are invalid afterwards.  Returns 0, or -ENOMEM leaving m and c as they
 *  were. */
int ls_carry_merge(ls_manifest *m, struct ls_carry *c, const ls_manifest *base, const char *const *skip,
		   size_t n_skip, struct ls_error *err);

/** Takes base record b out of the runs and puts a copy of it (its device
 *  remapped as a merge would) into m at its place in walk order, so that it
 *  can be changed there; nothing when no run holds b.  A record whose path is
 *  one of skip[0..n_skip) (the run's outputs, which a merge leaves out) only
 *  leaves the runs.  Pointers into m are invalid afterwards.  Returns 0, or
 *  -ENOMEM leaving m and c as they were. */
int ls_carry_take(ls_manifest *m, struct ls_carry *c, const ls_manifest *base, size_t b, const char *const *skip,
		  size_t n_skip, struct ls_error *err);

/** Writes to fd the manifest that ls_carry_merge(m, c, base, skip, n_skip)
 *  would make of m, as a stream: nothing of it is held but a buffer, and m,
 *  c and base are not changed.  A regular file without a hash in a full m
 *  (a carried one: the base must be a full manifest) is refused with
 *  -EINVAL.  Returns 0 or negative; what was written to fd is then not a
 *  manifest. */
int ls_carry_write_fd(const ls_manifest *m, const struct ls_carry *c, const ls_manifest *base,
		      const char *const *skip, size_t n_skip, int fd, struct ls_error *err);

/** Frees the runs (c itself is the caller's) and zeroes c. */
void ls_carry_free(struct ls_carry *c);

#endif
