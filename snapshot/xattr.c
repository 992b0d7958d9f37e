#include "xattr.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Linux 6.13; Debian 12's headers predate them.  New system calls have one
 * number on every architecture. */
#ifndef SYS_getxattrat
#define SYS_getxattrat 464
#endif
#ifndef SYS_listxattrat
#define SYS_listxattrat 465
#endif

struct xattr_args {
	uint64_t value;
	uint32_t size;
	uint32_t flags;
};

/* The entry as a path for the classic calls: the directory through its magic
 * link, then the one name, which l*xattr does not follow. */
static int proc_path(char *buf, size_t len, int dirfd, const char *name)
{
	int n = snprintf(buf, len, "/proc/self/fd/%d/%s", dirfd, name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

#define PROC_PATH_MAX (32 + NAME_MAX + 1)

static ssize_t get_at(int dirfd, const char *name, const char *attr, void *val, size_t size)
{
	if (!name[0]) {
		ssize_t n = fgetxattr(dirfd, attr, val, size);
		return n < 0 ? -errno : n;
	}
	struct xattr_args args = { .value = (uintptr_t)val, .size = (uint32_t)size };
	long n = syscall(SYS_getxattrat, dirfd, name, AT_SYMLINK_NOFOLLOW, attr, &args, sizeof(args));
	if (n >= 0)
		return n;
	if (errno != ENOSYS)
		return -errno;
	char p[PROC_PATH_MAX];
	int rc = proc_path(p, sizeof(p), dirfd, name);
	if (rc)
		return rc;
	n = lgetxattr(p, attr, val, size);
	return n < 0 ? -errno : n;
}

ssize_t ls_xattr_get(int dirfd, const char *name, const char *attr, void *val, size_t size)
{
	ssize_t n = get_at(dirfd, name, attr, val, size);
	return n == -ENOTSUP ? -ENODATA : n;
}

static ssize_t list_at(int dirfd, const char *name, char *list, size_t size)
{
	if (!name[0]) {
		ssize_t n = flistxattr(dirfd, list, size);
		return n < 0 ? -errno : n;
	}
	long n = syscall(SYS_listxattrat, dirfd, name, AT_SYMLINK_NOFOLLOW, list, size);
	if (n >= 0)
		return n;
	if (errno != ENOSYS)
		return -errno;
	char p[PROC_PATH_MAX];
	int rc = proc_path(p, sizeof(p), dirfd, name);
	if (rc)
		return rc;
	n = llistxattr(p, list, size);
	return n < 0 ? -errno : n;
}

ssize_t ls_xattr_list(int dirfd, const char *name, char **buf, size_t *cap)
{
	/* A size of 0 would only ask for the length: start with a buffer. */
	if (!*cap) {
		if (!(*buf = malloc(256)))
			return -ENOMEM;
		*cap = 256;
	}
	for (int tries = 0;; tries++) {
		ssize_t n = list_at(dirfd, name, *buf, *cap);
		if (n == -ENOTSUP)
			return 0;
		if (n != -ERANGE || tries == 8)
			return n;  /* past 8: an attribute is added each time */
		ssize_t need = list_at(dirfd, name, NULL, 0);
		if (need < 0)
			return need == -ENOTSUP ? 0 : need;
		char *nb = realloc(*buf, (size_t)need + 256);
		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = (size_t)need + 256;
	}
}

/* One value into a growing buffer; returns its length or -errno. */
static ssize_t get_one(int dirfd, const char *name, const char *attr, char **val, size_t *cap)
{
	/* A size of 0 would only ask for the length: start with a buffer. */
	if (!*cap) {
		if (!(*val = malloc(256)))
			return -ENOMEM;
		*cap = 256;
	}
	for (;;) {
		ssize_t n = get_at(dirfd, name, attr, *val, *cap);
		if (n != -ERANGE)
			return n;
		ssize_t need = get_at(dirfd, name, attr, NULL, 0);
		if (need < 0)
			return need;
		char *nv = realloc(*val, (size_t)need + 1);
		if (!nv)
			return -ENOMEM;
		*val = nv;
		*cap = (size_t)need + 1;
	}
}

static int blob_add(char **blob, size_t *len, size_t *cap, const char *name, const void *val, size_t vlen)
{
	size_t nl = strlen(name);
	if (nl > UINT16_MAX || vlen > UINT32_MAX)
		return -E2BIG;
	size_t need = *len + LS_XATTR_HDR + nl + vlen;
	if (need > *cap) {
		size_t ncap = *cap ? *cap : 256;
		while (ncap < need)
			ncap *= 2;
		char *n = realloc(*blob, ncap);
		if (!n)
			return -ENOMEM;
		*blob = n;
		*cap = ncap;
	}
	uint16_t n16 = (uint16_t)nl;
	uint32_t v32 = (uint32_t)vlen;
	memcpy(*blob + *len, &n16, 2);
	memcpy(*blob + *len + 2, &v32, 4);
	memcpy(*blob + *len + LS_XATTR_HDR, name, nl);
	if (vlen)
		memcpy(*blob + *len + LS_XATTR_HDR + nl, val, vlen);
	*len = need;
	return 0;
}

static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every attribute's name, sorted, into *names (one malloc'ed block) and
 * *list (an array into it). */
static int list_names(int dirfd, const char *name, char **names, const char ***list, size_t *count)
{
	*names = NULL;
	*list = NULL;
	*count = 0;
	char *buf = NULL;
	size_t cap = 0;
	ssize_t got = ls_xattr_list(dirfd, name, &buf, &cap);
	if (got <= 0) {
		free(buf);
		return (int)got;
	}
	size_t n = 0;
	for (ssize_t i = 0; i < got; i++)
		n += buf[i] == '\0';
	const char **l = calloc(n ? n : 1, sizeof(*l));
	if (!l) {
		free(buf);
		return -ENOMEM;
	}
	size_t k = 0;
	for (char *p = buf; p < buf + got && k < n; p += strlen(p) + 1)
		l[k++] = p;
	qsort(l, k, sizeof(*l), cmp_cstr);
	*names = buf;
	*list = l;
	*count = k;
	return 0;
}

int ls_xattrs_read(int dirfd, const char *name, uint32_t mode, enum ls_xattrs policy, void **out,
		   size_t *out_len)
{
	*out = NULL;
	*out_len = 0;
	if (policy == LS_XATTRS_NONE)
		return 0;
	/* File capabilities only mean something on regular files. */
	if (policy == LS_XATTRS_CAPABILITY && !S_ISREG(mode))
		return 0;
	char *names = NULL, *blob = NULL, *val = NULL;
	const char **list = NULL;
	static const char *const cap_only[] = { "security.capability" };
	const char *const *attrs = cap_only;
	size_t n_attrs = 1, len = 0, cap = 0, vcap = 0;
	int rc = 0;
	if (policy == LS_XATTRS_ALL) {
		rc = list_names(dirfd, name, &names, &list, &n_attrs);
		attrs = list;
	}
	for (size_t i = 0; i < n_attrs && rc == 0; i++) {
		ssize_t n = get_one(dirfd, name, attrs[i], &val, &vcap);
		if (n == -ENODATA || n == -ENOTSUP)
			continue;  /* removed since it was listed, or none at all */
		if (n < 0)
			rc = (int)n;
		else
			rc = blob_add(&blob, &len, &cap, attrs[i], val, (size_t)n);
	}
	free(val);
	free(list);
	free(names);
	if (rc) {
		free(blob);
		return rc;
	}
	*out = blob;
	*out_len = len;
	return 0;
}

int ls_xattr_next(struct ls_xattr_it *it, struct ls_xattr_view *v)
{
	if (it->p >= it->end)
		return 0;
	size_t left = (size_t)(it->end - it->p);
	if (left < LS_XATTR_HDR)
		return -EINVAL;
	uint16_t nl;
	uint32_t vl;
	memcpy(&nl, it->p, 2);
	memcpy(&vl, it->p + 2, 4);
	if (nl == 0 || (size_t)nl + vl > left - LS_XATTR_HDR)
		return -EINVAL;
	v->name = (const char *)it->p + LS_XATTR_HDR;
	v->name_len = nl;
	v->value = it->p + LS_XATTR_HDR + nl;
	v->value_len = vl;
	it->p += LS_XATTR_HDR + nl + vl;
	return 1;
}
