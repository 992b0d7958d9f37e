#include "walk.h"
#include "carry.h"
#include "error.h"
#include "ioq.h"
#include "modes.h"
#include "mountinfo.h"
#include "output.h"
#include "path.h"
#include "pattern.h"
#include "xattr.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <linux/magic.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF (256 * 1024)
#define RING_DEPTH 256

/* Strings of a directory's children: names, link targets, xattr blobs, each
 * NUL-terminated, found by offset (the buffer moves as it grows). */
struct arena {
	char *buf;
	size_t len, cap;
};

/* One child of a directory, as read by a dir job. */
struct child {
	uint32_t name_off;      /* into job->arena */
	uint16_t name_len;
	uint16_t link_len;
	uint32_t link_off;
	uint32_t xattr_off;
	uint32_t xattr_len;
	int err;                /* statx/readlink/hash failure, 0 if none */
	bool gone;              /* vanished or excluded: not recorded */
	bool hashed;
	bool mountpoint;        /* a directory not descended */
	bool ignored;           /* on Kaniko's ignore list (default excludes) */
	uint32_t only;          /* in an --only job: its node among the job's node's kids */
	uint8_t hash[16];
	bool mount_root;        /* statx: the root of a mount */
	struct ls_rec st;       /* its statx, as a manifest record keeps it (no hash) */
	int fd;                 /* directories: opened by the parent's job, or -1 */
	size_t base_pos;        /* its base record, or where it would go (SIZE_MAX: not looked up) */
	struct dir_job *sub;    /* directories to descend into */
};

/* --only: the listed paths as a tree of names; a node is listed (walked
 * whole) or a directory on the way to listed paths (statx'ed only). */
struct only_node {
	char *name;
	size_t name_len;
	bool listed;
	struct only_node *kids;     /* sorted by name as siblings are walked */
	size_t n_kids;
};

struct dir_job {
	struct ls_task task;
	struct walker *w;
	const struct only_node *only;  /* an --only job: these children, no listing */
	char *path;             /* relative to ROOT, "" for ROOT */
	size_t path_len;
	uint64_t dev;           /* the directory's device (one-file-system) */
	uint64_t ino;           /* and inode, as its parent saw them */
	int64_t racy_from_ns;   /* stat cache: timestamps from here on are racy (0: not yet known) */
	int fd;                 /* opened by the parent's job, or -1 */
	/* The base records beneath the directory, [base_lo, base_hi): where
	 * its children's are looked up (the whole base for ROOT, and for the
	 * jobs of a walk that needs no lookups). */
	size_t base_lo, base_hi;
	struct child *kids;
	size_t n, cap;
	struct arena arena;
	int err;                /* opening or reading the directory failed */
	bool spawned;           /* its subdirectories' jobs are queued */
};

struct walker {
	const char *root;
	int rootfd;
	const struct ls_walk_params *p;
	const struct ls_walk_options *o;
	const struct ls_mode_ops *mode;
	char **excl;            /* sorted excludes and skip paths */
	size_t n_excl;
	struct ls_patterns *patterns;  /* --exclude-pattern, or NULL */
	char **ignored;         /* sorted: Kaniko's ignore list (default excludes) */
	size_t n_ignored;
	struct only_node only;  /* --only: ROOT's node */
	bool only_on;           /* --only or --upper: the walk is ROOT's only job */
	size_t reported;        /* entries at the last progress report */
	size_t base_at;         /* a plain walk with carry: the base's first entry not yet passed */
	bool use_pool;          /* plain engine for metadata */
	bool ring_meta;         /* io_uring for metadata (--io uring) */
	bool ring_hash;         /* io_uring for file contents */
	atomic_bool ring_failed;
	int64_t tick_ns;        /* the coarse clock's tick, for the racy window */
	atomic_int open_fds;    /* subdirectory fds held ahead of their jobs */
	int held_budget;        /* at most this many, sized from RLIMIT_NOFILE */
	struct ls_pool *pool;
	int threads;            /* in the pool, the consumer included */
	ls_manifest *out;
};

struct thread_ctx {
	struct walker *w;
	char *dirent_buf;
	char *read_buf;
	struct ls_pathbuf pb;   /* paths of children, any length */
	XXH3_state_t *xxh;
	struct ls_ring *ring;
	bool ring_tried;
	/* A file system seen to refuse RWF_NOWAIT (overlayfs): its files are
	 * read without the probe, which would fail for every one. */
	bool nowait_refused;
	uint64_t nowait_refused_dev;
};

static int ctx_init(void *vctx, void *arg)
{
	struct thread_ctx *c = vctx;
	memset(c, 0, sizeof(*c));
	c->w = arg;
	c->dirent_buf = malloc(LS_DIRENT_BUF);
	c->read_buf = malloc(READ_BUF);
	c->xxh = XXH3_createState();
	if (!c->dirent_buf || !c->read_buf || !c->xxh)
		return -ENOMEM;
	return 0;
}

static void ctx_fini(void *vctx)
{
	struct thread_ctx *c = vctx;
	free(c->dirent_buf);
	free(c->read_buf);
	free(c->pb.buf);
	if (c->xxh)
		XXH3_freeState(c->xxh);
	ls_ring_destroy(c->ring);
	memset(c, 0, sizeof(*c));
}

#define log_msg(w, verbose, ...) ls_log((w)->o->log, (w)->o->log_ctx, verbose, __VA_ARGS__)

/* The ring of this thread for contents, set up on first use; NULL when the
 * plain engine must be used. */
static struct ls_ring *content_ring(struct thread_ctx *c)
{
	struct walker *w = c->w;
	if (!w->ring_hash || atomic_load(&w->ring_failed))
		return NULL;
	if (!c->ring && !c->ring_tried) {
		c->ring_tried = true;
		int rc = ls_ring_create(&c->ring, RING_DEPTH);
		if (rc) {
			if (!atomic_exchange(&w->ring_failed, true))
				log_msg(w, 1, "io_uring set-up failed (%s): using plain syscalls", strerror(-rc));
			return NULL;
		}
	}
	return c->ring;
}

/* ---- stat cache ---------------------------------------------------------- */

/*
 * The racy rule.  The base scan read its start S (CLOCK_REALTIME) before its
 * first getdents, so it hashed every file at some H >= S.  A write after the
 * hash, at W > H, stamps the inode from the coarse clock, which lags the real
 * one by less than a tick: coarse(W) > W - tick >= S - tick; a file system
 * that keeps timestamps to a granularity g truncates that once more, to more
 * than S - tick - g.  So a file whose mtime and ctime are both at or before
 * S - g - tick was not written after its hash and its recorded hash is good;
 * anything later is racy and read again.  The window takes LS_RACY_TICKS
 * ticks, not one, for the skew between the coarse and the fine clock across
 * CPUs and clock adjustments.  (Linux 6.13+ multigrain timestamps give any
 * write after the scan's statx a fine-grained, newer ctime, so the window is
 * only needed where they are missing; it costs a few milliseconds.)  st_dev
 * is not part of the key, as in git: overlay mounts renumber devices.
 */
bool ls_stat_cache_hit(const struct ls_rec *rec, const struct ls_rec *cur, int64_t racy_from_ns)
{
	if (!(rec->mode & LS_REC_HASHED) || rec->ino != cur->ino || rec->size != cur->size ||
	    rec->mtime_ns != cur->mtime_ns || rec->ctime_ns != cur->ctime_ns ||
	    (rec->mode & LS_REC_MODE_MASK) != (cur->mode & LS_REC_MODE_MASK))
		return false;
	return cur->mtime_ns < racy_from_ns && cur->ctime_ns < racy_from_ns;
}

int64_t ls_racy_window_ns(int64_t granularity_ns, int64_t tick_ns)
{
	return granularity_ns + LS_RACY_TICKS * tick_ns;
}

int64_t ls_fs_granularity_ns(int fd)
{
	struct statfs sf;
	if (fstatfs(fd, &sf) != 0)
		return 1000000000;
	switch ((unsigned long)sf.f_type) {
	/* ext2 and ext3 share ext4's magic, and 128-byte inodes keep whole
	 * seconds, but nothing tells: ext4's 256-byte default is taken. */
	case EXT4_SUPER_MAGIC:
	case XFS_SUPER_MAGIC:
	case BTRFS_SUPER_MAGIC:
	case TMPFS_MAGIC:
	case OVERLAYFS_SUPER_MAGIC:
		return 1;
	default:
		return 1000000000;
	}
}

static void rec_from_statx(struct ls_rec *r, const struct statx *s)
{
	memset(r, 0, sizeof(*r));
	r->size = s->stx_size;
	r->mtime_ns = (int64_t)s->stx_mtime.tv_sec * 1000000000 + s->stx_mtime.tv_nsec;
	r->ctime_ns = (int64_t)s->stx_ctime.tv_sec * 1000000000 + s->stx_ctime.tv_nsec;
	r->dev = makedev(s->stx_dev_major, s->stx_dev_minor);
	r->ino = s->stx_ino;
	r->rdev = makedev(s->stx_rdev_major, s->stx_rdev_minor);
	r->mode = s->stx_mode;
	r->uid = s->stx_uid;
	r->gid = s->stx_gid;
	r->nlink = s->stx_nlink;
}

/* A child's statx, kept in the form it is recorded in (a third of the size:
 * a directory job holds one per child). */
