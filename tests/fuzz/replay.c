/*
 * Replays inputs through a fuzz target without libFuzzer: linked with one
 * tests/fuzz/fuzz_*.c (with any compiler, with or without sanitizers), it
 * runs LLVMFuzzerTestOneInput once per file.
 *
 *   replay-TARGET PATH...
 *
 * A PATH that is a directory stands for its files (not its dot files nor
 * README*), in name order; a PATH that does not exist is skipped (a target
 * may have no regression inputs yet).  Each input is read into a buffer of
 * exactly its size, so that a sanitizer sees any read past its end.  Prints
 * "replay: FILE" before each input and "N inputs" at the end; exits 0, or
 * aborts in the target on a violated invariant.
 */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static unsigned long n_inputs;

static void run_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		FUZZ_DIE("%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0)
		FUZZ_DIE("%s: %s", path, strerror(errno));
	size_t len = (size_t)st.st_size;
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		FUZZ_DIE("%s: out of memory", path);
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			FUZZ_DIE("%s: short read", path);
		got += (size_t)n;
	}
	close(fd);
	printf("replay: %s\n", path);
	fflush(stdout);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	n_inputs++;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_path(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		if (errno == ENOENT)
			return;
		FUZZ_DIE("%s: %s", path, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode)) {
		run_file(path);
		return;
	}
	DIR *d = opendir(path);
	if (!d)
		FUZZ_DIE("%s: %s", path, strerror(errno));
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || strncmp(e->d_name, "README", 6) == 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			names = realloc(names, cap * sizeof(*names));
			if (!names)
				FUZZ_DIE("out of memory");
		}
		size_t l = strlen(path) + 1 + strlen(e->d_name) + 1;
		if (!(names[n] = malloc(l)))
			FUZZ_DIE("out of memory");
		snprintf(names[n], l, "%s/%s", path, e->d_name);
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		struct stat fst;
		if (stat(names[i], &fst) == 0 && S_ISREG(fst.st_mode))
			run_file(names[i]);
		free(names[i]);
	}
	free(names);
}

int main(int argc, char **argv)
{
	LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++)
		run_path(argv[i]);
	printf("%lu inputs\n", n_inputs);
	return 0;
}
