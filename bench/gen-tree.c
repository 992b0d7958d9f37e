/*
 * gen-tree: a deterministic generator of node_modules-like trees for the benchmarks.
 *
 *   gen-tree [--seed S] [--entries N] [--bytes B] DIR
 *
 * Makes DIR (absent or empty) hold exactly N entries (directories, regular files,
 * symlinks and hard links; DIR itself not counted) whose regular files hold about B
 * bytes in all (default 3000 bytes per entry: the 1M-entry tree is near 3 GB):
 *
 *   DIR/package.json, DIR/package-lock.json, DIR/node_modules/
 *     .bin/NAME -> ../PKG/bin/cli.js               symlinks of packages with a bin
 *     PKG/ and @scope/PKG/                         package.json, README.md, LICENSE
 *       (often a hard link to a shared copy, as pnpm does), CHANGELOG.md, index.js,
 *       index.d.ts, lib/ dist/ esm/ ... with nested module directories of .js, .d.ts,
 *       .js.map files; a long tail of large bundles and source maps;
 *       node_modules/ of nested packages (up to 3 levels deep, most packages hoisted
 *       to the top, as npm installs them).
 *     icon sets (as @mui/icons-material, @fortawesome/...): hundreds to thousands of
 *       small modules flat in the package directory (NAME.js, NAME.d.ts) and again in
 *       its esm/, the few huge directories that hold a large share of a real
 *       node_modules' entries (35% of bench/npm-tree's are in @mui/icons-material and
 *       its esm/): node_modules/@icons/material with N/10 icons (at most 10,000; 3 entries
 *       an icon), and a few smaller ones among the other packages.
 *
 * The same seed, entry count and byte budget give the same tree: names, sizes,
 * contents, modes, symlink targets, hard-link groups and mtimes (fixed values set with
 * futimens/utimensat, directories after their children).  Owners are the caller's.
 *
 * How: two passes over the same seeded PRNG stream.  The first makes nothing and sums
 * the raw sizes; the second scales every size to the byte budget and writes the tree
 * with *at() calls from open directory descriptors, file contents sliced from a
 * pre-filled 4 MiB text buffer.  Prints one summary line on stdout.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#define BUFSZ   (4u << 20)   /* text buffer */
#define MAPSZ   (1u << 20)   /* source-map buffer */
#define CHUNK   (1u << 20)   /* largest single write */
#define MAXDEPTH 64

/* ---- PRNG: xoshiro256** seeded by splitmix64 ---- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

struct rng { uint64_t s[4]; };

static void rng_seed(struct rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
	s[2] ^= t; s[3] = rotl(s[3], 45);
	return res;
}

static struct rng R;  /* the structure stream: identical in both passes */

static uint64_t rnd(void) { return rng_next(&R); }
static uint64_t below(uint64_t n) { return n ? (uint64_t)(((unsigned __int128)rnd() * n) >> 64) : 0; }
static int chance(unsigned permille) { return below(1000) < permille; }

/* log2 in 16.16 fixed point, linear between powers of two; exp2 is its inverse. */
static uint64_t flog2(uint64_t x)
{
	if (x < 1) x = 1;
	int k = 63 - __builtin_clzll(x);
	uint64_t frac = k >= 16 ? (x - (1ull << k)) >> (k - 16) : (x - (1ull << k)) << (16 - k);
	return ((uint64_t)k << 16) | frac;
}

static uint64_t fexp2(uint64_t e)
{
	int k = (int)(e >> 16);
	uint64_t m = 65536 + (e & 0xffff);
	return k >= 16 ? m << (k - 16) : m >> (16 - k);
}

/* Log-uniform integer in [lo, hi]. */
static uint64_t logu(uint64_t lo, uint64_t hi)
{
	uint64_t a = flog2(lo), b = flog2(hi);
	uint64_t v = fexp2(a + below(b - a + 1));
	return v < lo ? lo : v > hi ? hi : v;
}

/* ---- names ---- */

