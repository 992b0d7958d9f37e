/*
 * XXH3, the content and manifest hash, at the CPU's best.  Debian's
 * libxxhash.so carries the x86 dispatch functions (xxh_x86dispatch.h): the
 * first call picks the SSE2, AVX2 or AVX-512 loop this CPU runs, and the
 * header maps the XXH3 one-shot and update functions onto them (the 128-bit
 * hash of a 4 KiB file: 410 ns plain, 131 ns dispatched, AVX-512 here).  The
 * hashes are the same either way; reset and digest are the plain ones.
 * Include this instead of <xxhash.h>.  libxxhash.a has no dispatch
 * functions: whatever links this links libxxhash.so (the Makefile's CLI_LIBS).
 */
#ifndef LS_XXH_H
#define LS_XXH_H

#include <xxhash.h>

#if (defined(__x86_64__) || defined(__i386__)) && defined(__has_include)
#if __has_include(<xxh_x86dispatch.h>)
#include <xxh_x86dispatch.h>
#endif
#endif

#endif
