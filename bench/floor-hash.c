/*
 * floor-hash: the floor loops of bench/run.sh, what the syscalls and the hash alone cost.
 *
 *   floor-hash [-t N] [-s] [-v] ROOT
 *   floor-hash [-t N] [-0] [-v] -f LIST   (LIST: paths, one a line; NUL-separated with -0;
 *                                          '-' is stdin)
 *
 * Content loop (default): every regular file is opened (O_NOFOLLOW | O_NOATIME, as
 * layersnap opens contents), read in 256 KiB chunks into XXH3-128, and closed.  With
 * ROOT the tree is walked with getdents64 from directory descriptors (files opened
 * beneath the descriptor of the directory that listed them, no path resolution from
 * the root); with -f only the listed files are read, no walk.
 *
 * Metadata loop (-s, with ROOT): the same walk, and one statx (AT_SYMLINK_NOFOLLOW,
 * basic fields) of every entry, no contents read: the bare floor of a metadata scan.
 *
 * -t N: N threads in all.  With N = 1 one thread walks and reads, an entry at a time.
 * With N > 1 the main thread walks (then helps) and the others take batches of entries
 * from a shared queue as they are listed; a directory stays open while entries of it
 * are queued, and the walker waits when 512 are (besides those it is in).
 *
 * Reports nothing (-v: the entries and bytes done, on stderr); exits 0, or 1 with a
 * message on stderr when anything fails: the bench times it like any other command.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "xxh.h"

#define CHUNK   (256u * 1024)
#define BATCH   128
#define BATCH_TEXT (BATCH * 48)
#define DENTBUF (64u * 1024)

static int stat_only, nthreads = 1;
static atomic_int failed;

static void fail(const char *what, const char *name, int err)
{
	if (atomic_fetch_add(&failed, 1) < 10)
		fprintf(stderr, "floor-hash: %s %s: %s\n", what, name, strerror(err));
}

/* ---- one entry -------------------------------------------------------------- */

struct dir {
	int fd;
	atomic_int refs;
};

/* Directories held open (N > 1: the walker runs ahead of the readers, and every
 * directory with entries still queued stays open): besides those the walker is in, at
 * most MAX_OPEN. */
#define MAX_OPEN 512
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int n;      /* open directories */
	int depth;  /* those the walker is in: only it lets go of them */
} Open = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };

static void dir_unref(struct dir *d)
{
	if (d && atomic_fetch_sub(&d->refs, 1) == 1) {
		if (d->fd >= 0)
			close(d->fd);
		free(d);
		if (nthreads > 1) {
			pthread_mutex_lock(&Open.mu);
			Open.n--;
			pthread_cond_signal(&Open.cv);
			pthread_mutex_unlock(&Open.mu);
		}
	}
}

/* A thread's state; its counters are summed at the end (no shared cache line per file). */
struct worker {
	XXH3_state_t *st;
	char *buf;
	uint64_t sink;     /* keeps the digests alive */
	uint64_t n, bytes;
	char pad[64];
};

static void hash_file(struct worker *w, int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | O_NOATIME);
	if (fd < 0 && errno == EPERM)
		fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		fail("open", name, errno);
		return;
	}
	XXH3_128bits_reset(w->st);
	uint64_t bytes = 0;
	for (;;) {
		ssize_t n = read(fd, w->buf, CHUNK);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fail("read", name, errno);
			break;
		}
		if (n == 0)
			break;
		XXH3_128bits_update(w->st, w->buf, (size_t)n);
		bytes += (uint64_t)n;
	}
	XXH128_hash_t h = XXH3_128bits_digest(w->st);
	w->sink ^= h.low64 ^ h.high64;
	w->n++;
	w->bytes += bytes;
	close(fd);
}

static void stat_entry(struct worker *w, int dirfd, const char *name)
{
	struct statx stx;
	if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_BASIC_STATS, &stx) < 0) {
		fail("statx", name, errno);
		return;
	}
	w->sink ^= stx.stx_size ^ stx.stx_ino ^ (uint64_t)stx.stx_mtime.tv_nsec;
	w->n++;
}

static void process(struct worker *w, int dirfd, const char *name)
{
	if (stat_only)
		stat_entry(w, dirfd, name);
	else
		hash_file(w, dirfd, name);
}

/* ---- the queue (N > 1) -------------------------------------------------------- */

/* A batch of entries: their names packed in text[], no allocation per entry. */
struct item {
	struct dir *dir;   /* NULL in list mode: the name is a path */
	uint32_t off;      /* of the name in text[] */
	int owns_ref;      /* holds the batch's reference on dir (the first of a run of it) */
};

struct batch {
	struct batch *next;
	int n;
	size_t len, cap;
	struct item it[BATCH];
	char text[];
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct batch *head, *tail;
	int done;
} Q = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0 };

static struct batch *cur;  /* the walker's batch being filled */

