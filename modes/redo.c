#include "modes.h"

/* Kaniko's RedoHasher: metadata only, no content reads. */
const struct ls_mode_ops ls_mode_redo = {
	.mode = LS_MODE_REDO,
	.name = "redo",
	.fields = LS_F_MTIME | LS_F_SIZE | LS_F_PERM | LS_F_OWNER | LS_F_TARGET,
};
