/* Unit tests for snapshot/path.c and snapshot/xattr.c: joining and
 * normalising paths, opening beneath a root (with openat2 and, in a child
 * where a seccomp filter refuses openat2, without), directory chains, and
 * reading xattrs into blobs (with getxattrat/listxattrat and, in a child
 * where they are refused, through /proc/self/fd).
 *
 * The checks that run both in this process and in a filtered child are
 * written with CHECK* (they count failures instead of jumping back into
 * cmocka, which a child must not do); the child's exit status tells the
 * parent how they went. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "ls_fds.h"
#include "ls_skip.h"
#include "path.h"
#include "xattr.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#define NR_GETXATTRAT 464
#define NR_LISTXATTRAT 465

/* ---- soft checks (usable in a forked child) -------------------------------- */

static int fails;
static bool in_child;

#define CHECK(c)                                                                       \
	do {                                                                           \
		if (!(c)) {                                                            \
			fprintf(stderr, "%s:%d:%s check failed: %s\n", __FILE__, __LINE__, \
				in_child ? " [fallback child]" : "", #c);              \
			fails++;                                                       \
		}                                                                      \
	} while (0)

#define CHECK_EQ(a, b)                                                                 \
	do {                                                                           \
		long long a_ = (long long)(a), b_ = (long long)(b);                    \
		if (a_ != b_) {                                                        \
			fprintf(stderr, "%s:%d:%s %s is %lld (%s), expected %s = %lld (%s)\n", \
				__FILE__, __LINE__, in_child ? " [fallback child]" : "", #a, \
				a_, a_ < 0 ? strerror((int)-a_) : "-", #b, b_,         \
				b_ < 0 ? strerror((int)-b_) : "-");                    \
			fails++;                                                       \
		}                                                                      \
	} while (0)

/* ---- the temporary tree ------------------------------------------------------ */

static char tmpdir[] = "/tmp/ls-test-path-XXXXXX";
static char outside_abs[64];  /* tmpdir/outside: what escaping symlinks point at */
static int tmpfd = -1;
static int rootfd = -1;       /* tmpdir/root */

/* Removes name beneath dfd, whatever it is, without a path length limit. */
static void rm_tree_at(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		unlinkat(dfd, name, 0);
		return;
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	bool again = true;
	while (again) {
		again = false;
		rewinddir(d);
		struct dirent *de;
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			rm_tree_at(fd, de->d_name);
			again = true;
		}
	}
	closedir(d);
	unlinkat(dfd, name, AT_REMOVEDIR);
}

static int setup_tmp(void **state)
{
	if (!mkdtemp(tmpdir))
		return -1;
	tmpfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tmpfd < 0 || mkdirat(tmpfd, "root", 0755) || mkdirat(tmpfd, "outside", 0755) ||
	    mkdirat(tmpfd, "outside/b", 0755))
		return -1;
	rootfd = openat(tmpfd, "root", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(outside_abs, sizeof(outside_abs), "%s/outside", tmpdir);
	int fd = openat(tmpfd, "outside/secret", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (rootfd < 0 || fd < 0 || write(fd, "secret\n", 7) != 7)
		return -1;
	close(fd);
	return 0;
}

static void free_open_tree(void);

static int teardown_tmp(void **state)
{
	free_open_tree();
	if (rootfd >= 0)
		close(rootfd);
	if (tmpfd >= 0) {
		rm_tree_at(tmpfd, "root");
		rm_tree_at(tmpfd, "outside");
		close(tmpfd);
	}
	rmdir(tmpdir);
	return 0;
}

static void mkfile_at(int dfd, const char *name, const char *content)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	size_t n = strlen(content);
	assert_int_equal(write(fd, content, n), (ssize_t)n);
	close(fd);
}

static int open_dir_at(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}


