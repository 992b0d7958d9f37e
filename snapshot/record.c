/* What ls_apply() wrote, as the base of the scan after it: see record.h. */
#include "record.h"
#include "error.h"
#include "manifest.h"
#include "path.h"
#include "sized.h"
#include "xattr.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct noted {
	char *path;
	size_t len;
	size_t order;               /* the later note of a path wins */
	struct ls_rec rec;
};

struct ls_apply_record {
	struct noted *v;
	size_t n, cap;
};

int ls_apply_record_new(ls_apply_record **out, struct ls_error *err)
{
	if (!out)
		return ls_fail(err, EINVAL, "apply record: nowhere to put it");
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : ls_fail(err, ENOMEM, "apply record: out of memory");
}

void ls_apply_record_free(ls_apply_record *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].path);
	free(r->v);
	free(r);
}

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

int ls_record_add(ls_apply_record *r, const char *path, const struct stat *st, const uint8_t hash[16])
{
	if (ls_grow((void **)&r->v, &r->cap, r->n + 1, sizeof(*r->v)))
		return -ENOMEM;
	struct noted *o = &r->v[r->n];
	memset(o, 0, sizeof(*o));
	if (!(o->path = strdup(path)))
		return -ENOMEM;
	o->len = strlen(path);
	o->order = r->n;
	o->rec = (struct ls_rec){
		.size = (uint64_t)st->st_size, .mtime_ns = ts_ns(&st->st_mtim), .ctime_ns = ts_ns(&st->st_ctim),
		.dev = st->st_dev, .ino = st->st_ino, .mode = (uint32_t)st->st_mode | LS_REC_HASHED,
		.uid = st->st_uid, .gid = st->st_gid, .nlink = (uint32_t)st->st_nlink,
	};
	memcpy(o->rec.hash, hash, 16);
	r->n++;
	return 0;
}

static int cmp_noted(const void *a, const void *b)
{
	const struct noted *x = a, *y = b;
	int c = ls_path_cmp(x->path, x->len, y->path, y->len);
	return c ? c : (x->order > y->order) - (x->order < y->order);
}

int ls_apply_record_base(ls_apply_record *r, const char *root, const struct ls_walk_options *opts,
			 ls_manifest **out, struct ls_error *err)
{
	if (!out)
		return ls_fail(err, EINVAL, "apply record: nowhere to put the base");
	*out = NULL;
	if (!r || !root)
		return ls_fail(err, EINVAL, "apply record: no record or root");
	struct ls_walk_options o;
	int rc = ls_walk_options_in(&o, opts, "apply record: options", err);
	if (rc)
		return rc;
	ls_manifest *m = NULL;
	rc = ls_manifest_create(&m, LS_MODE_FULL, o.xattrs, o.one_file_system, o.excludes, o.n_excludes, err);
	if (rc == 0 && o.n_exclude_patterns)
		rc = ls_manifest_set_patterns(m, o.exclude_patterns, o.n_exclude_patterns, err);
	if (rc)
		goto fail;
	/* Its scan start is now: a file written in the last few ticks is
	 * racy and read again, as for any base. */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	m->start_sec = now.tv_sec;
	m->start_nsec = (uint32_t)now.tv_nsec;
	int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		rc = ls_fail_errno(err, errno, "%s", root);
		goto fail;
	}
	qsort(r->v, r->n, sizeof(*r->v), cmp_noted);
	struct ls_dirchain *dirs = NULL;
	if (ls_dirchain_create(&dirs, rootfd)) {
		close(rootfd);
		rc = ls_fail(err, ENOMEM, "apply record: out of memory");
		goto fail;
	}
	for (size_t i = 0; i < r->n && rc == 0; i++) {
		struct noted *o2 = &r->v[i];
		if (i + 1 < r->n && r->v[i + 1].len == o2->len && memcmp(r->v[i + 1].path, o2->path, o2->len) == 0)
			continue;  /* written again later */
		/* The walk's stat cache takes a hit's xattrs with its hash, so
		 * they are read as the walk would read them. */
		const char *slash = memrchr(o2->path, '/', o2->len);
		const char *name = slash ? slash + 1 : o2->path;
		int dfd = ls_dirchain_get(dirs, o2->path, slash ? (size_t)(slash - o2->path) : 0);
		void *blob = NULL;
		size_t blob_len = 0;
		if (dfd < 0)
			continue;  /* gone since (a whiteout, a later layer): the walk decides */
		int xr = ls_xattrs_read(dfd, name, o2->rec.mode & LS_REC_MODE_MASK, o.xattrs, &blob, &blob_len);
		if (xr == 0)
			rc = ls_manifest_append(m, &o2->rec, o2->path, o2->len, NULL, 0, blob, blob_len, err);
		free(blob);
	}
	ls_dirchain_free(dirs);
	close(rootfd);
	if (rc)
		goto fail;
	*out = m;
	return 0;
fail:
	ls_manifest_free(m);
	return rc;
}
