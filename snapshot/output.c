#include "output.h"
#include "error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TEMP_MARK ".layersnap-tmp."
#define SUFFIX_LEN 6
#define MAX_TRIES 100
#define MAX_LINKS 40

int ls_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

bool ls_output_is_temp_name(const char *name, size_t len)
{
	/* The glob `.*.layersnap-tmp.*`: a leading dot, the mark after it. */
	return len > 0 && name[0] == '.' && memmem(name + 1, len - 1, TEMP_MARK, strlen(TEMP_MARK)) != NULL;
}

/* The process umask, read without changing it (umask(2) cannot only read). */
static mode_t current_umask(void)
{
	mode_t mask = 022;
	FILE *f = fopen("/proc/self/status", "re");
	if (!f)
		return mask;
	char line[256];
	while (fgets(line, sizeof(line), f)) {
		unsigned int v;
		if (sscanf(line, "Umask: %o", &v) == 1) {
			mask = (mode_t)v;
			break;
		}
	}
	fclose(f);
	return mask;
}

static char *dir_of(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return NULL;
	char *d = strdup(dirname(copy));
	free(copy);
	return d;
}

static char *base_of(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return NULL;
	char *b = strdup(basename(copy));
	free(copy);
	return b;
}

/* The last component of a path this file built (never ends with '/'). */
static const char *name_in(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* A whole-file OFD lock: owned by the open file, not the process, so it is
 * neither shared with nor dropped by other fds, and dies with the process. */
static int ofd_lock(int fd, short type)
{
	struct flock fl;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	return fcntl(fd, F_OFD_SETLK, &fl);
}

/* Overwrites the trailing SUFFIX_LEN bytes of name with random letters and
 * digits.  `salt` varies the fallback when getrandom cannot answer. */
static void random_suffix(char *name, unsigned salt)
{
	static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char r[SUFFIX_LEN];
	if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
			     ((uint64_t)getpid() << 12) ^ ((uint64_t)salt << 48) ^ (uint64_t)(uintptr_t)name;
		for (size_t i = 0; i < sizeof(r); i++) {
			x += 0x9e3779b97f4a7c15ull;  /* splitmix64 */
			uint64_t z = x;
			z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
			z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
			r[i] = (unsigned char)(z ^ (z >> 31));
		}
	}
	char *s = name + strlen(name) - SUFFIX_LEN;
	for (size_t i = 0; i < sizeof(r); i++)
		s[i] = set[r[i] % (sizeof(set) - 1)];
}

/* The target of the symlink at path (malloc'ed), or NULL with errno set. */
static char *read_link(const char *path, size_t hint)
{
	size_t cap = hint + 2 > 64 ? hint + 2 : 64;
	for (;;) {
		char *buf = malloc(cap);
		if (!buf)
			return NULL;
		ssize_t n = readlink(path, buf, cap);
		if (n < 0) {
			int e = errno;
			free(buf);
			errno = e;
			return NULL;
		}
		if ((size_t)n < cap) {
			buf[n] = '\0';
			return buf;
		}
		free(buf);
		cap *= 2;
	}
}

/* The file that writing `path` replaces (malloc'ed into *out): path itself,
 * unless its last component is a symlink; then the file the chain of links
 * ends at, which need not exist (a dangling link names the file to create),
 * with its directory made canonical.  The links themselves stay as they are,
 * and the lock is taken on the real file, whatever name reached it. */
