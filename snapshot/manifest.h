/*
 * The manifest: one 96-byte record per entry in walk order plus a pool of
 * path, symlink-target and xattr bytes.  On disk, format 2 (little-endian):
 *
 *   offset  size  field
 *        0     8  magic "LAYRSNAP"
 *        8     4  u32 format version (2)
 *       12     4  u32 header_len: bytes before the first record, a multiple of 8
 *       16     1  u8 mode code (LS_CODE_MODE_*)
 *       17     1  u8 xattrs policy code (LS_CODE_XATTRS_*)
 *       18     2  u16 flags (LS_CODE_FLAG_*; unknown bits are refused)
 *       20     4  u32 start_nsec (< 10^9)
 *       24     8  i64 start_sec: scan start, for the racy check
 *   option block, at 32:
 *       32     4  u32 n_excludes
 *       36     4  u32 excludes_len
 *       40     4  u32 n_patterns
 *       44     4  u32 patterns_len
 *       48        excludes: n_excludes NUL-terminated paths, in walk order, unique
 *                 patterns: n_patterns NUL-terminated patterns, in their given
 *                 order (the last match wins), duplicates kept
 *                 zero bytes up to header_len
 *   header_len    n_entries records of 96 bytes (struct ls_rec)
 *                 pool_len bytes of pool
 *   trailer, the last 24 bytes:
 *                 u64 n_entries, u64 pool_len, u64 XXH3-64 of every byte before it
 *
 * Nothing before the records depends on them, so the file can be written as a
 * stream; the reader checks the trailer's sizes against the file's length
 * before the checksum.  Codes on disk are explicit, never the C enums' values.
 * A loaded manifest is mmap'ed and used in place after verification (records
 * are 8-byte aligned); a built one lives in growing heap arrays.  Both are the
 * same struct.
 */
#ifndef LS_MANIFEST_H
#define LS_MANIFEST_H

#include "layersnap.h"
#include "xattr.h"

#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#define LS_MANIFEST_MAGIC   "LAYRSNAP"
#define LS_MANIFEST_VERSION 2u

/* On-disk codes of the header (see above). */
#define LS_CODE_MODE_TIME         't'
#define LS_CODE_MODE_REDO         'r'
#define LS_CODE_MODE_FULL         'f'
#define LS_CODE_XATTRS_CAPABILITY 'c'
#define LS_CODE_XATTRS_ALL        'a'
#define LS_CODE_XATTRS_NONE       'n'
#define LS_CODE_FLAG_ONE_FS       0x0001u

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
	uint32_t path_len;
	uint32_t xattr_len;  /* a symlink target's length is its strlen: no NUL in it */
};

_Static_assert(sizeof(struct ls_rec) == 96, "manifest record must be 96 bytes");

struct ls_manifest {
	enum ls_mode mode;
	enum ls_xattrs xattrs;
	bool one_file_system;
	int64_t start_sec;           /* scan start (CLOCK_REALTIME), for the racy check */
	uint32_t start_nsec;
	char *options;               /* excludes, each NUL-terminated, in walk order */
	size_t options_len;
	size_t n_excludes;
	char *patterns;              /* patterns, each NUL-terminated, in given order */
	size_t patterns_len;
	size_t n_patterns;

	struct ls_rec *recs;
	size_t n, cap;
	char *pool;
	size_t pool_len, pool_cap;

	void *map;                   /* non-NULL: recs and pool point into it */
	size_t map_len;
	/* A loaded manifest (map non-NULL) never changes: what its check
	 * found, for ls_manifest_facts(). */
	struct ls_manifest_facts {
		bool whiteout_names;          /* an entry named .wh.* */
		bool hard_links;              /* a non-directory with nlink > 1 */
		bool any_dir, any_other;      /* directories; other entries */
		uint64_t dir_dev, other_dev;  /* the first one's device, of each kind */
		bool dir_devs_differ, other_devs_differ;  /* another device among them */
	} facts;
};

/* Xattr blobs: see xattr.h. */

/** Creates an empty manifest with the given settings; excludes are copied,
 *  normalised ("/a//b/" -> "a/b") and sorted. */
int ls_manifest_create(ls_manifest **out, enum ls_mode mode, enum ls_xattrs xattrs,
		       bool one_file_system, const char *const *excludes, size_t n_excludes,
		       struct ls_error *err);

