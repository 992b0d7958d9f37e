/*
 * Deterministic OCI layer writer (DESIGN.md "The layer").
 *
 * Data flow:  ustar_header for the entries that need no pax extension,
 *             libarchive (pax_restricted, unbuffered) for the others
 *               -> tar_put: byte count, fixed-size CHUNKs of tar handed
 *                  over in a ring of slots (so that reading files and
 *                  building the tar overlap the rest)
 *               -> gzip only: worker threads compress each chunk into one
 *                  complete gzip member (libdeflate), any order
 *               -> stream thread, in chunk order: sha256 (diff_id)
 *               -> output thread, in chunk order: none: the chunk; zstd:
 *                  libzstd with its own workers; gzip: the member
 *                  -> sha256 (digest), byte count, write(2)
 *               (with a write callback, or without an output thread, the
 *               stream side does both, on one thread)
 *
 * The bytes do not depend on the number of threads: chunk boundaries depend
 * only on the tar, each gzip member depends only on its chunk, members are
 * written in order, and libzstd always runs with workers (>= 1) and a fixed
 * job size, which makes its frames independent of the worker count.
 */
#include "layer.h"

#include <sys/types.h> /* output.h uses dev_t and ino_t */

#include "error.h"
#include "output.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <libdeflate.h>
#include <locale.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <zstd.h>

/*
 * Tar bytes per hand-over, and per gzip member.  Measured with libdeflate 6
 * on the 377 MB tar of bench/gen-tree's 100k-entry tree: 256 KiB members
 * come out 0.7% larger than 4 MiB ones, 1 MiB only 0.1% larger, and 1 MiB
 * compresses as fast as any size (2 MiB and up are slower, out of cache).
 * Memory: two such buffers (tar, member) per slot.
 */
#define CHUNK       (1024u * 1024u)
/*
 * libzstd job size: with workers, a frame is cut into jobs of this many
 * bytes whatever the worker count.  Set explicitly, since the library's
 * default depends on the level.  Same tar at level 3: 1 MiB jobs 19%
 * larger than 8 MiB ones, 2 MiB 8%, 4 MiB 3%, at the same speed; 8 MiB is
 * libzstd's own choice at the default level 3 (4x its 2 MiB window).  It
 * costs about 13 MB of buffers per worker (measured at level 3).
 */
#define ZSTD_JOB    (8u * 1024u * 1024u)
#define OUT_CAP     (256u * 1024u)   /* zstd: blob bytes per write(2) */
#define CONTENT_CAP (1024u * 1024u)  /* file bytes per read(2) */
#define MAX_THREADS 32               /* beyond this, only memory grows */
#define GZIP_LEVEL  6                /* the defaults for level 0 */
#define ZSTD_LEVEL  3
/* libdeflate goes to 12, but 1-9 is gzip(1)'s range and what is promised. */
#define GZIP_MAX_LEVEL 9
#define GZIP_HEADER  10
#define GZIP_TRAILER 8               /* CRC32, ISIZE */

#define MEDIA_TAR  "application/vnd.oci.image.layer.v1.tar"

/* One chunk of tar in flight. */
struct slot {
	unsigned char *in;              /* CHUNK bytes */
	unsigned char *out;             /* gzip: the member made from in */
	size_t in_len, out_len;
	bool done;                      /* gzip: out is complete */
};

/*
 * The ring: chunk number k lives in slot k % nslots.  The writing thread
 * fills chunk `submitted`; gzip workers take chunks in order from `taken`;
 * the stream thread consumes them in order from `consumed` (hashes them);
 * with an output thread, that one writes them in order from `written`.  A
 * slot is free again once consumed, or written when there is an output
 * thread.  The counters only grow and change under lock.
 */
struct pipe {
	pthread_mutex_t lock;
	pthread_cond_t wake_stream, wake_worker, wake_writer, wake_output;
	bool sync_ready;
	struct slot *slots;
	unsigned int nslots;
	uint64_t submitted, taken, consumed, written;
	bool stop;
	pthread_t stream, output;
	bool stream_running, output_running;
	/* An output thread compresses (zstd) and writes: set when it starts,
	 * before any chunk is handed over.  Only for a blob written to an fd
	 * (a write callback runs on the caller's thread). */
	bool split;
};

/* A gzip worker and its compressor (not shareable between threads). */
struct worker {
	struct ls_layer *l;
	struct libdeflate_compressor *c;
	pthread_t thread;
	bool running;
};

struct ls_layer {
	struct archive *a;
	struct archive_entry *entry;    /* reused for every header */
	locale_t c_locale;              /* names are encoded under "C" (see open) */
	int fd;                         /* the sink, unless write is set */
	ls_write_fn *write;             /* the caller's sink: called on its thread */
	void *write_ctx;
	enum ls_compress compress;
	bool have_epoch;
	int64_t epoch;

	EVP_MD_CTX *sha_tar;            /* uncompressed stream: diff_id */
	EVP_MD_CTX *sha_blob;           /* compressed stream: digest */
	ZSTD_CCtx *zc;
	struct worker *workers;         /* gzip */
	unsigned int nworkers;

	unsigned char *out;             /* zstd output */
	size_t out_len;
	unsigned char *content;         /* allocated on the first regular file */
	char *path;                     /* scratch for built entry names */
	size_t path_cap;

	uint64_t entries, bytes, size;

	bool finished;
	bool failed;                    /* stream may be inconsistent: refuse more */
	atomic_bool discard;            /* being freed: drop everything */
	atomic_bool sink_claimed;       /* sink_err is being filled */
	atomic_bool sink_failed;        /* sink_err is filled */
	struct ls_error sink_err;       /* first failure of the stream side */
	struct pipe pipe;
};

/* ---- blob side: hash, count, write --------------------------------------- */

/* Records the first failure of the sink; libarchive only sees "-1". */
static int sink_fail(struct ls_layer *l, int code, const char *what, const char *why)
{
	/* The stream and output threads may both fail: the first one tells. */
	bool first = false;
	if (atomic_compare_exchange_strong(&l->sink_claimed, &first, true)) {
		ls_fail(&l->sink_err, code, "layer: %s: %s", what, why);
		atomic_store(&l->sink_failed, true);
	}
	return -code;
}

