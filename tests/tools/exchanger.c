/*
 * exchanger: swaps two paths with renameat2(RENAME_EXCHANGE) in a tight
 * loop, for the live-tree race tests (a directory and a symlink to somewhere
 * outside the tree trading places while a walk runs).
 *
 *   exchanger DIR1 DIR2 [SECONDS]
 *
 * Runs for SECONDS (default: until SIGTERM or SIGINT; 0 means the same).
 * On exit it prints one line on stderr:
 *
 *   exchanger: N exchanges in S s running (W s with pauses), R per second
 *
 * Exits 0, or 1 when the first exchange already fails (the paths are
 * missing, or the file system cannot exchange them).  A SIGSTOP/SIGCONT
 * pair pauses it; the running time and the rate leave the pauses out.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static volatile sig_atomic_t stop, resumed;
static double running, last_tick;

static void on_signal(int sig)
{
	if (sig == SIGCONT)
		resumed = 1;
	else
		stop = 1;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Adds the time since the last tick to the running time, unless a SIGCONT
 * came in between: the gap was a pause (SIGSTOP), not running time. */
static void tick(void)
{
	double t = now();
	if (resumed)
		resumed = 0;
	else
		running += t - last_tick;
	last_tick = t;
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4) {
		fputs("usage: exchanger DIR1 DIR2 [SECONDS]\n", stderr);
		return 2;
	}
	double limit = argc == 4 ? strtod(argv[3], NULL) : 0;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGCONT, &sa, NULL);

	double start = now();
	last_tick = start;
	unsigned long long n = 0, failed = 0;
	int last_errno = 0;
	while (!stop) {
		tick();
		if (renameat2(AT_FDCWD, argv[1], AT_FDCWD, argv[2], RENAME_EXCHANGE) == 0) {
			n++;
		} else {
			if (n == 0 && failed == 0) {
				fprintf(stderr, "exchanger: %s <-> %s: %s\n", argv[1], argv[2],
					strerror(errno));
				return 1;
			}
			failed++;
			last_errno = errno;
		}
		if (limit > 0 && ((n + failed) & 255) == 0 && now() - start >= limit)
			break;
	}
	tick();
	fprintf(stderr, "exchanger: %llu exchanges in %.2f s running (%.2f s with pauses), %.0f per second",
		n, running, now() - start, running > 0 ? (double)n / running : 0.0);
	if (failed)
		fprintf(stderr, " (%llu failed, last: %s)", failed, strerror(last_errno));
	fputc('\n', stderr);
	return 0;
}
