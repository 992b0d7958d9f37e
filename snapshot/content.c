#include "content.h"
#include "ioq.h"
#include "path.h"
#include "walk.h"
#include "xattr.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "xxh.h"

bool ls_same_inode(const struct ls_rec *r, const struct stat *st)
{
	return (uint64_t)st->st_ino == r->ino && (uint64_t)st->st_dev == r->dev &&
	       (st->st_mode & S_IFMT) == (r->mode & S_IFMT);
}

bool ls_changed_since(const struct stat *a, const struct stat *b)
{
	if (a->st_size != b->st_size || a->st_mtim.tv_sec != b->st_mtim.tv_sec ||
	    a->st_mtim.tv_nsec != b->st_mtim.tv_nsec)
		return true;
	bool ctime_moved = a->st_ctim.tv_sec != b->st_ctim.tv_sec || a->st_ctim.tv_nsec != b->st_ctim.tv_nsec;
	return ctime_moved && a->st_nlink == b->st_nlink;
}

int ls_content_open(int dirfd, const char *name, const struct ls_rec *r, struct stat *st)
{
	int fd = ls_open_noatime(dirfd, name);
	if (fd < 0)
		return fd;
	if (fstat(fd, st) != 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (!ls_same_inode(r, st)) {
		close(fd);
		return -ENOENT;  /* replaced since the walk: what was recorded is gone */
	}
	return fd;
}

/* ---- the read-ahead --------------------------------------------------------- */

#define REREAD_BUF (256 * 1024)

/*
 * Hand-over in batches.  The reader and the writer go at about the same
 * pace, so a wake-up per file would make them take turns, one file each, a
 * context switch every time (measured: 15,000 voluntary switches for the
 * 100k-entry synthetic tree's full layer).  A blocked reader resumes only
 * when a batch of slots and bytes is free, a waiting writer only when a
 * batch of files is ready; either side also goes on whenever the other one
 * waits, so they never both wait.
 */
#define BATCH_FILES 16
#define BATCH_BYTES (1024u * 1024)

struct ls_readahead {
	int rootfd;
	const ls_manifest *m;
	const size_t *idx;
	size_t n;
	bool hash;
	enum ls_xattrs xattrs;

	/* The reading thread's own. */
	struct ls_dirchain *dirs;
	XXH3_state_t *xxh;
	char *buf;                  /* REREAD_BUF, for the second read */

	pthread_t thread;
	bool running, sync_ready;
	pthread_mutex_t lock;
	pthread_cond_t wake_reader, wake_writer;
	/* Files read and not yet released: slots [head, tail) modulo the ring,
	 * in the order of idx.  The counters only grow and change under lock. */
	struct ls_read slots[LS_READAHEAD_FILES];
	uint64_t ends[LS_READAHEAD_FILES];  /* where each slot's data ends in buf */
	size_t head, tail;
	bool stop, done;
	bool reader_waits, writer_waits;
	uint64_t want_end;          /* where the bytes the reader waits to write end */
	/* Whole files' bytes, laid out in order in one buffer used as a ring
	 * (no allocation per file, none freed on another thread).  Positions
	 * only grow: the reader writes at wpos, the oldest data held starts at
	 * rpos; a file never wraps: the end of the buffer is skipped instead. */
	unsigned char *ring;
	uint64_t wpos, rpos;
};

/* Whether the reader, wanting a slot and ring bytes up to want_end, has
 * room for them and `files` and `bytes` more; an empty ring always has
 * room.  Locked. */
static bool reader_may_go(const struct ls_readahead *ra, size_t files, uint64_t bytes)
{
	if (ra->stop || ra->head == ra->tail)
		return true;
	return ra->tail - ra->head + files <= LS_READAHEAD_FILES &&
	       ra->want_end - ra->rpos + bytes <= LS_READAHEAD_BYTES;
}

/* Waits until the reader has room for one more file whose bytes end at
 * want_end (drop_head wakes it when there is room for a batch more, or the
 * ring is empty); locked. */
static void reader_wait(struct ls_readahead *ra, uint64_t want_end)
{
	ra->want_end = want_end;
	if (reader_may_go(ra, 1, 0))
		return;
	ra->reader_waits = true;
	if (ra->writer_waits)
		pthread_cond_signal(&ra->wake_writer);
	while (!reader_may_go(ra, 1, 0))
		pthread_cond_wait(&ra->wake_reader, &ra->lock);
	ra->reader_waits = false;
}

/* Releases the oldest slot; locked.  Returns whether the reader is to be
 * woken: its caller signals after unlocking, since a reader woken while
 * the lock is held would only run to block on it again. */
static bool drop_head(struct ls_readahead *ra)
{
	size_t k = ra->head % LS_READAHEAD_FILES;
	struct ls_read *r = &ra->slots[k];
	r->data = NULL;
	free(r->xattrs);  /* rarely any: a file with a capability */
	r->xattrs = NULL;
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	ra->rpos = ra->ends[k];
	ra->head++;
	return ra->reader_waits && reader_may_go(ra, BATCH_FILES, BATCH_BYTES);
}

/* Room for size contiguous bytes in the ring, waiting for the writer to
 * release older files; NULL when stopped. */
static unsigned char *reserve(struct ls_readahead *ra, size_t size)
{
	uint64_t start = ra->wpos;
	if (start % LS_READAHEAD_BYTES + size > LS_READAHEAD_BYTES)
		start += LS_READAHEAD_BYTES - start % LS_READAHEAD_BYTES;
	uint64_t end = start + size;
	pthread_mutex_lock(&ra->lock);
	reader_wait(ra, end);
	bool stop = ra->stop;
	pthread_mutex_unlock(&ra->lock);
	if (stop)
		return NULL;
	ra->wpos = end;
	return ra->ring + start % LS_READAHEAD_BYTES;
}

/* Reads size bytes of fd into data: 0, -EAGAIN when the file ended
 * early (it changed while being read), or another -errno. */
static int read_exactly(int fd, unsigned char *data, size_t size)
{
	for (size_t got = 0; got < size;) {
		ssize_t n = read(fd, data + got, size - got);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n == 0)
			return -EAGAIN;
		if (n > 0)
			got += (size_t)n;
	}
	return 0;
}

