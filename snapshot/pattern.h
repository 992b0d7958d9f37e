/*
 * Exclude patterns with gitignore's rules (gitignore(5)), matched by the
 * walker against each entry's path relative to ROOT:
 *
 *   - `*` matches any run of bytes but '/', `?` one byte but '/', `[...]` one
 *     byte of a set (ranges, `!` or `^` to negate, `[:alpha:]`-style
 *     classes), `\` makes the next byte literal;
 *   - `**` as a whole component: "**" then '/' at the start matches in
 *     every directory, '/' then "**" at the end everything inside, and
 *     between two slashes zero or more directories; anywhere else it is `*`;
 *   - a '/' at the start or in the middle anchors the pattern at ROOT (it
 *     matches the whole path); without one it matches the entry's name at
 *     any depth; a trailing '/' matches directories only;
 *   - a leading `!` re-includes what an earlier pattern excluded; the last
 *     pattern that matches decides;
 *   - trailing spaces are dropped unless escaped (`\ `); `\!` and `\#` start
 *     a pattern with a literal '!' or '#'.
 *
 * An excluded directory is never entered, so (as in git) nothing below it
 * can be re-included.
 */
#ifndef LS_PATTERN_H
#define LS_PATTERN_H

#include "layersnap.h"

#include <stdbool.h>
#include <stddef.h>

struct ls_patterns;

/** Compiles patterns[0..n) (each one gitignore line) in this order.
 *  Returns 0 and *out (NULL when n is 0), or -EINVAL naming a pattern that
 *  is empty or a comment (nothing to match once its spaces are dropped), or
 *  -ENOMEM. */
int ls_patterns_compile(const char *const *patterns, size_t n, struct ls_patterns **out,
			struct ls_error *err);

/** Whether the entry at path (len bytes, relative to ROOT, no leading or
 *  trailing '/') is excluded; is_dir: it is a directory.  Marks the deciding
 *  pattern as used (safe from several threads).  p may be NULL (false). */
bool ls_patterns_exclude(struct ls_patterns *p, const char *path, size_t len, bool is_dir);

/** The number of compiled patterns. */
size_t ls_patterns_count(const struct ls_patterns *p);

/** Whether pattern i decided any entry since it was compiled. */
bool ls_patterns_used(const struct ls_patterns *p, size_t i);

/** The text of pattern i, as given. */
const char *ls_patterns_text(const struct ls_patterns *p, size_t i);

/** Frees p (NULL is allowed). */
void ls_patterns_free(struct ls_patterns *p);

/** wildmatch with gitignore's path rules (see above): whether text matches
 *  the glob pattern; '/' is only matched by '/' and by `**`.  For tests. */
bool ls_glob_match(const char *pattern, const char *text);

#endif
