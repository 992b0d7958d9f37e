/*
 * The manifest: one 96-byte record per entry in walk order plus a pool of
 * path, symlink-target and xattr bytes.  On disk (little-endian):
 *
 *   header (64 bytes + option block, padded to 8) | records | pool | XXH3-64
 *
 * The trailing XXH3-64 covers every byte before it.  A loaded manifest is
 * mmap'ed and used in place after verification; a built one lives in growing
 * heap arrays.  Both are the same struct.
 */
#ifndef LS_MANIFEST_H
#define LS_MANIFEST_H

#include "layersnap.h"

#include <string.h>
#include <sys/types.h>

#define LS_MANIFEST_MAGIC   "LAYRSNAP"
#define LS_MANIFEST_VERSION 1u

/* Flags kept in the high 16 bits of ls_rec.mode; the low 16 are st_mode. */
#define LS_REC_HASHED     (1u << 16)  /* hash[] holds the content's XXH3-128 */
#define LS_REC_MOUNTPOINT (1u << 17)  /* directory not descended (--one-file-system) */
#define LS_REC_FLAGS_MASK 0xffff0000u
#define LS_REC_MODE_MASK  0x0000ffffu

/** One entry; exactly 96 bytes, the on-disk layout. */
struct ls_rec {
	uint64_t size;
	int64_t mtime_ns;
	int64_t ctime_ns;
	uint64_t dev;
	uint64_t ino;
	uint64_t rdev;
	uint32_t mode;       /* st_mode | LS_REC_* flags */
	uint32_t uid, gid;
	uint32_t nlink;
	uint8_t hash[16];
	uint64_t aux_off;    /* pool offset of: path NUL link NUL xattrs */
	uint16_t path_len;
	uint16_t link_len;
	uint32_t xattr_len;
};

_Static_assert(sizeof(struct ls_rec) == 96, "manifest record must be 96 bytes");

struct ls_manifest {
	enum ls_mode mode;
	enum ls_xattrs xattrs;
	bool one_file_system;
	int64_t start_sec;           /* scan start (CLOCK_REALTIME), for the racy check */
	uint32_t start_nsec;
	char *options;               /* excludes, NUL-separated, sorted */
	size_t options_len;
	size_t n_excludes;

	struct ls_rec *recs;
	size_t n, cap;
	char *pool;
	size_t pool_len, pool_cap;

	void *map;                   /* non-NULL: recs and pool point into it */
	size_t map_len;
};

/** Xattr blob encoding, per attribute: u16 name_len, u32 value_len, name, value;
 *  sorted by name, no duplicates. */
#define LS_XATTR_HDR 6

/** Creates an empty manifest with the given settings; excludes are copied,
 *  normalised ("/a//b/" -> "a/b") and sorted. */
int ls_manifest_create(ls_manifest **out, enum ls_mode mode, enum ls_xattrs xattrs,
		       bool one_file_system, const char *const *excludes, size_t n_excludes,
		       struct ls_error *err);

/** Appends a record; r's aux fields are filled from the given bytes, which
 *  are copied into the pool.  Returns 0 or -ENOMEM / -ENAMETOOLONG. */
int ls_manifest_append(ls_manifest *m, const struct ls_rec *r, const char *path, size_t path_len,
		       const char *link, size_t link_len, const void *xattrs, size_t xattr_len,
		       struct ls_error *err);

/** Appends a copy of record i of src (used to carry base entries over). */
int ls_manifest_append_from(ls_manifest *m, const ls_manifest *src, size_t i, struct ls_error *err);

/** Whole seconds of a nanosecond timestamp, rounded down (also before 1970):
 *  what a layer keeps of an mtime. */
static inline int64_t ls_ns_to_sec(int64_t ns)
{
	return ns >= 0 ? ns / 1000000000 : -((-(ns + 1)) / 1000000000) - 1;
}

static inline const char *ls_rec_path(const ls_manifest *m, const struct ls_rec *r)
{
	return m->pool + r->aux_off;
}

static inline const char *ls_rec_link(const ls_manifest *m, const struct ls_rec *r)
{
	return m->pool + r->aux_off + r->path_len + 1;
}

static inline const unsigned char *ls_rec_xattrs(const ls_manifest *m, const struct ls_rec *r)
{
	return (const unsigned char *)m->pool + r->aux_off + r->path_len + 1 + r->link_len + 1;
}

/** True when path (len bytes) lies below directory dir (dlen bytes). */
static inline bool ls_path_is_under(const char *path, size_t len, const char *dir, size_t dlen)
{
	return len > dlen && path[dlen] == '/' && memcmp(path, dir, dlen) == 0;
}

/** Grows an array of elem-byte items to hold at least need (doubling, from
 *  1024).  Returns 0 or -ENOMEM, leaving the array as it was. */
int ls_grow(void **buf, size_t *cap, size_t need, size_t elem);

/** Walk order: bytewise, with '/' before every other byte.  Returns <0, 0, >0. */
int ls_path_cmp(const char *a, size_t alen, const char *b, size_t blen);

/** Index of the record with exactly this path, or -1. */
ssize_t ls_manifest_find(const ls_manifest *m, const char *path, size_t len);

/** Index of the first record whose path is >= path in walk order (n if none). */
size_t ls_manifest_lower_bound(const ls_manifest *m, const char *path, size_t len);

/** Normalises an exclude/relative path in place: strips leading and trailing
 *  '/', collapses "//" and "./" components.  Returns its new length, or -1
 *  when it contains "..". */
ssize_t ls_normalize_relpath(char *p);

/** Serialises to fd (for tests and ls_manifest_save).  Returns 0 or negative. */
int ls_manifest_write_fd(const ls_manifest *m, int fd, struct ls_error *err);

/** Parses and verifies a manifest held in memory (buf, len); on success the
 *  manifest borrows buf (caller keeps it alive; free with ls_manifest_free,
 *  which does not free buf).  `name` is used in messages. */
int ls_manifest_parse(const void *buf, size_t len, const char *name, ls_manifest **out,
		      struct ls_error *err);

/** The i-th exclude of the option block, for messages and checks. */
const char *ls_manifest_exclude(const ls_manifest *m, size_t i);

#endif
