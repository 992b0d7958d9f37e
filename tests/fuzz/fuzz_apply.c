/*
 * Fuzz target: the layer reader behind apply (ls_apply).
 *
 * The input is a layer (tar, tar+gzip or tar+zstd, as apply detects it).
 * It is fed to ls_apply through a pipe (a memfd when it exceeds the pipe's
 * capacity), as `layersnap apply - ROOT` reads it, onto a fresh ROOT in a
 * private scratch directory:
 *
 *   SCRATCH/              mode 0700, under $LS_FUZZ_TMP, $TMPDIR or /tmp
 *     sentinel/           must never change: secret, sub/f, link -> secret
 *     root/               ROOT, made anew for every input, holding what a
 *       a/old, a/sub/f    hostile lower layer could have left: symlinks out
 *       out -> ../sentinel, abs -> SCRATCH/sentinel,
 *       victim -> SCRATCH/sentinel/secret
 *
 * Checked after every input: apply returned 0 or a negative code with a
 * one-line message; the sentinel is byte for byte and stat for stat what it
 * was (type, mode, owner, size, mtime, ctime, inode, link count, target,
 * contents); SCRATCH holds nothing but root and sentinel; ROOT holds no
 * device node (other than the inert 0:0 character device of a whiteout).
 *
 * Device nodes.  apply makes character and block devices with mknodat() when
 * it runs as root (euid 0).  A fuzzed layer must never create a real device
 * (a 1:1 /dev/mem, an 8:0 disk) that a later step could open, so the target
 * drops CAP_MKNOD at start, from its bounding, effective, permitted and
 * inheritable sets (prctl PR_CAPBSET_DROP + capset): the kernel then refuses
 * every mknod of a device with EPERM (vfs_mknod checks CAP_MKNOD; the one
 * exception is the 0:0 whiteout device, which opens nothing), and apply fails
 * on such an entry, which is an error path worth fuzzing too.  It checks that
 * by making a 1:3 device itself, and refuses to run if that works.  Not a
 * user namespace: apply would still see euid 0 there, but every chown to an
 * unmapped id would fail, hiding the owner, xattr and capability paths a
 * root apply takes, and Docker's default seccomp profile refuses
 * unshare(CLONE_NEWUSER).  Not stubbing mknodat: the library is linked as it
 * is shipped.  Everything else root may do stays possible: the scratch
 * directory is 0700, so the setuid files and capabilities a layer may carry
 * are out of every other user's reach.  RLIMIT_FSIZE is 64 MiB (SIGXFSZ
 * ignored) so that a small compressed input cannot fill the disk.
 */
#include "fuzz.h"
#include "layersnap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static char scratch[4096], root[4200], sentinel[4200];
static int scratch_fd = -1;
static bool verbose;         /* LS_FUZZ_VERBOSE=1: apply's result for each input */
static char *sentinel_state;
static size_t sentinel_state_len;

/* ---- a growing text buffer ------------------------------------------------------ */

struct buf {
	char *p;
	size_t len, cap;
};

__attribute__((format(printf, 2, 3)))
static void bprintf(struct buf *b, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			FUZZ_DIE("vsnprintf");
		if (b->p && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t ncap = b->cap ? b->cap * 2 : 4096;
		while (ncap <= b->len + (size_t)n)
			ncap *= 2;
		if (!(b->p = realloc(b->p, ncap)))
			FUZZ_DIE("out of memory");
		b->cap = ncap;
	}
}

/* ---- the sentinel ------------------------------------------------------------ */

static uint64_t fnv(const char *p, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
	return h;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends one line per entry of the tree at/name (name included). */
static void describe(int at, const char *name, const char *shown, struct buf *b)
{
	struct stat st;
	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		bprintf(b, "%s: %s\n", shown, strerror(errno));
		return;
	}
	bprintf(b, "%s %o %u:%u %lld %lld.%09ld %lld.%09ld %llu %lu", shown, (unsigned)st.st_mode,
		(unsigned)st.st_uid, (unsigned)st.st_gid, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
		st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec,
		(unsigned long long)st.st_ino, (unsigned long)st.st_nlink);
	if (S_ISLNK(st.st_mode)) {
		char t[4096];
		ssize_t n = readlinkat(at, name, t, sizeof(t));
		bprintf(b, " -> %.*s", (int)(n > 0 ? n : 0), t);
	} else if (S_ISREG(st.st_mode)) {
		int fd = openat(at, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
		uint64_t h = 14695981039346656037ull;
		char chunk[4096];
		ssize_t n;
		while (fd >= 0 && (n = read(fd, chunk, sizeof(chunk))) > 0)
			h = fnv(chunk, (size_t)n, h);
		if (fd >= 0)
			close(fd);
		bprintf(b, " %016llx", (unsigned long long)h);
	}
	bprintf(b, "\n");
	if (!S_ISDIR(st.st_mode))
		return;
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		bprintf(b, "%s/: %s\n", shown, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	char **names = NULL;
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (!(names = realloc(names, (n + 1) * sizeof(*names))) || !(names[n] = strdup(e->d_name)))
			FUZZ_DIE("out of memory");
		n++;
	}
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		char sub[4096];
		snprintf(sub, sizeof(sub), "%s/%s", shown, names[i]);
		describe(dirfd(d), names[i], sub, b);
		free(names[i]);
	}
	free(names);
	closedir(d);
}

