/*
 * Deterministic OCI layer writer (DESIGN.md "The layer").
 *
 * Data flow:  libarchive (pax_restricted, unbuffered)
 *               -> sink_write: byte count, 1 MiB chunks handed to the
 *                  stream thread (so that reading files and building the
 *                  tar overlap hashing, compressing and writing)
 *               -> stream thread: sha256 (diff_id)
 *               -> fixed-size staging blocks -> zlib / libzstd / nothing
 *               -> output buffer -> sha256 (digest), byte count, write(2)
 *
 * The bytes do not depend on the thread: chunks are processed in order and
 * the compressor always sees the same fixed-size blocks.
 */
#include "layer.h"

#include <sys/types.h> /* output.h uses dev_t and ino_t */

#include "error.h"
#include "output.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <locale.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#define STAGE_CAP   (256u * 1024u)   /* uncompressed bytes per compressor call */
#define OUT_CAP     (256u * 1024u)   /* blob bytes per write(2) */
#define CONTENT_CAP (1024u * 1024u)  /* file bytes per read(2) */

#define MEDIA_TAR  "application/vnd.oci.image.layer.v1.tar"

#define PIPE_CHUNK (1024u * 1024u)   /* tar bytes per hand-over */
#define PIPE_SLOTS 4

/* Hand-over of tar chunks from the writing thread to the stream thread: a
 * ring of slots; the producer fills slot `head`, the consumer drains the
 * `count` pending slots from `tail`. */
struct pipe {
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned char *buf[PIPE_SLOTS];
	size_t len[PIPE_SLOTS];
	unsigned int head, tail, count;
	bool stop;
};

struct ls_layer {
	struct archive *a;
	struct archive_entry *entry;    /* reused for every header */
	locale_t c_locale;              /* names are encoded under "C" (see open) */
	int fd;
	enum ls_compress compress;
	bool have_epoch;
	int64_t epoch;

	EVP_MD_CTX *sha_tar;            /* uncompressed stream: diff_id */
	EVP_MD_CTX *sha_blob;           /* compressed stream: digest */
	z_stream z;
	bool z_ready;
	ZSTD_CCtx *zc;

	unsigned char *stage;           /* compressed modes only */
	size_t stage_len;
	unsigned char *out;
	size_t out_len;
	unsigned char *content;         /* allocated on the first regular file */
	char *path;                     /* scratch for built entry names */
	size_t path_cap;

	uint64_t entries, bytes, size;

	bool finished;
	bool failed;                    /* stream may be inconsistent: refuse more */
	atomic_bool discard;                 /* being freed: drop libarchive's last bytes */
	atomic_bool sink_failed;
	struct ls_error sink_err;       /* first failure of the stream side */
	struct pipe pipe;
};

/* ---- blob side: hash, count, write --------------------------------------- */

/* Records the first failure of the sink; libarchive only sees "-1". */
static int sink_fail(struct ls_layer *l, int code, const char *what, const char *why)
{
	if (!atomic_load(&l->sink_failed)) {
		ls_fail(&l->sink_err, code, "layer: %s: %s", what, why);
		atomic_store(&l->sink_failed, true);
	}
	return -l->sink_err.code;
}

static int emit(struct ls_layer *l, const void *buf, size_t len)
{
	if (len == 0)
		return 0;
	/* Uncompressed, the blob is the tar: its digest is the diff_id. */
	if (l->compress != LS_COMPRESS_NONE && EVP_DigestUpdate(l->sha_blob, buf, len) != 1)
		return sink_fail(l, EIO, "sha256", "update failed");
	int r = ls_write_all(l->fd, buf, len);
	if (r < 0)
		return sink_fail(l, -r, "write", strerror(-r));
	l->size += len;
	return 0;
}

static int flush_out(struct ls_layer *l)
{
	int r = emit(l, l->out, l->out_len);
	l->out_len = 0;
	return r;
}

