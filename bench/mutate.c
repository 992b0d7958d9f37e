/*
 * mutate: a deterministic "build step" applied in place to a tree (copy it first).
 *
 *   mutate [--seed S] [--edits N] [-q] DIR
 *
 * With the default N = 300 content edits:
 *   - N/3 appends (mtime set to a fixed new value),
 *   - N/3 size-preserving rewrites of a few bytes with the old atime/mtime restored
 *     (only ctime tells; `full` mode must catch them, `redo`/`time` by definition don't),
 *   - the rest whole rewrites to a new size (fixed new mtime),
 *   - one whole package directory deleted (node_modules/PKG or node_modules/@scope/PKG),
 *   - one new package directory added (about 50 entries, a .bin symlink to it),
 *   - 5 chmods, 5 chowns (only when run as root), 5 touches (mtime only),
 *   - type changes: 2 file->dir, 1 dir->file, 2 file->symlink.
 * Victims are picked with a seeded xoshiro256** from the sorted list of paths, so the same
 * seed on the same tree always changes the same paths the same way.  New mtimes are fixed
 * values, and directories whose entries changed get a fixed mtime too, so two runs give
 * trees that differ only in ctimes.  Prints one line of counts on stdout.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t S[4];
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t rnd(void)
{
	uint64_t res = rotl(S[1] * 5, 7) * 9, t = S[1] << 17;
	S[2] ^= S[0]; S[3] ^= S[1]; S[1] ^= S[2]; S[0] ^= S[3];
	S[2] ^= t; S[3] = rotl(S[3], 45);
	return res;
}
static uint64_t below(uint64_t n) { return n ? (uint64_t)(((unsigned __int128)rnd() * n) >> 64) : 0; }

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("mutate: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* ---- the sorted list of entries ---- */

struct ent {
	char *path;    /* relative to DIR */
	unsigned char type;  /* 'f', 'd', 'l', 'o' */
	unsigned char dead;  /* chosen already, or under a removed directory */
};

static struct ent *E;
static size_t nE, capE;
static int rootfd;

static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		die("out of memory");
	return p;
}

static void add(const char *path, unsigned char type)
{
	if (nE == capE) {
		capE = capE ? capE * 2 : 65536;
		E = realloc(E, capE * sizeof *E);
		if (!E)
			die("out of memory");
	}
	E[nE++] = (struct ent){ xstrdup(path), type, 0 };
}

static void walk(int dfd, char *path, size_t plen)
{
	DIR *d = fdopendir(dfd);
	if (!d)
		die("opendir %s: %s", path, strerror(errno));
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		if (n[0] == '.' && (!n[1] || (n[1] == '.' && !n[2])))
			continue;
		size_t nl = strlen(n);
		if (plen + nl + 2 > 8192)
			die("path too long");
		if (plen)
			path[plen] = '/';
		memcpy(path + plen + (plen ? 1 : 0), n, nl + 1);
		size_t sublen = plen + (plen ? 1 : 0) + nl;
		unsigned char t = de->d_type;
		if (t == DT_UNKNOWN) {
			struct stat st;
			if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) < 0)
				die("stat %s: %s", path, strerror(errno));
			t = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : S_ISLNK(st.st_mode) ? DT_LNK : DT_FIFO;
		}
		add(path, t == DT_DIR ? 'd' : t == DT_REG ? 'f' : t == DT_LNK ? 'l' : 'o');
		if (t == DT_DIR) {
			int fd = openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0)
				die("open %s: %s", path, strerror(errno));
			walk(fd, path, sublen);
		}
		path[plen] = 0;
	}
	closedir(d);
}

static int cmp_ent(const void *a, const void *b)
{
	return strcmp(((const struct ent *)a)->path, ((const struct ent *)b)->path);
}

