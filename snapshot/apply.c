/*
 * layersnap apply: extracts an OCI layer onto a directory (DESIGN.md "Apply").
 *
 * Safety model: ROOT is opened once.  Every entry's parent directory is
 * resolved beneath it with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS) (or, on kernels without openat2, an equivalent walk
 * of openat(O_PATH | O_NOFOLLOW) one component at a time), and the last
 * component is only touched through *at() calls that do not follow it.  Paths
 * with "..", absolute paths, paths through a symlink (an old one or one made
 * earlier in the layer) and duplicate entries are refused before anything of
 * that entry is written; entries applied before stay applied.
 *
 * Whiteouts follow the OCI image spec: they hide what lower layers put there,
 * never what this layer made.  The layer's own paths (and their ancestors) are
 * kept in a set; an explicit whiteout `DIR/.wh.NAME` removes DIR/NAME unless the
 * layer made it, and an opaque whiteout `DIR/.wh..wh..opq` removes every child
 * of DIR the layer did not make (looking inside directories the layer made).
 *
 * Metadata per entry: owner, mode, xattrs, times.  Directory times (and, when
 * not root, a directory mode that would lock us out) are applied at the end,
 * deepest first, to directories that are still the ones the layer made.  A
 * directory the layer changes without naming it (a new child, a whiteout)
 * gets its old mtime back: had its mtime changed, the layer would name it.
 * xattrs that cannot be set (file system, privileges) are a warning once,
 * then verbose notes.
 *
 * Statistics: entries counts every tar entry read, whiteouts the explicit and
 * opaque whiteouts among them, skipped the entries not applied (device nodes
 * when not root, AUFS metadata).
 *
 * Hostile layers: the blob is decompressed and verified by decompress.c and
 * libarchive only parses raw tar.  The stream must end with the two zero
 * blocks (more zeros may follow, nothing else) and be read to its end, so
 * every gzip trailer and zstd checksum is checked; a layer cut at an entry
 * boundary is refused.  A header libarchive could only read in part (its
 * warnings) is refused, as are ids that cannot be represented ((uid_t)-1)
 * and file data outside the entry's size, out of order, or not ending where
 * the entry's headers (read again from the stream) say its stored data ends
 * (a sparse map that lies).  Each file is written to an O_TMPFILE (or, where there is
 * none, `.NAME.layersnap-tmp.XXXXXX`, which walks skip) and linked into place
 * only when complete, so a failure or a signal leaves no partial file under
 * its final name.  Not root, setuid and setgid bits are dropped (the file
 * would run with the invoking user's ids) unless keep_setid says otherwise.
 * Checks that come at the end of a stream (a gzip trailer, the end blocks)
 * refuse the layer after the entries before them were applied.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "layersnap.h"
#include "decompress.h"
#include "error.h"
#include "path.h"
#include "record.h"
#include "sized.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "xxh.h"

#define WH_PREFIX ".wh."
#define WH_META_PREFIX ".wh..wh."
#define WH_OPAQUE ".wh..wh..opq"
#define SHOWN_MAX 400   /* bytes of an entry name quoted in a message */
#define TAR_BLOCK 512
#define TEMP_MARK ".layersnap-tmp."
#define TEMP_SUFFIX 6
#define TEMP_TRIES 100

/* ---- string sets -------------------------------------------------------- */

/* Open-addressing hash map of owned strings to indexes (or a plain set). */
struct pathset {
	char **keys;
	size_t *vals;
	size_t cap;   /* power of two, or 0 */
	size_t len;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;   /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h ^ (h >> 29);
}

static size_t pathset_slot(char *const *keys, size_t cap, const char *key)
{
	size_t i = (size_t)hash_str(key) & (cap - 1);
	while (keys[i] && strcmp(keys[i], key) != 0)
		i = (i + 1) & (cap - 1);
	return i;
}

/* True when key is present; its value goes to *val (if not NULL). */
static bool pathset_get(const struct pathset *s, const char *key, size_t *val)
{
	if (!s->cap)
		return false;
	size_t i = pathset_slot(s->keys, s->cap, key);
	if (s->keys[i] && val)
		*val = s->vals[i];
	return s->keys[i] != NULL;
}

static bool pathset_has(const struct pathset *s, const char *key)
{
	return pathset_get(s, key, NULL);
}

static int pathset_grow(struct pathset *s)
{
	size_t cap = s->cap ? s->cap * 2 : 64;
	char **keys = calloc(cap, sizeof(*keys));
	size_t *vals = calloc(cap, sizeof(*vals));
	if (!keys || !vals) {
		free(keys);
		free(vals);
		return -ENOMEM;
	}
	for (size_t i = 0; i < s->cap; i++) {
		if (!s->keys[i])
			continue;
		size_t j = pathset_slot(keys, cap, s->keys[i]);
		keys[j] = s->keys[i];
		vals[j] = s->vals[i];
	}
	free(s->keys);
	free(s->vals);
	s->keys = keys;
	s->vals = vals;
	s->cap = cap;
	return 0;
}

/* Adds a copy of key with val: 1 if it was new, 0 if present (value kept),
 * -ENOMEM. */
static int pathset_put(struct pathset *s, const char *key, size_t val)
{
	if ((s->len + 1) * 2 > s->cap && pathset_grow(s) < 0)
		return -ENOMEM;
	size_t i = pathset_slot(s->keys, s->cap, key);
	if (s->keys[i])
		return 0;
	if (!(s->keys[i] = strdup(key)))
		return -ENOMEM;
	s->vals[i] = val;
	s->len++;
	return 1;
}

static int pathset_add(struct pathset *s, const char *key)
{
	return pathset_put(s, key, 0);
}

static void pathset_free(struct pathset *s)
{
	for (size_t i = 0; i < s->cap; i++)
		free(s->keys[i]);
	free(s->keys);
	free(s->vals);
	*s = (struct pathset){0};
}

/* ---- context ------------------------------------------------------------ */

/* A directory whose times (and maybe mode) are set at the end: a directory
 * of the layer, or one the layer changed without naming it (its old times
 * are put back). */
struct dir_fix {
	char *path;                 /* normalised; "" is ROOT */
	struct timespec times[2];   /* atime, mtime */
	dev_t dev;
	ino_t ino;
	mode_t mode;                /* final permission bits, when fix_mode */
	bool fix_mode;
	size_t depth, order;
};

/* The raw tar stream handed to libarchive, and what the checks need: the
 * last pieces handed out (still valid, see LS_DECOMP_KEEP), to read an
 * entry's headers as they are, and where the last non-zero byte is. */
struct layer_reader {
	struct ls_decomp *d;
	bool failed;                /* err holds the reader's failure */
	struct ls_error err;
	uint64_t total;             /* tar bytes handed out */
	uint64_t data_end;          /* offset just past the last non-zero byte */
	struct {
		uint64_t off;
		const unsigned char *p;
		size_t n;
	} seen[LS_DECOMP_KEEP];     /* the latest pieces, in turn */
	unsigned turn;
};

struct apply_ctx {
	int rootfd;
	bool privileged;
	bool warned_unpriv;
	bool warned_xattr;
	bool warned_setid;
	bool no_tmpfile;            /* named temporaries only (asked, or /proc unusable) */
	bool tmpfile_checked;       /* an O_TMPFILE was seen to link through /proc */
	bool no_empty_path;         /* linkat(AT_EMPTY_PATH) refused: link through /proc */
	struct layer_reader rd;
	uid_t euid;
	gid_t egid;
	const struct ls_apply_options *opts;
	struct ls_apply_stats *stats;
	struct ls_error *err;
	struct pathset seen;        /* every entry path of the layer */
	struct pathset keep;        /* paths the layer made, and their ancestors */
	struct pathset fixes;       /* path -> index in dirs */
	struct dir_fix *dirs;
	size_t n_dirs, cap_dirs;
	XXH3_state_t *xxh;          /* with opts->record: the bytes of the file being written */
};