static int resolve_target(const char *path, char **out, struct ls_error *err)
{
	char *cur = strdup(path);
	if (!cur)
		return ls_fail(err, ENOMEM, "%s: out of memory", path);
	/* Written in place (a pipe, a device; /dev/stdout's magic link has no
	 * target to read): nothing to resolve. */
	struct stat tst;
	if (stat(path, &tst) == 0 && !S_ISREG(tst.st_mode)) {
		*out = cur;
		return 0;
	}
	bool followed = false;
	for (int hops = 0;; hops++) {
		struct stat st;
		if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode))
			break;  /* absent or not a link: later steps report errors */
		if (hops == MAX_LINKS) {
			free(cur);
			return ls_fail_errno(err, ELOOP, "%s", path);
		}
		char *target = read_link(cur, (size_t)st.st_size);
		if (!target) {
			int e = errno;
			free(cur);
			return ls_fail_errno(err, e, "%s", path);
		}
		char *next = target, *dir = NULL;
		if (target[0] != '/') {
			dir = dir_of(cur);
			if (!dir || asprintf(&next, "%s/%s", dir, target) < 0)
				next = NULL;
			free(target);
		}
		free(dir);
		if (!next) {
			free(cur);
			return ls_fail(err, ENOMEM, "%s: out of memory", path);
		}
		/* A link whose text does not name what it leads to (a /proc
		 * magic link to a deleted file): no path to replace. */
		struct stat a, b;
		if (stat(cur, &a) == 0 && (stat(next, &b) != 0 || !same_file(&a, &b))) {
			free(next);
			free(cur);
			return ls_fail(err, ENOENT, "%s: symlink to a file without a name", path);
		}
		free(cur);
		cur = next;
		followed = true;
	}
	if (followed) {
		/* The canonical directory: messages and skip paths then name the
		 * real file rather than a chain of links. */
		char *dir = dir_of(cur), *base = base_of(cur);
		char *real = dir ? realpath(dir, NULL) : NULL;
		char *canon = NULL;
		if (real && base && asprintf(&canon, "%s/%s", strcmp(real, "/") ? real : "", base) >= 0) {
			free(cur);
			cur = canon;
		}
		free(real);
		free(dir);
		free(base);
	}
	*out = cur;
	return 0;
}

/* Takes the OFD lock on path.lock.  The lock file is removed by the run that
 * holds it (ls_output_abort) while still holding it, so a run that opened the
 * file just before may then lock a removed inode: after locking, the name
 * must still be our file, else the open and lock are retried. */
static int take_lock(struct ls_output *out, struct ls_error *err)
{
	if (asprintf(&out->lock_path, "%s.lock", out->path) < 0) {
		out->lock_path = NULL;
		return ls_fail(err, ENOMEM, "%s: out of memory", out->path);
	}
	const char *name = name_in(out->lock_path);
	for (int tries = 0; tries < MAX_TRIES; tries++) {
		int fd = openat(out->dir_fd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0644);
		if (fd < 0)
			return ls_fail_errno(err, errno, "%s", out->lock_path);
		if (ofd_lock(fd, F_WRLCK) != 0) {
			int e = errno;
			close(fd);
			if (e == EAGAIN || e == EACCES)
				return ls_fail(err, EBUSY, "%s: another layersnap run is writing %s",
					       out->lock_path, out->path);
			return ls_fail_errno(err, e, "%s: lock", out->lock_path);
		}
		struct stat a, b;
		if (fstat(fd, &a) != 0) {
			int e = errno;
			close(fd);
			return ls_fail_errno(err, e, "%s", out->lock_path);
		}
		int e = fstatat(out->dir_fd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : errno;
		if (e == 0 && same_file(&a, &b)) {
			out->lock_fd = fd;
			out->locked = true;
			return 0;
		}
		close(fd);
		if (e != 0 && e != ENOENT)
			return ls_fail_errno(err, e, "%s", out->lock_path);
	}
	return ls_fail(err, EBUSY, "%s: the lock file keeps being replaced", out->lock_path);
}

/* Removes `name` in dir_fd when it is a temporary no live writer holds.
 * Every writer holds a write lock on its temporary for as long as the file
 * exists, so our read lock is granted only when the writer is gone; holding
 * it, and with the name checked to still be that file, it is removed.  A
 * writer that loses the race for a file it has just made notices (see
 * create_named).  Returns whether it was removed. */
static bool remove_if_dead(int dir_fd, const char *name)
{
	struct stat a, b;
	/* Never open anything but a regular file (a tape rewinds on open). */
	if (fstatat(dir_fd, name, &a, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(a.st_mode))
		return false;
	int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool gone = fstat(fd, &a) == 0 && S_ISREG(a.st_mode) && ofd_lock(fd, F_RDLCK) == 0 &&
		    fstatat(dir_fd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 && same_file(&a, &b) &&
		    unlinkat(dir_fd, name, 0) == 0;
	close(fd);
	return gone;
}

/* Removes the stale temporaries `.BASE.layersnap-tmp.*` beside the target:
 * the leftovers of killed runs on the named fallback (and of a run killed
 * between link and rename).  Only this base name's pattern and only files no
 * live run holds, so it is safe with or without PATH.lock (an unlocked layer
 * may be written by two runs at once).  Best effort: what cannot be opened or
 * removed stays, and walks skip the name anyway. */
static size_t remove_stale(int dir_fd, const char *base)
{
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return 0;
	}
	size_t bl = strlen(base), ml = strlen(TEMP_MARK), n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		const char *s = e->d_name;
		if (s[0] != '.' || strncmp(s + 1, base, bl) != 0 || strncmp(s + 1 + bl, TEMP_MARK, ml) != 0)
			continue;
		if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN)
			continue;
		if (remove_if_dead(dirfd(d), s))
			n++;
	}
	closedir(d);
	return n;
}

