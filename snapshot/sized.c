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

int ls_sized_in(void *dst, size_t dst_size, const void *src, size_t min_size, const char *what,
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
		for (size_t i = dst_size; i < n; i++)
			if (p[i] != 0)
				return ls_fail(err, E2BIG, "%s: field at byte %zu is newer than this layersnap (%s)",
					       what, i, LAYERSNAP_VERSION);
		memcpy(dst, src, n < dst_size ? n : dst_size);
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
