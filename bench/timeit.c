/*
 * timeit: run a command and record its cost, for bench/run.sh.
 *
 *   timeit OUT COMMAND [ARG...]
 *
 * Writes one line "WALL_S USER_S SYS_S MAXRSS_KB STATUS" to OUT (wall clock from
 * CLOCK_MONOTONIC, CPU and peak RSS from wait4's rusage of the command and every
 * descendant it waited for, microsecond resolution), and exits with the command's status
 * (128+N when killed by signal N).  /usr/bin/time -f '%e %U %S %M' rounds to 10 ms,
 * too coarse for the small trees.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fputs("usage: timeit OUT COMMAND [ARG...]\n", stderr);
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
		execvp(argv[2], argv + 2);
		fprintf(stderr, "timeit: %s: %s\n", argv[2], strerror(errno));
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
	fprintf(f, "%.6f %ld.%06ld %ld.%06ld %ld %d\n", wall,
	        (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec,
	        (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec, ru.ru_maxrss, rc);
	fclose(f);
	return rc;
}