static const char *const WORDS[] = {
	"array", "buffer", "parse", "string", "utils", "core", "plugin", "transform", "babel",
	"react", "webpack", "loader", "config", "types", "helper", "module", "async", "stream",
	"json", "path", "is", "to", "get", "set", "has", "object", "function", "promise", "event",
	"emitter", "http", "url", "crypto", "hash", "color", "style", "css", "html", "dom", "node",
	"fs", "glob", "minimatch", "semver", "debug", "chalk", "ansi", "regex", "escape",
	"unicode", "property", "value", "map", "cache", "queue", "compat", "polyfill", "runtime",
	"env", "preset", "syntax", "proposal", "class", "fields", "private", "methods", "optional",
	"chaining", "spread", "rest", "destructuring", "arrow", "block", "scoping", "template",
	"literals", "generator", "iterator", "symbol", "proxy", "reflect", "typed", "date",
	"time", "format", "locale", "intl", "number", "math", "random", "uuid", "id", "token",
	"auth", "client", "server", "request", "response", "fetch", "socket", "web", "worker",
	"thread", "pool", "lru", "fast", "deep", "equal", "clone", "merge", "extend", "assign",
	"keys", "values", "entries", "flat", "find", "index", "of", "last", "first", "sort",
	"unique", "range", "chunk", "zip", "pick", "omit", "once", "noop", "identity", "compose",
	"pipe", "curry", "memoize", "throttle", "debounce", "retry", "timeout", "delay", "signal",
	"abort", "controller", "reader", "writer", "encoder", "decoder", "base64", "hex", "utf8",
	"binary", "bytes", "size", "file", "dir", "walk", "watch", "resolve", "require", "import",
	"export", "esm", "bundle", "minify", "terser", "source", "sourcemap", "inline", "jest",
	"test", "mock", "spy", "assert", "expect", "snapshot", "coverage", "istanbul", "lint",
	"eslint", "rule", "scope", "visitor", "traverse", "ast", "tokenizer", "lexer", "parser",
	"printer", "schema", "validate", "ajv", "yaml", "toml", "ini", "dotenv", "cli", "args",
	"yargs", "commander", "prompt", "spinner", "progress", "log", "logger", "level", "table",
	"text", "wrap", "width", "strip", "indent", "name", "convert", "emoji", "graceful",
	"mkdirp", "rimraf", "tmp", "os", "homedir", "which", "cross", "spawn", "exec", "child",
	"process", "exit", "hook", "angular", "vue", "router", "store", "redux", "saga", "query",
	"graphql", "apollo", "aws", "sdk", "s3", "dynamodb", "lambda", "credential", "provider",
	"signature", "v4", "smithy", "middleware", "serde", "protocol", "xml", "builder",
	"postcss", "selector", "tailwind", "autoprefixer", "browserslist", "caniuse", "lite",
	"electron", "native", "bindings", "gyp", "prebuild", "napi", "wasm", "esbuild", "rollup",
	"vite", "swc", "typescript", "tslib", "rxjs", "operators", "internal", "observable",
};
#define NWORDS (sizeof WORDS / sizeof WORDS[0])

static const char *word(void) { return WORDS[below(NWORDS)]; }

/* kebab-case of 1..k words into out */
static void kebab(char *out, size_t cap, int maxw)
{
	int n = 1 + (int)below((uint64_t)maxw);
	size_t len = 0;
	out[0] = 0;
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "-" : "", word());
}

/* camelCase of 1..k words */
static void camel(char *out, size_t cap, int maxw)
{
	int n = 1 + (int)below((uint64_t)maxw);
	size_t len = 0;
	out[0] = 0;
	for (int i = 0; i < n && len + 1 < cap; i++) {
		size_t at = len;
		len += (size_t)snprintf(out + len, cap - len, "%s", word());
		if (len >= cap)
			len = cap - 1;
		if (i && out[at] >= 'a' && out[at] <= 'z')
			out[at] = (char)(out[at] - 'a' + 'A');
	}
}

/* ---- the generator state ---- */

enum kind { K_JS, K_JSON, K_DTS, K_MD, K_MAP, K_LICENSE };