/* The digest side of a piece of the blob. */
static int hash_blob(struct ls_layer *l, const void *buf, size_t len)
{
	/* Uncompressed, the blob is the tar: its digest is the diff_id. */
	if (l->compress != LS_COMPRESS_NONE && len > 0 && EVP_DigestUpdate(l->sha_blob, buf, len) != 1)
		return sink_fail(l, EIO, "sha256", "update failed");
	return 0;
}

/* The write side of a piece of the blob, in blob order. */
static int write_blob(struct ls_layer *l, const void *buf, size_t len)
{
	if (len == 0)
		return 0;
	int r = l->write ? l->write(l->write_ctx, buf, len) : ls_write_all(l->fd, buf, len);
	if (r > 0)
		r = -EIO;
	if (r < 0)
		return sink_fail(l, -r, "write", strerror(-r));
	l->size += len;
	return 0;
}

static int emit(struct ls_layer *l, const void *buf, size_t len)
{
	int r = hash_blob(l, buf, len);
	return r < 0 ? r : write_blob(l, buf, len);
}

static int flush_out(struct ls_layer *l)
{
	int r = emit(l, l->out, l->out_len);
	l->out_len = 0;
	return r;
}

static int zstd_block(struct ls_layer *l, const unsigned char *p, size_t n, bool end)
{
	ZSTD_inBuffer in = { p, n, 0 };
	for (;;) {
		if (l->out_len == OUT_CAP) {
			int r = flush_out(l);
			if (r < 0)
				return r;
		}
		ZSTD_outBuffer o = { l->out, OUT_CAP, l->out_len };
		size_t rem = ZSTD_compressStream2(l->zc, &o, &in, end ? ZSTD_e_end : ZSTD_e_continue);
		l->out_len = o.pos;
		if (ZSTD_isError(rem))
			return sink_fail(l, EIO, "zstd", ZSTD_getErrorName(rem));
		if (end ? rem == 0 : in.pos == in.size)
			return 0;
	}
}

static void put_le32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

/* One complete gzip member (RFC 1952) of in; 0 if it did not fit. */
static size_t gzip_member(struct libdeflate_compressor *c, const unsigned char *in, size_t n,
			  unsigned char *out, size_t cap)
{
	/* No flags, no name, MTIME 0, XFL 0, OS 3 (Unix, as gzip -n writes):
	 * the header is the same for every member of every layer. */
	static const unsigned char header[GZIP_HEADER] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3 };
	memcpy(out, header, GZIP_HEADER);
	size_t z = libdeflate_deflate_compress(c, in, n, out + GZIP_HEADER,
					       cap - GZIP_HEADER - GZIP_TRAILER);
	if (z == 0)
		return 0;
	put_le32(out + GZIP_HEADER + z, libdeflate_crc32(0, in, n));
	put_le32(out + GZIP_HEADER + z + 4, (uint32_t)n);
	return GZIP_HEADER + z + GZIP_TRAILER;
}

static size_t gzip_member_cap(void)
{
	return GZIP_HEADER + libdeflate_deflate_compress_bound(NULL, CHUNK) + GZIP_TRAILER;
}

/* ---- the threads ----------------------------------------------------------- */

/* The stream side of one chunk, in order: diff_id, then the blob. */
static void stream_chunk(struct ls_layer *l, const struct slot *s)
{
	if (atomic_load(&l->sink_failed))
		return;
	if (EVP_DigestUpdate(l->sha_tar, s->in, s->in_len) != 1) {
		sink_fail(l, EIO, "sha256", "update failed");
		return;
	}
	bool split = l->pipe.split;
	switch (l->compress) {
	case LS_COMPRESS_NONE:
		if (!split)
			write_blob(l, s->in, s->in_len);
		break;
	case LS_COMPRESS_GZIP:
		if (s->out_len == 0)
			sink_fail(l, EIO, "gzip", "compression failed");
		else if (split)
			hash_blob(l, s->out, s->out_len);
		else
			emit(l, s->out, s->out_len);
		break;
	case LS_COMPRESS_ZSTD:
		if (!split)
			zstd_block(l, s->in, s->in_len, false);
		break;
	}
}

/* The stream side of the next chunk, s, called and returning with the lock
 * held (released meanwhile); the slot is free again afterwards. */
static void consume_slot(struct ls_layer *l, struct slot *s)
{
	struct pipe *p = &l->pipe;
	pthread_mutex_unlock(&p->lock);
	if (!atomic_load(&l->discard))
		stream_chunk(l, s);
	pthread_mutex_lock(&p->lock);
	s->done = false;
	p->consumed++;
}

