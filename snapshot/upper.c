/* An overlay upper directory, read for diff --upper: see upper.h. */
#include "upper.h"
#include "error.h"
#include "manifest.h"
#include "path.h"
#include "xattr.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

void ls_upper_free(struct ls_upper *u)
{
	for (size_t i = 0; i < u->n_listed; i++)
		free(u->listed[i]);
	for (size_t i = 0; i < u->n_dirs; i++)
		free(u->dirs[i]);
	free(u->listed);
	free(u->dirs);
	memset(u, 0, sizeof(*u));
}

static int add(char ***v, size_t *n, size_t *cap, const char *path)
{
	if (ls_grow((void **)v, cap, *n + 1, sizeof(**v)) || !((*v)[*n] = strdup(path)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

/* ---- the mount -------------------------------------------------------------- */

/* Decodes mountinfo's octal escapes in place. */
static void unescape(char *s)
{
	char *o = s;
	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
			*o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
}

int ls_upper_check_mount(const char *root, const char *upper, bool *userxattr, struct ls_error *err)
{
	*userxattr = false;
	char *root_real = realpath(root, NULL), *upper_real = realpath(upper, NULL);
	int rc = 0;
	if (!root_real || !upper_real) {
		rc = ls_fail_errno(err, errno, "%s", !root_real ? root : upper);
		goto out;
	}
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f) {
		rc = ls_fail_errno(err, errno, "/proc/self/mountinfo");
		goto out;
	}
	char *line = NULL;
	size_t cap = 0;
	bool mounted = false, found = false;
	/* The last mount at ROOT is the one in force. */
	while (getline(&line, &cap, f) > 0) {
		/* id parent maj:min root MOUNT-POINT opts [tags] - FSTYPE SOURCE SUPER-OPTS */
		char *save = NULL, *fields[6] = { 0 };
		int k = 0;
		for (char *t = strtok_r(line, " \n", &save); t; t = k < 6 ? strtok_r(NULL, " \n", &save) : NULL)
			fields[k++] = t;
		if (!fields[4])
			continue;
		unescape(fields[4]);
		if (strcmp(fields[4], root_real) != 0)
			continue;
		char *fstype = NULL, *super = NULL;
		for (char *x = strtok_r(NULL, " \n", &save); x; x = strtok_r(NULL, " \n", &save)) {
			if (strcmp(x, "-") == 0) {
				fstype = strtok_r(NULL, " \n", &save);
				strtok_r(NULL, " \n", &save);  /* source */
				super = strtok_r(NULL, " \n", &save);
				break;
			}
		}
		mounted = true;
		found = false;
		*userxattr = false;
		if (!fstype || strcmp(fstype, "overlay") != 0 || !super)
			continue;
		char *save2 = NULL;
		for (char *o = strtok_r(super, ",", &save2); o; o = strtok_r(NULL, ",", &save2)) {
			if (strncmp(o, "upperdir=", 9) == 0) {
				unescape(o + 9);
				char *u = realpath(o + 9, NULL);
				found = u && strcmp(u, upper_real) == 0;
				free(u);
			} else if (strcmp(o, "userxattr") == 0) {
				*userxattr = true;
			}
		}
	}
	free(line);
	fclose(f);
	if (!found)
		rc = ls_fail(err, EINVAL, "--upper %s: %s is %s (--upper-unchecked for a copied upper directory)", upper,
			     root, mounted ? "not an overlay mount with this upper directory" : "not a mount point");
out:
	free(root_real);
	free(upper_real);
	return rc;
}

/* ---- the markers ------------------------------------------------------------- */

struct reader {
	struct ls_upper *u;
	const char *upper;
	const char *opaque[2], *redirect[2];   /* the xattr names in force (one, or both) */
	char *names;                          /* an entry's attribute names */
	size_t names_cap;
	char **bufs;                          /* a getdents64 buffer per depth being read */
	size_t n_bufs, bufs_cap;
	char path[PATH_MAX];
	struct ls_error *err;
};

/* Whether the name list (len bytes) holds names[0] or names[1] (either may
 * be NULL): the one it holds, or NULL. */
static const char *has_name(const char *list, size_t len, const char *const names[2])
{
	for (const char *s = list; s < list + len; s += strlen(s) + 1)
		for (int k = 0; k < 2; k++)
			if (names[k] && strcmp(s, names[k]) == 0)
				return names[k];
	return NULL;
}

static int refuse(struct reader *r, size_t len, const char *why)
{
	return ls_fail(r->err, EINVAL, "--upper: %s/%.*s: %s: --upper cannot tell what it replaced; "
		       "diff without --upper", r->upper, (int)len, r->path, why);
}

static int read_dir(struct reader *r, int dfd, size_t len, size_t depth);

/* One entry of the upper directory, path r->path[0..len). */
static int read_entry(struct reader *r, int dfd, const char *name, size_t len, unsigned char d_type,
		      size_t depth)
{
	/* Only directory or not matters here: getdents64 says which, on the
	 * file systems an upper directory lives on (DT_UNKNOWN: ask). */
	bool dir = d_type == DT_DIR;
	if (d_type == DT_UNKNOWN) {
		struct stat st;
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			return ls_fail_errno(r->err, errno, "%s/%s", r->upper, r->path);
		dir = S_ISDIR(st.st_mode);
	}
	/* The markers are found by listing the names, one call, and only an
	 * opaque one is read. */
	ssize_t n = ls_xattr_list(dfd, name, &r->names, &r->names_cap);
	if (n < 0)
		return ls_fail_errno(r->err, (int)-n, "%s/%s: xattrs", r->upper, r->path);
	const char *marker = NULL;
	if (n && has_name(r->names, (size_t)n, r->redirect))
		return refuse(r, len, "a lower directory renamed here (overlay redirect_dir)");
	if (n && (marker = has_name(r->names, (size_t)n, r->opaque)) && !dir)
		return refuse(r, len, "an opaque marker on an entry that is not a directory");
	bool opaque = false;
	if (marker) {
		char val[2];
		ssize_t v = ls_xattr_get(dfd, name, marker, val, sizeof(val));
		if (v < 0 && v != -ENODATA && v != -ERANGE)
			return ls_fail_errno(r->err, (int)-v, "%s/%s: xattrs", r->upper, r->path);
		if (v != -ENODATA && (v != 1 || val[0] != 'y'))
			return refuse(r, len, "an opaque directory with whiteouts kept in xattrs");
		opaque = v == 1;
	}
	if (!dir || opaque) {
		/* A whiteout (0/0) is listed too: the merged view has nothing
		 * there, so the base's entry is whited out. */
		return add(&r->u->listed, &r->u->n_listed, &r->u->cap_listed, r->path) ? ls_fail(r->err, ENOMEM, "--upper: out of memory") : 0;
	}
	if (add(&r->u->dirs, &r->u->n_dirs, &r->u->cap_dirs, r->path))
		return ls_fail(r->err, ENOMEM, "--upper: out of memory");
	int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub < 0)
		return ls_fail_errno(r->err, errno, "%s/%s", r->upper, r->path);
	return read_dir(r, sub, len, depth + 1);  /* closes sub */
}

/* The entries of directory dfd (closed here), at r->path[0..len), depth
 * levels below the upper directory. */
static int read_dir(struct reader *r, int dfd, size_t len, size_t depth)
{
	/* One buffer per level: a subdirectory is read while its parent's
	 * buffer still holds the names after it. */
	int rc = 0;
	if (depth == r->n_bufs) {
		if (ls_grow((void **)&r->bufs, &r->bufs_cap, depth + 1, sizeof(*r->bufs)) ||
		    !(r->bufs[depth] = malloc(LS_DIRENT_BUF)))
			rc = ls_fail(r->err, ENOMEM, "--upper: out of memory");
		else
			r->n_bufs++;
	}
	char *buf = rc ? NULL : r->bufs[depth];
	for (ssize_t got; rc == 0 && (got = ls_read_dirents(dfd, buf, LS_DIRENT_BUF)) != 0;) {
		if (got < 0) {
			rc = ls_fail_errno(r->err, (int)-got, "%s/%.*s", r->upper, (int)len, r->path);
			break;
		}
		for (ssize_t off = 0; rc == 0 && off < got;) {
			const struct dirent64 *de = (const struct dirent64 *)(buf + off);
			off += de->d_reclen;
			const char *name = de->d_name;
			if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))
				continue;
			size_t nl = strlen(name), at = len ? len + 1 : 0;
			if (at + nl >= sizeof(r->path)) {
				rc = ls_fail(r->err, ENAMETOOLONG, "%s/%.*s/%s: path too long", r->upper, (int)len,
					     r->path, name);
				break;
			}
			if (len)
				r->path[len] = '/';
			memcpy(r->path + at, name, nl + 1);
			rc = read_entry(r, dfd, name, at + nl, de->d_type, depth);
			r->path[len] = '\0';
		}
	}
	close(dfd);
	return rc;
}