/* Whether the O_TMPFILE fd can be linked at commit through /proc/self/fd
 * (not when /proc is not mounted: then the named fallback is used). */
static bool proc_link_usable(int fd)
{
	char p[64];
	struct stat a, b;
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	return fstat(fd, &a) == 0 && stat(p, &b) == 0 && same_file(&a, &b);
}

/* Creates the named temporary tmp_path, write-locked.  Between the create
 * and the lock, a stale-temporary remover may take the file: our lock then
 * fails (it holds a read lock) or the name no longer is our file; either
 * way, start over with another name.  On a file system without locks the
 * file stays unlocked: removers cannot lock it either, so never remove it. */
static int create_named(struct ls_output *out, struct ls_error *err)
{
	const char *name = name_in(out->tmp_path);
	for (int tries = 0; tries < MAX_TRIES; tries++) {
		random_suffix(out->tmp_path, (unsigned)tries);
		int fd = openat(out->dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC,
				0600);
		if (fd < 0) {
			if (errno == EEXIST)
				continue;
			return ls_fail_errno(err, errno, "%s", out->path);
		}
		struct stat a, b;
		bool lost = ofd_lock(fd, F_WRLCK) != 0 && (errno == EAGAIN || errno == EACCES);
		if (!lost && fstat(fd, &a) == 0 && fstatat(out->dir_fd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
		    same_file(&a, &b)) {
			out->fd = fd;
			out->tmp_named = true;
			return 0;
		}
		close(fd);  /* the remover unlinks it (or did) */
	}
	return ls_fail(err, EEXIST, "%s: no free temporary name", out->path);
}

/* Opens the temporary: an O_TMPFILE unless told not to or unsupported. */
static int create_temp(struct ls_output *out, const char *dir, const char *base, bool no_tmpfile,
		       struct ls_error *err)
{
	if (asprintf(&out->tmp_path, "%s/.%s" TEMP_MARK "XXXXXX", dir, base) < 0) {
		out->tmp_path = NULL;
		return ls_fail(err, ENOMEM, "%s: out of memory", out->path);
	}
	if (!no_tmpfile) {
		int fd = openat(out->dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd >= 0 && !proc_link_usable(fd)) {
			close(fd);
			fd = -1;
			errno = EOPNOTSUPP;
		}
		if (fd >= 0) {
			/* In place before the link gives the file a name, so the
			 * name is never taken for a stale one.  Nobody else can
			 * hold a lock on a nameless file; without lock support,
			 * removers cannot lock (and remove) it either. */
			(void)ofd_lock(fd, F_WRLCK);
			random_suffix(out->tmp_path, 0);
			out->fd = fd;
			return 0;
		}
		/* Not supported by this kernel or file system: fall back.  Old
		 * kernels see O_TMPFILE as O_DIRECTORY and answer EISDIR. */
		if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL && errno != ENOSYS)
			return ls_fail_errno(err, errno, "%s", out->path);
	}
	return create_named(out, err);
}

int ls_output_open(struct ls_output *out, const char *path, bool lock, struct ls_error *err)
{
	struct ls_output_options opts = { .lock = lock };
	return ls_output_open_opts(out, path, &opts, err);
}

