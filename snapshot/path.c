#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int ls_path_join(struct ls_pathbuf *pb, const char *dir, size_t dlen, const char *name, size_t nlen)
{
	size_t need = dlen + 1 + nlen + 1;
	if (need > pb->cap) {
		size_t ncap = pb->cap ? pb->cap : 256;
		while (ncap < need)
			ncap *= 2;
		/* dir may live in the buffer being grown. */
		size_t dir_off = (pb->buf && dir >= pb->buf && dir < pb->buf + pb->cap) ? (size_t)(dir - pb->buf)
											 : SIZE_MAX;
		char *n = realloc(pb->buf, ncap);
		if (!n)
			return -ENOMEM;
		if (dir_off != SIZE_MAX)
			dir = n + dir_off;
		pb->buf = n;
		pb->cap = ncap;
	}
	size_t o = 0;
	if (dlen) {
		memmove(pb->buf, dir, dlen);
		pb->buf[dlen] = '/';
		o = dlen + 1;
	}
	memmove(pb->buf + o, name, nlen);
	pb->buf[o + nlen] = '\0';
	pb->len = o + nlen;
	return 0;
}

char *ls_path_join_new(const char *dir, const char *name)
{
	struct ls_pathbuf pb = { 0 };
	if (ls_path_join(&pb, dir, strlen(dir), name, strlen(name)))
		return NULL;
	return pb.buf;
}

ssize_t ls_path_normalize(char *p, enum ls_norm how)
{
	if (how == LS_NORM_STRICT && p[0] == '/')
		return -EXDEV;
	char *out = p;
	const char *s = p;
	while (*s) {
		while (*s == '/')
			s++;
		if (!*s)
			break;
		const char *e = strchrnul(s, '/');
		size_t n = (size_t)(e - s);
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return -EXDEV;
		if (!(n == 1 && s[0] == '.')) {
			if (out != p)
				*out++ = '/';
			memmove(out, s, n);
			out += n;
		}
		s = e;
	}
	*out = '\0';
	return out - p;
}

/* One openat2 beneath dirfd; retried where the kernel asks (a concurrent
 * rename makes RESOLVE_BENEATH lookups fail with EAGAIN). */
static int openat2_beneath(int dirfd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	for (int tries = 0;; tries++) {
		long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
		if (fd >= 0)
			return (int)fd;
		if ((errno == EAGAIN || errno == EINTR) && tries < 64)
			continue;
		return -errno;
	}
}

/* One component beneath dirfd without following a symlink, for kernels
 * without openat2: a symlink is -ELOOP, as RESOLVE_NO_SYMLINKS makes it,
 * unless the caller asked for the link itself (O_PATH | O_NOFOLLOW). */
