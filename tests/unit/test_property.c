/*
 * The round-trip property: for random trees and random sequences of changes,
 * a full layer of the start tree followed by the diff layer of every later
 * state, applied in order onto an empty directory, rebuilds the final tree:
 * `compare --mode full --mtime-seconds` finds no difference, every regular
 * file has the same bytes and the hard-link groups are the same.
 *
 * LS_PROPERTY_SEQUENCES sets how many sequences run (default 200; `make soak`
 * runs thousands), LS_PROPERTY_SEED the first seed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "layersnap.h"
#include "manifest.h"
#include "ls_skip.h"

/* snprintf for paths: a truncated path would make the test lie. */
static void pathf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pathf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len)
		fail_msg("path too long: %s", buf);
}

struct rng {
	uint64_t s;
};

static uint64_t next_u64(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static unsigned below(struct rng *r, unsigned n)
{
	return (unsigned)(next_u64(r) % n);
}

static const char *const names[] = {
	"a", "b", "c", "a.b", "a-b", "a0", "dir", "file.txt", "sp ace", "new\nline", "tab\tbed",
	"back\\slash", "\xc3\xa9t\xc3\xa9", "\xff\xfe", "\xe6\x97\xa5\xe6\x9c\xac", "z",
	"node_modules", "index.js", "package.json", "-dash", "x~",
};
#define N_NAMES (sizeof(names) / sizeof(names[0]))

/* ---- tree inspection ------------------------------------------------------ */

struct paths {
	char **v;
	size_t n, cap;
};

static void paths_free(struct paths *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i]);
	free(p->v);
	memset(p, 0, sizeof(*p));
}

static void collect(const char *root, const char *rel, struct paths *out)
{
	char dir[8192];
	pathf(dir, sizeof(dir), "%s%s%s", root, *rel ? "/" : "", rel);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char sub[8192];
		pathf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", e->d_name);
		if (out->n == out->cap) {
			out->cap = out->cap ? out->cap * 2 : 64;
			out->v = realloc(out->v, out->cap * sizeof(*out->v));
			assert_non_null(out->v);
		}
		out->v[out->n++] = strdup(sub);
		char full[8192];
		pathf(full, sizeof(full), "%s/%s", root, sub);
		struct stat st;
		if (lstat(full, &st) == 0 && S_ISDIR(st.st_mode))
			collect(root, sub, out);
	}
	closedir(d);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted list of every path under root, for picking victims deterministically. */