/* No compression: the blob is the tar; large chunks skip the copy. */
static int out_append(struct ls_layer *l, const unsigned char *p, size_t n)
{
	while (n > 0) {
		if (l->out_len == 0 && n >= OUT_CAP)
			return emit(l, p, n);
		size_t c = OUT_CAP - l->out_len;
		if (c > n)
			c = n;
		memcpy(l->out + l->out_len, p, c);
		l->out_len += c;
		p += c;
		n -= c;
		if (l->out_len == OUT_CAP) {
			int r = flush_out(l);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int deflate_block(struct ls_layer *l, const unsigned char *p, size_t n, bool end)
{
	int flush = end ? Z_FINISH : Z_NO_FLUSH;
	l->z.next_in = (Bytef *)p;
	l->z.avail_in = (uInt)n;
	for (;;) {
		if (l->out_len == OUT_CAP) {
			int r = flush_out(l);
			if (r < 0)
				return r;
		}
		l->z.next_out = l->out + l->out_len;
		l->z.avail_out = (uInt)(OUT_CAP - l->out_len);
		int rc = deflate(&l->z, flush);
		l->out_len = OUT_CAP - l->z.avail_out;
		if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
			return sink_fail(l, EIO, "gzip", l->z.msg ? l->z.msg : "deflate failed");
		if (end ? rc == Z_STREAM_END : (l->z.avail_in == 0 && l->z.avail_out != 0))
			return 0;
	}
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

static int compress_block(struct ls_layer *l, const unsigned char *p, size_t n, bool end)
{
	if (l->compress == LS_COMPRESS_GZIP)
		return deflate_block(l, p, n, end);
	return zstd_block(l, p, n, end);
}

/* ---- tar side: libarchive's write callback ------------------------------- */

/*
 * The compressor always sees whole STAGE_CAP blocks, so the blob cannot
 * depend on how libarchive (or a short read(2)) happened to split the stream.
 */
static int stage_append(struct ls_layer *l, const unsigned char *p, size_t n)
{
	while (n > 0) {
		size_t c = STAGE_CAP - l->stage_len;
		if (c > n)
			c = n;
		memcpy(l->stage + l->stage_len, p, c);
		l->stage_len += c;
		p += c;
		n -= c;
		if (l->stage_len == STAGE_CAP) {
			int r = compress_block(l, l->stage, STAGE_CAP, false);
			l->stage_len = 0;
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* The stream side of a chunk of tar bytes: diff_id, then compression or
 * straight to the output. */
static int stream_chunk(struct ls_layer *l, const unsigned char *buf, size_t len)
{
	if (atomic_load(&l->sink_failed))
		return -l->sink_err.code;
	if (EVP_DigestUpdate(l->sha_tar, buf, len) != 1)
		return sink_fail(l, EIO, "sha256", "update failed");
	return l->compress == LS_COMPRESS_NONE ? out_append(l, buf, len) : stage_append(l, buf, len);
}

static void *stream_thread(void *arg)
{
	struct ls_layer *l = arg;
	struct pipe *p = &l->pipe;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (p->count == 0 && !p->stop)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->count == 0)
			break;
		unsigned int slot = p->tail;
		bool discard = atomic_load(&l->discard);
		pthread_mutex_unlock(&p->lock);
		if (!discard)
			stream_chunk(l, p->buf[slot], p->len[slot]);
		pthread_mutex_lock(&p->lock);
		p->len[slot] = 0;
		p->tail = (p->tail + 1) % PIPE_SLOTS;
		p->count--;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Hands the slot being filled to the stream thread and waits for a free one. */
static void pipe_submit(struct pipe *p)
{
	pthread_mutex_lock(&p->lock);
	p->count++;
	p->head = (p->head + 1) % PIPE_SLOTS;
	pthread_cond_broadcast(&p->cond);
	while (p->count == PIPE_SLOTS)
		pthread_cond_wait(&p->cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

/* Hands over what is buffered and waits until the stream side is idle and
 * stopped; afterwards the calling thread owns every field again. */
static void pipe_stop(struct ls_layer *l)
{
	struct pipe *p = &l->pipe;
	if (!p->running)
		return;
	if (p->len[p->head] > 0 && !atomic_load(&l->discard))
		pipe_submit(p);
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	p->running = false;
}

/* Without the thread (it could not be started), everything runs inline. */
static void pipe_start(struct ls_layer *l)
{
	struct pipe *p = &l->pipe;
	for (int i = 0; i < PIPE_SLOTS; i++) {
		p->buf[i] = malloc(PIPE_CHUNK);
		if (!p->buf[i])
			return;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->running = pthread_create(&p->thread, NULL, stream_thread, l) == 0;
	if (!p->running) {
		pthread_mutex_destroy(&p->lock);
		pthread_cond_destroy(&p->cond);
	}
}

static void pipe_free(struct pipe *p)
{
	for (int i = 0; i < PIPE_SLOTS; i++)
		free(p->buf[i]);
}

static la_ssize_t sink_write(struct archive *a, void *client, const void *buf, size_t len)
{
	struct ls_layer *l = client;
	if (atomic_load(&l->discard))
		return (la_ssize_t)len;
	int r = 0;
	if (atomic_load(&l->sink_failed)) {
		r = -l->sink_err.code;
	} else if (!l->pipe.running) {
		r = stream_chunk(l, buf, len);
	} else {
		struct pipe *p = &l->pipe;
		const unsigned char *src = buf;
		size_t left = len;
		while (left > 0) {
			size_t room = PIPE_CHUNK - p->len[p->head];
			size_t c = left < room ? left : room;
			memcpy(p->buf[p->head] + p->len[p->head], src, c);
			p->len[p->head] += c;
			src += c;
			left -= c;
			if (p->len[p->head] == PIPE_CHUNK)
				pipe_submit(p);
		}
	}
	if (r < 0) {
		archive_set_error(a, -r, "%s", l->sink_err.msg);
		return -1;
	}
	l->bytes += len;
	return (la_ssize_t)len;
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

/* An empty regular file, mode 0, owned by 0:0, mtime 0 (OCI whiteouts). */
static int write_marker(struct ls_layer *l, const char *name, struct ls_error *err)
{
	struct archive_entry *ae = l->entry;
	archive_entry_clear(ae);
	archive_entry_set_pathname(ae, name);
	archive_entry_set_mode(ae, AE_IFREG);
	archive_entry_set_uid(ae, 0);
	archive_entry_set_gid(ae, 0);
	archive_entry_set_mtime(ae, 0, 0);
	archive_entry_set_size(ae, 0);
	if (write_header(l, ae) < 0)
		return arch_fail(l, err, name);
	if (archive_write_finish_entry(l->a) != ARCHIVE_OK)
		return arch_fail(l, err, name);
	l->entries++;
	return 0;
}

/* ---- public API ---------------------------------------------------------- */

int ls_layer_open(struct ls_layer **out, int fd, const struct ls_layer_options *opts,
		  struct ls_error *err)
{
	if (!out || fd < 0 || !opts)
		return ls_fail(err, EINVAL, "layer: invalid arguments");
	*out = NULL;
	int level = opts->level;
	switch (opts->compress) {
	case LS_COMPRESS_NONE:
		break;
	case LS_COMPRESS_GZIP:
		if (level == 0)
			level = 6;
		if (level < 1 || level > 9)
			return ls_fail(err, EINVAL, "layer: gzip level %d: must be 1 to 9",
				       opts->level);
		break;
	case LS_COMPRESS_ZSTD:
		if (level == 0)
			level = 3;
		if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
			return ls_fail(err, EINVAL, "layer: zstd level %d: must be %d to %d",
				       opts->level, ZSTD_minCLevel(), ZSTD_maxCLevel());
		break;
	default:
		return ls_fail(err, EINVAL, "layer: unknown compression %d", (int)opts->compress);
	}

	struct ls_layer *l = calloc(1, sizeof(*l));
	if (!l)
		return ls_fail(err, ENOMEM, "layer: out of memory");
	l->fd = fd;
	l->compress = opts->compress;
	l->have_epoch = opts->have_epoch;
	l->epoch = opts->source_date_epoch;

	int r;
	l->sha_tar = EVP_MD_CTX_new();
	l->sha_blob = EVP_MD_CTX_new();
	l->out = malloc(OUT_CAP);
	if (l->compress != LS_COMPRESS_NONE)
		l->stage = malloc(STAGE_CAP);
	l->entry = archive_entry_new();
	if (!l->sha_tar || !l->sha_blob || !l->out || !l->entry ||
	    (l->compress != LS_COMPRESS_NONE && !l->stage)) {
		r = ls_fail(err, ENOMEM, "layer: out of memory");
		goto fail;
	}
	if (EVP_DigestInit_ex(l->sha_tar, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestInit_ex(l->sha_blob, EVP_sha256(), NULL) != 1) {
		r = ls_fail(err, EIO, "layer: cannot set up sha256");
		goto fail;
	}

	if (l->compress == LS_COMPRESS_GZIP) {
		/* windowBits 15+16: gzip wrapper.  No deflateSetHeader, so the
		 * header's MTIME is 0 and carries no name. */
		int zr = deflateInit2(&l->z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
		if (zr != Z_OK) {
			r = ls_fail(err, zr == Z_MEM_ERROR ? ENOMEM : EINVAL,
				    "layer: gzip: cannot initialise deflate");
			goto fail;
		}
		l->z_ready = true;
	} else if (l->compress == LS_COMPRESS_ZSTD) {
		l->zc = ZSTD_createCCtx();
		if (!l->zc) {
			r = ls_fail(err, ENOMEM, "layer: zstd: out of memory");
			goto fail;
		}
		/* Fixed parameters: the blob must not depend on -j or the machine. */
		size_t zr = ZSTD_CCtx_setParameter(l->zc, ZSTD_c_compressionLevel, level);
		if (!ZSTD_isError(zr))
			zr = ZSTD_CCtx_setParameter(l->zc, ZSTD_c_checksumFlag, 1);
		if (!ZSTD_isError(zr))
			zr = ZSTD_CCtx_setParameter(l->zc, ZSTD_c_nbWorkers, 0);
		if (ZSTD_isError(zr)) {
			r = ls_fail(err, EINVAL, "layer: zstd: %s", ZSTD_getErrorName(zr));
			goto fail;
		}
	}

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
	pipe_start(l);
	*out = l;
	return 0;

fail:
	ls_layer_free(l);
	return r;
}

int ls_layer_add(struct ls_layer *l, const struct ls_layer_entry *e, int content_fd,
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
	if (copy && e->size > 0 && !l->content) {
		l->content = malloc(CONTENT_CAP);
		if (!l->content)
			return ls_fail(err, ENOMEM, "layer: out of memory");
	}

	int64_t mtime = e->mtime_sec;
	if (l->have_epoch && mtime > l->epoch)
		mtime = l->epoch;

	/* Never atime, ctime, birthtime, uname or gname: unset fields are not
	 * written, which keeps the bytes free of host and time noise. */
	struct archive_entry *ae = l->entry;
	archive_entry_clear(ae);
	archive_entry_set_pathname(ae, name);
	archive_entry_set_mode(ae, e->mode);
	archive_entry_set_uid(ae, e->uid);
	archive_entry_set_gid(ae, e->gid);
	archive_entry_set_mtime(ae, mtime, 0);
	archive_entry_set_size(ae, copy ? (la_int64_t)e->size : 0);
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

	if (write_header(l, ae) < 0)
		return arch_fail(l, err, path);

	if (copy) {
		uint64_t left = e->size;
		while (left > 0) {
			size_t want = left < CONTENT_CAP ? (size_t)left : CONTENT_CAP;
			ssize_t n = read(content_fd, l->content, want);
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
				XXH3_128bits_update(hash, l->content, (size_t)n);
			la_ssize_t w = archive_write_data(l->a, l->content, (size_t)n);
			if (w != n)
				return arch_fail(l, err, path);
			left -= (uint64_t)n;
		}
	}
	if (archive_write_finish_entry(l->a) != ARCHIVE_OK)
		return arch_fail(l, err, path);
	l->entries++;
	return 0;
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
	if (atomic_load(&l->sink_failed)) {
		l->failed = true;
		if (err)
			*err = l->sink_err;
		return -l->sink_err.code;
	}
	if (l->compress == LS_COMPRESS_NONE)
		r = flush_out(l);
	else {
		r = compress_block(l, l->stage, l->stage_len, true);
		l->stage_len = 0;
		if (r == 0)
			r = flush_out(l);
	}
	if (r < 0) {
		l->failed = true;
		if (err)
			*err = l->sink_err;
		return r;
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
	if (l->a) {
		/* archive_write_free closes an open archive and would write the
		 * end blocks: an abandoned layer must not emit them. */
		l->discard = true;
		archive_write_free(l->a);
	}
	pipe_stop(l);
	pipe_free(&l->pipe);
	if (l->c_locale != (locale_t)0)
		freelocale(l->c_locale);
	archive_entry_free(l->entry);
	if (l->z_ready)
		deflateEnd(&l->z);
	ZSTD_freeCCtx(l->zc);
	EVP_MD_CTX_free(l->sha_tar);
	EVP_MD_CTX_free(l->sha_blob);
	free(l->stage);
	free(l->out);
	free(l->content);
	free(l->path);
	free(l);
}