struct dir {
	int fd;                 /* -1 in the dry pass */
	uint64_t id;            /* for name uniqueness */
	size_t plen;            /* length of path[] including this dir's name */
	struct timespec ts[2];
	char name[256];
	struct dir *parent;
	struct dir *bin;        /* node_modules dirs: their lazily made .bin */
};

static struct {
	int dry;
	uint64_t remaining;
	uint64_t entries;       /* the whole tree's */
	int icons_done;         /* the big icon set is made */
	uint64_t icons_next;    /* the size of the next icon set, 0: random */
	uint64_t ndirs, nfiles, nsym, nhard;
	uint64_t raw_bytes, bytes;
	double factor;
	uint64_t next_dir_id;
	char path[16384];       /* relative path of the current dir, with trailing '/' */
	char *text, *map;
	/* name set: open addressing over 64-bit hashes of (dir id, name) */
	uint64_t *set;
	uint64_t setmask;
	/* hard links: the shared LICENSE copy */
	char lic_path[16384];
	unsigned lic_links;
	int lic_valid;
	uint64_t lic_gen;
} G;

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("gen-tree: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t hash_name(uint64_t id, const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull ^ (id * 0x9e3779b97f4a7c15ull);
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	h ^= h >> 29;
	return h ? h : 1;
}

/* insert; returns 0 if it was already there */
static int set_add(uint64_t h)
{
	uint64_t i = h & G.setmask;
	while (G.set[i]) {
		if (G.set[i] == h)
			return 0;
		i = (i + 1) & G.setmask;
	}
	G.set[i] = h;
	return 1;
}

/* Make name unique within dir, appending -2, -3, ... (keeping an extension). */
static void uniq(struct dir *d, char *name, size_t cap)
{
	if (set_add(hash_name(d->id, name)))
		return;
	char base[256], ext[64] = "";
	snprintf(base, sizeof base, "%s", name);
	char *dot = strchr(base + 1, '.');
	if (dot) {
		snprintf(ext, sizeof ext, "%s", dot);
		*dot = 0;
	}
	for (unsigned k = 2;; k++) {
		snprintf(name, cap, "%.180s-%u%s", base, k, ext);
		if (set_add(hash_name(d->id, name)))
			return;
	}
}

static int take(void)
{
	if (!G.remaining)
		return 0;
	G.remaining--;
	return 1;
}

static void stamp(struct timespec ts[2])
{
	/* 2020-09-13 .. +1 year, with nanoseconds */
	ts[1].tv_sec = 1600000000 + (time_t)below(365u * 86400u);
	ts[1].tv_nsec = (long)below(1000000000u);
	ts[0] = ts[1];
}

static void path_push(struct dir *d, const char *name)
{
	size_t n = strlen(name);
	if (d->plen + n + 2 >= sizeof G.path)
		die("path too long");
	memcpy(G.path + d->plen, name, n);
	G.path[d->plen + n] = '/';
	G.path[d->plen + n + 1] = 0;
}