static void kid_take_statx(struct child *k, const struct statx *s)
{
	rec_from_statx(&k->st, s);
	k->mount_root = (s->stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && (s->stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

/* ---- dir jobs ------------------------------------------------------------ */

static int arena_add(struct arena *a, const void *data, size_t len, uint32_t *off)
{
	if (a->len + len + 1 > UINT32_MAX)
		return -E2BIG;
	if (ls_grow((void **)&a->buf, &a->cap, a->len + len + 1, 1))
		return -ENOMEM;
	*off = (uint32_t)a->len;
	memcpy(a->buf + a->len, data, len);
	a->buf[a->len + len] = '\0';
	a->len += len + 1;
	return 0;
}

static const char *kid_name(const struct dir_job *j, const struct child *k)
{
	return j->arena.buf + k->name_off;
}

/* "DIR/NAME" of child k (or "NAME" under ROOT) in the thread's path buffer,
 * valid until the buffer is next used; NULL when out of memory. */
static const char *kid_path(struct thread_ctx *c, const struct dir_job *j, const struct child *k, size_t *len)
{
	if (ls_path_join(&c->pb, j->path, j->path_len, kid_name(j, k), k->name_len))
		return NULL;
	*len = c->pb.len;
	return c->pb.buf;
}

/* A new child at the end of j's, zeroed (its array has room for it). */
static struct child *new_kid(struct dir_job *j)
{
	struct child *k = &j->kids[j->n];
	memset(k, 0, sizeof(*k));
	k->fd = -1;
	k->base_pos = SIZE_MAX;
	return k;
}

static bool ends_with_slash(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && s[n - 1] == '/';
}

/* Kaniko's ignore list starts with these, below ROOT. */
static const char *const default_dirs[] = { "dev", "proc", "run", "sys" };
#define N_DEFAULT_DIRS (sizeof(default_dirs) / sizeof(default_dirs[0]))

static bool is_default_dir(const char *path)
{
	for (size_t i = 0; i < N_DEFAULT_DIRS; i++)
		if (strcmp(path, default_dirs[i]) == 0)
			return true;
	return false;
}

/* Whether path is one of the n sorted strings of list. */
static bool in_sorted(char *const *list, size_t n, const char *path)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(list[mid], path);
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static bool is_excluded(const struct walker *w, const char *path)
{
	return w->n_excl && in_sorted(w->excl, w->n_excl, path);
}

static int read_names(struct dir_job *j, int dfd, struct thread_ctx *c)
{
	struct walker *w = j->w;
	for (;;) {
		ssize_t nread = ls_read_dirents(dfd, c->dirent_buf, LS_DIRENT_BUF);
		if (nread <= 0)
			return (int)nread;
		for (ssize_t off = 0; off < nread;) {
			struct dirent64 *d = (struct dirent64 *)(c->dirent_buf + off);
			off += d->d_reclen;
			const char *name = d->d_name;
			if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))
				continue;
			size_t nl = strlen(name);
			/* A run's temporaries, live or left by a killed run, are
			 * never part of a tree. */
			if (ls_output_is_temp_name(name, nl))
				continue;
			if (w->n_excl) {
				if (ls_path_join(&c->pb, j->path, j->path_len, name, nl))
					return -ENOMEM;
				if (is_excluded(w, c->pb.buf))
					continue;
			}
			if (ls_grow((void **)&j->kids, &j->cap, j->n + 1, sizeof(*j->kids)))
				return -ENOMEM;
			struct child *k = new_kid(j);
			k->name_len = (uint16_t)nl;
			int rc = arena_add(&j->arena, name, nl, &k->name_off);
			if (rc)
				return rc;
			j->n++;
		}
	}
}

/* An --only job's children: its node's, already in walk order, statx'ed by
 * name (one that does not exist comes back ENOENT: gone). */
static int only_names(struct dir_job *j, struct thread_ctx *c)
{
	const struct only_node *n = j->only;
	if (n->n_kids && ls_grow((void **)&j->kids, &j->cap, n->n_kids, sizeof(*j->kids)))
		return -ENOMEM;
	for (size_t i = 0; i < n->n_kids; i++) {
		/* What a listing leaves out, these leave out too. */
		if (ls_output_is_temp_name(n->kids[i].name, n->kids[i].name_len))
			continue;
		if (j->w->n_excl) {
			if (ls_path_join(&c->pb, j->path, j->path_len, n->kids[i].name, n->kids[i].name_len))
				return -ENOMEM;
			if (is_excluded(j->w, c->pb.buf))
				continue;
		}
		struct child *k = new_kid(j);
		k->name_len = (uint16_t)n->kids[i].name_len;
		k->only = (uint32_t)i;
		int rc = arena_add(&j->arena, n->kids[i].name, n->kids[i].name_len, &k->name_off);
		if (rc)
			return rc;
		j->n++;
	}
	return 0;
}

/* Children are sorted before they are examined, when a child is only its
 * name, through keys that carry that much; the children are rebuilt from
 * them.  A key holds the name's first eight bytes as a big-endian number,
 * zero-padded (names hold no NUL): comparing those orders most pairs as
 * memcmp would, without the call.  A bottom-up merge sort of the 16-byte
 * keys, runs of RUN sorted by insertion first: qsort's calls through a
 * pointer and generic element copies were most of the cost. */
struct sort_key {
	uint64_t head;
	uint32_t off;
	uint16_t len;
};

#define RUN 16

static uint64_t name_head(const char *name, size_t len)
{
	unsigned char b[8] = { 0 };
	memcpy(b, name, len < 8 ? len : 8);
	uint64_t h = 0;
	for (int i = 0; i < 8; i++)
		h = h << 8 | b[i];
	return h;
}

/* Whether x sorts after y: name bytes order, a prefix first (the walk order
 * of siblings).  names: the arena the offsets point into. */
static bool key_after(const char *names, const struct sort_key *x, const struct sort_key *y)
{
	if (x->head != y->head)
		return x->head > y->head;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = n > 8 ? memcmp(names + x->off + 8, names + y->off + 8, n - 8) : 0;
	return c ? c > 0 : x->len > y->len;
}

/* Sorts keys[0..n) (stable); tmp has room for n. */
static void sort_keys(const char *names, struct sort_key *keys, struct sort_key *tmp, size_t n)
{
	for (size_t lo = 0; lo < n; lo += RUN) {
		size_t hi = lo + RUN < n ? lo + RUN : n;
		for (size_t i = lo + 1; i < hi; i++) {
			struct sort_key k = keys[i];
			size_t at = i;
			for (; at > lo && key_after(names, &keys[at - 1], &k); at--)
				keys[at] = keys[at - 1];
			keys[at] = k;
		}
	}
	struct sort_key *from = keys, *to = tmp;
	for (size_t width = RUN; width < n; width *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * width) {
			size_t mid = lo + width < n ? lo + width : n;
			size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
			size_t a = lo, b = mid, o = lo;
			while (a < mid && b < hi)
				to[o++] = key_after(names, &from[a], &from[b]) ? from[b++] : from[a++];
			while (a < mid)
				to[o++] = from[a++];
			while (b < hi)
				to[o++] = from[b++];
		}
		struct sort_key *t = from;
		from = to;
		to = t;
	}
	if (from != keys)
		memcpy(keys, from, n * sizeof(*keys));
}

