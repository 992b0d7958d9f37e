/* Versioned API structs: see sized.h. */
#include "sized.h"
#include "error.h"

#include <errno.h>
#include <string.h>

static size_t size_of(const void *s)
{
	size_t n;
	memcpy(&n, s, sizeof(n));
	return n;
}

int ls_sized_in(void *dst, size_t dst_size, size_t known, const void *src, size_t min_size, const char *what,
		struct ls_error *err)
{
	memset(dst, 0, dst_size);
	if (src) {
		size_t n = size_of(src);
		if (n < min_size)
			return ls_fail(err, EINVAL, "%s: struct_size %zu is not that of any version (set .struct_size = sizeof, "
				       "or use the LS_*_INIT initialiser)", what, n);
		/* A newer caller's extra fields must be unset: this library cannot
		 * honour them, and ignoring them would do something else. */
		const unsigned char *p = src;
		for (size_t i = known; i < n; i++)
			if (p[i] != 0)
				return ls_fail(err, E2BIG, "%s: field at byte %zu is newer than this layersnap (%s)",
					       what, i, LAYERSNAP_VERSION);
		memcpy(dst, src, n < known ? n : known);
	}
	memcpy(dst, &dst_size, sizeof(dst_size));
	return 0;
}

int ls_sized_check_out(const void *dst, size_t min_size, const char *what, struct ls_error *err)
{
	if (!dst)
		return 0;
	size_t n = size_of(dst);
	if (n < min_size)
		return ls_fail(err, EINVAL, "%s: struct_size %zu is not that of any version (set .struct_size = sizeof, "
			       "or use the LS_*_INIT initialiser)", what, n);
	return 0;
}

void ls_sized_out(void *dst, const void *src, size_t src_size)
{
	if (!dst)
		return;
	size_t n = size_of(dst);
	unsigned char *d = dst;
	memcpy(d + sizeof(n), (const unsigned char *)src + sizeof(n),
	       (n < src_size ? n : src_size) - sizeof(n));
	if (n > src_size)
		memset(d + src_size, 0, n - src_size);
}

/* count strings at v: present when counted, none NULL. */
static int check_strv(const char *const *v, size_t n, const char *what, const char *field, struct ls_error *err)
{
	if (n && !v)
		return ls_fail(err, EINVAL, "%s: %s: %zu counted, none given", what, field, n);
	for (size_t i = 0; i < n; i++)
		if (!v[i])
			return ls_fail(err, EINVAL, "%s: %s[%zu] is NULL", what, field, i);
	return 0;
}

int ls_walk_options_in(struct ls_walk_options *dst, const struct ls_walk_options *src, const char *what,
		       struct ls_error *err)
{
	int rc = ls_sized_in(dst, sizeof(*dst), LS_SIZE_TO(struct ls_walk_options, default_excludes), src,
			     LS_SIZE_TO(struct ls_walk_options, progress), what, err);
	if (rc == 0)
		rc = check_strv(dst->excludes, dst->n_excludes, what, "excludes", err);
	if (rc == 0)
		rc = check_strv(dst->exclude_patterns, dst->n_exclude_patterns, what, "exclude_patterns", err);
	if (rc == 0)
		rc = check_strv(dst->skip_paths, dst->n_skip, what, "skip_paths", err);
	return rc;
}

int ls_diff_options_in(struct ls_diff_options *dst, const struct ls_diff_options *src, const char *what,
		       struct ls_error *err)
{
	int rc = ls_sized_in(dst, sizeof(*dst), LS_SIZE_TO(struct ls_diff_options, upper_unchecked), src,
			     LS_SIZE_TO(struct ls_diff_options, write_ctx), what, err);
	if (rc == 0)
		rc = check_strv(dst->only_paths, dst->n_only_paths, what, "only_paths", err);
	return rc;
}
