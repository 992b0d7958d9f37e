/* Quoting of byte-string paths for people and tools. */
#ifndef LS_STRFMT_H
#define LS_STRFMT_H

#include <stddef.h>
#include <stdio.h>

/** JSON string: valid UTF-8 passes through; control characters, quote and
 *  backslash are escaped; a byte that is not part of valid UTF-8 becomes
 *  \udcXX, the lone low surrogate that Python's "surrogateescape" (PEP 383)
 *  maps back to byte XX, so that the byte 0xE9 and the character U+00E9 (é)
 *  stay distinct and every path round-trips (JSON cannot carry raw bytes). */
void ls_put_json_string(FILE *out, const char *s, size_t len);

/** A path as git quotes it: unchanged when plain, else in double quotes with
 *  C escapes (\t, \n, \", \\) and \ooo for other control and non-ASCII bytes. */
void ls_put_c_quoted(FILE *out, const char *s, size_t len);

/** vis(3) in the VIS_OCTAL | VIS_CSTYLE | VIS_GLOB style mtree reads back. */
void ls_put_vis(FILE *out, const char *s, size_t len);

#endif
