/*
 * rewriter: rewrites files in place, for the torn-read race test.  Each
 * rewrite is one pwrite(2) from offset 0 of the file's whole size (the size
 * it had at start), all 'A' bytes or all 'B' bytes, alternating per file;
 * the files are rewritten in turn, in a tight loop.  The size never changes,
 * so a reader that straddles a rewrite gets a mix of 'A' and 'B' bytes.  A
 * file whose first byte is 'A' is first rewritten with 'B', and the other
 * way round.
 *
 *   rewriter [-t SECONDS] [-p MS] FILE...
 *
 * Runs for SECONDS (default: until SIGTERM or SIGINT).  With -p, it sleeps
 * after each round over the files for a random 0 to 2 * MS milliseconds (MS
 * on average), so that a reader is sometimes left alone: the tight loop
 * alone makes nearly every read of the files straddle a rewrite.  On exit it
 * prints one line on stderr:
 *
 *   rewriter: N rewrites in S s of writing (W s with sleeps and pauses), R per second of writing
 *
 * where S is the time spent in the rewrites themselves.  Exits 0, or 1 on
 * any error (a file that cannot be opened or written).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct target {
	const char *path;
	int fd;
	size_t size;
	char next;   /* the byte of the next rewrite */
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One whole-file pwrite from offset 0 (continued after a short write). */
static int rewrite(const struct target *t, const char *buf)
{
	size_t done = 0;
	while (done < t->size) {
		ssize_t w = pwrite(t->fd, buf + done, t->size - done, (off_t)done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		done += (size_t)w;
	}
	return 0;
}

int main(int argc, char **argv)
{
	double limit = 0, pause_ms = 0;
	int opt;
	while ((opt = getopt(argc, argv, "t:p:")) != -1) {
		if (opt == 't') {
			limit = strtod(optarg, NULL);
		} else if (opt == 'p') {
			pause_ms = strtod(optarg, NULL);
		} else {
			fputs("usage: rewriter [-t SECONDS] [-p MS] FILE...\n", stderr);
			return 2;
		}
	}
	int n_targets = argc - optind;
	if (n_targets < 1) {
		fputs("usage: rewriter [-t SECONDS] [-p MS] FILE...\n", stderr);
		return 2;
	}
	struct target *t = calloc((size_t)n_targets, sizeof(*t));
	if (!t)
		return 1;
	size_t max = 1;
	for (int i = 0; i < n_targets; i++) {
		t[i].path = argv[optind + i];
		t[i].fd = open(t[i].path, O_RDWR | O_CLOEXEC);
		struct stat st;
		char first = 'A';
		if (t[i].fd < 0 || fstat(t[i].fd, &st) != 0) {
			fprintf(stderr, "rewriter: %s: %s\n", t[i].path, strerror(errno));
			return 1;
		}
		if (pread(t[i].fd, &first, 1, 0) < 0)
			first = 'A';
		t[i].size = (size_t)st.st_size;
		t[i].next = first == 'A' ? 'B' : 'A';
		if (t[i].size > max)
			max = t[i].size;
	}
	char *a = malloc(max), *b = malloc(max);
	if (!a || !b)
		return 1;
	memset(a, 'A', max);
	memset(b, 'B', max);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	double start = now(), writing = 0;
	uint64_t rng = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL) ^ 0x9e3779b97f4a7c15u;
	unsigned long long n = 0;
	int rc = 0;
	while (!stop && rc == 0) {
		for (int i = 0; i < n_targets && !stop; i++) {
			double t0 = now();
			if (rewrite(&t[i], t[i].next == 'A' ? a : b) != 0) {
				fprintf(stderr, "rewriter: %s: %s\n", t[i].path, strerror(errno));
				rc = 1;
				break;
			}
			writing += now() - t0;
			t[i].next = t[i].next == 'A' ? 'B' : 'A';
			n++;
		}
		if (limit > 0 && now() - start >= limit)
			break;
		if (pause_ms > 0 && !stop && rc == 0) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			long long ns = (long long)(2e6 * pause_ms * (double)(rng % 1000000) / 1e6);
			struct timespec ts = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) };
			nanosleep(&ts, NULL);
		}
	}
	fprintf(stderr, "rewriter: %llu rewrites in %.2f s of writing (%.2f s with sleeps and pauses), "
		"%.0f per second of writing\n", n, writing, now() - start,
		writing > 0 ? (double)n / writing : 0.0);
	for (int i = 0; i < n_targets; i++)
		close(t[i].fd);
	free(a);
	free(b);
	free(t);
	return rc;
}
