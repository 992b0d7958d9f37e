/*
 * Versioned API structs (layersnap.h "Versioned structs"): every options and
 * result struct starts with `size_t struct_size`, the sizeof the caller was
 * built with.  These helpers turn the caller's copy into the library's own version
 * and back, the way the kernel's copy_struct_from_user() does for openat2().
 */
#ifndef LS_SIZED_H
#define LS_SIZED_H

#include "layersnap.h"

#include <stddef.h>

/** Bytes of type up to and including member: a first version's size. */
#define LS_SIZE_TO(type, member) (offsetof(type, member) + sizeof(((type *)0)->member))

/** Copies the caller's struct src into dst (the library's version,
 *  dst_size bytes): src->struct_size bytes of it, the fields it lacks zeroed
 *  (their defaults), dst's own struct_size set to dst_size.  src NULL gives
 *  the defaults.  min_size is the end of the first version's last field,
 *  known the end of the last field this library knows: a newer caller's
 *  bytes from there on, tail padding included (a new bool can sit in it),
 *  must be zero.
 *  Returns 0, or -EINVAL (struct_size below min_size) or -E2BIG (a field this
 *  library does not know is set), with err naming what. */
int ls_sized_in(void *dst, size_t dst_size, size_t known, const void *src, size_t min_size, const char *what,
		struct ls_error *err);

/** ls_sized_in for the walk options, which also checks their string arrays
 *  (excludes, exclude_patterns, skip_paths): present when counted, no NULL
 *  element (-EINVAL). */
int ls_walk_options_in(struct ls_walk_options *dst, const struct ls_walk_options *src, const char *what,
		       struct ls_error *err);

/** ls_sized_in for the diff options (not their walk options), which also
 *  checks only_paths as ls_walk_options_in checks its arrays. */
int ls_diff_options_in(struct ls_diff_options *dst, const struct ls_diff_options *src, const char *what,
		       struct ls_error *err);

/** Checks a caller's result struct before it is filled: 0 (also for NULL),
 *  or -EINVAL when its struct_size is below min_size. */
int ls_sized_check_out(const void *dst, size_t min_size, const char *what, struct ls_error *err);

/** Copies the library's result src (src_size bytes) into the caller's dst,
 *  as many bytes as dst->struct_size holds, zeroing any tail this library
 *  does not know; dst->struct_size is kept.  dst may be NULL (nothing is
 *  done); otherwise it passed ls_sized_check_out. */
void ls_sized_out(void *dst, const void *src, size_t src_size);

#endif