static void *stream_main(void *arg)
{
	struct ls_layer *l = arg;
	struct pipe *p = &l->pipe;
	bool gzip = l->compress == LS_COMPRESS_GZIP;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct slot *s = &p->slots[p->consumed % p->nslots];
		if (p->consumed == p->submitted) {
			if (p->stop)
				break;
			pthread_cond_wait(&p->wake_stream, &p->lock);
			continue;
		}
		if (gzip && !s->done) {
			pthread_cond_wait(&p->wake_stream, &p->lock);
			continue;
		}
		consume_slot(l, s);
		/* Signalled unlocked: a thread woken with the lock held would
		 * only run to block on it (a context switch each way, a chunk
		 * at a time). */
		pthread_mutex_unlock(&p->lock);
		pthread_cond_signal(p->split ? &p->wake_output : &p->wake_writer);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* The output thread: writes the consumed chunks in order (zstd: feeds them
 * to libzstd, which writes), so that the stream thread's hashing overlaps
 * the copy into the page cache (on a warm tree the two are most of a plain
 * layer's time, each about as long) and, with zstd, the hand-over of input
 * to libzstd's workers, which then wait less for their next job. */
static void *output_main(void *arg)
{
	struct ls_layer *l = arg;
	struct pipe *p = &l->pipe;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		if (p->written == p->consumed) {
			if (p->stop && !p->stream_running)
				break;
			pthread_cond_wait(&p->wake_output, &p->lock);
			continue;
		}
		struct slot *s = &p->slots[p->written % p->nslots];
		pthread_mutex_unlock(&p->lock);
		if (!atomic_load(&l->discard) && !atomic_load(&l->sink_failed)) {
			if (l->compress == LS_COMPRESS_GZIP)
				write_blob(l, s->out, s->out_len);
			else if (l->compress == LS_COMPRESS_ZSTD)
				zstd_block(l, s->in, s->in_len, false);
			else
				write_blob(l, s->in, s->in_len);
		}
		pthread_mutex_lock(&p->lock);
		p->written++;
		pthread_mutex_unlock(&p->lock);
		pthread_cond_signal(&p->wake_writer);  /* unlocked: see stream_main */
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Chunks handed over and not yet free again. */
static uint64_t in_flight(const struct pipe *p)
{
	return p->submitted - (p->split ? p->written : p->consumed);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct ls_layer *l = w->l;
	struct pipe *p = &l->pipe;
	size_t cap = gzip_member_cap();
	pthread_mutex_lock(&p->lock);
	for (;;) {
		if (p->taken == p->submitted) {
			if (p->stop)
				break;
			pthread_cond_wait(&p->wake_worker, &p->lock);
			continue;
		}
		struct slot *s = &p->slots[p->taken++ % p->nslots];
		pthread_mutex_unlock(&p->lock);
		/* After a failure nobody reads the member: skip the work. */
		s->out_len = 0;
		if (!atomic_load(&l->discard) && !atomic_load(&l->sink_failed))
			s->out_len = gzip_member(w->c, s->in, s->in_len, s->out, cap);
		pthread_mutex_lock(&p->lock);
		s->done = true;
		pthread_mutex_unlock(&p->lock);
		/* The stream thread may wait for this very chunk (unlocked: see
		 * stream_main). */
		pthread_cond_signal(&p->wake_stream);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* With a write callback there is no stream thread: the calling thread does
 * the stream side itself, here, so that the callback runs on it.  Consumes
 * the chunks that are ready, in order; waits for a gzip worker only while
 * the ring is full, or for every submitted chunk when `all`. */
static void stream_drain(struct ls_layer *l, bool all)
{
	struct pipe *p = &l->pipe;
	pthread_mutex_lock(&p->lock);
	while (p->consumed < p->submitted) {
		struct slot *s = &p->slots[p->consumed % p->nslots];
		if (l->compress == LS_COMPRESS_GZIP && !s->done) {
			if (!all && p->submitted - p->consumed < p->nslots)
				break;
			pthread_cond_wait(&p->wake_stream, &p->lock);
			continue;
		}
		consume_slot(l, s);
	}
	pthread_mutex_unlock(&p->lock);
}

/* Hands the chunk being filled over and waits until the next slot is free. */
static void pipe_submit(struct ls_layer *l)
{
	struct pipe *p = &l->pipe;
	pthread_mutex_lock(&p->lock);
	p->submitted++;
	pthread_mutex_unlock(&p->lock);
	/* Unlocked: see stream_main. */
	pthread_cond_signal(&p->wake_worker);
	pthread_cond_signal(&p->wake_stream);
	if (l->write) {
		stream_drain(l, false);
	} else {
		pthread_mutex_lock(&p->lock);
		while (in_flight(p) == p->nslots)
			pthread_cond_wait(&p->wake_writer, &p->lock);
		pthread_mutex_unlock(&p->lock);
	}
	p->slots[p->submitted % p->nslots].in_len = 0;
}

/* Hands over what is buffered, lets every thread drain the ring and joins
 * them; afterwards the calling thread owns every field again.  Idempotent. */
static void pipe_stop(struct ls_layer *l)
{
	struct pipe *p = &l->pipe;
	if (!p->sync_ready)
		return;
	bool live = p->stream_running || l->write;
	if (live && !atomic_load(&l->discard) && p->slots[p->submitted % p->nslots].in_len > 0)
		pipe_submit(l);
	if (l->write && !atomic_load(&l->discard))
		stream_drain(l, true);
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->wake_stream);
	pthread_cond_broadcast(&p->wake_worker);
	pthread_mutex_unlock(&p->lock);
	if (p->stream_running)
		pthread_join(p->stream, NULL);
	/* Every chunk is consumed: the output thread writes the last ones,
	 * then sees the stream thread gone. */
	pthread_mutex_lock(&p->lock);
	p->stream_running = false;
	pthread_cond_broadcast(&p->wake_output);
	pthread_mutex_unlock(&p->lock);
	if (p->output_running)
		pthread_join(p->output, NULL);
	p->output_running = false;
	for (unsigned int i = 0; i < l->nworkers; i++) {
		if (l->workers[i].running)
			pthread_join(l->workers[i].thread, NULL);
		l->workers[i].running = false;
	}
}

static void pipe_free(struct ls_layer *l)
{
	struct pipe *p = &l->pipe;
	if (p->sync_ready) {
		pthread_mutex_destroy(&p->lock);
		pthread_cond_destroy(&p->wake_stream);
		pthread_cond_destroy(&p->wake_worker);
		pthread_cond_destroy(&p->wake_writer);
		pthread_cond_destroy(&p->wake_output);
		p->sync_ready = false;
	}
	for (unsigned int i = 0; p->slots && i < p->nslots; i++) {
		free(p->slots[i].in);
		free(p->slots[i].out);
	}
	free(p->slots);
	p->slots = NULL;
	for (unsigned int i = 0; l->workers && i < l->nworkers; i++)
		libdeflate_free_compressor(l->workers[i].c);
	free(l->workers);
	l->workers = NULL;
}

/* Allocates the ring (and the gzip workers' compressors) and starts the
 * threads: the stream thread, and for gzip at least one worker. */
static int pipe_start(struct ls_layer *l, unsigned int threads, int level, struct ls_error *err)
{
	struct pipe *p = &l->pipe;
	bool gzip = l->compress == LS_COMPRESS_GZIP;
	/* gzip: per worker one chunk being compressed and one queued, plus the
	 * one being filled and the one being written.  Otherwise the ring only
	 * decouples the tar from the stream side. */
	p->nslots = gzip ? 2 * threads + 2 : 4;
	p->slots = calloc(p->nslots, sizeof(*p->slots));
	if (!p->slots)
		return ls_fail(err, ENOMEM, "layer: out of memory");
	for (unsigned int i = 0; i < p->nslots; i++) {
		p->slots[i].in = malloc(CHUNK);
		if (gzip)
			p->slots[i].out = malloc(gzip_member_cap());
		if (!p->slots[i].in || (gzip && !p->slots[i].out))
			return ls_fail(err, ENOMEM, "layer: out of memory");
	}
	if (gzip) {
		l->workers = calloc(threads, sizeof(*l->workers));
		if (!l->workers)
			return ls_fail(err, ENOMEM, "layer: out of memory");
		l->nworkers = threads;
		for (unsigned int i = 0; i < threads; i++) {
			l->workers[i].l = l;
			l->workers[i].c = libdeflate_alloc_compressor(level);
			if (!l->workers[i].c)
				return ls_fail(err, ENOMEM, "layer: gzip: out of memory");
		}
	}
	if (pthread_mutex_init(&p->lock, NULL) != 0)
		return ls_fail(err, ENOMEM, "layer: cannot create a mutex");
	pthread_cond_init(&p->wake_stream, NULL);
	pthread_cond_init(&p->wake_worker, NULL);
	pthread_cond_init(&p->wake_writer, NULL);
	pthread_cond_init(&p->wake_output, NULL);
	p->sync_ready = true;

	int rc;
	if (!l->write) {
		rc = pthread_create(&p->stream, NULL, stream_main, l);
		if (rc != 0)
			return ls_fail(err, rc, "layer: cannot start a thread: %s", strerror(rc));
		p->stream_running = true;
		/* Without the output thread the stream thread writes (and feeds
		 * libzstd): the same bytes in the same order, only later. */
		pthread_mutex_lock(&p->lock);
		p->split = pthread_create(&p->output, NULL, output_main, l) == 0;
		p->output_running = p->split;
		pthread_mutex_unlock(&p->lock);
	}
	for (unsigned int i = 0; i < l->nworkers; i++) {
		rc = pthread_create(&l->workers[i].thread, NULL, worker_main, &l->workers[i]);
		if (rc != 0) {
			/* Fewer workers give the same bytes, only later. */
			if (i > 0)
				break;
			return ls_fail(err, rc, "layer: cannot start a thread: %s", strerror(rc));
		}
		l->workers[i].running = true;
	}
	return 0;
}

/* Room in the ring for tar bytes: the slot being filled (never full: a full
 * one is handed over at once), or NULL when bytes are being dropped.  After
 * a failure of the stream side the bytes are dropped, not refused: a -1
 * would put libarchive in its FATAL state, and 3.6.2 leaks its client state
 * when freed in it; the next ls_layer_* call reports the failure
 * (check_usable).  tar_commit then takes the n bytes put there. */
static struct slot *tar_room(struct ls_layer *l)
{
	if (atomic_load(&l->discard) || atomic_load(&l->sink_failed))
		return NULL;
	return &l->pipe.slots[l->pipe.submitted % l->pipe.nslots];
}

/* Full CHUNKs only are handed over, whatever sizes arrive: the chunk
 * boundaries, and so the blob, depend on the tar alone. */
static void tar_commit(struct ls_layer *l, struct slot *s, size_t n)
{
	s->in_len += n;
	l->bytes += n;
	if (s->in_len == CHUNK)
		pipe_submit(l);
}

/* Appends tar bytes to the ring, from libarchive or from the ustar writer
 * below. */
static void tar_put(struct ls_layer *l, const void *buf, size_t len)
{
	const unsigned char *src = buf;
	struct slot *s;
	while (len > 0 && (s = tar_room(l))) {
		size_t c = CHUNK - s->in_len;
		if (c > len)
			c = len;
		memcpy(s->in + s->in_len, src, c);
		tar_commit(l, s, c);
		src += c;
		len -= c;
	}
}

static la_ssize_t sink_write(struct archive *a, void *client, const void *buf, size_t len)
{
	(void)a;
	tar_put(client, buf, len);
	return (la_ssize_t)len;
}

/* ---- ustar headers -------------------------------------------------------- */

/*
 * Most entries need no pax extended header, and for those libarchive's
 * restricted pax writer emits a bare ustar header.  This builds that header
 * itself and so skips libarchive's per-entry clone, name conversions and
 * allocations (perf of the npm tree's full layer: malloc, free and
 * libarchive's header code took ~0.15 s of CPU for 91k entries).  The
 * conditions are libarchive's own for needing no extension
 * (archive_write_pax_header in archive_write_set_format_pax.c, 3.6.2; the
 * layout is __archive_write_format_header_ustar's); any entry outside them
 * goes through libarchive.  test_ustar_like_libarchive writes
 * both sides of every edge through this writer and through libarchive and
 * compares the bytes.
 */
#define TAR_BLOCK     512u
#define USTAR_NAME    100u           /* name and linkname fields */
#define USTAR_PREFIX  155u
#define USTAR_ID_MAX  (1u << 18)     /* 6 octal digits: uid, gid, devices */
#define USTAR_SIZE_MAX (UINT64_C(1) << 33) /* 11 octal digits */
#define USTAR_MTIME_MAX 0x7fffffff   /* libarchive's cut-off, not the field's */

/* Field offsets in a ustar header. */
enum {
	UO_NAME = 0, UO_MODE = 100, UO_UID = 108, UO_GID = 116, UO_SIZE = 124, UO_MTIME = 136,
	UO_CHECKSUM = 148, UO_TYPE = 156, UO_LINK = 157, UO_MAGIC = 257, UO_DEVMAJOR = 329,
	UO_DEVMINOR = 337, UO_PREFIX = 345,
};

static const unsigned char zero_block[TAR_BLOCK];

static bool all_ascii(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] & 0x80)
			return false;
	return true;
}

/* Writes v as width octal digits; the caller checked that it fits. */
static void put_octal(unsigned char *p, size_t width, uint64_t v)
{
	while (width-- > 0) {
		p[width] = (unsigned char)('0' + (v & 7));
		v >>= 3;
	}
}

/* Where a name longer than the name field is split into prefix and name:
 * libarchive's choice, the first '/' that leaves at most 100 bytes after it
 * (not a leading one, not the last byte), with at most 155 before it.
 * NULL when there is none: the name needs a pax "path" record. */
static const char *ustar_split(const char *name, size_t len)
{
	const char *end = name + len;
	const char *p = memchr(end - USTAR_NAME - 1, '/', USTAR_NAME + 1);
	if (p == name)
		p = memchr(p + 1, '/', (size_t)(end - p - 1));
	if (!p || p + 1 == end || (size_t)(p - name) > USTAR_PREFIX)
		return NULL;
	return p;
}

/*
 * Fills h with the ustar header of an entry that needs no extension: name
 * (directories with their '/'), at most one of a hard-link name or a
 * symlink target, no xattrs, size the tar size, mtime already clamped.
 * Returns false, h undefined, when libarchive must write the entry.
 */
static bool ustar_header(unsigned char h[TAR_BLOCK], const char *name, size_t name_len,
			 const struct ls_layer_entry *e, int64_t mtime, uint64_t size)
{
	static const unsigned char template[TAR_BLOCK] = {
		[UO_MODE] = '0', '0', '0', '0', '0', '0', ' ', 0,
		[UO_UID] = '0', '0', '0', '0', '0', '0', ' ', 0,
		[UO_GID] = '0', '0', '0', '0', '0', '0', ' ', 0,
		[UO_SIZE] = '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', ' ',
		[UO_MTIME] = '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', ' ',
		[UO_CHECKSUM] = ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ',
		[UO_MAGIC] = 'u', 's', 't', 'a', 'r', 0, '0', '0',        /* and version */
		[UO_DEVMAJOR] = '0', '0', '0', '0', '0', '0', ' ', 0,
		[UO_DEVMINOR] = '0', '0', '0', '0', '0', '0', ' ', 0,
	};
	unsigned type = e->mode & S_IFMT;
	const char *link = e->hardlink ? e->hardlink : type == S_IFLNK ? e->link_target : NULL;
	size_t link_len = link ? strlen(link) : 0;
	/* libarchive is given no device numbers for a hard link. */
	bool dev = !e->hardlink && (type == S_IFCHR || type == S_IFBLK);
	if (e->n_xattrs > 0 || !all_ascii(name, name_len) || link_len > USTAR_NAME ||
	    !all_ascii(link, link_len) || size >= USTAR_SIZE_MAX || e->uid >= USTAR_ID_MAX ||
	    e->gid >= USTAR_ID_MAX || mtime < 0 || mtime >= USTAR_MTIME_MAX ||
	    (dev && (major(e->rdev) >= USTAR_ID_MAX || minor(e->rdev) >= USTAR_ID_MAX)))
		return false;
	const char *split = NULL;
	if (name_len > USTAR_NAME && !(split = ustar_split(name, name_len)))
		return false;

	memcpy(h, template, TAR_BLOCK);
	if (split) {
		memcpy(h + UO_PREFIX, name, (size_t)(split - name));
		memcpy(h + UO_NAME, split + 1, name_len - (size_t)(split - name) - 1);
	} else {
		memcpy(h + UO_NAME, name, name_len);
	}
	put_octal(h + UO_MODE, 6, e->mode & 07777);
	put_octal(h + UO_UID, 6, e->uid);
	put_octal(h + UO_GID, 6, e->gid);
	put_octal(h + UO_SIZE, 11, size);
	put_octal(h + UO_MTIME, 11, (uint64_t)mtime);
	if (link_len)
		memcpy(h + UO_LINK, link, link_len);
	if (dev) {
		put_octal(h + UO_DEVMAJOR, 6, major(e->rdev));
		put_octal(h + UO_DEVMINOR, 6, minor(e->rdev));
	}
	h[UO_TYPE] = e->hardlink ? '1'
		 : type == S_IFREG ? '0'
		 : type == S_IFLNK ? '2'
		 : type == S_IFCHR ? '3'
		 : type == S_IFBLK ? '4'
		 : type == S_IFDIR ? '5'
				   : '6';
	unsigned sum = 0;
	for (size_t i = 0; i < TAR_BLOCK; i++)
		sum += h[i];
	/* six digits, NUL, and the template's space */
	put_octal(h + UO_CHECKSUM, 6, sum);
	h[UO_CHECKSUM + 6] = 0;
	return true;
}

/* ---- helpers ------------------------------------------------------------- */

static int arch_fail(struct ls_layer *l, struct ls_error *err, const char *what)
{
	l->failed = true;
	if (atomic_load(&l->sink_failed)) {
		if (err)
			*err = l->sink_err;
		return -l->sink_err.code;
	}
	int code = archive_errno(l->a);
	const char *msg = archive_error_string(l->a);
	return ls_fail(err, code > 0 ? code : EIO, "layer: %s: %s", what,
		       msg ? msg : "libarchive error");
}

/* Builds a + b + c in the scratch path buffer. */
static const char *build_path(struct ls_layer *l, const char *a, size_t alen, const char *b,
			      const char *c)
{
	size_t blen = strlen(b), clen = strlen(c);
	size_t need = alen + blen + clen + 1;
	if (need > l->path_cap) {
		size_t cap = need < 256 ? 256 : need * 2;
		char *p = realloc(l->path, cap);
		if (!p)
			return NULL;
		l->path = p;
		l->path_cap = cap;
	}
	memcpy(l->path, a, alen);
	memcpy(l->path + alen, b, blen);
	memcpy(l->path + alen + blen, c, clen + 1);
	return l->path;
}

static void hex_digest(EVP_MD_CTX *ctx, char out[72], bool *ok)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (EVP_DigestFinal_ex(ctx, md, &n) != 1 || n != 32) {
		*ok = false;
		return;
	}
	static const char hex[] = "0123456789abcdef";
	memcpy(out, "sha256:", 7);
	for (unsigned int i = 0; i < n; i++) {
		out[7 + 2 * i] = hex[md[i] >> 4];
		out[8 + 2 * i] = hex[md[i] & 15];
	}
	out[7 + 2 * n] = '\0';
}

static int check_usable(struct ls_layer *l, struct ls_error *err)
{
	if (l->finished)
		return ls_fail(err, EINVAL, "layer: already finished");
	if (atomic_load(&l->sink_failed)) {
		l->failed = true;
		if (err)
			*err = l->sink_err;
		return -l->sink_err.code;
	}
	if (l->failed)
		return ls_fail(err, EIO, "layer: an earlier write failed");
	return 0;
}

/*
 * Headers are written with the calling thread switched to the "C" locale, so
 * the bytes never depend on the process locale.  libarchive converts names
 * from the current locale's charset to UTF-8 and, when that fails, writes
 * the entry with "hdrcharset=BINARY" and the raw bytes.  Under C.UTF-8 a
 * valid UTF-8 name would be stored as UTF-8 and an invalid one as BINARY;
 * under "C" every non-ASCII name (ASCII ones need no pax record) is stored
 * as BINARY raw bytes: identical in every locale, lossless, and read back
 * byte-for-byte by libarchive in any locale (a UTF-8 "path" record would be
 * NFC-normalised by libarchive's reader under a UTF-8 locale).  The pax
 * option hdrcharset=BINARY is no alternative: it adds an extended header to
 * every entry.  ARCHIVE_WARN here only reports that BINARY fallback.
 */
static int write_header(struct ls_layer *l, struct archive_entry *ae)
{
	locale_t old = uselocale(l->c_locale);
	int r = archive_write_header(l->a, ae);
	uselocale(old);
	return r == ARCHIVE_OK || r == ARCHIVE_WARN ? 0 : -1;
}

/*
 * Writes an entry's header, the ustar one when it will do and libarchive's
 * otherwise; *raw tells which, for put_data and end_entry.  name is the
 * tar name (directories with their '/'), mtime clamped, size the tar size.
 */
static int put_header(struct ls_layer *l, const char *name, const struct ls_layer_entry *e,
		      int64_t mtime, uint64_t size, bool *raw)
{
	unsigned char h[TAR_BLOCK];
	*raw = ustar_header(h, name, strlen(name), e, mtime, size);
	if (*raw) {
		tar_put(l, h, TAR_BLOCK);
		return 0;
	}
	/* Never atime, ctime, birthtime, uname or gname: unset fields are not
	 * written, which keeps the bytes free of host and time noise. */
	unsigned type = e->mode & S_IFMT;
	struct archive_entry *ae = l->entry;
	archive_entry_clear(ae);
	archive_entry_set_pathname(ae, name);
	archive_entry_set_mode(ae, e->mode);
	archive_entry_set_uid(ae, e->uid);
	archive_entry_set_gid(ae, e->gid);
	archive_entry_set_mtime(ae, mtime, 0);
	archive_entry_set_size(ae, (la_int64_t)size);
	if (e->hardlink)
		archive_entry_set_hardlink(ae, e->hardlink);
	else if (type == S_IFLNK)
		archive_entry_set_symlink(ae, e->link_target);
	else if (type == S_IFCHR || type == S_IFBLK) {
		archive_entry_set_rdevmajor(ae, major(e->rdev));
		archive_entry_set_rdevminor(ae, minor(e->rdev));
	}
	/* libarchive emits xattrs in the reverse of the order added. */
	for (size_t i = e->n_xattrs; i-- > 0;)
		archive_entry_xattr_add_entry(ae, e->xattrs[i].name, e->xattrs[i].value,
					      e->xattrs[i].value_len);
	return write_header(l, ae);
}

/* n bytes of the current entry's data. */
static int put_data(struct ls_layer *l, bool raw, const void *buf, size_t n)
{
	if (raw) {
		tar_put(l, buf, n);
		return 0;
	}
	return archive_write_data(l->a, buf, n) == (la_ssize_t)n ? 0 : -1;
}

/* Ends an entry of size data bytes: pads it to a whole block. */
static int end_entry(struct ls_layer *l, bool raw, uint64_t size)
{
	if (raw) {
		tar_put(l, zero_block, (size_t)(-size % TAR_BLOCK));
		return 0;
	}
	return archive_write_finish_entry(l->a) == ARCHIVE_OK ? 0 : -1;
}

/* An empty regular file, mode 0, owned by 0:0, mtime 0 (OCI whiteouts). */
static int write_marker(struct ls_layer *l, const char *name, struct ls_error *err)
{
	const struct ls_layer_entry marker = { .path = name, .mode = S_IFREG };
	bool raw;
	if (put_header(l, name, &marker, 0, 0, &raw) < 0 || end_entry(l, raw, 0) < 0)
		return arch_fail(l, err, name);
	l->entries++;
	return 0;
}

/* ---- public API ---------------------------------------------------------- */

/* 0 = one per online CPU; the count never changes the bytes. */
static unsigned int thread_count(int requested)
{
	long n = requested > 0 ? requested : sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	return n > MAX_THREADS ? MAX_THREADS : (unsigned int)n;
}

/* Fixed parameters: the blob must not depend on -j or the machine. */
static int zstd_setup(struct ls_layer *l, int level, unsigned int threads, struct ls_error *err)
{
	/* Without workers the frames would differ: refuse a libzstd built
	 * without threads rather than silently write other bytes. */
	ZSTD_bounds b = ZSTD_cParam_getBounds(ZSTD_c_nbWorkers);
	if (ZSTD_isError(b.error) || b.upperBound < 1)
		return ls_fail(err, ENOTSUP, "layer: zstd: the library has no multithreading");
	if (threads > (unsigned int)b.upperBound)
		threads = (unsigned int)b.upperBound;
	l->zc = ZSTD_createCCtx();
	if (!l->zc)
		return ls_fail(err, ENOMEM, "layer: zstd: out of memory");
	/* nbWorkers 0 and >= 1 give different frames, and any count >= 1 the
	 * same ones for a given job size: always at least one worker.  The
	 * overlap between jobs is libzstd's default for the level. */
	size_t zr = ZSTD_CCtx_setParameter(l->zc, ZSTD_c_compressionLevel, level);
	if (!ZSTD_isError(zr))
		zr = ZSTD_CCtx_setParameter(l->zc, ZSTD_c_checksumFlag, 1);
	if (!ZSTD_isError(zr))
		zr = ZSTD_CCtx_setParameter(l->zc, ZSTD_c_nbWorkers, (int)threads);
	if (!ZSTD_isError(zr))
		zr = ZSTD_CCtx_setParameter(l->zc, ZSTD_c_jobSize, (int)ZSTD_JOB);
	if (ZSTD_isError(zr))
		return ls_fail(err, EINVAL, "layer: zstd: %s", ZSTD_getErrorName(zr));
	return 0;
}

static void *warm_up(void *unused)
{
	(void)unused;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (ctx)
		(void)EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);  /* ls_layer_open's call */
	EVP_MD_CTX_free(ctx);
	return NULL;
}

