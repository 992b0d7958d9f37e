#include "output.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

int ls_output_open(struct ls_output *out, const char *path, bool lock, struct ls_error *err)
{
	memset(out, 0, sizeof(*out));
	out->fd = -1;
	if (strcmp(path, "-") == 0) {
		out->fd = STDOUT_FILENO;
		return 0;
	}
	out->path = strdup(path);
	if (!out->path)
		return ls_fail(err, ENOMEM, "%s: out of memory", path);

	if (lock) {
		if (asprintf(&out->lock_path, "%s.lock", path) < 0) {
			out->lock_path = NULL;
			ls_output_abort(out);
			return ls_fail(err, ENOMEM, "%s: out of memory", path);
		}
		int lfd = open(out->lock_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (lfd < 0) {
			int e = errno;
			free(out->lock_path);
			out->lock_path = NULL;
			ls_output_abort(out);
			if (e == EEXIST)
				return ls_fail(err, e, "%s.lock exists: another layersnap run is writing %s "
					       "(remove the lock if none is)", path, path);
			return ls_fail_errno(err, e, "%s.lock", path);
		}
		close(lfd);
		out->locked = true;
	}

	struct stat st;
	bool exists = stat(path, &st) == 0;
	if (exists && S_ISDIR(st.st_mode)) {
		ls_output_abort(out);
		return ls_fail(err, EISDIR, "%s: is a directory", path);
	}
	if (exists && !S_ISREG(st.st_mode)) {
		out->fd = open(path, O_WRONLY | O_CLOEXEC);
		if (out->fd < 0) {
			int e = errno;
			ls_output_abort(out);
			return ls_fail_errno(err, e, "%s", path);
		}
		return 0;
	}

	char *dir = dir_of(path);
	char *base = strdup(path);
	if (!dir || !base || asprintf(&out->tmp_path, "%s/.%s.tmp.XXXXXX", dir, basename(base)) < 0) {
		out->tmp_path = NULL;
		free(dir);
		free(base);
		ls_output_abort(out);
		return ls_fail(err, ENOMEM, "%s: out of memory", path);
	}
	free(dir);
	free(base);
	out->fd = mkostemp(out->tmp_path, O_CLOEXEC);
	if (out->fd < 0) {
		int e = errno;
		free(out->tmp_path);
		out->tmp_path = NULL;
		ls_output_abort(out);
		return ls_fail_errno(err, e, "%s", path);
	}
	out->atomic = true;
	mode_t mode = exists ? (st.st_mode & 07777) : (0666 & ~current_umask());
	if (fchmod(out->fd, mode) != 0) {
		int e = errno;
		ls_output_abort(out);
		return ls_fail_errno(err, e, "%s", path);
	}
	struct stat tst;
	if (fstat(out->fd, &tst) == 0) {
		out->dev = tst.st_dev;
		out->ino = tst.st_ino;
	}
	return 0;
}

static void fsync_dir_of(const char *path)
{
	char *dir = dir_of(path);
	if (!dir)
		return;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	free(dir);
}

int ls_output_commit(struct ls_output *out, bool do_fsync, struct ls_error *err)
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
	int rc = close(out->fd);
	out->fd = -1;
	if (rc != 0) {
		int e = errno;
		return ls_fail_errno(err, e, "%s", name);
	}
	if (rename(out->tmp_path, out->path) != 0) {
		int e = errno;
		return ls_fail_errno(err, e, "%s", name);
	}
	free(out->tmp_path);
	out->tmp_path = NULL;
	if (do_fsync)
		fsync_dir_of(out->path);
	ls_output_abort(out);
	return 0;
}

void ls_output_abort(struct ls_output *out)
{
	if (out->fd >= 0 && out->fd != STDOUT_FILENO)
		close(out->fd);
	out->fd = -1;
	if (out->tmp_path) {
		unlink(out->tmp_path);
		free(out->tmp_path);
		out->tmp_path = NULL;
	}
	if (out->locked && out->lock_path)
		unlink(out->lock_path);
	out->locked = false;
	free(out->lock_path);
	out->lock_path = NULL;
	free(out->path);
	out->path = NULL;
}
