/*
 * What ls_apply() wrote, for the manifest of the tree it made (apply
 * --manifest-out): each regular file put in place, its path, the stat it had
 * then and the XXH3-128 of the bytes written, so that the scan that records
 * the tree afterwards takes them from the stat cache instead of reading every
 * file again (layersnap.h "ls_apply_record").
 */
#ifndef LS_RECORD_H
#define LS_RECORD_H

#include "layersnap.h"

#include <sys/stat.h>

/** Notes the file at path (relative to ROOT, normalised) as now in place,
 *  with st and the hash of its bytes.  A later note of the same path wins.
 *  Returns 0 or -ENOMEM. */
int ls_record_add(ls_apply_record *r, const char *path, const struct stat *st, const uint8_t hash[16]);

#endif
