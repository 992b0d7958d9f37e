/*
 * Shared by the fuzz targets (tests/fuzz/fuzz_*.c).  Each target defines the
 * libFuzzer entry points below; built with clang -fsanitize=fuzzer it is a
 * libFuzzer binary (make fuzz), built with replay.c (any compiler, make
 * test) it is a replay binary that runs the files it is given.
 */
#ifndef LS_FUZZ_H
#define LS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test: a violation aborts, which libFuzzer
 * records as a crash (and the replay binary reports as a failure). */
#define FUZZ_CHECK(cond, ...)                                                         \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "%s:%d: fuzz check failed: %s: ", __FILE__, __LINE__, \
				#cond);                                               \
			fprintf(stderr, __VA_ARGS__);                                 \
			fputc('\n', stderr);                                          \
			abort();                                                      \
		}                                                                     \
	} while (0)

/* A failure of the harness itself (not of the code under test). */
#define FUZZ_DIE(...)                                        \
	do {                                                 \
		fprintf(stderr, "fuzz harness: " __VA_ARGS__); \
		fputc('\n', stderr);                         \
		exit(99);                                    \
	} while (0)

/* An error message as the library promises it: "what: why", one line. */
#define FUZZ_CHECK_ERROR(rc, err)                                                          \
	FUZZ_CHECK((rc) < 0 && (err).msg[0] && !strchr((err).msg, '\n') && (err).code > 0, \
		   "rc %d, code %d, message '%s'", (int)(rc), (err).code, (err).msg)

#endif