/** Replaces the manifest's exclude patterns with a copy of patterns[0..n),
 *  kept in this order with duplicates (gitignore: the last match wins).
 *  Returns 0, or -EINVAL (an empty pattern, a loaded manifest), -E2BIG or
 *  -ENOMEM, leaving the previous list. */
int ls_manifest_set_patterns(ls_manifest *m, const char *const *patterns, size_t n,
			     struct ls_error *err);

/** Appends a record; r's aux fields are filled from the given bytes, which
 *  are copied into the pool.  Returns 0, or -EINVAL (empty path, NUL in the
 *  link, a loaded manifest), -ENAMETOOLONG (path over UINT32_MAX bytes),
 *  -E2BIG (xattrs over UINT32_MAX bytes) or -ENOMEM. */
int ls_manifest_append(ls_manifest *m, const struct ls_rec *r, const char *path, size_t path_len,
		       const char *link, size_t link_len, const void *xattrs, size_t xattr_len,
		       struct ls_error *err);

/** Removes the last record appended (and its pool bytes); the manifest must
 *  be a built one, not a loaded one, and not empty. */
void ls_manifest_pop(ls_manifest *m);

/** Replaces record i of m (a built manifest) with a copy of record j of src,
 *  which must have the same path.  Pointers into m's records and pool are
 *  invalid afterwards.  Returns 0 or -ENOMEM. */
int ls_manifest_set_from(ls_manifest *m, size_t i, const ls_manifest *src, size_t j, struct ls_error *err);

/** Gives record i of m (a built manifest) these xattrs instead of its own
 *  (its path and target are appended to the pool again with them; the old
 *  bytes stay unused).  Pointers into m's records and pool are invalid
 *  afterwards.  Returns 0 or -ENOMEM (-E2BIG for an oversized blob). */
int ls_manifest_set_xattrs(ls_manifest *m, size_t i, const void *xattrs, size_t len, struct ls_error *err);

/** Appends a copy of record i of src (used to carry base entries over). */
int ls_manifest_append_from(ls_manifest *m, const ls_manifest *src, size_t i, struct ls_error *err);

/** The part of a record an fstat of the entry's fd replaces (what a layer
 *  header says of it): size, timestamps, mode (r's flags kept), owner and
 *  link count. */
static inline void ls_rec_take_stat(struct ls_rec *r, const struct stat *st)
{
	r->size = (uint64_t)st->st_size;
	r->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	r->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
	r->mode = (r->mode & LS_REC_FLAGS_MASK) | (uint32_t)st->st_mode;
	r->uid = st->st_uid;
	r->gid = st->st_gid;
	r->nlink = (uint32_t)st->st_nlink;
}

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

/** Length of r's symlink target (0 when none was recorded): targets hold no NUL. */
static inline size_t ls_rec_link_len(const ls_manifest *m, const struct ls_rec *r)
{
	const char *link = ls_rec_link(m, r);
	return *link ? strlen(link) : 0;  /* most records have none: no call */
}

static inline const unsigned char *ls_rec_xattrs(const ls_manifest *m, const struct ls_rec *r)
{
	return (const unsigned char *)ls_rec_link(m, r) + ls_rec_link_len(m, r) + 1;
}

/** True when path (len bytes) lies below directory dir (dlen bytes). */
static inline bool ls_path_is_under(const char *path, size_t len, const char *dir, size_t dlen)
{
	return len > dlen && path[dlen] == '/' && memcmp(path, dir, dlen) == 0;
}

/** Grows an array of elem-byte items to hold at least need (doubling, from
 *  16).  Returns 0 or -ENOMEM, leaving the array as it was. */
int ls_grow(void **buf, size_t *cap, size_t need, size_t elem);

/** Walk order: bytewise, with '/' before every other byte.  Returns <0, 0, >0. */
int ls_path_cmp(const char *a, size_t alen, const char *b, size_t blen);

/** Index of the record with exactly this path, or -1. */
ssize_t ls_manifest_find(const ls_manifest *m, const char *path, size_t len);

/** The same among records [lo, hi) (lo <= hi <= n), which hold path's
 *  record if m has one (a directory's subtree holds its children's), for a
 *  caller whose paths come in walk order: *cursor is where its last search
 *  ended.  The search gallops from *cursor when lo < *cursor <= hi and the
 *  record before it sorts before path, from lo when *cursor is lo, and
 *  bisects the range otherwise (SIZE_MAX, say); *cursor becomes the index
 *  just past the record found, or where path would go (in [lo, hi]). */
