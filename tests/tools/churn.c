/*
 * churn: creates and deletes many small files and some directories in a
 * loop, for the create/delete race test.  Every name it creates is new (its
 * pid and a counter), so a path never names two different inodes over time:
 * a walker racing it sees entries appear and vanish, never replaced.  Files
 * with content are written in STAGE (same file system, outside the tree)
 * and renamed into place, so nobody sees one half-written; some are created
 * empty in place (and never written).  Directories are built in STAGE and renamed in, or made in
 * place and filled by renames.  The entries each DIR held at start are
 * deleted too, at most RATE a second (files unlinked, directories removed
 * with everything in them).
 *
 *   churn [-t SECONDS] [-r RATE] [-S SEED] STAGE DIR...
 *
 * Runs for SECONDS (default: until SIGTERM or SIGINT).  RATE defaults to
 * 20.  On exit it prints one line on stderr:
 *
 *   churn: N operations in S s running (W s with pauses), R per second (...)
 *
 * where an operation is one create, delete, mkdir, rmdir or rename, and the
 * running time leaves out SIGSTOP pauses.  Exits
 * 0, or 1 on any unexpected error (it is the only writer in its DIRs).
 * A SIGSTOP/SIGCONT pair pauses it; missed start-time deletions are not
 * caught up after a pause.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_FILES 300
#define MAX_DIRS 24
#define DIR_KIDS 3


static unsigned long long ops;
static uint64_t rng;

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

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static unsigned pick(unsigned n)
{
	return (unsigned)(next_rand() % n);
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "churn: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

static char *join(const char *dir, const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s", dir, name) < 0) {
		fputs("churn: out of memory\n", stderr);
		exit(1);
	}
	return p;
}

/* A small file at path (empty when lines is 0), written in full; O_EXCL:
 * names are never reused. */
static void write_file(const char *path, unsigned long long tag, unsigned lines)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		die("create", path);
	ops++;
	char line[64];
	int len = snprintf(line, sizeof(line), "churn %llu\n", tag);
	for (unsigned i = lines; i > 0; i--)
		if (write(fd, line, (size_t)len) != len)
			die("write", path);
	if (close(fd) != 0)
		die("close", path);
}

static void do_rename(const char *from, const char *to)
{
	if (rename(from, to) != 0)
		die("rename to", to);
	ops++;
}

/* Removes path and, for a directory, everything below it. */
static void remove_tree(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		die("lstat", path);
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		if (!d)
			die("opendir", path);
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			char *kid = join(path, de->d_name);
			remove_tree(kid);
			free(kid);
		}
		closedir(d);
		if (rmdir(path) != 0)
			die("rmdir", path);
	} else if (unlink(path) != 0) {
		die("unlink", path);
	}
	ops++;
}