static int sort_kids(struct dir_job *j)
{
	if (j->n < 2)
		return 0;
	struct sort_key small[2 * RUN];
	struct sort_key *keys = j->n <= RUN ? small : malloc(2 * j->n * sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	for (size_t i = 0; i < j->n; i++) {
		const struct child *k = &j->kids[i];
		keys[i] = (struct sort_key){ name_head(kid_name(j, k), k->name_len), k->name_off, k->name_len };
	}
	sort_keys(j->arena.buf, keys, keys + j->n, j->n);
	for (size_t i = 0; i < j->n; i++) {
		j->kids[i].name_off = keys[i].off;
		j->kids[i].name_len = keys[i].len;
	}
	if (keys != small)
		free(keys);
	return 0;
}

/* statx of children [from, to). */
static int stat_kids(struct dir_job *j, int dfd, struct thread_ctx *c, size_t from, size_t to)
{
	size_t n = to - from;
	if (n == 0)
		return 0;
	if (j->w->ring_meta && c->ring && !atomic_load(&j->w->ring_failed)) {
		const char **names = malloc(n * sizeof(*names));
		int *res = malloc(n * sizeof(*res));
		struct statx *stx = malloc(n * sizeof(*stx));
		int rc = (!names || !res || !stx) ? -ENOMEM : 0;
		if (!rc) {
			for (size_t i = 0; i < n; i++)
				names[i] = kid_name(j, &j->kids[from + i]);
			rc = ls_ring_statx(c->ring, dfd, names, stx, res, n);
		}
		for (size_t i = 0; !rc && i < n; i++) {
			if (res[i] == 0)  /* a failed statx left its buffer as it was */
				kid_take_statx(&j->kids[from + i], &stx[i]);
			j->kids[from + i].err = res[i];
		}
		free(names);
		free(res);
		free(stx);
		if (rc != -ENOMEM && rc != -EBUSY && rc) {
			/* The ring itself failed: plain syscalls from here on. */
			if (!atomic_exchange(&j->w->ring_failed, true))
				log_msg(j->w, 1, "io_uring failed (%s): using plain syscalls", strerror(-rc));
		} else if (rc != -EBUSY) {
			return rc;
		}
	}
	for (size_t i = from; i < to; i++) {
		struct child *k = &j->kids[i];
		struct statx stx;
		if (statx(dfd, kid_name(j, k), AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_BASIC_STATS, &stx) != 0)
			k->err = -errno;
		else
			kid_take_statx(k, &stx);
	}
	return 0;
}

/* Full mode, regular file: the base entry at the same path, or NULL; its
 * position (or where it would be) is kept in k for the consumer.  *hint: the
 * search's cursor in the job's base records (ls_manifest_find_in): siblings
 * come in walk order, so that the next file's entry, right after the last
 * one found or a subtree further on, costs a comparison or a short gallop,
 * not a binary search with a cache miss at every step. */
static const struct ls_rec *base_entry(struct dir_job *j, struct child *k, struct thread_ctx *c, size_t *hint)
{
	const ls_manifest *base = j->w->p->base;
	if (!base || base->mode != LS_MODE_FULL)
		return NULL;
	size_t len;
	const char *path = kid_path(c, j, k, &len);
	if (!path)
		return NULL;
	ssize_t bi = ls_manifest_find_in(base, j->base_lo, j->base_hi, hint, path, len);
	k->base_pos = bi < 0 ? *hint : (size_t)bi;
	return bi < 0 ? NULL : &base->recs[bi];
}

/* The stat cache: a hit takes the recorded hash and xattrs (setting an
 * xattr moves ctime, so they are as good as the hash). */
static bool take_from_cache(struct dir_job *j, struct arena *a, struct child *k, const struct ls_rec *b)
{
	const ls_manifest *base = j->w->p->base;
	struct ls_rec cur;
	cur = k->st;
	if (j->w->o->rehash || !ls_stat_cache_hit(b, &cur, j->racy_from_ns))
		return false;
	if (b->xattr_len) {
		int rc = arena_add(a, ls_rec_xattrs(base, b), b->xattr_len, &k->xattr_off);
		if (rc) {
			k->err = rc;
			return true;
		}
		k->xattr_len = b->xattr_len;
	}
	memcpy(k->hash, b->hash, sizeof(k->hash));
	k->hashed = true;
	return true;
}

/* After a cache miss: hash now, or leave it to the caller (defer_changed)
 * when the file is new or its metadata already differ, since the caller then
 * writes it and hashes it on the way. */
static bool needs_hash_now(struct dir_job *j, const struct arena *a, struct child *k, const struct ls_rec *b)
{
	if (!j->w->p->defer_changed)
		return true;
	if (!b || !S_ISREG(b->mode))
		return false;
	const ls_manifest *base = j->w->p->base;
	struct ls_rec cur;
	cur = k->st;
	bool meta_differs = b->mtime_ns != cur.mtime_ns || b->size != cur.size ||
			    (b->mode & 07777) != (cur.mode & 07777) || b->uid != cur.uid || b->gid != cur.gid ||
			    b->xattr_len != k->xattr_len ||
			    memcmp(ls_rec_xattrs(base, b), a->buf + k->xattr_off, k->xattr_len) != 0;
	return !meta_differs;
}

static int read_kid_xattrs(struct dir_job *j, struct arena *a, struct child *k, int dfd)
{
	void *blob;
	size_t blen;
	int rc = ls_xattrs_read(dfd, kid_name(j, k), k->st.mode, j->w->o->xattrs, &blob, &blen);
	if (rc == 0 && blen)
		rc = arena_add(a, blob, blen, &k->xattr_off);
	if (rc == 0)
		k->xattr_len = (uint32_t)blen;
	free(blob);
	return rc;
}

/* Out of file descriptors: back-pressure (the walk's other threads release
 * theirs as their jobs finish), not a failure, for a while. */
static bool fd_shortage(int rc)
{
	return rc == -EMFILE || rc == -ENFILE;
}

/* Waits a millisecond before another try; false once the tries are spent. */
static bool fd_backoff(int *tries)
{
	if (++*tries > 1000)
		return false;
	struct timespec ts = { 0, 1000000 };
	nanosleep(&ts, NULL);
	return true;
}

static int64_t st_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

static bool same_stamps(const struct stat *a, const struct stat *b)
{
	return a->st_size == b->st_size && st_ns(&a->st_mtim) == st_ns(&b->st_mtim) &&
	       st_ns(&a->st_ctim) == st_ns(&b->st_ctim);
}

/* A file stamped just now may be in the middle of a write that stamped it
 * before we looked (ls_stamped_recently): its hash counts once two reads in
 * a row, with the same size and timestamps around the second, give the same
 * bytes; the record then takes those timestamps.  Returns 0, -ENOENT when
 * the file is gone or replaced, -EAGAIN when it kept changing. */
static int confirm_hash(struct dir_job *j, struct child *k, int dfd, struct thread_ctx *c)
{
	for (int tries = 0; tries < 3; tries++) {
		int fd;
		for (int waits = 0; fd_shortage(fd = ls_open_noatime(dfd, kid_name(j, k))) && fd_backoff(&waits);)
			;
		if (fd < 0)
			return fd;
		struct stat before, after;
		uint8_t again[16];
		int rc = fstat(fd, &before) == 0 ? 0 : -errno;
		if (rc == 0 && (before.st_ino != k->st.ino || !S_ISREG(before.st_mode)))
			rc = -ENOENT;
		if (rc == 0)
			rc = ls_hash_fd(fd, c->read_buf, READ_BUF, c->xxh, again);
		if (rc == 0 && fstat(fd, &after) != 0)
			rc = -errno;
		close(fd);
		if (rc)
			return rc;
		bool same = same_stamps(&before, &after) && memcmp(again, k->hash, sizeof(again)) == 0;
		memcpy(k->hash, again, sizeof(again));
		if (same) {
			ls_rec_take_stat(&k->st, &after);
			return 0;
		}
	}
	return -EAGAIN;
}

/* Hashes child k with plain syscalls; with cached_only, -EAGAIN (and k
 * untouched) when its bytes are not in the page cache. */
static int hash_one(struct dir_job *j, struct child *k, int dfd, struct thread_ctx *c, bool cached_only)
{
	int fd;
	for (int tries = 0; fd_shortage(fd = ls_open_noatime(dfd, kid_name(j, k))) && fd_backoff(&tries);)
		;
	if (fd < 0)
		return fd;
	if (cached_only && c->nowait_refused && c->nowait_refused_dev == j->dev)
		cached_only = false;
	bool refused = false;
	int rc = ls_hash_fd_cached(fd, c->read_buf, READ_BUF, c->xxh, k->hash, cached_only, k->st.size, &refused);
	if (refused) {
		c->nowait_refused = true;
		c->nowait_refused_dev = j->dev;
	}
	close(fd);
	if (rc == 0)
		k->hashed = true;
	return rc;
}

/* Hashes n children (indices idx).  --io auto reads what the page cache
 * holds with plain syscalls (faster warm) and sends the rest to the ring,
 * whose async buffered reads keep many cold files in flight; --io uring
 * sends everything to the ring, --io sync nothing. */
static void hash_kids(struct dir_job *j, int dfd, struct thread_ctx *c, size_t *idx, size_t n)
{
	struct walker *w = j->w;
	size_t *cold = idx, n_cold = n;
	size_t *cold_buf = NULL;
	/* --io auto: a warm tree never needs the ring, so it is set up only
	 * once a file turns out cold. */
	if (w->ring_hash && !w->ring_meta && !atomic_load(&w->ring_failed) &&
	    (cold_buf = malloc(n * sizeof(*cold_buf)))) {
		cold = cold_buf;
		n_cold = 0;
		for (size_t i = 0; i < n; i++) {
			struct child *k = &j->kids[idx[i]];
			int rc = hash_one(j, k, dfd, c, true);
			if (rc == -EAGAIN)
				cold[n_cold++] = idx[i];
			else if (rc)
				k->err = rc;
		}
	}
	struct ls_ring *ring = n_cold ? content_ring(c) : NULL;
	if (ring) {
		struct ls_hash_req *reqs = malloc(n_cold * sizeof(*reqs));
		if (reqs) {
			for (size_t i = 0; i < n_cold; i++)
				reqs[i].name = kid_name(j, &j->kids[cold[i]]);
			int rc = ls_ring_hash(ring, dfd, reqs, n_cold);
			if (rc == 0) {
				for (size_t i = 0; i < n_cold; i++) {
					struct child *k = &j->kids[cold[i]];
					if (reqs[i].result) {
						k->err = reqs[i].result;
					} else {
						memcpy(k->hash, reqs[i].hash, 16);
						k->hashed = true;
					}
				}
			} else if (!atomic_exchange(&w->ring_failed, true)) {
				/* The ring itself failed: plain syscalls from here on. */
				log_msg(w, 1, "io_uring failed (%s): using plain syscalls", strerror(-rc));
			}
			free(reqs);
		}
	}
	free(cold_buf);
	/* Plain syscalls for the rest: everything under --io sync, and what the
	 * ring could not do (no ring, a failed ring, short of fds). */
	for (size_t i = 0; i < n; i++) {
		struct child *k = &j->kids[idx[i]];
		if (k->hashed || (k->err && !fd_shortage(k->err)))
			continue;
		k->err = hash_one(j, k, dfd, c, false);
	}
	for (size_t i = 0; i < n; i++) {
		struct child *k = &j->kids[idx[i]];
		if (k->hashed && ls_stamped_recently(k->st.ctime_ns)) {
			int rc = confirm_hash(j, k, dfd, c);
			if (rc) {
				k->hashed = false;
				k->err = rc;
			}
		}
	}
}

/* Link targets, mount points, the stat cache, xattrs and hashes of children
 * [from, to), their strings added to a. */
static void inspect_kids(struct dir_job *j, struct arena *a, int dfd, struct thread_ctx *c, size_t from,
			 size_t to)
{
	struct walker *w = j->w;
	bool full = w->mode->fields & LS_F_HASH;
	size_t *to_hash = NULL, n_hash = 0, hint = j->base_lo;
	if (full && to > from && !(to_hash = malloc((to - from) * sizeof(*to_hash)))) {
		for (size_t i = from; i < to; i++)
			j->kids[i].err = -ENOMEM;
		return;
	}
	for (size_t i = from; i < to; i++) {
		struct child *k = &j->kids[i];
		if (k->err == -ENOENT) {
			k->gone = true;
			continue;
		}
		if (k->err)
			continue;
		uint32_t mode = k->st.mode;
		if (S_ISLNK(mode)) {
			char target[PATH_MAX + 1];
			ssize_t n = readlinkat(dfd, kid_name(j, k), target, sizeof(target));
			if (n < 0) {
				if (errno == ENOENT || errno == EINVAL)
					k->gone = true;  /* vanished or replaced since statx */
				else
					k->err = -errno;
				continue;
			}
			if (n > PATH_MAX) {
				k->err = -ENAMETOOLONG;
				continue;
			}
			k->link_len = (uint16_t)n;
			int rc = arena_add(a, target, (size_t)n, &k->link_off);
			if (rc) {
				k->err = rc;
				continue;
			}
		}
		if (w->patterns || w->n_ignored) {
			size_t len;
			const char *path = kid_path(c, j, k, &len);
			if (!path) {
				k->err = -ENOMEM;
				continue;
			}
			if (ls_patterns_exclude(w->patterns, path, len, S_ISDIR(mode))) {
				k->gone = true;
				continue;
			}
			if (w->n_ignored && in_sorted(w->ignored, w->n_ignored, path)) {
				k->ignored = true;
				k->mountpoint = S_ISDIR(mode);
				continue;
			}
		}
		if (S_ISDIR(mode) && w->o->one_file_system) {
			uint64_t dev = k->st.dev;
			bool mnt_root = k->mount_root;
			if (dev != j->dev || mnt_root)
				k->mountpoint = true;
		}
		if (!full)
			continue;
		const struct ls_rec *b = S_ISREG(mode) ? base_entry(j, k, c, &hint) : NULL;
		if (b && take_from_cache(j, a, k, b))
			continue;
		if (!w->p->defer_xattrs &&
		    (w->o->xattrs == LS_XATTRS_ALL || (w->o->xattrs == LS_XATTRS_CAPABILITY && S_ISREG(mode)))) {
			int rc = read_kid_xattrs(j, a, k, dfd);
			if (rc) {
				k->err = rc;
				continue;
			}
		}
		if (S_ISREG(mode) && to_hash && needs_hash_now(j, a, k, b))
			to_hash[n_hash++] = i;
	}
	if (n_hash)
		hash_kids(j, dfd, c, to_hash, n_hash);
	free(to_hash);
}

/* Subdirectories are opened here, by name under their parent, so that their
 * jobs skip a lookup of the whole path; a budget bounds the fds held. */
#define MAX_HELD_FDS 256
/* Descriptors a walk leaves to its caller (outputs, the layer writer). */
#define CALLER_FDS 32

/* The --only node of child k's job: its node in j's, NULL when j is no
 * --only job or k is listed (walked whole, an ordinary job). */
static const struct only_node *kid_only_node(const struct dir_job *j, const struct child *k)
{
	const struct only_node *node = j->only ? &j->only->kids[k->only] : NULL;
	return node && !node->listed ? node : NULL;
}

/* How a job's directory is opened: an --only job on the way to listed paths
 * is never listed, and an O_PATH fd does for the lookups by name under it
 * (on overlayfs it also skips opening the layers' directories beneath). */
static int job_open_flags(const struct only_node *only)
{
	return (only ? O_PATH : O_RDONLY) | O_DIRECTORY;
}

static void open_subdirs(struct dir_job *j, int dfd)
{
	struct walker *w = j->w;
	for (size_t i = 0; i < j->n; i++) {
		struct child *k = &j->kids[i];
		if (k->gone || k->err || k->mountpoint || !S_ISDIR(k->st.mode))
			continue;
		if (atomic_fetch_add(&w->open_fds, 1) >= w->held_budget) {
			atomic_fetch_sub(&w->open_fds, 1);
			return;
		}
		k->fd = openat(dfd, kid_name(j, k), job_open_flags(kid_only_node(j, k)) | O_NOFOLLOW | O_CLOEXEC);
		if (k->fd < 0) {
			atomic_fetch_sub(&w->open_fds, 1);
			if (errno == EMFILE || errno == ENFILE)
				return;  /* the job opens it later */
		}
	}
}

static void release_fd(struct walker *w, int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		atomic_fetch_sub(&w->open_fds, 1);
		*fd = -1;
	}
}