static void list_tree(const char *root, struct paths *out)
{
	memset(out, 0, sizeof(*out));
	collect(root, "", out);
	if (out->n)
		qsort(out->v, out->n, sizeof(*out->v), cmp_str);
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- random tree and random changes --------------------------------------- */

struct ctx {
	struct rng rng;
	char root[4096];
	bool is_root;
	int64_t now;
};

static void full_path(const struct ctx *c, const char *rel, char *buf, size_t len)
{
	pathf(buf, len, "%s/%s", c->root, rel);
}

static void random_times(struct ctx *c, const char *path)
{
	struct timespec ts[2];
	/* Half the time keep "now", so the racy rule is exercised too. */
	if (below(&c->rng, 2))
		return;
	ts[0].tv_sec = ts[1].tv_sec = 1000000000 + below(&c->rng, 700000000);
	ts[0].tv_nsec = ts[1].tv_nsec = below(&c->rng, 1000000000);
	utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
}

static void write_random(struct ctx *c, const char *path, int flags, size_t size)
{
	int fd = open(path, O_WRONLY | flags, 0644);
	if (fd < 0)
		return;
	char buf[4096];
	while (size > 0) {
		size_t n = size < sizeof(buf) ? size : sizeof(buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = (char)('a' + below(&c->rng, 26));
		if (write(fd, buf, n) != (ssize_t)n)
			break;
		size -= n;
	}
	close(fd);
}

static size_t random_size(struct ctx *c)
{
	switch (below(&c->rng, 4)) {
	case 0: return 0;
	case 1: return below(&c->rng, 100);
	case 2: return below(&c->rng, 5000);
	}
	return 512 * below(&c->rng, 4);  /* block-sized edges */
}

static void random_owner_mode(struct ctx *c, const char *path, bool is_dir)
{
	static const mode_t file_modes[] = { 0644, 0600, 0755, 0444, 04755, 02755, 0700 };
	static const mode_t dir_modes[] = { 0755, 0700, 01777, 0750 };
	if (c->is_root && below(&c->rng, 3) == 0) {
		uid_t u = below(&c->rng, 3) == 0 ? 3000000 : below(&c->rng, 2000);
		if (lchown(path, u, below(&c->rng, 2000)) != 0)
			return;
	}
	if (is_dir)
		chmod(path, dir_modes[below(&c->rng, 4)]);
	else
		chmod(path, file_modes[below(&c->rng, 7)]);
}

/* Creates one random entry at rel (which must not exist). */
static void create_entry(struct ctx *c, const char *rel, int depth, struct paths *files)
{
	char p[8192];
	full_path(c, rel, p, sizeof(p));
	unsigned kind = below(&c->rng, depth > 2 ? 7 : 10);
	switch (kind) {
	case 0: case 1: case 2: case 3:
		write_random(c, p, O_CREAT | O_EXCL, random_size(c));
		random_owner_mode(c, p, false);
		break;
	case 4:
		if (symlink(below(&c->rng, 2) ? "../a" : names[below(&c->rng, N_NAMES)], p) == 0 &&
		    c->is_root && below(&c->rng, 3) == 0)
			lchown(p, 1000, 1000);
		break;
	case 5:
		if (mkfifo(p, 0644) == 0)
			random_owner_mode(c, p, false);
		break;
	case 6:
		if (files && files->n) {
			char t[8192];
			full_path(c, files->v[below(&c->rng, (unsigned)files->n)], t, sizeof(t));
			struct stat st;
			if (lstat(t, &st) == 0 && S_ISREG(st.st_mode) && link(t, p) == 0)
				return; /* a link shares its target's times */
		}
		write_random(c, p, O_CREAT | O_EXCL, random_size(c));
		break;
	default: {
		if (mkdir(p, 0755) != 0)
			return;
		unsigned n = below(&c->rng, 5);
		for (unsigned i = 0; i < n; i++) {
			char sub[8192];
			pathf(sub, sizeof(sub), "%s/%s", rel, names[below(&c->rng, N_NAMES)]);
			char sp[8192];
			full_path(c, sub, sp, sizeof(sp));
			struct stat st;
			if (lstat(sp, &st) != 0)
				create_entry(c, sub, depth + 1, files);
		}
		random_owner_mode(c, p, true);
		break;
	}
	}
	random_times(c, p);
}

static void regular_files(const struct ctx *c, struct paths *all, struct paths *files)
{
	memset(files, 0, sizeof(*files));
	for (size_t i = 0; i < all->n; i++) {
		char p[8192];
		full_path(c, all->v[i], p, sizeof(p));
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISREG(st.st_mode)) {
			if (files->n == files->cap) {
				files->cap = files->cap ? files->cap * 2 : 32;
				files->v = realloc(files->v, files->cap * sizeof(*files->v));
				assert_non_null(files->v);
			}
			files->v[files->n++] = strdup(all->v[i]);
		}
	}
}

/* A name that does not exist yet under dir rel ("" = root). */
static bool fresh_child(struct ctx *c, const char *dir, char *out, size_t len)
{
	for (int tries = 0; tries < 8; tries++) {
		pathf(out, len, "%s%s%s", dir, *dir ? "/" : "", names[below(&c->rng, N_NAMES)]);
		char p[8192];
		full_path(c, out, p, sizeof(p));
		struct stat st;
		if (lstat(p, &st) != 0)
			return true;
	}
	return false;
}

static void random_change(struct ctx *c)
{
	struct paths all, files;
	list_tree(c->root, &all);
	regular_files(c, &all, &files);
	char p[8192], q[8192], rel[8192];
	const char *victim = all.n ? all.v[below(&c->rng, (unsigned)all.n)] : NULL;
	const char *file = files.n ? files.v[below(&c->rng, (unsigned)files.n)] : NULL;
	struct stat st;
	switch (below(&c->rng, 14)) {
	case 0: /* create somewhere */ {
		const char *dir = "";
		if (victim) {
			full_path(c, victim, p, sizeof(p));
			if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
				dir = victim;
		}
		if (fresh_child(c, dir, rel, sizeof(rel)))
			create_entry(c, rel, 1, &files);
		break;
	}
	case 1: /* append */
		if (file) {
			full_path(c, file, p, sizeof(p));
			write_random(c, p, O_APPEND, 1 + below(&c->rng, 700));
		}
		break;
	case 2: /* truncate */
		if (file) {
			full_path(c, file, p, sizeof(p));
			if (lstat(p, &st) == 0 && truncate(p, st.st_size / 2) == 0 && below(&c->rng, 2))
				random_times(c, p);
		}
		break;
	case 3: /* same-size rewrite, mtime restored */
		if (file) {
			full_path(c, file, p, sizeof(p));
			if (lstat(p, &st) == 0 && st.st_size > 0) {
				write_random(c, p, 0, (size_t)st.st_size);
				struct timespec ts[2] = { st.st_atim, st.st_mtim };
				utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW);
			}
		}
		break;
	case 4: /* chmod / chown */
		if (victim) {
			full_path(c, victim, p, sizeof(p));
			if (lstat(p, &st) == 0 && !S_ISLNK(st.st_mode))
				random_owner_mode(c, p, S_ISDIR(st.st_mode));
		}
		break;
	case 5: /* touch */
		if (victim) {
			full_path(c, victim, p, sizeof(p));
			struct timespec ts[2];
			ts[0].tv_sec = ts[1].tv_sec = 1200000000 + below(&c->rng, 100000);
			ts[0].tv_nsec = ts[1].tv_nsec = 0;
			utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW);
		}
		break;
	case 6: /* rename */
		if (victim && fresh_child(c, "", rel, sizeof(rel))) {
			full_path(c, victim, p, sizeof(p));
			full_path(c, rel, q, sizeof(q));
			rename(p, q);
		}
		break;
	case 7: case 8: /* delete file or subtree */
		if (victim) {
			full_path(c, victim, p, sizeof(p));
			rm_rf(p);
		}
		break;
	case 9: /* type change: whatever it was, something else now */
		if (victim) {
			full_path(c, victim, p, sizeof(p));
			bool was_dir = lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
			rm_rf(p);
			if (was_dir)
				write_random(c, p, O_CREAT | O_EXCL, random_size(c));
			else if (below(&c->rng, 2))
				mkdir(p, 0755);
			else
				symlink("target", p);
		}
		break;
	case 10: /* new hard link to an old file */
		if (file && fresh_child(c, "", rel, sizeof(rel))) {
			full_path(c, file, p, sizeof(p));
			full_path(c, rel, q, sizeof(q));
			link(p, q);
		}
		break;
	case 11: /* retarget a symlink or add one */
		if (victim) {
			full_path(c, victim, p, sizeof(p));
			if (lstat(p, &st) == 0 && S_ISLNK(st.st_mode)) {
				unlink(p);
				symlink(names[below(&c->rng, N_NAMES)], p);
				break;
			}
		}
		if (fresh_child(c, "", rel, sizeof(rel))) {
			full_path(c, rel, q, sizeof(q));
			symlink("a/b", q);
		}
		break;
	case 12: /* a fifo */
		if (fresh_child(c, "", rel, sizeof(rel))) {
			full_path(c, rel, q, sizeof(q));
			mkfifo(q, 0600);
		}
		break;
	default: /* rewrite a file in place, new size */
		if (file) {
			full_path(c, file, p, sizeof(p));
			write_random(c, p, O_TRUNC, random_size(c));
		}
		break;
	}
	paths_free(&all);
	paths_free(&files);
}

