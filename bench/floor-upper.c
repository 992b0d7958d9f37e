/*
 * floor-upper: the floor loop of bench/run.sh's overlay step, what the
 * syscalls of `diff --upper` cost with nothing else around them.
 *
 *   floor-upper [-v] UPPERDIR MERGED BASE OUT
 *
 * One thread:
 *   - BASE (the base manifest) is mapped and hashed whole with XXH3-64, as a
 *     manifest load checksums it (no record is checked);
 *   - UPPERDIR is listed with getdents64 from directory descriptors, with one
 *     listxattrat per entry (the overlay markers), as layersnap lists it;
 *   - every directory of it is opened in MERGED too (beneath its merged
 *     parent) and statx'ed through the fd; every other entry is statx'ed
 *     through its merged directory, and a regular file is opened there, its
 *     security.capability read, its bytes read and written to OUT after a
 *     512-byte header (a tar's framing, with no header formatted).
 *
 * Nothing is compared and no manifest is written.  Reports nothing (-v: the
 * entries and bytes, on stderr); exits 0, or 1 with a message on stderr.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "xxh.h"

#ifndef SYS_listxattrat
#define SYS_listxattrat 465
#endif

#define DENTBUF (64u * 1024)
#define CHUNK   (256u * 1024)

struct floor {
	int out;
	unsigned char *buf;
	char names[64 * 1024];
	long entries, bytes;
	int listxattrat_missing;
};

static int fail(const char *what, const char *name, int err)
{
	fprintf(stderr, "floor-upper: %s %s: %s\n", what, name, strerror(err));
	return -1;
}

/* The entry's xattr names, as the marker check lists them. */
static int list_names(struct floor *f, int dfd, const char *name)
{
	if (!f->listxattrat_missing) {
		long n = syscall(SYS_listxattrat, dfd, name, AT_SYMLINK_NOFOLLOW, f->names, sizeof(f->names));
		if (n >= 0 || errno != ENOSYS)
			return n < 0 ? fail("listxattrat", name, errno) : 0;
		f->listxattrat_missing = 1;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d/", dfd);
	size_t pl = strlen(path), nl = strlen(name);
	char *full = malloc(pl + nl + 1);
	if (!full)
		return fail("malloc", name, ENOMEM);
	memcpy(full, path, pl);
	memcpy(full + pl, name, nl + 1);
	ssize_t n = llistxattr(full, f->names, sizeof(f->names));
	free(full);
	return n < 0 ? fail("llistxattr", name, errno) : 0;
}

static int put(struct floor *f, const void *p, size_t n)
{
	for (size_t done = 0; done < n;) {
		ssize_t w = write(f->out, (const char *)p + done, n - done);
		if (w < 0)
			return fail("write", "OUT", errno);
		done += (size_t)w;
	}
	return 0;
}

static int copy_file(struct floor *f, int mfd, const char *name)
{
	int fd = openat(mfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return fail("open", name, errno);
	char cap[64];
	if (fgetxattr(fd, "security.capability", cap, sizeof(cap)) < 0 && errno != ENODATA) {
		int e = errno;
		close(fd);
		return fail("fgetxattr", name, e);
	}
	int rc = 0;
	for (;;) {
		ssize_t n = read(fd, f->buf, CHUNK);
		if (n < 0) {
			rc = fail("read", name, errno);
			break;
		}
		if (n == 0 || (rc = put(f, f->buf, (size_t)n)))
			break;
		f->bytes += n;
	}
	close(fd);
	return rc;
}

/* Lists upper directory ufd (closed here) beside its merged one mfd (also). */
static int walk(struct floor *f, int ufd, int mfd)
{
	char *dents = malloc(DENTBUF);
	int rc = dents ? 0 : fail("malloc", "getdents64 buffer", ENOMEM);
	long n;
	while (rc == 0 && (n = syscall(SYS_getdents64, ufd, dents, DENTBUF)) != 0) {
		if (n < 0) {
			rc = fail("getdents64", "UPPERDIR", errno);
			break;
		}
		for (long off = 0; rc == 0 && off < n;) {
			struct {
				uint64_t ino;
				int64_t off;
				unsigned short reclen;
				unsigned char type;
				char name[];
			} *d = (void *)(dents + off);
			off += d->reclen;
			if (strcmp(d->name, ".") == 0 || strcmp(d->name, "..") == 0)
				continue;
			if ((rc = list_names(f, ufd, d->name)))
				break;
			f->entries++;
			struct statx sx;
			if (d->type == DT_DIR) {
				int usub = openat(ufd, d->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				int msub = openat(mfd, d->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (usub < 0 || msub < 0 || statx(msub, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx) != 0) {
					rc = fail("open", d->name, errno);
					if (usub >= 0)
						close(usub);
					if (msub >= 0)
						close(msub);
					break;
				}
				rc = walk(f, usub, msub);
				continue;
			}
			/* A whiteout is gone from the merged view. */
			if (statx(mfd, d->name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_BASIC_STATS, &sx) != 0) {
				if (errno != ENOENT)
					rc = fail("statx", d->name, errno);
				continue;
			}
			static const unsigned char header[512];
			if ((rc = put(f, header, sizeof(header))))
				break;
			if (S_ISREG(sx.stx_mode))
				rc = copy_file(f, mfd, d->name);
		}
	}
	free(dents);
	close(ufd);
	close(mfd);
	return rc;
}

int main(int argc, char **argv)
{
	int verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
	if (argc - verbose != 5) {
		fputs("usage: floor-upper [-v] UPPERDIR MERGED BASE OUT\n", stderr);
		return 2;
	}
	const char *upper = argv[1 + verbose], *merged = argv[2 + verbose], *base = argv[3 + verbose];
	const char *out = argv[4 + verbose];
	int bfd = open(base, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (bfd < 0 || fstat(bfd, &st) != 0 || st.st_size == 0)
		return fail("open", base, bfd < 0 ? errno : EINVAL), 1;
	void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, bfd, 0);
	close(bfd);
	if (map == MAP_FAILED)
		return fail("mmap", base, errno), 1;
	XXH64_hash_t sum = XXH3_64bits(map, (size_t)st.st_size);
	munmap(map, (size_t)st.st_size);

	struct floor f = { .out = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), .buf = malloc(CHUNK) };
	if (f.out < 0)
		return fail("open", out, errno), 1;
	if (!f.buf)
		return fail("malloc", "buffer", ENOMEM), 1;
	int ufd = open(upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int mfd = open(merged, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ufd < 0 || mfd < 0)
		return fail("open", ufd < 0 ? upper : merged, errno), 1;
	int rc = walk(&f, ufd, mfd);
	if (close(f.out) != 0 && rc == 0)
		rc = fail("close", out, errno);
	free(f.buf);
	if (verbose)
		fprintf(stderr, "floor-upper: %ld entries, %ld bytes; base %016llx\n", f.entries, f.bytes,
			(unsigned long long)sum);
	return rc ? 1 : 0;
}
