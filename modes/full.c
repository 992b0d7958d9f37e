#include "modes.h"

/* Kaniko's default: content too.  The stat cache (walk.c) keeps this cheap. */
const struct ls_mode_ops ls_mode_full = {
	.mode = LS_MODE_FULL,
	.name = "full",
	.fields = LS_F_MTIME | LS_F_SIZE | LS_F_PERM | LS_F_OWNER | LS_F_TARGET | LS_F_HASH | LS_F_XATTRS,
};
