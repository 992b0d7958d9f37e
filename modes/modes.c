#include "modes.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

const struct ls_mode_ops *ls_mode_ops_of(enum ls_mode mode)
{
	switch (mode) {
	case LS_MODE_TIME:
		return &ls_mode_time;
	case LS_MODE_REDO:
		return &ls_mode_redo;
	case LS_MODE_FULL:
		break;
	}
	return &ls_mode_full;
}

const char *ls_mode_name(enum ls_mode mode)
{
	return ls_mode_ops_of(mode)->name;
}

int ls_mode_parse(const char *s, enum ls_mode *out)
{
	if (!s || !out)
		return -EINVAL;
	static const struct ls_mode_ops *const all[] = { &ls_mode_time, &ls_mode_redo, &ls_mode_full };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (strcmp(s, all[i]->name) == 0) {
			*out = all[i]->mode;
			return 0;
		}
	}
	return -EINVAL;
}

/* An mtime as rule mt compares it: the layer writer keeps whole seconds and
 * clamps those (not the nanoseconds) to the epoch, and so does this. */
static int64_t mtime_key(const struct ls_mtime_rule *mt, int64_t ns)
{
	if (!mt || (!mt->seconds && !mt->have_epoch))
		return ns;
	int64_t s = ls_ns_to_sec(ns);
	return mt->have_epoch && s > mt->epoch ? mt->epoch : s;
}

unsigned int ls_mode_diff_fields(const struct ls_mode_ops *ops, const ls_manifest *ma,
				 const struct ls_rec *a, const ls_manifest *mb, const struct ls_rec *b,
				 bool mtime_seconds)
{
	struct ls_mtime_rule mt = { .seconds = mtime_seconds };
	return ls_mode_diff_fields_rule(ops, ma, a, mb, b, &mt);
}

unsigned int ls_mode_diff_fields_rule(const struct ls_mode_ops *ops, const ls_manifest *ma,
				      const struct ls_rec *a, const ls_manifest *mb, const struct ls_rec *b,
				      const struct ls_mtime_rule *mt)
{
	unsigned int f = ops->fields, d = 0;
	bool is_dir = S_ISDIR(a->mode);
	if ((f & LS_F_MTIME) && mtime_key(mt, a->mtime_ns) != mtime_key(mt, b->mtime_ns))
		d |= LS_F_MTIME;
	/* A directory's size is file-system bookkeeping, not content. */
	if ((f & LS_F_SIZE) && !is_dir && a->size != b->size)
		d |= LS_F_SIZE;
	if ((f & LS_F_PERM) && (a->mode & 07777) != (b->mode & 07777))
		d |= LS_F_PERM;
	if ((f & LS_F_OWNER) && (a->uid != b->uid || a->gid != b->gid))
		d |= LS_F_OWNER;
	if (f & LS_F_TARGET) {
		/* targets are NUL-terminated and hold no NUL */
		if (S_ISLNK(a->mode) && strcmp(ls_rec_link(ma, a), ls_rec_link(mb, b)) != 0)
			d |= LS_F_TARGET;
		if ((S_ISCHR(a->mode) || S_ISBLK(a->mode)) && a->rdev != b->rdev)
			d |= LS_F_TARGET;
	}
	if ((f & LS_F_HASH) && S_ISREG(a->mode)) {
		if (!(a->mode & LS_REC_HASHED) || !(b->mode & LS_REC_HASHED) ||
		    memcmp(a->hash, b->hash, sizeof(a->hash)) != 0)
			d |= LS_F_HASH;
	}
	if ((f & LS_F_XATTRS) && (a->xattr_len != b->xattr_len ||
	    memcmp(ls_rec_xattrs(ma, a), ls_rec_xattrs(mb, b), a->xattr_len) != 0))
		d |= LS_F_XATTRS;
	return d;
}