/* The job's directory: the fd its parent opened, else opened beneath ROOT
 * with no symlink on the way; either way the inode its parent listed. */
static int open_job_dir(struct dir_job *j, struct thread_ctx *c)
{
	struct walker *w = j->w;
	int dfd = j->fd;
	if (dfd >= 0) {
		j->fd = -1;
		atomic_fetch_sub(&w->open_fds, 1);
	} else {
		for (int tries = 0;;) {
			if (w->ring_meta && c->ring && !atomic_load(&w->ring_failed))
				dfd = ls_ring_open_beneath(c->ring, w->rootfd, j->path, job_open_flags(j->only));
			else
				dfd = ls_open_beneath(w->rootfd, j->path, job_open_flags(j->only));
			if (!fd_shortage(dfd) || !fd_backoff(&tries))
				break;
		}
		if (dfd < 0)
			return dfd;
	}
	struct stat st;
	if (fstat(dfd, &st) != 0) {
		int e = -errno;
		close(dfd);
		return e;
	}
	if (st.st_ino != j->ino || st.st_dev != j->dev) {
		close(dfd);
		return -ENOENT;  /* replaced since its parent was read */
	}
	return dfd;
}

/* A directory's children are examined in ranges of this many on every
 * thread when there are at least two ranges: one large directory (an icon
 * set, a flat node_modules) would otherwise keep all but one thread idle. */
#define KIDS_PER_RANGE 256

/* Children [from, to) of a job, examined by any thread; the strings they add
 * go to an arena of their own, moved into the job's afterwards. */
struct kid_range {
	struct ls_task task;
	struct dir_job *j;
	int dfd;
	size_t from, to;
	struct arena arena;
	int err;
};

static void examine_range(struct kid_range *r, struct thread_ctx *c)
{
	r->err = stat_kids(r->j, r->dfd, c, r->from, r->to);
	if (r->err == 0)
		inspect_kids(r->j, &r->arena, r->dfd, c, r->from, r->to);
}

static void run_kid_range(struct ls_task *t, void *vctx)
{
	examine_range((struct kid_range *)t, vctx);
}

/* Appends a range's strings to the job's arena and rebases the offsets its
 * children hold into them (names were in the job's arena already). */
static int merge_range(struct dir_job *j, struct kid_range *r)
{
	if (!r->arena.len)
		return 0;
	uint32_t base;
	if (r->arena.len > UINT32_MAX || arena_add(&j->arena, r->arena.buf, r->arena.len - 1, &base))
		return -ENOMEM;
	for (size_t i = r->from; i < r->to; i++) {
		struct child *k = &j->kids[i];
		if (k->link_len)
			k->link_off += base;
		if (k->xattr_len)
			k->xattr_off += base;
	}
	return 0;
}

/* statx and inspection of every child, in ranges spread over the pool when
 * the directory is large; the calling thread takes the first range and helps
 * with the others while it waits.  Returns 0 or a negative code. */
static int examine_kids(struct dir_job *j, int dfd, struct thread_ctx *c)
{
	struct walker *w = j->w;
	size_t nr = (j->n + KIDS_PER_RANGE - 1) / KIDS_PER_RANGE;
	struct kid_range *r = w->threads > 1 && nr > 1 ? calloc(nr, sizeof(*r)) : NULL;
	if (!r) {
		int rc = stat_kids(j, dfd, c, 0, j->n);
		if (rc == 0)
			inspect_kids(j, &j->arena, dfd, c, 0, j->n);
		return rc;
	}
	for (size_t i = 0; i < nr; i++) {
		r[i].task.fn = run_kid_range;
		r[i].j = j;
		r[i].dfd = dfd;
		r[i].from = i * KIDS_PER_RANGE;
		r[i].to = i + 1 < nr ? (i + 1) * KIDS_PER_RANGE : j->n;
	}
	for (size_t i = nr; i-- > 1;)
		ls_pool_push(w->pool, &r[i].task);
	examine_range(&r[0], c);
	/* Every range done before any is merged: merging grows the job's
	 * arena, whose names the ranges still running read. */
	for (size_t i = 1; i < nr; i++)
		ls_pool_wait(w->pool, &r[i].task, c);
	int rc = 0;
	for (size_t i = 0; i < nr; i++) {
		if (!rc)
			rc = r[i].err ? r[i].err : merge_range(j, &r[i]);
		free(r[i].arena.buf);
	}
	free(r);
	return rc;
}

static int spawn_subs(struct walker *w, struct dir_job *j, struct thread_ctx *c);

static void run_dir_job(struct ls_task *t, void *vctx)
{
	struct dir_job *j = (struct dir_job *)t;
	struct thread_ctx *c = vctx;
	struct walker *w = j->w;
	int dfd = open_job_dir(j, c);
	if (dfd < 0) {
		j->err = dfd;
		return;
	}
	/* A new file system (the root, a mount point): its own granularity. */
	if (!j->racy_from_ns && w->p->base) {
		const ls_manifest *b = w->p->base;
		int64_t start = (int64_t)b->start_sec * 1000000000 + b->start_nsec;
		j->racy_from_ns = start - ls_racy_window_ns(ls_fs_granularity_ns(dfd), w->tick_ns);
	}
	int rc = j->only ? only_names(j, c) : read_names(j, dfd, c);
	if (rc == 0 && !j->only)
		rc = sort_kids(j);
	if (rc == 0)
		rc = examine_kids(j, dfd, c);
	if (rc)
		j->err = rc;
	else if (!w->ring_meta)
		open_subdirs(j, dfd);
	/* An --only job's subdirectories are few, and each waits for its
	 * parent: queued as soon as the parent is read, not when it is
	 * consumed, they keep every thread busy. */
	if (rc == 0 && j->only && spawn_subs(w, j, c))
		j->err = -ENOMEM;
	/* -EBUSY: the ring had no room and the close never ran. */
	if (!(w->ring_meta && c->ring && !atomic_load(&w->ring_failed)) || ls_ring_close(c->ring, dfd) == -EBUSY)
		close(dfd);
}

static struct dir_job *new_job(struct walker *w, const char *path, size_t len, uint64_t dev, uint64_t ino)
{
	struct dir_job *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->path = malloc(len + 1);
	if (!j->path) {
		free(j);
		return NULL;
	}
	memcpy(j->path, path, len);
	j->path[len] = '\0';
	j->path_len = len;
	j->w = w;
	j->dev = dev;
	j->ino = ino;
	j->fd = -1;
	j->base_hi = w->p->base ? w->p->base->n : 0;
	j->task.fn = run_dir_job;
	return j;
}

static void free_job(struct dir_job *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->n; i++) {
		free_job(j->kids[i].sub);
		release_fd(j->w, &j->kids[i].fd);
	}
	release_fd(j->w, &j->fd);
	free(j->kids);
	free(j->arena.buf);
	free(j->path);
	free(j);
}

/* The base's entry at path, or -1. */
static ssize_t base_index(const struct walker *w, const char *path, size_t len)
{
	return w->p->base ? ls_manifest_find(w->p->base, path, len) : -1;
}

/* Entries recorded so far, carried runs included. */
static size_t walked(const struct walker *w)
{
	return w->out->n + (w->p->carry ? w->p->carry->entries : 0);
}

/* The one way base entries are carried over unchanged: base records
 * [from, to) go next in the new manifest, as a run when the caller keeps
 * runs (see carry.h), as copies otherwise. */
static int carry_range(struct walker *w, size_t from, size_t to, struct ls_error *err)
{
	if (w->p->carry)
		return ls_carry_add(w->p->carry, w->out->n, from, to) ? ls_fail(err, ENOMEM, "walker: out of memory")
									: 0;
	int rc = 0;
	for (size_t i = from; i < to && rc == 0; i++)
		rc = ls_manifest_append_from(w->out, w->p->base, i, err);
	return rc;
}

/* The splice: the base's entry at path and, for a directory, its whole
 * subtree (which follows it directly in walk order), carried into the new
 * manifest unchanged, so that the diff sees them as they were.  Nothing when
 * the base has no such path. */