static const char *base_of(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

/* parent directory name of p (the component before the last), into out */
static void parent_name(const char *p, char *out, size_t cap)
{
	const char *s = strrchr(p, '/');
	out[0] = 0;
	if (!s)
		return;
	const char *b = s;
	while (b > p && b[-1] != '/')
		b--;
	snprintf(out, cap, "%.*s", (int)(s - b), b);
}

static int is_package_dir(const struct ent *e)
{
	char par[256], gp[512];
	if (e->type != 'd')
		return 0;
	const char *b = base_of(e->path);
	if (b[0] == '.' || b[0] == '@' || !strcmp(b, "node_modules"))
		return 0;
	parent_name(e->path, par, sizeof par);
	if (!strcmp(par, "node_modules"))
		return 1;
	if (par[0] == '@') {
		/* node_modules/@scope/PKG */
		size_t l = strlen(e->path) - strlen(b) - 1;
		snprintf(gp, sizeof gp, "%.*s", (int)l, e->path);
		char g[256];
		parent_name(gp, g, sizeof g);
		return !strcmp(g, "node_modules");
	}
	return 0;
}

/* mark the subtree under index i (its descendants follow it contiguously) dead; return count */
static size_t kill_subtree(size_t i)
{
	size_t n = strlen(E[i].path), k = 1;
	E[i].dead = 1;
	for (size_t j = i + 1; j < nE; j++) {
		if (strncmp(E[j].path, E[i].path, n) || E[j].path[n] != '/') {
			/* strcmp order: children of "a" ("a/...") may be preceded by "a-b", "a.c" ... */
			if (strncmp(E[j].path, E[i].path, n) || (unsigned char)E[j].path[n] > '/')
				break;
			continue;
		}
		E[j].dead = 1;
		k++;
	}
	return k;
}

/* Pick a live entry of type t satisfying ok(); -1 if none after many tries. */
static ssize_t pick(unsigned char t, int (*ok)(const struct ent *))
{
	for (int tries = 0; tries < 1000000; tries++) {
		size_t i = below(nE);
		if (!E[i].dead && E[i].type == t && (!ok || ok(&E[i])))
			return (ssize_t)i;
	}
	return -1;
}

/* ---- operations ---- */

static struct timespec T_NEW;  /* a fixed "build time" mtime */
static char **touched_dirs;
static size_t ntouched;

static void dir_changed(const char *path)
{
	const char *s = strrchr(path, '/');
	char *d = s ? strndup(path, (size_t)(s - path)) : xstrdup(".");
	touched_dirs = realloc(touched_dirs, (ntouched + 1) * sizeof *touched_dirs);
	if (!touched_dirs || !d)
		die("out of memory");
	touched_dirs[ntouched++] = d;
}

static void set_mtime(const char *path, struct timespec mt)
{
	struct timespec ts[2] = { mt, mt };
	if (utimensat(rootfd, path, ts, AT_SYMLINK_NOFOLLOW) < 0)
		die("utimensat %s: %s", path, strerror(errno));
}

static struct timespec new_time(void)
{
	struct timespec t = T_NEW;
	t.tv_sec += (time_t)below(3600);
	t.tv_nsec = (long)below(1000000000);
	return t;
}

static void text(char *buf, size_t n, uint64_t seed)
{
	static const char alpha[] = "abcdefghijklmnopqrstuvwxyz  ();{}=.\n";
	for (size_t i = 0; i < n; i++)
		buf[i] = alpha[splitmix64(&seed) % (sizeof alpha - 1)];
}

static void do_append(const char *p)
{
	char buf[512];
	size_t n = 40 + below(400);
	int len = snprintf(buf, sizeof buf, "\n// build step %" PRIu64 "\n", (uint64_t)T_NEW.tv_sec);
	text(buf + len, n - (size_t)len < sizeof buf - (size_t)len ? n - (size_t)len : 0, rnd());
	int fd = openat(rootfd, p, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || write(fd, buf, n) != (ssize_t)n)
		die("append %s: %s", p, strerror(errno));
	struct timespec t = new_time(), ts[2] = { t, t };
	futimens(fd, ts);
	close(fd);
}

/* Change a few bytes in place, keep the size, restore atime and mtime. */
static int do_restore(const char *p)
{
	int fd = openat(rootfd, p, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		die("open %s: %s", p, strerror(errno));
	if (st.st_size == 0) {
		close(fd);
		return 0;
	}
	unsigned char buf[64];
	off_t off = (off_t)below((uint64_t)st.st_size);
	size_t n = (size_t)(st.st_size - off) < sizeof buf ? (size_t)(st.st_size - off) : sizeof buf;
	if (pread(fd, buf, n, off) != (ssize_t)n)
		die("read %s: %s", p, strerror(errno));
	for (size_t i = 0; i < n; i++)
		buf[i] ^= 0x01;
	if (pwrite(fd, buf, n, off) != (ssize_t)n)
		die("write %s: %s", p, strerror(errno));
	struct timespec ts[2] = { st.st_atim, st.st_mtim };
	if (futimens(fd, ts) < 0)
		die("futimens %s: %s", p, strerror(errno));
	close(fd);
	return 1;
}

static void do_rewrite(const char *p)
{
	struct stat st;
	if (fstatat(rootfd, p, &st, AT_SYMLINK_NOFOLLOW) < 0)
		die("stat %s: %s", p, strerror(errno));
	size_t n = (size_t)st.st_size / 2 + below((uint64_t)st.st_size + 4096) + 1;
	if (n > (8u << 20))
		n = 8u << 20;
	char *buf = malloc(n);
	if (!buf)
		die("out of memory");
	text(buf, n, rnd());
	int fd = openat(rootfd, p, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || write(fd, buf, n) != (ssize_t)n)
		die("rewrite %s: %s", p, strerror(errno));
	struct timespec t = new_time(), ts[2] = { t, t };
	futimens(fd, ts);
	close(fd);
	free(buf);
}

static void mkfile(const char *p, size_t n, mode_t mode)
{
	char buf[65536];
	if (n > sizeof buf)
		n = sizeof buf;
	text(buf, n, rnd());
	int fd = openat(rootfd, p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0 || write(fd, buf, n) != (ssize_t)n)
		die("create %s: %s", p, strerror(errno));
	struct timespec t = new_time(), ts[2] = { t, t };
	futimens(fd, ts);
	close(fd);
}

static void mkdir_(const char *p)
{
	if (mkdirat(rootfd, p, 0755) < 0)
		die("mkdir %s: %s", p, strerror(errno));
}

/* rm -rf relative to rootfd; returns entries removed */
static size_t rmrf_at(int dfd, const char *name)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		die("stat %s: %s", name, strerror(errno));
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(dfd, name, 0) < 0)
			die("unlink %s: %s", name, strerror(errno));
		return 1;
	}
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d)
		die("open %s: %s", name, strerror(errno));
	size_t k = 1;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		if (n[0] == '.' && (!n[1] || (n[1] == '.' && !n[2])))
			continue;
		k += rmrf_at(dirfd(d), n);
	}
	closedir(d);
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0)
		die("rmdir %s: %s", name, strerror(errno));
	return k;
}

