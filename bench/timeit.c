/*
 * timeit: run a command and record its cost, for bench/run.sh.
 *
 *   timeit OUT [-o FILE] COMMAND [ARG...]
 *
 * -o FILE: the command's standard output goes to FILE (created or truncated),
 * as a shell's "> FILE" would send it; bench/run.sh then runs a single
 * command without a shell in between, whose start-up (~2 ms) is no part of
 * the command's cost.  Writes one line "WALL_S USER_S SYS_S MAXRSS_KB STATUS INBLOCK" to OUT (wall
 * clock from CLOCK_MONOTONIC, CPU, peak RSS and the 512-byte blocks read from storage from wait4's
 * rusage of the command and every descendant it waited for, microsecond resolution; INBLOCK shows
 * whether a warm run really was), and exits with the command's status
 * (128+N when killed by signal N).  /usr/bin/time -f '%e %U %S %M' rounds to 10 ms,
 * too coarse for the small trees.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *out_file = NULL;
	int cmd = 2;
	if (argc > 3 && strcmp(argv[2], "-o") == 0) {
		out_file = argv[3];
		cmd = 4;
	}
	if (argc <= cmd) {
		fputs("usage: timeit OUT [-o FILE] COMMAND [ARG...]\n", stderr);
		return 2;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid_t pid = fork();
	if (pid < 0) {
		perror("timeit: fork");
		return 2;
	}
	if (pid == 0) {
		if (out_file) {
			int fd = open(out_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0) {
				fprintf(stderr, "timeit: %s: %s\n", out_file, strerror(errno));
				_exit(127);
			}
		}
		execvp(argv[cmd], argv + cmd);
		fprintf(stderr, "timeit: %s: %s\n", argv[cmd], strerror(errno));
		_exit(127);
	}
	int st;
	struct rusage ru;
	while (wait4(pid, &st, 0, &ru) < 0)
		if (errno != EINTR) {
			perror("timeit: wait4");
			return 2;
		}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	FILE *f = fopen(argv[1], "w");
	if (!f) {
		perror(argv[1]);
		return 2;
	}
	double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	fprintf(f, "%.6f %ld.%06ld %ld.%06ld %ld %d %ld\n", wall,
	        (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec,
	        (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec, ru.ru_maxrss, rc, ru.ru_inblock);
	fclose(f);
	return rc;
}