int ls_upper_read(const char *upper, enum ls_upper_xattrs which, struct ls_upper *u, struct ls_error *err)
{
	struct reader r = { .u = u, .upper = upper, .err = err };
	/* trusted.* is invisible to listxattr without CAP_SYS_ADMIN: an
	 * opaque directory would read as a plain one and its old children
	 * would be carried over instead of whited out. */
	if (which != LS_UPPER_USER && geteuid() != 0)
		return ls_fail(err, EPERM, "--upper %s: the trusted.overlay.* markers need root to be read "
			       "(a userxattr mount keeps them under user.overlay.*)", upper);
	if (which != LS_UPPER_USER) {
		r.opaque[0] = "trusted.overlay.opaque";
		r.redirect[0] = "trusted.overlay.redirect";
	}
	if (which != LS_UPPER_TRUSTED) {
		r.opaque[1] = "user.overlay.opaque";
		r.redirect[1] = "user.overlay.redirect";
	}
	int dfd = open(upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return ls_fail_errno(err, errno, "--upper %s", upper);
	/* ROOT itself: an opaque upper root replaces everything. */
	ssize_t n = ls_xattr_list(dfd, ".", &r.names, &r.names_cap);
	int rc = 0;
	if (n > 0 && (has_name(r.names, (size_t)n, r.opaque) || has_name(r.names, (size_t)n, r.redirect)))
		rc = ls_fail(err, EINVAL, "--upper %s: the upper directory itself is opaque or redirected: "
			     "diff without --upper", upper);
	else if (n < 0)
		rc = ls_fail_errno(err, (int)-n, "--upper %s: xattrs", upper);
	if (rc) {
		close(dfd);
	} else {
		r.path[0] = '\0';
		rc = read_dir(&r, dfd, 0, 0);  /* closes dfd */
	}
	free(r.names);
	for (size_t i = 0; i < r.n_bufs; i++)
		free(r.bufs[i]);
	free(r.bufs);
	return rc;
}