ssize_t ls_manifest_find_in(const ls_manifest *m, size_t lo, size_t hi, size_t *cursor, const char *path,
			    size_t len);

/** Index just past record i and, for a directory, its subtree (which
 *  follows it directly in walk order). */
size_t ls_manifest_subtree_end(const ls_manifest *m, size_t i);

/** What a pass over all of m's records tells: kept from the load for a
 *  loaded manifest, found by a pass now for one built in memory. */
void ls_manifest_facts(const ls_manifest *m, struct ls_manifest_facts *out);

/** Index of the first record whose path is >= path in walk order (n if none). */
size_t ls_manifest_lower_bound(const ls_manifest *m, const char *path, size_t len);

/** The same among records [lo, hi) (hi <= n): the first there whose path is
 *  >= path, hi if none. */
size_t ls_manifest_lower_bound_in(const ls_manifest *m, size_t lo, size_t hi, const char *path, size_t len);

/** The same, found by galloping forward from lo: O(log(result - lo)), for a
 *  caller whose paths come in walk order (a cursor). */
size_t ls_manifest_lower_bound_from(const ls_manifest *m, size_t lo, size_t hi, const char *path, size_t len);

/** Serialises to fd (for tests and ls_manifest_save).  Returns 0 or negative. */
int ls_manifest_write_fd(const ls_manifest *m, int fd, struct ls_error *err);

/* A manifest written as a stream, for one put together while it is written
 * (see ls_carry_write_fd): the header, then the records and the pool in file
 * order, then the trailer, with the checksum taken on the way.  The writer
 * owns a buffer; fd stays the caller's. */
struct ls_manifest_writer {
	int fd;
	struct XXH3_state_s *st;
	char *buf;
	size_t len;
};

/** Starts w on fd and writes the header of m's settings (mode, xattrs
 *  policy, start time, options; not its records).  Returns 0 or negative,
 *  with w freed. */
int ls_manifest_writer_begin(struct ls_manifest_writer *w, const ls_manifest *m, int fd, struct ls_error *err);

/** Appends len bytes (records, then pool bytes).  Returns 0 or -errno of the
 *  write; w must then be freed. */
int ls_manifest_writer_put(struct ls_manifest_writer *w, const void *p, size_t len);

/** Writes the trailer for n_entries records and pool_len pool bytes (what
 *  was put) and frees w, on every path.  Returns 0 or negative. */
int ls_manifest_writer_end(struct ls_manifest_writer *w, uint64_t n_entries, uint64_t pool_len,
			   struct ls_error *err);

/** Frees w without finishing it (after a failure). */
void ls_manifest_writer_free(struct ls_manifest_writer *w);

/** A manifest being loaded (ls_manifest_load) on a thread of its own, so
 *  that the caller can do other work meanwhile (diff --upper lists the upper
 *  directory while its base loads). */
struct ls_manifest_loading;

/** Starts loading path (borrowed until ls_manifest_load_finish).  When no
 *  thread can be started the load is done here, before returning.  Returns
 *  0 and *out, or -ENOMEM. */
int ls_manifest_load_start(struct ls_manifest_loading **out, const char *path);

/** Waits for the load and frees l: ls_manifest_load's return value, with
 *  *out and *err as it would set them. */
int ls_manifest_load_finish(struct ls_manifest_loading *l, ls_manifest **out, struct ls_error *err);

/** Parses and verifies a manifest held in memory (buf, len); on success the
 *  manifest borrows buf (caller keeps it alive; free with ls_manifest_free,
 *  which does not free buf).  `name` is used in messages. */
int ls_manifest_parse(const void *buf, size_t len, const char *name, ls_manifest **out,
		      struct ls_error *err);

/** Chooses where ls_manifest_parse splits the records' check between two
 *  threads (a large manifest's: see manifest.c). */
#define LS_CHECK_SPLIT_AUTO SIZE_MAX

/** ls_manifest_parse with the records from index split on (0 < split < n)
 *  checked on a second thread, 0 for none, or LS_CHECK_SPLIT_AUTO: for the
 *  tests, which show that every split gives the same result and message. */
int ls_manifest_parse_split(const void *buf, size_t len, const char *name, size_t split, ls_manifest **out,
			    struct ls_error *err);

/** The i-th exclude of the option block, for messages and checks. */
const char *ls_manifest_exclude(const ls_manifest *m, size_t i);

/** The i-th pattern of the option block (i < n_patterns), in given order. */
const char *ls_manifest_pattern(const ls_manifest *m, size_t i);

#endif