/* One tar entry being applied. */
struct entry {
	struct archive_entry *ae;
	int64_t header_pos;         /* stream offset of its first header */
	char shown[SHOWN_MAX + 8];  /* the raw name, made printable, for messages */
	char *path;                 /* normalised: no "", ".", ".." components; "" = ROOT */
	char *dir;                  /* parent of path ("" = ROOT) */
	const char *name;           /* last component of path (inside path) */
};

/* Where an entry's metadata goes. */
struct target {
	int dirfd;                  /* parent directory (O_PATH) */
	const char *name;           /* last component */
	int fd;                     /* the file or directory opened for I/O, or -1 */
	mode_t type;                /* AE_IF* */
};

#define log_msg(c, verbose, ...) \
	ls_log((c)->opts ? (c)->opts->log : NULL, (c)->opts ? (c)->opts->log_ctx : NULL, verbose, __VA_ARGS__)

static void warn_unprivileged(struct apply_ctx *c)
{
	if (c->warned_unpriv)
		return;
	c->warned_unpriv = true;
	log_msg(c, 0, "not running as root: file owners and device nodes are not restored");
}

/* ---- names -------------------------------------------------------------- */

/* Copies a raw name into out for a one-line message: bytes below 0x20 and
 * 0x7f as \ooo, a backslash doubled, cut after SHOWN_MAX bytes. */
static void show_name(char *out, const char *raw)
{
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)raw; *p; p++) {
		if (o >= SHOWN_MAX) {
			memcpy(out + o, "...", 4);
			return;
		}
		if (*p == '\\') {
			out[o++] = '\\';
			out[o++] = '\\';
		} else if (*p < 0x20 || *p == 0x7f) {
			o += (size_t)snprintf(out + o, 5, "\\%03o", *p);
		} else {
			out[o++] = (char)*p;
		}
	}
	out[o] = '\0';
}

/* Normalises a tar path: drops a leading "./", empty and "." components and a
 * trailing "/".  Returns 0 and *out ("" for ROOT), -EXDEV for an absolute path
 * or a ".." component, or -ENOMEM. */
static int normalise(const char *raw, char **out)
{
	*out = strdup(raw);
	if (!*out)
		return -ENOMEM;
	ssize_t n = ls_path_normalize(*out, LS_NORM_STRICT);
	if (n < 0) {
		free(*out);
		*out = NULL;
		return (int)n;
	}
	return 0;
}

/* Splits a normalised path into a new parent string and a pointer to its
 * last component. */
static int split_path(char *path, char **dir, const char **name)
{
	char *slash = strrchr(path, '/');
	*name = slash ? slash + 1 : path;
	*dir = slash ? strndup(path, (size_t)(slash - path)) : strdup("");
	return *dir ? 0 : -ENOMEM;
}

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- resolving paths beneath ROOT --------------------------------------- */

/* Opens directory path (relative, normalised; "" = dirfd itself) beneath
 * dirfd as O_PATH, refusing symlinks anywhere.  Returns an fd or -errno
 * (-ELOOP: a symlink on the way; -EXDEV: escapes). */
static int open_dir_beneath(int dirfd, const char *path)
{
	return ls_open_beneath(dirfd, path, O_PATH | O_DIRECTORY);
}

static int keep_dir_times(struct apply_ctx *c, const char *path, int fd);

/* Makes directory comp in cur (the directory prefix_len bytes of path name). */
static int make_missing_dir(struct apply_ctx *c, const char *path, size_t prefix_len, int cur,
			    const char *comp)
{
	char *prefix = strndup(path, prefix_len);
	int r = prefix ? keep_dir_times(c, prefix, cur) : -ENOMEM;
	free(prefix);
	if (r < 0)
		return r;
	if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST)
		return -errno;
	return open_dir_beneath(cur, comp);
}

/* Like open_beneath from ROOT; with create, missing directories are made
 * (mode 0755) one component at a time. */
static int resolve_dir(struct apply_ctx *c, const char *path, bool create)
{
	int fd = open_dir_beneath(c->rootfd, path);
	if (fd != -ENOENT || !create)
		return fd;
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	int cur = open_dir_beneath(c->rootfd, "");
	char *save = NULL;
	for (char *comp = strtok_r(copy, "/", &save); comp && cur >= 0;
	     comp = strtok_r(NULL, "/", &save)) {
		int next = open_dir_beneath(cur, comp);
		if (next == -ENOENT)
			next = make_missing_dir(c, path, comp > copy ? (size_t)(comp - copy - 1) : 0,
						cur, comp);
		close(cur);
		cur = next;
	}
	free(copy);
	return cur;
}

/* Turns a failed resolve of the entry's parent into the entry's error. */
static int resolve_fail(struct apply_ctx *c, const struct entry *e, int r)
{
	switch (-r) {
	case ELOOP:
		return ls_fail(c->err, ELOOP, "%s: path goes through a symlink", e->shown);
	case EXDEV:
		return ls_fail(c->err, EXDEV, "%s: path escapes the root", e->shown);
	case ENOTDIR:
		return ls_fail(c->err, ENOTDIR, "%s: a parent is not a directory", e->shown);
	default:
		return ls_fail_errno(c->err, -r, "%s: cannot open parent directory", e->shown);
	}
}

/* ---- removing ----------------------------------------------------------- */

/* Reads the names in directory fd (not closed) into a NULL-terminated array. */
static int list_dir(int fd, char ***out)
{
	*out = NULL;
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	DIR *d = fdopendir(dfd);
	if (!d) {
		int e = errno;
		close(dfd);
		return -e;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			r = -errno;
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n + 2 > cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **nn = realloc(names, ncap * sizeof(*nn));
			if (!nn) {
				r = -ENOMEM;
				break;
			}
			names = nn;
			cap = ncap;
		}
		if (!(names[n] = strdup(de->d_name))) {
			r = -ENOMEM;
			break;
		}
		names[++n] = NULL;
	}
	closedir(d);
	if (r < 0 || !names) {
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
		return r < 0 ? r : 0;
	}
	*out = names;
	return 0;
}