bool ls_layer_warm_start(pthread_t *t)
{
	return pthread_create(t, NULL, warm_up, NULL) == 0;
}

void ls_layer_warm_join(pthread_t t)
{
	pthread_join(t, NULL);
}

int ls_layer_open(struct ls_layer **out, int fd, const struct ls_layer_options *opts,
		  struct ls_error *err)
{
	if (!out || !opts || (opts->write ? fd != -1 : fd < 0))
		return ls_fail(err, EINVAL, "layer: invalid arguments");
	*out = NULL;
	int level = opts->level;
	switch (opts->compress) {
	case LS_COMPRESS_NONE:
		break;
	case LS_COMPRESS_GZIP:
		if (level == 0)
			level = GZIP_LEVEL;
		if (level < 1 || level > GZIP_MAX_LEVEL)
			return ls_fail(err, EINVAL, "layer: gzip level %d: must be 1 to %d",
				       opts->level, GZIP_MAX_LEVEL);
		break;
	case LS_COMPRESS_ZSTD:
		if (level == 0)
			level = ZSTD_LEVEL;
		if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
			return ls_fail(err, EINVAL, "layer: zstd level %d: must be %d to %d",
				       opts->level, ZSTD_minCLevel(), ZSTD_maxCLevel());
		break;
	default:
		return ls_fail(err, EINVAL, "layer: unknown compression %d", (int)opts->compress);
	}
	unsigned int threads = thread_count(opts->threads);