static int splice_base(struct walker *w, const char *path, size_t len, struct ls_error *err)
{
	ssize_t bi = base_index(w, path, len);
	if (bi < 0)
		return 0;
	return carry_range(w, (size_t)bi, ls_manifest_subtree_end(w->p->base, (size_t)bi), err);
}

/* A directory that became a mount point (--one-file-system) keeps its base
 * entry and subtree, when the base saw it as a directory.  Returns 1 when it
 * did, 0 when the caller records the mount point, or a negative code. */
static int splice_mount_point(struct walker *w, const char *path, size_t len, struct ls_error *err)
{
	const ls_manifest *base = w->p->base;
	ssize_t bi = base_index(w, path, len);
	if (bi < 0 || !S_ISDIR(base->recs[bi].mode))
		return 0;
	if (!(base->recs[bi].mode & LS_REC_MOUNTPOINT))
		log_msg(w, 0, "%s/%s: a mount point now (--one-file-system): base entries kept", w->root, path);
	int rc = splice_base(w, path, len, err);
	return rc ? rc : 1;
}

/* The walk's progress, to the caller's callback; a non-zero return cancels. */
static int report(struct walker *w, bool done, struct ls_error *err)
{
	struct ls_progress p = { .struct_size = sizeof(p), .phase = LS_PHASE_WALK, .done = done, .entries = walked(w) };
	if (w->o->progress(w->o->log_ctx, &p) != 0)
		return ls_fail(err, ECANCELED, "cancelled");
	return 0;
}

static int consume(struct walker *w, struct dir_job *j, struct thread_ctx *c, struct ls_error *err);

/* Progress every 4096 entries, also when many came at once (a carried
 * subtree). */
static int report_every(struct walker *w, struct ls_error *err)
{
	if (!w->o->progress || walked(w) / 4096 == w->reported / 4096)
		return 0;
	w->reported = walked(w);
	return report(w, false, err);
}

/* A plain walk that keeps runs (walk.h: carry): true when the base has the
 * entry about to be recorded exactly as r, its target and xattrs say, so
 * that it goes in as a run of the base, not a copy (*bi: its index).  The
 * consumer appends in walk order, so the base is passed once, in order.
 * Directories are always recorded (the diff finds an entry's parents among
 * the recorded ones), and so are hard links (grouped among them). */
static bool same_as_base(struct walker *w, const struct ls_rec *r, const char *path, size_t len, const char *link,
			 size_t link_len, const void *xattrs, size_t xattr_len, size_t *bi)
{
	const ls_manifest *b = w->p->base;
	while (w->base_at < b->n &&
	       ls_path_cmp(ls_rec_path(b, &b->recs[w->base_at]), b->recs[w->base_at].path_len, path, len) < 0)
		w->base_at++;
	if (S_ISDIR(r->mode) || r->nlink > 1 || w->base_at == b->n)
		return false;
	const struct ls_rec *o = &b->recs[w->base_at];
	if (o->path_len != len || memcmp(ls_rec_path(b, o), path, len) != 0)
		return false;
	if (o->size != r->size || o->mtime_ns != r->mtime_ns || o->ctime_ns != r->ctime_ns || o->dev != r->dev ||
	    o->ino != r->ino || o->rdev != r->rdev || o->mode != r->mode || o->uid != r->uid || o->gid != r->gid ||
	    o->nlink != r->nlink || o->xattr_len != xattr_len)
		return false;
	if ((r->mode & LS_REC_HASHED) && memcmp(o->hash, r->hash, sizeof(r->hash)) != 0)
		return false;
	if (ls_rec_link_len(b, o) != link_len || memcmp(ls_rec_link(b, o), link, link_len) != 0)
		return false;
	if (xattr_len && memcmp(ls_rec_xattrs(b, o), xattrs, xattr_len) != 0)
		return false;
	*bi = w->base_at;
	return true;
}

/* Appends child k of job j (examined) and, for a directory it descends, its
 * subtree.  Returns 0 or a negative code. */
static int take_child(struct walker *w, struct dir_job *j, struct child *k, struct thread_ctx *c,
		      struct ls_error *err)
{
	if (k->gone || k->err == -ENOENT)
		return 0;
	/* The subdirectory's consume() reuses the buffer: the path is joined
	 * again for every child. */
	size_t len;
	const char *path = kid_path(c, j, k, &len);
	if (!path)
		return ls_fail(err, ENOMEM, "walker: out of memory");
	if (k->err) {
		const char *why = k->err == -EAGAIN ? "changed while being read" : strerror(-k->err);
		if (w->o->ignore_errors) {
			log_msg(w, 0, "%s/%s: %s (skipped, base entry kept)", w->root, path, why);
			return splice_base(w, path, len, err);
		}
		return ls_fail(err, -k->err, "%s/%s: %s", w->root, path, why);
	}
	if (k->ignored) {
		log_msg(w, 1, "%s%s%s: not descended (%s)", w->root, ends_with_slash(w->root) ? "" : "/", path,
			is_default_dir(path) ? "a default exclude" : "a mount point in /proc/self/mountinfo");
		/* Kept from the base as it was; a directory new since then is
		 * recorded, its contents not. */
		if (!S_ISDIR(k->st.mode) || base_index(w, path, len) >= 0)
			return splice_base(w, path, len, err);
	} else if (k->mountpoint) {
		int rc = splice_mount_point(w, path, len, err);
		if (rc)
			return rc < 0 ? rc : 0;
	}
	struct ls_rec r;
	r = k->st;
	if (k->hashed) {
		memcpy(r.hash, k->hash, sizeof(r.hash));
		r.mode |= LS_REC_HASHED;
	}
	if (k->mountpoint)
		r.mode |= LS_REC_MOUNTPOINT;
	const char *link = j->arena.buf + k->link_off, *xattrs = j->arena.buf + k->xattr_off;
	size_t bi;
	int rc;
	if (w->p->carry && !w->only_on && same_as_base(w, &r, path, len, link, k->link_len, xattrs, k->xattr_len, &bi))
		rc = carry_range(w, bi, bi + 1, err);
	else
		rc = ls_manifest_append(w->out, &r, path, len, link, k->link_len, xattrs, k->xattr_len, err);
	if (rc == 0)
		rc = report_every(w, err);
	if (rc == 0 && k->sub) {
		rc = consume(w, k->sub, c, err);
		/* After a failure, jobs below it may still be queued: they are
		 * freed with the whole tree once the pool has stopped. */
		if (rc == 0) {
			free_job(k->sub);
			k->sub = NULL;
		}
	}
	return rc;
}

/* ---- --only: known paths, the rest of the base carried over ------------------- */

/* Child k's base record among its job's (k->base_pos: found, or where it
 * would go), looked up unless its worker did; *found: the base has its
 * path.  *cursor: the caller's in the job's records (children come in walk
 * order).  Returns 0 or -ENOMEM. */
static int locate_kid(struct walker *w, struct dir_job *j, struct child *k, struct thread_ctx *c, size_t *cursor,
		      bool *found)
{
	const ls_manifest *b = w->p->base;
	size_t len;
	const char *path = kid_path(c, j, k, &len);
	if (!path)
		return -ENOMEM;
	if (k->base_pos == SIZE_MAX) {
		ssize_t bi = ls_manifest_find_in(b, j->base_lo, j->base_hi, cursor, path, len);
		k->base_pos = bi < 0 ? *cursor : (size_t)bi;
		*found = bi >= 0;
		return 0;
	}
	const struct ls_rec *r = k->base_pos < j->base_hi ? &b->recs[k->base_pos] : NULL;
	*found = r && r->path_len == len && memcmp(ls_rec_path(b, r), path, len) == 0;
	*cursor = *found ? k->base_pos + 1 : k->base_pos;
	return 0;
}

/* Gives subdirectory k's job its base records: the subtree of its base
 * entry when that is a directory, none (where they would be) otherwise.
 * Returns 0 or -ENOMEM. */
static int place_sub(struct walker *w, struct dir_job *j, struct child *k, struct thread_ctx *c, size_t *cursor)
{
	const ls_manifest *b = w->p->base;
	bool found;
	int rc = locate_kid(w, j, k, c, cursor, &found);
	if (rc)
		return rc;
	bool dir = found && S_ISDIR(b->recs[k->base_pos].mode);
	k->sub->base_lo = dir ? k->base_pos + 1 : k->base_pos;
	k->sub->base_hi = dir ? ls_manifest_subtree_end(b, k->base_pos) : k->base_pos;
	if (dir)
		*cursor = k->sub->base_hi;  /* the next sibling sorts after the subtree */
	return 0;
}

/* An --only job's children and the base's other children of its directory,
 * merged in walk order: the base's are carried over with their subtrees, the
 * job's (listed paths, and directories on the way to them) replace theirs.
 * The job's base records are its directory's subtree (place_sub); those
 * between two of its children are found by galloping from the one before
 * and carried as one range: the cost is the job's children, not the base's
 * (a changed file in node_modules/x does not pass node_modules' thousands of
 * other packages one by one). */
static int consume_only(struct walker *w, struct dir_job *j, struct thread_ctx *c, struct ls_error *err)
{
	const ls_manifest *b = w->p->base;
	size_t at = j->base_lo, dir_end = j->base_hi, cursor = at;
	int rc = 0;
	for (size_t i = 0; i <= j->n && rc == 0; i++) {
		/* The base's children before this one, and this one's own. */
		size_t next = dir_end, own_end = dir_end;
		if (i < j->n && at < dir_end) {
			struct child *k = &j->kids[i];
			bool found;
			if ((rc = locate_kid(w, j, k, c, &cursor, &found)))
				return ls_fail(err, -rc, "walker: out of memory");
			next = own_end = k->base_pos;
			if (found)
				own_end = k->sub && S_ISDIR(b->recs[next].mode) ? k->sub->base_hi
										 : ls_manifest_subtree_end(b, next);
			cursor = own_end;
		}
		if (next > at) {
			rc = carry_range(w, at, next, err);
			if (rc == 0)
				rc = report_every(w, err);
		}
		if (own_end > at)
			at = own_end;
		if (rc == 0 && i < j->n)
			rc = take_child(w, j, &j->kids[i], c, err);
	}
	return rc;
}