static bool same_inode(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* fd is the entry path beneath dfd (not following a symlink there). */
static bool fd_is(int fd, int dfd, const char *path)
{
	struct stat a, b;
	if (fstat(fd, &a) || fstatat(dfd, *path ? path : ".", &b, AT_SYMLINK_NOFOLLOW))
		return false;
	return same_inode(&a, &b);
}

static bool fd_is_st(int fd, const struct stat *want)
{
	struct stat a;
	return fstat(fd, &a) == 0 && same_inode(&a, want);
}

static bool cloexec(int fd)
{
	int f = fcntl(fd, F_GETFD);
	return f >= 0 && (f & FD_CLOEXEC);
}

/* The whole content of fd, NUL-terminated, in buf. */
static ssize_t read_all(int fd, char *buf, size_t size)
{
	size_t got = 0;
	while (got + 1 < size) {
		ssize_t n = read(fd, buf + got, size - 1 - got);
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	return (ssize_t)got;
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* ---- a seccomp filter that makes some system calls fail with ENOSYS --------- */

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#endif

#define MAX_DENY 4

static int deny_enosys(const int *nrs, size_t n)
{
#ifndef NATIVE_ARCH
	(void)nrs;
	(void)n;
	errno = ENOTSUP;
	return -1;
#else
	struct sock_filter prog[4 + MAX_DENY + 2];
	size_t k = 0;
	if (n > MAX_DENY) {
		errno = EINVAL;
		return -1;
	}
	/* Another ABI than the native one: killed, as in tests/tools/no-uring.c. */
	prog[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	prog[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0);
	prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	prog[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	/* Check i jumps over the remaining checks and the ALLOW to the ERRNO. */
	for (size_t i = 0; i < n; i++)
		prog[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nrs[i],
							 (unsigned char)(n - i), 0);
	prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA));
	struct sock_fprog fprog = { .len = (unsigned short)k, .filter = prog };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0);
#endif
}

/* Bytes allocated now, as a sanitizer build counts them (0 in a plain build,
 * where malloc's own statistics move with its caches). */
extern size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

static size_t allocated_bytes(void)
{
	return __sanitizer_get_current_allocated_bytes ? __sanitizer_get_current_allocated_bytes() : 0;
}

#define CHILD_NO_FILTER 125
#define CHILD_FILTER_INEFFECTIVE 124

/* Runs checks() in a child in which the system calls nrs fail with ENOSYS,
 * and fails the current test if any check failed there.  Returns false if
 * no filter can be installed (the caller skips). */
static bool run_without(const int *nrs, size_t n, void (*checks)(void))
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		in_child = true;
		if (deny_enosys(nrs, n) != 0) {
			fprintf(stderr, "cannot install a seccomp filter: %s\n", strerror(errno));
			_exit(CHILD_NO_FILTER);
		}
		/* The filter, not a bad argument, must be what refuses them. */
		for (size_t i = 0; i < n; i++) {
			errno = 0;
			if (syscall(nrs[i], -1, NULL, NULL, NULL, 0, 0) != -1 || errno != ENOSYS) {
				fprintf(stderr, "system call %d is not refused with ENOSYS\n", nrs[i]);
				_exit(CHILD_FILTER_INEFFECTIVE);
			}
		}
		fails = 0;
		size_t before = allocated_bytes();
		checks();
		size_t after = allocated_bytes();
		if (after != before) {
			fprintf(stderr, "[fallback child] %zd bytes still allocated after the checks\n",
				(ssize_t)(after - before));
			fails++;
		}
		fflush(stderr);
		/* _exit: a leak check at exit would also count what a failed
		 * test in the parent left behind before the fork. */
		_exit(fails ? 1 : 0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFEXITED(st) && WEXITSTATUS(st) == CHILD_NO_FILTER) {
		ls_skip_part("seccomp", "no seccomp filter: fallback checks");
		return false;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		print_message("fallback child: %s %d\n", WIFEXITED(st) ? "exit status" : "signal",
			      WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	return true;
}

/* Runs checks() here and fails the current test if any check failed. */
static void run_here(void (*checks)(void))
{
	fails = 0;
	checks();
	assert_int_equal(fails, 0);
}

/* ---- ls_path_join, ls_path_join_new ------------------------------------------ */

static void test_join(void **state)
{
	struct ls_pathbuf pb = { 0 };
	assert_int_equal(ls_path_join(&pb, "", 0, "name", 4), 0);
	assert_string_equal(pb.buf, "name");
	assert_int_equal(pb.len, 4);
	assert_true(pb.cap >= 5);

	/* The lengths bound dir and name, not their NULs. */
	assert_int_equal(ls_path_join(&pb, "abcdef", 3, "xyz123", 2), 0);
	assert_string_equal(pb.buf, "abc/xy");
	assert_int_equal(pb.len, 6);
	assert_int_equal(ls_path_join(&pb, "ignored", 0, "n", 1), 0);
	assert_string_equal(pb.buf, "n");
	assert_int_equal(pb.len, 1);
	/* An empty name leaves "DIR/" (what a directory chain asks for). */
	assert_int_equal(ls_path_join(&pb, "a", 1, "", 0), 0);
	assert_string_equal(pb.buf, "a/");
	assert_int_equal(pb.len, 2);

	/* dir inside pb->buf: all of it, a suffix of it, a prefix of it, none. */
	assert_int_equal(ls_path_join(&pb, "abc", 3, "def", 3), 0);
	assert_int_equal(ls_path_join(&pb, pb.buf, pb.len, "g", 1), 0);
	assert_string_equal(pb.buf, "abc/def/g");
	assert_int_equal(ls_path_join(&pb, pb.buf + 4, 5, "h", 1), 0);
	assert_string_equal(pb.buf, "def/g/h");
	assert_int_equal(ls_path_join(&pb, pb.buf, 3, "i", 1), 0);
	assert_string_equal(pb.buf, "def/i");
	assert_int_equal(ls_path_join(&pb, pb.buf, 0, "j", 1), 0);
	assert_string_equal(pb.buf, "j");
	assert_int_equal(pb.len, 1);
	free(pb.buf);

	/* Growth past the first capacity with dir at an offset in the buffer
	 * (under ASan a stale dir after the realloc is a use after free). */
	char s250[251];
	for (int i = 0; i < 250; i++)
		s250[i] = (char)('A' + i % 53 % 26 + (i % 53 >= 26 ? 'a' - 'A' : 0));
	s250[250] = '\0';
	memset(&pb, 0, sizeof(pb));
	assert_int_equal(ls_path_join(&pb, "", 0, s250, 250), 0);
	assert_int_equal(pb.len, 250);
	size_t cap0 = pb.cap;
	char *n100 = repeat('q', 100);
	assert_int_equal(ls_path_join(&pb, pb.buf + 10, 240, n100, 100), 0);
	assert_true(pb.cap > cap0);
	assert_int_equal(pb.len, 240 + 1 + 100);
	assert_memory_equal(pb.buf, s250 + 10, 240);
	assert_int_equal(pb.buf[240], '/');
	assert_memory_equal(pb.buf + 241, n100, 100);
	assert_int_equal(pb.buf[341], '\0');
	free(n100);
	free(pb.buf);

	/* A 100 KB path grown one 1000-byte component at a time, each time
	 * joined onto the buffer's own content. */
	memset(&pb, 0, sizeof(pb));
	size_t elen = 0;
	char *expect = malloc(101 * 1001);
	assert_non_null(expect);
	char comp[1000];
	for (int i = 0; i < 100; i++) {
		memset(comp, 'a' + i % 26, sizeof(comp));
		comp[0] = (char)('0' + i % 10);
		assert_int_equal(ls_path_join(&pb, pb.buf, pb.len, comp, sizeof(comp)), 0);
		if (elen)
			expect[elen++] = '/';
		memcpy(expect + elen, comp, sizeof(comp));
		elen += sizeof(comp);
		assert_int_equal(pb.len, elen);
		assert_true(pb.cap >= elen + 1);
	}
	assert_int_equal(pb.len, 100 * 1001 - 1);
	assert_memory_equal(pb.buf, expect, elen);
	assert_int_equal(pb.buf[elen], '\0');
	/* And a short one in the same (large) buffer again. */
	assert_int_equal(ls_path_join(&pb, pb.buf, 1000, "x", 1), 0);
	assert_int_equal(pb.len, 1002);
	assert_memory_equal(pb.buf, expect, 1000);
	assert_string_equal(pb.buf + 1000, "/x");
	free(pb.buf);
	free(expect);

	/* ls_path_join_new */
	char *s = ls_path_join_new("", "x");
	assert_non_null(s);
	assert_string_equal(s, "x");
	free(s);
	s = ls_path_join_new("a/b", "c");
	assert_non_null(s);
	assert_string_equal(s, "a/b/c");
	free(s);
	s = ls_path_join_new("..a", "b..");
	assert_non_null(s);
	assert_string_equal(s, "..a/b..");
	free(s);
	char *d = repeat('d', 100000), *e = repeat('e', 100000);
	s = ls_path_join_new(d, e);
	assert_non_null(s);
	assert_int_equal(strlen(s), 200001);
	assert_memory_equal(s, d, 100000);
	assert_int_equal(s[100000], '/');
	assert_memory_equal(s + 100001, e, 100000);
	free(s);
	s = ls_path_join_new("", e);
	assert_non_null(s);
	assert_string_equal(s, e);
	free(s);
	free(d);
	free(e);
}

/* ---- ls_path_normalize ------------------------------------------------------- */

#define EX (-EXDEV)

struct norm_case {
	const char *in;
	ssize_t rooted;       /* result with LS_NORM_ROOTED */
	const char *rooted_out;
	ssize_t strict;       /* result with LS_NORM_STRICT */
	const char *strict_out;
};

static const struct norm_case norm_cases[] = {
	{ "./a//b/", 3, "a/b", 3, "a/b" },
	{ "/a", 1, "a", EX, NULL },
	{ "//a//b//", 3, "a/b", EX, NULL },
	{ "/./a", 1, "a", EX, NULL },
	{ "/", 0, "", EX, NULL },
	{ "a/../b", EX, NULL, EX, NULL },
	{ "..", EX, NULL, EX, NULL },
	{ "../a", EX, NULL, EX, NULL },
	{ "a/..", EX, NULL, EX, NULL },
	{ "a/../", EX, NULL, EX, NULL },
	{ "/..", EX, NULL, EX, NULL },
	{ "./..", EX, NULL, EX, NULL },
	{ "a/./../b", EX, NULL, EX, NULL },
	{ ".../..", EX, NULL, EX, NULL },
	{ ".", 0, "", 0, "" },
	{ "./", 0, "", 0, "" },
	{ "./.", 0, "", 0, "" },
	{ ".//./", 0, "", 0, "" },
	{ "", 0, "", 0, "" },
	{ "a/./b", 3, "a/b", 3, "a/b" },
	{ "a/b/c", 5, "a/b/c", 5, "a/b/c" },
	{ "a//", 1, "a", 1, "a" },
	{ "./a/./.", 1, "a", 1, "a" },
	{ "././a", 1, "a", 1, "a" },
	{ ".//a", 1, "a", 1, "a" },  /* the leading character is '.', not '/' */
	{ "..a", 3, "..a", 3, "..a" },
	{ "a..", 3, "a..", 3, "a.." },
	{ "...", 3, "...", 3, "..." },
	{ ".a", 2, ".a", 2, ".a" },
	{ "a.", 2, "a.", 2, "a." },
	{ "x/..a/a../.../.b", 16, "x/..a/a../.../.b", 16, "x/..a/a../.../.b" },
	{ "./..a/./a..//", 7, "..a/a..", 7, "..a/a.." },
};

static void test_normalize(void **state)
{
	for (size_t i = 0; i < sizeof(norm_cases) / sizeof(norm_cases[0]); i++) {
		const struct norm_case *t = &norm_cases[i];
		for (int how = 0; how < 2; how++) {
			ssize_t want = how ? t->strict : t->rooted;
			const char *want_out = how ? t->strict_out : t->rooted_out;
			char buf[64];
			assert_true(strlen(t->in) < sizeof(buf));
			strcpy(buf, t->in);
			ssize_t got = ls_path_normalize(buf, how ? LS_NORM_STRICT : LS_NORM_ROOTED);
			if (got != want || (want >= 0 && strcmp(buf, want_out) != 0))
				fail_msg("normalize(\"%s\", %s) = %zd \"%s\", expected %zd \"%s\"", t->in,
					 how ? "STRICT" : "ROOTED", got, got >= 0 ? buf : "", want,
					 want_out ? want_out : "");
			if (got >= 0) {
				assert_int_equal(strlen(buf), (size_t)got);
				/* A normalised path stays as it is. */
				assert_int_equal(ls_path_normalize(buf, LS_NORM_STRICT), got);
				assert_string_equal(buf, want_out);
			}
		}
	}

	/* A long one: 10000 "./x//" pieces. */
	size_t n = 10000;
	char *buf = malloc(5 * n + 1), *want = malloc(2 * n);
	assert_non_null(buf);
	assert_non_null(want);
	for (size_t i = 0; i < n; i++) {
		memcpy(buf + 5 * i, "./x//", 5);
		memcpy(want + 2 * i, "x/", 2);
	}
	buf[5 * n] = '\0';
	want[2 * n - 1] = '\0';
	assert_int_equal(ls_path_normalize(buf, LS_NORM_STRICT), (ssize_t)(2 * n - 1));
	assert_string_equal(buf, want);
	free(buf);
	free(want);
}

/* ---- ls_open_beneath ----------------------------------------------------------- */

static int obfd = -1;   /* root/ob: the tree below */
static int bndfd = -1;  /* root/ob/bnd: paths around PATH_MAX */

/* root/ob/long/N0/N1/.../N44 with 200-byte names (9 KB: three lookups of at
 * most PATH_MAX, split after N19 and N39); beside some of them a symlink of
 * the same length to it: inside a piece, last of a piece, first of the next
 * one, in the last piece. */
#define LONG_LEVELS 45
#define LONG_NAME 200
static const int long_links[] = { 5, 19, 20, 25, 39, 40, 44 };
#define N_LONG_LINKS (sizeof(long_links) / sizeof(long_links[0]))
static char *long_path;                       /* relative to obfd */
static char *long_link_path[N_LONG_LINKS];    /* the same through a symlink */
static struct stat long_bottom, long_leaf;

/* bnd: 15 255-byte names, then X (255 bytes: 4095 in all) holding f, and Y
 * (254 bytes) holding z/f (4096 and 4098). */
static char *bnd_p1, *bnd_p2, *bnd_p3, *bnd_p4;
static struct stat bnd_p1_st, bnd_p2_st, bnd_p3_st, bnd_p4_st;

static void long_name(char *buf, int level, bool link)
{
	memset(buf, 'a' + level % 26, LONG_NAME);
	buf[0] = link ? 'S' : (char)('0' + level / 10);
	buf[1] = (char)('0' + level % 10);
	buf[LONG_NAME] = '\0';
}

static char *long_join(int link_level, const char *tail)
{
	size_t cap = 5 + LONG_LEVELS * (LONG_NAME + 1) + strlen(tail) + 2;
	char *p = malloc(cap), name[LONG_NAME + 1];
	assert_non_null(p);
	strcpy(p, "long");
	for (int i = 0; i < LONG_LEVELS; i++) {
		long_name(name, i, i == link_level);
		strcat(p, "/");
		strcat(p, name);
	}
	if (*tail) {
		strcat(p, "/");
		strcat(p, tail);
	}
	return p;
}

static void make_open_tree(void)
{
	assert_int_equal(mkdirat(rootfd, "ob", 0755), 0);
	obfd = open_dir_at(rootfd, "ob");
	assert_int_equal(mkdirat(obfd, "d1", 0755), 0);
	assert_int_equal(mkdirat(obfd, "d1/d2", 0755), 0);
	assert_int_equal(mkdirat(obfd, "d1/d2/d3", 0755), 0);
	mkfile_at(obfd, "d1/d2/file", "hello\n");
	mkfile_at(obfd, "top", "top\n");
	mkfile_at(obfd, "w", "old content\n");
	assert_int_equal(symlinkat("d1", obfd, "lnkdir"), 0);
	assert_int_equal(symlinkat("d2/file", obfd, "d1/lnkfile"), 0);
	assert_int_equal(symlinkat("d2", obfd, "d1/lnkdir2"), 0);
	assert_int_equal(symlinkat("../../outside", obfd, "esc"), 0);
	assert_int_equal(symlinkat(outside_abs, obfd, "abs"), 0);
	assert_int_equal(symlinkat(".", obfd, "dot"), 0);
	assert_int_equal(symlinkat("/proc/self/fd", obfd, "magic"), 0);

	/* The long tree, made from successive fds. */
	assert_int_equal(mkdirat(obfd, "long", 0755), 0);
	int cur = open_dir_at(obfd, "long");
	char name[LONG_NAME + 1], lname[LONG_NAME + 1];
	size_t li = 0;
	for (int i = 0; i < LONG_LEVELS; i++) {
		long_name(name, i, false);
		assert_int_equal(mkdirat(cur, name, 0755), 0);
		if (li < N_LONG_LINKS && long_links[li] == i) {
			long_name(lname, i, true);
			assert_int_equal(symlinkat(name, cur, lname), 0);
			li++;
		}
		int next = open_dir_at(cur, name);
		close(cur);
		cur = next;
	}
	mkfile_at(cur, "leaf", "deep leaf\n");
	assert_int_equal(fstatat(cur, "leaf", &long_leaf, 0), 0);
	assert_int_equal(symlinkat("leaf", cur, "leaflnk"), 0);
	assert_int_equal(fstat(cur, &long_bottom), 0);
	close(cur);
	long_path = long_join(-1, "");
	assert_int_equal(strlen(long_path), 4 + LONG_LEVELS * (LONG_NAME + 1));
	assert_true(strlen(long_path) > 2 * PATH_MAX);
	for (size_t i = 0; i < N_LONG_LINKS; i++)
		long_link_path[i] = long_join(long_links[i], "");

	/* Around PATH_MAX, beneath another dirfd. */
	assert_int_equal(mkdirat(obfd, "bnd", 0755), 0);
	bndfd = open_dir_at(obfd, "bnd");
	cur = dup(bndfd);
	size_t plen = 0;
	char *p = malloc(PATH_MAX + 64);
	assert_non_null(p);
	char n255[256];
	for (int i = 0; i < 15; i++) {
		memset(n255, 'a' + i, 255);
		n255[255] = '\0';
		assert_int_equal(mkdirat(cur, n255, 0755), 0);
		int next = open_dir_at(cur, n255);
		close(cur);
		cur = next;
		memcpy(p + plen, n255, 255);
		p[plen + 255] = '/';
		plen += 256;
	}
	char *x = repeat('X', 255), *y = repeat('Y', 254);
	assert_int_equal(mkdirat(cur, x, 0755), 0);
	assert_int_equal(mkdirat(cur, y, 0755), 0);
	int xfd = open_dir_at(cur, x), yfd = open_dir_at(cur, y);
	mkfile_at(xfd, "f", "p2\n");
	assert_int_equal(mkdirat(yfd, "z", 0755), 0);
	mkfile_at(yfd, "z/f", "p4\n");
	assert_int_equal(fstat(xfd, &bnd_p1_st), 0);
	assert_int_equal(fstatat(xfd, "f", &bnd_p2_st, 0), 0);
	assert_int_equal(fstatat(yfd, "z", &bnd_p3_st, 0), 0);
	assert_int_equal(fstatat(yfd, "z/f", &bnd_p4_st, 0), 0);
	close(xfd);
	close(yfd);
	close(cur);
	p[plen] = '\0';
	assert_int_equal(asprintf(&bnd_p1, "%s%s", p, x), 4095);
	assert_int_equal(asprintf(&bnd_p2, "%s%s/f", p, x), 4097);
	assert_int_equal(asprintf(&bnd_p3, "%s%s/z", p, y), 4096);
	assert_int_equal(asprintf(&bnd_p4, "%s%s/z/f", p, y), 4098);
	free(p);
	free(x);
	free(y);
}

static void free_open_tree(void)
{
	free(long_path);
	for (size_t i = 0; i < N_LONG_LINKS; i++)
		free(long_link_path[i]);
	free(bnd_p1);
	free(bnd_p2);
	free(bnd_p3);
	free(bnd_p4);
	if (bndfd >= 0)
		close(bndfd);
	if (obfd >= 0)
		close(obfd);
}

/* Short path for messages. */
static const char *shown(const char *path)
{
	static char buf[96];
	size_t n = strlen(path);
	if (n < 80)
		return path;
	snprintf(buf, sizeof(buf), "%.30s...%s (%zu bytes)", path, path + n - 30, n);
	return buf;
}

/* The open flags this test uses, by name. */
static const char *flag_names(int flags)
{
	static char buf[96];
	const char *acc = (flags & O_ACCMODE) == O_WRONLY ? "O_WRONLY" : flags & O_PATH ? "O_PATH" : "O_RDONLY";
	int known = O_ACCMODE | O_PATH | O_DIRECTORY | O_NOFOLLOW | O_TRUNC;
	snprintf(buf, sizeof(buf), "%s%s%s%s%s", acc, flags & O_DIRECTORY ? "|O_DIRECTORY" : "",
		 flags & O_NOFOLLOW ? "|O_NOFOLLOW" : "", flags & O_TRUNC ? "|O_TRUNC" : "",
		 flags & ~known ? "|..." : "");
	return buf;
}

/* Opens path and expects an fd of the entry want (or, want NULL, of path
 * itself as fstatat sees it beneath dfd) with content (when not NULL). */
static void expect_open(int dfd, const char *path, int flags, const struct stat *want, const char *content)
{
	int fd = ls_open_beneath(dfd, path, flags);
	if (fd < 0) {
		fprintf(stderr, "%sls_open_beneath(\"%s\", %s) = %s\n", in_child ? "[fallback child] " : "",
			shown(path), flag_names(flags), strerror(-fd));
		fails++;
		return;
	}
	CHECK(cloexec(fd));
	CHECK(fd != dfd);
	if (want)
		CHECK(fd_is_st(fd, want));
	else
		CHECK(fd_is(fd, dfd, path));
	if (content) {
		char buf[256];
		CHECK_EQ(read_all(fd, buf, sizeof(buf)), (ssize_t)strlen(content));
		CHECK(strcmp(buf, content) == 0);
	}
	close(fd);
}

static void expect_fail(int dfd, const char *path, int flags, int err)
{
	int fd = ls_open_beneath(dfd, path, flags);
	if (fd != -err) {
		fprintf(stderr, "%sls_open_beneath(\"%s\", %s) = %d (%s), expected -%s\n",
			in_child ? "[fallback child] " : "", shown(path), flag_names(flags), fd,
			fd < 0 ? strerror(-fd) : "an fd", strerror(err));
		fails++;
	}
	if (fd >= 0)
		close(fd);
}

/* A symlink opened as itself. */
static void expect_symlink(int dfd, const char *path, const char *where)
{
	int fd = ls_open_beneath(dfd, path, O_PATH | O_NOFOLLOW);
	if (fd < 0) {
		fprintf(stderr, "%sls_open_beneath(\"%s\", O_PATH|O_NOFOLLOW) = %s (%s)\n",
			in_child ? "[fallback child] " : "", shown(path), strerror(-fd), where);
		fails++;
		return;
	}
	struct stat st;
	CHECK(fstat(fd, &st) == 0 && S_ISLNK(st.st_mode));
	CHECK(cloexec(fd));
	close(fd);
}

static void check_open_beneath(void)
{
	int fds0 = ls_count_fds();
	struct stat st;

	/* Plain nested paths. */
	expect_open(obfd, "d1/d2/file", O_RDONLY, NULL, "hello\n");
	expect_open(obfd, "top", O_RDONLY, NULL, "top\n");
	expect_open(obfd, "d1/d2", O_RDONLY | O_DIRECTORY, NULL, NULL);
	expect_open(obfd, "d1/d2/d3", O_PATH | O_DIRECTORY, NULL, NULL);
	expect_open(obfd, "d1/d2/file", O_PATH, NULL, NULL);
	expect_fail(obfd, "d1/d2/file", O_RDONLY | O_DIRECTORY, ENOTDIR);
	/* The flags reach the final open. */
	int fd = ls_open_beneath(obfd, "w", O_WRONLY | O_TRUNC);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK_EQ(write(fd, "new\n", 4), 4);
		close(fd);
		expect_open(obfd, "w", O_RDONLY, NULL, "new\n");
	}

	/* "" is the directory itself (a new fd of it). */
	CHECK(fstat(obfd, &st) == 0);
	expect_open(obfd, "", O_RDONLY | O_DIRECTORY, &st, NULL);
	expect_open(obfd, "", O_PATH, &st, NULL);
	fd = ls_open_beneath(obfd, "", O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		/* readable as a directory: it really is an O_RDONLY open */
		DIR *d = fdopendir(fd);
		CHECK(d != NULL);
		if (d)
			closedir(d);
		else
			close(fd);
	}

	/* A symlink as an intermediate component: refused, relative, absolute,
	 * escaping, to "." or to /proc/self/fd alike. */
	static const char *const via_link[] = { "lnkdir/d2/file", "lnkdir/d2", "d1/lnkdir2/file",
						"d1/lnkdir2/d3", "esc/secret", "abs/secret",
						"dot/top", "dot/d1/d2/file", "magic/0" };
	for (size_t i = 0; i < sizeof(via_link) / sizeof(via_link[0]); i++) {
		expect_fail(obfd, via_link[i], O_RDONLY, ELOOP);
		expect_fail(obfd, via_link[i], O_PATH, ELOOP);
		expect_fail(obfd, via_link[i], O_PATH | O_NOFOLLOW, ELOOP);
		expect_fail(obfd, via_link[i], O_PATH | O_DIRECTORY, ELOOP);
	}

	/* A symlink as the last component: only O_PATH|O_NOFOLLOW opens it
	 * (the link itself); anything else is refused. */
	static const char *const last_link[] = { "d1/lnkfile", "lnkdir", "esc", "abs", "dot" };
	for (size_t i = 0; i < sizeof(last_link) / sizeof(last_link[0]); i++) {
		expect_fail(obfd, last_link[i], O_RDONLY, ELOOP);
		expect_fail(obfd, last_link[i], O_RDONLY | O_NOFOLLOW, ELOOP);
		expect_fail(obfd, last_link[i], O_PATH | O_DIRECTORY, ELOOP);
		expect_fail(obfd, last_link[i], O_PATH, ELOOP);
		expect_symlink(obfd, last_link[i], "last component");
	}
	expect_fail(obfd, "lnkdir", O_RDONLY | O_DIRECTORY, ELOOP);
	/* with its own inode, not the target's */
	fd = ls_open_beneath(obfd, "d1/lnkfile", O_PATH | O_NOFOLLOW);
	if (fd >= 0) {
		CHECK(fd_is(fd, obfd, "d1/lnkfile"));
		close(fd);
	}

	/* Escapes. */
	expect_fail(obfd, "..", O_RDONLY | O_DIRECTORY, EXDEV);
	expect_fail(obfd, "..", O_PATH, EXDEV);
	expect_fail(obfd, "../outside/secret", O_RDONLY, EXDEV);
	expect_fail(obfd, "d1/../..", O_PATH, EXDEV);
	expect_fail(obfd, "d1/d2/../../../outside", O_RDONLY | O_DIRECTORY, EXDEV);

	/* Missing and not-a-directory components, overlong names. */
	expect_fail(obfd, "d1/nope", O_RDONLY, ENOENT);
	expect_fail(obfd, "nope/d2", O_PATH, ENOENT);
	expect_fail(obfd, "top/x", O_RDONLY, ENOTDIR);
	expect_fail(obfd, "d1/d2/file/x", O_PATH, ENOTDIR);
	char *n256 = malloc(5000 + 1);
	if (n256) {
		memset(n256, 'y', 256);
		n256[256] = '\0';
		expect_fail(obfd, n256, O_RDONLY, ENAMETOOLONG);
		memset(n256, 'y', 5000);
		n256[5000] = '\0';
		expect_fail(obfd, n256, O_RDONLY, ENAMETOOLONG);  /* no '/' to split at */
		free(n256);
	}

	/* Longer than PATH_MAX: 45 levels of 200-byte names. */
	expect_open(obfd, long_path, O_RDONLY | O_DIRECTORY, &long_bottom, NULL);
	expect_open(obfd, long_path, O_PATH | O_DIRECTORY, &long_bottom, NULL);
	char *p = NULL;
	if (asprintf(&p, "%s/leaf", long_path) > 0) {
		expect_open(obfd, p, O_RDONLY, &long_leaf, "deep leaf\n");
		expect_fail(obfd, p, O_RDONLY | O_DIRECTORY, ENOTDIR);
		free(p);
	}
	if (asprintf(&p, "%s/leaflnk", long_path) > 0) {
		expect_fail(obfd, p, O_RDONLY, ELOOP);
		expect_fail(obfd, p, O_PATH, ELOOP);
		expect_symlink(obfd, p, "long path");
		free(p);
	}
	if (asprintf(&p, "%s/nope", long_path) > 0) {
		expect_fail(obfd, p, O_RDONLY, ENOENT);
		free(p);
	}
	/* ".." at the start of a later piece, and escaping the root. */
	if (asprintf(&p, "%s%s", long_path, "/../../../../../../../../../../../../../../../../../../../../"
					  "../../../../../../../../../../..") > 0) {
		expect_fail(obfd, p, O_PATH | O_DIRECTORY, EXDEV);
		free(p);
	}
	/* A symlink planted in the middle: in the first piece, as the last
	 * component of the first piece, first of the second, inside the last. */
	for (size_t i = 0; i < N_LONG_LINKS; i++) {
		expect_fail(obfd, long_link_path[i], O_RDONLY | O_DIRECTORY, ELOOP);
		expect_fail(obfd, long_link_path[i], O_PATH | O_DIRECTORY, ELOOP);
		if (long_links[i] == LONG_LEVELS - 1)  /* the last component: the link itself */
			expect_symlink(obfd, long_link_path[i], "last of a long path");
		else
			expect_fail(obfd, long_link_path[i], O_PATH | O_NOFOLLOW, ELOOP);
		if (asprintf(&p, "%s/leaf", long_link_path[i]) > 0) {
			expect_fail(obfd, p, O_RDONLY, ELOOP);
			free(p);
		}
	}

	/* Around PATH_MAX: 4095 bytes in one lookup, 4096 and more in pieces. */
	expect_open(bndfd, bnd_p1, O_RDONLY | O_DIRECTORY, &bnd_p1_st, NULL);
	expect_open(bndfd, bnd_p2, O_RDONLY, &bnd_p2_st, "p2\n");
	expect_open(bndfd, bnd_p3, O_PATH | O_DIRECTORY, &bnd_p3_st, NULL);
	expect_open(bndfd, bnd_p4, O_RDONLY, &bnd_p4_st, "p4\n");

	/* Nothing leaked, on success or failure. */
	CHECK_EQ(ls_count_fds(), fds0);
}

static void test_open_beneath(void **state)
{
	if (obfd < 0)
		make_open_tree();
	run_here(check_open_beneath);
}

/* The same without openat2: the O_NOFOLLOW walk. */
static void test_open_beneath_no_openat2(void **state)
{
	static const int nrs[] = { SYS_openat2 };
	if (obfd < 0)
		make_open_tree();
	if (!run_without(nrs, 1, check_open_beneath))
		skip();
}

/* ---- ls_dirchain --------------------------------------------------------------- */

static int dcfd = -1;  /* root/dc */
#define DEEP 100

/* "n/n/.../n" (depth components), then "/s" or "/s/t" when sib. */
static size_t deep_path(char *buf, int depth, int sib)
{
	size_t o = 0;
	for (int i = 0; i < depth; i++) {
		if (o)
			buf[o++] = '/';
		buf[o++] = 'n';
	}
	if (sib) {
		if (o)
			buf[o++] = '/';
		buf[o++] = 's';
		if (sib > 1) {
			memcpy(buf + o, "/t", 2);
			o += 2;
		}
	}
	buf[o] = '\0';
	return o;
}

/* get(dir) must be the directory dir. */
static void expect_get(struct ls_dirchain *c, const char *dir)
{
	int fd = ls_dirchain_get(c, dir, strlen(dir));
	if (fd < 0) {
		fprintf(stderr, "ls_dirchain_get(\"%s\") = %s\n", dir, strerror(-fd));
		fails++;
		return;
	}
	if (!*dir) {
		CHECK_EQ(fd, dcfd);
		return;
	}
	struct stat st;
	CHECK(fstat(fd, &st) == 0 && S_ISDIR(st.st_mode));
	if (!fd_is(fd, dcfd, dir)) {
		fprintf(stderr, "ls_dirchain_get(\"%s\") is another directory\n", dir);
		fails++;
	}
	int fl = fcntl(fd, F_GETFL);
	CHECK(fl >= 0 && (fl & O_PATH));
	CHECK(cloexec(fd));
}

static void expect_get_fails(struct ls_dirchain *c, const char *dir, int e1, int e2)
{
	int fd = ls_dirchain_get(c, dir, strlen(dir));
	if (fd != -e1 && fd != -e2) {
		fprintf(stderr, "ls_dirchain_get(\"%s\") = %d (%s), expected -%s%s%s\n", dir, fd,
			fd < 0 ? strerror(-fd) : "an fd", strerror(e1), e2 != e1 ? " or -" : "",
			e2 != e1 ? strerror(e2) : "");
		fails++;
	}
}

static void make_dirchain_tree(void)
{
	assert_int_equal(mkdirat(rootfd, "dc", 0755), 0);
	dcfd = open_dir_at(rootfd, "dc");
	static const char *const dirs[] = { "a", "a/x", "a/x/x", "a/xx", "a/y", "ab", "ab/x", "abc",
					    "abc/x", "sw", "sw/a", "sw/a/b", "sw2", "sw2/a", "sw2/a/b",
					    "rm", "rm/a", "rm/a/b", "rm2", "rm2/a", "rm2/a/b", "c" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		assert_int_equal(mkdirat(dcfd, dirs[i], 0755), 0);
	mkfile_at(dcfd, "f", "file\n");
	int cur = dup(dcfd);
	for (int d = 0; d < DEEP; d++) {
		assert_int_equal(mkdirat(cur, "n", 0755), 0);
		assert_int_equal(mkdirat(cur, "s", 0755), 0);
		assert_int_equal(mkdirat(cur, "s/t", 0755), 0);
		int next = open_dir_at(cur, "n");
		close(cur);
		cur = next;
	}
	close(cur);
}

static void check_dirchain(void)
{
	int fds0 = ls_count_fds();
	struct ls_dirchain *c = NULL;
	CHECK_EQ(ls_dirchain_create(&c, dcfd), 0);
	if (!c)
		return;
	char p[4 * DEEP + 8];

	/* The root, then walk order. */
	expect_get(c, "");
	static const char *const walk[] = { "", "a", "a/x", "a/x/x", "a/xx", "a/y", "ab", "ab/x", "abc",
					    "abc/x", "c", "" };
	for (size_t i = 0; i < sizeof(walk) / sizeof(walk[0]); i++)
		expect_get(c, walk[i]);
	/* Out of order, and prefixes that are not ancestors. */
	static const char *const odd[] = { "a/x", "ab/x", "a/x", "abc/x", "ab", "a", "ab", "abc",
					   "a/xx", "a/x", "a/x/x", "a/xx", "a/x/x", "a/x/x", "a",
					   "a/x/x", "ab/x", "c", "a/y", "a/x", "", "abc/x", "a" };
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
		expect_get(c, odd[i]);
	/* The length bounds dir, not its NUL. */
	int fd = ls_dirchain_get(c, "a/xyz", 3);
	CHECK(fd >= 0 && fd_is(fd, dcfd, "a/x"));
	fd = ls_dirchain_get(c, "ab/x", 1);
	CHECK(fd >= 0 && fd_is(fd, dcfd, "a"));
	fd = ls_dirchain_get(c, "abc", 2);
	CHECK(fd >= 0 && fd_is(fd, dcfd, "ab"));
	fd = ls_dirchain_get(c, "a/x", 0);
	CHECK_EQ(fd, dcfd);

	/* Deeper than LS_DIRCHAIN_FDS: down, up, across. */
	for (int d = 0; d <= DEEP; d++) {
		deep_path(p, d, 0);
		expect_get(c, p);
		CHECK(ls_count_fds() <= fds0 + LS_DIRCHAIN_FDS);
	}
	for (int d = DEEP; d >= 0; d--) {
		deep_path(p, d, 0);
		expect_get(c, p);
	}
	static const int across[] = { 0, 1, 2, 10, 50, 61, 62, 63, 64, 65, 66, 90, 98, 99 };
	for (size_t i = 0; i < sizeof(across) / sizeof(across[0]); i++) {
		for (int sib = 0; sib <= 2; sib++) {
			deep_path(p, across[i], sib);
			expect_get(c, p);
		}
	}
	for (size_t i = sizeof(across) / sizeof(across[0]); i-- > 0;) {
		deep_path(p, across[i], 2);
		expect_get(c, p);
		deep_path(p, across[i], 1);
		expect_get(c, p);
	}
	/* Random order (a fixed sequence). */
	uint32_t x = 12345;
	for (int i = 0; i < 400; i++) {
		x = x * 1103515245u + 12345u;
		int depth = (int)((x >> 8) % (DEEP + 1));
		int sib = depth == DEEP ? 0 : (int)((x >> 20) % 3);
		deep_path(p, depth, sib);
		expect_get(c, p);
	}
	CHECK(ls_count_fds() <= fds0 + LS_DIRCHAIN_FDS);

	/* Errors leave a chain that still works. */
	expect_get_fails(c, "f", ENOTDIR, ENOTDIR);
	expect_get(c, "a/x");
	expect_get_fails(c, "f/x", ENOTDIR, ENOTDIR);
	expect_get_fails(c, "nope", ENOENT, ENOENT);
	expect_get_fails(c, "a/nope", ENOENT, ENOENT);
	expect_get_fails(c, "a/x/nope/deeper", ENOENT, ENOENT);
	expect_get(c, "a/x/x");
	deep_path(p, 70, 0);
	strcat(p, "/nope");
	expect_get_fails(c, p, ENOENT, ENOENT);
	deep_path(p, 75, 0);
	expect_get(c, p);
	deep_path(p, 70, 2);
	expect_get(c, p);
	char *n256 = repeat('l', 256);
	expect_get_fails(c, n256, ENAMETOOLONG, ENAMETOOLONG);
	free(n256);
	expect_get(c, "ab/x");

	/* A component replaced by a symlink to a directory outside the root
	 * (with a "b" in it, so following it would succeed). */
	struct stat outside_b;
	CHECK(fstatat(tmpfd, "outside/b", &outside_b, 0) == 0);
	expect_get(c, "sw/a/b");
	expect_get(c, "c");  /* nothing of sw left open */
	CHECK(renameat(dcfd, "sw/a", dcfd, "sw/a.old") == 0);
	CHECK(symlinkat(outside_abs, dcfd, "sw/a") == 0);
	expect_get_fails(c, "sw/a/b", ENOTDIR, ELOOP);
	expect_get_fails(c, "sw/a", ENOTDIR, ELOOP);
	expect_get(c, "sw/a.old/b");
	expect_get_fails(c, "sw/a/b", ENOTDIR, ELOOP);
	/* ... and a relative one. */
	CHECK(unlinkat(dcfd, "sw/a", 0) == 0);
	CHECK(symlinkat("../../../outside", dcfd, "sw/a") == 0);
	expect_get(c, "");
	expect_get_fails(c, "sw/a/b", ENOTDIR, ELOOP);
	/* Replaced while the chain has it open: whatever the chain gives, it
	 * is never what the symlink points at. */
	expect_get(c, "sw2/a");
	CHECK(renameat(dcfd, "sw2/a", dcfd, "sw2/a.old") == 0);
	CHECK(symlinkat(outside_abs, dcfd, "sw2/a") == 0);
	fd = ls_dirchain_get(c, "sw2/a/b", 7);
	if (fd >= 0)
		CHECK(!fd_is_st(fd, &outside_b));
	else
		CHECK(fd == -ENOTDIR || fd == -ELOOP);
	expect_get(c, "c");
	expect_get_fails(c, "sw2/a/b", ENOTDIR, ELOOP);

	/* Removed directories. */
	expect_get(c, "rm/a/b");
	expect_get(c, "c");
	CHECK(unlinkat(dcfd, "rm/a/b", AT_REMOVEDIR) == 0);
	CHECK(unlinkat(dcfd, "rm/a", AT_REMOVEDIR) == 0);
	expect_get_fails(c, "rm/a/b", ENOENT, ENOENT);
	expect_get_fails(c, "rm/a", ENOENT, ENOENT);
	expect_get(c, "rm");
	/* below a directory the chain holds */
	expect_get(c, "rm2/a");
	CHECK(unlinkat(dcfd, "rm2/a/b", AT_REMOVEDIR) == 0);
	expect_get_fails(c, "rm2/a/b", ENOENT, ENOENT);
	CHECK(unlinkat(dcfd, "rm2/a", AT_REMOVEDIR) == 0);
	expect_get_fails(c, "rm2/a/b", ENOENT, ENOENT);
	expect_get(c, "rm2");
	expect_get_fails(c, "rm2/a", ENOENT, ENOENT);
	expect_get(c, "a/x/x");

	ls_dirchain_free(c);
	ls_dirchain_free(NULL);
	CHECK_EQ(ls_count_fds(), fds0);
	/* The root stays open (borrowed). */
	CHECK(fcntl(dcfd, F_GETFD) >= 0);
}

static void test_dirchain(void **state)
{
	make_dirchain_tree();
	run_here(check_dirchain);
	close(dcfd);
}

/* ---- ls_xattrs_read ------------------------------------------------------------ */

static int xafd = -1;  /* root/xa */
static bool user_xattrs, cap_set, trusted_xattrs;
static char xa_longname[NAME_MAX + 1];
#define N_MANY 40
#define LONG_VAL 1000

/* Appends one attribute to an expected blob, little-endian by hand. */
static size_t put(unsigned char *b, size_t o, const char *name, const void *val, size_t vlen)
{
	size_t nl = strlen(name);
	b[o + 0] = (unsigned char)(nl & 0xff);
	b[o + 1] = (unsigned char)(nl >> 8);
	b[o + 2] = (unsigned char)(vlen & 0xff);
	b[o + 3] = (unsigned char)((vlen >> 8) & 0xff);
	b[o + 4] = (unsigned char)((vlen >> 16) & 0xff);
	b[o + 5] = (unsigned char)(vlen >> 24);
	memcpy(b + o + 6, name, nl);
	memcpy(b + o + 6 + nl, val, vlen);
	return o + 6 + nl + vlen;
}

/* 30 bytes, all set. */
static void many_val(char *v, int i)
{
	memset(v, '.', 30);
	v[30] = '\0';
	v[0] = (char)('0' + i / 10);
	v[1] = (char)('0' + i % 10);
}

static void long_val(char *v)
{
	for (int i = 0; i < LONG_VAL; i++)
		v[i] = (char)(i * 7 + 3);
}

static void make_xattr_tree(void)
{
	assert_int_equal(mkdirat(rootfd, "xa", 0755), 0);
	xafd = open_dir_at(rootfd, "xa");
	mkfile_at(xafd, "xf", "x\n");
	mkfile_at(xafd, "xm", "m\n");
	mkfile_at(xafd, "plain", "p\n");
	mkfile_at(xafd, "capf", "c\n");
	assert_int_equal(mkdirat(xafd, "xd", 0755), 0);
	assert_int_equal(symlinkat("xf", xafd, "xl"), 0);
	assert_int_equal(symlinkat("capf", xafd, "capl"), 0);
	mkfile_at(xafd, "xt", "t\n");
	assert_int_equal(symlinkat("xt", xafd, "xl2"), 0);
	memset(xa_longname, 'N', NAME_MAX);
	xa_longname[NAME_MAX] = '\0';
	mkfile_at(xafd, xa_longname, "n\n");

	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/root/xa/xf", tmpdir);
	user_xattrs = lsetxattr(p, "user.b", "2", 1, 0) == 0;
	if (user_xattrs) {
		char v[LONG_VAL];
		long_val(v);
		assert_int_equal(lsetxattr(p, "user.a", "1", 1, 0), 0);
		assert_int_equal(lsetxattr(p, "user.c", "", 0, 0), 0);
		assert_int_equal(lsetxattr(p, "user.long", v, LONG_VAL, 0), 0);
		assert_int_equal(lsetxattr(p, "user.\xc3\xa9", "e", 1, 0), 0);
		assert_int_equal(lsetxattr(p, "user.z", "zv", 2, 0), 0);
		snprintf(p, sizeof(p), "%s/root/xa/xd", tmpdir);
		assert_int_equal(lsetxattr(p, "user.d", "dir", 3, 0), 0);
		snprintf(p, sizeof(p), "%s/root/xa/xm", tmpdir);
		/* in reverse, so that the list is not already sorted */
		for (int i = N_MANY - 1; i >= 0; i--) {
			char name[32], val[31];
			snprintf(name, sizeof(name), "user.k%02d", i);
			many_val(val, i);
			assert_int_equal(lsetxattr(p, name, val, 30, 0), 0);
		}
		snprintf(p, sizeof(p), "%s/root/xa/%s", tmpdir, xa_longname);
		assert_int_equal(lsetxattr(p, "user.q", "q", 1, 0), 0);
	} else {
		ls_skip_part("xattr", "no user xattrs on %s (%s): user.* checks", tmpdir, strerror(errno));
	}
	/* A file capability (root only). */
	struct vfs_cap_data cap;
	memset(&cap, 0, sizeof(cap));
	cap.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
	cap.data[0].permitted = 1u << 10;
	snprintf(p, sizeof(p), "%s/root/xa/capf", tmpdir);
	cap_set = lsetxattr(p, "security.capability", &cap, XATTR_CAPS_SZ_2, 0) == 0;
	if (cap_set && user_xattrs)
		assert_int_equal(lsetxattr(p, "user.cap", "uc", 2, 0), 0);
	/* trusted.* (root only) can be set on a symlink itself: one on xl2,
	 * another on its target xt (listing the target's and reading the
	 * link's, or the reverse, finds nothing). */
	snprintf(p, sizeof(p), "%s/root/xa/xl2", tmpdir);
	trusted_xattrs = lsetxattr(p, "trusted.own", "link", 4, 0) == 0;
	if (trusted_xattrs) {
		snprintf(p, sizeof(p), "%s/root/xa/xt", tmpdir);
		assert_int_equal(lsetxattr(p, "trusted.t", "target", 6, 0), 0);
	} else {
		ls_skip_part(geteuid() ? "root" : "xattr", "cannot set trusted.* on a symlink (%s): trusted.* checks",
			     strerror(errno));
	}
}

/* Reference blobs from the first run (this process), compared byte for byte
 * in the fallback child. */
#define N_REF 16
static struct {
	void *blob;
	size_t len;
	bool set;
} ref[N_REF];

static void note_ref(int i, const void *blob, size_t len)
{
	if (!in_child) {
		ref[i].blob = len ? malloc(len) : NULL;
		if (len)
			memcpy(ref[i].blob, blob, len);
		ref[i].len = len;
		ref[i].set = true;
	} else if (ref[i].set) {
		if (ref[i].len != len || (len && memcmp(ref[i].blob, blob, len) != 0)) {
			fprintf(stderr, "[fallback child] blob %d differs from getxattrat's\n", i);
			fails++;
		}
	}
}

/* Walks a blob: well formed, names strictly increasing; the user.* and
 * trusted.* attributes (the ones this test sets: a security module may add
 * its own) copied out to *user (malloc'ed) for comparing. */
static size_t user_part(const void *blob, size_t len, unsigned char **user)
{
	*user = malloc(len + 1);
	size_t o = 0;
	struct ls_xattr_it it = ls_xattr_iter(blob ? blob : "", len);
	struct ls_xattr_view v, prev = { 0 };
	int rc;
	while ((rc = ls_xattr_next(&it, &v)) == 1) {
		if (prev.name) {
			size_t m = prev.name_len < v.name_len ? prev.name_len : v.name_len;
			int c = memcmp(prev.name, v.name, m);
			CHECK(c < 0 || (c == 0 && prev.name_len < v.name_len));
		}
		prev = v;
		if (*user && ((v.name_len > 5 && !memcmp(v.name, "user.", 5)) ||
			      (v.name_len > 8 && !memcmp(v.name, "trusted.", 8)))) {
			char name[300];
			snprintf(name, sizeof(name), "%.*s", (int)v.name_len, v.name);
			o = put(*user, o, name, v.value, v.value_len);
		}
	}
	CHECK_EQ(rc, 0);
	return o;
}

static void expect_xattrs(int ri, int dfd, const char *name, uint32_t mode, enum ls_xattrs pol,
			  const unsigned char *want, size_t want_len, bool exact)
{
	void *blob = (void *)1;
	size_t len = 12345;
	int rc = ls_xattrs_read(dfd, name, mode, pol, &blob, &len);
	if (rc != 0) {
		fprintf(stderr, "%sls_xattrs_read(\"%.20s\", %d) = %s\n", in_child ? "[fallback child] " : "",
			name, (int)pol, strerror(-rc));
		fails++;
		return;
	}
	CHECK((blob == NULL) == (len == 0));
	if (exact) {
		CHECK_EQ(len, want_len);
		CHECK(len == want_len && (!len || memcmp(blob, want, len) == 0));
	} else {
		unsigned char *user = NULL;
		size_t ul = user_part(blob, len, &user);
		if (ul != want_len || (ul && memcmp(user, want, ul) != 0)) {
			fprintf(stderr, "%sls_xattrs_read(\"%.20s\"): user.*/trusted.* attributes differ (%zu bytes, "
					"expected %zu)\n",
				in_child ? "[fallback child] " : "", name, ul, want_len);
			fails++;
		}
		free(user);
	}
	if (ri >= 0)
		note_ref(ri, blob, len);
	free(blob);
}

static void check_xattrs(void)
{
	int fds0 = ls_count_fds();
	unsigned char want[4096];
	size_t wl;
	void *blob;
	size_t len;

	/* Policy none, capability on a directory, symlink or file without. */
	expect_xattrs(0, xafd, "xf", S_IFREG | 0644, LS_XATTRS_NONE, NULL, 0, true);
	expect_xattrs(1, xafd, "xd", S_IFDIR | 0755, LS_XATTRS_CAPABILITY, NULL, 0, true);
	expect_xattrs(2, xafd, "xl", S_IFLNK | 0777, LS_XATTRS_CAPABILITY, NULL, 0, true);
	expect_xattrs(3, xafd, "plain", S_IFREG | 0644, LS_XATTRS_CAPABILITY, NULL, 0, true);
	expect_xattrs(4, xafd, "xf", S_IFREG | 0644, LS_XATTRS_CAPABILITY, NULL, 0, true);
	/* A symlink's own: none (never its target's). */
	expect_xattrs(5, xafd, "xl", S_IFLNK | 0777, LS_XATTRS_ALL, NULL, 0, false);
	expect_xattrs(6, xafd, "plain", S_IFREG | 0644, LS_XATTRS_ALL, NULL, 0, false);

	/* A missing entry. */
	blob = (void *)1;
	len = 1;
	CHECK_EQ(ls_xattrs_read(xafd, "nope", S_IFREG | 0644, LS_XATTRS_ALL, &blob, &len), -ENOENT);
	CHECK(blob == NULL && len == 0);
	CHECK_EQ(ls_xattrs_read(xafd, "nope", S_IFREG | 0644, LS_XATTRS_CAPABILITY, &blob, &len), -ENOENT);
	CHECK(blob == NULL && len == 0);
	CHECK_EQ(ls_xattrs_read(xafd, "nope", S_IFDIR | 0755, LS_XATTRS_CAPABILITY, &blob, &len), 0);

	if (cap_set) {
		struct vfs_cap_data cap;
		memset(&cap, 0, sizeof(cap));
		cap.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
		cap.data[0].permitted = 1u << 10;
		wl = put(want, 0, "security.capability", &cap, XATTR_CAPS_SZ_2);
		expect_xattrs(7, xafd, "capf", S_IFREG | 0755, LS_XATTRS_CAPABILITY, want, wl, true);
		/* A symlink to it, even taken for a file (replaced since its
		 * stat): never the target's capability. */
		expect_xattrs(13, xafd, "capl", S_IFREG | 0755, LS_XATTRS_CAPABILITY, NULL, 0, true);
		/* the same attribute through a policy of all, with a user one */
		if (user_xattrs) {
			CHECK_EQ(ls_xattrs_read(xafd, "capf", S_IFREG | 0755, LS_XATTRS_ALL, &blob, &len), 0);
			struct ls_xattr_it it = ls_xattr_iter(blob ? blob : "", len);
			struct ls_xattr_view v;
			int seen = 0;
			while (ls_xattr_next(&it, &v) == 1) {
				if (v.name_len == 19 && !memcmp(v.name, "security.capability", 19)) {
					seen |= 1;
					CHECK(v.value_len == XATTR_CAPS_SZ_2);
				}
				if (v.name_len == 8 && !memcmp(v.name, "user.cap", 8))
					seen |= 2;
			}
			CHECK_EQ(seen, 3);
			note_ref(8, blob, len);
			free(blob);
		}
	}

	if (user_xattrs) {
		/* Sorted by name (bytes: the UTF-8 name after user.z). */
		char v[LONG_VAL];
		long_val(v);
		wl = put(want, 0, "user.a", "1", 1);
		wl = put(want, wl, "user.b", "2", 1);
		wl = put(want, wl, "user.c", "", 0);
		wl = put(want, wl, "user.long", v, LONG_VAL);
		wl = put(want, wl, "user.z", "zv", 2);
		wl = put(want, wl, "user.\xc3\xa9", "e", 1);
		expect_xattrs(9, xafd, "xf", S_IFREG | 0644, LS_XATTRS_ALL, want, wl, false);
		/* Through an O_PATH directory fd (what a dirchain gives). */
		int pfd = openat(xafd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
		CHECK(pfd >= 0);
		expect_xattrs(-1, pfd, "xf", S_IFREG | 0644, LS_XATTRS_ALL, want, wl, false);
		close(pfd);
		/* Still not the symlink's. */
		expect_xattrs(-1, xafd, "xl", S_IFLNK | 0777, LS_XATTRS_ALL, NULL, 0, false);

		wl = put(want, 0, "user.d", "dir", 3);
		expect_xattrs(10, xafd, "xd", S_IFDIR | 0755, LS_XATTRS_ALL, want, wl, false);
		wl = 0;
		for (int i = 0; i < N_MANY; i++) {
			char name[32], val[31];
			snprintf(name, sizeof(name), "user.k%02d", i);
			many_val(val, i);
			wl = put(want, wl, name, val, 30);
		}
		expect_xattrs(11, xafd, "xm", S_IFREG | 0644, LS_XATTRS_ALL, want, wl, false);
		wl = put(want, 0, "user.q", "q", 1);
		expect_xattrs(12, xafd, xa_longname, S_IFREG | 0644, LS_XATTRS_ALL, want, wl, false);
	}
	if (trusted_xattrs) {
		/* A symlink's own attributes, not its target's. */
		wl = put(want, 0, "trusted.own", "link", 4);
		expect_xattrs(14, xafd, "xl2", S_IFLNK | 0777, LS_XATTRS_ALL, want, wl, false);
		wl = put(want, 0, "trusted.t", "target", 6);
		expect_xattrs(15, xafd, "xt", S_IFREG | 0644, LS_XATTRS_ALL, want, wl, false);
	}
	CHECK_EQ(ls_count_fds(), fds0);
}

static void test_xattrs(void **state)
{
	static const int nrs[] = { NR_GETXATTRAT, NR_LISTXATTRAT };
	make_xattr_tree();
	run_here(check_xattrs);
	bool filtered = run_without(nrs, 2, check_xattrs);
	for (int i = 0; i < N_REF; i++)
		free(ref[i].blob);
	close(xafd);
	if (!filtered || !user_xattrs)
		skip();  /* the reasons were printed above */
}

/* ---- ls_xattr_next on hand-made blobs ----------------------------------------- */

/* A copy of bytes in an exact-size allocation (ASan sees any overread). */
static int next_on(const unsigned char *bytes, size_t len, int steps, struct ls_xattr_view *last)
{
	unsigned char *b = malloc(len ? len : 1);
	assert_non_null(b);
	memcpy(b, bytes, len);
	struct ls_xattr_it it = ls_xattr_iter(b, len);
	struct ls_xattr_view v;
	int rc = 0;
	for (int i = 0; i < steps; i++) {
		rc = ls_xattr_next(&it, &v);
		if (rc != 1)
			break;
		if (last)
			*last = v;
	}
	if (last && rc == 1) {
		/* point into our copy: give offsets back instead */
		last->name = (const char *)((const unsigned char *)last->name - b + bytes);
		last->value = (const unsigned char *)last->value - b + bytes;
	}
	free(b);
	return rc;
}

static void test_xattr_next(void **state)
{
	unsigned char b[600];
	struct ls_xattr_view v;

	/* Empty: the end at once, and again. */
	struct ls_xattr_it it = ls_xattr_iter(b, 0);
	assert_int_equal(ls_xattr_next(&it, &v), 0);
	assert_int_equal(ls_xattr_next(&it, &v), 0);
	assert_int_equal(next_on(b, 0, 1, NULL), 0);

	/* Truncated headers. */
	memset(b, 0, sizeof(b));
	b[0] = 1;
	for (size_t n = 1; n < LS_XATTR_HDR; n++)
		assert_int_equal(next_on(b, n, 1, NULL), -EINVAL);
	/* A header and nothing else, name length 1. */
	assert_int_equal(next_on(b, LS_XATTR_HDR, 1, NULL), -EINVAL);

	/* A name running past the end. */
	size_t o = put(b, 0, "user.x", "", 0);
	assert_int_equal(next_on(b, o, 1, NULL), 1);
	for (size_t n = LS_XATTR_HDR; n < o; n++)
		assert_int_equal(next_on(b, n, 1, NULL), -EINVAL);
	/* A value running past the end. */
	o = put(b, 0, "user.x", "value", 5);
	assert_int_equal(next_on(b, o, 2, NULL), 0);
	for (size_t n = o - 5; n < o; n++)
		assert_int_equal(next_on(b, n, 1, NULL), -EINVAL);
	/* Lengths that would wrap. */
	memcpy(b, "\x01\x00\xff\xff\xff\xff" "a", 7);
	assert_int_equal(next_on(b, 7, 1, NULL), -EINVAL);
	memcpy(b, "\xff\xff\x00\x00\x00\x00" "a", 7);
	assert_int_equal(next_on(b, 7, 1, NULL), -EINVAL);
	memcpy(b, "\xff\xff\xff\xff\xff\xff", 6);
	assert_int_equal(next_on(b, 6, 1, NULL), -EINVAL);
	/* An empty name, with or without a value. */
	memcpy(b, "\x00\x00\x00\x00\x00\x00", 6);
	assert_int_equal(next_on(b, 6, 1, NULL), -EINVAL);
	memcpy(b, "\x00\x00\x01\x00\x00\x00" "v", 7);
	assert_int_equal(next_on(b, 7, 1, NULL), -EINVAL);

	/* Good entries, then junk after them. */
	o = put(b, 0, "user.a", "1", 1);
	o = put(b, o, "user.bb", "", 0);
	size_t two = o;
	o = put(b, o, "user.c", "333", 3);
	assert_int_equal(next_on(b, o, 3, NULL), 1);
	assert_int_equal(next_on(b, o, 4, NULL), 0);
	assert_int_equal(next_on(b, two, 3, NULL), 0);
	assert_int_equal(next_on(b, two + 3, 3, NULL), -EINVAL);   /* a partial header */
	assert_int_equal(next_on(b, o - 1, 3, NULL), -EINVAL);     /* a value short by one */
	assert_int_equal(next_on(b, two + 7, 3, NULL), -EINVAL);   /* a name short */

	/* The views. */
	it = ls_xattr_iter(b, o);
	assert_int_equal(ls_xattr_next(&it, &v), 1);
	assert_int_equal(v.name_len, 6);
	assert_memory_equal(v.name, "user.a", 6);
	assert_int_equal(v.value_len, 1);
	assert_memory_equal(v.value, "1", 1);
	assert_ptr_equal(v.name, (char *)b + 6);
	assert_int_equal(ls_xattr_next(&it, &v), 1);
	assert_int_equal(v.name_len, 7);
	assert_memory_equal(v.name, "user.bb", 7);
	assert_int_equal(v.value_len, 0);
	assert_int_equal(ls_xattr_next(&it, &v), 1);
	assert_int_equal(v.value_len, 3);
	assert_memory_equal(v.value, "333", 3);
	assert_ptr_equal((const unsigned char *)v.value + 3, b + o);
	assert_int_equal(ls_xattr_next(&it, &v), 0);

	/* The header is little-endian: 02 01 is a 258-byte name, 03 00 00 00 a
	 * 3-byte value; 03 00 01 00 would be 65539 bytes, past the end. */
	unsigned char big[6 + 258 + 3];
	big[0] = 0x02;
	big[1] = 0x01;
	big[2] = 0x03;
	big[3] = big[4] = big[5] = 0;
	memset(big + 6, 'n', 258);
	memcpy(big + 6 + 258, "abc", 3);
	assert_int_equal(next_on(big, sizeof(big), 1, &v), 1);
	assert_int_equal(v.name_len, 258);
	assert_int_equal(v.value_len, 3);
	assert_ptr_equal(v.value, big + 6 + 258);
	big[4] = 1;  /* value length 0x010003 */
	assert_int_equal(next_on(big, sizeof(big), 1, NULL), -EINVAL);
}

/* The blob ls_xattrs_read gives for "none" is NULL with length 0, and
 * iterating it is the natural thing to do. */
static void test_xattr_iter_null(void **state)
{
	struct ls_xattr_it it = ls_xattr_iter(NULL, 0);
	struct ls_xattr_view v;
	assert_int_equal(ls_xattr_next(&it, &v), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_join),
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_open_beneath),
		cmocka_unit_test(test_open_beneath_no_openat2),
		cmocka_unit_test(test_dirchain),
		cmocka_unit_test(test_xattrs),
		cmocka_unit_test(test_xattr_next),
		cmocka_unit_test(test_xattr_iter_null),
	};
	return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
