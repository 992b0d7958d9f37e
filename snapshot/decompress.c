/*
 * Verifying layer reader (decompress.h): zlib for gzip (its gzip mode checks
 * each member's CRC32 and ISIZE), libzstd's streaming API for zstd (it checks
 * a frame's checksum when the frame has one).  The member and frame
 * boundaries are handled here, so that concatenated members are all read and
 * anything after the last one is seen.
 */
#include "decompress.h"
#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#define IN_SIZE (64 * 1024)
#define OUT_SIZE LS_DECOMP_CHUNK
#define ZSTD_WINDOW_LOG_MAX 27   /* zstd(1)'s own default limit: 128 MiB */

struct ls_decomp {
	int fd;
	enum ls_decomp_kind kind;
	unsigned char *in;
	unsigned char *bufs;        /* LS_DECOMP_KEEP output buffers, used in turn */
	unsigned char *out;         /* the one being filled */
	unsigned turn;
	size_t in_pos, in_len;      /* unread input is in[in_pos..in_len) */
	uint64_t in_base;           /* stream offset of in[0] */
	bool eof;                   /* read() returned 0 */
	bool done;                  /* verified to the end */
	int failed;                 /* error code once failed, else 0 */
	char msg[sizeof(((struct ls_error *)0)->msg)];
	uint64_t unit;              /* gzip members / zstd frames begun */
	uint64_t unit_start;        /* stream offset where the current one began */
	/* gzip */
	z_stream z;
	bool z_ready;
	bool in_member;
	/* zstd */
	ZSTD_DCtx *zd;
	size_t zret;                /* last ZSTD_decompressStream result; 0 = between frames */
};

static uint64_t in_offset(const struct ls_decomp *d)
{
	return d->in_base + d->in_pos;
}

/* Records the first error: later calls return the same. */
static int fail(struct ls_decomp *d, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct ls_decomp *d, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
	va_end(ap);
	d->failed = code;
	return -code;
}

/* Reads more input after the unread bytes (moved to the front).  Returns 0
 * (check d->eof) or a negative code. */
static int fill(struct ls_decomp *d)
{
	if (d->eof || (d->in_pos == 0 && d->in_len == IN_SIZE))
		return 0;
	if (d->in_pos > 0) {
		memmove(d->in, d->in + d->in_pos, d->in_len - d->in_pos);
		d->in_base += d->in_pos;
		d->in_len -= d->in_pos;
		d->in_pos = 0;
	}
	for (;;) {
		ssize_t n = read(d->fd, d->in + d->in_len, IN_SIZE - d->in_len);
		if (n > 0) {
			d->in_len += (size_t)n;
			return 0;
		}
		if (n == 0) {
			d->eof = true;
			return 0;
		}
		if (errno != EINTR)
			return fail(d, errno, "read: %s", strerror(errno));
	}
}