	struct ls_layer *l = calloc(1, sizeof(*l));
	if (!l)
		return ls_fail(err, ENOMEM, "layer: out of memory");
	l->fd = fd;
	l->write = opts->write;
	l->write_ctx = opts->write_ctx;
	l->compress = opts->compress;
	l->have_epoch = opts->have_epoch;
	l->epoch = opts->source_date_epoch;

	int r;
	l->sha_tar = EVP_MD_CTX_new();
	l->sha_blob = EVP_MD_CTX_new();
	if (l->compress == LS_COMPRESS_ZSTD)
		l->out = malloc(OUT_CAP);
	l->entry = archive_entry_new();
	if (!l->sha_tar || !l->sha_blob || !l->entry ||
	    (l->compress == LS_COMPRESS_ZSTD && !l->out)) {
		r = ls_fail(err, ENOMEM, "layer: out of memory");
		goto fail;
	}
	if (EVP_DigestInit_ex(l->sha_tar, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestInit_ex(l->sha_blob, EVP_sha256(), NULL) != 1) {
		r = ls_fail(err, EIO, "layer: cannot set up sha256");
		goto fail;
	}
	if (l->compress == LS_COMPRESS_ZSTD) {
		r = zstd_setup(l, level, threads, err);
		if (r)
			goto fail;
	}
	r = pipe_start(l, threads, level, err);
	if (r)
		goto fail;

	l->a = archive_write_new();
	if (!l->a) {
		r = ls_fail(err, ENOMEM, "layer: out of memory");
		goto fail;
	}
	l->c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	if (l->c_locale == (locale_t)0) {
		r = ls_fail(err, ENOMEM, "layer: cannot create the C locale");
		goto fail;
	}
	/* xattrheader=SCHILY: SCHILY.xattr.* only, no LIBARCHIVE.xattr.* copy.
	 * Unbuffered (block size 0): data goes straight to sink_write, which
	 * buffers itself, and nothing pads the stream after the two zero
	 * blocks; bytes_in_last_block 1 says so explicitly. */
	locale_t old = uselocale(l->c_locale);
	bool ok = archive_write_set_format_pax_restricted(l->a) == ARCHIVE_OK &&
		  archive_write_set_format_option(l->a, "pax", "xattrheader", "SCHILY") ==
			  ARCHIVE_OK &&
		  archive_write_set_bytes_per_block(l->a, 0) == ARCHIVE_OK &&
		  archive_write_set_bytes_in_last_block(l->a, 1) == ARCHIVE_OK &&
		  archive_write_open2(l->a, l, NULL, sink_write, NULL, NULL) == ARCHIVE_OK;
	uselocale(old);
	if (!ok) {
		r = arch_fail(l, err, "open");
		goto fail;
	}
	*out = l;
	return 0;

fail:
	ls_layer_free(l);
	return r;
}

/* ls_layer_add and ls_layer_add_data: the contents from content_fd, or from
 * data when content_fd is -1. */
static int add_entry(struct ls_layer *l, const struct ls_layer_entry *e, int content_fd, const void *data,
		     XXH3_state_t *hash, struct ls_error *err)
{
	if (!l || !e || !e->path || !e->path[0])
		return ls_fail(err, EINVAL, "layer: entry without a path");
	int r = check_usable(l, err);
	if (r < 0)
		return r;

	const char *path = e->path;
	if (path[0] == '/' || path[strlen(path) - 1] == '/')
		return ls_fail(err, EINVAL, "%s: invalid layer path", path);
	unsigned type = e->mode & S_IFMT;
	switch (type) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFLNK:
	case S_IFIFO:
	case S_IFCHR:
	case S_IFBLK:
		break;
	case S_IFSOCK:
		return ls_fail(err, EINVAL, "%s: a socket cannot be written to a layer", path);
	default:
		return ls_fail(err, EINVAL, "%s: unknown file type 0%o", path, type);
	}
	if (e->hardlink && (type == S_IFDIR || !e->hardlink[0]))
		return ls_fail(err, EINVAL, "%s: invalid hard link", path);
	if (!e->hardlink && type == S_IFLNK && !e->link_target)
		return ls_fail(err, EINVAL, "%s: symlink without a target", path);
	if (e->n_xattrs > 0 && !e->xattrs)
		return ls_fail(err, EINVAL, "%s: xattrs missing", path);

