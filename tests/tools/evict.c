/*
 * evict: drops the page cache of the regular files under each PATH (a file
 * or a directory, walked without following symlinks), so that the next read
 * of them is cold, without dropping every cache of the machine as
 * /proc/sys/vm/drop_caches would.  Each file is flushed first (fdatasync),
 * since POSIX_FADV_DONTNEED drops clean pages only.
 *
 *   evict PATH...
 *
 * Prints nothing.  Exits 0 when every non-empty file is cold afterwards
 * (mincore of its first page; a probing read would start read-ahead, even
 * with RWF_NOWAIT), 3 when some file stays cached
 * (tmpfs keeps its pages; a caller skips its cold checks then), 1 on an
 * error.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int n_cached;
static int n_failed;

static int evict_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	if (type != FTW_F || !S_ISREG(st->st_mode) || st->st_size == 0)
		return 0;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fdatasync(fd) != 0 || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0) {
		fprintf(stderr, "evict: %s: %s\n", path, strerror(errno));
		n_failed++;
		if (fd >= 0)
			close(fd);
		return 0;
	}
	/* Mapped, never touched: mincore reads residency without a fault. */
	unsigned char resident = 0;
	void *p = mmap(NULL, 1, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED || mincore(p, 1, &resident) != 0) {
		fprintf(stderr, "evict: %s: %s\n", path, strerror(errno));
		n_failed++;
	} else if (resident & 1) {
		n_cached++;
	}
	if (p != MAP_FAILED)
		munmap(p, 1);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: evict PATH...\n");
		return 1;
	}
	for (int i = 1; i < argc; i++)
		if (nftw(argv[i], evict_one, 16, FTW_PHYS) != 0) {
			fprintf(stderr, "evict: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
	if (n_failed)
		return 1;
	return n_cached ? 3 : 0;
}
