#include "modes.h"

/* Kaniko's MtimeHasher: a file changed when its mtime moved. */
const struct ls_mode_ops ls_mode_time = {
	.mode = LS_MODE_TIME,
	.name = "time",
	.fields = LS_F_MTIME,
};