/* Creates and queues the jobs of j's subdirectories.  Below an --only job,
 * a listed directory is walked whole, one on the way to listed paths is
 * another --only job.  Jobs that look up the base (full mode, --only) get
 * their directory's base records.  Returns 0, or -ENOMEM with none created. */
static int spawn_subs(struct walker *w, struct dir_job *j, struct thread_ctx *c)
{
	bool locate = w->p->base && (j->only || (w->mode->fields & LS_F_HASH));
	size_t cursor = j->base_lo;
	for (size_t i = 0; i < j->n; i++) {
		struct child *k = &j->kids[i];
		if (k->gone || k->err || !S_ISDIR(k->st.mode) || k->mountpoint)
			continue;
		size_t len;
		const char *path = kid_path(c, j, k, &len);
		k->sub = path ? new_job(w, path, len, k->st.dev, k->st.ino) : NULL;
		if (!k->sub || (locate && place_sub(w, j, k, c, &cursor))) {
			for (size_t e = 0; e <= i; e++) {
				free_job(j->kids[e].sub);
				j->kids[e].sub = NULL;
			}
			return -ENOMEM;
		}
		k->sub->only = kid_only_node(j, k);
		k->sub->fd = k->fd;
		k->fd = -1;
		if (k->sub->dev == j->dev)
			k->sub->racy_from_ns = j->racy_from_ns;
	}
	j->spawned = true;
	/* Queued in reverse so the first is taken first. */
	for (size_t i = j->n; i-- > 0;)
		if (j->kids[i].sub)
			ls_pool_push(w->pool, &j->kids[i].sub->task);
	return 0;
}

/* Consumes job j (waiting for it), appending its children in walk order and
 * descending into subdirectories as they come.  Its own record, appended by
 * the parent, is the manifest's last one when this starts. */
static int consume(struct walker *w, struct dir_job *j, struct thread_ctx *c, struct ls_error *err)
{
	ls_pool_wait(w->pool, &j->task, c);
	if (j->err) {
		if (!j->path_len)
			return ls_fail_errno(err, -j->err, "%s", w->root);
		if (j->err == -ENOENT || j->err == -ENOTDIR || j->err == -ELOOP) {
			ls_manifest_pop(w->out);
			return 0; /* replaced or removed since its parent was read: absent */
		}
		if (w->o->ignore_errors) {
			log_msg(w, 0, "%s/%s: %s (skipped, base entries kept)", w->root, j->path, strerror(-j->err));
			/* The base's entry and subtree replace what its parent saw;
			 * a directory new since the base stays, without contents. */
			if (base_index(w, j->path, j->path_len) < 0)
				return 0;
			ls_manifest_pop(w->out);
			return splice_base(w, j->path, j->path_len, err);
		}
		return ls_fail_errno(err, -j->err, "%s/%s", w->root, j->path);
	}
	if (!j->spawned && spawn_subs(w, j, c))
		return ls_fail(err, ENOMEM, "walker: out of memory");
	if (j->only)
		return consume_only(w, j, c, err);
	int rc = 0;
	for (size_t i = 0; i < j->n && rc == 0; i++)
		rc = take_child(w, j, &j->kids[i], c, err);
	return rc;
}

static int cmp_excl(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int setup_excludes(struct walker *w, struct ls_error *err)
{
	size_t total = w->out->n_excludes + w->p->n_skip;
	if (!total)
		return 0;
	w->excl = calloc(total, sizeof(*w->excl));
	if (!w->excl)
		return ls_fail(err, ENOMEM, "walker: out of memory");
	for (size_t i = 0; i < total; i++) {
		const char *src = i < w->out->n_excludes ? ls_manifest_exclude(w->out, i)
							 : w->p->skip_paths[i - w->out->n_excludes];
		w->excl[w->n_excl] = strdup(src);
		if (!w->excl[w->n_excl])
			return ls_fail(err, ENOMEM, "walker: out of memory");
		if (ls_path_normalize(w->excl[w->n_excl], LS_NORM_ROOTED) <= 0) {
			free(w->excl[w->n_excl]);
			continue;
		}
		w->n_excl++;
	}
	qsort(w->excl, w->n_excl, sizeof(*w->excl), cmp_excl);
	return 0;
}

/* ---- --only: the tree of listed paths ------------------------------------------ */

static void only_free(struct only_node *n)
{
	for (size_t i = 0; i < n->n_kids; i++)
		only_free(&n->kids[i]);
	free(n->kids);
	free(n->name);
	memset(n, 0, sizeof(*n));
}

/* Adds path (normalised, not ROOT), listed (walked whole) or a directory
 * to statx only; paths come in walk order, so a name already there is its
 * parent's last kid, and one below a listed path is covered by it. */
static int only_add(struct only_node *n, const char *path, bool listed)
{
	for (const char *p = path;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (len > NAME_MAX)
			return -ENAMETOOLONG;
		struct only_node *k = n->n_kids ? &n->kids[n->n_kids - 1] : NULL;
		if (!k || k->name_len != len || memcmp(k->name, p, len) != 0) {
			struct only_node *kids = realloc(n->kids, (n->n_kids + 1) * sizeof(*kids));
			if (!kids)
				return -ENOMEM;
			n->kids = kids;
			k = &n->kids[n->n_kids++];
			memset(k, 0, sizeof(*k));
			if (!(k->name = strndup(p, len)))
				return -ENOMEM;
			k->name_len = len;
		}
		if (k->listed)
			return 0;
		if (!slash) {
			k->listed = listed;
			return 0;
		}
		n = k;
		p = slash + 1;
	}
}

/* A path of the --only tree: listed, or a directory to statx only. */
struct only_path {
	char *path;
	bool listed;
};

static int cmp_walk_order(const void *a, const void *b)
{
	const struct only_path *x = a, *y = b;
	return ls_path_cmp(x->path, strlen(x->path), y->path, strlen(y->path));
}

/* Builds w->only from the listed paths.  A path that normalises to ROOT asks
 * for the whole tree: no --only then. */
static int setup_only(struct walker *w, struct ls_error *err)
{
	size_t n_listed = w->p->n_only, n = n_listed + w->p->n_only_dirs;
	if (!n && !w->p->only_always)
		return 0;
	w->only_on = true;
	struct only_path *paths = calloc(n, sizeof(*paths));
	if (!paths)
		return ls_fail(err, ENOMEM, "walker: out of memory");
	int rc = 0;
	bool whole = false;
	size_t k = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *src = i < n_listed ? w->p->only[i] : w->p->only_dirs[i - n_listed];
		if (!(paths[k].path = strdup(src ? src : ""))) {
			rc = ls_fail(err, ENOMEM, "walker: out of memory");
			break;
		}
		paths[k].listed = i < n_listed;
		ssize_t len = ls_path_normalize(paths[k].path, LS_NORM_ROOTED);
		if (len > 0) {
			k++;
			continue;
		}
		/* ROOT: listed, the whole tree; a directory, statx'ed anyway. */
		free(paths[k].path);
		paths[k].path = NULL;
		if (len < 0)
			rc = ls_fail(err, EINVAL, "--only %s: a path with '..' in it", src);
		else if (i < n_listed)
			whole = true;
	}
	if (rc == 0 && !whole) {
		qsort(paths, k, sizeof(*paths), cmp_walk_order);
		for (size_t i = 0; i < k && rc == 0; i++)
			if ((rc = only_add(&w->only, paths[i].path, paths[i].listed)))
				rc = ls_fail_errno(err, -rc, "--only %s", paths[i].path);
	}
	for (size_t i = 0; i < k; i++)
		free(paths[i].path);
	free(paths);
	if (rc || whole) {
		only_free(&w->only);
		w->only_on = false;
	}
	return rc;
}

/* Whether path lies in a listed subtree (it was walked, not carried). */
static bool only_covers(const struct only_node *n, const char *path, size_t len)
{
	for (const char *p = path, *end = path + len;;) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		size_t l = slash ? (size_t)(slash - p) : (size_t)(end - p);
		const struct only_node *k = NULL;
		for (size_t i = 0; i < n->n_kids && !k; i++)
			if (n->kids[i].name_len == l && memcmp(n->kids[i].name, p, l) == 0)
				k = &n->kids[i];
		if (!k)
			return false;
		if (k->listed)
			return true;
		if (!slash)
			return false;  /* a directory on the way: statx'ed, its rest carried */
		n = k;
		p = slash + 1;
	}
}

/* A hard-link group: its inode, and its device unless the base was
 * recorded through another mount (remap_dev: devices are renumbered). */
struct link_key {
	uint64_t ino, dev;
};

static int cmp_link_key(const void *a, const void *b)
{
	const struct link_key *x = a, *y = b;
	if (x->ino != y->ino)
		return (x->ino > y->ino) - (x->ino < y->ino);
	return (x->dev > y->dev) - (x->dev < y->dev);
}

/* statx of a recorded entry (path, len bytes, relative to ROOT) through its
 * directory, opened beneath ROOT: *dfd is that directory (the caller closes
 * it; -1 on failure) and *name the entry's name in it.  Returns 0 or -errno. */
static int statx_beneath(struct walker *w, const char *path, size_t len, unsigned mask, struct statx *stx,
			 int *dfd, const char **name)
{
	const char *slash = memrchr(path, '/', len);
	*name = slash ? slash + 1 : path;
	char *dir = strndup(path, slash ? (size_t)(slash - path) : 0);
	if (!dir) {
		*dfd = -1;
		return -ENOMEM;
	}
	*dfd = ls_open_beneath(w->rootfd, dir, O_RDONLY | O_DIRECTORY);
	free(dir);
	if (*dfd < 0)
		return *dfd;
	return statx(*dfd, *name, AT_SYMLINK_NOFOLLOW, mask, stx) ? -errno : 0;
}

/* A carried entry of a hard-link group a listed file belongs to, statx'ed
 * again through its directory.  Its base hash stays when the stat cache
 * allows; it is read now when only its ctime, nlink or inode moved or the
 * cache finds it racy; otherwise it is left to the diff, as the walk leaves
 * changed files. */