int main(int argc, char **argv)
{
	double limit = 0, rate = 20;
	unsigned long long seed = 0;
	int opt;
	while ((opt = getopt(argc, argv, "t:r:S:")) != -1) {
		switch (opt) {
		case 't': limit = strtod(optarg, NULL); break;
		case 'r': rate = strtod(optarg, NULL); break;
		case 'S': seed = strtoull(optarg, NULL, 0); break;
		default:
			fputs("usage: churn [-t SECONDS] [-r RATE] [-S SEED] STAGE DIR...\n", stderr);
			return 2;
		}
	}
	if (argc - optind < 2) {
		fputs("usage: churn [-t SECONDS] [-r RATE] [-S SEED] STAGE DIR...\n", stderr);
		return 2;
	}
	const char *stage = argv[optind];
	char **dirs = argv + optind + 1;
	unsigned n_dirs = (unsigned)(argc - optind - 1);
	rng = seed ? seed : ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL) ^ 0x9e3779b97f4a7c15u;
	if (!rng)
		rng = 1;

	/* The entries the DIRs hold at start. */
	char **base = NULL;
	size_t n_base = 0, cap_base = 0;
	for (unsigned i = 0; i < n_dirs; i++) {
		DIR *d = opendir(dirs[i]);
		if (!d)
			die("opendir", dirs[i]);
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (n_base == cap_base) {
				cap_base = cap_base ? 2 * cap_base : 256;
				base = realloc(base, cap_base * sizeof(*base));
				if (!base)
					return 1;
			}
			base[n_base++] = join(dirs[i], de->d_name);
		}
		closedir(d);
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGCONT, &sa, NULL);

	char *files[MAX_FILES], *subdirs[MAX_DIRS];
	unsigned n_files = 0, n_subdirs = 0;
	unsigned long long counter = 0, made = 0, unmade = 0, dmade = 0, dunmade = 0, bgone = 0;
	int pid = (int)getpid();
	double start = now(), next_base = start;
	last_tick = start;
	char name[64];

	while (!stop) {
		tick();
		double t = now();
		if (limit > 0 && t - start >= limit)
			break;
		if (rate > 0 && n_base > 0 && t >= next_base) {
			size_t k = pick((unsigned)n_base);
			remove_tree(base[k]);
			free(base[k]);
			base[k] = base[--n_base];
			bgone++;
			next_base = t + 1.0 / rate;
			continue;
		}
		unsigned r = pick(100);
		if (r < 90) {
			bool create = n_files == 0 || (n_files < MAX_FILES && r < 45);
			if (create) {
				snprintf(name, sizeof(name), "c%d-%llu", pid, ++counter);
				char *path = join(dirs[pick(n_dirs)], name);
				if (pick(5) == 0) {
					write_file(path, counter, 0);   /* empty, in place */
				} else {
					snprintf(name, sizeof(name), "s%d-%llu", pid, counter);
					char *tmp = join(stage, name);
					write_file(tmp, counter, 1 + pick(8));
					do_rename(tmp, path);
					free(tmp);
				}
				files[n_files++] = path;
				made++;
			} else {
				unsigned k = pick(n_files);
				if (unlink(files[k]) != 0)
					die("unlink", files[k]);
				ops++;
				free(files[k]);
				files[k] = files[--n_files];
				unmade++;
			}
		} else {
			bool create = n_subdirs == 0 || (n_subdirs < MAX_DIRS && r < 95);
			if (create) {
				snprintf(name, sizeof(name), "C%d-%llu", pid, ++counter);
				char *path = join(dirs[pick(n_dirs)], name);
				bool in_place = pick(2) == 0;
				snprintf(name, sizeof(name), "S%d-%llu", pid, counter);
				char *tmp = join(stage, name);
				const char *where = in_place ? path : tmp;
				if (mkdir(where, 0755) != 0)
					die("mkdir", where);
				ops++;
				for (unsigned i = 0; i < DIR_KIDS; i++) {
					snprintf(name, sizeof(name), "k%u", i);
					char *kid = join(where, name);
					if (in_place) {
						snprintf(name, sizeof(name), "s%d-%llu-%u", pid, counter, i);
						char *staged = join(stage, name);
						write_file(staged, counter, 1 + pick(8));
						do_rename(staged, kid);
						free(staged);
					} else {
						write_file(kid, counter, pick(9));
					}
					free(kid);
				}
				if (!in_place)
					do_rename(tmp, path);
				free(tmp);
				subdirs[n_subdirs++] = path;
				dmade++;
			} else {
				unsigned k = pick(n_subdirs);
				remove_tree(subdirs[k]);
				free(subdirs[k]);
				subdirs[k] = subdirs[--n_subdirs];
				dunmade++;
			}
		}
	}
	tick();
	fprintf(stderr, "churn: %llu operations in %.2f s running (%.2f s with pauses), %.0f per second "
		"(%llu files created, %llu deleted; %llu directories created, %llu removed; "
		"%llu entries from the start removed, %zu left)\n", ops, running, now() - start,
		running > 0 ? (double)ops / running : 0.0, made, unmade, dmade, dunmade, bgone, n_base);
	for (unsigned i = 0; i < n_files; i++)
		free(files[i]);
	for (unsigned i = 0; i < n_subdirs; i++)
		free(subdirs[i]);
	for (size_t i = 0; i < n_base; i++)
		free(base[i]);
	free(base);
	return 0;
}