/* Reserves size bytes of the ring and reads them from fd, then fstats it
 * into *after: 0, -ECANCELED when stopped (nobody asks for the file),
 * -EAGAIN when it ended early, or another -errno. */
static int read_into_ring(struct ls_readahead *ra, int fd, size_t size, unsigned char **data, struct stat *after)
{
	if (!(*data = reserve(ra, size)))
		return -ECANCELED;
	int err = read_exactly(fd, *data, size);
	if (!err && fstat(fd, after) != 0)
		err = -errno;
	return err;
}

/* Whether st, an fstat after the bytes were read, shows the file the walk
 * recorded in rec unchanged: the same inode, size and mtime, and a ctime
 * that did not move (or moved with the link count, ls_changed_since). */
static bool unchanged_since_walk(const struct ls_rec *rec, const struct stat *st)
{
	int64_t ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
	return ls_same_inode(rec, st) && (uint64_t)st->st_size == rec->size &&
	       (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec == rec->mtime_ns &&
	       (ctime_ns == rec->ctime_ns || (uint64_t)st->st_nlink != rec->nlink);
}

/* The xattrs of the regular file open at fd, when asked for: from the inode
 * itself, with no lookup by name (and off the writer's thread).  A failure
 * leaves them to the writer, which reads them by name and reports it. */
static void read_xattrs(const struct ls_readahead *ra, int fd, struct ls_read *out)
{
	if (ra->xattrs == LS_XATTRS_NONE)
		return;
	if (ls_xattrs_read(fd, "", S_IFREG, ra->xattrs, &out->xattrs, &out->xattr_len) == 0)
		out->xattrs_read = true;
}

/* Reads the whole file of record rec, as ls_content_open's caller would:
 * before.st_size bytes between two fstats that agree, read twice when it was
 * stamped in the last second.  The walk's statx serves as the first fstat
 * when the one after the bytes agrees with it (the file then stayed as it
 * was from the walk on, longer than an fstat before would show); when it
 * does not, the file is read again between two fstats of its own.  A
 * directory: its fstat only. */
static void read_one(struct ls_readahead *ra, size_t i, struct ls_read *out)
{
	const struct ls_rec *rec = &ra->m->recs[i];
	memset(out, 0, sizeof(*out));
	out->index = i;
	out->fd = -1;
	const char *path = ls_rec_path(ra->m, rec);
	if (S_ISDIR(rec->mode)) {
		/* Its fd from the chain, which opens it for the files inside
		 * anyway: an fstat, no lookup by name. */
		int fd = ls_dirchain_get(ra->dirs, path, rec->path_len);
		if (fd < 0)
			out->err = fd;
		else if (fstat(fd, &out->before) != 0)
			out->err = -errno;
		else if (!ls_same_inode(rec, &out->before))
			out->err = -ENOENT;  /* replaced since the walk */
		return;
	}
	const char *slash = memrchr(path, '/', rec->path_len);
	const char *name = slash ? slash + 1 : path;
	int dirfd = ls_dirchain_get(ra->dirs, path, slash ? (size_t)(slash - path) : 0);
	if (dirfd < 0) {
		out->err = dirfd;
		return;
	}
	int fd = -1, err = 0;
	unsigned char *data = NULL;
	struct stat after;
	if (rec->size <= LS_READAHEAD_WHOLE) {
		fd = ls_open_noatime(dirfd, name);
		if (fd < 0) {
			out->err = fd;
			return;
		}
		err = read_into_ring(ra, fd, (size_t)rec->size, &data, &after);
		if (err == -ECANCELED) {  /* stopped: no second try */
			close(fd);
			out->err = err;
			return;
		}
		if (!err && unchanged_since_walk(rec, &after)) {
			out->before = after;
		} else {
			close(fd);  /* changed since the walk (or failed): the full protocol */
			fd = -1;
			err = 0;
			data = NULL;
		}
	}
	if (fd < 0) {
		fd = ls_content_open(dirfd, name, rec, &out->before);
		if (fd < 0) {
			out->err = fd;
			return;
		}
		if (out->before.st_size > (off_t)LS_READAHEAD_WHOLE) {
			read_xattrs(ra, fd, out);
			out->fd = fd;  /* the caller streams it */
			return;
		}
		err = read_into_ring(ra, fd, (size_t)out->before.st_size, &data, &after);
		if (!err && ls_changed_since(&out->before, &after))
			err = -EAGAIN;
	}
	size_t size = (size_t)out->before.st_size;
	bool recent = ls_stamped_recently((int64_t)out->before.st_ctim.tv_sec * 1000000000 +
					  out->before.st_ctim.tv_nsec);
	if (!err && (ra->hash || recent)) {
		XXH128_canonical_t c;
		XXH128_canonicalFromHash(&c, XXH3_128bits(data, size));
		memcpy(out->hash, c.digest, 16);
		out->hashed = true;
	}
	/* A write that began before our fstat may be copying still: its bytes
	 * show in no timestamp, only in a second read that differs. */
	if (!err && recent) {
		uint8_t again[16];
		if (lseek(fd, 0, SEEK_SET) != 0)
			err = -errno;
		else if (!ra->buf && !(ra->buf = malloc(REREAD_BUF)))
			err = -ENOMEM;
		else if (!(err = ls_hash_fd(fd, ra->buf, REREAD_BUF, ra->xxh, again)) &&
			 memcmp(again, out->hash, 16) != 0)
			err = -EAGAIN;
	}
	if (!err)
		read_xattrs(ra, fd, out);
	close(fd);
	if (err)
		out->err = err;
	else
		out->data = data;
}

static void *reader_main(void *arg)
{
	struct ls_readahead *ra = arg;
	for (size_t pos = 0; pos < ra->n; pos++) {
		size_t i = ra->idx[pos];
		pthread_mutex_lock(&ra->lock);
		reader_wait(ra, ra->wpos);
		bool stop = ra->stop;
		pthread_mutex_unlock(&ra->lock);
		if (stop)
			break;
		/* The slot at tail is the reader's until tail moves. */
		struct ls_read *r = &ra->slots[ra->tail % LS_READAHEAD_FILES];
		read_one(ra, i, r);
		pthread_mutex_lock(&ra->lock);
		ra->ends[ra->tail % LS_READAHEAD_FILES] = ra->wpos;
		ra->tail++;
		bool wake = ra->writer_waits && ra->tail - ra->head >= BATCH_FILES;
		pthread_mutex_unlock(&ra->lock);
		if (wake)
			pthread_cond_signal(&ra->wake_writer);
	}
	pthread_mutex_lock(&ra->lock);
	ra->done = true;
	pthread_cond_signal(&ra->wake_writer);
	pthread_mutex_unlock(&ra->lock);
	return NULL;
}

int ls_readahead_start(struct ls_readahead **out, int rootfd, const ls_manifest *m, const size_t *idx,
		       size_t n, bool hash, enum ls_xattrs xattrs)
{
	*out = NULL;
	struct ls_readahead *ra = calloc(1, sizeof(*ra));
	if (!ra)
		return -ENOMEM;
	ra->rootfd = rootfd;
	ra->m = m;
	ra->idx = idx;
	ra->n = n;
	ra->hash = hash;
	ra->xattrs = xattrs;
	for (size_t i = 0; i < LS_READAHEAD_FILES; i++)
		ra->slots[i].fd = -1;
	ra->xxh = XXH3_createState();
	ra->ring = malloc(LS_READAHEAD_BYTES);
	if (!ra->xxh || !ra->ring || ls_dirchain_create(&ra->dirs, rootfd)) {
		ls_readahead_free(ra);
		return -ENOMEM;
	}
	pthread_mutex_init(&ra->lock, NULL);
	pthread_cond_init(&ra->wake_reader, NULL);
	pthread_cond_init(&ra->wake_writer, NULL);
	ra->sync_ready = true;
	int rc = pthread_create(&ra->thread, NULL, reader_main, ra);
	if (rc) {
		ls_readahead_free(ra);
		return -rc;
	}
	ra->running = true;
	*out = ra;
	return 0;
}

struct ls_read *ls_readahead_get(struct ls_readahead *ra, size_t i)
{
	struct ls_read *found = NULL;
	bool wake = false;
	pthread_mutex_lock(&ra->lock);
	for (;;) {
		while (ra->head < ra->tail && ra->slots[ra->head % LS_READAHEAD_FILES].index < i)
			wake |= drop_head(ra);
		if (ra->head < ra->tail) {
			struct ls_read *r = &ra->slots[ra->head % LS_READAHEAD_FILES];
			found = r->index == i ? r : NULL;
			break;
		}
		if (ra->done)
			break;
		/* Empty (so the reader may go): wait for a batch, or for the end,
		 * or for the reader to be blocked on the bytes of the files it
		 * read meanwhile. */
		if (wake)  /* locked, but the wait below releases it at once */
			pthread_cond_signal(&ra->wake_reader);
		wake = false;
		ra->writer_waits = true;
		while (!ra->done && ra->tail - ra->head < BATCH_FILES &&
		       !(ra->reader_waits && ra->head < ra->tail))
			pthread_cond_wait(&ra->wake_writer, &ra->lock);
		ra->writer_waits = false;
	}
	pthread_mutex_unlock(&ra->lock);
	if (wake)
		pthread_cond_signal(&ra->wake_reader);
	return found;
}

void ls_readahead_release(struct ls_readahead *ra, struct ls_read *r)
{
	bool wake = false;
	pthread_mutex_lock(&ra->lock);
	if (ra->head < ra->tail && r == &ra->slots[ra->head % LS_READAHEAD_FILES])
		wake = drop_head(ra);
	pthread_mutex_unlock(&ra->lock);
	if (wake)
		pthread_cond_signal(&ra->wake_reader);
}

void ls_readahead_free(struct ls_readahead *ra)
{
	if (!ra)
		return;
	if (ra->running) {
		pthread_mutex_lock(&ra->lock);
		ra->stop = true;
		pthread_cond_signal(&ra->wake_reader);
		pthread_mutex_unlock(&ra->lock);
		pthread_join(ra->thread, NULL);
	}
	if (ra->sync_ready) {
		pthread_mutex_destroy(&ra->lock);
		pthread_cond_destroy(&ra->wake_reader);
		pthread_cond_destroy(&ra->wake_writer);
	}
	while (ra->head < ra->tail)
		(void)drop_head(ra);
	ls_dirchain_free(ra->dirs);
	free(ra->ring);
	if (ra->xxh)
		XXH3_freeState(ra->xxh);
	free(ra->buf);
	free(ra);
}