static int relink_entry(struct walker *w, size_t i, struct thread_ctx *c, struct ls_error *err)
{
	struct ls_rec *r = &w->out->recs[i];
	const char *path = ls_rec_path(w->out, r), *name;
	int dfd;
	struct statx stx;
	int rc = statx_beneath(w, path, r->path_len, STATX_BASIC_STATS, &stx, &dfd, &name);
	if (rc) {
		if (dfd >= 0)
			close(dfd);
		return ls_fail_errno(err, -rc, "--only: %s/%s, a hard link of a listed file, cannot be read "
				     "(list it too, or diff without --only)", w->root, path);
	}
	struct ls_rec now = *r;
	rec_from_statx(&now, &stx);
	now.aux_off = r->aux_off;
	now.path_len = r->path_len;
	now.xattr_len = r->xattr_len;
	now.mode = (now.mode & LS_REC_MODE_MASK) | (r->mode & LS_REC_FLAGS_MASK & ~LS_REC_HASHED);
	/* As the walk decides (needs_hash_now): fields a diff compares that
	 * moved mean a change, whose bytes the diff reads anyway; a new link
	 * moves only nlink and ctime, and the bytes decide. */
	bool same = now.size == r->size && now.mtime_ns == r->mtime_ns && now.uid == r->uid && now.gid == r->gid &&
		    (now.mode & LS_REC_MODE_MASK) == (r->mode & LS_REC_MODE_MASK);
	const ls_manifest *b = w->p->base;
	int64_t start = (int64_t)b->start_sec * 1000000000 + b->start_nsec;
	int64_t racy_from = start - ls_racy_window_ns(ls_fs_granularity_ns(dfd), w->tick_ns);
	bool hit = same && !w->o->rehash && (r->mode & LS_REC_HASHED) && ls_stat_cache_hit(r, &now, racy_from);
	if (hit) {
		memcpy(now.hash, r->hash, sizeof(now.hash));
		now.mode |= LS_REC_HASHED;
	} else if (same && (w->mode->fields & LS_F_HASH) && S_ISREG(now.mode)) {
		int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		rc = fd < 0 ? -errno : ls_hash_fd(fd, c->read_buf, READ_BUF, c->xxh, now.hash);
		if (fd >= 0)
			close(fd);
		if (rc == 0)
			now.mode |= LS_REC_HASHED;
		rc = 0;  /* unread, it is left to the diff like a changed file */
	}
	/* A hit's xattrs are as good as its hash (setting one moves ctime);
	 * otherwise they are read again, as the walk reads a file's. */
	void *blob = NULL;
	size_t blob_len = 0;
	bool reread = !hit && (w->mode->fields & LS_F_XATTRS);
	if (reread) {
		rc = ls_xattrs_read(dfd, name, now.mode & LS_REC_MODE_MASK, w->o->xattrs, &blob,
				    &blob_len);
		if (rc) {
			close(dfd);
			return ls_fail_errno(err, -rc, "%s/%s: xattrs", w->root, path);
		}
	}
	close(dfd);
	*r = now;
	rc = reread ? ls_manifest_set_xattrs(w->out, i, blob, blob_len, err) : 0;
	free(blob);
	return rc;
}

/* Base record b out of the carried runs into the walk's manifest, and first
 * its carried parent directories: the diff finds an entry's parents among
 * the recorded ones. */
static int take_carried(struct walker *w, size_t b, struct ls_error *err)
{
	const ls_manifest *base = w->p->base;
	const char *path = ls_rec_path(base, &base->recs[b]);
	size_t len = base->recs[b].path_len;
	int rc = 0;
	for (const char *s = memchr(path, '/', len); s && rc == 0; s = memchr(s + 1, '/', len - (size_t)(s + 1 - path))) {
		ssize_t d = ls_manifest_find(base, path, (size_t)(s - path));
		if (d >= 0)
			rc = ls_carry_take(w->out, w->p->carry, base, (size_t)d, w->p->skip_paths, w->p->n_skip, err);
	}
	return rc ? rc : ls_carry_take(w->out, w->p->carry, base, b, w->p->skip_paths, w->p->n_skip, err);
}

/* After an --only walk: the base's other members of the hard-link groups of
 * listed files, carried over as they were, are statx'ed again, so that a
 * group stays whole (a new link changes every member's nlink and ctime).
 * One pass over the new manifest. */
static int only_relink(struct walker *w, struct thread_ctx *c, struct ls_error *err)
{
	ls_manifest *m = w->out;
	struct link_key *keys = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	bool any_dev = w->p->remap_dev;
	/* The groups of listed files now, and of what they were in the base (a
	 * link removed moves the others' nlink and ctime too); a base without
	 * a hard link has none. */
	struct ls_manifest_facts bf;
	ls_manifest_facts(w->p->base, &bf);
	for (int side = 0; side < 1 + bf.hard_links; side++) {
		const ls_manifest *from = side ? w->p->base : m;
		for (size_t i = 0; i < from->n && rc == 0; i++) {
			const struct ls_rec *r = &from->recs[i];
			if (S_ISDIR(r->mode) || r->nlink < 2 || !only_covers(&w->only, ls_rec_path(from, r), r->path_len))
				continue;
			if (ls_grow((void **)&keys, &cap, n + 1, sizeof(*keys)))
				rc = ls_fail(err, ENOMEM, "walker: out of memory");
			else
				keys[n++] = (struct link_key){ r->ino, any_dev ? 0 : r->dev };
		}
	}
	if (n)
		qsort(keys, n, sizeof(*keys), cmp_link_key);
	/* Members of those groups among the carried runs are taken out of
	 * them into the manifest, so that they can be statx'ed in place; the
	 * rest of the runs stay runs.  Their base indices first: a take
	 * splits the runs being passed. */
	struct ls_carry *cr = w->p->carry;
	size_t *members = NULL, n_members = 0, cap_members = 0;
	for (size_t k = 0; cr && n && rc == 0 && k < cr->n; k++) {
		for (size_t i = cr->runs[k].from; i < cr->runs[k].to && rc == 0; i++) {
			const struct ls_rec *r = &w->p->base->recs[i];
			struct link_key key = { r->ino, any_dev ? 0 : r->dev };
			if (S_ISDIR(r->mode) || !bsearch(&key, keys, n, sizeof(*keys), cmp_link_key))
				continue;
			if (ls_grow((void **)&members, &cap_members, n_members + 1, sizeof(*members)))
				rc = ls_fail(err, ENOMEM, "walker: out of memory");
			else
				members[n_members++] = i;
		}
	}
	for (size_t k = 0; k < n_members && rc == 0; k++)
		rc = take_carried(w, members[k], err);
	free(members);
	for (size_t i = 0; i < m->n && rc == 0 && n; i++) {
		const struct ls_rec *r = &m->recs[i];
		struct link_key k = { r->ino, any_dev ? 0 : r->dev };
		/* Not by its own nlink: a new link to a file that had none
		 * shows only on the listed side. */
		if (S_ISDIR(r->mode) || !bsearch(&k, keys, n, sizeof(*keys), cmp_link_key) ||
		    only_covers(&w->only, ls_rec_path(m, r), r->path_len))
			continue;
		rc = relink_entry(w, i, c, err);
	}
	free(keys);
	return rc;
}

/* For remap_devs: when r (a record of src) is a carried non-directory of
 * device old, its device now through ROOT.  Returns 1 when found, 0 when r
 * tells nothing, -ENOMEM. */
static int device_now(struct walker *w, const ls_manifest *src, const struct ls_rec *r, uint64_t old,
		      uint64_t *now)
{
	if (S_ISDIR(r->mode) || r->dev != old || only_covers(&w->only, ls_rec_path(src, r), r->path_len))
		return 0;
	const char *name;
	int dfd;
	struct statx stx;
	int rc = statx_beneath(w, ls_rec_path(src, r), r->path_len, STATX_TYPE, &stx, &dfd, &name);
	if (dfd >= 0)
		close(dfd);
	if (rc == -ENOMEM)
		return rc;
	if (rc || S_ISDIR(stx.stx_mode))
		return 0;
	*now = makedev(stx.stx_dev_major, stx.stx_dev_minor);
	return 1;
}

/* remap_dev: the carried entries' devices, the base's mount's, become the
 * ones this mount shows (overlay numbers them per mount), so that hard-link
 * groups and the next diff see one tree.  Directories take ROOT's device;
 * the others that of a non-directory the walk saw now.  Copied entries are
 * changed here, runs when they are merged (carry.h). */
static int remap_devs(struct walker *w, uint64_t root_dev, struct ls_error *err)
{
	const ls_manifest *b = w->p->base;
	ls_manifest *m = w->out;
	struct ls_carry *cr = w->p->carry;
	struct ls_manifest_facts f;
	ls_manifest_facts(b, &f);
	if (f.dir_devs_differ || f.other_devs_differ)
		return ls_fail(err, EINVAL, "--upper: the base manifest holds entries of several file systems: "
			       "diff without --upper");
	uint64_t old_dir = f.dir_dev, old_other = f.other_dev;
	bool any_dir = f.any_dir, any_other = f.any_other;
	/* The device a carried non-directory shows now: overlay reports the
	 * underlying file system's for non-directories, which for carried
	 * entries (the lower layers) can differ from that of the files the
	 * step wrote (the upper directory's). */
	uint64_t now_other = 0;
	int found = 0;
	for (size_t i = 0; i < m->n && any_other && found == 0; i++)
		found = device_now(w, m, &m->recs[i], old_other, &now_other);
	for (size_t k = 0; cr && k < cr->n && any_other && found == 0; k++)
		for (size_t i = cr->runs[k].from; i < cr->runs[k].to && found == 0; i++)
			found = device_now(w, b, &b->recs[i], old_other, &now_other);
	if (found < 0)
		return ls_fail(err, ENOMEM, "walker: out of memory");
	bool have_other = found > 0;
	for (size_t i = 0; i < m->n; i++) {
		struct ls_rec *r = &m->recs[i];
		if (S_ISDIR(r->mode) ? any_dir && r->dev == old_dir : have_other && r->dev == old_other)
			r->dev = S_ISDIR(r->mode) ? root_dev : now_other;
	}
	if (cr) {
		cr->remap_dirs = any_dir;
		cr->dir_from = old_dir;
		cr->dir_to = root_dev;
		cr->remap_others = have_other;
		cr->other_from = old_other;
		cr->other_to = now_other;
	}
	return 0;
}

static int add_ignored(struct walker *w, size_t *cap, const char *rel, struct ls_error *err)
{
	if (ls_grow((void **)&w->ignored, cap, w->n_ignored + 1, sizeof(*w->ignored)) ||
	    !(w->ignored[w->n_ignored] = strdup(rel)))
		return ls_fail(err, ENOMEM, "walker: out of memory");
	w->n_ignored++;
	return 0;
}