	const char *name = path;
	if (type == S_IFDIR) {
		name = build_path(l, path, strlen(path), "/", "");
		if (!name)
			return ls_fail(err, ENOMEM, "layer: out of memory");
	}
	bool copy = type == S_IFREG && !e->hardlink;
	if (copy && e->size > (uint64_t)INT64_MAX)
		return ls_fail(err, EFBIG, "%s: file too large", path);
	if (copy && content_fd < 0 && e->size > 0 && !data)
		return ls_fail(err, EINVAL, "%s: contents missing", path);
	if (copy && content_fd >= 0 && e->size > 0 && !l->content) {
		l->content = malloc(CONTENT_CAP);
		if (!l->content)
			return ls_fail(err, ENOMEM, "layer: out of memory");
	}

	int64_t mtime = e->mtime_sec;
	if (l->have_epoch && mtime > l->epoch)
		mtime = l->epoch;

	uint64_t size = copy ? e->size : 0;
	bool raw;
	if (put_header(l, name, e, mtime, size, &raw) < 0)
		return arch_fail(l, err, path);

	if (copy && content_fd < 0 && e->size > 0) {
		if (hash)
			XXH3_128bits_update(hash, data, (size_t)e->size);
		if (put_data(l, raw, data, (size_t)e->size) < 0)
			return arch_fail(l, err, path);
	} else if (copy) {
		uint64_t left = e->size;
		while (left > 0) {
			size_t want = left < CONTENT_CAP ? (size_t)left : CONTENT_CAP;
			/* Framed here: read straight into the ring, one copy fewer
			 * (the large files, which come open, not read ahead). */
			struct slot *s = raw ? tar_room(l) : NULL;
			unsigned char *buf = l->content;
			if (s) {
				buf = s->in + s->in_len;
				if (want > CHUNK - s->in_len)
					want = CHUNK - s->in_len;
			}
			ssize_t n = read(content_fd, buf, want);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				l->failed = true;
				return ls_fail_errno(err, errno, "%s", path);
			}
			if (n == 0) {
				l->failed = true;
				return ls_fail(err, EIO, "%s: changed while being read", path);
			}
			if (hash)
				XXH3_128bits_update(hash, buf, (size_t)n);
			if (s)
				tar_commit(l, s, (size_t)n);
			else if (put_data(l, raw, buf, (size_t)n) < 0)
				return arch_fail(l, err, path);
			left -= (uint64_t)n;
		}
	}
	if (end_entry(l, raw, size) < 0)
		return arch_fail(l, err, path);
	l->entries++;
	return 0;
}