/* Fills until at least want unread bytes are there or the input ended. */
static int fill_to(struct ls_decomp *d, size_t want)
{
	while (d->in_len - d->in_pos < want && !d->eof) {
		int r = fill(d);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- gzip --------------------------------------------------------------- */

/* At a member boundary: the end of the stream, or the start of the next
 * member.  Returns 1 when a member starts, 0 at the end, or an error. */
static int gzip_boundary(struct ls_decomp *d)
{
	int r = fill_to(d, 2);
	if (r < 0)
		return r;
	size_t avail = d->in_len - d->in_pos;
	if (avail == 0)
		return 0;
	const unsigned char *p = d->in + d->in_pos;
	if (avail < 2 || p[0] != 0x1f || p[1] != 0x8b) {
		/* gzip(1) ignores such a tail with a warning: a layer is a
		 * digest-addressed blob and has no use for bytes nobody reads */
		return fail(d, EINVAL, "gzip: data after the last member (at byte %llu) is not a gzip member",
			    (unsigned long long)in_offset(d));
	}
	if (inflateReset(&d->z) != Z_OK)
		return fail(d, EINVAL, "gzip: cannot reset the decoder");
	d->unit++;
	d->unit_start = in_offset(d);
	d->in_member = true;
	return 1;
}

static int gzip_error(struct ls_decomp *d, int zr)
{
	unsigned long long at = (unsigned long long)d->unit_start;
	if (zr == Z_MEM_ERROR)
		return fail(d, ENOMEM, "gzip: out of memory");
	if (zr == Z_NEED_DICT)
		return fail(d, EINVAL, "gzip member at byte %llu: needs a preset dictionary", at);
	const char *why = d->z.msg ? d->z.msg : "corrupt data";
	/* zlib's words for the two trailer checks */
	if (!strcmp(why, "incorrect data check"))
		why = "CRC32 mismatch";
	else if (!strcmp(why, "incorrect length check"))
		why = "length (ISIZE) mismatch";
	return fail(d, EINVAL, "gzip member at byte %llu: %s", at, why);
}

static ssize_t gzip_read(struct ls_decomp *d)
{
	d->z.next_out = d->out;
	d->z.avail_out = OUT_SIZE;
	while (d->z.avail_out > 0) {
		if (!d->in_member) {
			int r = gzip_boundary(d);
			if (r < 0)
				return r;
			if (r == 0) {
				d->done = true;
				break;
			}
		}
		if (d->in_pos == d->in_len) {
			int r = fill(d);
			if (r < 0)
				return r;
			if (d->in_pos == d->in_len)
				return fail(d, EINVAL, "gzip member at byte %llu: truncated",
					    (unsigned long long)d->unit_start);
		}
		d->z.next_in = d->in + d->in_pos;
		d->z.avail_in = (uInt)(d->in_len - d->in_pos);
		uInt before_in = d->z.avail_in, before_out = d->z.avail_out;
		int zr = inflate(&d->z, Z_NO_FLUSH);
		d->in_pos += before_in - d->z.avail_in;
		if (zr == Z_STREAM_END) {
			/* trailer checked: hand over what the member holds
			 * before decoding the next, so that a bad member
			 * spoils nothing decoded before it */
			d->in_member = false;
			if (d->z.avail_out < OUT_SIZE)
				break;
			continue;
		}
		if (zr == Z_BUF_ERROR && d->z.avail_in == 0)
			continue;   /* needs more input */
		if (zr != Z_OK && zr != Z_BUF_ERROR)
			return gzip_error(d, zr);
		if (d->z.avail_in == before_in && d->z.avail_out == before_out)
			return fail(d, EINVAL, "gzip member at byte %llu: decoder made no progress",
				    (unsigned long long)d->unit_start);
	}
	return (ssize_t)(OUT_SIZE - d->z.avail_out);
}

/* ---- zstd --------------------------------------------------------------- */

static ssize_t zstd_read(struct ls_decomp *d)
{
	ZSTD_outBuffer ob = { d->out, OUT_SIZE, 0 };
	while (ob.pos < ob.size) {
		if (d->in_pos == d->in_len) {
			int r = fill(d);
			if (r < 0)
				return r;
		}
		bool no_input = d->in_pos == d->in_len;
		if (no_input && d->zret == 0) {
			d->done = true;   /* between frames, nothing held back */
			break;
		}
		if (d->zret == 0) {
			d->unit++;
			d->unit_start = in_offset(d);
		}
		ZSTD_inBuffer ib = { d->in + d->in_pos, d->in_len - d->in_pos, 0 };
		size_t before_out = ob.pos;
		d->zret = ZSTD_decompressStream(d->zd, &ob, &ib);
		d->in_pos += ib.pos;
		if (ZSTD_isError(d->zret)) {
			ZSTD_ErrorCode code = ZSTD_getErrorCode(d->zret);
			unsigned long long at = (unsigned long long)d->unit_start;
			if (code == ZSTD_error_checksum_wrong)
				return fail(d, EINVAL, "zstd frame at byte %llu: checksum mismatch", at);
			if (code == ZSTD_error_prefix_unknown && d->unit > 1)
				return fail(d, EINVAL, "zstd: data after the last frame (at byte %llu) is not a zstd frame",
					    at);
			if (code == ZSTD_error_memory_allocation)
				return fail(d, ENOMEM, "zstd: out of memory");
			return fail(d, EINVAL, "zstd frame at byte %llu: %s", at, ZSTD_getErrorName(d->zret));
		}
		if (no_input && ob.pos == before_out)
			return fail(d, EINVAL, "zstd frame at byte %llu: truncated",
				    (unsigned long long)d->unit_start);
		if (d->zret == 0 && ob.pos > 0)
			break;   /* a frame checked: hand it over (see gzip_read) */
	}
	return (ssize_t)ob.pos;
}

/* ---- plain -------------------------------------------------------------- */

static ssize_t plain_read(struct ls_decomp *d, const void **buf)
{
	/* the bytes read to tell the format come first */
	if (d->in_pos < d->in_len) {
		*buf = d->in + d->in_pos;
		size_t n = d->in_len - d->in_pos;
		d->in_pos = d->in_len;
		return (ssize_t)n;
	}
	for (;;) {
		ssize_t n = read(d->fd, d->out, OUT_SIZE);
		if (n > 0) {
			*buf = d->out;
			return n;
		}
		if (n == 0) {
			d->done = true;
			return 0;
		}
		if (errno != EINTR)
			return fail(d, errno, "read: %s", strerror(errno));
	}
}

/* ---- interface ---------------------------------------------------------- */

int ls_decomp_open(struct ls_decomp **out, int fd, struct ls_error *err)
{
	*out = NULL;
	struct ls_decomp *d = calloc(1, sizeof(*d));
	if (!d || !(d->in = malloc(IN_SIZE)) || !(d->bufs = malloc((size_t)LS_DECOMP_KEEP * OUT_SIZE))) {
		ls_decomp_free(d);
		return ls_fail(err, ENOMEM, "layer: out of memory");
	}
	d->fd = fd;
	int r = fill_to(d, 4);
	if (r < 0) {
		r = ls_fail(err, d->failed, "layer: %s", d->msg);
		ls_decomp_free(d);
		return r;
	}
	const unsigned char *p = d->in;
	size_t n = d->in_len;
	if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b) {
		d->kind = LS_DECOMP_GZIP;
		/* 16 + window bits: gzip wrapper only, trailer checked */
		if (inflateInit2(&d->z, 16 + MAX_WBITS) != Z_OK) {
			ls_decomp_free(d);
			return ls_fail(err, ENOMEM, "layer: cannot start the gzip decoder");
		}
		d->z_ready = true;
	} else if (n >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd) {
		d->kind = LS_DECOMP_ZSTD;
		d->zd = ZSTD_createDCtx();
		if (!d->zd || ZSTD_isError(ZSTD_DCtx_setParameter(d->zd, ZSTD_d_windowLogMax,
								   ZSTD_WINDOW_LOG_MAX))) {
			ls_decomp_free(d);
			return ls_fail(err, ENOMEM, "layer: cannot start the zstd decoder");
		}
		d->zret = 0;
	} else {
		d->kind = LS_DECOMP_PLAIN;
	}
	*out = d;
	return 0;
}

ssize_t ls_decomp_read(struct ls_decomp *d, const void **buf, struct ls_error *err)
{
	ssize_t n = 0;
	/* the buffers handed out by the previous calls stay untouched */
	d->out = d->bufs + (size_t)(d->turn++ % LS_DECOMP_KEEP) * OUT_SIZE;
	*buf = d->out;
	if (!d->failed && !d->done) {
		switch (d->kind) {
		case LS_DECOMP_GZIP: n = gzip_read(d); break;
		case LS_DECOMP_ZSTD: n = zstd_read(d); break;
		default: n = plain_read(d, buf); break;
		}
	}
	if (d->failed)
		return ls_fail(err, d->failed, "%s", d->msg);
	return n;
}

enum ls_decomp_kind ls_decomp_kind(const struct ls_decomp *d)
{
	return d->kind;
}

void ls_decomp_free(struct ls_decomp *d)
{
	if (!d)
		return;
	if (d->z_ready)
		inflateEnd(&d->z);
	ZSTD_freeDCtx(d->zd);
	free(d->in);
	free(d->bufs);
	free(d);
}