/* ---- the round trip -------------------------------------------------------- */

/* The seed of the running sequence, named in every failure to replay it. */
static uint64_t current_seed;
#define FAIL(fmt, ...) fail_msg("seed %llu: " fmt, (unsigned long long)current_seed, __VA_ARGS__)

static int diff_step(const char *root, const ls_manifest *base, const char *layer_path,
		     enum ls_compress compress, ls_manifest **next)
{
	struct ls_walk_options wo = LS_WALK_OPTIONS_INIT;
	struct ls_diff_options o = LS_DIFF_OPTIONS_INIT;
	o.walk = &wo;
	wo.mode = LS_MODE_FULL;
	wo.io = LS_IO_SYNC;
	o.compress = compress;
	int fd = open(layer_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	struct ls_diff_result res = LS_DIFF_RESULT_INIT;
	struct ls_error err = { 0 };
	int rc = ls_diff(root, &o, base, fd, &res, next, &err);
	if (rc)
		FAIL("diff %s: %s", root, err.msg);
	close(fd);
	return rc;
}

static void apply_step(const char *layer_path, const char *dest)
{
	int fd = open(layer_path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	struct ls_apply_stats stats = LS_APPLY_STATS_INIT;
	/* The round trip compares modes: not root, apply would drop setuid and
	 * setgid bits (its default), which the tree here sets itself. */
	struct ls_apply_options ao = { .struct_size = sizeof(ao), .keep_setid = true };
	struct ls_error err = { 0 };
	int rc = ls_apply(fd, dest, &ao, &stats, &err);
	close(fd);
	if (rc)
		FAIL("apply %s: %s", layer_path, err.msg);
}

struct diffs {
	char text[4096];
	size_t len;
};

static int record_change(void *vctx, enum ls_change ch, const char *path, size_t len)
{
	struct diffs *d = vctx;
	int n = snprintf(d->text + d->len, sizeof(d->text) - d->len, "%c %.*s\n", (char)ch, (int)len, path);
	if (n > 0 && d->len + (size_t)n < sizeof(d->text))
		d->len += (size_t)n;
	return 0;
}

static void same_bytes(const char *a, const char *b)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	assert_non_null(fa);
	assert_non_null(fb);
	int x, y;
	do {
		x = fgetc(fa);
		y = fgetc(fb);
		if (x != y)
			FAIL("content differs: %s", b);
	} while (x != EOF);
	fclose(fa);
	fclose(fb);
}

/* Hard-link groups as "path of the group's first name" per path: equal
 * partitions give equal lists. */
static void link_signature(const char *root, struct paths *all, char **sig)
{
	size_t cap = 4096, len = 0;
	char *s = calloc(1, cap);
	for (size_t i = 0; i < all->n; i++) {
		char p[8192];
		pathf(p, sizeof(p), "%s/%s", root, all->v[i]);
		struct stat st;
		if (lstat(p, &st) != 0 || S_ISDIR(st.st_mode) || st.st_nlink < 2)
			continue;
		const char *first = all->v[i];
		for (size_t k = 0; k < i; k++) {
			char q[8192];
			struct stat st2;
			pathf(q, sizeof(q), "%s/%s", root, all->v[k]);
			if (lstat(q, &st2) == 0 && st2.st_ino == st.st_ino && st2.st_dev == st.st_dev) {
				first = all->v[k];
				break;
			}
		}
		size_t need = len + strlen(all->v[i]) + strlen(first) + 4;
		if (need > cap) {
			cap = need * 2;
			s = realloc(s, cap);
		}
		len += (size_t)sprintf(s + len, "%s>%s\n", all->v[i], first);
	}
	*sig = s;
}

static void check_equal(const char *tree, const char *restored, const ls_manifest *final)
{
	struct ls_walk_options o = LS_WALK_OPTIONS_INIT;
	o.mode = LS_MODE_FULL;
	o.io = LS_IO_SYNC;
	ls_manifest *got = NULL;
	struct ls_error err = { 0 };
	if (ls_scan(restored, &o, NULL, &got, &err))
		FAIL("scan %s: %s", restored, err.msg);
	struct diffs d = { .len = 0 };
	long n = ls_compare(final, got, LS_MODE_FULL, true, record_change, &d, &err);
	ls_manifest_free(got);
	if (n != 0)
		FAIL("restored tree differs from %s (%ld changes):\n%s", tree, n, d.text);

	struct paths a, b;
	list_tree(tree, &a);
	list_tree(restored, &b);
	if (a.n != b.n)
		FAIL("%zu paths in the tree, %zu restored", a.n, b.n);
	for (size_t i = 0; i < a.n; i++) {
		if (strcmp(a.v[i], b.v[i]) != 0)
			FAIL("path %s restored as %s", a.v[i], b.v[i]);
		char pa[8192], pb[8192];
		pathf(pa, sizeof(pa), "%s/%s", tree, a.v[i]);
		pathf(pb, sizeof(pb), "%s/%s", restored, b.v[i]);
		struct stat st;
		if (lstat(pa, &st) == 0 && S_ISREG(st.st_mode))
			same_bytes(pa, pb);
	}
	char *sa, *sb;
	link_signature(tree, &a, &sa);
	link_signature(restored, &b, &sb);
	if (strcmp(sa, sb) != 0)
		FAIL("hard-link groups differ:\n%s---\n%s", sa, sb);
	free(sa);
	free(sb);
	paths_free(&a);
	paths_free(&b);
}

static void run_sequence(uint64_t seed, const char *scratch)
{
	struct ctx c;
	memset(&c, 0, sizeof(c));
	c.rng.s = seed;
	c.is_root = geteuid() == 0;
	pathf(c.root, sizeof(c.root), "%s/tree", scratch);
	char restored[4096], layer[4096];
	pathf(restored, sizeof(restored), "%s/restored", scratch);
	assert_int_equal(mkdir(c.root, 0755), 0);
	assert_int_equal(mkdir(restored, 0755), 0);

	unsigned n = 3 + below(&c.rng, 8);
	for (unsigned i = 0; i < n; i++) {
		char rel[8192];
		if (fresh_child(&c, "", rel, sizeof(rel)))
			create_entry(&c, rel, 0, NULL);
	}
	ls_manifest *m = NULL, *next = NULL;
	pathf(layer, sizeof(layer), "%s/layer0", scratch);
	diff_step(c.root, NULL, layer, (enum ls_compress)(seed % 3), &m);
	apply_step(layer, restored);
	unsigned steps = 1 + below(&c.rng, 4);
	for (unsigned s = 1; s <= steps; s++) {
		unsigned changes = 1 + below(&c.rng, 5);
		for (unsigned k = 0; k < changes; k++)
			random_change(&c);
		pathf(layer, sizeof(layer), "%s/layer%u", scratch, s);
		diff_step(c.root, m, layer, (enum ls_compress)((seed + s) % 3), &next);
		ls_manifest_free(m);
		m = next;
		apply_step(layer, restored);
	}
	check_equal(c.root, restored, m);
	ls_manifest_free(m);
	rm_rf(c.root);
	rm_rf(restored);
}

static void test_round_trip(void **state)
{
	(void)state;
	const char *env = getenv("LS_PROPERTY_SEQUENCES");
	long count = env ? strtol(env, NULL, 10) : 200;
	const char *seed_env = getenv("LS_PROPERTY_SEED");
	uint64_t first = seed_env ? strtoull(seed_env, NULL, 10) : 1;
	char scratch[] = "/tmp/layersnap-property.XXXXXX";
	assert_non_null(mkdtemp(scratch));
	/* random_owner_mode() changes owners only as root */
	if (geteuid() != 0)
		ls_skip_part("root", "not root: owner changes (lchown) in the random sequences");
	for (long i = 0; i < count; i++) {
		char dir[4096];
		pathf(dir, sizeof(dir), "%s/%ld", scratch, i);
		assert_int_equal(mkdir(dir, 0755), 0);
		current_seed = first + (uint64_t)i;
		run_sequence(current_seed, dir);
		rm_rf(dir);
	}
	rm_rf(scratch);
	print_message("%ld random sequences round-tripped without a difference\n", count);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