int ls_layer_add(struct ls_layer *l, const struct ls_layer_entry *e, int content_fd,
		 XXH3_state_t *hash, struct ls_error *err)
{
	if (content_fd < 0 && e && (e->mode & S_IFMT) == S_IFREG && !e->hardlink && e->size > 0)
		return ls_fail(err, EBADF, "%s: no content fd", e->path ? e->path : "layer");
	return add_entry(l, e, content_fd, NULL, hash, err);
}

int ls_layer_add_data(struct ls_layer *l, const struct ls_layer_entry *e, const void *data,
		      struct ls_error *err)
{
	return add_entry(l, e, -1, data, NULL, err);
}

int ls_layer_add_whiteout(struct ls_layer *l, const char *path, struct ls_error *err)
{
	if (!l || !path || !path[0])
		return ls_fail(err, EINVAL, "layer: whiteout without a path");
	int r = check_usable(l, err);
	if (r < 0)
		return r;
	const char *slash = strrchr(path, '/');
	size_t dlen = slash ? (size_t)(slash - path) + 1 : 0;
	if (path[0] == '/' || !path[dlen])
		return ls_fail(err, EINVAL, "%s: invalid layer path", path);
	const char *name = build_path(l, path, dlen, ".wh.", path + dlen);
	if (!name)
		return ls_fail(err, ENOMEM, "layer: out of memory");
	return write_marker(l, name, err);
}