/* The sentinel and the names in SCRATCH. */
static void outside_state(struct buf *b)
{
	b->len = 0;
	describe(scratch_fd, "sentinel", "sentinel", b);
	int fd = openat(scratch_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d)
		FUZZ_DIE("%s: %s", scratch, strerror(errno));
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "root") &&
		    strcmp(e->d_name, "sentinel"))
			bprintf(b, "new in the scratch directory: %s\n", e->d_name);
	closedir(d);
}

/* ---- ROOT ---------------------------------------------------------------------- */

/* Removes dirfd/name and everything below it, never following a symlink;
 * fails the run on a device node other than 0:0. */
static void remove_tree(int at, const char *name)
{
	struct stat st;
	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno == ENOENT)
			return;
		FUZZ_DIE("stat %s: %s", name, strerror(errno));
	}
	FUZZ_CHECK(!((S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) && st.st_rdev != 0),
		   "a device node %u:%u was made in ROOT (%s)", major(st.st_rdev), minor(st.st_rdev), name);
	if (S_ISDIR(st.st_mode)) {
		if ((st.st_mode & 0700) != 0700)
			fchmodat(at, name, 0700, 0);
		int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
		if (!d)
			FUZZ_DIE("open %s: %s", name, strerror(errno));
		/* the names first: no readdir over a directory that changes */
		char **names = NULL;
		size_t n = 0;
		struct dirent *e;
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			if (!(names = realloc(names, (n + 1) * sizeof(*names))) || !(names[n] = strdup(e->d_name)))
				FUZZ_DIE("out of memory");
			n++;
		}
		for (size_t i = 0; i < n; i++) {
			remove_tree(dirfd(d), names[i]);
			free(names[i]);
		}
		free(names);
		closedir(d);
		if (unlinkat(at, name, AT_REMOVEDIR) != 0)
			FUZZ_DIE("rmdir %s: %s", name, strerror(errno));
	} else if (unlinkat(at, name, 0) != 0) {
		FUZZ_DIE("unlink %s: %s", name, strerror(errno));
	}
}

static void put_file(const char *path, const char *content)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, content, strlen(content)) != (ssize_t)strlen(content) || close(fd) != 0)
		FUZZ_DIE("%s: %s", path, strerror(errno));
}

static void must(int rc, const char *what)
{
	if (rc != 0)
		FUZZ_DIE("%s: %s", what, strerror(errno));
}

static void new_root(void)
{
	char p[4400], t[4400];
	remove_tree(scratch_fd, "root");
	must(mkdir(root, 0755), root);
	snprintf(p, sizeof(p), "%s/a", root);
	must(mkdir(p, 0755), p);
	snprintf(p, sizeof(p), "%s/a/sub", root);
	must(mkdir(p, 0755), p);
	snprintf(p, sizeof(p), "%s/a/old", root);
	put_file(p, "old\n");
	snprintf(p, sizeof(p), "%s/a/sub/f", root);
	put_file(p, "f\n");
	snprintf(p, sizeof(p), "%s/out", root);
	must(symlink("../sentinel", p), p);
	snprintf(p, sizeof(p), "%s/abs", root);
	must(symlink(sentinel, p), p);
	snprintf(p, sizeof(p), "%s/victim", root);
	snprintf(t, sizeof(t), "%s/secret", sentinel);
	must(symlink(t, p), p);
}

/* ---- set-up ---------------------------------------------------------------- */

static void drop_mknod(void)
{
	if (geteuid() != 0)
		return;  /* apply skips device nodes when not root */
	/* the bounding set needs CAP_SETPCAP and only matters for programs
	 * this one would exec (none): best effort; the probe below decides */
	(void)prctl(PR_CAPBSET_DROP, CAP_MKNOD, 0, 0, 0);
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) != 0)
		FUZZ_DIE("capget: %s", strerror(errno));
	d[CAP_TO_INDEX(CAP_MKNOD)].effective &= ~CAP_TO_MASK(CAP_MKNOD);
	d[CAP_TO_INDEX(CAP_MKNOD)].permitted &= ~CAP_TO_MASK(CAP_MKNOD);
	d[CAP_TO_INDEX(CAP_MKNOD)].inheritable &= ~CAP_TO_MASK(CAP_MKNOD);
	if (syscall(SYS_capset, &h, d) != 0)
		FUZZ_DIE("capset: %s", strerror(errno));
}