/* Open a new directory NAME in P (NAME already unique). Returns 0 when out of budget. */
static int dir_open(struct dir *p, struct dir *c, const char *name, mode_t mode)
{
	if (!take())
		return 0;
	memset(c, 0, sizeof *c);
	snprintf(c->name, sizeof c->name, "%s", name);
	c->parent = p;
	c->id = ++G.next_dir_id;
	stamp(c->ts);
	path_push(p, name);
	c->plen = p->plen + strlen(name) + 1;
	c->fd = -1;
	G.ndirs++;
	if (!G.dry) {
		if (mkdirat(p->fd, name, mode) < 0)
			die("mkdir %s: %s", G.path, strerror(errno));
		c->fd = openat(p->fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (c->fd < 0)
			die("open %s: %s", G.path, strerror(errno));
	}
	return 1;
}

static void dir_close(struct dir *c);

/* Make (or reuse) a unique subdirectory; 0 when out of budget. */
static int subdir(struct dir *p, struct dir *c, const char *want)
{
	char name[256];
	snprintf(name, sizeof name, "%s", want);
	uniq(p, name, sizeof name);
	return dir_open(p, c, name, 0755);
}

static void dir_close(struct dir *c)
{
	if (c->bin) {
		dir_close(c->bin);
		free(c->bin);
		c->bin = NULL;
	}
	if (!G.dry) {
		close(c->fd);
		if (utimensat(c->parent->fd, c->name, c->ts, AT_SYMLINK_NOFOLLOW) < 0)
			die("utimensat %s: %s", c->name, strerror(errno));
	}
	G.path[c->parent->plen] = 0;
}

/* Write SIZE bytes of content for a file of kind K, from a per-file seed. */
static void fill(int fd, enum kind k, uint64_t size, uint64_t fseed)
{
	const char *src = k == K_MAP ? G.map : G.text;
	uint64_t span = k == K_MAP ? MAPSZ : BUFSZ;
	struct iovec iov[2];
	int niov = 0;
	static const char maphdr[] = "{\"version\":3,\"sources\":[\"../src/index.ts\"],\"names\":[],\"mappings\":\"";
	if (k == K_MAP && size > sizeof maphdr) {
		iov[niov++] = (struct iovec){ (void *)maphdr, sizeof maphdr - 1 };
		size -= sizeof maphdr - 1;
	}
	while (size) {
		uint64_t n = size < CHUNK ? size : CHUNK;
		uint64_t off = splitmix64(&fseed) % span;
		iov[niov++] = (struct iovec){ (void *)(src + off), n };
		ssize_t tot = 0;
		for (int i = 0; i < niov; i++)
			tot += (ssize_t)iov[i].iov_len;
		ssize_t w = writev(fd, iov, niov);
		if (w != tot)
			die("write %s: %s", G.path, w < 0 ? strerror(errno) : "short write");
		size -= n;
		niov = 0;
	}
	if (niov && writev(fd, iov, niov) < 0)
		die("write %s: %s", G.path, strerror(errno));
}

/* A regular file of raw size RAW (scaled to the byte budget in the real pass). */
static int file(struct dir *d, const char *want, mode_t mode, enum kind k, uint64_t raw)
{
	char name[256];
	snprintf(name, sizeof name, "%s", want);
	uniq(d, name, sizeof name);
	if (!take())
		return 0;
	struct timespec ts[2];
	stamp(ts);
	uint64_t fseed = rnd();
	G.nfiles++;
	G.raw_bytes += raw;
	if (G.dry)
		return 1;
	uint64_t size = (uint64_t)((double)raw * G.factor);
	if (k == K_LICENSE)
		size = raw;  /* license texts keep their size */
	G.bytes += size;
	int fd = openat(d->fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		die("create %s%s: %s", G.path, name, strerror(errno));
	fill(fd, k, size, fseed);
	if (futimens(fd, ts) < 0)
		die("futimens %s%s: %s", G.path, name, strerror(errno));
	close(fd);
	return 1;
}

static int symlink_(struct dir *d, const char *want, const char *target)
{
	char name[256];
	snprintf(name, sizeof name, "%s", want);
	uniq(d, name, sizeof name);
	if (!take())
		return 0;
	struct timespec ts[2];
	stamp(ts);
	G.nsym++;
	if (G.dry)
		return 1;
	if (symlinkat(target, d->fd, name) < 0)
		die("symlink %s%s: %s", G.path, name, strerror(errno));
	if (utimensat(d->fd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		die("utimensat %s%s: %s", G.path, name, strerror(errno));
	return 1;
}

static int rootfd;

static int hardlink(struct dir *d, const char *want, const char *target_rel)
{
	char name[256];
	snprintf(name, sizeof name, "%s", want);
	uniq(d, name, sizeof name);
	if (!take())
		return 0;
	G.nhard++;
	if (G.dry)
		return 1;
	if (linkat(rootfd, target_rel, d->fd, name, 0) < 0)
		die("link %s%s: %s", G.path, name, strerror(errno));
	return 1;
}

/* ---- the shape of a package ---- */

static const char *const EXT_DIRS[] = { "lib", "dist", "build", "src", "esm", "cjs", "es", "umd", "types" };

static void modules(struct dir *d, uint64_t n, int depth, int dts, int maps)
{
	char name[256], stem[200];
	for (uint64_t i = 0; i < n && G.remaining; i++) {
		if (depth < 3 && n - i > 4 && chance(100)) {
			struct dir sub;
			uint64_t m = 1 + below(n - i < 40 ? n - i : 40);
			if (chance(500)) kebab(stem, sizeof stem, 2); else camel(stem, sizeof stem, 2);
			if (!subdir(d, &sub, stem))
				return;
			modules(&sub, m, depth + 1, dts, maps);
			dir_close(&sub);
			i += m - 1;
			continue;
		}
		if (chance(500)) kebab(stem, sizeof stem, 3); else camel(stem, sizeof stem, 3);
		if (i == 0 && chance(400))
			snprintf(stem, sizeof stem, "index");
		/* A rare name with a space or non-ASCII bytes, as real trees have. */
		if (chance(1) && chance(100))
			snprintf(stem + strlen(stem), sizeof stem - strlen(stem), chance(500) ? " copy" : "-caf\xc3\xa9");
		uint64_t js = logu(60, chance(30) ? 200000 : 8000);
		snprintf(name, sizeof name, "%s.%s", stem, chance(100) ? "mjs" : chance(80) ? "cjs" : "js");
		file(d, name, 0644, K_JS, js);
		if (dts && chance(700)) {
			snprintf(name, sizeof name, "%s.d.ts", stem);
			file(d, name, 0644, K_DTS, logu(60, 6000));
		}
		if (maps && chance(600)) {
			snprintf(name, sizeof name, "%s.js.map", stem);
			file(d, name, 0644, K_MAP, js + js / 2 + logu(100, 2000));
		}
		if (chance(15)) {
			snprintf(name, sizeof name, "%s.json", stem);
			file(d, name, 0644, K_JSON, logu(50, 50000));
		}
	}
}

static void package(struct dir *nm, struct dir *parent, const char *pkgname, int depth);

static struct dir *binof(struct dir *nm)
{
	if (!nm->bin) {
		struct dir *b = malloc(sizeof *b);
		if (!b)
			die("out of memory");
		if (!subdir(nm, b, ".bin")) {
			free(b);
			return NULL;
		}
		nm->bin = b;
	}
	return nm->bin;
}

/* A node_modules directory inside P with about N packages. */
static void node_modules(struct dir *p, uint64_t n, int depth, int top)
{
	struct dir nm;
	if (!subdir(p, &nm, "node_modules"))
		return;
	if (top && !G.icons_done) {
		/* the big icon set first, while the budget lasts */
		struct dir scope;
		G.icons_done = 1;
		G.icons_next = G.entries / 10 < 10000 ? G.entries / 10 : 10000;
		if (G.icons_next >= 10 && subdir(&nm, &scope, "@icons")) {
			package(&nm, &scope, "material", 0);
			dir_close(&scope);
		}
		G.icons_next = 0;
	}
	for (uint64_t i = 0; (top || i < n) && G.remaining; i++) {
		char name[256];
		if (chance(150)) {
			/* a scope with a few packages */
			struct dir scope;
			char s[128];
			kebab(s, sizeof s, 1);
			snprintf(name, sizeof name, "@%s", s);
			if (!subdir(&nm, &scope, name))
				break;
			uint64_t k = logu(1, depth ? 4 : 40);
			for (uint64_t j = 0; j < k && G.remaining; j++) {
				kebab(name, sizeof name, 4);
				package(&nm, &scope, name, depth);
			}
			dir_close(&scope);
		} else {
			kebab(name, sizeof name, 3);
			package(&nm, &nm, name, depth);
		}
	}
	dir_close(&nm);
}

static const char *const ICON_STYLES[] = { "", "", "Outlined", "Rounded", "Sharp", "TwoTone" };

/* An icon's name, from a stream of its own (the same names again in esm/). */
static void icon_name(struct rng *r, char *out, size_t cap)
{
	int n = 1 + (int)(rng_next(r) % 3);
	size_t len = 0;
	out[0] = 0;
	for (int i = 0; i < n && len + 1 < cap; i++) {
		size_t at = len;
		len += (size_t)snprintf(out + len, cap - len, "%s", WORDS[rng_next(r) % NWORDS]);
		if (len >= cap)
			len = cap - 1;
		if (out[at] >= 'a' && out[at] <= 'z')
			out[at] = (char)(out[at] - 'a' + 'A');
	}
	snprintf(out + len, cap - len, "%s", ICON_STYLES[rng_next(r) % (sizeof ICON_STYLES / sizeof ICON_STYLES[0])]);
}

/* An icon set's modules: N of them flat in PKG (NAME.js, NAME.d.ts) and in PKG/esm/
 * (NAME.js).  The random ones hold at most a sixteenth of the tree's entries. */
static void icon_set(struct dir *pkg)
{
	uint64_t n = logu(300, 8000), cap = G.entries / 48;
	if (G.icons_next) {
		n = cap = G.icons_next;
		G.icons_next = 0;
	}
	struct rng names;
	rng_seed(&names, rnd());
	struct rng again = names;
	if (n > cap)
		n = cap;
	char stem[200], name[256];
	for (uint64_t i = 0; i < n && G.remaining; i++) {
		icon_name(&names, stem, sizeof stem);
		snprintf(name, sizeof name, "%s.js", stem);
		file(pkg, name, 0644, K_JS, logu(300, 3000));
		snprintf(name, sizeof name, "%s.d.ts", stem);
		file(pkg, name, 0644, K_DTS, logu(60, 300));
	}
	struct dir esm;
	if (!G.remaining || !subdir(pkg, &esm, "esm"))
		return;
	for (uint64_t i = 0; i < n && G.remaining; i++) {
		icon_name(&again, stem, sizeof stem);
		snprintf(name, sizeof name, "%s.js", stem);
		file(&esm, name, 0644, K_JS, logu(300, 3000));
	}
	dir_close(&esm);
}

static void package(struct dir *nm, struct dir *parent, const char *pkgname, int depth)
{
	struct dir pkg, sub;
	char name[256];
	if (!subdir(parent, &pkg, pkgname))
		return;
	file(&pkg, "package.json", 0644, K_JSON, logu(300, 5000));
	if (chance(900))
		file(&pkg, chance(500) ? "README.md" : "readme.md", 0644, K_MD, logu(200, 40000));
	if (chance(850)) {
		/* pnpm-like: a third of the licenses are hard links to a shared copy */
		if (G.lic_valid && chance(330)) {
			if (hardlink(&pkg, "LICENSE", G.lic_path) && ++G.lic_links >= 200)
				G.lic_valid = 0;
		} else if (file(&pkg, "LICENSE", 0644, K_LICENSE, 1076 + below(40)) && !G.lic_valid) {
			snprintf(G.lic_path, sizeof G.lic_path, "%.16000sLICENSE", G.path);
			G.lic_valid = 1;
			G.lic_links = 0;
		}
	}
	if (chance(250))
		file(&pkg, "CHANGELOG.md", 0644, K_MD, logu(1000, 150000));
	if (chance(800))
		file(&pkg, "index.js", 0644, K_JS, logu(60, 4000));
	if (chance(400))
		file(&pkg, "index.d.ts", 0644, K_DTS, logu(60, 8000));
	if (chance(80) && G.remaining > 3) {
		/* a command: bin/cli.js and node_modules/.bin/NAME -> ../PKG/bin/cli.js */
		if (subdir(&pkg, &sub, "bin")) {
			int ok = file(&sub, "cli.js", 0755, K_JS, logu(200, 20000));
			dir_close(&sub);
			const char *base = strrchr(pkgname, '/');
			base = base ? base + 1 : pkgname;
			if (ok) {
				/* .bin lives in nm, beside the open package: keep path[] intact */
				static char save[sizeof G.path];
				memcpy(save, G.path, sizeof save);
				struct dir *b = binof(nm);
				if (b) {
					char target[600];
					snprintf(target, sizeof target, "../%s%s%s/bin/cli.js",
					         parent != nm ? parent->name : "", parent != nm ? "/" : "", pkg.name);
					symlink_(b, base, target);
				}
				memcpy(G.path, save, sizeof save);
			}
		}
	}
	/* module directories, or an icon set's flat ones */
	uint64_t nmods;
	unsigned t = (unsigned)below(100);
	nmods = t < 70 ? logu(1, 12) : t < 95 ? logu(8, 100) : logu(80, 1200);
	int ndirs = chance(300) ? 2 : 1;
	int dts = chance(500), maps = chance(350);
	if (depth == 0 && (G.icons_next || chance(4))) {
		icon_set(&pkg);
		ndirs = 0;
	}
	for (int i = 0; i < ndirs && G.remaining; i++) {
		if (!subdir(&pkg, &sub, EXT_DIRS[below(sizeof EXT_DIRS / sizeof EXT_DIRS[0])]))
			break;
		modules(&sub, nmods, 0, dts, maps);
		dir_close(&sub);
	}
	/* the long tail: bundles and their maps */
	if (chance(70) && G.remaining) {
		if (subdir(&pkg, &sub, "bundles")) {
			char stem[128];
			kebab(stem, sizeof stem, 2);
			uint64_t big = logu(30000, chance(100) ? 12000000 : 2000000);
			snprintf(name, sizeof name, "%s.umd.js", stem);
			file(&sub, name, 0644, K_JS, big);
			snprintf(name, sizeof name, "%s.umd.min.js", stem);
			file(&sub, name, 0644, K_JS, big / 3);
			snprintf(name, sizeof name, "%s.umd.min.js.map", stem);
			file(&sub, name, 0644, K_MAP, big + big / 2);
			dir_close(&sub);
		}
	}
	if (depth < 3 && chance(depth ? 30 : 50) && G.remaining)
		node_modules(&pkg, logu(1, 12), depth + 1, 0);
	dir_close(&pkg);
}

/* The whole tree; returns with G.remaining == 0 unless the budget was tiny. */
static void tree(struct dir *root, uint64_t entries)
{
	G.remaining = entries;
	G.entries = entries;
	G.icons_done = 0;
	G.icons_next = 0;
	G.ndirs = G.nfiles = G.nsym = G.nhard = G.raw_bytes = G.bytes = 0;
	G.next_dir_id = 0;
	G.lic_valid = 0;
	memset(G.set, 0, (G.setmask + 1) * sizeof *G.set);
	G.path[0] = 0;
	file(root, "package.json", 0644, K_JSON, 400 + entries / 60);
	file(root, "package-lock.json", 0644, K_JSON, 2000 + entries * 3);
	while (G.remaining)
		node_modules(root, 0, 0, 1);
}

/* ---- contents ---- */

static void make_text(char *buf, size_t n, uint64_t seed)
{
	struct rng r;
	rng_seed(&r, seed ^ 0x7465787462756621ull);
	size_t i = 0;
	static const char *const stmts[] = {
		"const %s = require('./%s');\n", "function %s(%s, options) {\n", "  return %s.%s(value);\n",
		"}\n", "  if (%s === undefined) throw new TypeError('%s');\n", "export { %s as %s };\n",
		"  var %s = %s[key];\n", "// %s: %s\n", "  \"%s\": \"^%s\",\n", "/** @param {string} %s %s */\n",
		"module.exports = %s;\n", "  for (const %s of %s) {\n", "import { %s } from '%s';\n",
		"export declare function %s(%s: string): boolean;\n",
	};
	while (i < n) {
		const char *f = stmts[rng_next(&r) % (sizeof stmts / sizeof stmts[0])];
		char line[256];
		int len = snprintf(line, sizeof line, f, WORDS[rng_next(&r) % NWORDS], WORDS[rng_next(&r) % NWORDS]);
		for (int j = 0; j < len && i < n; j++)
			buf[i++] = line[j];
	}
}

static void make_map(char *buf, size_t n, uint64_t seed)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	struct rng r;
	rng_seed(&r, seed ^ 0x6d61706d61706d61ull);
	for (size_t i = 0; i < n; i++) {
		uint64_t x = rng_next(&r);
		unsigned c = (unsigned)(x & 63);
		buf[i] = (x >> 8) % 7 == 0 ? ((x >> 16) % 5 == 0 ? ';' : ',') : b64[c % 24 + ((x >> 20) % 3 == 0 ? 24 : 0)];
	}
}

/* ---- main ---- */

static void usage(int rc)
{
	fputs("usage: gen-tree [--seed S] [--entries N] [--bytes B] [-q] DIR\n"
	      "  makes DIR hold a deterministic node_modules-like tree of exactly N entries\n"
	      "  (default 100000) and about B bytes (default 3000 per entry).\n", rc ? stderr : stdout);
	exit(rc);
}

static uint64_t num(const char *s, const char *what)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s)
		die("bad %s: %s", what, s);
	switch (*end) {
	case 'k': case 'K': v *= 1000ull; end++; break;
	case 'm': case 'M': v *= 1000000ull; end++; break;
	case 'g': case 'G': v *= 1000000000ull; end++; break;
	}
	if (*end)
		die("bad %s: %s", what, s);
	return v;
}

int main(int argc, char **argv)
{
	uint64_t seed = 1, entries = 100000, bytes = 0;
	int quiet = 0;
	const char *dir = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			usage(0);
		else if (!strcmp(a, "-q") || !strcmp(a, "--quiet"))
			quiet = 1;
		else if (!strcmp(a, "--seed") && i + 1 < argc)
			seed = num(argv[++i], "seed");
		else if (!strcmp(a, "--entries") && i + 1 < argc)
			entries = num(argv[++i], "entry count");
		else if (!strcmp(a, "--bytes") && i + 1 < argc)
			bytes = num(argv[++i], "byte budget");
		else if (a[0] == '-' && a[1])
			usage(2);
		else if (!dir)
			dir = a;
		else
			usage(2);
	}
	if (!dir)
		usage(2);
	if (!bytes)
		bytes = entries * 3000;

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	umask(0);

	uint64_t cap = 1024;
	while (cap < entries * 2)
		cap <<= 1;
	G.set = calloc(cap, sizeof *G.set);
	G.setmask = cap - 1;
	if (!G.set)
		die("out of memory");

	struct dir root = { .fd = -1 };
	/* pass 1: dry, sum the raw sizes */
	G.dry = 1;
	rng_seed(&R, seed);
	tree(&root, entries);
	uint64_t fixed = 0;  /* license bytes are not scaled; close enough to ignore */
	G.factor = G.raw_bytes > fixed ? (double)bytes / (double)G.raw_bytes : 1.0;

	/* pass 2: make it */
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		die("mkdir %s: %s", dir, strerror(errno));
	rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		die("open %s: %s", dir, strerror(errno));
	DIR *dp = fdopendir(dup(rootfd));
	struct dirent *de;
	while (dp && (de = readdir(dp)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			die("%s is not empty", dir);
	if (dp)
		closedir(dp);
	G.text = malloc(BUFSZ + CHUNK);
	G.map = malloc(MAPSZ + CHUNK);
	if (!G.text || !G.map)
		die("out of memory");
	make_text(G.text, BUFSZ + CHUNK, seed);
	make_map(G.map, MAPSZ + CHUNK, seed);

	G.dry = 0;
	rng_seed(&R, seed);
	root.fd = rootfd;
	tree(&root, entries);
	struct timespec rts[2] = { { 1600000000 + 365 * 86400, 0 }, { 1600000000 + 365 * 86400, 0 } };
	if (futimens(rootfd, rts) < 0)
		die("futimens %s: %s", dir, strerror(errno));
	close(rootfd);

	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	uint64_t made = G.ndirs + G.nfiles + G.nsym + G.nhard;
	if (!quiet)
		printf("gen-tree: %s: seed %" PRIu64 ", %" PRIu64 " entries (%" PRIu64 " dirs, %" PRIu64
		       " files, %" PRIu64 " symlinks, %" PRIu64 " hard links), %" PRIu64 " bytes, %.2f s\n",
		       dir, seed, made, G.ndirs, G.nfiles, G.nsym, G.nhard, G.bytes, secs);
	return made == entries ? 0 : 1;
}