static int ok_small_dir(const struct ent *e)
{
	const char *b = base_of(e->path);
	if (!strcmp(b, "node_modules") || b[0] == '.' || b[0] == '@' || is_package_dir(e))
		return 0;
	size_t i = (size_t)(e - E), n = strlen(e->path), k = 0;
	for (size_t j = i + 1; j < nE && k <= 30; j++) {
		if (!strncmp(E[j].path, e->path, n) && E[j].path[n] == '/') {
			if (E[j].dead)
				return 0;
			k++;
		} else if (strncmp(E[j].path, e->path, n) || (unsigned char)E[j].path[n] > '/')
			break;
	}
	return k >= 1 && k <= 30;
}

static int ok_pkg(const struct ent *e) { return is_package_dir(e); }

static int ok_file(const struct ent *e)
{
	/* not package.json of a package: keep packages parseable; not a LICENSE (hard links) */
	const char *b = base_of(e->path);
	return strcmp(b, "package.json") && strcmp(b, "LICENSE");
}

int main(int argc, char **argv)
{
	uint64_t seed = 1, edits = 300;
	int quiet = 0;
	const char *dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--edits") && i + 1 < argc)
			edits = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "-q"))
			quiet = 1;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			puts("usage: mutate [--seed S] [--edits N] [-q] DIR");
			return 0;
		} else if (argv[i][0] != '-' && !dir)
			dir = argv[i];
		else {
			fputs("usage: mutate [--seed S] [--edits N] [-q] DIR\n", stderr);
			return 2;
		}
	}
	if (!dir) {
		fputs("usage: mutate [--seed S] [--edits N] [-q] DIR\n", stderr);
		return 2;
	}
	uint64_t x = seed ^ 0x6d75746174650000ull;
	for (int i = 0; i < 4; i++)
		S[i] = splitmix64(&x);
	T_NEW.tv_sec = 1650000000 + (time_t)(seed % 100000) * 7200;
	umask(0);

	rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		die("open %s: %s", dir, strerror(errno));
	static char path[8192];
	walk(dup(rootfd), path, 0);
	qsort(E, nE, sizeof *E, cmp_ent);
	if (nE < 100)
		die("%s: too small a tree (%zu entries)", dir, nE);

	/* 1. the package to delete, the directory to turn into a file */
	ssize_t del = pick('d', ok_pkg);
	size_t ndel = 0;
	char *delpath = NULL;
	if (del >= 0) {
		delpath = E[del].path;
		ndel = kill_subtree((size_t)del);
	}
	ssize_t d2f = pick('d', ok_small_dir);
	char *d2fpath = NULL;
	if (d2f >= 0) {
		d2fpath = E[d2f].path;
		kill_subtree((size_t)d2f);
	}
	/* a directory to put the new package in: the top node_modules */
	const char *nm = "node_modules";
	{
		struct stat st;
		if (fstatat(rootfd, nm, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
			nm = ".";
	}

	/* 2. file victims, distinct */
	uint64_t n_app = edits / 3, n_res = edits / 3, n_rw = edits - n_app - n_res;
	const uint64_t n_chmod = 5, n_chown = geteuid() == 0 ? 5 : 0, n_touch = 5, n_f2d = 2, n_f2l = 2;
	uint64_t want = edits + n_chmod + n_chown + n_touch + n_f2d + n_f2l;
	char **v = calloc(want, sizeof *v);
	uint64_t nv = 0;
	for (; nv < want; nv++) {
		ssize_t i = pick('f', ok_file);
		if (i < 0)
			break;
		E[i].dead = 1;
		v[nv] = E[i].path;
	}
	if (nv < want)
		die("%s: not enough files for %" PRIu64 " edits", dir, want);

	/* 3. do it */
	uint64_t k = 0, c_app = 0, c_res = 0, c_rw = 0, c_chmod = 0, c_chown = 0, c_touch = 0, c_type = 0;
	for (uint64_t i = 0; i < n_app; i++, c_app++)
		do_append(v[k++]);
	for (uint64_t i = 0; i < n_res; i++)
		c_res += (uint64_t)do_restore(v[k++]);
	for (uint64_t i = 0; i < n_rw; i++, c_rw++)
		do_rewrite(v[k++]);
	for (uint64_t i = 0; i < n_chmod; i++, c_chmod++) {
		struct stat st;
		const char *p = v[k++];
		if (fstatat(rootfd, p, &st, AT_SYMLINK_NOFOLLOW) < 0)
			die("stat %s: %s", p, strerror(errno));
		mode_t m = (st.st_mode & 07777) == 0755 ? 0644 : (i & 1) ? 0755 : 0600;
		if (fchmodat(rootfd, p, m, 0) < 0)
			die("chmod %s: %s", p, strerror(errno));
	}
	for (uint64_t i = 0; i < n_chown; i++, c_chown++) {
		const char *p = v[k++];
		if (fchownat(rootfd, p, (uid_t)(1000 + i), (gid_t)(1000 + i), AT_SYMLINK_NOFOLLOW) < 0)
			die("chown %s: %s", p, strerror(errno));
	}
	for (uint64_t i = 0; i < n_touch; i++, c_touch++)
		set_mtime(v[k++], new_time());
	for (uint64_t i = 0; i < n_f2d; i++, c_type++) {
		/* file -> directory holding one file */
		const char *p = v[k++];
		char q[8300];
		if (unlinkat(rootfd, p, 0) < 0)
			die("unlink %s: %s", p, strerror(errno));
		mkdir_(p);
		snprintf(q, sizeof q, "%s/index.js", p);
		mkfile(q, 100 + below(2000), 0644);
		set_mtime(p, new_time());
		dir_changed(p);
	}
	for (uint64_t i = 0; i < n_f2l; i++, c_type++) {
		/* file -> symlink to a sibling name */
		const char *p = v[k++];
		if (unlinkat(rootfd, p, 0) < 0)
			die("unlink %s: %s", p, strerror(errno));
		if (symlinkat("index.js", rootfd, p) < 0)
			die("symlink %s: %s", p, strerror(errno));
		set_mtime(p, new_time());
		dir_changed(p);
	}
	if (d2fpath) {
		/* directory -> file */
		rmrf_at(rootfd, d2fpath);
		mkfile(d2fpath, 100 + below(4000), 0644);
		dir_changed(d2fpath);
		c_type++;
	}
	size_t removed = 0;
	if (delpath) {
		removed = rmrf_at(rootfd, delpath);
		dir_changed(delpath);
	}
	(void)ndel;

	/* 4. a new package of about 50 entries, with a .bin link */
	char pkg[8300], q[8400];
	uint64_t added = 0;
	snprintf(pkg, sizeof pkg, "%s/build-step-%" PRIu64 "-pkg", nm, seed);
	mkdir_(pkg); added++;
	snprintf(q, sizeof q, "%s/package.json", pkg); mkfile(q, 600, 0644); added++;
	snprintf(q, sizeof q, "%s/README.md", pkg); mkfile(q, 3000, 0644); added++;
	snprintf(q, sizeof q, "%s/bin", pkg); mkdir_(q); added++;
	snprintf(q, sizeof q, "%s/bin/cli.js", pkg); mkfile(q, 900, 0755); added++;
	snprintf(q, sizeof q, "%s/lib", pkg); mkdir_(q); added++;
	for (int i = 0; i < 3; i++) {
		snprintf(q, sizeof q, "%s/lib/part%d", pkg, i); mkdir_(q); added++;
		for (int j = 0; j < 7; j++) {
			snprintf(q, sizeof q, "%s/lib/part%d/module%d.js", pkg, i, j);
			mkfile(q, 200 + below(6000), 0644); added++;
			snprintf(q, sizeof q, "%s/lib/part%d/module%d.d.ts", pkg, i, j);
			mkfile(q, 100 + below(1000), 0644); added++;
		}
		snprintf(q, sizeof q, "%s/lib/part%d", pkg, i); set_mtime(q, new_time());
	}
	snprintf(q, sizeof q, "%s/lib", pkg); set_mtime(q, new_time());
	snprintf(q, sizeof q, "%s/bin", pkg); set_mtime(q, new_time());
	set_mtime(pkg, new_time());
	dir_changed(pkg);
	snprintf(q, sizeof q, "%s/.bin", nm);
	{
		struct stat st;
		if (fstatat(rootfd, q, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
			char l[8500], t[8500];
			snprintf(l, sizeof l, "%s/build-step-%" PRIu64, q, seed);
			snprintf(t, sizeof t, "../build-step-%" PRIu64 "-pkg/bin/cli.js", seed);
			if (symlinkat(t, rootfd, l) < 0)
				die("symlink %s: %s", l, strerror(errno));
			set_mtime(l, new_time());
			dir_changed(l);
			added++;
		}
	}

	/* 5. directories whose entries changed get a fixed mtime (deepest first is not needed:
	 * setting a directory's mtime does not touch its parent) */
	for (size_t i = 0; i < ntouched; i++) {
		struct stat st;
		if (fstatat(rootfd, touched_dirs[i], &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
			set_mtime(touched_dirs[i], new_time());
	}

	if (!quiet)
		printf("mutate: %s: seed %" PRIu64 ": %" PRIu64 " appends, %" PRIu64 " same-size rewrites with mtime restored, %" PRIu64
		       " rewrites, %" PRIu64 " chmod, %" PRIu64 " chown, %" PRIu64 " touch, %" PRIu64
		       " type changes, deleted %s (%zu entries), added %s (%" PRIu64 " entries)\n",
		       dir, seed, c_app, c_res, c_rw, c_chmod, c_chown, c_touch, c_type,
		       delpath ? delpath : "nothing", removed, pkg, added);
	return 0;
}