static int open_component(int dirfd, const char *comp, int flags)
{
	int fd = openat(dirfd, comp, flags | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		struct stat st;
		if ((flags & (O_PATH | O_NOFOLLOW)) == O_PATH && fstat(fd, &st) == 0 && S_ISLNK(st.st_mode)) {
			close(fd);
			return -ELOOP;
		}
		return fd;
	}
	int e = errno;
	struct stat st;
	if (e == ENOTDIR && fstatat(dirfd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
		return -ELOOP;
	return -e;
}

/* The same walk as openat2 would make, one O_NOFOLLOW open per component. */
static int walk_components(int dirfd, const char *path, int flags)
{
	if (!*path)
		return open_component(dirfd, ".", flags);
	int cur = dirfd;
	const char *p = path;
	char comp[NAME_MAX + 1];
	for (;;) {
		const char *end = strchrnul(p, '/');
		size_t len = (size_t)(end - p);
		int fd;
		if (len > NAME_MAX) {
			fd = -ENAMETOOLONG;
		} else if (len == 2 && p[0] == '.' && p[1] == '.') {
			fd = -EXDEV;
		} else {
			memcpy(comp, p, len);
			comp[len] = '\0';
			fd = open_component(cur, len ? comp : ".", *end ? O_PATH | O_DIRECTORY : flags);
		}
		if (cur != dirfd)
			close(cur);
		if (fd < 0 || !*end)
			return fd;
		cur = fd;
		p = end + 1;
	}
}

static int open_piece(int dirfd, const char *path, int flags)
{
	int fd = openat2_beneath(dirfd, path, flags);
	return fd == -ENOSYS ? walk_components(dirfd, path, flags) : fd;
}

int ls_open_beneath(int dirfd, const char *path, int flags)
{
	size_t len = strlen(path);
	if (len < PATH_MAX)
		return open_piece(dirfd, *path ? path : ".", flags);
	/* Longer than one lookup takes: directories a piece at a time, each
	 * beneath the one before. */
	char *piece = malloc(PATH_MAX);
	if (!piece)
		return -ENOMEM;
	int cur = dirfd;
	const char *p = path;
	int fd;
	for (;;) {
		size_t rest = strlen(p);
		if (rest < PATH_MAX) {
			fd = open_piece(cur, p, flags);
			break;
		}
		const char *slash = memrchr(p, '/', PATH_MAX - 1);
		if (!slash || slash == p) {
			fd = -ENAMETOOLONG;
			break;
		}
		memcpy(piece, p, (size_t)(slash - p));
		piece[slash - p] = '\0';
		fd = open_piece(cur, piece, O_PATH | O_DIRECTORY);
		if (fd < 0)
			break;
		if (cur != dirfd)
			close(cur);
		cur = fd;
		p = slash + 1;
	}
	if (cur != dirfd)
		close(cur);
	free(piece);
	return fd;
}

/* ---- directory chains ----------------------------------------------------- */

struct chain_level {
	size_t len;   /* the directory is the chain's path up to here */
	int fd;
};

struct ls_dirchain {
	struct ls_pathbuf path;                 /* the deepest open directory */
	struct chain_level lv[LS_DIRCHAIN_FDS]; /* lv[0] is the root */
	size_t n;
};

int ls_dirchain_create(struct ls_dirchain **out, int rootfd)
{
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	(*out)->lv[0].fd = rootfd;
	(*out)->n = 1;
	return 0;
}

void ls_dirchain_free(struct ls_dirchain *c)
{
	if (!c)
		return;
	for (size_t i = 1; i < c->n; i++)
		close(c->lv[i].fd);
	free(c->path.buf);
	free(c);
}

int ls_dirchain_get(struct ls_dirchain *c, const char *dir, size_t len)
{
	/* Keep the deepest open level that is an ancestor of (or is) dir. */
	while (c->n > 1) {
		size_t l = c->lv[c->n - 1].len;
		if (l <= len && memcmp(c->path.buf, dir, l) == 0 && (l == len || dir[l] == '/'))
			break;
		close(c->lv[--c->n].fd);
	}
	size_t at = c->lv[c->n - 1].len;
	if (ls_path_join(&c->path, dir, at, "", 0))
		return -ENOMEM;
	c->path.buf[at] = '\0';
	char comp[NAME_MAX + 1];
	while (at < len) {
		const char *s = dir + at + (at ? 1 : 0);
		const char *e = memchr(s, '/', (size_t)(dir + len - s));
		if (!e)
			e = dir + len;
		size_t n = (size_t)(e - s);
		if (n == 0 || n > NAME_MAX)
			return n ? -ENAMETOOLONG : -EINVAL;
		memcpy(comp, s, n);
		comp[n] = '\0';
		struct chain_level *top = &c->lv[c->n - 1];
		int fd = openat(top->fd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return errno == ENOTDIR ? -ENOTDIR : -errno;
		size_t end = (size_t)(e - dir);
		if (ls_path_join(&c->path, dir, end, "", 0)) {
			close(fd);
			return -ENOMEM;
		}
		c->path.buf[end] = '\0';
		if (c->n < LS_DIRCHAIN_FDS) {
			c->lv[c->n].fd = fd;
			c->lv[c->n].len = end;
			c->n++;
		} else {
			/* Out of levels: the deepest one moves down instead. */
			close(top->fd);
			top->fd = fd;
			top->len = end;
		}
		at = end;
	}
	return c->lv[c->n - 1].fd;
}

ssize_t ls_read_dirents(int dfd, void *buf, size_t len)
{
	long n;
	do
		n = syscall(SYS_getdents64, dfd, buf, len);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : (ssize_t)n;
}
