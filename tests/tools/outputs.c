/*
 * outputs: helpers for tests/e2e/outputs.sh (and the tests that need a held
 * MANIFEST.lock).
 *
 *   outputs is-temp ARG...
 *       For each ARG, prints "1 ARG" when ls_output_is_temp_name takes it for
 *       an output temporary's name, else "0 ARG".  In "NAME|REST" only NAME
 *       counts (len stops at the '|'): the bytes after it must not be read.
 *   outputs hold-lock FILE CMD [ARG...]
 *       Takes an OFD write lock on FILE (created when absent), as a running
 *       layersnap holds MANIFEST.lock, and execs CMD, which inherits the open
 *       file and so holds the lock until it exits.  Exits 125 when FILE
 *       cannot be locked, 127 when CMD cannot be run.
 */
#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int is_temp(int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		const char *bar = strchr(argv[i], '|');
		size_t len = bar ? (size_t)(bar - argv[i]) : strlen(argv[i]);
		printf("%d %s\n", ls_output_is_temp_name(argv[i], len) ? 1 : 0, argv[i]);
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

static int hold_lock(int argc, char **argv)
{
	if (argc < 2) {
		fputs("usage: outputs hold-lock FILE CMD [ARG...]\n", stderr);
		return 125;
	}
	/* No O_CLOEXEC: CMD keeps the open file, and with it the lock. */
	int fd = open(argv[0], O_RDWR | O_CREAT | O_NOCTTY, 0644);
	struct flock fl;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fd < 0 || fcntl(fd, F_OFD_SETLK, &fl) != 0) {
		fprintf(stderr, "outputs: %s: %s\n", argv[0], strerror(errno));
		return 125;
	}
	execvp(argv[1], argv + 1);
	fprintf(stderr, "outputs: %s: %s\n", argv[1], strerror(errno));
	return 127;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "is-temp") == 0)
		return is_temp(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "hold-lock") == 0)
		return hold_lock(argc - 2, argv + 2);
	fputs("usage: outputs is-temp ARG... | outputs hold-lock FILE CMD [ARG...]\n", stderr);
	return 2;
}