/* setup_ignored's pass over the mount table. */
struct ignore_scan {
	struct walker *w;
	size_t *cap;
	const char *root_real;
	size_t root_len;        /* 0 for "/" */
	size_t lines;           /* read so far */
	struct ls_error *err;
};

/* A mount point strictly below ROOT joins the ignore list.  Returns 0, or
 * a positive errno (said in err) to stop. */
static int ignore_mount(const struct ls_mountinfo *m, void *ctx)
{
	struct ignore_scan *s = ctx;
	s->lines++;
	char *field = m->mount_point;
	size_t rl = s->root_len;
	if (strncmp(field, s->root_real, rl) != 0 || field[rl] != '/' || field[rl + 1] == '\0')
		return 0;  /* not below ROOT, or ROOT itself */
	char *rel = field + rl + 1;
	if (ls_path_normalize(rel, LS_NORM_ROOTED) > 0 && !is_default_dir(rel) && add_ignored(s->w, s->cap, rel, s->err))
		return ENOMEM;
	return 0;
}

/* Kaniko's ignore list, when the options turn it on: the default
 * directories and every mount point strictly below ROOT, ROOT-relative and
 * sorted.  Mount points are read the way Kaniko reads them, from
 * /proc/self/mountinfo (field 5). */
static int setup_ignored(struct walker *w, struct ls_error *err)
{
	char *root_real = realpath(w->root, NULL);
	if (!root_real)
		return ls_fail_errno(err, errno, "%s", w->root);
	bool on = w->o->default_excludes == LS_DEFAULT_EXCLUDES_ON ||
		  (w->o->default_excludes == LS_DEFAULT_EXCLUDES_AUTO && strcmp(root_real, "/") == 0);
	int rc = 0;
	size_t cap = 0;
	if (!on)
		goto done;
	for (size_t i = 0; i < N_DEFAULT_DIRS && rc == 0; i++)
		rc = add_ignored(w, &cap, default_dirs[i], err);
	if (rc == 0) {
		struct ignore_scan scan = { .w = w, .cap = &cap, .root_real = root_real,
					    .root_len = strcmp(root_real, "/") == 0 ? 0 : strlen(root_real), .err = err };
		int mrc = ls_mountinfo_each(ignore_mount, &scan);
		if (mrc > 0)
			rc = -mrc;  /* ignore_mount's own failure, said in err */
		else if (mrc < 0 && !scan.lines)  /* no table at all (no /proc) */
			log_msg(w, 0, "/proc/self/mountinfo: %s: mount points below %s are walked", strerror(-mrc),
				w->root);
		else if (mrc < 0)  /* half a table would walk the other half's mounts */
			rc = ls_fail_errno(err, -mrc, "/proc/self/mountinfo");
	}
done:
	free(root_real);
	if (rc == 0 && w->n_ignored) {
		qsort(w->ignored, w->n_ignored, sizeof(*w->ignored), cmp_excl);
		/* The same mount point can be listed twice (mounted over). */
		size_t o = 0;
		for (size_t i = 0; i < w->n_ignored; i++) {
			if (o && strcmp(w->ignored[o - 1], w->ignored[i]) == 0)
				free(w->ignored[i]);
			else
				w->ignored[o++] = w->ignored[i];
		}
		w->n_ignored = o;
	}
	return rc;
}

static int ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

/* Fits the threads and the subdirectory fds held ahead of their jobs into the
 * soft RLIMIT_NOFILE, leaving CALLER_FDS to the caller: each thread holds a
 * directory and a file, plus a ring and its files in flight when it has one;
 * then grows the descriptor table to hold all of them, before the threads
 * start (ls_fd_table_reserve).  Returns the number of threads to run. */
static int size_fd_budgets(struct walker *w, int jobs)
{
	struct rlimit rl;
	rlim_t limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
	if (limit > 1u << 20)
		limit = 1u << 20;
	long avail = (long)limit - CALLER_FDS;
	if (avail < 8)
		avail = 8;
	long per_thread = 2 + ((w->ring_hash || w->ring_meta) ? 1 + LS_RING_FDS : 0);
	long fit = avail / 2 / per_thread;
	if (fit < 1)
		fit = 1;
	if (jobs > fit)
		jobs = (int)fit;
	long held = avail - (long)jobs * per_thread;
	w->held_budget = held < 0 ? 0 : held > MAX_HELD_FDS ? MAX_HELD_FDS : (int)held;
	ls_fd_table_reserve(CALLER_FDS + jobs * (int)per_thread + w->held_budget);
	return jobs;
}

int ls_walk(const char *root, const struct ls_walk_params *params, ls_manifest **out,
	    struct ls_error *err)
{
	*out = NULL;
	const struct ls_walk_options *o = params->opts;
	struct walker w = { .root = root, .rootfd = -1, .p = params, .o = o, .mode = ls_mode_ops_of(o->mode) };
	struct thread_ctx main_ctx;
	memset(&main_ctx, 0, sizeof(main_ctx));
	struct dir_job *top = NULL;
	int rc = ls_manifest_create(&w.out, o->mode, o->xattrs, o->one_file_system, o->excludes,
				    o->n_excludes, err);
	if (rc)
		return rc;

	/* Racy-check reference: read before the first getdents64. */
	struct timespec start;
	clock_gettime(CLOCK_REALTIME, &start);
	struct timespec tick;
	w.tick_ns = clock_getres(CLOCK_REALTIME_COARSE, &tick) == 0 ? tick.tv_sec * 1000000000 + tick.tv_nsec
								    : 10000000;
	w.out->start_sec = start.tv_sec;
	w.out->start_nsec = (uint32_t)start.tv_nsec;

	w.rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w.rootfd < 0) {
		rc = ls_fail_errno(err, errno, "%s", root);
		goto done;
	}
	struct statx rst;
	if (statx(w.rootfd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &rst) != 0) {
		rc = ls_fail_errno(err, errno, "%s", root);
		goto done;
	}
	rc = setup_excludes(&w, err);
	if (rc == 0)
		rc = ls_patterns_compile(o->exclude_patterns, o->n_exclude_patterns, &w.patterns, err);
	if (rc == 0 && o->n_exclude_patterns)
		rc = ls_manifest_set_patterns(w.out, o->exclude_patterns, o->n_exclude_patterns, err);
	if (rc == 0)
		rc = setup_ignored(&w, err);
	if (rc == 0)
		rc = setup_only(&w, err);
	if (rc)
		goto done;
	if (w.only_on) {
		/* What was racy in the base stays racy in what is carried. */
		const ls_manifest *b = params->base;
		if (b->start_sec < w.out->start_sec ||
		    (b->start_sec == w.out->start_sec && b->start_nsec < w.out->start_nsec)) {
			w.out->start_sec = b->start_sec;
			w.out->start_nsec = b->start_nsec;
		}
	}
	if (ctx_init(&main_ctx, &w)) {
		rc = ls_fail(err, ENOMEM, "walker: out of memory");
		goto done;
	}

	int jobs = o->jobs > 0 ? o->jobs : ncpus();
	switch (o->io) {
	case LS_IO_URING:
		rc = ls_ring_create(&main_ctx.ring, RING_DEPTH);
		if (rc) {
			rc = ls_fail_errno(err, -rc, "--io uring: cannot set up io_uring");
			goto done;
		}
		main_ctx.ring_tried = true;
		w.ring_meta = w.ring_hash = true;
		jobs = 1;  /* the ring's own workers provide the parallelism */
		break;
	case LS_IO_AUTO:
		/* Measured: statx on threads beats IORING_OP_STATX (always punted
		 * to io-wq); batched opens/reads/closes of contents go to a ring.
		 * A mode that reads no contents is then --io sync exactly. */
		w.ring_hash = (w.mode->fields & LS_F_HASH) != 0;
		break;
	case LS_IO_SYNC:
		break;
	}
	jobs = size_fd_budgets(&w, jobs);
	w.threads = jobs;
	rc = ls_pool_create(&w.pool, jobs - 1, sizeof(struct thread_ctx), ctx_init, ctx_fini, &w, err);
	if (rc)
		goto done;

	top = new_job(&w, "", 0, makedev(rst.stx_dev_major, rst.stx_dev_minor), rst.stx_ino);
	if (!top) {
		rc = ls_fail(err, ENOMEM, "walker: out of memory");
		goto done;
	}
	if (w.only_on)
		top->only = &w.only;
	ls_pool_push(w.pool, &top->task);
	if (o->progress)
		rc = report(&w, false, err);
	if (rc == 0)
		rc = consume(&w, top, &main_ctx, err);
	if (rc == 0 && w.only_on)
		rc = only_relink(&w, &main_ctx, err);
	if (rc == 0 && w.only_on && params->remap_dev)
		rc = remap_devs(&w, makedev(rst.stx_dev_major, rst.stx_dev_minor), err);
	if (rc == 0 && o->progress)
		rc = report(&w, true, err);
	if (rc == 0 && atomic_load(&w.ring_failed) && o->io == LS_IO_URING)
		rc = ls_fail(err, EIO, "--io uring: io_uring failed during the walk");
	/* Under --only most of the tree is carried, not matched: say nothing. */
	for (size_t i = 0; rc == 0 && !w.only_on && i < ls_patterns_count(w.patterns); i++)
		if (!ls_patterns_used(w.patterns, i))
			log_msg(&w, 1, "--exclude-pattern '%s' matched nothing", ls_patterns_text(w.patterns, i));

done:
	ls_pool_destroy(w.pool);
	free_job(top);
	ctx_fini(&main_ctx);
	for (size_t i = 0; i < w.n_excl; i++)
		free(w.excl[i]);
	free(w.excl);
	for (size_t i = 0; i < w.n_ignored; i++)
		free(w.ignored[i]);
	free(w.ignored);
	ls_patterns_free(w.patterns);
	only_free(&w.only);
	if (w.rootfd >= 0)
		close(w.rootfd);
	if (rc) {
		ls_manifest_free(w.out);
		return rc;
	}
	*out = w.out;
	return 0;
}

bool ls_stamped_recently(int64_t ctime_ns)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	return ctime_ns > st_ns(&now) - LS_WRITE_IN_FLIGHT_NS;
}
