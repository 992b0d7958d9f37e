/*
 * The walker's operation queue, with two engines (DESIGN.md "The walker"):
 *
 *  - a task pool: plain syscalls on a few worker threads plus the thread that
 *    waits, taking tasks from a LIFO stack so that they run in depth-first
 *    order, just ahead of the consumer;
 *  - an io_uring ring: batches of statx, opens, reads and closes submitted
 *    together, used by one thread at a time.
 */
#ifndef LS_IOQ_H
#define LS_IOQ_H

#include "layersnap.h"

#include <pthread.h>
#include <sys/stat.h>
#include "xxh.h"

/* ---- task pool ---------------------------------------------------------- */

struct ls_pool;
struct ls_task;

/** Runs a task; `thread_ctx` is the per-thread context of the running thread. */
typedef void ls_task_fn(struct ls_task *task, void *thread_ctx);

/** Embedded in the caller's job struct. */
struct ls_task {
	ls_task_fn *fn;
	int state;               /* private to the pool */
	struct ls_task *next;    /* private to the pool: the queue is a */
	struct ls_task *prev;    /* doubly linked stack, so waiters can claim a task */
};

/** Per-thread context constructor/destructor; init returns 0 or -errno. */
typedef int ls_ctx_init_fn(void *ctx, void *arg);
typedef void ls_ctx_fini_fn(void *ctx);

/** Starts `workers` threads (0 is allowed: tasks then run in ls_pool_wait),
 *  each with a context of ctx_size bytes built by init(ctx, arg).  Returns 0
 *  or a negative code. */
int ls_pool_create(struct ls_pool **out, int workers, size_t ctx_size, ls_ctx_init_fn *init,
		   ls_ctx_fini_fn *fini, void *arg, struct ls_error *err);

/** Queues a task; the most recently queued runs first. */
void ls_pool_push(struct ls_pool *p, struct ls_task *t);

/** Returns once `t` has run.  Runs it on the calling thread (with ctx) if no
 *  worker took it yet, and runs other queued tasks while a worker has it. */
void ls_pool_wait(struct ls_pool *p, struct ls_task *t, void *ctx);

/** Stops and joins the workers; queued tasks that never ran are dropped.
 *  NULL is allowed. */
void ls_pool_destroy(struct ls_pool *p);

/** Grows the process's descriptor table to hold at least `fds` descriptors
 *  (at most the soft RLIMIT_NOFILE), before threads that will open many of
 *  them start.  Linux grows a table that several threads share only after an
 *  RCU grace period (expand_fdtable), and every thread that opens a file
 *  meanwhile waits too: 6-13 ms here on 2 vCPUs, each time the table doubles
 *  (past 64, 128, 256 descriptors; the npm tree's redo scan spent 12% of its
 *  time so).  A table grown while the process has one thread needs no grace
 *  period, and tables never shrink.  Leaves no descriptor open; best effort:
 *  a failure changes nothing. */
void ls_fd_table_reserve(int fds);

/* ---- io_uring ----------------------------------------------------------- */

struct ls_ring;

/** Files a ring holds open at once while hashing (for fd budgets). */
#define LS_RING_FDS 16

/** Sets up a ring of `depth` entries.  Returns 0, or the negative errno of
 *  the failed set-up (EPERM under seccomp, ENOSYS, ENOMEM, EINVAL), which the
 *  caller may treat as "use the plain engine". */
int ls_ring_create(struct ls_ring **out, unsigned int depth);
void ls_ring_destroy(struct ls_ring *r);

/** statx(dirfd, names[i], AT_SYMLINK_NOFOLLOW) for n names, in batches;
 *  res[i] is 0 or -errno.  Returns 0 or a negative code of the ring itself. */
int ls_ring_statx(struct ls_ring *r, int dirfd, const char *const *names, struct statx *stx,
		  int *res, size_t n);

/** ls_open_beneath (path.h) through the ring: openat2 with RESOLVE_BENEATH |
 *  RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, retried on EAGAIN; a path
 *  longer than one lookup takes is opened with plain syscalls.  Returns an fd
 *  or -errno. */
int ls_ring_open_beneath(struct ls_ring *r, int dirfd, const char *path, int flags);

/** close through the ring; returns 0 or -errno. */
int ls_ring_close(struct ls_ring *r, int fd);

/** One file to hash. */
struct ls_hash_req {
	const char *name;        /* relative to dirfd */
	uint8_t hash[16];        /* XXH3-128, big-endian canonical form */
	int result;              /* 0 or -errno */
};

/** Hashes n files relative to dirfd: opens (O_NOATIME where allowed), reads
 *  and closes them through the ring with several files in flight.  Returns 0
 *  (per-file errors in result) or a negative code of the ring itself. */
int ls_ring_hash(struct ls_ring *r, int dirfd, struct ls_hash_req *reqs, size_t n);

/* ---- plain helpers shared by both engines -------------------------------- */

/** Opens name (one component) under dirfd for reading a regular file's
 *  contents: O_NOFOLLOW, O_NONBLOCK (a FIFO that took the name does not block
 *  the open), O_NOCTTY and O_NOATIME, without O_NOATIME where the kernel
 *  refuses it (EPERM: not the owner).  The caller checks what it opened.
 *  Returns fd or -errno. */
int ls_open_noatime(int dirfd, const char *name);

/** Hashes everything readable from fd with XXH3-128 into out (canonical
 *  big-endian bytes), using buf.  Returns 0 or -errno. */
int ls_hash_fd(int fd, void *buf, size_t buf_len, XXH3_state_t *st, uint8_t out[16]);

/** Like ls_hash_fd; with cached_only, the first read is a preadv2 with
 *  RWF_NOWAIT and -EAGAIN is returned (nothing else read) when the file's
 *  first bytes are not in the page cache: the caller then reads it through
 *  io_uring, whose async buffered reads serve a cold file better.  A file
 *  system without RWF_NOWAIT (overlayfs) is read as if cached, and *refused
 *  (when not NULL) set to true: the caller may leave the probe out for the
 *  rest of that file system.  size: the file's size as
 *  the caller's stat saw it (UINT64_MAX: unknown); a read that comes back
 *  short once that much is hashed is taken as the end of the file, which
 *  saves the read that returns 0.  Bytes a writer appends after the stat are
 *  then not hashed: they are not part of the recorded size either, and the
 *  append moved mtime, so the next scan reads the file again. */
int ls_hash_fd_cached(int fd, void *buf, size_t buf_len, XXH3_state_t *st, uint8_t out[16], bool cached_only,
		      uint64_t size, bool *refused);

#endif