int ls_output_open_opts(struct ls_output *out, const char *path, const struct ls_output_options *opts,
			struct ls_error *err)
{
	static const struct ls_output_options defaults;
	if (!opts)
		opts = &defaults;
	memset(out, 0, sizeof(*out));
	out->fd = -1;
	out->dir_fd = -1;
	out->lock_fd = -1;
	if (strcmp(path, "-") == 0) {
		out->fd = STDOUT_FILENO;
		return 0;
	}
	if (!*path)
		return ls_fail(err, ENOENT, "empty output path");
	int rc = resolve_target(path, &out->path, err);
	if (rc)
		return rc;
	struct stat st;
	size_t pl = strlen(out->path);
	bool exists = stat(out->path, &st) == 0;
	/* A directory or a name ending in '/' can only be a directory: never
	 * turn it into a file (nor lock it). */
	if ((exists && S_ISDIR(st.st_mode)) || out->path[pl - 1] == '/') {
		if (exists && S_ISDIR(st.st_mode))
			rc = ls_fail(err, EISDIR, "%s: is a directory", out->path);
		else
			rc = ls_fail_errno(err, exists ? ENOTDIR : ENOENT, "%s", out->path);
		free(out->path);
		out->path = NULL;
		return rc;
	}

	char *dir = dir_of(out->path), *base = base_of(out->path);
	if (!dir || !base) {
		rc = ls_fail(err, ENOMEM, "%s: out of memory", out->path);
		goto fail;
	}
	out->dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (out->dir_fd < 0) {
		rc = ls_fail_errno(err, errno, "%s", out->path);
		goto fail;
	}
	if (opts->lock && (rc = take_lock(out, err)))
		goto fail;