int ls_layer_add_opaque(struct ls_layer *l, const char *dir, struct ls_error *err)
{
	if (!l || !dir)
		return ls_fail(err, EINVAL, "layer: opaque whiteout without a directory");
	int r = check_usable(l, err);
	if (r < 0)
		return r;
	size_t dlen = strlen(dir);
	if (dlen && (dir[0] == '/' || dir[dlen - 1] == '/'))
		return ls_fail(err, EINVAL, "%s: invalid layer path", dir);
	const char *name = build_path(l, dir, dlen, dlen ? "/" : "", ".wh..wh..opq");
	if (!name)
		return ls_fail(err, ENOMEM, "layer: out of memory");
	return write_marker(l, name, err);
}

uint64_t ls_layer_tar_bytes(const struct ls_layer *l)
{
	return l ? l->bytes : 0;
}

int ls_layer_finish(struct ls_layer *l, struct ls_layer_result *res, struct ls_error *err)
{
	if (!l)
		return ls_fail(err, EINVAL, "layer: invalid arguments");
	int r = check_usable(l, err);
	if (r < 0)
		return r;
	/* Writes the two zero blocks; unbuffered, so nothing is padded. */
	locale_t old = uselocale(l->c_locale);
	r = archive_write_close(l->a);
	uselocale(old);
	pipe_stop(l);
	if (r != ARCHIVE_OK)
		return arch_fail(l, err, "close");
	l->finished = true;
	/* The threads are joined: the frame's end is written from here. */
	if (l->compress == LS_COMPRESS_ZSTD && !atomic_load(&l->sink_failed) &&
	    zstd_block(l, NULL, 0, true) == 0)
		flush_out(l);
	if (atomic_load(&l->sink_failed)) {
		l->failed = true;
		if (err)
			*err = l->sink_err;
		return -l->sink_err.code;
	}

	struct ls_layer_result tmp = { 0 };
	bool ok = true;
	hex_digest(l->sha_tar, tmp.diff_id, &ok);
	if (l->compress == LS_COMPRESS_NONE)
		memcpy(tmp.digest, tmp.diff_id, sizeof(tmp.digest));
	else
		hex_digest(l->sha_blob, tmp.digest, &ok);
	if (!ok) {
		l->failed = true;
		return ls_fail(err, EIO, "layer: sha256 final failed");
	}
	tmp.entries = l->entries;
	tmp.bytes = l->bytes;
	tmp.size = l->size;
	tmp.media_type = l->compress == LS_COMPRESS_GZIP   ? MEDIA_TAR "+gzip"
			 : l->compress == LS_COMPRESS_ZSTD ? MEDIA_TAR "+zstd"
							   : MEDIA_TAR;
	if (res)
		*res = tmp;
	return 0;
}

void ls_layer_free(struct ls_layer *l)
{
	if (!l)
		return;
	/* An abandoned layer must not emit anything more: archive_write_free
	 * closes an open archive and would write the end blocks, and chunks
	 * still in the ring are dropped. */
	atomic_store(&l->discard, true);
	if (l->a)
		archive_write_free(l->a);
	pipe_stop(l);
	pipe_free(l);
	if (l->c_locale != (locale_t)0)
		freelocale(l->c_locale);
	archive_entry_free(l->entry);
	ZSTD_freeCCtx(l->zc);
	EVP_MD_CTX_free(l->sha_tar);
	EVP_MD_CTX_free(l->sha_blob);
	free(l->out);
	free(l->content);
	free(l->path);
	free(l);
}
