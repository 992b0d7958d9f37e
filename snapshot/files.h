/*
 * ls_scan_files() and ls_diff_files() (layersnap.h "files"): a scan or diff
 * with its outputs opened, kept out of the walk, written and committed in
 * the command line's order.  The module is the public API and nothing else;
 * the atomic files themselves are output.h's.
 */
#ifndef LS_FILES_H
#define LS_FILES_H

#include "layersnap.h"

/** Bytes of layer in its temporary when the "write" step is called. */
#define LS_STEP_WRITE_BYTES ((uint64_t)1 << 20)

#endif