	/* Decided under the lock: the target may have changed meanwhile. */
	exists = stat(out->path, &st) == 0;
	if (exists && S_ISDIR(st.st_mode)) {
		rc = ls_fail(err, EISDIR, "%s: is a directory", out->path);
		goto fail;
	}
	if (exists && !S_ISREG(st.st_mode)) {
		out->fd = open(out->path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
		if (out->fd < 0) {
			rc = ls_fail_errno(err, errno, "%s", out->path);
			goto fail;
		}
		free(dir);
		free(base);
		return 0;
	}

	out->n_stale = remove_stale(out->dir_fd, base);
	if ((rc = create_temp(out, dir, base, opts->no_tmpfile, err)))
		goto fail;
	out->atomic = true;
	mode_t mode = exists ? (st.st_mode & 07777) : (0666 & ~current_umask());
	if (fchmod(out->fd, mode) != 0) {
		rc = ls_fail_errno(err, errno, "%s", out->path);
		goto fail;
	}
	struct stat tst;
	if (fstat(out->fd, &tst) != 0) {
		rc = ls_fail_errno(err, errno, "%s", out->path);
		goto fail;
	}
	out->dev = tst.st_dev;
	out->ino = tst.st_ino;
	free(dir);
	free(base);
	return 0;
fail:
	free(dir);
	free(base);
	ls_output_abort(out);
	return rc;
}

/* Gives the O_TMPFILE its name tmp_path (another random one on a clash). */
static int link_tmpfile(struct ls_output *out)
{
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", out->fd);
	const char *name = name_in(out->tmp_path);
	for (int tries = 0; tries < MAX_TRIES; tries++) {
		if (tries)
			random_suffix(out->tmp_path, (unsigned)tries);
		if (linkat(AT_FDCWD, proc, out->dir_fd, name, AT_SYMLINK_FOLLOW) == 0) {
			out->tmp_named = true;
			return 0;
		}
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

/* Renames the temporary to final (a name in dir_fd).  With noreplace, an
 * existing final is kept (*kept) and the temporary left for the abort to
 * remove; where the file system has no RENAME_NOREPLACE, a link does the
 * same (it never replaces either). */
static int place(struct ls_output *out, const char *final, bool noreplace, bool *kept)
{
	const char *tmp = name_in(out->tmp_path);
	if (!noreplace)
		return renameat(out->dir_fd, tmp, out->dir_fd, final) == 0 ? 0 : -errno;
	if (renameat2(out->dir_fd, tmp, out->dir_fd, final, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
		if (linkat(out->dir_fd, tmp, out->dir_fd, final, 0) == 0) {
			unlinkat(out->dir_fd, tmp, 0);
			return 0;
		}
	}
	if (errno != EEXIST)
		return -errno;
	*kept = true;
	return 1;
}

static int commit_to(struct ls_output *out, const char *final, bool noreplace, bool *kept, bool do_fsync,
		     struct ls_error *err);

int ls_output_commit(struct ls_output *out, bool do_fsync, struct ls_error *err)
{
	return commit_to(out, NULL, false, NULL, do_fsync, err);
}

int ls_output_commit_as(struct ls_output *out, const char *name, bool *kept, bool do_fsync, struct ls_error *err)
{
	bool k = false;
	int rc;
	if (!out->atomic || strchr(name, '/') || !*name)
		rc = ls_fail(err, EINVAL, "%s: cannot be committed as %s", out->path ? out->path : "stdout", name);
	else
		rc = commit_to(out, name, true, &k, do_fsync, err);
	if (kept)
		*kept = k;
	return rc;
}

/* final: the name to commit the temporary as, NULL for the target's. */
static int commit_to(struct ls_output *out, const char *final, bool noreplace, bool *kept, bool do_fsync,
		     struct ls_error *err)
{
	const char *name = out->path ? out->path : "stdout";
	if (out->fd < 0)
		return ls_fail(err, EBADF, "%s: output already closed", name);
	if (!out->atomic) {
		if (do_fsync && fsync(out->fd) != 0 && errno != EINVAL && errno != EROFS) {
			int e = errno;
			return ls_fail_errno(err, e, "%s", name);
		}
		if (out->fd != STDOUT_FILENO && close(out->fd) != 0) {
			int e = errno;
			out->fd = -1;
			return ls_fail_errno(err, e, "%s", name);
		}
		out->fd = -1;
		ls_output_abort(out);
		return 0;
	}
	if (do_fsync && fsync(out->fd) != 0) {
		int e = errno;
		return ls_fail_errno(err, e, "%s", name);
	}
	/* Write errors some file systems (NFS) defer to close show up on the
	 * close of any fd; close a duplicate, so that the original keeps the
	 * temporary (and its lock) until the rename. */
	int dup_fd = dup(out->fd);
	if (dup_fd < 0 || close(dup_fd) != 0) {
		int e = errno;
		return ls_fail_errno(err, e, "%s", name);
	}
	int rc = out->tmp_named ? 0 : link_tmpfile(out);
	if (rc)
		return ls_fail_errno(err, -rc, "%s", name);
	rc = place(out, final ? final : name_in(out->path), noreplace, kept);
	if (rc < 0)
		return ls_fail_errno(err, -rc, "%s", name);
	if (rc > 0) {
		ls_output_abort(out);  /* kept: the temporary goes */
		return 0;
	}
	out->tmp_named = false;
	if (do_fsync) {
		int dfd = openat(out->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	ls_output_abort(out);
	return 0;
}

void ls_output_abort(struct ls_output *out)
{
	/* Names are removed while their locks are held: they are ours. */
	if (out->tmp_named && out->tmp_path && out->path && out->dir_fd >= 0)
		unlinkat(out->dir_fd, name_in(out->tmp_path), 0);
	out->tmp_named = false;
	if (out->fd >= 0 && out->fd != STDOUT_FILENO)
		close(out->fd);
	out->fd = -1;
	out->atomic = false;
	if (out->locked) {
		unlinkat(out->dir_fd, name_in(out->lock_path), 0);
		close(out->lock_fd);
	}
	out->locked = false;
	out->lock_fd = -1;
	if (out->path && out->dir_fd >= 0)
		close(out->dir_fd);
	out->dir_fd = -1;
	free(out->tmp_path);
	out->tmp_path = NULL;
	free(out->lock_path);
	out->lock_path = NULL;
	free(out->path);
	out->path = NULL;
}
