#include "ioq.h"
#include "error.h"
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

/* ---- task pool ---------------------------------------------------------- */

enum { TASK_QUEUED = 1, TASK_RUNNING, TASK_DONE };

struct ls_pool {
	pthread_mutex_t lock;
	pthread_cond_t work;      /* a task was queued, or stop */
	pthread_cond_t done;      /* a task finished */
	struct ls_task *stack;
	bool stop;
	int n_threads;
	pthread_t *threads;
	size_t ctx_size;
	ls_ctx_fini_fn *fini;
	char *ctxs;               /* n_threads contexts */
};

/* Takes t off the stack and marks it running. */
static void claim_locked(struct ls_pool *p, struct ls_task *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		p->stack = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->next = t->prev = NULL;
	t->state = TASK_RUNNING;
}

static struct ls_task *pop_locked(struct ls_pool *p)
{
	struct ls_task *t = p->stack;
	if (t)
		claim_locked(p, t);
	return t;
}

static void run_task(struct ls_pool *p, struct ls_task *t, void *ctx)
{
	t->fn(t, ctx);
	pthread_mutex_lock(&p->lock);
	t->state = TASK_DONE;
	pthread_cond_broadcast(&p->done);
	pthread_mutex_unlock(&p->lock);
}

struct worker_arg {
	struct ls_pool *pool;
	void *ctx;
};

static void *worker_main(void *arg)
{
	struct ls_pool *p = ((struct worker_arg *)arg)->pool;
	void *ctx = ((struct worker_arg *)arg)->ctx;
	free(arg);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct ls_task *t = pop_locked(p);
		if (!t) {
			if (p->stop)
				break;
			pthread_cond_wait(&p->work, &p->lock);
			continue;
		}
		pthread_mutex_unlock(&p->lock);
		run_task(p, t, ctx);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int ls_pool_create(struct ls_pool **out, int workers, size_t ctx_size, ls_ctx_init_fn *init,
		   ls_ctx_fini_fn *fini, void *arg, struct ls_error *err)
{
	*out = NULL;
	struct ls_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return ls_fail(err, ENOMEM, "walker: out of memory");
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	p->ctx_size = ctx_size;
	p->fini = fini;
	if (workers > 0) {
		p->threads = calloc((size_t)workers, sizeof(*p->threads));
		p->ctxs = calloc((size_t)workers, ctx_size);
		if (!p->threads || !p->ctxs) {
			ls_pool_destroy(p);
			return ls_fail(err, ENOMEM, "walker: out of memory");
		}
	}
	for (int i = 0; i < workers; i++) {
		void *ctx = p->ctxs + (size_t)i * ctx_size;
		int rc = init(ctx, arg);
		if (rc) {
			ls_pool_destroy(p);
			return ls_fail_errno(err, -rc, "walker: thread set-up");
		}
		struct worker_arg *wa = malloc(sizeof(*wa));
		if (!wa) {
			fini(ctx);
			ls_pool_destroy(p);
			return ls_fail(err, ENOMEM, "walker: out of memory");
		}
		wa->pool = p;
		wa->ctx = ctx;
		rc = pthread_create(&p->threads[i], NULL, worker_main, wa);
		if (rc) {
			free(wa);
			fini(ctx);
			ls_pool_destroy(p);
			return ls_fail_errno(err, rc, "walker: pthread_create");
		}
		p->n_threads++;
	}
	*out = p;
	return 0;
}

void ls_pool_push(struct ls_pool *p, struct ls_task *t)
{
	pthread_mutex_lock(&p->lock);
	t->state = TASK_QUEUED;
	t->prev = NULL;
	t->next = p->stack;
	if (p->stack)
		p->stack->prev = t;
	p->stack = t;
	if (p->n_threads)
		pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
}

void ls_pool_wait(struct ls_pool *p, struct ls_task *t, void *ctx)
{
	pthread_mutex_lock(&p->lock);
	while (t->state != TASK_DONE) {
		struct ls_task *run = NULL;
		if (t->state == TASK_QUEUED) {
			claim_locked(p, t);
			run = t;
		} else {
			/* A worker has t: help with what is queued instead of idling. */
			run = pop_locked(p);
		}
		if (!run) {
			pthread_cond_wait(&p->done, &p->lock);
			continue;
		}
		pthread_mutex_unlock(&p->lock);
		run_task(p, run, ctx);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
}

void ls_fd_table_reserve(int fds)
{
	if (fds < 2)
		return;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (rlim_t)fds > rl.rlim_cur)
		fds = (int)rl.rlim_cur;
	/* Any descriptor will do: a duplicate at fds - 1 makes the table hold it. */
	int fd = open("/", O_PATH | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fd < fds - 1) {
		int top = fcntl(fd, F_DUPFD_CLOEXEC, fds - 1);
		if (top >= 0)
			close(top);
	}
	close(fd);
}

void ls_pool_destroy(struct ls_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	p->stack = NULL;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->n_threads; i++) {
		pthread_join(p->threads[i], NULL);
		p->fini(p->ctxs + (size_t)i * p->ctx_size);
	}
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	free(p->threads);
	free(p->ctxs);
	free(p);
}