static void q_push(struct batch *b)
{
	pthread_mutex_lock(&Q.mu);
	b->next = NULL;
	if (Q.tail)
		Q.tail->next = b;
	else
		Q.head = b;
	Q.tail = b;
	pthread_cond_signal(&Q.cv);
	pthread_mutex_unlock(&Q.mu);
}

static struct batch *q_pop(int wait)
{
	pthread_mutex_lock(&Q.mu);
	while (!Q.head && !Q.done && wait)
		pthread_cond_wait(&Q.cv, &Q.mu);
	struct batch *b = Q.head;
	if (b) {
		Q.head = b->next;
		if (!Q.head)
			Q.tail = NULL;
	}
	pthread_mutex_unlock(&Q.mu);
	return b;
}

static void q_finish(void)
{
	if (cur && cur->n)
		q_push(cur);
	else
		free(cur);
	cur = NULL;
	pthread_mutex_lock(&Q.mu);
	Q.done = 1;
	pthread_cond_broadcast(&Q.cv);
	pthread_mutex_unlock(&Q.mu);
}

static void run_batch(struct worker *w, struct batch *b)
{
	for (int i = 0; i < b->n; i++) {
		struct item *it = &b->it[i];
		process(w, it->dir ? it->dir->fd : AT_FDCWD, b->text + it->off);
	}
	for (int i = 0; i < b->n; i++)
		if (b->it[i].owns_ref)
			dir_unref(b->it[i].dir);
	free(b);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct batch *b;
	while ((b = q_pop(1)))
		run_batch(w, b);
	return NULL;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		fputs("floor-hash: out of memory\n", stderr);
		exit(1);
	}
	return p;
}

/* An entry found by the walker (or read from the list). */
static void emit(struct worker *w, struct dir *d, const char *name, size_t len)
{
	if (nthreads == 1) {
		process(w, d ? d->fd : AT_FDCWD, name);
		return;
	}
	if (cur && cur->len + len + 1 > cur->cap) {
		q_push(cur);
		cur = NULL;
	}
	if (!cur) {
		size_t cap = BATCH_TEXT > len + 1 ? BATCH_TEXT : len + 1;
		cur = xmalloc(sizeof *cur + cap);
		cur->n = 0;
		cur->len = 0;
		cur->cap = cap;
	}
	/* one reference per batch and directory: entries come a directory at a time */
	int own = d && (cur->n == 0 || cur->it[cur->n - 1].dir != d);
	if (own)
		atomic_fetch_add(&d->refs, 1);
	cur->it[cur->n++] = (struct item){ d, (uint32_t)cur->len, own };
	memcpy(cur->text + cur->len, name, len + 1);
	cur->len += len + 1;
	if (cur->n == BATCH) {
		q_push(cur);
		cur = NULL;
	}
}

/* ---- the walk ----------------------------------------------------------------- */

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* List D, emitting its entries; then recurse into its subdirectories. */
static void walk_depth(int delta)
{
	if (nthreads > 1) {
		pthread_mutex_lock(&Open.mu);
		Open.depth += delta;
		pthread_mutex_unlock(&Open.mu);
	}
}

static void walk(struct worker *w, struct dir *d, const char *dname, char *dent)
{
	char **subs = NULL;
	size_t nsub = 0, capsub = 0;
	walk_depth(1);
	for (;;) {
		long n = syscall(SYS_getdents64, d->fd, dent, DENTBUF);
		if (n < 0) {
			fail("getdents64", dname, errno);
			break;
		}
		if (n == 0)
			break;
		for (long off = 0; off < n;) {
			struct linux_dirent64 *e = (struct linux_dirent64 *)(dent + off);
			off += e->d_reclen;
			const char *nm = e->d_name;
			if (nm[0] == '.' && (!nm[1] || (nm[1] == '.' && !nm[2])))
				continue;
			unsigned char t = e->d_type;
			if (t == DT_UNKNOWN) {
				struct stat st;
				if (fstatat(d->fd, nm, &st, AT_SYMLINK_NOFOLLOW) < 0) {
					fail("fstatat", nm, errno);
					continue;
				}
				t = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_LNK;
			}
			size_t len = strlen(nm);
			if (stat_only || t == DT_REG)
				emit(w, d, nm, len);
			if (t == DT_DIR) {
				if (nsub == capsub) {
					capsub = capsub ? capsub * 2 : 16;
					char **ns = realloc(subs, capsub * sizeof *subs);
					if (!ns) {
						fputs("floor-hash: out of memory\n", stderr);
						exit(1);
					}
					subs = ns;
				}
				subs[nsub] = xmalloc(len + 1);
				memcpy(subs[nsub++], nm, len + 1);
			}
		}
	}
	for (size_t i = 0; i < nsub; i++) {
		if (nthreads > 1) {
			pthread_mutex_lock(&Open.mu);
			if (Open.n - Open.depth >= MAX_OPEN) {
				/* hand the readers what is listed, and wait for them */
				pthread_mutex_unlock(&Open.mu);
				if (cur && cur->n) {
					q_push(cur);
					cur = NULL;
				}
				pthread_mutex_lock(&Open.mu);
				while (Open.n - Open.depth >= MAX_OPEN)
					pthread_cond_wait(&Open.cv, &Open.mu);
			}
			Open.n++;
			pthread_mutex_unlock(&Open.mu);
		}
		int fd = openat(d->fd, subs[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			fail("open", subs[i], errno);
			if (nthreads > 1) {
				pthread_mutex_lock(&Open.mu);
				Open.n--;
				pthread_mutex_unlock(&Open.mu);
			}
		} else {
			struct dir *c = xmalloc(sizeof *c);
			c->fd = fd;
			atomic_init(&c->refs, 1);
			walk(w, c, subs[i], dent);
			dir_unref(c);
		}
		free(subs[i]);
	}
	free(subs);
	walk_depth(-1);
}

static void read_list(struct worker *w, const char *list, int nul)
{
	FILE *f = strcmp(list, "-") ? fopen(list, "r") : stdin;
	if (!f) {
		fail("open", list, errno);
		return;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getdelim(&line, &cap, nul ? '\0' : '\n', f)) > 0) {
		if (line[n - 1] == (nul ? '\0' : '\n'))
			line[--n] = 0;
		if (n)
			emit(w, NULL, line, (size_t)n);
	}
	free(line);
	if (f != stdin)
		fclose(f);
}

