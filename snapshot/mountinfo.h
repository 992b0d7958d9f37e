/*
 * /proc/self/mountinfo, read one line at a time (proc(5)):
 *
 *   id parent major:minor root MOUNT-POINT options [tags...] - FSTYPE SOURCE SUPER-OPTIONS
 *
 * The kernel writes space, tab, newline and backslash in a path as \ooo; in
 * the super options also the comma that separates them, so an option is
 * unescaped after the options are split (ls_mountinfo_unescape).
 */
#ifndef LS_MOUNTINFO_H
#define LS_MOUNTINFO_H

/** One line, its fields pointing into the line it was parsed from. */
struct ls_mountinfo {
	char *mount_point;      /**< unescaped */
	char *fstype;           /**< NULL when the line has no " - " part */
	char *super_options;    /**< as written (escaped), NULL as fstype */
};

/** Parses line (NUL-terminated, a trailing newline allowed) in place into
 *  *m.  Returns 0, or -EINVAL when it has fewer than five fields. */
int ls_mountinfo_parse(char *line, struct ls_mountinfo *m);

/** Undoes the kernel's \ooo escapes of s, in place. */
void ls_mountinfo_unescape(char *s);

/** Calls fn(&m, ctx) for every line of /proc/self/mountinfo, in order (a
 *  line it cannot parse is passed over), until fn returns non-zero.
 *  Returns what fn returned, 0 at the end, or -errno when the file cannot
 *  be opened or read (with nothing else said: the caller names it). */
int ls_mountinfo_each(int (*fn)(const struct ls_mountinfo *m, void *ctx), void *ctx);

#endif