/* ---- plain helpers ------------------------------------------------------- */

/* A regular file's name may hold a FIFO or a device by the time it is
 * opened: O_NONBLOCK keeps the open from waiting for a writer (and does
 * nothing to a regular file's reads), O_NOCTTY a tty from becoming ours. */
#define CONTENT_FLAGS (O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)

int ls_open_noatime(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, CONTENT_FLAGS | O_NOATIME);
	if (fd < 0 && errno == EPERM)
		fd = openat(dirfd, name, CONTENT_FLAGS);
	return fd < 0 ? -errno : fd;
}

static void hash_out(XXH3_state_t *st, uint8_t out[16])
{
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
	memcpy(out, c.digest, 16);
}

int ls_hash_fd(int fd, void *buf, size_t buf_len, XXH3_state_t *st, uint8_t out[16])
{
	return ls_hash_fd_cached(fd, buf, buf_len, st, out, false, UINT64_MAX, NULL);
}

int ls_hash_fd_cached(int fd, void *buf, size_t buf_len, XXH3_state_t *st, uint8_t out[16], bool cached_only,
		      uint64_t size, bool *refused)
{
	XXH3_128bits_reset(st);
	uint64_t total = 0;
	if (cached_only) {
		/* RWF_NOWAIT: the bytes the page cache holds, or EAGAIN. */
		struct iovec iov = { buf, buf_len };
		ssize_t n;
		do
			n = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
		while (n < 0 && errno == EINTR);
		if (n < 0 && errno != EOPNOTSUPP && errno != EINVAL)
			return -errno;  /* EAGAIN: not in the page cache */
		if (n < 0 && refused)
			*refused = true;
		if (n == 0)
			goto done;
		if (n > 0) {
			XXH3_128bits_update(st, buf, (size_t)n);
			total = (uint64_t)n;
			if ((size_t)n < buf_len && total >= size)
				goto done;
		}
	}
	for (;;) {
		ssize_t n = read(fd, buf, buf_len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		XXH3_128bits_update(st, buf, (size_t)n);
		total += (uint64_t)n;
		if ((size_t)n < buf_len && total >= size)
			break;
	}
done:
	hash_out(st, out);
	return 0;
}

/* ---- io_uring ----------------------------------------------------------- */

#define HASH_SLOTS LS_RING_FDS
#define HASH_CHUNK (128 * 1024)

struct hash_slot {
	size_t req;          /* index into reqs, or SIZE_MAX when free */
	int fd;
	uint64_t off;
	bool retried;        /* O_NOATIME refused, reopened without */
	XXH3_state_t *st;
	char *buf;
};

struct ls_ring {
	struct io_uring ring;
	unsigned int depth;
	size_t hash_inflight;    /* hash operations submitted or queued, not reaped */
	struct hash_slot slots[HASH_SLOTS];
};

int ls_ring_create(struct ls_ring **out, unsigned int depth)
{
	*out = NULL;
	struct ls_ring *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	int rc = io_uring_queue_init(depth, &r->ring, 0);
	if (rc < 0) {
		free(r);
		return rc;
	}
	r->depth = depth;
	for (int i = 0; i < HASH_SLOTS; i++)
		r->slots[i].fd = -1;
	*out = r;
	return 0;
}

void ls_ring_destroy(struct ls_ring *r)
{
	if (!r)
		return;
	io_uring_queue_exit(&r->ring);
	for (int i = 0; i < HASH_SLOTS; i++) {
		if (r->slots[i].st)
			XXH3_freeState(r->slots[i].st);
		free(r->slots[i].buf);
	}
	free(r);
}

static struct io_uring_sqe *get_sqe(struct ls_ring *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
	if (!sqe) {
		io_uring_submit(&r->ring);
		sqe = io_uring_get_sqe(&r->ring);
	}
	return sqe;
}

/* Reaps n completions whose results no longer matter, after submitting
 * whatever is still queued: the kernel may write into a buffer or hand out
 * an fd until its operation completes, so nothing is freed or closed before
 * that.  Returns 0, or the ring's error when it cannot even wait (the ring
 * is then unusable; the caller stops using it). */
static int drain(struct ls_ring *r, size_t n, void (*on_done)(struct ls_ring *, uint64_t, int))
{
	int rc = 0;
	while (n > 0) {
		struct io_uring_cqe *cqe;
		do
			rc = io_uring_submit_and_wait(&r->ring, 1);
		while (rc == -EINTR);
		if (rc < 0 && rc != -EBUSY && rc != -EAGAIN)
			return rc;
		do
			rc = io_uring_wait_cqe(&r->ring, &cqe);
		while (rc == -EINTR);
		if (rc < 0)
			return rc;
		if (on_done)
			on_done(r, io_uring_cqe_get_data64(cqe), cqe->res);
		io_uring_cqe_seen(&r->ring, cqe);
		n--;
	}
	return 0;
}

/* Submits what is queued and reaps one completion. */
static int next_cqe(struct ls_ring *r, uint64_t *data, int *res)
{
	struct io_uring_cqe *cqe;
	int rc;
	do
		rc = io_uring_submit_and_wait(&r->ring, 1);
	while (rc == -EINTR);
	if (rc < 0)
		return rc;
	do
		rc = io_uring_wait_cqe(&r->ring, &cqe);
	while (rc == -EINTR);
	if (rc < 0)
		return rc;
	*data = io_uring_cqe_get_data64(cqe);
	*res = cqe->res;
	io_uring_cqe_seen(&r->ring, cqe);
	return 0;
}

int ls_ring_statx(struct ls_ring *r, int dirfd, const char *const *names, struct statx *stx,
		  int *res, size_t n)
{
	size_t done = 0;
	while (done < n) {
		size_t batch = n - done, queued = 0;
		if (batch > r->depth)
			batch = r->depth;
		int rc = 0;
		for (; queued < batch; queued++) {
			struct io_uring_sqe *sqe = get_sqe(r);
			if (!sqe) {
				rc = -EBUSY;
				break;
			}
			size_t k = done + queued;
			io_uring_prep_statx(sqe, dirfd, names[k], AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT,
					    STATX_BASIC_STATS, &stx[k]);
			io_uring_sqe_set_data64(sqe, k);
		}
		size_t reaped = 0;
		for (; rc == 0 && reaped < queued; reaped++) {
			uint64_t k;
			int v;
			rc = next_cqe(r, &k, &v);
			if (rc == 0 && k < n)
				res[k] = v < 0 ? v : 0;
		}
		if (rc) {
			/* stx belongs to the caller, who frees it on our error. */
			drain(r, queued - reaped, NULL);
			return rc;
		}
		done += batch;
	}
	return 0;
}

static int single_op(struct ls_ring *r, struct io_uring_sqe *sqe)
{
	io_uring_sqe_set_data64(sqe, 0);
	uint64_t data;
	int res;
	int rc = next_cqe(r, &data, &res);
	return rc ? rc : res;
}

int ls_ring_open_beneath(struct ls_ring *r, int dirfd, const char *path, int flags)
{
	/* What one lookup cannot take, ls_open_beneath opens a piece at a time. */
	if (strlen(path) >= PATH_MAX)
		return ls_open_beneath(dirfd, path, flags);
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	for (int tries = 0;; tries++) {
		struct io_uring_sqe *sqe = get_sqe(r);
		if (!sqe)
			return -EBUSY;
		io_uring_prep_openat2(sqe, dirfd, *path ? path : ".", &how);
		int fd = single_op(r, sqe);
		if ((fd == -EAGAIN || fd == -EINTR) && tries < 64)
			continue;   /* a concurrent rename: RESOLVE_BENEATH asks to retry */
		if (fd == -EINVAL || fd == -EOPNOTSUPP)
			return ls_open_beneath(dirfd, path, flags);  /* a ring without OPENAT2 */
		return fd;
	}
}

int ls_ring_close(struct ls_ring *r, int fd)
{
	struct io_uring_sqe *sqe = get_sqe(r);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_close(sqe, fd);
	return single_op(r, sqe);
}

/* user_data layout for the hash pipeline: slot index in the low bits, the
 * operation above them. */
enum { H_OPEN = 1, H_READ, H_CLOSE };
#define H_DATA(op, slot) (((uint64_t)(op) << 8) | (uint64_t)(slot))

static int hash_submit_open(struct ls_ring *r, int dirfd, struct ls_hash_req *reqs, int s)
{
	struct hash_slot *h = &r->slots[s];
	struct io_uring_sqe *sqe = get_sqe(r);
	if (!sqe)
		return -EBUSY;
	int flags = CONTENT_FLAGS | (h->retried ? 0 : O_NOATIME);
	io_uring_prep_openat(sqe, dirfd, reqs[h->req].name, flags, 0);
	io_uring_sqe_set_data64(sqe, H_DATA(H_OPEN, s));
	r->hash_inflight++;
	return 0;
}

static int hash_submit_read(struct ls_ring *r, int s)
{
	struct hash_slot *h = &r->slots[s];
	struct io_uring_sqe *sqe = get_sqe(r);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_read(sqe, h->fd, h->buf, HASH_CHUNK, h->off);
	io_uring_sqe_set_data64(sqe, H_DATA(H_READ, s));
	r->hash_inflight++;
	return 0;
}

static int hash_submit_close(struct ls_ring *r, int s)
{
	struct hash_slot *h = &r->slots[s];
	struct io_uring_sqe *sqe = get_sqe(r);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_close(sqe, h->fd);
	io_uring_sqe_set_data64(sqe, H_DATA(H_CLOSE, s));
	r->hash_inflight++;
	return 0;
}

/* A completion reaped while draining after a failure: an open that
 * succeeded leaves an fd to close; a close that completed leaves none. */
static void hash_drained(struct ls_ring *r, uint64_t data, int res)
{
	struct hash_slot *h = &r->slots[data & 0xff];
	if ((data >> 8) == H_OPEN && res >= 0)
		h->fd = res;
	else if ((data >> 8) == H_CLOSE)
		h->fd = -1;
}

int ls_ring_hash(struct ls_ring *r, int dirfd, struct ls_hash_req *reqs, size_t n)
{
	size_t next = 0, active = 0;
	int rc = 0;
	r->hash_inflight = 0;
	for (int s = 0; s < HASH_SLOTS; s++) {
		struct hash_slot *h = &r->slots[s];
		h->req = SIZE_MAX;
		if (!h->st)
			h->st = XXH3_createState();
		if (!h->buf)
			h->buf = malloc(HASH_CHUNK);
		if (!h->st || !h->buf)
			return -ENOMEM;
	}
	while (rc == 0 && (next < n || active > 0)) {
		for (int s = 0; s < HASH_SLOTS && next < n; s++) {
			struct hash_slot *h = &r->slots[s];
			if (h->req != SIZE_MAX)
				continue;
			h->req = next++;
			h->fd = -1;
			h->off = 0;
			h->retried = false;
			XXH3_128bits_reset(h->st);
			reqs[h->req].result = 0;
			rc = hash_submit_open(r, dirfd, reqs, s);
			if (rc)
				break;
			active++;
		}
		if (rc)
			break;
		uint64_t data;
		int res;
		rc = next_cqe(r, &data, &res);
		if (rc)
			break;
		r->hash_inflight--;
		int s = (int)(data & 0xff);
		struct hash_slot *h = &r->slots[s];
		struct ls_hash_req *q = &reqs[h->req];
		switch (data >> 8) {
		case H_OPEN:
			if (res == -EPERM && !h->retried) {
				h->retried = true;
				rc = hash_submit_open(r, dirfd, reqs, s);
			} else if (res < 0) {
				q->result = res;
				h->req = SIZE_MAX;
				active--;
			} else {
				h->fd = res;
				rc = hash_submit_read(r, s);
			}
			break;
		case H_READ:
			if (res > 0) {
				XXH3_128bits_update(h->st, h->buf, (size_t)res);
				h->off += (uint64_t)res;
				rc = hash_submit_read(r, s);
			} else {
				if (res < 0 && res != -EINTR)
					q->result = res;
				if (res == -EINTR)
					rc = hash_submit_read(r, s);
				else
					rc = hash_submit_close(r, s);
			}
			break;
		case H_CLOSE:
			if (q->result == 0)
				hash_out(h->st, q->hash);
			h->fd = -1;
			h->req = SIZE_MAX;
			active--;
			break;
		}
	}
	if (rc) {
		/* The ring itself failed.  Every active slot has one operation in
		 * flight (or queued): wait for them all, so that no read lands in
		 * a buffer and no open hands out an fd after we return, then close
		 * what is open. */
		drain(r, r->hash_inflight, hash_drained);
		r->hash_inflight = 0;
		for (int s = 0; s < HASH_SLOTS; s++) {
			if (r->slots[s].fd >= 0)
				close(r->slots[s].fd);
			r->slots[s].fd = -1;
			r->slots[s].req = SIZE_MAX;
		}
	}
	return rc;
}
