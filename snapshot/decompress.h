/*
 * A verifying reader for layer blobs: plain tar, gzip or zstd, told apart by
 * their first bytes, decompressed here rather than by libarchive (whose gzip
 * filter checks neither CRC32 nor ISIZE).
 *
 * gzip: any number of concatenated members, each one's CRC32 and ISIZE
 * checked at its end; bytes after the last member that do not start another
 * member are an error.  zstd: any number of frames (skippable ones too), each
 * content checksum checked where the frame carries one.  A stream cut short
 * is an error.  Memory is bounded whatever the stream holds: fixed buffers,
 * the zlib window, and a zstd window of at most 2^27 bytes.
 */
#ifndef LS_DECOMPRESS_H
#define LS_DECOMPRESS_H

#include "layersnap.h"

#include <sys/types.h>

enum ls_decomp_kind { LS_DECOMP_PLAIN = 0, LS_DECOMP_GZIP = 1, LS_DECOMP_ZSTD = 2 };

/** How many of the latest reads' buffers stay valid: the caller may look
 *  back at the bytes it was handed by the last LS_DECOMP_KEEP reads (enough
 *  for the largest tar header libarchive reads, 1 MiB, and the one after). */
#define LS_DECOMP_KEEP 12

/** The most bytes one read hands out. */
#define LS_DECOMP_CHUNK (128 * 1024)

struct ls_decomp;

/** Starts reading fd (borrowed, never seeked: a pipe is fine) and reads its
 *  first bytes to tell the format.  Returns 0 and *out, or a negative code
 *  with err filled. */
int ls_decomp_open(struct ls_decomp **out, int fd, struct ls_error *err);

/** The next decompressed bytes (at most LS_DECOMP_CHUNK): *buf stays valid for the
 *  next LS_DECOMP_KEEP - 1 calls.
 *  Returns their count (> 0); 0 once the whole stream was read and verified;
 *  or a negative code with err filled ("gzip member at byte N: CRC32
 *  mismatch"), the same on every later call. */
ssize_t ls_decomp_read(struct ls_decomp *d, const void **buf, struct ls_error *err);

/** The format found by ls_decomp_open. */
enum ls_decomp_kind ls_decomp_kind(const struct ls_decomp *d);

/** Frees the reader (the fd stays open); NULL is allowed. */
void ls_decomp_free(struct ls_decomp *d);

#endif
