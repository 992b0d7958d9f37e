/* An overlay upper directory, read for diff --upper: see upper.h. */
#include "upper.h"
#include "error.h"
#include "manifest.h"
#include "mountinfo.h"
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

/* What ls_upper_check_mount looks for in each mount: the last one at ROOT
 * is the one in force. */
struct mount_check {
	const char *root_real, *upper_real;
	bool mounted, found, userxattr;
};

static int check_one_mount(const struct ls_mountinfo *m, void *ctx)
{
	struct mount_check *mc = ctx;
	if (strcmp(m->mount_point, mc->root_real) != 0)
		return 0;
	mc->mounted = true;
	mc->found = mc->userxattr = false;
	if (!m->fstype || strcmp(m->fstype, "overlay") != 0)
		return 0;
	char *save = NULL;
	for (char *o = strtok_r(m->super_options, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		if (strncmp(o, "upperdir=", 9) == 0) {
			ls_mountinfo_unescape(o + 9);
			char *u = realpath(o + 9, NULL);
			mc->found = u && strcmp(u, mc->upper_real) == 0;
			free(u);
		} else if (strcmp(o, "userxattr") == 0) {
			mc->userxattr = true;
		}
	}
	return 0;
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
	struct mount_check mc = { .root_real = root_real, .upper_real = upper_real };
	rc = ls_mountinfo_each(check_one_mount, &mc);
	if (rc) {
		rc = ls_fail_errno(err, -rc, "/proc/self/mountinfo");
		goto out;
	}
	*userxattr = mc.found && mc.userxattr;
	if (!mc.found)
		rc = ls_fail(err, EINVAL, "--upper %s: %s is %s (--upper-unchecked for a copied upper directory)", upper,
			     root, mc.mounted ? "not an overlay mount with this upper directory" : "not a mount point");
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