static void free_names(char **names)
{
	for (size_t i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
}

/* Removes name in dirfd, recursively if it is a directory; never follows a
 * symlink.  An absent name is not an error.  Returns 0 or -errno. */
static int remove_tree(int dirfd, const char *name)
{
	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR)
		return -errno;
	int fd = openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	char **names;
	int r = list_dir(fd, &names);
	for (size_t i = 0; r == 0 && names && names[i]; i++)
		r = remove_tree(fd, names[i]);
	free_names(names);
	close(fd);
	if (r == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		r = -errno;
	return r;
}

static int prune(struct apply_ctx *c, int dirfd, const char *name, const char *path);

/* Prunes every child of directory name in dirfd (path is its path). */
static int prune_children(struct apply_ctx *c, int dirfd, const char *name, const char *path)
{
	int fd = openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return (errno == ENOTDIR || errno == ELOOP || errno == ENOENT) ? 0 : -errno;
	char **names;
	int r = list_dir(fd, &names);
	for (size_t i = 0; r == 0 && names && names[i]; i++) {
		char *child = ls_path_join_new(path, names[i]);
		r = child ? prune(c, fd, names[i], child) : -ENOMEM;
		free(child);
	}
	free_names(names);
	close(fd);
	return r;
}

/* Removes what lower layers left at path (name in dirfd): all of it when the
 * layer made nothing there, else what is inside it that the layer did not make. */
static int prune(struct apply_ctx *c, int dirfd, const char *name, const char *path)
{
	if (!pathset_has(&c->keep, path))
		return remove_tree(dirfd, name);
	return prune_children(c, dirfd, name, path);
}

/* Clears the way for a new non-directory at name: removes whatever is there. */
static int clear_name(int dirfd, const char *name)
{
	return remove_tree(dirfd, name);
}

/* ---- metadata ----------------------------------------------------------- */

static int set_owner(struct apply_ctx *c, const struct entry *e, const struct target *t)
{
	uid_t uid = (uid_t)archive_entry_uid(e->ae);
	gid_t gid = (gid_t)archive_entry_gid(e->ae);
	if (!c->privileged) {
		if (uid != c->euid || gid != c->egid)
			warn_unprivileged(c);
		return 0;
	}
	int r = t->fd >= 0 ? fchown(t->fd, uid, gid)
			   : fchownat(t->dirfd, t->name, uid, gid, AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		return ls_fail_errno(c->err, errno, "%s: cannot set owner %lu:%lu", e->shown,
				     (unsigned long)uid, (unsigned long)gid);
	return 0;
}

static int set_mode(struct apply_ctx *c, const struct entry *e, const struct target *t, mode_t perm)
{
	if (t->type == AE_IFLNK)
		return 0;   /* Linux symlinks have no mode of their own */
	int r = t->fd >= 0 ? fchmod(t->fd, perm)
			   : fchmodat(t->dirfd, t->name, perm, AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		return ls_fail_errno(c->err, errno, "%s: cannot set mode %04o", e->shown,
				     (unsigned)perm);
	return 0;
}

/* Sets one xattr: through the open fd, or through /proc/self/fd of an O_PATH
 * descriptor of the entry (which reaches the inode itself, never following a
 * symlink).  Returns 0 or -errno. */
static int put_xattr(const struct target *t, int *pathfd, const char *name, const void *value,
		     size_t size)
{
	if (t->fd >= 0)
		return fsetxattr(t->fd, name, value, size, 0) < 0 ? -errno : 0;
	if (*pathfd < 0) {
		*pathfd = openat(t->dirfd, t->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (*pathfd < 0)
			return -errno;
	}
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", *pathfd);
	return setxattr(proc, name, value, size, 0) < 0 ? -errno : 0;
}

/* xattrs: failures are warnings (the first one) and verbose notes (the rest),
 * as file systems and privileges differ. */
static int set_xattrs(struct apply_ctx *c, const struct entry *e, const struct target *t)
{
	if (archive_entry_xattr_reset(e->ae) == 0)
		return 0;
	bool special = t->type != AE_IFREG && t->type != AE_IFDIR;
	int pathfd = -1;
	const char *name;
	const void *value;
	size_t size;
	while (archive_entry_xattr_next(e->ae, &name, &value, &size) == ARCHIVE_OK) {
		if (!name || !*name)
			continue;
		/* user.* is only allowed on regular files and directories */
		if (special && has_prefix(name, "user."))
			continue;
		int r = put_xattr(t, &pathfd, name, value, size);
		if (r == 0)
			continue;
		if (r == -ENOMEM) {
			if (pathfd >= 0)
				close(pathfd);
			return ls_fail_errno(c->err, ENOMEM, "%s: xattr %s", e->shown, name);
		}
		log_msg(c, c->warned_xattr, "%s: xattr %s not restored: %s", e->shown, name,
			strerror(-r));
		c->warned_xattr = true;
	}
	if (pathfd >= 0)
		close(pathfd);
	return 0;
}

static void entry_times(const struct entry *e, struct timespec ts[2])
{
	struct archive_entry *ae = e->ae;
	if (archive_entry_mtime_is_set(ae)) {
		ts[1].tv_sec = archive_entry_mtime(ae);
		ts[1].tv_nsec = archive_entry_mtime_nsec(ae);
	} else {
		ts[1].tv_sec = 0;
		ts[1].tv_nsec = UTIME_OMIT;
	}
	if (archive_entry_atime_is_set(ae)) {
		ts[0].tv_sec = archive_entry_atime(ae);
		ts[0].tv_nsec = archive_entry_atime_nsec(ae);
	} else {
		ts[0] = ts[1];
	}
}

static int set_times(struct apply_ctx *c, const struct entry *e, const struct target *t)
{
	struct timespec ts[2];
	entry_times(e, ts);
	int r = t->fd >= 0 ? futimens(t->fd, ts)
			   : utimensat(t->dirfd, t->name, ts, AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		return ls_fail_errno(c->err, errno, "%s: cannot set times", e->shown);
	return 0;
}

/* Owner, mode, xattrs and (unless a directory) times, in that order. */
static int set_metadata(struct apply_ctx *c, const struct entry *e, const struct target *t,
			mode_t perm)
{
	int r = set_owner(c, e, t);
	if (r == 0)
		r = set_mode(c, e, t, perm);
	if (r == 0)
		r = set_xattrs(c, e, t);
	if (r == 0 && t->type != AE_IFDIR)
		r = set_times(c, e, t);
	return r;
}

/* ---- directories' deferred times ----------------------------------------- */

/* The fix of path, added (with zero times) when there is none yet. */
static struct dir_fix *dir_fix_get(struct apply_ctx *c, const char *path, bool *fresh)
{
	size_t idx;
	*fresh = false;
	if (pathset_get(&c->fixes, path, &idx))
		return &c->dirs[idx];
	if (c->n_dirs == c->cap_dirs) {
		size_t cap = c->cap_dirs ? c->cap_dirs * 2 : 64;
		struct dir_fix *d = realloc(c->dirs, cap * sizeof(*d));
		if (!d)
			return NULL;
		c->dirs = d;
		c->cap_dirs = cap;
	}
	struct dir_fix *f = &c->dirs[c->n_dirs];
	*f = (struct dir_fix){ .order = c->n_dirs, .depth = *path ? 1 : 0 };
	if (!(f->path = strdup(path)))
		return NULL;
	if (pathset_put(&c->fixes, path, c->n_dirs) < 0) {
		free(f->path);
		return NULL;
	}
	for (const char *p = path; *p; p++)
		f->depth += *p == '/';
	c->n_dirs++;
	*fresh = true;
	return f;
}

/* A directory of the layer: its times (and mode, see make_dir) at the end. */
static int defer_dir(struct apply_ctx *c, const struct entry *e, int fd, mode_t perm, bool fix_mode)
{
	struct stat st;
	bool fresh;
	if (fstat(fd, &st) < 0)
		return ls_fail_errno(c->err, errno, "%s: stat", e->shown);
	struct dir_fix *f = dir_fix_get(c, e->path, &fresh);
	if (!f)
		return ls_fail_errno(c->err, ENOMEM, "%s", e->shown);
	entry_times(e, f->times);
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->mode = perm;
	f->fix_mode = fix_mode;
	return 0;
}

/* The layer is about to change directory path (open as fd) without naming
 * it, or before naming it: its current mtime is put back at the end unless
 * the layer's own entry for it says otherwise. */
static int keep_dir_times(struct apply_ctx *c, const char *path, int fd)
{
	struct stat st;
	bool fresh;
	if (fstat(fd, &st) < 0)
		return 0;
	struct dir_fix *f = dir_fix_get(c, path, &fresh);
	if (!f)
		return -ENOMEM;
	if (fresh) {
		f->times[0] = (struct timespec){ .tv_nsec = UTIME_OMIT };
		f->times[1] = st.st_mtim;
		f->dev = st.st_dev;
		f->ino = st.st_ino;
	}
	return 0;
}

static int cmp_dir_fix(const void *a, const void *b)
{
	const struct dir_fix *x = a, *y = b;
	if (x->depth != y->depth)
		return x->depth > y->depth ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Opens the directory of a fix if it is still the one the layer made. */
static int open_fixed_dir(struct apply_ctx *c, const struct dir_fix *f)
{
	int fd;
	if (!*f->path) {
		fd = openat(c->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		char *dir;
		const char *name;
		if (split_path(f->path, &dir, &name) < 0)
			return -ENOMEM;
		int pfd = open_dir_beneath(c->rootfd, dir);
		free(dir);
		if (pfd < 0)
			return pfd;
		fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(pfd);
	}
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_dev != f->dev || st.st_ino != f->ino) {
		close(fd);
		return -ENOENT;
	}
	return fd;
}

/* Sets the deferred directory times, deepest first.  Directories removed or
 * replaced since are skipped.  Returns 0 or the first error. */
static int finish_dirs(struct apply_ctx *c, struct ls_error *err)
{
	int ret = 0;
	if (c->n_dirs > 1)
		qsort(c->dirs, c->n_dirs, sizeof(*c->dirs), cmp_dir_fix);
	for (size_t i = 0; i < c->n_dirs; i++) {
		const struct dir_fix *f = &c->dirs[i];
		int fd = open_fixed_dir(c, f);
		if (fd < 0)
			continue;
		const char *what = NULL;
		if (f->fix_mode && fchmod(fd, f->mode) < 0)
			what = "cannot set mode";
		else if (futimens(fd, f->times) < 0)
			what = "cannot set times";
		if (what && ret == 0) {
			char shown[SHOWN_MAX + 8];
			int e = errno;
			show_name(shown, *f->path ? f->path : ".");
			ret = ls_fail_errno(err, e, "%s: %s", shown, what);
		}
		close(fd);
	}
	return ret;
}

/* ---- making entries ----------------------------------------------------- */

static int remember_made(struct apply_ctx *c, const struct entry *e)
{
	/* the path and every ancestor: an opaque whiteout looks inside them */
	char *p = strdup(e->path);
	if (!p)
		return ls_fail_errno(c->err, ENOMEM, "%s", e->shown);
	int r = 0;
	for (;;) {
		r = pathset_add(&c->keep, p);
		char *slash = strrchr(p, '/');
		if (r <= 0 || !slash)
			break;   /* an ancestor already present has its own ancestors */
		*slash = '\0';
	}
	free(p);
	return r < 0 ? ls_fail_errno(c->err, ENOMEM, "%s", e->shown) : 0;
}

/* Directory: kept when it exists (its content stays), else made.  Owner,
 * mode and xattrs now, times at the end.  Not root, a mode without u+wx is
 * applied at the end too, so the layer can still fill the directory. */
static int make_dir(struct apply_ctx *c, const struct entry *e, int dirfd, const char *name)
{
	struct stat st;
	bool is_root = !*e->path;
	if (!is_root) {
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode) &&
		    unlinkat(dirfd, name, 0) < 0)
			return ls_fail_errno(c->err, errno, "%s: cannot remove the old entry", e->shown);
		if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
			return ls_fail_errno(c->err, errno, "%s: cannot make directory", e->shown);
	}
	int fd = openat(dirfd, is_root ? "." : name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return ls_fail_errno(c->err, errno, "%s: cannot open directory", e->shown);
	mode_t perm = archive_entry_perm(e->ae) & 07777;
	bool fix_mode = !c->privileged && (perm & 0300) != 0300;
	struct target t = { dirfd, name, fd, AE_IFDIR };
	int r = set_metadata(c, e, &t, fix_mode ? perm | 0700 : perm);
	if (r == 0)
		r = defer_dir(c, e, fd, perm, fix_mode);
	close(fd);
	return r;
}

static int pwrite_all(int fd, const char *buf, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, buf, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* ---- the raw stream ----------------------------------------------------- */

/* Counts the bytes handed to libarchive and where the last non-zero one is. */
static void reader_note(struct layer_reader *rd, const void *buf, size_t n)
{
	const unsigned char *p = buf;
	size_t i = n;
	/* word at a time while the tail is zero: cheap on long zero runs */
	while (i >= 8) {
		uint64_t w;
		memcpy(&w, p + i - 8, 8);
		if (w)
			break;
		i -= 8;
	}
	while (i > 0 && !p[i - 1])
		i--;
	if (i > 0)
		rd->data_end = rd->total + i;
	if (n > 0) {
		unsigned k = rd->turn++ % LS_DECOMP_KEEP;
		rd->seen[k].off = rd->total;
		rd->seen[k].p = p;
		rd->seen[k].n = n;
	}
	rd->total += n;
}

/* Copies stream bytes [off, off + len) into dst from the pieces still
 * valid.  Returns false when some are gone. */
static bool reader_look_back(const struct layer_reader *rd, uint64_t off, size_t len, void *dst)
{
	unsigned char *out = dst;
	while (len > 0) {
		size_t k;
		for (k = 0; k < LS_DECOMP_KEEP; k++)
			if (rd->seen[k].p && off >= rd->seen[k].off && off - rd->seen[k].off < rd->seen[k].n)
				break;
		if (k == LS_DECOMP_KEEP)
			return false;
		size_t at = (size_t)(off - rd->seen[k].off);
		size_t take = rd->seen[k].n - at < len ? rd->seen[k].n - at : len;
		memcpy(out, rd->seen[k].p + at, take);
		out += take;
		off += take;
		len -= take;
	}
	return true;
}

/* A number in a tar header field: octal (after blanks, up to the first
 * other byte) or, with the high bit of its first byte set, base-256.
 * Returns -1 for a negative or too large one. */
static int64_t tar_number(const unsigned char *p, size_t n)
{
	uint64_t v = 0;
	if (p[0] & 0x80) {
		if (p[0] & 0x40)
			return -1;
		v = p[0] & 0x3f;
		for (size_t i = 1; i < n; i++) {
			if (v > (uint64_t)INT64_MAX >> 8)
				return -1;
			v = v << 8 | p[i];
		}
		return (int64_t)v;
	}
	size_t i = 0;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	for (; i < n && p[i] >= '0' && p[i] <= '7'; i++) {
		if (v > (uint64_t)INT64_MAX >> 3)
			return -1;
		v = v << 3 | (uint64_t)(p[i] - '0');
	}
	return (int64_t)v;
}

/* The last "size" record of a pax extended header body, or -1. */
static int64_t pax_size(const char *b, size_t n)
{
	int64_t size = -1;
	for (size_t i = 0; i < n;) {
		size_t len = 0, j = i;
		for (; j < n && b[j] >= '0' && b[j] <= '9' && len <= n; j++)
			len = len * 10 + (size_t)(b[j] - '0');
		if (j >= n || b[j] != ' ' || len == 0 || len > n - i)
			break;   /* libarchive warned about it: refused already */
		const char *rec = b + j + 1, *end = b + i + len - 1;   /* end: the '\n' */
		if (end - rec > 5 && !memcmp(rec, "size=", 5)) {
			int64_t v = 0;
			for (const char *q = rec + 5; q < end && *q >= '0' && *q <= '9'; q++)
				v = v > (INT64_MAX - 9) / 10 ? INT64_MAX : v * 10 + (*q - '0');
			size = v;
		}
		i += len;
	}
	return size;
}

#define TAR_ROUND(n) (((n) + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK)

/* Where a regular file's stored data ends by its own headers (read again
 * from the stream, from pos where libarchive began reading them): after the
 * main header and, for old GNU sparse files, its extension blocks, the
 * stored size (a pax "size" record or the size field) rounded up to a block.
 * libarchive 3.6.2 stops reading a sparse entry where its map ends, so a map
 * naming less than is stored would have the rest read as headers of entries
 * no other extractor sees.  Returns 0 and *end, or -E2BIG when the headers
 * are no longer at hand (more than the kept pieces). */
static int stored_end(const struct layer_reader *rd, int64_t pos, int64_t *end)
{
	unsigned char h[TAR_BLOCK];
	int64_t pax = -1;
	for (int depth = 0; depth < 64; depth++) {   /* libarchive allows 32 */
		if (pos < 0 || !reader_look_back(rd, (uint64_t)pos, TAR_BLOCK, h))
			return -E2BIG;
		int64_t size = tar_number(h + 124, 12);
		if (size < 0 || size > INT64_MAX / 2)
			return -EINVAL;
		pos += TAR_BLOCK;
		switch (h[156]) {
		case 'x': case 'X': {
			if (size > (int64_t)LS_DECOMP_KEEP * LS_DECOMP_CHUNK)
				return -E2BIG;   /* cannot be in the kept pieces */
			char *body = malloc((size_t)size + 1);
			if (!body)
				return -ENOMEM;
			bool ok = reader_look_back(rd, (uint64_t)pos, (size_t)size, body);
			int64_t v = ok ? pax_size(body, (size_t)size) : -1;
			free(body);
			if (!ok)
				return -E2BIG;
			if (v >= 0)
				pax = v;
		}
			/* fall through */
		case 'g': case 'L': case 'K': case 'A':
			pos += TAR_ROUND(size);
			continue;
		case 'V':
			continue;   /* libarchive reads no body */
		case 'S':
			/* isextended at 482 in the header, 504 in each extension */
			for (bool more = h[482] != 0; more; pos += TAR_BLOCK) {
				if (!reader_look_back(rd, (uint64_t)pos, TAR_BLOCK, h))
					return -E2BIG;
				more = h[504] != 0;
			}
			break;
		}
		*end = pos + TAR_ROUND(pax >= 0 ? pax : size);
		return 0;
	}
	return -EINVAL;
}

static const char *archive_why(struct archive *a)
{
	const char *why = archive_error_string(a);
	return why && *why ? why : "unreadable layer";
}

/* libarchive's failure, or the reader's when the reader is why it failed. */
static int archive_fail(struct apply_ctx *c, struct archive *a, const char *shown)
{
	const char *why = c->rd.failed ? c->rd.err.msg : archive_why(a);
	int code = c->rd.failed ? c->rd.err.code : archive_errno(a) > 0 ? archive_errno(a) : EIO;
	if (shown)
		return ls_fail(c->err, code, "%s: bad layer: %s", shown, why);
	return ls_fail(c->err, code, "bad layer: %s", why);
}

/* Copies the entry's data into fd, holes left as holes.  libarchive hands
 * data over at the offsets of the entry's sparse map as it read it, which is
 * not checked against the size (archive_entry's own copy of the map drops
 * the bad regions silently, and a map of one region from 0 reads as no map):
 * every block must lie within the size, after the previous one, the blocks
 * must add up to the map (or the size), and they must end where the
 * entry's stored data ends. */
/* n zero bytes into the hash: the holes of a sparse file. */
static void hash_zeros(XXH3_state_t *st, uint64_t n)
{
	static const unsigned char zeros[4096];
	for (; n > 0; n -= n < sizeof(zeros) ? n : sizeof(zeros))
		XXH3_128bits_update(st, zeros, n < sizeof(zeros) ? (size_t)n : sizeof(zeros));
}

static int copy_data(struct apply_ctx *c, struct archive *a, const struct entry *e, int fd,
		     int64_t stored)
{
	int64_t size = archive_entry_size_is_set(e->ae) ? archive_entry_size(e->ae) : 0;
	if (size < 0)
		return ls_fail(c->err, EINVAL, "%s: bad layer: negative size", e->shown);
	int64_t want = size;   /* data bytes the header or the map names */
	/* only walk a map reset counted: counting frees a map of one region */
	if (archive_entry_sparse_reset(e->ae) > 0) {
		la_int64_t off, len;
		want = 0;
		while (archive_entry_sparse_next(e->ae, &off, &len) == ARCHIVE_OK)
			want += len;   /* libarchive kept only regions within size */
	}
	int64_t end = 0, got = 0;
	if (c->xxh)
		XXH3_128bits_reset(c->xxh);
	for (;;) {
		const void *buf;
		size_t len;
		la_int64_t off;
		int ar = archive_read_data_block(a, &buf, &len, &off);
		if (ar == ARCHIVE_EOF)
			break;
		if (ar == ARCHIVE_WARN)
			log_msg(c, 0, "%s: %s", e->shown, archive_why(a));
		else if (ar != ARCHIVE_OK)
			return archive_fail(c, a, e->shown);
		if (off < 0)
			return ls_fail(c->err, EINVAL, "%s: bad layer: sparse map has a negative offset",
				       e->shown);
		if (off < end)
			return ls_fail(c->err, EINVAL, "%s: bad layer: sparse map regions overlap or are out of order",
				       e->shown);
		if ((uint64_t)len > (uint64_t)size || off > size - (int64_t)len)
			return ls_fail(c->err, EINVAL,
				       "%s: bad layer: data at offset %lld reaches past the size (%lld bytes)",
				       e->shown, (long long)off, (long long)size);
		int r = pwrite_all(fd, buf, len, (off_t)off);
		if (r < 0)
			return ls_fail_errno(c->err, -r, "%s: write", e->shown);
		if (c->xxh) {
			hash_zeros(c->xxh, (uint64_t)(off - end));  /* a hole reads as zeros */
			XXH3_128bits_update(c->xxh, buf, len);
		}
		end = off + (int64_t)len;
		got += (int64_t)len;
	}
	if (got != want)
		return ls_fail(c->err, EINVAL, "%s: bad layer: %lld bytes of data where the header names %lld",
			       e->shown, (long long)got, (long long)want);
	int64_t at = archive_filter_bytes(a, 0);
	if (at != stored)
		return ls_fail(c->err, EINVAL,
			       "%s: bad layer: sparse map and stored size disagree (data read to byte %lld, "
			       "stored to %lld)", e->shown, (long long)at, (long long)stored);
	if (size > end && ftruncate(fd, (off_t)size) < 0)
		return ls_fail_errno(c->err, errno, "%s: truncate", e->shown);
	if (c->xxh)
		hash_zeros(c->xxh, (uint64_t)(size - end));
	return 0;
}

/* A regular file's permission bits.  Not root, the file is ours whatever
 * its entry says, and setuid or setgid would run it with our ids. */
static mode_t file_perm(struct apply_ctx *c, const struct entry *e)
{
	mode_t perm = archive_entry_perm(e->ae) & 07777;
	if (c->privileged || (c->opts && c->opts->keep_setid) || !(perm & (S_ISUID | S_ISGID)))
		return perm;
	if (!c->warned_setid) {
		c->warned_setid = true;
		log_msg(c, 0, "not running as root: setuid and setgid bits are dropped "
			"(--keep-setid keeps them)");
	}
	log_msg(c, 1, "%s: setuid/setgid bits dropped", e->shown);
	return perm & ~(mode_t)(S_ISUID | S_ISGID);
}

/* ---- temporaries -------------------------------------------------------- */

/* A file being written: nameless (O_TMPFILE) or under name in its directory. */
struct tmpfile {
	int fd;
	char name[NAME_MAX + 1];    /* "" while nameless */
};

/* Sets tmp->name to `.NAME.layersnap-tmp.XXXXXX` (NAME cut to fit NAME_MAX):
 * the form walks leave out. */
static void temp_name(struct tmpfile *tmp, const char *name, unsigned try)
{
	static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
	unsigned char rnd[TEMP_SUFFIX];
	if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd)) {
		uint64_t x = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)tmp ^ try;
		for (size_t i = 0; i < sizeof(rnd); i++, x >>= 8)
			rnd[i] = (unsigned char)(x + i * 131 + try);
	}
	int room = NAME_MAX - 1 - (int)strlen(TEMP_MARK) - TEMP_SUFFIX;
	int n = snprintf(tmp->name, sizeof(tmp->name), ".%.*s" TEMP_MARK, room, name);
	for (size_t i = 0; i < TEMP_SUFFIX; i++)
		tmp->name[n + (int)i] = digits[rnd[i] % (sizeof(digits) - 1)];
	tmp->name[n + TEMP_SUFFIX] = '\0';
}

/* Whether an O_TMPFILE fd can be linked through /proc/self/fd (not when /proc
 * is not mounted). */
static bool proc_link_usable(int fd)
{
	char p[64];
	struct stat a, b;
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	return fstat(fd, &a) == 0 && stat(p, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Opens a temporary for the file name in dirfd.  Returns 0 or -errno. */
static int tmp_open(struct apply_ctx *c, int dirfd, const char *name, struct tmpfile *tmp)
{
	tmp->name[0] = '\0';
	if (!c->no_tmpfile) {
		tmp->fd = openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
		if (tmp->fd >= 0 && !c->tmpfile_checked) {
			if (proc_link_usable(tmp->fd)) {
				c->tmpfile_checked = true;
			} else {
				close(tmp->fd);
				tmp->fd = -1;
				c->no_tmpfile = true;
				errno = EOPNOTSUPP;
			}
		}
		if (tmp->fd >= 0)
			return 0;
		/* not supported here (old kernels see O_TMPFILE as O_DIRECTORY) */
		if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL && errno != ENOSYS)
			return -errno;
	}
	for (unsigned try = 0; try < TEMP_TRIES; try++) {
		temp_name(tmp, name, try);
		tmp->fd = openat(dirfd, tmp->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (tmp->fd >= 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	int e = errno;
	tmp->name[0] = '\0';
	return -e;
}

/* Closes the temporary and removes its name, if it has one. */
static void tmp_discard(int dirfd, struct tmpfile *tmp)
{
	if (tmp->fd >= 0)
		close(tmp->fd);
	tmp->fd = -1;
	if (tmp->name[0])
		unlinkat(dirfd, tmp->name, 0);
	tmp->name[0] = '\0';
}

/* Links the nameless temporary as name in dirfd: by the fd itself where
 * allowed (AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH), else through /proc. */
static int tmp_link(struct apply_ctx *c, struct tmpfile *tmp, int dirfd, const char *name)
{
	if (c->privileged && !c->no_empty_path) {
		if (linkat(tmp->fd, "", dirfd, name, AT_EMPTY_PATH) == 0)
			return 0;
		if (errno != EPERM && errno != ENOENT && errno != EINVAL)
			return -errno;
		c->no_empty_path = true;
	}
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", tmp->fd);
	return linkat(AT_FDCWD, proc, dirfd, name, AT_SYMLINK_FOLLOW) == 0 ? 0 : -errno;
}

/* Puts the complete temporary in place as name: linked there when nothing
 * is in the way, else given a temporary name and renamed over what is there
 * (a directory is removed first).  Returns 0 or -errno; the temporary stays
 * the caller's. */
static int tmp_commit(struct apply_ctx *c, int dirfd, const char *name, struct tmpfile *tmp)
{
	if (!tmp->name[0]) {
		int r = tmp_link(c, tmp, dirfd, name);
		if (r != -EEXIST)
			return r;
		for (unsigned try = 0; try < TEMP_TRIES && r == -EEXIST; try++) {
			temp_name(tmp, name, try);
			r = tmp_link(c, tmp, dirfd, tmp->name);
		}
		if (r < 0) {
			tmp->name[0] = '\0';
			return r;
		}
	}
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
		int r = remove_tree(dirfd, name);
		if (r < 0)
			return r;
	}
	if (renameat(dirfd, tmp->name, dirfd, name) < 0)
		return -errno;
	tmp->name[0] = '\0';
	return 0;
}

/* With opts->record: the file just put in place, its stat now and the hash
 * of the bytes written (its name's inode is the temporary's). */
static int note_file(struct apply_ctx *c, const struct entry *e, int fd)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return ls_fail_errno(c->err, errno, "%s", e->shown);
	XXH128_canonical_t h;
	XXH128_canonicalFromHash(&h, XXH3_128bits_digest(c->xxh));
	if (ls_record_add(c->opts->record, e->path, &st, h.digest) != 0)
		return ls_fail(c->err, ENOMEM, "apply: out of memory");
	return 0;
}

/* Regular file: written to a temporary, put in place when complete, so the
 * old entry stays until then and nothing half-written ever has the name. */
static int make_file(struct apply_ctx *c, struct archive *a, const struct entry *e, int dirfd,
		     const char *name)
{
	int64_t stored;
	int r = stored_end(&c->rd, e->header_pos, &stored);
	if (r == -E2BIG)
		return ls_fail(c->err, EINVAL, "%s: bad layer: headers too large to check", e->shown);
	if (r < 0)
		return ls_fail_errno(c->err, -r, "%s: bad layer: headers", e->shown);
	struct tmpfile tmp;
	r = tmp_open(c, dirfd, name, &tmp);
	if (r < 0)
		return ls_fail_errno(c->err, -r, "%s: cannot create", e->shown);
	r = copy_data(c, a, e, tmp.fd, stored);
	struct target t = { dirfd, name, tmp.fd, AE_IFREG };
	if (r == 0)
		r = set_metadata(c, e, &t, file_perm(c, e));
	/* write errors some file systems defer to close show up on the close
	 * of any fd: close a duplicate, the temporary must stay open */
	int dup_fd = r == 0 ? fcntl(tmp.fd, F_DUPFD_CLOEXEC, 0) : -1;
	if (r == 0 && (dup_fd < 0 || close(dup_fd) < 0))
		r = ls_fail_errno(c->err, errno, "%s: write", e->shown);
	int cr;
	if (r == 0 && (cr = tmp_commit(c, dirfd, name, &tmp)) < 0)
		r = ls_fail_errno(c->err, -cr, "%s: cannot put in place", e->shown);
	if (r == 0 && c->opts->record)
		r = note_file(c, e, tmp.fd);
	tmp_discard(dirfd, &tmp);
	return r;
}

static int make_symlink(struct apply_ctx *c, const struct entry *e, int dirfd, const char *name)
{
	const char *to = archive_entry_symlink(e->ae);
	if (!to)
		to = archive_entry_symlink_utf8(e->ae);
	if (!to || !*to)
		return ls_fail(c->err, EINVAL, "%s: symlink without a target", e->shown);
	int r = clear_name(dirfd, name);
	if (r < 0)
		return ls_fail_errno(c->err, -r, "%s: cannot remove the old entry", e->shown);
	if (symlinkat(to, dirfd, name) < 0)
		return ls_fail_errno(c->err, errno, "%s: cannot make symlink", e->shown);
	struct target t = { dirfd, name, -1, AE_IFLNK };
	return set_metadata(c, e, &t, 0);
}

/* Fifo, character or block device. */
static int make_special(struct apply_ctx *c, const struct entry *e, int dirfd, const char *name,
			mode_t type)
{
	int r = clear_name(dirfd, name);
	if (r < 0)
		return ls_fail_errno(c->err, -r, "%s: cannot remove the old entry", e->shown);
	dev_t rdev = type == AE_IFIFO ? 0 : archive_entry_rdev(e->ae);
	if (mknodat(dirfd, name, type | 0600, rdev) < 0)
		return ls_fail_errno(c->err, errno, "%s: cannot make node", e->shown);
	struct target t = { dirfd, name, -1, type };
	return set_metadata(c, e, &t, archive_entry_perm(e->ae) & 07777);
}

/* Hard link: the target is resolved beneath ROOT like any entry path.  The
 * inode keeps the metadata of its first entry. */
static int make_hardlink(struct apply_ctx *c, const struct entry *e, int dirfd, const char *name,
			 const char *raw_target)
{
	char shown[SHOWN_MAX + 8];
	show_name(shown, raw_target);
	char *tpath = NULL, *tdir = NULL;
	const char *tname;
	int r = normalise(raw_target, &tpath);
	if (r == -EXDEV || (r == 0 && !*tpath)) {
		r = ls_fail(c->err, EXDEV, "%s: hard link target %s escapes the root", e->shown, shown);
		goto out;
	}
	if (r == 0 && !strcmp(tpath, e->path)) {
		r = ls_fail(c->err, EINVAL, "%s: hard link to itself", e->shown);
		goto out;
	}
	if (r < 0 || split_path(tpath, &tdir, &tname) < 0) {
		r = ls_fail_errno(c->err, ENOMEM, "%s", e->shown);
		goto out;
	}
	int tfd = resolve_dir(c, tdir, false);
	if (tfd == -ELOOP || tfd == -EXDEV) {
		r = ls_fail(c->err, -tfd, "%s: hard link target %s %s", e->shown, shown,
			    tfd == -ELOOP ? "goes through a symlink" : "escapes the root");
		goto out;
	}
	if (tfd < 0) {
		r = ls_fail_errno(c->err, -tfd, "%s: hard link target %s", e->shown, shown);
		goto out;
	}
	struct stat st;
	if (fstatat(tfd, tname, &st, AT_SYMLINK_NOFOLLOW) < 0)
		r = ls_fail_errno(c->err, errno, "%s: hard link target %s", e->shown, shown);
	else if ((r = clear_name(dirfd, name)) < 0)
		r = ls_fail_errno(c->err, -r, "%s: cannot remove the old entry", e->shown);
	else if (linkat(tfd, tname, dirfd, name, 0) < 0)
		r = ls_fail_errno(c->err, errno, "%s: cannot link to %s", e->shown, shown);
	close(tfd);
out:
	free(tpath);
	free(tdir);
	return r;
}

/* Any non-whiteout entry.  Returns 0 when applied, 1 when skipped, or a
 * negative code. */
static int apply_node(struct apply_ctx *c, struct archive *a, const struct entry *e)
{
	const char *hardlink = archive_entry_hardlink(e->ae);
	if (!hardlink)
		hardlink = archive_entry_hardlink_utf8(e->ae);
	mode_t type = hardlink ? AE_IFREG : archive_entry_filetype(e->ae);
	if (!*e->path && (hardlink || type != AE_IFDIR))
		return ls_fail(c->err, EINVAL, "%s: the root can only be a directory", e->shown);
	switch (type) {
	case AE_IFREG: case AE_IFDIR: case AE_IFLNK: case AE_IFIFO:
		break;
	case AE_IFCHR: case AE_IFBLK:
		if (c->privileged)
			break;
		warn_unprivileged(c);
		log_msg(c, 1, "%s: device node skipped", e->shown);
		c->stats->skipped++;
		return 1;   /* not applied: not reported */
	default:
		return ls_fail(c->err, EINVAL, "%s: unsupported entry type 0%o", e->shown,
			       (unsigned)type);
	}
	int dirfd = resolve_dir(c, e->dir, true);
	if (dirfd < 0)
		return resolve_fail(c, e, dirfd);
	int r = keep_dir_times(c, e->dir, dirfd);
	if (r < 0)
		r = ls_fail_errno(c->err, -r, "%s", e->shown);
	else if (hardlink)
		r = make_hardlink(c, e, dirfd, e->name, hardlink);
	else if (type == AE_IFDIR)
		r = make_dir(c, e, dirfd, e->name);
	else if (type == AE_IFREG)
		r = make_file(c, a, e, dirfd, e->name);
	else if (type == AE_IFLNK)
		r = make_symlink(c, e, dirfd, e->name);
	else
		r = make_special(c, e, dirfd, e->name, type);
	close(dirfd);
	if (r == 0)
		r = remember_made(c, e);
	return r;
}

/* ---- whiteouts ---------------------------------------------------------- */

/* DIR/.wh.NAME removes DIR/NAME; DIR/.wh..wh..opq empties DIR of what lower
 * layers put there.  An absent DIR or NAME is not an error. */
static int apply_whiteout(struct apply_ctx *c, const struct entry *e)
{
	bool opaque = !strcmp(e->name, WH_OPAQUE);
	const char *victim = e->name + strlen(WH_PREFIX);
	if (!opaque && !*victim)
		return ls_fail(c->err, EINVAL, "%s: whiteout names no file", e->shown);
	if (!opaque && (!strcmp(victim, ".") || !strcmp(victim, "..")))
		return ls_fail(c->err, EXDEV, "%s: whiteout escapes the root", e->shown);
	c->stats->whiteouts++;
	int dirfd = resolve_dir(c, e->dir, false);
	if (dirfd == -ENOENT || dirfd == -ENOTDIR)
		return 0;
	if (dirfd < 0)
		return resolve_fail(c, e, dirfd);
	int r = keep_dir_times(c, e->dir, dirfd);
	if (r == 0 && opaque) {
		r = prune_children(c, dirfd, ".", e->dir);
	} else if (r == 0) {
		char *path = ls_path_join_new(e->dir, victim);
		r = path ? prune(c, dirfd, victim, path) : -ENOMEM;
		free(path);
	}
	close(dirfd);
	if (r < 0)
		return ls_fail_errno(c->err, -r, "%s: cannot remove", e->shown);
	return 0;
}

/* ---- entries ------------------------------------------------------------ */

static void entry_free(struct entry *e)
{
	free(e->path);
	free(e->dir);
}

/* Names, normalises and checks an entry's path. */
static int entry_init(struct apply_ctx *c, struct archive_entry *ae, struct entry *e)
{
	*e = (struct entry){ .ae = ae };
	const char *raw = archive_entry_pathname(ae);
	if (!raw)
		raw = archive_entry_pathname_utf8(ae);
	if (!raw || !*raw)
		return ls_fail(c->err, EINVAL, "bad layer: an entry has no name");
	show_name(e->shown, raw);
	int r = normalise(raw, &e->path);
	if (r == -EXDEV)
		return ls_fail(c->err, EXDEV, "%s: path escapes the root", e->shown);
	if (r < 0 || split_path(e->path, &e->dir, &e->name) < 0)
		return ls_fail_errno(c->err, ENOMEM, "%s", e->shown);
	return 0;
}

/* AUFS metadata (.wh..wh.* other than the opaque marker) is skipped; a
 * directory component named .wh.* is refused. */
static int check_components(struct apply_ctx *c, const struct entry *e, bool *skip)
{
	*skip = false;
	for (const char *p = e->path; *p;) {
		const char *end = strchr(p, '/');
		bool last = !end;
		if (has_prefix(p, WH_META_PREFIX) && !(last && !strcmp(p, WH_OPAQUE))) {
			*skip = true;
			return 0;
		}
		if (!last && has_prefix(p, WH_PREFIX))
			return ls_fail(c->err, EINVAL, "%s: a directory named like a whiteout",
				       e->shown);
		p = last ? p + strlen(p) : end + 1;
	}
	return 0;
}

/* Owner ids that no file can have: (uid_t)-1 means "leave unchanged" to
 * chown, and larger or negative ones would be cut to another id. */
static int check_ids(struct apply_ctx *c, const struct entry *e)
{
	int64_t ids[2] = { archive_entry_uid(e->ae), archive_entry_gid(e->ae) };
	for (int i = 0; i < 2; i++)
		if (ids[i] < 0 || ids[i] >= (int64_t)(uid_t)-1)
			return ls_fail(c->err, EINVAL, "%s: bad layer: %s %lld cannot be represented",
				       e->shown, i ? "gid" : "uid", (long long)ids[i]);
	return 0;
}

/* opts->on_entry, once the entry is in place: A and its path, D and the
 * whited-out path, or D and "DIR/" ("/" for ROOT) for an opaque whiteout. */
static int tell_entry(struct apply_ctx *c, const struct entry *e, bool whiteout)
{
	ls_change_fn *fn = c->opts ? c->opts->on_entry : NULL;
	if (!fn)
		return 0;
	char *path;
	if (!whiteout)
		path = strdup(*e->path ? e->path : "/");
	else if (!strcmp(e->name, WH_OPAQUE))
		path = *e->dir ? ls_path_join_new(e->dir, "") : strdup("/");
	else
		path = ls_path_join_new(e->dir, e->name + strlen(WH_PREFIX));
	if (!path)
		return ls_fail_errno(c->err, ENOMEM, "%s", e->shown);
	int r = fn(c->opts->entry_ctx, whiteout ? LS_DELETED : LS_ADDED, path, strlen(path));
	free(path);
	return r ? ls_fail(c->err, ECANCELED, "cancelled") : 0;
}

static int apply_entry(struct apply_ctx *c, struct archive *a, struct archive_entry *ae)
{
	struct entry e;
	int r = entry_init(c, ae, &e);
	e.header_pos = archive_read_header_position(a);
	if (r == 0)
		r = check_ids(c, &e);
	if (r < 0)
		goto out;
	c->stats->entries++;
	r = pathset_add(&c->seen, e.path);
	if (r == 0)
		r = ls_fail(c->err, EEXIST, "%s: duplicate entry in the layer", e.shown);
	else if (r < 0)
		r = ls_fail_errno(c->err, ENOMEM, "%s", e.shown);
	if (r < 0)
		goto out;
	bool skip;
	r = check_components(c, &e, &skip);
	if (r < 0)
		goto out;
	if (skip) {
		log_msg(c, 1, "%s: AUFS metadata skipped", e.shown);
		c->stats->skipped++;
	} else if (has_prefix(e.name, WH_PREFIX)) {
		r = apply_whiteout(c, &e);
		if (r == 0)
			r = tell_entry(c, &e, true);
	} else {
		r = apply_node(c, a, &e);
		if (r == 0)
			r = tell_entry(c, &e, false);
	}
out:
	entry_free(&e);
	return r < 0 ? r : 0;
}

/* The end of the tar: at end (where libarchive found the end-of-archive
 * mark, or simply no more data) there must be two zero blocks, then only
 * zeros; the rest of the stream is read, so every trailer is checked. */
static int finish_stream(struct apply_ctx *c, struct archive *a)
{
	struct layer_reader *rd = &c->rd;
	int64_t end = archive_read_header_position(a);
	for (;;) {
		const void *buf;
		ssize_t n = ls_decomp_read(rd->d, &buf, &rd->err);
		if (n < 0) {
			rd->failed = true;
			return ls_fail(c->err, rd->err.code, "bad layer: %s", rd->err.msg);
		}
		if (n == 0)
			break;
		reader_note(rd, buf, (size_t)n);
	}
	if (end < 0 || rd->total < (uint64_t)end + 2 * TAR_BLOCK) {
		bool none = end >= 0 && rd->total == (uint64_t)end;
		return ls_fail(c->err, EINVAL, "bad layer: %s at byte %lld (truncated?)",
			       none ? "no end-of-archive blocks" : "end-of-archive blocks cut short",
			       (long long)end);
	}
	if (rd->data_end > (uint64_t)end)
		return ls_fail(c->err, EINVAL, "bad layer: data after the end-of-archive blocks at byte %lld",
			       (long long)end);
	return 0;
}

/* A header libarchive read only in part (a malformed pax attribute or
 * sparse map, an unknown sparse format): applying it would apply something
 * other than what the layer says, and other extractors would differ. */
static int header_warning(struct apply_ctx *c, struct archive *a, struct archive_entry *ae)
{
	const char *raw = archive_entry_pathname(ae);
	const char *why = archive_error_string(a);
	if (!why || !*why)
		why = "header only partly readable (a malformed sparse map or pax attribute)";
	if (!raw || !*raw)
		return ls_fail(c->err, EINVAL, "bad layer: %s", why);
	char shown[SHOWN_MAX + 8];
	show_name(shown, raw);
	return ls_fail(c->err, EINVAL, "%s: bad layer: %s", shown, why);
}

static int apply_all(struct apply_ctx *c, struct archive *a)
{
	for (;;) {
		struct archive_entry *ae;
		int ar = archive_read_next_header(a, &ae);
		if (ar == ARCHIVE_EOF)
			return c->rd.failed ? archive_fail(c, a, NULL) : finish_stream(c, a);
		if (ar == ARCHIVE_WARN && !c->rd.failed)
			return header_warning(c, a, ae);
		if (ar != ARCHIVE_OK)
			return archive_fail(c, a, NULL);
		int r = apply_entry(c, a, ae);
		if (r < 0)
			return r;
	}
}

static la_ssize_t reader_read(struct archive *a, void *ctx, const void **buf)
{
	struct layer_reader *rd = ctx;
	ssize_t n = ls_decomp_read(rd->d, buf, &rd->err);
	if (n < 0) {
		rd->failed = true;
		archive_set_error(a, rd->err.code, "%s", rd->err.msg);
		return -1;
	}
	reader_note(rd, *buf, (size_t)n);
	return n;
}

/* libarchive reads raw tar only: decompression and its checks are ours. */
static int open_layer(struct apply_ctx *c, int fd, struct archive **out)
{
	int r = ls_decomp_open(&c->rd.d, fd, c->err);
	if (r < 0)
		return r;
	struct archive *a = archive_read_new();
	if (!a)
		return ls_fail_errno(c->err, ENOMEM, "layer");
	*out = a;
	if (archive_read_support_format_tar(a) < ARCHIVE_WARN ||
	    archive_read_open(a, &c->rd, NULL, reader_read, NULL) != ARCHIVE_OK)
		return archive_fail(c, a, NULL);
	return 0;
}

/* Reads the layer and applies it under c->rootfd. */
static int apply_layer(struct apply_ctx *c, int layer_fd)
{
	struct archive *a = NULL;
	int r = open_layer(c, layer_fd, &a);
	if (r == 0)
		r = apply_all(c, a);
	/* entries applied before a failure get their directory times too */
	struct ls_error fix_err;
	int fr = finish_dirs(c, r == 0 ? c->err : &fix_err);
	if (r == 0)
		r = fr;
	if (a)
		archive_read_free(a);
	ls_decomp_free(c->rd.d);
	c->rd.d = NULL;
	return r;
}

static void ctx_free(struct apply_ctx *c)
{
	for (size_t i = 0; i < c->n_dirs; i++)
		free(c->dirs[i].path);
	free(c->dirs);
	pathset_free(&c->seen);
	pathset_free(&c->keep);
	pathset_free(&c->fixes);
	if (c->xxh)
		XXH3_freeState(c->xxh);
	if (c->rootfd >= 0)
		close(c->rootfd);
}

int ls_apply(int layer_fd, const char *root, const struct ls_apply_options *opts,
	     struct ls_apply_stats *stats, struct ls_error *err)
{
	int rc = ls_sized_check_out(stats, LS_SIZE_TO(struct ls_apply_stats, skipped), "apply: stats", err);
	if (rc)
		return rc;
	struct ls_apply_stats counts = { .struct_size = sizeof(counts) };
	ls_sized_out(stats, &counts, sizeof(counts));
	struct ls_apply_options o;
	if ((rc = ls_sized_in(&o, sizeof(o), LS_SIZE_TO(struct ls_apply_options, record), opts,
			      LS_SIZE_TO(struct ls_apply_options, entry_ctx),
			      "apply: options", err)))
		return rc;
	opts = &o;
	if (!root || !*root)
		return ls_fail(err, EINVAL, "apply: no root directory");
	if (layer_fd < 0)
		return ls_fail(err, EBADF, "apply: no layer fd");
	struct apply_ctx c = {
		.rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC),
		.privileged = geteuid() == 0,
		.euid = geteuid(),
		.egid = getegid(),
		.opts = opts,
		.stats = &counts,
		.err = err,
		.no_tmpfile = opts && opts->no_tmpfile,
	};
	if (c.rootfd < 0)
		return ls_fail_errno(err, errno, "%s", root);
	if (o.record && !(c.xxh = XXH3_createState())) {
		ctx_free(&c);
		return ls_fail(err, ENOMEM, "apply: out of memory");
	}
	/* pax names are UTF-8: in a UTF-8 locale libarchive hands their bytes over
	 * unchanged and without a warning.  uselocale() changes this thread only,
	 * and is undone before returning. */
	locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	locale_t old = utf8 ? uselocale(utf8) : (locale_t)0;
	int r = apply_layer(&c, layer_fd);
	if (utf8) {
		uselocale(old);
		freelocale(utf8);
	}
	ctx_free(&c);
	ls_sized_out(stats, &counts, sizeof(counts));
	return r;
}