static void cleanup(void)
{
	if (scratch_fd < 0)
		return;
	remove_tree(AT_FDCWD, scratch);
	close(scratch_fd);
	scratch_fd = -1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	drop_mknod();
	verbose = getenv("LS_FUZZ_VERBOSE") && !strcmp(getenv("LS_FUZZ_VERBOSE"), "1");
	struct rlimit fsize = { 64u << 20, 64u << 20 };
	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &fsize) != 0)
		FUZZ_DIE("setrlimit: %s", strerror(errno));

	const char *base = getenv("LS_FUZZ_TMP");
	if (!base || !*base)
		base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	snprintf(scratch, sizeof(scratch), "%s/layersnap-fuzz-apply.XXXXXX", base);
	if (!mkdtemp(scratch))
		FUZZ_DIE("mkdtemp %s: %s", scratch, strerror(errno));
	must(chmod(scratch, 0700), scratch);
	scratch_fd = open(scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (scratch_fd < 0)
		FUZZ_DIE("%s: %s", scratch, strerror(errno));
	atexit(cleanup);
	snprintf(root, sizeof(root), "%s/root", scratch);
	snprintf(sentinel, sizeof(sentinel), "%s/sentinel", scratch);

	char p[4400];
	must(mkdir(sentinel, 0755), sentinel);
	snprintf(p, sizeof(p), "%s/sub", sentinel);
	must(mkdir(p, 0755), p);
	snprintf(p, sizeof(p), "%s/secret", sentinel);
	put_file(p, "secret\n");
	snprintf(p, sizeof(p), "%s/sub/f", sentinel);
	put_file(p, "inner\n");
	snprintf(p, sizeof(p), "%s/link", sentinel);
	must(symlink("secret", p), p);

	/* the proof that no device can be made */
	if (geteuid() == 0) {
		if (mknodat(scratch_fd, "probe-dev", S_IFCHR | 0600, makedev(1, 3)) == 0) {
			unlinkat(scratch_fd, "probe-dev", 0);
			FUZZ_DIE("mknod of a 1:3 device still works after dropping CAP_MKNOD: refusing to run");
		}
		if (errno != EPERM)
			FUZZ_DIE("mknod probe: %s (expected EPERM)", strerror(errno));
	}

	struct buf b = { 0 };
	outside_state(&b);
	sentinel_state = b.p;
	sentinel_state_len = b.len;
	return 0;
}

/* ---- the target -------------------------------------------------------------- */

static int layer_fd(const uint8_t *data, size_t size)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		FUZZ_DIE("pipe: %s", strerror(errno));
	int cap = fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
	if (cap < 0)
		cap = fcntl(p[1], F_GETPIPE_SZ);
	int fd = p[0];
	if (cap < 0 || size > (size_t)cap) {
		close(p[0]);
		close(p[1]);
		fd = memfd_create("layer", MFD_CLOEXEC);
		if (fd < 0)
			FUZZ_DIE("memfd_create: %s", strerror(errno));
		p[1] = fd;
	}
	for (size_t done = 0; done < size;) {
		ssize_t n = write(p[1], data + done, size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			FUZZ_DIE("write: %s", strerror(errno));
		done += (size_t)n;
	}
	if (fd == p[1]) {
		if (lseek(fd, 0, SEEK_SET) != 0)
			FUZZ_DIE("lseek: %s", strerror(errno));
	} else {
		close(p[1]);
	}
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > (4u << 20))
		return 0;
	new_root();
	int fd = layer_fd(data, size);
	struct ls_apply_options opts = LS_APPLY_OPTIONS_INIT;
	struct ls_apply_stats stats = LS_APPLY_STATS_INIT;
	struct ls_error err = { 0 };
	int rc = ls_apply(fd, root, &opts, &stats, &err);
	close(fd);
	if (verbose)
		fprintf(stderr, "apply: %s (%llu entries, %llu whiteouts, %llu skipped)\n", rc ? err.msg : "ok",
			(unsigned long long)stats.entries, (unsigned long long)stats.whiteouts,
			(unsigned long long)stats.skipped);
	if (rc)
		FUZZ_CHECK_ERROR(rc, err);
	else
		FUZZ_CHECK(stats.whiteouts + stats.skipped <= stats.entries, "stats %llu %llu %llu",
			   (unsigned long long)stats.entries, (unsigned long long)stats.whiteouts,
			   (unsigned long long)stats.skipped);

	struct buf b = { 0 };
	outside_state(&b);
	if (b.len != sentinel_state_len || memcmp(b.p, sentinel_state, b.len) != 0) {
		fprintf(stderr, "--- outside ROOT, before:\n%s--- after (apply: %d %s):\n%s", sentinel_state, rc,
			rc ? err.msg : "ok", b.p);
		FUZZ_CHECK(0, "apply changed something outside ROOT");
	}
	free(b.p);
	remove_tree(scratch_fd, "root");  /* also checks for device nodes */
	return 0;
}