static void usage(void)
{
	fputs("usage: floor-hash [-t N] [-s] [-v] ROOT\n"
	      "       floor-hash [-t N] [-0] [-v] -f LIST\n", stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	const char *list = NULL;
	int nul = 0, verbose = 0, c;
	while ((c = getopt(argc, argv, "t:sf:0vh")) != -1) {
		switch (c) {
		case 't':
			nthreads = atoi(optarg);
			if (nthreads < 1 || nthreads > 256)
				usage();
			break;
		case 's': stat_only = 1; break;
		case 'f': list = optarg; break;
		case '0': nul = 1; break;
		case 'v': verbose = 1; break;
		default: usage();
		}
	}
	if ((list != NULL) == (optind < argc) || argc - optind > 1 || (list && stat_only))
		usage();
	const char *root = list ? NULL : argv[optind];
	int rootfd = -1;
	if (root) {
		rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (rootfd < 0) {
			fail("open", root, errno);
			return 1;
		}
	}

	struct worker *ws = calloc((size_t)nthreads, sizeof *ws);
	if (!ws)
		return 1;
	for (int i = 0; i < nthreads; i++) {
		ws[i].st = XXH3_createState();
		ws[i].buf = stat_only ? NULL : xmalloc(CHUNK);
		if (!ws[i].st) {
			fputs("floor-hash: out of memory\n", stderr);
			return 1;
		}
	}
	pthread_t *tids = xmalloc((size_t)nthreads * sizeof *tids);
	for (int i = 1; i < nthreads; i++) {
		int e = pthread_create(&tids[i], NULL, worker_main, &ws[i]);
		if (e) {
			fail("pthread_create", "", e);
			return 1;
		}
	}

	if (list) {
		read_list(&ws[0], list, nul);
	} else {
		struct dir *d = xmalloc(sizeof *d);
		d->fd = rootfd;
		atomic_init(&d->refs, 1);
		if (nthreads > 1) {
			pthread_mutex_lock(&Open.mu);
			Open.n++;
			pthread_mutex_unlock(&Open.mu);
		}
		if (stat_only)
			stat_entry(&ws[0], AT_FDCWD, root);
		char *dent = xmalloc(DENTBUF);
		walk(&ws[0], d, root, dent);
		free(dent);
		dir_unref(d);
	}

	if (nthreads > 1) {
		q_finish();
		worker_main(&ws[0]);  /* the walker helps with what is left */
		for (int i = 1; i < nthreads; i++)
			pthread_join(tids[i], NULL);
	}
	uint64_t n = 0, bytes = 0, sink = 0;
	for (int i = 0; i < nthreads; i++) {
		n += ws[i].n;
		bytes += ws[i].bytes;
		sink ^= ws[i].sink;
	}
	if (verbose)
		fprintf(stderr, "floor-hash: %llu %s, %llu bytes (%016llx)\n", (unsigned long long)n,
		        stat_only ? "entries stat'ed" : "files read", (unsigned long long)bytes,
		        (unsigned long long)sink);
	for (int i = 0; i < nthreads; i++) {
		XXH3_freeState(ws[i].st);
		free(ws[i].buf);
	}
	free(ws);
	free(tids);
	return atomic_load(&failed) ? 1 : 0;
}
